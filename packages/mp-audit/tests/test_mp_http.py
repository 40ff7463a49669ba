"""The real ``mp_api`` client against a local HTTP stub of the Materials Project REST API.

No network: the stub listens on 127.0.0.1 in a thread. ``fetch_mp`` builds a real
``mp_api.client.MPRester`` on the stub's endpoint, so the request, pagination, error and
retry/back-off paths run for real: a download is cut off by the server (HTTP 503 on every
request), fails cleanly after its retries, and then resumes where it stopped through one
transient failure.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import mp_audit
import pytest
from ase.collections import dcdft
from mp_audit import _mp
from pymatgen.io.ase import AseAtomsAdaptor

pytest.importorskip("mp_api.client", reason="the 'mp' extra (mp-api) is part of the test extra")

KEY = "Q" * 20 + "7" * 12
VERSION = "2025.09.25"


def _database() -> dict[str, dict]:
    db = {}
    for k, sym in enumerate(dcdft.names[:23]):
        # numeric ids as MP serves them (mp-api rewrites alphabetic ones such as "mp-ar")
        mid = f"mvc-{k}" if k % 5 == 4 else f"mp-{100 + 7 * k}"
        db[mid] = {
            "material_id": mid,
            "structure": AseAtomsAdaptor.get_structure(dcdft[sym]).as_dict(),
            "band_gap": 0.0 if k % 3 else 0.2 * k,
            "formation_energy_per_atom": -0.05 * k,
            "energy_above_hull": 0.0,
            "theoretical": bool(k % 4),
            "deprecated": False,
            "nsites": len(dcdft[sym]),
            "elements": [sym],
        }
    return db


class _Handler(BaseHTTPRequestHandler):
    server: _Stub

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path.rstrip("/").endswith("heartbeat"):
            beat = {"db_version": VERSION, "version": "0.90.0", "access_controlled_batch_ids": []}
            return self._send(200, beat)
        if self.headers.get("x-api-key") != KEY:
            return self._send(401, {"detail": "invalid API key"})
        with self.server.lock:
            self.server.requests.append((url.path, query))
            chunk_request = "material_ids" in query and url.path.endswith("/summary/")
            if chunk_request and self.server.budget is not None:
                if self.server.budget == 0:
                    return self._send(503, {"detail": "service unavailable (stub cut-off)"})
                self.server.budget -= 1
            if self.server.transient:
                self.server.transient -= 1
                return self._send(503, {"detail": "service unavailable (transient)"})
        db = self.server.db
        ids = sorted(db)
        if "material_ids" in query:
            ids = [m for m in query["material_ids"].split(",") if m in db]
        fields = query.get("_fields", "material_id").split(",")
        if url.path.endswith("/thermo/"):  # two thermo documents per material
            docs = []
            for k, m in enumerate(ids):
                docs.append({"material_id": m, "thermo_type": "R2SCAN", "energy_type": "R2SCAN"})
                energy = "GGA+U" if k % 2 else "GGA"
                docs.append({"material_id": m, "thermo_type": "GGA_GGA+U", "energy_type": energy})
        elif url.path.endswith("/summary/"):
            docs = [{f: db[m].get(f) for f in fields} for m in ids]
        else:
            return self._send(404, {"detail": f"no route {url.path}"})
        skip, limit = int(query.get("_skip", 0)), int(query.get("_limit", 1000))
        self._send(200, {"data": docs[skip : skip + limit], "meta": {"total_doc": len(docs)}})


class _Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.db = _database()
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict]] = []
        self.budget: int | None = None  # chunk requests served before a permanent cut-off
        self.transient = 0  # next requests answered 503 once each

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def chunk_requests(self) -> int:
        return sum(1 for p, q in self.requests if p.endswith("/summary/") and "material_ids" in q)


def _stub_server() -> _Stub:
    """A stub on a free port whose number holds neither "414" nor "422": mp-api looks for those
    codes anywhere in an error message (the URL, port included) and, finding one, splits the
    query and retries it itself, so a 503 on such a port never reaches fetch_mp's retries."""
    while True:
        server = _Stub()
        if not any(code in str(server.server_address[1]) for code in ("414", "422")):
            return server
        server.server_close()


