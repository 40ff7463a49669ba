"""Training an ensemble: K members in one run folder, ``member-1/ … member-K/``.

Every member is an ordinary run (:func:`xtalnet.train`) on the same data and the same split
(``split_seed``), its network initialised and its batches ordered from its own seed (member
m of ``--seed S --ensemble K``: S K + m - 1, :func:`member_seeds`); where the user left them
open, the defaults vary the members' inputs (species features, composition statistics:
:func:`xtalnet.defaults.member_inputs`).
``--resume`` continues the member that was interrupted, starts the ones not started and
leaves the finished ones. At the end the ensemble is scored on the test split:
the MAE of the members' mean beside each member's, and how well the members' spread σ
describes the errors (the fractions of |error| <= σ and <= 2σ, Spearman's correlation of
|error| with σ, ``calibration_<target>.png``). σ = k sqrt(spread² + w d²) (the members'
spread, the composition's distance to the training data: :mod:`xtalnet.ensemble`), k and w
per target fitted on the validation split (``ensemble.json``: ``sigma_scale``,
``sigma_distance_weight``; the output says so).
"""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from xtalnet import _checkpoint
from xtalnet._metrics import baseline_metrics, calibration, metrics_of, sigma_fit
from xtalnet.composition_distance import TrainingCompositions
from xtalnet.config import MAX_SEED, NetworkConfig
from xtalnet.dataset import Sample, build_samples, load_source
from xtalnet.ensemble import (
    COMPOSITIONS_FILE,
    ENSEMBLE_FILE,
    MAX_MEMBERS,
    Ensemble,
    member_dirs,
    member_fingerprints,
    predict_graphs,
    read_ensemble,
)
from xtalnet.plots import calibration_plot
from xtalnet.tables import unit_label, unit_suffix, write_json, write_predictions
from xtalnet.training.distributed import setup_dist
from xtalnet.training.options import TrainOptions
from xtalnet.training.run_dir import CHECKPOINTS, check_out, remove_run
from xtalnet.training.setup import init_seed

__all__ = ["check_members", "member_seeds", "split_samples", "train_ensemble"]

#: How σ is made, as test_metrics.json states it.
SIGMA_RULE = (
    "sigma_scale x sqrt(spread^2 + sigma_distance_weight x d^2); spread: the members' standard "
    "deviation; d: L1 distance of the fractional composition to the nearest training crystal's "
    "(0-2); both fitted on the validation split: the weight by the likelihood of normal "
    "errors, the scale so that 95.4 % of the errors lie within 2 sigma"
)


def member_seeds(base: int, k: int, what: str = "--seed") -> list[int]:
    """The seeds of the ``k`` members of an ensemble given ``base`` (``--seed``): ``base k``
    … ``base k + k - 1``. The default ``--seed 0`` gives 0 … k - 1, and ensembles of the
    same size with other seeds share no member's seed (with ``base + m - 1``, ``--seed 0``
    and ``--seed 3`` shared two members: replicates that were not independent). Every
    member's seed must stay within :data:`xtalnet.config.MAX_SEED`: a larger ``base`` is a
    ``ValueError`` naming ``what`` and its largest value for ``k`` members."""
    largest = (MAX_SEED - (k - 1)) // k
    if isinstance(base, bool) or not isinstance(base, int) or not 0 <= base <= largest:
        raise ValueError(
            f"{what} must be an int in [0, {largest}] with --ensemble {k} (member m takes "
            f"seed {k} x seed + m - 1, at most {MAX_SEED}), got {base!r}"
        )
    return [base * k + m for m in range(k)]


