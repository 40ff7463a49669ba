"""Radial model: Bessel basis, polynomial cutoff envelope and the radial MLP of every layer.

Every radial output R has zero mean and unit variance over points uniform in the ball of
radius r_cut (App. B assertions 1 and 5, imposed at initialisation by quadrature)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from periodic_conv import RadialFactors
from torch import nn

from xtalnet.nn.activations import normalized_activation

__all__ = ["BesselBasis", "RadialMLP", "ball_quadrature", "polynomial_cutoff"]


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
