"""The head base class and the regression losses every head shares.

Every head is an ``nn.Module`` without parameters; its standardisation lives in buffers, so
it travels with ``state_dict``. The trunk's pooled output ``x [B, irreps_in.dim]`` goes in,
``forward`` gives the standardised prediction, ``loss(pred, encode(values))`` trains it and
``decode(pred)`` returns physical units as numpy arrays. A head also owns what the training
loop and the evaluation need to know about its target, so that neither names a kind: its loss
as sums and counts (:meth:`Head.loss_sums`, :meth:`Head.loss_counts`), its true values,
metrics, mean-predictor baseline, unit and derived quantities.

Standardisation is equivariant by construction: one scale per irrep copy (block) and a
mean shift on ``0e`` blocks only (a mean with ``l > 0`` or odd parts would single out a
direction in space).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from rsh import Irreps
from torch import nn
from torch.nn import functional as F

from xtalnet import _metrics
from xtalnet.heads.spec import TargetSpec

__all__ = ["LOSSES", "Head", "check_dtype", "check_loss", "mean_std", "residual_loss"]

#: Regression losses of :meth:`Head.loss` (the ``loss`` training option).
LOSSES: tuple[str, ...] = ("mse", "l1", "huber")


def check_dtype(dtype: object) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    assert isinstance(dtype, torch.dtype)
    return dtype


def check_loss(kind: object, delta: object = 1.0) -> tuple[str, float]:
    """Validate a regression loss name and Huber threshold; returns ``(kind, float(delta))``.

    Raises
    ------
    ValueError
        Naming ``loss`` (not one of :data:`LOSSES`) or ``huber_delta`` (not a finite
        number > 0).
    """
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    if (
        isinstance(delta, bool)
        or not isinstance(delta, (int, float))
        or not (math.isfinite(delta) and delta > 0)
    ):
        raise ValueError(f"huber_delta must be a finite number > 0, got {delta!r}")
    return str(kind), float(delta)


def residual_loss(
    diff: torch.Tensor, irreps: Irreps, kind: str = "mse", delta: float = 1.0
) -> tuple[torch.Tensor, int]:
    """Summed loss of standardised residuals and the number of terms it sums per row.

    Parameters
    ----------
    diff : Tensor [B, irreps.dim]
        ``pred - target`` in standardised units (rows to ignore set to zero).
    irreps : rsh.Irreps
        Layout of the columns.
    kind : {"mse", "l1", "huber"}
        ``"mse"``: squared residual of every component (``dim`` terms per row).
        ``"l1"``: Euclidean norm ``r`` of the residual of every irrep copy (its ``2l + 1``
        components; ``|diff|`` for a scalar), one term per copy. ``"huber"``: ``r^2 / 2``
        for ``r <= delta``, ``delta (r - delta / 2)`` beyond, per copy. The norms make the
        loss invariant under rotations of the data, which a per-component L1 would not be.
    delta : float
        Huber threshold in standardised units.

    Returns
    -------
    (Tensor, int)
        The sum over rows and terms (0-dim) and the number of terms per row; the mean loss
        is ``sum / (rows * terms)``.
    """
    if kind == "mse":
        return (diff**2).sum(), diff.shape[1]
    kind, delta = check_loss(kind, delta)
    parts = []
    o = 0
    for mul, l, _ in irreps:
        d = 2 * l + 1
        block = diff[:, o : o + mul * d]
        if d == 1:
            parts.append(block.abs())
        else:
            sq = block.reshape(diff.shape[0], mul, d).square().sum(-1)
            tiny = torch.finfo(diff.dtype).tiny
            parts.append(sq.clamp(min=tiny).sqrt())  # no NaN gradient at r = 0
        o += mul * d
    r = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
    if kind == "l1":
        return r.sum(), r.shape[1]
    return F.huber_loss(r, torch.zeros_like(r), reduction="sum", delta=delta), r.shape[1]


class Head(nn.Module):
    """Base class of the target heads (no parameters; standardisation in buffers).

    Parameters
    ----------
    spec : TargetSpec
        The target.
    irreps_in : str or rsh.Irreps
        Irreps the trunk must deliver for this target (pooled per structure).
    dtype : torch.dtype
        ``torch.float32`` or ``torch.float64``: dtype of the buffers and encoded targets.

    Attributes
    ----------
    spec : TargetSpec
    irreps_in : rsh.Irreps
        What the trunk must deliver; ``irreps_in.dim`` features per structure.
    n_fit : int
        Number of train targets used by :meth:`fit` (buffer).
    n_skipped : int
        Number of train targets :meth:`fit` skipped because they were NaN/None (buffer).
    """

    n_fit_buffer: torch.Tensor
    n_skipped_buffer: torch.Tensor
    fitted_buffer: torch.Tensor

    def __init__(self, spec: TargetSpec, irreps_in: str | Irreps, dtype: torch.dtype) -> None:
        super().__init__()
        if not isinstance(spec, TargetSpec):
            raise TypeError(f"spec must be a TargetSpec, got {type(spec).__name__}")
        self.spec = spec
        self._init_dtype = check_dtype(dtype)
        self.irreps_in = Irreps(irreps_in)
        self.dim = self.irreps_in.dim
        self.register_buffer("n_fit_buffer", torch.zeros((), dtype=torch.long))
        self.register_buffer("n_skipped_buffer", torch.zeros((), dtype=torch.long))
        self.register_buffer("fitted_buffer", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ bookkeeping
    @property
    def target(self) -> str:
        """The target's text, ``str(spec)``."""
        return str(self.spec)

    @property
    def fitted(self) -> bool:
        """Whether the standardisation has been set (by :meth:`fit` or given)."""
        return bool(self.fitted_buffer)

    @property
    def n_fit(self) -> int:
        """Train targets used by the last :meth:`fit`."""
        return int(self.n_fit_buffer)

    @property
    def n_skipped(self) -> int:
        """Train targets skipped (NaN or None) by the last :meth:`fit`."""
        return int(self.n_skipped_buffer)

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the buffers (follows ``.to(dtype)``); encoded targets use it."""
        for b in self.buffers():
            if b.is_floating_point():
                return b.dtype
        return self._init_dtype

    @property
    def _device(self) -> torch.device:
        return self.fitted_buffer.device

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise RuntimeError(
                f"target {self.target!r}: the head is not fitted; call fit(train_values) "
                "first (or load a state_dict)"
            )

    def _mark_fitted(self, n_fit: int, n_skipped: int) -> None:
        self.n_fit_buffer.fill_(n_fit)
        self.n_skipped_buffer.fill_(n_skipped)
        self.fitted_buffer.fill_(True)

    def _check_pred(self, pred: object, name: str = "pred") -> torch.Tensor:
        if not isinstance(pred, torch.Tensor):
            raise TypeError(
                f"target {self.target!r}: {name} must be a torch.Tensor, got {type(pred).__name__}"
            )
        if not pred.dtype.is_floating_point:
            raise TypeError(f"target {self.target!r}: {name} must be floating, got {pred.dtype}")
        if pred.dim() != 2 or pred.shape[1] != self.dim:
            raise ValueError(
                f"target {self.target!r}: {name} must have shape [B, {self.dim}] "
                f"(irreps {self.irreps_in}), got {tuple(pred.shape)}"
            )
        return pred

    def _values_1d(self, values: Any) -> np.ndarray:
        """Scalar targets -> float64 [n] (None -> NaN); clear errors naming the target."""
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError(
                f"target {self.target!r}: values must be a sequence of numbers, got "
                f"{type(values).__name__}"
            )
        items = [np.nan if v is None else v for v in list(values)]
        try:
            arr = np.asarray(items, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"target {self.target!r}: values must be real numbers (None/NaN for missing): {err}"
            ) from err
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ValueError(
                f"target {self.target!r}: expected one number per structure (shape [n]), "
                f"got shape {arr.shape}"
            )
        if np.isinf(arr).any():
            raise ValueError(f"target {self.target!r}: values contain ±inf")
        return arr

    # ------------------------------------------------------------------ interface
    def fit(self, values: Sequence[Any]) -> None:
        """Set the standardisation from TRAIN targets in physical units."""
        raise NotImplementedError

    def encode(self, values: Sequence[Any]) -> torch.Tensor:
        """Physical values -> encoded targets ``[n, irreps_in.dim]`` (NaN rows: missing)."""
        raise NotImplementedError

    def decode(self, pred: torch.Tensor) -> np.ndarray:
        """Standardised predictions -> physical values (numpy, float64)."""
        raise NotImplementedError

    def decode_extra(self, pred: torch.Tensor) -> dict[str, np.ndarray]:
        """Extra decoded quantities (e.g. the probability of a metal); none by default."""
        self._check_pred(pred)
        return {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised prediction ``[B, irreps_in.dim]`` from the pooled trunk output."""
        return self._check_pred(x, "x")

    def loss(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        *,
        kind: str = "mse",
        delta: float = 1.0,
    ) -> torch.Tensor:
        """Mean regression loss over the rows of ``target`` without NaN (0 if none).

        Parameters
        ----------
        pred : Tensor [B, dim]
            Standardised predictions (``forward``'s output).
        target : Tensor [B, dim]
            ``encode(values)``; rows with a NaN are missing labels and ignored.
        kind : {"mse", "l1", "huber"}
            Squared error per component (default), or the L1 / Huber loss of the norm of
            every irrep copy's residual (see :func:`residual_loss`).
        delta : float
            Huber threshold, standardised units.

        Returns
        -------
        Tensor
            Scalar (dimensionless, standardised units): ``sum_k loss_sums[k] /
            max(1, loss_counts[k])``; no data-dependent branching, so it compiles and never
            synchronises with the device.
        """
        sums = self.loss_sums(pred, target, kind=kind, delta=delta)
        counts = self.loss_counts(self._check_pred(target, "target"))
        total = sums[0] / counts[0].clamp(min=1)
        for s, n in zip(sums[1:], counts[1:]):
            total = total + s / n.clamp(min=1)
        return total

    def loss_sums(
        self, pred: torch.Tensor, target: torch.Tensor, *, kind: str = "mse", delta: float = 1.0
    ) -> list[torch.Tensor]:
        """The loss as sums over rows, one per term (0-dim tensors).

        The sums of any split of the rows add up to the sums of all of them, so dividing
        by :meth:`loss_counts` of the whole batch gives :meth:`loss` exactly, whichever
        process or shard holds which rows. One term here: the residual loss per row summed
        over the labelled rows.
        """
        pred, target = self._check_pair(pred, target)
        valid = ~torch.isnan(target).any(dim=1, keepdim=True)
        diff = torch.where(valid, pred - torch.nan_to_num(target), torch.zeros_like(pred))
        total, terms = residual_loss(diff, self.irreps_in, kind, delta)
        return [total / terms]

    def loss_counts(self, target: torch.Tensor) -> list[torch.Tensor]:
        """Rows each term of :meth:`loss_sums` averages over (0-dim int64 tensors)."""
        return [(~torch.isnan(target).any(dim=1)).sum()]

    # ------------------------------------------------------------------ evaluation
    @property
    def unit(self) -> str:
        """Physical unit of the decoded values (``""`` when the column is not known)."""
        return self.spec.unit

    def decode_all(self, pred: torch.Tensor) -> dict[str, np.ndarray]:
        """``{column: decode(pred)}`` plus every extra output as ``"column.name"``."""
        out = {self.spec.column: np.asarray(self.decode(pred))}
        for name, value in self.decode_extra(pred).items():
            out[f"{self.spec.column}.{name}"] = np.asarray(value)
        return out

    def true_values(self, values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Targets in physical units as an array ``[n, ...]`` and the mask of present rows."""
        arr = self._values_1d(values)
        return arr, ~np.isnan(arr)

    def metrics(
        self, pred: np.ndarray, true: np.ndarray, extra: dict[str, np.ndarray]
    ) -> dict[str, float]:
        """Metrics of decoded predictions against present true values (physical units);
        ``extra`` holds the :meth:`decode_extra` outputs of the same rows."""
        return _metrics.target_metrics(self.spec.kind, self.spec.column, pred, true, extra)

    def mean_baseline(self, train_true: np.ndarray, n: int) -> tuple[np.ndarray, dict]:
        """The mean predictor: the train mean for ``n`` structures (and its extra outputs)."""
        mean = train_true.mean(axis=0)
        return np.broadcast_to(mean, (n, *np.shape(mean))).copy(), {}

    def calibrate(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Fit what a head learns from held-out predictions after training (standardised
        outputs and ``encode``-d targets of the validation split); returns the buffers it
        set, by name. Nothing by default."""
        return {}

    def average(self, members: np.ndarray) -> np.ndarray:
        """The ensemble's prediction from its members' decoded ones ``[K, n, ...]``: their
        mean (a log target averages its logarithms)."""
        return np.asarray(members, dtype=np.float64).mean(0)

    def derived(self, decoded: np.ndarray) -> dict[str, np.ndarray]:
        """Quantities derived from decoded predictions ``[n, ...]`` (none by default)."""
        return {}

    def fixed_entries(self, spread: np.ndarray) -> np.ndarray | None:
        """Entries of decoded predictions ``[n, ...]`` that the crystal's symmetry fixes, told
        by the members' ``spread``: their σ is 0 and no calibration counts them. None (no
        entry) for a scalar."""
        return None

    def _check_pair(
        self, pred: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pred = self._check_pred(pred)
        target = self._check_pred(target, "target")
        if target.shape[0] != pred.shape[0]:
            raise ValueError(
                f"target {self.target!r}: pred and target must have the same batch size, got "
                f"{pred.shape[0]} and {target.shape[0]}"
            )
        return pred, target.to(pred.dtype)

    def extra_repr(self) -> str:
        return f"target={self.target!r}, irreps_in={self.irreps_in}, fitted={self.fitted}"


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and population standard deviation (1.0 when the spread is zero).

    A spread at the level of float64 rounding of the values (identical values whose
    mean is not exactly representable) counts as zero: dividing by it would blow rounding
    noise up to unit size.
    """
    mean = float(x.mean())
    std = float(x.std())
    noise = 64 * np.finfo(np.float64).eps * float(np.abs(x).max(initial=0.0))
    if not std > noise:
        std = 1.0
    return mean, std