def check_members(k: Any) -> int:
    """The number of members: an int in [1, :data:`MAX_MEMBERS`] (``ValueError`` naming
    ``--ensemble`` otherwise)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_MEMBERS:
        raise ValueError(f"--ensemble must be an int in [1, {MAX_MEMBERS}], got {k!r}")
    return k


def train_ensemble(
    k: int | None,
    data: Any,
    targets: Sequence[str],
    out: str | os.PathLike[str],
    *,
    train: Callable[..., dict[str, Any]],
    config: Mapping[str, Any] | None,
    options: Mapping[str, Any] | None,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    **kw: Any,
) -> dict[str, Any]:
    """Train (or resume) the members of an ensemble in ``out``, then score it; the keyword
    arguments are those of :func:`xtalnet.train`, which trains each member."""
    root = Path(out)
    say = (lambda msg: None) if quiet or int(os.environ.get("RANK", "0")) else print
    opts = dict(options or {})
    cfg = dict(config or {})
    if resume:  # the members keep what they were started with (seeds, bagging)
        if not (root / ENSEMBLE_FILE).is_file() and (root / "last.pt").is_file():
            raise ValueError(f"--resume {str(root)!r} is a single run, not an ensemble: "
                             "--ensemble cannot change on --resume (leave it out)")  # fmt: skip
        info = read_ensemble(root)
        k_saved = int(info["members"])
        if k is not None and check_members(k) != k_saved:
            raise ValueError(f"--resume {str(root)!r}: the ensemble has {k_saved} members, "
                             f"--ensemble {k} given")  # fmt: skip
        k = k_saved
        seeds, init_seeds = [int(x) for x in info["seeds"]], [int(x) for x in info["init_seeds"]]
        split_seed = int(info.get("split_seed", seeds[0]))  # then: the base seed, member 1's
        # an ensemble started before the members varied their inputs keeps them alike
        first = root / "member-1" / "options.json"
        vary = not first.is_file() or "member" in json.loads(first.read_text())
        if not targets:  # `train --resume DIR` names none: a member not started needs them
            targets = json.loads((root / "member-1" / "config.json").read_text())["targets"]
    else:
        k = check_members(k)
        check_out(root, resume=False, overwrite=overwrite)  # a run or an ensemble is refused
        # members see all of the training split: bagging (--bootstrap) cost MAE on the
        # MP-20 subset (formation energy 0.143 vs 0.129, band gap 0.418 vs 0.407 eV) for
        # little better ranking (Spearman 0.19 vs 0.17, 0.94 vs 0.90; docs/RESULTS.md)
        given = TrainOptions.from_dict(opts)  # unknown or bad options: refused before member 1
        seeds = member_seeds(given.seed, k)
        init_seeds = member_seeds(
            init_seed(cfg, opts), k, "the config's seed" if "seed" in cfg else "--seed"
        )
        split_seed = given.data_seed
        vary = True
    # under torchrun the process group lives as long as the ensemble: every member's train()
    # finds it initialised (a group destroyed and initialised again hung at member 2)
    dist = setup_dist(kw.get("device"))
    results = []
    try:
        for m, folder in enumerate(member_dirs(root, k), start=1):
            status = _member_status(folder, opts if resume else {})
            if status == "longer":  # a finished member goes on, as a finished run does
                status = "partial"
                say(f"ensemble member {m}/{k}: finished; it goes on with the new training "
                    "length")  # fmt: skip
            if status == "done" and resume:
                say(f"ensemble member {m}/{k}: finished, kept ({folder})")
                results.append(json.loads((folder / "test_metrics.json").read_text())
                               if (folder / "test_metrics.json").is_file() else {})  # fmt: skip
                continue
            say(f"ensemble member {m}/{k} (seed {seeds[m - 1]}): {folder}")
            member_opts = {**opts, "seed": seeds[m - 1], "split_seed": split_seed,
                           "member": m if vary else 0}  # fmt: skip
            member_cfg = {**cfg, "seed": init_seeds[m - 1]}
            member_opts, member_cfg = _member_settings(root, vary, status, resume, member_opts,
                                                       member_cfg, opts)  # fmt: skip
            rec = kw.pop("recommendation", None) or _saved_recommendation(root)
            try:
                results.append(train(data, targets, folder, config=member_cfg, options=member_opts,
                                     resume=resume and status == "partial", overwrite=overwrite,
                                     quiet=quiet, recommendation=rec, **kw))  # fmt: skip
            finally:  # interrupted or not: once member 1 has started, the folder is an ensemble
                if m == 1 and not resume and dist.main:
                    _write_description(root, seeds, init_seeds, split_seed, data, kw)
            dist.barrier()  # every rank starts the next member together
    finally:
        if dist.initialised and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if not dist.main:
        return {"out": str(root), "members": results}
    sources = {"data": data, "val": kw.get("val"), "test": kw.get("test")}
    return score_ensemble(root, sources, say)


def _member_settings(
    root: Path,
    vary: bool,
    status: str,
    resume: bool,
    member_opts: dict[str, Any],
    member_cfg: dict[str, Any],
    opts: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options and config of a member (``member_opts`` / ``member_cfg``: what was given,
    with the member's seeds, split seed and, if ``vary``, its place: the defaults vary the
    inputs of members 2 … K). On ``resume`` a member interrupted (``status``
    ``"partial"``) keeps those of its checkpoint and a member not started (``"new"``)
    starts as member 1 did."""
    if resume and status == "partial":
        return {k: v for k, v in opts.items() if k != "seed"}, {}
    if resume:
        member_opts = {**_saved(root, "options.json", vary), **member_opts}
        member_cfg = {**_saved(root, "config.json", vary), **member_cfg}
    return member_opts, member_cfg


