"""Reducers and statistics against pandas/scipy/pymatgen; the audit on built-in data."""

from __future__ import annotations

import mp_audit
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from mp_audit import Entry
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
        table[f"isolated_{r:g}"] = (table["nn_max"] >= r).astype(int)
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


def _hill_formulas(c: np.ndarray) -> dict[str, float]:
    """Voigt and Reuss averages written out (Hill 1952), Reuss from the compliance S = C^-1."""
    s = np.linalg.inv(c)
    k_v = (c[0, 0] + c[1, 1] + c[2, 2] + 2 * (c[0, 1] + c[1, 2] + c[2, 0])) / 9
    g_v = (np.trace(c[:3, :3]) - (c[0, 1] + c[1, 2] + c[2, 0]) + 3 * np.trace(c[3:, 3:])) / 15
    k_r = 1 / (s[0, 0] + s[1, 1] + s[2, 2] + 2 * (s[0, 1] + s[1, 2] + s[2, 0]))
    g_r = 15 / (
        4 * np.trace(s[:3, :3]) - 4 * (s[0, 1] + s[1, 2] + s[2, 0]) + 3 * np.trace(s[3:, 3:])
    )
    return {"K_Voigt": k_v, "K_Reuss": k_r, "G_Voigt": g_v, "G_Reuss": g_r,
            "K_VRH": (k_v + k_r) / 2, "G_VRH": (g_v + g_r) / 2}  # fmt: skip


@given(st.integers(0, 10_000))
def test_voigt_reuss_against_hill_formulas(seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(6, 6)) * 20
    c = a @ a.T + 100 * np.eye(6)
    got = mp_audit.voigt_reuss_bounds(c)
    for key, value in _hill_formulas(c).items():
        assert got[key] == pytest.approx(value, rel=1e-10)
    assert got["K_Reuss"] <= got["K_VRH"] <= got["K_Voigt"]


def test_voigt_reuss_cubic_closed_form():
    c11, c12, c44 = 247.0, 147.0, 125.0  # cubic, GPa
    c = np.zeros((6, 6))
    c[:3, :3] = c12
    np.fill_diagonal(c[:3, :3], c11)
    np.fill_diagonal(c[3:, 3:], c44)
    got = mp_audit.voigt_reuss_bounds(c)
    assert got["K_Voigt"] == pytest.approx((c11 + 2 * c12) / 3)
    assert got["K_Reuss"] == pytest.approx((c11 + 2 * c12) / 3)
    assert got["G_Voigt"] == pytest.approx((c11 - c12 + 3 * c44) / 5)
    g_r = 5 * (c11 - c12) * c44 / (4 * c44 + 3 * (c11 - c12))
    assert got["G_Reuss"] == pytest.approx(g_r)
    assert got["G_VRH"] == pytest.approx(((c11 - c12 + 3 * c44) / 5 + g_r) / 2)
    with pytest.raises(ValueError, match="tensor has shape"):
        mp_audit.voigt_reuss_bounds(np.eye(3))


def _isotropic(lam: float, mu: float) -> np.ndarray:
    """Stiffness (GPa) of an isotropic solid with Lamé parameters lam, mu."""
    c = np.zeros((6, 6))
    c[:3, :3] = lam
    c[:3, :3] += 2 * mu * np.eye(3)
    c[3:, 3:] = mu * np.eye(3)
    return c


def test_vrh_moduli_match_pymatgen(rng):
    from pymatgen.analysis.elasticity import ElasticTensor

    spd = [_spd(rng) for _ in range(20)]
    general = [rng.normal(size=(6, 6)) * 50 + 200 * np.eye(6) for _ in range(5)]
    c = np.array(spd + general)
    k, g = mp_audit.vrh_moduli(c)
    assert k.dtype == g.dtype == np.float64 and k.shape == g.shape == (len(c),)
    for n, cn in enumerate(c):
        et = ElasticTensor.from_voigt(cn)
        assert k[n] == pytest.approx(float(et.k_vrh), rel=1e-12, abs=1e-12)
        assert g[n] == pytest.approx(float(et.g_vrh), rel=1e-12, abs=1e-12)
        bounds = mp_audit.voigt_reuss_bounds(cn) if n < len(spd) else None
        if bounds is not None:  # the audit's own moduli are the same numbers
            assert bounds["K_VRH"] == pytest.approx(k[n], rel=1e-14)
            assert bounds["G_VRH"] == pytest.approx(g[n], rel=1e-14)


