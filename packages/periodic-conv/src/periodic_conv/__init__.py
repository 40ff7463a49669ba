"""Periodic neighbour lists, a data hub and the fused Kernel + PeriodicConvolution operator.

The cell guard (:func:`check_cell`, :func:`check_r_cut`, :func:`cell_heights` and their
constants) and the backend and order names (:data:`BACKENDS`, :data:`ORDERS`) need only
numpy: ``from periodic_conv import check_cell`` does not import torch.
Everything else is loaded on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from periodic_conv.__about__ import __version__
from periodic_conv._cell import (
    DEFAULT_CELL_TOL,
    DEFAULT_MAX_EDGES,
    MAX_R_CUT,
    MIN_R_CUT,
    MIN_VOLUME_PER_ATOM,
    CellCheck,
    cell_heights,
    check_cell,
    check_pbc,
    check_r_cut,
)
from periodic_conv._choices import BACKENDS, ORDERS

if TYPE_CHECKING:
    from gaunt_elastic import coupling
    from rsh import Irreps

    from periodic_conv._build import load_extension as build_extension
    from periodic_conv._conv import PeriodicConvolution, periodic_convolution
    from periodic_conv._factored import RadialFactors
    from periodic_conv._hub import DataHub
    from periodic_conv._neighbors import Graph, neighbor_list
    from periodic_conv._paths import PathTable, path_table
    from periodic_conv._reference import materialize_kernel

# public name -> (private module, attribute); imported on first access (they need torch)
_LAZY = {
    "PeriodicConvolution": ("_conv", "PeriodicConvolution"),
    "periodic_convolution": ("_conv", "periodic_convolution"),
    "RadialFactors": ("_factored", "RadialFactors"),
    "DataHub": ("_hub", "DataHub"),
    "Graph": ("_neighbors", "Graph"),
    "neighbor_list": ("_neighbors", "neighbor_list"),
    "build_extension": ("_build", "load_extension"),
    "PathTable": ("_paths", "PathTable"),
    "path_table": ("_paths", "path_table"),
    "materialize_kernel": ("_reference", "materialize_kernel"),
}

_REMOVED = {
    "parse_irreps": "use periodic_conv.Irreps (= rsh.Irreps), e.g. Irreps('16x0e+8x1o')",
    "spherical_harmonics": "use rsh.spherical_harmonics (same basis names, default "
    "convention 'standard'); a DataHub computes the edge harmonics itself",
}


def __getattr__(name: str) -> Any:
    if name == "Irreps":  # the one Irreps type, from rsh (needs torch)
        from rsh import Irreps

        globals()["Irreps"] = Irreps
        return Irreps
    if name == "coupling":  # the one coupling function, from gaunt_elastic (needs torch)
        from gaunt_elastic import coupling

        globals()["coupling"] = coupling
        return coupling
    if name in _REMOVED:
        raise AttributeError(f"periodic_conv.{name} was removed: {_REMOVED[name]}")
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'periodic_conv' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"periodic_conv.{module}"), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"Irreps", "coupling"})


__all__ = [
    "BACKENDS",
    "DEFAULT_CELL_TOL",
    "DEFAULT_MAX_EDGES",
    "MAX_R_CUT",
    "MIN_R_CUT",
    "MIN_VOLUME_PER_ATOM",
    "ORDERS",
    "CellCheck",
    "DataHub",
    "Graph",
    "Irreps",
    "PathTable",
    "PeriodicConvolution",
    "RadialFactors",
    "__version__",
    "build_extension",
    "cell_heights",
    "check_cell",
    "check_pbc",
    "check_r_cut",
    "coupling",
    "materialize_kernel",
    "neighbor_list",
    "path_table",
    "periodic_convolution",
]
