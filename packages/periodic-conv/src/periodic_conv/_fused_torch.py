"""Fused Kernel + PeriodicConvolution in plain torch (eq. C.1), chunked over edges.

Forward (C.1-C.7): per edge chunk and path (k, i, l)
    CY[e, i, j]  = sum_m C[i, j, m] Y[e, l m]
    Z[e, v, i]   = sum_j CY[e, i, j] F[src e, v, j]
    msg[e, u, i] += sum_v R[e, p, u, v] Z[e, v, i]
then F'[a] += W / sqrt(|N(a)|) msg (index_add over centers). K is never formed.

Backward by hand (custom autograd), with G_s = G[dst] W / sqrt(|N(a)|):
    features (C.10):  dF[src e, v, j] += sum_i (sum_u G_s[e, u, i] R[e, p, u, v]) CY[e, i, j]
    radial (C.17):    dR[e, p, u, v]   = sum_i G_s[e, u, i] Z[e, v, i]
    harmonics:        dY[e, l m]      += sum_{i j} C[i, j, m] sum_{u v} G_s R F
The backward is itself written with differentiable torch ops, so double backward works.
Only the inputs (F, Y, R) are saved: memory is that of R (and dR) plus one chunk.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from periodic_conv._paths import PathTable

if TYPE_CHECKING:
    from periodic_conv._hub import DataHub

__all__ = ["conv_fused_torch"]


def _auto_chunk(table: PathTable, E: int) -> int:
    # Temporaries per edge are a few times max(dim_in, dim_out); 2^22 numbers per chunk
    # (32 MB in float64) keeps them small next to R while amortising Python overhead.
    per_edge = 4 * max(table.irreps_in.dim, table.irreps_out.dim, 1)
    return max(64, min(E, (1 << 22) // per_edge))


def _couplings(table: PathTable, like: torch.Tensor) -> list[torch.Tensor]:
    return [c.to(dtype=like.dtype, device=like.device) for c in table.couplings]


def _forward(F, Y, R, src, dst, scale, table: PathTable, chunk: int) -> torch.Tensor:
    E = src.shape[0]
    out = F.new_zeros(F.shape[0], table.irreps_out.dim)
    Cs = _couplings(table, F)
    io, oo = table.in_offsets, table.out_offsets
    bin_, bout = list(table.irreps_in), list(table.irreps_out)
    for e0 in range(0, E, chunk):
        e1 = min(E, e0 + chunk)
        n = e1 - e0
        Fs = F[src[e0:e1]]
        Yc, Rc, sc = Y[e0:e1], R[e0:e1], scale[e0:e1]
        msgs: list[torch.Tensor | None] = [None] * len(bout)
        for p, C in zip(table.paths, Cs):
            bi = bin_[p.i]
            X = Fs[:, io[p.i] : io[p.i] + bi.dim].reshape(n, p.v, 2 * p.l_in + 1)
            CY = torch.einsum("ijm,em->eij", C, Yc[:, p.l * p.l : (p.l + 1) ** 2])
            Z = torch.bmm(X, CY.transpose(1, 2))  # [e, v, i]
            Rp = Rc[:, p.offset : p.offset + p.u * p.v].reshape(n, p.u, p.v)
            m = torch.bmm(Rp, Z)  # [e, u, i]
            prev = msgs[p.k]
            msgs[p.k] = m if prev is None else prev + m
        blocks = []
        for k, bo in enumerate(bout):
            mk = msgs[k]
            if mk is None:
                blocks.append(F.new_zeros(n, bo.dim))
            else:
                blocks.append((mk * sc[:, k, None, None]).reshape(n, bo.dim))
        out = out.index_add(0, dst[e0:e1], torch.cat(blocks, dim=1))
    del oo
    return out


def _backward(G, F, Y, R, src, dst, scale, table: PathTable, chunk: int, needs):
    need_F, need_Y, need_R = needs
    E = src.shape[0]
    Cs = _couplings(table, F)
    io, oo = table.in_offsets, table.out_offsets
    bin_, bout = list(table.irreps_in), list(table.irreps_out)
    dF = F.new_zeros(F.shape) if need_F else None
    dY_chunks, dR_chunks = [], []
    n_l = Y.shape[1]
    for e0 in range(0, E, chunk):
        e1 = min(E, e0 + chunk)
        n = e1 - e0
        Fs = F[src[e0:e1]]
        Gd = G[dst[e0:e1]]
        Yc, Rc, sc = Y[e0:e1], R[e0:e1], scale[e0:e1]
        Gs = [
            (Gd[:, oo[k] : oo[k] + bo.dim].reshape(n, bo.mul, 2 * bo.l + 1) * sc[:, k, None, None])
            for k, bo in enumerate(bout)
        ]
        dX: list[torch.Tensor | None] = [None] * len(bin_)
        dYl: dict[int, torch.Tensor] = {}
        dRp = []
        for p, C in zip(table.paths, Cs):
            bi = bin_[p.i]
            X = Fs[:, io[p.i] : io[p.i] + bi.dim].reshape(n, p.v, 2 * p.l_in + 1)
            CY = torch.einsum("ijm,em->eij", C, Yc[:, p.l * p.l : (p.l + 1) ** 2])
            Rp = Rc[:, p.offset : p.offset + p.u * p.v].reshape(n, p.u, p.v)
            GR = torch.bmm(Rp.transpose(1, 2), Gs[p.k])  # [e, v, i]
            if need_F:
                d = torch.bmm(GR, CY)  # [e, v, j]
                prev = dX[p.i]
                dX[p.i] = d if prev is None else prev + d
            if need_R:
                Z = torch.bmm(X, CY.transpose(1, 2))  # [e, v, i]
                dRp.append(torch.bmm(Gs[p.k], Z.transpose(1, 2)).reshape(n, p.u * p.v))
            if need_Y:
                T = torch.bmm(GR.transpose(1, 2), X)  # [e, i, j]
                d = torch.einsum("ijm,eij->em", C, T)
                dYl[p.l] = d if p.l not in dYl else dYl[p.l] + d
        if need_F:
            parts = [
                F.new_zeros(n, bi.dim) if d is None else d.reshape(n, bi.dim)
                for d, bi in zip(dX, bin_)
            ]
            assert dF is not None
            dF = dF.index_add(0, src[e0:e1], torch.cat(parts, dim=1))
        if need_R:
            dR_chunks.append(torch.cat(dRp, dim=1))
        if need_Y:
            cols = []
            for l in range(math.isqrt(n_l)):
                cols.append(dYl[l] if l in dYl else Y.new_zeros(n, 2 * l + 1))
            dY_chunks.append(torch.cat(cols, dim=1))
    dY = (
        torch.cat(dY_chunks) if need_Y and dY_chunks else (Y.new_zeros(Y.shape) if need_Y else None)
    )
    dR = (
        torch.cat(dR_chunks) if need_R and dR_chunks else (R.new_zeros(R.shape) if need_R else None)
    )
    return dF, dY, dR


class _FusedConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, F, Y, R, src, dst, scale, table, chunk):
        ctx.save_for_backward(F, Y, R, src, dst, scale)
        ctx.table, ctx.chunk = table, chunk
        return _forward(F, Y, R, src, dst, scale, table, chunk)

    @staticmethod
    def backward(ctx, G):
        F, Y, R, src, dst, scale = ctx.saved_tensors
        needs = ctx.needs_input_grad[:3]
        dF, dY, dR = _backward(G, F, Y, R, src, dst, scale, ctx.table, ctx.chunk, needs)
        return dF, dY, dR, None, None, None, None, None


def conv_fused_torch(
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
    """Fused forward with hand-written backward; see the module docstring.

    The backend calling contract of :mod:`periodic_conv._backends`. ``deterministic`` is
    accepted for the contract (index_add order is fixed on CPU; on CUDA it uses atomics).
    """
    del deterministic
    src, dst = hub.src, hub.dst
    if chunk is None:
        chunk = _auto_chunk(table, src.shape[0])
    return _FusedConv.apply(F, Y, R, src, dst, scale.detach(), table, max(1, int(chunk)))
