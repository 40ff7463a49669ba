r"""The learning-rate schedule and the exponential moving average of the weights, both with
weights-only ``state_dict``\ s, and the AdamW optimizer they drive."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from xtalnet.training.options import TrainOptions

__all__ = ["EMA", "Schedule", "make_optimizer"]


class Schedule:
    """Learning-rate schedule with a weights-only ``state_dict`` (see :class:`TrainOptions`)."""

    def __init__(self, optimizer: torch.optim.Optimizer, opts: TrainOptions, total_steps: int):
        self.optimizer = optimizer
        self.kind = opts.schedule
        self.base_lr = float(opts.lr)
        self.warmup = int(opts.warmup_steps)
        self.min_ratio = float(opts.min_lr_ratio)
        self.plateau_patience = int(opts.plateau_patience)
        self.total_steps = max(1, int(total_steps))
        self.step_count = 0
        self.scale = 1.0  # plateau reductions
        self.best = math.inf
        self.bad_epochs = 0
        self._apply()

    def lr(self) -> float:
        """Learning rate of the next step."""
        s = self.step_count
        warm = min(1.0, (s + 1) / self.warmup) if self.warmup else 1.0
        if self.kind == "cosine":
            t = min(1.0, max(0, s - self.warmup) / max(1, self.total_steps - self.warmup))
            f = self.min_ratio + (1 - self.min_ratio) * 0.5 * (1 + math.cos(math.pi * t))
            return self.base_lr * warm * f
        if self.kind == "plateau":
            return self.base_lr * warm * self.scale
        return self.base_lr * warm

    def replan(self, total_steps: int) -> None:
        """A new planned length (cosine): the rate follows it from the next step on."""
        self.total_steps = max(1, int(total_steps))
        self._apply()

    def _apply(self) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr()

    def step(self) -> None:
        """After an optimisation step."""
        self.step_count += 1
        self._apply()

    def epoch_end(self, val_loss: float) -> None:
        """After validation (plateau: halve the rate after ``plateau_patience`` bad epochs)."""
        if val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
        else:
            self.bad_epochs += 1
            if self.kind == "plateau" and self.bad_epochs >= self.plateau_patience:
                self.scale *= 0.5
                self.bad_epochs = 0
        self._apply()

    def state_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in
                ("kind", "total_steps", "step_count", "scale", "best", "bad_epochs")}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._apply()


class EMA:
    """Exponential moving average of a module's floating-point state (parameters, buffers).

    ``decay_n = min(decay, (1 + n) / (10 + n))`` after n updates, so early weights fade fast.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = {
            k: v.detach().clone()
            for k, v in module.state_dict().items()
            if v.dtype.is_floating_point
        }

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        for k, v in module.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach(), 1.0 - d)

    @contextlib.contextmanager
    def applied(self, module: nn.Module) -> Iterator[None]:
        """Temporarily load the averaged weights into ``module``."""
        backup = {k: v.detach().clone() for k, v in module.state_dict().items() if k in self.shadow}
        module.load_state_dict(self.shadow, strict=False)
        try:
            yield
        finally:
            module.load_state_dict(backup, strict=False)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "num_updates": self.num_updates, "shadow": self.shadow}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)


def make_optimizer(net: nn.Module, opts: TrainOptions) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay on the matrices only (biases, gains and other
    one-dimensional parameters are not decayed)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in net.parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": opts.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=opts.lr,
    )


def learning_rate(optimizer: torch.optim.Optimizer) -> float:
    """The current learning rate (of the first parameter group)."""
    return float(optimizer.param_groups[0]["lr"])
