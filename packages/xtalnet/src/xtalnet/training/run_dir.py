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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["RUN_FILES", "RunLog", "check_out", "write_metrics"]

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
    """Prints (rank 0) and appends to ``train.log`` when a folder is given."""

    def __init__(self, out: Path | None, active: bool, quiet: bool = False) -> None:
        self.path = out / "train.log" if (out is not None and active) else None
        self.active = active
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.active:
            return
        if not self.quiet:
            print(msg, flush=True)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(msg + "\n")


def check_out(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a folder that holds another run (unless ``overwrite``); ``resume`` needs one."""
    held = [f for f in RUN_FILES if (out / f).exists()] if out.is_dir() else []
    if resume:
        if not (out / "last.pt").is_file():
            raise ValueError(f"--resume {str(out)!r}: no last.pt there to resume from")
        return
    if held and not overwrite:
        raise ValueError(
            f"--out {str(out)!r} already holds a run ({', '.join(held[:5])}); pass --resume to "
            "continue it or --overwrite to replace it"
        )


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
