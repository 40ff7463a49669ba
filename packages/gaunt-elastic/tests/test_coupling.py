"""Coupling coefficients of App. A: norm, equivariance (A.6), B.31, e3nn equality."""

from __future__ import annotations

import itertools
import math

import gaunt_elastic as ge
import pytest
import rsh
import rsh.testing
import torch
from hypothesis import given, settings
from hypothesis import strategies as st


def _triples(l_max: int):
    for a, b in itertools.product(range(l_max + 1), repeat=2):
        for c in range(abs(a - b), min(a + b, l_max) + 1):
            yield a, b, c


def _rotate(c: torch.Tensor, R: torch.Tensor, ls, convention: str) -> torch.Tensor:
    d = [rsh.wigner_D(l, R, convention=convention) for l in ls]
    return torch.einsum("ia,jb,mc,abc->ijm", d[0], d[1], d[2], c)


@pytest.mark.parametrize("convention", ["standard", "thesis", "e3nn"])
def test_equivariance_A6_all_l_le_4(convention, rotation):
    R = rotation()
    for ls in _triples(4):
        c = ge.coupling(*ls, convention=convention)
        assert torch.allclose(_rotate(c, R, ls, convention), c, atol=1e-12), ls


@settings(max_examples=20)
@given(st.integers(0, 10), st.integers(0, 10), st.data(), st.integers(0, 2**31 - 1))
def test_equivariance_A6_random_up_to_10(l_out, l_in, data, seed):
    l = data.draw(st.integers(abs(l_out - l_in), l_out + l_in))
    R = rsh.testing.random_rotation(
        dtype=torch.float64, generator=torch.Generator().manual_seed(seed)
    )
    for convention in ("standard", "e3nn"):
        c = ge.coupling(l_out, l_in, l, convention=convention)
        assert torch.allclose(_rotate(c, R, (l_out, l_in, l), convention), c, atol=1e-11)


def test_norm_and_B31_all_l_le_10():
    # B.31: sum_{j, m} C_ijm^2 = 1 / (2 l_out + 1) for every i, l_out, l_in <= 10, all l.
    for l_out, l_in in itertools.product(range(11), repeat=2):
        for l in range(abs(l_out - l_in), l_out + l_in + 1):
            c = ge.coupling(l_out, l_in, l)
            assert torch.linalg.norm(c).item() == pytest.approx(1.0, abs=1e-13)
            rows = (c**2).sum(dim=(1, 2))
            assert torch.allclose(rows, torch.full_like(rows, 1 / (2 * l_out + 1)), atol=1e-14)


def test_equals_e3nn_wigner_3j_exactly_all_l_le_10():
    from e3nn import o3

    worst = 0.0
    for ls in _triples(10):
        ours = ge.coupling(*ls, convention="e3nn")
        ref = o3.wigner_3j(*ls, dtype=torch.float64)
        worst = max(worst, (ours - ref).abs().max().item())
    assert worst < 1e-12


def test_e3nn_basis_is_standard_rotated_by_cyclic_permutation():
    # e3nn's Y_l(v) = Y_l^standard(P v), P: (x, y, z) -> (z, x, y), a proper rotation. That
    # is why one invariant tensor serves both bases (coupling docstring).
    from e3nn import o3

    v = torch.randn(50, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pv = v[:, [2, 0, 1]]
    ours = rsh.spherical_harmonics(pv, 8, normalize=True, normalization="integral")
    ref = o3.spherical_harmonics(list(range(9)), v, normalize=True, normalization="integral")
    assert torch.allclose(ours, ref, atol=1e-12)


def test_even_standard_is_normalised_gaunt():
    for ls in _triples(6):
        if sum(ls) % 2:
            continue
        g = ge.gaunt_tensor(*ls)
        assert torch.allclose(ge.coupling(*ls), g / torch.linalg.norm(g), atol=1e-14)


def test_thesis_sign_rule():
    for ls in _triples(5):
        s = (-1) ** sum(ls)
        assert torch.equal(ge.coupling(*ls, convention="thesis"), s * ge.coupling(*ls))


def test_odd_l111_is_levi_civita():
    # l=1 components are (y, z, x): the invariant of 1⊗1⊗1 is ε up to that permutation.
    c = ge.coupling(1, 1, 1)
    perm = [1, 2, 0]
    eps = torch.zeros(3, 3, 3, dtype=torch.float64)
    for i, j, k in itertools.permutations(range(3)):
        eps[i, j, k] = torch.det(torch.eye(3, dtype=torch.float64)[[i, j, k]])
    eps = eps[perm][:, perm][:, :, perm] / math.sqrt(6)
    assert torch.allclose(c, eps, atol=1e-15) or torch.allclose(c, -eps, atol=1e-15)


def test_errors():
    with pytest.raises(ValueError, match="triangle"):
        ge.coupling(1, 1, 3)
    with pytest.raises(ValueError, match="l_in"):
        ge.coupling(1, -1, 1)
    with pytest.raises(ValueError, match="convention"):
        ge.coupling(1, 1, 1, convention="nope")
    with pytest.raises(TypeError, match="dtype"):
        ge.coupling(1, 1, 1, dtype=torch.int64)


def test_keywords_are_keyword_only():
    with pytest.raises(TypeError):
        ge.coupling(1, 1, 1, "standard")  # type: ignore[misc]
    with pytest.raises(TypeError):
        ge.coupling_sign(1, 1, 1, "standard")  # type: ignore[misc]
    assert torch.equal(ge.coupling(l_out=2, l_in=1, l=1), ge.coupling(2, 1, 1))


def test_coupling_sign_rejects_bad_input():
    # issue 12 items 13 and 17: these returned -1, 1 and crashed with a bare TypeError.
    with pytest.raises(ValueError, match=r"convention must be one of .*'bogus'"):
        ge.coupling_sign(1, 1, 1, convention="bogus")
    with pytest.raises(ValueError, match="l_out"):
        ge.coupling_sign(-3, 0, 0)
    with pytest.raises(TypeError, match="l_out"):
        ge.coupling_sign("a", "b", "c")
    with pytest.raises(TypeError, match="l must"):
        ge.coupling_sign(1, 1, 1.0)
    # no coupling exists outside the triangle rule, so no sign either (it returned -1)
    for degrees in ((5, 1, 1), (0, 2, 1), (1, 1, 3)):
        with pytest.raises(ValueError, match="violates the triangle rule"):
            ge.coupling_sign(*degrees)


def test_coupling_sign_values():
    # Hand-evaluated documented rule: (-1)**((l_out+l_in+l)//2), times (-1)**(sum) for thesis.
    import numpy as np

    assert ge.coupling_sign(np.int64(1), 1, 0) == -1  # sum 2
    assert ge.coupling_sign(1, 1, 2) == 1  # sum 4
    assert ge.coupling_sign(1, 1, 1) == -1  # sum 3
    assert ge.coupling_sign(1, 1, 1, convention="e3nn") == -1
    assert ge.coupling_sign(1, 1, 1, convention="thesis") == 1
    assert ge.coupling_sign(2, 2, 3, convention="thesis") == 1  # sum 7: -1 * -1
    assert ge.coupling_sign(2, 3, 3, convention="thesis") == 1  # sum 8: 8 // 2 even
    assert ge.coupling_sign(2, 2, 2, convention="thesis") == -1  # sum 6: 6 // 2 odd
