"""PyTorch Geometric batches with periodic edges -> :class:`xtalnet.data.Batch`.

Edge convention (shared with :class:`periodic_conv.Graph`): edge ``e`` carries a message from
the neighbour ``j = neighbor[e]`` to the center ``i = center[e]``, and its vector points from
the center to the neighbour's periodic image,

    edge_vec[e] = pos[j] - pos[i] + shift[e] @ cell[batch[i]]      (Å, shift integer)

For PyTorch Geometric input this means ``edge_index[0] = j`` (source, neighbour) and
``edge_index[1] = i`` (target, center), PyG's default source -> target message flow, and
``edge_cell_shift[e]`` is the integer image shift of the *source* atom.
"""

from __future__ import annotations

from typing import Any

import torch
from periodic_conv import Graph

from xtalnet.config import MAX_Z, NetworkConfig
from xtalnet.data import Batch, _check_config

__all__ = ["from_pyg"]


def _field(data: Any, name: str) -> torch.Tensor:
    value = getattr(data, name, None)
    if value is None:
        raise ValueError(
            f"PyG batch lacks the field {name!r}; needed: pos [N, 3], edge_index [2, E], "
            "edge_cell_shift [E, 3] (integer), cell [B, 3, 3], atomic_numbers [N], batch [N]"
        )
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"PyG field {name!r} must be a tensor, got {type(value).__name__}")
    return value


def from_pyg(data: Any, config: NetworkConfig) -> Batch:
    """A :class:`Batch` from a PyTorch Geometric ``Data``/``Batch`` with periodic edges.

    Parameters
    ----------
    data : torch_geometric.data.Data or Batch
        Fields ``pos`` [N, 3] Å, ``edge_index`` [2, E] with ``edge_index[0]`` the neighbour
        (source j) and ``edge_index[1]`` the center (target i), ``edge_cell_shift`` [E, 3]
        integer image shifts of the source, so that the edge vector is
        ``pos[j] - pos[i] + edge_cell_shift @ cell[batch[i]]``; ``cell`` [B, 3, 3] (rows =
        lattice vectors, Å; [3, 3] for one structure), ``atomic_numbers`` [N] and ``batch``
        [N] (optional for one structure). Every edge must be shorter than ``config.r_cut``;
        the edge list should hold every pair within r_cut (as ``ase.neighborlist`` or
        ``periodic_conv.neighbor_list`` give), otherwise the prediction differs from the
        structures'.
    config : NetworkConfig

    Returns
    -------
    Batch
        Edges sorted by center (stable), geometry in ``config.dtype``.
    """
    config = _check_config(config)
    fields = _checked_fields(data, config)
    num_graphs = fields["cell"].shape[0]
    graph = _graph(fields, config)
    ids = getattr(data, "material_id", None)
    if not (isinstance(ids, (list, tuple)) and len(ids) == num_graphs):
        ids = [str(k) for k in range(num_graphs)]
    return Batch(graph, fields["numbers"], fields["batch"].long(), tuple(str(i) for i in ids))


def _checked_fields(data: Any, config: NetworkConfig) -> dict[str, torch.Tensor]:
    """The PyG fields after checking their shapes, types and ranges (ValueError naming the
    field and what is allowed)."""
    pos = _field(data, "pos")
    edge_index = _field(data, "edge_index")
    shift = _field(data, "edge_cell_shift")
    cell = _field(data, "cell")
    numbers = _integers(_field(data, "atomic_numbers"), "atomic_numbers").flatten()
    n = pos.shape[0]
    batch = getattr(data, "batch", None)
    if batch is None:
        batch = torch.zeros(n, dtype=torch.long, device=pos.device)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"PyG field 'pos' must have shape [N, 3], got {tuple(pos.shape)}")
    if cell.ndim == 2:
        cell = cell.unsqueeze(0)
    num_graphs = int(batch.max()) + 1 if n else 0
    if cell.shape != (num_graphs, 3, 3):
        raise ValueError(
            f"PyG field 'cell' must have shape [B, 3, 3] = [{num_graphs}, 3, 3], got "
            f"{tuple(cell.shape)}"
        )
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(
            f"PyG field 'edge_index' must have shape [2, E], got {tuple(edge_index.shape)}"
        )
    e = edge_index.shape[1]
    if shift.shape != (e, 3):
        raise ValueError(
            f"PyG field 'edge_cell_shift' must have shape [E, 3] = [{e}, 3], got "
            f"{tuple(shift.shape)}"
        )
    if shift.is_floating_point():
        if not bool((shift == shift.round()).all()):
            raise ValueError("PyG field 'edge_cell_shift' must hold integers (image shifts)")
    if numbers.shape != (n,):
        raise ValueError(
            f"PyG field 'atomic_numbers' must have shape [{n}], got {tuple(numbers.shape)}"
        )
    bad = numbers[(numbers < 1) | (numbers > MAX_Z)]
    if bad.numel():
        raise ValueError(
            f"PyG field 'atomic_numbers' holds Z={int(bad[0])}; the species embedding covers "
            f"Z = 1..{MAX_Z}"
        )
    if e > config.max_edges:
        raise ValueError(f"PyG batch has {e:,} edges, above max_edges={config.max_edges:,}")
    if e and (int(edge_index.min()) < 0 or int(edge_index.max()) >= n):
        raise ValueError(f"PyG field 'edge_index' must index atoms 0..{n - 1}")
    if not bool(torch.isfinite(pos).all()) or not bool(torch.isfinite(cell).all()):
        raise ValueError("PyG fields 'pos' and 'cell' must be finite")
    _check_edges(edge_index, shift, n)
    return {"pos": pos, "edge_index": edge_index, "shift": shift, "cell": cell,
            "numbers": numbers, "batch": batch}  # fmt: skip


