"""Targets: kinds, standardisation, losses and physical units (issue 9, "Heads").

A target is a data column plus a kind, written ``COLUMN[:KIND]``:

- ``scalar``: any real column, standardised with the train mean and standard deviation.
- ``log``: positive moduli such as ``K_VRH`` (GPa); the head works on ``log10(value)``
  (like matbench ``log_kvrh``) standardised on the train data, and decodes back to GPa.
- ``band_gap``: thesis eq. 2.1, ``gap ~ B(p) (σ D(0, 1) + μ)²``: a Bernoulli logit for
  ``gap > 0`` and the standardised square root ``z = (√gap − μ) / σ`` of the non-zero gaps.
- ``tensor=FORMULA``: any Cartesian tensor with index-permutation symmetries declared by a
  :class:`gaunt_elastic.CartesianTensor` formula (``"ijkl=jikl=klij"``, ``"ij=ji"``,
  ``"ijk=ikj"``, ...). The trunk delivers the tensor's irreps; the head maps them to the
  Cartesian tensor through the exact orthonormal change of basis.

Well-known columns get their kind by default (see :data:`DEFAULT_KINDS`), so ``"band_gap"``,
``"elastic_tensor"`` and ``"K_VRH"`` need no ``:KIND``.

Every head is an ``nn.Module`` without parameters; its standardisation lives in buffers, so
it travels with ``state_dict``. The trunk's pooled output ``x [B, irreps_in.dim]`` goes in,
``forward`` gives the standardised prediction, ``loss(pred, encode(values))`` trains it and
``decode(pred)`` returns physical units as numpy arrays.

Standardisation is equivariant by construction: one scale per irrep copy (block) and a
mean shift on ``0e`` blocks only (a mean with ``l > 0`` or odd parts would single out a
direction in space).

Conventions of the Materials Project data (checked against ``XTAL_SHARED_DATA``):

- elastic stiffness ``6 × 6`` Voigt in GPa, order xx, yy, zz, yz, xz, xy, no factors of 2;
- piezoelectric (stress) tensor ``e_iJ`` ``3 × 6`` in C/m², same Voigt order on the
  symmetric pair ``jk``, no factors of 2 (``e_iJ = e_ijk``): the real MP tensors of
  point groups 3m and 32 (whose symmetry couples normal and shear columns) are invariant
  under their crystal's point group only with this convention (tested);
- dielectric tensors ``3 × 3`` (dimensionless), symmetric.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gaunt_elastic import CartesianTensor
from rsh import Irreps
from torch import nn
from torch.nn import functional as F

__all__ = [
    "DEFAULT_KINDS",
    "KINDS",
    "LOSSES",
    "VOIGT_COLUMNS",
    "VOIGT_PAIRS",
    "BandGapHead",
    "Head",
    "LogHead",
    "ScalarHead",
    "TargetSpec",
    "TensorHead",
    "check_loss",
    "make_head",
    "residual_loss",
]

#: Regression losses of :meth:`Head.loss` (the ``loss`` training option).
LOSSES: tuple[str, ...] = ("mse", "l1", "huber")

#: Kinds of target.
KINDS: tuple[str, ...] = ("scalar", "log", "band_gap", "tensor")

_ELASTIC = "ijkl=jikl=klij"
_SYM2 = "ij=ji"
_PIEZO = "ijk=ikj"

#: Default ``(kind, formula)`` of well-known columns; any other column is ``scalar``.
DEFAULT_KINDS: dict[str, tuple[str, str | None]] = {
    "band_gap": ("band_gap", None),
    "elastic_tensor": ("tensor", _ELASTIC),
    "elastic_tensor_original": ("tensor", _ELASTIC),
    "elasticity.elastic_tensor": ("tensor", _ELASTIC),
    "elastic_tensor_voigt": ("tensor", _ELASTIC),
    "elastic_tensor_full": ("tensor", _ELASTIC),
    "dielectric": ("tensor", _SYM2),
    "e_total": ("tensor", _SYM2),
    "e_electronic": ("tensor", _SYM2),
    "piezoelectric_tensor": ("tensor", _PIEZO),
    "K_VRH": ("log", None),
    "G_VRH": ("log", None),
    "K_wien2k": ("log", None),
    "bulk_modulus_vrh": ("log", None),
    "shear_modulus_vrh": ("log", None),
}

#: Tensor columns whose decoded values use Voigt notation (others are full Cartesian).
VOIGT_COLUMNS: frozenset[str] = frozenset(
    {
        "elastic_tensor",
        "elastic_tensor_original",
        "elasticity.elastic_tensor",
        "elastic_tensor_voigt",
        "piezoelectric_tensor",
    }
)

#: Voigt index -> Cartesian pair: 1=xx, 2=yy, 3=zz, 4=yz, 5=xz, 6=xy (0-based here).
VOIGT_PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


@functools.lru_cache(maxsize=32)
def _cartesian_tensor(formula: str) -> CartesianTensor:
    return CartesianTensor(formula)


def _tensor_type(formula: str, target: str) -> CartesianTensor:
    """Cached ``CartesianTensor(formula)``; its errors re-raised naming the target."""
    try:
        ct = _cartesian_tensor(formula)
    except (TypeError, ValueError) as err:
        raise ValueError(f"target {target!r}: invalid tensor formula {formula!r}: {err}") from err
    if ct.dim == 0:
        raise ValueError(
            f"target {target!r}: tensor formula {formula!r} admits only the zero tensor "
            "(its symmetries contradict each other); nothing to predict"
        )
    return ct


@dataclass(frozen=True)
class TargetSpec:
    """One prediction target: a data column and how to model it.

    Parameters
    ----------
    column : str
        Name of the data column (e.g. ``"formation_energy_per_atom"``), non-empty, no ``:``.
    kind : str
        One of :data:`KINDS`.
    formula : str or None
        Index-symmetry formula of a ``tensor`` target (a :class:`gaunt_elastic.CartesianTensor`
        formula such as ``"ij=ji"``); ``None`` for every other kind.

    Notes
    -----
    ``str(spec)`` is the shortest text that :meth:`parse` maps back to ``spec``: the bare
    column when the kind (and formula) are the column's default, else ``COLUMN:KIND`` or
    ``COLUMN:tensor=FORMULA``.
    """

    column: str
    kind: str
    formula: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column.strip():
            raise ValueError(f"target column must be a non-empty str, got {self.column!r}")
        if ":" in self.column or self.column != self.column.strip():
            raise ValueError(
                f"target column must not contain ':' or surrounding spaces, got {self.column!r}"
            )
        if self.kind not in KINDS:
            raise ValueError(
                f"target {self.column!r}: unknown kind {self.kind!r}; allowed kinds are "
                f"{', '.join(KINDS)} (tensor as 'tensor=FORMULA', e.g. 'tensor=ij=ji')"
            )
        if isinstance(self.formula, str):
            object.__setattr__(self, "formula", "".join(self.formula.split()))
        if self.kind == "tensor":
            if not isinstance(self.formula, str) or not self.formula:
                raise ValueError(
                    f"target {self.column!r}: kind 'tensor' needs a formula such as 'ij=ji' "
                    f"(write '{self.column}:tensor=FORMULA'), got formula={self.formula!r}"
                )
            _tensor_type(self.formula, self.column)
        elif self.formula is not None:
            raise ValueError(
                f"target {self.column!r}: only kind 'tensor' takes a formula, got kind "
                f"{self.kind!r} with formula {self.formula!r}"
            )

    @classmethod
    def parse(cls, text: str | TargetSpec) -> TargetSpec:
        """Parse ``"COLUMN[:KIND]"``; KIND is scalar, log, band_gap or tensor[=FORMULA].

        Parameters
        ----------
        text : str or TargetSpec
            E.g. ``"band_gap"``, ``"K_VRH:log"``, ``"e_total:tensor=ij=ji"``. A bare
            ``tensor`` kind takes the column's default formula. A TargetSpec is returned as is.

        Returns
        -------
        TargetSpec

        Raises
        ------
        ValueError
            Empty column, unknown kind, a formula that gaunt_elastic rejects, or ``tensor``
            without a formula on a column that has no default one; the message names the
            target.
        """
        if isinstance(text, TargetSpec):
            return text
        if not isinstance(text, str):
            raise TypeError(
                f"target must be a str 'COLUMN[:KIND]' or a TargetSpec, got "
                f"{type(text).__name__} {text!r}"
            )
        column, sep, kind_text = text.strip().partition(":")
        column = column.strip()
        if not column:
            raise ValueError(f"target {text!r}: empty column name; expected 'COLUMN[:KIND]'")
        default_kind, default_formula = DEFAULT_KINDS.get(column, ("scalar", None))
        if not sep:
            return cls(column, default_kind, default_formula)
        kind_text = kind_text.replace(" ", "")
        kind, eq, formula_text = kind_text.partition("=")
        if kind == "tensor":
            formula = formula_text if eq else default_formula
            if not eq and default_kind != "tensor":
                raise ValueError(
                    f"target {text!r}: column {column!r} has no default tensor formula; "
                    f"write '{column}:tensor=FORMULA' (e.g. 'tensor=ij=ji')"
                )
            return cls(column, "tensor", formula)
        if eq:
            raise ValueError(
                f"target {text!r}: only kind 'tensor' takes '=FORMULA', got kind {kind!r}; "
                f"allowed kinds are {', '.join(KINDS)}"
            )
        if kind not in KINDS:
            raise ValueError(
                f"target {text!r}: unknown kind {kind!r}; allowed kinds are "
                f"{', '.join(KINDS)} (tensor as 'tensor=FORMULA', e.g. 'tensor=ij=ji')"
            )
        return cls(column, kind, None)

    def __str__(self) -> str:
        if DEFAULT_KINDS.get(self.column, ("scalar", None)) == (self.kind, self.formula):
            return self.column
        if self.kind == "tensor":
            return f"{self.column}:tensor={self.formula}"
        return f"{self.column}:{self.kind}"


def _check_dtype(dtype: object) -> torch.dtype:
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
        self._init_dtype = _check_dtype(dtype)
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
            Scalar (dimensionless, standardised units); no data-dependent branching, so it
            compiles and never synchronises with the device.
        """
        pred, target = self._check_pair(pred, target)
        valid = ~torch.isnan(target).any(dim=1, keepdim=True)
        diff = torch.where(valid, pred - torch.nan_to_num(target), torch.zeros_like(pred))
        total, terms = residual_loss(diff, self.irreps_in, kind, delta)
        return total / (valid.sum().clamp(min=1) * terms)

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


