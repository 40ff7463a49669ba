"""Re-fit the post-training calibration of a finished run with today's code and score it.

    python benchmarks/recalibrate.py RUN_DIR [RUN_DIR ...]

The calibration (``Head.calibrate``: a band gap's spread and Platt scaling) is fitted on the
validation split after training and changes no weight, so a run trained before a
calibration existed (or with a broken one) can be scored as today's code would have left it.
For each ``best.pt`` of RUN_DIR (or of its ``member-*`` folders), reads the run's sources
(``run.json``) and split (``split.json``), calibrates every head on the validation split and
prints the test MAE as saved and re-calibrated, per target; for an ensemble folder also the
MAE of the members' mean. Writes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import xtalnet
from xtalnet.prediction import forward_graphs
from xtalnet.training.ensemble import split_samples


def _outputs(net: xtalnet.Network, samples: list) -> dict[str, torch.Tensor]:
    out = forward_graphs(net, [s.graph for s in samples], [s.id for s in samples], 64)
    return {c: torch.as_tensor(v) for c, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    for root in ap.parse_args().runs:
        runs = sorted(root.glob("member-*")) or [root]
        saved: dict[str, list[np.ndarray]] = {}
        recal: dict[str, list[np.ndarray]] = {}
        truth: dict[str, tuple[np.ndarray, np.ndarray, object]] = {}
        for run in runs:
            net = xtalnet.load(run / "best.pt")
            parts = split_samples(run, json.loads((run / "run.json").read_text()), net.config)
            val, test = parts["val"], parts["test"]
            out_val, out_test = _outputs(net, val), _outputs(net, test)
            for c, head in net.target_heads.items():
                true, ok = head.true_values([s.values.get(c) for s in test])
                truth[c] = (true, ok, head)
                before = head.decode(out_test[c])
                fitted = head.calibrate(out_val[c], head.encode([s.values.get(c) for s in val]))
                after = head.decode(out_test[c])
                saved.setdefault(c, []).append(before)
                recal.setdefault(c, []).append(after)
                mae = [float(np.abs(p[ok] - true[ok]).mean()) for p in (before, after)]
                what = {k: round(float(v), 4) for k, v in fitted.items()}
                print(f"{run}: {c} test MAE {mae[0]:.4f} as saved, {mae[1]:.4f} re-calibrated "
                      f"({what})")  # fmt: skip
        if len(runs) > 1:
            for c in saved:  # the members of one split: its test ids are theirs
                true, ok, head = truth[c]
                mae = [float(np.abs(head.average(np.stack(p))[ok] - true[ok]).mean())
                       for p in (saved[c], recal[c])]  # fmt: skip
                print(f"{root}: {c} ensemble mean: test MAE {mae[0]:.4f} as saved, "
                      f"{mae[1]:.4f} re-calibrated")  # fmt: skip


if __name__ == "__main__":
    main()
