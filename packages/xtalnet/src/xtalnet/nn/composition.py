"""Composition statistics of a structure as invariant scalars for the readouts.

A composition random forest on fraction-weighted element properties is what materials-ML
users try first, and on small data it is hard to beat: the formula alone carries most of
what a formation energy, a band gap or a bulk modulus depends on. :class:`CompositionFeatures`
gives the network the same information directly: per structure, the atom-fraction-weighted
mean, the weighted standard deviation, the minimum and the maximum of the standardised
elemental descriptors of :mod:`xtalnet.species` over its atoms (4 x 21 numbers,
Magpie-style statistics), through a small MLP to scalars (0e) that join the pooled features
before the per-target readouts. They are invariant under rotations, translations,
permutations and supercells, so every equivariance of the network is kept.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from xtalnet.nn.activations import normalized_activation

__all__ = ["CompositionFeatures", "composition_statistics"]


def composition_statistics(
    descriptors: torch.Tensor, numbers: torch.Tensor, batch: torch.Tensor, num_graphs: int
) -> torch.Tensor:
    """Per structure: weighted mean, weighted std, min and max of ``descriptors[numbers]``.

    Parameters
    ----------
    descriptors : Tensor [max_z + 1, d]
        One row of descriptors per atomic number.
    numbers, batch : Tensor [N] (int64)
        Atomic number and structure index of every atom.
    num_graphs : int

    Returns
    -------
    Tensor [num_graphs, 4 d]
        Atom fractions weight mean and standard deviation (an atom counts once, so the
        weights are the fractions of the formula).
    """
    rows = descriptors[numbers]
    d = rows.shape[1]
    zeros = torch.zeros(num_graphs, d, dtype=rows.dtype, device=rows.device)
    count = torch.bincount(batch, minlength=num_graphs).to(rows.dtype)[:, None]
    mean = zeros.index_add(0, batch, rows) / count
    var = zeros.index_add(0, batch, (rows - mean[batch]) ** 2) / count
    index = batch[:, None].expand_as(rows)
    low = zeros.scatter_reduce(0, index, rows, "amin", include_self=False)
    high = zeros.scatter_reduce(0, index, rows, "amax", include_self=False)
    return torch.cat([mean, var.clamp(min=0.0).sqrt(), low, high], 1)


class CompositionFeatures(nn.Module):
    """Composition statistics -> ``dim`` unit-variance scalars per structure.

    Parameters
    ----------
    dim : int
        Number of output scalars (the 0e channels they join).
    hidden : int
        Width of the MLP's hidden layer.
    generator : torch.Generator
        Source of the initial weights (variance 1 / fan_in).

    Notes
    -----
    The descriptor table is :func:`xtalnet.species.elemental_table` (a buffer, saved with
    the weights). The 84 statistics are standardised by their mean and standard deviation
    over every 1:1 binary formula of Z = 1..94 (the standard deviation of one element alone
    would be identically zero), so each input starts with mean 0 and variance 1 over those
    compounds.
    """

    descriptors: torch.Tensor
    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, dim: int, hidden: int = 64, *, generator: torch.Generator) -> None:
        super().__init__()
        from xtalnet.species import elemental_table

        table = torch.tensor(elemental_table(), dtype=torch.float64)
        self.register_buffer("descriptors", table)
        z = torch.arange(1, table.shape[0])
        pairs = torch.cartesian_prod(z, z).reshape(-1)
        stats = composition_statistics(
            table, pairs, torch.arange(pairs.numel() // 2).repeat_interleave(2), pairs.numel() // 2
        )
        self.register_buffer("shift", stats.mean(0))
        self.register_buffer("scale", stats.std(0, unbiased=False).clamp(min=1e-6))
        self.hidden = nn.Linear(stats.shape[1], hidden, dtype=torch.float64)
        self.out = nn.Linear(hidden, dim, dtype=torch.float64)
        self.act = normalized_activation("silu")
        with torch.no_grad():
            for lin in (self.hidden, self.out):
                w = torch.randn(lin.weight.shape, generator=generator, dtype=torch.float64)
                lin.weight.copy_(w / math.sqrt(lin.in_features))
                lin.bias.zero_()

    def forward(self, numbers: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
        """Scalars [num_graphs, dim] of every structure's composition."""
        stats = composition_statistics(self.descriptors, numbers, batch, num_graphs)
        x = (stats - self.shift) / self.scale
        return self.out(self.act(self.hidden(x)))
