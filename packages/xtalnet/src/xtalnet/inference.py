"""Using a trained network: load a checkpoint, predict, evaluate, prediction tables.

This is what a user who never trains imports; nothing here imports :mod:`xtalnet.training`
(which uses it to validate and test).
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtalnet import _checkpoint
from xtalnet._device import resolve_device
from xtalnet.data import as_sequence, batch_of_graphs, graph_of, pack, packed, to_structure
from xtalnet.dataset import Sample, build_samples, is_missing, load_source
from xtalnet.network import Network
from xtalnet.plots import parity_plot
from xtalnet.targets import check_values

__all__ = [
    "baseline_metrics",
    "decode",
    "evaluate",
    "forward_graphs",
    "load",
    "metrics_of",
    "predict",
    "predict_table",
    "predict_with_notes",
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
    net.to(resolve_device(device, "device"))
    net.eval()
    net.checkpoint_path = ckpt["path"]
    net.train_species = ckpt.get("train_species")  # None for checkpoints before 0.2
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


def predict(
    net: Network, structures: Any, batch_size: int = 64, *, stacklevel: int = 2
) -> dict[str, np.ndarray]:
    """Predictions in physical units for structures (pymatgen, ASE, mp_audit entries).

    Parameters
    ----------
    net : Network
        A trained network (e.g. from :func:`load`).
    structures : sequence of pymatgen Structure, ASE Atoms or mp_audit.Entry (or one)
    batch_size : int
        Structures per forward pass (also bounded by ``net.config.max_edges``).
    stacklevel : int
        Of the warning (2: the caller of this function).

    Returns
    -------
    dict column -> numpy array
        Scalars [n]; ``elastic_tensor`` [n, 6, 6] GPa (Voigt xx, yy, zz, yz, xz, xy);
        extra outputs of a head (e.g. the band gap's probability of a metal) under
        ``"<column>.<name>"``.

    Warns
    -----
    UserWarning
        Naming the structures whose prediction is NaN (an atom without a neighbour within
        r_cut: the network has nothing to say about it) or doubtful (elements the training
        data did not hold); :func:`predict_with_notes` gives those notes per structure.
    """
    pred, notes = predict_with_notes(net, structures, batch_size)
    flagged = [(k, note) for k, note in enumerate(notes) if note]
    if flagged:
        shown = "; ".join(f"structures[{k}]: {note}" for k, note in flagged[:5])
        more = f" (and {len(flagged) - 5} more)" if len(flagged) > 5 else ""
        warnings.warn(f"{len(flagged)} of {len(notes)} predictions flagged: {shown}{more}",
                      stacklevel=stacklevel)  # fmt: skip
    return pred


@torch.no_grad()
def predict_with_notes(
    net: Network, structures: Any, batch_size: int = 64, *, catch: bool = False
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Predictions (as :func:`predict`) and a note per structure (``""`` when none).

    A structure with an atom that has no neighbour within r_cut gets NaN and the note that
    says so; one with elements absent from the training data is predicted and noted. With
    ``catch`` a structure that cannot be read or graphed (disordered, flat cell, unknown
    element, ...) gets NaN and the error as its note instead of raising.
    """
    items = as_sequence(structures)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    notes = [""] * len(items)
    std = {c: np.full((len(items), h.irreps_in.dim), np.nan) for c, h in net.target_heads.items()}

    def graphs() -> Iterator[tuple[int, Any]]:
        for k, obj in enumerate(items):
            try:
                g = graph_of(to_structure(obj, k), k, net.config)
            except (ValueError, TypeError) as exc:
                if not catch:
                    raise
                notes[k] = f"not predicted: {exc}"
                continue
            notes[k] = structure_note(net, g)
            if not notes[k].startswith("not predicted"):
                yield k, g

    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    try:
        for run in packed(graphs(), lambda kg: kg[1].num_edges, batch_size, net.config.max_edges):
            idx = [k for k, _ in run]
            batch = batch_of_graphs([g for _, g in run], [str(k) for k in idx])
            for c, v in net(batch.to(device)).items():
                std[c][idx] = v.detach().cpu().double().numpy()
    finally:
        net.train(was_training)
    return decode(net, std), notes


def structure_note(net: Network, graph: Any) -> str:
    """Why a structure's prediction is missing (``"not predicted: ..."``) or doubtful."""
    counts = graph.counts
    if bool((counts == 0).any()):
        lonely = torch.nonzero(counts == 0).flatten().tolist()
        return (
            f"not predicted: atom(s) {lonely[:10]} have no neighbour within r_cut="
            f"{net.config.r_cut} Å, so the network has nothing to say about them"
        )
    seen = getattr(net, "train_species", None)
    if seen:
        unseen = sorted({int(z) for z in graph.numbers} - set(seen))
        if unseen:
            from pymatgen.core.periodic_table import Element

            names = ", ".join(Element.from_Z(z).symbol for z in unseen)
            return f"element(s) {names} absent from the training data: extrapolated"
    return ""


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
    """One dict per structure: name, formula, every prediction in physical units (tensors as
    nested lists; elastic tensors add K_VRH / G_VRH in GPa) and ``status``: ``"ok"``, or why
    the prediction is missing (NaN, None in JSON terms) or doubtful. An exception in place
    of a structure (a file that did not parse) becomes its row's status."""
    readable = [k for k, s in enumerate(structures) if not isinstance(s, BaseException)]
    pred, notes = predict_with_notes(net, [structures[k] for k in readable], catch=True)
    for c, head in net.target_heads.items():
        for name, arr in head.derived(pred[c]).items():
            pred[f"{c}.{name}"] = arr
    keys = _table_order(net, pred)
    at = {k: n for n, k in enumerate(readable)}
    rows = []
    for k, (s, name) in enumerate(zip(structures, names)):
        row: dict[str, Any] = {"name": name, "formula": _formula(s)}
        if k not in at:
            row.update(dict.fromkeys(keys))
            row["status"] = f"not predicted: {s}"
        else:
            for key in keys:
                x = pred[key][at[k]]
                row[key] = _plain(x)
            row["status"] = notes[at[k]] or "ok"
        rows.append(row)
    return rows


def _formula(s: Any) -> str:
    if isinstance(s, BaseException):
        return ""
    if hasattr(s, "composition"):
        return str(s.composition.reduced_formula)
    return str(s.get_chemical_formula())


def _plain(x: Any) -> Any:
    """A prediction as JSON-ready Python: nested lists, floats, None for NaN."""
    if isinstance(x, np.ndarray) and x.ndim:
        return [_plain(v) for v in x]
    value = float(x)
    return None if math.isnan(value) else value


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
    device: str = "cpu",
) -> dict[str, Any]:
    """Metrics of a checkpoint on ``data``: ``metrics.json``, ``predictions.csv`` and
    ``parity_<target>.png`` in ``out``.

    Per target: MAE, RMSE, R² (physical units); band gap adds the metal / non-metal
    accuracy and ROC-AUC; tensors add the MAE over their stored entries (36 Voigt entries of
    the elastic tensor), the mean Frobenius relative error and, for elastic tensors, the
    MAE of K_VRH and G_VRH (Voigt-Reuss-Hill).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"--batch-size must be an int >= 1, got {batch_size!r}")
    outp = Path(out)
    log = (lambda msg: None) if quiet else (lambda msg: print(msg, flush=True))
    net = load(checkpoint, weights=weights, device=device)
    cfg = net.config
    prep = load_source(data, list(cfg.columns), strict=strict, log=log)
    samples, skipped = build_samples(prep, cfg, strict=strict, log=log, what="data")
    for head in net.target_heads.values():
        check_values(head, [s.id for s in samples], [s.values for s in samples], "--data")
    outp.mkdir(parents=True, exist_ok=True)
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
