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

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from periodic_conv._fused_torch import conv_fused_torch
from periodic_conv._paths import PathTable
from periodic_conv._reference import conv_reference

if TYPE_CHECKING:
    from periodic_conv._hub import DataHub

__all__ = [
    "BACKENDS",
    "Backend",
    "conv_compiled",
    "get_backend",
    "resolve_backend",
    "table_tensors",
]

#: Accepted values of ``backend=``.
BACKENDS = ("auto", "reference", "torch", "cpp", "cuda")

Backend = Callable[..., torch.Tensor]


def resolve_backend(backend: str, device: torch.device) -> str:
    """The concrete backend for ``backend`` and tensors on ``device``.

    ``auto``: ``cuda`` for CUDA tensors when the extension has its CUDA launcher, ``cpp`` for
    CPU tensors when the extension builds, else ``torch`` (the build warns once why not).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        from periodic_conv import _build

        if device.type == "cuda" and _build.cuda_available():
            return "cuda"
        if device.type == "cpu" and _build.cpp_available():
            return "cpp"
        return "torch"
    return backend


def _require_compiled(F: torch.Tensor) -> None:
    """Raise a clear error when the compiled op for F's device is unavailable."""
    from periodic_conv import _build

    if not _build.load_extension():
        raise RuntimeError(
            f"backend={'cuda' if F.is_cuda else 'cpp'!r} is unavailable: the C++ extension did "
            "not build (see the warning above); use backend='torch'"
        )
    if F.is_cuda and not _build.cuda_available():
        raise RuntimeError(
            "backend='cuda' needs the extension's CUDA launcher (a CUDA build of torch, a "
            "visible GPU and nvcc at build time); use backend='torch'"
        )


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
    from periodic_conv._factored import _Chunk, _raw_forward

    del chunk
    _require_compiled(F)
    whole = _Chunk(0, R.shape[0], hub.src, hub.dst, *hub.csr())
    name = "cuda" if F.is_cuda else "cpp"
    return _raw_forward(name, F.contiguous(), Y.contiguous(), R.contiguous(), whole,
                        scale.contiguous(), table, deterministic)  # fmt: skip


@functools.lru_cache(maxsize=64)
def table_tensors(table: PathTable, dtype: torch.dtype, device: torch.device):
    """Network-lifetime tensors (thesis §3.3.4): path rows, block pointers, flat C, offsets."""
    rows, cs, c_off = [], [], 0
    for p, C in zip(table.paths, table.couplings):
        rows.append([p.k, p.i, p.l, p.l_out, p.l_in, p.u, p.v, p.offset, c_off])
        cs.append(C.flatten())
        c_off += C.numel()
    paths = torch.tensor(rows, dtype=torch.long, device=device)
    n_out = len(table.irreps_out)
    kptr = torch.zeros(n_out + 1, dtype=torch.long)
    for p in table.paths:
        kptr[p.k + 1] += 1
    kptr = kptr.cumsum(0).to(device)
    cflat = torch.cat(cs).to(dtype=dtype, device=device)
    in_off = torch.tensor(table.in_offsets, dtype=torch.long, device=device)
    out_off = torch.tensor(table.out_offsets, dtype=torch.long, device=device)
    return paths, kptr, cflat, in_off, out_off


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
