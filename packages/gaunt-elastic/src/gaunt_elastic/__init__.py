"""Exact real Gaunt and coupling coefficients, and Cartesian/elastic tensors ⇄ irreps.

Public API
----------
real_gaunt, gaunt_tensor, gaunt_tables
    Real Gaunt coefficients (rsh "standard" real spherical harmonics), exact or float.
coupling, coupling_sign
    Coupling coefficients of thesis App. A (Frobenius norm 1, equivariant, e3nn-compatible),
    ``coupling(l_out, l_in, l, *, convention="standard", dtype=torch.float64)``.
elastic
    Elastic tensor ⇄ 21 irreducible components (thesis ch. 4, App. E).
VOIGT_PAIRS
    Voigt index -> Cartesian index pair, ``((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))``
    (xx, yy, zz, yz, xz, xy; the one home of this order, also ``elastic.VOIGT_PAIRS``).
CartesianTensor
    Any-rank Cartesian tensor with index-permutation symmetries ⇄ irreps (``rsh.Irreps``).

Conventions, degree checks, the sphere quadrature and ``Irreps`` come from ``rsh`` (their
one home); ``convention`` defaults to ``"standard"`` everywhere.
"""

from . import elastic
from .__about__ import __version__
from ._cartesian import CartesianTensor
from ._coupling import coupling, coupling_sign
from ._gaunt import gaunt_tables, gaunt_tensor, real_gaunt
from .elastic import VOIGT_PAIRS

__all__ = [
    "VOIGT_PAIRS",
    "CartesianTensor",
    "__version__",
    "coupling",
    "coupling_sign",
    "elastic",
    "gaunt_tables",
    "gaunt_tensor",
    "real_gaunt",
]
