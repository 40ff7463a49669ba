"""Training, evaluation and prediction of :class:`xtalnet.Network` (single process and DDP).

The command line (``xtalnet train|evaluate|predict|demo``) only parses arguments and calls
:func:`train`, :func:`evaluate` and :func:`load` here.

A run folder holds::

    run.json            what produced the run (arguments, start time)
    config.json         the NetworkConfig (r_cut and layers from mp-audit unless given)
    options.json        the training options (TrainOptions)
    recommendation.json the mp-audit recommendation computed on the training structures
    split.json          material ids of the train / val / test structures
    last.pt, best.pt    checkpoints (model, EMA, optimizer, schedule, RNG, epoch, ...)
    metrics.csv/.jsonl  one row per epoch
    train.log           the log printed during training
    learning_curve.png  train and validation loss per epoch
    test_metrics.json   metrics of best.pt (EMA weights) on the test split, with the
                        mean-predictor baseline

Distributed data parallel: run under ``torchrun`` (``WORLD_SIZE`` > 1) and every rank trains
on its edge-balanced share of each global batch; gradients are averaged by
``DistributedDataParallel`` with the loss scaled so that the update equals the one of a single
process on the whole global batch. Rank 0 alone writes files and prints; every rank reads the
same checkpoint on ``--resume``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from xtalnet import _checkpoint
from xtalnet._metrics import target_metrics
from xtalnet.config import NetworkConfig
from xtalnet.data import Batch, _graph, _make_batch, to_structure
from xtalnet.model import Network

__all__ = [
    "RUN_FILES",
    "SCHEDULES",
    "TrainOptions",
    "evaluate",
    "load",
    "predict_table",
    "train",
]

SCHEDULES = ("cosine", "plateau", "constant")
#: files that mark a folder as holding a run (refused unless resume / overwrite)
RUN_FILES = (
    "run.json",
    "config.json",
    "options.json",
    "recommendation.json",
    "split.json",
    "last.pt",
    "best.pt",
    "metrics.csv",
    "metrics.jsonl",
    "train.log",
    "learning_curve.png",
    "test_metrics.json",
    "test_predictions.csv",
)


# =============================================================================== options
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
        Maximum global gradient norm (``inf`` disables clipping).
    ema_decay : float
        Decay of the exponential moving average of the weights (0 disables it: the EMA is
        then the model itself). The EMA is what is validated, saved as best and predicted
        with.
    patience : int
        Early stopping: stop when the validation loss has not improved for this many epochs.
    seed : int
        Seed of the split and of the batch order.
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
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    time_limit: float | None = None
    max_steps: int | None = None
    strict: bool = False
    noise: float = 0.0
    loss: str = "mse"
    huber_delta: float = 1.0

    def __post_init__(self) -> None:
        from xtalnet.heads import check_loss

        _, delta = check_loss(self.loss, self.huber_delta)
        object.__setattr__(self, "huber_delta", delta)
        for name, lo in (("epochs", 1), ("batch_size", 1), ("patience", 1),
                         ("plateau_patience", 1), ("warmup_steps", 0), ("seed", 0)):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        for name in ("lr", "weight_decay", "min_lr_ratio", "clip", "ema_decay", "noise"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {v!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
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
            isinstance(self.time_limit, (int, float)) and self.time_limit > 0
        ):
            raise ValueError(f"time_limit must be minutes > 0 or None, got {self.time_limit!r}")
        if self.max_steps is not None and (
            isinstance(self.max_steps, bool) or not isinstance(self.max_steps, int)
            or self.max_steps < 1
        ):  # fmt: skip
            raise ValueError(f"max_steps must be an int >= 1 or None, got {self.max_steps!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = dataclasses.asdict(self)
        d["split"] = list(self.split)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainOptions:
        """Inverse of :meth:`to_dict` (unknown keys raise ``ValueError`` naming them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; allowed: {sorted(names)}")
        d = dict(data)
        if "split" in d:
            d["split"] = tuple(d["split"])
        return cls(**d)


# =============================================================================== logging
class _Log:
    """Prints (rank 0) and appends to ``train.log`` when a folder is given."""

    def __init__(self, out: Path | None, active: bool, quiet: bool = False) -> None:
        self.path = out / "train.log" if (out is not None and active) else None
        self.active = active
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.active:
            return
        if not self.quiet:
            print(msg, flush=True)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(msg + "\n")


# =============================================================================== data
@dataclass
class Sample:
    """One usable structure: its id, its graph and its target values (physical units)."""

    id: str
    graph: Any
    values: dict[str, Any]
    structure: Any = None

    @property
    def num_edges(self) -> int:
        return int(self.graph.num_edges)


@dataclass
class Prepared:
    """Structures parsed, with targets, and counts of what was dropped."""

    ids: list[str]
    structures: list[Any]
    values: list[dict[str, Any]]
    report: dict[str, Any] = field(default_factory=dict)


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    if isinstance(v, (list, np.ndarray)):
        arr = np.asarray(v, dtype=object)
        try:
            return bool(np.isnan(np.asarray(v, dtype=np.float64)).any())
        except (TypeError, ValueError):
            return arr.size == 0
    return False


def _columns_needed(columns: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(columns))


def load_source(
    source: Any, columns: Sequence[str], *, strict: bool = False, log: Callable[[str], None] = print
) -> Prepared:
    """Read ``source`` with :func:`mp_audit.load`, keeping the target ``columns``.

    Rows whose targets are all missing (NaN / None) are dropped and counted per column;
    structures that do not parse are skipped and counted (``strict``: ``ValueError`` listing
    them). A target column absent from the source raises ``ValueError`` listing the columns
    present.
    """
    import mp_audit

    columns = _columns_needed(columns)
    if isinstance(source, mp_audit.Dataset):
        ds = source
    else:
        try:
            ds = mp_audit.load(source, columns=columns or None)
        except ValueError as exc:
            raise ValueError(f"--data {source!r}: target column(s) {columns}: {exc}") from exc
    ids, structures, values = [], [], []
    failures: list[tuple[str, str]] = list(ds.load_failures)
    missing = dict.fromkeys(columns, 0)
    present: set[str] = set()
    n_rows = 0
    for entry in ds:
        n_rows += 1
        present.update(entry.props)
        vals = {c: entry.props.get(c) for c in columns}
        for c in columns:
            if _is_missing(vals[c]):
                missing[c] += 1
        if columns and all(_is_missing(vals[c]) for c in columns):
            continue
        try:
            s = to_structure(entry)
        except (ValueError, TypeError) as exc:
            failures.append((entry.material_id, str(exc)))
            continue
        ids.append(entry.material_id)
        structures.append(s)
        values.append(vals)
    absent = [c for c in columns if c not in present]
    if n_rows and absent:
        raise ValueError(
            f"target column(s) {absent} are absent from {getattr(ds, 'name', source)!r}; "
            f"columns present: {sorted(present)}"
        )
    if columns and n_rows and all(missing[c] == n_rows for c in columns):
        raise ValueError(f"every target value of {columns} is missing (NaN) in {ds.name!r}")
    for c, k in missing.items():
        if k:
            log(f"target {c!r}: {k} of {n_rows} rows have no value (NaN/None); dropped from it")
    if failures:
        msg = f"{len(failures)} structure(s) do not parse: " + "; ".join(
            f"{m}: {e[:80]}" for m, e in failures[:5]
        )
        if strict:
            raise ValueError(msg + " (strict)")
        log(msg + " — skipped")
    if not ids:
        raise ValueError(f"no usable structures in {getattr(ds, 'name', source)!r}")
    report = {"rows": n_rows, "missing": missing, "parse_failures": len(failures)}
    return Prepared(ids, structures, values, report)


def build_samples(
    prep: Prepared,
    config: NetworkConfig,
    *,
    strict: bool = False,
    log: Callable[[str], None] = print,
    what: str = "data",
) -> tuple[list[Sample], dict[str, Any]]:
    """Graphs at ``config.r_cut``; structures with isolated atoms (no neighbour within r_cut)
    or above the edge budget are skipped and counted (``strict``: ``ValueError`` listing them).
    """
    samples, isolated, too_big = [], [], []
    for k, (i, s, v) in enumerate(zip(prep.ids, prep.structures, prep.values)):
        try:
            g = _graph(s, k, config)
        except ValueError as exc:
            if "max_edges" in str(exc):
                too_big.append(i)
                continue
            raise ValueError(f"{what}: structure {i!r}: {exc}") from exc
        if bool((g.counts == 0).any()):
            isolated.append(i)
            continue
        samples.append(Sample(i, g, v, s))
    for bad, why in (
        (isolated, f"have atoms without a neighbour within r_cut={config.r_cut} Å"),
        (too_big, f"have more edges than max_edges={config.max_edges:,}"),
    ):
        if not bad:
            continue
        msg = f"{what}: {len(bad)} structure(s) {why}: {bad[:20]}" + (
            " ..." if len(bad) > 20 else ""
        )
        if strict:
            raise ValueError(msg + " (strict: fix the data, or run without --strict to skip them)")
        log(msg + " — skipped")
    if not samples:
        raise ValueError(f"{what}: no usable structure left at r_cut={config.r_cut} Å")
    return samples, {"isolated": len(isolated), "too_big": len(too_big)}


def split_indices(
    n: int, fractions: Sequence[float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded random split of ``range(n)`` into train / val / test by ``fractions``."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = round(fractions[1] * n)
    n_test = round(fractions[2] * n)
    if n - n_val - n_test < 1:
        raise ValueError(f"split {tuple(fractions)} of {n} structures leaves no training data")
    return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]


def _subset(prep: Prepared, idx: Any) -> Prepared:
    return Prepared(
        [prep.ids[i] for i in idx],
        [prep.structures[i] for i in idx],
        [prep.values[i] for i in idx],
        prep.report,
    )


# =============================================================================== batching
def pack(
    order: Sequence[int], edges: Sequence[int], batch_size: int, max_edges: int, min_size: int = 1
) -> list[list[int]]:
    """Split ``order`` into consecutive batches of at most ``batch_size`` structures and
    ``max_edges`` edges; a last batch smaller than ``min_size`` joins the previous one."""
    batches: list[list[int]] = []
    cur: list[int] = []
    total = 0
    for i in order:
        e = int(edges[i])
        if cur and (len(cur) == batch_size or total + e > max_edges):
            batches.append(cur)
            cur, total = [], 0
        cur.append(int(i))
        total += e
    if cur:
        if len(cur) < min_size and batches:
            batches[-1].extend(cur)
        else:
            batches.append(cur)
    return batches


def shard(batch: Sequence[int], edges: Sequence[int], world: int) -> list[list[int]]:
    """Edge-balanced split of one global batch over ``world`` ranks (largest first, each to
    the rank with the fewest edges so far; ties to the lower rank); order kept inside a rank."""
    loads = [0] * world
    parts: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(batch, key=lambda j: (-int(edges[j]), j)):
        r = min(range(world), key=lambda k: (loads[k], len(parts[k]), k))
        parts[r].append(i)
        loads[r] += int(edges[i])
    pos = {j: n for n, j in enumerate(batch)}
    return [sorted(p, key=pos.__getitem__) for p in parts]


def epoch_batches(
    n: int, edges: Sequence[int], opts: TrainOptions, max_edges: int, epoch: int, world: int
) -> list[list[int]]:
    """Global batches of one epoch: a permutation seeded by (seed, epoch), packed by the
    structure and edge budgets (``world`` x max_edges for the global batch)."""
    gen = torch.Generator().manual_seed(opts.seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=gen).tolist()
    return pack(order, edges, opts.batch_size, max_edges * world, min_size=world)


def _noisy_batch(
    samples: Sequence[Sample],
    idx: Sequence[int],
    opts: TrainOptions,
    cfg: NetworkConfig,
    step: int,
) -> Batch:
    """The batch of ``idx`` with every atom displaced by N(0, noise²) per Cartesian axis,
    drawn from a generator seeded by (seed, step, structure index)."""
    from ase import Atoms

    graphs = []
    for i in idx:
        s = to_structure(samples[i].structure)
        if hasattr(s, "lattice"):
            pos, cell = np.asarray(s.cart_coords), np.asarray(s.lattice.matrix)
            numbers = np.asarray(s.atomic_numbers)
        else:
            pos, cell, numbers = s.get_positions(), s.get_cell()[:], s.get_atomic_numbers()
        gen = np.random.default_rng([opts.seed, step, i])
        atoms = Atoms(numbers=numbers, positions=pos + gen.normal(scale=opts.noise, size=pos.shape),
                      cell=cell, pbc=True)  # fmt: skip
        graphs.append(_graph(atoms, i, cfg))
    return _make_batch(graphs, [samples[i].id for i in idx])


def _collate(samples: Sequence[Sample], idx: Sequence[int]) -> Batch:
    return _make_batch([samples[i].graph for i in idx], [samples[i].id for i in idx])


# =============================================================================== loss
def _heads(net: Network) -> list[tuple[str, Any]]:
    """``(column, head)`` pairs of a network (heads typed loosely: each kind adds methods)."""
    return list(net.heads.items())


def _loss_parts(
    head: Any, pred: torch.Tensor, target: torch.Tensor, opts: TrainOptions | None = None
) -> list[torch.Tensor]:
    """Sums whose ratios to :func:`_loss_counts` give ``head.loss`` (exact decomposition)."""
    from rsh import Irreps

    from xtalnet.heads import BandGapHead, residual_loss

    opts = TrainOptions() if opts is None else opts

    valid = ~torch.isnan(target).any(dim=1)
    if isinstance(head, BandGapHead):
        p, t = pred[valid], target[valid].to(pred.dtype)
        bce = nn.functional.binary_cross_entropy_with_logits(p[:, 0], t[:, 0], reduction="sum")
        gap = t[:, 0] > 0.5
        dz = (p[gap, 1] - t[gap, 1])[:, None]
        reg = residual_loss(dz, Irreps("0e"), opts.loss, opts.huber_delta)[0]
        return [bce + pred.sum() * 0.0, reg + pred.sum() * 0.0]
    n = int(valid.sum())
    if n == 0:
        return [pred.sum() * 0.0]
    return [head.loss(pred, target, kind=opts.loss, delta=opts.huber_delta) * n]


def _loss_counts(head: Any, target: torch.Tensor) -> list[int]:
    from xtalnet.heads import BandGapHead

    valid = ~torch.isnan(target).any(dim=1)
    if isinstance(head, BandGapHead):
        return [int(valid.sum()), int((target[valid][:, 0] > 0.5).sum())]
    return [int(valid.sum())]


def batch_loss(
    net: Network,
    out: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    counts: Mapping[str, Sequence[int]],
    opts: TrainOptions | None = None,
) -> torch.Tensor:
    """Sum over targets and loss parts of (part sum on these rows) / (global count)."""
    opts = TrainOptions() if opts is None else opts
    total: torch.Tensor | None = None
    for c, head in _heads(net):
        for s, n in zip(_loss_parts(head, out[c], targets[c], opts), counts[c]):
            term = s / n if n else s * 0.0
            total = term if total is None else total + term
    assert total is not None
    return total


# =============================================================================== schedule, EMA
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


# =============================================================================== distributed
@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    initialised: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def max(self, *values: float) -> list[float]:
        """Element-wise maximum over the ranks (every rank takes the same decisions)."""
        if self.world == 1:
            return [float(v) for v in values]
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return t.tolist()

    def gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out


def _setup_dist(device: str | None) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device in (None, "auto"):
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(device)
    if world <= 1:
        return _Dist(0, 1, dev)
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if dev.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    initialised = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        initialised = True
    return _Dist(rank, world, dev, initialised)


# =============================================================================== helpers
def _check_out(out: Path, resume: bool, overwrite: bool) -> None:
    held = [f for f in RUN_FILES if (out / f).exists()] if out.is_dir() else []
    if resume:
        if not (out / "last.pt").is_file():
            raise ValueError(f"--resume {str(out)!r}: no last.pt there to resume from")
        return
    if held and not overwrite:
        raise ValueError(
            f"--out {str(out)!r} already holds a run ({', '.join(held[:5])}); pass --resume to "
            "continue it or --overwrite to replace it"
        )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", encoding="utf-8")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


def _recommend(prep: Prepared, log: Callable[[str], None]) -> dict[str, Any]:
    """``mp_audit`` recommendation (r_cut, layers, band gap) on the training structures."""
    import mp_audit

    entries = [
        mp_audit.Entry(i, s, {k: v for k, v in vals.items() if not _is_missing(v)})
        for i, s, vals in zip(prep.ids, prep.structures, prep.values)
    ]
    res = mp_audit.audit(mp_audit.from_entries("train split", entries), progress=False)
    rec = dict(res.recommendation)
    log(
        f"mp-audit recommendation on {len(entries)} training structures: r_cut={rec.get('r_cut')} "
        f"Å, layers={rec.get('layers')} (coverage {rec.get('coverage')})"
    )
    return rec


def _resolve_config(
    base: Mapping[str, Any],
    targets: Sequence[str],
    rec: Mapping[str, Any] | None,
    log: Callable[[str], None],
) -> NetworkConfig:
    """NetworkConfig from given fields, filling r_cut / num_layers / band_gap_prior from
    the recommendation where not given."""
    fields = dict(base)
    fields["targets"] = tuple(targets)
    if rec is not None:
        kw: dict[str, Any] = {}
        if "r_cut" not in fields and rec.get("r_cut") is not None:
            kw["r_cut"] = float(rec["r_cut"])
        if "num_layers" not in fields and rec.get("layers") is not None:
            kw["num_layers"] = int(rec["layers"])
        bg = rec.get("band_gap") or {}
        if "band_gap_prior" not in fields and all(
            bg.get(k) is not None for k in ("p", "mu", "sigma")
        ):
            kw["band_gap_prior"] = (float(bg["p"]), float(bg["mu"]), float(bg["sigma"]))
        if rec.get("r_cut") is None and "r_cut" not in fields:
            log("the recommendation reached no coverage target: default r_cut and layers kept")
        fields.update(kw)
    return NetworkConfig.from_dict(fields)


def _encode(net: Network, samples: Sequence[Sample], what: str) -> dict[str, torch.Tensor]:
    """Encoded targets of every sample, per column; a tensor that breaks its symmetry is
    reported by its material id."""
    out = {}
    for c, head in _heads(net):
        vals = [s.values.get(c) for s in samples]
        with _naming_bad_values(head, samples, vals, what):
            out[c] = head.encode(vals)
    return out


@contextlib.contextmanager
def _naming_bad_values(head: Any, samples: Sequence[Sample], vals: Sequence[Any], what: str):
    """Re-raise a head's ValueError about some values with the material ids of those values
    (each present value is fitted alone by a fresh head of the same target to find them)."""
    from xtalnet.heads import make_head

    try:
        yield
    except ValueError as exc:
        bad = []
        extra = [1.0] if head.spec.kind == "band_gap" else []  # a lone metal fits no gap
        for s, v in zip(samples, vals):
            if _is_missing(v):
                continue
            try:
                make_head(head.spec, dtype=torch.float64).fit([v, *extra])
            except (ValueError, TypeError):
                bad.append(s.id)
        if not bad:
            raise
        raise ValueError(
            f"{what}: target {head.spec.column!r}: {len(bad)} invalid value(s), ids {bad[:10]}"
            f"{' ...' if len(bad) > 10 else ''}: {exc}"
        ) from exc


def _lr_of(opt: torch.optim.Optimizer) -> float:
    return float(opt.param_groups[0]["lr"])


@dataclass
class _State:
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


def _model_of(module: nn.Module) -> Network:
    return module.module if hasattr(module, "module") else module  # type: ignore[return-value]


# =============================================================================== evaluation
@torch.no_grad()
def _predict_samples(
    net: Network, samples: Sequence[Sample], dist: _Dist, batch_size: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Standardised outputs [n, dim] and decoded predictions of ``samples`` (all ranks get
    all of them)."""
    net.eval()
    n = len(samples)
    lo, hi = n * dist.rank // dist.world, n * (dist.rank + 1) // dist.world
    edges = [s.num_edges for s in samples]
    raw: dict[str, list[np.ndarray]] = {}
    for idx in pack(range(lo, hi), edges, batch_size, net.config.max_edges):
        out = net(_collate(samples, idx).to(dist.device))
        for c, v in out.items():
            raw.setdefault(c, []).append(v.detach().cpu().double().numpy())
    mine = {c: np.concatenate(v, 0) for c, v in raw.items()}
    parts = dist.gather(mine)
    std = {}
    for c in net.heads:
        chunks = [p[c] for p in parts if c in p]
        std[c] = np.concatenate(chunks, 0)
    dec: dict[str, np.ndarray] = {}
    for c, head in _heads(net):
        t = torch.as_tensor(std[c], dtype=net.config.torch_dtype)
        dec[c] = np.asarray(head.decode(t))
        for k, v in head.decode_extra(t).items():
            dec[f"{c}.{k}"] = np.asarray(v)
    net.train()
    return std, dec


def _val_loss(
    net: Network,
    std: Mapping[str, np.ndarray],
    enc: Mapping[str, torch.Tensor],
    opts: TrainOptions,
) -> float:
    total = 0.0
    for c, head in _heads(net):
        pred = torch.as_tensor(std[c], dtype=torch.float64)
        tgt = enc[c].to(torch.float64)
        if bool((~torch.isnan(tgt).any(dim=1)).any()):
            total += float(head.loss(pred, tgt, kind=opts.loss, delta=opts.huber_delta))
    return total


def _true_values(head: Any, vals: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Physical targets as an array and the mask of present rows (tensors via the head)."""
    from xtalnet.heads import TensorHead

    present = np.array([not _is_missing(v) for v in vals], dtype=bool)
    if isinstance(head, TensorHead):
        enc = head.encode(vals)
        true = head.decode(torch.nan_to_num(enc))
        return true, present & ~torch.isnan(enc).any(dim=1).numpy()
    arr = np.array([np.nan if _is_missing(v) else float(v) for v in vals])
    return arr, present


def metrics_of(
    net: Network, dec: Mapping[str, np.ndarray], samples: Sequence[Sample]
) -> dict[str, dict[str, float]]:
    """Per-target metrics (physical units) of decoded predictions against sample values."""
    out = {}
    for c, head in _heads(net):
        true, ok = _true_values(head, [s.values.get(c) for s in samples])
        if not ok.any():
            continue
        extra = {k.split(".", 1)[1]: v[ok] for k, v in dec.items() if k.startswith(c + ".")}
        out[c] = target_metrics(head.spec.kind, c, dec[c][ok], true[ok], extra)
    return out


def baseline_metrics(
    net: Network, train: Sequence[Sample], samples: Sequence[Sample]
) -> dict[str, dict[str, float]]:
    """Metrics of the mean predictor: the train mean (physical units) for every structure
    (band gap: the mean gap, with the train fraction of gaps as the probability)."""
    out = {}
    for c, head in _heads(net):
        tr, tr_ok = _true_values(head, [s.values.get(c) for s in train])
        true, ok = _true_values(head, [s.values.get(c) for s in samples])
        if not ok.any() or not tr_ok.any():
            continue
        mean = tr[tr_ok].mean(axis=0)
        pred = np.broadcast_to(mean, true[ok].shape).copy()
        extra = {}
        if head.spec.kind == "band_gap":
            extra["p_metal"] = np.full(int(ok.sum()), float((tr[tr_ok] == 0).mean()))
        out[c] = target_metrics(head.spec.kind, c, pred, true[ok], extra)
    return out


# =============================================================================== files
def _write_metrics(out: Path, history: Sequence[Mapping[str, Any]]) -> None:
    keys: list[str] = []
    for row in history:
        for k in row:
            if k not in keys:
                keys.append(k)
    tmp = out / ".metrics.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for row in history:
            w.writerow(row)
    os.replace(tmp, out / "metrics.csv")
    tmp = out / ".metrics.jsonl.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    os.replace(tmp, out / "metrics.jsonl")


def _matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def learning_curve(history: Sequence[Mapping[str, Any]], path: Path) -> bool:
    """Train and validation loss per epoch (log scale) to ``path``; False without matplotlib."""
    plt = _matplotlib()
    if plt is None or not history:
        return False
    ep = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ep, [r["train_loss"] for r in history], label="train (model)")
    ax.plot(ep, [r["val_loss"] for r in history], label="validation (EMA)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (standardised units)")
    if all(r["train_loss"] > 0 for r in history) and all(r["val_loss"] > 0 for r in history):
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def parity_plot(true: np.ndarray, pred: np.ndarray, title: str, unit: str, path: Path) -> bool:
    """Predicted against true values (every entry of tensors) with the y = x line."""
    plt = _matplotlib()
    if plt is None:
        return False
    t, p = np.asarray(true).ravel(), np.asarray(pred).ravel()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(t, p, s=8, alpha=0.6)
    lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel(f"true {unit}")
    ax.set_ylabel(f"predicted {unit}")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


UNITS = {
    "formation_energy_per_atom": "(eV/atom)",
    "band_gap": "(eV)",
    "elastic_tensor": "(GPa)",
    "K_VRH": "(GPa)",
    "G_VRH": "(GPa)",
    "K_wien2k": "(GPa)",
    "piezoelectric_tensor": "(C/m²)",
}


def _cell(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return json.dumps(np.round(v, 6).tolist()) if v.ndim else float(v)
    if isinstance(v, (list, tuple)):
        return json.dumps(v)
    return v


def write_predictions(
    path: Path, net: Network, dec: Mapping[str, np.ndarray], samples: Sequence[Sample]
) -> None:
    """``predictions.csv``: id, then per target true and predicted values (tensors as JSON),
    the heads' extra outputs and, for elastic tensors, K_VRH / G_VRH of the prediction."""
    from xtalnet._metrics import vrh_moduli

    rows = []
    derived = {}
    for c in net.heads:
        if c.startswith("elastic") and dec[c].shape[1:] == (6, 6):
            derived[c] = vrh_moduli(dec[c])
    for n, s in enumerate(samples):
        row: dict[str, Any] = {"id": s.id}
        for c in net.heads:
            v = s.values.get(c)
            row[f"{c}_true"] = (
                "" if _is_missing(v) else _cell(np.asarray(v) if isinstance(v, list) else v)
            )
            row[f"{c}_pred"] = _cell(dec[c][n])
            for k, arr in dec.items():
                if k.startswith(c + "."):
                    row[f"{k}_pred"] = float(arr[n])
            if c in derived:
                row["K_VRH_from_tensor_pred"] = float(derived[c][0][n])
                row["G_VRH_from_tensor_pred"] = float(derived[c][1][n])
        rows.append(row)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


# =============================================================================== train
def train(
    data: Any,
    targets: Sequence[str],
    out: str | os.PathLike[str],
    *,
    val: Any = None,
    test: Any = None,
    config: NetworkConfig | Mapping[str, Any] | None = None,
    options: TrainOptions | Mapping[str, Any] | None = None,
    recommendation: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    device: str | None = None,
    progress: bool = True,
    quiet: bool = False,
    callback: Callable[[dict[str, Any]], None] | None = None,
    argv: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Train a network on ``data`` for ``targets``, writing a run folder ``out``.

    Parameters
    ----------
    data : str, path or mp_audit.Dataset
        Anything :func:`mp_audit.load` reads (MP-20 CSV, matminer CSV/JSON, CIF folder,
        ``"mp"``, ``"builtin:dcdft"``, ...).
    targets : sequence of str
        ``COLUMN[:KIND]`` (see :mod:`xtalnet.heads`); several targets share one trunk.
    out : path
        Run folder (created). One that holds another run is refused unless ``resume`` or
        ``overwrite``.
    val, test : sources, optional
        Validation / test data; without them a seeded split of ``data`` by
        ``options.split`` (default 80/10/10) provides them.
    config : NetworkConfig or dict of its fields, optional
        Network fields; r_cut and num_layers that are not given come from
        :func:`mp_audit.audit` on the training structures (or from ``recommendation``).
        A full :class:`NetworkConfig` counts as giving every field.
    options : TrainOptions or dict, optional
    recommendation : path or dict, optional
        A saved ``mp-audit recommend`` JSON used instead of auditing the training split.
    resume : bool
        Continue the run in ``out`` from ``last.pt`` exactly where it stopped (an interrupted
        run resumed equals an uninterrupted one). Given ``config`` / ``options`` fields must
        agree with the saved ones (``ValueError`` naming the fields that differ), except
        ``time_limit`` and ``max_steps``.
    device : "cpu", "cuda", "auto" or None
    progress : bool
        tqdm bar per epoch (rank 0).
    callback : callable, optional
        Called with a small status dict after every optimisation step (may raise
        ``KeyboardInterrupt`` to stop the run like Ctrl-C: ``last.pt`` is saved first).

    Returns
    -------
    dict
        ``{"out", "epochs", "steps", "best_epoch", "best_val_loss", "stop_reason",
        "test": metrics, "baseline": metrics}`` (test metrics of best.pt's EMA weights).

    Notes
    -----
    Ctrl-C (SIGINT) finishes the current step, saves ``last.pt`` and raises
    ``KeyboardInterrupt``; a second Ctrl-C interrupts at once.
    """
    dist = _setup_dist(device)
    outp = Path(out)
    try:
        _check_out(outp, resume, overwrite)
        if dist.main:
            outp.mkdir(parents=True, exist_ok=True)
            if overwrite and not resume:
                for f in RUN_FILES:
                    (outp / f).unlink(missing_ok=True)
        dist.barrier()
        log = _Log(outp, dist.main, quiet)
        return _train(
            dist, log, data, targets, outp, val, test, config, options, recommendation, resume,
            progress and dist.main and not quiet, callback, argv,
        )  # fmt: skip
    finally:
        if dist.initialised and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _given_fields(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, NetworkConfig):
        d = config.to_dict()
        d.pop("schema", None)
        return d
    if isinstance(config, Mapping):
        d = dict(config)
        d.pop("schema", None)
        return d
    raise TypeError(
        f"config must be a NetworkConfig or a dict of its fields, got {type(config).__name__}"
    )


def _train(
    dist: _Dist,
    log: _Log,
    data: Any,
    targets: Sequence[str],
    out: Path,
    val: Any,
    test: Any,
    config: Any,
    options: Any,
    recommendation: Any,
    resume: bool,
    progress: bool,
    callback: Callable[[dict[str, Any]], None] | None,
    argv: Sequence[str] | None,
) -> dict[str, Any]:
    from xtalnet.heads import TargetSpec

    given = _given_fields(config)
    opts_given = options.to_dict() if isinstance(options, TrainOptions) else dict(options or {})
    ckpt = None
    if resume:
        ckpt = _checkpoint.read(out / "last.pt")
        saved_cfg = dict(ckpt["config"])
        saved_cfg.pop("schema", None)
        if targets and list(targets) != list(saved_cfg["targets"]):
            given["targets"] = list(targets)
        diff = _checkpoint.config_diff({k: saved_cfg[k] for k in given if k in saved_cfg}, given)
        volatile = {"time_limit", "max_steps"}
        saved_opts = dict(ckpt["options"])
        defaults = TrainOptions().to_dict()  # fields newer than the checkpoint: defaults
        diff += _checkpoint.config_diff(
            {k: saved_opts.get(k, defaults.get(k)) for k in opts_given if k not in volatile},
            {k: v for k, v in opts_given.items() if k not in volatile},
        )
        if diff:
            raise ValueError(
                f"--resume {str(out)!r}: the checkpoint was trained with another config; "
                f"fields that differ: {'; '.join(diff)}"
            )
        targets = list(saved_cfg["targets"])
        saved_opts.update({k: v for k, v in opts_given.items() if k in volatile})
        opts = TrainOptions.from_dict(saved_opts)
        log(f"resuming {out} at epoch {ckpt['state']['epoch']} step {ckpt['state']['global_step']}")
    else:
        opts = options if isinstance(options, TrainOptions) else TrainOptions.from_dict(opts_given)
    if not targets:
        raise ValueError("targets: give at least one target column (e.g. --target band_gap)")
    specs = [TargetSpec.parse(t) for t in targets]  # ValueError naming the bad target
    columns = [s.column for s in specs]

    # ---------------------------------------------------------------- data and split
    t0 = time.time()
    main_prep = load_source(data, columns, strict=opts.strict, log=log)
    if val is None and test is None:
        tr_i, va_i, te_i = split_indices(len(main_prep.ids), opts.split, opts.seed)
        train_p, val_p, test_p = (_subset(main_prep, i) for i in (tr_i, va_i, te_i))
    else:
        f = list(opts.split)
        if val is None:
            f = [f[0], f[1], 0.0]
        elif test is None:
            f = [f[0], 0.0, f[2]]
        else:
            f = [1.0, 0.0, 0.0]
        total = sum(f)
        tr_i, va_i, te_i = split_indices(len(main_prep.ids), [x / total for x in f], opts.seed)
        train_p = _subset(main_prep, tr_i)
        val_p = (
            load_source(val, columns, strict=opts.strict, log=log)
            if val is not None
            else _subset(main_prep, va_i)
        )
        test_p = (
            load_source(test, columns, strict=opts.strict, log=log)
            if test is not None
            else _subset(main_prep, te_i)
        )
    if len(val_p.ids) == 0:
        raise ValueError("the validation split is empty: give --val or a larger split fraction")
    log(f"data: {len(train_p.ids)} train, {len(val_p.ids)} val, {len(test_p.ids)} test "
        f"structures ({time.time() - t0:.1f} s to read)")  # fmt: skip

    # ---------------------------------------------------------------- config
    if ckpt is not None:
        cfg = _checkpoint.config_of(ckpt)
        rec = (
            json.loads((out / "recommendation.json").read_text())
            if (out / "recommendation.json").is_file()
            else None
        )
    else:
        rec = None
        if recommendation is not None:
            rec = (
                dict(recommendation)
                if isinstance(recommendation, Mapping)
                else json.loads(Path(recommendation).read_text(encoding="utf-8"))
            )
            if rec.get("schema") != "mp-audit/recommendation/1":
                raise ValueError(
                    f"recommendation {recommendation!r}: not an mp-audit recommendation JSON "
                    f"(schema {rec.get('schema')!r}, expected 'mp-audit/recommendation/1')"
                )
            log(
                f"recommendation from {recommendation}: r_cut={rec.get('r_cut')} Å, "
                f"layers={rec.get('layers')}"
            )
        elif not ("r_cut" in given and "num_layers" in given):
            rec = _recommend(train_p, log) if dist.main else None
            rec = dist.gather(rec)[0] if dist.world > 1 else rec
        cfg = _resolve_config(given, [str(s) for s in specs], rec, log)
    log(f"network: r_cut={cfg.r_cut} Å, {cfg.num_layers} layers, hidden {cfg.hidden_irreps}, "
        f"{cfg.dtype}, targets {list(cfg.targets)}")  # fmt: skip

    train_s, _ = build_samples(train_p, cfg, strict=opts.strict, log=log, what="train")
    val_s, _ = build_samples(val_p, cfg, strict=opts.strict, log=log, what="val")
    test_s = (
        build_samples(test_p, cfg, strict=opts.strict, log=log, what="test")[0]
        if test_p.ids
        else []
    )

    # ---------------------------------------------------------------- model
    net = Network(cfg)
    for c, head in _heads(net):
        vals = [s.values.get(c) for s in train_s]
        with _naming_bad_values(head, train_s, vals, "train"):
            head.fit(vals)
        log(f"target {c!r}: standardisation fitted on {head.n_fit} train values "
            f"({head.n_skipped} missing)")  # fmt: skip
    net.to(dist.device)
    enc_train = _encode(net, train_s, "train")
    enc_val = _encode(net, val_s, "val")
    model: nn.Module = net
    if dist.world > 1:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in net.parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": opts.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=opts.lr,
    )
    edges = [s.num_edges for s in train_s]
    steps_per_epoch = len(epoch_batches(len(train_s), edges, opts, cfg.max_edges, 0, dist.world))
    schedule = Schedule(optimizer, opts, opts.epochs * steps_per_epoch)
    ema = EMA(net, opts.ema_decay)
    state = _State(planned_epochs=opts.epochs)
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        ema.load_state_dict(ckpt["ema"])
        state = _State(**ckpt["state"])
        _checkpoint.set_rng_state(ckpt["rng"])
        if state.done:
            log(f"the run in {out} has finished ({state.stop_reason}); nothing to resume")
    elif dist.main:
        _write_json(out / "run.json", {
            "kind": "xtalnet-train",
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "argv": list(argv) if argv is not None else None, "data": str(data),
            "val": None if val is None else str(val), "test": None if test is None else str(test),
            "world_size": dist.world, "versions": _checkpoint.versions(),
        })  # fmt: skip
        cfg.to_json(out / "config.json")
        _write_json(out / "options.json", opts.to_dict())
        if rec is not None:
            _write_json(out / "recommendation.json", rec)
        _write_json(out / "split.json", {
            "train": [s.id for s in train_s], "val": [s.id for s in val_s],
            "test": [s.id for s in test_s],
        })  # fmt: skip
    log(f"{sum(p.numel() for p in net.parameters()):,} parameters; {steps_per_epoch} steps per "
        f"epoch of at most {opts.batch_size} structures / {cfg.max_edges * dist.world:,} edges; "
        f"world size {dist.world}")  # fmt: skip

    def payload() -> dict[str, Any]:
        return {
            "format": _checkpoint.FORMAT,
            "config": cfg.to_dict(),
            "options": opts.to_dict(),
            "model": net.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "rng": _checkpoint.rng_state(),
            "state": state.to_dict(),
            "standardisation": {
                c: {k: v for k, v in h.state_dict().items()} for c, h in net.heads.items()
            },
            "versions": _checkpoint.versions(),
            "world_size": dist.world,
        }

    def save(name: str) -> None:
        if dist.main:
            _checkpoint.save(payload(), out / name)

    # ---------------------------------------------------------------- SIGINT: finish the step
    stop_flag = {"sigint": False, "hard": False}
    previous_handler = None
    import threading

    if threading.current_thread() is threading.main_thread():

        def on_sigint(signum: int, frame: Any) -> None:
            if stop_flag["sigint"]:  # second Ctrl-C: stop now, possibly mid-step: no save
                stop_flag["hard"] = True
                raise KeyboardInterrupt
            stop_flag["sigint"] = True

        previous_handler = signal.signal(signal.SIGINT, on_sigint)

    segment_start = time.time()
    elapsed0 = state.elapsed
    try:
        while not state.done:
            if state.epoch >= opts.epochs:
                state.done, state.stop_reason = True, f"reached {opts.epochs} epochs"
                break
            _run_epoch(
                dist, log, model, net, optimizer, schedule, ema, opts, train_s, edges,
                enc_train, state, progress, callback, stop_flag,
                lambda: elapsed0 + time.time() - segment_start, cfg,
            )  # fmt: skip
            # ------------------------------------------------ epoch end: validate, save
            state.elapsed = dist.max(elapsed0 + time.time() - segment_start)[0]
            with ema.applied(net):
                std, dec = _predict_samples(net, val_s, dist, opts.batch_size)
                val_loss = _val_loss(net, std, enc_val, opts)
            vm = metrics_of(net, dec, val_s)
            schedule.epoch_end(val_loss)
            state.epoch += 1
            row: dict[str, Any] = {
                "epoch": state.epoch,
                "step": state.global_step,
                "lr": _lr_of(optimizer),
                "train_loss": state.train_loss_sum / max(1, state.train_loss_n),
                "val_loss": val_loss,
            }
            for c, m in vm.items():
                row[f"val_{c}_mae"] = m["mae"]
            row["time_s"] = round(state.elapsed, 2)
            state.train_loss_sum, state.train_loss_n, state.step_in_epoch = 0.0, 0, 0
            improved = val_loss < state.best_val
            if improved:
                state.best_val, state.best_epoch, state.bad_epochs = val_loss, state.epoch, 0
            else:
                state.bad_epochs += 1
            row["best"] = improved
            state.history.append(row)
            if state.epoch in (1, 2) and opts.time_limit is not None and opts.schedule == "cosine":
                # plan after epoch 1, again after epoch 2 (the first one carries warm-up costs)
                prev = state.history[-2]["time_s"] if state.epoch == 2 else 0.0
                per_epoch = max(state.elapsed - prev, 1e-9)
                left = int((opts.time_limit * 60 * 0.97 - state.elapsed) / per_epoch)
                fit = max(state.epoch, state.epoch + left)
                state.planned_epochs = min(opts.epochs, fit)
                schedule.total_steps = max(1, state.planned_epochs * steps_per_epoch)
                log(f"time limit {opts.time_limit} min: cosine schedule planned over "
                    f"{state.planned_epochs} epochs ({per_epoch:.1f} s per epoch)")  # fmt: skip
            if state.bad_epochs >= opts.patience:
                state.done, state.stop_reason = True, f"early stopping at epoch {state.epoch}"
            elif opts.time_limit is not None and state.elapsed >= opts.time_limit * 60 * 0.98:
                state.done, state.stop_reason = True, f"time limit {opts.time_limit} min"
            elif (
                opts.time_limit is not None
                and state.elapsed * (state.epoch + 1) / state.epoch > opts.time_limit * 60
            ):
                state.done, state.stop_reason = (
                    True,
                    f"time limit {opts.time_limit} min (no room for another epoch)",
                )
            elif opts.max_steps is not None and state.global_step >= opts.max_steps:
                state.done, state.stop_reason = True, f"reached max_steps={opts.max_steps}"
            elif state.epoch >= opts.epochs:
                state.done, state.stop_reason = True, f"reached {opts.epochs} epochs"
            save("last.pt")
            if improved:
                save("best.pt")
            if dist.main:
                _write_metrics(out, state.history)
            maes = " ".join(f"{c} {m['mae']:.4g}" for c, m in vm.items())
            log(f"epoch {state.epoch}: train {row['train_loss']:.4f}  val {val_loss:.4f} "
                f"(EMA; MAE {maes})  lr {row['lr']:.2e}  {row['time_s']:.0f} s"
                + ("  *" if improved else ""))  # fmt: skip
            if dist.max(float(stop_flag["sigint"]))[0]:
                stop_flag["sigint"] = True
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        if stop_flag.get("hard"):
            log(f"interrupted twice: {out / 'last.pt'} keeps the last completed epoch")
            raise
        state.elapsed = elapsed0 + time.time() - segment_start
        save("last.pt")
        if dist.main:
            if state.history:
                _write_metrics(out, state.history)
        log(f"interrupted at epoch {state.epoch} step {state.global_step}: saved "
            f"{out / 'last.pt'}; "
            f"continue with --resume {out}")  # fmt: skip
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGINT, previous_handler)
    dist.barrier()
    log(
        f"stopped: {state.stop_reason}; best epoch {state.best_epoch} "
        f"(val loss {state.best_val:.4f})"
    )

    # ---------------------------------------------------------------- the end: figures, test
    result: dict[str, Any] = {
        "out": str(out), "epochs": state.epoch, "steps": state.global_step,
        "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
        "stop_reason": state.stop_reason, "minutes": state.elapsed / 60,
    }  # fmt: skip
    if dist.main and learning_curve(state.history, out / "learning_curve.png"):
        log(f"learning curve: {out / 'learning_curve.png'}")
    if test_s:
        best = _checkpoint.read(out / "best.pt") if dist.main or dist.world > 1 else None
        assert best is not None
        net.load_state_dict(best["model"])
        ema.load_state_dict(best["ema"])
        with ema.applied(net):
            _, dec = _predict_samples(net, test_s, dist, opts.batch_size)
        tm = metrics_of(net, dec, test_s)
        bm = baseline_metrics(net, train_s, test_s)
        result["test"], result["baseline"] = tm, bm
        if dist.main:
            _write_json(out / "test_metrics.json", {
                "checkpoint": "best.pt (EMA weights)", "n_test": len(test_s), "test": tm,
                "baseline_mean_predictor": bm, "epochs": state.epoch,
                "minutes": round(state.elapsed / 60, 2), "stop_reason": state.stop_reason,
            })  # fmt: skip
            write_predictions(out / "test_predictions.csv", net, dec, test_s)
            for c, m in tm.items():
                unit = UNITS.get(c, "")
                b = bm.get(c, {})
                log(f"test {c}: MAE {m['mae']:.4g} {unit} "
                    f"(mean predictor {b.get('mae', math.nan):.4g}), "
                    f"RMSE {m['rmse']:.4g}, R² {m['r2']:.3f}, n={m['n']}")  # fmt: skip
    return result


def _run_epoch(
    dist: _Dist,
    log: _Log,
    model: nn.Module,
    net: Network,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    ema: EMA,
    opts: TrainOptions,
    train_s: Sequence[Sample],
    edges: Sequence[int],
    enc: Mapping[str, torch.Tensor],
    state: _State,
    progress: bool,
    callback: Callable[[dict[str, Any]], None] | None,
    stop_flag: dict[str, bool],
    elapsed: Callable[[], float],
    cfg: NetworkConfig,
) -> None:
    batches = epoch_batches(len(train_s), edges, opts, cfg.max_edges, state.epoch, dist.world)
    bar = None
    if progress:
        try:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(batches), initial=state.step_in_epoch, leave=False,
                       desc=f"epoch {state.epoch + 1}", file=sys.stderr)  # fmt: skip
        except ImportError:  # tqdm is a dependency, but never fail a run over a bar
            bar = None
    model.train()
    try:
        for k in range(state.step_in_epoch, len(batches)):
            gb = batches[k]
            mine = shard(gb, edges, dist.world)[dist.rank]
            counts = {c: _loss_counts(net.heads[c], enc[c][gb]) for c in net.heads}
            if opts.noise > 0:
                batch = _noisy_batch(train_s, mine, opts, cfg, state.global_step)
            else:
                batch = _collate(train_s, mine)
            batch = batch.to(dist.device)
            tgt = {c: enc[c][mine].to(dist.device) for c in net.heads}
            out = model(batch)
            loss = batch_loss(net, out, tgt, counts, opts) * dist.world  # DDP averages over ranks
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if math.isfinite(opts.clip):
                torch.nn.utils.clip_grad_norm_(net.parameters(), opts.clip)
            optimizer.step()
            schedule.step()
            ema.update(net)
            value = float(loss.detach()) / dist.world
            if dist.world > 1:
                t = torch.tensor([value], dtype=torch.float64, device=dist.device)
                torch.distributed.all_reduce(t)
                value = float(t)
            if not math.isfinite(value):
                raise FloatingPointError(
                    f"the training loss became {value} at step {state.global_step + 1}; lower "
                    "--lr or use float64"
                )
            state.train_loss_sum += value
            state.train_loss_n += 1
            state.step_in_epoch = k + 1
            state.global_step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{_lr_of(optimizer):.1e}")
            if callback is not None:
                callback({"epoch": state.epoch, "step": state.global_step, "loss": value})
            # one decision for every rank: Ctrl-C on any rank, rank clocks differ
            over = opts.time_limit is not None and elapsed() >= opts.time_limit * 60
            sigint, over_any = dist.max(float(stop_flag["sigint"]), float(over))
            if sigint:
                stop_flag["sigint"] = True
                raise KeyboardInterrupt
            if opts.max_steps is not None and state.global_step >= opts.max_steps:
                break
            if over_any:
                break
    finally:
        if bar is not None:
            bar.close()


# =============================================================================== load, evaluate
def load(
    checkpoint: str | os.PathLike[str], *, weights: str = "ema", device: str = "cpu"
) -> Network:
    """The network saved in an ``xtalnet train`` checkpoint, ready to predict.

    Parameters
    ----------
    checkpoint : path
        ``best.pt`` / ``last.pt``, or a run folder (``best.pt`` is used).
    weights : {"ema", "model"}
        The exponential moving average of the weights (default; what was validated) or the
        raw weights.
    device : str

    Returns
    -------
    Network
        In eval mode; ``net.predict(structures)`` gives physical units.

    Examples
    --------
    >>> net = xtalnet.load("runs/mp20/best.pt")  # doctest: +SKIP
    >>> net.predict([structure])["formation_energy_per_atom"]  # doctest: +SKIP
    """
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    ckpt = _checkpoint.read(checkpoint)
    cfg = _checkpoint.config_of(ckpt)
    net = Network(cfg)
    try:
        net.load_state_dict(ckpt["model"])
        if weights == "ema" and "ema" in ckpt:
            net.load_state_dict(ckpt["ema"]["shadow"], strict=False)
    except RuntimeError as exc:
        raise ValueError(
            f"checkpoint {ckpt['path']!r}: its weights do not fit the network of its own config "
            f"(written by another xtalnet version?): {str(exc)[:300]}"
        ) from exc
    net.to(device)
    net.eval()
    net.checkpoint_path = ckpt["path"]
    return net


def evaluate(
    checkpoint: str | os.PathLike[str],
    data: Any,
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    strict: bool = False,
    weights: str = "ema",
    quiet: bool = False,
) -> dict[str, Any]:
    """Metrics of a checkpoint on ``data``: ``metrics.json``, ``predictions.csv`` and
    ``parity_<target>.png`` in ``out``.

    Per target: MAE, RMSE, R² (physical units); band gap adds the metal / non-metal
    accuracy and ROC-AUC; tensors add the MAE over their stored entries (36 Voigt entries of
    the elastic tensor), the mean Frobenius relative error and, for elastic tensors, the
    MAE of K_VRH and G_VRH derived with pymatgen ``ElasticTensor``.
    """
    outp = Path(out)
    outp.mkdir(parents=True, exist_ok=True)
    log = _Log(None, True, quiet)
    net = load(checkpoint, weights=weights)
    cfg = net.config
    prep = load_source(data, list(cfg.columns), strict=strict, log=log)
    samples, skipped = build_samples(prep, cfg, strict=strict, log=log, what="data")
    _, dec = _predict_samples(net, samples, _Dist(), batch_size)
    net.eval()
    metrics = metrics_of(net, dec, samples)
    write_predictions(outp / "predictions.csv", net, dec, samples)
    for c, head in _heads(net):
        true, ok = _true_values(head, [s.values.get(c) for s in samples])
        if ok.any():
            parity_plot(true[ok], dec[c][ok], f"{c} (n={int(ok.sum())})", UNITS.get(c, ""),
                        outp / f"parity_{c}.png")  # fmt: skip
    result = {
        "checkpoint": str(checkpoint), "data": str(data), "n": len(samples),
        "skipped": {**skipped, "parse_failures": prep.report.get("parse_failures", 0)},
        "missing": prep.report.get("missing", {}), "metrics": metrics,
    }  # fmt: skip
    _write_json(outp / "metrics.json", result)
    for c, m in metrics.items():
        extras = ", ".join(
            f"{k} {v:.4g}" for k, v in m.items() if k not in ("mae", "rmse", "r2", "n")
        )
        log(f"{c}: MAE {m['mae']:.4g} {UNITS.get(c, '')}, RMSE {m['rmse']:.4g}, R² {m['r2']:.3f}, "
            f"n={m['n']}" + (f", {extras}" if extras else ""))  # fmt: skip
    return result


def predict_table(
    net: Network, structures: Sequence[Any], names: Sequence[str]
) -> list[dict[str, Any]]:
    """One dict per structure: name, formula and every prediction in physical units
    (tensors as nested lists; elastic tensors add K_VRH / G_VRH in GPa)."""
    from xtalnet._metrics import vrh_moduli

    pred = net.predict(structures)
    rows = []
    for n, (s, name) in enumerate(zip(structures, names)):
        formula = (
            s.composition.reduced_formula if hasattr(s, "composition") else s.get_chemical_formula()
        )
        row: dict[str, Any] = {"name": name, "formula": formula}
        for k, v in pred.items():
            x = v[n]
            row[k] = x.tolist() if isinstance(x, np.ndarray) and x.ndim else float(x)
            if k.startswith("elastic") and isinstance(x, np.ndarray) and x.shape == (6, 6):
                kv, gv = vrh_moduli(x[None])
                row[f"{k}.K_VRH"] = float(kv[0])
                row[f"{k}.G_VRH"] = float(gv[0])
        rows.append(row)
    return rows
