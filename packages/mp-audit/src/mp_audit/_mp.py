"""The ``mp`` source: Materials Project through ``mp-api`` into a chunked, checksummed cache.

Cache layout (one folder per database version)::

    <cache>/mp-<db_version>/manifest.json        ids per chunk, fields, version (no key)
    <cache>/mp-<db_version>/chunk-00000.json.gz  records of chunk 0
    <cache>/mp-<db_version>/chunk-00000.sha256   checksum, written after the chunk

A chunk counts as done only when its checksum file exists and matches, and both files are
written atomically (temporary file + rename). An interrupted run therefore resumes at the
first chunk that is not done, and a corrupted chunk is fetched again; since the chunk
boundaries are fixed by the manifest, nothing is lost or duplicated.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ._dataset import Dataset, Entry

ENV_CACHE = "MP_AUDIT_CACHE_DIR"
SUMMARY_FIELDS = (
    "material_id",
    "structure",
    "band_gap",
    "formation_energy_per_atom",
    "energy_above_hull",
    "theoretical",
    "deprecated",
    "nsites",
    "elements",
)
THERMO_FIELDS = ("material_id", "thermo_type", "energy_type")
ELASTIC_FIELDS = ("material_id", "elastic_tensor", "structure")
#: ids per page of the id listing
LIST_PAGE = 1000
_ALL_PAGES = 10**9
#: preferred thermo type for the run type of a material (the GGA/GGA+U mixing of §2.3.2)
PREFERRED_THERMO = ("GGA_GGA+U", "GGA_GGA+U_R2SCAN", "R2SCAN")
KEY_HELP = (
    "pass api_key= (CLI: --api-key), set the MP_API_KEY environment variable, or run "
    "`pmg config --add PMG_MAPI_KEY <key>`; keys are at "
    "https://next-gen.materialsproject.org/api"
)


class MPFetchError(RuntimeError):
    """A Materials Project request failed after all retries (the cache stays valid)."""


class MissingExtraError(ImportError):
    """An optional dependency (extra) is not installed; the message names the extra."""


def _pymatgen_key() -> str | None:
    try:
        from pymatgen.core import SETTINGS
    except ImportError:  # pragma: no cover - pymatgen is a dependency
        return None
    return SETTINGS.get("PMG_MAPI_KEY")


def resolve_api_key(api_key: str | None = None) -> str:
    """The API key from the argument, ``MP_API_KEY`` or pymatgen's settings, checked.

    Raises
    ------
    ValueError
        No key, or a key that is not 32 letters/digits. The message never contains the key.
    """
    for origin, value in (
        ("api_key argument", api_key),
        ("MP_API_KEY", os.environ.get("MP_API_KEY")),
        ("pymatgen setting PMG_MAPI_KEY", _pymatgen_key()),
    ):
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9]{32}", value.strip()):
            length = len(value) if isinstance(value, str) else type(value).__name__
            raise ValueError(
                f"Materials Project API key from {origin} is malformed (value hidden; "
                f"length {length}; expected 32 letters or digits). To set it: {KEY_HELP}"
            )
        return value.strip()
    raise ValueError(f"no Materials Project API key found. To set it: {KEY_HELP}")


def default_cache_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$MP_AUDIT_CACHE_DIR``, else the user cache dir of mp-audit."""
    if cache_dir is not None:
        return Path(cache_dir)
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE])
    import platformdirs

    return Path(platformdirs.user_cache_dir("mp-audit", appauthor=False))


def _default_client(api_key: str, endpoint: str | None = None) -> Any:
    try:
        from mp_api.client import MPRester
    except ImportError as exc:
        raise MissingExtraError("the 'mp' source needs mp-api: pip install 'mp-audit[mp]'") from exc
    return MPRester(api_key, endpoint=endpoint, use_document_model=False, mute_progress_bars=True)