def _mean_std(x: np.ndarray) -> tuple[float, float]:
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
        mean, std = _mean_std(self._transform(arr[ok]))
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

    def decode_extra(self, pred: torch.Tensor) -> dict[str, np.ndarray]:
        """``{"log10": σ z + μ}``: the predicted ``log10`` of the modulus in GPa, [B]."""
        self._require_fitted()
        z = self._check_pred(pred).detach().cpu().double().numpy()[:, 0]
        return {"log10": z * float(self.std) + float(self.mean)}


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
        mu, sigma = _mean_std(np.sqrt(nonzero))
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

    def loss(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        *,
        kind: str = "mse",
        delta: float = 1.0,
    ) -> torch.Tensor:
        """BCE(logit, is_gap) over labelled rows + regression loss of z over rows with a
        non-zero gap (``kind``: squared error by default, ``"l1"`` |dz|, ``"huber"``).

        Each term is a mean over its rows (a term without rows is 0); rows of ``target``
        with a NaN are missing labels and ignored. Dimensionless scalar tensor.
        """
        pred, target = self._check_pair(pred, target)
        valid = ~torch.isnan(target).any(dim=1)
        target = torch.nan_to_num(target)
        zero = torch.zeros_like(pred[:, 0])
        bce_rows = F.binary_cross_entropy_with_logits(pred[:, 0], target[:, 0], reduction="none")
        bce = torch.where(valid, bce_rows, zero).sum() / valid.sum().clamp(min=1)
        gap = valid & (target[:, 0] > 0.5)
        dz = torch.where(gap, pred[:, 1] - target[:, 1], zero)
        reg, _ = residual_loss(dz[:, None], Irreps("0e"), kind, delta)
        return bce + reg / gap.sum().clamp(min=1)

    def decode(self, pred: torch.Tensor) -> np.ndarray:
        """Band gaps [B], eV: 0 where P(gap > 0) < 0.5, else ``(σ z + μ)²``."""
        self._require_fitted()
        x = self._check_pred(pred).detach().cpu().double().numpy()
        prob_gap = 1.0 / (1.0 + np.exp(-x[:, 0]))
        gap = (x[:, 1] * float(self.sigma) + float(self.mu)) ** 2
        return np.where(prob_gap < 0.5, 0.0, gap)

    def decode_extra(self, pred: torch.Tensor) -> dict[str, np.ndarray]:
        """``{"p_metal": 1 − sigmoid(logit)}``: the probability of a zero gap, [B]."""
        x = self._check_pred(pred).detach().cpu().double().numpy()
        return {"p_metal": 1.0 / (1.0 + np.exp(x[:, 0]))}


