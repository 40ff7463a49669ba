"""Structures -> batched periodic graphs (pymatgen, ASE, mp_audit entries, PyG batches).

A :class:`Batch` holds one :class:`periodic_conv.Graph` (all structures of the batch, atom
indices offset), the atomic numbers and the structure index of every atom. Graphs are built
with :func:`periodic_conv.neighbor_list` (vesin underneath), whose guards refuse flat cells,
non-finite coordinates and edge counts above the budget.

Edge convention (shared with :class:`periodic_conv.Graph`): edge ``e`` carries a message
from the neighbour ``j = neighbor[e]`` to the center ``i = center[e]`` and its vector points
from the center to the neighbour's periodic image,

    edge_vec[e] = pos[j] - pos[i] + shift[e] @ cell[batch[i]]      (Å, shift integer)

For PyTorch Geometric input this means ``edge_index[0] = j`` (source, neighbour) and
``edge_index[1] = i`` (target, center), PyG's default source -> target message flow, and
``edge_cell_shift[e]`` is the integer image shift of the *source* atom.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from periodic_conv import Graph, neighbor_list

from xtalnet.config import MAX_Z, NetworkConfig

__all__ = ["Batch", "collate", "from_pyg", "iter_batches", "to_structure"]


@dataclass(frozen=True)
class Batch:
    """A batch of structures as one periodic graph.

    Attributes
    ----------
    graph : periodic_conv.Graph
        Edges of all structures (sorted by center atom), positions [N, 3] Å, cells [B, 3, 3] Å.
    numbers : Tensor [N] (int64)
        Atomic numbers, 1..94.
    batch : Tensor [N] (int64)
        Structure index of every atom.
    ids : tuple of str
        Identifier of every structure (material_id for mp_audit entries, else its index in
        the input sequence as a string).
    """

    graph: Graph
    numbers: torch.Tensor
    batch: torch.Tensor
    ids: tuple[str, ...]

    @property
    def num_graphs(self) -> int:
        """Number of structures B."""
        return int(self.graph.cell.shape[0])

    @property
    def num_nodes(self) -> int:
        """Number of atoms N."""
        return int(self.numbers.shape[0])

    @property
    def num_edges(self) -> int:
        """Number of edges E."""
        return self.graph.num_edges

    @property
    def num_atoms(self) -> torch.Tensor:
        """Atoms per structure, [B] (int64)."""
        return torch.bincount(self.batch, minlength=self.num_graphs)

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on another device (tensors moved; dtype unchanged)."""
        device = torch.device(device)
        changes = {
            f.name: getattr(self.graph, f.name).to(device)
            for f in dataclasses.fields(self.graph)
            if isinstance(getattr(self.graph, f.name), torch.Tensor)
        }
        return Batch(
            dataclasses.replace(self.graph, **changes),
            self.numbers.to(device),
            self.batch.to(device),
            self.ids,
        )


def to_structure(obj: Any, index: int = 0) -> Any:
    """A pymatgen ``Structure`` or ASE ``Atoms`` from any supported input.

    Parameters
    ----------
    obj : pymatgen Structure, ASE Atoms or mp_audit.Entry
        An entry's payload (Structure, dict, CIF/POSCAR text) is parsed with
        :func:`mp_audit.parse_payload`.
    index : int
        Position in the caller's sequence, used in error messages.
    """
    if hasattr(obj, "lattice") and hasattr(obj, "cart_coords"):
        return obj
    if hasattr(obj, "get_positions") and hasattr(obj, "get_cell"):
        return obj
    import mp_audit

    if isinstance(obj, mp_audit.Entry):
        try:
            return mp_audit.parse_payload(obj.payload)
        except Exception as exc:  # the payload's own parser decides what is malformed
            raise ValueError(
                f"structures[{index}] (entry {obj.material_id!r}): payload does not parse as a "
                f"structure: {exc}"
            ) from exc
    raise TypeError(
        f"structures[{index}] must be a pymatgen Structure, an ASE Atoms or an mp_audit.Entry, "
        f"got {type(obj).__name__}"
    )


