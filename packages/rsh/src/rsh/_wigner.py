"""Wigner D matrices of the real spherical harmonics, exact by quadrature."""

from __future__ import annotations

import torch

from ._quadrature import sphere_quadrature
from ._reference import reference_sh
from ._validate import CONVENTIONS, check_choice, check_float_tensor

_E3NN_PERM = [2, 0, 1]


def _y_l(points: torch.Tensor, l: int, convention: str) -> torch.Tensor:
    """Y_l in the requested basis (integral normalization; the sign (-1)^l of thesis cancels)."""
    if convention == "e3nn":
        points = points[..., _E3NN_PERM]
    return reference_sh(points, l)[..., l * l : (l + 1) ** 2]


def wigner_D(l: int, R: torch.Tensor, *, convention: str = "standard") -> torch.Tensor:
    """Matrix D^l(R) with Y_l(R @ x) == D^l(R) @ Y_l(x) for every unit vector x.

    D_ij = ∫ Y_i(R x) Y_j(x) dΩ, evaluated with a product quadrature exact for degree 2l,
    so D is exact to rounding. Orthogonal, and D(R1 R2) = D(R1) D(R2).

    Parameters
    ----------
    l : int
        Degree, l >= 0 (any l; the quadrature grows as O(l²) points).
    R : Tensor [..., 3, 3]
        Rotation matrices (proper, det +1), float32 or float64; batched.
    convention : {"standard", "thesis", "e3nn"}
        Basis of Y_l (thesis gives the same D as standard).

    Returns
    -------
    Tensor [..., 2l+1, 2l+1], dtype and device of R.
    """
    if isinstance(l, bool) or not isinstance(l, int):
        raise TypeError(f"l must be an int, got {type(l).__name__} {l!r}")
    if l < 0:
        raise ValueError(f"l must be >= 0, got {l}")
    R = check_float_tensor("R", R, (3, 3))
    check_choice("convention", convention, CONVENTIONS)
    pts, w = sphere_quadrature(2 * l)
    pts = pts.to(R.device)
    w = w.to(R.device)
    Rd = R.to(torch.float64)
    y = _y_l(pts, l, convention)  # [Q, 2l+1]
    rotated = torch.einsum("...ij,qj->...qi", Rd, pts)
    yr = _y_l(rotated, l, convention)  # [..., Q, 2l+1]
    D = torch.einsum("...qi,q,qj->...ij", yr, w, y)
    return D.to(R.dtype)
