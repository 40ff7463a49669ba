"""Issue 12 (hardening): every numbered mp-audit case with the exact input from the issue."""

from __future__ import annotations

import gzip
import json
import os
import time

import mp_audit
import numpy as np
import pandas as pd
import periodic_conv
import pytest
from mp_audit import _cli, _mp
from mp_audit._cli import main
from mp_audit._pipeline import _check_jobs, _cores
from pymatgen.core import Lattice, Structure

THIN = [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 1e-7]]  # item 1: volume 2.5e-6 Å^3


def _skewed(eps: float) -> list[list[float]]:
    return [[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, eps]]  # item 2: near-coplanar


def _nacl() -> Structure:
    return Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0] * 3, [0.5] * 3]
    )


def _csv(path, rows: dict[str, Structure]) -> str:
    pd.DataFrame(
        {"material_id": list(rows), "structure": [json.dumps(s.as_dict()) for s in rows.values()]}
    ).to_csv(path, index=False)
    return str(path)


class _Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0


# ----------------------------------------------------------------- items 1-3: hang or crash


def test_item1_thin_cell_raises_fast_with_the_shared_guard():
    with _Timer() as t, pytest.raises(ValueError, match="thin") as err:
        mp_audit.geometry_metrics([[0, 0, 0]], THIN)
    assert t.seconds < 5
    # the message is the shared guard's, word for word
    with pytest.raises(ValueError) as ref:
        periodic_conv.check_cell(THIN, max(mp_audit.DEFAULT_R_CUTS), n_atoms=1)
    assert str(err.value) == str(ref.value)


def test_item1_and_2_recommend_reports_the_bad_row_and_goes_on(tmp_path, capsys):
    thin = Structure(Lattice(THIN), ["Na"], [[0, 0, 0]])
    skew = Structure(Lattice(_skewed(1e-3)), ["Na"], [[0, 0, 0]])
    path = _csv(tmp_path / "x.csv", {"mp-ok": _nacl(), "mp-thin": thin, "mp-skew": skew})
    with _Timer() as t:
        assert main(["recommend", path, "--no-progress"]) == 0
    assert t.seconds < 5
    assert json.loads(capsys.readouterr().out)["n_structures"] == 2
    with _Timer() as t:
        result = mp_audit.audit(path, progress=False)
    assert t.seconds < 5
    failures = result.summary["data_issues"]["parse_failures"]
    assert [f["material_id"] for f in failures] == ["mp-thin"]
    assert "geometry failed" in failures[0]["error"] and "max_edges" in failures[0]["error"]
    assert result.summary["n_geometry"] == 2


@pytest.mark.parametrize("eps", [1e-2, 1e-3, 1e-4])
def test_item2_near_coplanar_cell_gives_the_right_answer_fast(eps):
    with _Timer() as t:
        m = mp_audit.geometry_metrics([[0, 0, 0]], _skewed(eps), r_cuts=[5.0])
    assert t.seconds < 5
    # c - a - b = (0, 0, eps) is the shortest lattice vector: the atom's nearest image
    assert m["nn_min"] == pytest.approx(eps, rel=1e-9)
    assert m["nn_max"] == pytest.approx(eps, rel=1e-9)
    assert m["volume"] == pytest.approx(25 * eps)
    # an atom this close to its own image is an overlap (item 7)
    assert m["overlapping_atoms"] == "0-0"


def test_item3_r_cut_1e4_one_bound_one_message(capsys):
    with pytest.raises(ValueError) as ours:
        mp_audit.geometry_metrics([[0, 0, 0]], np.eye(3) * 4, r_cuts=[1e4])
    with pytest.raises(ValueError) as theirs:
        periodic_conv.check_r_cut(1e4, "r_cuts")
    assert str(ours.value) == str(theirs.value)
    assert f"{periodic_conv.MAX_R_CUT:g}" in str(ours.value)
    with _Timer() as t:
        assert main(["recommend", "builtin:dcdft", "--r-cut", "1e4", "--no-progress"]) == 2
    assert t.seconds < 5
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--r-cut" in err and "10000" in err


