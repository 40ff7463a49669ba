"""What a run is made of, decided before it trains: its options and targets (or those of the
run it resumes), its data and splits, and its network configuration."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xtalnet import _checkpoint
from xtalnet.config import NetworkConfig, read_recommendation, recommended_fields
from xtalnet.dataset import Prepared, Sample, build_samples, is_missing, load_source
from xtalnet.defaults import choose, option_choices, provenance
from xtalnet.heads import TargetSpec
from xtalnet.network import layers_needed, target_lmax
from xtalnet.training.distributed import Dist
from xtalnet.training.finetune import trunk_fields
from xtalnet.training.options import TrainOptions
from xtalnet.training.splits import split_data

__all__ = [
    "LENGTH_OPTIONS",
    "Plan",
    "Samples",
    "check_same_samples",
    "given_fields",
    "init_seed",
    "network_config",
    "plan_run",
    "prepare_samples",
    "read_splits",
    "source_key",
]

#: Training options that may change when a run is resumed: they bound the run's length.
LENGTH_OPTIONS = ("epochs", "time_limit", "max_steps", "patience")


@dataclass
class Plan:
    """Targets, options and config fields of a run, and the checkpoint it resumes (if any)."""

    targets: list[str]
    opts: TrainOptions
    given: dict[str, Any]
    ckpt: dict[str, Any] | None = None
    length_changed: bool = False
    #: "given" or "rule: <reason>" per field of the config and the options (new runs)
    provenance: dict[str, dict[str, str]] = field(default_factory=dict)


@dataclass
class Samples:
    """The usable samples of every split."""

    train: list[Sample]
    val: list[Sample]
    test: list[Sample]

    def fingerprint(self) -> dict[str, str]:
        """SHA-256 of the ids and target values of every split (what a resume must match)."""
        out = {}
        for name in ("train", "val", "test"):
            rows = [[s.id, {k: _plain(v) for k, v in sorted(s.values.items())}]
                    for s in getattr(self, name)]  # fmt: skip
            text = json.dumps(rows, sort_keys=True, default=str)
            out[name] = hashlib.sha256(text.encode()).hexdigest()
        return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def check_same_samples(out: Path, samples: Samples) -> None:
    """Refuse a resume whose data no longer gives the run's splits and target values."""
    split = json.loads((out / "split.json").read_text(encoding="utf-8"))
    for name in ("train", "val", "test"):
        ids = [s.id for s in getattr(samples, name)]
        if ids != split.get(name, []):
            raise ValueError(
                f"--resume {str(out)!r}: the data no longer gives the run's {name} split "
                f"({len(ids)} structures now, {len(split.get(name, []))} in split.json); a "
                "resumed run keeps its data"
            )
    run = out / "run.json"
    saved = (
        json.loads(run.read_text(encoding="utf-8")).get("fingerprint") if run.is_file() else None
    )
    if saved:
        now = samples.fingerprint()
        differ = [name for name in now if saved.get(name) != now[name]]
        if differ:
            raise ValueError(
                f"--resume {str(out)!r}: the target values of the {', '.join(differ)} "
                "split(s) differ from the run's (the data file changed); a resumed run keeps "
                "its data"
            )


def given_fields(config: Any) -> dict[str, Any]:
    """The NetworkConfig fields a caller gave (a full config gives every field)."""
    if config is None:
        return {}
    if isinstance(config, NetworkConfig):
        d = config.to_dict()
    elif isinstance(config, Mapping):
        d = dict(config)
    else:
        raise TypeError(
            f"config must be a NetworkConfig or a dict of its fields, got {type(config).__name__}"
        )
    d.pop("schema", None)
    return d


def init_seed(given_config: Mapping[str, Any], given_options: Mapping[str, Any]) -> int:
    """The seed that initialises a new run's network: the config's own ``seed`` if given,
    else the options' ``seed`` (another seed is another run: it seeds the initialisation
    too, not only the split and the batch order), else the config's default."""
    if "seed" in given_config:
        return int(given_config["seed"])
    return int(given_options.get("seed", NetworkConfig.seed))


