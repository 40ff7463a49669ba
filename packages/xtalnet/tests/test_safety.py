"""A run is never lost and a wrong answer is never silent (issue 17): each of the 26 cases
found by trying 170 inputs as a new user would, fed as that exact input, expecting the clear
error or the right result."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import mp_audit
import numpy as np
import pytest
import torch
import xtalnet
from ase.build import bulk
from hypothesis import given
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from xtalnet._cli import main

CRYSTALS = [
    ("Cu", "fcc", 3.6), ("Al", "fcc", 4.05), ("Ni", "fcc", 3.52), ("Ag", "fcc", 4.09),
    ("Pd", "fcc", 3.89), ("Pt", "fcc", 3.92), ("Au", "fcc", 4.08), ("Pb", "fcc", 4.95),
    ("Ca", "fcc", 5.58), ("Sr", "fcc", 6.08), ("Fe", "bcc", 2.87), ("W", "bcc", 3.16),
]  # fmt: skip
FAST = ["--r-cut", "5", "--layers", "1", "--epochs", "1", "--batch-size", "4", "--no-progress",
        "--quiet"]  # fmt: skip


def _cif(symbol: str, kind: str, a: float, seed: int) -> str:
    atoms = bulk(symbol, kind, a=a, cubic=True)
    atoms.rattle(0.02, seed=seed)
    return AseAtomsAdaptor.get_structure(atoms).to(fmt="cif")


def _write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _rows(prefix: str = "m", **overrides: object) -> list[dict]:
    """12 small real crystals with a scalar ``y`` and a ``band_gap`` (1 of 3 a metal)."""
    rows = []
    for k, (sym, kind, a) in enumerate(CRYSTALS):
        gap = 0.0 if k % 3 == 0 else 0.5 + k
        rows.append({"material_id": f"{prefix}{k}", "cif": _cif(sym, kind, a, k),
                     "y": round(1.0 + 0.3 * k, 3), "band_gap": gap})  # fmt: skip
    for key, value in overrides.items():  # "y_3": value -> row 3's y
        col, k = key.rsplit("_", 1)
        rows[int(k)][col] = value
    return rows


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return _write_csv(tmp_path_factory.mktemp("d") / "d.csv", _rows())


@pytest.fixture(scope="module")
def cfg(tmp_path_factory, tiny_config) -> str:
    path = tmp_path_factory.mktemp("c") / "cfg.json"
    path.write_text(json.dumps(tiny_config))
    return str(path)


def _train(data: Path | str, out: Path, cfg: str, *extra: str, target: str = "y") -> int:
    return main(["train", "--data", str(data), "--target", target, "--out", str(out),
                 "--config", cfg, *FAST, *extra])  # fmt: skip


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data, cfg) -> Path:
    """A finished 1-epoch run (seeded 80/10/10 split of the 12 crystals)."""
    run = tmp_path_factory.mktemp("runs") / "done"
    assert _train(data, run, cfg) == 0
    return run


def _api_config(cfg: str) -> dict:
    return {**json.loads(Path(cfg).read_text()), "r_cut": 5.0, "num_layers": 1}


def _snapshot(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run.iterdir()) if p.is_file()}


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("xtalnet: error:"), err
    return err


# ------------------------------------------------------------------------------ lost data
@pytest.mark.parametrize(
    ("bad", "says"),
    [(["--r-cut", "0"], "--r-cut"), (["--target", "nope"], "nope"),
     (["--data", "absent.csv"], "absent.csv")],
    ids=["r-cut-0", "unknown-target", "missing-data"],
)  # fmt: skip
def test_1_overwrite_with_a_bad_flag_keeps_the_run(tmp_path, data, cfg, finished, bad, says,
                                                   capsys):  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    for p in finished.iterdir():
        (run / p.name).write_bytes(p.read_bytes())
    before = _snapshot(run)
    args = ["train", "--data", str(data), "--target", "y", "--out", str(run), "--config", cfg,
            *FAST, "--overwrite"]  # fmt: skip
    for flag in bad[::2]:  # the bad flag replaces the good one
        i = args.index(flag) if flag in args else None
        if i is not None:
            del args[i : i + 2]
    assert main([*args, *bad]) == 2
    assert says in _err(capsys)
    assert _snapshot(run) == before  # best.pt, last.pt, metrics: all still there, unchanged


def test_2_resume_with_other_data_is_refused(tmp_path, data, cfg, finished, capsys):
    before = _snapshot(finished)
    other = _write_csv(tmp_path / "other.csv", _rows("x"))
    assert main(["train", "--resume", str(finished), "--data", str(other), "--quiet"]) == 2
    assert "--data" in _err(capsys)
    assert _snapshot(finished) == before  # test_metrics.json and predictions not rewritten
    # an interrupted run: same refusal, the standardisation is never refitted to OTHER
    run = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        xtalnet.train(str(data), ["y"], run, config=_api_config(cfg),
                      options={"epochs": 3, "batch_size": 4, "max_steps": 50},
                      progress=False, quiet=True,
                      callback=lambda s: (_ for _ in ()).throw(KeyboardInterrupt))  # fmt: skip
    with pytest.raises(ValueError, match="not the run's data"):
        xtalnet.train(str(other), ["y"], run, resume=True, quiet=True, progress=False)
    # the same path with other content: the targets' fingerprint differs
    edited = _write_csv(tmp_path / "edit.csv", _rows())
    run2 = tmp_path / "edit-run"
    assert _train(edited, run2, cfg, "--epochs", "3", "--max-steps", "2") == 0
    _write_csv(edited, _rows(y_0=99.0, y_1=98.0, y_2=97.0, y_3=96.0, y_4=95.0, y_5=94.0))
    assert main(["train", "--resume", str(run2), "--max-steps", "4", "--quiet"]) == 2
    assert "differ" in _err(capsys)


def test_3_demo_refuses_a_folder_holding_a_run(tmp_path, finished, capsys, monkeypatch):
    # what the demo sets in its own process, undone after this test (it outlived it)
    monkeypatch.setenv("XTAL_DISABLE_EXTENSIONS", "1")
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / ".matplotlib"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / ".torchinductor"))
    (tmp_path / "run").mkdir()
    for p in finished.iterdir():
        (tmp_path / "run" / p.name).write_bytes(p.read_bytes())
    before = _snapshot(tmp_path / "run")
    assert main(["demo", "--out", str(tmp_path), "--time-limit", "0.05", "--quiet"]) == 2
    err = _err(capsys)
    assert "already holds a run" in err and "--overwrite" in err
    assert "--resume" not in err  # the demo has no --resume to suggest
    assert _snapshot(tmp_path / "run") == before


def test_4_a_failed_start_leaves_no_run_and_the_rerun_works(tmp_path, data, cfg, capsys):
    run = tmp_path / "run"
    assert _train(data, run, cfg, target="nope") == 2
    capsys.readouterr()
    assert not (run / "train.log").exists()
    # files of an older failed start (no checkpoint) are not a run either
    run.mkdir(exist_ok=True)
    (run / "train.log").write_text("an old failed start\n")
    (run / "config.json").write_text("{}")
    assert _train(data, run, cfg) == 0
    assert (run / "best.pt").is_file()
    assert "an old failed start" not in (run / "train.log").read_text()


def test_5_stale_temporaries_of_a_killed_save_are_removed(tmp_path, data, cfg):
    run = tmp_path / "run"
    assert _train(data, run, cfg, "--epochs", "3", "--max-steps", "3") == 0
    (run / ".last.pt.tmp-99999").write_bytes(b"")
    (run / ".metrics.csv.tmp").write_bytes(b"")
    assert (
        main(["train", "--resume", str(run), "--max-steps", "6", "--quiet", "--no-progress"]) == 0
    )
    assert not list(run.glob(".*tmp*"))
    assert "stale temporary" in (run / "train.log").read_text()


# ------------------------------------------------------------------------------ silent wrong
def _rotate(atoms, r: np.ndarray):
    out = atoms.copy()
    out.set_cell(atoms.get_cell()[:] @ r.T, scale_atoms=False)
    out.positions = atoms.positions @ r.T
    return out


def test_6_every_convention_gives_the_same_equivariant_tensors():
    from rsh.testing import random_rotation

    targets = ["dielectric", "piezoelectric_tensor", "elastic_tensor"]  # ranks 2, 3, 4
    crystals = [bulk("ZnO", "wurtzite", a=3.25, c=5.2), bulk("GaAs", "zincblende", a=5.65)]
    for k, a in enumerate(crystals):
        a.rattle(0.05, seed=k)
    g = torch.Generator().manual_seed(5)
    rots = [r.numpy() for r in random_rotation(2, parity=True, generator=g)] + [-np.eye(3)]
    fits = {"dielectric": [np.diag([2.0, 3.0, 5.0])] * 2,
            "piezoelectric_tensor": [np.arange(18.0).reshape(3, 6) / 10] * 2,
            "elastic_tensor": [np.eye(6) * 100 + 10] * 2}  # fmt: skip
    preds = {}
    for conv in ("standard", "thesis", "e3nn"):
        cfg = xtalnet.NetworkConfig(targets=targets, dtype="float64", num_layers=2, seed=3,
                                    convention=conv, l_filter_max=2,
                                    hidden_irreps="8x0e+4x1o+4x1e+2x2e+2x2o+2x3o")  # fmt: skip
        net = xtalnet.Network(cfg)
        for c, head in net.target_heads.items():
            head.fit(fits[c])
        preds[conv] = [net.predict(crystals)] + [
            net.predict([_rotate(a, r) for a in crystals]) for r in rots
        ]
    ref = preds["standard"][0]
    for conv in ("thesis", "e3nn"):
        for c in targets:
            scale = np.abs(ref[c]).max()
            assert np.abs(preds[conv][0][c] - ref[c]).max() <= 1e-10 * scale, (conv, c)
    for conv in preds:
        for r, rotated in zip(rots, preds[conv][1:]):
            for c in targets:
                a, b = _cartesian(preds[conv][0][c]), _cartesian(rotated[c])
                expected = _rotate_tensor(a, r)  # polar tensors: R on every index
                assert np.abs(b - expected).max() <= 1e-10 * np.abs(a).max(), (conv, c)


def _cartesian(t: np.ndarray) -> np.ndarray:
    """Voigt [n, 6, 6] / [n, 3, 6] -> Cartesian [n, 3, 3, 3, 3] / [n, 3, 3, 3]."""
    from gaunt_elastic.elastic import VOIGT_PAIRS

    if t.shape[-1] != 6:
        return t
    v = np.array([[VOIGT_PAIRS.index(tuple(sorted((i, j)))) for j in range(3)] for i in range(3)])
    if t.shape[1] == 6:
        return t[:, v[:, :, None, None], v[None, None, :, :]]
    return t[:, np.arange(3)[:, None, None], v[None, :, :]]


def _rotate_tensor(t: np.ndarray, r: np.ndarray) -> np.ndarray:
    """R acting on every index of a batch of Cartesian tensors [n, 3, ..., 3]."""
    out = t
    for axis in range(1, t.ndim):
        out = np.moveaxis(np.tensordot(out, r, axes=([axis], [1])), -1, axis)
    return out


def test_a_molecule_or_slab_is_predicted_with_a_note(finished):
    """A network of bulk crystals given a molecule or a slab answers, and says it
    extrapolates (it said nothing)."""
    from ase import Atoms

    net = xtalnet.load(finished)
    cu = bulk("Cu", "fcc", a=3.6)
    slab = cu.repeat((1, 1, 3))
    slab.pbc = (True, True, False)
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 2.5]], cell=np.eye(3) * 10, pbc=False)
    pred, notes = net.predict_with_notes([cu, slab, dimer], catch=True)
    assert notes[0] == "" and np.isfinite(pred["y"]).all()
    assert "not periodic along every axis (pbc=(True, True, False))" in notes[1]
    assert "pbc=(False, False, False)" in notes[2] and "extrapolated" in notes[2]


def test_7_a_structure_with_an_isolated_atom_is_nan_with_a_reason(finished, tmp_path, capsys):
    net = xtalnet.load(finished)
    kbr = Structure(Lattice.cubic(9.0), ["K", "Br"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # 7.8 Å apart
    cu = AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6))
    with pytest.warns(UserWarning, match=r"structures\[0\]: not predicted: atom\(s\) \[0, 1\]"):
        pred = net.predict([kbr, cu])
    assert math.isnan(pred["y"][0]) and math.isfinite(pred["y"][1])
    kbr.to(filename=str(tmp_path / "KBr.cif"))
    # nothing could be predicted: exit 1, the row says why
    assert main(["predict", "--checkpoint", str(finished), str(tmp_path / "KBr.cif")]) == 1
    out = capsys.readouterr()
    assert "no neighbour within r_cut=5.0" in out.out and "warning" in out.err
    assert main(["predict", "--checkpoint", str(finished), "--json",
                 str(tmp_path / "KBr.cif")]) == 1  # fmt: skip
    (row,) = json.loads(capsys.readouterr().out)
    assert row["y"] is None and row["status"].startswith("not predicted")


def test_8_leakage_between_splits_warns_naming_ids_and_strict_refuses(tmp_path, data, cfg):
    rows = _rows()
    val = _write_csv(tmp_path / "val.csv", rows[:3])  # ids m0..m2 are in --data too
    run = tmp_path / "run"
    assert _train(data, run, cfg, "--val", str(val)) == 0
    log = (run / "train.log").read_text()
    assert "warning: leakage between splits" in log and "'m0'" in log
    assert _train(data, tmp_path / "s", cfg, "--val", str(val), "--strict") == 2
    # the same structure under another id, and an id twice in --data
    clone = dict(rows[5], material_id="twin-of-m5")
    dup = _write_csv(tmp_path / "dup.csv", [*rows, clone, dict(rows[7])])
    run2 = tmp_path / "run2"
    assert _train(dup, run2, cfg, "--split", "0.5", "0.25", "0.25", "--seed", "3") == 0
    log = (run2 / "train.log").read_text()
    assert "identical structure" in log  # the twin under another id
    # the id twice: named, and its copies kept in one split (they were split before)
    assert "1 id(s) appear more than once (2 rows, e.g. ['m7'])" in log
    split = json.loads((run2 / "split.json").read_text())
    holding = [part for part, ids in split.items() if isinstance(ids, list) and "m7" in ids]
    assert len(holding) == 1, holding
    # --seed seeds the initialisation too: another seed is another run, not another batch order
    assert json.loads((run2 / "config.json").read_text())["seed"] == 3
    assert json.loads((run2 / "options.json").read_text())["seed"] == 3


@given(st.lists(st.integers(0, 12), min_size=8, max_size=60), st.integers(0, 2**31 - 1))
def test_8b_a_seeded_split_keeps_the_copies_of_an_id_together(groups, seed):
    from xtalnet.training.splits import split_indices

    n = len(groups)
    try:
        parts = split_indices(n, (0.6, 0.2, 0.2), seed, groups)
    except ValueError as exc:  # so few distinct ids that the val and test take them all
        assert "leaves no training data" in str(exc)
        return
    assert sorted(np.concatenate(parts).tolist()) == list(range(n))  # every row once
    owners = {g: {k for k, p in enumerate(parts) if any(groups[i] == g for i in p)}
              for g in set(groups)}  # fmt: skip
    assert all(len(o) == 1 for o in owners.values())
    unique = list(range(n))  # distinct ids: exactly the split without groups
    for a, b in zip(split_indices(n, (0.6, 0.2, 0.2), seed, unique),
                    split_indices(n, (0.6, 0.2, 0.2), seed)):  # fmt: skip
        np.testing.assert_array_equal(a, b)


def test_9_absurd_and_non_finite_targets_and_a_diverged_run_fail_clearly(tmp_path, cfg, capsys):
    huge = _write_csv(tmp_path / "huge.csv", _rows(y_4=1e30))
    assert _train(huge, tmp_path / "a", cfg) == 2
    err = _err(capsys)
    assert "absurd value" in err and "'m4'" in err
    inf = _write_csv(tmp_path / "inf.csv", _rows(y_4="inf"))
    assert _train(inf, tmp_path / "b", cfg) == 2
    assert "'m4'" in _err(capsys)
    good = _write_csv(tmp_path / "good.csv", _rows())
    assert _train(good, tmp_path / "c", cfg, "--lr", "1e6", "--epochs", "4") == 2
    err = _err(capsys)
    assert "diverged" in err and "lower --lr" in err
    assert not (tmp_path / "c" / "test_metrics.json").exists()


def test_9_evaluate_refuses_an_inf_target_naming_its_id(tmp_path, finished, capsys):
    src = _write_csv(tmp_path / "e.csv", _rows(y_2="inf"))
    assert main(["evaluate", "--checkpoint", str(finished), "--data", str(src), "--out",
                 str(tmp_path / "ev"), "--quiet"]) == 2  # fmt: skip
    assert "'m2'" in _err(capsys)


@pytest.mark.parametrize(
    "cell", [[[4, 0, 0], [0, 4, 0], [2, 2, 1e-3]], [[4, 0, 0], [0, 4, 0], [0, 0, 1e-3]],
             [[4, 0, 0], [0, 4, 0], [0, 0, 0.05]]],
    ids=["skewed-1e-3", "flat-1e-3", "thin-0.05"],
)  # fmt: skip
@pytest.mark.parametrize("fmt", ["json", "cif", "poscar"])
def test_10_near_flat_cells_are_refused_from_every_source(tmp_path, cfg, cell, fmt):
    flat = Structure(Lattice(cell), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    payload = {"json": json.dumps(flat.as_dict()), "poscar": flat.to(fmt="poscar")}.get(fmt)
    if payload is None:
        payload = flat.to(fmt="cif")
    rows = _rows()
    rows[0] = dict(rows[0], cif=payload)
    src = _write_csv(tmp_path / "d.csv", rows)
    entry = next(iter(mp_audit.load(str(src), columns=["y"])))
    with pytest.raises(ValueError, match=r"flat|overlapping|not a structure|parse"):
        xtalnet.collate([entry], xtalnet.NetworkConfig())
    assert _train(src, tmp_path / "s", cfg, "--strict") == 2


def test_11_a_negative_band_gap_is_refused_in_every_split_and_by_evaluate(tmp_path, cfg, capsys):
    rows = _rows()
    test_csv = _write_csv(tmp_path / "test.csv", [dict(rows[4], band_gap=-0.5)])
    src = _write_csv(tmp_path / "d.csv", rows)
    assert _train(src, tmp_path / "r", cfg, "--test", str(test_csv), target="band_gap") == 2
    err = _err(capsys)
    assert "test" in err and "'m4'" in err and ">= 0" in err
    assert not (tmp_path / "r" / "best.pt").exists()  # refused before any training
    assert _train(src, tmp_path / "ok", cfg, target="band_gap") == 0
    assert main(["evaluate", "--checkpoint", str(tmp_path / "ok"), "--data", str(test_csv),
                 "--out", str(tmp_path / "ev"), "--quiet"]) == 2  # fmt: skip
    assert "'m4'" in _err(capsys)


@pytest.mark.parametrize("bad", [["--batch-size", "0"], ["--batch-size", "-3"],
                                 ["--threads", "0"], ["--threads", "-1"]])  # fmt: skip
def test_12_17_bad_counts_are_refused(tmp_path, finished, data, bad, capsys):
    args = ["evaluate", "--checkpoint", str(finished), "--data", str(data), "--out",
            str(tmp_path / "ev"), *bad]  # fmt: skip
    assert main(args) == 2
    assert "must be an int >= 1" in _err(capsys)
    assert not (tmp_path / "ev").exists()
    if bad[0] == "--threads":
        assert main(["train", "--data", str(data), "--target", "y", "--out",
                     str(tmp_path / "t"), *bad]) == 2  # fmt: skip
        assert "--threads" in _err(capsys)


def test_13_elements_never_seen_in_training_are_flagged(finished, tmp_path, capsys):
    rbbr = AseAtomsAdaptor.get_structure(bulk("RbBr", "rocksalt", a=6.9))
    net = xtalnet.load(finished)
    with pytest.warns(UserWarning, match="Br, Rb absent from the training data"):
        pred = net.predict([rbbr])
    assert math.isfinite(pred["y"][0])  # predicted, and marked
    rbbr.to(filename=str(tmp_path / "RbBr.cif"))
    assert main(["predict", "--checkpoint", str(finished), str(tmp_path / "RbBr.cif")]) == 0
    assert "absent from the training data" in capsys.readouterr().out


def test_14_from_pyg_refuses_one_way_edges_fractional_numbers_and_no_edges():
    tg = pytest.importorskip("torch_geometric.data")
    from ase.neighborlist import neighbor_list

    atoms = bulk("NaCl", "rocksalt", a=5.64)
    i, j, shifts = neighbor_list("ijS", atoms, 5.0)

    def data(keep=None, numbers=None):
        k = np.arange(len(i)) if keep is None else keep
        return tg.Data(pos=torch.tensor(atoms.positions),
                       edge_index=torch.tensor(np.stack([j[k], i[k]])),
                       edge_cell_shift=torch.tensor(shifts[k]),
                       cell=torch.tensor(atoms.cell[:]).unsqueeze(0),
                       atomic_numbers=torch.tensor(atoms.numbers if numbers is None else numbers),
                       num_nodes=len(atoms))  # fmt: skip

    cfg = xtalnet.NetworkConfig()
    assert xtalnet.from_pyg(data(), cfg).num_edges == len(i)
    one_way = np.flatnonzero(i < j)
    with pytest.raises(ValueError, match="not symmetric"):
        xtalnet.from_pyg(data(keep=np.flatnonzero((i <= j) | (i > j))[: len(i) - 1]), cfg)
    with pytest.raises(ValueError, match=r"no edge|not symmetric"):
        xtalnet.from_pyg(data(keep=one_way), cfg)
    with pytest.raises(ValueError, match=r"must hold integers, got 8\.4"):
        xtalnet.from_pyg(data(numbers=np.array([8.4, 17.0])), cfg)
    with pytest.raises(ValueError, match=r"atom\(s\) \[0, 1\] are the center of no edge"):
        xtalnet.from_pyg(data(keep=np.array([], dtype=int)), cfg)


# ------------------------------------------------------------------------------ one line, exit 2
def test_15_out_naming_a_file_or_an_unwritable_place(tmp_path, data, cfg, capsys):
    (tmp_path / "file").write_text("x")
    assert _train(data, tmp_path / "file", cfg) == 2
    assert "is a file, not a folder" in _err(capsys)
    assert _train(data, tmp_path / "file" / "run", cfg) == 2
    assert "is a file, not a folder" in _err(capsys)
    assert _train(data, Path("/proc/xtalnet-run"), cfg) == 2
    _err(capsys)


def test_16_18_non_finite_options_and_devices_are_refused_up_front(tmp_path, data, cfg, capsys):
    assert _train(data, tmp_path / "a", cfg, "--lr", "inf") == 2
    assert "lr must be a finite number" in _err(capsys)
    for device in (["--device", "tpu"], *([] if torch.cuda.is_available() else
                                          [["--device", "cuda"]])):  # fmt: skip
        assert _train(data, tmp_path / "b", cfg, *device) == 2
        assert "--device" in _err(capsys)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_19_22_disordered_structures_and_dummy_species_are_named(finished, tmp_path, capsys):
    from pymatgen.core.periodic_table import DummySpecies

    mixed = Structure(
        Lattice.cubic(4.0), [{"Na": 0.5, "K": 0.5}, "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    mixed.to(filename=str(tmp_path / "mixed.cif"))
    assert main(["predict", "--checkpoint", str(finished), str(tmp_path / "mixed.cif")]) == 1
    out = capsys.readouterr()
    assert "disordered" in out.out and "mixed.cif" in out.err
    with pytest.raises(
        ValueError,
        match=r"structures\[0\] is disordered.*predict_with_notes"
        r"\(structures, catch=True\) predicts the others",
    ):
        xtalnet.load(finished).predict([mixed])
    pred, notes = xtalnet.load(finished).predict_with_notes([mixed, bulk("Cu", "fcc", a=3.6)],
                                                            catch=True)  # fmt: skip
    assert np.isnan(pred["y"][0]) and np.isfinite(pred["y"][1])
    assert notes[0].startswith("not predicted: structures[0] is disordered")
    dummy = Structure(Lattice.cubic(4.0), [DummySpecies("X"), "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    with pytest.raises(ValueError, match=r"species X \(Z=0\) not supported"):
        xtalnet.collate([dummy], xtalnet.NetworkConfig())


# ------------------------------------------------------------------------------ unclear
def test_20_skip_reasons_are_whole_and_name_the_row(tmp_path, cfg):
    rows = _rows()
    rows[3] = dict(rows[3], cif="data_broken\n_this is not a structure at all, not even close\n")
    src = _write_csv(tmp_path / "d.csv", rows)
    run = tmp_path / "r"
    assert _train(src, run, cfg) == 0
    log = (run / "train.log").read_text()
    line = next(x for x in log.splitlines() if x.strip().startswith("m3:"))
    assert len(line) > 100 and "not a structure" in line
    assert "structures[" not in line  # its place in an internal list is no place of the file


def test_21_a_string_target_in_the_test_split_fails_before_training(tmp_path, cfg, capsys):
    rows = _rows()
    test_csv = _write_csv(tmp_path / "t.csv", [dict(rows[2], y="abc")])
    src = _write_csv(tmp_path / "d.csv", rows)
    assert _train(src, tmp_path / "r", cfg, "--test", str(test_csv)) == 2
    err = _err(capsys)
    assert "test" in err and "'y'" in err and "'m2'" in err
    assert not (tmp_path / "r" / "last.pt").exists()


def test_23_a_scalar_column_for_a_tensor_target_names_the_shape(tmp_path, data, cfg, capsys):
    assert _train(data, tmp_path / "r", cfg, target="band_gap:tensor=ijk") == 2
    err = _err(capsys)
    assert "shape" in err and "num_layers" not in err


def test_24_a_run_can_be_extended_on_resume(tmp_path, data, cfg, capsys):
    run = tmp_path / "r"
    assert _train(data, run, cfg, "--epochs", "2") == 0
    assert main(["train", "--resume", str(run), "--epochs", "4", "--quiet"]) == 0
    state = torch.load(run / "last.pt", weights_only=True)["state"]
    assert state["epoch"] == 4 and state["stop_reason"] == "reached 4 epochs"
    log = (run / "train.log").read_text()
    assert "epochs 2 -> 4 (training length changed)" in log and "re-planned" in log
    assert main(["train", "--resume", str(run), "--max-steps", "3", "--quiet"]) == 2
    assert "has finished" in _err(capsys)
    assert main(["train", "--resume", str(run), "--lr", "0.1", "--quiet"]) == 2
    assert "only the training length" in _err(capsys)


def test_25_messages_name_the_flag_and_the_right_remedy(tmp_path, data, cfg, capsys, monkeypatch):
    monkeypatch.delenv("MP_API_KEY", raising=False)
    monkeypatch.setenv("PMG_MAPI_KEY", "")
    assert _train("mp", tmp_path / "a", cfg, target="band_gap") == 2
    err = _err(capsys)
    assert "MP_API_KEY" in err and "--api-key" not in err
    val = _write_csv(tmp_path / "v.csv", [{k: v for k, v in r.items() if k != "y"}
                                          for r in _rows("v")])  # fmt: skip
    assert _train(data, tmp_path / "b", cfg, "--val", str(val)) == 2
    assert "--val" in _err(capsys)


def test_26_predict_a_folder_predicts_every_structure_file_in_it(finished, tmp_path, capsys):
    folder = tmp_path / "cifs"
    folder.mkdir()
    for sym, kind, a in CRYSTALS[:3]:
        AseAtomsAdaptor.get_structure(bulk(sym, kind, a=a)).to(filename=str(folder / f"{sym}.cif"))
    (folder / "notes.txt").write_text("not a structure")
    assert main(["predict", "--checkpoint", str(finished), "--json", str(folder)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["Al.cif", "Cu.cif", "Ni.cif"]  # notes.txt left out
    assert all(r["y"] is not None and not r["status"].startswith("not") for r in rows)


def test_evaluate_out_is_never_a_run_folder_a_file_or_an_earlier_evaluation(
    tmp_path, finished, data, capsys
):
    """`evaluate --out RUN` dropped metrics.json beside the run's own files, and a second
    evaluation replaced the first without a word; both refused now (the first with a folder
    to use instead), as is a file; --overwrite replaces an earlier evaluation."""
    before = sorted(p.name for p in Path(finished).iterdir())
    args = ["evaluate", "--checkpoint", str(finished), "--data", str(data), "--quiet", "--out"]
    assert main([*args, str(finished)]) == 2
    assert "is a run's folder" in _err(capsys)
    assert sorted(p.name for p in Path(finished).iterdir()) == before
    (tmp_path / "f.csv").write_text("keep")
    assert main([*args, str(tmp_path / "f.csv")]) == 2
    assert "is a file" in _err(capsys) and (tmp_path / "f.csv").read_text() == "keep"
    assert main([*args, str(tmp_path / "ev")]) == 0
    assert main([*args, str(tmp_path / "ev")]) == 2
    assert "holds an earlier evaluation: give --overwrite" in _err(capsys)
    assert main([*args, str(tmp_path / "ev"), "--overwrite"]) == 0
    assert main([*args, str(Path(finished) / "eval")]) == 0  # a folder inside the run is fine
    shutil.rmtree(Path(finished) / "eval")  # the module's run stays as the others expect it
