"""Ensembles (xtalnet train --ensemble K): members, resume, the mean and spread of
xtalnet.load(run).predict against the members loaded one by one, calibration, bad input."""

from __future__ import annotations

import csv
import json
import shutil
import warnings
from pathlib import Path

import mp_audit
import numpy as np
import pytest
import torch
import xtalnet
from ase.collections import dcdft
from hypothesis import given
from hypothesis import strategies as st
from xtalnet import _metrics
from xtalnet._cli import main
from xtalnet.config import MAX_SEED, NetworkConfig
from xtalnet.ensemble import MAX_MEMBERS, Ensemble
from xtalnet.network import Network
from xtalnet.training.ensemble import member_seeds
from xtalnet.training.setup import init_seed, plan_run

TINY = {"dtype": "float64", "r_cut": 5.0, "num_layers": 1, "embed_dim": 8, "num_basis": 4,
        "hidden_irreps": "8x0e+2x1o", "l_filter_max": 1, "radial_hidden": 8}  # fmt: skip
OPTS = {"epochs": 2, "batch_size": 8, "max_steps": 6, "warmup_steps": 1}


@pytest.fixture(scope="module")
def dcdft40():
    ds = mp_audit.load("builtin:dcdft")
    keep = [e for e in ds if e.material_id not in ("dcdft:Cs", "dcdft:Rn", "dcdft:Xe", "dcdft:Kr")]
    return mp_audit.from_entries("dcdft40", keep[:40])


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory, dcdft40):
    out = tmp_path_factory.mktemp("ens") / "run"
    res = xtalnet.train(dcdft40, ["K_wien2k"], out, config=TINY, options=OPTS, ensemble=3,
                        progress=False, quiet=True)  # fmt: skip
    return out, res


def test_init_seed_rule_shared_by_a_run_and_an_ensemble():
    # one rule for both (plan_run, train_ensemble): the config's seed, else the options'
    assert init_seed({}, {}) == NetworkConfig().seed == 0
    assert init_seed({}, {"seed": 7}) == 7
    assert init_seed({"seed": 3}, {"seed": 7}) == 3
    plan = plan_run(Path("unused"), ["K_wien2k"], None, {"seed": 7}, False, lambda msg: None)
    assert plan.given["seed"] == 7
    plan = plan_run(Path("unused"), ["K_wien2k"], {"seed": 3}, {"seed": 7}, False, lambda msg: None)
    assert plan.given["seed"] == 3


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, MAX_MEMBERS))
def test_ensembles_of_one_size_share_no_member_seed(a, b, k):
    seeds = member_seeds(a, k)
    assert len(set(seeds)) == k and seeds[0] == a * k
    assert a == b or not set(seeds) & set(member_seeds(b, k))


@given(st.integers(1, MAX_MEMBERS))
def test_member_seeds_stay_within_max_seed(k):
    # the largest --seed allowed for k members gives member seeds up to MAX_SEED, one more is
    # refused by name (before: an overflow in torch's batch-order seed at the first epoch)
    largest = (MAX_SEED - k + 1) // k
    assert max(member_seeds(largest, k)) <= MAX_SEED < (largest + 1) * k + k - 1
    with pytest.raises(ValueError, match=rf"--seed must be an int in \[0, {largest}\]"):
        member_seeds(largest + 1, k)


def test_seeds_beyond_max_seed_are_refused_by_name(tmp_path, capsys):
    big = str(MAX_SEED + 1)
    for extra in ([], ["--ensemble", "3"]):
        assert main(["train", "--data", "builtin:dcdft", "--target", "K_wien2k", "--out",
                     str(tmp_path / "r"), "--seed", big, *extra]) == 2  # fmt: skip
        assert "seed must be an int in [0, " in capsys.readouterr().err
        assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="split_seed must be an int in"):
        xtalnet.train("builtin:dcdft", ["K_wien2k"], tmp_path / "s", options={"split_seed": -1})
    with pytest.raises(ValueError, match="seed must be in"):
        NetworkConfig(seed=MAX_SEED + 1)
    NetworkConfig(seed=MAX_SEED)


