"""Grouping of vesin's edges by center (compiled counting sort, with vesin called from C++
("fused") or from Python ("cpp"), and the numpy fallback) is exact.

The reference is built the plain way from vesin's own output: append the self pairs, a stable
argsort by center and fancy indexing. Every path must reproduce its indices and shifts
bit for bit. Edge vectors and lengths: the numpy path copies vesin's, the compiled ones compute
positions[b] - positions[a] + shift @ cell in their scatter pass (equal to 1e-12 Å).
"""

import numpy as np
import periodic_conv as pc
import pytest
import torch
import vesin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from periodic_conv import _build, _neighbors, _search

CPP = _build.cpp_available()
FUSED = CPP and hasattr(torch.ops.periodic_conv, "vesin_grouped")
BACKENDS = [
    pytest.param(
        "fused",
        marks=pytest.mark.skipif(not FUSED, reason="extension without vesin's C API (vesin.h)"),
    ),
    pytest.param("cpp", marks=pytest.mark.skipif(not CPP, reason="C++ extension did not build")),
    "numpy",
]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    monkeypatch.setattr(_search, "_GROUP_BACKEND", request.param)
    return request.param


def reference(pos, cell, r_cut, pbc=(True, True, True), self_interaction=False):
    box = cell if any(pbc) else np.zeros((3, 3))
    nl = vesin.NeighborList(cutoff=r_cut, full_list=True)
    i, j, S, D, d = nl.compute(pos, box, list(pbc), quantities="ijSDd")
    i, j, S = i.astype(np.int64), j.astype(np.int64), S.astype(np.int64)
    if self_interaction:
        n = len(pos)
        i = np.concatenate([i, np.arange(n)])
        j = np.concatenate([j, np.arange(n)])
        S = np.concatenate([S, np.zeros((n, 3), np.int64)])
        D = np.concatenate([D, np.zeros((n, 3))])
        d = np.concatenate([d, np.zeros(n)])
    order = np.argsort(i, kind="stable")
    return i[order], j[order], S[order], D[order], d[order]


def assert_exact(g, ref, n):
    i, j, S, D, d = ref
    for name, got, want in [("center", g.center, i), ("neighbor", g.neighbor, j),
                            ("shift", g.shift, S)]:  # fmt: skip
        assert got.dtype == torch.int64, name
        np.testing.assert_array_equal(got.numpy(), want, err_msg=name)
    np.testing.assert_allclose(g.edge_vec.numpy(), D, rtol=0, atol=1e-12)
    np.testing.assert_allclose(g.length.numpy(), d, rtol=0, atol=1e-12)
    if _search._GROUP_BACKEND == "numpy":  # copied from vesin, not recomputed: exact
        np.testing.assert_array_equal(g.edge_vec.numpy(), D)
        np.testing.assert_array_equal(g.length.numpy(), d)
    assert g.counts.dtype == torch.int64
    np.testing.assert_array_equal(g.counts.numpy(), np.bincount(i, minlength=n))
    for t, size in ((g.edge_batch, len(i)), (g.batch, n)):  # one structure
        assert t.dtype == torch.int64 and t.shape == (size,) and not t.any()


# the backend fixture only sets a module flag, the same for every example
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 12),
    r_cut=st.floats(1.0, 6.0),
    self_interaction=st.booleans(),
    pbc=st.sampled_from([(True, True, True), (True, True, False), (False, False, False)]),
)
def test_grouping_equals_stable_sort_reference(backend, seed, n, r_cut, self_interaction, pbc):
    rng = np.random.default_rng(seed)
    cell = 3.5 * (np.eye(3) + 0.3 * rng.uniform(-1, 1, (3, 3)))
    pos = rng.uniform(0, 1, (n, 3)) @ cell
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), r_cut, pbc=pbc,
                         self_interaction=self_interaction)  # fmt: skip
    assert_exact(g, reference(pos, cell, r_cut, pbc, self_interaction), n)


@pytest.mark.parametrize("self_interaction", [False, True])
def test_single_atom_cell(backend, self_interaction):
    cell = np.eye(3) * 2.0
    pos = np.zeros((1, 3))
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 4.1,
                         self_interaction=self_interaction)  # fmt: skip
    assert_exact(g, reference(pos, cell, 4.1, self_interaction=self_interaction), 1)
    if self_interaction:  # the (0, 0, 0) pair comes last
        assert g.shift[-1].tolist() == [0, 0, 0] and float(g.length[-1]) == 0.0


def test_isolated_atoms_with_self_interaction(backend):
    # no vesin edge at all: only the self pairs, one per atom
    cell = np.eye(3) * 10.0
    pos = np.array([[0.0, 0, 0], [5.0, 5.0, 5.0]])
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 1.0, self_interaction=True)
    assert g.center.tolist() == [0, 1] and g.neighbor.tolist() == [0, 1]
    assert g.shift.tolist() == [[0, 0, 0]] * 2 and g.length.tolist() == [0.0, 0.0]
    assert g.counts.tolist() == [1, 1]


