"""``load(source)``: every supported data source behind one function."""

from __future__ import annotations

import gzip
import json
import math
import os
from collections import Counter
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
# structure files a folder may hold, one structure each: CIF and VASP (pymatgen's own naming:
# any name containing POSCAR or CONTCAR, or the suffix .vasp / .poscar), each maybe gzipped
STRUCTURE_FILE_SUFFIXES = (".cif", ".vasp", ".poscar")
GZIP_SUFFIX = ".gz"
STRUCTURE_FILE_NAMES = ("poscar", "contcar")
#: keyword arguments of the ``mp`` source (see :func:`mp_audit.fetch_mp`)
MP_OPTIONS = (
    "refresh",
    "chunk_size",
    "elasticity",
    "progress",
    "endpoint",
    "client_factory",
    "retries",
    "backoff",
    "sleep",
)
#: ``columns=ALL`` keeps every column of a table (besides the id and the structure)
ALL = "all"


def _suffix_ok(path: Path, suffixes: tuple[str, ...]) -> bool:
    """Extension test, case-insensitive (``a.CIF``, ``b.Csv.GZ``)."""
    return path.name.lower().endswith(suffixes)


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
    if _suffix_ok(path, (".gz",)):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            return fh.read()
    return path.read_text(encoding="utf-8")


def _first_line(path: Path) -> str:
    opener = gzip.open if _suffix_ok(path, (".gz",)) else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return fh.readline()


def _is_structure_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and "lattice" in obj and "sites" in obj