def _integers(value: torch.Tensor, name: str) -> torch.Tensor:
    """An integer field as int64; a floating one must hold whole numbers."""
    if value.is_floating_point() or value.is_complex():
        whole = torch.isfinite(value) & (value == value.round())
        if not bool(whole.all()):
            raise ValueError(
                f"PyG field {name!r} must hold integers, got {value[~whole].flatten()[0].item()!r}"
            )
    elif value.dtype == torch.bool:
        raise ValueError(f"PyG field {name!r} must hold integers, got booleans")
    return value.long()


def _check_edges(edge_index: torch.Tensor, shift: torch.Tensor, n: int) -> None:
    """Every atom has an edge, and every edge its reverse (j -> i with shift s needs
    i -> j with shift -s): a one-directional or partial list changes the messages."""
    src, dst = edge_index[0].long(), edge_index[1].long()
    counts = torch.bincount(dst, minlength=n) if dst.numel() else torch.zeros(n, dtype=torch.long)
    lonely = torch.nonzero(counts == 0).flatten().tolist()
    if lonely:
        raise ValueError(
            f"PyG batch: atom(s) {lonely[:10]}{' ...' if len(lonely) > 10 else ''} are the "
            "center of no edge (no neighbour within r_cut, or a partial edge list); the "
            "network cannot predict a structure with such atoms"
        )
    s = shift.round().long() if shift.is_floating_point() else shift.long()
    forward = torch.cat([src[:, None], dst[:, None], s], 1).tolist()
    reverse = torch.cat([dst[:, None], src[:, None], -s], 1).tolist()
    present = set(map(tuple, forward))
    missing = [e for e, r in enumerate(reverse) if tuple(r) not in present]
    if missing:
        e = missing[0]
        raise ValueError(
            f"PyG field 'edge_index' is not symmetric: {len(missing)} of {len(forward)} edges "
            f"lack their reverse (first: edge {e}, {forward[e][0]} -> {forward[e][1]} with "
            f"shift {forward[e][2:]}, needs {forward[e][1]} -> {forward[e][0]} with shift "
            f"{reverse[e][2:]}); give the full neighbour list (both directions)"
        )


def _graph(fields: dict[str, torch.Tensor], config: NetworkConfig) -> Graph:
    """The periodic graph of checked PyG fields: edges sorted by center (stable), geometry
    computed in float64 and rounded once to the config dtype (as for structures)."""
    pos, cell, batch = fields["pos"], fields["cell"], fields["batch"]
    edge_index, shift = fields["edge_index"], fields["shift"]
    dtype = config.torch_dtype
    center, neighbor = edge_index[1].long(), edge_index[0].long()
    order = torch.sort(center, stable=True).indices
    center, neighbor, shift_l = center[order], neighbor[order], shift[order].long()
    pos64, cell64 = pos.to(torch.float64), cell.to(torch.float64)
    edge_batch = batch[center]
    vec = (
        pos64[neighbor]
        - pos64[center]
        + (shift_l.to(torch.float64)[:, :, None] * cell64[edge_batch]).sum(1)
    )
    length = torch.linalg.vector_norm(vec, dim=-1)
    if center.numel() and float(length.max()) >= config.r_cut * (1 + 1e-9):
        raise ValueError(
            f"PyG batch has an edge of length {float(length.max()):.4f} Å >= config.r_cut="
            f"{config.r_cut} Å; build the graph with the network's r_cut"
        )
    return Graph(
        positions=pos64.to(dtype),
        cell=cell64.to(dtype),
        center=center,
        neighbor=neighbor,
        shift=shift_l,
        edge_vec=vec.to(dtype),
        length=length.to(dtype),
        counts=torch.bincount(center, minlength=pos.shape[0]),
        batch=batch.long(),
        r_cut=float(config.r_cut),
        numbers=fields["numbers"],
        edge_batch=edge_batch,
    )
