"""The equivariant crystal network as pure ``nn.Module``s (no I/O).

Layout (thesis Fig. 3.5-3.6, sequential):

    DataHub (graph, |r|, Y, 1/sqrt|N(a)|; once per batch)  ->  radial basis (once per batch)
    species embedding  ->  L x [PeriodicConvolution -> Gate (eq. 3.11) -> self-connection
    (+ residual)]  ->  pooling per structure  ->  per-target linear readout  ->  head

Normalisation follows Appendix B: the embedding gives unit-variance scalars (assertion 2);
every radial output R has zero mean and unit variance over points uniform in the ball of
radius r_cut (assertions 1 and 5, imposed at initialisation by quadrature); W and
1/sqrt|N(a)| are applied inside :class:`periodic_conv.PeriodicConvolution`; the gate's
non-linearities are scaled to unit second moment under a standard normal input, and every
linear map is initialised with variance 1/fan_in. Features therefore keep a mean square of
order one through the layers (tested on real structures).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.utils.checkpoint
from periodic_conv import DataHub, PeriodicConvolution, RadialFactors
from rsh import Irreps
from torch import nn

from xtalnet.config import MAX_Z, SPECIES_FEATURES, NetworkConfig

__all__ = [
    "BesselBasis",
    "BlockRMSNorm",
    "EquivariantLinear",
    "Gate",
    "InteractionLayer",
    "Network",
    "RadialMLP",
    "SpeciesEmbedding",
    "normalized_activation",
    "polynomial_cutoff",
]


def _irreps(irreps: Any, name: str) -> Irreps:
    """:class:`rsh.Irreps` without zero multiplicities (order kept)."""
    out = Irreps([ir for ir in Irreps(irreps, name=name) if ir.mul > 0])
    if len(out) == 0:
        raise ValueError(f"{name}={str(irreps)!r} has no irreps with multiplicity > 0")
    return out


# --------------------------------------------------------------------------- activations
def _second_moment(fn, n: int = 200) -> float:
    """E[fn(z)^2] for z ~ N(0, 1), Gauss-Hermite (probabilists') quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(n)
    y = fn(torch.from_numpy(x)).numpy()
    return float((w * y * y).sum() / w.sum())


class _Normalized(nn.Module):
    def __init__(self, fn, name: str) -> None:
        super().__init__()
        self.fn = fn
        self.name = name
        self.scale = 1.0 / math.sqrt(_second_moment(fn))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) * self.scale

    def extra_repr(self) -> str:
        return f"{self.name}, scale={self.scale:.6f}"


def normalized_activation(name: str) -> nn.Module:
    """``c * f`` with ``c`` such that E[(c f(z))^2] = 1 for z ~ N(0, 1).

    Parameters
    ----------
    name : {"silu", "tanh", "sigmoid"}
        silu for even scalars, tanh (odd, so parity is kept) for odd scalars, sigmoid for gates.
    """
    fns = {"silu": torch.nn.functional.silu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    if name not in fns:
        raise ValueError(f"activation must be one of {tuple(fns)}, got {name!r}")
    return _Normalized(fns[name], name)


# --------------------------------------------------------------------------- radial model
def polynomial_cutoff(r: torch.Tensor, r_cut: float, p: int = 6) -> torch.Tensor:
    """Smooth envelope u(r) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2),
    x = r / r_cut, and 0 for r >= r_cut (Klicpera et al. 2020, as in NequIP): u(0) = 1 and
    u, u', u'' vanish at r_cut, so R and its first two derivatives are continuous there."""
    x = r / r_cut
    u = (
        1.0
        - (p + 1) * (p + 2) / 2.0 * x**p
        + p * (p + 2) * x ** (p + 1)
        - p * (p + 1) / 2.0 * x ** (p + 2)
    )
    return torch.where(x < 1.0, u, torch.zeros_like(u))


class BesselBasis(nn.Module):
    """b_n(r) = sqrt(2/r_cut) sin(n pi r / r_cut) / r, n = 1..num_basis (1/Å^1.5), standardised.

    The returned basis is ``(b_n(r) - mean_n) / std_n`` with the mean and standard deviation
    of b_n over points uniform in the ball of radius r_cut (weight 3 r^2 / r_cut^3), computed
    once by Gauss-Legendre quadrature, so that the radial MLP starts from unit-variance inputs.
    At r = 0 the limit n pi / r_cut sqrt(2/r_cut) is used.
    """

    freq: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, num_basis: int, r_cut: float) -> None:
        super().__init__()
        self.num_basis = num_basis
        self.r_cut = float(r_cut)
        self.register_buffer(
            "freq", torch.arange(1, num_basis + 1, dtype=torch.float64) * math.pi / r_cut
        )
        r, w = ball_quadrature(r_cut)
        b = self._raw(r)
        mean = (w[:, None] * b).sum(0)
        std = ((w[:, None] * (b - mean) ** 2).sum(0)).sqrt()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def _raw(self, r: torch.Tensor) -> torch.Tensor:
        pref = math.sqrt(2.0 / self.r_cut)
        arg = r[:, None] * self.freq
        small = r[:, None] < 1e-9
        safe_r = torch.where(small, torch.ones_like(r[:, None]), r[:, None])
        return pref * torch.where(small, self.freq.expand_as(arg), torch.sin(arg) / safe_r)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return (self._raw(r) - self.mean) / self.std


