"""The facts of :mod:`rsh.conventions` that need nothing else of rsh (their one home).

Names, default, permutations and the argument checks live here so that the quadrature and
Wigner D modules can use them; :mod:`rsh.conventions` (the public module) re-exports them
and adds :func:`~rsh.conventions.change_of_basis`, which is built on :func:`rsh.wigner_D`.
"""

from __future__ import annotations

import numbers

import torch

__all__ = [
    "CONVENTIONS",
    "DEFAULT_CONVENTION",
    "E3NN_GRADIENT_PERMUTATION",
    "E3NN_PERMUTATION",
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
