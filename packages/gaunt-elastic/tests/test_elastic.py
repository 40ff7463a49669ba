"""Elastic tensor ⇄ irreps (thesis ch. 4, App. E)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import sympy
import torch
from gaunt_elastic import elastic as el
from hypothesis import given, settings
from hypothesis import strategies as st

TABLE_E1 = {  # Table E.1, "-" = -1, "+" = +1
    "----": 0, "---0": 1, "---+": 2, "--00": 4, "--0+": 5, "--++": 8, "++++": 80,
    "-0-0": 10, "-0-+": 11, "-000": 13, "-00+": 14, "-0++": 17, "0+0+": 50, "0+++": 53,
    "-+-+": 20, "-+00": 22, "-+0+": 23, "-+++": 26, "0000": 40, "000+": 41, "00++": 44,
}  # fmt: skip
_SIGN = {"-": -1, "0": 0, "+": 1}


def random_elastic(n: int, generator: torch.Generator) -> torch.Tensor:
    """Random symmetric Voigt matrices -> [n, 3, 3, 3, 3] (GPa-like scale)."""
    a = torch.randn(n, 6, 6, dtype=torch.float64, generator=generator) * 50
    return el.voigt_to_cartesian(a + a.transpose(-1, -2))


def test_table_e1_ids_and_algorithm_1():
    for word, idx in TABLE_E1.items():
        abcd = tuple(_SIGN[c] for c in word)
        assert el.flat_id(*abcd) == idx
        assert el.canonical_index(*abcd) == abcd
    assert sorted(TABLE_E1.values()) == sorted(el.INDEPENDENT_IDS)
    # Every index maps to a canonical representative with the same symmetry-orbit.
    images = set()
    for abcd in itertools.product((-1, 0, 1), repeat=4):
        a, b, c, d = abcd
        can = el.canonical_index(*abcd)
        orbit = {(a, b, c, d), (b, a, c, d), (a, b, d, c), (b, a, d, c)}
        orbit |= {(x[2], x[3], x[0], x[1]) for x in orbit}
        assert can in orbit
        images.add(el.flat_id(*can))
    assert images == set(el.INDEPENDENT_IDS)


def _algorithm_1_literal(a, b, c, d):
    # The thesis's step order (pair swap first), kept to document why we reorder it.
    if a > c or (a == c and b > d):
        a, c, b, d = c, a, d, b
    if a > b:
        a, b = b, a
    if c > d:
        c, d = d, c
    return a, b, c, d


def test_literal_algorithm_1_leaves_table_e1():
    reached = {
        el.flat_id(*_algorithm_1_literal(*x)) for x in itertools.product((-1, 0, 1), repeat=4)
    }
    assert reached - set(el.INDEPENDENT_IDS) == {19, 38, 47}


def test_K_J_exact():
    assert el.J * el.K == sympy.eye(3)
    assert el.J == sympy.Rational(4, 3) * sympy.pi * el.K.T
    # Rows of K are Y_1,-1, Y_1,0, Y_1,1 of the thesis convention: -sqrt(3/4π) (y, z, x).
    x, y, z = sympy.symbols("x y z")
    c = sympy.sqrt(sympy.Rational(3, 4) / sympy.pi)
    assert list(el.K * sympy.Matrix([x, y, z])) == [-c * y, -c * z, -c * x]
    assert torch.allclose(el.K_tensor(), torch.tensor(np.array(el.K.evalf(), dtype=float)))
    assert torch.allclose(el.J_tensor() @ el.K_tensor(), torch.eye(3, dtype=torch.float64))


def test_T_exact_vs_float_and_T_hat_full_rank():
    t = el.T
    assert t.shape == (81, 21)
    tf = torch.tensor(np.array(t.evalf(30), dtype=float))
    assert torch.allclose(tf, el.T_tensor(), atol=1e-15, rtol=0)
    that = el.T_hat
    assert that.shape == (21, 21)
    # Exact inverse: full rank (eq. 4.17).
    prod = (that * el.T_hat_inv).applyfunc(sympy.simplify)
    assert prod == sympy.eye(21)
    assert torch.linalg.matrix_rank(el.T_hat_tensor()) == 21
    # Rows of T for symmetry-equivalent covariant indices are identical (sec. 4.3).
    for abcd in itertools.product((-1, 0, 1), repeat=4):
        i, j = el.flat_id(*abcd), el.flat_id(*el.canonical_index(*abcd))
        assert t.row(i) == t.row(j)


def test_exact_round_trip_sympy(seed):
    rng = np.random.default_rng(seed)
    a = sympy.Matrix(6, 6, [sympy.Rational(int(v), 7) for v in rng.integers(-50, 50, 36)])
    c6 = a + a.T
    pairs = el.VOIGT_PAIRS
    voigt = {p: v for v, p in enumerate(pairs)}

    def cart(i, j, k, l):
        return c6[voigt[tuple(sorted((i, j)))], voigt[tuple(sorted((k, l)))]]

    k = el.K
    cov = {}
    for abcd in itertools.product(range(3), repeat=4):
        cov[abcd] = sum(
            cart(i, j, kk, l) * k[abcd[0], i] * k[abcd[1], j] * k[abcd[2], kk] * k[abcd[3], l]
            for i, j, kk, l in itertools.product(range(3), repeat=4)
            if k[abcd[0], i] * k[abcd[1], j] * k[abcd[2], kk] * k[abcd[3], l] != 0
        )
    flat = [cov[abcd] for abcd in itertools.product(range(3), repeat=4)]
    s = el.T_hat_inv * sympy.Matrix([flat[i] for i in el.INDEPENDENT_IDS])
    back = el.T * s  # C = T S (eq. 4.15), all 81 covariant entries
    for i in range(81):
        assert sympy.simplify(back[i] - flat[i]) == 0


def test_float_round_trip(generator):
    c = random_elastic(64, generator)
    s = el.cartesian_to_irreps(c)
    assert s.shape == (64, 21)
    back = el.irreps_to_cartesian(s)
    assert (back - c).abs().max() <= 1e-12 * c.abs().max()
    s2 = torch.randn(8, 21, dtype=torch.float64, generator=generator)
    assert torch.allclose(el.cartesian_to_irreps(el.irreps_to_cartesian(s2)), s2, atol=1e-12)


def test_isotropic_relation_exact():
    # q00 = 9 K_V / (2 sqrt(pi)), s00 = 15 G_V / (2 sqrt(pi)) derived with sympy on the
    # general (triclinic) tensor: both are linear invariants of C.
    cs = sympy.symbols("c0:21")
    c6 = sympy.zeros(6)
    it = iter(cs)
    for i in range(6):
        for j in range(i, 6):
            c6[i, j] = c6[j, i] = next(it)
    kv = (c6[0, 0] + c6[1, 1] + c6[2, 2] + 2 * (c6[0, 1] + c6[0, 2] + c6[1, 2])) / 9
    gv = (
        c6[0, 0] + c6[1, 1] + c6[2, 2] - (c6[0, 1] + c6[0, 2] + c6[1, 2])
        + 3 * (c6[3, 3] + c6[4, 4] + c6[5, 5])
    ) / 15  # fmt: skip
    # Ĉ: covariant entries at Table E.1 ids (K is a scaled permutation: one term each).
    k = el.K
    voigt = {p: v for v, p in enumerate(el.VOIGT_PAIRS)}
    chat = []
    for idx in el.INDEPENDENT_IDS:
        abcd = (idx // 27, (idx // 9) % 3, (idx // 3) % 3, idx % 3)
        ijkl = [next(i for i in range(3) if k[a, i] != 0) for a in abcd]
        scale = sympy.prod(k[a, i] for a, i in zip(abcd, ijkl))
        chat.append(scale * c6[voigt[tuple(sorted(ijkl[:2]))], voigt[tuple(sorted(ijkl[2:]))]])
    s = el.T_hat_inv * sympy.Matrix(chat)
    assert sympy.simplify(s[0] - 9 * kv / (2 * sympy.sqrt(sympy.pi))) == 0
    assert sympy.simplify(s[6] - 15 * gv / (2 * sympy.sqrt(sympy.pi))) == 0


def test_voigt_maps_against_pymatgen(generator):
    from pymatgen.analysis.elasticity import ElasticTensor

    a = torch.randn(6, 6, dtype=torch.float64, generator=generator)
    c6 = a + a.T
    et = ElasticTensor.from_voigt(c6.numpy())
    c = el.voigt_to_cartesian(c6)
    assert np.allclose(c.numpy(), np.asarray(et), atol=0)
    assert torch.equal(el.cartesian_to_voigt(c), c6)
    assert torch.equal(el.from_pymatgen(et), c)
    assert np.allclose(el.to_pymatgen(c).voigt, c6.numpy())
    kv, gv = el.voigt_moduli_from_irreps(el.cartesian_to_irreps(c))
    assert float(kv) == pytest.approx(et.k_voigt, rel=1e-12)
    assert float(gv) == pytest.approx(et.g_voigt, rel=1e-12)


def test_errors(generator):
    c = random_elastic(2, generator)
    bad = c.clone()
    bad[..., 0, 1, 2, 2] += 5.0
    with pytest.raises(ValueError, match=r"minor \(ijkl = jikl\).*deviation 5"):
        el.cartesian_to_irreps(bad)
    el.cartesian_to_irreps(bad, validate=False)  # opt-out of the check does not raise
    s = el.cartesian_to_irreps(bad, symmetrize=True)
    assert torch.allclose(el.irreps_to_cartesian(s), el.symmetrize(bad), atol=1e-12)
    major = c.clone()
    major[..., 0, 0, 1, 1] += 1.0
    major[..., 1, 1, 0, 0] -= 1.0
    with pytest.raises(ValueError, match="major"):
        el.cartesian_to_irreps(major)
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3, 3, 3, 3\]"):
        el.cartesian_to_irreps(torch.zeros(3, 3, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating"):
        el.cartesian_to_irreps(torch.zeros(3, 3, 3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"S must have shape \[\.\.\., 21\]"):
        el.irreps_to_cartesian(torch.zeros(20, dtype=torch.float64))
    with pytest.raises(ValueError, match="C6"):
        el.voigt_to_cartesian(torch.zeros(6, 5))
    with pytest.raises(ValueError, match="b must be one of"):
        el.canonical_index(0, 2, 0, 0)
    with pytest.raises(TypeError, match="dtype"):
        el.T_tensor(torch.int32)


@settings(max_examples=25)
@given(st.integers(0, 2**31 - 1))
def test_batched_matches_single(seed):
    g = torch.Generator().manual_seed(seed)
    c = random_elastic(3, g)
    batched = el.cartesian_to_irreps(c.reshape(3, 1, 3, 3, 3, 3))
    for i in range(3):
        assert torch.allclose(batched[i, 0], el.cartesian_to_irreps(c[i]), atol=1e-12)


# ------------------------------------------------------------------- real MP tensors


@pytest.mark.shared_data
def test_de_jong_tensors(shared_data):
    import pandas as pd

    df = pd.read_csv(shared_data / "elastic" / "matminer_elastic_tensor_2015.csv.gz", skiprows=1)
    c6 = torch.tensor(np.array([json.loads(x) for x in df.elastic_tensor]), dtype=torch.float64)
    c = el.voigt_to_cartesian(c6)
    s = el.cartesian_to_irreps(c)
    back = el.irreps_to_cartesian(s)
    rel = ((back - c).abs().amax(dim=(1, 2, 3, 4)) / c.abs().amax(dim=(1, 2, 3, 4))).max()
    assert rel <= 1e-12
    kv, gv = el.voigt_moduli_from_irreps(s)
    # The stored columns agree with values recomputed from the tensor to < 1e-3 GPa.
    assert torch.allclose(kv, torch.tensor(df.K_Voigt.values), atol=1e-3, rtol=0)
    assert torch.allclose(gv, torch.tensor(df.G_Voigt.values), atol=1e-3, rtol=0)
    assert len(df) == 1181


@pytest.mark.shared_data
def test_trachote_tensors(shared_data):
    import pandas as pd

    df = pd.read_json(shared_data / "elastic" / "trachote_mp_elastic_val_clean.json.gz")
    c6 = torch.tensor(
        np.array([np.array(x, dtype=float) for x in df["elasticity.elastic_tensor"]]),
        dtype=torch.float64,
    )
    # 81 tensors are not positive definite; the transform does not care (it is linear).
    not_pd = int((torch.linalg.eigvalsh(c6)[:, 0] <= 0).sum())
    assert not_pd == 81
    c = el.voigt_to_cartesian(c6)
    s = el.cartesian_to_irreps(c)
    assert torch.allclose(el.irreps_to_cartesian(s), c, atol=1e-11, rtol=0)
    kv, gv = el.voigt_moduli_from_irreps(s)
    # Tensor entries and moduli are both rounded to whole GPa: K_V of rounded entries is
    # within 0.5 (entries: (3*0.5 + 6*0.5)/9 = 0.5) plus 0.5 (column rounding) of the column.
    assert (
        kv - torch.tensor(df["elasticity.K_Voigt"].values, dtype=torch.float64)
    ).abs().max() <= 1.0
    assert (
        gv - torch.tensor(df["elasticity.G_Voigt"].values, dtype=torch.float64)
    ).abs().max() <= 1.0


@pytest.mark.shared_data
def test_matten_full_tensors(shared_data):
    import pandas as pd

    df = pd.read_json(shared_data / "elastic" / "matten_example_elasticity_tensor_n100.json")
    full = torch.tensor(
        np.array([np.array(x) for x in df.elastic_tensor_full]), dtype=torch.float64
    )
    voigt = torch.tensor(
        np.array([np.array(x) for x in df.elastic_tensor_voigt]), dtype=torch.float64
    )
    assert torch.allclose(el.voigt_to_cartesian(voigt), full, atol=1e-9)
    s = el.cartesian_to_irreps(full)
    assert torch.allclose(el.irreps_to_cartesian(s), full, atol=1e-10)
    assert math.isfinite(float(s.abs().max()))


@settings(max_examples=20)
@given(st.integers(0, 2**31 - 1))
def test_cartesian_to_irreps_equivariant(seed):
    # Rotating C as a rank-4 tensor rotates S block-wise by the thesis-convention Wigner D
    # for l = 0, 2, 0, 2, 4.
    import rsh

    g = torch.Generator().manual_seed(seed)
    R = rsh.testing.random_rotation(dtype=torch.float64, generator=g)
    c = random_elastic(2, g)
    c_rot = torch.einsum("ia,jb,kc,ld,nabcd->nijkl", R, R, R, R, c)
    d = torch.block_diag(*[rsh.wigner_D(l, R, convention="thesis") for l in (0, 2, 0, 2, 4)])
    d_irreps = rsh.Irreps(el.IRREPS).D(R, convention="thesis")
    assert torch.allclose(d, d_irreps, atol=1e-14)
    s, s_rot = el.cartesian_to_irreps(c), el.cartesian_to_irreps(c_rot)
    assert torch.allclose(s_rot, s @ d.T, atol=1e-10 * float(c.abs().max()))


# ------------------------------------------------------------- order and hardening (issue 12)

ASCENDING_IDS = (0, 1, 2, 4, 5, 8, 10, 11, 13, 14, 17, 20, 22, 23, 26, 40, 41, 44, 50, 53, 80)


def test_independent_ids_ascending_and_used_in_that_order():
    # Issue 12 item 0: the thesis's supplementary T̂ and T̂⁻¹ order the 21 ids ascending.
    assert el.INDEPENDENT_IDS == ASCENDING_IDS
    t = el.T_tensor()
    assert torch.equal(el.T_hat_tensor(), t[list(ASCENDING_IDS)])
    # Columns of T̂⁻¹ follow the same order: S = T̂⁻¹ Ĉ with Ĉ read at ASCENDING_IDS.
    g = torch.Generator().manual_seed(3)
    s = torch.randn(21, dtype=torch.float64, generator=g)
    c_cov = t @ s  # all 81 covariant entries (eq. 4.15)
    assert torch.allclose(el.T_hat_inv_tensor() @ c_cov[list(ASCENDING_IDS)], s, atol=1e-12)
    # The exact matrices: row k of T̂ is row ASCENDING_IDS[k] of T.
    t_exact, t_hat = el.T, el.T_hat
    for k, idx in enumerate(ASCENDING_IDS):
        assert t_hat.row(k) == t_exact.row(idx)


def test_covariant_index_validation():
    # Issue 12 items 13 and 17.
    with pytest.raises(ValueError, match="b must be one of -1, 0, 1, got 7"):
        el.flat_id(0, 7, -9, 0)
    with pytest.raises(ValueError, match="a must be one of -1, 0, 1, got 5"):
        el.flat_id(5, 7, -9, 0)
    assert el.canonical_index(np.int64(1), 0, 0, 0) == (0, 0, 0, 1)
    assert el.flat_id(np.int8(1), 1, 1, 1) == 80
    assert type(el.flat_id(np.int64(0), 0, 0, 0)) is int
    with pytest.raises(TypeError, match="a must be an integer"):
        el.canonical_index(1.0, 0, 0, 0)
    with pytest.raises(TypeError, match="d must be an integer"):
        el.canonical_index(0, 0, 0, True)


def _nan_and_asymmetric(generator):
    c = random_elastic(2, generator)
    c[0] = float("nan")
    c[1, 0, 1, 2, 2] += 500.0  # breaks minor symmetry by 500 GPa
    return c


def test_nan_row_is_named_and_does_not_switch_the_check_off(generator):
    # Issue 12 item 6, the exact case: one NaN tensor and one 500 GPa asymmetric tensor.
    c = _nan_and_asymmetric(generator)
    with pytest.raises(ValueError, match=r"C\[0\] contains non-finite values"):
        el.cartesian_to_irreps(c)
    with pytest.raises(ValueError, match=r"C\[0\] contains non-finite values"):
        el.check_symmetry(c)
    with pytest.raises(ValueError, match=r"C\[0\] contains non-finite"):
        el.cartesian_to_irreps(c, symmetrize=True)
    # The asymmetric row is still caught on its own, and named.
    with pytest.raises(ValueError, match=r"C\[0\] lacks the minor \(ijkl = jikl\)"):
        el.cartesian_to_irreps(c[1:])
    # inf, and a nested batch index.
    d = random_elastic(3, generator).reshape(3, 1, 3, 3, 3, 3)
    d[2, 0, 1, 1, 1, 1] = float("inf")
    with pytest.raises(ValueError, match=r"C\[2, 0\] contains non-finite"):
        el.cartesian_to_irreps(d)
    with pytest.raises(ValueError, match=r"^C contains non-finite"):
        el.cartesian_to_voigt(d[2, 0])
    # validate=False is the documented opt-out: NaN in, NaN out.
    assert torch.isnan(el.cartesian_to_irreps(c, validate=False)[0]).all()


def test_symmetry_check_is_per_tensor(generator):
    # A large tensor in the batch does not raise the tolerance of a small one.
    c = random_elastic(2, generator)
    c[0] *= 1e6
    c[1, 0, 1, 2, 2] += 0.01 * float(c[1].abs().max())
    el.cartesian_to_irreps(c[1:], rtol=0.1)  # within 10 % of its own scale
    with pytest.raises(ValueError, match=r"C\[1\] lacks the minor \(ijkl = jikl\)"):
        el.cartesian_to_irreps(c, rtol=1e-3)
    with pytest.raises(ValueError, match=r"C\[1\] lacks"):
        el.check_symmetry(c, rtol=1e-3)


@pytest.mark.parametrize(
    ("rtol", "err"),
    [(float("nan"), ValueError), (-1, ValueError), ("x", TypeError), (True, TypeError)],
)
def test_bad_rtol(rtol, err, generator):
    c = random_elastic(1, generator)
    c[0, 0, 1, 2, 2] += 500.0
    with pytest.raises(err, match="rtol"):
        el.cartesian_to_irreps(c, rtol=rtol)
    with pytest.raises(err, match="rtol"):
        el.check_symmetry(c, rtol=rtol)


def test_from_pymatgen_rejects_non_numbers():
    with pytest.raises(TypeError, match="et must be a 3x3x3x3 array of real numbers"):
        el.from_pymatgen(np.full((3, 3, 3, 3), "1.0"))
    with pytest.raises(TypeError, match="et must be"):
        el.from_pymatgen("not a tensor")
    with pytest.raises(TypeError, match="et must be"):
        el.from_pymatgen(np.zeros((3, 3, 3, 3), dtype=bool))
    with pytest.raises(ValueError, match="shape"):
        el.from_pymatgen(np.zeros((6, 6)))
    assert el.from_pymatgen(np.ones((3, 3, 3, 3), dtype=np.int32)).dtype == torch.float64


def test_gradient_flows_through_the_checked_transform(generator):
    c = random_elastic(2, generator).requires_grad_()
    el.cartesian_to_irreps(c).sum().backward()
    assert c.grad is not None and torch.isfinite(c.grad).all()


def test_cartesian_to_irreps_equivariant_o3(generator):
    # rsh.testing.assert_equivariant with proper and improper rotations: C built from
    # Cartesian vectors (sums of symmetrised outer products u⊗v⊗w⊗x) rotates as a rank-4
    # tensor, and S by IRREPS (all even) in the thesis convention.
    import rsh.testing

    vectors = [torch.randn(5, 3, dtype=torch.float64, generator=generator) for _ in range(4)]

    def fn(u, v, w, x):
        return el.cartesian_to_irreps(el.symmetrize(torch.einsum("na,nb,nc,nd->abcd", u, v, w, x)))

    rsh.testing.assert_equivariant(
        fn,
        vectors,
        ["cartesian_vectors"] * 4,
        el.IRREPS,
        convention="thesis",
        generator=generator,
    )


def test_rtol_inf_accepts_any_asymmetry_but_not_nan(generator):
    c = random_elastic(2, generator)
    c[1, 0, 1, 2, 2] += 500.0
    el.cartesian_to_irreps(c, rtol=float("inf"))
    c[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"C\[0\] contains non-finite"):
        el.cartesian_to_irreps(c, rtol=float("inf"))
    zero = torch.zeros(3, 3, 3, 3, dtype=torch.float64)
    assert torch.equal(el.cartesian_to_irreps(zero, rtol=float("inf")), zero.new_zeros(21))
