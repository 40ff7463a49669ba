import numpy as np
import pytest
import torch
import xtalnet
from ase import Atoms
from ase.build import bulk
from pymatgen.core import Lattice, Structure
from pymatgen.io.ase import AseAtomsAdaptor
from xtalnet import NetworkConfig, collate, iter_batches

CFG = NetworkConfig(r_cut=4.0, dtype="float64")


def _pairs(batch):
    g = batch.graph
    return sorted(zip(g.center.tolist(), g.neighbor.tolist(), map(tuple, g.shift.tolist())))


def test_pymatgen_ase_and_entries_give_the_same_graph():
    import mp_audit

    atoms = bulk("NaCl", "rocksalt", a=5.64)
    struct = AseAtomsAdaptor.get_structure(atoms)
    entry = mp_audit.Entry("mp-22862", struct.as_dict(), {"band_gap": 5.0})
    batches = [collate([x], CFG) for x in (atoms, struct, entry)]
    for b in batches[1:]:
        assert _pairs(b) == _pairs(batches[0])
        assert torch.equal(b.numbers, batches[0].numbers)
    assert batches[2].ids == ("mp-22862",)
    assert batches[0].ids == ("0",)


def test_edges_match_ase_neighbor_list():
    from ase.neighborlist import neighbor_list

    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    i, j, S = neighbor_list("ijS", atoms, 4.0)
    ours = _pairs(collate([atoms], CFG))
    assert ours == sorted(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))


def test_batch_offsets_and_dtype():
    s = [bulk("Si", "diamond", a=5.43), bulk("Cu", "fcc", a=3.6)]
    b = collate(s, CFG.replace(dtype="float32"))
    assert b.num_graphs == 2 and b.num_nodes == 3
    assert b.batch.tolist() == [0, 0, 1]
    assert b.graph.edge_vec.dtype == torch.float32
    assert b.num_atoms.tolist() == [2, 1]
    one = collate([s[1]], CFG)
    assert b.graph.num_edges == collate([s[0]], CFG).num_edges + one.num_edges


def test_iter_batches_respects_edge_budget_and_order():
    s = [bulk("Cu", "fcc", a=3.6) * (k + 1, 1, 1) for k in range(5)]
    per = [collate([x], CFG).num_edges for x in s]
    budget = per[3] + per[2]
    out = list(iter_batches(s, CFG.replace(max_edges=budget), batch_size=10))
    assert [i for idx, _ in out for i in idx] == list(range(5))
    for idx, b in out:
        assert b.num_edges <= budget
        assert b.num_edges == sum(per[i] for i in idx)
    assert len(list(iter_batches(s, CFG, batch_size=2))) == 3


def test_single_structure_above_the_budget_is_refused():
    big = bulk("Cu", "fcc", a=3.6) * (3, 3, 3)
    with pytest.raises(ValueError, match="max_edges"):
        list(iter_batches([big], CFG.replace(max_edges=100)))
    with pytest.raises(ValueError, match="max_edges"):
        collate([bulk("Cu", "fcc", a=3.6)] * 20, CFG.replace(max_edges=300))


@pytest.mark.parametrize(
    ("structure", "match"),
    [
        (Atoms("X", positions=[[0, 0, 0]], cell=np.eye(3) * 3, pbc=True), "Z=0"),
        (Atoms("Am", positions=[[0, 0, 0]], cell=np.eye(3) * 3, pbc=True), "Am"),
        (Atoms(cell=np.eye(3) * 3, pbc=True), "no atoms"),
        (
            Atoms("Cu", positions=[[0, 0, 0]], cell=[[3, 0, 0], [0, 3, 0], [3, 3, 0]], pbc=True),
            "structures\\[0\\]",
        ),
        (
            Atoms("Cu", positions=[[np.nan, 0, 0]], cell=np.eye(3) * 3, pbc=True),
            "structures\\[0\\]",
        ),
    ],
)
def test_bad_structures_raise_naming_the_structure(structure, match):
    with pytest.raises(ValueError, match=match):
        collate([structure], CFG)


