"""Plain-torch oracle for the real spherical harmonics (standard convention, integral norm).

Independent of the generated code: the associated Legendre functions are built with the
textbook recurrences (thesis eq. 3.4-3.6) and the normalisation constants from factorials
evaluated at run time, so the tests can compare the generated backends against it.
"""

from __future__ import annotations

import math

import torch

__all__ = ["reference_sh", "reference_solid"]


def _norm(l: int, m: int) -> float:
    """sqrt((2l+1)/(4π) (l-m)!/(l+m)!), times sqrt(2) for m != 0 (real harmonics)."""
    n = math.sqrt(
        (2 * l + 1) / (4 * math.pi) * math.exp(math.lgamma(l - m + 1) - math.lgamma(l + m + 1))
    )
    return n * math.sqrt(2.0) if m else n


def reference_solid(xyz: torch.Tensor, l_max: int) -> torch.Tensor:
    """Solid harmonics r^l Y_lm (standard convention, integral norm), shape [..., (l_max+1)^2].

    Uses the homogeneous recurrences for Q_l^m(z, r^2) = r^(l-m) d^m P_l / dz^m (z/r):
    Q_m^m = (2m-1)!!, Q_{m+1}^m = (2m+1) z Q_m^m,
    (l-m) Q_l^m = (2l-1) z Q_{l-1}^m - (l+m-1) r^2 Q_{l-2}^m,
    and (x + i y)^m = C_m + i S_m.
    """
    x, y, z = xyz.unbind(-1)
    r2 = x * x + y * y + z * z
    cos = [torch.ones_like(x)]
    sin = [torch.zeros_like(x)]
    for _ in range(l_max):
        c, s = cos[-1], sin[-1]
        cos.append(x * c - y * s)
        sin.append(x * s + y * c)
    out: list[torch.Tensor | None] = [None] * (l_max + 1) ** 2
    for m in range(l_max + 1):
        dfact = 1.0
        for k in range(1, 2 * m, 2):
            dfact *= k
        q_prev = torch.full_like(x, dfact)
        q_prev2 = q_prev  # unused until l = m + 2, when it holds Q_m^m
        for l in range(m, l_max + 1):
            if l == m:
                q = q_prev
            elif l == m + 1:
                q = (2 * m + 1) * z * q_prev
                q_prev2, q_prev = q_prev, q
            else:
                q = ((2 * l - 1) * z * q_prev - (l + m - 1) * r2 * q_prev2) / (l - m)
                q_prev2, q_prev = q_prev, q
            n = _norm(l, m)
            if m == 0:
                out[l * l + l] = n * q
            else:
                out[l * l + l + m] = n * q * cos[m]
                out[l * l + l - m] = n * q * sin[m]
    return torch.stack(out, dim=-1)  # type: ignore[arg-type]


def reference_sh(xyz: torch.Tensor, l_max: int, normalize: bool = True) -> torch.Tensor:
    """Y_lm(x/|x|) (normalize=True) or r^l Y_lm(x) (normalize=False); standard, integral.

    At r = 0 with normalize=True, Y_00 keeps its constant and every l > 0 entry is 0; a NaN
    or inf coordinate gives NaN for every l > 0 entry.
    """
    if not normalize:
        return reference_solid(xyz, l_max)
    # Scale by 2^-e, e the exponent of max |x_i| (exact: no rounding), so that the sum of
    # squares neither overflows nor underflows; a NaN or inf coordinate gives a NaN row.
    m = xyz.abs().amax(dim=-1, keepdim=True)
    zero = m == 0  # (not ``m > 0``: a NaN row must stay NaN)
    finite = torch.isfinite(m) & ~zero
    _, e = torch.frexp(torch.where(finite, m, torch.ones_like(m)))
    half = torch.div(e, 2, rounding_mode="floor")
    scaled = torch.ldexp(torch.ldexp(xyz, -half), half - e)  # two steps: 2^-e may overflow
    scaled = torch.where(torch.isfinite(m), scaled, torch.full_like(xyz, float("nan")))
    r = torch.linalg.vector_norm(scaled, dim=-1, keepdim=True)
    # where() with a safe denominator keeps the gradient finite (0) at r = 0.
    u = scaled / torch.where(zero, torch.ones_like(r), r)
    y = reference_solid(u, l_max)
    keep = torch.ones(y.shape[-1], dtype=torch.bool, device=y.device)
    keep[1:] = False
    return torch.where(zero & ~keep, torch.zeros_like(y), y)
