"""Data sets with targets: a source read with :func:`mp_audit.load`, its structures parsed,
its target columns kept, and the graphs of the structures that can be used.

What cannot be used is counted and reported, never dropped silently: rows without any target
value, structures that do not parse, structures with isolated atoms at r_cut or more edges
than the budget (``strict``: ``ValueError`` listing them instead).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xtalnet.config import NetworkConfig
from xtalnet.data import graph_of, orient, to_structure, without_position

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


def _renamed(absent: Sequence[str], present: set[str]) -> str:
    """A hint for targets that the source reads under mp-audit's canonical name (the MatTen
    file's ``elastic_tensor_voigt`` is read as ``elastic_tensor``)."""
    from mp_audit import PROPERTY_ALIASES

    hints = [f"{c!r} is read as {name!r}: give --target {name}"
             for c in absent for name, aliases in PROPERTY_ALIASES.items()
             if c in aliases and c != name and name in present]  # fmt: skip
    return f" ({'; '.join(hints)})" if hints else ""


def _columns_needed(columns: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(columns))


def open_source(source: Any, columns: Sequence[str], flag: str = "--data") -> Any:
    """:func:`mp_audit.load` of ``source`` keeping ``columns``; errors name ``flag``."""
    import mp_audit

    if isinstance(source, mp_audit.Dataset):
        return source
    if isinstance(source, str) and source == "mp":
        try:
            mp_audit.resolve_api_key()
        except ValueError as exc:
            raise ValueError(
                f"{flag} mp needs a Materials Project API key: set the MP_API_KEY environment "
                "variable (or pymatgen's PMG_MAPI_KEY setting); the key is never printed"
            ) from exc
    try:
        return mp_audit.load(source, columns=list(columns) or None)
    except ValueError as exc:
        about = f"target column(s) {list(columns)}: " if columns else ""
        raise ValueError(f"{flag} {str(source)!r}: {about}{exc}") from exc


def left_out_files(source: Any, ds: Any) -> list[str]:
    """The files of a folder ``source`` that :func:`mp_audit.load` did not read (neither
    structure files nor, in a folder without them, tables), and its sub-folders (named with
    a trailing ``/``: folders are not searched recursively): [] for any other source."""
    if not isinstance(source, (str, os.PathLike)) or not Path(source).is_dir():
        return []
    read = ds.meta.get("files", {})
    return sorted(
        f.name + "/" if f.is_dir() else f.name
        for f in Path(source).iterdir()
        if f.is_dir() or (f.is_file() and f.name not in read)
    )


def say_left_out(where: str, names: Sequence[str], log: Callable[[str], None]) -> None:
    """Log the files of a folder that were not read, by name (nothing if none)."""
    if not names:
        return
    from mp_audit import is_table_file

    folders = [n for n in names if n.endswith("/")]
    if folders:
        shown = ", ".join(folders[:5]) + (" …" if len(folders) > 5 else "")
        log(f"warning: {where}: {len(folders)} sub-folder(s) not read (a folder's own files "
            f"are read, not those of its sub-folders): {shown}")  # fmt: skip
    tables = [n for n in names if is_table_file(n)]
    other = [n for n in names if n not in tables and n not in folders]
    if other:
        shown = ", ".join(other[:5]) + (" …" if len(other) > 5 else "")
        log(f"warning: {where}: {len(other)} file(s) left out, not named as structure files "
            f"or tables: {shown}")  # fmt: skip
    if tables:
        shown = ", ".join(tables[:5]) + (" …" if len(tables) > 5 else "")
        log(f"warning: {where}: {len(tables)} table(s) left out: a folder with structure files "
            f"reads only those (give a table as --data itself): {shown}")  # fmt: skip


def load_source(
    source: Any,
    columns: Sequence[str],
    *,
    strict: bool = False,
    log: Callable[[str], None] = print,
    flag: str = "--data",
) -> Prepared:
    """Read ``source`` with :func:`mp_audit.load`, keeping the target ``columns``.

    Rows whose targets are all missing (NaN / None) are dropped and counted per column;
    structures that do not parse are skipped and counted, each with its id and its whole
    reason (``strict``: ``ValueError`` listing them). A target column absent from the source
    raises ``ValueError`` listing the columns present. Messages name ``flag`` (``--data``,
    ``--val``, ``--test``).
    """
    columns = _columns_needed(columns)
    ds = open_source(source, columns, flag)
    say_left_out(f"{flag} {str(source)!r}", left_out_files(source, ds), log)
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
            failures.append((entry.material_id, without_position(str(exc))))
            continue
        ids.append(entry.material_id)
        structures.append(s)
        values.append(vals)
    name = getattr(ds, "name", source)
    absent = [c for c in columns if c not in present]
    if n_rows and absent:
        raise ValueError(
            f"{flag} {name!r}: target column(s) {absent} are absent; columns present: "
            f"{sorted(present)}{_renamed(absent, present)}"
        )
    if columns and n_rows and all(missing[c] == n_rows for c in columns):
        raise ValueError(f"{flag} {name!r}: every target value of {columns} is missing (NaN)")
    for c, k in missing.items():
        if k:
            log(f"target {c!r}: {k} of {n_rows} rows have no value (NaN/None); dropped from it")
    if failures:
        reasons = "\n".join(f"  {m}: {e}" for m, e in failures[:20])
        more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
        msg = f"{flag} {name!r}: {len(failures)} structure(s) cannot be used:\n{reasons}{more}"
        if strict:
            raise ValueError(msg + "\n(strict: fix them, or run without --strict to skip them)")
        log(msg + "\n  (skipped)")
    if not ids:
        raise ValueError(f"{flag} {name!r}: no usable structures")
    _say_duplicates(ids, values, f"{flag} {name!r}", log)
    report = {"rows": n_rows, "missing": missing, "parse_failures": len(failures)}
    return Prepared(ids, structures, values, report)


