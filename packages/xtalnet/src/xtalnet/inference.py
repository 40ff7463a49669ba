"""Using a trained network: load a checkpoint, predict, evaluate, prediction tables.

This is what a user who never trains imports; nothing here imports :mod:`xtalnet.training`
(which uses it to validate and test).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtalnet import _checkpoint
from xtalnet.data import batch_of_graphs, iter_batches, pack
from xtalnet.dataset import Sample, build_samples, is_missing, load_source
from xtalnet.network import Network
from xtalnet.plots import parity_plot

__all__ = [
    "baseline_metrics",
    "decode",
    "evaluate",
    "forward_graphs",
    "load",
    "metrics_of",
    "predict",
    "predict_table",
    "unit_label",
    "write_json",
    "write_predictions",
]


# ----------------------------------------------------------------------------- load
def load(
    checkpoint: str | os.PathLike[str], *, weights: str = "ema", device: str = "cpu"
) -> Network:
    """The network saved in an ``xtalnet train`` checkpoint, ready to predict.

    Parameters
    ----------
    checkpoint : path
        ``best.pt`` / ``last.pt``, or a run folder (``best.pt`` is used).
    weights : {"ema", "model"}
        The exponential moving average of the weights (default; what was validated) or the
        raw weights.
    device : str

    Returns
    -------
    Network
        In eval mode; ``net.predict(structures)`` gives physical units.

    Examples
    --------
    >>> net = xtalnet.load("runs/mp20/best.pt")  # doctest: +SKIP
    >>> net.predict([structure])["formation_energy_per_atom"]  # doctest: +SKIP
    """
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
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
    net.to(device)
    net.eval()
    net.checkpoint_path = ckpt["path"]
    return net


# ----------------------------------------------------------------------------- predict
@torch.no_grad()
def forward_graphs(
    net: Network, graphs: Sequence[Any], ids: Sequence[str], batch_size: int
) -> dict[str, np.ndarray]:
    """Standardised outputs ``{column: float64 [n, dim]}`` of prebuilt graphs, in order
    (batches of at most ``batch_size`` structures and ``net.config.max_edges`` edges)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    raw: dict[str, list[np.ndarray]] = {c: [] for c in net.heads}
    try:
        edges = [int(g.num_edges) for g in graphs]
        for idx in pack(range(len(graphs)), edges, batch_size, net.config.max_edges):
            batch = batch_of_graphs([graphs[i] for i in idx], [ids[i] for i in idx])
            for c, v in net(batch.to(device)).items():
                raw[c].append(v.detach().cpu().double().numpy())
    finally:
        net.train(was_training)
    return {c: _concat(v, net.target_heads[c].irreps_in.dim) for c, v in raw.items()}


