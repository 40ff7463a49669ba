"""Deep ensembles: K networks trained on the same data from different seeds (and, by
default, different inputs); their mean is the prediction and their spread its uncertainty.

An ensemble run folder (``xtalnet train --ensemble K``) holds ``ensemble.json`` and one run
folder per member, ``member-1/ … member-K/``. :func:`xtalnet.load` of such a folder returns an
:class:`Ensemble`, whose ``predict`` gives the mean of the members under every target's name
and the spread under ``"<target>.std"`` (scalars ``[n]``, tensors per entry with the same
shape). σ = k sqrt(spread² + w d²) adds to the spread the distance d of the crystal's
composition to the nearest training crystal's (:mod:`xtalnet.composition_distance`, the
ensemble's ``train_compositions.npz``); k and w are fitted on the validation split when the
ensemble is trained (``ensemble.json``: ``sigma_scale`` and ``sigma_distance_weight``; w by
the likelihood of normal errors, k so that 95.4 % of the errors lie within 2σ). Ensembles
scored before the distance term (no ``sigma_distance_weight``): σ = k x spread, as then.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xtalnet._metrics import widened_sigma
from xtalnet.composition_distance import TrainingCompositions
from xtalnet.network import Network
from xtalnet.prediction import decode, forward_graphs, outputs_with_notes

__all__ = [
    "COMPOSITIONS_FILE",
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
#: The training crystals' compositions, for the distance term of σ.
COMPOSITIONS_FILE = "train_compositions.npz"
#: The most members an ensemble may have.
MAX_MEMBERS = 64
#: The config fields every member shares: the targets and what their graphs are built from
#: (the graphs of a structure are built once for all members); the rest may differ.
SHARED_FIELDS = ("targets", "r_cut", "tensor_frame", "dtype", "max_edges")


def member_dirs(root: str | os.PathLike[str], k: int) -> list[Path]:
    """``root/member-1 … root/member-k``."""
    return [Path(root) / f"member-{m}" for m in range(1, k + 1)]


def member_fingerprints(root: str | os.PathLike[str], k: int) -> dict[str, str]:
    """SHA-256 of each member's ``best.pt``, by folder name: ``ensemble.json`` keeps those
    its σ was fitted with, so that a member trained again afterwards is noticed."""
    out = {}
    for folder in member_dirs(root, k):
        digest = hashlib.sha256()
        with (folder / "best.pt").open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[folder.name] = digest.hexdigest()
    return out


def is_member_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is ``member-K`` of an ensemble folder (one with ``ensemble.json``)."""
    p = Path(path).resolve()
    return p.name.startswith("member-") and (p.parent / ENSEMBLE_FILE).is_file()


def combine(
    decoded: Sequence[Mapping[str, np.ndarray]],
    heads: Mapping[str, Any],
    scale: Mapping[str, float] | None = None,
    distance: np.ndarray | None = None,
    weight: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """The members' decoded predictions -> the ensemble's: every target through its head's
    :meth:`~xtalnet.heads.Head.average` (the mean; geometric for log targets), its σ under
    ``"<column>.std"`` and every extra output averaged.

    σ = k sqrt(spread² + w d²): the spread is the members' standard deviation, k =
    ``scale[column]`` (default 1), w = ``weight[column]`` (default 0) and d = ``distance``
    (one per structure, broadcast over a tensor's entries; needed where w > 0). The
    entries of a tensor that symmetry fixes have σ = 0 (:meth:`Head.fixed_entries`).
    """
    out: dict[str, np.ndarray] = {}
    for key in decoded[0]:
        stack = np.stack([np.asarray(d[key], dtype=np.float64) for d in decoded])
        if key not in heads:
            out[key] = stack.mean(0)
            continue
        out[key] = heads[key].average(stack)
        k, w = float((scale or {}).get(key, 1.0)), float((weight or {}).get(key, 0.0))
        spread = stack.std(0)
        sigma = widened_sigma(spread, k, w, distance)
        fixed = heads[key].fixed_entries(spread)
        out[f"{key}.std"] = sigma if fixed is None else np.where(fixed, 0.0, sigma)
    return out


class Ensemble(nn.Module):
    """Members of an ensemble, predicting together.

    Parameters
    ----------
    members : sequence of Network
        Trained on the same data and split, sharing :data:`SHARED_FIELDS` of their config
        (their seeds and inputs may differ).
    sigma_scale : mapping column -> float, optional
        k of every target's σ (fitted on the validation split; default 1).
    sigma_distance_weight : mapping column -> float, optional
        w of every target's σ (fitted on the validation split; default 0), in the target's
        units squared.
    compositions : TrainingCompositions, optional
        The training crystals' compositions (needed where a weight is > 0).
    """

    def __init__(
        self,
        members: Sequence[Network],
        sigma_scale: Mapping[str, float] | None = None,
        sigma_distance_weight: Mapping[str, float] | None = None,
        compositions: TrainingCompositions | None = None,
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
        self.sigma_distance_weight = dict(sigma_distance_weight or {})
        if compositions is None and any(w > 0 for w in self.sigma_distance_weight.values()):
            raise ValueError("sigma_distance_weight > 0 needs the training compositions")
        self.compositions = compositions
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
        numbers: list[Any] = []
        outputs, notes = outputs_with_notes(
            nets, structures, batch_size, catch=catch, numbers=numbers
        )
        decoded = [decode(net, std) for net, std in zip(nets, outputs)]
        return self.combine(decoded, numbers), notes

    def combine(
        self, decoded: Sequence[Mapping[str, np.ndarray]], numbers: Sequence[Any]
    ) -> dict[str, np.ndarray]:
        """:func:`combine` with this ensemble's σ (``numbers``: each crystal's atoms)."""
        distance = None
        if self.compositions is not None and any(self.sigma_distance_weight.values()):
            distance = self.compositions.distance(numbers)
        return combine(decoded, self.target_heads, self.sigma_scale, distance,
                       self.sigma_distance_weight)  # fmt: skip

    def predict(self, structures: Any, batch_size: int = 64) -> dict[str, np.ndarray]:
        """Mean prediction of the members in physical units, and ``"<target>.std"``."""
        from xtalnet.prediction import catch_hint, warn_flagged

        with catch_hint():
            pred, notes = self.predict_with_notes(structures, batch_size)
        warn_flagged(notes, stacklevel=2)
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
        return model.combine(decoded, [g.numbers for g in graphs])
    return decode(model, forward_graphs(model, graphs, ids, batch_size))
