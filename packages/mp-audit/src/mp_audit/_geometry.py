"""Pure per-structure geometry: nearest neighbors, crystal graph, cell sphere radii.

Everything here takes plain arrays (cell rows = lattice vectors in Å, Cartesian positions
in Å) and returns plain numbers, so the map step can run anywhere (process pool, cluster).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import vesin
from periodic_conv import MAX_R_CUT, MIN_R_CUT, cell_heights, check_cell, check_r_cut
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

#: cut-offs of the coverage table (Å), thesis §2.2
DEFAULT_R_CUTS = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
#: cells with |det| below this (Å^3) are reported as zero-volume
ZERO_VOLUME = 1e-6
#: two atoms closer than this (Å) overlap: a data error (no bond is shorter than ~0.5 Å)
OVERLAP_DISTANCE = 0.1


def _check_cell(cell: Any) -> np.ndarray:
    cell = np.asarray(cell, dtype=np.float64)
    if cell.shape != (3, 3):
        raise ValueError(f"cell has shape {cell.shape}: expected (3, 3) (rows = lattice vectors)")
    if not np.all(np.isfinite(cell)):
        raise ValueError("cell contains non-finite values: expected finite lengths in Å")
    return cell


def _check_positions(positions: Any) -> np.ndarray:
    try:
        pos = np.asarray(positions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"positions: not a numeric [N, 3] array in Å ({exc})") from None
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(
            f"positions has shape {pos.shape}: expected [N, 3] Cartesian coordinates in Å"
        )
    if len(pos) == 0:
        raise ValueError("positions is empty: expected at least one atom")
    if not np.isfinite(pos).all():
        bad = np.flatnonzero(~np.all(np.isfinite(pos), axis=1))
        raise ValueError(
            f"positions of atom(s) {bad[:10].tolist()} are not finite: expected finite "
            "Cartesian coordinates in Å"
        )
    return pos


def check_r_cuts(r_cuts: Any, name: str = "r_cuts") -> tuple[float, ...]:
    """Validate cut-offs (Å) once, before any work: sorted, duplicates removed.

    Each cut-off goes through :func:`periodic_conv.check_r_cut` (the one range for every
    package: ``[periodic_conv.MIN_R_CUT, periodic_conv.MAX_R_CUT]``, one message).

    Parameters
    ----------
    r_cuts
        One cut-off or a sequence of cut-offs in Å.
    name
        Argument name used in the error message (the CLI passes ``--r-cut``).

    Returns
    -------
    tuple of float
        The cut-offs in increasing order.

    Raises
    ------
    ValueError
        No cut-off, or one that is not finite or out of range.
    TypeError
        A cut-off that is not a real number.
    """
    if isinstance(r_cuts, (str, bytes)) or not hasattr(r_cuts, "__iter__"):
        r_cuts = [r_cuts]
    values = list(r_cuts)
    if not values:
        raise ValueError(
            f"{name}=[]: expected at least one cut-off in Å, in "
            f"[{MIN_R_CUT:g}, {MAX_R_CUT:g}] (periodic_conv.MIN_R_CUT, MAX_R_CUT)"
        )
    return tuple(sorted({check_r_cut(r, name) for r in values}))


def _volume(cell: np.ndarray) -> float:
    return abs(float(np.linalg.det(cell)))


def _inscribed(cell: np.ndarray) -> float:
    return _inscribed_from(_volume(cell), cell)


def _inscribed_from(volume: float, cell: np.ndarray) -> float:
    """Half the smallest height of the cell (:func:`periodic_conv.cell_heights`); 0 when flat."""
    if volume < ZERO_VOLUME:
        return 0.0
    return 0.5 * min(cell_heights(cell))


def _enclosing(cell: np.ndarray) -> float:
    a, b, c = cell
    diagonals = np.array([a + b + c, a + b - c, a - b + c, -a + b + c])
    return 0.5 * float(np.sqrt(np.einsum("ij,ij->i", diagonals, diagonals).max()))


def inscribed_radius(cell: Any) -> float:
    """Radius (Å) of the largest sphere inside the unit-cell parallelepiped.

    The sphere touches the closest pair of opposite faces: ``r = min_i h_i / 2`` with the
    face distance ``h_i = V / |a_j x a_k|`` (:func:`periodic_conv.cell_heights`).
    """
    return _inscribed(_check_cell(cell))


def enclosing_radius(cell: Any) -> float:
    """Radius (Å) of the smallest sphere enclosing the unit-cell parallelepiped.

    A parallelepiped is centrally symmetric, so the minimal ball is centred at its centre
    (the average of a ball and its mirror image is no larger) and its radius is half the
    longest of the four body diagonals ``|±a ± b + c|``.
    """
    return _enclosing(_check_cell(cell))


def _pairs(positions: np.ndarray, cell: np.ndarray, cutoff: float):
    try:
        # one thread: structures are small and the parallelism lives in the map step
        calc = vesin.NeighborList(cutoff=float(cutoff), full_list=False, n_threads=1)
    except TypeError:  # older vesin without n_threads
        calc = vesin.NeighborList(cutoff=float(cutoff), full_list=False)
    i, j, d = calc.compute(points=positions, box=cell, periodic=True, quantities="ijd")
    return np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64), np.asarray(d)


def _per_atom_min(n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Smallest pair distance per atom (inf when an atom has no pair)."""
    nn = np.full(n, np.inf)
    if len(d) == 0:
        return nn
    idx = np.concatenate([i, j])
    dd = np.concatenate([d, d])
    order = np.lexsort((dd, idx))
    first = np.unique(idx[order], return_index=True)
    nn[first[0]] = dd[order][first[1]]
    return nn