@given(st.floats(0.0, 300.0), st.floats(1.0, 300.0))
def test_vrh_moduli_isotropic_closed_form(lam, mu):
    k, g = mp_audit.vrh_moduli(_isotropic(lam, mu))
    assert k.shape == g.shape == (1,)
    assert k[0] == pytest.approx(lam + 2 * mu / 3, rel=1e-12)
    assert g[0] == pytest.approx(mu, rel=1e-12)


def test_vrh_moduli_singular_is_nan_and_bad_shapes_raise():
    c = np.stack([_isotropic(100.0, 50.0), np.zeros((6, 6)), _isotropic(10.0, 5.0)])
    c[1, 0, 0] = 1.0  # rank one: no compliance
    k, g = mp_audit.vrh_moduli(c)
    assert np.isnan(k[1]) and np.isnan(g[1])
    assert k[[0, 2]] == pytest.approx([100.0 + 100.0 / 3, 10.0 + 10.0 / 3])
    assert g[[0, 2]] == pytest.approx([50.0, 5.0])
    k0, g0 = mp_audit.vrh_moduli(np.zeros((0, 6, 6)))
    assert k0.shape == g0.shape == (0,)
    with pytest.raises(ValueError, match="voigt must have shape"):
        mp_audit.vrh_moduli(np.eye(3))
    with pytest.raises(ValueError, match="voigt must have shape"):
        mp_audit.vrh_moduli(np.zeros((2, 2, 6, 6)))
    with pytest.raises(TypeError, match="voigt must be a numeric"):
        mp_audit.vrh_moduli("stiff")


def _spd(rng) -> np.ndarray:
    a = rng.normal(size=(6, 6)) * 20
    return a @ a.T + 100 * np.eye(6)


def test_elastic_checks_good_and_bad(rng):
    c = _spd(rng)
    assert mp_audit.elastic_checks(c) == {
        "elastic_readable": True,
        "elastic_symmetric": True,
        "elastic_units_ok": True,
        "elastic_pd": True,
        "elastic_bounds_ok": True,
        "elastic_error": None,
    }
    bad = c.copy()
    bad[0, 0] = -500.0
    assert mp_audit.elastic_checks(bad)["elastic_pd"] is False
    stored = {"K_Reuss": 200.0, "K_VRH": 150.0, "K_Voigt": 190.0}
    assert mp_audit.elastic_checks(c, stored)["elastic_bounds_ok"] is False


def test_issue12_item8_non_symmetric_tensor_is_flagged():
    # issue 12 item 8: C12 = 99, C21 = 63.9 passed as positive definite and within bounds
    c = np.diag([250.0, 250.0, 250.0, 80.0, 80.0, 80.0])
    c[0, 1], c[1, 0] = 99.0, 63.9
    out = mp_audit.elastic_checks(c)
    assert out["elastic_readable"] is True and out["elastic_symmetric"] is False
    assert out["elastic_pd"] is None and out["elastic_bounds_ok"] is None
    assert "C12 = 99" in out["elastic_error"] and "C21 = 63.9" in out["elastic_error"]
    # rounding to whole GPa (trachote) keeps a symmetric tensor symmetric
    sym = np.round(_spd(np.random.default_rng(3)))
    assert mp_audit.elastic_checks(sym)["elastic_symmetric"] is True


