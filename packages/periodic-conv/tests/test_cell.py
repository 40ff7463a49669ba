"""The degenerate-cell guard (issue 12 items 1-3): exact inputs, fast answers, clear errors."""

import math
import re
import time

import numpy as np
import periodic_conv as pc
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st


def numpy_heights(cell):
    """Independent reference: distance between lattice planes, V / |a_j x a_k|."""
    v = abs(np.linalg.det(cell))
    return [v / np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]


def edge_vectors(g):
    return g.edge_vec.detach().numpy()


# ------------------------------------------------------------------ issue 12 item 1
def test_thin_cell_5x5x1e7_fails_fast_with_clear_error():
    cell = [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 1e-7]]
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as exc:
        pc.check_cell(cell, 5.0)
    msg = str(exc.value)
    assert "cell = [[5, 0, 0], [0, 5, 0], [0, 0, 1e-07]]" in msg
    assert "max_edges=50,000,000" in msg and "thin" in msg and "1e-07 Å between" in msg
    # the same guard inside neighbor_list, before any memory is allocated
    with pytest.raises(ValueError, match="thin"):
        pc.neighbor_list(torch.zeros(1, 3, dtype=torch.float64), torch.tensor(cell), 5.0)
    assert time.perf_counter() - t0 < 1.0


def test_allowed_r_cut_in_message_is_accepted():
    cell = [[5.0, 0, 0], [0, 5.0, 0], [0, 0, 1e-7]]
    with pytest.raises(ValueError) as exc:
        pc.check_cell(cell, 5.0, n_atoms=2, max_edges=10_000)
    r_ok = float(re.search(r"r_cut <= ([0-9.e+-]+) Å", str(exc.value)).group(1))
    info = pc.check_cell(cell, r_ok * 0.999, n_atoms=2, max_edges=10_000)
    assert info.expected_edges <= 10_000
    with pytest.raises(ValueError, match="max_edges"):
        pc.check_cell(cell, r_ok * 1.01, n_atoms=2, max_edges=10_000)


# ------------------------------------------------------------------ issue 12 item 2
@pytest.mark.parametrize("eps", [1e-2, 1e-3, 1e-4])
def test_near_coplanar_cell_right_answer_fast(eps):
    """[[5,0,0],[0,5,0],[5,5,eps]] is the lattice of the slab [[5,0,0],[0,5,0],[0,0,eps]]:
    one atom sees exactly its images (0, 0, k eps), 0 < |k eps| < 5 (the in-plane ones are
    at >= 5 Å)."""
    cell = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, eps]], dtype=torch.float64)
    t0 = time.perf_counter()
    g = pc.neighbor_list(torch.zeros(1, 3, dtype=torch.float64), cell, 5.0)
    assert time.perf_counter() - t0 < 5.0
    kmax = round(5.0 / eps) - 1
    ks = np.concatenate([np.arange(-kmax, 0), np.arange(1, kmax + 1)])
    assert g.num_edges == len(ks) == 2 * kmax
    vec = edge_vectors(g)
    np.testing.assert_allclose(vec[:, :2], 0.0, atol=1e-9)
    np.testing.assert_allclose(np.sort(vec[:, 2]), ks * eps, rtol=1e-9, atol=1e-12)
    # shifts are shifts of the GIVEN cell: vec = shift @ cell for one atom at the origin
    np.testing.assert_allclose(g.shift.double().numpy() @ cell.numpy(), vec, atol=1e-9)


def test_near_coplanar_cell_autograd_path_same_graph():
    cell = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, 1e-2]], dtype=torch.float64)
    pos = torch.zeros(1, 3, dtype=torch.float64, requires_grad=True)
    g = pc.neighbor_list(pos, cell, 5.0)
    g0 = pc.neighbor_list(pos.detach(), cell, 5.0)
    np.testing.assert_allclose(edge_vectors(g), edge_vectors(g0), atol=1e-9)


def test_skewed_slab_with_partial_pbc_vs_ase(rng):
    """Reduction acts on the periodic rows only; ASE (no reduction) is the reference."""
    from ase import Atoms
    from ase.neighborlist import neighbor_list as ase_nl

    cell = np.array([[3.0, 0, 0], [3.0 * 6 + 0.4, 3.2, 0], [0, 0, 12.0]])
    pos = rng.uniform(0, 1, (3, 3)) @ np.diag([3.0, 3.2, 4.0])
    info = pc.check_cell(cell, 4.0, pbc=(True, True, False), n_atoms=3)
    assert info.reduced_used and info.transform[2].tolist() == [0, 0, 1]
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 4.0, pbc=(True, True, False))
    i, j, s = ase_nl("ijS", Atoms("H3", positions=pos, cell=cell, pbc=(1, 1, 0)), 4.0)
    mine = sorted(zip(g.center.tolist(), g.neighbor.tolist(), map(tuple, g.shift.tolist())))
    assert mine == sorted(zip(i.tolist(), j.tolist(), map(tuple, s.tolist())))