def _to_plain(obj: Any) -> Any:
    """Documents (pydantic models, Structures, MPIDs, enums) -> JSON-ready data."""
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump()
    if hasattr(obj, "as_dict") and not isinstance(obj, dict):
        return obj.as_dict()
    if isinstance(obj, dict):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "value") and not isinstance(obj, (str, int, float, bool)):
        return obj.value  # enums
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)  # MPID and friends: text, never int


def _hidden(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


class _Caller:
    """Calls with retries and exponential back-off; errors never show the key."""

    def __init__(self, key: str, retries: int, backoff: float, sleep: Callable[[float], Any]):
        self.key, self.retries, self.backoff, self.sleep = key, retries, backoff, sleep

    def __call__(self, what: str, fn: Callable, **kwargs: Any) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return fn(**kwargs)
            except Exception as exc:  # network errors come in many types
                if attempt == self.retries:
                    message = _hidden(f"{type(exc).__name__}: {exc}", self.key)
                    raise MPFetchError(
                        f"{what} failed after {self.retries + 1} attempts ({message}); "
                        "the cache is intact, rerun to resume"
                    ) from None
                self.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover


def _read_manifest(path: Path) -> dict[str, Any]:
    """The cache manifest, checked; a ValueError naming the file when it is unusable."""
    how = "delete it and run `mp-audit fetch` to rebuild the cache"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"cache manifest {path} is corrupt ({exc}); {how}") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"cache manifest {path} is not a JSON object; {how}")
    missing = [k for k in ("db_version", "n_materials", "chunks") if k not in manifest]
    if missing or not isinstance(manifest["chunks"], list):
        raise ValueError(f"cache manifest {path} lacks {missing or ['a list of chunks']}; {how}")
    return manifest


def _database_version(call: _Caller, client: Any) -> str:
    # mp-api >= 0.42 exposes ``db_version``; ``get_database_version()`` is deprecated there
    version = getattr(client, "db_version", None)
    if not version:
        version = call("database version", client.get_database_version)
    return str(version)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _chunk_paths(folder: Path, k: int) -> tuple[Path, Path]:
    return folder / f"chunk-{k:05d}.json.gz", folder / f"chunk-{k:05d}.sha256"


def chunk_ok(folder: Path, k: int) -> bool:
    """True when chunk ``k`` exists and matches its checksum."""
    data, digest = _chunk_paths(folder, k)
    if not (data.is_file() and digest.is_file()):
        return False
    return digest.read_text().strip() == _sha256(data)


def _fetch_chunk(call: _Caller, client: Any, ids: list[str], elasticity: bool) -> list[dict]:
    docs = call("summary search", client.materials.summary.search, material_ids=ids,
                fields=list(SUMMARY_FIELDS))  # fmt: skip
    thermo = call("thermo search", client.materials.thermo.search, material_ids=ids,
                  fields=list(THERMO_FIELDS))  # fmt: skip
    run_types: dict[str, dict[str, str]] = {}
    for doc in map(_to_plain, thermo):
        run_types.setdefault(str(doc["material_id"]), {})[str(doc.get("thermo_type"))] = doc.get(
            "energy_type"
        )
    elastic: dict[str, dict] = {}
    if elasticity:
        for doc in map(_to_plain, call("elasticity search", client.materials.elasticity.search,
                                       material_ids=ids, fields=list(ELASTIC_FIELDS))):  # fmt: skip
            elastic[str(doc["material_id"])] = doc
    records = []
    for doc in map(_to_plain, docs):
        mid = str(doc["material_id"])
        rec = {k: doc.get(k) for k in SUMMARY_FIELDS}
        rec["material_id"] = mid
        types = run_types.get(mid, {})
        pick = next((t for t in PREFERRED_THERMO if t in types), next(iter(types), None))
        rec["thermo_type"] = pick
        rec["run_type"] = types.get(pick) if pick else None
        if mid in elastic:
            tensor = elastic[mid].get("elastic_tensor") or {}
            # the raw tensor is expressed in the frame of the elasticity document's structure
            rec["elastic_tensor"] = tensor.get("raw") if isinstance(tensor, dict) else tensor
            rec["elastic_structure"] = elastic[mid].get("structure")
        records.append(rec)
    records.sort(key=lambda r: r["material_id"])
    return records


