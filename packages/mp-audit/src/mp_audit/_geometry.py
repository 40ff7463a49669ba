"""Pure per-structure geometry: nearest neighbors, crystal graph, cell sphere radii.

Everything here takes plain arrays (cell rows = lattice vectors in Å, Cartesian positions
in Å) and returns plain numbers, so the map step can run anywhere (process pool, cluster).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import vesin
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

#: cut-offs of the coverage table (Å), thesis §2.2
DEFAULT_R_CUTS = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
#: cells with |det| below this (Å^3) are reported as zero-volume
ZERO_VOLUME = 1e-6
#: smallest cut-off accepted (Å): below it every atom is isolated and the audit says nothing
MIN_R_CUT = 0.1
#: largest cut-off accepted (Å)
MAX_R_CUT = 50.0
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
    bad = np.flatnonzero(~np.all(np.isfinite(pos), axis=1))
    if len(bad):
        raise ValueError(
            f"positions of atom(s) {bad[:10].tolist()} are not finite: expected finite "
            "Cartesian coordinates in Å"
        )
    return pos


def check_r_cuts(r_cuts: Any, name: str = "r_cuts") -> tuple[float, ...]:
    """Validate cut-offs (Å) once, before any work: sorted, duplicates removed.

    Parameters
    ----------
    r_cuts
        One cut-off or a sequence of cut-offs in Å.
    name
        Argument name used in the error message (the CLI passes ``--r-cut``).

    Returns
    -------
    tuple of float
        The cut-offs in increasing order, each in ``[MIN_R_CUT, MAX_R_CUT]``.

    Raises
    ------
    ValueError
        Empty, non-numeric, non-finite or out-of-range cut-offs; the message names
        ``name``, the values received and the allowed range.
    """
    if isinstance(r_cuts, (int, float, np.integer, np.floating)) and not isinstance(r_cuts, bool):
        r_cuts = [r_cuts]
    try:
        values = [float(r) for r in r_cuts]
    except (TypeError, ValueError):
        raise ValueError(
            f"{name}={r_cuts!r}: expected cut-offs in Å, numbers in [{MIN_R_CUT:g}, {MAX_R_CUT:g}]"
        ) from None
    bad = [r for r in values if not (math.isfinite(r) and MIN_R_CUT <= r <= MAX_R_CUT)]
    if not values or bad:
        raise ValueError(
            f"{name}={values!r}: expected at least one cut-off in Å, each in "
            f"[{MIN_R_CUT:g}, {MAX_R_CUT:g}]" + (f" (offending: {bad})" if bad else "")
        )
    return tuple(sorted(set(values)))


def _face_normals(cell: np.ndarray) -> np.ndarray:
    # rows b x c, c x a, a x b written out: np.cross costs more than the maths on 3x3
    a, b, c = cell
    return np.array(
        [
            [b[1] * c[2] - b[2] * c[1], b[2] * c[0] - b[0] * c[2], b[0] * c[1] - b[1] * c[0]],
            [c[1] * a[2] - c[2] * a[1], c[2] * a[0] - c[0] * a[2], c[0] * a[1] - c[1] * a[0]],
            [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]],
        ]
    )


def _inscribed(cell: np.ndarray) -> float:
    normals = _face_normals(cell)
    volume = abs(float(normals[2] @ cell[2]))
    areas = np.sqrt(np.einsum("ij,ij->i", normals, normals))
    if volume < ZERO_VOLUME or areas.min() == 0:
        return 0.0
    return 0.5 * volume / float(areas.max())


def _enclosing(cell: np.ndarray) -> float:
    a, b, c = cell
    diagonals = np.array([a + b + c, a + b - c, a - b + c, -a + b + c])
    return 0.5 * float(np.sqrt(np.einsum("ij,ij->i", diagonals, diagonals).max()))


def inscribed_radius(cell: Any) -> float:
    """Radius (Å) of the largest sphere inside the unit-cell parallelepiped.

    The sphere touches the closest pair of opposite faces: ``r = min_i h_i / 2`` with the
    face distance ``h_i = V / |a_j x a_k|``.
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

    Atoms with nothing within ``cutoff`` are retried with a doubled cutoff until each has a
    neighbor (a lattice translation always gives one), so the result is exact.

    Parameters
    ----------
    positions
        [N, 3] Cartesian positions, Å.
    cell
        [3, 3] lattice vectors as rows, Å.
    cutoff
        First search radius, Å (any value in ``[MIN_R_CUT, MAX_R_CUT]``).

    Returns
    -------
    numpy.ndarray
        [N] distances in Å.
    """
    positions = _check_positions(positions)
    cell = _check_cell(cell)
    (r,) = check_r_cuts([cutoff], "cutoff")
    _guard(cell, max(r, 2.0 * _retry_bound(cell)), len(positions))
    return _nearest(positions, cell, r)


def _nearest(positions: np.ndarray, cell: np.ndarray, r: float) -> np.ndarray:
    # ends once r passes the shortest lattice vector (at most 2x that: the guard's bound)
    n = len(positions)
    while True:
        i, j, d = _pairs(positions, cell, r)
        nn = _per_atom_min(n, i, j, d)
        if np.all(nn <= r):
            return nn
        r *= 2.0


def _retry_bound(cell: np.ndarray) -> float:
    # the shortest lattice vector bounds every nearest-neighbor distance
    return float(np.sqrt(np.einsum("ij,ij->i", cell, cell).min()))


def _guard(cell: np.ndarray, r_cut: float, n_atoms: int) -> None:
    """The degenerate-cell guard (thin or skewed cells whose image count explodes)."""
    volume = abs(float(np.linalg.det(cell)))
    normals = _face_normals(cell)
    areas = np.sqrt(np.einsum("ij,ij->i", normals, normals))
    heights = volume / np.maximum(areas, np.finfo(float).tiny)
    images = float(np.prod(2 * np.ceil(r_cut / np.maximum(heights, 1e-300)) + 1))
    if not images * max(n_atoms, 1) <= MAX_IMAGES:
        raise ValueError(
            f"cell {np.round(cell, 6).tolist()} is degenerate for r_cut={r_cut:g} Å: its "
            f"heights {np.round(heights, 6).tolist()} Å need {images:.3g} periodic images; "
            f"allowed: at most {MAX_IMAGES:g} images x atoms"
        )


#: the degenerate-cell guard refuses cells that need more (images x atoms) than this
MAX_IMAGES = 2e6


def _overlaps(i: np.ndarray, j: np.ndarray, d: np.ndarray) -> str:
    close = d < OVERLAP_DISTANCE
    pairs = sorted({(int(a), int(b)) for a, b in zip(i[close], j[close])})
    return " ".join(f"{a}-{b}" for a, b in pairs)


def graph_metrics(
    n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray, r_cut: float
) -> tuple[int, int]:
    """Connected components and diameter of the crystal graph at ``r_cut``.

    Nodes are the unit-cell atoms; ``a`` and ``b`` (``a != b``) share an edge when any
    periodic image of ``b`` lies within ``r_cut`` of ``a``. The diameter is the largest
    shortest-path length in hops; ``-1`` when the graph is disconnected.
    """
    keep = (d <= r_cut) & (i != j)
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
        ``[MIN_R_CUT, MAX_R_CUT]``.

    Returns
    -------
    dict
        ``volume`` (Å^3), ``inscribed_radius``/``enclosing_radius`` (Å), ``nn_min`` (shortest
        distance to any neighbor, Å), ``nn_max`` (largest nearest-neighbor distance over
        atoms, Å: the structure has an isolated atom at ``r_cut`` iff ``nn_max > r_cut``),
        ``overlapping_atoms`` (pairs of atom indices closer than ``OVERLAP_DISTANCE``,
        written ``"0-1 2-5"``; empty when none), and per cut-off ``r`` the keys
        ``isolated_<r>``, ``components_<r>``, ``diameter_<r>``.
        Zero-volume cells return ``volume`` only, with ``zero_volume = True``.

    Raises
    ------
    ValueError
        Bad positions, cell or cut-offs, or a degenerate cell (so thin or skewed that the
        neighbor search would need more than ``MAX_IMAGES`` periodic images times atoms).
    """
    positions = _check_positions(positions)
    cell = _check_cell(cell)
    r_cuts = check_r_cuts(r_cuts)
    volume = float(abs(np.linalg.det(cell)))
    out: dict[str, Any] = {"volume": volume, "zero_volume": volume < ZERO_VOLUME}
    if out["zero_volume"]:
        return out
    n = len(positions)
    r_max = max(r_cuts)
    _guard(cell, max(r_max, 2.0 * _retry_bound(cell)), n)
    out["inscribed_radius"] = _inscribed(cell)
    out["enclosing_radius"] = _enclosing(cell)
    i, j, d = _pairs(positions, cell, r_max)
    nn = _per_atom_min(n, i, j, d)
    if not np.all(nn <= r_max):
        nn = _nearest(positions, cell, 2.0 * r_max)
    out["nn_min"] = float(nn.min())
    out["nn_max"] = float(nn.max())
    out["overlapping_atoms"] = _overlaps(i, j, d)
    for r in r_cuts:
        comps, diam = graph_metrics(n, i, j, d, r)
        out[f"isolated_{r:g}"] = int(np.sum(nn > r))
        out[f"components_{r:g}"] = comps
        out[f"diameter_{r:g}"] = diam
    return out
