"""Public entry points: argument checks, conventions, normalizations and backend dispatch.

Every backend computes the *standard* convention with *integral* normalization (the
Wikipedia table; what sphericart computes). The other conventions are exact relabellings:

- ``thesis``: (-1)^l x standard (thesis eq. 3.3),
- ``e3nn``: standard evaluated at the cyclically permuted point (z, x, y); e3nn's polar axis
  is y and its l=1 block is (x, y, z). No signs are left over (checked to 1e-12, l <= 12).

and the normalizations are one scale per degree: component = sqrt(4π) x integral,
norm = sqrt(4π/(2l+1)) x integral.
"""

from __future__ import annotations

import math

import torch

from . import _backends
from ._validate import BACKENDS, NORMALIZATIONS, check_choice, check_float_tensor
from .conventions import (
    DEFAULT_CONVENTION,
    E3NN_GRADIENT_PERMUTATION,
    E3NN_PERMUTATION,
    check_convention,
    check_degree,
    degree_sign,
)

__all__ = ["L_MAX", "SphericalHarmonics", "spherical_harmonics", "spherical_harmonics_and_gradient"]

L_MAX: int = _backends.L_MAX

# e3nn's point (x, y, z) is the standard point (z, x, y); gradients come back through the
# inverse permutation (see rsh.conventions).
_E3NN_PERM = list(E3NN_PERMUTATION)
_E3NN_GRAD_PERM = list(E3NN_GRADIENT_PERMUTATION)


def _scale(l_max: int, normalization: str, convention: str) -> list[float] | None:
    """Per-entry factors turning standard/integral into the requested basis (None: all 1)."""
    factors = []
    for l in range(l_max + 1):
        f = 1.0
        if normalization == "component":
            f = math.sqrt(4 * math.pi)
        elif normalization == "norm":
            f = math.sqrt(4 * math.pi / (2 * l + 1))
        f *= degree_sign(l, convention)
        factors += [f] * (2 * l + 1)
    if all(f == 1.0 for f in factors):
        return None
    return factors


def _prepare(xyz, l_max, normalize, normalization, convention, backend):
    xyz = check_float_tensor("xyz", xyz, (3,))
    l_max = check_degree(l_max, "l_max", l_max=L_MAX)
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be a bool, got {type(normalize).__name__} {normalize!r}")
    normalization = check_choice("normalization", normalization, NORMALIZATIONS)
    convention = check_convention(convention)
    backend = _backends.resolve(check_choice("backend", backend, BACKENDS), xyz)
    return xyz, l_max, backend


def _is_plain_cpp_call(xyz, l_max, normalize, normalization, convention, backend) -> bool:
    """True for the common call that needs no conversion: a CPU float32/float64 [N, 3] tensor,
    standard/integral, cpp or auto backend. It then goes straight to the op: the generic
    path's checks cost ~10 us per call, as much as the l = 1 kernel on 5000 points."""
    return (
        type(l_max) is int
        and 0 <= l_max <= L_MAX
        and type(normalize) is bool
        and normalization == "integral"
        and convention == "standard"
        and (backend == "auto" or backend == "cpp")
        and isinstance(xyz, torch.Tensor)
        and xyz.is_cpu
        and xyz.dim() == 2
        and xyz.shape[1] == 3
        and (xyz.dtype == torch.float32 or xyz.dtype == torch.float64)
        and _backends.cpp_available()
    )


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # Half precisions are evaluated in float32 and cast back: the recurrences lose
    # too many digits in 10-bit (or 7-bit) mantissas.
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def spherical_harmonics(
    xyz: torch.Tensor,
    l_max: int,
    *,
    normalize: bool = True,
    normalization: str = "integral",
    convention: str = DEFAULT_CONVENTION,
    backend: str = "auto",
) -> torch.Tensor:
    """Real spherical harmonics Y_lm of the directions ``xyz``, for every l <= ``l_max``.

    Parameters
    ----------
    xyz : Tensor [..., 3]
        Points (any length unit). float16/bfloat16 are computed in float32 and cast back.
    l_max : int
        Largest degree, 0 <= l_max <= ``rsh.L_MAX``.
    normalize : bool
        True: Y_lm(x/|x|) (at x = 0: Y_00 keeps its constant, every l > 0 entry is 0).
        False: the solid harmonics |x|^l Y_lm(x/|x|) (in units of length^l).
    normalization : {"integral", "component", "norm"}
        integral: ∫ Y_lm² dΩ = 1; component: Σ_m Y_lm² = 2l+1; norm: Σ_m Y_lm² = 1 (unit sphere).
    convention : {"standard", "thesis", "e3nn"}
        standard: z polar axis, m>0 ∝ cos(mφ), m<0 ∝ sin(|m|φ), l=1 block ∝ (y, z, x).
        thesis: (-1)^l x standard. e3nn: equal to ``e3nn.o3.spherical_harmonics``.
    backend : {"auto", "torch", "cpp", "cuda"}
        auto: cuda for CUDA tensors, cpp for CPU tensors when the extension builds, else torch.

    Returns
    -------
    Tensor [..., (l_max+1)²]
        l-major, m = -l..l, entry ``l*l + l + m``; dimensionless (normalize=True).
        A row with NaN input gives NaN in that row only.
    """
    if _is_plain_cpp_call(xyz, l_max, normalize, normalization, convention, backend):
        return torch.ops.rsh.sh(xyz, l_max, normalize)
    xyz, l_max, backend = _prepare(xyz, l_max, normalize, normalization, convention, backend)
    dtype = xyz.dtype
    x = xyz.to(_compute_dtype(dtype))
    if convention == "e3nn":
        x = x[..., _E3NN_PERM]
    y = _backends.forward(x, l_max, normalize, backend)
    scale = _scale(l_max, normalization, convention)
    if scale is not None:
        y = y * torch.tensor(scale, dtype=y.dtype, device=y.device)
    return y.to(dtype)


