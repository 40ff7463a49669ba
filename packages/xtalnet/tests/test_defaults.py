"""The defaults rule (xtalnet.defaults), composition statistics and the IEEE frame."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import xtalnet
from ase.build import bulk
from pymatgen.core import Lattice, Structure
from pymatgen.core.tensors import Tensor
from pymatgen.io.ase import AseAtomsAdaptor
from rsh.testing import random_rotation
from xtalnet._cli import main
from xtalnet.data import graph_of, orient
from xtalnet.defaults import choose, member_inputs, option_choices
from xtalnet.heads import TargetSpec
from xtalnet.nn.composition import composition_statistics

REC = {"r_cut": 5.0, "layers": 3}


def _by_field(choices):
    return {c.field: c for c in choices}


def test_scalar_targets_get_one_layer_the_audits_cutoff_and_both_embeddings():
    got = _by_field(choose(["formation_energy_per_atom"], 846, REC, {}))
    assert got["species_features"].value == "both" and got["composition"].value is True
    # log targets (the moduli) and tensors keep the descriptors alone, as does any run
    # with one of them among its targets
    for targets in (["K_VRH"], ["elastic_tensor"], ["formation_energy_per_atom", "K_VRH"]):
        other = _by_field(choose(targets, 846, REC, {}))
        assert other["species_features"].value == "elemental", targets
    assert got["tensor_frame"].value == "as_given" and got["r_cut"].value == 5.0
    assert (
        got["num_layers"].value == 1 and "audit's 3 is the upper bound" in got["num_layers"].reason
    )
    opts = _by_field(option_choices(["formation_energy_per_atom"], {"time_limit": 5.0}, {}))
    assert (opts["weight_decay"].value, opts["loss"].value, opts["batch_size"].value) == (
        0.2, "l1", 16)  # fmt: skip
    assert opts["epochs"].value >= 10_000  # the time decides
    assert opts["patience"].value >= opts["epochs"].value  # the schedule anneals to the end
    untimed = _by_field(option_choices(["y"], {}, {}))
    assert (untimed["epochs"].value, untimed["patience"].value) == (300, 100)
    gap = _by_field(option_choices(["band_gap"], {}, {}))
    assert (gap["loss"].value, gap["select"].value) == ("l1", "mae")
    assert opts["select"].value == "loss"


def test_band_gaps_get_both_species_embeddings():
    got = _by_field(choose(["band_gap"], 846, REC, {}))
    assert got["species_features"].value == "both" and got["composition"].value is True


@pytest.mark.parametrize(
    ("target", "given", "members"),
    [
        # three of five members with both embeddings
        ("formation_energy_per_atom", {}, [("both", True), ("elemental", True), ("both", True),
                                           ("elemental", False), ("both", True),
                                           ("both", True), ("elemental", True)]),
        ("K_VRH", {}, [("elemental", True), ("both", True), ("elemental", False),
                       ("elemental", True)]),
        ("band_gap", {}, [("both", True), ("both", False), ("both", True)]),
        ("formation_energy_per_atom", {"composition": True},
         [("both", None), ("elemental", None), ("both", None)]),
        # both embeddings without composition statistics is no member: descriptors only
        ("formation_energy_per_atom", {"composition": False}, [("elemental", None)] * 3),
        ("formation_energy_per_atom", {"species_features": "elemental"},
         [(None, True), (None, False), (None, True)]),
        # a value no combination has: the open field still varies
        ("formation_energy_per_atom", {"species_features": "onehot"},
         [(None, True), (None, False), (None, True)]),
        ("band_gap", {"species_features": "elemental"}, [(None, True), (None, False)]),
        ("formation_energy_per_atom", {"species_features": "onehot", "composition": True},
         [(None, None)] * 3),
    ],
)  # fmt: skip
def test_ensemble_members_vary_the_inputs_left_open(target, given, members):
    specs = [TargetSpec.parse(target)]
    got = [member_inputs(m, given, specs) for m in range(1, len(members) + 1)]
    assert [(g.get("species_features"), g.get("composition")) for g in got] == members
    assert member_inputs(0, given, specs) == got[0]  # a run of its own: member 1's inputs
    chosen = _by_field(choose([target], 846, REC, given, member=2))
    assert not set(given) & set(chosen)
    for field, value in got[1].items():
        assert chosen[field].value == value and "ensemble member 2" in chosen[field].reason


def test_tensor_targets_get_their_filters_layers_the_ieee_frame_and_the_l1_loss():
    got = _by_field(choose(["elastic_tensor", "K_VRH"], 945, {"r_cut": 4.0, "layers": 1}, {}))
    assert got["l_filter_max"].value == 4 and "cubic site" in got["l_filter_max"].reason
    assert got["num_layers"].value == 1  # filters of l = 4 reach the 4e irrep in one layer
    assert got["tensor_frame"].value == "ieee"
    assert _by_field(choose(["piezoelectric_tensor"], 753, REC, {}))["l_filter_max"].value == 3
    for plain in (["e_total"], ["formation_energy_per_atom"], ["band_gap"]):
        assert "l_filter_max" not in _by_field(choose(plain, 844, REC, {}))  # 2 reaches them
    kept = _by_field(choose(["elastic_tensor"], 945, REC, {"l_filter_max": 2}))
    assert "l_filter_max" not in kept and kept["num_layers"].value == 2  # given: it wins
    assert _by_field(choose(["e_total"], 844, REC, {}))["tensor_frame"].value == "as_given"
    opts = _by_field(option_choices(["piezoelectric_tensor"], {}, {}))
    assert (opts["loss"].value, opts["weight_decay"].value) == ("l1", 0.2)


def test_an_explicit_field_always_wins():
    given = {"num_layers": 3, "species_features": "onehot", "tensor_frame": "as_given"}
    got = _by_field(choose(["elastic_tensor"], 10, REC, given))
    assert not set(given) & set(got)
    assert not _by_field(option_choices(["y"], {"lr": 1e-2, "loss": "huber"}, {})).keys() & {
        "lr", "loss"}  # fmt: skip
    split = _by_field(option_choices(["y"], {}, {"val": "v.csv", "test": None}))["split"]
    assert split.value == (1.0, 0.0, 0.0)
    assert "split" not in _by_field(option_choices(["y"], {"split": (0.8, 0.1, 0.1)},
                                                   {"val": "v.csv"}))  # fmt: skip


METALS = (("Cu", 3.6), ("Al", 4.05), ("Ni", 3.52), ("Ag", 4.09), ("Pd", 3.89), ("Pt", 3.92),
          ("Au", 4.08), ("Pb", 4.95))  # fmt: skip


def _metals_csv(path):
    """The 8 fcc metals with y = 1..8 as a CSV of CIFs; returns the rows."""
    rows = []
    for k, (sym, a) in enumerate(METALS):
        cif = AseAtomsAdaptor.get_structure(bulk(sym, "fcc", a=a)).to(fmt="cif")
        rows.append({"material_id": f"m{k}", "cif": cif, "y": 1.0 + k})
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def test_val_without_test_trains_on_all_of_data_and_records_provenance(tmp_path, tiny_config):
    _metals_csv(tmp_path / "d.csv")
    (tmp_path / "cfg.json").write_text(json.dumps(tiny_config))
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "d.csv"), "--val", str(tmp_path / "d.csv"),
                 "--target", "y", "--out", str(run), "--config", str(tmp_path / "cfg.json"),
                 "--r-cut", "5", "--max-steps", "1", "--quiet", "--no-progress"]) == 0  # fmt: skip
    split = json.loads((run / "split.json").read_text())
    assert len(split["train"]) == 8 and split["test"] == []
    options = json.loads((run / "options.json").read_text())
    assert options["split"] == [1.0, 0.0, 0.0] and options["provenance"]["split"].startswith(
        "rule: --val given without --test")  # fmt: skip
    assert options["provenance"]["max_steps"] == "given"
    config = json.loads((run / "config.json").read_text())
    assert config["provenance"]["r_cut"] == "given"
    assert config["provenance"]["num_layers"].startswith("rule: the fewest")
    assert xtalnet.NetworkConfig.from_json(run / "config.json").composition is True


# ------------------------------------------------------------------------------ composition
def test_composition_statistics_against_a_direct_computation():
    """Weighted mean / std / min / max of the descriptors of a formula, by hand."""
    table = torch.tensor(np.random.default_rng(0).normal(size=(95, 3)))
    numbers = torch.tensor([8, 8, 12, 26, 26, 26])  # MgO + Fe3 in two structures
    batch = torch.tensor([0, 0, 0, 1, 1, 1])
    stats = composition_statistics(table, numbers, batch, 2)
    rows = table[numbers[:3]].numpy()
    mean = rows.mean(0)
    expected = np.concatenate([mean, np.sqrt(((rows - mean) ** 2).mean(0)), rows.min(0),
                               rows.max(0)])  # fmt: skip
    np.testing.assert_allclose(stats[0].numpy(), expected, rtol=1e-12, atol=1e-12)
    fe = table[26].numpy()
    np.testing.assert_allclose(stats[1].numpy(), np.concatenate([fe, 0 * fe, fe, fe]), atol=1e-12)


def test_composition_keeps_every_invariance_and_equivariance():
    """With composition statistics the tensor predictions stay O(3)-equivariant and the
    scalars invariant under a supercell (same formula, same statistics)."""
    cfg = xtalnet.NetworkConfig(targets=["formation_energy_per_atom", "dielectric"],
                                dtype="float64", composition=True, seed=2)  # fmt: skip
    net = xtalnet.Network(cfg)
    net.target_heads["formation_energy_per_atom"].fit([0.0, 1.0])
    net.target_heads["dielectric"].fit([np.diag([2.0, 3.0, 4.0]), np.eye(3)])
    zno = bulk("ZnO", "wurtzite", a=3.25, c=5.2)
    zno.rattle(0.05, seed=1)
    r = random_rotation(1, parity=True, generator=torch.Generator().manual_seed(0))[0].numpy()
    turned = zno.copy()
    turned.set_cell(zno.get_cell()[:] @ r.T)
    turned.positions = zno.positions @ r.T
    a, b, c = (net.predict([x]) for x in (zno, turned, zno * (2, 1, 1)))
    np.testing.assert_allclose(b["dielectric"][0], r @ a["dielectric"][0] @ r.T, atol=1e-10)
    np.testing.assert_allclose(c["formation_energy_per_atom"], a["formation_energy_per_atom"],
                               rtol=1e-10)  # fmt: skip


# ------------------------------------------------------------------------------ IEEE frame
def _wurtzite_and_turned(seed: int) -> tuple[Structure, Structure, np.ndarray]:
    """ZnO (wurtzite) and a copy turned by a random rotation r (also returned)."""
    hexa = Structure(Lattice.hexagonal(3.25, 5.2), ["Zn", "Zn", "O", "O"],
                     [[1 / 3, 2 / 3, 0], [2 / 3, 1 / 3, 0.5], [1 / 3, 2 / 3, 0.38],
                      [2 / 3, 1 / 3, 0.88]])  # fmt: skip
    r = random_rotation(1, generator=torch.Generator().manual_seed(seed))[0].numpy()
    turned = Structure(Lattice(hexa.lattice.matrix @ r.T), hexa.species, hexa.cart_coords @ r.T,
                       coords_are_cartesian=True)  # fmt: skip
    return hexa, turned, r


def test_orient_rotates_into_pymatgens_ieee_frame_and_predictions_become_invariant():
    hexa, turned, _ = _wurtzite_and_turned(3)
    cfg = xtalnet.NetworkConfig(targets=["elastic_tensor"], num_layers=2, dtype="float64",
                                tensor_frame="ieee", seed=1)  # fmt: skip
    a, b = orient(hexa, cfg), orient(turned, cfg)
    ieee = np.asarray(Tensor.get_ieee_rotation(hexa))
    np.testing.assert_allclose(a.lattice.matrix, hexa.lattice.matrix @ ieee.T, atol=1e-9)
    # the c axis of a hexagonal crystal is z in the IEEE frame, whatever the input frame
    for s in (a, b):
        c = s.lattice.matrix[2] / np.linalg.norm(s.lattice.matrix[2])
        assert abs(abs(c[2]) - 1) < 1e-6
    net = xtalnet.Network(cfg)
    net.target_heads["elastic_tensor"].fit([np.eye(6) * 100 + 10, np.eye(6) * 50])
    pa, pb = (net.predict([s])["elastic_tensor"][0] for s in (hexa, turned))
    np.testing.assert_allclose(pb, pa, atol=1e-8 * np.abs(pa).max())
    with pytest.raises(ValueError, match="tensor_frame"):
        xtalnet.NetworkConfig(tensor_frame="lab")


@pytest.mark.parametrize("c", [3.37, 9.0])  # c < a: pymatgen alone put c along x
def test_orient_puts_a_tetragonal_crystals_fourfold_axis_along_z(c):
    """IEEE 176 and the Materials Project's tensors: c (the fourfold axis) along z, a along x,
    also where c < a (70 of the 193 tetragonal de Jong crystals)."""
    tetra = Structure(
        Lattice.tetragonal(6.53, c),
        ["Ba", "Ti", "O", "O"],
        [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0]],
    )  # P4/mmm
    r = random_rotation(1, generator=torch.Generator().manual_seed(5))[0].numpy()
    turned = Structure(Lattice(tetra.lattice.matrix @ r.T), tetra.species,
                       tetra.cart_coords @ r.T, coords_are_cartesian=True)  # fmt: skip
    cfg = xtalnet.NetworkConfig(targets=["elastic_tensor"], tensor_frame="ieee")
    for s in (tetra, turned):
        m = orient(s, cfg).lattice.matrix
        lengths = np.linalg.norm(m, axis=1)
        axis = m[np.argmin(np.abs(lengths - c))] / c  # the lattice vector of length c
        assert abs(abs(axis[2]) - 1) < 1e-6, (c, m)
        a = m[np.argmin(np.abs(lengths - 6.53))] / 6.53
        assert abs(a[2]) < 1e-6 and max(abs(a[0]), abs(a[1])) > 1 - 1e-6  # a along x or y
        assert np.isclose(np.linalg.det(m), tetra.volume)  # a proper rotation
    if c > 6.53:  # pymatgen's rotation was right here: kept as it is
        ieee = np.asarray(Tensor.get_ieee_rotation(tetra))
        np.testing.assert_allclose(orient(tetra, cfg).lattice.matrix,
                                   tetra.lattice.matrix @ ieee.T, atol=1e-12)  # fmt: skip


def test_select_mae_picks_best_pt_by_the_relative_validation_mae(tmp_path, tiny_config):
    rows = _metals_csv(tmp_path / "d.csv")
    xtalnet.train(str(tmp_path / "d.csv"), ["y"], tmp_path / "r",
                  config={**tiny_config, "r_cut": 5.0},
                  options={"select": "mae", "epochs": 4, "batch_size": 2, "split": (0.5, 0.5, 0.0)},
                  progress=False, quiet=True)  # fmt: skip
    history = [
        json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    scores = [r["val_score"] for r in history]
    best = min(range(len(scores)), key=scores.__getitem__) + 1
    state = torch.load(tmp_path / "r" / "last.pt", weights_only=True)["state"]
    assert state["best_epoch"] == best and state["best_val"] == pytest.approx(min(scores))
    # the score is the validation MAE over the mean predictor's (the train mean)
    split = json.loads((tmp_path / "r" / "split.json").read_text())
    ys = {r["material_id"]: r["y"] for r in rows}
    mean = np.mean([ys[i] for i in split["train"]])
    base = np.mean([abs(ys[i] - mean) for i in split["val"]])
    assert scores[0] == pytest.approx(history[0]["val_y_mae"] / base, rel=1e-9)
    with pytest.raises(ValueError, match="select must be one of"):
        xtalnet.TrainOptions(select="rmse")


def test_orient_survives_the_ties_where_pymatgens_ieee_rotation_raises():
    """pymatgen's rule raises on two equally long axes of a triclinic cell (a tetragonal
    crystal with its atoms displaced: ValueError) and on a monoclinic conventional cell with
    every angle 90° (a doped cubic cell: StopIteration). Its own rule, ties kept in lattice
    order, gives what it gives when the tie is broken by 1e-9 of a length; the doped cell's
    rotation is proper and keeps the structure (every interatomic distance)."""
    rng = np.random.default_rng(0)
    tetra = Structure(Lattice.tetragonal(6.2, 5.0), ["Nb", "Nb", "Co", "Si"],
                      [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])  # fmt: skip
    noisy = Structure(tetra.lattice, tetra.species,
                      tetra.cart_coords + rng.normal(0, 0.02, (4, 3)),
                      coords_are_cartesian=True)  # fmt: skip
    with pytest.raises(ValueError):
        Tensor.get_ieee_rotation(noisy)  # the tie: pymatgen compares the vectors
    cfg = xtalnet.NetworkConfig(targets=["elastic_tensor"], tensor_frame="ieee")
    got = orient(noisy, cfg).lattice.matrix
    stretched = noisy.lattice.matrix * np.array([[1.0], [1.0 + 1e-9], [1.0]])  # b a bit longer
    r = np.asarray(Tensor.get_ieee_rotation(Structure(stretched, noisy.species,
                                                      noisy.frac_coords)))  # fmt: skip
    np.testing.assert_allclose(got, noisy.lattice.matrix @ r.T, atol=1e-6)
    si = Structure.from_spacegroup("Fd-3m", Lattice.cubic(5.43), ["Si"], [[0, 0, 0]])
    for site, element in ((0, "Ge"), (3, "C"), (6, "Sn")):
        si.replace(site, element)
    with pytest.raises(StopIteration):
        Tensor.get_ieee_rotation(si)
    turned = orient(si, cfg)
    assert np.isclose(np.linalg.det(turned.lattice.matrix), si.volume)  # proper: no mirror
    np.testing.assert_allclose(turned.distance_matrix, si.distance_matrix, atol=1e-9)
    assert graph_of(si, 0, cfg).positions.shape == (8, 3)  # predictable, not "no IEEE orientation"


def test_frame_rotation_takes_ieee_predictions_back_to_the_input_axes():
    """Predictions of an IEEE-frame model are the same for a crystal and its rotated copy;
    taken back with ``frame_rotation`` they co-rotate with the input: C(turned) = r · C(hexa)
    (pymatgen's rotation of the elastic tensor, an independent reference)."""
    from pymatgen.analysis.elasticity import ElasticTensor

    hexa, turned, r = _wurtzite_and_turned(11)
    cfg = xtalnet.NetworkConfig(targets=["elastic_tensor"], num_layers=2, dtype="float64",
                                tensor_frame="ieee", seed=2)  # fmt: skip
    net = xtalnet.Network(cfg)
    net.target_heads["elastic_tensor"].fit([np.eye(6) * 100 + 10, np.eye(6) * 50])
    back = {}
    for name, s in (("hexa", hexa), ("turned", turned)):
        c = net.predict([s])["elastic_tensor"][0]
        rot = xtalnet.frame_rotation(s, cfg)
        np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
        back[name] = ElasticTensor.from_voigt(c).rotate(rot.T, tol=1e-6).voigt
    expected = ElasticTensor.from_voigt(back["hexa"]).rotate(r, tol=1e-6).voigt
    np.testing.assert_allclose(back["turned"], expected, atol=1e-8 * np.abs(expected).max())
    assert not np.allclose(back["turned"], back["hexa"], atol=1e-3)  # the rotation shows
    plain = xtalnet.NetworkConfig(targets=["elastic_tensor"], tensor_frame="as_given")
    np.testing.assert_array_equal(xtalnet.frame_rotation(turned, plain), np.eye(3))


def test_default_filters_let_cubic_site_crystals_be_anisotropic_and_piezoelectric():
    """With filters of l <= 2 an atom on a cubic (tetrahedral) site has no l > 0 feature, so
    any network predicts every rocksalt / fcc / diamond / zincblende crystal's elastic tensor
    isotropic (Zener ratio 2 C44 / (C11 - C12) exactly 1) and zincblende's e14 exactly 0;
    with the rule's filters (l = 4, 3) an untrained network already breaks both."""
    crystals = [AseAtomsAdaptor.get_structure(bulk(*a, **k)) for a, k in (
        (("NaCl", "rocksalt"), {"a": 5.64}), (("Cu", "fcc"), {"a": 3.61}),
        (("Si", "diamond"), {"a": 5.43}), (("GaAs", "zincblende"), {"a": 5.65}))]  # fmt: skip
    rng = np.random.default_rng(0)
    cubic = []
    for _ in range(20):
        c = np.zeros((6, 6))
        c[:3, :3] = rng.uniform(30, 100)
        c[np.arange(3), np.arange(3)] = rng.uniform(150, 300)
        c[np.arange(3, 6), np.arange(3, 6)] = rng.uniform(20, 150)
        cubic.append(c)
    targets = ["elastic_tensor", "piezoelectric_tensor"]
    rule = {c.field: c.value for c in choose(targets, 900, {"r_cut": 5.0, "layers": 3}, {})}
    assert rule["l_filter_max"] == 4  # (two layers: the piezoelectric 2o needs them)
    zener, e14 = {}, {}
    for lmax, layers in ((2, 2), (rule["l_filter_max"], rule["num_layers"])):
        cfg = xtalnet.NetworkConfig(targets=targets, r_cut=5.0, dtype="float64", seed=1,
                                    num_layers=layers, l_filter_max=lmax,
                                    tensor_frame="ieee")  # fmt: skip
        net = xtalnet.Network(cfg)
        net.target_heads["elastic_tensor"].fit(cubic)
        net.target_heads["piezoelectric_tensor"].fit([rng.normal(size=(3, 6)) for _ in range(20)])
        pred = net.predict(crystals)
        c = pred["elastic_tensor"]
        zener[lmax] = 2 * c[:, 3, 3] / (c[:, 0, 0] - c[:, 0, 1])
        e14[lmax] = pred["piezoelectric_tensor"][3][0, 3]
    np.testing.assert_allclose(zener[2], 1.0, atol=1e-9)
    assert abs(e14[2]) < 1e-12
    assert np.abs(zener[4] - 1).min() > 1e-3 and abs(e14[4]) > 1e-3


def test_piezoelectric_frames_put_an_mm2_crystals_polar_axis_along_z():
    """The Materials Project's piezoelectric tensors have an mm2 crystal's polar twofold axis
    along z; pymatgen's orthorhombic rule (c < a < b) puts it where its length falls (here
    the longest axis: y). With a piezoelectric target the frame turns it onto z, a proper
    rotation keeping every distance; elastic targets keep pymatgen's frame (their labels
    follow it)."""
    # Pmm2, its twofold axis along c
    polar = Structure(
        Lattice.orthorhombic(3.0, 3.5, 4.0), ["Ga", "N"], [[0, 0, 0], [0.5, 0.5, 0.3]]
    )
    piezo = xtalnet.NetworkConfig(targets=["piezoelectric_tensor"], tensor_frame="ieee")
    elastic = xtalnet.NetworkConfig(targets=["elastic_tensor"], tensor_frame="ieee")
    for cfg, along in ((piezo, 2), (elastic, 1)):
        turned = orient(polar, cfg)
        c = turned.lattice.matrix[2] / 4.0  # the polar axis, lattice vector c
        assert abs(abs(c[along]) - 1) < 1e-9, (cfg.targets, turned.lattice.matrix)
        assert np.isclose(np.linalg.det(turned.lattice.matrix), polar.volume)
        np.testing.assert_allclose(turned.distance_matrix, polar.distance_matrix, atol=1e-9)
