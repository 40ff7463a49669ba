"""Forward passes of a network and their decoding: predictions in physical units, with a
note for every structure whose prediction is missing or doubtful.

Nothing here reads or writes files; :mod:`xtalnet.inference` builds on it (load, evaluate,
tables) and :class:`xtalnet.Network`'s ``predict`` delegates to :func:`predict`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from xtalnet.data import as_sequence, batch_of_graphs, graph_of, pack, packed, to_structure

if TYPE_CHECKING:
    from xtalnet.network import Network

__all__ = [
    "decode",
    "forward_graphs",
    "outputs_with_notes",
    "predict",
    "predict_with_notes",
    "structure_note",
]


@torch.no_grad()
def forward_graphs(
    net: Network, graphs: Sequence[Any], ids: Sequence[str], batch_size: int
) -> dict[str, np.ndarray]:
    """Standardised outputs ``{column: float64 [n, dim]}`` of prebuilt graphs, in order
    (batches of at most ``batch_size`` structures and ``net.config.max_edges`` edges)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    raw: dict[str, list[np.ndarray]] = {c: [] for c in net.heads}
    try:
        edges = [int(g.num_edges) for g in graphs]
        for idx in pack(range(len(graphs)), edges, batch_size, net.config.max_edges):
            batch = batch_of_graphs([graphs[i] for i in idx], [ids[i] for i in idx])
            for c, v in net(batch.to(device)).items():
                raw[c].append(v.detach().cpu().double().numpy())
    finally:
        net.train(was_training)
    return {c: _concat(v, net.target_heads[c].irreps_in.dim) for c, v in raw.items()}


def _concat(parts: list[np.ndarray], dim: int) -> np.ndarray:
    return np.concatenate(parts, 0) if parts else np.zeros((0, dim))