def spherical_harmonics_and_gradient(
    xyz: torch.Tensor,
    l_max: int,
    *,
    normalize: bool = True,
    normalization: str = "integral",
    convention: str = DEFAULT_CONVENTION,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Y (as :func:`spherical_harmonics`) and its gradient dY[..., i, k] = ∂Y_k/∂xyz_i.

    The gradient has units of 1/length (normalize=True) and is 0 at x = 0. Both outputs
    are differentiable (double backward works). Parameters as :func:`spherical_harmonics`.

    Returns
    -------
    (Tensor [..., (l_max+1)²], Tensor [..., 3, (l_max+1)²])
    """
    xyz, l_max, backend = _prepare(xyz, l_max, normalize, normalization, convention, backend)
    dtype = xyz.dtype
    x = xyz.to(_compute_dtype(dtype))
    if convention == "e3nn":
        x = x[..., _E3NN_PERM]
    y, dy = _backends.forward_and_gradient(x, l_max, normalize, backend)
    if convention == "e3nn":
        dy = dy[..., _E3NN_GRAD_PERM, :]
    scale = _scale(l_max, normalization, convention)
    if scale is not None:
        s = torch.tensor(scale, dtype=y.dtype, device=y.device)
        y = y * s
        dy = dy * s
    return y.to(dtype), dy.to(dtype)


class SphericalHarmonics(torch.nn.Module):
    """Module form of :func:`spherical_harmonics` (same keyword arguments, fixed at init)."""

    def __init__(
        self,
        l_max: int,
        *,
        normalize: bool = True,
        normalization: str = "integral",
        convention: str = DEFAULT_CONVENTION,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        check_degree(l_max, "l_max", l_max=L_MAX)
        check_choice("normalization", normalization, NORMALIZATIONS)
        check_convention(convention)
        check_choice("backend", backend, BACKENDS)
        self.l_max = l_max
        self.normalize = normalize
        self.normalization = normalization
        self.convention = convention
        self.backend = backend

    def forward(self, xyz: torch.Tensor) -> torch.Tensor:
        """Y [..., (l_max+1)²] of ``xyz`` [..., 3]."""
        return spherical_harmonics(
            xyz,
            self.l_max,
            normalize=self.normalize,
            normalization=self.normalization,
            convention=self.convention,
            backend=self.backend,
        )

    def extra_repr(self) -> str:
        return (
            f"l_max={self.l_max}, normalize={self.normalize}, "
            f"normalization={self.normalization!r}, "
            f"convention={self.convention!r}, backend={self.backend!r}"
        )