def ball_quadrature(r_cut: float, n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes r and weights w (float64, summing to 1) with sum_k w_k f(r_k) = <f> over the ball:
    (3 / r_cut^3) int_0^r_cut f(r) r^2 dr (thesis eq. B.1 for a function of |r| only)."""
    x, w = np.polynomial.legendre.leggauss(n)
    r = (x + 1.0) * (r_cut / 2.0)
    w = w * (r_cut / 2.0) * 3.0 * r**2 / r_cut**3
    return torch.from_numpy(r), torch.from_numpy(w)


def _init_linear(lin: nn.Linear, gen: torch.Generator) -> None:
    with torch.no_grad():
        w = torch.randn(lin.weight.shape, generator=gen, dtype=torch.float64)
        lin.weight.copy_(w / math.sqrt(lin.in_features))
        if lin.bias is not None:
            lin.bias.zero_()


class RadialMLP(nn.Module):
    """R(r) = u(r) * MLP(basis(r)): radial weights of one convolution, [E, weight_numel].

    At initialisation the last layer is rescaled and shifted, by quadrature over the ball of
    radius r_cut, so that every output has mean 0 and variance 1 over points uniform in the
    ball (App. B assertions 1 and 5); u(r) keeps R smooth and zero at r_cut.
    """

    def __init__(
        self,
        basis: BesselBasis,
        hidden: int,
        num_hidden_layers: int,
        out_features: int,
        *,
        cutoff_p: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.r_cut = basis.r_cut
        self.cutoff_p = cutoff_p
        dims = [basis.num_basis] + [hidden] * num_hidden_layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))
        self.act = normalized_activation("silu")
        self.out = nn.Linear(dims[-1], out_features)
        for lin in [*self.hidden, self.out]:
            _init_linear(lin, generator)
        self.to(torch.float64)
        self._standardize(basis)

    def _features(self, b: torch.Tensor) -> torch.Tensor:
        h = b
        for lin in self.hidden:
            h = self.act(lin(h))
        return h

    @torch.no_grad()
    def _standardize(self, basis: BesselBasis) -> None:
        r, w = ball_quadrature(self.r_cut)
        u = polynomial_cutoff(r, self.r_cut, self.cutoff_p)
        h = self._features(basis(r))  # [Q, H]
        h1 = torch.cat([h, torch.ones_like(h[:, :1])], 1)  # [Q, H+1]
        weight, bias = self.out.weight, self.out.bias  # [O, H], [O]
        # mean of u (W h + b) is zero for b = -W <u h> / <u>
        mean_uh = (w[:, None] * u[:, None] * h).sum(0)
        mean_u = (w * u).sum()
        bias.copy_(-(weight @ mean_uh) / mean_u)
        gram = (w[:, None, None] * (u**2)[:, None, None] * h1[:, :, None] * h1[:, None, :]).sum(0)
        wb = torch.cat([weight, bias[:, None]], 1)  # [O, H+1]
        var = torch.einsum("oi,ij,oj->o", wb, gram, wb)
        scale = var.clamp(min=1e-30).rsqrt()
        weight.mul_(scale[:, None])
        bias.mul_(scale)

    def factors(self, basis: torch.Tensor, envelope: torch.Tensor) -> RadialFactors:
        """R as the product ``hidden @ weight.T``: u (W h + b) = [u h, u] @ [W, b]^T.

        The convolution takes the factors and never keeps R [E, out_features] for the
        backward pass (``periodic_conv.RadialFactors``): the largest tensor of a layer.
        """
        h = self._features(basis) * envelope[:, None]
        h1 = torch.cat([h, envelope[:, None]], 1)
        wb = torch.cat([self.out.weight, self.out.bias[:, None]], 1)
        return RadialFactors(h1, wb)

    def forward(self, basis: torch.Tensor, envelope: torch.Tensor) -> torch.Tensor:
        """basis [E, num_basis] (standardised), envelope [E] -> R [E, out_features]."""
        hidden, weight = self.factors(basis, envelope)
        return hidden @ weight.T


# --------------------------------------------------------------------------- equivariant maps
class SpeciesEmbedding(nn.Module):
    """Atomic number Z (1..94) -> ``dim`` scalars (0e) with zero mean and unit variance over
    the elements at init (App. B assertion 2).

    Parameters
    ----------
    dim : int
        Number of output scalars.
    generator : torch.Generator
        Source of the initial weights.
    max_z : int
        Highest atomic number.
    features : {"onehot", "elemental", "both"}
        ``"onehot"``: a free table of N(0, 1) entries, i.e. a linear map of the one-hot Z
        (parameter ``weight`` [max_z + 1, dim]). ``"elemental"``: a linear map ``proj``
        [d, dim] of the standardised physical descriptors of :func:`xtalnet.species.
        elemental_table` (buffer ``descriptors``, saved with the weights), so that alike
        elements start alike; each output column is scaled at init to mean 0 and variance 1
        over Z = 1..94. ``"both"``: ``(onehot + elemental) / sqrt 2``.
    """

    descriptors: torch.Tensor

    def __init__(
        self,
        dim: int,
        *,
        generator: torch.Generator,
        max_z: int = MAX_Z,
        features: str = "onehot",
    ) -> None:
        super().__init__()
        if features not in SPECIES_FEATURES:
            raise ValueError(f"features must be one of {SPECIES_FEATURES}, got {features!r}")
        self.max_z = max_z
        self.features = features
        if features in ("onehot", "both"):
            self.weight = nn.Parameter(
                torch.randn(max_z + 1, dim, generator=generator, dtype=torch.float64)
            )
        if features in ("elemental", "both"):
            from xtalnet.species import elemental_table

            table = torch.tensor(elemental_table(), dtype=torch.float64)
            if table.shape[0] != max_z + 1:
                raise ValueError(
                    f"max_z={max_z}, but the elemental table covers Z <= {table.shape[0] - 1}"
                )
            proj = torch.randn(table.shape[1], dim, generator=generator, dtype=torch.float64)
            y = table[1:] @ proj  # columns of the table have mean 0: so has y
            proj = proj / y.std(0, unbiased=False).clamp(min=1e-12)
            self.register_buffer("descriptors", table)
            self.proj = nn.Parameter(proj)

    def forward(self, numbers: torch.Tensor) -> torch.Tensor:
        if self.features == "onehot":
            return self.weight[numbers]
        x = self.descriptors[numbers] @ self.proj
        if self.features == "both":
            x = (x + self.weight[numbers]) * (1.0 / math.sqrt(2.0))
        return x

    def extra_repr(self) -> str:
        return f"features={self.features!r}, max_z={self.max_z}"


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
        self.irreps_in = _irreps(irreps_in, "irreps_in")
        self.irreps_out = _irreps(irreps_out, "irreps_out")
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


class InteractionLayer(nn.Module):
    """PeriodicConvolution -> BlockRMSNorm (``feature_norm``) -> Gate -> self-connection
    (EquivariantLinear), with a residual
    ``(y + x) / sqrt 2`` when input and output irreps agree.

    Parameters
    ----------
    irreps_in, irreps_out : list of (mul, l, parity)
        Layer input and output (after the gate) irreps.
    """

    def __init__(
        self,
        irreps_in: Irreps,
        irreps_out: Irreps,
        config: NetworkConfig,
        basis: BesselBasis,
        *,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        irreps_in = _irreps(irreps_in, "irreps_in")
        irreps_out = _irreps(irreps_out, "irreps_out")
        self.gate = Gate(
            Irreps([ir for ir in irreps_out if ir.l == 0]),
            Irreps([ir for ir in irreps_out if ir.l > 0]),
        )
        conv_out = self.gate.irreps_in
        self.conv = PeriodicConvolution(
            str(irreps_in),
            str(conv_out),
            config.l_filter_max,
            convention=config.convention,
            scaling="unit_variance",
            backend=config.backend,
        )
        self._check_reachable(irreps_in, conv_out, config.l_filter_max)
        self.radial = RadialMLP(
            basis,
            config.radial_hidden,
            config.radial_layers,
            self.conv.weight_numel,
            cutoff_p=config.cutoff_p,
            generator=generator,
        )
        self.norm = BlockRMSNorm(conv_out, config.norm_eps) if config.feature_norm else None
        self.self_connection = EquivariantLinear(irreps_out, irreps_out, generator=generator)
        self.residual = bool(config.residual) and irreps_in == irreps_out
        self.checkpoint = bool(config.checkpoint)
        self.irreps_in, self.irreps_out = irreps_in, irreps_out

    def _check_reachable(self, irreps_in: Irreps, conv_out: Irreps, l_f: int) -> None:
        reached = {p.k for p in self.conv.paths}
        missing = Irreps([conv_out[k] for k in range(len(conv_out)) if k not in reached])
        if len(missing):
            raise ValueError(
                f"irreps {str(missing)!r} cannot be reached from "
                f"{str(irreps_in)!r} with l_filter_max={l_f} (need |l_out - l_in| <= l "
                "<= l_filter_max and p_out = p_in (-1)^l); add irreps to hidden_irreps or "
                "raise l_filter_max"
            )

    def _convolve(
        self, x: torch.Tensor, hub: DataHub, basis: torch.Tensor, envelope: torch.Tensor
    ) -> torch.Tensor:
        return self.conv(x, hub, self.radial.factors(basis, envelope))

    def forward(
        self, x: torch.Tensor, hub: DataHub, basis: torch.Tensor, envelope: torch.Tensor
    ) -> torch.Tensor:
        if self.checkpoint and torch.is_grad_enabled():
            # keep only the layer input: the radial MLP's activations and the convolution are
            # recomputed in the backward pass (R itself is never stored, see RadialFactors)
            y = torch.utils.checkpoint.checkpoint(
                self._convolve, x, hub, basis, envelope, use_reentrant=False
            )
        else:
            y = self._convolve(x, hub, basis, envelope)
        if self.norm is not None:
            y = self.norm(y)
        y = self.self_connection(self.gate(y))
        if self.residual:
            y = (y + x) * (1.0 / math.sqrt(2.0))
        return y


# --------------------------------------------------------------------------- the network
def _make_heads(config: NetworkConfig, dtype: torch.dtype) -> dict[str, nn.Module]:
    from xtalnet import heads as heads_mod

    out: dict[str, nn.Module] = {}
    for t in config.targets:
        spec = heads_mod.TargetSpec.parse(t)
        options: dict[str, float] = {}
        if spec.kind == "band_gap" and config.band_gap_prior is not None:
            options = dict(zip(("p", "mu", "sigma"), config.band_gap_prior))
        out[spec.column] = heads_mod.make_head(spec, dtype=dtype, **options)
    return out


class Network(nn.Module):
    """E(3)-equivariant crystal network: structures -> per-target predictions.

    Parameters
    ----------
    config : NetworkConfig, optional
        Shape and numerics (default ``NetworkConfig()``).
    heads : mapping column -> nn.Module, optional
        Heads to use instead of ``xtalnet.heads.make_head`` for each target; each needs an
        ``irreps_in`` attribute (what the pooled readout must deliver) and ``forward``.

    Notes
    -----
    ``forward(batch)`` returns ``{column: tensor}`` in the heads' standardised units;
    :meth:`predict` returns physical units (numpy) through each head's ``decode``.
    """

    def __init__(
        self, config: NetworkConfig | None = None, *, heads: Mapping[str, nn.Module] | None = None
    ) -> None:
        super().__init__()
        config = NetworkConfig() if config is None else config
        if not isinstance(config, NetworkConfig):
            raise TypeError(f"config must be an xtalnet.NetworkConfig, got {type(config).__name__}")
        self.config = config
        dtype = config.torch_dtype
        gen = torch.Generator().manual_seed(config.seed)
        if heads is None:
            heads = _make_heads(config, dtype)
        else:
            missing = sorted(set(config.columns) - set(heads))
            if missing:
                raise ValueError(f"heads lacks the target column(s) {missing} of config.targets")
            heads = {c: heads[c] for c in config.columns}
        needed: list[tuple[int, int]] = []
        head_irreps: dict[str, Irreps] = {}
        for col, head in heads.items():
            if not hasattr(head, "irreps_in"):
                raise TypeError(f"head for {col!r} has no irreps_in attribute")
            head_irreps[col] = _irreps(head.irreps_in, f"heads[{col!r}].irreps_in")
            for _, l, p in head_irreps[col]:
                if (l, p) not in needed:
                    needed.append((l, p))
        hidden = [
            (ir.mul, ir.l, ir.parity) for ir in _irreps(config.hidden_irreps, "hidden_irreps")
        ]
        have = {(l, p) for _, l, p in hidden}
        last = hidden + [
            (config.readout_mul, l, p) for l, p in sorted(needed) if (l, p) not in have
        ]
        last = sorted(last, key=lambda t: (t[1], -t[2]))  # scalars first (gate layout)
        hidden = sorted(hidden, key=lambda t: (t[1], -t[2]))
        self.basis = BesselBasis(config.num_basis, config.r_cut)
        self.embedding = SpeciesEmbedding(
            config.embed_dim, generator=gen, features=config.species_features
        )
        irreps = [(config.embed_dim, 0, 1)]
        layers = []
        for n in range(config.num_layers):
            # blocks that no path reaches yet (odd parities in the first layers) are dropped
            out = [t for t in (last if n == config.num_layers - 1 else hidden)
                   if reachable(irreps, t[1], t[2], config.l_filter_max)]  # fmt: skip
            layer = InteractionLayer(Irreps(irreps), Irreps(out), config, self.basis, generator=gen)
            layers.append(layer)
            irreps = out
        lacking = [f"{l}{'e' if p == 1 else 'o'}" for l, p in needed
                   if not any((l, p) == (t[1], t[2]) for t in irreps)]  # fmt: skip
        if lacking:
            raise ValueError(
                f"the heads need irreps {lacking}, which {config.num_layers} layer(s) with "
                f"l_filter_max={config.l_filter_max} cannot produce from scalar inputs; raise "
                "num_layers or l_filter_max"
            )
        self.layers = nn.ModuleList(layers)
        self.irreps_features = Irreps(irreps)
        self.readouts = nn.ModuleDict(
            {
                c: EquivariantLinear(self.irreps_features, head_irreps[c], generator=gen)
                for c in heads
            }
        )
        self.heads = nn.ModuleDict(dict(heads))
        self.to(dtype)

    # ------------------------------------------------------------------ forward
    def hub(self, batch) -> DataHub:
        """The per-batch DataHub (graph, |r|, Y up to l_filter_max, 1/sqrt|N(a)|)."""
        return DataHub(
            batch.graph, l_max=self.config.l_filter_max, convention=self.config.convention
        )

    def node_features(self, batch, *, all_layers: bool = False):
        """Per-atom features after the last layer [N, dim], or the list after every layer
        (embedding first) with ``all_layers=True``."""
        _check_batch(batch, self.config)
        hub = self.hub(batch)
        length = hub.length
        basis = self.basis(length)
        envelope = polynomial_cutoff(length, self.config.r_cut, self.config.cutoff_p)
        x = self.embedding(batch.numbers)
        feats = [x]
        for layer in self.layers:
            x = layer(x, hub, basis, envelope)
            feats.append(x)
        return feats if all_layers else x

    def pool(self, x: torch.Tensor, batch) -> torch.Tensor:
        """Mean (or sum) of per-atom features over each structure: [B, dim]."""
        out = torch.zeros(batch.num_graphs, x.shape[1], dtype=x.dtype, device=x.device)
        out = out.index_add(0, batch.batch, x)
        if self.config.pooling == "mean":
            counts = torch.bincount(batch.batch, minlength=batch.num_graphs).to(x.dtype)
            out = out / counts[:, None]
        return out

    def forward(self, batch) -> dict[str, torch.Tensor]:
        """Standardised predictions ``{column: tensor [B, ...]}`` of the heads."""
        pooled = self.pool(self.node_features(batch), batch)
        return {c: self.heads[c](self.readouts[c](pooled)) for c in self.heads}

    def loss(
        self,
        outputs: Mapping[str, torch.Tensor],
        targets: Mapping[str, torch.Tensor],
        *,
        kind: str = "mse",
        delta: float = 1.0,
    ) -> torch.Tensor:
        """Sum over targets of each head's ``loss(pred, target, kind=kind, delta=delta)``
        (targets from ``head.encode``; ``kind`` / ``delta``: the training options ``loss`` /
        ``huber_delta``, see :func:`xtalnet.heads.residual_loss`)."""
        total = None
        for c, head in self.heads.items():
            if c not in targets:
                continue
            loss_fn = getattr(head, "loss")  # noqa: B009 (a Head; typed as nn.Module here)
            term = loss_fn(outputs[c], targets[c], kind=kind, delta=delta)
            total = term if total is None else total + term
        if total is None:
            raise ValueError(f"targets has none of the columns {sorted(self.heads)}")
        return total

    @torch.no_grad()
    def predict(self, structures: Any, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Predictions in physical units for structures (pymatgen, ASE, mp_audit entries).

        Returns
        -------
        dict column -> numpy array
            Scalars [n]; ``elastic_tensor`` [n, 6, 6] GPa (Voigt xx, yy, zz, yz, xz, xy);
            extra outputs of a head (e.g. the band gap's probability of a metal) under
            ``"<column>.<name>"``.
        """
        from xtalnet.data import iter_batches

        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        parts: dict[str, list[np.ndarray]] = {}
        try:
            for _, batch in iter_batches(structures, self.config, batch_size):
                out = self(batch.to(device))
                for c, head in self.heads.items():
                    decode = getattr(head, "decode")  # noqa: B009 (a Head, typed nn.Module)
                    parts.setdefault(c, []).append(np.asarray(decode(out[c])))
                    extra = getattr(head, "decode_extra", None)
                    if extra is not None:
                        for k, v in extra(out[c]).items():
                            parts.setdefault(f"{c}.{k}", []).append(np.asarray(v))
        finally:
            self.train(was_training)
        return {k: np.concatenate(v, 0) for k, v in parts.items()}

    def extra_repr(self) -> str:
        return f"irreps_features={self.irreps_features}"


def _check_batch(batch: Any, config: NetworkConfig) -> None:
    from xtalnet.data import Batch

    if not isinstance(batch, Batch):
        raise TypeError(
            "batch must be an xtalnet.data.Batch (from xtalnet.collate / from_pyg), got "
            f"{type(batch).__name__}"
        )
    if abs(batch.graph.r_cut - config.r_cut) > 1e-12:
        raise ValueError(
            f"batch was built with r_cut={batch.graph.r_cut} Å but the network has "
            f"r_cut={config.r_cut} Å; collate with the network's config"
        )
    if batch.graph.edge_vec.dtype != config.torch_dtype:
        raise TypeError(
            f"batch dtype {batch.graph.edge_vec.dtype} differs from the network's "
            f"{config.dtype}; collate with the network's config"
        )


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
