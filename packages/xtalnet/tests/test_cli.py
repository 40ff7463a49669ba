"""``xtalnet train|evaluate|predict|demo`` end to end (console entry point in process, and
``python -m xtalnet`` in subprocesses for --help, Ctrl-C and the demo)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import xtalnet
from xtalnet._cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p.endswith("src"))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_config):
    """A 2-epoch run on builtin:dcdft through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    (root / "cfg.json").write_text(json.dumps(tiny_config))
    rc = main([
        "train", "--data", "builtin:dcdft", "--target", "K_wien2k", "--out", str(root / "run"),
        "--config", str(root / "cfg.json"), "--r-cut", "5", "--layers", "1", "--epochs", "2",
        "--batch-size", "16", "--no-progress", "--quiet",
    ])  # fmt: skip
    assert rc == 0
    return root


def test_train_writes_every_file(trained):
    run = trained / "run"
    for name in ("run.json", "config.json", "options.json", "split.json", "last.pt", "best.pt",
                 "metrics.csv", "metrics.jsonl", "train.log", "learning_curve.png",
                 "test_metrics.json", "test_predictions.csv"):  # fmt: skip
        assert (run / name).is_file(), name
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    jsonl = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val_loss"] for r in jsonl] == [float(r["val_loss"]) for r in rows]
    assert (run / "learning_curve.png").read_bytes()[:8] == PNG
    tm = json.loads((run / "test_metrics.json").read_text())
    assert {"mae", "rmse", "r2", "mae_log10"} <= set(tm["test"]["K_wien2k"])
    assert tm["baseline_mean_predictor"]["K_wien2k"]["n"] == tm["test"]["K_wien2k"]["n"]
    # no recommendation was needed: r_cut and layers were given
    assert not (run / "recommendation.json").exists()
    log = (run / "train.log").read_text()
    assert "structure(s) have atoms without a neighbour within r_cut=5.0 Å" in log  # e.g. Rn
    opts = json.loads((run / "options.json").read_text())
    assert opts["epochs"] == 2 and opts["batch_size"] == 16


def test_evaluate_writes_metrics_predictions_and_parity(trained, capsys):
    rc = main(["evaluate", "--checkpoint", str(trained / "run" / "best.pt"), "--data",
               "builtin:dcdft", "--out", str(trained / "ev"), "--quiet"])  # fmt: skip
    assert rc == 0
    m = json.loads((trained / "ev" / "metrics.json").read_text())
    k = m["metrics"]["K_wien2k"]
    rows = list(csv.DictReader((trained / "ev" / "predictions.csv").open()))
    assert len(rows) == k["n"] == m["n"]
    true = np.array([float(r["K_wien2k_true"]) for r in rows])
    pred = np.array([float(r["K_wien2k"]) for r in rows])
    assert k["mae"] == pytest.approx(np.abs(pred - true).mean(), rel=1e-9)
    assert m["skipped"]["isolated"] >= 1
    assert (trained / "ev" / "parity_K_wien2k.png").read_bytes()[:8] == PNG


