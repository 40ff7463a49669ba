"""Reducers and statistics against pandas/scipy/pymatgen; the audit on built-in data."""

from __future__ import annotations

import mp_audit
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mp_audit import Entry
from pymatgen.analysis.elasticity import ElasticTensor
from pymatgen.core import Lattice, Structure
from scipy import stats


@given(st.lists(st.floats(-100, 100), min_size=4, max_size=60))
def test_moments_match_pandas_and_scipy(values):
    x = np.array(values)
    m = mp_audit.moments(x)
    ser = pd.Series(x)
    assert m["count"] == len(x)
    assert m["mean"] == pytest.approx(ser.mean(), abs=1e-9)
    assert m["std"] == pytest.approx(ser.std(), abs=1e-9)
    if np.std(x) > 1e-6 * max(1.0, np.abs(x).max()):
        assert m["skew"] == pytest.approx(stats.skew(x, bias=False), rel=1e-6, abs=1e-8)
        assert m["kurtosis"] == pytest.approx(stats.kurtosis(x, bias=False), rel=1e-6, abs=1e-8)
        assert m["skew"] == pytest.approx(ser.skew(), rel=1e-6, abs=1e-8)


def test_band_gap_stats(rng):
    gaps = np.where(rng.uniform(size=500) < 0.45, 0.0, rng.gamma(2.0, 1.0, size=500))
    s = mp_audit.band_gap_stats(gaps)
    nonzero = np.sqrt(gaps[gaps > 0])
    assert s["zero_fraction"] == pytest.approx(np.mean(gaps == 0))
    assert s["p"] == pytest.approx(1 - np.mean(gaps == 0))
    assert s["mu"] == pytest.approx(pd.Series(nonzero).mean())
    assert s["sigma"] == pytest.approx(pd.Series(nonzero).std())
    assert s["sqrt_nonzero"]["kurtosis"] == pytest.approx(pd.Series(nonzero).kurt())
    with pytest.raises(ValueError, match="zero_tol"):
        mp_audit.band_gap_stats(gaps, zero_tol=-1)


def test_coverage_and_recommendation_against_a_direct_count(rng):
    n = 400
    table = pd.DataFrame({"nn_max": rng.uniform(1, 4, n)})
    for r in mp_audit.DEFAULT_R_CUTS:
        comps = rng.integers(1, 3, n)
        table[f"isolated_{r:g}"] = (table["nn_max"] > r).astype(int)
        table[f"diameter_{r:g}"] = np.where(comps > 1, -1, rng.integers(0, 10, n))
    cov = mp_audit.coverage_table(table)
    for r in mp_audit.DEFAULT_R_CUTS:
        for layer in range(1, 9):
            ok = sum(
                1
                for _, row in table.iterrows()
                if row[f"isolated_{r:g}"] == 0 and 0 <= row[f"diameter_{r:g}"] <= layer
            )
            assert cov.loc[r, layer] == pytest.approx(ok / n)
    best = mp_audit.recommend(cov, target=0.3)
    first = next(r for r in cov.index if (cov.loc[r] >= 0.3).any())
    assert best["r_cut"] == first
    assert best["layers"] == min(c for c in cov.columns if cov.loc[first, c] >= 0.3)
    assert mp_audit.recommend(cov, target=1.0)["r_cut"] is None
    with pytest.raises(ValueError, match="target"):
        mp_audit.recommend(cov, target=1.5)


def test_voigt_reuss_against_pymatgen(rng):
    a = rng.normal(size=(6, 6)) * 20
    c = a @ a.T + 100 * np.eye(6)
    got = mp_audit.voigt_reuss_bounds(c)
    ref = ElasticTensor.from_voigt(c)
    assert got["K_Voigt"] == pytest.approx(ref.k_voigt)
    assert got["K_Reuss"] == pytest.approx(ref.k_reuss)
    assert got["G_Voigt"] == pytest.approx(ref.g_voigt)
    assert got["G_Reuss"] == pytest.approx(ref.g_reuss)
    assert mp_audit.elastic_checks(c) == {
        "elastic_pd": True,
        "elastic_bounds_ok": True,
        "elastic_error": None,
    }
    bad = c.copy()
    bad[0, 0] = -500.0
    assert mp_audit.elastic_checks(bad)["elastic_pd"] is False
    stored = {"K_Reuss": 200.0, "K_VRH": 150.0, "K_Voigt": 190.0}
    assert mp_audit.elastic_checks(c, stored)["elastic_bounds_ok"] is False
    assert mp_audit.elastic_checks([[1, 2]])["elastic_error"] is not None
    with pytest.raises(ValueError, match="tensor has shape"):
        mp_audit.voigt_reuss_bounds(np.eye(3))


