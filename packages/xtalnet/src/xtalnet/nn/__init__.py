"""The network's building blocks as pure ``nn.Module``\\ s (no I/O).

- :mod:`~xtalnet.nn.embedding`: atomic number -> unit-variance scalars;
- :mod:`~xtalnet.nn.radial`: Bessel basis, cutoff envelope, radial MLP;
- :mod:`~xtalnet.nn.equivariant`: equivariant linear map, block RMS norm, gate;
- :mod:`~xtalnet.nn.interaction`: convolution -> norm -> gate -> self-connection;
- :mod:`~xtalnet.nn.composition`: composition statistics -> scalars for the readouts.

Normalisation follows Appendix B of the thesis: the embedding gives unit-variance scalars
(assertion 2); every radial output R has zero mean and unit variance over points uniform in
the ball of radius r_cut (assertions 1 and 5, imposed at initialisation by quadrature); W and
1/sqrt|N(a)| are applied inside :class:`periodic_conv.PeriodicConvolution`; the gate's
non-linearities are scaled to unit second moment under a standard normal input, and every
linear map is initialised with variance 1/fan_in.
"""

from xtalnet.nn.activations import normalized_activation
from xtalnet.nn.composition import CompositionFeatures
from xtalnet.nn.embedding import SpeciesEmbedding
from xtalnet.nn.equivariant import (
    BlockRMSNorm,
    EquivariantLinear,
    Gate,
    ToStandardBasis,
    nonzero_irreps,
    reachable,
)
from xtalnet.nn.interaction import InteractionLayer
from xtalnet.nn.radial import BesselBasis, RadialMLP, ball_quadrature, polynomial_cutoff

__all__ = [
    "BesselBasis",
    "BlockRMSNorm",
    "CompositionFeatures",
    "EquivariantLinear",
    "Gate",
    "InteractionLayer",
    "RadialMLP",
    "SpeciesEmbedding",
    "ToStandardBasis",
    "ball_quadrature",
    "nonzero_irreps",
    "normalized_activation",
    "polynomial_cutoff",
    "reachable",
]
