"""The convolution with radial factors, the radial weight matrix applied per atom first.

With R = hidden @ weight.T (:class:`~periodic_conv.RadialFactors`), path p's message is

    msg[e, u, i] = sum_j CY[e, i, j] sum_h hidden[e, h] A[src e, p, u, h, j],
    A[n, p, u, h, j] = sum_v weight[p, u, v, h] F[n, v, j],

so the contraction over the input multiplicity v happens once per atom (A) instead of once
per edge. Per edge that leaves K H multiply-adds (K = sum_p u (2 l_in + 1)) where forming R
takes weight_numel H (weight_numel = sum_p u v) before the convolution even starts; a
crystal graph has tens of edges per atom, so the per-atom work is cheap.

It pays where the input features are scalars (every path has l_in = 0: the first layer of a
network, whose input is the species embedding): few paths, and each message an outer
product. Measured (``benchmarks/run.py``, case "scalars in f32", 1 thread): 16x0e ->
16x0e+6x0e+4x1o+2x2e, 100 atoms, 2808 edges, H = 32, forward + backward 7.9 ms against
14.9 ms for R per edge chunk with the compiled kernels. With l_in up to 4 (the thesis case, 85
paths) it was 3-4 times slower than that and kept 8 times the memory (autograd saves each
path's temporaries), so :func:`takes_nodes_first` says no there.

The per-edge product hidden[e] @ A[src e] is one batched matrix product: edges grouped by
their source atom (:meth:`DataHub.by_source`), padded to the largest group, so its
temporaries grow with the busiest atom's number of edges times the number of atoms.
Everything is plain, differentiable torch: autograd gives the backward (and double
backward), on any device, and nothing of shape [E, weight_numel] exists at any time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from periodic_conv._fused_torch import _couplings
from periodic_conv._paths import PathTable

if TYPE_CHECKING:
    from periodic_conv._factored import RadialFactors
    from periodic_conv._hub import DataHub

__all__ = ["conv_nodes_first", "takes_nodes_first"]


def takes_nodes_first(order: str, backend: str, device: torch.device, table: PathTable) -> bool:
    """Whether ``order`` runs the per-atom order: always for "nodes"; for "auto" on CPU with
    backend "auto" or "torch" (an explicit compiled backend keeps its kernels) where every
    path has l_in = 0 (scalar inputs; module docstring)."""
    if order != "auto":
        return order == "nodes"
    return (
        backend in ("auto", "torch")
        and device.type == "cpu"
        and all(p.l_in == 0 for p in table.paths)
    )


def _per_atom(F: torch.Tensor, weight: torch.Tensor, table: PathTable) -> torch.Tensor:
    """A [N, H, K]: sum_v weight[p, u, v, h] F[n, v, j], columns (path, u, j)."""
    N, H = F.shape[0], weight.shape[1]
    blocks = []
    for p in table.paths:
        J = 2 * p.l_in + 1
        start = table.in_offsets[p.i]
        X = F[:, start : start + p.v * J].reshape(N, p.v, J)
        Wp = weight[p.offset : p.offset + p.u * p.v].reshape(p.u, p.v, H)
        blocks.append(torch.einsum("uvh,nvj->nhuj", Wp, X).reshape(N, H, p.u * J))
    return torch.cat(blocks, dim=2)


def _per_edge(hidden: torch.Tensor, A: torch.Tensor, hub: DataHub) -> torch.Tensor:
    """B [E, K] = hidden[e] @ A[src e], as one padded batched product over source atoms."""
    perm, src_sorted, slot, inverse, width = hub.by_source()
    N, H = A.shape[0], hidden.shape[1]
    padded = hidden.new_zeros(N, width, H).index_put((src_sorted, slot), hidden[perm])
    return torch.bmm(padded, A)[src_sorted, slot][inverse]


def conv_nodes_first(
    F: torch.Tensor,
    Y: torch.Tensor,
    factors: RadialFactors,
    hub: DataHub,
    scale: torch.Tensor,
    table: PathTable,
) -> torch.Tensor:
    """The convolution of eq. C.1 with R given as factors, in the per-atom order (module
    docstring). Same arguments and result as the backends; differentiable to any order."""
    hidden, weight = factors
    E, N = hidden.shape[0], F.shape[0]
    B = _per_edge(hidden, _per_atom(F, weight, table), hub)
    # converted per call, not cached: a cache filled under inference_mode would hold tensors
    # that a later call with gradients cannot save
    Cs = _couplings(table, F)
    CYs: dict[tuple[int, int, int], torch.Tensor] = {}  # paths of one (l_out, l_in, l) share it
    msgs: list[torch.Tensor | None] = [None] * len(table.irreps_out)
    column = 0
    for p, C in zip(table.paths, Cs):
        J = 2 * p.l_in + 1
        Bp = B[:, column : column + p.u * J].reshape(E, p.u, J)
        column += p.u * J
        key = (p.l_out, p.l_in, p.l)
        if key not in CYs:
            CYs[key] = torch.einsum("ijm,em->eij", C, Y[:, p.l * p.l : (p.l + 1) ** 2])
        m = torch.bmm(Bp, CYs[key].transpose(1, 2))  # [E, u, 2 l_out + 1]
        prev = msgs[p.k]
        msgs[p.k] = m if prev is None else prev + m
    blocks = [
        F.new_zeros(E, bo.dim) if m is None else (m * scale[:, k, None, None]).reshape(E, bo.dim)
        for k, (m, bo) in enumerate(zip(msgs, table.irreps_out))
    ]
    return F.new_zeros(N, table.irreps_out.dim).index_add(0, hub.dst, torch.cat(blocks, dim=1))
