"""Raw entries and the lazily parsed :class:`Dataset`.

Entries hold the structure *payload* as it was read (a CIF string, a ``Structure.as_dict``
dict, a Python-repr string, a POSCAR string) and parse it only when asked. A dataset of
150k materials therefore costs its text, not 150k pymatgen objects, and parsing happens in
the (parallel, pure) map step.
"""

from __future__ import annotations

import ast
import json
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pymatgen.core import Structure


@dataclass(frozen=True)
class Entry:
    """One material as read from a source, structure not yet parsed.

    Parameters
    ----------
    material_id
        Identifier as a string (``"mp-149"``, ``"mvc-12"``, ``"mp-ft"``); never parsed as int.
    payload
        The structure as stored: ``Structure``, ``dict`` (``Structure.as_dict``), or ``str``
        (CIF, POSCAR, or the Python ``repr`` of a structure dict).
    props
        Scalar properties (band gap in eV, formation energy in eV/atom, elastic tensor as a
        6x6 list in GPa, ...); missing ones are absent or ``None``.
    """

    material_id: str
    payload: Any
    props: dict[str, Any] = field(default_factory=dict)


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, float) and math.isnan(value)


def parse_payload(payload: Any) -> Structure:
    """Turn a stored structure payload into a pymatgen ``Structure``.

    Parameters
    ----------
    payload
        ``Structure``, ASE ``Atoms``, structure dict, or a string holding a CIF, a POSCAR,
        JSON, or the Python ``repr`` of a structure dict; or the exception that reading a
        structure file raised (:func:`load` stores it for that entry alone), raised again as
        a ``ValueError``.

    Returns
    -------
    Structure

    Raises
    ------
    ValueError
        When the payload is empty or cannot be read as a structure.
    """
    if isinstance(payload, Structure):
        return payload
    if isinstance(payload, BaseException):  # a file that could not be read (see load)
        raise ValueError(str(payload))
    if _is_missing(payload):
        raise ValueError(f"payload={payload!r}: no structure stored")
    if hasattr(payload, "get_cell") and hasattr(payload, "get_positions"):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_structure(payload)
    if isinstance(payload, dict):
        if "lattice" not in payload or "sites" not in payload:
            keys = ", ".join(map(repr, list(payload)[:6])) or "none"
            raise ValueError(
                f"a dict without 'lattice' and 'sites' is no pymatgen structure dict (keys: "
                f"{keys}; a Molecule has no lattice)"
            )
        return Structure.from_dict(payload)
    if not isinstance(payload, str):
        raise ValueError(
            f"payload of type {type(payload).__name__}: expected Structure, dict or str"
        )
    text = payload.strip()
    if not text:
        raise ValueError("payload='': empty structure string")
    try:
        return _parse_text(text)
    except Exception as exc:  # pymatgen/ast raise many types; say what was expected
        first = text.splitlines()[0][:60]
        kind = (
            "a structure dict (JSON or Python repr)" if text.startswith("{") else "a CIF or POSCAR"
        )
        raise ValueError(
            f"payload starting {first!r} is not a structure: expected a CIF, a POSCAR, or a "
            f"structure dict as JSON or Python repr; reading it as {kind} failed "
            f"({type(exc).__name__}: {str(exc)[:120]})"
        ) from None


def _parse_text(text: str) -> Structure:
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            # matminer CSVs store the Python repr of Structure.as_dict (single quotes)
            data = ast.literal_eval(text)
        return Structure.from_dict(data)
    with warnings.catch_warnings():
        # pymatgen warns about rounding fractional coordinates on nearly every MP CIF
        warnings.simplefilter("ignore")
        if "_cell_length_a" in text or text.startswith("data_"):
            return Structure.from_str(text, fmt="cif")
        return Structure.from_str(text, fmt="poscar")


@dataclass
class Dataset:
    """A stream of :class:`Entry` objects with its provenance.

    Iterating calls ``entries_factory`` again, so a dataset can be walked several times
    without being held in memory (the ``mp`` source reads one cache chunk at a time).

    Parameters
    ----------
    name
        Human-readable source name (``"builtin:prototypes"``, a path, ``"mp"``).
    entries_factory
        Zero-argument callable returning a fresh iterator over the entries.
    size
        Number of entries, when known without iterating.
    meta
        Provenance: database version, files read, row counts per file.
    load_failures
        ``(material_id, reason)`` of rows that could not even be turned into an entry
        (for example a missing structure cell); they never raise.
    """

    name: str
    entries_factory: Callable[[], Iterable[Entry]]
    size: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    load_failures: list[tuple[str, str]] = field(default_factory=list)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries_factory())

    def __len__(self) -> int:
        if self.size is None:
            self.size = sum(1 for _ in self)
        return self.size

    def structures(self) -> Iterator[tuple[Entry, Structure | None, str | None]]:
        """Yield ``(entry, structure or None, error message or None)`` for every entry."""
        for entry in self:
            try:
                yield entry, parse_payload(entry.payload), None
            except Exception as exc:  # any parser error becomes a listed failure
                yield entry, None, f"{type(exc).__name__}: {exc}"

    def parse_failures(self) -> list[tuple[str, str]]:
        """Ids and reasons of all rows that fail to load or parse (streams, never raises)."""
        bad = list(self.load_failures)
        bad += [(e.material_id, err) for e, s, err in self.structures() if err is not None]
        return bad

    def head(self, n: int) -> Dataset:
        """The first ``n`` entries as a new dataset (``n`` >= 0)."""
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n={n!r}: expected a number of entries, an int >= 0")

        def factory() -> Iterator[Entry]:
            for k, entry in enumerate(self):
                if k >= n:
                    return
                yield entry

        size = n if self.size is None else min(n, self.size)
        return Dataset(f"{self.name}[:{n}]", factory, size, dict(self.meta), [])


def from_entries(name: str, entries: Iterable[Entry], **meta: Any) -> Dataset:
    """Dataset over an in-memory list of entries (handy for tests and notebooks)."""
    items = list(entries)
    return Dataset(name, lambda: iter(items), len(items), dict(meta))


def from_structures(
    structures: Iterable[Structure], ids: Iterable[str] | None = None, name: str = "memory"
) -> Dataset:
    """Dataset over pymatgen structures; ids default to ``"s-0"``, ``"s-1"``, ..."""
    structures = list(structures)
    ids = [f"s-{k}" for k in range(len(structures))] if ids is None else [str(i) for i in ids]
    if len(ids) != len(structures):
        raise ValueError(
            f"ids has {len(ids)} items: expected {len(structures)} (one per structure)"
        )
    return from_entries(name, [Entry(i, s, {}) for i, s in zip(ids, structures)])
