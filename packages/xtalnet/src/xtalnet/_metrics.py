"""Metrics of predictions against targets, in physical units (numpy only).

Scalars: MAE, RMSE, R². Band gap adds metal / non-metal accuracy and ROC-AUC of the
probability of a gap. Tensors: MAE over the stored entries (36 Voigt entries for the
elastic tensor), mean Frobenius relative error, and for elastic tensors the Voigt-Reuss-Hill
bulk and shear moduli (:func:`mp_audit.vrh_moduli`, the one home of that formula).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from xtalnet.dataset import Sample
    from xtalnet.ensemble import Ensemble
    from xtalnet.network import Network

__all__ = [
    "average_ranks",
    "baseline_metrics",
    "calibration",
    "mae",
    "metrics_of",
    "r2",
    "rmse",
    "roc_auc",
    "scalar_metrics",
    "sigma_fit",
    "sigma_scale",
    "spearman",
    "spearman_if_exact",
    "stated",
    "target_metrics",
    "vrh_moduli",
    "widened_sigma",
]


def _pair(pred: Any, true: Any) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.shape != t.shape:
        raise ValueError(f"pred and true must have the same shape, got {p.shape} and {t.shape}")
    return p, t


def mae(pred: Any, true: Any) -> float:
    """Mean absolute error over all entries."""
    p, t = _pair(pred, true)
    return float(np.abs(p - t).mean()) if p.size else math.nan


def rmse(pred: Any, true: Any) -> float:
    """Root mean squared error over all entries."""
    p, t = _pair(pred, true)
    return float(np.sqrt(((p - t) ** 2).mean())) if p.size else math.nan


def r2(pred: Any, true: Any) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot (NaN when the targets are constant)."""
    p, t = _pair(pred, true)
    ss_tot = float(((t - t.mean()) ** 2).sum()) if t.size else 0.0
    if not ss_tot > 0:
        return math.nan
    return 1.0 - float(((p - t) ** 2).sum()) / ss_tot