# ----------------------------------------------------------------- item 5: --jobs


def test_item5_jobs_capped_at_the_work_and_the_cores():
    assert _check_jobs(64, 3) == min(3, _cores())
    assert _check_jobs(64) == _cores()
    assert _check_jobs(0, 1000) == _cores()
    assert _check_jobs(1, 0) == 1
    ds = mp_audit.load("builtin:dcdft", limit=3)
    serial = mp_audit.map_entries(ds, jobs=1, progress=False)
    many = mp_audit.map_entries(ds, jobs=64, progress=False)
    pd.testing.assert_frame_equal(serial, many)


# ----------------------------------------------------------------- item 7: overlapping atoms


def test_item7_overlapping_atoms_are_a_data_issue():
    lattice = Lattice.cubic(5.0)
    dup = Structure(lattice, ["Na", "Na", "Cl"], [[0, 0, 0], [0, 0, 0], [0.5, 0.5, 0.5]])
    ds = mp_audit.from_entries("t", [mp_audit.Entry("mp-dup", dup), mp_audit.Entry("ok", _nacl())])
    issues = mp_audit.audit(ds, progress=False).summary["data_issues"]
    assert issues["overlapping_atoms"] == [{"material_id": "mp-dup", "atoms": "0-1"}]


# ----------------------------------------------------------------- item 9: bad --r-cut


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "1e-300"])
def test_item9_bad_r_cut_is_one_error_up_front(bad, capsys):
    with _Timer() as t:
        assert main(["audit", "builtin:prototypes", "--r-cut", bad, "--no-progress"]) == 2
    assert t.seconds < 5  # nothing was loaded or audited
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("mp-audit: error: --r-cut must be a finite number in [")


def test_item9_empty_r_cut_list():
    with pytest.raises(SystemExit) as exit_:
        main(["audit", "builtin:dcdft", "--r-cut"])  # argparse: expected at least one
    assert exit_.value.code == 2
    with pytest.raises(ValueError, match=r"r_cuts=\[\]"):
        mp_audit.audit("builtin:dcdft", r_cuts=[], progress=False)
    with pytest.raises(ValueError, match="r_cuts must be a finite number"):
        mp_audit.map_entries(mp_audit.load("builtin:dcdft"), r_cuts=[0.0])


# ----------------------------------------------------------------- item 10: loaders


def test_item10_case_insensitive_extensions(tmp_path):
    s = _nacl()
    s.to(filename=str(tmp_path / "a.cif"))
    (tmp_path / "b.CIF").write_text((tmp_path / "a.cif").read_text())
    assert [e.material_id for e in mp_audit.load(tmp_path)] == ["a", "b"]
    assert len(mp_audit.load(tmp_path / "b.CIF")) == 1
    _csv(tmp_path / "t.CSV", {"x": s})
    assert [e.material_id for e in mp_audit.load(tmp_path / "t.CSV")] == ["x"]


def test_item10_empty_source_is_an_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the current folder would load if "" meant "."
    _nacl().to(filename="a.cif")
    with pytest.raises(ValueError, match="source='' is empty"):
        mp_audit.load("")
    with pytest.raises(ValueError, match="source=\\[\\]"):
        mp_audit.load([])


def test_item10_unknown_keyword_raises(tmp_path):
    path = _csv(tmp_path / "x.csv", {"x": _nacl()})
    with pytest.raises(TypeError, match="apikey"):
        mp_audit.load(path, apikey="x")
    with pytest.raises(TypeError, match="apikey"):
        mp_audit.audit(path, apikey="x", progress=False)
    with pytest.raises(TypeError, match=r"load options \['limit'\] with a Dataset"):
        mp_audit.audit(mp_audit.load(path), limit=1, progress=False)


