"""Periodic neighbour lists, a data hub and the fused Kernel + PeriodicConvolution operator."""

from periodic_conv.__about__ import __version__
from periodic_conv._conv import PeriodicConvolution, periodic_convolution
from periodic_conv._hub import DataHub, spherical_harmonics
from periodic_conv._irreps import Irreps, parse_irreps
from periodic_conv._neighbors import DEFAULT_MAX_EDGES, Graph, neighbor_list
from periodic_conv._ops import load_extension as build_extension
from periodic_conv._paths import PathTable, coupling, path_table
from periodic_conv._reference import materialize_kernel

__all__ = [
    "DEFAULT_MAX_EDGES",
    "DataHub",
    "Graph",
    "Irreps",
    "PathTable",
    "PeriodicConvolution",
    "__version__",
    "build_extension",
    "coupling",
    "materialize_kernel",
    "neighbor_list",
    "parse_irreps",
    "path_table",
    "periodic_convolution",
    "spherical_harmonics",
]
