"""Periodic neighbour lists (thesis §2.2) on top of vesin, validated so a graph is never wrong.

An edge ``e`` joins a center atom ``a = center[e]`` to a neighbour ``b*`` = ``neighbor[e]``
(the index in the unit cell of the periodic image ``b``, the map g(a, b) of eq. 3.7) through
the integer image shift ``shift[e]``:

    edge_vec[e] = positions[neighbor[e]] - positions[center[e]] + shift[e] @ cell

Edges are grouped by center (in vesin's deterministic order within a center) so that
per-center reductions are contiguous and reproducible. Self-images (an atom next to its own
periodic copy) are edges; the self pair with zero shift is an edge only with
``self_interaction=True``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from periodic_conv._cell import (
    DEFAULT_CELL_TOL,
    DEFAULT_MAX_EDGES,
    CellCheck,
    check_cell,
    check_pbc,
    check_r_cut,
)
from periodic_conv._far import search_positions
from periodic_conv._search import search

__all__ = ["DEFAULT_MAX_EDGES", "Graph", "neighbor_list"]


def _float64_cpu(t: torch.Tensor) -> torch.Tensor:
    t = t.detach()
    if t.dtype != torch.float64 or t.device.type != "cpu":  # the common case needs no copy
        t = t.to("cpu", torch.float64)
    return t.contiguous()


def _validate(
    positions: torch.Tensor,
    cell: torch.Tensor,
    r_cut: float,
    pbc: tuple[bool, bool, bool],
    cell_tol: float,
    max_edges: int,
) -> tuple[torch.Tensor, torch.Tensor, CellCheck]:
    """Check the input; return positions and cell as contiguous float64 CPU tensors and the
    :func:`check_cell` result.

    The numerical checks run in numpy and plain Python floats: on a 3x3 cell and a few
    hundred positions the fixed cost of torch ops (isfinite, det, norm) would dominate.
    """
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape [N, 3], got {tuple(positions.shape)}")
    if cell.shape != (3, 3):
        raise ValueError(
            f"cell must have shape [3, 3] (rows = lattice vectors), got {tuple(cell.shape)}"
        )
    pos_t, cell_t = _float64_cpu(positions), _float64_cpu(cell)
    pos = pos_t.numpy()
    if not np.isfinite(pos).all():
        bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))[:5].tolist()
        raise ValueError(f"positions must be finite, got non-finite values in rows {bad}")
    n = pos.shape[0]
    info = check_cell(
        cell_t.tolist(), r_cut, n_atoms=n, max_edges=max_edges, pbc=pbc, cell_tol=cell_tol
    )
    if any(pbc):
        return pos_t, cell_t, info
    span = pos.max(0) - pos.min(0) if n else np.zeros(3)
    volume = float(np.prod(span + 2 * r_cut))
    # Each atom sees about density * (4/3) pi r_cut^3 atoms (upper-bound flavour, cheap).
    estimate = int(n * (n / volume * 4.0 / 3.0 * math.pi * r_cut**3 + 1))
    if estimate > max_edges:
        raise ValueError(
            f"r_cut={r_cut} Å would give about {estimate:,} edges for {n} atoms in "
            f"{volume:.3g} Å^3, above max_edges={max_edges:,}; lower r_cut or raise max_edges"
        )
    return pos_t, cell_t, info


@dataclass(frozen=True)
class Graph:
    """A batch of periodic neighbourhood graphs.

    Attributes
    ----------
    positions : Tensor [N, 3]
        Cartesian positions, Å (kept with their autograd history).
    cell : Tensor [B, 3, 3]
        Lattice vectors as rows, Å, one per structure.
    center, neighbor : Tensor [E] (int64)
        Center atom a and neighbour b* = g(a, b) of each edge (global atom indices).
    shift : Tensor [E, 3] (int64)
        Integer image shift of the neighbour.
    edge_vec : Tensor [E, 3]
        ``positions[neighbor] - positions[center] + shift @ cell``, Å; differentiable with
        respect to ``positions`` and ``cell``.
    length : Tensor [E]
        ``|edge_vec|``, Å.
    counts : Tensor [N] (int64)
        |N(a)|, the number of edges of each center atom.
    batch : Tensor [N] (int64)
        Structure index of each atom.
    r_cut : float
        Radial cutoff, Å.
    numbers : Tensor [N] (int64) or None
        Atomic numbers when known.
    """

    positions: torch.Tensor
    cell: torch.Tensor
    center: torch.Tensor
    neighbor: torch.Tensor
    shift: torch.Tensor
    edge_vec: torch.Tensor
    length: torch.Tensor
    counts: torch.Tensor
    batch: torch.Tensor
    r_cut: float
    numbers: torch.Tensor | None = None
    pbc: tuple[bool, bool, bool] = (True, True, True)
    edge_batch: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    @property
    def num_nodes(self) -> int:
        """Number of atoms N."""
        return int(self.positions.shape[0])

    @property
    def num_edges(self) -> int:
        """Number of edges E."""
        return int(self.center.shape[0])

    @property
    def num_graphs(self) -> int:
        """Number of structures B."""
        return int(self.cell.shape[0])

    @property
    def isolated(self) -> torch.Tensor:
        """Indices of isolated atoms (|N(a)| = 0); their convolution output is zero."""
        return torch.nonzero(self.counts == 0).flatten()

    @property
    def has_isolated(self) -> bool:
        """True when at least one atom has no neighbour within r_cut."""
        return bool((self.counts == 0).any())

    def recompute_vectors(
        self, positions: torch.Tensor | None = None, cell: torch.Tensor | None = None
    ) -> Graph:
        """Same edges, new edge vectors (e.g. positions/cell that require grad, for forces and
        stress). Topology is not rebuilt: use small displacements only."""
        positions = self.positions if positions is None else positions
        cell = self.cell if cell is None else cell
        if cell.ndim == 2:
            cell = cell.unsqueeze(0)
        vec = _edge_vectors(
            positions, cell, self.center, self.neighbor, self.shift, self.edge_batch
        )
        return replace(
            self,
            positions=positions,
            cell=cell,
            edge_vec=vec,
            length=torch.linalg.norm(vec, dim=-1),
        )

    @classmethod
    def from_structures(
        cls,
        structures: Sequence[Any],
        r_cut: float,
        *,
        self_interaction: bool = False,
        dtype: torch.dtype = torch.float64,
        max_edges: int = DEFAULT_MAX_EDGES,
        cell_tol: float = DEFAULT_CELL_TOL,
    ) -> Graph:
        """Batch pymatgen ``Structure`` or ASE ``Atoms`` objects into one graph.

        Parameters
        ----------
        structures : sequence of pymatgen.core.Structure or ase.Atoms
            Periodic structures (Å).
        r_cut : float
            Radial cutoff, Å.
        self_interaction, dtype, max_edges, cell_tol
            As in :func:`neighbor_list`.
        """
        one = hasattr(structures, "lattice") or hasattr(structures, "get_cell")
        if one or isinstance(structures, (str, bytes)) or not isinstance(structures, Sequence):
            structures = [structures]  # a single structure is a batch of one (a pymatgen
            # Structure is itself a sequence, of its sites)
        if len(structures) == 0:
            raise ValueError("structures must contain at least one structure, got []")
        graphs = []
        for k, s in enumerate(structures):
            if hasattr(s, "lattice") and hasattr(s, "cart_coords"):  # pymatgen Structure
                if not getattr(s, "is_ordered", True):
                    raise ValueError(
                        f"structures[{k}] is disordered (partial occupancies, "
                        f"{s.composition.formula}): a graph needs one element per site; "
                        "order it first (e.g. pymatgen's OrderDisorderedStructureTransformation)"
                    )
                pos = np.array(s.cart_coords, dtype=np.float64)
                cell = np.array(s.lattice.matrix, dtype=np.float64)
                numbers = np.asarray(s.atomic_numbers, dtype=np.int64)
                pbc = tuple(bool(p) for p in getattr(s.lattice, "pbc", (True, True, True)))
            elif hasattr(s, "get_positions") and hasattr(s, "get_cell"):  # ASE Atoms
                pos = np.asarray(s.get_positions(), dtype=np.float64)
                cell = np.asarray(s.get_cell()[:], dtype=np.float64)
                numbers = np.asarray(s.get_atomic_numbers(), dtype=np.int64)
                pbc = tuple(bool(p) for p in s.get_pbc())
            else:
                raise TypeError(
                    f"structures[{k}] must be a pymatgen Structure or an ASE Atoms, "
                    f"got {type(s).__name__}"
                )
            graphs.append(
                neighbor_list(
                    torch.as_tensor(pos, dtype=dtype),
                    torch.as_tensor(cell, dtype=dtype),
                    r_cut,
                    pbc=pbc,
                    self_interaction=self_interaction,
                    max_edges=max_edges,
                    cell_tol=cell_tol,
                    numbers=torch.as_tensor(numbers),
                )
            )
        return cls.batch_graphs(graphs)

    @staticmethod
    def batch_graphs(graphs: Sequence[Graph]) -> Graph:
        """Concatenate graphs (atom indices offset; one cell per structure)."""
        if isinstance(graphs, Graph) or not isinstance(graphs, Sequence):
            raise TypeError(f"graphs must be a sequence of Graph, got {type(graphs).__name__}")
        if len(graphs) == 0:
            raise ValueError("graphs must contain at least one Graph, got []")
        for k, g in enumerate(graphs):
            if not isinstance(g, Graph):
                raise TypeError(
                    f"graphs[{k}] must be a periodic_conv.Graph, got {type(g).__name__}"
                )
        if len(graphs) == 1:
            return graphs[0]
        r_cuts = {g.r_cut for g in graphs}
        if len(r_cuts) != 1:
            raise ValueError(f"graphs must share one r_cut to be batched, got {sorted(r_cuts)}")
        offsets = np.cumsum([0] + [g.num_nodes for g in graphs[:-1]])
        goffs = np.cumsum([0] + [g.num_graphs for g in graphs[:-1]])
        numbers = None
        if all(g.numbers is not None for g in graphs):
            numbers = torch.cat([g.numbers for g in graphs])  # type: ignore[misc]
        pbcs = {g.pbc for g in graphs}
        return Graph(
            positions=torch.cat([g.positions for g in graphs]),
            cell=torch.cat([g.cell for g in graphs]),
            center=torch.cat([g.center + int(o) for g, o in zip(graphs, offsets)]),
            neighbor=torch.cat([g.neighbor + int(o) for g, o in zip(graphs, offsets)]),
            shift=torch.cat([g.shift for g in graphs]),
            edge_vec=torch.cat([g.edge_vec for g in graphs]),
            length=torch.cat([g.length for g in graphs]),
            counts=torch.cat([g.counts for g in graphs]),
            batch=torch.cat([g.batch + int(o) for g, o in zip(graphs, goffs)]),
            edge_batch=torch.cat([g.edge_batch + int(o) for g, o in zip(graphs, goffs)]),
            r_cut=graphs[0].r_cut,
            numbers=numbers,
            pbc=graphs[0].pbc if len(pbcs) == 1 else (True, True, True),
        )


def _edge_vectors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    center: torch.Tensor,
    neighbor: torch.Tensor,
    shift: torch.Tensor,
    edge_batch: torch.Tensor,
) -> torch.Tensor:
    # Written with differentiable ops so forces (d/dpositions) and stress (d/dcell) flow.
    # One structure: a plain [E, 3] @ [3, 3] product (einsum/bmm over E tiny matrices is
    # ~30x slower); a batch: gather each edge's cell and contract the shift by broadcasting.
    s = shift.to(positions.dtype)
    if cell.shape[0] == 1:
        offset = s @ cell[0]
    else:
        offset = (s[:, :, None] * cell[edge_batch]).sum(1)
    return positions[neighbor] - positions[center] + offset


def _as_tensor(x: Any, name: str, dtype: torch.dtype | None) -> torch.Tensor:
    """A tensor with values (meta tensors have none) from a tensor or a numeric array."""
    if isinstance(x, torch.Tensor):
        if x.device.type == "meta":
            raise ValueError(
                f"{name} is a meta tensor (shape only, no values); neighbor_list needs values"
            )
        return x
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} must be a tensor or an array of numbers (Å), got {type(x).__name__}"
        ) from exc
    return torch.as_tensor(arr, dtype=dtype)


def _check_numbers(numbers: Any, n: int, device: torch.device) -> torch.Tensor | None:
    """Atomic numbers as an int64 tensor [n] on ``device`` (list, array or tensor accepted)."""
    if numbers is None:
        return None
    if not isinstance(numbers, torch.Tensor):
        arr = np.asarray(numbers)
        if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
            raise TypeError(
                f"numbers must be integers (atomic numbers) [N], got {type(numbers).__name__} "
                f"of dtype {arr.dtype}"
            )
        numbers = torch.as_tensor(arr.astype(np.int64))
    elif numbers.is_floating_point() or numbers.is_complex() or numbers.dtype == torch.bool:
        raise TypeError(f"numbers must be an integer tensor [N], got dtype {numbers.dtype}")
    if tuple(numbers.shape) != (n,):
        raise ValueError(
            f"numbers must have shape [{n}] (one per atom), got {tuple(numbers.shape)}"
        )
    return numbers.to(device=device, dtype=torch.long)


#: Atoms closer than this (Å) overlap: an input error (a duplicated site), never an edge.
OVERLAP_TOL = 1e-4


def _check_overlaps(
    length: torch.Tensor,
    center: torch.Tensor,
    neighbor: torch.Tensor,
    shift: torch.Tensor,
) -> None:
    """Raise when two distinct atoms (possibly through a periodic image) are closer than
    OVERLAP_TOL. An atom next to its own image only means a short lattice vector: that is
    the cell's business (``check_cell``), and so is the r = 0 edge of ``self_interaction``.
    """
    if length.numel() == 0:
        return
    d = length.detach()
    on_numpy = d.device.type == "cpu" and d.dtype in (torch.float64, torch.float32)
    shortest = float(d.numpy().min()) if on_numpy else float(d.min())
    if shortest > OVERLAP_TOL:  # the common case: one reduction, no temporaries
        return
    close = d <= OVERLAP_TOL
    idx = torch.nonzero(close).flatten()
    a, b, sh = center[idx], neighbor[idx], shift[idx]
    keep = a < b  # each pair of distinct atoms once
    if not bool(keep.any()):
        return
    idx, a, b, sh = idx[keep], a[keep], b[keep], sh[keep]
    pairs = [
        f"atoms {int(i)} and {int(j)}"
        + ("" if not bool((s != 0).any()) else f" (image shift {tuple(int(x) for x in s)})")
        + f" at {float(length[e].detach()):.3g} Å"
        for i, j, s, e in zip(a[:5], b[:5], sh[:5], idx[:5])
    ]
    more = f" and {len(idx) - 5} more pairs" if len(idx) > 5 else ""
    raise ValueError(
        f"positions: overlapping atoms (closer than {OVERLAP_TOL:g} Å): {'; '.join(pairs)}{more}. "
        "Two atoms at the same place are an input error (a duplicated site?); remove or move them"
    )


def _empty_graph(
    positions: torch.Tensor,
    cell: torch.Tensor,
    r_cut: float,
    pbc: tuple[bool, bool, bool],
    numbers: torch.Tensor | None,
) -> Graph:
    """The graph of a structure without atoms (what a batch of an empty Structure gives)."""
    dev = positions.device
    idx = torch.zeros(0, dtype=torch.long, device=dev)
    return Graph(
        positions=positions,
        cell=cell.unsqueeze(0),
        center=idx,
        neighbor=idx.clone(),
        shift=torch.zeros(0, 3, dtype=torch.long, device=dev),
        edge_vec=positions.new_zeros(0, 3),
        length=positions.new_zeros(0),
        counts=idx.clone(),
        batch=idx.clone(),
        r_cut=r_cut,
        numbers=numbers,
        pbc=pbc,
        edge_batch=idx.clone(),
    )


def neighbor_list(
    positions: torch.Tensor,
    cell: torch.Tensor,
    r_cut: float,
    *,
    pbc: bool | Sequence[bool] = (True, True, True),
    self_interaction: bool = False,
    max_edges: int = DEFAULT_MAX_EDGES,
    cell_tol: float = DEFAULT_CELL_TOL,
    numbers: torch.Tensor | None = None,
) -> Graph:
    """All pairs closer than ``r_cut`` in a periodic structure.

    Parameters
    ----------
    positions : Tensor [N, 3]
        Cartesian positions, Å. May require grad: edge vectors keep the autograd history.
    cell : Tensor [3, 3]
        Lattice vectors as rows, Å.
    r_cut : float
        Radial cutoff, Å; pairs with distance < r_cut are edges.
    pbc : bool or 3 bools
        Periodicity along each lattice vector.
    self_interaction : bool
        Include the pair (a, a) with zero shift (r = 0 edge).
    max_edges : int
        Refuse (ValueError) when the estimated number of edges exceeds this.
    cell_tol : float
        Refuse cells whose LLL-reduced basis has |det| <= cell_tol * |a||b||c| (flat cells
        would hang or give a wrong graph in the underlying libraries).
    numbers : Tensor [N] or sequence of int, optional
        Atomic numbers, stored on the graph (int64).

    Returns
    -------
    Graph
        One structure; edges sorted by center atom. No atoms (positions [0, 3]): an empty
        graph. Shifts are those of the given ``cell`` even when the search ran in its reduced
        basis.

    Raises
    ------
    ValueError
        Cell or cutoff refused by :func:`periodic_conv.check_cell` (flat or too thin a cell,
        more than ``max_edges`` expected edges, ``r_cut`` outside [MIN_R_CUT, MAX_R_CUT]);
        non-finite values; wrong shapes; two distinct atoms closer than ``OVERLAP_TOL`` (the
        message names them).
    TypeError
        Arguments of the wrong type (each message names the argument).

    Notes
    -----
    The cell is checked (and, when skewed, LLL-reduced) by :func:`periodic_conv.check_cell`,
    so a skewed but legitimate cell is searched in its reduced basis (fast) and a degenerate
    one fails at once.
    When the package's C++ extension is built (first use of the ``cpp`` convolution backend,
    or :func:`periodic_conv.build_extension`),
    vesin's C API and the grouping by center run in one compiled call; otherwise vesin's
    Python API and a compiled or numpy grouping are used (same graph, slower). This function
    never compiles the extension itself.
    """
    positions, cell, pbc_t, r_cut, self_interaction = _check_arguments(
        positions, cell, r_cut, pbc, self_interaction
    )
    pos_t, cell_t, info = _validate(positions, cell, r_cut, pbc_t, cell_tol, max_edges)
    numbers = _check_numbers(numbers, positions.shape[0], positions.device)
    if pos_t.shape[0] == 0:
        return _empty_graph(positions, cell, r_cut, pbc_t, numbers)
    # Without autograd the edge vectors and lengths come from the grouping kernel (compiled
    # paths) or from vesin (numpy path); with it _assemble recomputes them from
    # differentiable ops so forces and stress flow.
    differentiable = positions.requires_grad or cell.requires_grad
    search_cell = _search_cell(cell_t, pbc_t, info)
    # far-away atoms brought closer for vesin's grid (ordinary crystals: unchanged); moved
    # atoms get their edge vectors from the given positions, as with autograd
    far = search_positions(pos_t.numpy(), search_cell.numpy(), pbc_t, r_cut, info.heights)
    recompute = differentiable or far.moved
    search_pos = torch.from_numpy(far.positions) if far.moved else pos_t
    out = search(search_pos, search_cell, pbc_t, r_cut, self_interaction, recompute)
    return _assemble(positions, cell, out, info, r_cut, pbc_t, numbers, recompute, far.wrapped)


def _check_arguments(
    positions: Any, cell: Any, r_cut: Any, pbc: Any, self_interaction: Any
) -> tuple[torch.Tensor, torch.Tensor, tuple[bool, bool, bool], float, bool]:
    """``neighbor_list``'s arguments as tensors (cell in the positions' dtype) and checked
    options; each error names its argument."""
    positions = _as_tensor(positions, "positions", None)
    cell = _as_tensor(cell, "cell", positions.dtype)
    if not positions.is_floating_point():
        raise TypeError(f"positions must be a floating tensor, got dtype {positions.dtype}")
    if cell.dtype != positions.dtype:
        cell = cell.to(positions.dtype)
    pbc_t = check_pbc(pbc)
    r_cut = check_r_cut(r_cut)
    if isinstance(self_interaction, (bool, np.bool_)):
        self_interaction = bool(self_interaction)
    else:
        raise TypeError(f"self_interaction must be a bool, got {self_interaction!r}")
    return positions, cell, pbc_t, r_cut, self_interaction


def _search_cell(
    cell_t: torch.Tensor, pbc_t: tuple[bool, bool, bool], info: CellCheck
) -> torch.Tensor:
    """The cell handed to vesin: zeros without periodicity, the reduced basis of a skewed
    cell (far fewer images; :func:`_assemble` maps the shifts back), else the cell."""
    if not any(pbc_t):
        return torch.zeros(3, 3, dtype=torch.float64)
    if info.reduced_used:
        return torch.from_numpy(info.reduced)
    return cell_t


def _assemble(
    positions: torch.Tensor,
    cell: torch.Tensor,
    out: tuple[Any, ...],
    info: CellCheck,
    r_cut: float,
    pbc_t: tuple[bool, bool, bool],
    numbers: torch.Tensor | None,
    differentiable: bool,
    wrapped: np.ndarray | None = None,
) -> Graph:
    """The Graph from :func:`periodic_conv._search.search`'s grouped edges: on the positions'
    device, shifts of the given cell (and of the given positions, where the search had
    atoms ``wrapped`` into the cell), differentiable edge vectors when asked, no
    overlaps."""
    device = positions.device
    if device.type != "cpu":
        out = tuple(None if a is None else a.to(device) for a in out)
    center, neighbor, shift, vec, length, counts, edge_batch, batch = out
    if info.reduced_used:
        # s_r @ reduced == (s_r @ transform) @ cell
        t = torch.from_numpy(info.transform).to(shift.device)
        shift = shift[:, :1] * t[0] + shift[:, 1:2] * t[1] + shift[:, 2:] * t[2]
    if wrapped is not None:  # r_b - r_a + s L with r = r_search + w L
        w = torch.from_numpy(wrapped).to(shift.device)
        shift = shift + w[center] - w[neighbor]
    cell_b = cell.unsqueeze(0)
    if differentiable:
        vec = _edge_vectors(positions, cell_b, center, neighbor, shift, edge_batch)
        length = torch.linalg.norm(vec, dim=-1)
    elif vec.dtype != positions.dtype:
        vec, length = vec.to(positions.dtype), length.to(positions.dtype)
    _check_overlaps(length, center, neighbor, shift)
    return Graph(
        positions=positions,
        cell=cell_b,
        center=center,
        neighbor=neighbor,
        shift=shift,
        edge_vec=vec,
        length=length,
        counts=counts,
        batch=batch,
        r_cut=float(r_cut),
        numbers=numbers,
        pbc=pbc_t,
        edge_batch=edge_batch,
    )