def fetch_mp(
    *,
    api_key: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    chunk_size: int = 1000,
    elasticity: bool = False,
    progress: bool = True,
    endpoint: str | None = None,
    client_factory: Callable[[str], Any] | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    sleep: Callable[[float], Any] = time.sleep,
) -> dict[str, Any]:
    """Download (or resume downloading) the Materials Project into the local cache.

    Parameters
    ----------
    api_key
        MP API key; default ``MP_API_KEY`` or pymatgen's ``PMG_MAPI_KEY``. Never stored.
    cache_dir
        Cache root (default ``$MP_AUDIT_CACHE_DIR`` or the user cache dir).
    chunk_size
        Materials per chunk file (fixed for a database version once the manifest exists).
    elasticity
        Also fetch elasticity documents (raw tensor and its own structure).
    endpoint
        REST endpoint of the default client (default: mp-api's, i.e.
        ``https://api.materialsproject.org/`` or ``$MP_API_ENDPOINT``); for mirrors and tests.
    client_factory
        ``api_key -> client`` with the ``mp_api.client.MPRester`` interface; the default
        builds an ``MPRester`` (``use_document_model=False``) on ``endpoint``.
    retries, backoff, sleep
        Retries per request, first back-off in seconds (doubling), sleep function.

    Returns
    -------
    dict
        ``db_version``, ``folder``, ``n_materials``, ``n_chunks``, ``fetched`` (chunks
        downloaded by this call).
    """
    if not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size!r}: expected an int >= 1")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries={retries!r}: expected an int >= 0")
    key = resolve_api_key(api_key)
    call = _Caller(key, retries, backoff, sleep)
    factory = client_factory or (lambda k: _default_client(k, endpoint))
    # MPRester asks the server for its version on construction: retried like any request
    client = call("connecting to the Materials Project", lambda: factory(key))
    version = _database_version(call, client)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", version):
        raise MPFetchError(f"unexpected database version {version!r}")
    folder = default_cache_dir(cache_dir) / f"mp-{version}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(call, client, folder, version, chunk_size, elasticity)
    fetched = _fetch_missing_chunks(call, client, folder, version, manifest, elasticity, progress)
    manifest["complete"] = True
    _atomic_write(folder / "manifest.json", json.dumps(manifest).encode())
    return {
        "db_version": version,
        "folder": str(folder),
        "n_materials": manifest["n_materials"],
        "n_chunks": len(manifest["chunks"]),
        "fetched": fetched,
    }


