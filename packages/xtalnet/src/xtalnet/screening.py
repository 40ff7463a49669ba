"""Screening a whole data set: predictions for every structure of any source
:func:`mp_audit.load` reads, streamed to one CSV.

``xtalnet predict --checkpoint CKPT --data SOURCE --out predictions.csv`` reads the source in
chunks, predicts them in batches under a progress bar and writes one row per structure, in
input order: its id, its formula, every prediction in physical units (tensors as JSON lists,
like the Materials Project files; ``.std`` columns for an ensemble; K_VRH / G_VRH of elastic
tensors), the source's value of each target where it has its column (``<target>_true``), and a
``status`` column: ``ok``, or why the structure was not predicted (it does not parse, its
cell is flat, an atom has no neighbour within r_cut, ...) or why its prediction is doubtful
(elements absent from the training data). A structure that fails never stops the run. The
file is written as ``<out>.partial`` and renamed when complete. ``out`` never replaces the
source, a checkpoint or a file of the model's run folder, and replaces another existing file
only with ``overwrite``.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from xtalnet.data import to_structure
from xtalnet.dataset import is_missing, left_out_files, open_source, say_left_out
from xtalnet.tables import cell_text, frame_note, predict_table

__all__ = ["check_out", "screen"]


def screen(
    model: Any,
    source: Any,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    chunk: int = 256,
    progress: bool = True,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Predict every structure of ``source`` with ``model`` (a Network or an Ensemble) and
    write the rows to the CSV ``out``; returns ``{"rows", "predicted", "flagged", "failed",
    "out"}`` (counts, and the path). ``out`` is checked first (:func:`check_out`)."""
    check_out(out, source, getattr(model, "checkpoint_path", None), overwrite)
    columns = list(model.target_heads)
    truths = columns  # the targets the source has a column of: <target>_true
    try:
        ds = open_source(source, columns, flag="--data")
    except ValueError:
        ds, truths = open_source(source, [], flag="--data"), []
    say_left_out(f"--data {str(source)!r}", left_out_files(source, ds), log)
    path = Path(out)
    partial = path.with_name(path.name + ".partial")
    counts = {"rows": 0, "predicted": 0, "flagged": 0, "failed": 0}
    bar = _bar(len(ds) if hasattr(ds, "__len__") else None, progress)
    with partial.open("w", newline="", encoding="utf-8") as f:
        writer: csv.DictWriter | None = None
        for entries in _chunks(ds, chunk):
            rows = _rows(model, entries, truths, batch_size)
            if writer is None:
                fields = [k for k in rows[0] if k != "status" and not k.endswith("_true")]
                fields += [f"{c}_true" for c in truths] + ["status"]
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
    note = frame_note(model)
    if note:
        log(note)
    return {**counts, "out": str(path)}


def check_out(
    out: str | os.PathLike[str], source: Any, checkpoint: Any = None, overwrite: bool = False
) -> None:
    """Refuse an ``out`` that would lose data: in a folder that does not exist, a folder, the
    source (or a file in it), a ``.pt`` file, a file of the checkpoint's run folder (an
    ensemble's included), or any other existing file unless ``overwrite``; and a name that
    is not ``.csv`` (the rows are CSV).

    Raises
    ------
    ValueError
        Naming ``--out`` and what it would have replaced.
    """
    path = Path(out).resolve()
    if path.is_dir():
        raise ValueError(f"--out {str(out)!r} is a folder: name the CSV file to write")
    if not path.parent.is_dir():
        raise ValueError(f"--out {str(out)!r}: the folder {str(path.parent)!r} does not exist")
    if path.suffix.lower() == ".pt":
        raise ValueError(f"--out {str(out)!r}: a .pt name is a checkpoint's; predictions are a "
                         "CSV file")  # fmt: skip
    if path.suffix.lower() != ".csv":
        raise ValueError(f"--out {str(out)!r}: the predictions are written as CSV; name the "
                         "file .csv")  # fmt: skip
    if isinstance(source, (str, os.PathLike)) and _within(path, Path(source).resolve()):
        if Path(source).is_dir():
            raise ValueError(f"--out {str(out)!r} is inside the --data folder: a later read of "
                             "the folder would take it as data; write it elsewhere")  # fmt: skip
        raise ValueError(f"--out {str(out)!r} would replace the --data source it reads")
    if path.exists() and checkpoint is not None:
        run = Path(checkpoint).resolve()
        run = run if run.is_dir() else run.parent
        if _within(path, run):
            raise ValueError(f"--out {str(out)!r} would replace a file of the run "
                             f"{str(run)!r}: write the predictions elsewhere")  # fmt: skip
    if path.exists() and not overwrite:
        raise ValueError(f"--out {str(out)!r} exists: give --overwrite to replace it, or "
                         "another name")  # fmt: skip


def _within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


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


def _rows(model: Any, entries: list[Any], truths: list[str], batch_size: int) -> list[dict]:
    """The CSV rows of one chunk of entries (every failure a status, never an exception);
    ``truths``: the targets whose source values are written as ``<target>_true``."""
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
        for c in truths:
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
