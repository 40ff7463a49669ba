"""Using a trained network: load a checkpoint, predict, evaluate, prediction tables.

This is what a user who never trains imports; nothing here imports :mod:`xtalnet.training`.
Forward passes and decoding live in :mod:`xtalnet.prediction`, files and tables in
:mod:`xtalnet.tables`, metrics in :mod:`xtalnet._metrics`; their public functions are
importable from here too.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from xtalnet import _checkpoint
from xtalnet._device import resolve_device
from xtalnet._metrics import calibration, metrics_of
from xtalnet.composition_distance import TrainingCompositions
from xtalnet.dataset import build_samples, load_source
from xtalnet.ensemble import (
    COMPOSITIONS_FILE,
    ENSEMBLE_FILE,
    Ensemble,
    member_dirs,
    member_fingerprints,
    predict_graphs,
    read_ensemble,
)
from xtalnet.network import Network
from xtalnet.plots import parity_plot
from xtalnet.prediction import decode, forward_graphs, predict, predict_with_notes
from xtalnet.tables import (
    frame_note,
    predict_table,
    unit_label,
    unit_suffix,
    write_json,
    write_predictions,
)
from xtalnet.targets import check_values

__all__ = [
    "check_evaluation_out",
    "decode",
    "evaluate",
    "forward_graphs",
    "load",
    "predict",
    "predict_table",
    "predict_with_notes",
]


# ----------------------------------------------------------------------------- load
def load(checkpoint: str | os.PathLike[str], *, weights: str = "ema", device: str = "cpu") -> Any:
    """The network saved in an ``xtalnet train`` checkpoint, ready to predict; an
    :class:`xtalnet.ensemble.Ensemble` for the folder of an ensemble run.

    Parameters
    ----------
    checkpoint : path
        ``best.pt`` / ``last.pt``, or a run folder (``best.pt`` is used), or the folder of an
        ensemble (``ensemble.json``: every member's ``best.pt``).
    weights : {"ema", "model"}
        The exponential moving average of the weights (default; what was validated) or the
        raw weights.
    device : str

    Returns
    -------
    Network or Ensemble
        In eval mode; ``net.predict(structures)`` gives physical units (an ensemble: the
        members' mean, and the spread as ``"<target>.std"``). Tensor targets trained in the
        IEEE frame (the default) are predicted in the IEEE standard frame of each structure
        (:func:`xtalnet.frame_rotation` gives its rotation), not the structure's own axes.

    Examples
    --------
    >>> net = xtalnet.load("runs/mp20/best.pt")  # doctest: +SKIP
    >>> net.predict([structure])["formation_energy_per_atom"]  # doctest: +SKIP
    """
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    root = Path(checkpoint)
    if root.is_dir() and (root / ENSEMBLE_FILE).is_file():
        return _load_ensemble(root, weights, device)
    ckpt = _checkpoint.read(checkpoint)
    net = Network(_checkpoint.config_of(ckpt))
    try:
        net.load_state_dict(ckpt["model"])
        if weights == "ema" and "ema" in ckpt:
            net.load_state_dict(ckpt["ema"]["shadow"], strict=False)
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {ckpt['path']!r}: its weights do not fit the network of its own config "
            f"(written by another xtalnet version?): {str(exc)[:300]}"
        ) from exc
    net.to(resolve_device(device, "device"))
    net.eval()
    net.checkpoint_path = ckpt["path"]
    net.train_species = ckpt.get("train_species")  # None for checkpoints before 0.2
    return net


def _load_ensemble(root: Path, weights: str, device: str) -> Ensemble:
    info = read_ensemble(root)
    members = member_dirs(root, int(info["members"]))
    absent = [d.name for d in members if not (d / "best.pt").is_file()]
    if absent:
        raise ValueError(
            f"ensemble {str(root)!r}: member(s) {absent} of {len(members)} have no best.pt. "
            f"Not started or stopped before their first epoch: finish them with xtalnet train "
            f"--resume {root}; finished and best.pt removed: restore it, or delete that "
            f"member's folder and --resume {root} to train it again"
        )
    if "sigma_scale" not in info:  # fitted once the last member has finished
        raise ValueError(
            f"ensemble {str(root)!r} has not finished: its σ is fitted on the validation split "
            f"after the last member, and that has not happened (a member was interrupted?); "
            f"finish it with xtalnet train --resume {root}"
        )
    fitted_with = info.get("members_fitted")  # absent in ensembles scored before 8 Dec 2026
    if fitted_with:
        now = member_fingerprints(root, len(members))
        changed = [name for name, digest in now.items() if fitted_with.get(name) != digest]
        if changed:
            warnings.warn(
                f"ensemble {str(root)!r}: member(s) {changed} changed after its σ was fitted "
                f"(trained again on their own?): σ and test_metrics.json describe the old "
                f"members; refit them with xtalnet train --resume {root}",
                stacklevel=3,
            )
    nets = [load(d / "best.pt", weights=weights, device=device) for d in members]
    weight = info.get("sigma_distance_weight") or {}
    compositions = None
    if any(w > 0 for w in weight.values()):
        path = root / COMPOSITIONS_FILE
        if not path.is_file():
            raise ValueError(
                f"ensemble {str(root)!r}: {COMPOSITIONS_FILE} is missing; its σ needs the "
                f"training compositions (copy it back, or rescore with xtalnet train --resume "
                f"{root})"
            )
        compositions = TrainingCompositions.load(path)
    ensemble = Ensemble(nets, info.get("sigma_scale"), weight, compositions)
    ensemble.checkpoint_path = str(root)
    return ensemble


# ----------------------------------------------------------------------------- evaluate
#: Files that make a folder a training run's (or an ensemble's).
_RUN_FILES = ("last.pt", "best.pt", "ensemble.json", "train.log")


def check_evaluation_out(out: Path, overwrite: bool = False) -> None:
    """Refuse an ``evaluate --out`` that is a file, a run's own folder (its ``metrics.json``
    would sit beside the run's ``metrics.csv`` and ``test_metrics.json``), or a folder
    holding an earlier evaluation unless ``overwrite``.

    Raises
    ------
    ValueError
        Naming ``--out`` and what it would have replaced.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file: name a folder for metrics.json, "
                         "predictions.csv and the parity plots")  # fmt: skip
    if any((out / name).exists() for name in _RUN_FILES):
        raise ValueError(f"--out {str(out)!r} is a run's folder: write the evaluation to "
                         f"another folder (e.g. {str(out / 'eval')!r})")  # fmt: skip
    if (out / "metrics.json").exists() and not overwrite:
        raise ValueError(f"--out {str(out)!r} holds an earlier evaluation: give --overwrite "
                         "to replace it, or another folder")  # fmt: skip


def evaluate(
    checkpoint: str | os.PathLike[str],
    data: Any,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    strict: bool = False,
    weights: str = "ema",
    quiet: bool = False,
    device: str = "cpu",
    overwrite: bool = False,
) -> dict[str, Any]:
    """Metrics of a checkpoint on ``data``: ``metrics.json``, ``predictions.csv`` and
    ``parity_<target>.png`` in ``out`` (a folder; not a run's own folder, and one holding an
    earlier evaluation only with ``overwrite``: :func:`check_evaluation_out`).

    Per target: MAE, RMSE, R² (physical units); band gap adds the metal / non-metal
    accuracy and ROC-AUC; tensors add the MAE over their stored entries (36 Voigt entries of
    the elastic tensor), the mean Frobenius relative error and, for elastic tensors, the
    MAE of K_VRH and G_VRH (Voigt-Reuss-Hill).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be an int >= 1, got {batch_size!r}")
    outp = Path(out)
    check_evaluation_out(outp, overwrite)
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, flush=True))
    net = load(checkpoint, weights=weights, device=device)
    cfg = net.config
    prep = load_source(data, list(cfg.columns), strict=strict, log=log)
    samples, skipped = build_samples(prep, cfg, strict=strict, log=log, what="data")
    for head in net.target_heads.values():
        check_values(head, [s.id for s in samples], [s.values for s in samples], "--data")
    outp.mkdir(parents=True, exist_ok=True)
    dec = predict_graphs(net, [s.graph for s in samples], [s.id for s in samples], batch_size)
    metrics = metrics_of(net, dec, samples)
    if isinstance(net, Ensemble):
        for c, m in metrics.items():
            true, ok = net.target_heads[c].true_values([s.values.get(c) for s in samples])
            m.update(calibration(dec[c][ok] - true[ok], dec[f"{c}.std"][ok]))
    write_predictions(outp / "predictions.csv", net, dec, samples)
    for c, head in net.target_heads.items():
        true, ok = head.true_values([s.values.get(c) for s in samples])
        if ok.any():
            parity_plot(true[ok], dec[c][ok], f"{c} (n={int(ok.sum())})", unit_label(net, c),
                        outp / f"parity_{c}.png")  # fmt: skip
    result = {
        "checkpoint": str(checkpoint), "data": str(data), "n": len(samples),
        "skipped": {**skipped, "parse_failures": prep.report.get("parse_failures", 0)},
        "missing": prep.report.get("missing", {}), "metrics": metrics,
    }  # fmt: skip
    write_json(outp / "metrics.json", result)
    for c, m in metrics.items():
        extras = ", ".join(
            f"{k} {v:.4g}" for k, v in m.items() if k not in ("mae", "rmse", "r2", "n")
        )
        log(f"{c}: MAE {m['mae']:.4g}{unit_suffix(net, c)}, RMSE {m['rmse']:.4g}, "
            f"R² {m['r2']:.3f}, n={m['n']}" + (f", {extras}" if extras else ""))  # fmt: skip
    note = frame_note(net)
    if note:
        log(f"predictions.csv: {note}")
    return result