def _manifest(
    call: _Caller, client: Any, folder: Path, version: str, chunk_size: int, elasticity: bool
) -> dict[str, Any]:
    """The folder's manifest (ids per chunk); listed from the server and written (old chunk
    files removed) when it is missing, unreadable or made with another ``elasticity``."""
    manifest_path = folder / "manifest.json"
    manifest = None
    if manifest_path.is_file():
        try:
            manifest = _read_manifest(manifest_path)
        except ValueError as exc:  # rebuilt below: the chunks are fetched again
            warnings.warn(f"{exc}; rebuilding it", stacklevel=3)
    if manifest is not None and manifest.get("elasticity") == elasticity:
        return manifest
    # ``num_chunks`` makes mp-api page through the REST endpoint (small id-only pages)
    # instead of downloading the whole summary collection from its S3 bucket
    docs = call(
        "material id listing",
        client.materials.summary.search,
        fields=["material_id"],
        chunk_size=LIST_PAGE,
        num_chunks=_ALL_PAGES,
    )
    ids = sorted({str(_to_plain(d)["material_id"]) for d in docs})
    chunks = [ids[k : k + chunk_size] for k in range(0, len(ids), chunk_size)]
    manifest = {
        "db_version": version,
        "fields": list(SUMMARY_FIELDS),
        "elasticity": elasticity,
        "n_materials": len(ids),
        "chunks": chunks,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for old in folder.glob("chunk-*"):  # a new chunking invalidates old chunk files
        old.unlink()
    _atomic_write(manifest_path, json.dumps(manifest).encode())
    return manifest


def _fetch_missing_chunks(
    call: _Caller,
    client: Any,
    folder: Path,
    version: str,
    manifest: dict[str, Any],
    elasticity: bool,
    progress: bool,
) -> int:
    """Download every chunk of the manifest not yet cached (checksum last); their number."""
    fetched = 0
    todo = [k for k in range(len(manifest["chunks"])) if not chunk_ok(folder, k)]
    for k in tqdm(todo, desc=f"fetch MP {version}", unit="chunk", disable=not progress):
        records = _fetch_chunk(call, client, manifest["chunks"][k], elasticity)
        data, digest = _chunk_paths(folder, k)
        blob = gzip.compress(json.dumps(records).encode(), mtime=0)
        _atomic_write(data, blob)
        # the checksum is written last: a chunk without it is redone on the next run
        _atomic_write(digest, hashlib.sha256(blob).hexdigest().encode())
        fetched += 1
    return fetched


def _complete_caches(root: Path) -> list[Path]:
    out = []
    for folder in sorted(root.glob("mp-*")):
        manifest = folder / "manifest.json"
        if manifest.is_file() and _read_manifest(manifest).get("complete"):
            out.append(folder)
    return out


#: properties of a cached MP record that reach ``entry.props``
RECORD_PROPERTIES = (
    "band_gap",
    "formation_energy_per_atom",
    "energy_above_hull",
    "theoretical",
    "deprecated",
    "run_type",
    "nsites",
    "elastic_tensor",
)


def _entry(rec: dict[str, Any]) -> Entry:
    props = {k: rec.get(k) for k in RECORD_PROPERTIES if k != "elastic_tensor"}
    if rec.get("elastic_tensor") is not None:
        props["elastic_tensor"] = rec["elastic_tensor"]
    return Entry(str(rec["material_id"]), rec.get("structure"), props)


def read_cache(folder: str | os.PathLike) -> Dataset:
    """Dataset over a cache folder, read one chunk at a time (memory stays flat)."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.is_file():
        raise ValueError(f"{folder} is not an mp-audit cache: no manifest.json in it")
    manifest = _read_manifest(path)
    n_chunks = len(manifest["chunks"])
    bad = [k for k in range(n_chunks) if not chunk_ok(folder, k)]
    if bad:
        raise ValueError(
            f"cache {folder} has {len(bad)} missing or corrupted chunk(s) (first: {bad[0]}); "
            "run `mp-audit fetch` to repair it"
        )

    def factory() -> Iterator[Entry]:
        for k in range(n_chunks):
            data, _ = _chunk_paths(folder, k)
            for rec in json.loads(gzip.decompress(data.read_bytes())):
                yield _entry(rec)

    meta = {"db_version": manifest["db_version"], "cache": str(folder),
            "n_materials": manifest["n_materials"]}  # fmt: skip
    return Dataset(f"mp ({manifest['db_version']})", factory, manifest["n_materials"], meta)


def load_mp(
    *,
    api_key: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    refresh: bool = False,
    **fetch_options: Any,
) -> Dataset:
    """The ``mp`` source: the newest complete cache, else (or with ``refresh``) fetch first."""
    root = default_cache_dir(cache_dir)
    caches = _complete_caches(root) if root.is_dir() else []
    if caches and not refresh and not fetch_options.get("elasticity"):
        return read_cache(caches[-1])
    info = fetch_mp(api_key=api_key, cache_dir=root, **fetch_options)
    return read_cache(info["folder"])
