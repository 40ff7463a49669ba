"""Positions the neighbour search can bin: far-away atoms moved closer without changing any
pair closer than the cutoff.

vesin bins atoms into a grid of cells about ``r_cut`` wide, with 32-bit cell indices and at
most 1e5 cells. Two kinds of input break that grid (no edges, or the process killed by a
division by zero inside vesin):

* an atom many cell lengths outside the cell along a periodic direction (its cell index
  overflows): it is moved by whole lattice vectors into the cell, and the edges' shifts are
  corrected by the same lattice vectors, so every edge vector is unchanged;
* atoms far apart along a direction without periodicity (the grid's cap then leaves a
  direction with zero cells, or the grid grows with the distance): along each direction
  perpendicular to every periodic lattice vector (all three axes without periodicity),
  every gap wider than ``r_cut + GAP_MARGIN`` between consecutive atoms is narrowed to that
  width. No pair across a gap was an edge (its atoms, and all their images, are more than
  ``r_cut`` apart along that direction alone) or becomes one, and the pairs on one side
  keep their vectors. A geometry vesin still cannot bin (a dense flake over 1,000 Å wide
  without periodicity) is refused with a clear error.

Ordinary crystals meet none of this: their positions reach the search unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SearchPositions", "search_positions"]

#: |fractional coordinate| along a periodic direction above which atoms are wrapped
WRAP_LIMIT = 1e3
#: what vesin's cell list allows (MAX_NUMBER_OF_CELLS in its cpu_cell_list.cpp)
VESIN_MAX_CELLS = 1e5
#: a narrowed gap is r_cut plus this, Å
GAP_MARGIN = 1.0


@dataclass(frozen=True)
class SearchPositions:
    """Positions for the search and how they differ from the given ones.

    ``wrapped`` [N, 3] (int64) are the lattice vectors subtracted from each atom (an edge
    a -> b found with shift s has shift ``s + wrapped[a] - wrapped[b]`` in the given
    positions: the two atoms of an edge were never narrowed apart, no gap lies between
    them); ``moved`` says whether any position changed (edge vectors must then be computed
    from the given positions).
    """

    positions: np.ndarray
    wrapped: np.ndarray | None
    moved: bool


def search_positions(
    pos: np.ndarray,
    cell: np.ndarray,
    pbc: tuple[bool, bool, bool],
    r_cut: float,
    heights: tuple[float, float, float],
) -> SearchPositions:
    """The positions to hand to vesin (see the module docstring); ``heights`` are the
    distances between the lattice planes of the cell searched, Å."""
    out, wrapped = pos, None
    if not all(pbc):  # first: narrowing along an oblique cell moves atoms along a and b too
        out = _narrow_gaps(out, r_cut, _free_directions(cell, pbc))
    # |fractional coordinate i| <= |r| / h_i: most crystals are settled without solving
    reach = float(np.sqrt(np.einsum("ij,ij->i", out, out).max())) if len(out) else 0.0
    spacing = min((h for h, p in zip(heights, pbc) if p), default=0.0)
    if any(pbc) and reach > WRAP_LIMIT * spacing and abs(np.linalg.det(cell)) > 0:
        frac = np.linalg.solve(cell.T, out.T).T
        periodic = np.array(pbc)
        if np.abs(frac[:, periodic]).max() > WRAP_LIMIT:
            wrapped = np.where(periodic, np.floor(frac), 0.0).astype(np.int64)
            out = out - wrapped.astype(np.float64) @ cell
    moved = out is not pos
    _refuse_unbinnable(out, pbc, r_cut, heights)
    return SearchPositions(out, wrapped, moved)


def _free_directions(cell: np.ndarray, pbc: tuple[bool, bool, bool]) -> np.ndarray:
    """Orthonormal directions (rows) perpendicular to every periodic lattice vector: moving
    an atom along them moves all its images alike. The Cartesian axes without periodicity."""
    periodic = cell[np.array(pbc)]
    if not len(periodic):
        return np.eye(3)
    _, _, vt = np.linalg.svd(periodic)
    return vt[len(periodic) :]


def _narrow_gaps(pos: np.ndarray, r_cut: float, directions: np.ndarray) -> np.ndarray:
    """Along each of ``directions``, every gap wider than ``r_cut + GAP_MARGIN`` between
    consecutive atoms narrowed to that width; ``pos`` itself where no gap is that wide."""
    out = pos
    width = r_cut + GAP_MARGIN
    for u in directions:
        t = out @ u
        order = np.argsort(t, kind="stable")
        gaps = np.diff(t[order])
        excess = np.where(gaps > width, gaps - width, 0.0)
        if not excess.any():
            continue
        shift = np.zeros(len(t))
        shift[order[1:]] = np.cumsum(excess)
        out = out - shift[:, None] * u[None, :]
    return out


def _refuse_unbinnable(
    pos: np.ndarray,
    pbc: tuple[bool, bool, bool],
    r_cut: float,
    heights: tuple[float, float, float],
) -> None:
    """A ValueError where vesin's cap on its number of cells would leave a direction with no
    cell (it divides by that count): its own rule, applied to the periodic directions'
    plane spacings and the non-periodic directions' extents."""
    if not len(pos):
        return
    extent = pos.max(0) - pos.min(0)
    size = [heights[d] if pbc[d] else float(extent[d]) for d in range(3)]
    n = [max(1.0, math.trunc(s / r_cut)) for s in size]
    if n[0] * n[1] * n[2] <= VESIN_MAX_CELLS:
        return
    ratio_xy, ratio_yz = n[0] / n[1], n[1] / n[2]
    nz = math.trunc((VESIN_MAX_CELLS / (ratio_xy * ratio_yz * ratio_yz)) ** (1 / 3))
    ny = math.trunc(ratio_yz * nz)
    nx = math.trunc(ratio_xy * ny)
    if min(nx, ny, nz) < 1:
        spans = ", ".join(f"{s:.4g}" for s in size)
        raise ValueError(
            f"the neighbour search cannot bin this structure at r_cut={r_cut:g} Å: the cell "
            f"spacings along periodic directions and the atoms' extent along the others are "
            f"({spans}) Å, too different in size (pbc={pbc}); atoms far along a direction "
            "without periodicity? Split the structure, or give that direction periodicity "
            "in a cell larger than the structure plus r_cut"
        )
