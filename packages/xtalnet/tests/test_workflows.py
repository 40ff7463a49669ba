"""Screening whole data sets (xtalnet predict --data) and fine-tuning (--init)."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import mp_audit
import numpy as np
import pytest
import torch
import xtalnet
from ase.build import bulk
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from xtalnet._cli import main

TINY = {"dtype": "float64", "r_cut": 5.0, "embed_dim": 8, "num_basis": 4,
        "hidden_irreps": "8x0e+2x1o+2x2e", "l_filter_max": 2, "radial_hidden": 8}  # fmt: skip
METALS = [("Cu", 3.6), ("Al", 4.05), ("Ni", 3.52), ("Ag", 4.09), ("Pd", 3.89), ("Pt", 3.92),
          ("Au", 4.08), ("Pb", 4.95), ("Ca", 5.58), ("Sr", 6.08)]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A one-layer run on 10 metals (scalar y) through the CLI, defaults otherwise."""
    root = tmp_path_factory.mktemp("wf")
    rows = [{"material_id": f"m{k}", "y": 1.0 + 0.2 * k,
             "cif": AseAtomsAdaptor.get_structure(bulk(s, "fcc", a=a)).to(fmt="cif")}
            for k, (s, a) in enumerate(METALS)]  # fmt: skip
    _write(root / "d.csv", rows)
    (root / "cfg.json").write_text(json.dumps(TINY))
    assert main(["train", "--data", str(root / "d.csv"), "--target", "y", "--out",
                 str(root / "run"), "--config", str(root / "cfg.json"), "--max-steps", "4",
                 "--quiet", "--no-progress"]) == 0  # fmt: skip
    return root


def _write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


