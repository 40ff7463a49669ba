"""One backend's forward or backward over one range of edges, without autograd.

The piece that :mod:`periodic_conv._backends` (the compiled backend over all edges) and
:mod:`periodic_conv._factored` (radial factors, chunk by chunk) share: the raw call of the
plain-torch kernels or of the compiled ops ``periodic_conv::conv_fwd`` / ``conv_bwd``, the
network-lifetime tensors those ops take (:func:`table_tensors`) and the check that the
compiled ops are there (:func:`require_compiled`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from periodic_conv._fused_torch import _backward, _forward
from periodic_conv._paths import PathTable

__all__ = ["Chunk", "raw_backward", "raw_forward", "require_compiled", "table_tensors"]


class Chunk(NamedTuple):
    """Edges [e0, e1) as a graph of their own: the same N atoms, only these edges."""

    e0: int
    e1: int
    src: torch.Tensor
    dst: torch.Tensor
    row_ptr: torch.Tensor
    src_perm: torch.Tensor
    src_ptr: torch.Tensor


def require_compiled(F: torch.Tensor) -> None:
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


def raw_forward(name, F, Y, R, c: Chunk, scale, table: PathTable, deterministic):
    """Backend ``name``'s ("torch", "cpp" or "cuda") output over the edges of ``c``."""
    if name == "torch":
        return _forward(F, Y, R, c.src, c.dst, scale, table, R.shape[0] or 1)
    paths, kptr, cflat, in_off, out_off = table_tensors(table, F.dtype, F.device)
    return torch.ops.periodic_conv.conv_fwd(
        F, Y, R, c.src, c.dst, scale, c.row_ptr, c.src_perm, c.src_ptr, paths, kptr, cflat,
        in_off, out_off, table.irreps_out.dim, *table.maxima, deterministic,
    )  # fmt: skip


def raw_backward(name, G, F, Y, R, c: Chunk, scale, table: PathTable, needs):
    """Backend ``name``'s (dF, dY, dR) over the edges of ``c``; None where not ``needs``."""
    if name == "torch":
        return _backward(G, F, Y, R, c.src, c.dst, scale, table, R.shape[0] or 1, needs)
    paths, kptr, cflat, in_off, out_off = table_tensors(table, F.dtype, F.device)
    dF, dY, dR = torch.ops.periodic_conv.conv_bwd(
        G, F, Y, R, c.src, c.dst, scale, c.row_ptr, c.src_perm, c.src_ptr, paths, kptr, cflat,
        in_off, out_off, *table.maxima, *needs,
    )  # fmt: skip
    return (dF if needs[0] else None, dY if needs[1] else None, dR if needs[2] else None)
