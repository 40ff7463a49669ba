"""Leakage between splits: the same material id, or the same structure, in two splits.

A validation or test score means nothing when its structures were trained on. Ids shared by
two splits (including an id that occurs twice in ``--data`` and landed in two splits) and
identical structures under different ids are found before training; they are a warning that
names them, or with ``--strict`` an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from xtalnet.dataset import Sample

__all__ = ["check_leakage", "structure_key"]


def structure_key(sample: Sample) -> str:
    """A key equal for identical structures whatever their cell, orientation, origin and atom
    order: the sorted atomic numbers, the volume per atom (0.01 Å³) and the sorted edge
    lengths at r_cut (1e-3 Å)."""
    g = sample.graph
    numbers = np.sort(g.numbers.cpu().numpy())
    volume = abs(float(np.linalg.det(g.cell.detach().cpu().double().numpy()[0])))
    lengths = np.round(np.sort(g.length.detach().cpu().double().numpy()), 3)
    text = f"{numbers.tolist()}|{round(volume / len(numbers), 2)}|{lengths.tolist()}"
    return hashlib.sha256(text.encode()).hexdigest()


def check_leakage(
    splits: Mapping[str, Sequence[Sample]], strict: bool, warn: Callable[[str], None]
) -> None:
    """Warn (``strict``: raise ``ValueError``) naming ids shared by two splits and identical
    structures in two splits."""
    problems = []
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            problems += _shared(a, splits[a], b, splits[b])
    if not problems:
        return
    msg = "leakage between splits: " + "; ".join(problems)
    if strict:
        raise ValueError(msg + " (strict: remove them from one split)")
    warn(msg + " (their scores are not out of sample; --strict refuses this)")


def _shared(a: str, sa: Sequence[Sample], b: str, sb: Sequence[Sample]) -> list[str]:
    out = []
    ids = sorted({s.id for s in sa} & {s.id for s in sb})
    if ids:
        out.append(f"{len(ids)} id(s) in both {a} and {b}: {_shown(ids)}")
    keys: dict[str, Any] = {}
    for s in sa:
        keys.setdefault(structure_key(s), s.id)
    same = [
        f"{keys[k]} ({a}) = {s.id} ({b})"
        for s in sb
        if (k := structure_key(s)) in keys and keys[k] != s.id
    ]
    if same:
        out.append(f"{len(same)} identical structure(s) in {a} and {b}: {_shown(same)}")
    return out


def _shown(items: Sequence[str]) -> str:
    return str(list(items[:10])) + (" ..." if len(items) > 10 else "")
