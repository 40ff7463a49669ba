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
from rsh import Irreps
from rsh.conventions import CONVENTIONS, DEFAULT_CONVENTION, check_convention, check_degree

__all__ = ["CONVENTIONS", "Path", "PathTable", "as_irreps", "path_table"]


@functools.cache
def _coupling64(l_out: int, l_in: int, l: int, convention: str) -> torch.Tensor:
    import gaunt_elastic

    c = gaunt_elastic.coupling(l_out, l_in, l, convention=convention, dtype=torch.float64)
    return torch.as_tensor(c).contiguous()


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

    @functools.cached_property
    def maxima(self) -> tuple[int, int, int, int]:
        """(max degree of l_out, l_in, l; max multiplicity u, v; max l_out; max l_in) over
        the paths: the sizes the compiled kernels need, passed as ints (no device reads)."""
        ps = self.paths
        return (
            max(max(p.l_out, p.l_in, p.l) for p in ps),
            max(max(p.u, p.v) for p in ps),
            max(p.l_out for p in ps),
            max(p.l_in for p in ps),
        )

    @functools.cached_property
    def in_offsets(self) -> list[int]:
        """Start of each input block in the feature dimension."""
        return [s.start for s in self.irreps_in.slices()]

    @functools.cached_property
    def out_offsets(self) -> list[int]:
        """Start of each output block in the feature dimension."""
        return [s.start for s in self.irreps_out.slices()]


def as_irreps(irreps: object, name: str) -> Irreps:
    """``rsh.Irreps`` of an argument, zero multiplicities dropped; at least one block."""
    ir = Irreps(irreps, name=name)
    kept = ir.remove_zero_multiplicities()
    if len(kept) == 0:
        raise ValueError(f"{name}={irreps!r} has no irreps with multiplicity > 0")
    return kept


@functools.lru_cache(maxsize=256)
def _path_table(ir_in: Irreps, ir_out: Irreps, l_filter_max: int, convention: str) -> PathTable:
    irreps_in, irreps_out = str(ir_in), str(ir_out)
    paths = []
    offset = 0
    for k, bo in enumerate(ir_out):
        for i, bi in enumerate(ir_in):
            for l in range(abs(bo.l - bi.l), min(bo.l + bi.l, l_filter_max) + 1):
                if bo.parity != bi.parity * (-1) ** l:
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
    for k, bo in enumerate(ir_out):
        n1 = sum(p.v for p in paths if p.k == k)
        n0 = sum(p.v for p in paths if p.k == k and p.l == 0)
        w1.append(math.sqrt(4 * math.pi * (2 * bo.l + 1) / n1) if n1 else 0.0)
        w0.append(math.sqrt(4 * math.pi * (2 * bo.l + 1) / n0) if n0 else 0.0)
    cs = tuple(_coupling64(p.l_out, p.l_in, p.l, convention) for p in paths)
    return PathTable(
        ir_in, ir_out, l_filter_max, convention, tuple(paths), cs, offset, tuple(w1), tuple(w0)
    )


def path_table(
    irreps_in: object,
    irreps_out: object,
    l_filter_max: int,
    convention: str = DEFAULT_CONVENTION,
) -> PathTable:
    """The (cached) path table of a convolution; see module docstring for the layout.

    Parameters
    ----------
    irreps_in, irreps_out : str or rsh.Irreps
        Irreps of the input and output features (parities e/o; zero multiplicities dropped).
    l_filter_max : int
        Highest filter degree.
    convention : {"standard", "thesis", "e3nn"}
        Basis of the coupling coefficients (``rsh.conventions``).
    """
    convention = check_convention(convention)
    l_filter_max = check_degree(l_filter_max, "l_filter_max")
    ir_in = as_irreps(irreps_in, "irreps_in")
    ir_out = as_irreps(irreps_out, "irreps_out")
    return _path_table(ir_in, ir_out, l_filter_max, convention)
