"""How a network is trained: :class:`TrainOptions` (everything but the network's shape)."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xtalnet.config import MAX_SEED
from xtalnet.heads.base import check_loss

__all__ = ["SCHEDULES", "SELECTIONS", "TrainOptions"]

SCHEDULES = ("cosine", "plateau", "constant")
SELECTIONS = ("loss", "mae")


@dataclass(frozen=True)
class TrainOptions:
    """How a network is trained (everything but the network's shape).

    Parameters
    ----------
    epochs : int
        Maximum number of passes over the training split.
    batch_size : int
        Structures per optimisation step (the global batch; in DDP it is shared by the ranks).
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW decoupled weight decay.
    schedule : {"cosine", "plateau", "constant"}
        cosine: linear warm-up then cosine decay to ``min_lr_ratio * lr`` over the planned
        steps; plateau: halve the rate when the validation loss has not improved for
        ``plateau_patience`` epochs; constant.
    warmup_steps : int
        Linear warm-up steps (cosine and plateau).
    min_lr_ratio : float
        Final learning rate of the cosine schedule, relative to ``lr``.
    plateau_patience : int
        Epochs without improvement before the plateau schedule halves the rate.
    clip : float
        Maximum global gradient norm, > 0 (``inf`` disables clipping).
    ema_decay : float
        Decay of the exponential moving average of the weights (0 disables it: the EMA is
        then the model itself). The EMA is what is validated, saved as best and predicted
        with.
    patience : int
        Early stopping: stop when the validation loss has not improved for this many epochs.
    seed : int
        Seed of the batch order and the augmentation noise (and of the split, unless
        ``split_seed`` is given), 0 … :data:`xtalnet.config.MAX_SEED`; a new run given
        ``seed`` also initialises its network from it, unless the config gives its own
        ``seed``.
    split_seed : int or None
        Seed of the train / validation / test split, 0 … ``MAX_SEED`` (None: ``seed``); the
        members of an ensemble share it while their ``seed`` differs.
    split : (train, val, test) fractions
        Seeded split used when no ``val`` / ``test`` source is given.
    time_limit : float or None
        Training wall-clock budget in minutes (over all resumed segments); the cosine
        schedule is fitted to the epochs that fit in it after the first epoch.
    max_steps : int or None
        Stop after this many optimisation steps (e.g. for tests).
    noise : float
        Augmentation: standard deviation (Å) of Gaussian displacements added to every atom
        of every training structure at every step (graphs rebuilt; seeded by step and
        structure, so resume and DDP stay exact); 0 disables it.
    strict : bool
        Fail, listing them, on structures that cannot be used (parse failures, isolated
        atoms at r_cut, more edges than the budget) instead of skipping and counting them.
    loss : {"mse", "l1", "huber"}
        Regression loss of every head in its standardised units, for training and for the
        validation loss that selects ``best.pt`` and drives early stopping: squared error
        per component, or the L1 / Huber loss of the norm of every irrep copy's residual
        (:func:`xtalnet.heads.residual_loss`; the band-gap head keeps its cross-entropy and
        applies it to z). Checkpoints without this field were trained with ``"mse"``.
    huber_delta : float
        Threshold of the Huber loss, standardised units (> 0).
    bootstrap : bool
        Train on a bootstrap resample of the training split (as many draws with
        replacement as it has structures, seeded by ``seed``; the standardisation is still
        fitted on the whole split). Off by default, for ensemble members too: on the MP-20
        subset bagged members lost more accuracy than their spread gained in ranking.
    select : {"loss", "mae"}
        What picks ``best.pt`` and drives early stopping: the validation loss (standardised
        units), or the validation MAE of every target relative to the mean predictor's,
        summed over the targets (in the units users read; for the band gap the loss mixes
        a cross-entropy with the spread of √gap).
    init : str or None
        A checkpoint (``best.pt``, ``last.pt`` or a run folder) whose trunk the network
        starts from (fine-tuning, :mod:`xtalnet.training.finetune`); new heads are fitted.
    freeze_trunk : bool
        With ``init``: keep the copied trunk fixed and train only what is new.
    member : int
        This run's place in an ensemble (1 … K; 0 for a run of its own): the defaults vary
        the inputs of members 2 … K (:func:`xtalnet.defaults.member_inputs`).
    """

    epochs: int = 100
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-5
    schedule: str = "cosine"
    warmup_steps: int = 50
    min_lr_ratio: float = 0.02
    plateau_patience: int = 5
    clip: float = 10.0
    ema_decay: float = 0.99
    patience: int = 50
    seed: int = 0
    split_seed: int | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    time_limit: float | None = None
    max_steps: int | None = None
    strict: bool = False
    noise: float = 0.0
    loss: str = "mse"
    huber_delta: float = 1.0
    bootstrap: bool = False
    select: str = "loss"
    init: str | None = None
    freeze_trunk: bool = False
    member: int = 0

    def __post_init__(self) -> None:
        _, delta = check_loss(self.loss, self.huber_delta)
        object.__setattr__(self, "huber_delta", delta)
        for name, lo in (("epochs", 1), ("batch_size", 1), ("patience", 1),
                         ("plateau_patience", 1), ("warmup_steps", 0), ("seed", 0),
                         ("member", 0)):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        if self.seed > MAX_SEED:
            raise ValueError(f"seed must be an int in [0, {MAX_SEED}], got {self.seed!r}")
        # lr = 0 or clip = 0 (every gradient scaled to nothing) would train nothing
        for name in ("lr", "weight_decay", "min_lr_ratio", "clip", "ema_decay", "noise"):
            v = getattr(self, name)
            lowest = "> 0" if name in ("lr", "clip") else ">= 0"
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            if not number or not (v > 0 if lowest == "> 0" else v >= 0):
                raise ValueError(f"{name} must be a number {lowest}, got {v!r}")
            if name != "clip" and not math.isfinite(v):  # clip = inf: no clipping
                raise ValueError(f"{name} must be a finite number, got {v!r}")
        if not self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        split = tuple(float(x) for x in self.split)
        if len(split) != 3 or min(split) < 0 or not split[0] > 0 or abs(sum(split) - 1) > 1e-6:
            raise ValueError(
                f"split must be three fractions (train, val, test) >= 0 summing to 1 with "
                f"train > 0, got {self.split!r}"
            )
        object.__setattr__(self, "split", split)
        if self.time_limit is not None and not (
            isinstance(self.time_limit, (int, float))
            and not isinstance(self.time_limit, bool)
            and math.isfinite(self.time_limit)
            and self.time_limit > 0
        ):
            raise ValueError(f"time_limit must be minutes > 0 or None, got {self.time_limit!r}")
        if not isinstance(self.bootstrap, bool):
            raise ValueError(f"bootstrap must be a bool, got {self.bootstrap!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, got {self.select!r}")
        if self.init is not None and not isinstance(self.init, (str, os.PathLike)):
            raise ValueError(f"init must be a checkpoint path or None, got {self.init!r}")
        object.__setattr__(self, "init", None if self.init is None else os.fspath(self.init))
        if not isinstance(self.freeze_trunk, bool):
            raise ValueError(f"freeze_trunk must be a bool, got {self.freeze_trunk!r}")
        if self.freeze_trunk and self.init is None:
            raise ValueError("freeze_trunk needs init: the trunk to freeze comes from --init CKPT")
        if self.split_seed is not None and (
            isinstance(self.split_seed, bool) or not isinstance(self.split_seed, int)
            or not 0 <= self.split_seed <= MAX_SEED
        ):  # fmt: skip
            raise ValueError(
                f"split_seed must be an int in [0, {MAX_SEED}] or None, got {self.split_seed!r}"
            )
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
            or self.max_steps < 1
        ):  # fmt: skip
            raise ValueError(f"max_steps must be an int >= 1 or None, got {self.max_steps!r}")

    @property
    def data_seed(self) -> int:
        """The seed of the split: ``split_seed``, else ``seed``."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainOptions:
        """Inverse of :meth:`to_dict` (unknown keys raise ``ValueError`` naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k != "provenance"}  # a run's record
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; allowed: {sorted(names)}")
        d = dict(data)
        if "split" in d:
            d["split"] = tuple(d["split"])
        return cls(**d)
