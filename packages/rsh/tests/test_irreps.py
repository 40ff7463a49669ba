"""rsh.Irreps / rsh.Irrep: parsing, sizes, algebra and the representation D(R) with parity."""

import copy
import itertools
import pickle

import numpy as np
import pytest
import rsh
import torch
from hypothesis import given
from hypothesis import strategies as st
from rsh import Irrep, Irreps
from rsh.testing import random_rotation, rotations

blocks = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 5), st.sampled_from([1, -1])), max_size=6
)


def test_parse_examples():
    ir = Irreps("16x0e+8x1o")
    assert list(ir) == [Irrep(16, 0, 1), Irrep(8, 1, -1)]
    assert [tuple(b) for b in ir] == [(16, 0, 1), (8, 1, -1)]
    assert Irreps(" 2e + 3x3o ") == Irreps([(1, 2, 1), (3, 3, -1)])
    # "y" is the parity of Y_l, normalised at parse time.
    assert Irreps("1x0y+2x1y+1x2y") == Irreps("1x0e+2x1o+1x2e")
    assert str(Irreps("1y")) == "1x1o"
    assert Irreps([(1, 1, "o"), Irrep(2, 0, "e"), (3, (2, -1))]) == "1x1o+2x0e+3x2o"
    assert Irreps(Irrep(2, 3, -1)) == "2x3o"
    assert Irreps(ir) == ir and hash(Irreps(ir)) == hash(ir)
    assert Irreps("1x0e+1x1o") != Irreps("1x0e+1x1e")
    assert Irreps("1x0e") != "not irreps"


def test_parse_numpy_integers():
    assert Irreps([(np.int64(2), np.int32(1), np.int64(-1))]) == "2x1o"


@pytest.mark.parametrize(
    ("bad", "exc", "match"),
    [
        ("", ValueError, "is empty"),  # issue 12 item 14: was []
        ("   ", ValueError, "is empty"),
        ("1x", ValueError, "does not parse"),
        ("2xe", ValueError, "does not parse"),
        ("1x1", ValueError, "does not parse"),  # parity is required
        ("1x1e+", ValueError, "does not parse"),
        ("1x1z", ValueError, "does not parse"),
        ("-1x1e", ValueError, "does not parse"),
        (3, TypeError, "irreps must be"),
        (torch.ones(2), TypeError, "irreps must be"),
        ([(1, 1)], TypeError, r"irreps\[0\] must be an Irrep"),
        ([(1, 1, 0)], ValueError, "parity must be"),
        ([(1, 1, True)], ValueError, "parity must be"),
        ([(1.0, 1, 1)], TypeError, "mul must be an int"),
        ([(1, -1, 1)], ValueError, "l must be >= 0"),
        ([(-2, 1, 1)], ValueError, "mul must be >= 0"),
    ],
)
def test_parse_errors(bad, exc, match):
    with pytest.raises(exc, match=match):
        Irreps(bad)


def test_error_names_argument():
    with pytest.raises(ValueError, match="irreps_in=''"):
        Irreps("", name="irreps_in")


def test_empty_is_explicit():
    empty = Irreps([])
    assert empty.dim == 0 and empty.num_irreps == 0 and len(empty) == 0
    assert empty.slices() == [] and str(empty) == "" and repr(empty) == "Irreps([])"
    assert empty.D(torch.eye(3, dtype=torch.float64)).shape == (0, 0)
    with pytest.raises(ValueError, match="no lmax"):
        _ = empty.lmax


@given(blocks)
def test_round_trip_sizes_and_slices(bs):
    ir = Irreps(bs)
    assert ir.dim == sum(m * (2 * l + 1) for m, l, _ in bs)
    assert ir.num_irreps == sum(m for m, _, _ in bs)
    assert len(ir.ls) == ir.num_irreps
    if bs:
        assert Irreps(str(ir)) == ir  # str round trip
        assert eval(repr(ir), {"Irreps": Irreps}) == ir
        assert ir.lmax == max(l for _, l, _ in bs)
    sl = ir.slices()
    assert [s.stop - s.start for s in sl] == [m * (2 * l + 1) for m, l, _ in bs]
    assert all(a.stop == b.start for a, b in itertools.pairwise(sl))
    assert (sl[-1].stop if sl else 0) == ir.dim
    assert pickle.loads(pickle.dumps(ir)) == ir and copy.deepcopy(ir) == ir


@given(blocks, blocks)
def test_add_and_simplify(a, b):
    ia, ib = Irreps(a), Irreps(b)
    assert list(ia + ib) == [*ia, *ib]
    s = ia.simplify()
    assert s.dim == ia.dim and s.num_irreps == ia.num_irreps
    assert all(x.mul > 0 for x in s)
    assert all((x.l, x.parity) != (y.l, y.parity) for x, y in zip(s, list(s)[1:]))
    # simplify keeps the order of the copies: same D on the same features.
    R = random_rotation(generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s.D(R), ia.D(R))


