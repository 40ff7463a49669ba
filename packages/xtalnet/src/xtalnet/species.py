"""Physical descriptors of the elements H..Pu for the ``"elemental"`` species embedding.

:func:`elemental_table` describes every element Z = 1..94 by a fixed list of physical
properties read from pymatgen's :class:`~pymatgen.core.periodic_table.Element`
(:data:`DESCRIPTORS`), fills the few missing values, and standardises every column to mean 0
and (population) standard deviation 1 over the 94 elements. The embedding
(:class:`xtalnet.model.SpeciesEmbedding`) maps these rows linearly to its scalars, so elements
that are alike start alike and an element rare in the training data still gets a sensible
embedding from its neighbours in the periodic table.

Missing values (pymatgen has no data): the mean of the descriptor over the elements of the
same group that have it, else over the same row, else over all elements. Noble gases have
no common oxidation states in pymatgen and get 0 for both oxidation-state descriptors; an
average ionic radius of 0 (H, the noble gases) counts as missing.

The table is built once per process (``functools.lru_cache``; about 60 ms besides
pymatgen's import) and only when asked for: importing :mod:`xtalnet` does not import
pymatgen's periodic table.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from typing import Any

import numpy as np

from xtalnet.config import MAX_Z

__all__ = ["DESCRIPTORS", "elemental_table", "raw_elemental_table"]

#: Names of the descriptor columns, in the order of :func:`elemental_table`'s columns.
#: ``log_*``: natural logarithm of the property (heavy-tailed over the elements);
#: ``block_*``: one-hot of pymatgen's block; ``valence_*``: electrons of that orbital type
#: outside the noble-gas core of ``Element.electronic_structure`` (e.g. Fe: 4s2 3d6).
DESCRIPTORS: tuple[str, ...] = (
    "group",
    "row",
    "block_s",
    "block_p",
    "block_d",
    "block_f",
    "mendeleev_number",
    "electronegativity",  # Pauling
    "atomic_radius",  # empirical, Å
    "average_ionic_radius",  # Å
    "first_ionization_energy",  # eV
    "electron_affinity",  # eV
    "log_atomic_mass",  # ln(amu)
    "log_molar_volume",  # ln(cm^3/mol)
    "log_melting_point",  # ln(K)
    "valence_s",
    "valence_p",
    "valence_d",
    "valence_f",
    "min_common_oxidation_state",
    "max_common_oxidation_state",
)

_ORBITAL = re.compile(r"^(\d+)([spdf])(\d+)$")


def _number(value: Any) -> float:
    """A pymatgen value (float, FloatWithUnit, None) as a float; NaN when absent."""
    if value is None:
        return math.nan
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def _valence(structure: str) -> dict[str, int]:
    """Electrons per orbital type outside the noble-gas core: ``"[Ar].3d6.4s2"`` -> d 6, s 2."""
    counts = dict.fromkeys("spdf", 0)
    for part in structure.split("."):
        if part.startswith("["):
            continue  # the core
        m = _ORBITAL.match(part)
        if m is None:
            raise ValueError(f"unexpected electronic-structure term {part!r} in {structure!r}")
        counts[m.group(2)] += int(m.group(3))
    return counts


def _log(x: float) -> float:
    return math.log(x) if x > 0 else math.nan


def _describe(z: int) -> list[float]:
    from pymatgen.core.periodic_table import Element

    el = Element.from_Z(z)
    val = _valence(el.electronic_structure)
    ox = tuple(el.common_oxidation_states) or (0,)  # noble gases: none listed -> 0
    ionic = _number(el.average_ionic_radius)
    row = [
        float(el.group),
        float(el.row),
        *(float(el.block == b) for b in "spdf"),
        _number(el.mendeleev_no),
        _number(el.X),
        _number(el.atomic_radius),
        ionic if ionic > 0 else math.nan,
        _number(el.ionization_energy),
        _number(el.electron_affinity),
        _log(_number(el.atomic_mass)),
        _log(_number(el.molar_volume)),
        _log(_number(el.melting_point)),
        *(float(val[o]) for o in "spdf"),
        float(min(ox)),
        float(max(ox)),
    ]
    assert len(row) == len(DESCRIPTORS)
    return row


def _fill_missing(raw: np.ndarray, groups: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """NaN -> mean over the same group, else the same row, else all elements (per column)."""
    out = raw.copy()
    for k in range(raw.shape[1]):
        col = raw[:, k]
        present = ~np.isnan(col)
        for i in np.flatnonzero(~present):
            for same in (groups == groups[i], rows == rows[i], np.ones_like(present)):
                pick = same & present
                if pick.any():
                    out[i, k] = col[pick].mean()
                    break
    return out


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns for every absent property
        raw = np.array([_describe(z) for z in range(1, MAX_Z + 1)], dtype=np.float64)
    filled = _fill_missing(raw, raw[:, 0], raw[:, 1])
    mean = filled.mean(0)
    std = filled.std(0)
    if (std <= 0).any():
        flat = [DESCRIPTORS[k] for k in np.flatnonzero(std <= 0)]
        raise RuntimeError(f"elemental descriptors {flat} do not vary over Z = 1..{MAX_Z}")
    table = np.concatenate([np.zeros((1, raw.shape[1])), (filled - mean) / std], 0)
    raw = np.concatenate([np.full((1, raw.shape[1]), np.nan), raw], 0)
    raw.setflags(write=False)
    table.setflags(write=False)
    return raw, table


def raw_elemental_table() -> np.ndarray:
    """The descriptors in physical units before filling and standardisation.

    Returns
    -------
    numpy.ndarray, float64, shape [MAX_Z + 1, len(DESCRIPTORS)], read-only
        Row ``Z`` describes element Z (row 0 is NaN); NaN where pymatgen has no value.
    """
    return _tables()[0]


def elemental_table() -> np.ndarray:
    """Standardised descriptors of the elements, one row per atomic number.

    Returns
    -------
    numpy.ndarray, float64, shape [MAX_Z + 1, len(DESCRIPTORS)], read-only
        Row ``Z`` (1..94) holds element Z's descriptors (:data:`DESCRIPTORS`), missing
        values filled (see the module notes), each column with mean 0 and population
        standard deviation 1 over Z = 1..94; row 0 (no element) is zero.
    """
    return _tables()[1]