def _pair_is_symmetric(ct: CartesianTensor, a: int, b: int) -> bool:
    """Whether swapping indices a, b leaves every tensor of ``ct`` unchanged."""
    rank = ct.rank
    idx = torch.arange(3**rank).reshape((3,) * rank)
    perm = list(range(rank))
    perm[a], perm[b] = perm[b], perm[a]
    swap = torch.eye(3**rank, dtype=torch.float64)[idx.permute(*perm).reshape(-1)]
    p = ct.projector()
    return bool(torch.allclose(swap @ p, p, atol=1e-12))


def _voigt_layout(ct: CartesianTensor) -> tuple[tuple[int, ...], np.ndarray, np.ndarray] | None:
    """Voigt compression of ``ct`` (rank >= 3): adjacent symmetric index pairs -> 6.

    Returns ``(shape, voigt_to_cart, cart_to_voigt)``: flat index maps between the Voigt
    array and the full Cartesian array, or ``None`` when no pair compresses.
    """
    if ct.rank < 3:
        return None
    slots: list[tuple[int, ...]] = []
    i = 0
    while i < ct.rank:
        if i + 1 < ct.rank and _pair_is_symmetric(ct, i, i + 1):
            slots.append((i, i + 1))
            i += 2
        else:
            slots.append((i,))
            i += 1
    if all(len(s) == 1 for s in slots):
        return None
    shape = tuple(6 if len(s) == 2 else 3 for s in slots)
    options = [VOIGT_PAIRS if len(s) == 2 else tuple((a,) for a in range(3)) for s in slots]
    voigt_to_cart = np.zeros(int(np.prod(shape)), dtype=np.int64)
    cart_to_voigt = np.zeros(3**ct.rank, dtype=np.int64)
    for v_flat, v_multi in enumerate(np.ndindex(*shape)):
        cart: list[int] = []
        for opts, k in zip(options, v_multi):
            cart.extend(opts[k])
        voigt_to_cart[v_flat] = np.ravel_multi_index(tuple(cart), (3,) * ct.rank)
    for c_flat, c_multi in enumerate(np.ndindex(*((3,) * ct.rank))):
        v_multi = []
        for s in slots:
            if len(s) == 2:
                pair = tuple(sorted((c_multi[s[0]], c_multi[s[1]])))
                v_multi.append([tuple(sorted(q)) for q in VOIGT_PAIRS].index(pair))
            else:
                v_multi.append(c_multi[s[0]])
        cart_to_voigt[c_flat] = np.ravel_multi_index(tuple(v_multi), shape)
    return shape, voigt_to_cart, cart_to_voigt


