"""Argument checks shared by the public functions; every message names the argument."""

from __future__ import annotations

import torch

NORMALIZATIONS = ("integral", "component", "norm")
BACKENDS = ("auto", "torch", "cpp", "cuda")


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_float_tensor(name: str, value: object, last: tuple[int, ...]) -> torch.Tensor:
    """A real floating tensor whose trailing dimensions are ``last``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(
            f"{name} must be a real floating tensor (float16/bfloat16/float32/float64), "
            f"got dtype {value.dtype}"
        )
    if value.dim() < len(last) or tuple(value.shape[value.dim() - len(last) :]) != last:
        want = "[..., " + ", ".join(map(str, last)) + "]"
        raise ValueError(f"{name} must have shape {want}, got {list(value.shape)}")
    return value