# ------------------------------------------------------------------ issue 12 item 3
def test_r_cut_upper_bound_one_message():
    for call in (
        lambda: pc.check_cell(np.eye(3) * 5, 1e4),
        lambda: pc.neighbor_list(torch.zeros(1, 3), torch.eye(3) * 5, 1e4),
        lambda: pc.neighbor_list(torch.zeros(1, 3), torch.eye(3) * 5, 1e4, pbc=False),
    ):
        with pytest.raises(ValueError) as exc:
            call()
        assert str(exc.value) == (
            "r_cut must be a finite number in [0.0001, 100] Å "
            "(periodic_conv.MIN_R_CUT, MAX_R_CUT), got 10000.0"
        )
    assert pc.check_r_cut(pc.MAX_R_CUT) == pc.MAX_R_CUT == 100.0


def test_tiny_r_cut_refused_with_our_message():
    with pytest.raises(ValueError, match=r"r_cut must be .* got 1e-300"):
        pc.neighbor_list(torch.zeros(2, 3), torch.eye(3) * 5, 1e-300)


# ------------------------------------------------------------------ properties
cells = st.builds(
    lambda m, s: s * (np.eye(3) + 0.3 * np.array(m).reshape(3, 3)),
    st.lists(st.floats(-1, 1), min_size=9, max_size=9),
    st.floats(2.5, 6.0),
)
unimodular = st.lists(st.integers(-4, 4), min_size=6, max_size=6).map(
    lambda x: (
        np.array([[1, x[0], x[1]], [0, 1, x[2]], [0, 0, 1]])
        @ np.array([[1, 0, 0], [x[3], 1, 0], [x[4], x[5], 1]])
    )
)


def assert_same_edges(g, ref, atol=1e-8):
    """Same multiset of (center, neighbor, vector), vectors compared to ``atol`` (no rounding,
    which would split values that differ in the last bits across a rounding boundary)."""
    from scipy.spatial import cKDTree

    def points(gr):
        ids = np.stack([gr.center.numpy(), gr.neighbor.numpy()], axis=1) * 1e3
        return np.concatenate([ids, edge_vectors(gr)], axis=1)

    a, b = points(g), points(ref)
    assert a.shape == b.shape
    if len(a) == 0:
        return
    dist, match = cKDTree(b).query(a)
    assert dist.max() < atol, dist.max()
    assert len(np.unique(match)) == len(match)  # a one-to-one match


@settings(max_examples=25)
@given(cell=cells, u=unimodular, seed=st.integers(0, 2**16))
def test_skewed_basis_same_graph(cell, u, seed):
    """A unimodular change of basis is the same lattice: same edges (vectors), shifts of
    the given basis, whatever reduction happened inside."""
    skew = u @ cell
    pos = np.random.default_rng(seed).uniform(0, 1, (3, 3)) @ cell
    info = pc.check_cell(skew, 4.0, n_atoms=3)
    np.testing.assert_allclose(info.reduced, info.transform @ skew, atol=1e-9)
    assert round(abs(np.linalg.det(info.transform))) == 1
    assert min(info.heights) >= min(numpy_heights(skew)) * (1 - 1e-12)
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(skew), 4.0)
    ref = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 4.0)
    assert_same_edges(g, ref)
    vec = pos[g.neighbor] - pos[g.center] + g.shift.double().numpy() @ skew
    np.testing.assert_allclose(vec, edge_vectors(g), atol=1e-8)


@given(cell=cells, r_cut=st.floats(0.5, 10.0))
def test_heights_and_shells_match_numpy(cell, r_cut):
    info = pc.check_cell(cell, r_cut, n_atoms=4, max_edges=10**12)
    ref = cell if not info.reduced_used else info.reduced
    np.testing.assert_allclose(info.heights, numpy_heights(ref), rtol=1e-10)
    assert info.image_shells == tuple(math.ceil(r_cut / h) for h in info.heights)
    np.testing.assert_allclose(info.volume, abs(np.linalg.det(cell)), rtol=1e-10)
    dens = 4 / info.volume
    assert info.expected_edges == int(4 * (dens * 4 / 3 * math.pi * r_cut**3 + 1))