#: the options that set how long a run trains
LENGTH_OPTIONS = ("epochs", "time_limit", "max_steps", "patience")


def _member_status(folder: Path, opts: Mapping[str, Any]) -> str:
    """``"new"``, ``"partial"`` (a checkpoint, not finished), ``"done"``, or ``"longer"``: done,
    but ``opts`` give it a training length other than its own (on ``--resume ENSEMBLE
    --time-limit 30`` every member goes on, as a single run does; a length that would stop it
    at once is refused by its resume)."""
    if not (folder / "last.pt").is_file():
        return "new"
    ckpt = _checkpoint.read(folder / "last.pt")
    if not (ckpt.get("state", {}).get("done") and (folder / "best.pt").is_file()):
        return "partial"
    saved = ckpt.get("options", {})  # as last resumed
    changed = any(key in opts and opts[key] != saved.get(key) for key in LENGTH_OPTIONS)
    return "longer" if changed else "done"


def _saved(root: Path, name: str, vary: bool) -> dict[str, Any]:
    """What member 1 was given (options or config), as given to the next members: not its
    seeds and, if ``vary``, not what the defaults chose for it (they choose again for each
    member); an ensemble whose members do not vary passes on all of it."""
    saved = json.loads((root / "member-1" / name).read_text())
    provenance = saved.get("provenance", {}) if vary else {}
    ruled = {k for k, why in provenance.items() if why != "given"}
    skip = {"provenance", "schema", "seed", "targets", "member", *ruled}  # targets: train()'s
    return {k: v for k, v in saved.items() if k not in skip}


def _saved_recommendation(root: Path) -> str | None:
    """Member 1's recommendation (its file): the later members need no second audit."""
    path = root / "member-1" / "recommendation.json"
    return str(path) if path.is_file() else None


def _write_description(
    root: Path,
    seeds: Sequence[int],
    init_seeds: Sequence[int],
    split_seed: int,
    data: Any,
    kw: Mapping[str, Any],
) -> None:
    if not any((root / "member-1" / c).is_file() for c in CHECKPOINTS):
        return  # member 1 never started: no ensemble yet
    remove_run(root, keep=("member-1",))  # what --overwrite replaces, now that it started
    write_json(root / ENSEMBLE_FILE, {
        "kind": "xtalnet-ensemble", "members": len(seeds),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "seeds": list(seeds), "init_seeds": list(init_seeds), "split_seed": split_seed,
        "data": str(data), "val": _text(kw.get("val")), "test": _text(kw.get("test")),
    })  # fmt: skip


def _text(source: Any) -> str | None:
    return None if source is None else str(source)


# ----------------------------------------------------------------------------- scoring
def split_samples(
    run: Path, sources: Mapping[str, Any], config: NetworkConfig
) -> dict[str, list[Sample]]:
    """The samples of the ``train`` / ``val`` / ``test`` split of the run folder ``run`` (the
    ids of its ``split.json``, in that order), read once from ``sources`` (``data``,
    ``val``, ``test``: what the run trained on) with the geometry of ``config``."""
    split = json.loads((run / "split.json").read_text())
    by_id: dict[str, Sample] = {}
    quiet = lambda msg: None  # noqa: E731
    for role in ("data", "val", "test"):
        source = sources.get(role)
        if source is None:
            continue
        prep = load_source(source, list(config.columns), log=quiet)
        for s in build_samples(prep, config, log=quiet, what=role)[0]:
            by_id.setdefault(s.id, s)
    return {
        name: [by_id[i] for i in split[name] if i in by_id] for name in ("train", "val", "test")
    }


def _samples(
    root: Path, sources: Mapping[str, Any]
) -> tuple[Ensemble, list[Sample], list[Sample], list[Sample]]:
    """The ensemble (σ unscaled) and the samples of member 1's train / val / test split."""
    from xtalnet.inference import load

    info = read_ensemble(root)
    ensemble = Ensemble([load(d / "best.pt") for d in member_dirs(root, int(info["members"]))])
    parts = split_samples(root / "member-1", sources, ensemble.config)
    return ensemble, parts["train"], parts["val"], parts["test"]