def test_bad_containers_and_types():
    with pytest.raises(ValueError, match="empty"):
        collate([], CFG)
    with pytest.raises(TypeError, match="structures\\[1\\]"):
        collate([bulk("Cu"), "Cu"], CFG)
    with pytest.raises(TypeError, match="structures must be"):
        collate(3, CFG)
    with pytest.raises(TypeError, match="NetworkConfig"):
        collate([bulk("Cu")], {"r_cut": 5.0})
    with pytest.raises(ValueError, match="batch_size"):
        list(iter_batches([bulk("Cu")], CFG, batch_size=0))


def test_dummy_species_is_refused():
    from pymatgen.core.periodic_table import DummySpecies

    s = Structure(Lattice.cubic(3.0), [DummySpecies("X")], [[0, 0, 0]])
    with pytest.raises(ValueError, match="structures\\[0\\]"):
        collate([s], CFG)


def test_bad_entry_payload():
    import mp_audit

    with pytest.raises(ValueError, match="mp-1"):
        collate([mp_audit.Entry("mp-1", "not a structure at all", {})], CFG)


# ------------------------------------------------------------------ PyG
def _pyg_data(atoms, r_cut):
    """A PyG Data built independently of xtalnet (ASE's neighbour list, PyG's conventions)."""
    tg = pytest.importorskip("torch_geometric.data")
    from ase.neighborlist import neighbor_list

    i, j, S = neighbor_list("ijS", atoms, r_cut)
    return tg.Data(
        pos=torch.tensor(atoms.positions),
        edge_index=torch.tensor(np.stack([j, i])),  # source = neighbour, target = center
        edge_cell_shift=torch.tensor(S),
        cell=torch.tensor(atoms.cell[:]).unsqueeze(0),
        atomic_numbers=torch.tensor(atoms.numbers),
        num_nodes=len(atoms),
    )


def test_pyg_batch_builds_the_same_graph():
    tg = pytest.importorskip("torch_geometric.data")
    s = [bulk("NaCl", "rocksalt", a=5.64), bulk("Si", "diamond", a=5.43) * (1, 2, 1)]
    pyg = tg.Batch.from_data_list([_pyg_data(a, CFG.r_cut) for a in s])
    ours = xtalnet.from_pyg(pyg, CFG)
    ref = collate(s, CFG)
    assert _pairs(ours) == _pairs(ref)
    key = lambda b: np.lexsort(  # noqa: E731
        [*b.graph.shift.numpy().T.tolist(), b.graph.neighbor.numpy(), b.graph.center.numpy()]
    )
    torch.testing.assert_close(
        ours.graph.edge_vec[key(ours)], ref.graph.edge_vec[key(ref)], rtol=0, atol=1e-12
    )
    assert bool((ours.graph.center[1:] >= ours.graph.center[:-1]).all())


def test_pyg_bad_inputs():
    pytest.importorskip("torch_geometric.data")
    atoms = bulk("Cu", "fcc", a=3.6)
    good = _pyg_data(atoms, CFG.r_cut)
    with pytest.raises(ValueError, match="edge_cell_shift"):
        d = good.clone()
        del d.edge_cell_shift
        xtalnet.from_pyg(d, CFG)
    with pytest.raises(ValueError, match="r_cut"):
        xtalnet.from_pyg(_pyg_data(atoms, 6.0), CFG)
    d = good.clone()
    d.edge_cell_shift = d.edge_cell_shift.double() + 0.5
    with pytest.raises(ValueError, match="integers"):
        xtalnet.from_pyg(d, CFG)
    d = good.clone()
    d.atomic_numbers = torch.tensor([99])
    with pytest.raises(ValueError, match="Z=99"):
        xtalnet.from_pyg(d, CFG)
    d = good.clone()
    d.cell = torch.eye(3).repeat(2, 1, 1)
    with pytest.raises(ValueError, match="cell"):
        xtalnet.from_pyg(d, CFG)
    d = good.clone()
    d.edge_index = d.edge_index + 5
    with pytest.raises(ValueError, match="edge_index"):
        xtalnet.from_pyg(d, CFG)