def test_check_cell_runs_in_microseconds():
    cells_ = [np.eye(3) * 4, [[5.0, 0, 0], [0, 5.0, 0], [5.0, 5.0, 1e-3]]]
    for cell in cells_:
        pc.check_cell(cell, 5.0)
        best = min(_time(pc.check_cell, cell) for _ in range(5))
        assert best < 5e-4, best  # ~20-60 µs here; generous for a loaded machine


def _time(fn, cell, n=200):
    t0 = time.perf_counter()
    for _ in range(n):
        fn(cell, 5.0, n_atoms=8)
    return (time.perf_counter() - t0) / n


def test_check_cell_needs_no_torch():
    import subprocess
    import sys

    code = "import sys, periodic_conv as pc; pc.check_cell([[3,0,0],[0,3,0],[0,0,3]], 2.0); "
    code += "assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        (dict(cell=np.eye(2)), ValueError, r"cell must have shape \[3, 3\]"),
        (dict(cell="abc"), TypeError, "cell must be a 3x3 array"),
        (
            dict(cell=[[1, 0, 0], [0, float("nan"), 0], [0, 0, 1]]),
            ValueError,
            "cell must be finite",
        ),
        (dict(cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]]), ValueError, "flat"),
        (dict(cell=[[3, 0, 0], [0, 3, 0], [3, 3, 3e-9]], cell_tol=0.5), ValueError, "flat"),
        (dict(r_cut=True), TypeError, "r_cut must be a real number"),
        (dict(r_cut="3"), TypeError, "r_cut must be a real number"),
        (dict(r_cut=torch.tensor([1.0, 2.0])), TypeError, r"r_cut .* shape \(2,\)"),
        (dict(r_cut=float("nan")), ValueError, "r_cut must be a finite number"),
        (dict(r_cut=-1.0), ValueError, "r_cut must be a finite number"),
        (dict(n_atoms=-1), ValueError, "n_atoms must be an integer >= 0, got -1"),
        (dict(n_atoms=2.0), TypeError, "n_atoms must be an integer"),
        (dict(max_edges="x"), TypeError, "max_edges must be an integer >= 1, got str 'x'"),
        (dict(max_edges=0), ValueError, "max_edges must be an integer >= 1, got 0"),
        (dict(cell_tol=float("nan")), ValueError, "cell_tol must be a real number in"),
        (dict(pbc=(True, True)), ValueError, "pbc must be a bool or a sequence of 3 bools"),
        (dict(pbc="off"), TypeError, "pbc must be a bool or a sequence of 3 bools"),
        (
            dict(name="cell of mp-1", cell=[[3, 0, 0], [0, 3, 0], [0, 0, 0]]),
            ValueError,
            "cell of mp-1 = ",
        ),
    ],
)
def test_bad_input_names_the_argument(kwargs, exc, pattern):
    args = dict(cell=np.eye(3) * 3, r_cut=2.0)
    args.update(kwargs)
    cell, r_cut = args.pop("cell"), args.pop("r_cut")
    with pytest.raises(exc, match=pattern):
        pc.check_cell(cell, r_cut, **args)


def test_accepts_numpy_scalars_and_one_element_tensors():
    info = pc.check_cell(
        np.eye(3) * 3, np.float32(2.0), n_atoms=np.int64(2), max_edges=np.int32(99)
    )
    assert info.image_shells == (1, 1, 1)
    assert pc.check_r_cut(torch.tensor(2.5)) == 2.5


def test_min_volume_per_atom_refuses_collapsed_crystals_only_when_asked():
    """A 4 x 4 x 0.05 Å cell with two atoms (0.4 Å^3 per atom) is a valid lattice for a
    neighbour search, but no crystal: with the crystal guard it is refused, naming the cell
    and the volume per atom; an ordinary cell passes, and so does a slab that is not
    periodic along its thin vector."""
    thin = [[4.0, 0, 0], [0, 4.0, 0], [0, 0, 0.05]]
    assert pc.check_cell(thin, 0.5, n_atoms=2).volume == pytest.approx(0.8)
    with pytest.raises(ValueError, match=r"0\.4 Å\^3 per atom < 1: a collapsed or nearly flat"):
        pc.check_cell(thin, 0.5, n_atoms=2, min_volume_per_atom=pc.MIN_VOLUME_PER_ATOM)
    ok = pc.check_cell(np.eye(3) * 4.0, 5.0, n_atoms=2, min_volume_per_atom=pc.MIN_VOLUME_PER_ATOM)
    assert ok.volume == pytest.approx(64.0)
    slab = pc.check_cell(thin, 0.5, n_atoms=2, pbc=(True, True, False),
                         min_volume_per_atom=pc.MIN_VOLUME_PER_ATOM)  # fmt: skip
    assert slab.volume == pytest.approx(0.8)
