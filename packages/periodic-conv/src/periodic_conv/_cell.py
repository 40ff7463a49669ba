"""The one guard for periodic cells and cutoffs (issue 12 items 1-3), in plain numpy.

A neighbour search costs time and memory in proportion to the number of periodic images it
must visit and to the number of edges it returns. Both follow from three numbers:

* the heights ``h_i = V / |a_j x a_k|`` of the cell (distance between the lattice planes
  spanned by the two other lattice vectors): ``r_cut`` reaches ``ceil(r_cut / h_i)``
  image shells along lattice vector ``i``;
* the volume ``V``: ``n_atoms`` atoms see about ``n_atoms * (n_atoms / V) * 4/3 pi r_cut^3``
  pairs closer than ``r_cut``;
* a skewed cell (``[[5,0,0],[0,5,0],[5,5,1e-3]]``) has tiny heights although its lattice
  is just a thin slab: it is first reduced (LLL, integer row operations that keep the
  lattice) so the heights measured are those of the shortest, most orthogonal basis.

:func:`check_cell` refuses a cell whose graph would not fit ``max_edges`` (with a message
naming the cell, the heights and the largest allowed ``r_cut``), and returns the reduced cell
with the integer matrix that maps shifts found with it back to shifts of the given cell.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_CELL_TOL",
    "DEFAULT_MAX_EDGES",
    "MAX_R_CUT",
    "MIN_R_CUT",
    "MIN_VOLUME_PER_ATOM",
    "CellCheck",
    "cell_heights",
    "check_cell",
    "check_pbc",
    "check_r_cut",
]

#: Default limit on the estimated number of edges (about 2.4 GB of int64 indices + shifts).
DEFAULT_MAX_EDGES = 50_000_000
#: A (reduced) cell is rejected when |det| <= CELL_TOL * |a| |b| |c| (flat or nearly flat).
DEFAULT_CELL_TOL = 1e-6
#: Largest accepted radial cutoff, Å. Interatomic-potential and audit cutoffs are a few Å;
#: 100 Å already means ~4e6 neighbours per atom at a typical density of 0.01 atoms/Å^3.
MAX_R_CUT = 100.0
#: Smallest accepted radial cutoff, Å (below ~1e-5 Å vesin refuses "cutoff is too small").
MIN_R_CUT = 1e-4
#: Volume per atom (Å^3) below which a periodic crystal has collapsed or is nearly flat: the
#: densest solids have about 5 Å^3 per atom (diamond 5.7). ``check_cell(...,
#: min_volume_per_atom=MIN_VOLUME_PER_ATOM)`` refuses such cells (a unit or parsing error,
#: not data); the neighbour search itself accepts any non-singular cell.
MIN_VOLUME_PER_ATOM = 1.0

# Cells whose orthogonality defect |a||b||c| / V is at most this are searched as given: then
# every height is at least |a_i| / defect, so reduction would not visit fewer images.
_DEFECT_NO_REDUCE = 2.0
# Below this |det| / (|a||b||c|) the cell is numerically singular (before reduction).
_SINGULAR = 1e-13
_LLL_DELTA = 0.99
_LLL_MAX_STEPS = 1000
_EYE = np.eye(3, dtype=np.int64)
_EYE.flags.writeable = False


@dataclass(frozen=True)
class CellCheck:
    """What :func:`check_cell` found out about a cell.

    Attributes
    ----------
    reduced : ndarray [3, 3] (float64)
        The cell to hand to a neighbour search, rows = lattice vectors, Å. Equal to the given
        cell unless lattice reduction lets the search visit fewer periodic images; always
        ``transform @ cell`` (the same lattice).
    transform : ndarray [3, 3] (int64)
        Unimodular integer matrix with ``reduced = transform @ cell``. A shift ``s_r`` found
        with ``reduced`` is the shift ``s_r @ transform`` of the given cell
        (``s_r @ reduced == (s_r @ transform) @ cell``).
    volume : float
        ``|det(cell)|``, Å^3.
    heights : tuple of 3 floats
        Heights ``V / |a_j x a_k|`` of ``reduced``, Å (``inf`` along non-periodic directions).
    image_shells : tuple of 3 ints
        ``ceil(r_cut / h_i)``: how many periodic images the search visits on each side.
    expected_edges : int
        Estimated number of edges ``n_atoms * (n_atoms / V * 4/3 pi r_cut^3 + 1)``.
    reduced_used : bool
        True when ``reduced`` differs from the given cell.
    """

    reduced: np.ndarray
    transform: np.ndarray
    volume: float
    heights: tuple[float, float, float]
    image_shells: tuple[int, int, int]
    expected_edges: int
    reduced_used: bool = False


def check_r_cut(r_cut: Any, name: str = "r_cut") -> float:
    """Validate a radial cutoff: a real number in ``[MIN_R_CUT, MAX_R_CUT]`` Å.

    Parameters
    ----------
    r_cut : float
        Radial cutoff, Å. Python or numpy real numbers (not bool); a one-element tensor or
        array is accepted too.
    name : str
        Argument name used in the error message.

    Returns
    -------
    float
        ``r_cut`` as a Python float.

    Raises
    ------
    TypeError
        When ``r_cut`` is not a real number.
    ValueError
        When ``r_cut`` is not finite or outside ``[MIN_R_CUT, MAX_R_CUT]``.
    """
    if type(r_cut) is float or type(r_cut) is int:
        if MIN_R_CUT <= r_cut <= MAX_R_CUT:
            return float(r_cut)
    value = r_cut
    if hasattr(value, "shape") and hasattr(value, "item") and not isinstance(value, numbers.Real):
        # a one-element torch tensor or numpy array
        if math.prod(tuple(value.shape)) != 1:
            raise TypeError(
                f"{name} must be a real number in Å, got a {type(r_cut).__name__} of shape "
                f"{tuple(value.shape)}"
            )
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number in Å, got {type(r_cut).__name__} {r_cut!r}")
    value = float(value)
    if not (MIN_R_CUT <= value <= MAX_R_CUT):  # also catches nan
        raise ValueError(
            f"{name} must be a finite number in [{MIN_R_CUT:g}, {MAX_R_CUT:g}] Å "
            f"(periodic_conv.MIN_R_CUT, MAX_R_CUT), got {value!r}"
        )
    return value


def _dot(u: list[float], v: list[float]) -> float:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _cross(u: list[float], v: list[float]) -> list[float]:
    return [u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]]


def _heights(rows: list[list[float]], volume: float) -> list[float]:
    """V / |a_j x a_k| for each row i (0 where the cross product vanishes)."""
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = rows
    out = []
    for x, y, z in (
        (by * cz - bz * cy, bz * cx - bx * cz, bx * cy - by * cx),  # b x c
        (cy * az - cz * ay, cz * ax - cx * az, cx * ay - cy * ax),  # c x a
        (ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx),  # a x b
    ):
        area = math.sqrt(x * x + y * y + z * z)
        out.append(volume / area if area > 0 else 0.0)
    return out


def _volume(rows: list[list[float]]) -> float:
    """|det| of the 3 rows: a . (b x c), Å^3."""
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = rows
    return abs(ax * (by * cz - bz * cy) + ay * (bz * cx - bx * cz) + az * (bx * cy - by * cx))


def cell_heights(cell: Any, name: str = "cell") -> tuple[float, float, float]:
    """Heights ``h_i = V / |a_j x a_k|`` of a cell, Å: the distance between neighbouring
    lattice planes spanned by the two other lattice vectors.

    The one home of this formula: :func:`check_cell` counts image shells with it and
    ``mp_audit`` takes the inscribed-sphere radius ``min_i h_i / 2`` from it. Plain numpy
    and Python floats (importing it loads no torch). The cell is used as given (no lattice
    reduction; :attr:`CellCheck.heights` are those of the reduced cell).

    Parameters
    ----------
    cell : array_like [3, 3]
        Lattice vectors as rows, Å.
    name : str
        How the cell is named in error messages.

    Returns
    -------
    tuple of 3 floats
        ``(h_0, h_1, h_2)`` in Å; 0 for a flat cell (zero volume or a vanishing face).

    Raises
    ------
    TypeError
        ``cell`` is not numeric.
    ValueError
        ``cell`` is not [3, 3] or not finite.

    Examples
    --------
    >>> import periodic_conv as pc
    >>> [round(h, 4) for h in pc.cell_heights([[4.0, 0, 0], [0, 4.0, 0], [2.0, 0, 3.0]])]
    [3.3282, 4.0, 3.0]
    """
    rows = _rows(cell, name)
    h = _heights(rows, _volume(rows))
    return (h[0], h[1], h[2])


def _lll(rows: list[list[float]], idx: list[int]) -> list[list[int]] | None:
    """LLL-reduce the rows ``idx`` of ``rows`` among themselves (delta = 0.99).

    Returns the unimodular integer matrix ``U`` (3 x 3, identity outside ``idx``) with
    ``U @ rows`` reduced, or None when it does not converge (numerically singular input).
    """
    k_dim = len(idx)
    b = [list(rows[i]) for i in idx]
    u = [[1 if r == c else 0 for c in range(k_dim)] for r in range(k_dim)]
    k, steps = 1, 0
    while k < k_dim:
        steps += 1
        if steps > _LLL_MAX_STEPS:
            return None
        # Gram-Schmidt of b[0..k] (k <= 2: recomputing is cheaper than bookkeeping)
        bs: list[list[float]] = []
        for i in range(k + 1):
            v = list(b[i])
            for w in bs:
                mu = _dot(b[i], w) / _dot(w, w)
                v = [v[0] - mu * w[0], v[1] - mu * w[1], v[2] - mu * w[2]]
            if _dot(v, v) <= 0.0:
                return None
            bs.append(v)
        # size-reduce b[k] against b[k-1], ..., b[0]
        for j in range(k - 1, -1, -1):
            q = round(_dot(b[k], bs[j]) / _dot(bs[j], bs[j]))
            if q:
                b[k] = [b[k][0] - q * b[j][0], b[k][1] - q * b[j][1], b[k][2] - q * b[j][2]]
                u[k] = [u[k][c] - q * u[j][c] for c in range(k_dim)]
        mu = _dot(b[k], bs[k - 1]) / _dot(bs[k - 1], bs[k - 1])
        bk = list(b[k])
        for w in bs[:k]:
            m = _dot(b[k], w) / _dot(w, w)
            bk = [bk[0] - m * w[0], bk[1] - m * w[1], bk[2] - m * w[2]]
        if _dot(bk, bk) >= (_LLL_DELTA - mu * mu) * _dot(bs[k - 1], bs[k - 1]):
            k += 1
        else:
            b[k], b[k - 1] = b[k - 1], b[k]
            u[k], u[k - 1] = u[k - 1], u[k]
            k = max(k - 1, 1)
    full = [[1 if r == c else 0 for c in range(3)] for r in range(3)]
    for r, i in enumerate(idx):
        full[i] = [0, 0, 0]
        for c, j in enumerate(idx):
            full[i][j] = u[r][c]
    return full


def check_pbc(pbc: Any) -> tuple[bool, bool, bool]:
    """Periodicity: a bool, or 3 bools (Python or numpy bools, e.g. ASE's ``get_pbc()``).

    Nothing else, so ``pbc="off"`` or ``pbc=(1, 0, 0)`` cannot silently mean something else.
    """
    if pbc.__class__ is tuple and len(pbc) == 3 and all(p.__class__ is bool for p in pbc):
        return pbc  # the common case, kept cheap
    if isinstance(pbc, (bool, np.bool_)):
        return (bool(pbc), bool(pbc), bool(pbc))
    allowed = "a bool or a sequence of 3 bools, e.g. True or (True, True, False)"
    if isinstance(pbc, (str, bytes)) or not hasattr(pbc, "__len__"):
        raise TypeError(f"pbc must be {allowed}, got {type(pbc).__name__} {pbc!r}")
    values = list(pbc.tolist() if hasattr(pbc, "tolist") else pbc)
    if len(values) != 3:
        raise ValueError(f"pbc must be {allowed}, got {pbc!r} (length {len(values)})")
    if not all(isinstance(p, (bool, np.bool_)) for p in values):
        raise TypeError(f"pbc must be {allowed}, got {pbc!r}")
    return (bool(values[0]), bool(values[1]), bool(values[2]))


def _int_arg(value: Any, name: str, minimum: int) -> int:
    if type(value) is not int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}"
            )
        value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def _rows(cell: Any, name: str) -> list[list[float]]:
    """The cell as 3 lists of 3 finite Python floats (fast for a list of lists of floats)."""
    rows: list[list[float]] = []
    if type(cell) is list and len(cell) == 3:
        try:
            rows = [[float(x) for x in row] for row in cell]
        except (TypeError, ValueError):
            rows = []
        if any(len(row) != 3 for row in rows):
            rows = []
    if not rows:
        try:
            arr = np.asarray(cell, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must be a 3x3 array of lattice vectors (rows, Å), "
                f"got {type(cell).__name__}"
            ) from exc
        if arr.shape != (3, 3):
            raise ValueError(
                f"{name} must have shape [3, 3] (rows = lattice vectors), got {arr.shape}"
            )
        rows = arr.tolist()
    total = sum(rows[0]) + sum(rows[1]) + sum(rows[2])
    if not math.isfinite(total) and not all(math.isfinite(x) for row in rows for x in row):
        raise ValueError(f"{name} must be finite, got {_fmt_cell(rows)}")
    return rows


def _fmt_cell(rows: list[list[float]]) -> str:
    return "[" + ", ".join("[" + ", ".join(f"{x:.6g}" for x in r) + "]" for r in rows) + "]"


def _shells(r_cut: float, heights: list[float], pbc: tuple[bool, bool, bool]) -> list[float]:
    return [math.ceil(r_cut / h) if p else 0 for h, p in zip(heights, pbc)]


def _check_options(
    r_cut: Any, n_atoms: Any, max_edges: Any, cell_tol: Any
) -> tuple[float, int, int]:
    """``check_cell``'s scalar arguments: (r_cut, n_atoms, max_edges) checked; cell_tol too."""
    r = check_r_cut(r_cut)
    n = 1 if n_atoms is None else _int_arg(n_atoms, "n_atoms", 0)
    limit = DEFAULT_MAX_EDGES if max_edges is None else _int_arg(max_edges, "max_edges", 1)
    if type(cell_tol) is not float:  # fast path for the common case
        if isinstance(cell_tol, (bool, np.bool_)) or not isinstance(cell_tol, numbers.Real):
            raise TypeError(f"cell_tol must be a real number in [0, 1), got {cell_tol!r}")
    if not 0.0 <= cell_tol < 1.0:
        raise ValueError(f"cell_tol must be a real number in [0, 1), got {cell_tol!r}")
    return r, n, limit


def _lengths_product(rows: list[list[float]]) -> float:
    """|a| |b| |c|, Å^3."""
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = rows
    return math.sqrt(
        (ax * ax + ay * ay + az * az)
        * (bx * bx + by * by + bz * bz)
        * (cx * cx + cy * cy + cz * cz)
    )


def _flat_error(
    name: str, rows: list[list[float]], volume: float, bound: float, cell_tol: float
) -> ValueError:
    return ValueError(
        f"{name} = {_fmt_cell(rows)} Å is flat or nearly flat: |det| = {volume:.3e} Å^3 "
        f"<= cell_tol * |a||b||c| = {bound:.3e} Å^3 (cell_tol={cell_tol:g}, measured on "
        "the LLL-reduced cell); a periodic cell needs volume"
    )


_Basis = tuple[np.ndarray, list[list[float]], list[float], list[float], float]


def _search_basis(
    rows: list[list[float]],
    volume: float,
    scale: float,
    r: float,
    pbc3: tuple[bool, bool, bool],
) -> _Basis | None:
    """The basis to search in: (transform, rows, heights, image shells, the |a||b||c| that
    the flatness test uses: the LLL-reduced basis's when it was computed); None when LLL
    fails. ``scale`` is |a||b||c| of ``rows``.

    A cell whose orthogonality defect is small, or with fewer than two periodic directions,
    is searched as given; otherwise the reduced basis is taken when it visits fewer images.
    """
    heights = _heights(rows, volume)
    shells = _shells(r, heights, pbc3)
    periodic = [i for i in range(3) if pbc3[i]]
    if not (scale > _DEFECT_NO_REDUCE * volume and len(periodic) >= 2):
        return _EYE, rows, heights, shells, scale
    u = _lll(rows, periodic)
    if u is None:
        return None
    cand = [[sum(u[i][k] * rows[k][d] for k in range(3)) for d in range(3)] for i in range(3)]
    cand_h = _heights(cand, volume)
    cand_shells = _shells(r, cand_h, pbc3)
    lengths_r = [math.sqrt(_dot(x, x)) for x in cand]
    scale = lengths_r[0] * lengths_r[1] * lengths_r[2]
    if math.prod(2 * s + 1 for s in cand_shells) < math.prod(2 * s + 1 for s in shells):
        return np.array(u, dtype=np.int64), cand, cand_h, cand_shells, scale
    return _EYE, rows, heights, shells, scale


def _too_many_edges(
    name: str,
    rows: list[list[float]],
    r: float,
    n: int,
    volume: float,
    limit: int,
    estimate_f: float,
    heights: list[float],
    shells: list[float],
    pbc3: tuple[bool, bool, bool],
) -> ValueError:
    """The refusal of a graph above ``max_edges``: heights, thinness, the largest r_cut."""
    # largest r_cut with n * (n / V * 4/3 pi r^3 + 1) <= limit
    room = limit / max(n, 1) - 1
    r_ok = (room * volume / max(n, 1) * 3 / (4 * math.pi)) ** (1 / 3) if room > 0 else 0.0
    allowed = (
        f"r_cut <= {r_ok:.3g} Å for this cell"
        if r_ok >= MIN_R_CUT
        else f"no r_cut >= {MIN_R_CUT:g} Å fits this cell"
    )
    thin = min(h for h, p in zip(heights, pbc3) if p)
    thin_msg = (
        f"; the cell is thin (nearly flat): {thin:.3g} Å between lattice planes, so "
        f"r_cut spans {max(shells):,} periodic images"
        if thin * 100 < r
        else ""
    )
    return ValueError(
        f"{name} = {_fmt_cell(rows)} Å with r_cut={r:g} Å would give about "
        f"{estimate_f:,.0f} edges for {n} atoms in {volume:.3g} Å^3, above "
        f"max_edges={limit:,}{thin_msg} (heights of the reduced cell "
        f"{[float(f'{h:.4g}') for h in heights]} Å). Allowed: {allowed} and "
        f"max_edges={limit:,}; lower r_cut, raise max_edges or fix the cell"
    )


def check_cell(
    cell: Any,
    r_cut: Any,
    *,
    n_atoms: int | None = None,
    max_edges: int | None = None,
    pbc: bool | tuple[bool, bool, bool] = True,
    cell_tol: float = DEFAULT_CELL_TOL,
    name: str = "cell",
    min_volume_per_atom: float | None = None,
) -> CellCheck:
    """Check that a neighbour search in ``cell`` with cutoff ``r_cut`` is well posed and cheap.

    The one guard for degenerate cells used by :func:`periodic_conv.neighbor_list` and by
    ``mp_audit``. Pure numpy and Python floats: ~15 µs for an ordinary cell.

    Parameters
    ----------
    cell : array_like [3, 3]
        Lattice vectors as rows, Å (numpy array, nested sequence or CPU tensor).
    r_cut : float
        Radial cutoff, Å; must lie in ``[MIN_R_CUT, MAX_R_CUT]`` (see :func:`check_r_cut`).
    n_atoms : int, optional
        Number of atoms in the cell (default 1, the least a structure has). Used for the edge
        estimate, which grows as ``n_atoms**2``.
    max_edges : int, optional
        Refuse when the estimated number of edges exceeds this (default
        ``DEFAULT_MAX_EDGES`` = 50,000,000).
    pbc : bool or 3 bools
        Periodicity along each lattice vector; only periodic directions are reduced and
        counted. Without any periodic direction only ``r_cut`` and finiteness are checked.
    cell_tol : float
        Refuse cells whose reduced basis has ``|det| <= cell_tol * |a||b||c|`` (flat).
    name : str
        How the cell is named in error messages (e.g. ``"cell of mp-149"``).
    min_volume_per_atom : float, optional
        For a crystal (periodic along all three vectors): refuse less volume per atom than
        this, Å^3 (:data:`MIN_VOLUME_PER_ATOM` for the plausibility of real crystals).
        ``None`` (default): any non-flat cell is searched.

    Returns
    -------
    CellCheck
        Volume, heights and image shells of the (reduced) cell, the cell to search with and the
        integer matrix mapping its shifts back, and the edge estimate.

    Raises
    ------
    TypeError
        ``r_cut``, ``n_atoms`` or ``max_edges`` of the wrong type.
    ValueError
        Wrong shape, non-finite entries, a flat cell, ``r_cut`` outside
        ``[MIN_R_CUT, MAX_R_CUT]``, or more than ``max_edges`` expected edges (a thin cell:
        the message gives the heights and the largest ``r_cut`` that fits).

    Examples
    --------
    >>> import periodic_conv as pc
    >>> info = pc.check_cell([[5, 0, 0], [0, 5, 0], [5, 5, 1e-3]], 5.0)
    >>> [round(h, 6) for h in info.heights], info.reduced[0].tolist()
    ([0.001, 5.0, 5.0], [0.0, 0.0, 0.001])
    """
    r, n, limit = _check_options(r_cut, n_atoms, max_edges, cell_tol)
    pbc3 = check_pbc(pbc)
    rows = _rows(cell, name)
    volume = _volume(rows)
    if not any(pbc3):
        return CellCheck(np.array(rows), _EYE, volume, (math.inf,) * 3, (0, 0, 0), n)
    scale = _lengths_product(rows)
    # numerically singular before reduction, or LLL does not converge (None)
    basis = _search_basis(rows, volume, scale, r, pbc3) if volume > _SINGULAR * scale else None
    if basis is None:
        raise _flat_error(name, rows, volume, max(cell_tol, _SINGULAR) * scale, cell_tol)
    transform, reduced, heights, shells, scale = basis
    if not volume > cell_tol * scale:
        raise _flat_error(name, rows, volume, cell_tol * scale, cell_tol)
    if min_volume_per_atom is not None and all(pbc3) and n and volume / n < min_volume_per_atom:
        raise ValueError(
            f"{name} = {_fmt_cell(rows)}: {volume:.3g} Å^3 for {n} atom(s), "
            f"{volume / n:.3g} Å^3 per atom < {min_volume_per_atom:g}: a collapsed or nearly "
            "flat crystal (the densest solids have ~5 Å^3 per atom); check the cell's units "
            "and its third vector"
        )
    estimate_f = n * ((n / volume) * (4.0 / 3.0 * math.pi * r**3) + 1)
    if estimate_f > limit:
        raise _too_many_edges(name, rows, r, n, volume, limit, estimate_f, heights, shells, pbc3)
    return CellCheck(
        reduced=np.array(reduced, dtype=np.float64),
        transform=transform,
        volume=volume,
        heights=(heights[0], heights[1], heights[2]),
        image_shells=(int(shells[0]), int(shells[1]), int(shells[2])),
        expected_edges=int(estimate_f),
        reduced_used=transform is not _EYE,
    )