def plan_run(
    out: Path,
    targets: Sequence[str],
    config: Any,
    options: Any,
    resume: bool,
    log: Callable[[str], None],
    sources: Mapping[str, Any] | None = None,
) -> Plan:
    """The targets, options and given config fields of a new run, or those of the run in
    ``out`` to resume.

    On resume the given fields must agree with the saved ones and ``sources`` (``data``,
    ``val``, ``test``) with the run's (``ValueError`` naming what differs): only the training
    length (:data:`LENGTH_OPTIONS`) may change, and each change is logged.
    """
    given = given_fields(config)
    opts_given = options.to_dict() if isinstance(options, TrainOptions) else dict(options or {})
    opts_given.pop("provenance", None)
    if not resume:
        if "seed" in opts_given:
            given["seed"] = init_seed(given, opts_given)
        choices = option_choices(targets, opts_given, sources or {})
        for c in choices:
            log(c.line())
        opts = TrainOptions.from_dict({**{c.field: c.value for c in choices}, **opts_given})
        plan = Plan(list(targets), opts, given)
        plan.provenance["options"] = provenance(choices, "options", opts_given)
        return plan
    ckpt = _checkpoint.read(out / "last.pt")
    _check_same_sources(out, sources or {})
    saved_cfg = dict(ckpt["config"])
    saved_cfg.pop("schema", None)
    if targets and list(targets) != list(saved_cfg["targets"]):
        given["targets"] = list(targets)
    diff = _checkpoint.config_diff({k: saved_cfg[k] for k in given if k in saved_cfg}, given)
    saved_opts = {**TrainOptions().to_dict(), **ckpt["options"]}  # newer fields: defaults
    fixed = {k: v for k, v in opts_given.items() if k not in LENGTH_OPTIONS}
    diff += _checkpoint.config_diff({k: saved_opts.get(k) for k in fixed}, fixed)
    if diff:
        raise ValueError(
            f"--resume {str(out)!r}: the checkpoint was trained with another config; "
            f"fields that differ: {'; '.join(diff)} (on --resume only the training length "
            f"may change: {', '.join(LENGTH_OPTIONS)})"
        )
    changed = False
    for k in LENGTH_OPTIONS:
        if k in opts_given and opts_given[k] != saved_opts.get(k):
            log(f"resume: {k} {saved_opts.get(k)} -> {opts_given[k]} (training length changed)")
            saved_opts[k] = opts_given[k]
            changed = True
    log(f"resuming {out} at epoch {ckpt['state']['epoch']} step {ckpt['state']['global_step']}")
    opts = TrainOptions.from_dict(saved_opts)
    return Plan(list(saved_cfg["targets"]), opts, given, ckpt, changed)


def source_key(source: Any) -> str | None:
    """What identifies a data source across sessions: the absolute path of a file or folder,
    the text of anything else (``"builtin:dcdft"``, ``"mp"``); None for objects."""
    if source is None or not isinstance(source, (str, os.PathLike)):
        return None
    path = Path(source)
    return str(path.resolve()) if path.exists() else str(source)


def _check_same_sources(out: Path, sources: Mapping[str, Any]) -> None:
    """Refuse a resume whose ``data`` / ``val`` / ``test`` differ from those in run.json."""
    run = out / "run.json"
    if not run.is_file():
        return
    saved = json.loads(run.read_text(encoding="utf-8"))
    resolved = saved.get("sources") or {}
    for role, given in sources.items():
        if not isinstance(given, (str, os.PathLike, type(None))):
            continue  # an in-memory dataset: checked by content (the split's fingerprint)
        before = resolved.get(role, source_key(saved.get(role)))
        now = source_key(given)
        if before != now:
            raise ValueError(
                f"--resume {str(out)!r}: --{role} {given!r} is not the run's {role} "
                f"({saved.get(role)!r}); a resumed run keeps its data (start a new run with "
                "--out to train on other data)"
            )


def read_splits(
    data: Any,
    val: Any,
    test: Any,
    columns: Sequence[str],
    opts: TrainOptions,
    log: Callable[[str], None],
) -> tuple[Prepared, Prepared, Prepared]:
    """Read the sources and split them (see :func:`~xtalnet.training.splits.split_data`)."""
    import time

    t0 = time.time()
    main = load_source(data, columns, strict=opts.strict, log=log)
    train_p, val_p, test_p = split_data(main, val, test, columns, opts, log)
    if len(val_p.ids) == 0:
        raise ValueError("the validation split is empty: give --val or a larger split fraction")
    log(f"data: {len(train_p.ids)} train, {len(val_p.ids)} val, {len(test_p.ids)} test "
        f"structures ({time.time() - t0:.1f} s to read)")  # fmt: skip
    return train_p, val_p, test_p


def _audit(prep: Prepared, log: Callable[[str], None]) -> dict[str, Any]:
    """``mp_audit`` recommendation (r_cut, layers, band gap) on the training structures."""
    import mp_audit

    entries = [
        mp_audit.Entry(i, s, {k: v for k, v in vals.items() if not is_missing(v)})
        for i, s, vals in zip(prep.ids, prep.structures, prep.values)
    ]
    res = mp_audit.audit(mp_audit.from_entries("train split", entries), progress=False)
    rec = dict(res.recommendation)
    log(
        f"mp-audit recommendation on {len(entries)} training structures: r_cut={rec.get('r_cut')} "
        f"Å, layers={rec.get('layers')} (coverage {rec.get('coverage')})"
    )
    return rec