def decode(net: Network, std: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Physical units of standardised outputs: every head's decoded values under its column
    and its extra outputs under ``"<column>.<name>"``."""
    out: dict[str, np.ndarray] = {}
    for c, head in net.target_heads.items():
        out.update(head.decode_all(torch.as_tensor(std[c], dtype=net.config.torch_dtype)))
    return out


def predict(
    net: Network, structures: Any, batch_size: int = 64, *, stacklevel: int = 2
) -> dict[str, np.ndarray]:
    """Predictions in physical units for structures (pymatgen, ASE, mp_audit entries).

    Parameters
    ----------
    net : Network
        A trained network (e.g. from :func:`load`).
    structures : sequence of pymatgen Structure, ASE Atoms or mp_audit.Entry (or one)
    batch_size : int
        Structures per forward pass (also bounded by ``net.config.max_edges``).
    stacklevel : int
        Of the warning (2: the caller of this function).

    Returns
    -------
    dict column -> numpy array
        Scalars [n]; ``elastic_tensor`` [n, 6, 6] GPa (Voigt xx, yy, zz, yz, xz, xy);
        extra outputs of a head (e.g. the band gap's probability of a metal) under
        ``"<column>.<name>"``. Tensors are in the frame the network was trained in
        (``net.config.tensor_frame``): for "ieee" (the default) the IEEE standard frame of
        each structure (:func:`xtalnet.frame_rotation`), not its own Cartesian axes.

    Warns
    -----
    UserWarning
        Naming the structures whose prediction is NaN (an atom without a neighbour within
        r_cut: the network has nothing to say about it) or doubtful (elements the training
        data did not hold); :func:`predict_with_notes` gives those notes per structure.
    """
    with catch_hint():
        pred, notes = predict_with_notes(net, structures, batch_size)
    warn_flagged(notes, stacklevel)
    return pred


@contextlib.contextmanager
def catch_hint() -> Iterator[None]:
    """A ValueError about one structure (``structures[k] ...``) says how to predict the
    others: ``predict_with_notes(structures, catch=True)``."""
    try:
        yield
    except ValueError as exc:
        if not str(exc).startswith("structures["):  # not about one structure: no hint
            raise
        raise ValueError(f"{exc} (predict_with_notes(structures, catch=True) predicts the "
                         "others, with NaN and this reason for this one)") from exc  # fmt: skip


def warn_flagged(notes: Sequence[str], stacklevel: int = 2) -> None:
    """One UserWarning naming the structures with a note (the first five, and how many
    more), nothing when none has one."""
    flagged = [(k, note) for k, note in enumerate(notes) if note]
    if flagged:
        shown = "; ".join(f"structures[{k}]: {note}" for k, note in flagged[:5])
        more = f" (and {len(flagged) - 5} more)" if len(flagged) > 5 else ""
        warnings.warn(f"{len(flagged)} of {len(notes)} predictions flagged: {shown}{more}",
                      stacklevel=stacklevel + 1)  # fmt: skip


def predict_with_notes(
    net: Network, structures: Any, batch_size: int = 64, *, catch: bool = False
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Predictions (as :func:`predict`) and a note per structure (``""`` when none).

    A structure with an atom that has no neighbour within r_cut gets NaN and the note that
    says so; one with elements absent from the training data is predicted and noted. With
    ``catch`` a structure that cannot be read or graphed (disordered, flat cell, unknown
    element, ...) gets NaN and the error as its note instead of raising (and no structure
    at all gives empty arrays).
    """
    (std,), notes = outputs_with_notes([net], structures, batch_size, catch=catch)
    return decode(net, std), notes


@torch.no_grad()
def outputs_with_notes(
    nets: Sequence[Network],
    structures: Any,
    batch_size: int = 64,
    *,
    catch: bool = False,
    numbers: list[Any] | None = None,
) -> tuple[list[dict[str, np.ndarray]], list[str]]:
    """Standardised outputs of every network of ``nets`` (which share their geometry: r_cut,
    frame, dtype, edge budget, as the members of an ensemble do) for structures whose graphs
    are built once, NaN rows where not predicted; and the notes of
    :func:`predict_with_notes`. A list ``numbers`` receives every structure's atomic numbers
    (None where its graph could not be built)."""
    items = as_sequence(structures, allow_empty=catch)  # a chunk whose rows all failed
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    first = nets[0]
    notes = [""] * len(items)
    if numbers is not None:
        numbers[:] = [None] * len(items)
    std = [
        {c: np.full((len(items), h.irreps_in.dim), np.nan) for c, h in n.target_heads.items()}
        for n in nets
    ]

    def graphs() -> Iterator[tuple[int, Any]]:
        for k, obj in enumerate(items):
            try:
                g = graph_of(to_structure(obj, k), k, first.config)
            except (ValueError, TypeError) as exc:
                if not catch:
                    raise
                notes[k] = f"not predicted: {exc}"
                continue
            if numbers is not None:
                numbers[k] = g.numbers
            notes[k] = structure_note(first, g)
            if not notes[k].startswith("not predicted"):
                yield k, g

    modes = [n.training for n in nets]
    for n in nets:
        n.eval()
    try:
        edges = first.config.max_edges
        for run in packed(graphs(), lambda kg: kg[1].num_edges, batch_size, edges):
            idx = [k for k, _ in run]
            batch = batch_of_graphs([g for _, g in run], [str(k) for k in idx])
            for n, out in zip(nets, std):
                device = next(n.parameters()).device
                for c, v in n(batch.to(device)).items():
                    out[c][idx] = v.detach().cpu().double().numpy()
    finally:
        for n, mode in zip(nets, modes):
            n.train(mode)
    return std, notes


def structure_note(net: Network, graph: Any) -> str:
    """Why a structure's prediction is missing (``"not predicted: ..."``) or doubtful."""
    counts = graph.counts
    if bool((counts == 0).any()):
        lonely = torch.nonzero(counts == 0).flatten().tolist()
        return (
            f"not predicted: atom(s) {lonely[:10]} have no neighbour within r_cut="
            f"{net.config.r_cut} Å, so the network has nothing to say about them"
        )
    notes = []
    seen = getattr(net, "train_species", None)
    if seen:
        unseen = sorted({int(z) for z in graph.numbers} - set(seen))
        if unseen:
            from pymatgen.core.periodic_table import Element

            names = ", ".join(Element.from_Z(z).symbol for z in unseen)
            notes.append(f"element(s) {names} absent from the training data: extrapolated")
    pbc = tuple(bool(p) for p in getattr(graph, "pbc", (True, True, True)))
    if not all(pbc):  # a molecule or a slab given to a network of bulk crystals
        notes.append(f"not periodic along every axis (pbc={pbc}): the network was trained on "
                     "bulk crystals; extrapolated")  # fmt: skip
    return "; ".join(notes)
