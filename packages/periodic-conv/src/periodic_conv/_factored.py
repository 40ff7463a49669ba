"""Radial weights given as a product R = hidden @ weight^T, recomputed instead of stored.

A radial model (thesis §3.3.2) usually ends in a linear layer: R [E, weight_numel] is the
last hidden activation h [E, H] times that layer's matrix. R is then the largest tensor of a
convolution layer (weight_numel is hundreds to thousands per edge, H a few dozen), and plain
autograd keeps it alive from the forward to the backward pass for every layer at once.

:class:`RadialFactors` hands the convolution the two factors instead. The forward pass
forms R, convolves and drops R; only h, the matrix, F and Y are saved. The backward pass
forms R again (one matrix product, cheap next to the convolution), gets dR from the
backend's hand-written backward and returns dh = dR @ weight and dweight = dR^T @ h. Peak
memory falls from L layers' R to one chunk of one layer's R + dR: both passes walk the
edges in chunks (``chunk`` edges, default about 2^21 numbers of R), forming R only for the
chunk at hand. The convolution itself is not rerun.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch

from periodic_conv._paths import PathTable
from periodic_conv._raw import Chunk, raw_backward, raw_forward, require_compiled

if TYPE_CHECKING:
    from periodic_conv._hub import DataHub

__all__ = ["RadialFactors", "conv_factored"]


class RadialFactors(NamedTuple):
    """Radial weights R = ``hidden @ weight.T`` [E, weight_numel], never stored whole.

    Attributes
    ----------
    hidden : Tensor [E, H]
        Per-edge hidden features of the radial model (include a constant column for a bias,
        and any envelope u(r) as a factor of the rows).
    weight : Tensor [weight_numel, H]
        The radial model's last linear map, laid out like R's columns (``periodic_conv._paths``).
    """

    hidden: torch.Tensor
    weight: torch.Tensor


def _chunks(src: torch.Tensor, dst: torch.Tensor, csr: tuple[torch.Tensor, ...],
            num_nodes: int, chunk: int) -> list[Chunk]:  # fmt: skip
    """Split the edges into ranges of ``chunk``; no host sync (the ranges need not align with
    centres: a centre split over two ranges gets its two partial sums added). ``csr`` is the
    hub's (row_ptr, src_perm, src_ptr): the whole graph when it fits in one chunk."""
    E = src.shape[0]
    if E <= chunk:
        return [Chunk(0, E, src, dst, *csr)]
    row_ptr = csr[0]
    out = []
    for e0 in range(0, max(E, 1), chunk):
        e1 = min(E, e0 + chunk)
        s = src[e0:e1]
        ptr = torch.zeros(num_nodes + 1, dtype=torch.long, device=src.device)
        ptr[1:] = torch.bincount(s, minlength=num_nodes).cumsum(0)
        out.append(Chunk(e0, e1, s, dst[e0:e1], row_ptr.clamp(e0, e1) - e0,
                         torch.sort(s, stable=True).indices, ptr))  # fmt: skip
    return out


class _FactoredConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, F, Y, hidden, weight, scale, src, dst, row_ptr, src_perm, src_ptr, name,
                table, chunk, deterministic):  # fmt: skip
        csr = (row_ptr, src_perm, src_ptr)
        out = None
        for c in _chunks(src, dst, csr, F.shape[0], chunk):
            R = (hidden[c.e0 : c.e1] @ weight.T).contiguous()
            o = raw_forward(name, F, Y[c.e0 : c.e1], R, c, scale[c.e0 : c.e1], table,
                            deterministic)  # fmt: skip
            out = o if out is None else out + o
        ctx.save_for_backward(F, Y, hidden, weight, scale, src, dst, *csr)
        ctx.spec = (name, table, chunk)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, G):
        F, Y, hidden, weight, scale, src, dst, *csr = ctx.saved_tensors
        name, table, chunk = ctx.spec
        need_F, need_Y, need_h, need_w = ctx.needs_input_grad[:4]
        needs = (need_F, need_Y, need_h or need_w)
        G = G.contiguous()
        dF = torch.zeros_like(F) if need_F else None
        dY = torch.zeros_like(Y) if need_Y else None
        dh = torch.zeros_like(hidden) if need_h else None
        dw = torch.zeros_like(weight) if need_w else None
        for c in _chunks(src, dst, tuple(csr), F.shape[0], chunk):
            h = hidden[c.e0 : c.e1]
            R = (h @ weight.T).contiguous()  # formed again: the point of the factors
            dFc, dYc, dR = raw_backward(name, G, F, Y[c.e0 : c.e1].contiguous(), R, c,
                                        scale[c.e0 : c.e1], table, needs)  # fmt: skip
            del R
            if dF is not None:
                dF += dFc
            if dY is not None:
                dY[c.e0 : c.e1] = dYc
            if dh is not None:
                dh[c.e0 : c.e1] = dR @ weight
            if dw is not None:
                dw += dR.T @ h
        return (dF, dY, dh, dw, *([None] * 10))


def _auto_chunk(table: PathTable, E: int) -> int:
    # R and dR of one chunk: about 2^21 numbers each (16 MB in float64), the other per-edge
    # temporaries a few times dim_in / dim_out.
    per_edge = table.weight_numel + 4 * max(table.irreps_in.dim, table.irreps_out.dim, 1)
    return max(64, min(max(E, 1), (1 << 21) // max(per_edge, 1)))


def conv_factored(
    name: str,
    F: torch.Tensor,
    Y: torch.Tensor,
    factors: RadialFactors,
    hub: DataHub,
    scale: torch.Tensor,
    table: PathTable,
    *,
    chunk: int | None,
    deterministic: bool,
) -> torch.Tensor:
    """The convolution of backend ``name`` ("torch", "cpp" or "cuda") with R given as factors.

    The backward pass is the backend's own (single backward only, as for the compiled
    backends; double backward through the factors is not supported).
    """
    if name in ("cpp", "cuda"):
        require_compiled(F)
    if chunk is None:
        chunk = _auto_chunk(table, hub.num_edges)
    return _FactoredConv.apply(
        F.contiguous(), Y.contiguous(), factors.hidden, factors.weight, scale.detach().contiguous(),
        hub.src, hub.dst, *hub.csr(), name, table, max(1, int(chunk)), deterministic,
    )  # fmt: skip