class TensorHead(Head):
    """Any Cartesian tensor with index symmetries, predicted through its irreps.

    The formula's :class:`gaunt_elastic.CartesianTensor` gives the irreps (e.g. elastic
    ``"ijkl=jikl=klij"`` -> ``2x0e+2x2e+1x4e``, dielectric ``"ij=ji"`` -> ``1x0e+1x2e``,
    piezoelectric ``"ijk=ikj"`` -> ``2x1o+1x2o+1x3o``, parity (-1)^rank) and the exact
    orthonormal change of basis Q: ``x = Q vec(T)``, ``vec(T) = Qᵀ x``.

    Parameters
    ----------
    spec : TargetSpec
        A ``tensor`` target.
    dtype : torch.dtype
    symmetry_rtol : float
        Inputs are projected onto the formula's symmetric tensors (the part a prediction
        can represent); a tensor whose deviation from the symmetry exceeds
        ``symmetry_rtol × max|T|`` is rejected with ``ValueError`` (a wrong layout, not
        numerical noise). Default 0.05: real MP dielectric tensors (DFPT) deviate by up to
        1.8 %; elastic and piezoelectric tensors are exactly symmetric. Use ``math.inf``
        to always project, a small value such as 1e-6 to demand exact symmetry.

    Notes
    -----
    Inputs (``fit``/``encode``) are per structure either the full Cartesian array
    ``[3] * rank`` or, where the formula has symmetric adjacent index pairs and rank >= 3,
    its Voigt form (pairs -> 6, order xx, yy, zz, yz, xz, xy, no factors of 2): elastic
    ``6 × 6`` GPa, piezoelectric ``3 × 6`` C/m². Items may be nested lists, arrays or
    JSON strings (as in the Materials Project CSV files); None or any NaN entry marks a
    missing target. ``decode`` returns the Voigt form for :data:`VOIGT_COLUMNS` and the
    Cartesian form otherwise, in the units of the inputs.

    Standardisation (equivariant): for each irrep copy (block) b, ``x_b -> (x_b − m_b) /
    s_b`` with ``m_b`` the train mean for ``0e`` blocks (0 for every other block) and
    ``s_b² `` the train mean square of ``x_b − m_b`` over structures and components. A
    block that is zero over the whole train set gets the root mean square of the other
    blocks as its scale.
    """

    mean: torch.Tensor
    scale: torch.Tensor
    basis: torch.Tensor

    def __init__(
        self,
        spec: TargetSpec,
        dtype: torch.dtype = torch.float64,
        *,
        symmetry_rtol: float = 0.05,
    ) -> None:
        if not isinstance(spec, TargetSpec) or spec.kind != "tensor" or spec.formula is None:
            raise ValueError(f"TensorHead needs a 'tensor' TargetSpec, got {spec!r}")
        ct = _tensor_type(spec.formula, spec.column)
        # Irreps "MULxLp" in the order of CartesianTensor's components (sorted by l).
        super().__init__(spec, ct.irreps, dtype)
        self.tensor_type = ct
        self.rank = ct.rank
        if (
            isinstance(symmetry_rtol, bool)
            or not isinstance(symmetry_rtol, (int, float))
            or not symmetry_rtol >= 0
        ):
            raise ValueError(
                f"target {spec.column!r}: symmetry_rtol must be a number >= 0 (math.inf "
                f"allowed), got {symmetry_rtol!r}"
            )
        self.symmetry_rtol = float(symmetry_rtol)
        self.ls: list[int] = ct.ls
        self.cartesian_shape: tuple[int, ...] = (3,) * ct.rank
        self._voigt = _voigt_layout(ct)
        self.voigt_shape: tuple[int, ...] | None = self._voigt[0] if self._voigt else None
        self.output_layout = (
            "voigt" if spec.column in VOIGT_COLUMNS and self._voigt is not None else "cartesian"
        )
        # One block per irrep copy: block index of every component, and which blocks are 0e.
        block_of: list[int] = []
        is_0e: list[bool] = []
        for irrep in self.irreps_in:
            for _ in range(irrep.mul):
                block_of.extend([len(is_0e)] * (2 * irrep.l + 1))
                is_0e.append(irrep.l == 0 and irrep.parity == 1)
        assert [l for irrep in self.irreps_in for l in [irrep.l] * irrep.mul] == self.ls
        self._block_of = np.asarray(block_of, dtype=np.int64)
        self._is_0e = is_0e
        self.register_buffer("basis", ct.change_of_basis(dtype), persistent=False)
        self.register_buffer("mean", torch.zeros(ct.dim, dtype=dtype))
        self.register_buffer("scale", torch.ones(ct.dim, dtype=dtype))

    @property
    def output_shape(self) -> tuple[int, ...]:
        """Shape of one decoded tensor (Voigt or Cartesian, see the class notes)."""
        if self.output_layout == "voigt":
            assert self.voigt_shape is not None
            return self.voigt_shape
        return self.cartesian_shape

    def _allowed_shapes(self) -> str:
        shapes = [self.cartesian_shape]
        if self.voigt_shape is not None:
            shapes.append(self.voigt_shape)
        return " or ".join(str(list(s)) for s in shapes)

    def _cartesian_flat(self, values: Any) -> tuple[np.ndarray, np.ndarray]:
        """Inputs -> (float64 [n, 3**rank] full Cartesian, bool [n] missing)."""
        if isinstance(values, torch.Tensor):
            values = values.detach().cpu().numpy()
        if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
            raise TypeError(
                f"target {self.target!r}: values must be a sequence of tensors (one per "
                f"structure), got {type(values).__name__}"
            )
        items = list(values)
        out = np.full((len(items), 3**self.rank), np.nan)
        missing = np.zeros(len(items), dtype=bool)
        for n, item in enumerate(items):
            if item is None or (isinstance(item, float) and math.isnan(item)):
                missing[n] = True
                continue
            if isinstance(item, (str, bytes)):
                try:
                    item = json.loads(item)
                except json.JSONDecodeError as err:
                    raise ValueError(
                        f"target {self.target!r}: value {n} is a string that is not JSON: {err}"
                    ) from err
            try:
                arr = np.asarray(item, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ValueError(
                    f"target {self.target!r}: value {n} is not a numeric array: {err}"
                ) from err
            if arr.shape == self.cartesian_shape:
                flat = arr.reshape(-1)
            elif self._voigt is not None and arr.shape == self._voigt[0]:
                flat = arr.reshape(-1)[self._voigt[2]]
                # Voigt storage of a pair tensor must itself respect the other symmetries
                # (e.g. the major symmetry C_IJ = C_JI of the elastic 6x6 matrix): checked
                # below on the Cartesian tensor it expands to.
            else:
                raise ValueError(
                    f"target {self.target!r} (tensor {self.spec.formula!r}): value {n} has "
                    f"shape {list(arr.shape)}, allowed {self._allowed_shapes()}"
                )
            if np.isinf(flat).any():
                raise ValueError(f"target {self.target!r}: value {n} contains ±inf")
            if np.isnan(flat).any():
                missing[n] = True
                continue
            out[n] = flat
        return out, missing

    def _to_irreps(self, flat: np.ndarray, missing: np.ndarray) -> np.ndarray:
        """[n, 3**rank] -> irreps [n, dim] float64 (NaN rows where missing)."""
        x = np.full((flat.shape[0], self.tensor_type.dim), np.nan)
        ok = ~missing
        if ok.any():
            rows = flat[ok]
            proj = self.tensor_type.projector().numpy()
            deviation = np.abs(rows - rows @ proj.T).max(axis=1)
            size = np.abs(rows).max(axis=1)
            bad = np.flatnonzero(deviation > self.symmetry_rtol * size)
            if bad.size:
                n = int(np.flatnonzero(ok)[bad[0]])
                raise ValueError(
                    f"target {self.target!r}: {bad.size} tensor(s) lack the symmetry "
                    f"{self.spec.formula!r} (first: value {n}, deviation "
                    f"{deviation[bad[0]]:.3e} > symmetry_rtol {self.symmetry_rtol:g} x "
                    f"max|T| {size[bad[0]]:.3e}); check the layout or raise symmetry_rtol"
                )
            t = torch.as_tensor(rows).reshape(-1, *self.cartesian_shape)
            x[ok] = self.tensor_type.from_cartesian(t, symmetrize=True).numpy()
        return x

    def fit(self, values: Sequence[Any]) -> None:
        """Per-block standardisation from train tensors (missing ones skipped, counted).

        Parameters
        ----------
        values : sequence of array-like
            One tensor per structure, Voigt or Cartesian (see the class notes), in the
            column's physical units (GPa, C/m², ...).
        """
        flat, missing = self._cartesian_flat(values)
        if missing.all():
            raise ValueError(
                f"target {self.target!r}: no train tensors to fit ({missing.size} given, "
                "all missing)"
            )
        x = self._to_irreps(flat, missing)[~missing]
        n_blocks = len(self.ls)
        mean = np.zeros(self.tensor_type.dim)
        ms = np.zeros(n_blocks)
        for b in range(n_blocks):
            cols = self._block_of == b
            xb = x[:, cols]
            if self._is_0e[b]:
                mean[cols] = xb.mean()
            ms[b] = float(((xb - mean[cols]) ** 2).mean())
        scale = np.sqrt(ms)
        degenerate = ~(ms > 1e-24 * max(float(ms.max()), 1e-300))
        if degenerate.any():
            fallback = float(np.sqrt(ms[~degenerate].mean())) if (~degenerate).any() else 1.0
            scale[degenerate] = fallback
        self.mean.copy_(torch.as_tensor(mean))
        self.scale.copy_(torch.as_tensor(scale[self._block_of]))
        self._mark_fitted(int((~missing).sum()), int(missing.sum()))

    def block_scales(self) -> np.ndarray:
        """One scale per irrep copy, in the order of :attr:`ls` (units of the inputs)."""
        starts = np.searchsorted(self._block_of, np.arange(len(self.ls)))
        return self.scale.detach().cpu().double().numpy()[starts]

    def encode(self, values: Sequence[Any]) -> torch.Tensor:
        """Tensors -> standardised irreps [n, dim] (NaN rows for missing tensors)."""
        self._require_fitted()
        flat, missing = self._cartesian_flat(values)
        x = self._to_irreps(flat, missing)
        mean = self.mean.detach().cpu().double().numpy()
        scale = self.scale.detach().cpu().double().numpy()
        return torch.as_tensor((x - mean) / scale, dtype=self.dtype, device=self._device)

    def decode_irreps(self, pred: torch.Tensor) -> torch.Tensor:
        """Standardised predictions [B, dim] -> irreps in physical units [B, dim] (float64)."""
        self._require_fitted()
        x = self._check_pred(pred).detach().cpu().double()
        return x * self.scale.detach().cpu().double() + self.mean.detach().cpu().double()

    def decode(self, pred: torch.Tensor) -> np.ndarray:
        """Standardised predictions [B, dim] -> tensors [B, *output_shape] (float64)."""
        x = self.decode_irreps(pred)
        flat = (x @ self.basis.detach().cpu().double()).numpy()
        if self.output_layout == "voigt":
            assert self._voigt is not None
            shape, voigt_to_cart, _ = self._voigt
            return flat[:, voigt_to_cart].reshape(-1, *shape)
        return flat.reshape(-1, *self.cartesian_shape)


def make_head(spec: str | TargetSpec, dtype: torch.dtype = torch.float64, **options: Any) -> Head:
    """The head of a target.

    Parameters
    ----------
    spec : str or TargetSpec
        ``"COLUMN[:KIND]"`` (see :meth:`TargetSpec.parse`) or a parsed spec.
    dtype : torch.dtype
        ``torch.float32`` or ``torch.float64``.
    **options
        Passed to the head: ``p``, ``mu``, ``sigma`` for ``band_gap``; ``symmetry_rtol``
        for ``tensor``. Any other option raises ``TypeError``.

    Returns
    -------
    Head
        :class:`ScalarHead`, :class:`LogHead`, :class:`BandGapHead` or :class:`TensorHead`.
    """
    spec = TargetSpec.parse(spec)
    _check_dtype(dtype)
    cls = _HEADS[spec.kind]
    allowed = _OPTIONS[spec.kind]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"target {str(spec)!r}: unknown option(s) {unknown} for kind {spec.kind!r}; "
            f"allowed: {list(allowed) or 'none'}"
        )
    return cls(spec, dtype, **options)


_HEADS: dict[str, Any] = {
    "scalar": ScalarHead,
    "log": LogHead,
    "band_gap": BandGapHead,
    "tensor": TensorHead,
}
_OPTIONS: dict[str, tuple[str, ...]] = {
    "scalar": (),
    "log": (),
    "band_gap": ("p", "mu", "sigma"),
    "tensor": ("symmetry_rtol",),
}
