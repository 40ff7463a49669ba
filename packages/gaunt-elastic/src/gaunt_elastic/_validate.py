"""Argument checks shared by the modules of gaunt_elastic (one home for each message)."""

from __future__ import annotations

import math
import numbers
import operator

import torch

__all__ = [
    "check_finite_rows",
    "check_float_dtype",
    "check_index",
    "check_rtol",
    "check_tensor",
    "max_abs_rows",
    "row_label",
]


def check_float_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """Return ``dtype`` if it is a floating ``torch.dtype``, else raise ``TypeError``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.dtype, got {dtype!r}")
    return dtype


def check_tensor(x: object, name: str, trailing: tuple[int, ...]) -> torch.Tensor:
    """Return ``x`` if it is a floating tensor of shape ``[..., *trailing]``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    n = len(trailing)
    if x.dim() < n or tuple(x.shape[x.dim() - n :]) != trailing:
        raise ValueError(
            f"{name} must have shape [..., {', '.join(map(str, trailing))}], got {tuple(x.shape)}"
        )
    return x


def check_rtol(rtol: object, name: str = "rtol") -> float:
    """Return ``rtol`` as a float if it is a real number ``>= 0`` (``math.inf`` allowed).

    Raises ``TypeError`` for non-numbers (``bool`` included) and ``ValueError`` for NaN
    (which would switch every comparison off) or negative values. ``inf`` accepts any
    deviation (the finiteness checks still run).
    """
    if isinstance(rtol, bool) or not isinstance(rtol, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {rtol!r} ({type(rtol).__name__})")
    value = float(rtol)
    if math.isnan(value) or value < 0:
        raise ValueError(f"{name} must be a number >= 0 (math.inf allowed), got {name}={rtol!r}")
    return value


def check_index(value: object, name: str, allowed: tuple[int, ...]) -> int:
    """Return ``value`` as an int if it is an integer (numpy integers too) in ``allowed``."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer in {allowed}, got {value!r}")
    try:
        index = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(
            f"{name} must be an integer in {allowed}, got {value!r} ({type(value).__name__})"
        ) from None
    if index not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
    return index


def row_label(name: str, row: int, batch: tuple[int, ...]) -> str:
    """``name[i, j]``: the batch index of flat row ``row`` of a batch of shape ``batch``."""
    if not batch:
        return name
    index = []
    for size in reversed(batch):
        index.append(row % size)
        row //= size
    return f"{name}[{', '.join(map(str, reversed(index)))}]"


def max_abs_rows(x: torch.Tensor) -> torch.Tensor:
    """``max |x|`` over the last dimension, NaN where a row holds a NaN (one fused pass).

    ``aminmax`` reads the rows once and is several times faster here than
    ``x.abs().amax(-1)`` or ``vector_norm(x, inf, dim=-1)``.
    """
    lo, hi = torch.aminmax(x, dim=-1)
    return torch.maximum(hi, -lo)


def check_finite_rows(scale: torch.Tensor, name: str, batch: tuple[int, ...], offset: int) -> None:
    """Raise ``ValueError`` naming the first row whose ``scale`` (max |entry|) is not finite.

    ``scale`` holds ``max |x|`` per row of a chunk that starts at flat row ``offset``; it is
    NaN or infinite exactly when the row holds a NaN or an infinity.
    """
    bad = ~torch.isfinite(scale)
    if bool(bad.any()):
        row = offset + int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{row_label(name, row, batch)} contains non-finite values (NaN or inf); "
            "only finite tensors can be checked and transformed"
        )
