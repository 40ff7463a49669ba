"""How far a crystal's composition lies from the training data: the L1 distance between its
fractional composition and the nearest training crystal's.

For fractional compositions x and t (non-negative, summing to 1) the distance
``sum_i |x_i - t_i| = 2 - 2 sum_i min(x_i, t_i)`` lies in [0, 2]: 0 for a composition seen in
training (any polymorph), 2 for one sharing no element with any training crystal. An
ensemble adds it to the members' spread in its σ (:mod:`xtalnet.ensemble`): where the
members agree on a composition unlike any they were trained on, their agreement says less.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TrainingCompositions", "fractional_composition"]

#: Distances below this are rounding of a composition seen in training: 0.
_SEEN = 1e-9


def fractional_composition(numbers: Any) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers of a cell's atoms (array-like or a torch tensor) -> (elements present,
    sorted; their fractions)."""
    if hasattr(numbers, "cpu"):  # a tensor, maybe on a GPU
        numbers = numbers.cpu()
    z = np.asarray(numbers, dtype=np.int64).ravel()
    if not z.size:
        raise ValueError("a structure without atoms has no composition")
    elements, counts = np.unique(z, return_counts=True)
    return elements, counts / counts.sum()


class TrainingCompositions:
    """The fractional compositions of the training crystals, and the distance of others to
    them.

    Parameters
    ----------
    elements : int array [n_entries]
        Atomic numbers, crystal after crystal.
    fractions : float array [n_entries]
        Their atomic fractions.
    offsets : int array [n_crystals + 1]
        Crystal ``i`` owns entries ``offsets[i]:offsets[i + 1]``.
    """

    def __init__(self, elements: Any, fractions: Any, offsets: Any) -> None:
        self.elements = np.asarray(elements, dtype=np.int64)
        self.fractions = np.asarray(fractions, dtype=np.float64)
        self.offsets = np.asarray(offsets, dtype=np.int64)
        n = len(self.offsets) - 1
        if (n < 1 or self.offsets[0] != 0 or self.offsets[-1] != len(self.elements)
                or len(self.fractions) != len(self.elements)
                or bool((np.diff(self.offsets) < 1).any())):  # fmt: skip
            raise ValueError(
                "training compositions need offsets [0, ..., n_entries] with every crystal "
                "owning at least one entry, and one fraction per element entry"
            )
        # dense [distinct compositions, max Z + 1] (polymorphs share a row): at most about
        # 140 MB in float64 for 150 k crystals and Z <= 118
        dense = np.zeros((n, int(self.elements.max()) + 1))
        rows = np.repeat(np.arange(n), np.diff(self.offsets))
        dense[rows, self.elements] = self.fractions
        # one row per distinct composition (rows compared as bytes: faster than axis=0)
        as_bytes = dense.view(np.dtype((np.void, dense.dtype.itemsize * dense.shape[1])))
        distinct = dense[np.sort(np.unique(as_bytes.ravel(), return_index=True)[1])]
        # column-major: a query reads the columns of its own elements
        self._columns = np.asfortranarray(distinct)

    @classmethod
    def from_numbers(cls, numbers: Sequence[Any]) -> TrainingCompositions:
        """From every training crystal's atomic numbers (e.g. its graph's ``numbers``)."""
        parts = [fractional_composition(z) for z in numbers]
        if not parts:
            raise ValueError("no training crystals to take compositions from")
        offsets = np.cumsum([0] + [len(e) for e, _ in parts])
        return cls(np.concatenate([e for e, _ in parts]),
                   np.concatenate([f for _, f in parts]), offsets)  # fmt: skip

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an ``.npz`` file (``elements``, ``fractions``, ``offsets``)."""
        with open(path, "wb") as fh:  # np.savez would append ".npz" to other names
            np.savez_compressed(fh, elements=self.elements.astype(np.int16),
                                fractions=self.fractions, offsets=self.offsets)  # fmt: skip

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingCompositions:
        """Read what :meth:`save` wrote (``ValueError`` naming the file if it cannot)."""
        why = f"{str(path)!r}: training compositions cannot be read"
        try:
            with open(path, "rb") as fh:  # np.load would call any other file "pickled data"
                is_npz = fh.read(4) == b"PK\x03\x04"
            if not is_npz:
                raise ValueError("not an .npz archive (xtalnet train writes it)")
            with np.load(Path(path)) as z:
                return cls(z["elements"], z["fractions"], z["offsets"])
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{why}: {exc}") from exc

    def distance(self, numbers: Sequence[Any]) -> np.ndarray:
        """L1 distance in [0, 2] of every crystal's fractional composition to the nearest
        training crystal's; ``numbers[i]`` its atomic numbers (None: NaN)."""
        out = np.full(len(numbers), np.nan)
        width = self._columns.shape[1]
        for i, z in enumerate(numbers):
            if z is None:
                continue
            elements, x = fractional_composition(z)
            inside = elements < width  # elements no training crystal holds: t = 0 there
            t = self._columns[:, elements[inside]]
            # sum_j |x_j - t_j| over all elements = 1 + sum over the query's own elements of
            # (|x_j - t_j| - t_j), as t sums to 1: a few columns instead of every element
            d = 1.0 + (np.abs(t - x[inside]) - t).sum(1).min() + x[~inside].sum()
            out[i] = 0.0 if d < _SEEN else min(d, 2.0)
        return out
