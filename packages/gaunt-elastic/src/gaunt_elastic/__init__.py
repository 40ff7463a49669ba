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

__all__ = [
    "CartesianTensor",
    "__version__",
    "coupling",
    "coupling_sign",
    "elastic",
    "gaunt_tables",
    "gaunt_tensor",
    "real_gaunt",
]
