"""The convolution backends behind one calling contract, and the choice among them.

Every backend is a function

    fn(F, Y, R, hub, scale, table, *, chunk=None, deterministic=True) -> Tensor [N, dim_out]

with ``F`` [N, dim_in] features, ``Y`` [E, (l_filter_max+1)^2] edge harmonics, ``R``
[E, weight_numel] radial weights, ``hub`` the :class:`DataHub` (edge indices, CSR orders),
``scale`` [E, n_out_blocks] the per-edge factors of ``hub.edge_scale`` and ``table`` the
:class:`PathTable`. Options a backend has no use for are accepted and ignored, so
:func:`periodic_convolution` calls each the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from periodic_conv._choices import check_backend
from periodic_conv._fused_torch import conv_fused_torch
from periodic_conv._paths import PathTable
from periodic_conv._raw import Chunk, raw_forward, require_compiled
from periodic_conv._reference import conv_reference

if TYPE_CHECKING:
    from periodic_conv._hub import DataHub

__all__ = [
    "Backend",
    "conv_compiled",
    "get_backend",
    "resolve_backend",
]

Backend = Callable[..., torch.Tensor]


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend for ``backend`` and tensors on ``device``.

    ``auto``: ``cuda`` for CUDA tensors when the extension has its CUDA launcher, ``cpp`` for
    CPU tensors when the extension builds, else ``torch`` (the build warns once why not).
    """
    check_backend(backend)
    if backend == "auto":
        from periodic_conv import _build

        if device.type == "cuda" and _build.cuda_available():
            return "cuda"
        if device.type == "cpu" and _build.cpp_available():
            return "cpp"
        return "torch"
    return backend


def conv_compiled(
    F: torch.Tensor,
    Y: torch.Tensor,
    R: torch.Tensor,
    hub: DataHub,
    scale: torch.Tensor,
    table: PathTable,
    *,
    chunk: int | None = None,
    deterministic: bool = True,
) -> torch.Tensor:
    """The compiled op ``periodic_conv::conv_fwd`` (cpp for CPU tensors, cuda for CUDA ones).

    ``chunk`` does not apply; ``deterministic`` selects fixed-order reductions on CUDA (the
    CPU launcher is always deterministic).
    """
    del chunk
    require_compiled(F)
    whole = Chunk(0, R.shape[0], hub.src, hub.dst, *hub.csr())
    name = "cuda" if F.is_cuda else "cpp"
    return raw_forward(name, F.contiguous(), Y.contiguous(), R.contiguous(), whole,
                       scale.contiguous(), table, deterministic)  # fmt: skip


_FUNCTIONS: dict[str, Backend] = {
    "reference": conv_reference,
    "torch": conv_fused_torch,
    "cpp": conv_compiled,
    "cuda": conv_compiled,
}


def get_backend(name: str, device: torch.device) -> Backend:
    """The function of a concrete backend (after :func:`resolve_backend`), checked against
    the device of the tensors it will get."""
    if name in ("cpp", "cuda"):
        want = "cuda" if name == "cuda" else "cpu"
        if device.type != want:
            raise ValueError(
                f"backend={name!r} needs {want} tensors, got features on {device}; use "
                "backend='auto' to pick the backend from the device"
            )
    return _FUNCTIONS[name]
