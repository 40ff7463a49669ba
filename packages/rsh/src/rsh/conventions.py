"""The bases of real spherical harmonics used across the xtalnet packages, defined once.

Every package takes ``convention=`` with these values and the default
:data:`DEFAULT_CONVENTION` (``"standard"``):

- ``"standard"``: z is the polar axis, m > 0 ∝ cos(mφ), m < 0 ∝ sin(|m|φ); the l = 1 block is
  ∝ (y, z, x) (the Wikipedia table; what sphericart computes).
- ``"thesis"``: (-1)^l x standard (thesis eq. 3.3), see :func:`degree_sign`.
- ``"e3nn"``: the standard harmonics evaluated at the cyclically permuted point (z, x, y)
  (:data:`E3NN_PERMUTATION`); e3nn's polar axis is y and its l = 1 block is (x, y, z).
  No signs are left over.

Basis changes between conventions are orthogonal matrices per degree
(:func:`change_of_basis`). Degrees are checked with :func:`check_degree`, so the same bad
``l`` raises the same exception type in every package.
"""

from __future__ import annotations

import torch

from ._conventions import (
    CONVENTIONS,
    DEFAULT_CONVENTION,
    E3NN_GRADIENT_PERMUTATION,
    E3NN_PERMUTATION,
    check_convention,
    check_degree,
    degree_sign,
    to_standard_points,
)
from ._wigner import wigner_D

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "E3NN_GRADIENT_PERMUTATION",
    "E3NN_PERMUTATION",
    "change_of_basis",
    "check_convention",
    "check_degree",
    "degree_sign",
    "to_standard_points",
]

# The cyclic permutation as a rotation matrix: (P x) = x[..., E3NN_PERMUTATION].
_P = [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def change_of_basis(
    l: int,
    source: str,
    target: str,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Orthogonal C [2l+1, 2l+1] with ``Y_target(x) = C @ Y_source(x)`` for every x.

    Features of degree ``l`` (along their last dimension) change basis as ``x @ C.T``.
    Standard -> e3nn is the standard Wigner D of the cyclic permutation matrix P (a proper
    rotation); thesis differs from standard by :func:`degree_sign`.
    """
    l = check_degree(l)
    source = check_convention(source, "source")
    target = check_convention(target, "target")

    def from_standard(conv: str) -> torch.Tensor:
        if conv == "e3nn":
            return wigner_D(l, torch.tensor(_P, dtype=torch.float64))
        return degree_sign(l, conv) * torch.eye(2 * l + 1, dtype=torch.float64)

    # Y_target = A_t Y_std and Y_source = A_s Y_std, so C = A_t A_s^T.
    C = from_standard(target) @ from_standard(source).T
    return C.to(dtype=dtype, device=device)
