"""Backend selection and the per-backend forward / gradient functions.

All backends compute the standard convention with integral normalization on the
(already permuted) points; ``_api`` applies conventions and normalizations.
"""

from __future__ import annotations

import torch

from ._reference import reference_sh

L_MAX = 16


def _cpp_available() -> bool:
    return False


def _cuda_available() -> bool:
    return False


def resolve(backend: str, xyz: torch.Tensor) -> str:
    """Turn ``auto`` into a concrete backend and check the device fits the backend."""
    is_cuda = xyz.device.type == "cuda"
    if backend == "auto":
        if is_cuda:
            backend = "cuda"
        elif xyz.device.type == "cpu" and _cpp_available():
            backend = "cpp"
        else:
            return "torch"
    if backend == "cuda":
        if not is_cuda:
            raise ValueError(f"backend='cuda' needs a CUDA tensor, got xyz on {xyz.device}")
        if not _cuda_available():
            raise RuntimeError(
                "xyz is a CUDA tensor but the rsh CUDA extension is not built: install a CUDA "
                "build of torch with nvcc on PATH (CUDA_HOME set) so rsh can compile "
                "src/rsh/csrc/*.cu on first use, or pass backend='torch'"
            )
    if backend == "cpp":
        if xyz.device.type != "cpu":
            raise ValueError(f"backend='cpp' needs a CPU tensor, got xyz on {xyz.device}")
        if not _cpp_available():
            raise RuntimeError("backend='cpp' requested but the rsh C++ extension did not build")
    return backend


def forward(xyz: torch.Tensor, l_max: int, normalize: bool, backend: str) -> torch.Tensor:
    return reference_sh(xyz, l_max, normalize)


def _jacobian(xyz: torch.Tensor, l_max: int, normalize: bool) -> torch.Tensor:
    def one(p: torch.Tensor) -> torch.Tensor:
        return reference_sh(p, l_max, normalize)

    flat = xyz.reshape(-1, 3)
    if flat.shape[0] == 0:
        return xyz.new_zeros(*xyz.shape[:-1], 3, (l_max + 1) ** 2)
    jac = torch.func.vmap(torch.func.jacrev(one))(flat)  # [N, K, 3]
    return jac.transpose(-1, -2).reshape(*xyz.shape[:-1], 3, (l_max + 1) ** 2)


def forward_and_gradient(
    xyz: torch.Tensor, l_max: int, normalize: bool, backend: str
) -> tuple[torch.Tensor, torch.Tensor]:
    return reference_sh(xyz, l_max, normalize), _jacobian(xyz, l_max, normalize)
