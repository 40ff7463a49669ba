"""Exact Wigner 3j symbols and Gaunt coefficients in integer/rational arithmetic.

A 3j symbol is ``sign * sqrt(q)`` with ``q`` rational; we keep that pair (``Surd``) so
that exact sympy expressions and correctly rounded floats come from the same numbers,
without calling sympy per entry.
"""

from __future__ import annotations

import functools
import math
import operator
from fractions import Fraction

import sympy

# A signed square root of a rational: value = sign * sqrt(square).
Surd = tuple[int, Fraction]

_SQRT_HALF_SQUARE = Fraction(1, 2)


def check_lm(l: object, m: object, lname: str = "l", mname: str = "m") -> None:
    """Raise a clear error unless ``l >= 0`` and ``|m| <= l`` are integers."""
    for name, value in ((lname, l), (mname, m)):
        try:
            operator.index(value)  # int, numpy integer, sympy Integer
        except TypeError:
            value_ok = False
        else:
            value_ok = not isinstance(value, bool)
        if not value_ok:
            raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if l < 0:  # type: ignore[operator]
        raise ValueError(f"{lname} must be >= 0, got {lname}={l}")
    if abs(m) > l:  # type: ignore[arg-type, operator]
        raise ValueError(f"{mname} must satisfy |{mname}| <= {lname}={l}, got {mname}={m}")


def check_l(l: object, name: str = "l") -> None:
    """Raise a clear error unless ``l`` is a non-negative int."""
    check_lm(l, 0, name, "m")


def triangle(l1: int, l2: int, l3: int) -> bool:
    """True when ``|l1 - l2| <= l3 <= l1 + l2``."""
    return abs(l1 - l2) <= l3 <= l1 + l2


@functools.cache
def wigner_3j(l1: int, l2: int, l3: int, m1: int, m2: int, m3: int) -> Surd:
    """Exact Wigner 3j symbol (Racah's formula) as ``(sign, square)``; ``(0, 0)`` when zero."""
    if m1 + m2 + m3 != 0 or not triangle(l1, l2, l3):
        return (0, Fraction(0))
    if abs(m1) > l1 or abs(m2) > l2 or abs(m3) > l3:
        return (0, Fraction(0))
    f = math.factorial
    delta = Fraction(f(l1 + l2 - l3) * f(l1 - l2 + l3) * f(-l1 + l2 + l3), f(l1 + l2 + l3 + 1))
    prefactor = f(l1 + m1) * f(l1 - m1) * f(l2 + m2) * f(l2 - m2) * f(l3 + m3) * f(l3 - m3)
    k_min = max(0, l2 - l3 - m1, l1 - l3 + m2)
    k_max = min(l1 + l2 - l3, l1 - m1, l2 + m2)
    dens = [
        f(k)
        * f(l3 - l2 + k + m1)
        * f(l3 - l1 + k - m2)
        * f(l1 + l2 - l3 - k)
        * f(l1 - k - m1)
        * f(l2 - k + m2)
        for k in range(k_min, k_max + 1)
    ]
    if not dens:
        return (0, Fraction(0))
    # Integer sum over a common denominator: much faster than adding Fractions.
    common = math.lcm(*dens)
    numerator = sum((-1) ** (k_min + i) * (common // den) for i, den in enumerate(dens))
    total = Fraction(numerator, common)
    if total == 0:
        return (0, Fraction(0))
    sign = (-1) ** ((l1 - l2 - m3) % 2) * (1 if total > 0 else -1)
    return (sign, delta * prefactor * total * total)


@functools.cache
def complex_gaunt_over_sqrt_pi(l1: int, l2: int, l3: int, m1: int, m2: int, m3: int) -> Surd:
    """``sqrt(pi) * ∫ Y_l1^m1 Y_l2^m2 Y_l3^m3 dΩ`` (Condon-Shortley complex harmonics)."""
    s0, q0 = wigner_3j(l1, l2, l3, 0, 0, 0)
    s1, q1 = wigner_3j(l1, l2, l3, m1, m2, m3)
    if s0 == 0 or s1 == 0:
        return (0, Fraction(0))
    return (s0 * s1, Fraction((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1), 4) * q0 * q1)


def _real_to_complex_row(m: int) -> list[tuple[int, complex]]:
    """Row ``m`` of the unitary U of thesis eq. 3.2: Y_lm(real) = sum_mu U[m, mu] Y_l^mu.

    Entries are returned without the common 1/sqrt(2) factor of m != 0 (complex ints).
    With Condon-Shortley complex harmonics this gives the "standard" real harmonics:
    Y_1 is proportional to (y, z, x) with positive signs.
    """
    if m == 0:
        return [(0, 1)]
    mu = abs(m)
    if m > 0:
        return [(mu, (-1) ** mu), (-mu, 1)]
    return [(-mu, 1j), (mu, -1j * (-1) ** mu)]


@functools.cache
def real_gaunt_terms(
    l1: int, l2: int, l3: int, m1: int, m2: int, m3: int
) -> tuple[tuple[Fraction, Fraction], ...]:
    """``sqrt(pi) * real Gaunt`` as a sum of ``coefficient * sqrt(square)`` terms.

    Sums the complex Gaunt coefficients through U (eq. 3.2) exactly; the factor
    ``2**(-k/2)`` (k = number of non-zero m) is folded into the squares.
    """
    if (l1 + l2 + l3) % 2 or not triangle(l1, l2, l3):
        return ()
    k = sum(1 for m in (m1, m2, m3) if m != 0)
    groups: dict[Fraction, complex] = {}
    for mu1, u1 in _real_to_complex_row(m1):
        for mu2, u2 in _real_to_complex_row(m2):
            mu3 = -mu1 - mu2
            for nu3, u3 in _real_to_complex_row(m3):
                if nu3 != mu3:
                    continue
                sign, square = complex_gaunt_over_sqrt_pi(l1, l2, l3, mu1, mu2, mu3)
                if sign == 0:
                    continue
                groups[square] = groups.get(square, 0) + sign * u1 * u2 * u3
    terms = []
    for square, coef in groups.items():
        # The imaginary parts cancel exactly (Gaunt coefficients of real functions are real).
        assert abs(coef.imag) < 1e-9, coef
        c = round(coef.real)
        if c != 0:
            terms.append((Fraction(c), square / 2**k))
    return tuple(terms)


def real_gaunt_exact(l1: int, l2: int, l3: int, m1: int, m2: int, m3: int) -> sympy.Expr:
    """Exact real Gaunt coefficient as a sympy expression (surd / sqrt(pi))."""
    total = sympy.Integer(0)
    for c, square in real_gaunt_terms(l1, l2, l3, m1, m2, m3):
        total += sympy.Rational(c.numerator, c.denominator) * sympy.sqrt(
            sympy.Rational(square.numerator, square.denominator)
        )
    return total / sympy.sqrt(sympy.pi)


def real_gaunt_float(l1: int, l2: int, l3: int, m1: int, m2: int, m3: int) -> float:
    """Real Gaunt coefficient as a float computed from the exact rational terms."""
    total = 0.0
    for c, square in real_gaunt_terms(l1, l2, l3, m1, m2, m3):
        total += float(c) * math.sqrt(square)
    return total / math.sqrt(math.pi)