def test_issue12_item8_values_in_pascal_are_flagged(rng):
    c = _spd(rng)
    out = mp_audit.elastic_checks(c * 1e9)  # Pa instead of GPa
    assert out["elastic_units_ok"] is False and "expected GPa" in out["elastic_error"]
    assert out["elastic_pd"] is True  # scale-free checks still made
    assert mp_audit.elastic_checks(c)["elastic_units_ok"] is True


@pytest.mark.parametrize(
    "tensor", [np.eye(3) * 100, np.full((6, 6), np.nan), "not a tensor", [[1, 2]], None]
)
def test_issue12_item8_unreadable_tensors(tensor):
    out = mp_audit.elastic_checks(tensor)
    assert out["elastic_readable"] is False
    assert out["elastic_error"].startswith("unreadable")
    # filed as unreadable only, never as "not positive definite" or "bounds broken"
    assert out["elastic_pd"] is None and out["elastic_bounds_ok"] is None


def test_issue12_item8_summary_files_each_reason(rng):
    good = _spd(rng)
    asym = np.diag([250.0, 250.0, 250.0, 80.0, 80.0, 80.0])
    asym[0, 1], asym[1, 0] = 99.0, 63.9
    not_pd = good.copy()
    not_pd[0, 0] = -500.0
    nacl = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0] * 3, [0.5] * 3]
    )
    tensors = {"ok": good, "asym": asym, "pa": good * 1e9, "npd": not_pd,
               "3x3": np.eye(3), "nan": np.full((6, 6), np.nan), "str": "oops"}  # fmt: skip
    entries = [Entry(k, nacl, {"elastic_tensor": v}) for k, v in tensors.items()]
    issues = mp_audit.audit(mp_audit.from_entries("t", entries), progress=False).summary[
        "data_issues"
    ]
    assert issues["elastic_checked"] == 7
    assert issues["elastic_unreadable"] == ["3x3", "nan", "str"]
    assert issues["elastic_not_symmetric"] == ["asym"]
    assert issues["elastic_not_gpa"] == ["pa"]
    assert issues["elastic_not_positive_definite"] == ["npd"]
    assert issues["elastic_bounds_broken"] == []


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


def test_prototypes_audit_is_consistent_with_pymatgen_neighbors():
    result = mp_audit.audit("builtin:prototypes", progress=False, limit=40)
    table = result.table.set_index("material_id")
    ds = mp_audit.load("builtin:prototypes", limit=40)
    for entry, s, _ in ds.structures():
        # pymatgen's own neighbor search as the independent reference
        nbrs = s.get_all_neighbors(6.0)
        nn = max(min(n.nn_distance for n in site) if site else np.inf for site in nbrs)
        assert table.loc[entry.material_id, "nn_max"] == pytest.approx(nn, rel=1e-9) or nn == np.inf


@pytest.mark.shared_data
def test_trachote_has_81_non_positive_definite_tensors(shared_data):
    ds = mp_audit.load(shared_data / "elastic/trachote_mp_elastic_val_clean.json.gz")
    checks = [mp_audit.elastic_checks(e.props["elastic_tensor"]) for e in ds]
    assert len(checks) == 1211
    # every tensor is readable, symmetric and in GPa; exactly the 81 of the data README
    # are not positive definite
    assert all(c["elastic_readable"] and c["elastic_symmetric"] for c in checks)
    assert all(c["elastic_units_ok"] for c in checks)
    assert sum(c["elastic_pd"] is False for c in checks) == 81
    dejong = mp_audit.load(shared_data / "elastic/matminer_elastic_tensor_2015.csv.gz")
    checks = [
        mp_audit.elastic_checks(
            e.props["elastic_tensor"], {k: e.props[k] for k in ("K_Voigt", "K_Reuss", "K_VRH")}
        )
        for e in dejong
    ]
    assert all(c["elastic_pd"] and c["elastic_bounds_ok"] for c in checks)
    assert all(c["elastic_symmetric"] and c["elastic_units_ok"] for c in checks)


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
    assert r.summary["data_issues"]["overlapping_atoms"] == []  # real MP cells: no overlaps
