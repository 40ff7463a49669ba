"""The ``mp`` source with a fake MPRester (no network): resume, corruption, retries, keys."""

from __future__ import annotations

import json
from pathlib import Path

import mp_audit
import pytest
from ase.collections import dcdft
from mp_audit import _mp
from mp_audit._cli import main
from pymatgen.io.ase import AseAtomsAdaptor

KEY = "K" * 16 + "e" * 8 + "7" * 8  # 32 letters/digits, shaped like a real key


class Killed(BaseException):
    """Stands in for SIGKILL/Ctrl-C in the middle of a download (not an Exception)."""


def _docs():
    docs = []
    for k, sym in enumerate(dcdft.names):
        # alphabetical ids on purpose: they must never be parsed as integers
        mid = f"mp-{sym.lower()}" if k % 3 else f"mp-{1000 + k}"
        docs.append(
            {
                "material_id": mid,
                "structure": AseAtomsAdaptor.get_structure(dcdft[sym]),
                "band_gap": 0.0 if k % 2 else 0.1 * k,
                "formation_energy_per_atom": -0.01 * k,
                "energy_above_hull": 0.0,
                "theoretical": None if k == 5 else bool(k % 4),
                "deprecated": False,
                "nsites": len(dcdft[sym]),
                "elements": [sym],
            }
        )
    return {d["material_id"]: d for d in docs}


class FakeMP:
    """Just enough of ``mp_api.client.MPRester`` for the cache."""

    def __init__(self, kill_at=None, fail=0, error_text="connection reset"):
        self.db = _docs()
        self.kill_at, self.fail, self.error_text = kill_at, fail, error_text
        self.chunk_calls = 0
        self.materials = self
        self.summary = _Endpoint(self._summary)
        self.thermo = _Endpoint(self._thermo)
        self.elasticity = _Endpoint(lambda **kw: [])

    def get_database_version(self):
        return "2025.09.25"

    def _maybe_fail(self):
        if self.fail:
            self.fail -= 1
            raise ConnectionError(self.error_text)

    def _summary(self, material_ids=None, fields=None, **paging):
        self._maybe_fail()
        if material_ids is None:
            return [{"material_id": m} for m in reversed(list(self.db))]
        if self.kill_at is not None and self.chunk_calls == self.kill_at:
            raise Killed
        self.chunk_calls += 1
        return [{f: self.db[m][f] for f in fields} for m in material_ids]

    def _thermo(self, material_ids=None, fields=None):
        out = []
        for k, m in enumerate(material_ids):
            out.append({"material_id": m, "thermo_type": "R2SCAN", "energy_type": "R2SCAN"})
            energy = "GGA+U" if k % 2 else "GGA"
            out.append({"material_id": m, "thermo_type": "GGA_GGA+U", "energy_type": energy})
        return out


class _Endpoint:
    def __init__(self, fn):
        self.search = fn


def _records(folder):
    ds = mp_audit.read_cache(folder)
    return [(e.material_id, e.props, e.payload) for e in ds]


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    monkeypatch.setattr(_mp, "_pymatgen_key", lambda: None)


def _fetch(cache, client, **kw):
    return mp_audit.fetch_mp(
        api_key=KEY, cache_dir=cache, chunk_size=10, progress=False,
        client_factory=lambda key: client, sleep=lambda s: None, **kw,
    )  # fmt: skip


def test_resume_after_interrupt_matches_uninterrupted_run(tmp_path):
    full = _fetch(tmp_path / "a", FakeMP())
    assert full["n_chunks"] == 8 and full["fetched"] == 8 and full["n_materials"] == 71
    with pytest.raises(Killed):
        _fetch(tmp_path / "b", FakeMP(kill_at=3))
    folder_b = Path(full["folder"].replace(str(tmp_path / "a"), str(tmp_path / "b")))
    assert [_mp.chunk_ok(folder_b, k) for k in range(5)] == [True, True, True, False, False]
    # a chunk cut off while being written (no checksum yet) must be fetched again
    (folder_b / "chunk-00004.json.gz").write_bytes(b"\x1f\x8b half a chunk")
    with pytest.raises(ValueError, match="run `mp-audit fetch`"):
        mp_audit.read_cache(folder_b)
    resumed = FakeMP()
    info = _fetch(tmp_path / "b", resumed)
    assert info["fetched"] == 5 and resumed.chunk_calls == 5  # only what was missing
    a, b = _records(full["folder"]), _records(folder_b)
    assert len(b) == 71 == len({r[0] for r in b})  # nothing lost, nothing duplicated
    assert a == b  # record by record
    assert all(isinstance(r[0], str) for r in b) and "mp-ft" not in {r[0] for r in b}
    assert any(r[0] == "mp-fe" for r in b)


