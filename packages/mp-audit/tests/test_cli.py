"""The CLI end to end on builtin data (and on an MP-20 split when the shared data is there)."""

from __future__ import annotations

import json

import pytest
from mp_audit._cli import main

REC_KEYS = {
    "schema",
    "source",
    "n_structures",
    "target_coverage",
    "r_cut",
    "layers",
    "coverage",
    "coverage_table",
    "band_gap",
    "formation_energy",
}


def test_report_on_prototypes(tmp_path, capsys):
    out = tmp_path / "rep"
    assert (
        main(["report", "builtin:prototypes", "--out", str(out), "--jobs", "2", "--no-progress"])
        == 0
    )
    written = json.loads(capsys.readouterr().out)
    for name in ("summary.json", "report.html", "report.md", "recommendation.json"):
        assert (out / name).stat().st_size > 0
    pngs = sorted(out.glob("*.png"))
    expected = {"nearest_neighbor", "graph_diameter", "inscribed_radius", "enclosing_radius",
                "coverage", "nsites", "elements"}  # fmt: skip
    assert (
        {p.stem for p in pngs}
        == expected
        == set(written) - {"summary", "recommendation", "markdown", "html"}
    )
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
    payload = json.loads((out / "summary.json").read_text())
    assert set(payload) == {"summary", "recommendation", "thesis"}
    summary = payload["summary"]
    assert summary["n_entries"] == 288 and summary["n_geometry"] == 288
    rec = payload["recommendation"]
    assert REC_KEYS <= set(rec)
    assert rec["coverage_table"]["r_cut"] == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    assert len(rec["coverage_table"]["fraction"]) == 6
    assert all(len(row) == 8 for row in rec["coverage_table"]["fraction"])
    assert rec["coverage"] >= 0.98
    page = (out / "report.html").read_text()
    # self-contained: every figure inlined, no external file referenced
    assert page.count("data:image/png;base64,") == len(pngs)
    assert 'src="' not in page.replace('src="data:', "")
    md = (out / "report.md").read_text()
    assert all(f"]({p.name})" in md for p in pngs)