def _concat(parts: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(parts, 0) if parts else np.zeros((0, dim))


def decode(net: Network, std: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Physical units of standardised outputs: every head's decoded values under its column
    and its extra outputs under ``"<column>.<name>"``."""
    out: dict[str, np.ndarray] = {}
    for c, head in net.target_heads.items():
        out.update(head.decode_all(torch.as_tensor(std[c], dtype=net.config.torch_dtype)))
    return out


@torch.no_grad()
def predict(net: Network, structures: Any, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Predictions in physical units for structures (pymatgen, ASE, mp_audit entries).

    Parameters
    ----------
    net : Network
        A trained network (e.g. from :func:`load`).
    structures : sequence of pymatgen Structure, ASE Atoms or mp_audit.Entry (or one)
    batch_size : int
        Structures per forward pass (also bounded by ``net.config.max_edges``).

    Returns
    -------
    dict column -> numpy array
        Scalars [n]; ``elastic_tensor`` [n, 6, 6] GPa (Voigt xx, yy, zz, yz, xz, xy);
        extra outputs of a head (e.g. the band gap's probability of a metal) under
        ``"<column>.<name>"``.
    """
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    parts: dict[str, list[np.ndarray]] = {c: [] for c in net.heads}
    try:
        for _, batch in iter_batches(structures, net.config, batch_size):
            for c, v in net(batch.to(device)).items():
                parts[c].append(v.detach().cpu().double().numpy())
    finally:
        net.train(was_training)
    return decode(net, {c: _concat(v, net.target_heads[c].irreps_in.dim) for c, v in parts.items()})


# ----------------------------------------------------------------------------- metrics
def metrics_of(
    net: Network, dec: Mapping[str, np.ndarray], samples: Sequence[Sample]
) -> dict[str, dict[str, float]]:
    """Per-target metrics (physical units) of decoded predictions against sample values."""
    out = {}
    for c, head in net.target_heads.items():
        true, ok = head.true_values([s.values.get(c) for s in samples])
        if not ok.any():
            continue
        extra = {k.split(".", 1)[1]: v[ok] for k, v in dec.items() if k.startswith(c + ".")}
        out[c] = head.metrics(dec[c][ok], true[ok], extra)
    return out


def baseline_metrics(
    net: Network, train: Sequence[Sample], samples: Sequence[Sample]
) -> dict[str, dict[str, float]]:
    """Metrics of the mean predictor: every head's :meth:`~xtalnet.heads.Head.mean_baseline`
    of the train values for every structure of ``samples``."""
    out = {}
    for c, head in net.target_heads.items():
        tr, tr_ok = head.true_values([s.values.get(c) for s in train])
        true, ok = head.true_values([s.values.get(c) for s in samples])
        if not ok.any() or not tr_ok.any():
            continue
        pred, extra = head.mean_baseline(tr[tr_ok], int(ok.sum()))
        out[c] = head.metrics(pred, true[ok], extra)
    return out


def unit_label(net: Network, column: str) -> str:
    """``"(unit)"`` of a target column, ``""`` when its unit is not known."""
    heads = net.target_heads
    unit = heads[column].unit if column in heads else ""
    return f"({unit})" if unit else ""


# ----------------------------------------------------------------------------- files
def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON (numpy and torch values as numbers / lists)."""
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def _cell(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return json.dumps(np.round(v, 6).tolist()) if v.ndim else float(v)
    if isinstance(v, (list, tuple)):
        return json.dumps(v)
    return v


def write_predictions(
    path: Path, net: Network, dec: Mapping[str, np.ndarray], samples: Sequence[Sample]
) -> None:
    """``predictions.csv``: id, then per target true and predicted values (tensors as JSON),
    the heads' extra outputs and derived quantities (for elastic tensors K_VRH / G_VRH of the
    prediction, as ``K_VRH_from_tensor_pred``)."""
    derived = {c: head.derived(dec[c]) for c, head in net.target_heads.items()}
    rows = []
    for n, s in enumerate(samples):
        row: dict[str, Any] = {"id": s.id}
        for c in net.heads:
            v = s.values.get(c)
            row[f"{c}_true"] = (
                "" if is_missing(v) else _cell(np.asarray(v) if isinstance(v, list) else v)
            )
            row[f"{c}_pred"] = _cell(dec[c][n])
            for k, arr in dec.items():
                if k.startswith(c + "."):
                    row[f"{k}_pred"] = float(arr[n])
            for name, arr in derived[c].items():
                row[f"{name}_from_tensor_pred"] = float(arr[n])
        rows.append(row)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def predict_table(
    net: Network, structures: Sequence[Any], names: Sequence[str]
) -> list[dict[str, Any]]:
    """One dict per structure: name, formula and every prediction in physical units
    (tensors as nested lists; elastic tensors add K_VRH / G_VRH in GPa)."""
    pred = net.predict(structures)
    for c, head in net.target_heads.items():
        for name, arr in head.derived(pred[c]).items():
            pred[f"{c}.{name}"] = arr
    keys = _table_order(net, pred)
    rows = []
    for n, (s, name) in enumerate(zip(structures, names)):
        formula = (
            s.composition.reduced_formula if hasattr(s, "composition") else s.get_chemical_formula()
        )
        row: dict[str, Any] = {"name": name, "formula": formula}
        for k in keys:
            x = pred[k][n]
            row[k] = x.tolist() if isinstance(x, np.ndarray) and x.ndim else float(x)
        rows.append(row)
    return rows


def _table_order(net: Network, pred: Mapping[str, np.ndarray]) -> list[str]:
    """Columns of a prediction table: each target, then its extra and derived outputs."""
    keys: list[str] = []
    for c in net.heads:
        keys.append(c)
        keys.extend(k for k in pred if k.startswith(c + "."))
    return keys


# ----------------------------------------------------------------------------- evaluate
def evaluate(
    checkpoint: str | os.PathLike[str],
    data: Any,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    strict: bool = False,
    weights: str = "ema",
    quiet: bool = False,
) -> dict[str, Any]:
    """Metrics of a checkpoint on ``data``: ``metrics.json``, ``predictions.csv`` and
    ``parity_<target>.png`` in ``out``.

    Per target: MAE, RMSE, R² (physical units); band gap adds the metal / non-metal
    accuracy and ROC-AUC; tensors add the MAE over their stored entries (36 Voigt entries of
    the elastic tensor), the mean Frobenius relative error and, for elastic tensors, the
    MAE of K_VRH and G_VRH (Voigt-Reuss-Hill).
    """
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, flush=True))
    net = load(checkpoint, weights=weights)
    cfg = net.config
    prep = load_source(data, list(cfg.columns), strict=strict, log=log)
    samples, skipped = build_samples(prep, cfg, strict=strict, log=log, what="data")
    std = forward_graphs(net, [s.graph for s in samples], [s.id for s in samples], batch_size)
    dec = decode(net, std)
    metrics = metrics_of(net, dec, samples)
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
        log(f"{c}: MAE {m['mae']:.4g} {unit_label(net, c)}, RMSE {m['rmse']:.4g}, "
            f"R² {m['r2']:.3f}, n={m['n']}" + (f", {extras}" if extras else ""))  # fmt: skip
    return result