def test_corrupted_chunk_is_detected_and_refetched(tmp_path):
    info = _fetch(tmp_path, FakeMP())
    folder = Path(info["folder"])
    before = _records(folder)
    blob = bytearray((folder / "chunk-00002.json.gz").read_bytes())
    blob[-5] ^= 0xFF
    (folder / "chunk-00002.json.gz").write_bytes(bytes(blob))
    assert not _mp.chunk_ok(folder, 2)
    with pytest.raises(ValueError, match="corrupted"):
        mp_audit.read_cache(folder)
    again = _fetch(tmp_path, FakeMP())
    assert again["fetched"] == 1
    assert _records(folder) == before


def test_retries_with_backoff_then_clean_failure(tmp_path):
    sleeps = []
    info = mp_audit.fetch_mp(
        api_key=KEY, cache_dir=tmp_path, chunk_size=10, progress=False,
        client_factory=lambda key: FakeMP(fail=2), sleep=sleeps.append, backoff=0.5,
    )  # fmt: skip
    assert info["fetched"] == 8 and sleeps == [0.5, 1.0]
    # a permanent failure: MPFetchError, the key hidden, the finished chunks untouched
    folder = Path(info["folder"])
    (folder / "chunk-00007.sha256").unlink()
    failing = FakeMP(fail=100, error_text=f"401 for key {KEY}")
    with pytest.raises(mp_audit.MPFetchError) as err:
        _fetch(tmp_path, failing, retries=3)
    assert KEY not in str(err.value) and "***" in str(err.value)
    assert all(_mp.chunk_ok(folder, k) for k in range(7))


def test_key_sources_and_messages(tmp_path, no_key, monkeypatch, capsys):
    with pytest.raises(ValueError, match="MP_API_KEY") as err:
        mp_audit.resolve_api_key()
    assert "pmg config" in str(err.value)
    bad = "SECRETxyz123"
    with pytest.raises(ValueError, match="malformed") as err:
        mp_audit.resolve_api_key(bad)
    assert bad not in str(err.value)
    monkeypatch.setenv("MP_API_KEY", KEY)
    assert mp_audit.resolve_api_key() == KEY
    monkeypatch.setattr(_mp, "_pymatgen_key", lambda: "k" * 32)
    monkeypatch.delenv("MP_API_KEY")
    assert mp_audit.resolve_api_key() == "k" * 32
    monkeypatch.setattr(_mp, "_pymatgen_key", lambda: None)
    assert main(["fetch", "--api-key", bad, "--cache-dir", str(tmp_path), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "malformed" in captured.err and bad not in captured.err + captured.out


def test_key_never_written_and_mp_source_audits(tmp_path, no_key, monkeypatch):
    monkeypatch.setenv("MP_AUDIT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("MP_API_KEY", KEY)
    ds = mp_audit.load("mp", client_factory=lambda key: FakeMP(), chunk_size=25, progress=False)
    assert ds.meta["db_version"] == "2025.09.25" and len(ds) == 71
    for path in tmp_path.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            import gzip

            text = gzip.decompress(raw) if path.suffix == ".gz" else raw
            assert KEY.encode() not in text
    manifest = json.loads(next(tmp_path.rglob("manifest.json")).read_text())
    assert manifest["complete"] and manifest["db_version"] == "2025.09.25"
    # a complete cache is used offline: no client needed
    monkeypatch.delenv("MP_API_KEY")
    cached = mp_audit.load("mp")
    result = mp_audit.audit(cached, progress=False, r_cuts=[5.0])
    assert result.summary["n_geometry"] == 71
    assert result.summary["data_issues"]["theoretical_none"] == ["mp-c"]  # k = 5 is carbon
    assert set(result.summary["formation_energy"]["by_run_type"]) == {"GGA", "GGA+U"}
    assert result.recommendation["db_version"] == "2025.09.25"


def test_fetch_argument_errors(tmp_path):
    with pytest.raises(ValueError, match="chunk_size=0"):
        mp_audit.fetch_mp(api_key=KEY, cache_dir=tmp_path, chunk_size=0)
    with pytest.raises(ValueError, match="retries=-1"):
        mp_audit.fetch_mp(api_key=KEY, cache_dir=tmp_path, retries=-1)
