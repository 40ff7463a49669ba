"""Target values checked, fitted and encoded, with the material ids of any bad value.

Every split and every command runs the same checks (:func:`check_targets`) before any
training or scoring: values a head refuses (a string, ±inf, a negative band gap, a
non-positive modulus for a log target, a tensor of the wrong shape or symmetry) and values
so far from the rest that they cannot be data of that column (:func:`absurd_values`) end in
one ``ValueError`` that names the split, the target and the ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from xtalnet.dataset import is_missing
from xtalnet.heads import Head, TargetSpec, make_head

if TYPE_CHECKING:
    from xtalnet.network import Network

__all__ = [
    "ABSURD_SPREAD",
    "absurd_values",
    "check_targets",
    "check_values",
    "encode_targets",
    "fit_heads",
]

#: A value farther than this many median absolute deviations from the median of its
#: column (tensors: of the Frobenius norms) cannot be data of that column.
ABSURD_SPREAD = 1e6


def fit_heads(net: Network, ids: Sequence[str], values: Sequence[Mapping[str, Any]],
              log: Callable[[str], None]) -> None:  # fmt: skip
    """Fit every head's standardisation on the train values (physical units)."""
    for c, head in net.target_heads.items():
        vals = [v.get(c) for v in values]
        with naming_bad_values(head, ids, vals, "train"):
            head.fit(vals)
        log(f"target {c!r}: standardisation fitted on {head.n_fit} train values "
            f"({head.n_skipped} missing)")  # fmt: skip


def encode_targets(
    net: Network, ids: Sequence[str], values: Sequence[Mapping[str, Any]], what: str
) -> dict[str, torch.Tensor]:
    """Encoded targets of every sample, per column (bad values named by id)."""
    out = {}
    for c, head in net.target_heads.items():
        vals = [v.get(c) for v in values]
        with naming_bad_values(head, ids, vals, what):
            out[c] = head.encode(vals)
    return out


def check_targets(
    targets: Sequence[str],
    splits: Mapping[str, tuple[Sequence[str], Sequence[Mapping[str, Any]]]],
) -> None:
    """Check the target values of every split before anything is trained or scored.

    Parameters
    ----------
    targets : sequence of str
        ``COLUMN[:KIND]`` texts.
    splits : mapping name -> (ids, values)
        The first split fits a float64 head of every target (it is the train split when
        training); every split is then encoded by it.

    Raises
    ------
    ValueError
        Naming the split, the target, the ids of the bad values and what is wrong.
    """
    names = list(splits)
    for text in targets:
        spec = TargetSpec.parse(text)
        head = make_head(spec, dtype=torch.float64)
        ids, values = splits[names[0]]
        vals = [v.get(spec.column) for v in values]
        with naming_bad_values(head, ids, vals, names[0]):
            head.fit(vals)
        for name in names:
            check_values(head, *splits[name], name)


def check_values(
    head: Head, ids: Sequence[str], values: Sequence[Mapping[str, Any]], what: str
) -> None:
    """The values of one split for a fitted head: encodable (or ``ValueError`` naming the
    ids) and not absurd (:func:`absurd_values`)."""
    column = head.spec.column
    vals = [v.get(column) for v in values]
    with naming_bad_values(head, ids, vals, what):
        head.encode(vals)
    true, ok = head.true_values(vals)
    bad = absurd_values(true, ok)
    if bad.size:
        shown = [ids[i] for i in bad[:10]]
        raise ValueError(
            f"{what}: target {column!r}: {bad.size} absurd value(s), ids {shown}"
            f"{' ...' if bad.size > 10 else ''}: more than {ABSURD_SPREAD:.0e} median "
            "absolute deviations from the column's median (a unit or parsing error?); "
            "fix or drop those rows"
        )


def absurd_values(true: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Rows of ``true`` (physical units, ``[n, ...]``) farther than :data:`ABSURD_SPREAD`
    median absolute deviations from the median (of the Frobenius norm for tensors)."""
    size = np.abs(true.reshape(true.shape[0], -1))
    x = np.sqrt((size**2).sum(1)) if size.shape[1] > 1 else true.reshape(-1)
    rows = np.flatnonzero(present)
    if rows.size < 3:
        return np.zeros(0, dtype=np.int64)
    xs = x[rows]
    median = np.median(xs)
    spread = np.median(np.abs(xs - median))
    if not spread > 0:
        spread = np.mean(np.abs(xs - median))
    if not spread > 0:
        return np.zeros(0, dtype=np.int64)
    return rows[np.abs(xs - median) > ABSURD_SPREAD * spread]


@contextlib.contextmanager
def naming_bad_values(
    head: Head, ids: Sequence[str], vals: Sequence[Any], what: str
) -> Iterator[None]:
    """Re-raise a head's ValueError about some values with the material ids of those values
    (each present value is fitted alone by a fresh head of the same target to find them)."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        bad = []
        extra = [1.0] if head.spec.kind == "band_gap" else []  # a lone metal fits no gap
        for i, v in zip(ids, vals):
            if is_missing(v):
                continue
            try:
                make_head(head.spec, dtype=torch.float64).fit([v, *extra])
            except (ValueError, TypeError):
                bad.append(i)
        if not bad:
            raise
        raise ValueError(
            f"{what}: target {head.spec.column!r}: {len(bad)} invalid value(s), ids {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}: {exc}"
        ) from exc