def _read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (optional ``# ref`` line) or JSON file into a DataFrame.

    Any failure is a ValueError that names the file and the format it was read as.
    """
    kind = "CSV" if _suffix_ok(path, (".csv", ".csv.gz")) else "JSON"
    if _suffix_ok(path, (".gz",)):
        kind = "gzip-compressed " + kind
    try:
        frame = _read_csv(path) if "CSV" in kind else _read_json(path)
    except (ValueError, TypeError, OSError, EOFError, UnicodeDecodeError) as exc:
        # pandas' EmptyDataError/ParserError and json's JSONDecodeError are ValueErrors;
        # gzip raises BadGzipFile (OSError) or EOFError (truncated)
        raise ValueError(
            f"{path}: cannot read it as {kind} ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    if len(frame.columns) == 0:
        raise ValueError(f"{path}: the {kind} file holds no columns")
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    # matminer files start with a "# ref: ..." comment line
    skip = 1 if _first_line(path).startswith("#") else 0
    # ids stay text: "0012" or "mp-ft" must never become numbers
    frame = pd.read_csv(path, skiprows=skip, dtype={c: str for c in ID_COLUMNS})
    ids = [c for c in ID_COLUMNS if c in frame.columns]
    if ids and frame[ids].isna().any().any():  # "NA", "nan", "None" are ids too, not missing
        raw = pd.read_csv(path, skiprows=skip, usecols=ids, dtype=str, keep_default_na=False)
        for c in ids:
            frame[c] = raw[c].where(raw[c].str.strip() != "", None)
    return frame


def _read_json(path: Path) -> pd.DataFrame:
    data = json.loads(_open_text(path))
    if _is_structure_dict(data):
        return pd.DataFrame({"structure": [data]})
    if isinstance(data, list):
        # a list of structures: one item that is not a structure (null, a molecule, a typo)
        # fails alone, as its own row (records with a structure column are a table)
        records = any(isinstance(d, dict) and set(d) & set(STRUCTURE_COLUMNS) for d in data)
        if any(_is_structure_dict(d) for d in data) and not records:
            return pd.DataFrame({"structure": data})
        if not all(isinstance(d, dict) for d in data):
            raise ValueError("a JSON list must hold records (objects) or structure dicts")
        return pd.DataFrame.from_records(data)
    if isinstance(data, dict):
        columns = any(isinstance(v, dict) and set(v) & set(STRUCTURE_COLUMNS)
                      for v in data.values())  # fmt: skip
        if (
            any(_is_structure_dict(v) for v in data.values())
            and not columns
            and ("structure" not in data)
        ):
            return pd.DataFrame({"material_id": list(data), "structure": list(data.values())})
        if not all(isinstance(v, (dict, list)) for v in data.values()):
            raise ValueError(
                "a JSON object must be {column: {index: value}} (pandas to_json) or "
                "{id: structure dict}"
            )
        # pandas ``to_json`` column-dict form: {column: {index: value}}
        return pd.DataFrame(data)
    raise ValueError(f"JSON top level is {type(data).__name__}; expected a list or an object")


def _entries_from_frame(
    frame: pd.DataFrame,
    prefix: str,
    columns: Sequence[str] | str | None = None,
    where: str | None = None,
) -> list[Entry]:
    """Entries of a table; ``prefix`` names rows without an id, ``where`` the file in errors."""
    where = where or prefix
    present = set(frame.columns)
    id_col = next((c for c in ID_COLUMNS if c in present), None)
    struct_col = _structure_column(frame, present)
    if struct_col is None:
        raise ValueError(
            f"{where}: no structure column; expected one of {STRUCTURE_COLUMNS}, "
            f"got {sorted(map(str, present))}"
        )
    prop_cols: dict[str, str] = {}
    for name, aliases in PROPERTY_ALIASES.items():
        col = next((c for c in aliases if c in present), None)
        if col is not None:
            prop_cols[name] = col
    extra = _extra_columns(frame, where, columns, {id_col, struct_col}, prop_cols)
    entries = []
    for k, (index, row) in enumerate(frame.iterrows()):
        raw_id = _clean(row[id_col]) if id_col else None
        # no id column (MatTen): the file name and row index identify the row
        material_id = str(raw_id) if raw_id is not None else f"{prefix}:{index if id_col else k}"
        props = {
            name: _tensor(row[col]) if name == "elastic_tensor" else _clean(row[col])
            for name, col in prop_cols.items()
        }
        for col in extra:
            props[str(col)] = _value(row[col])
        entries.append(Entry(material_id, _clean(row[struct_col]), props))
    return entries


def _structure_column(frame: pd.DataFrame, present: set[Any]) -> str | None:
    """The column the structures are read from: the first of :data:`STRUCTURE_COLUMNS`,
    except that a ``poscar`` column wins over CIF text. A CIF keeps only the lattice
    parameters, so pymatgen rebuilds the cell in an orientation of its own, while a POSCAR
    keeps the Cartesian cell that tensors (dielectric, elastic as computed) are stated in:
    in matminer's dielectric file 467 of 1056 CIF cells are rotated against their POSCAR
    cells, and 31 of their tensors change by more than 5 % under that rotation."""
    first = next((c for c in STRUCTURE_COLUMNS if c in present), None)
    if first is None or first == "poscar" or "poscar" not in present:
        return first
    sample = next((v for v in frame[first] if isinstance(v, str) and v.strip()), "")
    return "poscar" if sample.lstrip().startswith(("#", "data_")) else first


def _extra_columns(
    frame: pd.DataFrame,
    prefix: str,
    columns: Sequence[str] | str | None,
    skip: set[Any],
    prop_cols: dict[str, str],
) -> list[Any]:
    """The columns kept besides the known properties; a missing requested one is an error."""
    if columns is None:
        return []
    known = set(prop_cols.values())
    if columns == ALL:
        return [c for c in frame.columns if c not in skip and c not in known]
    missing = [c for c in columns if c not in frame.columns and c not in prop_cols]
    if missing:
        raise ValueError(
            f"{prefix}: columns={list(columns)!r}: {missing} not in the file; columns "
            f"present: {sorted(map(str, frame.columns))}"
        )
    return [c for c in columns if c in frame.columns and c not in known and c not in prop_cols]


def _value(value: Any) -> Any:
    """A kept column's cell: JSON lists/objects in text become Python data, NaN -> None."""
    value = _clean(value)
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value.tolist() if isinstance(value, np.ndarray) else value


def _load_table(path: Path, columns: Sequence[str] | str | None) -> list[Entry]:
    # rows without an id are named after the file (name and row index)
    return _entries_from_frame(_read_table(path), path.name, columns, where=str(path))


def is_table_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is named as a table :func:`load` reads: ``.csv``, ``.json``, either
    gzipped (any case)."""
    return _suffix_ok(Path(path), TABLE_SUFFIXES)


def is_structure_file(path: Path) -> bool:
    """Whether ``path`` is named as a single-structure file: ``.cif``, ``.vasp``, ``.poscar``
    or a name containing ``POSCAR`` / ``CONTCAR`` (any case), maybe gzipped (``.cif.gz``),
    that is not a table's."""
    if is_table_file(path):
        return False
    name = _without_gzip(path.name).lower()
    return name.endswith(STRUCTURE_FILE_SUFFIXES) or any(n in name for n in STRUCTURE_FILE_NAMES)


def _without_gzip(name: str) -> str:
    return name[: -len(GZIP_SUFFIX)] if name.lower().endswith(GZIP_SUFFIX) else name


def _structure_id(path: Path) -> str:
    """The entry id of a structure file: its name without a structure suffix (and ``.gz``)."""
    name = _without_gzip(path.name)
    for suffix in STRUCTURE_FILE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def _structure_text(path: Path) -> str | ValueError:
    """A structure file's text, unzipped if its name ends in ``.gz``; a file that cannot be
    read gives the error as its payload (:func:`parse_payload` raises it for that entry
    alone: one broken file does not stop a folder)."""
    try:
        if path.name.lower().endswith(GZIP_SUFFIX):
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
                return f.read()
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, EOFError) as exc:  # BadGzipFile is an OSError; a truncated gzip EOFError
        return ValueError(f"{path.name}: cannot read the file ({type(exc).__name__}: {exc})")


