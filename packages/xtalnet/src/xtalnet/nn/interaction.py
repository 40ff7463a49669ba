"""One interaction layer: PeriodicConvolution -> BlockRMSNorm -> Gate -> self-connection."""

from __future__ import annotations

import math

import torch
import torch.utils.checkpoint
from periodic_conv import DataHub, PeriodicConvolution
from rsh import Irreps
from torch import nn

from xtalnet.config import NetworkConfig
from xtalnet.nn.equivariant import BlockRMSNorm, EquivariantLinear, Gate, nonzero_irreps
from xtalnet.nn.radial import BesselBasis, RadialMLP

__all__ = ["InteractionLayer"]


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
        irreps_in = nonzero_irreps(irreps_in, "irreps_in")
        irreps_out = nonzero_irreps(irreps_out, "irreps_out")
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
