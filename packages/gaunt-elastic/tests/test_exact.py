"""Exact Wigner 3j / real Gaunt coefficients against sympy, and App. D properties."""

from __future__ import annotations

import itertools
import math

import gaunt_elastic as ge
import pytest
import sympy
from gaunt_elastic import real_gaunt
from hypothesis import given
from hypothesis import strategies as st
from sympy.physics.wigner import real_gaunt as sympy_real_gaunt
from sympy.physics.wigner import wigner_3j as sympy_wigner_3j


def test_exact_matches_sympy_symbolically_l_le_3():
    # sympy's real harmonics are (-1)^m times rsh "standard" ones (see real_gaunt docstring).
    for l1, l2, l3 in itertools.product(range(4), repeat=3):
        for m1, m2, m3 in itertools.product(
            range(-l1, l1 + 1), range(-l2, l2 + 1), range(-l3, l3 + 1)
        ):
            ours = real_gaunt(l1, m1, l2, m2, l3, m3, exact=True)
            ref = (-1) ** (m1 + m2 + m3) * sympy_real_gaunt(l1, l2, l3, m1, m2, m3)
            assert sympy.simplify(ours - ref) == 0, (l1, l2, l3, m1, m2, m3, ours, ref)


def _allowed(l1, l2, l3):
    return (l1 + l2 + l3) % 2 == 0 and abs(l1 - l2) <= l3 <= l1 + l2


def test_float_matches_sympy_all_l_le_6():
    # Every entry with l1 <= l2 <= l3 <= 6 that the triangle/parity rules allow; the
    # permutation symmetry (tested separately) covers the other orderings.
    n = 0
    for l1, l2, l3 in itertools.combinations_with_replacement(range(7), 3):
        if not _allowed(l1, l2, l3):
            continue
        for m1, m2, m3 in itertools.product(
            range(-l1, l1 + 1), range(-l2, l2 + 1), range(-l3, l3 + 1)
        ):
            ours = real_gaunt(l1, m1, l2, m2, l3, m3)
            a1, a2, a3 = abs(m1), abs(m2), abs(m3)
            odd_negatives = sum(m < 0 for m in (m1, m2, m3)) % 2 == 1
            if odd_negatives or not (a1 == a2 + a3 or a2 == a1 + a3 or a3 == a1 + a2):
                # Zero by App. D (property 2, and the complex m-sum rule): checked without
                # calling sympy, which is the slow part of this test.
                assert ours == 0
                continue
            ref = float(sympy_real_gaunt(l1, l2, l3, m1, m2, m3)) * (-1) ** (m1 + m2 + m3)
            assert ours == pytest.approx(ref, abs=1e-14)
            n += 1
    assert n > 1_900


@given(
    st.integers(0, 12),
    st.integers(0, 12),
    st.integers(0, 12),
    st.data(),
)
def test_exact_matches_sympy_random_up_to_12(l1, l2, l3, data):
    m1 = data.draw(st.integers(-l1, l1))
    m2 = data.draw(st.integers(-l2, l2))
    m3 = data.draw(st.integers(-l3, l3))
    ours = real_gaunt(l1, m1, l2, m2, l3, m3, exact=True)
    ref = (-1) ** (m1 + m2 + m3) * sympy_real_gaunt(l1, l2, l3, m1, m2, m3)
    assert sympy.simplify(ours - ref) == 0


@given(st.integers(0, 9), st.integers(0, 9), st.integers(0, 9), st.data())
def test_wigner_3j_matches_sympy(l1, l2, l3, data):
    from gaunt_elastic._exact import wigner_3j

    m1 = data.draw(st.integers(-l1, l1))
    m2 = data.draw(st.integers(-l2, l2))
    m3 = -m1 - m2
    if abs(m3) > l3:
        return
    sign, square = wigner_3j(l1, l2, l3, m1, m2, m3)
    ours = sign * sympy.sqrt(sympy.Rational(square.numerator, square.denominator))
    assert sympy.simplify(ours - sympy_wigner_3j(l1, l2, l3, m1, m2, m3)) == 0


lm = st.integers(0, 8).flatmap(lambda l: st.tuples(st.just(l), st.integers(-l, l)))


@given(lm, lm, lm)
def test_property_1_permutation_invariance(a, b, c):
    ref = real_gaunt(*a, *b, *c)
    for p in itertools.permutations((a, b, c)):
        assert real_gaunt(*p[0], *p[1], *p[2]) == ref


