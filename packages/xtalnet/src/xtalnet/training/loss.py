"""The training loss of a batch and the validation loss, from the heads' own loss terms.

A global batch may be shared by several ranks: every head gives its loss as sums over rows
(:meth:`xtalnet.heads.Head.loss_sums`) and the rows they average over
(:meth:`~xtalnet.heads.Head.loss_counts`, counted on the whole global batch), so the loss a
rank back-propagates, summed over the ranks, equals the loss of one process on the whole
batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from xtalnet.network import Network
from xtalnet.training.options import TrainOptions

__all__ = ["batch_loss", "loss_counts", "validation_loss"]


def loss_counts(net: Network, targets: Mapping[str, torch.Tensor]) -> dict[str, list[int]]:
    """Rows every loss term of every head averages over in ``targets`` (a global batch)."""
    return {
        c: [int(n) for n in head.loss_counts(targets[c])] for c, head in net.target_heads.items()
    }


def batch_loss(
    net: Network,
    out: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    counts: Mapping[str, Sequence[int]],
    opts: TrainOptions,
) -> torch.Tensor:
    """Sum over targets and loss terms of (term's sum on these rows) / (global count)."""
    total: torch.Tensor | None = None
    for c, head in net.target_heads.items():
        sums = head.loss_sums(out[c], targets[c], kind=opts.loss, delta=opts.huber_delta)
        for s, n in zip(sums, counts[c]):
            term = s / n if n else s * 0.0
            total = term if total is None else total + term
    assert total is not None
    return total


def validation_loss(
    net: Network,
    std: Mapping[str, np.ndarray],
    enc: Mapping[str, torch.Tensor],
    opts: TrainOptions,
) -> float:
    """Sum over the targets with labels of each head's mean loss (float64)."""
    total = 0.0
    for c, head in net.target_heads.items():
        pred = torch.as_tensor(std[c], dtype=torch.float64)
        tgt = enc[c].to(torch.float64)
        if bool((~torch.isnan(tgt).any(dim=1)).any()):
            total += float(head.loss(pred, tgt, kind=opts.loss, delta=opts.huber_delta))
    return total