@given(blocks)
def test_remove_zero_multiplicities(a):
    ir = Irreps(a)
    kept = ir.remove_zero_multiplicities()
    assert isinstance(kept, Irreps)
    assert list(kept) == [b for b in ir if b.mul > 0]  # order kept, nothing merged
    assert kept.dim == ir.dim and kept.num_irreps == ir.num_irreps
    R = random_rotation(generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(kept.D(R), ir.D(R))


def test_remove_zero_multiplicities_examples():
    assert Irreps("2x0e+0x1o+1x2e").remove_zero_multiplicities() == "2x0e+1x2e"
    assert Irreps("1x0e+1x0e+0x1o").remove_zero_multiplicities() == "1x0e+1x0e"
    assert Irreps("0x0e+0x1o").remove_zero_multiplicities() == Irreps([])
    assert Irreps([]).remove_zero_multiplicities() == Irreps([])


def test_add_with_strings_and_getitem():
    ir = "1x0e" + Irreps("2x1o") + "1x2e"
    assert ir == "1x0e+2x1o+1x2e"
    assert ir[1] == Irrep(2, 1, -1) and ir[1:] == Irreps("2x1o+1x2e")
    assert Irreps("1x0e+2x0e+0x1o+1x0e").simplify() == "4x0e"
    assert Irreps("1x0e+1x1o+1x0e").simplify() == "1x0e+1x1o+1x0e"
    with pytest.raises(AttributeError):
        ir.foo = 1


IR = Irreps("2x0e+1x0o+1x1o+2x1e+1x2e+1x2o+1x3o")


@given(rotations(parity=True), rotations(parity=True))
def test_D_is_an_orthogonal_representation(R1, R2):
    D1, D2, D12 = IR.D(R1), IR.D(R2), IR.D(R1 @ R2)
    eye = torch.eye(IR.dim, dtype=torch.float64)
    torch.testing.assert_close(D1 @ D1.T, eye, atol=1e-12, rtol=0)
    torch.testing.assert_close(D12, D1 @ D2, atol=1e-12, rtol=0)


def test_inversion_gives_parity():
    D = IR.D(-torch.eye(3, dtype=torch.float64))
    signs = torch.cat([torch.full((b.dim,), float(b.parity), dtype=torch.float64) for b in IR])
    torch.testing.assert_close(D, torch.diag(signs), atol=1e-13, rtol=0)


def test_blocks_are_wigner_D(generator):
    R = random_rotation(4, generator=generator, parity=True)
    det = torch.linalg.det(R)
    D = IR.D(R)
    assert D.shape == (4, IR.dim, IR.dim)
    for b, sl in zip(IR, IR.slices()):
        n = 2 * b.l + 1
        want = rsh.wigner_D(b.l, R * det[:, None, None])
        want = want * torch.where(det < 0, float(b.parity), 1.0)[:, None, None]
        for k in range(b.mul):
            s = slice(sl.start + k * n, sl.start + (k + 1) * n)
            torch.testing.assert_close(D[:, s, s], want, atol=1e-13, rtol=0)
        off = D[:, sl, :].clone()
        off[:, :, sl] = 0
        assert off.abs().max() == 0  # block diagonal
    # For the parity of Y_l the block is wigner_D(l, R) itself (improper R included).
    y = Irreps("1x0y+1x1y+1x2y+1x3y")
    for b, sl in zip(y, y.slices()):
        torch.testing.assert_close(y.D(R)[:, sl, sl], rsh.wigner_D(b.l, R), atol=1e-12, rtol=0)


def test_D_e3nn_convention_matches_e3nn(generator):
    o3 = pytest.importorskip("e3nn.o3")
    R = random_rotation(3, generator=generator, parity=True)
    text = "2x0e+1x0o+1x1o+1x1e+1x2e+1x3o"
    ours = Irreps(text).D(R, convention="e3nn")
    theirs = o3.Irreps(text).D_from_matrix(R)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)  # e3nn goes through float32
    torch.testing.assert_close(Irreps("1o").D(R, convention="e3nn"), R, atol=1e-13, rtol=0)
    assert Irreps(o3.Irreps(text)) == text


def test_D_rejects_non_rotations():
    with pytest.raises(ValueError, match="orthogonal"):
        Irreps("1x1o").D(torch.zeros(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"R must have shape \[\.\.\., 3, 3\]"):
        Irreps("1x1o").D(torch.eye(2))
    with pytest.raises(ValueError, match="convention"):
        Irreps("1x1o").D(torch.eye(3), convention="bogus")
