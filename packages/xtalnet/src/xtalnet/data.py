"""Structures -> batched periodic graphs (pymatgen, ASE, mp_audit entries; PyG batches in
:mod:`xtalnet.pyg`).

A :class:`Batch` holds one :class:`periodic_conv.Graph` (all structures of the batch, atom
indices offset), the atomic numbers and the structure index of every atom. Graphs are built
with :func:`periodic_conv.neighbor_list` (vesin underneath), whose guards refuse flat cells,
non-finite coordinates and edge counts above the budget.

Edge convention (shared with :class:`periodic_conv.Graph`): edge ``e`` carries a message
from the neighbour ``j = neighbor[e]`` to the center ``i = center[e]`` and its vector points
from the center to the neighbour's periodic image,

    edge_vec[e] = pos[j] - pos[i] + shift[e] @ cell[batch[i]]      (Å, shift integer)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from periodic_conv import Graph, neighbor_list

from xtalnet.config import MAX_Z, NetworkConfig

__all__ = ["Batch", "collate", "iter_batches", "pack", "to_structure"]


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


def graph_of(s: Any, index: int, config: NetworkConfig) -> Graph:
    """The periodic graph of one structure at ``config.r_cut`` in ``config.dtype``
    (``index``: its position in the caller's sequence, for error messages)."""
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


def batch_of_graphs(graphs: Sequence[Graph], ids: Sequence[str]) -> Batch:
    """One :class:`Batch` of per-structure graphs (atom indices offset)."""
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
    graphs = [graph_of(to_structure(s, k), k, config) for k, s in enumerate(items)]
    total = sum(g.num_edges for g in graphs)
    if total > config.max_edges:
        raise ValueError(
            f"structures give {total:,} edges in total, above max_edges={config.max_edges:,}; "
            "split them with xtalnet.iter_batches(structures, config, batch_size) or raise "
            "max_edges"
        )
    return batch_of_graphs(graphs, [_ident(s, k) for k, s in enumerate(items)])


def packed(
    items: Iterable[Any], edges_of: Callable[[Any], int], batch_size: int, max_edges: int
) -> Iterator[list[Any]]:
    """The one batching rule: consecutive runs of ``items`` with at most ``batch_size`` items
    and ``max_edges`` edges (an item above the budget alone), order kept; streams."""
    cur: list[Any] = []
    total = 0
    for item in items:
        e = int(edges_of(item))
        if cur and (len(cur) == batch_size or total + e > max_edges):
            yield cur
            cur, total = [], 0
        cur.append(item)
        total += e
    if cur:
        yield cur


def pack(
    order: Sequence[int], edges: Sequence[int], batch_size: int, max_edges: int, min_size: int = 1
) -> list[list[int]]:
    """Split ``order`` into consecutive batches of at most ``batch_size`` structures and
    ``max_edges`` edges (:func:`packed`); a last batch smaller than ``min_size`` joins the
    previous one."""
    batches = [
        [int(i) for i in b] for b in packed(order, lambda i: edges[i], batch_size, max_edges)
    ]
    if len(batches) > 1 and len(batches[-1]) < min_size:
        batches[-2].extend(batches.pop())
    return batches


def iter_batches(
    structures: Any, config: NetworkConfig, batch_size: int = 64
) -> Iterator[tuple[list[int], Batch]]:
    """Split structures into batches of at most ``batch_size`` structures and
    ``config.max_edges`` edges, keeping their order (graphs built as they are needed).

    Yields
    ------
    (indices, Batch)
        Positions of the batch's structures in ``structures`` and the batch itself.
    """
    config = _check_config(config)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    items = _check_sequence(structures)
    graphs = ((k, graph_of(to_structure(s, k), k, config)) for k, s in enumerate(items))
    for run in packed(graphs, lambda kg: kg[1].num_edges, batch_size, config.max_edges):
        idx = [k for k, _ in run]
        yield idx, batch_of_graphs([g for _, g in run], [_ident(items[i], i) for i in idx])