# ----------------------------------------------------------------- item 15: messages


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.csv", b"", "cannot read it as CSV"),
        ("binary.csv", bytes(range(256)) * 4, "cannot read it as CSV"),
        ("fake.csv.gz", b"material_id,cif\nmp-1,x\n", "cannot read it as gzip-compressed CSV"),
        ("object.json", b'{"a":1}', "a JSON object must be"),
        ("list.json", b"[1,2,3]", "a JSON list must hold records"),
        ("truncated.json", b'[{"material_id": "mp-1", "structure": {"lat', "cannot read it"),
    ],
)
def test_item15_unreadable_files_are_named(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=expected) as err:
        mp_audit.load(path)
    assert str(path) in str(err.value)


def test_item15_truncated_gzip_is_named(tmp_path):
    blob = gzip.compress(b"material_id,cif\n" + b"mp-1,x\n" * 1000)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="cannot read it as gzip-compressed CSV") as err:
        mp_audit.load(path)
    assert str(path) in str(err.value)


def _cache(tmp_path) -> str:
    folder = tmp_path / "mp-2025.09.25"
    folder.mkdir()
    return str(folder)


def test_item15_corrupt_or_incomplete_manifest_is_named(tmp_path):
    folder = _cache(tmp_path)
    manifest = os.path.join(folder, "manifest.json")
    with open(manifest, "w") as fh:
        fh.write('{"db_version": "2025.09.25", "n_mat')
    with pytest.raises(ValueError, match="is corrupt") as err:
        mp_audit.read_cache(folder)
    assert manifest in str(err.value) and "mp-audit fetch" in str(err.value)
    with open(manifest, "w") as fh:
        json.dump({"db_version": "2025.09.25", "n_materials": 3, "complete": True}, fh)
    with pytest.raises(ValueError, match=r"lacks \['chunks'\]") as err:
        mp_audit.read_cache(folder)
    assert manifest in str(err.value)
    # the mp source reads the same manifest: same message, not a KeyError
    with pytest.raises(ValueError, match=r"lacks \['chunks'\]"):
        mp_audit.load("mp", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"no manifest\.json"):
        mp_audit.read_cache(tmp_path)


def test_item15_limit_minus_one(capsys):
    assert main(["audit", "builtin:dcdft", "--limit", "-1", "--no-progress"]) == 2
    assert "--limit -1: expected a number of entries >= 1" in capsys.readouterr().err
    with pytest.raises(ValueError, match="limit=-1: expected a number of entries"):
        mp_audit.load("builtin:dcdft", limit=-1)


def test_item15_positions_messages():
    with pytest.raises(ValueError, match=r"positions has shape \(2, 2\): expected \[N, 3\]"):
        mp_audit.geometry_metrics([[0, 0], [1, 1]], np.eye(3) * 4)
    with pytest.raises(ValueError, match=r"positions of atom\(s\) \[1\] are not finite"):
        mp_audit.geometry_metrics([[0, 0, 0], [np.nan, 0, 0]], np.eye(3) * 4)


def test_item15_parse_payload_hello_world():
    with pytest.raises(ValueError, match="payload starting 'hello' is not a structure") as err:
        mp_audit.parse_payload("hello\nworld")
    assert "expected a CIF, a POSCAR" in str(err.value)


def test_item15_report_with_r_cut_3_4(tmp_path, capsys):
    out = tmp_path / "rep"
    args = ["report", "builtin:dcdft", "--limit", "12", "--r-cut", "3", "4", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())["summary"]
    assert summary["graph_r_cut"] == 4.0  # the cut-off closest to the thesis's 5 Å
    assert (out / "graph_diameter.png").stat().st_size > 0
    assert "diameter at 4 Å" in (out / "report.md").read_text()


