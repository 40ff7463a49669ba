"""The band gap of thesis eq. 2.1: a metal / non-metal logit and the standardised √gap."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from rsh import Irreps
from torch.nn import functional as F

from xtalnet.heads.base import Head, mean_std, residual_loss
from xtalnet.heads.spec import TargetSpec

__all__ = ["BandGapHead"]


class BandGapHead(Head):
    """Band gap (eV) of thesis eq. 2.1: ``gap ~ B(p) (σ D(0, 1) + μ)²``.

    The trunk delivers ``2x0e``: a logit for ``gap > 0`` and ``z``, the standardised
    square root of a non-zero gap, ``z = (√gap − μ) / σ``.

    Parameters
    ----------
    spec : TargetSpec
    dtype : torch.dtype
    p, mu, sigma : float, optional
        Statistics given rather than fitted (e.g. from ``mp-audit recommend``'s
        ``band_gap`` entry): ``p = P(gap > 0)``, μ and σ the mean and standard deviation
        of √gap (√eV) over the non-zero gaps. All three or none.

    Notes
    -----
    ``forward`` adds the prior log-odds ``log(p / (1 − p))`` (p clipped to
    [1e-3, 1 − 1e-3]) to the logit, so a zero trunk output predicts the base rate.
    Encoded targets are ``[is_gap, z]`` with ``z = 0`` for metals (NaN row: missing).
    Loss = binary cross-entropy of the logit (mean over labelled rows) + mean squared
    error of z over the rows with a non-zero gap. ``decode`` gives 0 eV where the
    probability of a gap is below 0.5, else ``(σ z + μ)²`` eV.
    """

    p: torch.Tensor
    mu: torch.Tensor
    sigma: torch.Tensor
    spread: torch.Tensor
    logit_scale: torch.Tensor
    logit_shift: torch.Tensor

    def __init__(
        self,
        spec: TargetSpec,
        dtype: torch.dtype = torch.float64,
        *,
        p: float | None = None,
        mu: float | None = None,
        sigma: float | None = None,
    ) -> None:
        super().__init__(spec, "2x0e", dtype)
        self.register_buffer("p", torch.full((), 0.5, dtype=dtype))
        self.register_buffer("mu", torch.zeros((), dtype=dtype))
        self.register_buffer("sigma", torch.ones((), dtype=dtype))
        # calibrated on the validation split after training (`calibrate`): the spread of z
        # around the prediction (standardised units) and the Platt scaling of the logit;
        # 0, 1, 0 (what checkpoints before them mean) decode as before
        self.register_buffer("spread", torch.zeros((), dtype=dtype))
        self.register_buffer("logit_scale", torch.ones((), dtype=dtype))
        self.register_buffer("logit_shift", torch.zeros((), dtype=dtype))
        given = [v is not None for v in (p, mu, sigma)]
        if any(given):
            if not all(given):
                raise ValueError(
                    f"target {self.target!r}: give all of p, mu, sigma or none, got "
                    f"p={p!r}, mu={mu!r}, sigma={sigma!r}"
                )
            assert p is not None and mu is not None and sigma is not None
            self.set_statistics(p, mu, sigma)

    def set_statistics(self, p: float, mu: float, sigma: float) -> None:
        """Use given statistics (e.g. a recommendation) instead of :meth:`fit`.

        Parameters
        ----------
        p : float
            Probability of a non-zero gap, in [0, 1].
        mu : float
            Mean of √gap over non-zero gaps, √eV, finite.
        sigma : float
            Standard deviation of √gap over non-zero gaps, √eV, > 0.
        """
        for name, v in (("p", p), ("mu", mu), ("sigma", sigma)):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise ValueError(
                    f"target {self.target!r}: {name} must be a finite number, got {v!r}"
                )
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"target {self.target!r}: p must be in [0, 1], got {p!r}")
        if not sigma > 0.0:
            raise ValueError(f"target {self.target!r}: sigma must be > 0 (√eV), got {sigma!r}")
        self.p.fill_(float(p))
        self.mu.fill_(float(mu))
        self.sigma.fill_(float(sigma))
        self.fitted_buffer.fill_(True)

    def _gaps(self, values: Any) -> np.ndarray:
        arr = self._values_1d(values)
        bad = ~np.isnan(arr) & (arr < 0)
        if bad.any():
            raise ValueError(
                f"target {self.target!r}: band gaps must be >= 0 eV, got {int(bad.sum())} "
                f"negative values (first: {arr[bad][:3].tolist()})"
            )
        return arr

    def fit(self, values: Sequence[Any]) -> None:
        """p = P(gap > 0), μ and σ of √gap over the non-zero train gaps (NaN/None skipped).

        Parameters
        ----------
        values : sequence of float
            Train band gaps, eV, >= 0.
        """
        arr = self._gaps(values)
        ok = ~np.isnan(arr)
        gaps = arr[ok]
        nonzero = gaps[gaps > 0]
        if nonzero.size == 0:
            raise ValueError(
                f"target {self.target!r}: the {gaps.size} finite train band gaps contain no "
                "non-zero gap, so μ and σ of √gap are undefined; give p, mu, sigma instead"
            )
        mu, sigma = mean_std(np.sqrt(nonzero))
        self.set_statistics(nonzero.size / gaps.size, mu, sigma)
        self._mark_fitted(int(ok.sum()), int((~ok).sum()))

    def encode(self, values: Sequence[Any]) -> torch.Tensor:
        """Band gaps [n] (eV) -> ``[is_gap, z]`` [n, 2] (z = 0 for metals, NaN if missing)."""
        self._require_fitted()
        arr = self._gaps(values)
        is_gap = (arr > 0).astype(np.float64)
        z = np.where(arr > 0, (np.sqrt(np.where(arr > 0, arr, 0.0)) - float(self.mu)), 0.0)
        z = z / float(self.sigma)
        out = np.stack([is_gap, z], axis=1)
        out[np.isnan(arr)] = np.nan
        return torch.as_tensor(out, dtype=self.dtype, device=self._device)

    def prior_logit(self) -> torch.Tensor:
        """``log(p / (1 − p))`` with p clipped to [1e-3, 1 − 1e-3] (0-dim tensor)."""
        return torch.logit(self.p.clamp(1e-3, 1.0 - 1e-3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[logit + prior_logit, z]`` [B, 2] from the trunk's ``2x0e`` output."""
        x = self._check_pred(x, "x")
        offset = torch.stack([self.prior_logit(), torch.zeros_like(self.p)]).to(x.dtype)
        return x + offset

    def loss_sums(
        self, pred: torch.Tensor, target: torch.Tensor, *, kind: str = "mse", delta: float = 1.0
    ) -> list[torch.Tensor]:
        """Two terms: the binary cross-entropy of the logit summed over the labelled rows,
        and the regression loss of z (``kind``: squared error by default, ``"l1"`` |dz|,
        ``"huber"``) summed over the rows with a non-zero gap.

        :meth:`loss` divides each by its count (:meth:`loss_counts`): BCE mean over labelled
        rows + z loss mean over gapped rows (a term without rows is 0); rows of ``target``
        with a NaN are missing labels and ignored. Dimensionless.
        """
        pred, target = self._check_pair(pred, target)
        valid = ~torch.isnan(target).any(dim=1)
        target = torch.nan_to_num(target)
        zero = torch.zeros_like(pred[:, 0])
        bce_rows = F.binary_cross_entropy_with_logits(pred[:, 0], target[:, 0], reduction="none")
        bce = torch.where(valid, bce_rows, zero).sum()
        gap = valid & (target[:, 0] > 0.5)
        dz = torch.where(gap, pred[:, 1] - target[:, 1], zero)
        reg, _ = residual_loss(dz[:, None], Irreps("0e"), kind, delta)
        return [bce, reg]

    def loss_counts(self, target: torch.Tensor) -> list[torch.Tensor]:
        """Labelled rows (BCE) and rows with a non-zero gap (z), 0-dim int64 tensors."""
        valid = ~torch.isnan(target).any(dim=1)
        gap = valid & (torch.nan_to_num(target[:, 0]) > 0.5)
        return [valid.sum(), gap.sum()]

    def decode(self, pred: torch.Tensor) -> np.ndarray:
        """Band gaps [B], eV: the median of the predicted distribution of eq. 2.1.

        The gap is 0 with probability ``1 - p`` and ``(σ (z + s ε) + μ)²`` otherwise, ε
        standard normal, ``p`` the calibrated probability of a gap (:meth:`prob_gap`) and
        ``s`` the :attr:`spread`, both calibrated on the validation split: where ``p < 1/2``
        the median is 0; else it is the gapped distribution's quantile ``1 - 1/(2p)`` (its
        median when ``p = 1``), the prediction of least expected absolute error. With
        ``s = 0`` this is ``(σ z + μ)²`` where ``p >= 1/2``.
        """
        self._require_fitted()
        x = self._check_pred(pred).detach().cpu().double().numpy()
        prob_gap = self.prob_gap(x[:, 0])
        q = np.clip(1.0 - 0.5 / np.maximum(prob_gap, 0.5), 1e-12, 0.5)
        shift = float(self.spread) * torch.special.ndtri(torch.from_numpy(q)).numpy()
        root = (x[:, 1] + shift) * float(self.sigma) + float(self.mu)
        gap = np.where(root > 0, root, 0.0) ** 2
        gap = np.where(prob_gap < 0.5, 0.0, gap)
        # a structure not predicted (NaN outputs) stays NaN: the comparisons above are False
        # for NaN and would report it as a metal, gap 0 eV
        return np.where(np.isnan(x).any(axis=1), np.nan, gap)

    def prob_gap(self, logit: np.ndarray) -> np.ndarray:
        """P(gap > 0) of logits: ``sigmoid(a logit + b)``, ``(a, b)`` the Platt scaling
        calibrated on the validation split (1, 0 until then)."""
        a, b = float(self.logit_scale), float(self.logit_shift)
        return _sigmoid(a * np.asarray(logit, dtype=np.float64) + b)

    def calibrate(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Calibrate on a held-out split (standardised outputs and ``encode``-d targets): the
        Platt scaling ``(a, b)`` of the logit that minimises the cross-entropy of
        ``sigmoid(a logit + b)`` with Platt's smoothed labels (the decoding's median needs
        calibrated probabilities), and :attr:`spread`, the root mean square of
        ``z_true - z_pred`` over the rows with a gap. Returns the buffers set, by name."""
        pred, target = self._check_pair(pred, target)
        valid = ~torch.isnan(target).any(dim=1)
        gap = valid & (torch.nan_to_num(target[:, 0]) > 0.5)
        out: dict[str, torch.Tensor] = {}
        labels = target[valid, 0].double().numpy()
        if 0 < labels.sum() < labels.size:  # both classes: the scaling is defined
            a, b = _platt(pred[valid, 0].detach().double().numpy(), labels)
            self.logit_scale.fill_(a)
            self.logit_shift.fill_(b)
            out.update(logit_scale=self.logit_scale.clone(), logit_shift=self.logit_shift.clone())
        if bool(gap.any()):
            residual = (target[gap, 1] - pred[gap, 1]).double()
            self.spread.fill_(float(residual.square().mean().sqrt()))
            out["spread"] = self.spread.detach().clone()
        return out

    def _load_from_state_dict(
        self, state_dict: Any, prefix: str, *args: Any, **kwargs: Any
    ) -> None:
        # a checkpoint written before the calibration existed decodes as it did then
        state_dict.setdefault(prefix + "spread", torch.zeros_like(self.spread))
        state_dict.setdefault(prefix + "logit_scale", torch.ones_like(self.logit_scale))
        state_dict.setdefault(prefix + "logit_shift", torch.zeros_like(self.logit_shift))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def decode_extra(self, pred: torch.Tensor) -> dict[str, np.ndarray]:
        """``{"p_metal": 1 − p}``: the calibrated probability of a zero gap, [B]."""
        x = self._check_pred(pred).detach().cpu().double().numpy()
        return {"p_metal": 1.0 - self.prob_gap(x[:, 0])}

    def mean_baseline(self, train_true: np.ndarray, n: int) -> tuple[np.ndarray, dict]:
        """The mean gap for every structure, with the train fraction of metals as the
        probability of a metal."""
        pred, _ = super().mean_baseline(train_true, n)
        return pred, {"p_metal": np.full(n, float((train_true == 0).mean()))}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))`` without overflow for any finite ``x``."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _platt(logit: np.ndarray, label: np.ndarray, steps: int = 100) -> tuple[float, float]:
    """``(a, b)`` minimising the mean cross-entropy of ``sigmoid(a logit + b)`` against
    Platt's (1999) smoothed targets: ``(N₊ + 1) / (N₊ + 2)`` for a gap, ``1 / (N₋ + 2)`` for
    a metal. Unlike 0/1 labels they keep ``(a, b)`` finite when the classes separate on the
    validation split (then the 0/1 optimum is an infinite slope). Damped Newton's method on
    the convex problem."""
    n_pos = float(label.sum())
    n_neg = label.size - n_pos
    target = np.where(label > 0.5, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    x = np.stack([logit, np.ones_like(logit)], 1)

    def loss(w: np.ndarray) -> float:
        u = x @ w
        return float(np.mean(np.logaddexp(0.0, u) - target * u))

    w = np.array([1.0, 0.0])
    for _ in range(steps):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - target) / len(label)
        hess = (x * (p * (1 - p))[:, None]).T @ x / len(label) + 1e-12 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        f0, t = loss(w), 1.0
        while loss(w - t * step) > f0 and t > 1e-8:  # halve until the loss does not rise
            t *= 0.5
        w = w - t * step
        if np.abs(t * step).max() < 1e-10:
            break
    return float(w[0]), float(w[1])
