"""Streamed, parallel map step and the :func:`audit` entry point."""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ._audits import (
    DEFAULT_LAYERS,
    DEFAULT_TARGET,
    EXPECTED_RUN_TYPES,
    audit_entry,
    recommendation_json,
    summarize,
)
from ._dataset import Dataset, Entry
from ._geometry import DEFAULT_R_CUTS, check_r_cuts
from ._loaders import load

#: entries handed to the pool at once; bounds memory on 150k+ structure datasets
DEFAULT_CHUNK = 2000


def _chunks(items: Iterator[Entry], size: int) -> Iterator[list[Entry]]:
    chunk: list[Entry] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the cores this process may use
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def _check_jobs(jobs: int, work: int | None = None) -> int:
    """Worker processes: ``jobs`` (0 = all cores) capped at the cores and at ``work`` items."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 0:
        raise ValueError(f"jobs={jobs!r}: expected an int >= 1, or 0 for all CPU cores")
    jobs = min(jobs or _cores(), _cores())
    if work is not None:
        jobs = min(jobs, max(work, 1))
    return jobs


def map_entries(
    dataset: Dataset,
    *,
    r_cuts: Sequence[float] = DEFAULT_R_CUTS,
    jobs: int = 1,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = True,
) -> pd.DataFrame:
    """Run :func:`mp_audit.audit_entry` over a dataset, streaming it in chunks.

    Only the small per-structure records are kept, so memory stays flat however large
    the dataset. ``jobs`` > 1 uses a process pool (``0`` = all cores); the pool never has
    more workers than cores or entries (``--jobs 64`` on 3 entries starts 3 workers).

    Returns
    -------
    pandas.DataFrame
        One row per entry, in dataset order.
    """
    r_cuts = check_r_cuts(r_cuts)
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r}: expected an int >= 1")
    jobs = _check_jobs(jobs, dataset.size)
    fn = functools.partial(audit_entry, r_cuts=r_cuts)
    # each chunk becomes a small columnar frame at once: 150k dicts would cost far more
    frames: list[pd.DataFrame] = []
    bar = tqdm(
        total=dataset.size, desc=f"audit {dataset.name}", unit="struct", disable=not progress
    )
    pool = None
    if jobs > 1:
        # fork keeps start-up cheap; entries are pickled per chunk, results are small dicts
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        pool = multiprocessing.get_context(method).Pool(jobs)
    try:
        for chunk in _chunks(iter(dataset), chunk_size):
            if pool is None:
                out = [fn(e) for e in chunk]
            else:
                out = pool.map(fn, chunk, chunksize=max(1, len(chunk) // (4 * jobs)))
            frames.append(pd.DataFrame.from_records(out))
            bar.update(len(chunk))
    finally:
        bar.close()
        if pool is not None:
            pool.close()
            pool.join()
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(table) == 0:
        table = pd.DataFrame(columns=["material_id", "parse_error"])
    for key in ("band_gap", "formation_energy_per_atom", "energy_above_hull"):
        if f"has_{key}" not in table:
            table[f"has_{key}"] = False
            table[key] = float("nan")
    for key in ("theoretical", "deprecated", "run_type"):
        if key not in table:
            table[key] = None
    return table


@dataclass
class AuditResult:
    """Everything an audit produced.

    Attributes
    ----------
    source
        Source name.
    table
        Per-structure records (see :func:`mp_audit.audit_entry`).
    summary
        JSON-ready chapter-2 summary (see :func:`mp_audit.summarize`).
    recommendation
        JSON for ``xtalnet``: cut-off, layers, coverage table, eq. 2.1 parameters.
    meta
        Provenance of the dataset (files and row counts, MP database version).
    """

    source: str
    table: pd.DataFrame
    summary: dict[str, Any]
    recommendation: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)


def _check_layers(layers: Any) -> list[int]:
    """Layer counts as a list of ints >= 1 (one int is a list of one)."""
    values: Any = [layers] if isinstance(layers, (int, np.integer)) else layers
    try:
        values = list(values)
    except TypeError:
        values = []
    if not values or not all(
        isinstance(x, (int, np.integer)) and not isinstance(x, bool) and x >= 1 for x in values
    ):
        raise ValueError(f"layers={layers!r}: expected layer counts, ints >= 1 (or one int)")
    return [int(x) for x in values]


def audit(
    source: str | os.PathLike | Sequence[str] | Dataset,
    *,
    r_cuts: Sequence[float] = DEFAULT_R_CUTS,
    layers: Sequence[int] = DEFAULT_LAYERS,
    target: float = DEFAULT_TARGET,
    expected_run_types: Sequence[str] = EXPECTED_RUN_TYPES,
    jobs: int = 1,
    chunk_size: int = DEFAULT_CHUNK,
    progress: bool = True,
    **load_options: Any,
) -> AuditResult:
    """Run the whole chapter-2 audit on a source.

    Parameters
    ----------
    source
        A :class:`Dataset` or anything :func:`mp_audit.load` accepts.
    r_cuts
        Cut-offs (Å) of the coverage table; 5 Å must be among them for Fig. 2.3.
    layers
        Layer counts of the coverage table, ints >= 1 (one int is a list of one).
    target
        Coverage fraction the recommendation must reach (default 0.98).
    jobs
        Worker processes of the map step (0 = all cores).
    load_options
        Passed to :func:`mp_audit.load` (``columns``, ``api_key``, ``cache_dir``,
        ``limit``, ...); a TypeError when ``source`` is already a :class:`Dataset`.
    """
    # every argument is checked before any data is read or any worker started
    r_cuts = check_r_cuts(r_cuts)
    _check_jobs(jobs)
    if not 0 < target <= 1:
        raise ValueError(f"target={target!r}: expected a fraction in (0, 1]")
    layers = _check_layers(layers)
    if isinstance(source, Dataset) and load_options:
        raise TypeError(
            f"audit() got load options {sorted(load_options)} with a Dataset: they only "
            "apply when source is a path or name (use dataset.head(n) to limit a Dataset)"
        )
    ds = source if isinstance(source, Dataset) else load(source, **load_options)
    table = map_entries(ds, r_cuts=r_cuts, jobs=jobs, chunk_size=chunk_size, progress=progress)
    if ds.load_failures:
        extra = pd.DataFrame(
            [{"material_id": m, "parse_error": err} for m, err in ds.load_failures]
        )
        table = pd.concat([table, extra], ignore_index=True)
        for key in ("band_gap", "formation_energy_per_atom", "energy_above_hull"):
            table[f"has_{key}"] = table[f"has_{key}"].fillna(False).astype(bool)
    summary = summarize(
        table,
        r_cuts=r_cuts,
        layers=layers,
        target=target,
        expected_run_types=expected_run_types,
    )
    summary["source"] = ds.name
    summary["meta"] = ds.meta
    rec = recommendation_json(summary, ds.name)
    if "db_version" in ds.meta:
        rec["db_version"] = ds.meta["db_version"]
    return AuditResult(ds.name, table, summary, rec, dict(ds.meta))
