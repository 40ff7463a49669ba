"""Neighbour list vs pymatgen's get_neighbor_list, properties and bad input."""

import numpy as np
import periodic_conv as pc
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pymatgen.core import Lattice, Structure


def random_cell(rng, scale=4.0, skew=0.35):
    """A random triclinic cell (rows = lattice vectors) that is far from flat."""
    return scale * (np.eye(3) + skew * rng.uniform(-1, 1, (3, 3)))


def edge_set(i, j, s, d):
    return {(int(a), int(b), *map(int, sh)): float(x) for a, b, sh, x in zip(i, j, s, d)}


def pymatgen_edges(pos, cell, r_cut):
    st_ = Structure(Lattice(cell), ["H"] * len(pos), pos, coords_are_cartesian=True)
    i, j, images, d = st_.get_neighbor_list(r_cut)
    # pymatgen's image is the lattice offset of the neighbour *site* relative to its
    # fractional coordinate; convert to shifts of our cartesian positions (fractional
    # coordinates may be wrapped into [0, 1) by pymatgen, which we undo).
    frac = st_.frac_coords
    our_frac = np.linalg.solve(cell.T, pos.T).T
    wrap = np.rint(frac - our_frac).astype(int)
    shifts = images.astype(int) + wrap[j] - wrap[i]
    return edge_set(i, j, shifts, d)


def ours(pos, cell, r_cut, **kw):
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), r_cut, **kw)
    return g, edge_set(g.center, g.neighbor, g.shift, g.length.numpy())


def assert_same(a, b):
    assert a.keys() == b.keys(), (sorted(a.keys() - b.keys())[:5], sorted(b.keys() - a.keys())[:5])
    for k in a:
        assert abs(a[k] - b[k]) < 1e-12


@pytest.mark.parametrize("n_atoms", [1, 2, 5])
def test_matches_pymatgen_random_triclinic(rng, n_atoms):
    for _ in range(4):
        cell = random_cell(rng, scale=3.0)
        pos = rng.uniform(0, 1, (n_atoms, 3)) @ cell
        r_cut = float(rng.uniform(2.0, 6.0))  # many self-images for 1-2 atoms
        g, mine = ours(pos, cell, r_cut)
        assert_same(mine, pymatgen_edges(pos, cell, r_cut))
        # vectors are consistent with the shifts
        vec = pos[g.neighbor] - pos[g.center] + g.shift.numpy() @ cell
        np.testing.assert_allclose(g.edge_vec.numpy(), vec, atol=1e-12)
        assert np.all(np.diff(g.center.numpy()) >= 0)
        np.testing.assert_array_equal(g.counts.numpy(), np.bincount(g.center, minlength=n_atoms))


@pytest.mark.parametrize("self_interaction", [False, True])
def test_vectors_same_with_and_without_autograd(rng, self_interaction):
    # Without autograd the vectors come from vesin, with it from differentiable torch ops.
    cell = random_cell(rng)
    pos = rng.uniform(0, 1, (7, 3)) @ cell
    plain = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 4.5,
                             self_interaction=self_interaction)  # fmt: skip
    p = torch.tensor(pos, requires_grad=True)
    traced = pc.neighbor_list(p, torch.tensor(cell), 4.5, self_interaction=self_interaction)
    assert traced.edge_vec.requires_grad
    for name in ("center", "neighbor", "shift", "counts"):
        assert torch.equal(getattr(plain, name), getattr(traced, name)), name
    torch.testing.assert_close(plain.edge_vec, traced.edge_vec.detach(), atol=1e-12, rtol=0)
    torch.testing.assert_close(plain.length, traced.length.detach(), atol=1e-12, rtol=0)


def test_single_atom_many_self_images():
    cell = np.eye(3) * 1.5
    g, mine = ours(np.zeros((1, 3)), cell, 3.1)
    assert_same(mine, pymatgen_edges(np.zeros((1, 3)), cell, 3.1))
    # all lattice points within 3.1 Å of a simple cubic lattice with a = 1.5 Å
    r = np.arange(-3, 4)
    pts = np.stack(np.meshgrid(r, r, r), -1).reshape(-1, 3) * 1.5
    d = np.linalg.norm(pts, axis=1)
    assert g.num_edges == int(((d < 3.1) & (d > 0)).sum())
    assert (g.neighbor == 0).all()


