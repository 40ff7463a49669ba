"""The run folder: which files make a run, the log, the metrics files.

A run folder holds::

    run.json            what produced the run (arguments, start time)
    config.json         the NetworkConfig (r_cut and layers from mp-audit unless given)
    options.json        the training options (TrainOptions)
    recommendation.json the mp-audit recommendation computed on the training structures
    split.json          material ids of the train / val / test structures
    last.pt, best.pt    checkpoints (model, EMA, optimizer, schedule, RNG, epoch, ...)
    metrics.csv/.jsonl  one row per epoch
    train.log           the log printed during training
    learning_curve.png  train and validation loss per epoch
    test_metrics.json   metrics of best.pt (EMA weights) on the test split, with the
                        mean-predictor baseline
    test_predictions.csv
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xtalnet.ensemble import COMPOSITIONS_FILE, ENSEMBLE_FILE

__all__ = [
    "CHECKPOINTS",
    "RUN_FILES",
    "RunLog",
    "check_out",
    "remove_run",
    "remove_stale_temporaries",
    "start_run_folder",
    "write_metrics",
]

#: files that mark a folder as holding a run (refused unless resume / overwrite)
RUN_FILES = (
    "run.json",
    "config.json",
    "options.json",
    "recommendation.json",
    "split.json",
    "last.pt",
    "best.pt",
    "metrics.csv",
    "metrics.jsonl",
    "train.log",
    "learning_curve.png",
    "test_metrics.json",
    "test_predictions.csv",
)


class RunLog:
    """Prints (rank 0) and appends to ``train.log`` once the run has started.

    Lines logged before :meth:`start` (reading data, choosing the config) are printed at
    once and kept; ``start`` writes them to the log file. A run that fails before it starts
    therefore leaves no ``train.log`` behind, and never appends to the log of a run that
    ``--overwrite`` would replace.
    """

    def __init__(self, out: Path | None, active: bool, quiet: bool = False) -> None:
        self.path = out / "train.log" if (out is not None and active) else None
        self.active = active
        self.quiet = quiet
        self._pending: list[str] | None = []

    def __call__(self, msg: str) -> None:
        if not self.active:
            return
        if not self.quiet:
            print(msg, flush=True)
        if self._pending is not None:
            self._pending.append(msg)
        elif self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(msg + "\n")

    def record(self, msg: str) -> None:
        """A line for ``train.log`` only (the caller shows it its own way)."""
        quiet, self.quiet = self.quiet, True
        try:
            self(msg)
        finally:
            self.quiet = quiet

    def warn(self, msg: str) -> None:
        """A line that starts with ``warning:`` (and goes to stderr as well)."""
        if self.active and self.quiet:
            print(f"warning: {msg}", file=sys.stderr, flush=True)
        self(f"warning: {msg}")

    def start(self) -> None:
        """From now on lines go to ``train.log`` (the ones kept so far first)."""
        pending, self._pending = self._pending or [], None
        if self.path is not None and pending:
            with self.path.open("a", encoding="utf-8") as f:
                f.write("".join(m + "\n" for m in pending))


#: checkpoints: a folder holding one of them holds a run
CHECKPOINTS = ("last.pt", "best.pt")
#: temporary files of atomic writes (a process killed while writing leaves them behind)
TEMPORARIES = (".last.pt.tmp-*", ".best.pt.tmp-*", ".metrics.csv.tmp", ".metrics.jsonl.tmp")


def check_out(out: Path, resume: bool, overwrite: bool, flag: str = "--out") -> None:
    """Refuse a folder that holds another run (unless ``overwrite``); ``resume`` needs one.

    A folder holds a run when it has a checkpoint (``last.pt`` or ``best.pt``) or is an
    ensemble (``ensemble.json`` beside ``member-1 …``): the files
    of a start that failed before its first epoch are not a run and are replaced. ``out``
    must be a folder, or a path where one can be made (``ValueError`` naming ``flag``).
    Nothing is written.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"{flag} {str(out)!r} is a file, not a folder: name a folder for the run")
    if resume:
        if not (out / "last.pt").is_file():
            raise ValueError(f"--resume {str(out)!r}: no last.pt there to resume from")
        _check_writable(out, "--resume")
        return
    _check_writable(out, flag)
    held = [f for f in (*RUN_FILES, ENSEMBLE_FILE) if (out / f).exists()] if out.is_dir() else []
    if any(f in held for f in (*CHECKPOINTS, ENSEMBLE_FILE)) and not overwrite:
        resumable = "" if flag.startswith("demo") else "pass --resume to continue it or "
        raise ValueError(
            f"{flag} {str(out)!r} already holds a run ({', '.join(held[:5])}); {resumable}"
            "pass --overwrite to replace it"
        )


def _check_writable(out: Path, flag: str) -> None:
    """``out`` (or the nearest existing folder above it) is a folder this process may write."""
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{flag} {str(out)!r}: {str(probe)!r} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"{flag} {str(out)!r}: no permission to write in {str(probe)!r}")


def start_run_folder(out: Path, replace: bool) -> list[str]:
    """Make the run folder; with ``replace`` remove the files of the run it holds first.

    Called once everything about the new run has been checked. Returns the names of the
    stale temporary files (of a process killed while saving) it removed.
    """
    out.mkdir(parents=True, exist_ok=True)
    if replace:
        remove_run(out)
    return remove_stale_temporaries(out)


def remove_run(out: Path, keep: Sequence[str] = ()) -> None:
    """Remove the run or the ensemble ``out`` holds (what ``--overwrite`` replaces): its
    files, and an ensemble's ``ensemble.json``, ``train_compositions.npz``,
    ``calibration_*.png`` and the ``member-N`` folders that hold run files (except the names
    in ``keep``). Nothing else is touched."""
    for f in (*RUN_FILES, ENSEMBLE_FILE, COMPOSITIONS_FILE):
        (out / f).unlink(missing_ok=True)
    for p in out.glob("calibration_*.png"):
        p.unlink(missing_ok=True)
    for d in out.glob("member-*"):
        is_member = d.name[len("member-") :].isdigit() and d.is_dir()
        if is_member and d.name not in keep and any((d / f).exists() for f in RUN_FILES):
            shutil.rmtree(d)


def remove_stale_temporaries(out: Path) -> list[str]:
    """Remove what an atomic write left behind when its process was killed; their names."""
    removed = []
    for pattern in TEMPORARIES:
        for p in sorted(out.glob(pattern)):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


def write_metrics(out: Path, history: Sequence[Mapping[str, Any]]) -> None:
    """``metrics.csv`` and ``metrics.jsonl``: one row per epoch (each replaced atomically)."""
    keys: list[str] = []
    for row in history:
        for k in row:
            if k not in keys:
                keys.append(k)
    tmp = out / ".metrics.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in history:
            w.writerow(row)
    os.replace(tmp, out / "metrics.csv")
    tmp = out / ".metrics.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    os.replace(tmp, out / "metrics.jsonl")
