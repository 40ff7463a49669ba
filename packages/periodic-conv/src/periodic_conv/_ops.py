"""Compiled backends (cpp/cuda): not built yet in this version; auto falls back to torch."""

from __future__ import annotations

import torch


def cpp_available() -> bool:
    return False


def cuda_available() -> bool:
    return False


def conv_compiled(F, Y, R, src, dst, scale, table, backend: str) -> torch.Tensor:
    raise NotImplementedError(
        f"backend={backend!r} is not available in this build; use backend='torch' or 'auto'"
    )
