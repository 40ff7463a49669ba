"""Train / validation / test splits: given sources, or a seeded split of ``--data``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xtalnet.dataset import Prepared, load_source, subset
from xtalnet.training.options import TrainOptions

__all__ = ["split_data", "split_indices"]


def split_indices(
    n: int, fractions: Sequence[float], seed: int, groups: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into train / val / test by ``fractions``.

    ``groups`` (one key per row, e.g. the ids) keeps rows that share a key in one split:
    copies of a structure in two splits would score the model on what it trained on. Rows
    with keys all distinct split exactly as without ``groups``."""
    rng = np.random.default_rng(seed)
    n_val = round(fractions[1] * n)
    n_test = round(fractions[2] * n)
    if n - n_val - n_test < 1:
        raise ValueError(f"split {tuple(fractions)} of {n} structures leaves no training data")
    keys = list(dict.fromkeys(groups)) if groups is not None else []
    if groups is None or len(keys) == n:
        perm = rng.permutation(n)
        return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]
    rows: dict[Any, list[int]] = {k: [] for k in keys}
    for i, k in enumerate(groups):
        rows[k].append(i)
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for g in rng.permutation(len(keys)):  # whole groups: val, then test, then train
        part = (
            parts[1] if len(parts[1]) < n_val else parts[2] if len(parts[2]) < n_test else parts[0]
        )
        part.extend(rows[keys[g]])
    if not parts[0]:
        raise ValueError(f"split {tuple(fractions)} of {n} structures ({len(keys)} distinct "
                         "ids) leaves no training data")  # fmt: skip
    return tuple(np.asarray(p, dtype=np.int64) for p in parts)  # type: ignore[return-value]


def split_data(
    main: Prepared,
    val: Any,
    test: Any,
    columns: Sequence[str],
    opts: TrainOptions,
    log: Callable[[str], None],
) -> tuple[Prepared, Prepared, Prepared]:
    """Train, validation and test data: ``val`` / ``test`` sources where given, the rest a
    seeded split of ``main`` by ``opts.split`` (the fractions of the given parts dropped)."""
    if val is None and test is None:
        tr_i, va_i, te_i = split_indices(len(main.ids), opts.split, opts.data_seed, main.ids)
        return subset(main, tr_i), subset(main, va_i), subset(main, te_i)
    f = list(opts.split)
    if val is None:
        f = [f[0], f[1], 0.0]
    elif test is None:
        f = [f[0], 0.0, f[2]]
    else:
        f = [1.0, 0.0, 0.0]
    total = sum(f)
    tr_i, va_i, te_i = split_indices(len(main.ids), [x / total for x in f], opts.data_seed,
                                     main.ids)  # fmt: skip
    train = subset(main, tr_i)
    val_p = (
        load_source(val, columns, strict=opts.strict, log=log, flag="--val")
        if val is not None
        else subset(main, va_i)
    )
    test_p = (
        load_source(test, columns, strict=opts.strict, log=log, flag="--test")
        if test is not None
        else subset(main, te_i)
    )
    return train, val_p, test_p
