"""O(3)-equivariant maps on irreps features: linear mixing, block RMS norm and the gate."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from rsh import Irreps
from torch import nn

from xtalnet.nn.activations import normalized_activation

__all__ = [
    "BlockRMSNorm",
    "EquivariantLinear",
    "Gate",
    "ToStandardBasis",
    "nonzero_irreps",
    "reachable",
]


def nonzero_irreps(irreps: Any, name: str) -> Irreps:
    """:class:`rsh.Irreps` of ``irreps`` without zero multiplicities (order kept).

    Raises ``ValueError`` naming ``name`` when nothing is left.
    """
    out = Irreps(irreps, name=name).remove_zero_multiplicities()
    if len(out) == 0:
        raise ValueError(f"{name}={str(irreps)!r} has no irreps with multiplicity > 0")
    return out


class EquivariantLinear(nn.Module):
    """Per-(l, parity) linear mixing of multiplicities: out_(l,p) = sum over input blocks of the
    same (l, p) of x W / sqrt(fan_in); equivariant under O(3) for any weights.

    Parameters
    ----------
    irreps_in, irreps_out : str or rsh.Irreps
        Every output (l, p) needs at least one input block of the same (l, p).
    """

    def __init__(self, irreps_in: Any, irreps_out: Any, *, generator: torch.Generator) -> None:
        super().__init__()
        self.irreps_in = nonzero_irreps(irreps_in, "irreps_in")
        self.irreps_out = nonzero_irreps(irreps_out, "irreps_out")
        in_off = np.cumsum([0] + [m * (2 * l + 1) for m, l, _ in self.irreps_in]).tolist()
        out_off = np.cumsum([0] + [m * (2 * l + 1) for m, l, _ in self.irreps_out]).tolist()
        self.dim_in, self.dim_out = in_off[-1], out_off[-1]
        self.weights = nn.ParameterList()
        self._plan: list[tuple[int, int, int, list[tuple[int, int, int]], float]] = []
        for k, (mo, lo, po) in enumerate(self.irreps_out):
            srcs = [
                (in_off[i], mi, i)
                for i, (mi, li, pi) in enumerate(self.irreps_in)
                if (li, pi) == (lo, po)
            ]
            if not srcs:
                raise ValueError(
                    f"irreps_out={str(self.irreps_out)!r} needs "
                    f"{lo}{'e' if po == 1 else 'o'}, which irreps_in="
                    f"{str(self.irreps_in)!r} lacks"
                )
            fan_in = sum(m for _, m, _ in srcs)
            w = torch.randn(fan_in, mo, generator=generator, dtype=torch.float64)
            self.weights.append(nn.Parameter(w))
            self._plan.append((out_off[k], mo, lo, srcs, 1.0 / math.sqrt(fan_in)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for (_, mo, l, srcs, norm), w in zip(self._plan, self.weights):
            d = 2 * l + 1
            xs = [x[:, o : o + m * d].reshape(-1, m, d) for o, m, _ in srcs]
            xin = xs[0] if len(xs) == 1 else torch.cat(xs, 1)
            y = torch.einsum("nud,uw->nwd", xin, w) * norm
            outs.append(y.reshape(-1, mo * d))
        return torch.cat(outs, 1) if len(outs) > 1 else outs[0]

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}"


class BlockRMSNorm(nn.Module):
    """Per-atom, per-irrep-block RMS normalisation (equivariant: block norms are invariant).

    ``y_block = x_block / sqrt(ms_block + eps * ms_atom + tiny)`` with ``ms_block`` the mean
    square of the block's multiplicities and components for that atom and ``ms_atom`` the
    mean square of the atom's whole feature vector. A block that is exactly zero (by site
    symmetry, or an isolated atom) stays zero; ``eps`` keeps rounding-level residues of such
    blocks from being blown up to order one.

    Why: W of App. B assumes the neighbours' contributions are independent (Case 1). In real
    crystals at 5 Å the periodic images of one atom are summed coherently (Case 2): measured
    at initialisation on ase.collections.dcdft without this layer, the 0e mean square grows
    1.5 -> 3.0 -> 6.2 -> 14.9 over 4 layers while the l > 0 blocks of MP-20 compounds shrink
    to 0.02-0.3 (near-equilibrium environments cancel sum_b Y_1(r_b) R(r_b)). This layer keeps
    every block at unit mean square whatever the structure.
    """

    def __init__(self, irreps: Irreps, eps: float = 1e-3) -> None:
        super().__init__()
        self.irreps = irreps
        self.eps = float(eps)
        self._blocks = []
        o = 0
        for m, l, _ in irreps:
            self._blocks.append((o, m, 2 * l + 1))
            o += m * (2 * l + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tiny = torch.finfo(x.dtype).tiny ** 0.5
        ms_atom = x.square().mean(1, keepdim=True)
        outs = []
        for o, m, d in self._blocks:
            xb = x[:, o : o + m * d]
            ms = xb.square().mean(1, keepdim=True)
            outs.append(xb * torch.rsqrt(ms + self.eps * ms_atom + tiny))
        return torch.cat(outs, 1)

    def extra_repr(self) -> str:
        return f"{self.irreps}, eps={self.eps:g}"


class Gate(nn.Module):
    """Gate of eq. 3.11 on ``[scalars | gates | gated]``.

    Even scalars pass through normalised SiLU, odd scalars through normalised tanh (odd, so
    parity is kept); each l > 0 channel (one multiplicity copy, all 2l+1 components) of the
    gated irreps is multiplied by its own gate scalar through a normalised sigmoid.

    Parameters
    ----------
    irreps_scalars : str or rsh.Irreps
        Blocks with l = 0 (even or odd).
    irreps_gated : str or rsh.Irreps
        Blocks with l > 0 (may be empty: ``rsh.Irreps([])``); one gate per multiplicity copy.
    """

    gate_index: torch.Tensor
    odd_mask: torch.Tensor

    def __init__(self, irreps_scalars: Any, irreps_gated: Any) -> None:
        super().__init__()
        irreps_scalars = Irreps(irreps_scalars, name="irreps_scalars")
        irreps_gated = Irreps(irreps_gated, name="irreps_gated")
        if any(l != 0 for _, l, _ in irreps_scalars):
            raise ValueError(f"irreps_scalars must have l = 0, got {str(irreps_scalars)!r}")
        if any(l == 0 for _, l, _ in irreps_gated):
            raise ValueError(f"irreps_gated must have l > 0, got {str(irreps_gated)!r}")
        self.irreps_scalars = irreps_scalars
        self.irreps_gated = irreps_gated
        self.num_gates = sum(m for m, _, _ in irreps_gated)
        self.silu = normalized_activation("silu")
        self.tanh = normalized_activation("tanh")
        self.sigmoid = normalized_activation("sigmoid")
        gates = Irreps([(self.num_gates, 0, 1)] if self.num_gates else [])
        self.irreps_in = irreps_scalars + gates + irreps_gated
        self.irreps_out = irreps_scalars + irreps_gated
        # per-component index of the gate of every gated component
        idx = []
        for g, (_m, l, _) in enumerate(_expand(irreps_gated)):
            idx += [g] * (2 * l + 1)
        self.register_buffer("gate_index", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.register_buffer(
            "odd_mask",
            torch.tensor(
                [p == -1 for m, _, p in irreps_scalars for _ in range(m)], dtype=torch.bool
            ),
            persistent=False,
        )
        self.num_scalars = sum(m for m, _, _ in irreps_scalars)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x[:, : self.num_scalars]
        if bool(self.odd_mask.any()):
            s = torch.where(self.odd_mask, self.tanh(s), self.silu(s))
        else:
            s = self.silu(s)
        if not self.num_gates:
            return s
        g = self.sigmoid(x[:, self.num_scalars : self.num_scalars + self.num_gates])
        v = x[:, self.num_scalars + self.num_gates :]
        return torch.cat([s, v * g[:, self.gate_index]], 1)


def _expand(irreps: Irreps) -> list[tuple[int, int, int]]:
    return [(1, l, p) for m, l, p in irreps for _ in range(m)]


def reachable(
    irreps_in: Irreps | Iterable[tuple[int, int, int]], l_out: int, p_out: int, l_filter_max: int
) -> bool:
    """True when some path |l_out - l_in| <= l <= min(l_out + l_in, l_filter_max),
    p_out = p_in (-1)^l leads from a block of ``irreps_in`` to (l_out, p_out)."""
    return any(
        p_out == p_in * (-1) ** l
        for _, l_in, p_in in irreps_in
        for l in range(abs(l_out - l_in), min(l_out + l_in, l_filter_max) + 1)
    )


class ToStandardBasis(nn.Module):
    """Irreps features of a convention's spherical-harmonic basis -> the standard basis.

    The heads map irreps to Cartesian tensors (and back) in the standard basis of
    :mod:`rsh.conventions`; a network computing in another convention (``"e3nn"``: the
    l = 1 block is (x, y, z) instead of (y, z, x); ``"thesis"``: odd degrees change sign)
    hands them its readouts through this fixed orthogonal map, so that every convention
    gives the same physical tensors. Identity (and skipped) for ``"standard"`` and scalars.

    Parameters
    ----------
    irreps : str or rsh.Irreps
    convention : str
        One of :data:`rsh.conventions.CONVENTIONS`.
    """

    matrix: torch.Tensor | None

    def __init__(self, irreps: Any, convention: str) -> None:
        super().__init__()
        from rsh.conventions import change_of_basis

        blocks = []
        for mul, l, _ in Irreps(irreps):
            c = change_of_basis(l, convention, "standard")
            blocks += [c] * mul
        m = torch.block_diag(*blocks) if blocks else torch.zeros(0, 0, dtype=torch.float64)
        identity = bool(torch.equal(m, torch.eye(m.shape[0], dtype=m.dtype)))
        # not persistent: checkpoints hold no basis change, it follows from the config
        self.register_buffer("matrix", None if identity else m, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.matrix is None:
            return x
        return x @ self.matrix.to(x.dtype).T
