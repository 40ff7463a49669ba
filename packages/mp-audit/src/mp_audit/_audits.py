"""The chapter-2 audits: a pure per-entry map step and reducers over the resulting table."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._dataset import Entry, parse_payload
from ._elastic import MODULI, elastic_checks
from ._geometry import DEFAULT_R_CUTS, check_r_cuts, geometry_metrics

#: run types that are not a data issue (thesis: GGA, GGA+U; today's MP adds mixed schemes)
EXPECTED_RUN_TYPES = ("GGA", "GGA+U", "GGA_U", "GGA_GGA+U", "GGA_GGA+U_R2SCAN", "R2SCAN")
NOBLE_GASES = ("He", "Ne", "Ar", "Kr", "Xe")
#: the elements of thesis Table 2.2 (no stable isotope)
RADIOACTIVE = ("Tc", "Pm", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu")
DEFAULT_LAYERS = tuple(range(1, 9))
DEFAULT_TARGET = 0.98


# ----------------------------------------------------------------------------- map step


def _scalar(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def audit_entry(entry: Entry, r_cuts: Sequence[float] = DEFAULT_R_CUTS) -> dict[str, Any]:
    """The map step: every per-structure number of the audit for one entry (pure).

    Parameters
    ----------
    entry
        Raw entry (structure parsed here, so parse failures are recorded, never raised).
    r_cuts
        Cut-offs in Å for isolated atoms and the crystal graph.

    Returns
    -------
    dict
        Flat record: ``material_id``, ``parse_error`` (None when fine), properties
        (``band_gap`` eV, ``formation_energy_per_atom`` eV/atom, ``run_type``, ...),
        ``nsites``, ``elements`` (space-separated symbols), the keys of
        :func:`mp_audit.geometry_metrics`, and elastic checks when a tensor is present.
    """
    props = entry.props
    rec: dict[str, Any] = {"material_id": str(entry.material_id), "parse_error": None}
    for key in ("band_gap", "formation_energy_per_atom", "energy_above_hull"):
        rec[key] = _scalar(props.get(key))
        rec[f"has_{key}"] = key in props
    rec["theoretical"] = props.get("theoretical", "absent")
    rec["deprecated"] = props.get("deprecated", "absent")
    rec["run_type"] = None if props.get("run_type") is None else str(props.get("run_type"))
    if "elastic_tensor" in props:
        rec.update(elastic_checks(props["elastic_tensor"], _stored_moduli(props)))
    try:
        structure = parse_payload(entry.payload)
        if len(structure) == 0:
            raise ValueError("structure has no sites")
        rec["nsites"] = len(structure)
        rec["elements"] = " ".join(sorted({el.symbol for el in structure.composition.elements}))
        cell = structure.lattice.matrix
        positions = structure.cart_coords
    except Exception as exc:  # parsers raise many types: a bad row is listed by id
        rec["parse_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return rec
    try:
        rec.update(geometry_metrics(positions, cell, r_cuts))
    except (ValueError, RuntimeError) as exc:  # bad cell (our guard) or the neighbor list
        rec["parse_error"] = f"geometry failed: {type(exc).__name__}: {exc}"[:300]
    return rec


def _stored_moduli(props: dict[str, Any]) -> dict[str, float]:
    values = {key: _scalar(props.get(key)) for key in MODULI}
    return {key: v for key, v in values.items() if not math.isnan(v)}


# ----------------------------------------------------------------------------- reducers


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def moments(values: Iterable[float]) -> dict[str, float]:
    """Count, mean, sample std (ddof=1), sample skewness G1 and excess kurtosis G2.

    G1 and G2 are the bias-corrected estimators (the ones pandas ``skew``/``kurt`` and
    ``scipy.stats.skew/kurtosis(bias=False)`` return).
    """
    x = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, float)
    x = x[np.isfinite(x)]
    n = len(x)
    out = {"count": n, "mean": math.nan, "std": math.nan, "skew": math.nan, "kurtosis": math.nan}
    if n == 0:
        return out
    mean = float(x.mean())
    dev = x - mean
    out["mean"] = mean
    scale = float(np.abs(dev).max())
    if n > 1:
        out["std"] = (
            scale * math.sqrt(float(np.mean((dev / scale) ** 2)) * n / (n - 1)) if scale else 0.0
        )
    # shape statistics are scale free: normalise first so tiny spreads do not underflow;
    # a spread at round-off level of the values means a constant sample (undefined shape)
    if scale <= 1e-13 * float(np.abs(x).max()) or scale == 0:
        return out
    d = dev / scale
    m2 = float(np.mean(d**2))
    if n > 2:
        g1 = float(np.mean(d**3)) / m2**1.5
        out["skew"] = math.sqrt(n * (n - 1)) / (n - 2) * g1
    if n > 3:
        g2 = float(np.mean(d**4)) / m2**2 - 3.0
        out["kurtosis"] = (n - 1) / ((n - 2) * (n - 3)) * ((n + 1) * g2 + 6.0)
    return out


def band_gap_stats(gaps: Iterable[float], zero_tol: float = 0.0) -> dict[str, Any]:
    """Zero fraction and the eq. 2.1 parameters of a band-gap sample (eV).

    Band gap ~ B(p) (σ D(0, 1) + μ)^2 with p = P(gap > 0) and μ, σ the mean and standard
    deviation of √gap over the non-zero gaps; D is √gap standardised.
    """
    if zero_tol < 0:
        raise ValueError(f"zero_tol={zero_tol!r}: expected >= 0 (eV)")
    x = np.asarray(list(gaps), float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {"count": 0, "zero_fraction": None, "p": None, "sqrt_nonzero": None}
    nonzero = x[x > zero_tol]
    zero_fraction = 1.0 - len(nonzero) / len(x)
    m = moments(np.sqrt(nonzero))
    return {
        "count": len(x),
        "zero_fraction": zero_fraction,
        "p": 1.0 - zero_fraction,
        "mu": m["mean"],
        "sigma": m["std"],
        "sqrt_nonzero": m,
        "max": float(x.max()),
    }


def coverage_table(
    table: pd.DataFrame,
    r_cuts: Sequence[float] = DEFAULT_R_CUTS,
    layers: Sequence[int] = DEFAULT_LAYERS,
) -> pd.DataFrame:
    """Fraction of structures covered by (r_cut, layers).

    A structure is covered when no atom is isolated and the crystal graph at ``r_cut`` is
    connected with diameter <= layers (every atom hears from every other atom).
    Rows: r_cut (Å); columns: layers. Denominator: structures with geometry.
    """
    geo = table[table["nn_max"].notna()] if "nn_max" in table else table.iloc[:0]
    out = pd.DataFrame(index=[float(r) for r in r_cuts], columns=list(layers), dtype=float)
    out.index.name = "r_cut"
    for r in r_cuts:
        if len(geo) == 0:
            continue
        iso = geo[f"isolated_{r:g}"].to_numpy()
        diam = geo[f"diameter_{r:g}"].to_numpy()
        for layer in layers:
            out.loc[float(r), layer] = float(np.mean((iso == 0) & (diam >= 0) & (diam <= layer)))
    return out


def recommend(cov: pd.DataFrame, target: float = DEFAULT_TARGET) -> dict[str, Any]:
    """Smallest cut-off, then fewest layers, whose coverage reaches ``target`` (0-1]."""
    if not 0 < target <= 1:
        raise ValueError(f"target={target!r}: expected a fraction in (0, 1]")
    for r in cov.index:
        row = cov.loc[r]
        ok = [layer for layer in cov.columns if row[layer] >= target]
        if ok:
            layer = min(ok)
            return {"r_cut": float(r), "layers": int(layer), "coverage": float(row[layer])}
    return {"r_cut": None, "layers": None, "coverage": None, "reason": "target not reached"}


def _hist_counts(values: np.ndarray) -> dict[str, int]:
    counts = Counter(int(v) for v in values)
    return {str(k): counts[k] for k in sorted(counts)}


def _ids_where(table: pd.DataFrame, mask: Any) -> list[str]:
    return sorted(table.loc[mask, "material_id"])


def _elastic_issues(table: pd.DataFrame) -> dict[str, Any]:
    """Ids of the elastic tensors failing each check (unreadable ones fail only that one)."""
    if "elastic_readable" not in table:
        return {}
    el = table[table["elastic_readable"].notna()]

    def failed(column: str) -> list[str]:
        return _ids_where(el, el[column].map(lambda v: v is False or v == False))  # noqa: E712

    return {
        "elastic_checked": len(el),
        "elastic_unreadable": failed("elastic_readable"),
        "elastic_not_symmetric": failed("elastic_symmetric"),
        "elastic_not_gpa": failed("elastic_units_ok"),
        "elastic_not_positive_definite": failed("elastic_pd"),
        "elastic_bounds_broken": failed("elastic_bounds_ok"),
    }


def _data_issues(table: pd.DataFrame, expected_run_types: Sequence[str]) -> dict[str, Any]:
    """§2.1: parse failures, duplicates, flags, run types, missing values, bad cells."""
    ids = table["material_id"]
    rt = table["run_type"].dropna()
    failures = table.loc[table["parse_error"].notna(), ["material_id", "parse_error"]]
    overlaps = (
        table[table["overlapping_atoms"].fillna("") != ""]
        if "overlapping_atoms" in table
        else table.iloc[:0]
    )
    issues: dict[str, Any] = {
        "parse_failures": [
            {"material_id": m, "error": e} for m, e in failures.itertuples(index=False)
        ],
        "duplicate_ids": sorted(set(ids[ids.duplicated(keep=False)])),
        "theoretical_none": _ids_where(table, table["theoretical"].isna()),
        "deprecated": _ids_where(table, table["deprecated"].map(lambda v: v is True)),
        "unexpected_run_types": dict(Counter(r for r in rt if r not in expected_run_types)),
        # "absent" when the source has no run types at all (0 would claim a clean check)
        "n_unexpected_run_type": int(sum(r not in expected_run_types for r in rt))
        if len(rt)
        else "absent",
        "zero_volume": _ids_where(table, table["zero_volume"].map(lambda v: v is True))
        if "zero_volume" in table
        else [],
        "overlapping_atoms": [
            {"material_id": m, "atoms": a}
            for m, a in overlaps[["material_id", "overlapping_atoms"]].itertuples(index=False)
        ]
        if "overlapping_atoms" in table  # absent when no structure parsed
        else [],
    }
    for key in ("band_gap", "formation_energy_per_atom", "energy_above_hull"):
        has = table[f"has_{key}"]
        issues[f"missing_{key}"] = (
            _ids_where(table, has & table[key].isna()) if has.any() else "absent"
        )
    issues.update(_elastic_issues(table))
    return issues


def _tail(values: np.ndarray, threshold: float) -> dict[str, Any]:
    """Median, maximum and the count above ``threshold`` (Å) of a distance column."""
    return {
        "median": float(np.median(values)),
        "max": float(values.max()),
        f"above_{threshold:g}A": int((values > threshold).sum()),
    }


def _nearest_neighbor_summary(geo: pd.DataFrame, r_cuts: Sequence[float]) -> dict[str, Any]:
    """§2.2.1, Fig. 2.2: largest nearest-neighbor distance; isolated atoms per cut-off."""
    nn = geo["nn_max"].to_numpy()
    return {
        "nn_max": _tail(nn, 6),
        "nn_min_min": float(geo["nn_min"].min()),
        "structures_with_isolated_atom": {
            f"{r:g}": int((geo[f"isolated_{r:g}"] > 0).sum()) for r in r_cuts
        },
    }


def _graph_summary(geo: pd.DataFrame, r_cuts: Sequence[float]) -> dict[str, Any]:
    """Fig. 2.3: crystal-graph diameter and disconnected graphs per cut-off."""
    graph = {}
    for r in r_cuts:
        d = geo[f"diameter_{r:g}"].to_numpy()
        finite = d[d >= 0]
        graph[f"{r:g}"] = {
            "disconnected": int((d < 0).sum()),
            "above_9": int((d > 9).sum()),
            "max_finite": int(finite.max()) if len(finite) else None,
            "counts": _hist_counts(d),
        }
    return graph


def _cell_spheres_summary(geo: pd.DataFrame, r_cuts: Sequence[float]) -> dict[str, Any]:
    """Fig. 2.4, 2.5: inscribed and enclosing sphere radii of the cells."""
    ins = geo["inscribed_radius"].to_numpy()
    enc = geo["enclosing_radius"].to_numpy()
    return {
        "inscribed": _tail(ins, 15),
        "enclosing": _tail(enc, 50),
        # at most one copy of an atom in the neighborhood iff r_cut < inscribed radius
        "fraction_single_copy": {f"{r:g}": float(np.mean(ins > r)) for r in r_cuts},
        # every atom appears at least once iff r_cut > enclosing radius
        "fraction_all_atoms": {f"{r:g}": float(np.mean(enc < r)) for r in r_cuts},
    }


def _coverage_summary(
    geo: pd.DataFrame, r_cuts: Sequence[float], layers: Sequence[int], target: float
) -> dict[str, Any]:
    """§2.2.2: the coverage table and the recommended (r_cut, layers)."""
    cov = coverage_table(geo, r_cuts, layers)
    return {
        "coverage": {f"{r:g}": [float(v) for v in cov.loc[r]] for r in cov.index},
        "coverage_layers": [int(x) for x in layers],
        "recommendation": {"target": target, **recommend(cov, target)},
    }


def _formation_energy_summary(ok: pd.DataFrame) -> dict[str, Any]:
    """§2.3.2, Fig. 2.8, 2.9: formation energy per atom, overall and by run type."""
    ef = ok[ok["formation_energy_per_atom"].notna()]
    values = ef["formation_energy_per_atom"]
    by_rt = {
        str(k): moments(g.to_numpy()) for k, g in values.groupby(ef["run_type"].fillna("unknown"))
    }
    return {
        **moments(values.to_numpy()),
        "min": float(values.min()),
        "max": float(values.max()),
        "by_run_type": by_rt,
    }


def _sizes_summary(ok: pd.DataFrame) -> dict[str, Any]:
    """§2.4, Fig. 2.10: atoms per cell and their parity."""
    ns = ok["nsites"].to_numpy().astype(int)
    return {
        "max": int(ns.max()),
        "median": float(np.median(ns)),
        "fraction_above_100": float(np.mean(ns > 100)),
        "fraction_even": float(np.mean(ns % 2 == 0)),
        "counts": _hist_counts(ns),
    }


def _composition_summary(ok: pd.DataFrame) -> dict[str, Any]:
    """§2.4, Fig. 2.11, Tables 2.1, 2.2: element presence, noble gases, radioactive."""
    presence = element_presence(ok["elements"])
    return {
        "elements": presence,
        "noble_gases": [{"element": e, "structures": presence.get(e, 0)} for e in NOBLE_GASES],
        "radioactive": [{"element": e, "structures": presence.get(e, 0)} for e in RADIOACTIVE],
    }


def _pick_graph_r_cut(r_cuts: Sequence[float], graph_r_cut: float | None) -> float:
    if graph_r_cut is None:  # the thesis's 5 Å when audited, else the closest cut-off
        return min(r_cuts, key=lambda r: (abs(r - 5.0), r))
    if float(graph_r_cut) not in r_cuts:
        raise ValueError(f"graph_r_cut={graph_r_cut!r}: expected one of r_cuts {list(r_cuts)}")
    return float(graph_r_cut)


def summarize(
    table: pd.DataFrame,
    *,
    r_cuts: Sequence[float] = DEFAULT_R_CUTS,
    layers: Sequence[int] = DEFAULT_LAYERS,
    target: float = DEFAULT_TARGET,
    expected_run_types: Sequence[str] = EXPECTED_RUN_TYPES,
    graph_r_cut: float | None = None,
    zero_tol: float = 0.0,
) -> dict[str, Any]:
    """Reduce the per-structure table to the chapter-2 summary (JSON-ready dict).

    Parameters
    ----------
    table
        Per-structure records of :func:`mp_audit.map_entries`.
    r_cuts
        Cut-offs (Å) the table was computed with.
    layers, target
        Coverage table layers and the coverage the recommendation must reach (0, 1].
    expected_run_types
        Run types that are not a data issue.
    graph_r_cut
        Cut-off (Å) of the headline graph statistics and Fig. 2.3; default 5 Å when in
        ``r_cuts``, else the closest cut-off.
    zero_tol
        Band gaps at or below this (eV) count as zero.

    Returns
    -------
    dict
        ``n_entries``, ``n_parsed``, ``n_geometry``, ``data_issues``; with geometry also
        ``nearest_neighbor``, ``graph``, ``graph_r_cut``, ``cell_spheres``, ``coverage``,
        ``coverage_layers``, ``recommendation``, ``sizes``, ``elements``, ``noble_gases``,
        ``radioactive``, and ``band_gap`` / ``formation_energy`` when the source has them.
    """
    r_cuts = check_r_cuts(r_cuts)
    ok = table[table["parse_error"].isna()]
    geo = ok[ok["nn_max"].notna()] if "nn_max" in ok else ok.iloc[:0]
    s: dict[str, Any] = {"n_entries": len(table), "n_parsed": len(ok), "n_geometry": len(geo)}
    s["data_issues"] = _data_issues(table, expected_run_types)
    if len(geo) == 0:
        return _jsonable(s)
    s["nearest_neighbor"] = _nearest_neighbor_summary(geo, r_cuts)
    s["graph"] = _graph_summary(geo, r_cuts)
    s["graph_r_cut"] = _pick_graph_r_cut(r_cuts, graph_r_cut)
    s["cell_spheres"] = _cell_spheres_summary(geo, r_cuts)
    s.update(_coverage_summary(geo, r_cuts, layers, target))
    if table["has_band_gap"].any():
        s["band_gap"] = band_gap_stats(ok["band_gap"], zero_tol)
    if table["has_formation_energy_per_atom"].any():
        s["formation_energy"] = _formation_energy_summary(ok)
    s["sizes"] = _sizes_summary(ok)
    s.update(_composition_summary(ok))
    return _jsonable(s)


def element_presence(elements: Iterable[str]) -> dict[str, int]:
    """Number of structures containing each element (input: space-separated symbols)."""
    counts: Counter[str] = Counter()
    for item in elements:
        if isinstance(item, str):
            counts.update(set(item.split()))
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def recommendation_json(summary: dict[str, Any], source: str) -> dict[str, Any]:
    """The JSON that ``xtalnet`` reads: cut-off, layers, coverage table, eq. 2.1 parameters."""
    bg = summary.get("band_gap") or {}
    ef = summary.get("formation_energy") or {}
    rec = summary.get("recommendation") or {}
    return _jsonable(
        {
            "schema": "mp-audit/recommendation/1",
            "source": source,
            "n_structures": summary.get("n_geometry", 0),
            "target_coverage": rec.get("target"),
            "r_cut": rec.get("r_cut"),
            "layers": rec.get("layers"),
            "coverage": rec.get("coverage"),
            "coverage_table": {
                "r_cut": [float(r) for r in summary.get("coverage", {})],
                "layers": summary.get("coverage_layers", []),
                "fraction": list(summary.get("coverage", {}).values()),
            },
            "band_gap": {
                "model": "B(p) * (sigma * D(0,1) + mu)^2, D = standardised sqrt(gap > 0)",
                "p": bg.get("p"),
                "mu": bg.get("mu"),
                "sigma": bg.get("sigma"),
                "zero_fraction": bg.get("zero_fraction"),
            },
            "formation_energy": {"mean": ef.get("mean"), "std": ef.get("std")},
        }
    )
