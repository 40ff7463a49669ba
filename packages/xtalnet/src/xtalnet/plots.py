"""Figures of a run and of an evaluation (matplotlib, Agg backend; none without matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from xtalnet._metrics import stated

__all__ = ["calibration_plot", "learning_curve", "parity_plot"]


def _matplotlib() -> Any:
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


def calibration_plot(error: Any, sigma: Any, title: str, unit: str, path: Path) -> bool:
    """Observed error against predicted σ: the root mean square of the errors in ten bins of
    σ (equal counts) against the bins' mean σ, with the y = x line of a calibrated σ, and
    every |error| behind them; False without matplotlib."""
    plt = _matplotlib()
    e, s = stated(error, sigma)  # a tensor's entries fixed by symmetry (σ = 0) left out
    if plt is None or not e.size:
        return False
    order = np.argsort(s)
    bins = [b for b in np.array_split(order, min(10, s.size)) if b.size]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.scatter(s, e, s=6, alpha=0.25, label="|error|")
    ax.plot([s[b].mean() for b in bins], [np.sqrt((e[b] ** 2).mean()) for b in bins], "o-",
            label="RMS error per σ bin")  # fmt: skip
    hi = float(max(s.max(), 1e-12))
    ax.plot([0, hi], [0, hi], "k--", lw=1, label="calibrated")
    ax.set_xlabel(f"predicted σ {unit}")
    ax.set_ylabel(f"error {unit}")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
