"""Figures of a run and of an evaluation (matplotlib, Agg backend; none without matplotlib)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["learning_curve", "parity_plot"]


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