def _arrays(s: Any, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[bool, ...]]:
    if hasattr(s, "lattice"):
        try:
            numbers = np.asarray(s.atomic_numbers, dtype=np.int64)
        except (AttributeError, ValueError, TypeError) as exc:  # dummy species have no Z
            raise ValueError(
                f"structures[{index}]: every site needs a real element (Z 1..{MAX_Z}); "
                f"species {sorted({str(x) for x in s.species})} include one without: {exc}"
            ) from exc
        pos = np.asarray(s.cart_coords, dtype=np.float64)
        cell = np.array(s.lattice.matrix, dtype=np.float64)
        pbc = tuple(bool(p) for p in getattr(s.lattice, "pbc", (True, True, True)))
        symbols = [str(getattr(sp, "symbol", sp)) for sp in s.species]
    else:
        numbers = np.asarray(s.get_atomic_numbers(), dtype=np.int64)
        pos = np.asarray(s.get_positions(), dtype=np.float64)
        cell = np.array(s.get_cell()[:], dtype=np.float64)
        pbc = tuple(bool(p) for p in s.get_pbc())
        symbols = list(s.get_chemical_symbols())
    if len(numbers) == 0:
        raise ValueError(f"structures[{index}] has no atoms")
    bad = [(sym, int(z)) for sym, z in zip(symbols, numbers) if not 1 <= z <= MAX_Z]
    if bad:
        raise ValueError(
            f"structures[{index}]: element {bad[0][0]} (Z={bad[0][1]}) is not supported; "
            f"the species embedding covers Z = 1..{MAX_Z} (H..Pu)"
        )
    return pos, cell, numbers, pbc


def _graph(s: Any, index: int, config: NetworkConfig) -> Graph:
    pos, cell, numbers, pbc = _arrays(s, index)
    try:
        g = neighbor_list(
            torch.from_numpy(pos),
            torch.from_numpy(cell),
            config.r_cut,
            pbc=pbc,
            max_edges=config.max_edges,
            numbers=torch.from_numpy(numbers),
        )
    except ValueError as exc:
        raise ValueError(f"structures[{index}]: {exc}") from exc
    if g.num_edges > config.max_edges:
        raise ValueError(
            f"structures[{index}] has {g.num_edges:,} edges at r_cut={config.r_cut} Å, above "
            f"max_edges={config.max_edges:,} (the per-batch edge budget); raise max_edges or "
            "lower r_cut"
        )
    dtype = config.torch_dtype
    if dtype != torch.float64:  # geometry is computed in float64, then rounded once
        g = dataclasses.replace(
            g,
            positions=g.positions.to(dtype),
            cell=g.cell.to(dtype),
            edge_vec=g.edge_vec.to(dtype),
            length=g.length.to(dtype),
        )
    return g


def _ident(obj: Any, index: int) -> str:
    mid = getattr(obj, "material_id", None)
    return str(mid) if mid is not None else str(index)


def _check_sequence(structures: Any) -> list[Any]:
    if hasattr(structures, "lattice") or hasattr(structures, "get_positions"):
        return [structures]
    if isinstance(structures, (str, bytes)) or not isinstance(structures, Iterable):
        raise TypeError(
            "structures must be a sequence of pymatgen Structure / ASE Atoms / mp_audit.Entry, "
            f"got {type(structures).__name__}"
        )
    items = list(structures)
    if not items:
        raise ValueError("structures must contain at least one structure, got an empty sequence")
    return items


def _check_config(config: Any) -> NetworkConfig:
    if not isinstance(config, NetworkConfig):
        raise TypeError(f"config must be an xtalnet.NetworkConfig, got {type(config).__name__}")
    return config


def _make_batch(graphs: Sequence[Graph], ids: Sequence[str]) -> Batch:
    graph = Graph.batch_graphs(list(graphs))
    assert graph.numbers is not None
    return Batch(graph, graph.numbers, graph.batch, tuple(ids))


