"""The chapter-2 audits: a pure per-entry map step and reducers over the resulting table."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ._dataset import Entry, parse_payload
from ._geometry import DEFAULT_R_CUTS, geometry_metrics

#: run types that are not a data issue (thesis: GGA, GGA+U; today's MP adds mixed schemes)
EXPECTED_RUN_TYPES = ("GGA", "GGA+U", "GGA_U", "GGA_GGA+U", "GGA_GGA+U_R2SCAN", "R2SCAN")
NOBLE_GASES = ("He", "Ne", "Ar", "Kr", "Xe")
#: the elements of thesis Table 2.2 (no stable isotope)
RADIOACTIVE = ("Tc", "Pm", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu")
DEFAULT_LAYERS = tuple(range(1, 9))
DEFAULT_TARGET = 0.98


def _majority_z(structure) -> list[int]:
    # disordered sites: count the majority species (presence tables use all species)
    return [max(site.species.items(), key=lambda kv: kv[1])[0].Z for site in structure]


# ----------------------------------------------------------------------------- elastic


def voigt_reuss_bounds(tensor: Any) -> dict[str, float]:
    """Voigt, Reuss and Hill bulk/shear moduli (GPa) of a 6x6 stiffness matrix (GPa).

    Voigt order xx, yy, zz, yz, xz, xy, no factors of 2 (MP convention). Reuss moduli come
    from the compliance ``S = C^-1``.
    """
    c = np.asarray(tensor, dtype=np.float64)
    if c.shape != (6, 6):
        raise ValueError(f"tensor has shape {c.shape}: expected (6, 6) in Voigt notation")
    k_v = (c[0, 0] + c[1, 1] + c[2, 2] + 2 * (c[0, 1] + c[1, 2] + c[2, 0])) / 9.0
    g_v = (
        c[0, 0]
        + c[1, 1]
        + c[2, 2]
        - (c[0, 1] + c[1, 2] + c[2, 0])
        + 3 * (c[3, 3] + c[4, 4] + c[5, 5])
    ) / 15.0
    s = np.linalg.inv(c)
    k_r = 1.0 / (s[0, 0] + s[1, 1] + s[2, 2] + 2 * (s[0, 1] + s[1, 2] + s[2, 0]))
    g_r = 15.0 / (
        4 * (s[0, 0] + s[1, 1] + s[2, 2])
        - 4 * (s[0, 1] + s[1, 2] + s[2, 0])
        + 3 * (s[3, 3] + s[4, 4] + s[5, 5])
    )
    return {
        "K_Voigt": float(k_v),
        "K_Reuss": float(k_r),
        "K_VRH": float((k_v + k_r) / 2),
        "G_Voigt": float(g_v),
        "G_Reuss": float(g_r),
        "G_VRH": float((g_v + g_r) / 2),
    }


def elastic_checks(tensor: Any, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """Positive definiteness and Reuss <= VRH <= Voigt for one elastic tensor.

    Parameters
    ----------
    tensor
        6x6 stiffness in GPa (list or array).
    stored
        Moduli stored by the source (``K_Voigt``, ``K_VRH``, ``K_Reuss``, same for ``G``),
        checked for ordering as well when present.

    Returns
    -------
    dict
        ``elastic_pd`` (bool), ``elastic_bounds_ok`` (bool), ``elastic_error`` (str or None).
    """
    try:
        c = np.asarray(tensor, dtype=np.float64)
        if c.shape != (6, 6) or not np.all(np.isfinite(c)):
            raise ValueError(f"shape {c.shape}, expected a finite 6x6 matrix")
    except (TypeError, ValueError) as exc:
        return {"elastic_pd": False, "elastic_bounds_ok": False, "elastic_error": str(exc)}
    sym = 0.5 * (c + c.T)
    pd_ok = bool(np.linalg.eigvalsh(sym).min() > 0)
    ok = True
    error = None
    try:
        bounds = voigt_reuss_bounds(sym)
    except np.linalg.LinAlgError:
        return {"elastic_pd": pd_ok, "elastic_bounds_ok": False, "elastic_error": "singular"}
    sets = [bounds]
    if stored:
        sets.append(stored)
    for values in sets:
        for m in ("K", "G"):
            r, h, v = (values.get(f"{m}_{k}") for k in ("Reuss", "VRH", "Voigt"))
            present = [x for x in (r, h, v) if x is not None]
            if len(present) < 2:
                continue
            tol = 1e-6 * max(1.0, *(abs(x) for x in present))
            chain = [x for x in (r, h, v) if x is not None]
            if any(a > b + tol for a, b in itertools.pairwise(chain)):
                ok = False
    return {"elastic_pd": pd_ok, "elastic_bounds_ok": ok, "elastic_error": error}


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
        rec.update(elastic_checks(props["elastic_tensor"], dict(_present(props))))
    try:
        structure = parse_payload(entry.payload)
        if len(structure) == 0:
            raise ValueError("structure has no sites")
        rec["nsites"] = len(structure)
        rec["elements"] = " ".join(sorted({el.symbol for el in structure.composition.elements}))
        cell = structure.lattice.matrix
        positions = structure.cart_coords
        _majority_z(structure)  # raises early for exotic species rather than later
    except Exception as exc:  # a bad row is listed by id, never a crash
        rec["parse_error"] = f"{type(exc).__name__}: {exc}"[:300]
        return rec
    try:
        rec.update(geometry_metrics(cell, positions, r_cuts))
    except Exception as exc:
        rec["parse_error"] = f"geometry failed: {type(exc).__name__}: {exc}"[:300]
    return rec


def _present(props: dict[str, Any]) -> Iterable[tuple[str, float]]:
    for key in ("K_Voigt", "K_Reuss", "K_VRH", "G_Voigt", "G_Reuss", "G_VRH"):
        value = _scalar(props.get(key))
        if not math.isnan(value):
            yield key, value


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


def summarize(
    table: pd.DataFrame,
    *,
    r_cuts: Sequence[float] = DEFAULT_R_CUTS,
    layers: Sequence[int] = DEFAULT_LAYERS,
    target: float = DEFAULT_TARGET,
    expected_run_types: Sequence[str] = EXPECTED_RUN_TYPES,
    graph_r_cut: float = 5.0,
    zero_tol: float = 0.0,
) -> dict[str, Any]:
    """Reduce the per-structure table to the chapter-2 summary (JSON-ready dict)."""
    n = len(table)
    ok = table[table["parse_error"].isna()]
    geo = ok[ok["nn_max"].notna()] if "nn_max" in ok else ok.iloc[:0]
    s: dict[str, Any] = {"n_entries": n, "n_parsed": len(ok), "n_geometry": len(geo)}

    # 1. data issues (§2.1)
    ids = table["material_id"]
    dup = ids[ids.duplicated(keep=False)]
    theo = table["theoretical"]
    dep = table["deprecated"]
    rt = table["run_type"].dropna()
    issues: dict[str, Any] = {
        "parse_failures": [
            {"material_id": m, "error": e}
            for m, e in table.loc[
                table["parse_error"].notna(), ["material_id", "parse_error"]
            ].itertuples(index=False)
        ],
        "duplicate_ids": sorted(set(dup)),
        "theoretical_none": sorted(table.loc[theo.isna(), "material_id"]),
        "deprecated": sorted(table.loc[dep.map(lambda v: v is True), "material_id"]),
        "unexpected_run_types": dict(Counter(r for r in rt if r not in expected_run_types)),
        # "absent" when the source has no run types at all (0 would claim a clean check)
        "n_unexpected_run_type": int(sum(r not in expected_run_types for r in rt))
        if len(rt)
        else "absent",
        "zero_volume": sorted(table.loc[table.get("zero_volume", False) == True, "material_id"])  # noqa: E712
        if "zero_volume" in table
        else [],
    }
    for key in ("band_gap", "formation_energy_per_atom", "energy_above_hull"):
        has = table[f"has_{key}"]
        issues[f"missing_{key}"] = (
            sorted(table.loc[has & table[key].isna(), "material_id"]) if has.any() else "absent"
        )
    if "elastic_pd" in table:
        el = table[table["elastic_pd"].notna()]
        issues["elastic_checked"] = len(el)
        issues["elastic_not_positive_definite"] = sorted(
            el.loc[~el["elastic_pd"].astype(bool), "material_id"]
        )
        issues["elastic_bounds_broken"] = sorted(
            el.loc[~el["elastic_bounds_ok"].astype(bool), "material_id"]
        )
    s["data_issues"] = issues
    if len(geo) == 0:
        return _jsonable(s)

    # 2. radial cut-off (§2.2.1)
    nn = geo["nn_max"].to_numpy()
    s["nearest_neighbour"] = {
        "nn_max": {
            "median": float(np.median(nn)),
            "max": float(nn.max()),
            "above_6A": int((nn > 6).sum()),
        },
        "nn_min_min": float(geo["nn_min"].min()),
        "structures_with_isolated_atom": {
            f"{r:g}": int((geo[f"isolated_{r:g}"] > 0).sum()) for r in r_cuts
        },
    }
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
    s["graph"] = graph
    s["graph_r_cut"] = graph_r_cut

    # 3. cell geometry
    ins = geo["inscribed_radius"].to_numpy()
    enc = geo["enclosing_radius"].to_numpy()
    s["cell_spheres"] = {
        "inscribed": {
            "median": float(np.median(ins)),
            "max": float(ins.max()),
            "above_15A": int((ins > 15).sum()),
        },
        "enclosing": {
            "median": float(np.median(enc)),
            "max": float(enc.max()),
            "above_50A": int((enc > 50).sum()),
        },
        # at most one copy of an atom in the neighbourhood iff r_cut < inscribed radius
        "fraction_single_copy": {f"{r:g}": float(np.mean(ins > r)) for r in r_cuts},
        # every atom appears at least once iff r_cut > enclosing radius
        "fraction_all_atoms": {f"{r:g}": float(np.mean(enc < r)) for r in r_cuts},
    }

    # 4. recommendation (§2.2.2)
    cov = coverage_table(geo, r_cuts, layers)
    s["coverage"] = {f"{r:g}": [float(v) for v in cov.loc[r]] for r in cov.index}
    s["coverage_layers"] = [int(x) for x in layers]
    s["recommendation"] = {"target": target, **recommend(cov, target)}

    # 5. band gap (§2.3.1)
    if table["has_band_gap"].any():
        s["band_gap"] = band_gap_stats(ok["band_gap"], zero_tol)
    # 6. formation energy (§2.3.2)
    if table["has_formation_energy_per_atom"].any():
        ef = ok[ok["formation_energy_per_atom"].notna()]
        by_rt = {
            str(k): moments(g["formation_energy_per_atom"].to_numpy())
            for k, g in ef.groupby(ef["run_type"].fillna("unknown"))
        }
        s["formation_energy"] = {
            **moments(ef["formation_energy_per_atom"].to_numpy()),
            "min": float(ef["formation_energy_per_atom"].min()),
            "max": float(ef["formation_energy_per_atom"].max()),
            "by_run_type": by_rt,
        }
    # 7. sizes and composition (§2.4)
    ns = ok["nsites"].to_numpy().astype(int)
    s["sizes"] = {
        "max": int(ns.max()),
        "median": float(np.median(ns)),
        "fraction_above_100": float(np.mean(ns > 100)),
        "fraction_even": float(np.mean(ns % 2 == 0)),
        "counts": _hist_counts(ns),
    }
    presence = element_presence(ok["elements"])
    s["elements"] = presence
    s["noble_gases"] = [{"element": e, "structures": presence.get(e, 0)} for e in NOBLE_GASES]
    s["radioactive"] = [{"element": e, "structures": presence.get(e, 0)} for e in RADIOACTIVE]
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
