"""CartesianTensor: any rank, any index-permutation symmetry."""

from __future__ import annotations

import pytest
import rsh
import rsh.testing
import sympy
import torch
from gaunt_elastic import CartesianTensor
from gaunt_elastic import elastic as el
from hypothesis import given, settings
from hypothesis import strategies as st

CASES = {
    "ij=ji": ("1x0e+1x2e", 6),
    "ijk=ikj": ("2x1o+1x2o+1x3o", 18),
    "ijkl=jikl=klij": ("2x0e+2x2e+1x4e", 21),
    "ijkl=jikl=ijlk": ("2x0e+1x1e+3x2e+1x3e+1x4e", 36),
    "ij=-ji": ("1x1e", 3),
    "ijk": ("1x0o+3x1o+2x2o+1x3o", 27),
}


@pytest.mark.parametrize("formula", list(CASES))
def test_irreps_counts(formula):
    irreps, dim = CASES[formula]
    ct = CartesianTensor(formula)
    assert str(ct.irreps) == irreps
    assert ct.irreps == rsh.Irreps(irreps)
    assert ct.irreps.dim == dim
    assert ct.dim == dim
    q = ct.change_of_basis()
    assert q.shape == (dim, 3**ct.rank)
    assert torch.allclose(q @ q.T, torch.eye(dim, dtype=torch.float64), atol=1e-13)
    p = ct.projector()
    assert torch.allclose(q @ p.T, q, atol=1e-13)  # rows lie in the symmetric subspace
    assert torch.linalg.matrix_rank(p) == dim  # and span all of it


@pytest.mark.parametrize("formula", ["ij=ji", "ijk=ikj", "ijkl=jikl=klij", "ijkl=jikl=ijlk"])
def test_irreps_match_e3nn(formula):
    from e3nn import io, o3

    ours = o3.Irreps(str(CartesianTensor(formula).irreps)).simplify()
    assert ours == io.CartesianTensor(formula).simplify()


@pytest.mark.parametrize("formula", list(CASES))
def test_equivariance(formula, generator):
    # rsh.testing.assert_equivariant with proper and improper rotations: a tensor built from
    # Cartesian vectors (sum of outer products v1⊗...⊗vn, projected onto the formula's
    # symmetry) maps to irreps that rotate by ct.irreps.D (parity (-1)^rank).
    ct = CartesianTensor(formula)
    letters = "abcdef"[: ct.rank]
    spec = ",".join(f"n{c}" for c in letters) + "->" + letters
    vectors = [torch.randn(4, 3, dtype=torch.float64, generator=generator) for _ in letters]

    def fn(*vs):
        return ct.from_cartesian(torch.einsum(spec, *vs), symmetrize=True)

    rsh.testing.assert_equivariant(
        fn, vectors, ["cartesian_vectors"] * ct.rank, ct.irreps, generator=generator, atol=1e-12
    )


def test_round_trip_and_symmetry_error(generator):
    ct = CartesianTensor("ijk=ikj")
    t = torch.randn(5, 3, 3, 3, dtype=torch.float64, generator=generator)
    with pytest.raises(ValueError, match=r"lacks the symmetry 'ijk=ikj'.*deviation"):
        ct.from_cartesian(t)
    sym = (t + t.transpose(-1, -2)) / 2
    assert torch.allclose(ct.to_cartesian(ct.from_cartesian(sym)), sym, atol=1e-13)
    assert torch.allclose(ct.from_cartesian(t, symmetrize=True), ct.from_cartesian(sym), atol=1e-13)


def test_elastic_case_spans_same_space_as_thesis_transform(generator):
    # Same 21-dim space, and the same rotation-invariant content: |l=4 block| agrees up to
    # the fixed scale between the two orthogonal-by-block parametrisations.
    ct = CartesianTensor("ijkl=jikl=klij")
    a = torch.randn(6, 6, 6, dtype=torch.float64, generator=generator)
    c = el.voigt_to_cartesian(a + a.transpose(-1, -2))
    x = ct.from_cartesian(c)
    assert torch.allclose(ct.to_cartesian(x), c, atol=1e-12)
    s = el.cartesian_to_irreps(c)
    ratio = torch.linalg.norm(x[:, -9:], dim=-1) / torch.linalg.norm(s[:, -9:], dim=-1)
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-12)