def test_444_atom_cell(rng):
    # A 444-atom random cell at a typical crystal density, vs pymatgen.
    cell = random_cell(rng, scale=16.0, skew=0.2)
    pos = rng.uniform(0, 1, (444, 3)) @ cell
    _, mine = ours(pos, cell, 3.5)
    assert_same(mine, pymatgen_edges(pos, cell, 3.5))


def test_self_interaction_adds_zero_shift_pairs(rng):
    cell = random_cell(rng)
    pos = rng.uniform(0, 1, (3, 3)) @ cell
    g0, e0 = ours(pos, cell, 3.0)
    g1, e1 = ours(pos, cell, 3.0, self_interaction=True)
    extra = {k: v for k, v in e1.items() if k not in e0}
    assert extra == {(a, a, 0, 0, 0): 0.0 for a in range(3)}
    np.testing.assert_array_equal(g1.counts.numpy(), g0.counts.numpy() + 1)


def test_partial_pbc_vs_ase(rng):
    from ase import Atoms
    from ase.neighborlist import neighbor_list as ase_nl

    cell = np.diag([3.0, 3.5, 20.0])
    pos = rng.uniform(0, 1, (4, 3)) @ np.diag([3.0, 3.5, 5.0])
    atoms = Atoms("H4", positions=pos, cell=cell, pbc=(True, True, False))
    i, j, s, d = ase_nl("ijSd", atoms, 4.0)
    _, mine = ours(pos, cell, 4.0, pbc=(True, True, False))
    assert_same(mine, edge_set(i, j, s, d))
    assert all(k[4] == 0 for k in mine)


@given(
    t=st.lists(st.floats(-20, 20), min_size=3, max_size=3),
    perm_seed=st.integers(0, 2**31 - 1),
)
def test_translation_and_permutation(t, perm_seed):
    rng = np.random.default_rng(7)
    cell = random_cell(rng)
    pos = rng.uniform(0, 1, (4, 3)) @ cell
    _, base = ours(pos, cell, 3.7)
    dists = sorted(base.values())
    # translation: same pairs up to relabelled shifts, same distance multiset per pair
    _, moved = ours(pos + np.asarray(t), cell, 3.7)
    np.testing.assert_allclose(sorted(moved.values()), dists, atol=1e-9)
    by_pair = {}
    for k, v in base.items():
        by_pair.setdefault(k[:2], []).append(v)
    by_pair_m = {}
    for k, v in moved.items():
        by_pair_m.setdefault(k[:2], []).append(v)
    assert by_pair.keys() == by_pair_m.keys()
    # permutation: edges map through the permutation, shifts unchanged
    perm = np.random.default_rng(perm_seed).permutation(4)
    _, permuted = ours(pos[perm], cell, 3.7)
    # atom k of the permuted structure is atom perm[k] of the original one
    mapped = {(int(perm[k[0]]), int(perm[k[1]]), *k[2:]): v for k, v in permuted.items()}
    assert_same(mapped, base)


def test_non_periodic_matches_brute_force(rng):
    pos = rng.uniform(0, 6, (7, 3))
    _, mine = ours(pos, np.zeros((3, 3)), 3.0, pbc=False)
    d = np.linalg.norm(pos[None] - pos[:, None], axis=-1)
    i, j = np.nonzero((d < 3.0) & ~np.eye(7, dtype=bool))
    assert_same(mine, edge_set(i, j, np.zeros((len(i), 3), int), d[i, j]))


