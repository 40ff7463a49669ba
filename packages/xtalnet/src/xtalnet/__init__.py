"""xtalnet: an E(3)-equivariant crystal network built from rsh, gaunt-elastic and periodic-conv.

>>> import xtalnet
>>> cfg = xtalnet.NetworkConfig(targets=["formation_energy_per_atom"], r_cut=5.0)
>>> net = xtalnet.Network(cfg)  # doctest: +SKIP

The house, from the command line down: :mod:`xtalnet._cli` parses ``xtalnet train|evaluate|
predict|demo`` and calls :func:`train` (:mod:`xtalnet.training`) or :func:`load` /
:func:`evaluate` (:mod:`xtalnet.inference`); both build graphs with :mod:`xtalnet.data` and run
the :class:`Network` (:mod:`xtalnet.network`), made of the blocks of :mod:`xtalnet.nn` and the
target heads of :mod:`xtalnet.heads`; each layer's convolution is
:class:`periodic_conv.PeriodicConvolution`.
"""

from xtalnet.__about__ import __version__
from xtalnet.config import NetworkConfig
from xtalnet.data import Batch, collate, frame_rotation, iter_batches, orient, to_structure
from xtalnet.inference import evaluate, load
from xtalnet.network import Network, count_parameters
from xtalnet.nn import (
    BesselBasis,
    EquivariantLinear,
    Gate,
    InteractionLayer,
    RadialMLP,
    SpeciesEmbedding,
    polynomial_cutoff,
)
from xtalnet.pyg import from_pyg
from xtalnet.training import TrainOptions, train

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
    "frame_rotation",
    "from_pyg",
    "iter_batches",
    "load",
    "orient",
    "polynomial_cutoff",
    "to_structure",
    "train",
]
