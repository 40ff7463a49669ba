"""Reference backend: the original Kernel + PeriodicConvolution (eq. 3.9, 3.10), K materialised.

K[e, (l_out u i), (l_in v j)] = W sum_{l m} C[i, j, m] Y[e, l m] R[e, path, u, v] is built
densely for every edge, then F' = index_add over centers of K @ F[neighbour]. Plain autograd.
This is the oracle for the fused backends and the memory baseline (it needs
E * dim_out * dim_in numbers: 1.5 GB in float64 for the thesis case).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from periodic_conv._paths import PathTable

if TYPE_CHECKING:
    from periodic_conv._hub import DataHub

__all__ = ["conv_reference", "materialize_kernel"]


def materialize_kernel(
    Y: torch.Tensor, R: torch.Tensor, scale: torch.Tensor, table: PathTable
) -> torch.Tensor:
    """The kernel K [E, dim_out, dim_in] of eq. 3.10, with W/sqrt(|N(a)|) folded in."""
    E = R.shape[0]
    oo, io = table.out_offsets, table.in_offsets
    rows = []
    for k, bo in enumerate(table.irreps_out):
        cols = []
        for i, bi in enumerate(table.irreps_in):
            blk = Y.new_zeros(E, bo.mul, 2 * bo.l + 1, bi.mul, 2 * bi.l + 1)
            for p, C in zip(table.paths, table.couplings):
                if p.k != k or p.i != i:
                    continue
                Yl = Y[:, p.l * p.l : (p.l + 1) ** 2]
                Rp = R[:, p.offset : p.offset + p.u * p.v].reshape(E, p.u, p.v)
                Ct = C.to(dtype=Y.dtype, device=Y.device)
                blk = blk + torch.einsum("ijm,em,euv->euivj", Ct, Yl, Rp)
            cols.append(blk.reshape(E, bo.dim, bi.dim) * scale[:, k, None, None])
        rows.append(torch.cat(cols, dim=2))
    del oo, io
    return torch.cat(rows, dim=1)


def conv_reference(
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
    """F'[a] = sum_{e: dst[e] = a} K[e] @ F[src[e]] (eq. 3.9 with K of eq. 3.10).

    The backend calling contract of :mod:`periodic_conv._backends`; ``chunk`` and
    ``deterministic`` do not apply (K is formed for all edges at once).
    """
    del chunk, deterministic
    K = materialize_kernel(Y, R, scale, table)
    msg = torch.bmm(K, F[hub.src].unsqueeze(-1)).squeeze(-1)
    return F.new_zeros(F.shape[0], table.irreps_out.dim).index_add(0, hub.dst, msg)