def test_predict_table_and_json(trained, tmp_path, capsys):
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    files = []
    for name, a in (("Cu", 3.6), ("Al", 4.05)):
        p = tmp_path / f"{name}.cif"
        AseAtomsAdaptor.get_structure(bulk(name, a=a)).to(filename=str(p))
        files.append(str(p))
    ckpt = str(trained / "run" / "best.pt")
    capsys.readouterr()
    assert main(["predict", "--checkpoint", ckpt, *files]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["name", "formula", "K_wien2k"]
    assert table[1].split()[:2] == ["Cu.cif", "Cu"]
    assert main(["predict", "--checkpoint", ckpt, "--json", *files]) == 0
    rows = json.loads(capsys.readouterr().out)
    import xtalnet

    net = xtalnet.load(ckpt)
    from pymatgen.core import Structure

    expected = net.predict([Structure.from_file(f) for f in files])["K_wien2k"]
    np.testing.assert_allclose([r["K_wien2k"] for r in rows], expected, rtol=1e-12)
    assert main(["predict", "--checkpoint", ckpt, str(tmp_path / "absent.cif")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_predict_elastic_prints_vrh_moduli(tmp_path, capsys, tiny_config):
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    rng = np.random.default_rng(0)
    rows = []
    for k, (s, a) in enumerate((("Cu", 3.6), ("Al", 4.05), ("Ni", 3.52), ("Ag", 4.09),
                                ("Pd", 3.89), ("Pt", 3.92))):  # fmt: skip
        m = rng.normal(size=(6, 6))
        c = m @ m.T + 50 * np.eye(6)
        cif = AseAtomsAdaptor.get_structure(bulk(s, a=a)).to(fmt="cif")
        rows.append({"material_id": f"m{k}", "cif": cif, "elastic_tensor": json.dumps(c.tolist())})
        if k == 0:
            (tmp_path / "Cu.cif").write_text(cif)
    with (tmp_path / "el.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cfg = dict(tiny_config, hidden_irreps="8x0e+2x1o+2x2e", l_filter_max=2)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    assert main(["train", "--data", str(tmp_path / "el.csv"), "--target", "elastic_tensor",
                 "--out", str(tmp_path / "run"), "--config", str(tmp_path / "cfg.json"),
                 "--r-cut", "4", "--layers", "2", "--epochs", "1", "--split", "0.5", "0.5", "0",
                 "--quiet", "--no-progress"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tmp_path / "run"), str(tmp_path / "Cu.cif")]) == 0
    out = capsys.readouterr().out
    assert "elastic_tensor.K_VRH" in out and "elastic_tensor.G_VRH" in out and "<6x6 tensor>" in out
    assert "--json prints their entries" in out


def test_bad_command_lines_fail_with_one_clear_line(trained, tmp_path, capsys):
    run = str(trained / "run")
    assert main(["train", "--data", "builtin:dcdft", "--target", "K_wien2k", "--out", run]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", "--data", "builtin:dcdft", "--out", str(tmp_path / "x")]) == 2
    assert "--target" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["train", "--data", "builtin:dcdft", "--target", "K_wien2k", "--out",
                 str(tmp_path / "y"), "--config", str(tmp_path / "bad.json")]) == 2  # fmt: skip
    assert "not valid JSON" in capsys.readouterr().err
    assert main(["train", "--data", "builtin:dcdft", "--target", "band_gap", "--out",
                 str(tmp_path / "z"), "--r-cut", "5", "--layers", "1"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("xtalnet: error:") and "K_wien2k" in err and "\n" == err[-1]
    assert main(["train", "--resume", run, "--r-cut", "4"]) == 2
    assert "r_cut: 5.0 (checkpoint) vs 4.0 (given)" in capsys.readouterr().err


def test_python_dash_m_and_help():
    out = subprocess.run([sys.executable, "-m", "xtalnet", "--help"], capture_output=True,
                         text=True, env=_env(), timeout=120)  # fmt: skip
    assert out.returncode == 0
    for cmd in ("train", "evaluate", "predict", "demo"):
        assert cmd in out.stdout
    version = subprocess.run([sys.executable, "-m", "xtalnet", "--version"], capture_output=True,
                             text=True, env=_env(), timeout=120)  # fmt: skip
    assert version.returncode == 0 and version.stdout.strip() == f"xtalnet {xtalnet.__version__}"


def test_ctrl_c_saves_last_pt_and_resume_continues(tmp_path, tiny_config):
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_config))
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "xtalnet", "train", "--data", "builtin:dcdft", "--target",
           "K_wien2k", "--out", str(run), "--config", str(tmp_path / "cfg.json"), "--r-cut", "5",
           "--layers", "1", "--epochs", "1000", "--batch-size", "8", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.time() + 300
        while not (run / "metrics.csv").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.time() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at epoch" in out and f"--resume {run}" in out
    assert f"xtalnet: interrupted; continue with xtalnet train --resume {run}" in err  # --quiet too
    import xtalnet._checkpoint as ck

    state = ck.read(run / "last.pt")["state"]
    assert state["global_step"] >= 7 and not state["done"]
    # resume picks up the data source from run.json and continues from that step
    assert main(["train", "--resume", str(run), "--max-steps", str(state["global_step"] + 1),
                 "--quiet", "--no-progress"]) == 0  # fmt: skip
    after = ck.read(run / "last.pt")["state"]
    assert after["global_step"] == state["global_step"] + 1
    assert after["stop_reason"].startswith("reached max_steps")


def test_demo_writes_only_inside_out(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = _env()
    env.update(HOME=str(home), TMPDIR=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    env.pop("MPLCONFIGDIR", None)
    out = tmp_path / "demo"
    res = subprocess.run([sys.executable, "-m", "xtalnet", "demo", "--out", str(out),
                          "--time-limit", "0.1"], capture_output=True, text=True, env=env,
                         timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "test MAE" in res.stdout and "mean predictor" in res.stdout
    assert res.stdout.count("predicted") == 3
    assert (out / "run" / "learning_curve.png").read_bytes()[:8] == PNG
    assert [p for p in home.rglob("*")] == []