def test_item15_failed_report_leaves_no_partial_out_dir(tmp_path):
    result = mp_audit.audit("builtin:dcdft", limit=5, r_cuts=[3.0, 4.0], progress=False)
    result.summary["graph_r_cut"] = 5.0  # not audited: the figures cannot be drawn
    out = tmp_path / "rep"
    with pytest.raises(KeyError):
        mp_audit.write_report(result, out)
    assert list(tmp_path.iterdir()) == []  # neither the out dir nor a temporary one


def test_cli_input_errors_are_one_line_and_bugs_are_not_caught():
    # TypeError / RuntimeError raised by mp-audit's own code are bugs: their traceback shows
    assert not any(issubclass(TypeError, e) or issubclass(RuntimeError, e) for e in
                   _cli.INPUT_ERRORS if e not in (_mp.MPFetchError,))  # fmt: skip
    assert issubclass(_mp.MPFetchError, RuntimeError) and _mp.MPFetchError in _cli.INPUT_ERRORS


# ----------------------------------------------------------------- issue 11: columns


def test_loaders_keep_requested_columns(tmp_path):
    s = json.dumps(_nacl().as_dict())
    path = tmp_path / "d.csv"
    pd.DataFrame(
        {
            "material_id": ["mp-1", "mp-2"],
            "structure": [s, s],
            "band_gap": [1.0, 2.0],
            "e_total": ["[[1.5, 0, 0], [0, 1.5, 0], [0, 0, 2.0]]", None],
            "note": ["a", "b"],
        }
    ).to_csv(path, index=False)
    first = next(iter(mp_audit.load(path, columns=["e_total", "band_gap"])))
    assert first.props["e_total"] == [[1.5, 0, 0], [0, 1.5, 0], [0, 0, 2.0]]
    assert first.props["band_gap"] == 1.0 and "note" not in first.props
    assert next(iter(mp_audit.load(path))).props.keys() == {"band_gap"}
    everything = list(mp_audit.load(path, columns="all"))
    assert everything[0].props["note"] == "a" and everything[1].props["e_total"] is None
    with pytest.raises(ValueError, match=r"\['piezoelectric_tensor'\] not in the file") as err:
        mp_audit.load(path, columns=["piezoelectric_tensor"])
    assert "e_total" in str(err.value) and str(path) in str(err.value)  # lists what is there
    assert next(iter(mp_audit.load("builtin:dcdft", columns=["K_wien2k"]))).props["K_wien2k"]
    with pytest.raises(ValueError, match="not available"):
        mp_audit.load("builtin:dcdft", columns=["e_total"])
    with pytest.raises(TypeError, match="columns="):
        mp_audit.load(path, columns="e_total")


@pytest.mark.shared_data
def test_real_dielectric_and_piezo_columns(shared_data):
    diel = mp_audit.load(
        shared_data / "mp_other/matminer_dielectric_constant.csv.gz", columns=["e_total"]
    )
    e = next(iter(diel)).props["e_total"]
    assert np.asarray(e, dtype=float).shape == (3, 3)
    piezo = mp_audit.load(
        shared_data / "tensors/matminer_piezoelectric_tensor.csv.gz",
        columns=["piezoelectric_tensor"],
    )
    entries = list(piezo)
    assert len(entries) == 941
    assert np.asarray(entries[0].props["piezoelectric_tensor"], dtype=float).shape == (3, 6)


def test_layers_and_sources_of_the_wrong_kind_are_named():
    rec = mp_audit.audit("builtin:dcdft", layers=2, limit=3, progress=False).recommendation
    assert rec["coverage_table"]["layers"] == [2]  # one int is a list of one
    for bad in ([1.5], [0], [], "12", True):
        with pytest.raises(ValueError, match=r"layers=.*expected layer counts, ints >= 1"):
            mp_audit.audit("builtin:dcdft", layers=bad, limit=3, progress=False)
    one = Structure(Lattice.cubic(3.6), ["Cu"], [[0, 0, 0]])
    with pytest.raises(TypeError, match=r"source of type Structure: .*mp_audit.from_structures"):
        mp_audit.load(one)
    assert len(mp_audit.from_structures([one])) == 1
