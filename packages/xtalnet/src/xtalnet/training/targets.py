"""The heads' standardisation fitted on the train split, and the encoded targets of every
split; a value a head refuses is reported with the material ids that carry it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from xtalnet.dataset import Sample, is_missing
from xtalnet.heads import Head, make_head
from xtalnet.network import Network

__all__ = ["encode_targets", "fit_heads"]


def fit_heads(net: Network, train: Sequence[Sample], log: Callable[[str], None]) -> None:
    """Fit every head's standardisation on the train values (physical units)."""
    for c, head in net.target_heads.items():
        vals = [s.values.get(c) for s in train]
        with _naming_bad_values(head, train, vals, "train"):
            head.fit(vals)
        log(f"target {c!r}: standardisation fitted on {head.n_fit} train values "
            f"({head.n_skipped} missing)")  # fmt: skip


def encode_targets(net: Network, samples: Sequence[Sample], what: str) -> dict[str, torch.Tensor]:
    """Encoded targets of every sample, per column; a tensor that breaks its symmetry is
    reported by its material id."""
    out = {}
    for c, head in net.target_heads.items():
        vals = [s.values.get(c) for s in samples]
        with _naming_bad_values(head, samples, vals, what):
            out[c] = head.encode(vals)
    return out


@contextlib.contextmanager
def _naming_bad_values(
    head: Head, samples: Sequence[Sample], vals: Sequence[Any], what: str
) -> Iterator[None]:
    """Re-raise a head's ValueError about some values with the material ids of those values
    (each present value is fitted alone by a fresh head of the same target to find them)."""
    try:
        yield
    except ValueError as exc:
        bad = []
        extra = [1.0] if head.spec.kind == "band_gap" else []  # a lone metal fits no gap
        for s, v in zip(samples, vals):
            if is_missing(v):
                continue
            try:
                make_head(head.spec, dtype=torch.float64).fit([v, *extra])
            except (ValueError, TypeError):
                bad.append(s.id)
        if not bad:
            raise
        raise ValueError(
            f"{what}: target {head.spec.column!r}: {len(bad)} invalid value(s), ids {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}: {exc}"
        ) from exc
