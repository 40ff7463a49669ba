"""Prediction tables and result files: ``predictions.csv``, the rows of ``xtalnet predict``,
JSON files of metrics, and the unit labels printed beside numbers."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from xtalnet.data import without_position
from xtalnet.dataset import Sample, is_missing

if TYPE_CHECKING:
    from xtalnet.ensemble import Ensemble
    from xtalnet.network import Network

__all__ = [
    "cell_text",
    "frame_note",
    "predict_table",
    "unit_label",
    "unit_suffix",
    "write_json",
    "write_predictions",
]


def unit_label(net: Network | Ensemble, column: str) -> str:
    """``"(unit)"`` of a target column, ``""`` when its unit is not known."""
    heads = net.target_heads
    unit = heads[column].unit if column in heads else ""
    return f"({unit})" if unit else ""


def unit_suffix(net: Network | Ensemble, column: str) -> str:
    """``" (unit)"`` to follow a number in a log line, ``""`` when the unit is not known."""
    label = unit_label(net, column)
    return f" {label}" if label else ""


def frame_note(net: Network | Ensemble) -> str:
    """Which axes the model's tensor predictions are in: ``""`` without tensor targets or
    where they are in the input structure's own Cartesian frame (``tensor_frame``
    ``"as_given"``)."""
    from xtalnet.heads import TensorHead

    tensors = [c for c, h in net.target_heads.items() if isinstance(h, TensorHead)]
    if not tensors or net.config.tensor_frame != "ieee":
        return ""
    return (f"{', '.join(tensors)}: in each structure's IEEE standard frame (as the Materials "
            "Project stores them), not in the axes of the input file")  # fmt: skip


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON (numpy and torch values as numbers / lists; a NaN or an
    infinite number as ``null``: strict JSON readers refuse Python's bare ``NaN``)."""
    plain = _finite(json.loads(json.dumps(data, default=_json_default)))
    path.write_text(json.dumps(plain, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


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
    path: Path, net: Network | Ensemble, dec: Mapping[str, np.ndarray], samples: Sequence[Sample]
) -> None:
    """``predictions.csv``: id, then per target its label as ``<target>_true`` and the
    prediction under the names ``xtalnet predict --data`` writes: ``<target>``, the heads'
    extra outputs (``<target>.std``, ``band_gap.p_metal``, ...) and derived quantities (for
    elastic tensors ``<target>.K_VRH`` / ``<target>.G_VRH`` of the prediction, GPa); tensors
    as JSON lists. A screening CSV and an evaluation therefore join on the same columns."""
    derived = {c: head.derived(dec[c]) for c, head in net.target_heads.items()}
    rows = []
    for n, s in enumerate(samples):
        row: dict[str, Any] = {"id": s.id}
        for c in net.target_heads:
            v = s.values.get(c)
            row[f"{c}_true"] = (
                "" if is_missing(v) else _cell(np.asarray(v) if isinstance(v, list) else v)
            )
            row[c] = _cell(dec[c][n])
            for k, arr in dec.items():
                if k.startswith(c + "."):
                    row[k] = _cell(arr[n])
            for name, arr in derived[c].items():
                row[f"{c}.{name}"] = float(arr[n])
        rows.append(row)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def predict_table(
    net: Network | Ensemble,
    structures: Sequence[Any],
    names: Sequence[str],
    *,
    batch_size: int = 64,
) -> list[dict[str, Any]]:
    """One dict per structure: name, formula, every prediction in physical units (tensors as
    nested lists; elastic tensors add K_VRH / G_VRH in GPa) and ``status``: ``"ok"``, or why
    the prediction is missing (NaN, None in JSON terms) or doubtful. An exception in place
    of a structure (a file that did not parse) becomes its row's status."""
    readable = [k for k, s in enumerate(structures) if not isinstance(s, BaseException)]
    pred, notes = net.predict_with_notes([structures[k] for k in readable], batch_size, catch=True)
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
            row["status"] = f"not predicted: {without_position(str(s))}"
        else:
            for key in keys:
                x = pred[key][at[k]]
                row[key] = _plain(x)
            row["status"] = without_position(notes[at[k]]) if notes[at[k]] else "ok"
        rows.append(row)
    return rows


def cell_text(value: Any) -> Any:
    """A table value as CSV text: nested lists and arrays as JSON, None as ``""``."""
    if value is None:
        return ""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return value


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


def _table_order(net: Network | Ensemble, pred: Mapping[str, np.ndarray]) -> list[str]:
    """Columns of a prediction table: each target, then its extra and derived outputs."""
    keys: list[str] = []
    for c in net.target_heads:
        keys.append(c)
        keys.extend(k for k in pred if k.startswith(c + "."))
    return keys
