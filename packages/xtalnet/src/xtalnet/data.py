"""Structures -> batched periodic graphs (pymatgen, ASE, mp_audit entries; PyG batches in
:mod:`xtalnet.pyg`).

A :class:`Batch` holds one :class:`periodic_conv.Graph` (all structures of the batch, atom
indices offset), the atomic numbers and the structure index of every atom. Graphs are built
with :func:`periodic_conv.neighbor_list` (vesin underneath), whose guards refuse flat cells,
non-finite coordinates and edge counts above the budget.

Edge convention (shared with :class:`periodic_conv.Graph`): edge ``e`` carries a message
from the neighbour ``j = neighbor[e]`` to the center ``i = center[e]`` and its vector points
from the center to the neighbour's periodic image,

    edge_vec[e] = pos[j] - pos[i] + shift[e] @ cell[batch[i]]      (Å, shift integer)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from periodic_conv import MIN_VOLUME_PER_ATOM, Graph, check_cell, neighbor_list

from xtalnet.config import MAX_Z, NetworkConfig

__all__ = [
    "Batch",
    "collate",
    "frame_rotation",
    "iter_batches",
    "orient",
    "pack",
    "to_structure",
    "without_position",
]


@dataclass(frozen=True)
class Batch:
    """A batch of structures as one periodic graph.

    Attributes
    ----------
    graph : periodic_conv.Graph
        Edges of all structures (sorted by center atom), positions [N, 3] Å, cells [B, 3, 3] Å.
    numbers : Tensor [N] (int64)
        Atomic numbers, 1..94.
    batch : Tensor [N] (int64)
        Structure index of every atom.
    ids : tuple of str
        Identifier of every structure (material_id for mp_audit entries, else its index in
        the input sequence as a string).
    """

    graph: Graph
    numbers: torch.Tensor
    batch: torch.Tensor
    ids: tuple[str, ...]

    @property
    def num_graphs(self) -> int:
        """Number of structures B."""
        return int(self.graph.cell.shape[0])

    @property
    def num_nodes(self) -> int:
        """Number of atoms N."""
        return int(self.numbers.shape[0])

    @property
    def num_edges(self) -> int:
        """Number of edges E."""
        return self.graph.num_edges

    @property
    def num_atoms(self) -> torch.Tensor:
        """Atoms per structure, [B] (int64)."""
        return torch.bincount(self.batch, minlength=self.num_graphs)

    def to(self, device: torch.device | str) -> Batch:
        """The same batch on another device (tensors moved; dtype unchanged)."""
        device = torch.device(device)
        changes = {
            f.name: getattr(self.graph, f.name).to(device)
            for f in dataclasses.fields(self.graph)
            if isinstance(getattr(self.graph, f.name), torch.Tensor)
        }
        return Batch(
            dataclasses.replace(self.graph, **changes),
            self.numbers.to(device),
            self.batch.to(device),
            self.ids,
        )


# "structures[5] (entry 'x'): ..." counts within a batch of what parsed: not the row's place
_POSITION = re.compile(r"structures\[\d+\](?: \(entry '[^']*'\))?:? ?")


def without_position(message: str) -> str:
    """A message about one structure as its own row (or id) says it: without its position in
    a batch (``structures[5] (entry 'x'): …`` of :func:`to_structure` and the predictors;
    ``structures[5] is disordered`` becomes ``the structure is disordered``)."""

    def drop(match: re.Match[str]) -> str:  # "…[5]: why" -> "why"; "…[5] is" -> "the … is"
        return "" if match.group(0).rstrip().endswith(":") else "the structure "

    return _POSITION.sub(drop, message, count=1)


def to_structure(obj: Any, index: int = 0) -> Any:
    """A pymatgen ``Structure`` or ASE ``Atoms`` from any supported input.

    Parameters
    ----------
    obj : pymatgen Structure, ASE Atoms or mp_audit.Entry
        An entry's payload (Structure, dict, CIF/POSCAR text) is parsed with
        :func:`mp_audit.parse_payload`.
    index : int
        Position in the caller's sequence, used in error messages.
    """
    if hasattr(obj, "lattice") and hasattr(obj, "cart_coords"):
        return obj
    if hasattr(obj, "get_positions") and hasattr(obj, "get_cell"):
        return obj
    import mp_audit

    if isinstance(obj, mp_audit.Entry):
        try:
            return mp_audit.parse_payload(obj.payload)
        except Exception as exc:  # the payload's own parser decides what is malformed
            raise ValueError(
                f"structures[{index}] (entry {obj.material_id!r}): payload does not parse as a "
                f"structure: {exc}"
            ) from exc
    raise TypeError(
        f"structures[{index}] must be a pymatgen Structure, an ASE Atoms or an mp_audit.Entry, "
        f"got {type(obj).__name__}"
    )


def _arrays(
    s: Any, index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[bool, bool, bool]]:
    if hasattr(s, "lattice"):
        _check_ordered(s, index)
        symbols = [str(getattr(sp, "symbol", sp)) for sp in s.species]
        numbers = np.array([_atomic_number(sp) for sp in s.species], dtype=np.int64)
        pos = np.asarray(s.cart_coords, dtype=np.float64)
        cell = np.array(s.lattice.matrix, dtype=np.float64)
        a, b, c = (bool(p) for p in getattr(s.lattice, "pbc", (True, True, True)))
    else:
        numbers = np.asarray(s.get_atomic_numbers(), dtype=np.int64)
        pos = np.asarray(s.get_positions(), dtype=np.float64)
        cell = np.array(s.get_cell()[:], dtype=np.float64)
        a, b, c = (bool(p) for p in s.get_pbc())
        symbols = list(s.get_chemical_symbols())
    if len(numbers) == 0:
        raise ValueError(f"structures[{index}] has no atoms")
    bad = sorted({(sym, int(z)) for sym, z in zip(symbols, numbers) if not 1 <= z <= MAX_Z})
    if bad:
        named = ", ".join(f"{sym} (Z={z})" for sym, z in bad)
        raise ValueError(
            f"structures[{index}]: species {named} not supported; every site needs a real "
            f"element of Z = 1..{MAX_Z} (H..Pu), the elements the species embedding covers"
        )
    return pos, cell, numbers, (a, b, c)


def _atomic_number(species: Any) -> int:
    """Z of a pymatgen element or ion; 0 for anything else (a dummy species such as X)."""
    element = getattr(species, "element", species)  # an Ion / Species carries its element
    z = getattr(element, "Z", 0)
    return int(z) if type(element).__name__ == "Element" else 0


def _check_ordered(s: Any, index: int) -> None:
    """A pymatgen structure with partial occupancies has no one element per site."""
    if getattr(s, "is_ordered", True):
        return
    mixed = [str(site.species) for site in s if not site.is_ordered]
    raise ValueError(
        f"structures[{index}] is disordered: {len(mixed)} site(s) with partial occupancies "
        f"(e.g. {mixed[0]}); xtalnet needs one element per site: pick an ordering first "
        "(e.g. pymatgen's OrderDisorderedStructureTransformation)"
    )


def orient(s: Any, config: NetworkConfig, index: int = 0) -> Any:
    """The structure in the frame of ``config.tensor_frame``: as given, or rotated into its
    IEEE 176 standard orientation (a pymatgen ``Structure``; ASE input is converted)."""
    if config.tensor_frame == "as_given":
        return s
    from pymatgen.core import Lattice, Structure

    s = _pymatgen(s)
    r = frame_rotation(s, config, index)
    lattice = Lattice(np.asarray(s.lattice.matrix) @ r.T)
    return Structure(lattice, s.species, np.asarray(s.cart_coords) @ r.T,
                     coords_are_cartesian=True)  # fmt: skip


def frame_rotation(s: Any, config: NetworkConfig, index: int = 0) -> np.ndarray:
    """The rotation R [3, 3] from the structure's Cartesian axes to the frame its tensors are
    predicted in: the identity for ``tensor_frame="as_given"``; else its IEEE 176 standard
    orientation as the Materials Project's labels have it (pymatgen's rule, a tetragonal c
    along z and, with a piezoelectric target, an mm2 crystal's polar axis along z;
    :func:`orient`: a Cartesian vector v of ``s`` is ``R v`` there). A rank-2
    prediction T in the input's axes is ``R.T @ T @ R``; for the elastic tensor,
    ``pymatgen.analysis.elasticity.ElasticTensor.from_voigt(C).rotate(R.T)``.

    The IEEE rules depend on the crystal system spglib finds (tolerance 0.01 Å): a crystal
    whose atoms are displaced beyond it (a relaxation or MD snapshot) can change system and
    so the axes of its predicted tensor (a tetragonal crystal's c from z to x).
    """
    if config.tensor_frame == "as_given":
        return np.eye(3)
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    from xtalnet.heads.spec import TargetSpec

    s = _pymatgen(s)
    _check_ordered(s, index)
    try:
        analyzer = SpacegroupAnalyzer(s)  # one symmetry analysis for every rule below
        rotation = _tetragonal_c_along_z(s, analyzer, _ieee_rotation(s, analyzer))
        if any(TargetSpec.parse(t).column == "piezoelectric_tensor" for t in config.targets):
            rotation = _polar_axis_along_z(analyzer, rotation)
        return rotation
    except Exception as exc:  # symmetry analysis of a malformed structure
        why = (f"structures[{index}]: no IEEE standard orientation (symmetry analysis failed: "
               f"{type(exc).__name__} {exc}); a model trained with --tensor-frame as_given "
               "predicts in the structure's own axes")  # fmt: skip
        raise ValueError(why) from exc


def _pymatgen(s: Any) -> Any:
    if hasattr(s, "lattice"):
        return s
    from pymatgen.io.ase import AseAtomsAdaptor

    return AseAtomsAdaptor.get_structure(s)


def _ieee_rotation(s: Any, analyzer: Any) -> np.ndarray:
    """pymatgen's IEEE rotation of ``s`` (``Tensor.get_ieee_rotation``), by its own rules
    where it fails on ties: two equally long axes of an orthorhombic or triclinic cell
    (pymatgen then compares the vectors themselves: a ``ValueError``; a tetragonal crystal
    with its atoms slightly displaced is triclinic with a = b), or a monoclinic conventional
    cell whose angles are all 90° (a doped cubic cell: ``StopIteration``). Ties keep the
    lattice order and the unique monoclinic axis is spglib's b (``analyzer``: the
    ``SpacegroupAnalyzer`` of ``s``)."""
    from pymatgen.core.tensors import SquareTensor, Tensor

    try:
        return np.asarray(Tensor.get_ieee_rotation(s), dtype=np.float64)
    except (ValueError, StopIteration):
        pass
    vecs = _conventional_vectors(s, analyzer)
    lengths = np.linalg.norm(vecs, axis=1)
    unit = vecs / lengths[:, None]
    system = analyzer.get_crystal_system()
    by_length = np.argsort(lengths, kind="stable")  # ties: the lattice order
    if system == "orthorhombic":  # c < a < b along x3, x1, x2
        rotation = np.roll(unit[by_length], 2, axis=0)
    elif system == "monoclinic":  # the unique axis along x2, the shorter other axis along x3
        angles = np.degrees(np.arccos([unit[1] @ unit[2], unit[0] @ unit[2], unit[0] @ unit[1]]))
        off = np.abs(angles - 90.0)
        u = int(np.argmax(off)) if off.max() > 1e-8 else 1
        c = min((i for i in range(3) if i != u), key=lambda i: lengths[i])
        rotation = np.stack([np.cross(unit[u], unit[c]), unit[u], unit[c]])
    elif system == "triclinic":  # the longest axis along x3, x2 normal to the ac plane
        rotation = unit[by_length].copy()
        rotation[1] = np.cross(rotation[2], rotation[0])
        rotation[1] /= np.linalg.norm(rotation[1])
        rotation[0] = np.cross(rotation[1], rotation[2])
    else:
        raise ValueError(f"pymatgen found no IEEE rotation of a {system} cell")
    return np.asarray(SquareTensor(rotation).refine_rotation(), dtype=np.float64)


def _conventional_vectors(s: Any, analyzer: Any) -> np.ndarray:
    """The lattice vectors [3, 3] (rows, Å) of spglib's conventional cell, in ``s``'s frame."""
    to_conventional = np.asarray(analyzer.get_symmetry_dataset().transformation_matrix)
    return np.linalg.inv(to_conventional).T @ np.asarray(s.lattice.matrix)


def _polar_axis_along_z(analyzer: Any, rotation: np.ndarray) -> np.ndarray:
    """``rotation``, turned so that the polar twofold axis of an ``mm2`` crystal lies along
    z, where the Materials Project's piezoelectric tensors have it (their elastic tensors
    keep pymatgen's c < a < b: checked against the de Jong file's original tensors, all 193
    orthorhombic frames agree). pymatgen's rule put it along x or y for 107 of the 162 mm2
    crystals of the piezoelectric file, whose stored tensors then broke the crystal's own
    symmetry (a twofold rotation mapped e to -e). Of the other two axes the shorter lies
    along x; other point groups are returned unchanged (``analyzer``: the structure's
    ``SpacegroupAnalyzer``)."""
    if analyzer.get_point_group_symbol() != "mm2":
        return rotation
    twofold = next(op.rotation_matrix for op in analyzer.get_symmetry_operations(cartesian=True)
                   if np.linalg.det(op.rotation_matrix) > 0
                   and not np.allclose(op.rotation_matrix, np.eye(3), atol=1e-6))  # fmt: skip
    w, v = np.linalg.eig(twofold)
    axis = rotation @ np.real(v[:, np.argmin(np.abs(w - 1))])  # in the current frame
    k = int(np.argmax(np.abs(axis)))
    if k == 2:
        return rotation
    # pymatgen's z is the shortest axis (c < a < b): it becomes x, the other one y
    z = rotation[k]
    return np.stack([rotation[2], np.cross(z, rotation[2]), z])


def _tetragonal_c_along_z(s: Any, analyzer: Any, rotation: np.ndarray) -> np.ndarray:
    """``rotation`` (pymatgen's IEEE rotation of ``s``), turned so that a tetragonal
    crystal's fourfold axis c lies along z, as IEEE 176 and the Materials Project's stored
    tensors have it. pymatgen (2025) puts c along x when c < a: it compares the unsorted
    lengths, so 70 of the 193 tetragonal de Jong crystals had their structure rotated away
    from the frame of their stored tensor (C44 = C55 there, C55 = C66 in the structure).
    Other crystal systems are returned unchanged."""
    if analyzer.get_crystal_system() != "tetragonal":
        return rotation
    conventional = _conventional_vectors(s, analyzer)  # spglib: a = b, c the fourfold axis
    a, c = (rotation @ v / np.linalg.norm(v) for v in (conventional[0], conventional[2]))
    if abs(c[2]) > 1 - 1e-6:
        return rotation
    x = a - (a @ c) * c  # a is normal to c; the projection only removes rounding
    x /= np.linalg.norm(x)
    turn = np.stack([x, np.cross(c, x), c])  # rows: the new axes in pymatgen's frame
    return turn @ rotation


def graph_of(s: Any, index: int, config: NetworkConfig, *, oriented: bool = False) -> Graph:
    """The periodic graph of one structure at ``config.r_cut`` in ``config.dtype``
    (``index``: its position in the caller's sequence, for error messages; ``oriented``: the
    structure is already in the frame of :func:`orient`).

    Every source (CIF, POSCAR, pymatgen JSON, ASE) passes the same guards: the cell guard of
    :func:`periodic_conv.check_cell` with the crystal's plausible volume per atom
    (:data:`periodic_conv.MIN_VOLUME_PER_ATOM`), and no two atoms (periodic images included)
    closer than :data:`mp_audit.OVERLAP_DISTANCE`.
    """
    pos, cell, numbers, pbc = _arrays(s if oriented else orient(s, config, index), index)
    try:
        check_cell(cell, config.r_cut, n_atoms=len(numbers), max_edges=config.max_edges,
                   pbc=pbc, min_volume_per_atom=MIN_VOLUME_PER_ATOM, name="cell")  # fmt: skip
        g = neighbor_list(
            torch.from_numpy(pos),
            torch.from_numpy(cell),
            config.r_cut,
            pbc=pbc,
            max_edges=config.max_edges,
            numbers=torch.from_numpy(numbers),
        )
    except ValueError as exc:
        raise ValueError(f"structures[{index}]: {exc}") from exc
    if g.num_edges > config.max_edges:
        raise ValueError(
            f"structures[{index}] has {g.num_edges:,} edges at r_cut={config.r_cut} Å, above "
            f"max_edges={config.max_edges:,} (the per-batch edge budget); raise max_edges or "
            "lower r_cut"
        )
    _check_overlaps(g, index)
    dtype = config.torch_dtype
    if dtype != torch.float64:  # geometry is computed in float64, then rounded once
        g = dataclasses.replace(
            g,
            positions=g.positions.to(dtype),
            cell=g.cell.to(dtype),
            edge_vec=g.edge_vec.to(dtype),
            length=g.length.to(dtype),
        )
    return g


def _check_overlaps(g: Graph, index: int) -> None:
    from mp_audit import OVERLAP_DISTANCE

    close = g.length < OVERLAP_DISTANCE
    if bool(close.any()):
        e = int(torch.nonzero(close)[0])
        raise ValueError(
            f"structures[{index}]: overlapping atoms: {int(g.center[e])} and "
            f"{int(g.neighbor[e])} (periodic image {g.shift[e].tolist()}) are "
            f"{float(g.length[e]):.3g} Å apart, closer than {OVERLAP_DISTANCE} Å "
            f"(mp_audit.OVERLAP_DISTANCE); {int(close.sum()) // 2 or 1} such pair(s)"
        )


def _ident(obj: Any, index: int) -> str:
    mid = getattr(obj, "material_id", None)
    return str(mid) if mid is not None else str(index)


def as_sequence(structures: Any, allow_empty: bool = False) -> list[Any]:
    """``structures`` as a list (one structure becomes a list of one); clear errors. An
    empty sequence is an error unless ``allow_empty`` (a table whose rows all failed)."""
    if hasattr(structures, "lattice") or hasattr(structures, "get_positions"):
        return [structures]
    if isinstance(structures, (str, bytes)) or not isinstance(structures, Iterable):
        raise TypeError(
            "structures must be a sequence of pymatgen Structure / ASE Atoms / mp_audit.Entry, "
            f"got {type(structures).__name__}"
        )
    items = list(structures)
    if not items and not allow_empty:
        raise ValueError("structures must contain at least one structure, got an empty sequence")
    return items


def _check_config(config: Any) -> NetworkConfig:
    if not isinstance(config, NetworkConfig):
        raise TypeError(f"config must be an xtalnet.NetworkConfig, got {type(config).__name__}")
    return config


def batch_of_graphs(graphs: Sequence[Graph], ids: Sequence[str]) -> Batch:
    """One :class:`Batch` of per-structure graphs (atom indices offset)."""
    graph = Graph.batch_graphs(list(graphs))
    assert graph.numbers is not None
    return Batch(graph, graph.numbers, graph.batch, tuple(ids))


def collate(structures: Any, config: NetworkConfig) -> Batch:
    """Turn structures into one :class:`Batch` (all of them, in order).

    Parameters
    ----------
    structures : sequence of pymatgen Structure, ASE Atoms or mp_audit.Entry (or one of them)
    config : NetworkConfig
        Supplies r_cut (Å), dtype and the edge budget ``max_edges``.

    Raises
    ------
    ValueError
        Empty input, an element outside Z = 1..94, a degenerate cell, or more edges in total
        than ``config.max_edges`` (use :func:`iter_batches` to split by the budget).
    """
    config = _check_config(config)
    items = as_sequence(structures)
    graphs = [graph_of(to_structure(s, k), k, config) for k, s in enumerate(items)]
    total = sum(g.num_edges for g in graphs)
    if total > config.max_edges:
        raise ValueError(
            f"structures give {total:,} edges in total, above max_edges={config.max_edges:,}; "
            "split them with xtalnet.iter_batches(structures, config, batch_size) or raise "
            "max_edges"
        )
    return batch_of_graphs(graphs, [_ident(s, k) for k, s in enumerate(items)])


def packed(
    items: Iterable[Any], edges_of: Callable[[Any], int], batch_size: int, max_edges: int
) -> Iterator[list[Any]]:
    """The one batching rule: consecutive runs of ``items`` with at most ``batch_size`` items
    and ``max_edges`` edges (an item above the budget alone), order kept; streams."""
    cur: list[Any] = []
    total = 0
    for item in items:
        e = int(edges_of(item))
        if cur and (len(cur) == batch_size or total + e > max_edges):
            yield cur
            cur, total = [], 0
        cur.append(item)
        total += e
    if cur:
        yield cur


def pack(
    order: Sequence[int], edges: Sequence[int], batch_size: int, max_edges: int, min_size: int = 1
) -> list[list[int]]:
    """Split ``order`` into consecutive batches of at most ``batch_size`` structures and
    ``max_edges`` edges (:func:`packed`); a last batch smaller than ``min_size`` joins the
    previous one."""
    batches = [
        [int(i) for i in b] for b in packed(order, lambda i: edges[i], batch_size, max_edges)
    ]
    if len(batches) > 1 and len(batches[-1]) < min_size:
        batches[-2].extend(batches.pop())
    return batches


def iter_batches(
    structures: Any, config: NetworkConfig, batch_size: int = 64
) -> Iterator[tuple[list[int], Batch]]:
    """Split structures into batches of at most ``batch_size`` structures and
    ``config.max_edges`` edges, keeping their order (graphs built as they are needed).

    Yields
    ------
    (indices, Batch)
        Positions of the batch's structures in ``structures`` and the batch itself.
    """
    config = _check_config(config)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    items = as_sequence(structures)
    graphs = ((k, graph_of(to_structure(s, k), k, config)) for k, s in enumerate(items))
    for run in packed(graphs, lambda kg: kg[1].num_edges, batch_size, config.max_edges):
        idx = [k for k, _ in run]
        yield idx, batch_of_graphs([g for _, g in run], [_ident(items[i], i) for i in idx])