def _load_structure_files(source: Path, files: list[Path]) -> Dataset:
    """The structure ``files`` as a dataset named after ``source`` (their folder, or the
    one file given)."""

    stems = [_structure_id(f) for f in files]
    shared = {stem for stem, n in Counter(stems).items() if n > 1}
    # X.cif beside X.vasp: both keep their whole file name, one id each
    ids = [f.name if stem in shared else stem for f, stem in zip(files, stems)]

    def factory() -> Iterator[Entry]:
        for f, ident in zip(files, ids):
            yield Entry(ident, _structure_text(f))

    return Dataset(str(source), factory, len(files), {"files": {f.name: 1 for f in files}})


def _load_builtin(name: str) -> Dataset:
    if name == "builtin:prototypes":
        from pymatgen.analysis.prototypes import AFLOW_PROTOTYPE_LIBRARY

        entries = []
        for k, proto in enumerate(AFLOW_PROTOTYPE_LIBRARY):
            tags = proto.get("tags", {})
            # several AFLOW labels repeat (same prototype, different settings): keep them unique
            entries.append(Entry(f"aflow-{k}:{tags.get('aflow', '?')}", proto["snl"].structure))
        return from_entries(
            name, entries, description="AFLOW prototypes shipped with pymatgen", columns=[]
        )
    from ase.collections import dcdft

    entries = [
        Entry(f"dcdft:{sym}", dcdft[sym], {"K_wien2k": dcdft.data[sym]["wien2k_B"]})
        for sym in dcdft.names
    ]
    return from_entries(
        name,
        entries,
        description="ASE dcdft elemental crystals (WIEN2k B, GPa)",
        columns=["K_wien2k"],
    )


