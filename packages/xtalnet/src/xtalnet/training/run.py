""":func:`train`: one run from data and targets to a run folder with the test metrics.

Distributed data parallel: run under ``torchrun`` (``WORLD_SIZE`` > 1) and every rank trains
on its edge-balanced share of each global batch; gradients are averaged by
``DistributedDataParallel`` with the loss scaled so that the update equals the one of a single
process on the whole global batch. Rank 0 alone writes files and prints; every rank reads the
same checkpoint on ``--resume``.
"""

from __future__ import annotations

import datetime
import gc
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xtalnet import _checkpoint
from xtalnet._metrics import baseline_metrics, metrics_of
from xtalnet.config import NetworkConfig
from xtalnet.dataset import Sample
from xtalnet.ensemble import ENSEMBLE_FILE
from xtalnet.heads import TargetSpec
from xtalnet.network import Network
from xtalnet.plots import learning_curve
from xtalnet.tables import unit_suffix, write_json, write_predictions
from xtalnet.targets import check_targets, encode_targets, fit_heads
from xtalnet.training.distributed import Dist, setup_dist
from xtalnet.training.ensemble import train_ensemble
from xtalnet.training.finetune import freeze, init_trunk
from xtalnet.training.leakage import check_leakage
from xtalnet.training.loop import State, TrainData, Trainer
from xtalnet.training.options import TrainOptions
from xtalnet.training.run_dir import RunLog, check_out, start_run_folder
from xtalnet.training.setup import (
    Plan,
    Samples,
    check_same_samples,
    given_fields,
    network_config,
    plan_run,
    prepare_samples,
    read_splits,
    source_key,
)

__all__ = ["train"]


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
    ensemble: int | None = None,
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
    ensemble : int, optional
        Train that many members (1..64) in ``out/member-1 … member-K``, each from its own
        seed on the same split, and score their mean and spread
        (:mod:`xtalnet.training.ensemble`); ``resume`` of an ensemble folder continues it.

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
    if ensemble is not None or (resume and (Path(out) / ENSEMBLE_FILE).is_file()):
        return train_ensemble(
            ensemble, data, targets, out, train=train, val=val, test=test,
            config=given_fields(config), options=_options_dict(options),
            recommendation=recommendation, resume=resume, overwrite=overwrite, device=device,
            progress=progress, quiet=quiet, callback=callback, argv=argv,
        )  # fmt: skip
    dist = setup_dist(device)
    outp = Path(out)
    trainer: Trainer | None = None
    try:
        check_out(outp, resume, overwrite)
        log = RunLog(outp, dist.main, quiet)
        sources = {"data": data, "val": val, "test": test}
        plan = plan_run(outp, targets, config, options, resume, log, sources)
        trainer, samples, rec = _build(plan, dist, log, sources, outp, recommendation)
        if dist.main:
            _start(trainer, plan, samples, rec, sources, argv=argv)
        dist.barrier()
        trainer.progress = progress and dist.main and not quiet
        trainer.on_step = callback
        state = trainer.fit()
        return _finish(trainer, state, samples, log)
    finally:
        if trainer is not None:
            trainer.close()
        if dist.initialised and torch.distributed.is_initialized():
            gc.collect()  # a trainer left in a reference cycle would keep the group alive
            torch.distributed.destroy_process_group()


def _start_trunk(net: Network, plan: Plan, log: RunLog) -> list[str]:
    """``--init``: copy the trunk of a trained run (a new run only); ``--freeze-trunk``:
    keep it fixed. Returns the frozen module names."""
    if plan.ckpt is not None or plan.opts.init is None:
        return []
    copied = init_trunk(net, plan.opts.init, log)
    if plan.opts.freeze_trunk:
        freeze(net, copied, log)
        return copied
    return []


def _bootstrap(train: Sequence[Sample], opts: TrainOptions, log: RunLog) -> list[Sample]:
    """A bootstrap resample of the training samples, seeded by ``opts.seed``."""
    draw = np.random.default_rng([opts.seed, 0xB00]).integers(0, len(train), len(train))
    log(f"bootstrap: {len(train)} draws with replacement, {len(set(draw.tolist()))} distinct "
        "training structures")  # fmt: skip
    return [train[i] for i in draw]


def _options_dict(options: Any) -> dict[str, Any]:
    if isinstance(options, TrainOptions):
        return options.to_dict()
    return dict(options or {})


