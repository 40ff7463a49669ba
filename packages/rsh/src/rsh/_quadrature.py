"""Product quadrature on the sphere: Gauss-Legendre in cos(θ) x uniform in φ."""

from __future__ import annotations

import math

import torch


def gauss_legendre(n: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights on [-1, 1], exact for polynomials of degree <= 2n-1 (Golub-Welsch)."""
    if n == 1:
        return torch.zeros(1, dtype=dtype), torch.full((1,), 2.0, dtype=dtype)
    k = torch.arange(1, n, dtype=torch.float64)
    off = k / torch.sqrt(4 * k * k - 1)
    jacobi = torch.diag(off, 1) + torch.diag(off, -1)
    nodes, vecs = torch.linalg.eigh(jacobi)
    weights = 2 * vecs[0] ** 2
    return nodes.to(dtype), weights.to(dtype)


def sphere_quadrature(
    degree: int, dtype: torch.dtype = torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points [Q, 3] on the unit sphere and weights [Q] summing to 4π.

    Exact for every polynomial of total degree <= ``degree`` restricted to the sphere.
    """
    n_theta = degree // 2 + 1
    n_phi = degree + 1
    z, wz = gauss_legendre(n_theta)
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
    return pts.to(dtype), w.to(dtype)