@pytest.fixture
def stub():
    server = _stub_server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _fetch(cache: Path, stub: _Stub, sleeps: list[float], **kw):
    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    return mp_audit.fetch_mp(
        api_key=KEY,
        cache_dir=cache,
        chunk_size=5,
        progress=False,
        endpoint=stub.endpoint,
        backoff=0.01,
        sleep=sleep,
        **kw,
    )


def _quiesce(stub: _Stub, quiet: float = 0.3, limit: float = 10.0) -> None:
    """Wait until no request has arrived for ``quiet`` seconds: requests of a failed download
    still in flight on the client's worker threads must not consume the next scenario's
    one-off 503 or count among its requests."""
    end = time.monotonic() + limit
    seen = -1
    while time.monotonic() < end:
        with stub.lock:
            n = len(stub.requests)
        if n == seen:
            return
        seen = n
        time.sleep(quiet)


def _records(folder):
    return [(e.material_id, e.props, e.payload) for e in mp_audit.read_cache(folder)]


def test_real_client_chunked_download_cut_off_and_resumed(tmp_path, stub):
    sleeps: list[float] = []
    # reference: one uninterrupted download
    full = _fetch(tmp_path / "a", stub, sleeps)
    assert full == {
        "db_version": VERSION,
        "folder": str(tmp_path / "a" / f"mp-{VERSION}"),
        "n_materials": 23,
        "n_chunks": 5,
        "fetched": 5,
    }
    assert sleeps == []
    listing = [q for p, q in stub.requests if "material_ids" not in q and p.endswith("summary/")]
    assert listing and all(q["_fields"] == "material_id" for q in listing)  # REST, not S3

    # the server goes down after two chunks: three attempts, back-off 0.01 then 0.02 s
    stub.budget, stub.requests[:] = 2, []
    with pytest.raises(mp_audit.MPFetchError, match="summary search failed after 3") as err:
        _fetch(tmp_path / "b", stub, sleeps, retries=2)
    assert "503" in str(err.value) and KEY not in str(err.value)
    assert sleeps == [0.01, 0.02]
    folder_b = tmp_path / "b" / f"mp-{VERSION}"
    assert [_mp.chunk_ok(folder_b, k) for k in range(5)] == [True, True, False, False, False]
    with pytest.raises(ValueError, match="run `mp-audit fetch`"):
        mp_audit.read_cache(folder_b)

    # back up, with one transient 503 on the way: only the three missing chunks are fetched
    _quiesce(stub)
    with stub.lock:
        stub.budget, stub.transient, stub.requests[:] = None, 1, []
    sleeps.clear()
    resumed = _fetch(tmp_path / "b", stub, sleeps)
    assert resumed["fetched"] == 3 and sleeps == [0.01]
    assert stub.chunk_requests() == 4  # 3 chunks + the one retried request
    assert _records(folder_b) == _records(full["folder"])  # nothing lost or duplicated
    ids = [r[0] for r in _records(folder_b)]
    assert ids == sorted(stub.db) and len(set(ids)) == 23

    # the cache audits offline, run types from the thermo endpoint
    result = mp_audit.audit(mp_audit.read_cache(folder_b), r_cuts=[5.0], progress=False)
    assert result.summary["n_geometry"] == 23
    assert set(result.summary["formation_energy"]["by_run_type"]) == {"GGA", "GGA+U"}


def test_real_client_rejected_key_fails_cleanly(tmp_path, stub):
    other = "Z" * 32
    with pytest.raises(mp_audit.MPFetchError, match="401") as err:
        mp_audit.fetch_mp(
            api_key=other, cache_dir=tmp_path, endpoint=stub.endpoint, progress=False,
            retries=1, backoff=0.0,
        )  # fmt: skip
    assert other not in str(err.value)
