"""Geometry audits against closed forms and independent computations."""

from __future__ import annotations

import itertools

import mp_audit
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure
from scipy.optimize import linprog


def _random_cell(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    while True:
        cell = rng.normal(size=(3, 3)) * 3 + np.eye(3) * rng.uniform(3, 8, 3)
        # keep the cells reasonably shaped so the brute-force image search below is complete
        if abs(np.linalg.det(cell)) > 0.3 * np.prod(np.linalg.norm(cell, axis=1)):
            return cell


def _chebyshev_radius(cell: np.ndarray) -> float:
    """Largest inscribed ball of the parallelepiped by linear programming."""
    normals, offsets = [], []
    for k in range(3):
        n = np.cross(cell[(k + 1) % 3], cell[(k + 2) % 3])
        n /= np.linalg.norm(n)
        lo, hi = sorted([0.0, float(n @ cell[k])])
        normals += [n, -n]
        offsets += [hi, -lo]
    a = np.hstack([np.array(normals), np.ones((6, 1))])
    res = linprog([0, 0, 0, -1], A_ub=a, b_ub=offsets, bounds=[(None, None)] * 4)
    return float(res.x[3])


def _min_enclosing_radius(cell: np.ndarray) -> float:
    """Smallest ball around the 8 vertices, exactly, by enumerating support sets.

    The minimal ball is the smallest ball through 2, 3 or 4 of the points (centre in their
    affine hull) that contains every point.
    """
    verts = np.array([np.array(f) @ cell for f in itertools.product([0, 1], repeat=3)])
    best = np.inf
    for k in (2, 3, 4):
        for support in itertools.combinations(verts, k):
            p0, rest = support[0], np.array(support[1:]) - support[0]
            gram = rest @ rest.T
            if abs(np.linalg.det(gram)) < 1e-9:
                continue
            lam = np.linalg.solve(2 * gram, np.diag(gram))
            centre = p0 + lam @ rest
            radius = np.linalg.norm(p0 - centre)
            if np.all(np.linalg.norm(verts - centre, axis=1) <= radius * (1 + 1e-12)):
                best = min(best, radius)
    return float(best)


@given(st.integers(0, 10_000))
def test_sphere_radii_against_optimisation(seed):
    cell = _random_cell(seed)
    assert mp_audit.inscribed_radius(cell) == pytest.approx(_chebyshev_radius(cell), rel=1e-6)
    assert mp_audit.enclosing_radius(cell) == pytest.approx(_min_enclosing_radius(cell), rel=1e-5)


@given(st.integers(0, 10_000), st.integers(1, 6))
def test_nearest_neighbor_against_brute_force(seed, n):
    cell = _random_cell(seed)
    rng = np.random.default_rng(seed + 1)
    pos = rng.uniform(size=(n, 3)) @ cell
    shifts = np.array(list(itertools.product(range(-3, 4), repeat=3))) @ cell
    expected = np.full(n, np.inf)
    for a in range(n):
        for b in range(n):
            d = np.linalg.norm(pos[b] + shifts - pos[a], axis=1)
            if a == b:
                d = d[d > 1e-9]
            expected[a] = min(expected[a], d.min())
    got = mp_audit.nearest_neighbor_distances(pos, cell, cutoff=1.0)  # forces the retry path
    np.testing.assert_allclose(got, expected, rtol=1e-9)


def test_isolated_atom():
    coords = [[0, 0, 0], [1.5, 0, 0], [10, 10, 10]]
    s = Structure(Lattice.cubic(20.0), ["H", "H", "He"], coords, coords_are_cartesian=True)
    m = mp_audit.geometry_metrics(s.cart_coords, s.lattice.matrix)
    far = np.sqrt(3 * 10**2 - 2 * 10 * 1.5 + 1.5**2)  # He to H at (1.5, 0, 0)
    assert m["nn_max"] == pytest.approx(min(far, np.sqrt(300)))
    assert m["nn_min"] == pytest.approx(1.5)
    assert m["isolated_5"] == 1 and m["isolated_8"] == 1
    assert m["components_5"] == 2 and m["diameter_5"] == -1


def test_two_clusters_disconnected_at_5_connected_at_6(two_clusters):
    s = two_clusters
    m = mp_audit.geometry_metrics(s.cart_coords, s.lattice.matrix)
    assert (m["components_5"], m["diameter_5"], m["isolated_5"]) == (2, -1, 0)
    # at 6 Å: path 0-1-2-3 (the 7 Å pairs 0-2 and 1-3 stay out)
    assert (m["components_6"], m["diameter_6"]) == (1, 3)
    # the 0-2 and 1-3 pairs, exactly 7 Å apart, are no edges at r_cut = 7 (pairs strictly
    # closer than r_cut, as in periodic_conv's graph); just above they join: 0-2-3 and 0-1
    assert m["diameter_7"] == 3
    m = mp_audit.geometry_metrics(s.cart_coords, s.lattice.matrix, r_cuts=[7.001])
    assert m["diameter_7.001"] == 2


@pytest.mark.parametrize("n", [2, 3, 5, 8, 13])
def test_chain_diameter(chain, n):
    path = chain(n)
    m = mp_audit.geometry_metrics(path.cart_coords, path.lattice.matrix, r_cuts=[2.5, 4.5])
    assert m["diameter_2.5"] == n - 1
    assert m["diameter_4.5"] == int(np.ceil((n - 1) / 2))
    ring = chain(n, ring=True)
    m = mp_audit.geometry_metrics(ring.cart_coords, ring.lattice.matrix, r_cuts=[2.5])
    assert m["diameter_2.5"] == (n // 2 if n > 2 else 1)


def test_single_atom_cell():
    m = mp_audit.geometry_metrics([[0, 0, 0]], np.eye(3) * 3.0, r_cuts=[2.0, 3.0, 3.01])
    assert m["nn_max"] == pytest.approx(3.0)
    # an image exactly r_cut away is no edge, as in the model's graph (periodic_conv keeps
    # pairs strictly closer than r_cut): the audit must not call that atom covered
    assert m["isolated_2"] == 1 and m["isolated_3"] == 1 and m["isolated_3.01"] == 0
    assert m["diameter_3.01"] == 0
    import periodic_conv
    import torch

    for r in (3.0, 3.01):
        g = periodic_conv.neighbor_list(torch.zeros(1, 3, dtype=torch.float64),
                                        torch.eye(3, dtype=torch.float64) * 3.0, r)  # fmt: skip
        assert (g.num_edges == 0) == bool(m[f"isolated_{r:g}"])


def test_zero_volume_and_bad_input():
    flat = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 1.0, 0]])
    m = mp_audit.geometry_metrics([[0, 0, 0]], flat)
    assert m["zero_volume"] is True and "nn_max" not in m
    with pytest.raises(ValueError, match="cell has shape"):
        mp_audit.geometry_metrics([[0, 0, 0]], np.eye(2))
    with pytest.raises(ValueError, match="positions is empty"):
        mp_audit.geometry_metrics(np.zeros((0, 3)), np.eye(3))
    with pytest.raises(ValueError, match="r_cuts"):
        mp_audit.geometry_metrics([[0, 0, 0]], np.eye(3), r_cuts=[-1.0])
    with pytest.raises(ValueError, match="non-finite"):
        mp_audit.inscribed_radius(np.full((3, 3), np.nan))