@given(lm, lm, lm)
def test_properties_2_3_4_zeros(a, b, c):
    (l1, m1), (l2, m2), (l3, m3) = a, b, c
    g = real_gaunt(l1, m1, l2, m2, l3, m3)
    if sum(m < 0 for m in (m1, m2, m3)) % 2 == 1:  # property 2
        assert g == 0
    if not abs(l1 - l2) <= l3 <= l1 + l2:  # property 3
        assert g == 0
    if (l1 + l2 + l3) % 2:  # property 4
        assert g == 0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1, 2, 1, 0, 0, 0), "m1"),  # property 5: |m| > l is rejected, not silently zero
        ((2, 0, 1, -2, 1, 0), "m2"),
        ((-1, 0, 1, 0, 1, 0), "l1"),
    ],
)
def test_bad_l_m_raise(args, match):
    with pytest.raises(ValueError, match=match):
        real_gaunt(*args)


def test_bad_types_raise():
    import numpy as np

    with pytest.raises(TypeError, match="l1"):
        real_gaunt(1.0, 0, 1, 0, 0, 0)
    with pytest.raises(TypeError, match="m3"):
        real_gaunt(1, 0, 1, 0, 0, True)
    # numpy integers are integers
    assert real_gaunt(np.int64(1), 1, 1, 1, 2, 2) == real_gaunt(1, 1, 1, 1, 2, 2)
    with pytest.raises(TypeError, match="dtype"):
        ge.gaunt_tensor(1, 1, 0, dtype=__import__("torch").int64)


def test_known_values():
    # ∫ Y00³ dΩ = 1/(2 sqrt(pi)); Y_1 ∝ (y, z, x) so G(1,1,2; x x -> Y22) > 0.
    assert real_gaunt(0, 0, 0, 0, 0, 0, exact=True) == 1 / (2 * sympy.sqrt(sympy.pi))
    assert real_gaunt(1, 1, 1, 1, 2, 2) == pytest.approx(math.sqrt(15) / (10 * math.sqrt(math.pi)))


surds = st.dictionaries(
    st.sampled_from([1, 2, 3, 5, 6, 7, 10, 15, 30]),
    st.fractions(max_denominator=50).filter(lambda f: abs(f) < 100),
    max_size=4,
)


@given(surds, surds)
def test_surd_sum_arithmetic_against_sympy(a, b):
    # The exact arithmetic T is built with: sums and products agree with sympy, and the
    # float rendering with the sympy value.
    from gaunt_elastic._exact import SurdSum

    x, y = SurdSum(a), SurdSum(b)
    for got, ref in ((x + y, x.to_sympy() + y.to_sympy()), (x * y, x.to_sympy() * y.to_sympy())):
        assert sympy.simplify(got.to_sympy() - ref) == 0
        assert float(got) == pytest.approx(float(ref), rel=1e-14, abs=1e-12)


def test_real_gaunt_surd_matches_exact():
    from gaunt_elastic._exact import real_gaunt_surd

    for l1, l2, l3 in itertools.product(range(5), repeat=3):
        for m1 in range(-l1, l1 + 1):
            for m2 in range(-l2, l2 + 1):
                for m3 in range(-l3, l3 + 1):
                    got = real_gaunt_surd(l1, l2, l3, m1, m2, m3).to_sympy()
                    ref = real_gaunt(l1, m1, l2, m2, l3, m3, exact=True) * sympy.sqrt(sympy.pi)
                    assert sympy.simplify(got - ref) == 0


def test_selection_rule_ints_and_tensors_against_sympy():
    # gaunt_allowed (the one statement of App. D's rules) gives the same answer on ints and
    # on broadcast tensors, and is True wherever sympy's real Gaunt is non-zero (l <= 3).
    import torch
    from gaunt_elastic._exact import gaunt_allowed

    for l1, l2, l3 in itertools.product(range(4), repeat=3):
        m1 = torch.arange(-l1, l1 + 1).view(-1, 1, 1)
        m2 = torch.arange(-l2, l2 + 1).view(1, -1, 1)
        m3 = torch.arange(-l3, l3 + 1).view(1, 1, -1)
        mask = torch.as_tensor(gaunt_allowed(l1, l2, l3, m1, m2, m3))
        mask = mask.expand(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
        for a, b, c in itertools.product(
            range(-l1, l1 + 1), range(-l2, l2 + 1), range(-l3, l3 + 1)
        ):
            allowed = gaunt_allowed(l1, l2, l3, a, b, c)
            assert allowed == bool(mask[a + l1, b + l2, c + l3])
            if not allowed:
                assert sympy_real_gaunt(l1, l2, l3, a, b, c) == 0
