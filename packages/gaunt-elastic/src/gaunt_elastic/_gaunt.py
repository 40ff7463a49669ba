"""Real Gaunt coefficients: exact (sympy) single entries and fast float tables.

Float tables come from an exact quadrature (``rsh.sphere_quadrature``: Gauss-Legendre in
cos θ times a uniform grid in φ) of products of three real spherical harmonics evaluated
with ``rsh``; it is exact for the polynomial degree l1 + l2 + l3 of the integrand, so the
only error is float64 rounding. Entries that the selection rules (App. D properties 2-5) make zero
are set to exactly zero.
"""

from __future__ import annotations

import functools

import rsh
import sympy
import torch
from rsh.conventions import check_degree

from ._exact import check_lm, gaunt_allowed, real_gaunt_exact, real_gaunt_float
from ._validate import check_float_dtype

__all__ = ["gaunt_tables", "gaunt_tensor", "real_gaunt"]


def real_gaunt(
    l1: int, m1: int, l2: int, m2: int, l3: int, m3: int, *, exact: bool = False
) -> float | sympy.Expr:
    """Real Gaunt coefficient ``∫ Y_l1m1 Y_l2m2 Y_l3m3 dΩ`` (rsh "standard" harmonics).

    The "standard" real harmonics are those of thesis eq. 3.2 (Y_1 ∝ (y, z, x) with positive
    signs, orthonormal on the unit sphere). The "thesis" convention multiplies Y_l by (-1)^l,
    which cancels here because non-zero coefficients have even l1 + l2 + l3.

    Relation to sympy: ``sympy.physics.wigner.real_gaunt(l1, l2, l3, m1, m2, m3)`` uses
    harmonics that differ from ours by (-1)^m each, so it equals
    ``(-1)**(m1 + m2 + m3) * real_gaunt(l1, m1, l2, m2, l3, m3)``.

    Parameters
    ----------
    l1, m1, l2, m2, l3, m3 : int
        Degrees ``l >= 0`` and orders ``|m| <= l``.
    exact : bool
        Return an exact sympy expression (a surd divided by sqrt(pi)) instead of a float.

    Returns
    -------
    float or sympy.Expr
        Dimensionless coefficient.
    """
    l1, m1 = check_lm(l1, m1, "l1", "m1")
    l2, m2 = check_lm(l2, m2, "l2", "m2")
    l3, m3 = check_lm(l3, m3, "l3", "m3")
    if exact:
        return real_gaunt_exact(l1, l2, l3, m1, m2, m3)
    return real_gaunt_float(l1, l2, l3, m1, m2, m3)