def test_members_share_the_split_and_differ_in_seed(ensemble_run):
    out, res = ensemble_run
    splits = [json.loads((out / f"member-{m}" / "split.json").read_text()) for m in (1, 2, 3)]
    assert splits[0] == splits[1] == splits[2]
    seeds = [json.loads((out / f"member-{m}" / "options.json").read_text())["seed"]
             for m in (1, 2, 3)]  # fmt: skip
    inits = [json.loads((out / f"member-{m}" / "config.json").read_text())["seed"]
             for m in (1, 2, 3)]  # fmt: skip
    assert seeds == [0, 1, 2] and inits == [0, 1, 2]
    # the defaults vary the members' inputs: both embeddings, then no composition statistics
    configs = [json.loads((out / f"member-{m}" / "config.json").read_text()) for m in (1, 2, 3)]
    assert [(c["species_features"], c["composition"]) for c in configs] == [
        ("elemental", True), ("both", True), ("elemental", False)]  # fmt: skip
    assert "ensemble member 2" in configs[1]["provenance"]["species_features"]
    assert all(c["r_cut"] == TINY["r_cut"] for c in configs)
    # no bagging by default: every member trains on all of the training split
    logs = [(out / f"member-{m}" / "train.log").read_text() for m in (1, 2, 3)]
    assert not any(x.startswith("bootstrap:") for log in logs for x in log.splitlines())
    assert json.loads((out / "member-1" / "options.json").read_text())["bootstrap"] is False
    info = json.loads((out / "ensemble.json").read_text())
    assert info["members"] == 3 and info["sigma_scale"]["K_wien2k"] > 0
    report = json.loads((out / "test_metrics.json").read_text())
    cal = report["calibration"]["K_wien2k"]
    assert len(cal["member_mae"]) == 3 and 0 <= cal["within_1sigma"] <= cal["within_2sigma"] <= 1
    assert (out / "calibration_K_wien2k.png").read_bytes()[:4] == b"\x89PNG"
    assert res["test"]["K_wien2k"]["n"] == len(splits[0]["test"])


def test_load_gives_the_mean_and_sigma_from_the_spread_and_the_composition_distance(
    ensemble_run, dcdft40
):
    out, _ = ensemble_run
    ens = xtalnet.load(out)
    assert isinstance(ens, Ensemble) and len(ens.networks) == 3
    split = json.loads((out / "member-1" / "split.json").read_text())
    trained = {i.split(":", 1)[1] for i in split["train"]}
    names = ["Cu", "Si", "Al", "Xe"]
    atoms = [dcdft[s] for s in names]
    pred, notes = ens.predict_with_notes(atoms)
    assert "Xe absent from the training data" in notes[-1]
    with pytest.warns(UserWarning, match="Xe absent from the training data"):
        members = np.stack([xtalnet.load(out / f"member-{m}" / "best.pt").predict(atoms)
                            ["K_wien2k"] for m in (1, 2, 3)])  # fmt: skip
    info = json.loads((out / "ensemble.json").read_text())
    k, w = info["sigma_scale"]["K_wien2k"], info["sigma_distance_weight"]["K_wien2k"]
    assert k > 0 and w >= 0
    # elemental crystals: distance 0 to a training crystal of the same element, 2 otherwise
    d = np.array([0.0 if n in trained else 2.0 for n in names])
    assert d[-1] == 2.0  # Xe was left out of the data
    # a log target: the geometric mean of the members' moduli
    np.testing.assert_allclose(pred["K_wien2k"], 10 ** np.log10(members).mean(0), rtol=1e-12)
    sigma = k * np.sqrt(members.std(0) ** 2 + w * d**2)
    np.testing.assert_allclose(pred["K_wien2k.std"], sigma, rtol=1e-12)


