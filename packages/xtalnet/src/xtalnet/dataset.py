"""Data sets with targets: a source read with :func:`mp_audit.load`, its structures parsed,
its target columns kept, and the graphs of the structures that can be used.

What cannot be used is counted and reported, never dropped silently: rows without any target
value, structures that do not parse, structures with isolated atoms at r_cut or more edges
than the budget (``strict``: ``ValueError`` listing them instead).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xtalnet.config import NetworkConfig
from xtalnet.data import graph_of, to_structure

__all__ = ["Prepared", "Sample", "build_samples", "is_missing", "load_source", "subset"]


@dataclass
class Sample:
    """One usable structure: its id, its graph and its target values (physical units)."""

    id: str
    graph: Any
    values: dict[str, Any]
    structure: Any = None

    @property
    def num_edges(self) -> int:
        return int(self.graph.num_edges)


@dataclass
class Prepared:
    """Structures parsed, with targets, and counts of what was dropped."""

    ids: list[str]
    structures: list[Any]
    values: list[dict[str, Any]]
    report: dict[str, Any] = field(default_factory=dict)


def is_missing(v: Any) -> bool:
    """A missing target value: None, NaN, or an array holding a NaN (or nothing)."""
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, (list, np.ndarray)):
        arr = np.asarray(v, dtype=object)
        try:
            return bool(np.isnan(np.asarray(v, dtype=np.float64)).any())
        except (TypeError, ValueError):
            return arr.size == 0
    return False


def _columns_needed(columns: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(columns))


def load_source(
    source: Any, columns: Sequence[str], *, strict: bool = False, log: Callable[[str], None] = print
) -> Prepared:
    """Read ``source`` with :func:`mp_audit.load`, keeping the target ``columns``.

    Rows whose targets are all missing (NaN / None) are dropped and counted per column;
    structures that do not parse are skipped and counted (``strict``: ``ValueError`` listing
    them). A target column absent from the source raises ``ValueError`` listing the columns
    present.
    """
    import mp_audit

    columns = _columns_needed(columns)
    if isinstance(source, mp_audit.Dataset):
        ds = source
    else:
        try:
            ds = mp_audit.load(source, columns=columns or None)
        except ValueError as exc:
            raise ValueError(f"--data {source!r}: target column(s) {columns}: {exc}") from exc
    ids, structures, values = [], [], []
    failures: list[tuple[str, str]] = list(ds.load_failures)
    missing = dict.fromkeys(columns, 0)
    present: set[str] = set()
    n_rows = 0
    for entry in ds:
        n_rows += 1
        present.update(entry.props)
        vals = {c: entry.props.get(c) for c in columns}
        for c in columns:
            if is_missing(vals[c]):
                missing[c] += 1
        if columns and all(is_missing(vals[c]) for c in columns):
            continue
        try:
            s = to_structure(entry)
        except (ValueError, TypeError) as exc:
            failures.append((entry.material_id, str(exc)))
            continue
        ids.append(entry.material_id)
        structures.append(s)
        values.append(vals)
    absent = [c for c in columns if c not in present]
    if n_rows and absent:
        raise ValueError(
            f"target column(s) {absent} are absent from {getattr(ds, 'name', source)!r}; "
            f"columns present: {sorted(present)}"
        )
    if columns and n_rows and all(missing[c] == n_rows for c in columns):
        raise ValueError(f"every target value of {columns} is missing (NaN) in {ds.name!r}")
    for c, k in missing.items():
        if k:
            log(f"target {c!r}: {k} of {n_rows} rows have no value (NaN/None); dropped from it")
    if failures:
        msg = f"{len(failures)} structure(s) do not parse: " + "; ".join(
            f"{m}: {e[:80]}" for m, e in failures[:5]
        )
        if strict:
            raise ValueError(msg + " (strict)")
        log(msg + " — skipped")
    if not ids:
        raise ValueError(f"no usable structures in {getattr(ds, 'name', source)!r}")
    report = {"rows": n_rows, "missing": missing, "parse_failures": len(failures)}
    return Prepared(ids, structures, values, report)


def build_samples(
    prep: Prepared,
    config: NetworkConfig,
    *,
    strict: bool = False,
    log: Callable[[str], None] = print,
    what: str = "data",
) -> tuple[list[Sample], dict[str, Any]]:
    """Graphs at ``config.r_cut``; structures with isolated atoms (no neighbour within r_cut)
    or above the edge budget are skipped and counted (``strict``: ``ValueError`` listing them).
    """
    samples, isolated, too_big = [], [], []
    for k, (i, s, v) in enumerate(zip(prep.ids, prep.structures, prep.values)):
        try:
            g = graph_of(s, k, config)
        except ValueError as exc:
            if "max_edges" in str(exc):
                too_big.append(i)
                continue
            raise ValueError(f"{what}: structure {i!r}: {exc}") from exc
        if bool((g.counts == 0).any()):
            isolated.append(i)
            continue
        samples.append(Sample(i, g, v, s))
    for bad, why in (
        (isolated, f"have atoms without a neighbour within r_cut={config.r_cut} Å"),
        (too_big, f"have more edges than max_edges={config.max_edges:,}"),
    ):
        if not bad:
            continue
        msg = f"{what}: {len(bad)} structure(s) {why}: {bad[:20]}" + (
            " ..." if len(bad) > 20 else ""
        )
        if strict:
            raise ValueError(msg + " (strict: fix the data, or run without --strict to skip them)")
        log(msg + " — skipped")
    if not samples:
        raise ValueError(f"{what}: no usable structure left at r_cut={config.r_cut} Å")
    return samples, {"isolated": len(isolated), "too_big": len(too_big)}


def subset(prep: Prepared, idx: Any) -> Prepared:
    """The rows ``idx`` of ``prep`` (its report kept)."""
    return Prepared(
        [prep.ids[i] for i in idx],
        [prep.structures[i] for i in idx],
        [prep.values[i] for i in idx],
        prep.report,
    )