def load(
    source: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    columns: Sequence[str] | str | None = None,
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
        pandas column-dict JSON, pymatgen/monty structure JSON), a folder of CIF / POSCAR files
        (or of such tables), or a list of any of these (concatenated). Extensions are
        case-insensitive (``a.cif`` and ``b.CIF`` both load).
    columns
        Columns to keep in ``entry.props`` besides the known properties (band gap,
        formation energy, elastic tensor, moduli, ...; see ``PROPERTY_ALIASES``), under
        their own names: e.g. ``["e_total", "piezoelectric_tensor"]``. Cells holding JSON
        lists or objects as text become Python lists/dicts; NaN becomes None. ``"all"``
        keeps every column. A requested column that a source lacks is an error that lists
        the columns present.
    api_key, cache_dir, mp_options
        Only for ``"mp"``: see :func:`mp_audit.fetch_mp` (allowed ``mp_options``:
        ``MP_OPTIONS``).
    limit
        Keep only the first ``limit`` entries (int >= 0).

    Returns
    -------
    Dataset
        Lazily parsed entries; ``dataset.meta["files"]`` maps each file read to its row count.

    Raises
    ------
    ValueError
        Unknown or empty source, missing path, a file that cannot be read (the message
        names it), no structure column, a requested column that is absent, a bad ``limit``.
    TypeError
        ``source`` of another type, or an unknown keyword argument.
    """
    unknown = sorted(set(mp_options) - set(MP_OPTIONS))
    if unknown:
        raise TypeError(
            f"load() got unknown keyword argument(s) {unknown}; allowed: columns, api_key, "
            f"cache_dir, limit, and for source 'mp' {', '.join(MP_OPTIONS)}"
        )
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit={limit!r}: expected a number of entries, an int >= 0")
    if columns is not None and columns != ALL:
        if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
            raise TypeError(f"columns={columns!r}: expected a list of column names or {ALL!r}")
        columns = list(columns)
    if isinstance(source, (list, tuple)):
        if not source:
            raise ValueError("source=[]: expected at least one source")
        parts = [
            load(s, columns=columns, api_key=api_key, cache_dir=cache_dir, **mp_options)
            for s in source
        ]
        ds = _concat(parts)
    elif isinstance(source, (str, os.PathLike)):
        ds = _load_one(source, columns, api_key=api_key, cache_dir=cache_dir, **mp_options)
    else:
        hint = (
            "; structures in memory are a source through mp_audit.from_structures([...])"
            if hasattr(source, "lattice") or hasattr(source, "get_cell")
            else ""
        )
        raise TypeError(
            f"source of type {type(source).__name__}: expected a string, path, or a list of "
            f"them{hint}"
        )
    if limit is not None:
        ds = ds.head(limit)
    return ds


def _require(name: str, columns: Sequence[str] | str | None, available: Sequence[str]) -> None:
    """Sources with a fixed set of properties: every requested column must be among them."""
    if columns is None or columns == ALL:
        return
    missing = [c for c in columns if c not in available]
    if missing:
        raise ValueError(
            f"{name}: columns={list(columns)!r}: {missing} not available; this source "
            f"provides {sorted(available)}"
        )


def _load_one(source: str | os.PathLike, columns: Any, **mp_kw: Any) -> Dataset:
    text = os.fspath(source)
    if not text.strip():
        raise ValueError(
            f"source={text!r} is empty: expected a path, 'mp', or one of {', '.join(BUILTINS)}"
        )
    if text in BUILTINS:
        ds = _load_builtin(text)
        _require(text, columns, ds.meta["columns"])
        return ds
    if text == "mp":
        from ._mp import RECORD_PROPERTIES, load_mp

        _require(text, columns, RECORD_PROPERTIES)
        return load_mp(**mp_kw)
    if text.startswith("builtin:"):
        raise ValueError(f"source={text!r}: unknown builtin; allowed: {', '.join(BUILTINS)}")
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        structures = [p for p in files if is_structure_file(p)]
        if structures:
            _require(text, columns, [])
            return _load_structure_files(path, structures)
        tables = [p for p in files if _suffix_ok(p, TABLE_SUFFIXES)]
        if not tables:
            raise ValueError(
                f"source={text!r}: folder holds no structure file (.cif, .vasp, .poscar, "
                "*POSCAR*, *CONTCAR*, each maybe .gz) and no .csv(.gz) or .json(.gz) table "
                "(sub-folders are not searched)"
            )
        return _concat([_load_file(p, columns) for p in tables], name=str(path))
    if path.is_file():
        return _load_file(path, columns)
    raise ValueError(
        f"source={text!r}: not a file or folder; allowed: a path, 'mp', {', '.join(BUILTINS)}"
    )


def _load_file(path: Path, columns: Any = None) -> Dataset:
    if is_structure_file(path):
        _require(str(path), columns, [])
        return _load_structure_files(path, [path])
    if not _suffix_ok(path, TABLE_SUFFIXES):
        raise ValueError(
            f"source={str(path)!r}: unsupported suffix; allowed: {STRUCTURE_FILE_SUFFIXES}, "
            f"names containing POSCAR or CONTCAR (each maybe gzipped), {TABLE_SUFFIXES} "
            "(any case)"
        )
    entries = _load_table(path, columns)
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
