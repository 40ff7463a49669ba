"""The composition distance to the training data (xtalnet.composition_distance) against
pymatgen's fractional compositions, its invariances, its file round trip, and the fit of the
σ model k sqrt(spread² + w d²) (xtalnet._metrics.sigma_fit) on errors drawn from it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymatgen.core import Composition, Element
from xtalnet._metrics import sigma_fit, sigma_scale
from xtalnet.composition_distance import TrainingCompositions

cells = st.lists(st.integers(1, 94), min_size=1, max_size=12)


def pymatgen_distance(cell: list[int], train: list[list[int]]) -> float:
    """min over the training cells of sum_el |x_el - t_el| on pymatgen's fractional
    compositions (an independent reference)."""

    def frac(zs: list[int]) -> dict[str, float]:
        comp = Composition(Counter(Element.from_Z(z).symbol for z in zs)).fractional_composition
        return {str(e): float(x) for e, x in comp.items()}

    x = frac(cell)
    dist = []
    for t in map(frac, train):
        dist.append(sum(abs(x.get(e, 0.0) - t.get(e, 0.0)) for e in set(x) | set(t)))
    return min(dist)


@settings(max_examples=40, deadline=None)
@given(train=st.lists(cells, min_size=1, max_size=8), queries=st.lists(cells, min_size=1,
                                                                        max_size=6))  # fmt: skip
def test_the_distance_is_pymatgens_nearest_l1_distance(train, queries):
    comps = TrainingCompositions.from_numbers(train)
    got = comps.distance(queries)
    want = [pymatgen_distance(q, train) for q in queries]
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert ((got >= 0) & (got <= 2)).all()


@settings(max_examples=25, deadline=None)
@given(train=st.lists(cells, min_size=1, max_size=8), pick=st.integers(0, 7),
       repeat=st.integers(2, 4), seed=st.integers(0, 2**16))  # fmt: skip
def test_a_training_composition_is_at_distance_zero_in_any_cell(train, pick, repeat, seed):
    """Supercells and reorderings of a training crystal's atoms: distance 0."""
    cell = train[pick % len(train)]
    shuffled = np.random.default_rng(seed).permutation(np.tile(cell, repeat))
    comps = TrainingCompositions.from_numbers(train)
    # exactly 0, not rounding (a w fitted on distances of 1e-16 would blow σ up)
    assert (comps.distance([cell, shuffled]) == 0.0).all()


def test_unknown_elements_disjoint_compositions_and_unread_rows():
    comps = TrainingCompositions.from_numbers([[8, 8, 12], [14]])  # MgO2 ... MgO, Si
    d = comps.distance([[94, 94], [1, 2], None, [12, 8]])
    assert d[0] == 2.0 and d[1] == 2.0 and np.isnan(d[2])
    # Mg1 O1 vs Mg1/3 O2/3: |1/2 - 1/3| + |1/2 - 2/3| = 1/3
    np.testing.assert_allclose(d[3], 1 / 3, atol=1e-12)


def test_many_queries_against_many_training_cells_match_a_dense_brute_force():
    """Queries with elements no training cell holds (Z >= 60) and repeated training rows."""
    g = np.random.default_rng(3)
    train = [g.integers(1, 60, size=g.integers(1, 6)).tolist() for _ in range(300)]
    train += train[:40]  # polymorphs: one distinct composition each
    queries = [g.integers(1, 90, size=g.integers(1, 6)).tolist() for _ in range(200)]

    def dense(cells: list[list[int]]) -> np.ndarray:
        x = np.zeros((len(cells), 95))
        for r, z in enumerate(cells):
            np.add.at(x[r], z, 1.0 / len(z))
        return x

    want = np.abs(dense(queries)[:, None, :] - dense(train)[None]).sum(-1).min(1)
    got = TrainingCompositions.from_numbers(train).distance(queries)
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got[0] == pytest.approx(pymatgen_distance(queries[0], train), abs=1e-12)


