"""Scalar targets: standardised values (``scalar``) and standardised log10 moduli (``log``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from xtalnet.heads.base import Head, mean_std
from xtalnet.heads.spec import TargetSpec

__all__ = ["LogHead", "ScalarHead"]


class ScalarHead(Head):
    """A real scalar standardised with the train mean μ and standard deviation σ.

    ``encode(y) = (y − μ) / σ``, ``decode(z) = σ z + μ`` (units of the column, e.g.
    eV/atom for ``formation_energy_per_atom``). σ is the population standard deviation
    (1 if the train values are all equal). Loss: mean squared error.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, spec: TargetSpec, dtype: torch.dtype = torch.float64) -> None:
        super().__init__(spec, "1x0e", dtype)
        self.register_buffer("mean", torch.zeros((), dtype=dtype))
        self.register_buffer("std", torch.ones((), dtype=dtype))

    def _transform(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def _inverse(self, arr: np.ndarray) -> np.ndarray:
        return arr

    def fit(self, values: Sequence[Any]) -> None:
        """Mean and standard deviation of the finite train targets (NaN/None skipped).

        Parameters
        ----------
        values : sequence of float
            Train targets in the column's physical units.
        """
        arr = self._values_1d(values)
        ok = ~np.isnan(arr)
        if not ok.any():
            raise ValueError(
                f"target {self.target!r}: no finite train values to fit "
                f"({arr.size} given, all NaN/None)"
            )
        mean, std = mean_std(self._transform(arr[ok]))
        self.mean.fill_(mean)
        self.std.fill_(std)
        self._mark_fitted(int(ok.sum()), int((~ok).sum()))

    def encode(self, values: Sequence[Any]) -> torch.Tensor:
        """Physical values [n] -> standardised targets [n, 1] (NaN for missing values)."""
        self._require_fitted()
        arr = self._values_1d(values)
        z = (self._transform(arr) - float(self.mean)) / float(self.std)
        return torch.as_tensor(z, dtype=self.dtype, device=self._device).reshape(-1, 1)

    def decode(self, pred: torch.Tensor) -> np.ndarray:
        """Standardised predictions [B, 1] -> physical values [B] (float64)."""
        self._require_fitted()
        z = self._check_pred(pred).detach().cpu().double().numpy()[:, 0]
        return self._inverse(z * float(self.std) + float(self.mean))


class LogHead(ScalarHead):
    """A positive modulus (GPa) modelled as standardised ``log10(value)``.

    Like matbench ``log_kvrh``/``log_gvrh``: ``encode(y) = (log10 y − μ) / σ`` with μ, σ
    the mean and standard deviation of ``log10`` of the train values; ``decode`` returns
    GPa (``10 ** (σ z + μ)``) and ``decode_extra`` the ``log10`` values.

    Non-positive values have no logarithm: :meth:`fit` and :meth:`encode` raise
    ``ValueError`` naming the target and how many there are (filter them, or model the
    column with kind ``scalar``).
    """

    def _transform(self, arr: np.ndarray) -> np.ndarray:
        bad = ~np.isnan(arr) & (arr <= 0)
        if bad.any():
            raise ValueError(
                f"target {self.target!r} (kind 'log'): {int(bad.sum())} of {arr.size} values "
                f"are <= 0 (first: {arr[bad][:3].tolist()}), log10 needs positive values; "
                "filter them or use kind 'scalar'"
            )
        return np.log10(arr)

    def _inverse(self, arr: np.ndarray) -> np.ndarray:
        return np.power(10.0, arr)

    def average(self, members: np.ndarray) -> np.ndarray:
        """The geometric mean of the members' moduli (the mean of their log10)."""
        return np.power(10.0, np.log10(np.asarray(members, dtype=np.float64)).mean(0))

    def decode_extra(self, pred: torch.Tensor) -> dict[str, np.ndarray]:
        """``{"log10": σ z + μ}``: the predicted ``log10`` of the modulus in GPa, [B]."""
        self._require_fitted()
        z = self._check_pred(pred).detach().cpu().double().numpy()[:, 0]
        return {"log10": z * float(self.std) + float(self.mean)}
