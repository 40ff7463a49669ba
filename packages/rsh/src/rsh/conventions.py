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

import numbers

import torch

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

#: The accepted values of every ``convention=`` argument.
CONVENTIONS: tuple[str, ...] = ("standard", "thesis", "e3nn")
#: The default of every ``convention=`` argument in every package.
DEFAULT_CONVENTION: str = "standard"
#: e3nn's harmonics at the point ``xyz`` are the standard ones at ``xyz[..., E3NN_PERMUTATION]``
#: i.e. at (z, x, y).
E3NN_PERMUTATION: tuple[int, int, int] = (2, 0, 1)
#: The inverse permutation: the gradient of e3nn's harmonics with respect to the original
#: (x, y, z) is the standard gradient (with respect to (z, x, y)) indexed by this.
E3NN_GRADIENT_PERMUTATION: tuple[int, int, int] = (1, 2, 0)


def check_convention(convention: object, name: str = "convention") -> str:
    """Return ``convention`` if it is one of :data:`CONVENTIONS`.

    Raises
    ------
    ValueError
        Naming the argument ``name``, the value received and the allowed values.
    """
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise ValueError(f"{name} must be one of {CONVENTIONS}, got {convention!r}")
    return convention


def check_degree(l: object, name: str = "l", *, l_max: int | None = None) -> int:
    """Return the degree ``l`` as a Python int after checking it.

    Parameters
    ----------
    l : int
        A non-negative integer; numpy integers are accepted, ``bool`` and floats are not.
    name : str
        The argument's name, used in the message.
    l_max : int, optional
        Largest allowed value (inclusive).

    Raises
    ------
    TypeError
        ``l`` is not an integer (including ``True``/``False`` and ``2.0``).
    ValueError
        ``l < 0`` or ``l > l_max``.
    """
    if isinstance(l, bool) or not isinstance(l, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(l).__name__} {l!r}")
    value = int(l)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    if l_max is not None and value > l_max:
        raise ValueError(f"{name} must satisfy 0 <= {name} <= {l_max}, got {value}")
    return value


def degree_sign(l: int, convention: str = DEFAULT_CONVENTION) -> int:
    """The sign of degree-``l`` harmonics in ``convention`` relative to standard/e3nn.

    -1 for odd ``l`` in ``"thesis"`` (eq. 3.3), else +1.
    """
    l = check_degree(l)
    convention = check_convention(convention)
    return -1 if convention == "thesis" and l % 2 == 1 else 1


def to_standard_points(xyz: torch.Tensor, convention: str = DEFAULT_CONVENTION) -> torch.Tensor:
    """The points at which the standard formulas give ``convention``'s harmonics (up to the
    sign of :func:`degree_sign`): ``xyz[..., E3NN_PERMUTATION]`` for e3nn, else ``xyz``."""
    if check_convention(convention) == "e3nn":
        return xyz[..., list(E3NN_PERMUTATION)]
    return xyz


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
    from ._wigner import wigner_D

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