@pytest.mark.parametrize("self_interaction", [False, True])
def test_444_atoms_exact_and_differentiable_path(backend, rng, self_interaction):
    cell = 16.0 * (np.eye(3) + 0.2 * rng.uniform(-1, 1, (3, 3)))
    pos = rng.uniform(0, 1, (444, 3)) @ cell
    ref = reference(pos, cell, 3.5, self_interaction=self_interaction)
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 3.5,
                         self_interaction=self_interaction)  # fmt: skip
    assert_exact(g, ref, 444)
    # with autograd the same topology, vectors from differentiable ops
    p = torch.tensor(pos, requires_grad=True)
    gd = pc.neighbor_list(p, torch.tensor(cell), 3.5, self_interaction=self_interaction)
    for name in ("center", "neighbor", "shift", "counts"):
        assert torch.equal(getattr(gd, name), getattr(g, name)), name
    torch.testing.assert_close(gd.edge_vec.detach(), g.edge_vec, atol=1e-12, rtol=0)
    assert gd.edge_vec.requires_grad and gd.length.requires_grad


def test_graph_owns_its_memory(backend, rng):
    # vesin is called with copy=False: the graph must not view vesin's buffers, which are
    # freed and reused by later calls.
    cell = 6.0 * np.eye(3)
    pos = rng.uniform(0, 6, (20, 3))
    g = pc.neighbor_list(torch.tensor(pos), torch.tensor(cell), 3.0)
    snapshot = [t.clone() for t in (g.center, g.neighbor, g.shift, g.edge_vec, g.length)]
    for _ in range(5):
        other = rng.uniform(0, 6, (20, 3))
        pc.neighbor_list(torch.tensor(other), torch.tensor(cell), 3.0)
    for a, b in zip(snapshot, (g.center, g.neighbor, g.shift, g.edge_vec, g.length)):
        assert torch.equal(a, b)
    assert_exact(g, reference(pos, cell, 3.0), 20)


# ----------------------------------------------------------------------------- the kernels
def _synthetic(rng, n, E, grouped):
    i = np.sort(rng.integers(0, n, E)) if grouped else rng.integers(0, n, E)
    pairs = np.stack([i, rng.integers(0, n, E)], 1).astype(np.uint64)
    shifts = rng.integers(-3, 4, (E, 3)).astype(np.int32)
    vectors = rng.normal(size=(E, 3))
    distances = np.linalg.norm(vectors, axis=1)
    return pairs, shifts, vectors, distances


def _plain(pairs, shifts, vectors, distances, n, self_interaction):
    i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    S = shifts.astype(np.int64)
    if self_interaction:
        i, j = np.concatenate([i, np.arange(n)]), np.concatenate([j, np.arange(n)])
        S = np.concatenate([S, np.zeros((n, 3), np.int64)])
        vectors = np.concatenate([vectors, np.zeros((n, 3))])
        distances = np.concatenate([distances, np.zeros(n)])
    o = np.argsort(i, kind="stable")
    return i[o], j[o], S[o], vectors[o], distances[o], np.bincount(i, minlength=n)


def _cpp(pairs, shifts, positions, cell, n, self_interaction):
    out = torch.ops.periodic_conv.group_by_center(
        torch.from_numpy(pairs.view(np.int64)), torch.from_numpy(shifts),
        None if positions is None else torch.from_numpy(positions),
        None if cell is None else torch.from_numpy(cell), n, self_interaction,
    )  # fmt: skip
    return [t.numpy() for t in out]


@pytest.mark.parametrize("grouped", [False, True])
@pytest.mark.parametrize("self_interaction", [False, True])
@pytest.mark.parametrize("E", [0, 1, 7, 500])
def test_kernels_equal_plain_stable_sort(rng, grouped, self_interaction, E):
    n = 9
    pairs, shifts, vectors, distances = _synthetic(rng, n, E, grouped)
    want = _plain(pairs, shifts, vectors, distances, n, self_interaction)
    got = _search._group_numpy(pairs, shifts, vectors, distances, n, self_interaction)
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(a, b, err_msg=f"numpy output {k}")
        assert a.dtype == (np.float64 if k in (3, 4) else np.int64)
    if not CPP:
        return
    # the cpp kernel computes the vectors from positions and cell
    pos = rng.uniform(0, 4, (n, 3))
    cell = 4.0 * np.eye(3) + rng.uniform(-1, 1, (3, 3))
    i, j, S = want[0], want[1], want[2]
    vec = pos[j] - pos[i] + S @ cell
    got = _cpp(pairs, shifts, pos, cell, n, self_interaction)
    for k in (0, 1, 2, 5):
        np.testing.assert_array_equal(got[k], want[k], err_msg=f"cpp output {k}")
        assert got[k].dtype == np.int64
    np.testing.assert_allclose(got[3], vec, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[4], np.linalg.norm(vec, axis=1), rtol=0, atol=1e-12)
    # edge_batch and batch of one structure
    assert got[6].dtype == got[7].dtype == np.int64
    np.testing.assert_array_equal(got[6], np.zeros(len(want[0])))
    np.testing.assert_array_equal(got[7], np.zeros(n))
    if self_interaction:  # exact zeros for the self pairs
        last = np.cumsum(want[5]) - 1
        assert (got[3][last] == 0).all() and (got[4][last] == 0).all()


