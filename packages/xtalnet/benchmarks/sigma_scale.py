"""σ's scale on finished ensembles: the normal likelihood's against the coverage fit.

    python benchmarks/sigma_scale.py ENSEMBLE_DIR [ENSEMBLE_DIR ...]

σ = k sqrt(spread² + w d²) (:mod:`xtalnet.ensemble`). For each ensemble folder this reads
its sources (``ensemble.json``), split (``member-1/split.json``) and training compositions,
predicts its validation and test splits with every member, fits w by the likelihood of
normal errors on the validation split (:func:`xtalnet._metrics.sigma_fit`) and, at that w,
the scale k twice: the likelihood's ``sqrt(mean(e² / v))`` (the rule before 8 Dec 2026) and
the coverage fit :func:`xtalnet._metrics.sigma_scale` (95.4 % of the errors within 2σ, the
rule since). Prints, per target and fit, k and on the test split the median σ, the median
|error| and the fractions of |error| within σ and 2σ (entries where the members differ).
Writes nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import xtalnet
from xtalnet._metrics import sigma_fit, sigma_scale
from xtalnet.composition_distance import TrainingCompositions
from xtalnet.ensemble import COMPOSITIONS_FILE, Ensemble, member_dirs, predict_graphs
from xtalnet.training.ensemble import split_samples


def _errors(ensemble: Ensemble, compositions: TrainingCompositions, samples: list, column: str):
    """(error, spread, distance) of the samples with a label; the distance is one per
    crystal."""
    head = ensemble.target_heads[column]
    dec = predict_graphs(ensemble, [s.graph for s in samples], [s.id for s in samples], 64)
    true, ok = head.true_values([s.values.get(column) for s in samples])
    error, spread = dec[column][ok] - true[ok], dec[f"{column}.std"][ok]
    return error, spread, compositions.distance([s.graph.numbers for s in samples])[ok]


def _raw(spread: np.ndarray, w: float, distance: np.ndarray) -> np.ndarray:
    """sqrt(spread² + w d²), d broadcast over a tensor's entries."""
    d = distance.reshape((-1,) + (1,) * (spread.ndim - 1))
    return np.sqrt(spread**2 + w * d**2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("ensembles", nargs="+", type=Path)
    for root in ap.parse_args().ensembles:
        info = json.loads((root / "ensemble.json").read_text())
        # the members alone: their spread, not a σ already scaled
        ensemble = Ensemble(
            [xtalnet.load(d / "best.pt") for d in member_dirs(root, info["members"])]
        )
        sources = {k: info.get(k) for k in ("data", "val", "test")}
        parts = split_samples(root / "member-1", sources, ensemble.config)
        compositions = TrainingCompositions.load(root / COMPOSITIONS_FILE)
        for c in ensemble.target_heads:
            e, s, d = _errors(ensemble, compositions, parts["val"], c)
            _, w = sigma_fit(e, s, d)
            ok = s > 0  # entries where the members agree exactly carry no σ
            raw = _raw(s, w, d)[ok]
            fits = {"likelihood": float(np.sqrt(np.mean((e[ok] / raw) ** 2))),
                    "coverage": sigma_scale(e[ok], raw)}  # fmt: skip
            et, st, dt = _errors(ensemble, compositions, parts["test"], c)
            keep = st > 0
            err, raw_t = np.abs(et[keep]), _raw(st, w, dt)[keep]
            for name, k in fits.items():
                sig = k * raw_t
                print(f"{root} ({info['members']} members) {c} {name}: k {k:.2f}, w {w:.3g}; "
                      f"test median σ {np.median(sig):.4g}, median |error| {np.median(err):.4g}, "
                      f"<= σ {np.mean(err <= sig):.3f}, <= 2σ {np.mean(err <= 2 * sig):.3f} "
                      f"({err.size} entries)")  # fmt: skip


if __name__ == "__main__":
    main()