def test_recommend_and_audit_print_json(tmp_path, capsys):
    assert main(["recommend", "builtin:dcdft", "--no-progress", "--target", "0.9"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["target_coverage"] == 0.9 and REC_KEYS <= set(rec)
    target = tmp_path / "s.json"
    assert (
        main(["audit", "builtin:dcdft", "--limit", "5", "--out", str(target), "--no-progress"]) == 0
    )
    assert json.loads(target.read_text())["n_entries"] == 5


def test_an_audit_where_nothing_parses_lists_the_failures(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("material_id,cif,band_gap\nmp-1,garbage,1.0\nmp-2,junk,0\n")
    target = tmp_path / "new" / "folder" / "s.json"  # the folder is made, the result kept
    assert main(["audit", str(bad), "--out", str(target), "--no-progress"]) == 0
    summary = json.loads(target.read_text())
    assert summary["n_parsed"] == 0
    assert [f["material_id"] for f in summary["data_issues"]["parse_failures"]] == ["mp-1", "mp-2"]
    assert main(["audit", str(bad), "--out", str(tmp_path), "--no-progress"]) == 2
    assert "is a folder" in capsys.readouterr().err
    # nothing measured: no recommendation of nulls, no empty report; the failures are named
    for command in (["recommend"], ["report", "--out", str(tmp_path / "rep")]):
        assert main([*command[:1], str(bad), *command[1:], "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "no structure of its 2 entries could be measured (0 parsed, 2 failed" in err
        assert "mp-1: ValueError" in err and "mp-2: ValueError" in err
    assert not (tmp_path / "rep").exists()
    # a single structure file is the source, not its folder
    one = tmp_path / "garbage.cif"
    one.write_text("not a cif")
    assert main(["audit", str(one), "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["source"] == str(one)


def test_cli_errors(capsys):
    assert main(["audit", "builtin:nope", "--no-progress"]) == 2
    assert "builtin:nope" in capsys.readouterr().err
    assert main(["recommend", "builtin:dcdft", "--target", "2", "--no-progress"]) == 2
    assert "--target 2.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "builtin:dcdft"])  # --out is required


@pytest.mark.shared_data
def test_report_on_an_mp20_split(shared_data, tmp_path):
    out = tmp_path / "mp20"
    assert (
        main(["report", str(shared_data / "mp20/val.csv"), "--out", str(out), "--no-progress"]) == 0
    )
    names = {p.stem for p in out.glob("*.png")}
    assert {
        "band_gap",
        "sqrt_band_gap",
        "formation_energy",
        "formation_energy_by_run_type",
    } <= names
    rec = json.loads((out / "recommendation.json").read_text())
    assert 0 < rec["band_gap"]["p"] < 1 and rec["band_gap"]["mu"] > 0


def test_audit_out_never_replaces_its_source_or_an_existing_file(tmp_path, capsys):
    """`audit SRC --out SRC` wrote the summary over the data it audited (rc 0); --out into a
    source folder, or over any existing file without --overwrite, is refused before the
    audit runs."""
    src = tmp_path / "d.csv"
    cif = "data_x\n_cell_length_a 3\n"  # the file's bytes matter, not whether it parses
    src.write_text(f'material_id,cif\nmp-1,"{cif}"\n')
    before = src.read_bytes()
    assert main(["audit", str(src), "--out", str(src), "--no-progress"]) == 2
    assert "would replace the source" in capsys.readouterr().err
    assert src.read_bytes() == before
    folder = tmp_path / "cifs"
    folder.mkdir()
    assert main(["audit", str(folder), "--out", str(folder / "s.json"), "--no-progress"]) == 2
    assert "would replace the source" in capsys.readouterr().err
    target = tmp_path / "s.json"
    target.write_text("keep")
    assert main(["audit", "builtin:dcdft", "--limit", "3", "--out", str(target),
                 "--no-progress"]) == 2  # fmt: skip
    assert "give --overwrite" in capsys.readouterr().err and target.read_text() == "keep"
    assert main(["audit", "builtin:dcdft", "--limit", "3", "--out", str(target),
                 "--no-progress", "--overwrite"]) == 0  # fmt: skip
    assert json.loads(target.read_text())["n_entries"] == 3


def test_nothing_to_audit_is_an_error_not_a_recommendation_of_nulls(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("material_id,cif,band_gap\n")
    assert main(["recommend", str(empty), "--no-progress"]) == 2
    assert "no entries to audit" in capsys.readouterr().err
    assert main(["recommend", "builtin:dcdft", "--limit", "0", "--no-progress"]) == 2
    assert "--limit 0: expected a number of entries >= 1" in capsys.readouterr().err


def test_a_report_over_an_earlier_one_keeps_none_of_its_figures(tmp_path):
    """Into a folder holding the report of a source with band gaps, the report of one
    without them leaves no band-gap figure behind (they stayed, beside the new report)."""
    gaps = tmp_path / "gaps.json"
    from mp_audit import load

    entries = [{"material_id": e.material_id, "structure": e.payload.as_dict(),
                "band_gap": 0.5 * k} for k, e in enumerate(load("builtin:prototypes"))]  # fmt: skip
    gaps.write_text(json.dumps(entries))
    out = tmp_path / "rep"
    assert main(["report", str(gaps), "--out", str(out), "--no-progress"]) == 0
    assert (out / "band_gap.png").is_file()
    assert main(["report", "builtin:prototypes", "--out", str(out), "--no-progress"]) == 0
    assert not (out / "band_gap.png").exists() and (out / "report.md").is_file()
    assert all(f"]({p.name})" in (out / "report.md").read_text() for p in out.glob("*.png"))


def test_a_report_never_goes_into_its_source_folder(tmp_path, capsys):
    """`report DIR --out DIR` wrote summary.json and recommendation.json beside the tables,
    and the folder no longer read as a source; refused now, before the audit."""
    folder = tmp_path / "tables"
    folder.mkdir()
    (folder / "a.csv").write_text("material_id,cif\nmp-1,x\n")
    for out in (folder, folder / "rep"):
        assert main(["report", str(folder), "--out", str(out), "--no-progress"]) == 2
        assert "inside the source folder" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["a.csv"]