@functools.lru_cache(maxsize=32)
def _sh_on_quadrature(l_max: int, degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    xyz, w = rsh.sphere_quadrature(degree)
    y = rsh.spherical_harmonics(
        xyz, l_max, normalize=True, normalization="integral", convention="standard"
    )
    return y.to(torch.float64), w


def _selection_mask(l1: int, l2: int, l3: int) -> torch.Tensor:
    """Boolean [2l1+1, 2l2+1, 2l3+1]: entries allowed by App. D (``gaunt_allowed``)."""
    m1 = torch.arange(-l1, l1 + 1).view(-1, 1, 1)
    m2 = torch.arange(-l2, l2 + 1).view(1, -1, 1)
    m3 = torch.arange(-l3, l3 + 1).view(1, 1, -1)
    mask = gaunt_allowed(l1, l2, l3, m1, m2, m3)
    return mask.expand(2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)


_DENSE_L_MAX = 10


def _table_l_max(l: int) -> int:
    # One quadrature/SH evaluation serves every block up to this degree (>= 10, so that all
    # the blocks a network typically needs share a single rsh call).
    return max(10, l)


@functools.lru_cache(maxsize=4096)
def _gaunt_block(l1: int, l2: int, l3: int) -> torch.Tensor:
    mask = _selection_mask(l1, l2, l3)
    if not mask.any():
        return torch.zeros(mask.shape, dtype=torch.float64)
    l_max = _table_l_max(max(l1, l2, l3))
    y, w = _sh_on_quadrature(l_max, 3 * l_max)
    y1 = y[:, l1 * l1 : (l1 + 1) ** 2]
    y2 = y[:, l2 * l2 : (l2 + 1) ** 2]
    y3 = y[:, l3 * l3 : (l3 + 1) ** 2] * w[:, None]
    # [d1*d2, P] @ [P, d3]: one matmul (a 3-operand einsum is much slower here).
    pair = (y1[:, :, None] * y2[:, None, :]).reshape(y.shape[0], -1)
    g = (pair.T @ y3).reshape(mask.shape)
    return torch.where(mask, g, torch.zeros((), dtype=g.dtype))


def _check_rsh_range(l: int, name: str) -> None:
    if l > rsh.L_MAX:
        raise ValueError(
            f"{name} must be <= {rsh.L_MAX} (rsh.L_MAX, the largest degree the float tables "
            f"can evaluate), got {name}={l}; use real_gaunt(..., exact=True) beyond that"
        )


def gaunt_tensor(l1: int, l2: int, l3: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """All real Gaunt coefficients of one (l1, l2, l3) block.

    Parameters
    ----------
    l1, l2, l3 : int
        Degrees, each ``>= 0``.
    dtype : torch.dtype
        Floating dtype of the result (computed in float64, cached per block).

    Returns
    -------
    torch.Tensor
        Shape [2l1+1, 2l2+1, 2l3+1]; entry [m1+l1, m2+l2, m3+l3] is
        ``real_gaunt(l1, m1, l2, m2, l3, m3)``. Exactly zero where App. D forbids.
    """
    l1, l2, l3 = (check_degree(l, f"l{i}") for i, l in enumerate((l1, l2, l3), start=1))
    for i, l in enumerate((l1, l2, l3), start=1):
        _check_rsh_range(l, f"l{i}")
    check_float_dtype(dtype)
    if max(l1, l2, l3) <= _DENSE_L_MAX:
        # Slicing the one dense table (built in one matmul) beats ~1000 small products.
        g = _dense_tables(_DENSE_L_MAX)
        block = g[l1 * l1 : (l1 + 1) ** 2, l2 * l2 : (l2 + 1) ** 2, l3 * l3 : (l3 + 1) ** 2]
    else:
        block = _gaunt_block(l1, l2, l3)
    return block.to(dtype, copy=True)


@functools.lru_cache(maxsize=8)
def _dense_tables(l_max: int) -> torch.Tensor:
    n = (l_max + 1) ** 2
    y, w = _sh_on_quadrature(l_max, 3 * l_max)
    # One matmul: [n*n, P] @ [P, n] instead of ~l_max³ small einsums.
    pair = (y[:, :, None] * y[:, None, :]).reshape(y.shape[0], n * n)
    g = (pair.T @ (y * w[:, None])).reshape(n, n, n)
    ls = torch.cat([torch.full((2 * l + 1,), l) for l in range(l_max + 1)])
    ms = torch.cat([torch.arange(-l, l + 1) for l in range(l_max + 1)])
    mask = gaunt_allowed(
        ls.view(-1, 1, 1),
        ls.view(1, -1, 1),
        ls.view(1, 1, -1),
        ms.view(-1, 1, 1),
        ms.view(1, -1, 1),
        ms.view(1, 1, -1),
    )
    return torch.where(mask, g, torch.zeros((), dtype=g.dtype))


def gaunt_tables(l_max: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Dense table of all real Gaunt coefficients with l1, l2, l3 <= ``l_max``.

    Parameters
    ----------
    l_max : int
        Largest degree, ``>= 0``.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor
        Shape [n, n, n] with ``n = (l_max+1)²``, l-major index ``l*l + l + m`` on each axis.
    """
    l_max = check_degree(l_max, "l_max")
    _check_rsh_range(l_max, "l_max")
    return _dense_tables(l_max).to(check_float_dtype(dtype), copy=True)
