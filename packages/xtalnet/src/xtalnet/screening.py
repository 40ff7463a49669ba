"""Screening a whole data set: predictions for every structure of any source
:func:`mp_audit.load` reads, streamed to one CSV.

``xtalnet predict --checkpoint CKPT --data SOURCE --out predictions.csv`` reads the source in
chunks, predicts them in batches under a progress bar and writes one row per structure, in
input order: its id, its formula, every prediction in physical units (tensors as JSON lists,
like the Materials Project files; ``.std`` columns for an ensemble; K_VRH / G_VRH of elastic
tensors), the source's value of each target where it has one (``<target>_true``), and a
``status`` column: ``ok``, or why the structure was not predicted (it does not parse, its
cell is flat, an atom has no neighbour within r_cut, ...) or why its prediction is doubtful
(elements absent from the training data). A structure that fails never stops the run. The
file is written as ``<out>.partial`` and renamed when complete.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from xtalnet.data import to_structure
from xtalnet.dataset import is_missing, open_source
from xtalnet.tables import cell_text, predict_table

__all__ = ["screen"]


def screen(
    model: Any,
    source: Any,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    chunk: int = 256,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Predict every structure of ``source`` with ``model`` (a Network or an Ensemble) and
    write the rows to the CSV ``out``; returns ``{"rows", "predicted", "flagged", "failed",
    "out"}`` (counts, and the path)."""
    columns = list(model.target_heads)
    try:  # keep the target columns where the source has them (for <target>_true)
        ds = open_source(source, columns, flag="--data")
    except ValueError:
        ds = open_source(source, [], flag="--data")
    path = Path(out)
    partial = path.with_name(path.name + ".partial")
    counts = {"rows": 0, "predicted": 0, "flagged": 0, "failed": 0}
    bar = _bar(len(ds) if hasattr(ds, "__len__") else None, progress)
    with partial.open("w", newline="", encoding="utf-8") as f:
        writer: csv.DictWriter | None = None
        for entries in _chunks(ds, chunk):
            rows = _rows(model, entries, columns, batch_size)
            if writer is None:
                fields = [k for k in rows[0] if k != "status" and not k.endswith("_true")]
                fields += [f"{c}_true" for c in columns] + ["status"]
                writer = csv.DictWriter(f, fieldnames=fields, restval="", extrasaction="ignore")
                writer.writeheader()
            writer.writerows(rows)
            _count(counts, rows)
            if bar is not None:
                bar.update(len(rows))
        for ident, reason in getattr(ds, "load_failures", []):
            row = {"id": ident, "status": f"not predicted: {reason}"}
            if writer is None:
                writer = csv.DictWriter(f, fieldnames=["id", "status"], extrasaction="ignore")
                writer.writeheader()
            writer.writerow(row)
            counts["rows"] += 1
            counts["failed"] += 1
    if bar is not None:
        bar.close()
    os.replace(partial, path)
    log(f"wrote {counts['rows']} rows to {path}: {counts['predicted']} predicted "
        f"({counts['flagged']} of them flagged), {counts['failed']} not predicted (see the "
        "status column)")  # fmt: skip
    return {**counts, "out": str(path)}


def _bar(total: int | None, progress: bool) -> Any:
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # a dependency, but never fail a run over a bar
        return None
    return tqdm(total=total, unit="structure", desc="predict", file=sys.stderr)


def _chunks(entries: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for e in entries:
        chunk.append(e)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _rows(model: Any, entries: list[Any], columns: list[str], batch_size: int) -> list[dict]:
    """The CSV rows of one chunk of entries (every failure a status, never an exception)."""
    structures: list[Any] = []
    for k, e in enumerate(entries):
        try:
            structures.append(to_structure(e, k))
        except (ValueError, TypeError) as exc:
            structures.append(exc)
    table = predict_table(model, structures, [e.material_id for e in entries],
                          batch_size=batch_size)  # fmt: skip
    rows = []
    for e, row in zip(entries, table):
        out = {"id": row.pop("name"), **{k: cell_text(v) for k, v in row.items()}}
        status = out.pop("status")
        for c in columns:
            value = e.props.get(c)
            if value is not None and not is_missing(value):
                out[f"{c}_true"] = cell_text(value)
        out["status"] = status
        rows.append(out)
    return rows


def _count(counts: dict[str, int], rows: list[dict]) -> None:
    for row in rows:
        counts["rows"] += 1
        if row["status"].startswith("not predicted"):
            counts["failed"] += 1
        else:
            counts["predicted"] += 1
            counts["flagged"] += row["status"] != "ok"
