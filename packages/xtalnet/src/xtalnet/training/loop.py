"""The optimisation loop: a small :class:`Trainer` whose epoch-end decisions are hooks.

One epoch: the global batches of :func:`~xtalnet.training.batching.epoch_batches`, each
shared by the ranks, one AdamW step each; then the EMA weights are validated and the
epoch-end hooks run in order (:data:`EPOCH_END_HOOKS`): plan the cosine schedule for a time
limit, apply the stopping rules (:data:`STOPPING_RULES`), save ``last.pt`` / ``best.pt``,
write the metrics files and log the epoch's line.

Ctrl-C (SIGINT) finishes the current step, saves ``last.pt`` and raises
``KeyboardInterrupt``; a second Ctrl-C interrupts at once. An interrupted run resumed from
``last.pt`` equals an uninterrupted one bitwise: the batch order, the augmentation noise and
every RNG state are functions of (seed, epoch, step) or saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xtalnet import _checkpoint
from xtalnet._metrics import baseline_metrics, metrics_of
from xtalnet.dataset import Sample
from xtalnet.ensemble import ENSEMBLE_FILE
from xtalnet.network import Network
from xtalnet.prediction import decode, forward_graphs
from xtalnet.training.batching import collate_samples, epoch_batches, noisy_batch, shard
from xtalnet.training.distributed import Dist
from xtalnet.training.loss import batch_loss, loss_counts, validation_loss
from xtalnet.training.optim import EMA, Schedule, learning_rate, make_optimizer
from xtalnet.training.options import TrainOptions
from xtalnet.training.run_dir import RunLog, write_metrics

__all__ = [
    "DIVERGED_LOSS",
    "EPOCH_END_HOOKS",
    "STOPPING_RULES",
    "State",
    "TrainData",
    "Trainer",
    "TrainingDiverged",
]

#: A training or validation loss above this (standardised units: a network that learns
#: stays near 1 or below) or not finite means the run diverged.
DIVERGED_LOSS = 1e6


class TrainingDiverged(ValueError):
    """The losses left every sensible range; the run folder keeps its last good epoch."""


@dataclass
class State:
    """Where a run stands (saved in every checkpoint)."""

    epoch: int = 0  # epochs completed
    step_in_epoch: int = 0  # steps of the current (incomplete) epoch already done
    global_step: int = 0
    train_loss_sum: float = 0.0
    train_loss_n: int = 0
    best_val: float = math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    elapsed: float = 0.0  # training seconds over all segments
    planned_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainData:
    """The train and validation samples with their encoded targets."""

    train: Sequence[Sample]
    val: Sequence[Sample]
    enc_train: Mapping[str, torch.Tensor]
    enc_val: Mapping[str, torch.Tensor]

    @property
    def edges(self) -> list[int]:
        return [s.num_edges for s in self.train]


# ----------------------------------------------------------------------------- stopping rules
def _early_stopping(state: State, opts: TrainOptions) -> str | None:
    if state.bad_epochs >= opts.patience:
        return f"early stopping at epoch {state.epoch}"
    return None


def _time_limit(state: State, opts: TrainOptions) -> str | None:
    if opts.time_limit is None:
        return None
    if state.elapsed >= opts.time_limit * 60 * 0.98:
        return f"time limit {opts.time_limit} min"
    if state.elapsed * (state.epoch + 1) / state.epoch > opts.time_limit * 60:
        return f"time limit {opts.time_limit} min (no room for another epoch)"
    return None


def _max_steps(state: State, opts: TrainOptions) -> str | None:
    if opts.max_steps is not None and state.global_step >= opts.max_steps:
        return f"reached max_steps={opts.max_steps}"
    return None


def _max_epochs(state: State, opts: TrainOptions) -> str | None:
    return f"reached {opts.epochs} epochs" if state.epoch >= opts.epochs else None


#: Checked in order after every epoch; the first reason given stops the run.
STOPPING_RULES: tuple[Callable[[State, TrainOptions], str | None], ...] = (
    _early_stopping,
    _time_limit,
    _max_steps,
    _max_epochs,
)


# ----------------------------------------------------------------------------- epoch-end hooks
def plan_time_limit(trainer: Trainer, row: Mapping[str, Any]) -> None:
    """Fit the cosine schedule to the epochs that fit in the time limit, after every epoch:
    the epoch time is the median of the last five (the first epoch, with its warm-up costs,
    only while it is the only one), so a slow start or a change of load re-plans the
    schedule instead of leaving the learning rate at its floor."""
    state, opts = trainer.state, trainer.opts
    if opts.time_limit is None or opts.schedule != "cosine":
        return
    times = [0.0] + [r["time_s"] for r in state.history]
    durations = [b - a for a, b in itertools.pairwise(times)]
    per_epoch = max(float(np.median(durations[1:][-5:] or durations)), 1e-9)
    left = int((opts.time_limit * 60 * 0.97 - state.elapsed) / per_epoch)
    planned = min(opts.epochs, max(state.epoch, state.epoch + left))
    before = state.planned_epochs
    state.planned_epochs = planned
    trainer.schedule.replan(planned * trainer.steps_per_epoch)
    if state.epoch == 1:
        trainer.log(f"time limit {opts.time_limit} min: cosine schedule planned over "
                    f"{planned} epochs ({per_epoch:.1f} s per epoch)")  # fmt: skip
    elif abs(planned - before) > 0.1 * max(before, 1):  # news only
        trainer.log(f"epoch {state.epoch}: epochs now take {per_epoch:.1f} s: cosine schedule "
                    f"re-planned over {planned} epochs (was {before})")  # fmt: skip


def first_stop_reason(state: State, opts: TrainOptions) -> str | None:
    """The first reason of :data:`STOPPING_RULES` to stop now (None: go on)."""
    for rule in STOPPING_RULES:
        reason = rule(state, opts)
        if reason is not None:
            return reason
    return None


def apply_stopping_rules(trainer: Trainer, row: Mapping[str, Any]) -> None:
    """Mark the run done with the first reason of :data:`STOPPING_RULES`."""
    reason = first_stop_reason(trainer.state, trainer.opts)
    if reason is not None:
        trainer.state.done, trainer.state.stop_reason = True, reason


def save_checkpoints(trainer: Trainer, row: Mapping[str, Any]) -> None:
    """``last.pt`` after every epoch; ``best.pt`` when the validation loss improved."""
    trainer.save("last.pt")
    if row["best"]:
        trainer.save("best.pt")


def write_metric_files(trainer: Trainer, row: Mapping[str, Any]) -> None:
    """``metrics.csv`` / ``metrics.jsonl`` with every epoch so far (rank 0)."""
    if trainer.dist.main:
        write_metrics(trainer.out, trainer.state.history)


def log_epoch(trainer: Trainer, row: Mapping[str, Any]) -> None:
    """One line per epoch: losses, validation MAE per target, learning rate, time."""
    maes = " ".join(
        f"{k[4:-4]} {v:.4g}" for k, v in row.items() if k.startswith("val_") and k.endswith("_mae")
    )
    trainer.log(f"epoch {row['epoch']}: train {row['train_loss']:.4f}  val {row['val_loss']:.4f} "
                f"(EMA; MAE {maes})  lr {row['lr']:.2e}  {row['time_s']:.0f} s"
                + ("  *" if row["best"] else ""))  # fmt: skip


EpochHook = Callable[["Trainer", Mapping[str, Any]], None]
#: What runs after every validated epoch, in order.
EPOCH_END_HOOKS: tuple[EpochHook, ...] = (
    plan_time_limit,
    apply_stopping_rules,
    save_checkpoints,
    write_metric_files,
    log_epoch,
)


# ----------------------------------------------------------------------------- Ctrl-C
@contextlib.contextmanager
def _graceful_sigint() -> Iterator[dict[str, bool]]:
    """A flag set by the first Ctrl-C (the loop stops after the step); the second raises
    ``KeyboardInterrupt`` at once (``hard``: no save). Only in the main thread."""
    flags = {"sigint": False, "hard": False}
    if threading.current_thread() is not threading.main_thread():
        yield flags
        return

    def on_sigint(signum: int, frame: Any) -> None:
        if flags["sigint"]:
            flags["hard"] = True
            raise KeyboardInterrupt
        flags["sigint"] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield flags
    finally:
        signal.signal(signal.SIGINT, previous)


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """Trains ``net`` on ``data`` with ``opts``, saving checkpoints in ``out`` (rank 0).

    Parameters
    ----------
    net : Network
        Heads fitted; on ``dist.device``.
    opts : TrainOptions
    data : TrainData
    dist : Dist
    out : Path
        The run folder.
    log : RunLog
    progress : bool
        tqdm bar per epoch.
    on_step : callable, optional
        Called with ``{"epoch", "step", "loss"}`` after every optimisation step (may raise
        ``KeyboardInterrupt`` to stop the run like Ctrl-C).
    hooks : sequence of callables ``(trainer, row)``
        Run after every validated epoch (default :data:`EPOCH_END_HOOKS`).
    """

    def __init__(
        self,
        net: Network,
        opts: TrainOptions,
        data: TrainData,
        dist: Dist,
        out: Path,
        log: RunLog,
        *,
        progress: bool = False,
        on_step: Callable[[dict[str, Any]], None] | None = None,
        hooks: Sequence[EpochHook] = EPOCH_END_HOOKS,
    ) -> None:
        self.net, self.opts, self.data, self.dist = net, opts, data, dist
        self.out, self.log, self.progress, self.on_step = out, log, progress, on_step
        self.hooks = tuple(hooks)
        self.model: nn.Module = net
        if dist.world > 1:
            self.model = nn.parallel.DistributedDataParallel(
                net, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
            )
        self.optimizer = make_optimizer(net, opts)
        self.edges = data.edges
        self.steps_per_epoch = len(self._batches(0))
        self.schedule = Schedule(self.optimizer, opts, opts.epochs * self.steps_per_epoch)
        self.ema = EMA(net, opts.ema_decay)
        self.state = State(planned_epochs=opts.epochs)
        self._flags = {"sigint": False, "hard": False}
        self.train_species: list[int] = []  # atomic numbers seen in training (saved)
        self._baseline_mae: dict[str, float] | None = None
        self.frozen: list[str] = []  # trunk modules kept fixed (--freeze-trunk; saved)
        self._clock = (0.0, time.time())  # (elapsed before this segment, segment start)

    # ------------------------------------------------------------------ checkpoints
    def load_state(self, ckpt: Mapping[str, Any]) -> None:
        """Continue from a checkpoint: weights, optimizer, schedule, EMA, state and RNG."""
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["schedule"])
        self.ema.load_state_dict(ckpt["ema"])
        self.state = State(**ckpt["state"])
        _checkpoint.set_rng_state(ckpt["rng"])

    def resume_from(self, ckpt: Mapping[str, Any], length_changed: bool = False) -> None:
        """Continue the run of ``ckpt``; with a changed training length (``opts`` differs
        from the checkpoint's in epochs, time limit, max steps or patience) a finished run
        goes on and the cosine schedule is re-planned from where it stands.

        Raises
        ------
        ValueError
            The run has finished and would stop at once with these options.
        """
        self.load_state(ckpt)
        state = self.state
        if state.done:
            reason = first_stop_reason(state, self.opts) if state.epoch else None
            if reason is not None:
                raise ValueError(
                    f"--resume {str(self.out)!r}: the run has finished ({state.stop_reason}) "
                    f"and would stop at once again ({reason}); give a longer --epochs, "
                    "--time-limit, --max-steps or --patience to continue it"
                )
            self.log(f"the run had finished ({state.stop_reason}); it goes on with the new "
                     "training length")  # fmt: skip
            state.done, state.stop_reason = False, ""
        if length_changed and self.opts.schedule == "cosine":
            self._replan()

    def _replan(self) -> None:
        """Cosine schedule over the planned length with the current options (the time
        limit's plan uses the measured epoch time)."""
        state = self.state
        state.planned_epochs = self.opts.epochs
        self.schedule.replan(self.opts.epochs * self.steps_per_epoch)
        if self.opts.time_limit is not None and state.history:
            plan_time_limit(self, state.history[-1])
        self.log(f"cosine schedule re-planned over {state.planned_epochs} epochs from epoch "
                 f"{state.epoch} (learning rate now {self.schedule.lr():.2e})")  # fmt: skip

    def payload(self) -> dict[str, Any]:
        """Everything a checkpoint holds (weights-only data)."""
        return {
            "format": _checkpoint.FORMAT,
            "config": self.net.config.to_dict(),
            "options": self.opts.to_dict(),
            "model": self.net.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": _checkpoint.rng_state(),
            "state": self.state.to_dict(),
            "standardisation": {c: dict(h.state_dict()) for c, h in self.net.heads.items()},
            "versions": _checkpoint.versions(),
            "world_size": self.dist.world,
            "train_species": list(self.train_species),
            "frozen": list(self.frozen),
        }

    def save(self, name: str) -> None:
        """Write ``name`` (``last.pt`` / ``best.pt``) in the run folder (rank 0)."""
        if self.dist.main:
            _checkpoint.save(self.payload(), self.out / name)

    # ------------------------------------------------------------------ the loop
    def elapsed(self) -> float:
        """Training seconds over all segments of the run, this one included."""
        before, start = self._clock
        return before + time.time() - start

    def fit(self) -> State:
        """Train until a stopping rule ends the run (or Ctrl-C); returns the state."""
        self._clock = (self.state.elapsed, time.time())
        with _graceful_sigint() as self._flags:
            try:
                while not self.state.done:
                    if self.state.epoch >= self.opts.epochs:
                        self.state.done = True
                        self.state.stop_reason = f"reached {self.opts.epochs} epochs"
                        break
                    self.run_epoch()
                    self.end_epoch()
            except KeyboardInterrupt:
                self._interrupted()
                raise
        self.dist.barrier()
        best = (
            "val loss"
            if self.opts.select == "loss"
            else "val score: MAE relative to the mean predictor's, summed over the targets"
        )
        self.log(f"stopped: {self.state.stop_reason}; best epoch {self.state.best_epoch} "
                 f"({best} {self.state.best_val:.4f})")  # fmt: skip
        return self.state

    def close(self) -> None:
        """Drop the ``DistributedDataParallel`` wrapper: its reducer holds the process group,
        which must be freed by ``destroy_process_group`` and not at interpreter exit, where
        Gloo's worker threads can abort the process (SIGABRT after a finished run)."""
        self.model = self.net

    def _interrupted(self) -> None:
        if self._flags["hard"]:
            self.log(f"interrupted twice: {self.out / 'last.pt'} keeps the last completed epoch")
            return
        self.state.elapsed = self.elapsed()
        self.save("last.pt")
        if self.dist.main and self.state.history:
            write_metrics(self.out, self.state.history)
        # a member continues with its ensemble, which then fits σ (member 1 may be
        # interrupted before ensemble.json is written: its TrainOptions.member says so)
        member = self.opts.member > 0 or (self.out.parent / ENSEMBLE_FILE).is_file()
        again = self.out.parent if member and self.out.name.startswith("member-") else self.out
        self.log(f"interrupted at epoch {self.state.epoch} step {self.state.global_step}: saved "
                 f"{self.out / 'last.pt'}; continue with --resume {again}")  # fmt: skip

    def _batches(self, epoch: int) -> list[list[int]]:
        cfg = self.net.config
        return epoch_batches(
            len(self.data.train), self.edges, self.opts, cfg.max_edges, epoch, self.dist.world
        )

    def run_epoch(self) -> None:
        """The remaining steps of the current epoch (all of them unless resumed mid-epoch)."""
        batches = self._batches(self.state.epoch)
        bar = self._bar(len(batches))
        self.model.train()
        try:
            for k in range(self.state.step_in_epoch, len(batches)):
                value = self.step(batches[k])
                self.state.step_in_epoch = k + 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{value:.4f}", lr=f"{learning_rate(self.optimizer):.1e}")
                if self.on_step is not None:
                    self.on_step(
                        {"epoch": self.state.epoch, "step": self.state.global_step, "loss": value}
                    )
                if self._stop_within_epoch():
                    break
        finally:
            if bar is not None:
                bar.close()

    def _bar(self, total: int) -> Any:
        if not self.progress:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # tqdm is a dependency, but never fail a run over a bar
            return None
        return tqdm(total=total, initial=self.state.step_in_epoch, leave=False,
                    desc=f"epoch {self.state.epoch + 1}", file=sys.stderr)  # fmt: skip

    def _stop_within_epoch(self) -> bool:
        """One decision for every rank: Ctrl-C on any rank, rank clocks differ."""
        opts = self.opts
        over = opts.time_limit is not None and self.elapsed() >= opts.time_limit * 60
        sigint, over_any = self.dist.max(float(self._flags["sigint"]), float(over))
        if sigint:
            self._flags["sigint"] = True
            raise KeyboardInterrupt
        if opts.max_steps is not None and self.state.global_step >= opts.max_steps:
            return True
        return bool(over_any)

    def step(self, global_batch: Sequence[int]) -> float:
        """One optimisation step on this rank's share of ``global_batch``; the loss of the
        whole global batch (standardised units)."""
        dist, net, enc = self.dist, self.net, self.data.enc_train
        mine = shard(global_batch, self.edges, dist.world)[dist.rank]
        counts = loss_counts(net, {c: enc[c][list(global_batch)] for c in net.heads})
        if self.opts.noise > 0:
            batch = noisy_batch(
                self.data.train, mine, self.opts, net.config, self.state.global_step
            )
        else:
            batch = collate_samples(self.data.train, mine)
        tgt = {c: enc[c][mine].to(dist.device) for c in net.heads}
        out = self.model(batch.to(dist.device))
        loss = batch_loss(net, out, tgt, counts, self.opts) * dist.world  # DDP averages ranks
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if math.isfinite(self.opts.clip):
            torch.nn.utils.clip_grad_norm_(net.parameters(), self.opts.clip)
        self.optimizer.step()
        self.schedule.step()
        self.ema.update(net)
        value = float(loss.detach()) / dist.world
        if dist.world > 1:
            t = torch.tensor([value], dtype=torch.float64, device=dist.device)
            torch.distributed.all_reduce(t)
            value = float(t)
        if not math.isfinite(value) or value > DIVERGED_LOSS:
            self._diverged(f"training loss {value:.3g} at step {self.state.global_step + 1}")
        self.state.train_loss_sum += value
        self.state.train_loss_n += 1
        self.state.global_step += 1
        return value

    def _diverged(self, what: str) -> None:
        kept = [n for n in ("last.pt", "best.pt") if (self.out / n).is_file()]
        where = (
            f"{self.out} keeps the last good epoch ({', '.join(kept)})"
            if kept
            else "no epoch finished before, so no checkpoint was written"
        )
        msg = (
            f"the run diverged: {what} (standardised units; a network that learns stays near "
            f"1 or below); lower --lr (it was {learning_rate(self.optimizer):.3g}); {where}"
        )
        self.log.record(msg)
        raise TrainingDiverged(msg)

    # ------------------------------------------------------------------ epoch end
    def predict(self, samples: Sequence[Sample]) -> tuple[dict[str, np.ndarray], dict]:
        """Standardised and decoded predictions of ``samples`` with the current weights
        (each rank predicts a slice; every rank gets all of them)."""
        dist, n = self.dist, len(samples)
        mine = samples[n * dist.rank // dist.world : n * (dist.rank + 1) // dist.world]
        std_mine = forward_graphs(
            self.net, [s.graph for s in mine], [s.id for s in mine], self.opts.batch_size
        )
        parts = dist.gather(std_mine)
        std = {c: np.concatenate([p[c] for p in parts], 0) for c in self.net.heads}
        return std, decode(self.net, std)

    def _selection_score(self, val_loss: float, val_metrics: Mapping[str, Any]) -> float:
        """What picks ``best.pt``: the validation loss, or (``select="mae"``) the sum over the
        targets of the validation MAE relative to the mean predictor's."""
        if self.opts.select == "loss":
            return val_loss
        if self._baseline_mae is None:
            base = baseline_metrics(self.net, self.data.train, self.data.val)
            self._baseline_mae = {c: m["mae"] for c, m in base.items()}
        return float(sum(m["mae"] / self._baseline_mae[c] for c, m in val_metrics.items()
                         if self._baseline_mae.get(c)))  # fmt: skip

    def end_epoch(self) -> None:
        """Validate the EMA weights, record the epoch's row and run the epoch-end hooks."""
        state = self.state
        state.elapsed = self.dist.max(self.elapsed())[0]
        with self.ema.applied(self.net):
            std, dec = self.predict(self.data.val)
            val_loss = validation_loss(self.net, std, self.data.enc_val, self.opts)
        val_metrics = metrics_of(self.net, dec, self.data.val)
        self.schedule.epoch_end(val_loss)
        state.epoch += 1
        row: dict[str, Any] = {
            "epoch": state.epoch,
            "step": state.global_step,
            "lr": learning_rate(self.optimizer),
            "train_loss": state.train_loss_sum / max(1, state.train_loss_n),
            "val_loss": val_loss,
        }
        for c, m in val_metrics.items():
            row[f"val_{c}_mae"] = m["mae"]
        row["time_s"] = round(state.elapsed, 2)
        state.train_loss_sum, state.train_loss_n, state.step_in_epoch = 0.0, 0, 0
        score = self._selection_score(val_loss, val_metrics)
        if self.opts.select != "loss":
            row["val_score"] = score
        improved = score < state.best_val
        if improved:
            state.best_val, state.best_epoch, state.bad_epochs = score, state.epoch, 0
        else:
            state.bad_epochs += 1
        row["best"] = improved
        losses = (row["train_loss"], val_loss)
        if not all(math.isfinite(x) and x <= DIVERGED_LOSS for x in losses):
            self._diverged(f"epoch {state.epoch}: training loss {losses[0]:.3g}, validation "
                           f"loss {losses[1]:.3g}")  # fmt: skip
        state.history.append(row)
        for hook in self.hooks:
            hook(self, row)
        if self.dist.max(float(self._flags["sigint"]))[0]:
            self._flags["sigint"] = True
            raise KeyboardInterrupt