def network_config(
    plan: Plan,
    out: Path,
    train: Prepared,
    recommendation: Any,
    dist: Dist,
    log: Callable[[str], None],
) -> tuple[NetworkConfig, dict[str, Any] | None]:
    """The run's NetworkConfig and the recommendation behind it: the checkpoint's when
    resuming; else the given fields and, for the others, the choices of
    :func:`xtalnet.defaults.choose` (r_cut from ``recommendation``, a saved ``mp-audit
    recommend`` JSON, or from :func:`mp_audit.audit` of the training structures; the
    band-gap prior of eq. 2.1 from it too), each logged with its reason."""
    if plan.ckpt is not None:
        saved = out / "recommendation.json"
        rec = json.loads(saved.read_text()) if saved.is_file() else None
        return _checkpoint.config_of(plan.ckpt), rec
    given = plan.given
    rec = None
    if recommendation is not None:
        rec = read_recommendation(recommendation)
        text = isinstance(recommendation, Mapping) or str(recommendation).lstrip().startswith("{")
        where = "given" if text else str(recommendation)  # a dict or JSON text, or its file
        log(f"mp-audit recommendation ({where}): r_cut={rec.get('r_cut')} Å, "
            f"layers={rec.get('layers')}")  # fmt: skip
    elif not ("r_cut" in given and "num_layers" in given):
        rec = _audit(train, log) if dist.main else None
        rec = dist.gather(rec)[0] if dist.world > 1 else rec
    targets = [str(TargetSpec.parse(t)) for t in plan.targets]
    if plan.opts.init is not None:
        given = _with_trunk(plan, targets, log)
    fields = {**given, "targets": tuple(targets)}
    if rec is not None:
        if rec.get("r_cut") is None and "r_cut" not in given:
            log("the recommendation reached no coverage target: default r_cut kept")
        prior = recommended_fields(rec).get("band_gap_prior")
        if prior is not None and "band_gap_prior" not in given:
            fields["band_gap_prior"] = prior
    choices = choose(targets, len(train.ids), rec, given, {}, member=plan.opts.member)
    for c in choices:
        log(c.line())
        fields[c.field] = c.value
    plan.provenance["config"] = provenance(choices, "config", given)
    return NetworkConfig.from_dict(fields), rec


def _with_trunk(plan: Plan, targets: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    """The given fields and the trunk fields of ``--init`` (its layers, or more if the new
    targets need more)."""
    assert plan.opts.init is not None
    trunk = trunk_fields(plan.opts.init, plan.given)
    layers = trunk.pop("num_layers")
    fields = {**trunk, **plan.given}
    probe = NetworkConfig.from_dict({**fields, "targets": targets})
    if "num_layers" not in plan.given:
        fields["num_layers"] = max(layers, layers_needed(probe))
    log(f"--init {plan.opts.init}: trunk fields taken from it: {sorted(trunk)}")
    lmax = target_lmax(probe)
    if lmax > probe.l_filter_max:  # the trunk's filters fix them (defaults.py)
        log(f"warning: the trunk's l_filter_max={probe.l_filter_max} is below the targets' "
            f"l = {lmax}: crystals whose atoms all sit on cubic sites get "
            "isotropic elastic (zero piezoelectric) tensors; train these targets from scratch "
            "to have the filters they need")  # fmt: skip
    if plan.opts.member > 1:  # the inputs that vary the members are the trunk's here
        log(f"ensemble member {plan.opts.member}: every member starts from this trunk and its "
            "inputs, so the members differ only in their seeds: their spread ranks the errors "
            "less well than members whose inputs vary (README: --ensemble)")  # fmt: skip
    plan.given = fields
    return fields


def prepare_samples(
    parts: tuple[Prepared, Prepared, Prepared],
    cfg: NetworkConfig,
    opts: TrainOptions,
    log: Callable[[str], None],
) -> Samples:
    """Graphs of every split at the config's r_cut (unusable structures skipped, counted)."""
    train_p, val_p, test_p = parts
    train = build_samples(train_p, cfg, strict=opts.strict, log=log, what="train")[0]
    val = build_samples(val_p, cfg, strict=opts.strict, log=log, what="val")[0]
    test = (
        build_samples(test_p, cfg, strict=opts.strict, log=log, what="test")[0]
        if test_p.ids
        else []
    )
    return Samples(train, val, test)
