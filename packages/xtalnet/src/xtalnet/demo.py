"""``xtalnet demo``: the main job in a few minutes, with the defaults a user gets.

An ensemble of networks (3 when the time allows) learns the WIEN2k bulk modulus of ASE's 71
elemental crystals (``builtin:dcdft``) within the time limit, under one progress bar; then the
test MAE beside the mean predictor, the calibration of the ensemble's σ and three test
predictions with their σ. Every test element is absent from training (one crystal per
element), which the elemental species features and the composition statistics of the
defaults are made for. Everything the demo writes stays in its folder.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["run_demo"]


def _members(minutes: float) -> int:
    """Three members when each gets at least 20 s, else one."""
    return 3 if minutes * 60 / 3 >= 20 else 1


def run_demo(
    out: Path,
    *,
    minutes: float = 2.0,
    threads: int = 1,
    seed: int = 0,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict[str, Any]:
    """Train the demo's ensemble in ``out/run`` and print the summary (nothing with
    ``quiet``); its result dict."""
    from xtalnet.inference import load
    from xtalnet.training import train
    from xtalnet.training.run_dir import check_out

    say: Callable[[str], None] = (lambda msg: None) if quiet else print
    run = out / "run"
    check_out(run, resume=False, overwrite=overwrite, flag="demo --out")
    k = _members(minutes)
    say(f"xtalnet demo: builtin:dcdft (71 elemental crystals), target K_wien2k (WIEN2k bulk "
        f"modulus, GPa), {'an ensemble of ' + str(k) + ' networks' if k > 1 else 'one network'}"
        f", {minutes:g} min on {threads} thread(s), the defaults; files in {out}")  # fmt: skip
    bar, tick = _time_bar(minutes * 60, quiet)
    try:
        result = train(
            "builtin:dcdft", ["K_wien2k"], run,
            # the plain-torch backend: 1-4 atoms per cell gain nothing from the compiled one,
            # and nothing is compiled into a cache outside the demo's folder
            config={"backend": "torch"},
            options={"time_limit": minutes / k, "seed": seed},
            ensemble=k if k > 1 else None, overwrite=overwrite, progress=False, quiet=True,
            callback=tick,
        )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    _summary(result, run, k, load, say)
    return result


def _time_bar(seconds: float, quiet: bool) -> tuple[Any, Callable[[dict[str, Any]], None]]:
    """A progress bar over the training time, advanced by the per-step callback."""
    if quiet:
        return None, lambda status: None
    from tqdm.auto import tqdm

    total = max(1, round(seconds))
    bar = tqdm(total=total, desc="training", file=sys.stderr, leave=True,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s")  # fmt: skip
    start = time.time()

    def tick(status: dict[str, Any]) -> None:
        done = min(total, round(time.time() - start))
        if done > bar.n:
            bar.update(done - bar.n)

    return bar, tick


def _summary(
    result: dict[str, Any], run: Path, k: int, load: Callable[..., Any], say: Callable[[str], None]
) -> None:
    from ase.collections import dcdft

    test, base = result["test"]["K_wien2k"], result["baseline"]["K_wien2k"]
    line = f"test MAE {test['mae']:.1f} GPa"
    if k > 1:
        cal = result["calibration"]["K_wien2k"]
        members = ", ".join(f"{m:.1f}" for m in cal["member_mae"])
        line += f" (ensemble of {k}; members {members})"
    say(f"{line}, mean predictor {base['mae']:.1f} GPa; log10 MAE {test['mae_log10']:.3f} "
        f"(mean predictor {base['mae_log10']:.3f}); n = {test['n']} test crystals")  # fmt: skip
    if k > 1:
        say("σ (the members' spread, widened with the composition's distance to the training "
            f"data; fitted on the validation split): |error| <= σ for "
            f"{cal['within_1sigma']:.0%} of the test crystals, <= 2σ for "
            f"{cal['within_2sigma']:.0%}")  # fmt: skip
    model = load(run)
    split_dir = run / "member-1" if k > 1 else run
    split = json.loads((split_dir / "split.json").read_text())
    names = [i.split(":", 1)[1] for i in split["test"][:3]]
    pred, _ = model.predict_with_notes([dcdft[n] for n in names])
    std = pred.get("K_wien2k.std")
    say("predictions for three test crystals (GPa):")
    for j, n in enumerate(names):
        sigma = f" ± {std[j]:5.1f}" if std is not None else ""
        say(f"  {n:3s}  predicted {pred['K_wien2k'][j]:7.1f}{sigma}   WIEN2k "
            f"{dcdft.data[n]['wien2k_B']:7.1f}")  # fmt: skip
    say(f"run folder: {run}")
