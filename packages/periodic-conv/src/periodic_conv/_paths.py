"""Path tables, coupling coefficients and the normalisation W (thesis App. B, eq. B.33-B.36).

A path is (k, i, l): output block k (l_out, multiplicity u), input block i (l_in,
multiplicity v) and filter degree l with |l_out - l_in| <= l <= min(l_out + l_in, l_filter_max)
and, when the irreps carry parity, p_out = p_in (-1)^l. Path p owns the slice
``R[:, offset_p : offset_p + u v]`` of the radial outputs, read as ``R[e, p, u, v]``
(row-major u, v), paths ordered by (k, i, l) as in R_{ab l_out l_in l u v} of eq. C.1.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from periodic_conv._irreps import Irreps, parse_irreps

__all__ = ["CONVENTIONS", "Path", "PathTable", "coupling", "path_table"]

CONVENTIONS = ("standard", "thesis", "e3nn")


@functools.cache
def _coupling64(l_out: int, l_in: int, l: int, convention: str) -> torch.Tensor:
    import gaunt_elastic

    c = gaunt_elastic.coupling(l_out, l_in, l, convention=convention, dtype=torch.float64)
    return torch.as_tensor(c).contiguous()


def coupling(
    l_out: int,
    l_in: int,
    l: int,
    *,
    convention: str = "standard",
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Coupling coefficients C[i, j, m] of thesis App. A, as used by the convolution.

    ``gaunt_elastic.coupling`` with the same arguments (same keyword-only ``convention`` and
    ``dtype``, same checks), cached per degree triple: a new tensor each call, so the cache
    cannot be modified through it. For ``convention="e3nn"`` it is exactly
    ``e3nn.o3.wigner_3j`` with e3nn's signs, so the op then equals e3nn's TensorProduct.

    Parameters
    ----------
    l_out, l_in, l : int
        Degrees of output, input and filter, ``|l_out - l_in| <= l <= l_out + l_in``.
    convention : {"standard", "thesis", "e3nn"}
        Real spherical-harmonic basis of all three indices.
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    Tensor [2 l_out + 1, 2 l_in + 1, 2 l + 1]
        Frobenius norm 1.
    """
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    hashable = all(isinstance(x, int) and not isinstance(x, bool) for x in (l_out, l_in, l))
    if not hashable or not isinstance(convention, str):
        import gaunt_elastic  # its checks and messages for bad degrees / conventions

        return gaunt_elastic.coupling(l_out, l_in, l, convention=convention, dtype=dtype)
    return _coupling64(l_out, l_in, l, convention).to(dtype, copy=True)


@dataclass(frozen=True)
class Path:
    k: int  # output block
    i: int  # input block
    l: int  # filter degree
    l_out: int
    l_in: int
    u: int
    v: int
    offset: int  # into R's last dimension


@dataclass(frozen=True)
class PathTable:
    """Everything the kernels need that depends on the network only (built once, §3.3.4)."""

    irreps_in: Irreps
    irreps_out: Irreps
    l_filter_max: int
    convention: str
    paths: tuple[Path, ...]
    couplings: tuple[torch.Tensor, ...]  # C per path, float64
    weight_numel: int
    w_nonzero: tuple[float, ...]  # W_{r != 0} per output block (B.34, counted over present paths)
    w_zero: tuple[float, ...]  # W_{r = 0} per output block (B.35, counted over present paths)

    @property
    def in_offsets(self) -> list[int]:
        return self.irreps_in.offsets()

    @property
    def out_offsets(self) -> list[int]:
        return self.irreps_out.offsets()


@functools.lru_cache(maxsize=256)
def _path_table(irreps_in: str, irreps_out: str, l_filter_max: int, convention: str) -> PathTable:
    ir_in = parse_irreps(irreps_in, "irreps_in")
    ir_out = parse_irreps(irreps_out, "irreps_out")
    if ir_in.has_parity != ir_out.has_parity:
        raise ValueError(
            f"irreps_in={irreps_in!r} and irreps_out={irreps_out!r}: either both carry parity "
            "(e/o) or neither does"
        )
    paths = []
    offset = 0
    for k, bo in enumerate(ir_out.blocks):
        for i, bi in enumerate(ir_in.blocks):
            for l in range(abs(bo.l - bi.l), min(bo.l + bi.l, l_filter_max) + 1):
                if ir_in.has_parity and bo.parity != bi.parity * (-1) ** l:
                    continue
                paths.append(Path(k, i, l, bo.l, bi.l, bo.mul, bi.mul, offset))
                offset += bo.mul * bi.mul
    if not paths:
        raise ValueError(
            f"no valid path between irreps_in={irreps_in!r} and irreps_out={irreps_out!r} with "
            f"l_filter_max={l_filter_max} (need |l_out - l_in| <= l <= l_filter_max and "
            "p_out = p_in (-1)^l)"
        )
    # W (B.33-B.36): Var(F') = W^2/(4 pi) * sum_{paths present} v / (2 l_out + 1); solve for 1.
    # Summing only over the paths present (filter cut, parity) keeps the variance at 1 where the
    # thesis's closed form 1 + 2 min(l_out, l_in) would over-count. For r = 0 only Y_00 != 0,
    # so only l = 0 paths contribute.
    w1, w0 = [], []
    for k, bo in enumerate(ir_out.blocks):
        n1 = sum(p.v for p in paths if p.k == k)
        n0 = sum(p.v for p in paths if p.k == k and p.l == 0)
        w1.append(math.sqrt(4 * math.pi * (2 * bo.l + 1) / n1) if n1 else 0.0)
        w0.append(math.sqrt(4 * math.pi * (2 * bo.l + 1) / n0) if n0 else 0.0)
    cs = tuple(_coupling64(p.l_out, p.l_in, p.l, convention) for p in paths)
    return PathTable(
        ir_in, ir_out, l_filter_max, convention, tuple(paths), cs, offset, tuple(w1), tuple(w0)
    )


def path_table(irreps_in, irreps_out, l_filter_max: int, convention: str = "standard") -> PathTable:
    """The (cached) path table of a convolution; see module docstring for the layout."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if isinstance(l_filter_max, bool) or not isinstance(l_filter_max, int) or l_filter_max < 0:
        raise ValueError(f"l_filter_max must be an int >= 0, got {l_filter_max!r}")
    ir_in = str(parse_irreps(irreps_in, "irreps_in"))
    ir_out = str(parse_irreps(irreps_out, "irreps_out"))
    return _path_table(ir_in, ir_out, l_filter_max, convention)
