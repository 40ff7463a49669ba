"""The ``torch`` backend: the generated plain-torch code plus normalisation and r = 0 rule."""

from __future__ import annotations

import torch

from . import _generated_torch as gen


def _degrees(l_max: int, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(
        [l for l in range(l_max + 1) for _ in range(2 * l + 1)],
        dtype=like.dtype,
        device=like.device,
    )


def _unit(xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(u = x/|x|, |x|, origin mask) through the scaled norm (x / max|x_i|) / |x / max|x_i||.

    Scaling first keeps x² + y² + z² in [1, 3], so every finite non-zero vector gets its
    direction in float32 and float64 (no overflow at 1e155 / 1e20, no underflow at 1e-200 /
    1e-23). A NaN or inf coordinate gives a NaN row (max|x_i| is NaN or inf).
    """
    m = xyz.abs().amax(dim=-1, keepdim=True)
    zero = m == 0  # not ``m > 0``: a NaN row must stay NaN
    # Safe denominators keep autograd finite (0) at the origin.
    m_safe = torch.where(zero, torch.ones_like(m), m)
    s = xyz / m_safe
    n = torch.linalg.vector_norm(s, dim=-1, keepdim=True)
    n_safe = torch.where(zero, torch.ones_like(n), n)
    return s / n_safe, m_safe * n_safe, zero


def forward(xyz: torch.Tensor, l_max: int, normalize: bool) -> torch.Tensor:
    """Y [..., K] (standard, integral) of points [..., 3]; differentiable to any order."""
    if not normalize:
        x, y, z = xyz.unbind(-1)
        return torch.stack(gen.solid(x, y, z, x * x + y * y + z * z, l_max), dim=-1)
    u, _, zero = _unit(xyz)
    x, y, z = u.unbind(-1)
    out = torch.stack(gen.solid(x, y, z, 1.0, l_max), dim=-1)
    if l_max == 0:
        return out
    return torch.cat(
        [out[..., :1], torch.where(zero, torch.zeros_like(out[..., 1:]), out[..., 1:])], -1
    )


def forward_and_gradient(
    xyz: torch.Tensor, l_max: int, normalize: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Y [..., K], dY [..., 3, K]) from the generated gradient formulas; differentiable."""
    if not normalize:
        x, y, z = xyz.unbind(-1)
        out, gx, gy, gz = gen.solid_grad(x, y, z, x * x + y * y + z * z, l_max)
        return torch.stack(out, -1), torch.stack([torch.stack(g, -1) for g in (gx, gy, gz)], -2)
    u, r, zero = _unit(xyz)
    x, y, z = u.unbind(-1)
    out, gx, gy, gz = gen.solid_grad(x, y, z, 1.0, l_max)
    Y = torch.stack(out, -1)
    G = torch.stack([torch.stack(g, -1) for g in (gx, gy, gz)], -2)
    ls = _degrees(l_max, Y)
    dY = (G - ls * u.unsqueeze(-1) * Y.unsqueeze(-2)) / r.unsqueeze(-1)
    dY = torch.where(zero.unsqueeze(-1), torch.zeros_like(dY), dY)
    if l_max > 0:
        Y = torch.cat([Y[..., :1], torch.where(zero, torch.zeros_like(Y[..., 1:]), Y[..., 1:])], -1)
    return Y, dY