def test_from_structures_batches_pymatgen_and_ase(rng):
    from ase.build import bulk

    s1 = Structure(Lattice.cubic(3.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s2 = bulk("Cu", "fcc", a=3.6)
    g = pc.Graph.from_structures([s1, s2], 3.0)
    g1 = pc.neighbor_list(torch.tensor(s1.cart_coords), torch.tensor(s1.lattice.matrix), 3.0)
    assert g.num_graphs == 2 and g.num_nodes == 3
    assert g.num_edges == g1.num_edges + 12  # fcc: 12 nearest neighbours at 2.55 Å
    assert g.numbers.tolist() == [11, 17, 29]
    assert g.batch.tolist() == [0, 0, 1]
    assert (g.neighbor[g.center == 2] == 2).all()
    torch.testing.assert_close(
        g.length[g.center == 2], torch.full((12,), 3.6 / 2**0.5, dtype=torch.float64)
    )
    # one structure is a batch of one (a pymatgen Structure is itself a sequence of sites)
    for one in (s1, s2):
        single = pc.Graph.from_structures(one, 3.0)
        assert single.num_graphs == 1 and single.num_nodes == len(one)
    torch.testing.assert_close(pc.Graph.from_structures(s1, 3.0).length, g1.length)
    disordered = Structure(Lattice.cubic(3.6), [{"Cu": 0.5, "Au": 0.5}], [[0, 0, 0]])
    with pytest.raises(ValueError, match=r"structures\[1\] is disordered .*order it first"):
        pc.Graph.from_structures([s1, disordered], 3.0)


def test_positions_gradient_flows(rng):
    cell = random_cell(rng)
    pos = torch.tensor(rng.uniform(0, 1, (3, 3)) @ cell, requires_grad=True)
    g = pc.neighbor_list(pos, torch.tensor(cell), 3.0)
    (g.length**2).sum().backward()
    # d/dpos_a sum_e |r_e|^2 = sum over edges 2 r_e (sign by role): equal and opposite sums
    assert torch.allclose(pos.grad.sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-10)


def test_isolated_atoms_flagged():
    cell = np.eye(3) * 10.0
    pos = np.array([[0, 0, 0], [1.0, 0, 0], [5.0, 5.0, 5.0]])
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 2.0)
    assert g.has_isolated
    assert g.isolated.tolist() == [2]


# ----------------------------------------------------------------------------- bad input
def test_bad_inputs_raise():
    pos = torch.zeros(2, 3, dtype=torch.float64)
    cell = torch.eye(3, dtype=torch.float64) * 3
    with pytest.raises(ValueError, match="flat"):
        pc.neighbor_list(pos, torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 0]]), 2.0)
    with pytest.raises(ValueError, match="flat"):
        pc.neighbor_list(pos, torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [3.0, 3.0, 1e-9]]), 2.0)
    with pytest.raises(ValueError, match="r_cut"):
        pc.neighbor_list(pos, cell, 0.0)
    with pytest.raises(ValueError, match="r_cut"):
        pc.neighbor_list(pos, cell, float("nan"))
    with pytest.raises(TypeError, match="r_cut"):
        pc.neighbor_list(pos, cell, "3")
    with pytest.raises(ValueError, match="positions must be finite"):
        pc.neighbor_list(torch.tensor([[0.0, float("nan"), 0.0]]), cell, 2.0)
    with pytest.raises(ValueError, match="positions must have shape"):
        pc.neighbor_list(torch.zeros(2, 2), cell, 2.0)
    with pytest.raises(ValueError, match="cell must have shape"):
        pc.neighbor_list(pos, torch.eye(2), 2.0)
    with pytest.raises(ValueError, match="max_edges"):
        pc.neighbor_list(pos, cell, 50.0, max_edges=1000)
    with pytest.raises(ValueError, match="pbc"):
        pc.neighbor_list(pos, cell, 2.0, pbc=(True, True))
    with pytest.raises(TypeError, match="structures"):
        pc.Graph.from_structures([object()], 2.0)


# ------------------------------------------------------------------------ issue 12 #7, #14, #16
def test_overlapping_atoms_named():
    pos = torch.tensor([[0.0, 0, 0], [1.0, 1, 1], [0.0, 0, 0]], dtype=torch.float64)
    cell = torch.eye(3, dtype=torch.float64) * 4
    for si in (False, True):
        with pytest.raises(ValueError, match=r"overlapping atoms .*: atoms 0 and 2 at 0 Å"):
            pc.neighbor_list(pos, cell, 3.0, self_interaction=si)
    # the r = 0 self edge of self_interaction=True is not an overlap
    g = pc.neighbor_list(pos[:2], cell, 3.0, self_interaction=True)
    assert int((g.length == 0).sum()) == 2
    # an atom on another one's periodic image, also with autograd
    img = torch.tensor([[0.0, 0, 0], [4.0, 0, 0]], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=r"atoms 0 and 1 \(image shift \(-1, 0, 0\)\)"):
        pc.neighbor_list(img, cell, 3.0)


@pytest.mark.parametrize(
    ("pbc", "exc"),
    [("off", TypeError), ("TTF", TypeError), ((1, 1, 0), TypeError), (None, TypeError),
     ((True, True), ValueError), (1, TypeError)],
)  # fmt: skip
def test_pbc_must_be_bools(pbc, exc):
    with pytest.raises(exc, match="pbc must be a bool or a sequence of 3 bools"):
        pc.neighbor_list(torch.zeros(1, 3), torch.eye(3) * 3, 2.0, pbc=pbc)