def score_ensemble(
    root: Path, sources: Mapping[str, Any], say: Callable[[str], None] = print
) -> dict[str, Any]:
    """Save the training compositions (``train_compositions.npz``), fit every target's σ
    (k and w of σ = k sqrt(spread² + w d²)) on the validation split, score the ensemble on
    the test split (mean vs members, calibration) and write ``ensemble.json``,
    ``test_metrics.json``, ``test_predictions.csv`` and ``calibration_<target>.png``."""
    ensemble, train, val, test = _samples(root, sources)
    columns = list(ensemble.target_heads)
    compositions = TrainingCompositions.from_numbers([s.graph.numbers for s in train])
    compositions.save(root / COMPOSITIONS_FILE)
    ensemble.compositions = compositions
    dec_val = predict_graphs(ensemble, [s.graph for s in val], [s.id for s in val], 64)
    distance = compositions.distance([s.graph.numbers for s in val])
    scale, weight = {}, {}
    for c, head in ensemble.target_heads.items():
        true, ok = head.true_values([s.values.get(c) for s in val])
        scale[c], weight[c] = sigma_fit(dec_val[c][ok] - true[ok], dec_val[f"{c}.std"][ok],
                                        distance[ok])  # fmt: skip
    ensemble.sigma_scale, ensemble.sigma_distance_weight = scale, weight
    info = read_ensemble(root)
    fitted_with = member_fingerprints(root, len(ensemble.networks))
    write_json(root / ENSEMBLE_FILE, {**info, "sigma_scale": scale,
                                      "sigma_distance_weight": weight,
                                      "members_fitted": fitted_with})  # fmt: skip
    result: dict[str, Any] = {"out": str(root), "members": len(ensemble.networks),
                              "sigma_scale": scale, "sigma_distance_weight": weight}  # fmt: skip
    if not test:
        say(
            f"ensemble of {len(ensemble.networks)}: σ scale {scale}, distance weight {weight} "
            "(validation split)"
        )
        return result
    dec = predict_graphs(ensemble, [s.graph for s in test], [s.id for s in test], 64)
    metrics = metrics_of(ensemble, dec, test)
    members = [json.loads((d / "test_metrics.json").read_text())["test"]
               for d in member_dirs(root, len(ensemble.networks))]  # fmt: skip
    report: dict[str, Any] = {}
    for c in columns:
        head = ensemble.target_heads[c]
        true, ok = head.true_values([s.values.get(c) for s in test])
        err, sigma = dec[c][ok] - true[ok], dec[f"{c}.std"][ok]
        report[c] = {**calibration(err, sigma), "sigma_scale": scale[c],
                     "sigma_distance_weight": weight[c],
                     "member_mae": [m[c]["mae"] for m in members if c in m]}  # fmt: skip
        calibration_plot(err, sigma, f"{c}: ensemble of {len(ensemble.networks)} (test)",
                         unit_label(ensemble, c), root / f"calibration_{c}.png")  # fmt: skip
    base = baseline_metrics(ensemble, train, test)
    write_json(root / "test_metrics.json", {
        "checkpoint": f"mean of {len(ensemble.networks)} members' best.pt (EMA weights)",
        "n_test": len(test), "test": metrics, "calibration": report,
        "baseline_mean_predictor": base,
        "sigma": SIGMA_RULE,
    })  # fmt: skip
    write_predictions(root / "test_predictions.csv", ensemble, dec, test)
    for c, m in metrics.items():
        r = report[c]
        say(f"test {c}: ensemble MAE {m['mae']:.4g}{unit_suffix(ensemble, c)} (members "
            f"{', '.join(f'{x:.4g}' for x in r['member_mae'])}; mean predictor "
            f"{base.get(c, {}).get('mae', math.nan):.4g}); |error| <= σ "
            f"{r['within_1sigma']:.2f}, <= 2σ {r['within_2sigma']:.2f}, Spearman(|error|, σ) "
            f"{r['spearman']:.2f} (normal errors of exactly this σ: {r['spearman_if_exact']:.2f}, "
            f"5-95 % {r['spearman_if_exact_p05']:.2f}-{r['spearman_if_exact_p95']:.2f}); "
            f"σ = {r['sigma_scale']:.3g} sqrt(spread² + "
            f"{r['sigma_distance_weight']:.3g} d²), spread: the members' standard deviation, "
            "d: the composition's distance to the nearest training crystal's (fitted on the "
            "validation split)")  # fmt: skip
    if len(ensemble.networks) < 5 and metrics:  # the README's measurements: K >= 5
        say(f"note: the spread of {len(ensemble.networks)} members is itself a noisy estimate; "
            "the fitted scale widens σ for every structure: take --ensemble 5 or more for a σ "
            "that ranks the errors")  # fmt: skip
    result.update(test=metrics, baseline=base, calibration=report)
    return result
