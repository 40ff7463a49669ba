"""Activations scaled to unit second moment under a standard normal input (App. B)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["normalized_activation"]


def _second_moment(fn, n: int = 200) -> float:
    """E[fn(z)^2] for z ~ N(0, 1), Gauss-Hermite (probabilists') quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    y = fn(torch.from_numpy(x)).numpy()
    return float((w * y * y).sum() / w.sum())


class _Normalized(nn.Module):
    def __init__(self, fn, name: str) -> None:
        super().__init__()
        self.fn = fn
        self.name = name
        self.scale = 1.0 / math.sqrt(_second_moment(fn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) * self.scale

    def extra_repr(self) -> str:
        return f"{self.name}, scale={self.scale:.6f}"


def normalized_activation(name: str) -> nn.Module:
    """``c * f`` with ``c`` such that E[(c f(z))^2] = 1 for z ~ N(0, 1).

    Parameters
    ----------
    name : {"silu", "tanh", "sigmoid"}
        silu for even scalars, tanh (odd, so parity is kept) for odd scalars, sigmoid for gates.
    """
    fns = {"silu": torch.nn.functional.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    if name not in fns:
        raise ValueError(f"activation must be one of {tuple(fns)}, got {name!r}")
    return _Normalized(fns[name], name)