def test_exact_change_of_basis():
    for formula in ("ij=ji", "ijk=ikj", "ijkl=jikl=klij", "ijkl=jikl=ijlk"):
        ct = CartesianTensor(formula)
        q = ct.change_of_basis_exact()
        assert (q * q.T).applyfunc(sympy.radsimp) == sympy.eye(ct.dim)  # exactly orthonormal
        # exactly inside the symmetric subspace: Q P = Q with P the rational projector
        p = sympy.Matrix(ct.projector().tolist()).applyfunc(
            lambda v: sympy.Rational(v).limit_denominator(100)
        )
        assert (q * p.T - q).applyfunc(sympy.simplify) == sympy.zeros(*q.shape)
    q = CartesianTensor("ijkl=jikl=klij").change_of_basis_exact()
    assert torch.allclose(
        torch.tensor(q.evalf().tolist(), dtype=torch.float64),
        CartesianTensor("ijkl=jikl=klij").change_of_basis(),
        atol=1e-15,
    )


@pytest.mark.parametrize(
    ("formula", "err", "match"),
    [
        ("ij=jk", ValueError, "inconsistent"),
        ("ii=ii", ValueError, "distinct"),
        ("ij==ji", ValueError, "index words"),
        ("i j=j1", ValueError, "index words"),
        (3, TypeError, "formula must be a str"),
        ("ij=-ij", ValueError, "contradictory"),  # issue 12 item 13: gave dim 0 silently
        ("ij=-ji=ji", ValueError, "contradictory"),
    ],
)
def test_bad_formula(formula, err, match):
    with pytest.raises(err, match=match):
        CartesianTensor(formula)


def test_bad_inputs():
    ct = CartesianTensor("ij=ji")
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 3, 3\]"):
        ct.from_cartesian(torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating"):
        ct.from_cartesian(torch.zeros(3, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"x must have shape \[\.\.\., 6\]"):
        ct.to_cartesian(torch.zeros(5, dtype=torch.float64))


@settings(max_examples=10)
@given(
    st.sampled_from(["ij=ji", "ijk=ikj", "ijkl=jikl=klij"]),
    rsh.testing.rotations(parity=True),
    st.integers(0, 2**31 - 1),
)
def test_equivariance_hypothesis(formula, R, seed):
    # T rotated in every index by an orthogonal R (improper too) <-> x rotated by D(R).
    ct = CartesianTensor(formula)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(ct.dim, dtype=torch.float64, generator=g)
    t = ct.to_cartesian(x)
    letters = "abcdef"[: ct.rank]
    spec = ",".join(f"{u}{v}" for u, v in zip("pqrstu", letters))
    t_rot = torch.einsum(f"{spec},{letters}->{'pqrstu'[: ct.rank]}", *([R] * ct.rank), t)
    d = ct.irreps.D(R, convention="standard")
    assert torch.allclose(ct.from_cartesian(t_rot), d @ x, atol=1e-12)


def test_from_cartesian_non_finite_and_per_row_check():
    # issue 12 item 6: one NaN tensor switched the symmetry check off for the whole batch.
    ct = CartesianTensor("ij=ji")
    good = torch.eye(3, dtype=torch.float64)
    asym = good.clone()
    asym[0, 1] += 500.0
    nan = torch.full((3, 3), float("nan"), dtype=torch.float64)
    with pytest.raises(ValueError, match=r"T\[0\] contains non-finite values"):
        ct.from_cartesian(torch.stack([nan, asym]))
    with pytest.raises(ValueError, match=r"T\[1\] contains non-finite"):
        ct.from_cartesian(torch.stack([good, good.new_full((3, 3), float("inf"))]))
    with pytest.raises(ValueError, match=r"T\[0, 1\] contains non-finite"):
        ct.from_cartesian(torch.stack([good, nan]).reshape(1, 2, 3, 3), symmetrize=True)
    # Per row: a large symmetric tensor does not hide a small asymmetric one.
    big = good * 1e6
    small = good * 100
    small[0, 1] += 50.0
    with pytest.raises(ValueError, match=r"T\[1\] lacks the symmetry 'ij=ji'"):
        ct.from_cartesian(torch.stack([big, small]), rtol=1e-3)
    out = ct.from_cartesian(torch.stack([big, small]), symmetrize=True)
    sym = (small + small.T) / 2
    assert torch.allclose(out[1], ct.from_cartesian(sym), atol=1e-12)


@pytest.mark.parametrize(
    ("rtol", "err"), [(float("nan"), ValueError), (-1, ValueError), ("1e-6", TypeError)]
)
def test_from_cartesian_bad_rtol(rtol, err):
    ct = CartesianTensor("ij=ji")
    asym = torch.eye(3, dtype=torch.float64)
    asym[0, 1] = 5.0
    with pytest.raises(err, match="rtol"):
        ct.from_cartesian(asym, rtol=rtol)