def test_the_file_round_trip_and_a_broken_file(tmp_path):
    comps = TrainingCompositions.from_numbers([[8, 8, 12], [14], [26, 26, 8, 8, 8]])
    path = tmp_path / "train_compositions.npz"
    comps.save(path)
    back = TrainingCompositions.load(path)
    queries = [[8, 12], [26, 8], [1], [12, 8, 8], [14, 14]]
    np.testing.assert_array_equal(back.distance(queries), comps.distance(queries))
    assert (back.distance(queries)[-2:] == 0.0).all()
    good = path.read_bytes()
    path.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match=r"train_compositions\.npz.*cannot be read.*not an \.npz"):
        TrainingCompositions.load(path)
    path.write_bytes(good[: len(good) // 2])  # cut short: the archive's directory is gone
    with pytest.raises(ValueError, match=r"train_compositions\.npz.*cannot be read"):
        TrainingCompositions.load(path)
    path.unlink()
    with pytest.raises(ValueError, match=r"train_compositions\.npz.*cannot be read"):
        TrainingCompositions.load(path)
    with pytest.raises(ValueError, match="no training crystals"):
        TrainingCompositions.from_numbers([])


@pytest.mark.parametrize("k, w", [(1.7, 0.02), (0.6, 0.3), (2.0, 0.0)])
def test_sigma_fit_recovers_the_scale_and_weight_errors_were_drawn_with(k, w):
    g = np.random.default_rng(0)
    n = 40_000
    spread = g.uniform(0.01, 0.2, n)
    distance = g.uniform(0.0, 2.0, n)
    error = g.normal(size=n) * k * np.sqrt(spread**2 + w * distance**2)
    k_fit, w_fit = sigma_fit(error, spread, distance)
    assert k_fit == pytest.approx(k, rel=0.05)
    if w == 0:
        # the smallest weight on the grid is 1e-3 of mean(spread^2) / mean(distance^2)
        assert w_fit <= 0.01 * np.mean(spread**2) / np.mean(distance**2)
    else:
        assert w_fit == pytest.approx(w, rel=0.15)


def test_sigma_fit_without_distances_is_the_scale_alone():
    g = np.random.default_rng(1)
    spread = g.uniform(0.1, 1.0, (50, 3, 3))  # a tensor target: distance per structure
    error = g.normal(size=spread.shape) * spread
    k, w = sigma_fit(error, spread, np.zeros(50))
    assert w == 0.0 and k == pytest.approx(sigma_scale(error, spread), rel=1e-12)
    assert sigma_fit(np.zeros(4), np.ones(4), np.ones(4)) == (1.0, 0.0)


def test_sigma_fit_ignores_distances_that_are_all_zero_or_too_few():
    """Validation compositions all seen in training (d = 0) or fewer than 3 unseen: w = 0 and
    k the scale alone, never a weight fitted on noise."""
    g = np.random.default_rng(2)
    spread = g.uniform(0.1, 1.0, 200)
    error = g.normal(size=200) * 2.0 * spread
    for d in (np.zeros(200), np.r_[np.zeros(198), 0.5, 1.0]):
        k, w = sigma_fit(error, spread, d)
        assert w == 0.0 and k == pytest.approx(sigma_scale(error, spread), rel=1e-12)


def test_sigma_fit_leaves_out_entries_whose_members_agree_exactly():
    """Spread 0 (band gaps every member decodes as a metal, error mostly exactly 0): not a
    normal error, left out of the fit as the scale alone always left them out."""
    g = np.random.default_rng(4)
    spread = g.uniform(0.1, 1.0, 300)
    distance = g.uniform(0.0, 2.0, 300)
    error = g.normal(size=300) * 1.5 * np.sqrt(spread**2 + 0.1 * distance**2)
    fitted = sigma_fit(error, spread, distance)
    agree = (np.r_[error, np.zeros(20), np.ones(5)], np.r_[spread, np.zeros(25)],
             np.r_[distance, np.full(25, 1.5)])  # fmt: skip
    assert sigma_fit(*agree) == fitted and fitted[1] > 0


def test_sigma_scale_is_not_set_by_a_few_members_agreeing_on_a_wrong_answer():
    """Two members agreeing on diamond's C11 to 0.04 GPa, 351 GPa off: one such entry in a
    thousand made the likelihood's k ~ 200 (σ 40x the typical error). The coverage fit
    keeps k where 95.4 % of the errors lie within 2σ."""
    g = np.random.default_rng(5)
    spread = g.uniform(1.0, 10.0, 2000)
    error = g.normal(size=2000) * 1.5 * spread
    spread[:2], error[:2] = 0.035, 351.0  # agreed, and wrong
    k, w = sigma_fit(error, spread, np.zeros(2000))
    assert w == 0.0 and k == pytest.approx(1.5, rel=0.1)
    assert np.sqrt(np.mean((error / spread) ** 2)) > 100  # what the likelihood's k was
    assert np.mean(np.abs(error) <= 2 * k * spread) == pytest.approx(0.954, abs=0.002)
