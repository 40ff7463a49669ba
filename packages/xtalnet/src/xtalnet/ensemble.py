"""Deep ensembles: K networks trained on the same data from different seeds (and, by
default, different inputs); their mean is the prediction and their spread its uncertainty.

An ensemble run folder (``xtalnet train --ensemble K``) holds ``ensemble.json`` and one run
folder per member, ``member-1/ … member-K/``. :func:`xtalnet.load` of such a folder returns an
:class:`Ensemble`, whose ``predict`` gives the mean of the members under every target's name
and the spread under ``"<target>.std"`` (scalars ``[n]``, tensors per entry with the same
shape), times the scale factor fitted on the validation split when the ensemble was
trained (``ensemble.json``: ``sigma_scale``, the maximum-likelihood factor of normal errors).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xtalnet.network import Network
from xtalnet.prediction import decode, forward_graphs, outputs_with_notes

__all__ = [
    "ENSEMBLE_FILE",
    "MAX_MEMBERS",
    "SHARED_FIELDS",
    "Ensemble",
    "combine",
    "member_dirs",
    "predict_graphs",
    "read_ensemble",
]

#: The file that makes a folder an ensemble run.
ENSEMBLE_FILE = "ensemble.json"
#: The most members an ensemble may have.
MAX_MEMBERS = 64
#: The config fields every member shares: the targets and what their graphs are built from
#: (the graphs of a structure are built once for all members); the rest may differ.
SHARED_FIELDS = ("targets", "r_cut", "tensor_frame", "dtype", "max_edges")


def member_dirs(root: str | os.PathLike[str], k: int) -> list[Path]:
    """``root/member-1 … root/member-k``."""
    return [Path(root) / f"member-{m}" for m in range(1, k + 1)]


def combine(
    decoded: Sequence[Mapping[str, np.ndarray]],
    heads: Mapping[str, Any],
    scale: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """The members' decoded predictions -> the ensemble's: every target through its head's
    :meth:`~xtalnet.heads.Head.average` (the mean; geometric for log targets), its spread,
    the standard deviation over the members times ``scale[column]`` (default 1), under
    ``"<column>.std"``, and every extra output averaged."""
    out: dict[str, np.ndarray] = {}
    for key in decoded[0]:
        stack = np.stack([np.asarray(d[key], dtype=np.float64) for d in decoded])
        if key in heads:
            out[key] = heads[key].average(stack)
            out[f"{key}.std"] = stack.std(0) * float((scale or {}).get(key, 1.0))
        else:
            out[key] = stack.mean(0)
    return out


class Ensemble(nn.Module):
    """Members of an ensemble, predicting together.

    Parameters
    ----------
    members : sequence of Network
        Trained on the same data and split, sharing :data:`SHARED_FIELDS` of their config
        (their seeds and inputs may differ).
    sigma_scale : mapping column -> float, optional
        Factor of every target's spread (fitted on the validation split; default 1).
    """

    def __init__(
        self, members: Sequence[Network], sigma_scale: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0].config
        for m, net in enumerate(members[1:], start=2):
            differ = [f for f in SHARED_FIELDS if getattr(net.config, f) != getattr(first, f)]
            if differ:
                raise ValueError(
                    f"ensemble member {m} differs from member 1 in {differ}: the members of an "
                    f"ensemble share their targets and the geometry of their graphs"
                )
        self.members = nn.ModuleList(members)
        self.sigma_scale = dict(sigma_scale or {})
        self.checkpoint_path: str | None = None

    @property
    def config(self) -> Any:
        """The first member's :class:`xtalnet.NetworkConfig` (all share its
        :data:`SHARED_FIELDS`)."""
        return self.first.config

    @property
    def first(self) -> Network:
        net = self.members[0]
        assert isinstance(net, Network)
        return net

    @property
    def target_heads(self) -> dict[str, Any]:
        return self.first.target_heads

    @property
    def networks(self) -> list[Network]:
        return [m for m in self.members if isinstance(m, Network)]

    @property
    def train_species(self) -> list[int] | None:
        return self.first.train_species

    def predict_with_notes(
        self, structures: Any, batch_size: int = 64, *, catch: bool = False
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """Mean, ``.std`` and the notes of :func:`xtalnet.prediction.predict_with_notes`
        (the graphs of every structure are built once for all members)."""
        nets = self.networks
        outputs, notes = outputs_with_notes(nets, structures, batch_size, catch=catch)
        decoded = [decode(net, std) for net, std in zip(nets, outputs)]
        return combine(decoded, self.target_heads, self.sigma_scale), notes

    def predict(self, structures: Any, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Mean prediction of the members in physical units, and ``"<target>.std"``."""
        pred, notes = self.predict_with_notes(structures, batch_size)
        flagged = [(k, n) for k, n in enumerate(notes) if n]
        if flagged:
            shown = "; ".join(f"structures[{k}]: {n}" for k, n in flagged[:5])
            warnings.warn(f"{len(flagged)} of {len(notes)} predictions flagged: {shown}",
                          stacklevel=2)  # fmt: skip
        return pred

    def forward(self, batch: Any) -> list[dict[str, torch.Tensor]]:
        """Every member's standardised outputs for one batch."""
        return [net(batch) for net in self.networks]


def read_ensemble(root: Path) -> dict[str, Any]:
    """``ensemble.json`` of an ensemble folder (``ValueError`` when it is not one)."""
    path = root / ENSEMBLE_FILE
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{str(root)!r}: {ENSEMBLE_FILE} cannot be read: {exc}") from exc
    if not isinstance(info, dict) or info.get("kind") != "xtalnet-ensemble":
        raise ValueError(f"{str(path)!r} is not an xtalnet ensemble description")
    return info


def predict_graphs(
    model: Network | Ensemble, graphs: Sequence[Any], ids: Sequence[str], batch_size: int
) -> dict[str, np.ndarray]:
    """Decoded predictions of prebuilt graphs by a network or an ensemble (mean and
    ``.std``)."""
    if isinstance(model, Ensemble):
        decoded = [decode(n, forward_graphs(n, graphs, ids, batch_size)) for n in model.networks]
        return combine(decoded, model.target_heads, model.sigma_scale)
    return decode(model, forward_graphs(model, graphs, ids, batch_size))