def _say_duplicates(
    ids: Sequence[str], values: Sequence[dict[str, Any]], where: str, log: Callable[[str], None]
) -> None:
    """Log the ids that appear more than once, and those whose copies disagree."""
    copies: dict[str, list[int]] = {}
    for i, m in enumerate(ids):
        copies.setdefault(m, []).append(i)
    repeated = [m for m, rows in copies.items() if len(rows) > 1]
    if not repeated:
        return

    def text(v: dict[str, Any]) -> str:
        return json.dumps(v, sort_keys=True, default=lambda x: np.asarray(x).tolist())

    differ = [m for m in repeated if len({text(values[i]) for i in copies[m]}) > 1]
    rows = sum(len(copies[m]) for m in repeated)
    log(f"warning: {where}: {len(repeated)} id(s) appear more than once ({rows} rows, e.g. "
        f"{repeated[:3]}); where train splits them, a seeded split keeps the copies of an "
        "id together"
        + (f"; {len(differ)} of them with different target values (e.g. {differ[:3]})"
           if differ else ""))  # fmt: skip


def build_samples(
    prep: Prepared,
    config: NetworkConfig,
    *,
    strict: bool = False,
    log: Callable[[str], None] = print,
    what: str = "data",
) -> tuple[list[Sample], dict[str, Any]]:
    """Graphs at ``config.r_cut`` (structures in the frame of ``config.tensor_frame``).

    Structures with isolated atoms (no neighbour within r_cut), above the edge budget, or
    refused by the structure guards of :func:`xtalnet.data.graph_of` (a flat cell,
    overlapping atoms, an unsupported element, ...) are skipped and counted, each with its id
    and reason (``strict``: ``ValueError`` listing them).
    """
    samples: list[Sample] = []
    skipped: dict[str, list[tuple[str, str]]] = {"isolated": [], "too_big": [], "invalid": []}
    for k, (i, s, v) in enumerate(zip(prep.ids, prep.structures, prep.values)):
        try:
            oriented = orient(s, config, k)
            g = graph_of(oriented, k, config, oriented=True)
        except ValueError as exc:
            skipped["too_big" if "max_edges" in str(exc) else "invalid"].append((i, str(exc)))
            continue
        if bool((g.counts == 0).any()):
            skipped["isolated"].append((i, ""))
            continue
        samples.append(Sample(i, g, v, oriented))
    _report_skipped(skipped, config, strict, log, what)
    if not samples:
        why = "; ".join(f"{len(v)} {_SKIP_WHY[k]}" for k, v in skipped.items() if v)
        why = f" ({why})" if why else ""
        raise ValueError(f"{what}: no usable structure left at r_cut={config.r_cut} Å, "
                         f"max_edges={config.max_edges:,}{why}")  # fmt: skip
    return samples, {k: len(v) for k, v in skipped.items()}


_SKIP_WHY = {"isolated": "with an atom without neighbours within r_cut",
             "too_big": "with more edges than max_edges (raise --max-edges)",
             "invalid": "invalid"}  # fmt: skip


def _report_skipped(
    skipped: dict[str, list[tuple[str, str]]],
    config: NetworkConfig,
    strict: bool,
    log: Callable[[str], None],
    what: str,
) -> None:
    why = {
        "isolated": f"have atoms without a neighbour within r_cut={config.r_cut} Å",
        "too_big": f"have more edges than max_edges={config.max_edges:,}",
        "invalid": "are refused by the structure guards",
    }
    for key, bad in skipped.items():
        if not bad:
            continue
        ids = [i for i, _ in bad]
        msg = f"{what}: {len(bad)} structure(s) {why[key]}: {ids[:20]}" + (
            " ..." if len(bad) > 20 else ""
        )
        if key == "invalid":
            msg += "".join(f"\n  {i}: {reason}" for i, reason in bad[:20])
        if strict:
            raise ValueError(msg + " (strict: fix the data, or run without --strict to skip them)")
        log(msg + " — skipped")


def subset(prep: Prepared, idx: Any) -> Prepared:
    """The rows ``idx`` of ``prep`` (its report kept)."""
    return Prepared(
        [prep.ids[i] for i in idx],
        [prep.structures[i] for i in idx],
        [prep.values[i] for i in idx],
        prep.report,
    )