def test_sigma_of_an_older_ensemble_and_a_lost_composition_file(ensemble_run, tmp_path):
    """An ensemble scored before the distance term: σ = k x spread, as then; one whose
    train_compositions.npz is gone: a clear error naming it and the way back."""
    out = tmp_path / "ens"
    shutil.copytree(ensemble_run[0], out)
    info = json.loads((out / "ensemble.json").read_text())
    assert (out / "train_compositions.npz").is_file()
    if info["sigma_distance_weight"]["K_wien2k"] == 0:  # the term must be on to be lost
        info["sigma_distance_weight"]["K_wien2k"] = 100.0
        (out / "ensemble.json").write_text(json.dumps(info))
    (out / "train_compositions.npz").unlink()
    with pytest.raises(ValueError, match=r"train_compositions.npz is missing.*--resume"):
        xtalnet.load(out)
    del info["sigma_distance_weight"]
    (out / "ensemble.json").write_text(json.dumps(info))
    atoms = [dcdft[s] for s in ("Cu", "Si", "Xe")]
    with pytest.warns(UserWarning, match="Xe absent from the training data"):
        members = np.stack([xtalnet.load(out / f"member-{m}" / "best.pt").predict(atoms)
                            ["K_wien2k"] for m in (1, 2, 3)])  # fmt: skip
        sigma = xtalnet.load(out).predict(atoms)["K_wien2k.std"]
    np.testing.assert_allclose(sigma, members.std(0) * info["sigma_scale"]["K_wien2k"],
                               rtol=1e-12)  # fmt: skip


def test_an_ensemble_started_before_members_varied_keeps_them_alike(
    ensemble_run, tmp_path, dcdft40
):
    out, _ = ensemble_run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    shutil.rmtree(old / "member-3")  # not started yet when it was interrupted
    for m in (1, 2):  # as written before TrainOptions.member existed, members alike
        opts = json.loads((old / f"member-{m}" / "options.json").read_text())
        del opts["member"]
        (old / f"member-{m}" / "options.json").write_text(json.dumps(opts))
    # ... by an older rule, which chose another embedding than today's would
    first = json.loads((old / "member-1" / "config.json").read_text())
    first["species_features"] = "onehot"
    assert first["provenance"]["species_features"].startswith("rule:")
    (old / "member-1" / "config.json").write_text(json.dumps(first))
    xtalnet.train(dcdft40, [], old, resume=True, progress=False, quiet=True)
    third = json.loads((old / "member-3" / "config.json").read_text())
    assert (third["species_features"], third["composition"]) == ("onehot", first["composition"])
    assert json.loads((old / "member-3" / "options.json").read_text())["member"] == 0


