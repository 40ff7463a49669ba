"""Float Gaunt tables (quadrature with rsh) against the exact values."""

from __future__ import annotations

import itertools

import gaunt_elastic as ge
import pytest
import rsh.conventions
import torch
from gaunt_elastic import real_gaunt
from hypothesis import given, settings
from hypothesis import strategies as st


def test_tables_match_exact_all_l_le_6():
    worst = 0.0
    for l1, l2, l3 in itertools.product(range(7), repeat=3):
        block = ge.gaunt_tensor(l1, l2, l3)
        assert block.shape == (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
        for m1, m2, m3 in itertools.product(
            range(-l1, l1 + 1), range(-l2, l2 + 1), range(-l3, l3 + 1)
        ):
            exact = real_gaunt(l1, m1, l2, m2, l3, m3)
            got = block[m1 + l1, m2 + l2, m3 + l3].item()
            if exact == 0:
                # App. D selection rules give exact zeros; accidental zeros of the 3j
                # symbols come out at rounding level.
                assert abs(got) < 1e-15
            worst = max(worst, abs(got - exact))
    assert worst < 1e-14


@settings(max_examples=30)
@given(st.integers(0, 12), st.integers(0, 12), st.integers(0, 12), st.data())
def test_random_entries_up_to_12(l1, l2, l3, data):
    m1 = data.draw(st.integers(-l1, l1))
    m2 = data.draw(st.integers(-l2, l2))
    m3 = data.draw(st.integers(-l3, l3))
    got = ge.gaunt_tensor(l1, l2, l3)[m1 + l1, m2 + l2, m3 + l3].item()
    assert got == pytest.approx(real_gaunt(l1, m1, l2, m2, l3, m3), abs=1e-14)


def test_dense_table_layout_and_symmetry():
    g = ge.gaunt_tables(4)
    assert g.shape == (25, 25, 25)
    assert torch.equal(g, g.permute(1, 0, 2))
    assert torch.allclose(g, g.permute(2, 1, 0), atol=1e-16)
    assert g[2 * 2 + 2 + 1, 1 + 1 + 1, 1 + 1 + 1].item() == pytest.approx(
        real_gaunt(2, 1, 1, 1, 1, 1)
    )
    assert ge.gaunt_tables(4, dtype=torch.float32).dtype == torch.float32


def test_sphere_quadrature_has_one_home():
    # The quadrature lives in rsh (issue 10); gaunt_elastic no longer exports a copy.
    assert not hasattr(ge, "sphere_quadrature")


def test_errors():
    with pytest.raises(ValueError, match="l2"):
        ge.gaunt_tensor(1, -2, 1)
    with pytest.raises(TypeError, match="l_max"):
        ge.gaunt_tables(2.5)
    # The same exception types as rsh.conventions.check_degree everywhere.
    for bad, err in ((True, TypeError), (2.0, TypeError), (-1, ValueError)):
        with pytest.raises(err, match="l1"):
            ge.gaunt_tensor(bad, 0, 0)
        with pytest.raises(err):
            rsh.conventions.check_degree(bad)
    with pytest.raises(ValueError, match="l3 must be <="):
        ge.gaunt_tensor(10, 10, 20)
