"""Periodic neighbour lists, a data hub and the fused Kernel + PeriodicConvolution operator."""

from periodic_conv.__about__ import __version__
from periodic_conv._neighbors import DEFAULT_MAX_EDGES, Graph, neighbor_list

__all__ = ["DEFAULT_MAX_EDGES", "Graph", "__version__", "neighbor_list"]
