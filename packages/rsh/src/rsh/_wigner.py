"""Wigner D matrices of the real spherical harmonics, exact by quadrature."""

from __future__ import annotations

import functools

import torch

from ._conventions import DEFAULT_CONVENTION, check_convention, check_degree, to_standard_points
from ._quadrature import sphere_quadrature
from ._reference import reference_sh
from ._validate import check_float_tensor

__all__ = ["WIGNER_L_MAX", "check_orthogonal", "wigner_D"]

#: Largest degree of :func:`wigner_D` (twice ``rsh.L_MAX``): the quadrature has
#: (l+1)(2l+1) points and the cost grows as l^4; l = 32 takes ~0.15 s per call on one core.
WIGNER_L_MAX = 32


def _tolerance(dtype: torch.dtype) -> float:
    return 1e-6 if dtype == torch.float64 else 1e-3


def check_orthogonal(R: torch.Tensor, name: str = "R") -> torch.Tensor:
    """Check that every matrix of R [..., 3, 3] is finite and orthogonal (det = ±1).

    Tolerance on max |R Rᵀ - I|: 1e-6 in float64, 1e-3 in lower precisions.

    Raises
    ------
    ValueError
        Naming the first failing matrix (batch index) and its deviation.
    """
    R = check_float_tensor(name, R, (3, 3))
    if R.numel() == 0:
        return R
    Rd = R.detach().to(torch.float64)
    eye = torch.eye(3, dtype=torch.float64, device=R.device)
    dev = (Rd @ Rd.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2))
    bad = ~(dev <= _tolerance(R.dtype))  # NaN/inf count as bad
    if bool(bad.any()):
        idx = [int(i) for i in torch.nonzero(bad)[0].tolist()]
        where = f" at batch index {tuple(idx)}" if idx else ""
        value = dev[tuple(idx)].item() if idx else dev.item()
        raise ValueError(
            f"{name} must hold orthogonal 3x3 matrices (rotations, det +1, or improper "
            f"rotations, det -1): max |R R^T - I| = {value:.3g}{where} exceeds "
            f"{_tolerance(R.dtype):g}"
        )
    return R


@functools.lru_cache(maxsize=2 * (WIGNER_L_MAX + 1))
def _basis(l: int, convention: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(points [Q, 3], weights [Q], weights x Y_l(points) [Q, 2l+1]) on the CPU, float64."""
    pts, w = sphere_quadrature(2 * l)
    y = _y_l(pts, l, convention)
    return pts, w, w[:, None] * y


def _y_l(points: torch.Tensor, l: int, convention: str) -> torch.Tensor:
    """Y_l in the requested basis (integral normalization; the sign (-1)^l of thesis cancels)."""
    return reference_sh(to_standard_points(points, convention), l)[..., l * l : (l + 1) ** 2]


def wigner_D(l: int, R: torch.Tensor, *, convention: str = DEFAULT_CONVENTION) -> torch.Tensor:
    """Matrix D^l(R) with Y_l(R @ x) == D^l(R) @ Y_l(x) for every unit vector x.

    D_ij = ∫ Y_i(R x) Y_j(x) dΩ, evaluated with a product quadrature exact for degree 2l,
    so D is exact to rounding. Orthogonal, and D(R1 R2) = D(R1) D(R2).

    Improper matrices (det -1) are accepted: then D^l(R) = (-1)^l D^l(-R), the action on
    the harmonics themselves (which have parity (-1)^l). For irreps of other parities use
    :meth:`rsh.Irreps.D`.

    Parameters
    ----------
    l : int
        Degree, 0 <= l <= ``WIGNER_L_MAX`` (32).
    R : Tensor [..., 3, 3]
        Orthogonal matrices (max |R Rᵀ - I| <= 1e-6 in float64, 1e-3 in float32), float32 or
        float64; batched.
    convention : {"standard", "thesis", "e3nn"}
        Basis of Y_l (thesis gives the same D as standard).

    Returns
    -------
    Tensor [..., 2l+1, 2l+1], dtype and device of R.

    Raises
    ------
    TypeError, ValueError
        Non-integer or out-of-range ``l``, a bad convention, R not [..., 3, 3] floating, or
        R not orthogonal (a shear, zeros, NaN).
    """
    l = check_degree(l, "l", l_max=WIGNER_L_MAX)
    convention = check_convention(convention)
    R = check_orthogonal(R, "R")
    pts, _, wy = _basis(l, convention)
    pts = pts.to(R.device)
    wy = wy.to(R.device)
    rotated = torch.einsum("...ij,qj->...qi", R.to(torch.float64), pts)
    yr = _y_l(rotated, l, convention)  # [..., Q, 2l+1]
    D = torch.einsum("...qi,qj->...ij", yr, wy)
    return D.to(R.dtype)
