"""Product quadrature on the unit sphere: Gauss-Legendre in cos(θ) x uniform in φ."""

from __future__ import annotations

import functools
import math

import torch

from ._conventions import check_degree

__all__ = ["MAX_QUADRATURE_DEGREE", "gauss_legendre", "sphere_quadrature"]

#: Largest ``degree`` of :func:`sphere_quadrature` (513 x 1025 points, 12 MB in float64).
MAX_QUADRATURE_DEGREE = 1024


@functools.lru_cache(maxsize=64)
def _gauss_legendre(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if n == 1:
        return torch.zeros(1, dtype=torch.float64), torch.full((1,), 2.0, dtype=torch.float64)
    # Golub-Welsch: the nodes are the eigenvalues of the Jacobi matrix of the Legendre
    # recurrence, the weights 2 x (first component of the eigenvector)^2.
    k = torch.arange(1, n, dtype=torch.float64)
    off = k / torch.sqrt(4 * k * k - 1)
    jacobi = torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vecs = torch.linalg.eigh(jacobi)
    weights = 2 * vecs[0] ** 2
    return nodes, weights


def gauss_legendre(n: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes [n] and weights [n] on [-1, 1], exact for polynomials of degree <= 2n - 1."""
    n = check_degree(n, "n")
    if n == 0:
        raise ValueError("n must be >= 1, got 0")
    nodes, weights = _gauss_legendre(n)
    return nodes.to(dtype), weights.to(dtype)


@functools.lru_cache(maxsize=64)
def _sphere_quadrature(degree: int) -> tuple[torch.Tensor, torch.Tensor]:
    n_theta = degree // 2 + 1
    n_phi = degree + 1
    z, wz = _gauss_legendre(n_theta)
    phi = torch.arange(n_phi, dtype=torch.float64) * (2 * math.pi / n_phi)
    s = torch.sqrt(torch.clamp(1 - z * z, min=0.0))
    pts = torch.stack(
        [
            s[:, None] * torch.cos(phi)[None, :],
            s[:, None] * torch.sin(phi)[None, :],
            z[:, None].expand(n_theta, n_phi),
        ],
        dim=-1,
    ).reshape(-1, 3)
    w = (wz[:, None] * (2 * math.pi / n_phi)).expand(n_theta, n_phi).reshape(-1)
    return pts, w.contiguous()


def sphere_quadrature(
    degree: int,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points on the unit sphere and weights that integrate polynomials of ``degree`` exactly.

    Gauss-Legendre with ``degree // 2 + 1`` nodes in z = cos θ times ``degree + 1`` equally
    spaced φ: ``Σ_q w_q p(x_q) = ∫_{S²} p dΩ`` for every polynomial p in (x, y, z) of total
    degree <= ``degree`` (e.g. a product of harmonics of degrees l1 + l2 + l3 <= degree).

    Parameters
    ----------
    degree : int
        0 <= degree <= ``MAX_QUADRATURE_DEGREE`` (1024).
    dtype : torch.dtype
        Of the returned tensors (computed in float64).
    device : torch.device or str, optional

    Returns
    -------
    points : Tensor [Q, 3]
        Unit vectors (dimensionless), Q = (degree // 2 + 1) (degree + 1).
    weights : Tensor [Q]
        Solid-angle weights in steradian, summing to 4π. Fresh tensors (safe to modify).
    """
    degree = check_degree(degree, "degree", l_max=MAX_QUADRATURE_DEGREE)
    pts, w = _sphere_quadrature(degree)
    return (
        pts.to(dtype=dtype, device=device, copy=True),
        w.to(dtype=dtype, device=device, copy=True),
    )