def nearest_neighbor_distances(positions: Any, cell: Any, cutoff: float = 8.0) -> np.ndarray:
    """Distance (Å) from every atom to its closest other atom or periodic image.

    Atoms with nothing within ``cutoff`` are searched again out to the shortest lattice
    vector (a translation always gives a neighbor there), so the result is exact.

    Parameters
    ----------
    positions
        [N, 3] Cartesian positions, Å.
    cell
        [3, 3] lattice vectors as rows, Å.
    cutoff
        First search radius, Å (in ``[periodic_conv.MIN_R_CUT, periodic_conv.MAX_R_CUT]``).

    Returns
    -------
    numpy.ndarray
        [N] distances in Å.

    Raises
    ------
    ValueError
        Bad positions, cell or cutoff, or a degenerate cell (see
        :func:`periodic_conv.check_cell`).
    """
    positions = _check_positions(positions)
    cell = _check_cell(cell)
    r = check_r_cut(cutoff, "cutoff")
    search = _searchable(cell, r, len(positions))
    i, j, d = _pairs(positions, search, r)
    return _nearest(positions, cell, search, r, _per_atom_min(len(positions), i, j, d))


def _searchable(cell: np.ndarray, r_cut: float, n_atoms: int) -> np.ndarray:
    """The shared guard: raises for degenerate cells, returns the (reduced) cell to search."""
    return check_cell(cell, r_cut, n_atoms=n_atoms).reduced


def _nearest(
    positions: np.ndarray, cell: np.ndarray, search: np.ndarray, r: float, nn: np.ndarray
) -> np.ndarray:
    """Complete ``nn`` (found within ``r``) for atoms with no neighbor within ``r``."""
    if np.all(nn <= r):
        return nn
    # a lattice translation of every atom lies within the shortest lattice vector
    shortest = float(np.sqrt(min(np.einsum("ij,ij->i", m, m).min() for m in (cell, search))))
    r2 = min(shortest * (1 + 1e-9) + 1e-9, MAX_R_CUT)
    search = _searchable(cell, r2, len(positions))
    i, j, d = _pairs(positions, search, r2)
    nn = _per_atom_min(len(positions), i, j, d)
    if not np.all(nn <= r2):
        lonely = np.flatnonzero(nn > r2)[:10].tolist()
        raise ValueError(
            f"atom(s) {lonely} have no neighbor within periodic_conv.MAX_R_CUT = "
            f"{MAX_R_CUT:g} Å: the cell is too large for the audit"
        )
    return nn


def _overlaps(i: np.ndarray, j: np.ndarray, d: np.ndarray) -> str:
    close = d < OVERLAP_DISTANCE
    if not close.any():
        return ""
    pairs = sorted({(int(a), int(b)) for a, b in zip(i[close], j[close])})
    return " ".join(f"{a}-{b}" for a, b in pairs)