def test_pbc_numpy_bools_accepted():
    g = pc.neighbor_list(torch.zeros(1, 3), torch.eye(3) * 3, 2.0, pbc=np.array([1, 1, 0], bool))
    assert g.pbc == (True, True, False)


def test_empty_positions_give_empty_graph_like_empty_structure():
    g = pc.neighbor_list(torch.zeros(0, 3, dtype=torch.float64), torch.eye(3) * 3, 2.0)
    assert (g.num_nodes, g.num_edges, g.num_graphs) == (0, 0, 1)
    assert g.shift.shape == (0, 3) and g.edge_vec.shape == (0, 3) and g.counts.shape == (0,)
    s = Structure(Lattice.cubic(3.0), [], [])
    gs = pc.Graph.from_structures([s], 2.0)
    assert (gs.num_nodes, gs.num_edges) == (0, 0)
    hub = pc.DataHub(g, 1)
    assert hub.Y.shape == (0, 4)


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        (dict(r_cut=torch.tensor([1.0, 2.0])), TypeError, r"r_cut must be a real number"),
        (dict(r_cut=1e-300), ValueError, r"r_cut must be a finite number in \[0.0001, 100\]"),
        (dict(max_edges="x"), TypeError, "max_edges must be an integer >= 1, got str 'x'"),
        (dict(cell_tol=float("nan")), ValueError, "cell_tol must be a real number in"),
        (dict(numbers=[1.5, 2.0]), TypeError, "numbers must be integers"),
        (dict(numbers=[1, 2, 3]), ValueError, r"numbers must have shape \[2\]"),
        (dict(positions=torch.zeros(2, 3, device="meta")), ValueError, "positions is a meta"),
        (dict(cell=torch.zeros(3, 3, device="meta")), ValueError, "cell is a meta tensor"),
        (dict(positions="abc"), TypeError, "positions must be a tensor or an array"),
        (dict(self_interaction="yes"), TypeError, "self_interaction must be a bool"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, exc, pattern):
    args = dict(positions=torch.tensor([[0.0, 0, 0], [1.0, 1, 1]]), cell=torch.eye(3) * 4,
                r_cut=2.0)  # fmt: skip
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        pc.neighbor_list(**args)


def test_numbers_as_list_accepted():
    g = pc.neighbor_list(torch.zeros(1, 3), torch.eye(3) * 3, 2.0, numbers=[8])
    assert g.numbers.dtype == torch.long and g.numbers.tolist() == [8]


def test_batch_graphs_bad_input():
    with pytest.raises(ValueError, match="graphs must contain at least one Graph"):
        pc.Graph.batch_graphs([])
    with pytest.raises(TypeError, match=r"graphs\[0\] must be a periodic_conv.Graph"):
        pc.Graph.batch_graphs([object()])


def test_hand_built_graph_with_bad_neighbor_index():
    from dataclasses import replace

    g = pc.neighbor_list(torch.tensor([[0.0, 0, 0], [1.0, 1, 1]], dtype=torch.float64),
                         torch.eye(3, dtype=torch.float64) * 4, 2.0)  # fmt: skip
    bad = replace(g, neighbor=g.neighbor.clone().fill_(2))
    with pytest.raises(ValueError, match=r"graph.neighbor holds atom indices in \[2, 2\]"):
        pc.DataHub(bad, 1)


# ------------------------------------------------------------------- atoms far from each other
def _brute_force(pos, cell, r_cut, pbc, reach=2):
    """Every pair (and image within ``reach`` cells along periodic directions) closer than
    r_cut, as an edge set."""
    ranges = [range(-reach, reach + 1) if p else range(1) for p in pbc]
    out = {}
    for s in np.array(np.meshgrid(*ranges, indexing="ij")).reshape(3, -1).T:
        d = np.linalg.norm(pos[None] - pos[:, None] + s @ cell, axis=-1)
        for a, b in zip(*np.nonzero(d < r_cut)):
            if a != b or s.any():
                out[(int(a), int(b), *map(int, s))] = float(d[a, b])
    return out


