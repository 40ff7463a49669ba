"""The equivariant crystal network as one pure ``nn.Module`` (no I/O).

Layout (thesis Fig. 3.5-3.6, sequential):

    DataHub (graph, |r|, Y, 1/sqrt|N(a)|; once per batch)  ->  radial basis (once per batch)
    species embedding  ->  L x [PeriodicConvolution -> Gate (eq. 3.11) -> self-connection
    (+ residual)]  ->  pooling per structure  ->  per-target linear readout  ->  head

The building blocks live in :mod:`xtalnet.nn`, the heads in :mod:`xtalnet.heads`. Features
keep a mean square of order one through the layers (tested on real structures).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import torch
from periodic_conv import DataHub
from rsh import Irreps
from torch import nn

from xtalnet.config import NetworkConfig
from xtalnet.data import Batch
from xtalnet.heads import Head, TargetSpec, make_head
from xtalnet.nn import (
    BesselBasis,
    CompositionFeatures,
    EquivariantLinear,
    InteractionLayer,
    SpeciesEmbedding,
    ToStandardBasis,
    nonzero_irreps,
    polynomial_cutoff,
    reachable,
)

__all__ = ["Network", "count_parameters", "layer_irreps", "layers_needed"]


def _make_heads(config: NetworkConfig, dtype: torch.dtype) -> dict[str, nn.Module]:
    out: dict[str, nn.Module] = {}
    for t in config.targets:
        spec = TargetSpec.parse(t)
        options: dict[str, float] = {}
        if spec.kind == "band_gap" and config.band_gap_prior is not None:
            options = dict(zip(("p", "mu", "sigma"), config.band_gap_prior))
        out[spec.column] = make_head(spec, dtype=dtype, **options)
    return out


Block = tuple[int, int, int]  # (multiplicity, l, parity)


def _head_irreps(heads: Mapping[str, nn.Module]) -> tuple[dict[str, Irreps], list[tuple[int, int]]]:
    """Irreps each head needs from its readout, and every (l, parity) any head needs."""
    needed: list[tuple[int, int]] = []
    head_irreps: dict[str, Irreps] = {}
    for col, head in heads.items():
        if not hasattr(head, "irreps_in"):
            raise TypeError(f"head for {col!r} has no irreps_in attribute")
        head_irreps[col] = nonzero_irreps(head.irreps_in, f"heads[{col!r}].irreps_in")
        for _, l, p in head_irreps[col]:
            if (l, p) not in needed:
                needed.append((l, p))
    return head_irreps, needed


def layer_irreps(
    config: NetworkConfig, needed: Sequence[tuple[int, int]], num_layers: int
) -> tuple[list[list[Block]], list[str]]:
    """The irreps after the embedding and after each of ``num_layers`` layers (hidden irreps
    between layers, the last adding every (l, parity) a head needs at ``readout_mul``; blocks
    no path reaches yet are dropped), and the needed irreps the last layer still lacks."""
    hidden: list[Block] = [
        (ir.mul, ir.l, ir.parity) for ir in nonzero_irreps(config.hidden_irreps, "hidden_irreps")
    ]
    have = {(l, p) for _, l, p in hidden}
    last = hidden + [(config.readout_mul, l, p) for l, p in sorted(needed) if (l, p) not in have]
    last = sorted(last, key=lambda t: (t[1], -t[2]))  # scalars first (gate layout)
    hidden = sorted(hidden, key=lambda t: (t[1], -t[2]))
    steps: list[list[Block]] = [[(config.embed_dim, 0, 1)]]
    for n in range(num_layers):
        steps.append([t for t in (last if n == num_layers - 1 else hidden)
                      if reachable(steps[-1], t[1], t[2], config.l_filter_max)])  # fmt: skip
    lacking = [f"{l}{'e' if p == 1 else 'o'}" for l, p in needed
               if not any((l, p) == (t[1], t[2]) for t in steps[-1])]  # fmt: skip
    return steps, lacking


def target_lmax(config: NetworkConfig) -> int:
    """The largest rotation order l of the irreps the targets' heads read (0 for scalars and
    band gaps, 2 for dielectric, 3 for piezoelectric, 4 for elastic tensors)."""
    _, needed = _head_irreps(_make_heads(config, torch.float64))
    return max(l for l, _ in needed)


def layers_needed(config: NetworkConfig, max_layers: int = 16) -> int:
    """The fewest interaction layers whose output holds every irrep the targets' heads need
    (from scalar inputs, with ``config.l_filter_max``): 1 for scalars, band gaps and
    dielectric tensors (0e, 2e), 2 for elastic (4e) and piezoelectric (3o) tensors with
    ``l_filter_max = 2``; with filters of l = 4 the elastic tensor needs 1 (the piezoelectric
    2o still 2)."""
    _, needed = _head_irreps(_make_heads(config, torch.float64))
    for n in range(1, max_layers + 1):
        if not layer_irreps(config, needed, n)[1]:
            return n
    raise ValueError(
        f"no number of layers up to {max_layers} reaches the irreps of {list(config.targets)} "
        f"with l_filter_max={config.l_filter_max} and hidden_irreps={config.hidden_irreps!r}"
    )


def _build_layers(
    config: NetworkConfig,
    basis: BesselBasis,
    needed: list[tuple[int, int]],
    gen: torch.Generator,
) -> tuple[list[InteractionLayer], list[Block]]:
    """The interaction layers of :func:`layer_irreps` and the irreps of the last output."""
    steps, lacking = layer_irreps(config, needed, config.num_layers)
    if lacking:
        raise ValueError(
            f"the heads need irreps {lacking}, which {config.num_layers} layer(s) with "
            f"l_filter_max={config.l_filter_max} cannot produce from scalar inputs; raise "
            "num_layers or l_filter_max"
        )
    layers = [
        InteractionLayer(Irreps(a), Irreps(b), config, basis, generator=gen)
        for a, b in itertools.pairwise(steps)
    ]
    return layers, steps[-1]


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

    #: Atomic numbers of the training structures (set by :func:`xtalnet.load`; None if unknown).
    train_species: list[int] | None = None

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
        head_irreps, needed = _head_irreps(heads)
        self.basis = BesselBasis(config.num_basis, config.r_cut)
        self.embedding = SpeciesEmbedding(
            config.embed_dim, generator=gen, features=config.species_features
        )
        layers, irreps = _build_layers(config, self.basis, needed, gen)
        self.layers = nn.ModuleList(layers)
        self.irreps_features = Irreps(irreps)
        self.readouts = nn.ModuleDict(
            {
                c: EquivariantLinear(self.irreps_features, head_irreps[c], generator=gen)
                for c in heads
            }
        )
        self.heads = nn.ModuleDict(dict(heads))
        self.to_standard = nn.ModuleDict(
            {c: ToStandardBasis(head_irreps[c], config.convention) for c in heads}
        )
        self.composition = (
            CompositionFeatures(self._scalars(), generator=gen) if config.composition else None
        )
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

    def _scalars(self) -> int:
        """Channels of the leading 0e block of the pooled features (what composition joins)."""
        first = self.irreps_features[0]
        return first.mul if (first.l, first.parity) == (0, 1) else 0

    def forward(self, batch) -> dict[str, torch.Tensor]:
        """Standardised predictions ``{column: tensor [B, ...]}`` of the heads."""
        pooled = self.pool(self.node_features(batch), batch)
        if self.composition is not None:
            m = self._scalars()
            comp = self.composition(batch.numbers, batch.batch, batch.num_graphs)
            joined = (pooled[:, :m] + comp.to(pooled.dtype)) * (1.0 / math.sqrt(2.0))
            pooled = torch.cat([joined, pooled[:, m:]], 1)
        return {c: self.heads[c](self.to_standard[c](self.readouts[c](pooled))) for c in self.heads}

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

    def predict(self, structures: Any, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Predictions in physical units for structures (pymatgen, ASE, mp_audit entries):
        :func:`xtalnet.prediction.predict` with this network (``{column: array}``; scalars
        ``[n]``, tensors ``[n, ...]``, extra outputs as ``"<column>.<name>"``)."""
        from xtalnet.prediction import predict

        return predict(self, structures, batch_size=batch_size, stacklevel=3)

    def predict_with_notes(
        self, structures: Any, batch_size: int = 64, *, catch: bool = False
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """:func:`xtalnet.prediction.predict_with_notes` with this network: predictions and
        a note per structure whose prediction is missing (NaN) or doubtful."""
        from xtalnet.prediction import predict_with_notes

        return predict_with_notes(self, structures, batch_size, catch=catch)

    @property
    def target_heads(self) -> dict[str, Head]:
        """``{column: head}`` (the heads implement :class:`xtalnet.heads.Head`)."""
        return {c: cast(Head, h) for c, h in self.heads.items()}

    def extra_repr(self) -> str:
        return f"irreps_features={self.irreps_features}"


def _check_batch(batch: Any, config: NetworkConfig) -> None:
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
