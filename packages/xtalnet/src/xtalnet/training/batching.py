"""Batches of one epoch: a seeded order packed by the structure and edge budgets, shared
between the ranks by edges, and optionally noisy copies of the structures (augmentation)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xtalnet.config import NetworkConfig
from xtalnet.data import Batch, batch_of_graphs, graph_of, pack, to_structure
from xtalnet.dataset import Sample
from xtalnet.training.options import TrainOptions

__all__ = ["collate_samples", "epoch_batches", "noisy_batch", "shard"]


def shard(batch: Sequence[int], edges: Sequence[int], world: int) -> list[list[int]]:
    """Edge-balanced split of one global batch over ``world`` ranks (largest first, each to
    the rank with the fewest edges so far; ties to the lower rank); order kept inside a rank."""
    loads = [0] * world
    parts: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(batch, key=lambda j: (-int(edges[j]), j)):
        r = min(range(world), key=lambda k: (loads[k], len(parts[k]), k))
        parts[r].append(i)
        loads[r] += int(edges[i])
    pos = {j: n for n, j in enumerate(batch)}
    return [sorted(p, key=pos.__getitem__) for p in parts]


def epoch_batches(
    n: int, edges: Sequence[int], opts: TrainOptions, max_edges: int, epoch: int, world: int
) -> list[list[int]]:
    """Global batches of one epoch: a permutation seeded by (seed, epoch), packed by the
    structure and edge budgets (``world`` x max_edges for the global batch)."""
    gen = torch.Generator().manual_seed(opts.seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=gen).tolist()
    return pack(order, edges, opts.batch_size, max_edges * world, min_size=world)


def noisy_batch(
    samples: Sequence[Sample],
    idx: Sequence[int],
    opts: TrainOptions,
    cfg: NetworkConfig,
    step: int,
) -> Batch:
    """The batch of ``idx`` with every atom displaced by N(0, noise²) per Cartesian axis,
    drawn from a generator seeded by (seed, step, structure index)."""
    from ase import Atoms

    graphs = []
    for i in idx:
        s = to_structure(samples[i].structure)
        if hasattr(s, "lattice"):
            pos, cell = np.asarray(s.cart_coords), np.asarray(s.lattice.matrix)
            numbers = np.asarray(s.atomic_numbers)
        else:
            pos, cell, numbers = s.get_positions(), s.get_cell()[:], s.get_atomic_numbers()
        gen = np.random.default_rng([opts.seed, step, i])
        atoms = Atoms(numbers=numbers, positions=pos + gen.normal(scale=opts.noise, size=pos.shape),
                      cell=cell, pbc=True)  # fmt: skip
        graphs.append(graph_of(atoms, i, cfg, oriented=True))  # samples are oriented
    return batch_of_graphs(graphs, [samples[i].id for i in idx])


def collate_samples(samples: Sequence[Sample], idx: Sequence[int]) -> Batch:
    """The batch of the samples ``idx`` (their prebuilt graphs)."""
    return batch_of_graphs([samples[i].graph for i in idx], [samples[i].id for i in idx])
