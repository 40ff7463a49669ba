"""Exact Wigner 3j symbols and Gaunt coefficients in integer/rational arithmetic.

A 3j symbol is ``sign * sqrt(q)`` with ``q`` rational; we keep that pair (``Surd``) so
that exact sympy expressions and correctly rounded floats come from the same numbers,
without calling sympy per entry.
"""

from __future__ import annotations

import functools
import math
import numbers
from fractions import Fraction
from typing import Any

import sympy
from rsh.conventions import check_degree

# A signed square root of a rational: value = sign * sqrt(square).
Surd = tuple[int, Fraction]

_SQRT_HALF_SQUARE = Fraction(1, 2)


def check_lm(l: object, m: object, lname: str = "l", mname: str = "m") -> tuple[int, int]:
    """Return ``(l, m)`` as ints if ``l >= 0`` and ``|m| <= l`` are integers.

    ``l`` is checked by ``rsh.conventions.check_degree`` (the same exception types as in
    every package: ``TypeError`` for non-integers including bool and float, ``ValueError``
    for ``l < 0``); ``m`` likewise, with ``ValueError`` for ``|m| > l``.
    """
    l_int = check_degree(l, lname)
    if isinstance(m, bool) or not isinstance(m, numbers.Integral):
        raise TypeError(f"{mname} must be an int, got {type(m).__name__} {m!r}")
    m_int = int(m)
    if abs(m_int) > l_int:
        raise ValueError(f"{mname} must satisfy |{mname}| <= {lname}={l_int}, got {mname}={m_int}")
    return l_int, m_int


def triangle(l1: Any, l2: Any, l3: Any) -> Any:
    """``|l1 - l2| <= l3 <= l1 + l2`` (App. D property 3), for ints or integer tensors."""
    return (abs(l1 - l2) <= l3) & (l3 <= l1 + l2)


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


def u_row(m: int) -> list[tuple[int, complex]]:
    """Row ``m`` of the unitary U of thesis eq. 3.2: real Y_lm = sum_mu U[m, mu] Y_l^mu.

    The one definition of U in this package (``coupling`` builds its matrices from it).
    Entries are returned as ``(mu, u)`` without the common factor 1/sqrt(2) of the rows
    m != 0 (``u`` is a complex integer). With Condon-Shortley complex harmonics this gives
    the "standard" real harmonics: Y_1 is proportional to (y, z, x) with positive signs.
    """
    if m == 0:
        return [(0, 1)]
    mu = abs(m)
    if m > 0:
        return [(mu, (-1) ** mu), (-mu, 1)]
    return [(-mu, 1j), (mu, -1j * (-1) ** mu)]


def gaunt_allowed(l1: Any, l2: Any, l3: Any, m1: Any, m2: Any, m3: Any) -> Any:
    """App. D selection rules: False where properties 2-4 (or the m-sum rule) force zero.

    The one statement of the rules in this package. Works on Python ints (returns a bool)
    and on broadcastable integer tensors (returns a bool tensor): the real Gaunt
    coefficient can be non-zero only if l1 + l2 + l3 is even (property 4), the triangle
    rule holds (property 3), the number of negative m is even (property 2), and one |m|
    is the sum of the other two (the complex coefficients need mu1 + mu2 + mu3 = 0).
    Property 5 (|m| <= l) is the caller's range check.
    """
    a1, a2, a3 = abs(m1), abs(m2), abs(m3)
    negatives = (m1 < 0) * 1 + (m2 < 0) * 1 + (m3 < 0) * 1
    return (
        ((l1 + l2 + l3) % 2 == 0)
        & triangle(l1, l2, l3)
        & (negatives % 2 == 0)
        & ((a1 == a2 + a3) | (a2 == a1 + a3) | (a3 == a1 + a2))
    )


@functools.cache
def real_gaunt_terms(
    l1: int, l2: int, l3: int, m1: int, m2: int, m3: int
) -> tuple[tuple[Fraction, Fraction], ...]:
    """``sqrt(pi) * real Gaunt`` as a sum of ``coefficient * sqrt(square)`` terms.

    Sums the complex Gaunt coefficients through U (eq. 3.2) exactly; the factor
    ``2**(-k/2)`` (k = number of non-zero m) is folded into the squares.
    """
    if not gaunt_allowed(l1, l2, l3, m1, m2, m3):
        return ()
    k = sum(1 for m in (m1, m2, m3) if m != 0)
    groups: dict[Fraction, complex] = {}
    for mu1, u1 in u_row(m1):
        for mu2, u2 in u_row(m2):
            mu3 = -mu1 - mu2
            for nu3, u3 in u_row(m3):
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


@functools.cache
def _square_split(n: int) -> tuple[int, int]:
    """``n = s² k`` with ``k`` squarefree: returns ``(s, k)`` (n >= 1)."""
    s, k, p = 1, 1, 2
    while p * p <= n:
        while n % (p * p) == 0:
            n //= p * p
            s *= p
        if n % p == 0:
            n //= p
            k *= p
        p += 1
    return s, k * n


class SurdSum:
    """Exact real number ``sum_k c_k sqrt(k)`` (rational c_k, squarefree integer k > 0).

    A tiny exact arithmetic (sums and products) for the elastic T matrix: it is far faster
    than sympy, and both the sympy matrix and the float tensor are rendered from it.
    """

    __slots__ = ("terms",)

    def __init__(self, terms: dict[int, Fraction] | None = None) -> None:
        self.terms = {k: c for k, c in (terms or {}).items() if c != 0}

    @classmethod
    def from_square_terms(cls, pairs: tuple[tuple[Fraction, Fraction], ...]) -> SurdSum:
        """From ``sum c * sqrt(square)`` with rational squares (``real_gaunt_terms``)."""
        out: dict[int, Fraction] = {}
        for c, square in pairs:
            # sqrt(p/q) = sqrt(p q) / q = s sqrt(k) / q
            s, k = _square_split(square.numerator * square.denominator)
            out[k] = out.get(k, Fraction(0)) + c * Fraction(s, square.denominator)
        return cls(out)

    def __add__(self, other: SurdSum) -> SurdSum:
        out = dict(self.terms)
        for k, c in other.terms.items():
            out[k] = out.get(k, Fraction(0)) + c
        return SurdSum(out)

    def __mul__(self, other: SurdSum) -> SurdSum:
        out: dict[int, Fraction] = {}
        for k1, c1 in self.terms.items():
            for k2, c2 in other.terms.items():
                # sqrt(k1) sqrt(k2) = g sqrt(k1 k2 / g²), g = gcd: k1 k2 / g² is squarefree.
                g = math.gcd(k1, k2)
                k = (k1 // g) * (k2 // g)
                out[k] = out.get(k, Fraction(0)) + c1 * c2 * g
        return SurdSum(out)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def __float__(self) -> float:
        return math.fsum(c.numerator / c.denominator * math.sqrt(k) for k, c in self.terms.items())

    def to_sympy(self) -> sympy.Expr:
        """The same number as an exact sympy expression."""
        return sympy.Add(
            *(
                sympy.Rational(c.numerator, c.denominator) * sympy.sqrt(k)
                for k, c in sorted(self.terms.items())
            )
        )


@functools.cache
def real_gaunt_surd(l1: int, l2: int, l3: int, m1: int, m2: int, m3: int) -> SurdSum:
    """``sqrt(pi) * real Gaunt`` as an exact :class:`SurdSum`."""
    return SurdSum.from_square_terms(real_gaunt_terms(l1, l2, l3, m1, m2, m3))