def load_operators(backend: str, log: Callable[[str], None]) -> None:
    """Build (the first run on a machine: about a minute on 2 cores) and load the compiled
    operators a network of ``backend`` uses, before the training clock starts: built inside
    the first epoch, they took a quarter of a 4-minute ensemble member's time limit."""
    if backend not in ("auto", "cpp", "cuda"):
        return
    import periodic_conv
    import rsh
    from periodic_conv._build import extension_ready
    from rsh import extensions

    if not extensions.disabled() and not extension_ready():
        log("compiling the C++ operators (once per machine and version, about a minute; "
            "not counted in the time limit)")  # fmt: skip
    periodic_conv.build_extension()
    rsh.build_extension()


def _build(
    plan: Plan,
    dist: Dist,
    log: RunLog,
    sources: Mapping[str, Any],
    out: Path,
    recommendation: Any,
) -> tuple[Trainer, Samples, dict[str, Any] | None]:
    """Everything a run needs, checked before any file is written: data and splits, every
    split's target values, config, samples, a network with fitted heads and its Trainer
    (resumed where asked)."""
    if not plan.targets:
        raise ValueError("targets: give at least one target column (e.g. --target band_gap)")
    columns = [TargetSpec.parse(t).column for t in plan.targets]  # ValueError naming it
    parts = read_splits(sources["data"], sources["val"], sources["test"], columns, plan.opts, log)
    named = zip(("train", "val", "test"), parts)
    check_targets(plan.targets, {name: (p.ids, p.values) for name, p in named if p.ids})
    cfg, rec = network_config(plan, out, parts[0], recommendation, dist, log)
    layers = f"{cfg.num_layers} layer" + ("s" if cfg.num_layers != 1 else "")
    log(f"network: r_cut={cfg.r_cut} Å, {layers}, hidden {cfg.hidden_irreps}, "
        f"{cfg.dtype}, targets {list(cfg.targets)}")  # fmt: skip
    samples = prepare_samples(parts, cfg, plan.opts, log)
    if plan.ckpt is not None:
        check_same_samples(out, samples)
    else:
        splits = {"train": samples.train, "val": samples.val, "test": samples.test}
        check_leakage(splits, plan.opts.strict, log.warn)
    net = Network(cfg)
    frozen = _start_trunk(net, plan, log)
    fit_heads(net, [s.id for s in samples.train], [s.values for s in samples.train], log)
    net.to(dist.device)
    fitted = _bootstrap(samples.train, plan.opts, log) if plan.opts.bootstrap else samples.train
    train_data = TrainData(
        fitted, samples.val,
        encode_targets(net, [s.id for s in fitted], [s.values for s in fitted], "train"),
        encode_targets(net, [s.id for s in samples.val], [s.values for s in samples.val], "val"),
    )  # fmt: skip
    load_operators(cfg.backend, log)
    trainer = Trainer(net, plan.opts, train_data, dist, out, log)
    trainer.train_species = sorted({int(z) for s in samples.train for z in s.graph.numbers})
    trainer.frozen = frozen
    if plan.ckpt is not None:
        trainer.resume_from(plan.ckpt, plan.length_changed)
        if plan.opts.freeze_trunk:
            trainer.frozen = list(plan.ckpt.get("frozen", []))
            freeze(net, trainer.frozen, log)
    log(f"{sum(p.numel() for p in net.parameters()):,} parameters; {trainer.steps_per_epoch} "
        f"steps per epoch of at most {plan.opts.batch_size} structures / "
        f"{cfg.max_edges * dist.world:,} edges; world size {dist.world}")  # fmt: skip
    return trainer, samples, rec


def _start(
    trainer: Trainer,
    plan: Plan,
    samples: Samples,
    rec: Mapping[str, Any] | None,
    sources: Mapping[str, Any],
    *,
    argv: Sequence[str] | None,
) -> None:
    """The run starts (rank 0): a new run replaces the files of the run the folder held
    (``--overwrite``) and writes its own; stale temporaries of a killed save are removed;
    the log lines kept so far go to ``train.log``."""
    out, log = trainer.out, trainer.log
    # a new run replaces what the folder holds: the run --overwrite named, or the files of a
    # start that failed before its first checkpoint (check_out refused anything else)
    removed = start_run_folder(out, replace=plan.ckpt is None)
    log.start()
    if removed:
        log(f"removed {len(removed)} stale temporary file(s) of an interrupted save: {removed}")
    if plan.ckpt is None:
        _write_run_files(out, plan, trainer.net.config, rec, samples, sources, trainer.dist,
                         argv)  # fmt: skip


