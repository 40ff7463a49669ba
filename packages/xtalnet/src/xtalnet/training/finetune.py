"""Fine-tuning: a new run starts its trunk from a trained one (``--init CKPT``).

The trunk is what does not depend on the targets: the species embedding, the composition
statistics' MLP and the interaction layers. The new run takes the fields that shape the
trunk from the checkpoint's config (:data:`TRUNK_FIELDS`; given ones must agree, else a
``ValueError`` names the field), copies every trunk module whose tensors match in name and
shape (the EMA weights), and fits new heads and readouts to its own data and targets, which
may be the same as the checkpoint's or others. A last layer that must now produce other
irreps (an elastic tensor's 4e after formation energies) starts afresh, and the log says so.
``--freeze-trunk`` keeps the copied modules fixed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import torch

from xtalnet import _checkpoint
from xtalnet.network import Network

__all__ = ["TRUNK_FIELDS", "freeze", "init_trunk", "trunk_fields"]

#: NetworkConfig fields that shape the trunk (a checkpoint's trunk only fits the same ones).
TRUNK_FIELDS = (
    "r_cut",
    "embed_dim",
    "species_features",
    "composition",
    "hidden_irreps",
    "l_filter_max",
    "num_basis",
    "radial_hidden",
    "radial_layers",
    "cutoff_p",
    "readout_mul",
    "convention",
    "residual",
    "feature_norm",
    "norm_eps",
    "dtype",
)


def trunk_fields(init: str | os.PathLike[str], given: Mapping[str, Any]) -> dict[str, Any]:
    """The trunk fields of the checkpoint ``init`` (and its ``num_layers``), checked against
    the ``given`` ones (``ValueError`` naming each field that differs)."""
    ckpt = _checkpoint.read(init)
    saved = _checkpoint.config_of(ckpt).to_dict()
    fields = {k: saved[k] for k in (*TRUNK_FIELDS, "num_layers")}
    differ = [
        f"{k}: {fields[k]!r} (--init) vs {given[k]!r} (given)"
        for k in TRUNK_FIELDS
        if k in given and _norm(given[k]) != _norm(fields[k])
    ]
    if differ:
        raise ValueError(
            f"--init {str(init)!r}: its trunk does not fit the network asked for; fields that "
            f"differ: {'; '.join(differ)} (leave them out to take the checkpoint's)"
        )
    return fields


def _norm(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def init_trunk(net: Network, init: str | os.PathLike[str], log: Callable[[str], None]) -> list[str]:
    """Copy the trunk of the checkpoint ``init`` (its EMA weights) into ``net``: every module
    among the embedding, the composition MLP and the layers whose tensors all match in name
    and shape. Returns the copied module names; ``ValueError`` when none fits."""
    ckpt = _checkpoint.read(init)
    weights = dict(ckpt["model"])
    weights.update(ckpt.get("ema", {}).get("shadow", {}))
    own = net.state_dict()
    copied, fresh, absent = [], [], []
    for name in _trunk_modules(net):
        keys = [k for k in own if k.startswith(name + ".")]
        theirs = [k for k in weights if k.startswith(name + ".")]
        if not theirs:
            absent.append(name)
        elif sorted(keys) == sorted(theirs) and all(own[k].shape == weights[k].shape
                                                    for k in keys):  # fmt: skip
            with torch.no_grad():
                for k in keys:
                    own[k].copy_(weights[k].to(own[k]))
            copied.append(name)
        else:
            fresh.append(name)
    if not copied:
        raise ValueError(f"--init {str(init)!r}: no module of its trunk fits this network")
    also = f"; trained from scratch (other shapes for these targets): {fresh}" if fresh else ""
    also += f"; trained from scratch (not in the checkpoint): {absent}" if absent else ""
    log(f"--init {init}: trunk modules copied: {copied}{also}")
    return copied


def _trunk_modules(net: Network) -> list[str]:
    names = ["embedding"] + [f"layers.{i}" for i in range(len(net.layers))]
    if net.composition is not None:
        names.append("composition")
    return names


def freeze(net: Network, modules: list[str], log: Callable[[str], None]) -> None:
    """``--freeze-trunk``: the copied modules' parameters take no gradient (and no step)."""
    for name in modules:
        for p in net.get_submodule(name).parameters():
            p.requires_grad_(False)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    log(f"--freeze-trunk: {modules} frozen; {trainable:,} parameters train")