def graph_metrics(
    n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray, r_cut: float
) -> tuple[int, int]:
    """Connected components and diameter of the crystal graph at ``r_cut``.

    Nodes are the unit-cell atoms; ``a`` and ``b`` (``a != b``) share an edge when any
    periodic image of ``b`` lies closer than ``r_cut`` to ``a`` (strictly, as in the graphs
    :func:`periodic_conv.neighbor_list` builds). The diameter is the largest
    shortest-path length in hops; ``-1`` when the graph is disconnected.
    """
    keep = (d < r_cut) & (i != j)
    if n == 1:
        return 1, 0
    if n <= DENSE_MAX:
        return _dense_graph_metrics(n, i[keep], j[keep])
    adj = csr_matrix((np.ones(int(keep.sum())), (i[keep], j[keep])), shape=(n, n))
    n_comp, _ = connected_components(adj, directed=False)
    if n_comp > 1:
        return int(n_comp), -1
    dist = shortest_path(adj, method="D", directed=False, unweighted=True)
    return 1, int(dist.max())


#: up to this many atoms the graph is searched with dense boolean algebra (no scipy overhead)
DENSE_MAX = 96


def _dense_graph_metrics(n: int, i: np.ndarray, j: np.ndarray) -> tuple[int, int]:
    """Breadth-first search from every node at once with dense matrices (small graphs)."""
    adj = np.zeros((n, n), dtype=np.float32)
    adj[i, j] = 1.0
    adj[j, i] = 1.0
    seen = np.eye(n, dtype=bool)
    frontier = seen.astype(np.float32)
    steps = 0
    while True:
        new = ((frontier @ adj) > 0) & ~seen
        if not new.any():
            break
        seen |= new
        frontier = new.astype(np.float32)
        steps += 1
    if seen.all():
        return 1, steps
    # rows of ``seen`` are the components; count the distinct ones
    return len(np.unique(seen, axis=0)), -1


def geometry_metrics(
    positions: Any, cell: Any, r_cuts: Sequence[float] = DEFAULT_R_CUTS
) -> dict[str, Any]:
    """All geometric audit numbers of one structure (pure function).

    Parameters
    ----------
    positions
        [N, 3] Cartesian positions, Å.
    cell
        [3, 3] lattice vectors as rows, Å.
    r_cuts
        Cut-offs (Å) for isolated atoms and the crystal graph, each in
        ``[periodic_conv.MIN_R_CUT, periodic_conv.MAX_R_CUT]``.

    Returns
    -------
    dict
        ``volume`` (Å^3), ``inscribed_radius``/``enclosing_radius`` (Å), ``nn_min`` (shortest
        distance to any neighbor, Å), ``nn_max`` (largest nearest-neighbor distance over
        atoms, Å: the structure has an isolated atom at ``r_cut`` iff ``nn_max >= r_cut``, as
        :func:`periodic_conv.neighbor_list` keeps pairs strictly closer than ``r_cut``),
        ``overlapping_atoms`` (pairs of atom indices closer than ``OVERLAP_DISTANCE``,
        written ``"0-1 2-5"``; empty when none), and per cut-off ``r`` the keys
        ``isolated_<r>``, ``components_<r>``, ``diameter_<r>``.
        Zero-volume cells return ``volume`` only, with ``zero_volume = True``.

    Raises
    ------
    ValueError
        Bad positions, cell or cut-offs, or a degenerate cell: so thin that the neighbor
        search would return more than ``periodic_conv.DEFAULT_MAX_EDGES`` edges (the one
        shared guard :func:`periodic_conv.check_cell`; skewed cells are LLL-reduced first).
    """
    positions = _check_positions(positions)
    cell = _check_cell(cell)
    r_cuts = check_r_cuts(r_cuts)
    volume = _volume(cell)
    out: dict[str, Any] = {"volume": volume, "zero_volume": volume < ZERO_VOLUME}
    if out["zero_volume"]:
        return out
    n = len(positions)
    r_max = max(r_cuts)
    search = _searchable(cell, r_max, n)
    out["inscribed_radius"] = _inscribed_from(volume, cell)
    out["enclosing_radius"] = _enclosing(cell)
    i, j, d = _pairs(positions, search, r_max)
    nn = _nearest(positions, cell, search, r_max, _per_atom_min(n, i, j, d))
    out["nn_min"] = float(nn.min())
    out["nn_max"] = float(nn.max())
    out["overlapping_atoms"] = _overlaps(i, j, d)
    for r in r_cuts:
        comps, diam = graph_metrics(n, i, j, d, r)
        out[f"isolated_{r:g}"] = int(np.sum(nn >= r))
        out[f"components_{r:g}"] = comps
        out[f"diameter_{r:g}"] = diam
    return out
