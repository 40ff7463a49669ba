"""What a user would try first, on the split of a finished run: the mean predictor and a
composition random forest.

    python benchmarks/baselines.py RUN_DIR [--trees 300] [--seed 0]

Reads ``run.json`` (the data sources), ``config.json`` (the targets) and ``split.json`` (the
material ids of every split) of an ``xtalnet train`` run folder, and scores on its test split,
with the metrics of the run's own heads (``Head.metrics``, physical units):

- the mean predictor (``Head.mean_baseline``: the train mean; the mean tensor);
- a random forest (scikit-learn, ``--trees`` trees) on composition features only: the
  fraction-weighted mean, the fraction-weighted standard deviation, the minimum and the
  maximum over the elements of the formula of the 21 standardised elemental descriptors of
  :mod:`xtalnet.species` (Magpie-style statistics, 84 features). Scalars are fitted as
  given, ``log`` targets on log10 and predicted back; band gaps are fitted as the gap
  (negative predictions clipped to 0); tensors get one forest per stored entry (36 Voigt
  entries of an elastic tensor, 9 of a dielectric tensor), in the orientation of the data.

Writes ``RUN_DIR/baselines.json`` and prints one line per target. scikit-learn is in the
package's ``bench`` extra, not in its dependencies.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np


def composition_features(structure: Any) -> np.ndarray:
    """84 composition features: weighted mean, weighted std, min and max of the elemental
    descriptors over the formula's elements (weights: atomic fractions)."""
    from xtalnet.species import elemental_table

    table = elemental_table()
    comp = structure.composition.fractional_composition
    z = np.array([el.Z for el in comp.elements])
    w = np.array([comp[el] for el in comp.elements], dtype=np.float64)
    rows = table[z]
    mean = w @ rows
    std = np.sqrt(np.maximum(w @ (rows - mean) ** 2, 0.0))
    return np.concatenate([mean, std, rows.min(0), rows.max(0)])


def _samples(run: Path) -> dict[str, list[tuple[Any, dict[str, Any]]]]:
    """(structure, target values) of every split of the run, in split.json order."""
    import mp_audit
    from xtalnet.data import to_structure
    from xtalnet.heads import TargetSpec

    run = _first_run(run)
    info = json.loads((run / "run.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    columns = [TargetSpec.parse(t).column for t in cfg["targets"]]
    sources = {"train": info["data"], "val": info.get("val") or info["data"],
               "test": info.get("test") or info["data"]}  # fmt: skip
    cache: dict[str, dict[str, Any]] = {}
    out: dict[str, list[tuple[Any, dict[str, Any]]]] = {}
    for part, ids in split.items():
        src = sources[part]
        if src not in cache:
            cache[src] = {e.material_id: e for e in mp_audit.load(src, columns=columns)}
        entries = cache[src]
        out[part] = [(to_structure(entries[i]), {c: entries[i].props.get(c) for c in columns})
                     for i in ids]  # fmt: skip
    return out


def _first_run(run: Path) -> Path:
    """The run folder itself, or member 1 of an ensemble (all members share the split)."""
    return run / "member-1" if (run / "ensemble.json").is_file() else run


def _forest(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, trees: int, seed: int) -> np.ndarray:
    """One random forest per column of ``y`` [n, k]; predictions [n_test, k]."""
    from sklearn.ensemble import RandomForestRegressor

    preds = []
    for k in range(y.shape[1]):
        rf = RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=1)
        rf.fit(x, y[:, k])
        preds.append(rf.predict(x_test))
    return np.stack(preds, 1)


def baselines(run: Path, trees: int = 300, seed: int = 0) -> dict[str, Any]:
    """``{target: {"mean": metrics, "forest": metrics}}`` on the run's test split."""
    import torch
    from xtalnet.config import NetworkConfig
    from xtalnet.network import Network

    data = _samples(run)
    net = Network(NetworkConfig.from_json(_first_run(run) / "config.json"))
    x_train = np.stack([composition_features(s) for s, _ in data["train"]])
    x_test = np.stack([composition_features(s) for s, _ in data["test"]])
    result: dict[str, Any] = {}
    for c, head in net.target_heads.items():
        head.to(torch.float64)
        head.fit([v[c] for _, v in data["train"]])
        tr, tr_ok = head.true_values([v[c] for _, v in data["train"]])
        te, te_ok = head.true_values([v[c] for _, v in data["test"]])
        mean_pred, mean_extra = head.mean_baseline(tr[tr_ok], int(te_ok.sum()))
        y = tr[tr_ok].reshape(int(tr_ok.sum()), -1)
        log = head.spec.kind == "log"
        y_fit = np.log10(y) if log else y
        pred = _forest(x_train[tr_ok], y_fit, x_test[te_ok], trees, seed)
        pred = 10.0**pred if log else pred
        if head.spec.kind == "band_gap":
            pred = np.clip(pred, 0.0, None)
        pred = pred.reshape(te[te_ok].shape)
        result[c] = {
            "n_train": int(tr_ok.sum()),
            "n_test": int(te_ok.sum()),
            "mean": head.metrics(mean_pred, te[te_ok], mean_extra),
            "forest": head.metrics(pred, te[te_ok], {}),
        }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="an xtalnet train run folder")
    p.add_argument("--trees", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    res = baselines(args.run, args.trees, args.seed)
    (args.run / "baselines.json").write_text(json.dumps(res, indent=2) + "\n")
    test = {}
    if (args.run / "test_metrics.json").is_file():
        test = json.loads((args.run / "test_metrics.json").read_text())["test"]
    for c, r in res.items():
        line = f"{c}: n_test {r['n_test']}  mean predictor MAE {r['mean']['mae']:.4g}"
        line += f"  composition forest MAE {r['forest']['mae']:.4g}"
        if c in test:
            line += f"  network MAE {test[c]['mae']:.4g}"
        for k in ("mae_log10", "K_VRH_mae_log10", "G_VRH_mae_log10"):
            if k in r["forest"]:
                line += f"  forest {k} {r['forest'][k]:.4g}"
                if c in test and k in test[c]:
                    line += f" (network {test[c][k]:.4g})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
