"""Real spherical harmonics from one sympy source: torch, C++ (OpenMP) and CUDA backends.

>>> import torch, rsh
>>> y = rsh.spherical_harmonics(torch.randn(10, 3), l_max=4)  # [10, 25]
"""

from . import testing
from .__about__ import __version__
from ._api import L_MAX, SphericalHarmonics, spherical_harmonics, spherical_harmonics_and_gradient
from ._wigner import wigner_D

__all__ = [
    "L_MAX",
    "SphericalHarmonics",
    "__version__",
    "spherical_harmonics",
    "spherical_harmonics_and_gradient",
    "testing",
    "wigner_D",
]
