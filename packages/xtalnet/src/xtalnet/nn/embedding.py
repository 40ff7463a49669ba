"""Species embedding: atomic number -> unit-variance scalars (App. B assertion 2)."""

from __future__ import annotations

import math

import torch
from torch import nn

from xtalnet.config import MAX_Z, SPECIES_FEATURES

__all__ = ["SpeciesEmbedding"]


class SpeciesEmbedding(nn.Module):
    """Atomic number Z (1..94) -> ``dim`` scalars (0e) with zero mean and unit variance over
    the elements at init (App. B assertion 2).

    Parameters
    ----------
    dim : int
        Number of output scalars.
    generator : torch.Generator
        Source of the initial weights.
    max_z : int
        Highest atomic number.
    features : {"onehot", "elemental", "both"}
        ``"onehot"``: a free table of N(0, 1) entries, i.e. a linear map of the one-hot Z
        (parameter ``weight`` [max_z + 1, dim]). ``"elemental"``: a linear map ``proj``
        [d, dim] of the standardised physical descriptors of :func:`xtalnet.species.
        elemental_table` (buffer ``descriptors``, saved with the weights), so that alike
        elements start alike; each output column is scaled at init to mean 0 and variance 1
        over Z = 1..94. ``"both"``: ``(onehot + elemental) / sqrt 2``.
    """

    descriptors: torch.Tensor

    def __init__(
        self,
        dim: int,
        *,
        generator: torch.Generator,
        max_z: int = MAX_Z,
        features: str = "onehot",
    ) -> None:
        super().__init__()
        if features not in SPECIES_FEATURES:
            raise ValueError(f"features must be one of {SPECIES_FEATURES}, got {features!r}")
        self.max_z = max_z
        self.features = features
        if features in ("onehot", "both"):
            self.weight = nn.Parameter(
                torch.randn(max_z + 1, dim, generator=generator, dtype=torch.float64)
            )
        if features in ("elemental", "both"):
            from xtalnet.species import elemental_table

            table = torch.tensor(elemental_table(), dtype=torch.float64)
            if table.shape[0] != max_z + 1:
                raise ValueError(
                    f"max_z={max_z}, but the elemental table covers Z <= {table.shape[0] - 1}"
                )
            proj = torch.randn(table.shape[1], dim, generator=generator, dtype=torch.float64)
            y = table[1:] @ proj  # columns of the table have mean 0: so has y
            proj = proj / y.std(0, unbiased=False).clamp(min=1e-12)
            self.register_buffer("descriptors", table)
            self.proj = nn.Parameter(proj)

    def forward(self, numbers: torch.Tensor) -> torch.Tensor:
        if self.features == "onehot":
            return self.weight[numbers]
        x = self.descriptors[numbers] @ self.proj
        if self.features == "both":
            x = (x + self.weight[numbers]) * (1.0 / math.sqrt(2.0))
        return x

    def extra_repr(self) -> str:
        return f"features={self.features!r}, max_z={self.max_z}"