@given(seed=st.integers(0, 2**32 - 1), far=st.sampled_from([1e3, 1e5, 1e7]))
def test_clusters_far_apart_without_periodicity_match_brute_force(seed, far):
    """Clusters 1e3-1e7 Å apart in a plane and on a line (vesin alone killed the process
    with a division by zero, or returned no edges): the same edges as a direct count."""
    rng = np.random.default_rng(seed)
    centers = np.array([[0, 0, 0], [far, far, 0], [far, 0, 0], [0, 2 * far, 0]])
    pos = np.concatenate([c + rng.uniform(0, 4, (3, 3)) for c in centers])
    g, mine = ours(pos, np.zeros((3, 3)), 3.0, pbc=False)
    assert_same(mine, _brute_force(pos, np.zeros((3, 3)), 3.0, (False,) * 3))
    np.testing.assert_allclose(g.edge_vec.numpy(), pos[g.neighbor] - pos[g.center], atol=1e-9)


@given(seed=st.integers(0, 2**32 - 1), far=st.sampled_from([1e4, 1e6]))
def test_a_slab_with_far_atoms_matches_brute_force(seed, far):
    """Periodic in a and b (an oblique cell), atoms far apart along c: narrowed along the
    slab's normal, every edge and its shift as a direct count finds them."""
    rng = np.random.default_rng(seed)
    cell = random_cell(rng, scale=3.0)
    frac = rng.uniform(0, 1, (4, 3))
    frac[2:, 2] += far / 3.0
    pos = frac @ cell
    pbc = (True, True, False)
    g, mine = ours(pos, cell, 3.5, pbc=pbc)
    assert_same(mine, _brute_force(pos, cell, 3.5, pbc))
    vec = pos[g.neighbor] - pos[g.center] + g.shift.numpy() @ cell
    np.testing.assert_allclose(g.edge_vec.numpy(), vec, atol=1e-6)


@pytest.mark.parametrize("far", [1e4, 1e10, 1e15])
def test_atoms_many_cells_outside_the_cell_keep_their_edges(far):
    """An atom 1e10 Å out along a periodic direction had no edges (vesin's 32-bit cell index
    overflowed): the graph is that of the wrapped atom, its shifts those of the positions
    given, so that every edge vector is unchanged."""
    cell = np.eye(3) * 3.0
    near = np.array([[0.0, 0.0, 0.0], [far % 3.0, 0.3, 0.3]])
    pos = near + np.array([[0.0, 0, 0], [far - far % 3.0, 0, 0]])
    g, _ = ours(pos, cell, 3.0)
    ref, _ = ours(near, cell, 3.0)
    assert g.num_edges == ref.num_edges > 0
    torch.testing.assert_close(g.length, ref.length, atol=1e-9, rtol=0)
    vec = pos[g.neighbor] - pos[g.center] + g.shift.numpy() @ cell
    np.testing.assert_allclose(g.edge_vec.numpy(), vec, atol=1e-9)
    # atom 1 lies n cells out: an edge a -> b takes n (a = 1) or -n (b = 1) more cells
    n = round((far - far % 3.0) / 3.0)
    moved = n * ((g.center == 1).long() - (g.neighbor == 1).long())
    assert torch.equal(g.center, ref.center) and torch.equal(g.neighbor, ref.neighbor)
    assert torch.equal(g.shift[:, 0], ref.shift[:, 0] + moved)
    assert torch.equal(g.shift[:, 1:], ref.shift[:, 1:]) and (moved != 0).any()
    traced = pc.neighbor_list(torch.tensor(pos, requires_grad=True), torch.tensor(cell), 3.0)
    assert torch.equal(traced.shift, g.shift)


def test_a_flake_vesin_cannot_bin_is_refused_not_a_crash():
    """A dense plane of atoms 1,200 Å wide without periodicity: vesin's cap on its cells
    would leave the flat direction with none (the process died); refused, named."""
    x = np.arange(0.0, 1200.0, 2.5)
    pos = np.stack([np.repeat(x, 2), np.tile([0.0, 1200.0], len(x)), np.zeros(2 * len(x))], 1)
    pos = np.concatenate([pos, pos[:, [1, 0, 2]]])
    with pytest.raises(ValueError, match=r"cannot bin this structure at r_cut=3 Å"):
        pc.neighbor_list(torch.tensor(pos), torch.zeros(3, 3, dtype=torch.float64), 3.0,
                         pbc=False)  # fmt: skip
