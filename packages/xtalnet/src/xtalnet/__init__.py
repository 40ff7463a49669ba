"""xtalnet: an E(3)-equivariant crystal network built from rsh, gaunt-elastic and periodic-conv.

>>> import xtalnet
>>> cfg = xtalnet.NetworkConfig(targets=["formation_energy_per_atom"], r_cut=5.0)
>>> net = xtalnet.Network(cfg)  # doctest: +SKIP
"""

from xtalnet.__about__ import __version__
from xtalnet.config import NetworkConfig
from xtalnet.data import Batch, collate, from_pyg, iter_batches, to_structure
from xtalnet.model import (
    BesselBasis,
    EquivariantLinear,
    Gate,
    InteractionLayer,
    Network,
    RadialMLP,
    SpeciesEmbedding,
    count_parameters,
    polynomial_cutoff,
)
from xtalnet.train import TrainOptions, evaluate, load, train

__all__ = [
    "Batch",
    "BesselBasis",
    "EquivariantLinear",
    "Gate",
    "InteractionLayer",
    "Network",
    "NetworkConfig",
    "RadialMLP",
    "SpeciesEmbedding",
    "TrainOptions",
    "__version__",
    "collate",
    "count_parameters",
    "evaluate",
    "from_pyg",
    "iter_batches",
    "load",
    "polynomial_cutoff",
    "to_structure",
    "train",
]
