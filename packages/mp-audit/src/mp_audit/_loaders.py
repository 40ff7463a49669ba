"""``load(source)``: every supported data source behind one function."""

from __future__ import annotations

import gzip
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._dataset import Dataset, Entry, from_entries

BUILTINS = ("builtin:prototypes", "builtin:dcdft")

ID_COLUMNS = ("material_id", "mp_id", "task_id", "mpid", "id")
STRUCTURE_COLUMNS = ("structure", "cif", "poscar", "atoms")
# canonical property -> column names seen in the wild (MP API, matminer, CDVAE, matcalc, MatTen)
PROPERTY_ALIASES: dict[str, tuple[str, ...]] = {
    "band_gap": ("band_gap", "gap pbe", "bandgap"),
    "formation_energy_per_atom": ("formation_energy_per_atom", "e_form"),
    "energy_above_hull": ("energy_above_hull", "e_above_hull"),
    "theoretical": ("theoretical",),
    "deprecated": ("deprecated",),
    "run_type": ("run_type", "thermo_type"),
    "nsites": ("nsites",),
    "elastic_tensor": ("elastic_tensor", "elasticity.elastic_tensor", "elastic_tensor_voigt"),
    "K_Voigt": ("K_Voigt", "elasticity.K_Voigt"),
    "K_Reuss": ("K_Reuss",),
    "K_VRH": ("K_VRH", "bulk_modulus_vrh"),
    "G_Voigt": ("G_Voigt", "elasticity.G_Voigt"),
    "G_Reuss": ("G_Reuss",),
    "G_VRH": ("G_VRH", "shear_modulus_vrh"),
}
TABLE_SUFFIXES = (".csv", ".csv.gz", ".json", ".json.gz")


def _clean(value: Any) -> Any:
    """numpy scalars -> Python, NaN -> None, JSON-list strings -> lists."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _tensor(value: Any) -> Any:
    value = _clean(value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value  # kept as is; the elastic check reports it as unreadable
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return value


def _open_text(path: Path) -> str:
    if path.name.endswith(".gz"):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return fh.read()
    return path.read_text(encoding="utf-8")


def _first_line(path: Path) -> str:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return fh.readline()


def _is_structure_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and "lattice" in obj and "sites" in obj


def _read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (optional ``# ref`` line) or JSON file into a DataFrame."""
    if path.name.endswith((".csv", ".csv.gz")):
        # matminer files start with a "# ref: ..." comment line
        skip = 1 if _first_line(path).startswith("#") else 0
        # ids stay text: "0012" or "mp-ft" must never become numbers
        return pd.read_csv(path, skiprows=skip, dtype={c: str for c in ID_COLUMNS})
    data = json.loads(_open_text(path))
    if _is_structure_dict(data):
        return pd.DataFrame({"structure": [data]})
    if isinstance(data, list):
        if data and all(_is_structure_dict(d) for d in data):
            return pd.DataFrame({"structure": data})
        return pd.DataFrame.from_records(data)
    if isinstance(data, dict):
        if data and all(_is_structure_dict(v) for v in data.values()):
            return pd.DataFrame({"material_id": list(data), "structure": list(data.values())})
        # pandas ``to_json`` column-dict form: {column: {index: value}}
        return pd.DataFrame(data)
    raise ValueError(f"{path}: JSON top level is {type(data).__name__}; expected list or dict")


def _entries_from_frame(frame: pd.DataFrame, prefix: str) -> list[Entry]:
    columns = set(frame.columns)
    id_col = next((c for c in ID_COLUMNS if c in columns), None)
    struct_col = next((c for c in STRUCTURE_COLUMNS if c in columns), None)
    if struct_col is None:
        raise ValueError(
            f"{prefix}: no structure column; expected one of {STRUCTURE_COLUMNS}, "
            f"got {sorted(map(str, columns))}"
        )
    prop_cols = {
        name: next((c for c in aliases if c in columns), None)
        for name, aliases in PROPERTY_ALIASES.items()
    }
    entries = []
    for k, (index, row) in enumerate(frame.iterrows()):
        raw_id = _clean(row[id_col]) if id_col else None
        # no id column (MatTen): the file name and row index identify the row
        material_id = str(raw_id) if raw_id is not None else f"{prefix}:{index if id_col else k}"
        props = {}
        for name, col in prop_cols.items():
            if col is None:
                continue
            value = row[col]
            props[name] = _tensor(value) if name == "elastic_tensor" else _clean(value)
        entries.append(Entry(material_id, _clean(row[struct_col]), props))
    return entries


def _load_table(path: Path) -> list[Entry]:
    return _entries_from_frame(_read_table(path), path.name)


