"""The calibration numbers of an ensemble's σ (xtalnet._metrics): Spearman's correlation
against scipy, and what an exact σ would reach (spearman_if_exact) against scipy draws, a
closed form and errors drawn from the σ itself."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr
from xtalnet._metrics import calibration, spearman, spearman_if_exact

values = st.lists(st.integers(0, 6), min_size=3, max_size=40)  # small integers: many ties


@settings(max_examples=60, deadline=None)
@given(a=values, b=values)
def test_spearman_is_scipys_with_ties(a, b):
    n = min(len(a), len(b))
    a, b = np.array(a[:n], float), np.array(b[:n], float)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert math.isnan(spearman(a, b))
    else:
        assert spearman(a, b) == pytest.approx(spearmanr(a, b)[0], abs=1e-12)


def test_spearman_if_exact_agrees_with_scipy_draws_of_normal_errors():
    g = np.random.default_rng(1)
    sigma = np.exp(g.uniform(-2.0, 1.0, 300))
    ours = spearman_if_exact(sigma, draws=400)
    g2 = np.random.default_rng(99)  # other draws, scipy's correlation
    theirs = [spearmanr(np.abs(g2.standard_normal(300)) * sigma, sigma)[0] for _ in range(400)]
    assert ours["spearman_if_exact"] == pytest.approx(np.mean(theirs), abs=0.01)
    lo, hi = np.percentile(theirs, [5, 95])
    assert ours["spearman_if_exact_p05"] == pytest.approx(lo, abs=0.03)
    assert ours["spearman_if_exact_p95"] == pytest.approx(hi, abs=0.03)
    assert ours == spearman_if_exact(sigma, draws=400)  # seeded: the same every time


def test_spearman_if_exact_of_two_far_apart_sigmas_is_the_step_correlation():
    """Half the entries with σ = 1, half with σ = 1e9: every error of the second half is
    larger, so |error| ranks as the step of σ: corr(1 … n, step)."""
    m = 50
    sigma = np.r_[np.ones(m), np.full(m, 1e9)]
    step = np.r_[np.zeros(m), np.ones(m)]
    want = np.corrcoef(np.arange(2 * m), step)[0, 1]
    got = spearman_if_exact(sigma)
    for k in ("spearman_if_exact", "spearman_if_exact_p05", "spearman_if_exact_p95"):
        assert got[k] == pytest.approx(want, abs=1e-12)


def test_errors_drawn_from_sigma_fall_inside_the_exact_interval_about_nine_times_in_ten():
    g = np.random.default_rng(7)
    sigma = np.exp(g.uniform(-1.5, 0.5, 142))
    band = spearman_if_exact(sigma)
    inside = [
        band["spearman_if_exact_p05"]
        <= spearman(np.abs(g.standard_normal(142)) * sigma, sigma)
        <= band["spearman_if_exact_p95"]
        for _ in range(300)
    ]
    assert 0.83 <= np.mean(inside) <= 0.96


def test_constant_or_too_few_sigmas_give_nan():
    assert all(math.isnan(v) for v in spearman_if_exact(np.full(10, 0.3)).values())
    assert all(math.isnan(v) for v in spearman_if_exact([0.1, 0.2]).values())
    cal = calibration([np.nan, np.nan], [1.0, 2.0])
    assert math.isnan(cal["spearman"]) and math.isnan(cal["spearman_if_exact"])
