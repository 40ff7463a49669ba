"""Score finished runs of one split as an ensemble, offline (the A/B runs behind the rule that
ensemble members vary their inputs, docs/RESULTS.md).

    python benchmarks/combine.py RUN_DIR [RUN_DIR ...]

Each RUN_DIR's ``best.pt`` predicts the validation and test split of its own ``split.json``
(with its own r_cut and inputs, read from the sources of its ``run.json``); the runs are
combined on the structures every one of them predicts, as ``xtalnet train --ensemble``
combines its members (:func:`xtalnet.ensemble.combine`), σ = k sqrt(spread² + w d²) is
fitted on the validation split (d: the composition's distance to the first run's training
split), and the test split is scored: the mean's MAE beside each run's, the fractions of
|error| <= σ and <= 2σ and Spearman(|error|, σ). Writes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import xtalnet
from xtalnet._metrics import calibration, sigma_fit, widened_sigma
from xtalnet.composition_distance import TrainingCompositions
from xtalnet.ensemble import combine, predict_graphs
from xtalnet.training.ensemble import split_samples


def _predictions(run: Path) -> tuple[Any, dict[str, Any]]:
    """The run's network and, per split name, its samples and decoded predictions (and the
    training compositions under ``"train"``)."""
    net = xtalnet.load(run / "best.pt")
    parts = split_samples(run, json.loads((run / "run.json").read_text()), net.config)
    out: dict[str, Any] = {
        "train": TrainingCompositions.from_numbers([s.graph.numbers for s in parts["train"]])
    }
    for name in ("val", "test"):
        samples = parts[name]
        out[name] = (samples, predict_graphs(net, [s.graph for s in samples],
                                             [s.id for s in samples], 64))  # fmt: skip
    return net, out


def _combined(per_run: list, name: str, column: str, heads: dict) -> tuple[np.ndarray, ...]:
    """Members' predictions [K, n], the ensemble's mean and spread, the true values and the
    distances to the first run's training compositions on the structures of split ``name``
    that every run predicts."""
    common = set.intersection(*({s.id for s in p[name][0]} for p in per_run))
    samples = [s for s in per_run[0][name][0] if s.id in common]
    members = []
    for p in per_run:
        row = {s.id: k for k, s in enumerate(p[name][0])}
        members.append({column: p[name][1][column][[row[s.id] for s in samples]]})
    mean = combine(members, heads)
    true, ok = heads[column].true_values([s.values.get(column) for s in samples])
    stack = np.stack([m[column] for m in members])
    distance = per_run[0]["train"].distance([s.graph.numbers for s in samples])
    return stack[:, ok], mean[column][ok], mean[f"{column}.std"][ok], true[ok], distance[ok]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    per_run = [_predictions(run) for run in ap.parse_args().runs]
    heads = per_run[0][0].target_heads
    for column in heads:
        _, mean, spread, true, d = _combined([p[1] for p in per_run], "val", column, heads)
        scale, w = sigma_fit(mean - true, spread, d)
        members, mean, spread, true, d = _combined([p[1] for p in per_run], "test", column,
                                                   heads)  # fmt: skip
        err = mean - true
        cal = calibration(err, widened_sigma(spread, scale, w, d))
        member_mae = ", ".join(f"{np.abs(m - true).mean():.4f}" for m in members)
        print(
            f"{column}: mean's test MAE {np.abs(err).mean():.4f} (runs {member_mae}); "
            f"|error| <= σ {cal['within_1sigma']:.2f}, <= 2σ {cal['within_2sigma']:.2f}, "
            f"Spearman {cal['spearman']:.2f} (exact σ: {cal['spearman_if_exact']:.2f}); "
            f"σ = {scale:.3g} sqrt(spread² + {w:.3g} d²); "
            f"n = {true.shape[0]}"
        )


if __name__ == "__main__":
    main()
