"""Coupling coefficients of thesis Appendix A (real Clebsch-Gordan / Wigner 3j tensors)."""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from rsh.conventions import DEFAULT_CONVENTION, check_convention, check_degree

from ._exact import triangle, u_row, wigner_3j
from ._validate import check_float_dtype

__all__ = ["coupling", "coupling_sign"]


@functools.lru_cache(maxsize=64)
def _u_matrix(l: int) -> np.ndarray:
    """Unitary U of thesis eq. 3.2 as a complex [2l+1, 2l+1] array, from ``u_row``."""
    u = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    r = 1 / math.sqrt(2)
    for m in range(-l, l + 1):
        for mu, value in u_row(m):
            u[l + m, l + mu] = value * (r if m else 1)
    return u


@functools.lru_cache(maxsize=4096)
def _raw(l1: int, l2: int, l3: int) -> torch.Tensor:
    """Real invariant tensor U⊗U⊗U·3j (times -i when l1+l2+l3 is odd), float64."""
    w = torch.zeros(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1, dtype=torch.complex128)
    for m1 in range(-l1, l1 + 1):
        for m2 in range(max(-l2, -l3 - m1), min(l2, l3 - m1) + 1):
            sign, square = wigner_3j(l1, l2, l3, m1, m2, -m1 - m2)
            if sign:
                w[m1 + l1, m2 + l2, -m1 - m2 + l3] = sign * math.sqrt(square)
    # One index at a time, in numpy: small complex torch einsums are ~100x slower here.
    t = np.tensordot(w.numpy(), _u_matrix(l3), axes=([2], [1]))  # ijc
    t = np.tensordot(t, _u_matrix(l2), axes=([1], [1]))  # icb
    t = np.tensordot(t, _u_matrix(l1), axes=([0], [1]))  # cba
    inv = torch.from_numpy(np.ascontiguousarray(t.transpose(2, 1, 0)))
    # The invariant is real for even l1+l2+l3 and purely imaginary for odd: make it real.
    out = inv.real if (l1 + l2 + l3) % 2 == 0 else inv.imag
    return out / torch.linalg.norm(out)


def coupling_sign(l_out: int, l_in: int, l: int, *, convention: str = DEFAULT_CONVENTION) -> int:
    """Sign that ``coupling`` applies to the normalised tensor Re/Im(U⊗U⊗U·3j).

    The rule is ``(-1)**((l_out + l_in + l) // 2)`` for "standard" and "e3nn", times
    ``(-1)**(l_out + l_in + l)`` for "thesis" (its harmonics are (-1)^l times standard).
    For even ``l_out + l_in + l`` this makes the "standard" tensor a positive multiple of
    the real Gaunt tensor, because sign 3j(l_out l_in l; 0 0 0) = (-1)^((l_out+l_in+l)/2).
    The same rule reproduces ``e3nn.o3.wigner_3j(l_out, l_in, l)`` exactly, for odd sums
    too (verified for all l_out, l_in, l <= 10 in the tests).

    Parameters
    ----------
    l_out, l_in, l : int
        Degrees ``>= 0`` (output, input, filter) that obey the triangle rule, as in
        ``coupling``.
    convention : {"standard", "thesis", "e3nn"}
        Basis of the real harmonics.

    Returns
    -------
    int
        +1 or -1.

    Raises
    ------
    ValueError
        Degrees that are not ints >= 0 or break the triangle rule (no coupling exists).
    """
    l_out, l_in, l = _check_triangle(*_check_degrees(l_out, l_in, l))
    convention = check_convention(convention)
    s = l_out + l_in + l
    sign = -1 if (s // 2) % 2 else 1
    if convention == "thesis" and s % 2:
        sign = -sign
    return sign


def _check_degrees(l_out: object, l_in: object, l: object) -> tuple[int, int, int]:
    return check_degree(l_out, "l_out"), check_degree(l_in, "l_in"), check_degree(l, "l")


def _check_triangle(l_out: int, l_in: int, l: int) -> tuple[int, int, int]:
    if not triangle(l_out, l_in, l):
        raise ValueError(
            f"(l_out, l_in, l) = ({l_out}, {l_in}, {l}) violates the triangle rule "
            "|l_out - l_in| <= l <= l_out + l_in"
        )
    return l_out, l_in, l


def coupling(
    l_out: int,
    l_in: int,
    l: int,
    *,
    convention: str = DEFAULT_CONVENTION,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Coupling coefficients C[i, j, m] of thesis App. A, eq. A.1: Z_i = C_ijm F_j K_m.

    Parameters
    ----------
    l_out, l_in, l : int
        Degrees of output (index i), input (index j) and filter (index m); each ``>= 0``
        and ``|l_out - l_in| <= l <= l_out + l_in`` (triangle rule).
    convention : {"standard", "thesis", "e3nn"}
        Basis of all three indices: rsh's "standard" real harmonics (eq. 3.2), the "thesis"
        ones ((-1)^l times standard, eq. 3.3) or e3nn's. See ``coupling_sign`` for the sign.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor
        Shape [2l1+1, 2l2+1, 2l3+1], dimensionless, Frobenius norm 1, invariant under
        D^l_out ⊗ D^l_in ⊗ D^l for the convention's Wigner D matrices (eq. A.6).
        For even ``l_out + l_in + l`` and the "standard" convention it is the real Gaunt
        tensor divided by its norm.

    Raises
    ------
    TypeError
        For non-integer degrees or a non-floating ``dtype``.
    ValueError
        For negative degrees, an unknown ``convention`` or a triple that breaks the
        triangle rule.
    """
    l_out, l_in, l = _check_triangle(*_check_degrees(l_out, l_in, l))
    convention = check_convention(convention)
    check_float_dtype(dtype)
    # The three conventions share one invariant up to sign: thesis harmonics are (-1)^l times
    # standard ones, and e3nn's basis is the standard one rotated by the cyclic permutation
    # (x, y, z) -> (z, x, y), a proper rotation that leaves every invariant tensor unchanged.
    sign = coupling_sign(l_out, l_in, l, convention=convention)
    return (_raw(l_out, l_in, l) * sign).to(dtype)