def _write_run_files(
    out: Path,
    plan: Plan,
    cfg: NetworkConfig,
    rec: Mapping[str, Any] | None,
    samples: Samples,
    sources: Mapping[str, Any],
    dist: Dist,
    argv: Sequence[str] | None,
) -> None:
    """run.json, config.json, options.json, recommendation.json and split.json."""
    write_json(out / "run.json", {
        "kind": "xtalnet-train",
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "argv": list(argv) if argv is not None else None,
        **{role: None if src is None else str(src) for role, src in sources.items()},
        "sources": {role: source_key(src) for role, src in sources.items()},
        "fingerprint": samples.fingerprint(),
        "world_size": dist.world, "versions": _checkpoint.versions(),
    })  # fmt: skip
    write_json(out / "config.json", {**cfg.to_dict(), "provenance": plan.provenance.get("config")})
    write_json(out / "options.json", {**plan.opts.to_dict(),
                                      "provenance": plan.provenance.get("options")})  # fmt: skip
    if rec is not None:
        write_json(out / "recommendation.json", rec)
    write_json(out / "split.json", {
        "train": [s.id for s in samples.train], "val": [s.id for s in samples.val],
        "test": [s.id for s in samples.test],
    })  # fmt: skip


def _calibrate(trainer: Trainer, best: dict[str, Any], log: RunLog) -> None:
    """What the heads learn from the validation split after training (the band gap's
    spread, :meth:`xtalnet.heads.Head.calibrate`), set in ``best.pt`` (weights and EMA)."""
    net = trainer.net
    with trainer.ema.applied(net):
        std, _ = trainer.predict(trainer.data.val)
    updates: dict[str, torch.Tensor] = {}
    for c, head in net.target_heads.items():
        pred = torch.as_tensor(std[c], dtype=trainer.data.enc_val[c].dtype)
        for name, value in head.calibrate(pred, trainer.data.enc_val[c].cpu()).items():
            updates[f"heads.{c}.{name}"] = value
            log(f"target {c!r}: {name} calibrated on the {len(trainer.data.val)} validation "
                f"structures: {float(value):.4g}")  # fmt: skip
    if not updates:
        return
    state = net.state_dict()
    for key, value in updates.items():
        state[key].copy_(value)
        for saved in (best["model"], best["ema"]["shadow"], trainer.ema.shadow):
            if key in saved:
                saved[key] = value.to(saved[key]).clone()
    if trainer.dist.main:
        _checkpoint.save({k: v for k, v in best.items() if k != "path"}, trainer.out / "best.pt")


def _finish(trainer: Trainer, state: State, samples: Samples, log: RunLog) -> dict[str, Any]:
    """The learning curve, and the test metrics of best.pt's EMA weights beside the mean
    predictor (``test_metrics.json``, ``test_predictions.csv``)."""
    out, dist, net = trainer.out, trainer.dist, trainer.net
    result: dict[str, Any] = {
        "out": str(out), "epochs": state.epoch, "steps": state.global_step,
        "best_epoch": state.best_epoch, "best_val_loss": state.best_val,
        "stop_reason": state.stop_reason, "minutes": state.elapsed / 60,
    }  # fmt: skip
    if dist.main and learning_curve(state.history, out / "learning_curve.png"):
        log(f"learning curve: {out / 'learning_curve.png'}")
    if not samples.test:
        best = _checkpoint.read(out / "best.pt")
        net.load_state_dict(best["model"])
        trainer.ema.load_state_dict(best["ema"])
        _calibrate(trainer, best, log)
        return result
    best = _checkpoint.read(out / "best.pt")
    net.load_state_dict(best["model"])
    trainer.ema.load_state_dict(best["ema"])
    _calibrate(trainer, best, log)
    with trainer.ema.applied(net):
        _, dec = trainer.predict(samples.test)
    tm = metrics_of(net, dec, samples.test)
    bm = baseline_metrics(net, samples.train, samples.test)
    result["test"], result["baseline"] = tm, bm
    if dist.main:
        write_json(out / "test_metrics.json", {
            "checkpoint": "best.pt (EMA weights)", "n_test": len(samples.test), "test": tm,
            "baseline_mean_predictor": bm, "epochs": state.epoch,
            "minutes": round(state.elapsed / 60, 2), "stop_reason": state.stop_reason,
        })  # fmt: skip
        write_predictions(out / "test_predictions.csv", net, dec, samples.test)
        for c, m in tm.items():
            b = bm.get(c, {})
            log(f"test {c}: MAE {m['mae']:.4g}{unit_suffix(net, c)} "
                f"(mean predictor {b.get('mae', math.nan):.4g}), "
                f"RMSE {m['rmse']:.4g}, R² {m['r2']:.3f}, n={m['n']}")  # fmt: skip
    return result