@given(st.integers(1, 130), st.floats(0.0, 0.08), st.integers(0, 10_000))
def test_graph_metrics_against_networkx(n, density, seed):
    import networkx as nx

    rng = np.random.default_rng(seed)
    m = int(density * n * n) + n // 2
    i, j = rng.integers(0, n, m), rng.integers(0, n, m)
    d = rng.uniform(0, 6, m)  # edges with d > 5 must be ignored at r_cut = 5
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from((a, b) for a, b, x in zip(i, j, d) if x <= 5 and a != b)
    comps = nx.number_connected_components(g)
    expected = (comps, nx.diameter(g) if comps == 1 else -1)
    assert mp_audit.graph_metrics(n, i, j, d, 5.0) == expected


@given(
    st.lists(st.floats(1e-4, 100.0), min_size=1, max_size=8),
    st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(0.0)),
)
def test_check_r_cuts_accepts_the_shared_range_only(good, other):
    got = mp_audit.check_r_cuts(good)
    assert list(got) == sorted(set(good))
    if 1e-4 <= other <= 100.0:  # NaN fails this comparison
        assert other in mp_audit.check_r_cuts([*good, other])
    else:
        with pytest.raises(ValueError, match="r_cuts must be a finite number in"):
            mp_audit.check_r_cuts([*good, other])