# ------------------------------------------------------------------------------ screening
def test_screening_a_cif_only_csv_keeps_order_and_gives_every_reason(run, tmp_path):
    flat = Structure(Lattice([[4, 0, 0], [0, 4, 0], [0, 0, 0.05]]), ["Na", "Cl"],
                     [[0, 0, 0], [0.5, 0.5, 0.5]])  # fmt: skip
    lonely = Structure(Lattice.cubic(9.0), ["K", "Br"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    good = [AseAtomsAdaptor.get_structure(bulk(s, "fcc", a=a)) for s, a in METALS[:3]]
    cifs = [good[0].to(fmt="cif"), "data_x\n_not a structure\n", flat.to(fmt="poscar"),
            good[1].to(fmt="cif"), lonely.to(fmt="cif"), good[2].to(fmt="cif")]  # fmt: skip
    src = _write(tmp_path / "screen.csv", [{"cif": c} for c in cifs])
    out = tmp_path / "pred.csv"
    assert main(["predict", "--checkpoint", str(run / "run"), "--data", str(src), "--out",
                 str(out), "--no-progress", "--quiet"]) == 0  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and not (tmp_path / "pred.csv.partial").exists()
    status = [r["status"] for r in rows]
    assert [s == "ok" or not s.startswith("not") for s in status] == [1, 0, 0, 1, 0, 1]
    assert "not a structure" in status[1] or "parse" in status[1]
    assert "flat" in status[2] and "no neighbour within r_cut" in status[4]
    assert not any("structures[" in s for s in status)  # a row is its own structure
    parsed = [Structure.from_str(cifs[k], fmt="cif") for k in (0, 3, 5)]  # what the CSV holds
    expected = xtalnet.load(run / "run").predict(parsed)["y"]
    got = [float(rows[k]["y"]) for k in (0, 3, 5)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert rows[1]["y"] == "" and rows[0]["formula"] == "Cu"
    assert "y_true" not in rows[0]  # the source has no y column: no empty y_true column


def test_screening_pymatgen_json_a_cif_folder_and_target_columns(run, tmp_path):
    structs = [AseAtomsAdaptor.get_structure(bulk(s, "fcc", a=a)) for s, a in METALS[:4]]
    (tmp_path / "s.json").write_text(json.dumps(
        [{"material_id": f"j{k}", "structure": s.as_dict(), "y": 2.0 + k}
         for k, s in enumerate(structs)]))  # fmt: skip
    out = tmp_path / "a.csv"
    assert main(["predict", "--checkpoint", str(run / "run"), "--data", str(tmp_path / "s.json"),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["j0", "j1", "j2", "j3"]
    assert [float(r["y_true"]) for r in rows] == [2.0, 3.0, 4.0, 5.0]
    folder = tmp_path / "cifs"
    folder.mkdir()
    for k, s in enumerate(structs):
        s.to(filename=str(folder / f"c{k}.cif"))
    assert main(["predict", "--checkpoint", str(run / "run"), "--data", str(folder), "--out",
                 str(tmp_path / "b.csv"), "--quiet"]) == 0  # fmt: skip
    assert len(list(csv.DictReader((tmp_path / "b.csv").open()))) == 4


def test_screening_a_poscar_folder_names_the_files_it_leaves_out(run, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    structs = [AseAtomsAdaptor.get_structure(bulk(s, "fcc", a=a)) for s, a in METALS[:3]]
    structs[0].to(filename=str(folder / "a.cif"))
    structs[1].to(filename=str(folder / "b_POSCAR"), fmt="poscar")
    structs[2].to(filename=str(folder / "c.vasp"), fmt="poscar")
    with gzip.open(folder / "d.cif.gz", "wt") as f:
        f.write(structs[0].to(fmt="cif"))
    (folder / "notes.txt").write_text("not a structure")
    (folder / "more.csv").write_text("material_id,cif\n")
    (folder / "older").mkdir()
    structs[1].to(filename=str(folder / "older" / "e.cif"))
    out = tmp_path / "p.csv"
    assert main(["predict", "--checkpoint", str(run / "run"), "--data", str(folder), "--out",
                 str(out), "--no-progress"]) == 0  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["a", "b_POSCAR", "c", "d"]
    expected = xtalnet.load(run / "run").predict(structs + structs[:1])["y"]
    # (the CIF holds fewer digits than the structure: 1e-9 apart)
    np.testing.assert_allclose([float(r["y"]) for r in rows], expected, rtol=1e-8)
    said = capsys.readouterr().out
    assert "1 file(s) left out, not named as structure files or tables: notes.txt" in said
    assert "1 table(s) left out: a folder with structure files reads only those" in said
    assert (
        "1 sub-folder(s) not read (a folder's own files are read, not those of its "
        "sub-folders): older/" in said
    )
    assert main(["predict", "--checkpoint", str(run / "run"), str(folder)]) == 0  # files given
    shown = capsys.readouterr()
    assert "b_POSCAR" in shown.out and "c.vasp" in shown.out and "notes.txt" in shown.err
    assert "d.cif.gz" in shown.out and "older/" in shown.err


def test_screening_never_overwrites_the_model_the_source_or_a_file_unasked(run, tmp_path, capsys):
    src = _write(tmp_path / "in.csv", [{"cif": AseAtomsAdaptor.get_structure(
        bulk("Cu", "fcc", a=3.6)).to(fmt="cif")}])  # fmt: skip
    model = (run / "run" / "best.pt").read_bytes()
    source = src.read_bytes()
    cifs = tmp_path / "cifs"
    cifs.mkdir()
    refused = [(src, run / "run" / "best.pt", ".pt"), (src, src, "--data source"),
               (src, run / "run" / "test_predictions.csv", "a file of the run"),
               (src, tmp_path / "no" / "p.csv", "does not exist"),
               (cifs, cifs / "p.csv", "inside the --data folder"),
               (src, tmp_path / "p.json", "written as CSV; name the file .csv")]  # fmt: skip
    for data, out, why in refused:  # --overwrite given: still refused
        assert main(["predict", "--checkpoint", str(run / "run"), "--data", str(data), "--out",
                     str(out), "--overwrite", "--quiet"]) == 2  # fmt: skip
        assert why in capsys.readouterr().err
    base = ["predict", "--checkpoint", str(run / "run"), "--data", str(src), "--quiet",
            "--no-progress", "--overwrite", "--out"]  # fmt: skip
    assert (run / "run" / "best.pt").read_bytes() == model and src.read_bytes() == source
    mine = tmp_path / "mine.csv"
    mine.write_text("my own notes\n")
    assert main([*base[:-2], "--out", str(mine)]) == 2  # an existing file, no --overwrite
    assert "--overwrite" in capsys.readouterr().err and mine.read_text() == "my own notes\n"
    assert main([*base, str(mine)]) == 0
    assert [r["status"] for r in csv.DictReader(mine.open())] == ["ok"]


def test_screening_needs_an_out_file(run, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(run / "run"), "--data", "builtin:dcdft"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(run / "run"), "--data", "builtin:dcdft",
                 "--out", str(tmp_path)]) == 2  # fmt: skip
    assert "is a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------ fine-tuning
def test_init_copies_the_trunk_and_freeze_keeps_it(run, tmp_path):
    init = torch.load(run / "run" / "best.pt", weights_only=True)
    shadow = init["ema"]["shadow"]
    out = tmp_path / "ft"
    xtalnet.train(str(run / "d.csv"), ["y"], out, options={"init": str(run / "run"),
                  "freeze_trunk": True, "max_steps": 3}, progress=False, quiet=True)  # fmt: skip
    tuned = torch.load(out / "best.pt", weights_only=True)["model"]
    trunk = [k for k in tuned if k.startswith(("embedding.", "layers.", "composition."))]
    assert trunk
    for k in trunk:  # frozen: still the EMA weights of the run it started from
        assert torch.equal(tuned[k], shadow[k]), k
    assert any(not torch.equal(tuned[k], shadow[k]) for k in tuned if k.startswith("readouts."))
    log = (out / "train.log").read_text()
    assert "trunk modules copied: ['embedding', 'layers.0', 'composition']" in log
    assert "--freeze-trunk" in log


def test_init_with_new_targets_keeps_what_fits_and_names_what_does_not(run, tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for k, (s, a) in enumerate(METALS):
        m = rng.normal(size=(6, 6))
        c = json.dumps((m @ m.T + 30 * np.eye(6)).tolist())
        cif = AseAtomsAdaptor.get_structure(bulk(s, "fcc", a=a)).to(fmt="cif")
        rows.append({"material_id": f"e{k}", "elastic_tensor": c, "cif": cif})
    src = _write(tmp_path / "el.csv", rows)
    out = tmp_path / "el"
    xtalnet.train(str(src), ["elastic_tensor"], out, options={"init": str(run / "run"),
                  "max_steps": 2}, progress=False, quiet=True)  # fmt: skip
    log = (out / "train.log").read_text()
    assert "'layers.0'" in log and "trained from scratch" in log and "'layers.1'" in log
    assert "(not in the checkpoint): ['layers.1']" in log  # the 1-layer trunk has none
    assert "the trunk's l_filter_max=2 is below the targets' l = 4" in log
    assert xtalnet.NetworkConfig.from_json(out / "config.json").num_layers == 2
    with pytest.raises(ValueError, match=r"r_cut: 5\.0 \(--init\) vs 4\.0 \(given\)"):
        xtalnet.train(str(src), ["elastic_tensor"], tmp_path / "x", config={"r_cut": 4.0},
                      options={"init": str(run / "run")}, quiet=True)  # fmt: skip
    torch.save({"weight": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not an xtalnet checkpoint"):
        xtalnet.train(str(src), ["elastic_tensor"], tmp_path / "y",
                      options={"init": str(tmp_path / "foreign.pt")}, quiet=True)  # fmt: skip
    with pytest.raises(ValueError, match="freeze_trunk needs init"):
        xtalnet.TrainOptions(freeze_trunk=True)
    assert mp_audit  # the data loader is the package's (no second parser here)


def test_the_cli_flags_of_fine_tuning_and_selection(run, tmp_path):
    out = tmp_path / "cli-ft"
    assert main(["train", "--data", str(run / "d.csv"), "--target", "y", "--out", str(out),
                 "--init", str(run / "run"), "--freeze-trunk", "--select", "mae",
                 "--max-steps", "2", "--quiet", "--no-progress"]) == 0  # fmt: skip
    options = json.loads((out / "options.json").read_text())
    assert options["init"] == str(run / "run") and options["freeze_trunk"] is True
    assert options["select"] == "mae" and options["provenance"]["select"] == "given"
    stopped = next(x for x in (out / "train.log").read_text().splitlines()
                   if x.startswith("stopped:"))  # fmt: skip
    assert "(val score: MAE relative to the mean predictor's" in stopped  # not "val loss"
    ens = tmp_path / "cli-ft-ens"  # members from one trunk share its inputs: the log says so
    assert main(["train", "--data", str(run / "d.csv"), "--target", "y", "--out", str(ens),
                 "--init", str(run / "run"), "--ensemble", "2", "--max-steps", "2", "--quiet",
                 "--no-progress"]) == 0  # fmt: skip
    assert "every member starts from this trunk" in (ens / "member-2" / "train.log").read_text()


def test_screening_where_every_row_fails_writes_every_column(run, tmp_path):
    """A first chunk with no readable structure still gives the model's columns (they used
    to be missing, and a chunk of only failures raised 'at least one structure')."""
    src = _write(tmp_path / "bad.csv", [{"cif": "not a structure"}, {"cif": "data_x\n"}])
    out = tmp_path / "pred.csv"
    assert main(["predict", "--checkpoint", str(run / "run"), "--data", str(src), "--out",
                 str(out), "--no-progress", "--quiet", "--batch-size", "1"]) == 1  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 2 and list(rows[0]) == ["id", "formula", "y", "status"]  # no y column
    assert all(r["status"].startswith("not predicted") and r["y"] == "" for r in rows)


# ------------------------------------------------------------------------- what outputs say
def test_tensor_predictions_say_their_frame_and_files_with_out_are_refused(run, tmp_path, capsys):
    """An elastic-tensor model (IEEE frame by default) says in every output that its tensors
    are in each structure's IEEE frame; a scalar model says nothing of frames. ``predict
    FILES --out`` is refused: --out belongs to --data (it was silently ignored)."""
    rng = np.random.default_rng(0)
    rows = []
    for k, (s, a) in enumerate(METALS):
        m = rng.normal(size=(6, 6))
        rows.append(
            {
                "material_id": f"m{k}",
                "elastic_tensor": json.dumps((m @ m.T).tolist()),
                "cif": AseAtomsAdaptor.get_structure(bulk(s, "fcc", a=a)).to(fmt="cif"),
            }
        )
    src = _write(tmp_path / "t.csv", rows)
    (tmp_path / "cfg.json").write_text(json.dumps({**TINY, "num_layers": 2}))
    assert main(["train", "--data", str(src), "--target", "elastic_tensor", "--out",
                 str(tmp_path / "t"), "--config", str(tmp_path / "cfg.json"), "--max-steps",
                 "2", "--quiet", "--no-progress"]) == 0  # fmt: skip
    cif = tmp_path / "Cu.cif"
    cif.write_text(rows[0]["cif"])
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tmp_path / "t"), str(cif)]) == 0
    note = "elastic_tensor: in each structure's IEEE standard frame"
    assert note in capsys.readouterr().out
    assert main(["predict", "--checkpoint", str(tmp_path / "t"), str(cif), "--json"]) == 0
    cap = capsys.readouterr()
    assert note in cap.err and json.loads(cap.out)[0]["name"] == "Cu.cif"  # stdout stays JSON
    assert main(["predict", "--checkpoint", str(tmp_path / "t"), "--data", str(src), "--out",
                 str(tmp_path / "p.csv"), "--no-progress"]) == 0  # fmt: skip
    assert note in capsys.readouterr().out
    assert main(["predict", "--checkpoint", str(run / "run"), str(cif)]) == 0
    assert "frame" not in capsys.readouterr().out  # a scalar target has no axes
    assert main(["predict", "--checkpoint", str(run / "run"), str(cif), "--out",
                 str(tmp_path / "x.csv")]) == 2  # fmt: skip
    assert "--out writes the rows of --data" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
    assert main(["predict", "--checkpoint", str(run / "run"), str(src), "--json"]) == 1
    status = json.loads(capsys.readouterr().out)[0]["status"]  # a table given as a file
    assert "is read with --data FILE --out CSV" in status


def test_predict_exits_1_when_nothing_could_be_predicted(run, tmp_path, capsys):
    """Every row still says why; the exit status lets a script notice (it was 0)."""
    ckpt = str(run / "run")
    (tmp_path / "bad.cif").write_text("not a cif")
    good = tmp_path / "Cu.cif"
    AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6)).to(filename=str(good))
    assert main(["predict", "--checkpoint", ckpt, str(tmp_path / "bad.cif")]) == 1
    assert "none of the 1 structure(s) could be predicted" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", ckpt, "--json", str(tmp_path / "bad.cif")]) == 1
    assert json.loads(capsys.readouterr().out)[0]["status"].startswith("not predicted")
    assert main(["predict", "--checkpoint", ckpt, str(tmp_path / "bad.cif"), str(good)]) == 0
    capsys.readouterr()
    src = _write(tmp_path / "bad.csv", [{"material_id": "x", "cif": "garbage"}])
    out = tmp_path / "p.csv"
    assert main(["predict", "--checkpoint", ckpt, "--data", str(src), "--out", str(out),
                 "--no-progress"]) == 1  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert [r["id"] for r in rows] == ["x"] and rows[0]["status"].startswith("not predicted")
