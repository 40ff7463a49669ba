"""Real spherical harmonics from one sympy source: torch, C++ (OpenMP) and CUDA backends.

Also the vocabulary shared by the xtalnet packages: :mod:`rsh.conventions`,
:class:`rsh.Irreps`, :func:`rsh.sphere_quadrature`, :func:`rsh.wigner_D`,
:mod:`rsh.testing` (equivariance checks) and :mod:`rsh.extensions` (the JIT loader).

>>> import torch, rsh
>>> y = rsh.spherical_harmonics(torch.randn(10, 3), l_max=4)  # [10, 25]
"""

from . import conventions, extensions, testing
from .__about__ import __version__
from ._api import L_MAX, SphericalHarmonics, spherical_harmonics, spherical_harmonics_and_gradient
from ._irreps import Irrep, Irreps
from ._quadrature import MAX_QUADRATURE_DEGREE, sphere_quadrature
from ._wigner import WIGNER_L_MAX, wigner_D


def build_extension() -> bool:
    """Build (first call, about a minute) and load the C++/CUDA extension now.

    Returns True when the compiled backend is available; False (after one warning naming
    the reason) when rsh will use the plain-torch backend. See :mod:`rsh.extensions`.
    """
    from . import _ext

    return _ext.available()


__all__ = [
    "L_MAX",
    "MAX_QUADRATURE_DEGREE",
    "WIGNER_L_MAX",
    "Irrep",
    "Irreps",
    "SphericalHarmonics",
    "__version__",
    "build_extension",
    "conventions",
    "extensions",
    "sphere_quadrature",
    "spherical_harmonics",
    "spherical_harmonics_and_gradient",
    "testing",
    "wigner_D",
]