def test_summary_issues_and_tables():
    nacl = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0] * 3, [0.5] * 3]
    )
    xe = Structure(Lattice.cubic(6.2), ["Xe"], [[0, 0, 0]])
    uo2 = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.47), ["U", "O"], [[0] * 3, [0.25] * 3])
    entries = [
        Entry(
            "mp-1",
            nacl,
            {
                "band_gap": 5.0,
                "formation_energy_per_atom": -2.0,
                "run_type": "GGA",
                "theoretical": False,
            },
        ),
        Entry(
            "mp-1",
            nacl,
            {
                "band_gap": 0.0,
                "formation_energy_per_atom": None,
                "run_type": "GGA+U",
                "theoretical": None,
            },
        ),
        Entry(
            "mp-ft",
            xe,
            {
                "band_gap": 7.0,
                "formation_energy_per_atom": 0.1,
                "run_type": "weird",
                "deprecated": True,
            },
        ),
        Entry("mp-u", uo2, {"band_gap": 2.0, "formation_energy_per_atom": -3.0, "run_type": "GGA"}),
    ]
    r = mp_audit.audit(mp_audit.from_entries("t", entries), progress=False)
    issues = r.summary["data_issues"]
    assert issues["duplicate_ids"] == ["mp-1"]
    assert issues["theoretical_none"] == ["mp-1"]
    assert issues["deprecated"] == ["mp-ft"]
    assert issues["unexpected_run_types"] == {"weird": 1}
    assert issues["missing_formation_energy_per_atom"] == ["mp-1"]
    noble = {row["element"]: row["structures"] for row in r.summary["noble_gases"]}
    radio = {row["element"]: row["structures"] for row in r.summary["radioactive"]}
    assert noble == {"He": 0, "Ne": 0, "Ar": 0, "Kr": 0, "Xe": 1}
    assert radio["U"] == 1 and radio["Pu"] == 0
    assert r.summary["elements"] == {"Cl": 2, "Na": 2, "O": 1, "U": 1, "Xe": 1}
    assert r.summary["sizes"]["max"] == 12
    fe = r.summary["formation_energy"]
    assert set(fe["by_run_type"]) == {"GGA", "weird"}
    assert fe["mean"] == pytest.approx(np.mean([-2.0, 0.1, -3.0]))
    assert r.summary["band_gap"]["zero_fraction"] == pytest.approx(0.25)
    assert r.recommendation["band_gap"]["p"] == pytest.approx(0.75)


def test_parallel_map_equals_serial():
    ds = mp_audit.load("builtin:dcdft", limit=30)
    serial = mp_audit.map_entries(ds, jobs=1, progress=False)
    parallel = mp_audit.map_entries(ds, jobs=2, chunk_size=7, progress=False)
    pd.testing.assert_frame_equal(serial, parallel)
    with pytest.raises(ValueError, match="jobs"):
        mp_audit.map_entries(ds, jobs=-1)


def test_prototypes_audit_is_consistent_with_pymatgen_neighbours():
    result = mp_audit.audit("builtin:prototypes", progress=False, limit=40)
    table = result.table.set_index("material_id")
    ds = mp_audit.load("builtin:prototypes", limit=40)
    for entry, s, _ in ds.structures():
        # pymatgen's own neighbour search as the independent reference
        nbrs = s.get_all_neighbors(6.0)
        nn = max(min(n.nn_distance for n in site) if site else np.inf for site in nbrs)
        assert table.loc[entry.material_id, "nn_max"] == pytest.approx(nn, rel=1e-9) or nn == np.inf


@pytest.mark.shared_data
def test_trachote_has_81_non_positive_definite_tensors(shared_data):
    ds = mp_audit.load(shared_data / "elastic/trachote_mp_elastic_val_clean.json.gz")
    not_pd = [e for e in ds if not mp_audit.elastic_checks(e.props["elastic_tensor"])["elastic_pd"]]
    assert len(not_pd) == 81
    dejong = mp_audit.load(shared_data / "elastic/matminer_elastic_tensor_2015.csv.gz")
    checks = [
        mp_audit.elastic_checks(
            e.props["elastic_tensor"], {k: e.props[k] for k in ("K_Voigt", "K_Reuss", "K_VRH")}
        )
        for e in dejong
    ]
    assert all(c["elastic_pd"] for c in checks)


@pytest.mark.shared_data
def test_mp20_subset_statistics(shared_data):
    r = mp_audit.audit(shared_data / "mp20/val.csv", progress=False, jobs=2)
    raw = pd.read_csv(shared_data / "mp20/val.csv")
    gaps = raw["band_gap"].to_numpy()
    assert r.summary["band_gap"]["zero_fraction"] == pytest.approx(np.mean(gaps == 0))
    nz = np.sqrt(gaps[gaps > 0])
    assert r.summary["band_gap"]["sqrt_nonzero"]["skew"] == pytest.approx(
        stats.skew(nz, bias=False)
    )
    assert r.summary["formation_energy"]["std"] == pytest.approx(
        raw["formation_energy_per_atom"].std()
    )
    assert r.summary["sizes"]["max"] <= 20
    assert r.summary["data_issues"]["parse_failures"] == []
