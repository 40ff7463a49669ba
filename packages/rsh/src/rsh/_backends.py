"""Backend selection and dispatch to the torch / cpp / cuda implementations.

All backends compute the standard convention with integral normalization on the
(already permuted) points; ``_api`` applies conventions and normalizations.
"""

from __future__ import annotations

import warnings

import torch

from . import _ext, _torch_backend
from ._generated_torch import L_MAX

__all__ = ["L_MAX", "forward", "forward_and_gradient", "resolve"]


_warned_cuda_fallback = False


def _warn_cuda_fallback() -> None:
    global _warned_cuda_fallback
    if not _warned_cuda_fallback:
        _warned_cuda_fallback = True
        warnings.warn(
            f"rsh: xyz is a CUDA tensor but the rsh CUDA kernels are not available "
            f"({_ext.cuda_missing_reason()}); using the plain-torch backend. A CUDA build of "
            "torch with the CUDA toolkit (nvcc, CUDA_HOME) compiles them on first use.",
            RuntimeWarning,
            stacklevel=4,
        )


def resolve(backend: str, xyz: torch.Tensor) -> str:
    """Turn ``auto`` into a concrete backend and check that the device fits the backend.

    ``auto``: cuda for CUDA tensors when the CUDA kernels are loaded (else torch, with ONE
    warning per process), cpp for CPU tensors when the extension is loaded, else torch.
    """
    is_cuda = xyz.device.type == "cuda"
    if backend == "auto":
        if is_cuda:
            if _ext.cuda_available():
                return "cuda"
            _warn_cuda_fallback()
            return "torch"
        if xyz.device.type == "cpu" and _ext.available():
            return "cpp"
        return "torch"
    if backend == "cuda":
        if not is_cuda:
            raise ValueError(f"backend='cuda' needs a CUDA tensor, got xyz on {xyz.device}")
        if not _ext.cuda_available():
            raise RuntimeError(
                f"backend='cuda' requested but the rsh CUDA kernels are not available "
                f"({_ext.cuda_missing_reason()}): use a CUDA build of torch with nvcc on PATH "
                "(or CUDA_HOME set) so that rsh compiles src/rsh/csrc/rsh_cuda.cu on first "
                "use, or pass backend='torch'"
            )
    if backend == "cpp":
        if xyz.device.type != "cpu":
            raise ValueError(f"backend='cpp' needs a CPU tensor, got xyz on {xyz.device}")
        if not _ext.available():
            raise RuntimeError(
                "backend='cpp' requested but the rsh C++ extension is not loaded (disabled "
                "with XTAL_DISABLE_EXTENSIONS, or its build failed: see the earlier warning); "
                "install g++ or use backend='torch'"
            )
    return backend


def cpp_available() -> bool:
    """True when the C++ ops are loaded (builds them on the first call)."""
    return _ext.available()


def forward(xyz: torch.Tensor, l_max: int, normalize: bool, backend: str) -> torch.Tensor:
    if backend == "torch":
        return _torch_backend.forward(xyz, l_max, normalize)
    lead = xyz.shape[:-1]
    y = torch.ops.rsh.sh(xyz.reshape(-1, 3), l_max, normalize)
    return y.reshape(*lead, y.shape[-1])


def forward_and_gradient(
    xyz: torch.Tensor, l_max: int, normalize: bool, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    if backend == "torch":
        return _torch_backend.forward_and_gradient(xyz, l_max, normalize)
    lead = xyz.shape[:-1]
    y, dy = torch.ops.rsh.sh_grad(xyz.reshape(-1, 3), l_max, normalize)
    return y.reshape(*lead, y.shape[-1]), dy.reshape(*lead, 3, dy.shape[-1])