def roc_auc(score: Any, label: Any) -> float:
    """Area under the ROC curve of ``score`` for binary ``label`` (ties count one half).

    Equal to the Mann-Whitney probability P(score_pos > score_neg) + 0.5 P(equal), computed
    from average ranks; NaN when only one class is present.
    """
    y = np.asarray(label).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_ranks(x: Any) -> np.ndarray:
    """Ranks 1..n of ``x`` (float64), tied values sharing their average rank."""
    s = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < s.size:
        j = i
        while j + 1 < s.size and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation (Pearson's of the average ranks); NaN if one is constant."""
    ra, rb = average_ranks(a), average_ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else math.nan


def spearman_if_exact(sigma: Any, draws: int = 200, seed: int = 0) -> dict[str, float]:
    """The Spearman correlation of |error| with ``sigma`` that errors drawn normal with exactly
    this σ would give on these entries: the mean (``spearman_if_exact``) and the 5th and 95th
    percentiles (``..._p05``, ``..._p95``) over seeded draws. It is the most a σ with this
    spread of values can reach on this many entries (NaN where σ is constant): a Spearman
    near it says σ ranks the errors as well as an exact σ would."""
    s = np.asarray(sigma, dtype=np.float64).ravel()
    s = s[np.isfinite(s)]
    keys = ("spearman_if_exact", "spearman_if_exact_p05", "spearman_if_exact_p95")
    if s.size < 3 or not float(np.ptp(s)) > 0:
        return dict.fromkeys(keys, math.nan)
    draws = max(20, min(draws, 2_000_000 // s.size))  # large sets: fewer draws suffice
    rng = np.random.default_rng(seed)
    rho = np.array([spearman(np.abs(rng.standard_normal(s.size)) * s, s) for _ in range(draws)])
    return dict(zip(keys, (float(rho.mean()), *map(float, np.percentile(rho, [5, 95])))))


def calibration(error: Any, sigma: Any) -> dict[str, float]:
    """How well a predicted standard deviation ``sigma`` describes the absolute ``error``
    (same shape; every entry counts but a tensor's entries fixed by symmetry, :func:`stated`):
    the fractions of |error| <= sigma and <= 2 sigma (a normal error: 0.683 and 0.954),
    Spearman's correlation of |error| with sigma and what an exact σ would reach
    (:func:`spearman_if_exact`)."""
    e, s = stated(error, sigma)
    if not e.size:
        return {"within_1sigma": math.nan, "within_2sigma": math.nan, "spearman": math.nan,
                **spearman_if_exact(s)}  # fmt: skip
    return {
        "within_1sigma": float((e <= s).mean()),
        "within_2sigma": float((e <= 2 * s).mean()),
        "spearman": spearman(e, s),
        **spearman_if_exact(s),
    }


def stated(error: Any, sigma: Any) -> tuple[np.ndarray, np.ndarray]:
    """|error| and σ of the entries σ speaks for, flat: the finite ones, without a tensor's
    entries of σ = 0 (fixed by the crystal's symmetry: ``Head.fixed_entries``)."""
    e = np.abs(np.asarray(error, dtype=np.float64))
    s = np.asarray(sigma, dtype=np.float64)
    ok = np.isfinite(e) & np.isfinite(s)
    if e.ndim >= 2:
        ok &= s > 0
    return e[ok], s[ok]


#: the fraction of normal errors within two standard deviations, P(|Z| <= 2)
WITHIN_2SIGMA = math.erf(2 / math.sqrt(2))


def sigma_scale(error: Any, sigma: Any) -> float:
    """The factor k that puts :data:`WITHIN_2SIGMA` (95.4 %) of the errors within ``2 k
    sigma``, as for normal errors of standard deviation ``k sigma``: ``k`` = that quantile
    of ``|error| / sigma`` over the entries with ``sigma > 0``, halved (1 if none, or if
    every such error is zero).

    A quantile, not the normal likelihood's ``sqrt(mean((error / sigma)^2))``: a spread
    of few members is now and then tiny where every member is wrong (two members of a
    de Jong ensemble agreed on diamond's C11 to 0.04 GPa, 351 GPa off), and one such
    entry set the mean's scale for all (k = 199: a median σ of 447 GPa for a median error
    of 12). On MP-20 formation energies (5 members) both give k = 2.0 and the same
    coverage."""
    e = np.asarray(error, dtype=np.float64).ravel()
    s = np.asarray(sigma, dtype=np.float64).ravel()
    ok = np.isfinite(e) & np.isfinite(s) & (s > 0)
    if not ok.any():
        return 1.0
    k = float(np.quantile(np.abs(e[ok]) / s[ok], WITHIN_2SIGMA)) / 2
    return k if k > 0 else 1.0


def _per_entry(distance: Any, ndim: int) -> np.ndarray:
    """One distance per structure [n] -> [n, 1, ...] with ``ndim`` axes, to broadcast over a
    tensor target's entries."""
    return np.asarray(distance, dtype=np.float64).reshape((-1,) + (1,) * (ndim - 1))


def widened_sigma(spread: Any, scale: float, weight: float, distance: Any) -> np.ndarray:
    """``scale sqrt(spread^2 + weight distance^2)``: the members' spread [n, ...] widened by
    each structure's distance [n] to the training data (``distance`` may be None where
    ``weight`` is 0)."""
    s = np.asarray(spread, dtype=np.float64)
    if weight > 0:
        if distance is None:
            raise ValueError("σ has a distance term: the distances are needed")
        s = np.sqrt(s**2 + weight * _per_entry(distance, s.ndim) ** 2)
    return s * scale


def sigma_fit(error: Any, spread: Any, distance: Any) -> tuple[float, float]:
    """The scale k and distance weight w of ``sigma = k sqrt(spread^2 + w distance^2)``: w
    maximises the likelihood of normal errors, k then puts 95.4 % of the errors within 2σ
    (:func:`sigma_scale`).

    ``distance`` (one per structure, the leading axis of ``error`` and ``spread``) is
    broadcast over the entries of tensor targets; the entries with ``spread > 0`` count
    (where the members agree exactly, as on band gaps they all decode as metals, the error
    is mostly exactly 0 too: no normal error). For each w of a log grid around
    ``mean(spread^2) / mean(distance^2 | distance > 0)`` (and w = 0) the best k is
    ``sqrt(mean(error^2 / (spread^2 + w distance^2)))``; the pair with the smallest negative
    log-likelihood wins, its w refined between the grid's neighbours; k is fitted last, at
    that w. w stays 0 where fewer than 3 entries have ``distance > 0``; (1, 0) if no entry
    counts or every error is zero.
    """
    e = np.asarray(error, dtype=np.float64)
    s = np.asarray(spread, dtype=np.float64)
    d = np.broadcast_to(_per_entry(distance, e.ndim), e.shape)
    ok = np.isfinite(e) & np.isfinite(s) & np.isfinite(d) & (s > 0)
    e2, s2, d2 = e[ok] ** 2, s[ok] ** 2, d[ok] ** 2
    if not e2.size:
        return 1.0, 0.0
    weights = [0.0]
    if int((d2 > 0).sum()) >= 3:
        scale = max(float(s2.mean()), 1e-300) / float(d2[d2 > 0].mean())
        weights += list(scale * np.logspace(-3, 3, 61))

    def fit(w: float) -> tuple[float, float]:  # (negative log-likelihood, k)
        v = s2 + w * d2
        k2 = float(np.mean(e2 / v))
        if not k2 > 0:  # every error zero: no scale is the likeliest
            return math.inf, 1.0
        return 0.5 * float(np.sum(np.log(k2 * v))) + 0.5 * e2.size, math.sqrt(k2)

    nll, _, w = min((*fit(w), w) for w in weights)
    if w > 0:  # refine log w between the grid's neighbours (golden section)
        lo, hi = math.log(w) - 0.1 * math.log(10), math.log(w) + 0.1 * math.log(10)
        for _ in range(40):
            a, b = hi - 0.618 * (hi - lo), lo + 0.618 * (hi - lo)
            if fit(math.exp(a))[0] < fit(math.exp(b))[0]:
                hi = b
            else:
                lo = a
        w_fine = math.exp(0.5 * (lo + hi))
        if fit(w_fine)[0] < nll:
            w = w_fine
    # the weight by likelihood (the shape of σ), the scale by coverage (see sigma_scale)
    return sigma_scale(e[ok], np.sqrt(s2 + w * d2)), float(w)


def scalar_metrics(pred: Any, true: Any) -> dict[str, float]:
    """``{"mae", "rmse", "r2", "n"}`` of two equal-length arrays."""
    p, t = _pair(pred, true)
    return {"mae": mae(p, t), "rmse": rmse(p, t), "r2": r2(p, t), "n": int(p.shape[0])}


def vrh_moduli(voigt: Any) -> tuple[np.ndarray, np.ndarray]:
    """K_VRH and G_VRH (GPa) of 6x6 Voigt stiffness matrices [n, 6, 6]:
    :func:`mp_audit.vrh_moduli` (imported on first use: ``import xtalnet`` stays light)."""
    from mp_audit import vrh_moduli as moduli

    return moduli(np.asarray(voigt, dtype=np.float64).reshape(-1, 6, 6))


def _log10_mae(pred: np.ndarray, true: np.ndarray) -> float:
    ok = (pred > 0) & (true > 0) & np.isfinite(pred) & np.isfinite(true)
    return float(np.abs(np.log10(pred[ok]) - np.log10(true[ok])).mean()) if ok.any() else math.nan


def target_metrics(
    kind: str, column: str, pred: np.ndarray, true: np.ndarray, extra: dict[str, np.ndarray]
) -> dict[str, float]:
    """Metrics of one target (rows with a missing true value must be removed beforehand).

    Parameters
    ----------
    kind : {"scalar", "log", "band_gap", "tensor"}
    column : str
        Data column (``elastic_tensor`` adds K_VRH / G_VRH).
    pred, true : arrays [n, ...]
        Decoded predictions and targets in physical units.
    extra : dict
        ``decode_extra`` outputs for the same rows (``p_metal`` for the band gap).
    """
    if kind in ("scalar", "log"):
        out = scalar_metrics(pred, true)
        if kind == "log":
            out["mae_log10"] = _log10_mae(np.asarray(pred), np.asarray(true))
        return out
    if kind == "band_gap":
        out = scalar_metrics(pred, true)
        is_gap = np.asarray(true) > 0
        if "p_metal" in extra:
            p_gap = 1.0 - np.asarray(extra["p_metal"])
            out["accuracy"] = float(((p_gap >= 0.5) == is_gap).mean()) if is_gap.size else math.nan
            out["roc_auc"] = roc_auc(p_gap, is_gap)
        return out
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    flat_p, flat_t = p.reshape(p.shape[0], -1), t.reshape(t.shape[0], -1)
    norm = np.linalg.norm(flat_t, axis=1)
    ok = norm > 0
    out = {
        "mae": mae(p, t),
        "rmse": rmse(p, t),
        "r2": r2(flat_p.ravel(), flat_t.ravel()),
        "frobenius_rel": float((np.linalg.norm(flat_p - flat_t, axis=1)[ok] / norm[ok]).mean())
        if ok.any()
        else math.nan,
        "n": int(p.shape[0]),
    }
    if column in ("elastic_tensor", "elastic_tensor_original", "elasticity.elastic_tensor",
                  "elastic_tensor_voigt") and p.shape[1:] == (6, 6):  # fmt: skip
        kp, gp = vrh_moduli(p)
        kt, gt = vrh_moduli(t)
        # moduli of a reference that is not positive definite (mechanically unstable, or a
        # bad fit) are no moduli: one such tensor's K_VRH of -6685 GPa swamped the MAE
        stable = np.linalg.eigvalsh(0.5 * (t + np.swapaxes(t, 1, 2))).min(axis=1) > 0
        use = stable & np.isfinite(kp) & np.isfinite(kt) & np.isfinite(gp) & np.isfinite(gt)
        for name, a, b in (("K_VRH", kp, kt), ("G_VRH", gp, gt)):
            out[f"{name}_mae"] = mae(a[use], b[use])
            out[f"{name}_mae_log10"] = _log10_mae(a[use], b[use])
        out["vrh_n"] = int(use.sum())
        if not stable.all():
            out["vrh_left_out_not_positive_definite"] = int((~stable).sum())
    return out


# ----------------------------------------------------------------------------- per head
def metrics_of(
    net: Network | Ensemble, dec: Mapping[str, np.ndarray], samples: Sequence[Sample]
) -> dict[str, dict[str, float]]:
    """Per-target metrics (physical units) of decoded predictions against sample values."""
    out = {}
    for c, head in net.target_heads.items():
        true, ok = head.true_values([s.values.get(c) for s in samples])
        if not ok.any():
            continue
        extra = {k.split(".", 1)[1]: v[ok] for k, v in dec.items() if k.startswith(c + ".")}
        out[c] = head.metrics(dec[c][ok], true[ok], extra)
    return out


def baseline_metrics(
    net: Network | Ensemble, train: Sequence[Sample], samples: Sequence[Sample]
) -> dict[str, dict[str, float]]:
    """Metrics of the mean predictor: every head's :meth:`~xtalnet.heads.Head.mean_baseline`
    of the train values for every structure of ``samples``."""
    out = {}
    for c, head in net.target_heads.items():
        tr, tr_ok = head.true_values([s.values.get(c) for s in train])
        true, ok = head.true_values([s.values.get(c) for s in samples])
        if not ok.any() or not tr_ok.any():
            continue
        pred, extra = head.mean_baseline(tr[tr_ok], int(ok.sum()))
        out[c] = head.metrics(pred, true[ok], extra)
    return out