@pytest.mark.skipif(not CPP, reason="C++ extension did not build")
def test_cpp_kernel_without_vectors_and_bad_pairs(rng):
    pairs, shifts, _, _ = _synthetic(rng, 5, 40, grouped=False)
    got = _cpp(pairs, shifts, None, None, 5, True)
    want = _plain(pairs, shifts, np.zeros((40, 3)), np.zeros(40), 5, True)
    for k in (0, 1, 2, 5):
        np.testing.assert_array_equal(got[k], want[k])
    assert got[3].shape == (0, 3) and got[4].shape == (0,)
    bad = pairs.copy()
    bad[3, 1] = 5
    with pytest.raises(RuntimeError, match=r"pair 3 = \(.*, 5\) is out of range for 5 atoms"):
        _cpp(bad, shifts, None, None, 5, False)


@pytest.mark.skipif(not FUSED, reason="extension without vesin's C API (vesin.h)")
def test_fused_op_reports_vesin_errors():
    # neighbor_list validates first; called directly, vesin's own error comes through
    op = torch.ops.periodic_conv.vesin_grouped.default
    fns, _ = _search._vesin_functions()
    pos, cell = torch.zeros(2, 3, dtype=torch.float64), 3 * torch.eye(3, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="vesin_neighbors failed"):
        op(pos, cell, [True] * 3, -1.0, False, True, *fns)


def test_validation_messages_and_huge_finite_values():
    cell = 3 * torch.eye(3, dtype=torch.float64)
    pos = torch.zeros(4, 3, dtype=torch.float64)
    pos[2, 1] = float("inf")
    with pytest.raises(
        ValueError, match=r"positions must be finite, got non-finite values in rows \[2\]"
    ):
        pc.neighbor_list(pos, cell, 2.0)
    bad_cell = cell.clone()
    bad_cell[1, 0] = float("nan")
    with pytest.raises(ValueError, match="cell must be finite"):
        pc.neighbor_list(torch.zeros(2, 3, dtype=torch.float64), bad_cell, 2.0)
    # finite values whose sum overflows are finite
    huge = torch.tensor([[1e308, 0.0, 0.0], [1e308, 0.0, 0.0]], dtype=torch.float64)
    p, c, _ = _neighbors._validate(huge, cell, 2.0, (True, True, True), 1e-6, 10**9)
    assert p.dtype == c.dtype == torch.float64 and torch.equal(p, huge)


@pytest.mark.skipif(not CPP, reason="C++ extension did not build")
def test_build_extension_enables_compiled_grouping():
    assert pc.build_extension() is True
    assert _build.extension_ready()


def _vesin_pin():
    """The vesin specifier periodic-conv declares: from the installed metadata (editable or
    wheel), else from pyproject.toml beside the tests (a source checkout on sys.path)."""
    import re
    from importlib import metadata
    from pathlib import Path

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    try:
        requires = metadata.requires("periodic-conv") or []
    except metadata.PackageNotFoundError:
        text = (Path(__file__).parents[1] / "pyproject.toml").read_text()
        return SpecifierSet(re.search(r'^\s*"vesin([^"]*)"', text, re.M).group(1))
    (pin,) = [Requirement(r).specifier for r in requires if Requirement(r).name == "vesin"]
    return pin


def test_vesin_pin_matches_the_tested_range():
    pin = _vesin_pin()
    (lo_major, lo_minor), (hi_major, hi_minor) = _build.VESIN_TESTED
    assert pin.contains(f"{lo_major}.{lo_minor}.2") and not pin.contains(f"{hi_major}.{hi_minor}.0")
    assert not pin.contains(f"{lo_major}.{lo_minor - 1}.9")


def test_fused_path_in_use_on_the_pinned_vesin(monkeypatch):
    """Fails if, on the vesin range this package pins, neighbor_list is not on its fused path
    (a vesin rename would otherwise be a silent 1.15-1.7x slow-down)."""
    if not _vesin_pin().contains(vesin.__version__):
        pytest.skip(f"vesin {vesin.__version__} is outside the pinned range {_vesin_pin()}")
    assert CPP, "the C++ extension must build where the tests run"
    monkeypatch.setattr(_search, "_GROUP_BACKEND", "auto")
    monkeypatch.setattr(_search, "_OPS", {})
    assert "fused" in _search._compiled_ops()


def test_fallback_warns_once_naming_the_reason(monkeypatch):
    if not CPP:
        pytest.skip("C++ extension did not build")
    monkeypatch.setattr(vesin, "__version__", "0.7.0")
    monkeypatch.setattr(_search, "_OPS", {})
    monkeypatch.setattr(_search, "_GROUP_BACKEND", "auto")
    _build.vesin_include.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=r"vesin 0\.7\.0 is outside the tested range"):
            ops = _search._compiled_ops()
        assert "fused" not in ops and "group" in ops
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            g = pc.neighbor_list(torch.zeros(1, 3), torch.eye(3) * 3, 3.5)  # no second warning
        assert g.num_edges == 6
    finally:
        _build.vesin_include.cache_clear()