def test_an_ensemble_without_its_sigma_fit_is_refused(ensemble_run, tmp_path):
    out, _ = ensemble_run
    copy = tmp_path / "unscored"
    shutil.copytree(out, copy)  # every member finished, σ not fitted: as after a member's
    info = json.loads((copy / "ensemble.json").read_text())  # own --resume
    del info["sigma_scale"]
    (copy / "ensemble.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=rf"has not finished.*--resume {copy}"):
        xtalnet.load(copy)
    xtalnet.load(out)  # the scored one loads


def test_tensor_entries_fixed_by_symmetry_have_no_sigma(tmp_path):
    """Cubic crystals: C14, C15, ... are zero by symmetry, which the members predict exactly
    (to rounding); the data holds noise there, as the de Jong set does. That noise over a
    spread of rounding made the σ scale explode (1e6 on de Jong); now such entries have σ
    = 0 and neither the fit nor the calibration counts them."""
    from ase.build import bulk
    from pymatgen.io.ase import AseAtomsAdaptor

    rng = np.random.default_rng(0)
    fixed = np.ones((6, 6), dtype=bool)
    fixed[:3, :3] = False
    fixed[[3, 4, 5], [3, 4, 5]] = False
    entries = []
    for k in range(24):
        s, a = [("Cu", 3.6), ("Al", 4.05), ("Ni", 3.52), ("Ag", 4.09)][k % 4]
        c11, c12, c44 = 150 + 40 * rng.random(), 80 + 20 * rng.random(), 50 + 20 * rng.random()
        c = np.full((6, 6), 0.0)
        c[:3, :3] = c12
        c[[0, 1, 2], [0, 1, 2]] = c11
        c[[3, 4, 5], [3, 4, 5]] = c44
        noise = np.triu(rng.normal(0, 0.5, (6, 6)) * fixed)
        c += noise + noise.T  # symmetric noise where symmetry says zero
        atoms = bulk(s, "fcc", a=a * (1 + 0.01 * (k // 4)))
        entries.append(mp_audit.Entry(f"c{k}", AseAtomsAdaptor.get_structure(atoms),
                                      {"elastic_tensor": c.tolist()}))  # fmt: skip
    data = mp_audit.from_entries("cubic24", entries, columns=["elastic_tensor"])
    out = tmp_path / "el"
    cfg = {**{k: v for k, v in TINY.items() if k != "num_layers"}, "l_filter_max": 2,
           "hidden_irreps": "8x0e+2x1o+2x2e", "tensor_frame": "as_given"}  # fmt: skip
    xtalnet.train(data, ["elastic_tensor"], out, config=cfg, options=OPTS, ensemble=2,
                  progress=False, quiet=True)  # fmt: skip
    info = json.loads((out / "ensemble.json").read_text())
    assert 0 < info["sigma_scale"]["elastic_tensor"] < 1e3  # was 4.7e15 (float64)
    atoms = [AseAtomsAdaptor.get_structure(bulk("Cu", "fcc", a=3.6))]
    pred = xtalnet.load(out).predict(atoms)
    sigma = pred["elastic_tensor.std"][0]
    assert np.all(sigma[fixed] == 0) and np.all(sigma[~fixed] > 0)
    assert np.abs(pred["elastic_tensor"][0][fixed]).max() < 1e-8
    report = json.loads((out / "test_metrics.json").read_text())["calibration"]
    n_test = json.loads((out / "test_metrics.json").read_text())["n_test"]
    # calibration over the 12 free entries of each test crystal, not the 24 fixed ones
    sigma_test = np.broadcast_to(np.where(fixed, 0.0, 1.0), (n_test, 6, 6))
    _, counted = _metrics.stated(np.ones((n_test, 6, 6)), sigma_test)
    assert counted.size == 12 * n_test and report["elastic_tensor"]["within_2sigma"] >= 0


def test_members_must_share_their_targets_and_graph_geometry(ensemble_run):
    out, _ = ensemble_run
    nets = [xtalnet.load(out / f"member-{m}" / "best.pt") for m in (1, 2)]
    Ensemble(nets)  # inputs differ (species embedding): allowed
    other = NetworkConfig.from_dict({**nets[1].config.to_dict(), "r_cut": 4.0})
    with pytest.raises(ValueError, match=r"member 2 differs from member 1 in \['r_cut'\]"):
        Ensemble([nets[0], Network(other)])


def test_an_interrupted_ensemble_resumes_the_member_it_stopped_in(tmp_path, dcdft40):
    calls = {"n": 0}

    def stop_in_member_two(status):
        calls["n"] += 1
        if calls["n"] == OPTS["max_steps"] + 2:  # member 1 ran its 6 steps: step 2 of member 2
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        xtalnet.train(dcdft40, ["K_wien2k"], out, config=TINY, ensemble=3, progress=False,
                      options={**OPTS, "bootstrap": True, "seed": 1}, quiet=True,
                      callback=stop_in_member_two)  # fmt: skip
    first = (out / "member-1" / "best.pt").read_bytes()
    state = torch.load(out / "member-2" / "last.pt", weights_only=True)["state"]
    assert state["global_step"] == 2 and not state["done"]
    assert not (out / "test_metrics.json").exists()
    # the interrupted member names its ensemble to resume, not its own folder
    assert f"continue with --resume {out}\n" in (out / "member-2" / "train.log").read_text()
    with pytest.raises(ValueError, match=r"member\(s\) \['member-2', 'member-3'\]"):
        shutil.copytree(out, tmp_path / "copy")
        (tmp_path / "copy" / "member-2" / "best.pt").unlink(missing_ok=True)
        xtalnet.load(tmp_path / "copy")
    # no targets, as `xtalnet train --resume DIR` gives: the members' own
    xtalnet.train(dcdft40, [], out, resume=True, progress=False, quiet=True)
    assert (out / "member-1" / "best.pt").read_bytes() == first  # finished member kept
    done = torch.load(out / "member-2" / "last.pt", weights_only=True)["state"]
    assert done["done"] and done["global_step"] == OPTS["max_steps"]
    assert (out / "test_metrics.json").is_file()
    # member 3 had not started: it starts as member 1 did (bagged), with its own seed
    # (--seed 1, 3 members: seeds 3, 4, 5) on the split of --seed 1
    third = json.loads((out / "member-3" / "options.json").read_text())
    assert (third["seed"], third["split_seed"], third["bootstrap"]) == (5, 1, True)
    cfg3 = json.loads((out / "member-3" / "config.json").read_text())
    assert cfg3["seed"] == 5
    info = json.loads((out / "ensemble.json").read_text())
    assert (info["seeds"], info["init_seeds"], info["split_seed"]) == ([3, 4, 5], [3, 4, 5], 1)
    # ... and takes its own inputs: what the rule chose for member 1 is not passed on as given
    assert (cfg3["species_features"], cfg3["composition"]) == ("elemental", False)
    assert cfg3["provenance"]["composition"].startswith("rule:")


def test_resume_with_a_longer_training_length_continues_every_member(ensemble_run, tmp_path,
                                                                     dcdft40):  # fmt: skip
    """As `--resume RUN --time-limit 30` continues a finished run, so it continues each
    member of a finished ensemble (it kept them, trained nothing, rc 0); σ is refitted."""
    out = tmp_path / "ens"
    shutil.copytree(ensemble_run[0], out)
    before = json.loads((out / "ensemble.json").read_text())["sigma_scale"]
    more = OPTS["max_steps"] + 3
    xtalnet.train(dcdft40, [], out, options={"max_steps": more, "epochs": 9}, resume=True,
                  progress=False,
                  quiet=True)  # fmt: skip
    for m in (1, 2, 3):
        state = torch.load(out / f"member-{m}" / "last.pt", weights_only=True)["state"]
        assert state["done"] and state["global_step"] == more
    assert json.loads((out / "ensemble.json").read_text())["sigma_scale"] != before
    # the same length again: every member kept, nothing trained
    stamp = [(out / f"member-{m}" / "best.pt").read_bytes() for m in (1, 2, 3)]
    xtalnet.train(dcdft40, [], out, options={"max_steps": more, "epochs": 9}, resume=True,
                  progress=False,
                  quiet=True)  # fmt: skip
    assert stamp == [(out / f"member-{m}" / "best.pt").read_bytes() for m in (1, 2, 3)]


def test_a_member_trained_on_its_own_is_refused_or_noticed(ensemble_run, tmp_path, dcdft40,
                                                           capsys):  # fmt: skip
    """A member retrained alone left the ensemble's σ and scores stale without a word: the
    CLI refuses a member folder; where the API retrained one, load says so until the
    ensemble is resumed (which refits σ)."""
    out = tmp_path / "ens"
    shutil.copytree(ensemble_run[0], out)
    for flags in (["--resume", str(out / "member-1")],
                  ["--data", "builtin:dcdft", "--target", "K_wien2k", "--out",
                   str(out / "member-2"), "--overwrite"]):  # fmt: skip
        assert main(["train", *flags]) == 2
        err = capsys.readouterr().err
        assert f"is a member of the ensemble {str(out.resolve())!r}" in err
        assert f"--resume {str(out.resolve())!r}" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xtalnet.load(out)  # as scored: silent
    xtalnet.train(dcdft40, ["K_wien2k"], out / "member-1", config=TINY, overwrite=True,
                  options={**OPTS, "seed": 99}, progress=False, quiet=True)  # fmt: skip
    with pytest.warns(UserWarning, match=r"member\(s\) \['member-1'\] changed after its σ"):
        xtalnet.load(out)
    xtalnet.train(dcdft40, [], out, resume=True, progress=False, quiet=True)  # refits σ
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        xtalnet.load(out)


def test_evaluate_and_predict_write_the_spread(ensemble_run, tmp_path, capsys):
    out, _ = ensemble_run
    assert main(["evaluate", "--checkpoint", str(out), "--data", "builtin:dcdft", "--out",
                 str(tmp_path / "ev"), "--quiet"]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())["metrics"]["K_wien2k"]
    assert {"within_1sigma", "within_2sigma", "spearman"} <= set(metrics)
    with (tmp_path / "ev" / "predictions.csv").open() as f:
        evaluated = list(csv.DictReader(f))
    assert "K_wien2k.std" in evaluated[0]
    # the evaluation's prediction columns are the screening CSV's: the two join by name
    assert main(["predict", "--checkpoint", str(out), "--data", "builtin:dcdft", "--out",
                 str(tmp_path / "screen.csv"), "--quiet"]) == 0  # fmt: skip
    with (tmp_path / "screen.csv").open() as f:
        screened = {r["id"]: r for r in csv.DictReader(f)}
    shared = set(evaluated[0]) - {"id"}
    assert shared <= set(next(iter(screened.values())))
    for row in evaluated:
        for key in shared:
            if key.endswith("_true"):
                assert float(row[key]) == pytest.approx(float(screened[row["id"]][key]))
            else:
                assert float(row[key]) == pytest.approx(float(screened[row["id"]][key]), rel=1e-5)
    from pymatgen.io.ase import AseAtomsAdaptor

    AseAtomsAdaptor.get_structure(dcdft["Cu"]).to(filename=str(tmp_path / "Cu.cif"))
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(out), str(tmp_path / "Cu.cif")]) == 0
    assert "K_wien2k.std" in capsys.readouterr().out


@pytest.mark.parametrize("k", ["0", "65", "-2"])
def test_bad_ensemble_sizes_are_refused(tmp_path, k, capsys):
    assert main(["train", "--data", "builtin:dcdft", "--target", "K_wien2k", "--out",
                 str(tmp_path / "r"), "--ensemble", k]) == 2  # fmt: skip
    assert "--ensemble" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--ensemble must be an int in \[1, 64\]"):
        xtalnet.train("builtin:dcdft", ["K_wien2k"], tmp_path / "p", ensemble=int(k))


def test_an_ensemble_folder_is_a_run_that_only_overwrite_replaces(ensemble_run, tmp_path,
                                                                   dcdft40, capsys):  # fmt: skip
    """A single run aimed at an ensemble's folder is refused like any run (it used to train
    beside the members); --overwrite replaces the ensemble whole, and an ensemble started
    with --overwrite over a single run removes that run's files once member 1 started."""
    out = tmp_path / "ens"
    shutil.copytree(ensemble_run[0], out)
    before = sorted(p.name for p in out.iterdir())
    args = ["train", "--data", "builtin:dcdft", "--target", "K_wien2k", "--out", str(out),
            "--max-steps", "2", "--layers", "1", "--quiet", "--no-progress"]  # fmt: skip
    assert main(args) == 2
    assert "ensemble.json" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "ensemble.json").exists() and not (out / "member-1").exists()
    assert not list(out.glob("calibration_*.png"))
    assert not (out / "train_compositions.npz").exists()
    assert isinstance(xtalnet.load(out), xtalnet.Network)
    xtalnet.train(dcdft40, ["K_wien2k"], out, config=TINY, options=OPTS, ensemble=2,
                  overwrite=True, progress=False, quiet=True)  # fmt: skip
    assert not (out / "best.pt").exists() and not (out / "train.log").exists()
    assert isinstance(xtalnet.load(out), Ensemble)


def test_later_members_log_member_1s_recommendation_in_one_line(tmp_path, dcdft40):
    """Members 2 … K reuse member 1's audit; their log names its file (it printed the whole
    recommendation dict, ~1,500 characters). ``--resume`` of one member with ``--ensemble``
    says it is a single run (it said ``ensemble.json`` cannot be read)."""
    cfg = {k: v for k, v in TINY.items() if k not in ("r_cut", "num_layers")}
    out = tmp_path / "ens"
    xtalnet.train(dcdft40, ["K_wien2k"], out, config=cfg, options=OPTS, ensemble=2,
                  progress=False, quiet=True)  # fmt: skip
    first = (out / "member-1" / "train.log").read_text()
    second = (out / "member-2" / "train.log").read_text()
    assert "mp-audit recommendation on " in first
    line = next(x for x in second.splitlines() if x.startswith("mp-audit recommendation"))
    assert str(out / "member-1" / "recommendation.json") in line and "schema" not in line
    with pytest.raises(ValueError, match="is a single run, not an ensemble: --ensemble cannot"):
        xtalnet.train(dcdft40, [], out / "member-1", resume=True, ensemble=2, quiet=True)