def collate(structures: Any, config: NetworkConfig) -> Batch:
    """Turn structures into one :class:`Batch` (all of them, in order).

    Parameters
    ----------
    structures : sequence of pymatgen Structure, ASE Atoms or mp_audit.Entry (or one of them)
    config : NetworkConfig
        Supplies r_cut (Å), dtype and the edge budget ``max_edges``.

    Raises
    ------
    ValueError
        Empty input, an element outside Z = 1..94, a degenerate cell, or more edges in total
        than ``config.max_edges`` (use :func:`iter_batches` to split by the budget).
    """
    config = _check_config(config)
    items = _check_sequence(structures)
    graphs = [_graph(to_structure(s, k), k, config) for k, s in enumerate(items)]
    total = sum(g.num_edges for g in graphs)
    if total > config.max_edges:
        raise ValueError(
            f"structures give {total:,} edges in total, above max_edges={config.max_edges:,}; "
            "split them with xtalnet.iter_batches(structures, config, batch_size) or raise "
            "max_edges"
        )
    return _make_batch(graphs, [_ident(s, k) for k, s in enumerate(items)])


def iter_batches(
    structures: Any, config: NetworkConfig, batch_size: int = 64
) -> Iterator[tuple[list[int], Batch]]:
    """Split structures into batches of at most ``batch_size`` structures and
    ``config.max_edges`` edges, keeping their order.

    Yields
    ------
    (indices, Batch)
        Positions of the batch's structures in ``structures`` and the batch itself.
    """
    config = _check_config(config)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    items = _check_sequence(structures)
    graphs: list[Graph] = []
    idx: list[int] = []
    edges = 0
    for k, s in enumerate(items):
        g = _graph(to_structure(s, k), k, config)
        if graphs and (len(graphs) == batch_size or edges + g.num_edges > config.max_edges):
            yield idx, _make_batch(graphs, [_ident(items[i], i) for i in idx])
            graphs, idx, edges = [], [], 0
        graphs.append(g)
        idx.append(k)
        edges += g.num_edges
    if graphs:
        yield idx, _make_batch(graphs, [_ident(items[i], i) for i in idx])


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
    dtype = config.torch_dtype
    pos = _field(data, "pos")
    edge_index = _field(data, "edge_index")
    shift = _field(data, "edge_cell_shift")
    cell = _field(data, "cell")
    numbers = _field(data, "atomic_numbers").long().flatten()
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
    center, neighbor = edge_index[1].long(), edge_index[0].long()
    order = torch.sort(center, stable=True).indices
    center, neighbor, shift_l = center[order], neighbor[order], shift[order].long()
    # geometry in float64, rounded once to the config dtype (as for structures)
    pos64, cell64 = pos.to(torch.float64), cell.to(torch.float64)
    edge_batch = batch[center]
    vec = (
        pos64[neighbor]
        - pos64[center]
        + (shift_l.to(torch.float64)[:, :, None] * cell64[edge_batch]).sum(1)
    )
    length = torch.linalg.vector_norm(vec, dim=-1)
    if e and float(length.max()) >= config.r_cut * (1 + 1e-9):
        raise ValueError(
            f"PyG batch has an edge of length {float(length.max()):.4f} Å >= config.r_cut="
            f"{config.r_cut} Å; build the graph with the network's r_cut"
        )
    graph = Graph(
        positions=pos64.to(dtype),
        cell=cell64.to(dtype),
        center=center,
        neighbor=neighbor,
        shift=shift_l,
        edge_vec=vec.to(dtype),
        length=length.to(dtype),
        counts=torch.bincount(center, minlength=n),
        batch=batch.long(),
        r_cut=float(config.r_cut),
        numbers=numbers,
        edge_batch=edge_batch,
    )
    ids = getattr(data, "material_id", None)
    if not (isinstance(ids, (list, tuple)) and len(ids) == num_graphs):
        ids = [str(k) for k in range(num_graphs)]
    return Batch(graph, numbers, batch.long(), tuple(str(i) for i in ids))