def _load_cif_folder(folder: Path, files: list[Path]) -> Dataset:
    def factory() -> Iterator[Entry]:
        for f in files:
            yield Entry(f.name[: -len(".cif")], f.read_text(encoding="utf-8", errors="replace"))

    return Dataset(str(folder), factory, len(files), {"files": {f.name: 1 for f in files}})


def _load_builtin(name: str) -> Dataset:
    if name == "builtin:prototypes":
        from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY

        entries = []
        for k, proto in enumerate(AFLOW_PROTOTYPE_LIBRARY):
            tags = proto.get("tags", {})
            # several AFLOW labels repeat (same prototype, different settings): keep them unique
            entries.append(Entry(f"aflow-{k}:{tags.get('aflow', '?')}", proto["snl"].structure))
        return from_entries(name, entries, description="AFLOW prototypes shipped with pymatgen")
    from ase.collections import dcdft

    entries = [
        Entry(f"dcdft:{sym}", dcdft[sym], {"K_wien2k": dcdft.data[sym]["wien2k_B"]})
        for sym in dcdft.names
    ]
    return from_entries(name, entries, description="ASE dcdft elemental crystals (WIEN2k B, GPa)")


def load(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    api_key: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    **mp_options: Any,
) -> Dataset:
    """Load a dataset from any supported source.

    Parameters
    ----------
    source
        ``"mp"`` (Materials Project through ``mp-api``; needs the ``mp`` extra),
        ``"builtin:prototypes"``, ``"builtin:dcdft"``, a CSV / JSON file (optionally
        ``.gz``; CDVAE ``cif`` column, matminer structure dicts with a ``# ref`` line,
        pandas column-dict JSON, pymatgen/monty structure JSON), a folder of CIF files
        (or of such tables), or a list of any of these (concatenated).
    api_key, cache_dir, mp_options
        Only for ``"mp"``: see :func:`mp_audit.fetch_mp`.
    limit
        Keep only the first ``limit`` entries.

    Returns
    -------
    Dataset
        Lazily parsed entries; ``dataset.meta["files"]`` maps each file read to its row count.

    Raises
    ------
    ValueError
        Unknown source, missing path, or a file with no structure column.
    """
    if isinstance(source, (list, tuple)):
        parts = [load(s, api_key=api_key, cache_dir=cache_dir, **mp_options) for s in source]
        ds = _concat(parts)
    elif isinstance(source, (str, os.PathLike)):
        ds = _load_one(source, api_key=api_key, cache_dir=cache_dir, **mp_options)
    else:
        raise TypeError(f"source={source!r}: expected a string, path, or a list of them")
    if limit is not None:
        ds = ds.head(limit)
    return ds


def _load_one(source: str | os.PathLike, **mp_kw: Any) -> Dataset:
    text = os.fspath(source)
    if text in BUILTINS:
        return _load_builtin(text)
    if text == "mp":
        from ._mp import load_mp

        return load_mp(**mp_kw)
    if text.startswith("builtin:"):
        raise ValueError(f"source={text!r}: unknown builtin; allowed: {', '.join(BUILTINS)}")
    path = Path(text)
    if path.is_dir():
        cifs = sorted(path.glob("*.cif"))
        if cifs:
            return _load_cif_folder(path, cifs)
        tables = sorted(p for p in path.iterdir() if p.name.endswith(TABLE_SUFFIXES))
        if not tables:
            raise ValueError(f"source={text!r}: folder holds no .cif, .csv(.gz) or .json(.gz) file")
        return _concat([_load_file(p) for p in tables], name=str(path))
    if path.is_file():
        return _load_file(path)
    raise ValueError(
        f"source={text!r}: not a file or folder; allowed: a path, 'mp', {', '.join(BUILTINS)}"
    )


def _load_file(path: Path) -> Dataset:
    if path.name.endswith(".cif"):
        return _load_cif_folder(path.parent, [path])
    if not path.name.endswith(TABLE_SUFFIXES):
        raise ValueError(
            f"source={str(path)!r}: unsupported suffix; allowed: .cif {TABLE_SUFFIXES}"
        )
    entries = _load_table(path)
    return from_entries(str(path), entries, files={path.name: len(entries)})


def _concat(parts: list[Dataset], name: str | None = None) -> Dataset:
    def factory() -> Iterator[Entry]:
        for part in parts:
            yield from part

    files: dict[str, int] = {}
    for p in parts:
        files.update(p.meta.get("files", {}))
    sizes = [p.size for p in parts if p.size is not None]
    size = sum(sizes) if len(sizes) == len(parts) else None
    ds = Dataset(name or " + ".join(p.name for p in parts), factory, size, {"files": files})
    for p in parts:
        ds.load_failures.extend(p.load_failures)
        for key, value in p.meta.items():
            ds.meta.setdefault(key, value)
    return ds
