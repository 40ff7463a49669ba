"""Elastic stiffness tensors: the audit's checks and the Voigt, Reuss and Hill moduli.

The moduli are written once, vectorised in numpy (:func:`_voigt_reuss`), with the formulas
of pymatgen's :class:`~pymatgen.analysis.elasticity.ElasticTensor` (``k_voigt``,
``k_reuss``, ``g_voigt``, ``g_reuss``; Hill = their mean, as ``k_vrh`` and ``g_vrh``).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

__all__ = [
    "MAX_GPA",
    "MODULI",
    "SYMMETRY_ATOL",
    "SYMMETRY_RTOL",
    "elastic_checks",
    "voigt_reuss_bounds",
    "vrh_moduli",
]

#: largest stiffness entry accepted as GPa; MP stiffnesses stay below ~1.2e3 GPa (diamond),
#: so a larger entry means other units (Pa gives ~1e11)
MAX_GPA = 1e4
#: C_ij and C_ji may differ by this much (GPa) or by this fraction of max |C|, whichever is
#: larger (sources round to 0.01-1 GPa; symmetric tensors stay symmetric when rounded)
SYMMETRY_ATOL = 0.5
SYMMETRY_RTOL = 1e-4
#: the moduli a source may store beside the tensor (GPa)
MODULI = ("K_Voigt", "K_Reuss", "K_VRH", "G_Voigt", "G_Reuss", "G_VRH")


def _voigt_reuss(
    c: np.ndarray, s: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(K_Voigt, K_Reuss, G_Voigt, G_Reuss) [n] of stiffnesses ``c`` [n, 6, 6] and their
    compliances ``s`` = C^-1 [n, 6, 6] (GPa, Voigt order, no factors of 2)."""
    c3, s3 = c[:, :3, :3], s[:, :3, :3]
    k_v = c3.mean(axis=(1, 2))
    g_v = (
        2 * np.trace(c3, axis1=1, axis2=2)
        - np.triu(c3).sum(axis=(1, 2))
        + 3 * np.trace(c[:, 3:, 3:], axis1=1, axis2=2)
    ) / 15.0
    with np.errstate(divide="ignore", invalid="ignore"):
        k_r = 1 / s3.sum(axis=(1, 2))
        g_r = 15 / (
            8 * np.trace(s3, axis1=1, axis2=2)
            - 4 * np.triu(s3).sum(axis=(1, 2))
            + 3 * np.trace(s[:, 3:, 3:], axis1=1, axis2=2)
        )
    return k_v, k_r, g_v, g_r


def _compliances(c: np.ndarray) -> np.ndarray:
    """C^-1 of every matrix of ``c`` [n, 6, 6]; NaN for the singular ones."""
    try:
        return np.linalg.inv(c)
    except np.linalg.LinAlgError:  # at least one is singular: invert one by one
        out = np.full_like(c, np.nan)
        for k, m in enumerate(c):
            try:
                out[k] = np.linalg.inv(m)
            except np.linalg.LinAlgError:
                pass
        return out


def vrh_moduli(voigt: Any) -> tuple[np.ndarray, np.ndarray]:
    """Voigt-Reuss-Hill bulk and shear moduli of 6x6 stiffness matrices, vectorised.

    ``K_VRH = (K_Voigt + K_Reuss) / 2`` and ``G_VRH = (G_Voigt + G_Reuss) / 2``, the
    values of pymatgen's ``ElasticTensor.from_voigt(c).k_vrh`` / ``g_vrh``, for a whole
    batch at once (no Python loop, no pymatgen import).

    Parameters
    ----------
    voigt : array_like [n, 6, 6] or [6, 6]
        Stiffness in GPa, Voigt order xx, yy, zz, yz, xz, xy, no factors of 2 (Materials
        Project / pymatgen convention). A single [6, 6] matrix counts as n = 1.

    Returns
    -------
    k_vrh, g_vrh : numpy.ndarray [n] (float64)
        Bulk and shear moduli, GPa. NaN for a singular matrix (no compliance, so no Reuss
        bound) and for a matrix with NaN entries.

    Raises
    ------
    TypeError
        ``voigt`` is not numeric.
    ValueError
        ``voigt`` is not [n, 6, 6] or [6, 6].
    """
    try:
        c = np.asarray(voigt, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"voigt must be a numeric array [n, 6, 6] or [6, 6] in GPa, got {type(voigt).__name__}"
        ) from None
    if c.ndim not in (2, 3) or c.shape[-2:] != (6, 6):
        raise ValueError(f"voigt must have shape [n, 6, 6] or [6, 6] (GPa), got {c.shape}")
    c = c.reshape(-1, 6, 6)
    k_v, k_r, g_v, g_r = _voigt_reuss(c, _compliances(c))
    return 0.5 * (k_v + k_r), 0.5 * (g_v + g_r)


def voigt_reuss_bounds(tensor: Any) -> dict[str, float]:
    """Voigt, Reuss and Hill bulk/shear moduli (GPa) of a 6x6 stiffness matrix (GPa).

    The formulas of pymatgen's :class:`~pymatgen.analysis.elasticity.ElasticTensor`
    (``k_voigt``, ``k_reuss``, ``g_voigt``, ``g_reuss``; Hill = their mean, as ``k_vrh``
    and ``g_vrh`` define it), shared with :func:`vrh_moduli`.

    Parameters
    ----------
    tensor
        6x6 stiffness in GPa, Voigt order xx, yy, zz, yz, xz, xy, no factors of 2
        (MP convention).

    Returns
    -------
    dict
        ``K_Voigt``, ``K_Reuss``, ``K_VRH``, ``G_Voigt``, ``G_Reuss``, ``G_VRH`` in GPa.

    Raises
    ------
    ValueError
        ``tensor`` is not a finite 6x6 matrix.
    numpy.linalg.LinAlgError
        ``tensor`` is singular (no compliance, so no Reuss bound).
    """
    c = np.asarray(tensor, dtype=np.float64)
    if c.shape != (6, 6) or not np.all(np.isfinite(c)):
        raise ValueError(
            f"tensor has shape {c.shape}: expected a finite (6, 6) matrix in Voigt notation"
        )
    c = c[None]
    k_v, k_r, g_v, g_r = (float(x[0]) for x in _voigt_reuss(c, np.linalg.inv(c)))
    return {
        "K_Voigt": k_v,
        "K_Reuss": k_r,
        "K_VRH": (k_v + k_r) / 2,
        "G_Voigt": g_v,
        "G_Reuss": g_r,
        "G_VRH": (g_v + g_r) / 2,
    }


def _bounds_ordered(values: dict[str, Any]) -> bool:
    """Reuss <= VRH <= Voigt for K and G among the moduli present (relative tol 1e-6)."""
    for m in ("K", "G"):
        chain = [values[k] for k in (f"{m}_Reuss", f"{m}_VRH", f"{m}_Voigt") if k in values]
        if len(chain) < 2:
            continue
        tol = 1e-6 * max(1.0, *(abs(x) for x in chain))
        if any(a > b + tol for a, b in itertools.pairwise(chain)):
            return False
    return True


def _read_tensor(tensor: Any) -> np.ndarray:
    """A finite 6x6 float matrix, else ValueError saying why it cannot be read."""
    try:
        c = np.asarray(tensor, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"not numeric ({type(tensor).__name__}: {str(tensor)[:40]!r})") from None
    if c.shape != (6, 6):
        raise ValueError(f"shape {c.shape}, expected (6, 6)")
    if not np.all(np.isfinite(c)):
        raise ValueError(f"{int(np.sum(~np.isfinite(c)))} of 36 entries are not finite")
    return c


def elastic_checks(tensor: Any, stored: dict[str, Any] | None = None) -> dict[str, Any]:
    """Readability, symmetry, units, positive definiteness and Reuss <= VRH <= Voigt.

    Parameters
    ----------
    tensor
        6x6 stiffness in GPa (list or array), Voigt notation.
    stored
        Moduli stored by the source (``K_Voigt``, ``K_VRH``, ``K_Reuss``, same for ``G``,
        GPa), checked for ordering as well when present.

    Returns
    -------
    dict
        ``elastic_readable`` (bool: a finite 6x6 of numbers), ``elastic_symmetric``
        (``C_ij = C_ji`` within ``max(SYMMETRY_ATOL, SYMMETRY_RTOL * max|C|)``),
        ``elastic_units_ok`` (max |C| <= ``MAX_GPA``: values in Pa are flagged),
        ``elastic_pd`` (positive definite), ``elastic_bounds_ok`` (ordering of the bounds
        computed here and of the stored ones), ``elastic_error`` (why, or None). Checks
        that cannot be made (unreadable tensor; positive definiteness and bounds of a
        non-symmetric one) are None, so a tensor is filed under one reason only.
    """
    out: dict[str, Any] = dict.fromkeys(
        ("elastic_symmetric", "elastic_units_ok", "elastic_pd", "elastic_bounds_ok")
    )
    out["elastic_readable"] = False
    out["elastic_error"] = None
    try:
        c = _read_tensor(tensor)
    except ValueError as exc:
        out["elastic_error"] = f"unreadable: {exc}"
        return out
    out["elastic_readable"] = True
    scale = float(np.abs(c).max())
    out["elastic_units_ok"] = scale <= MAX_GPA
    asym = float(np.abs(c - c.T).max())
    out["elastic_symmetric"] = asym <= max(SYMMETRY_ATOL, SYMMETRY_RTOL * scale)
    if not out["elastic_symmetric"]:
        i, j = np.unravel_index(int(np.argmax(np.abs(c - c.T))), c.shape)
        out["elastic_error"] = (
            f"not symmetric: C{i + 1}{j + 1} = {c[i, j]:g}, C{j + 1}{i + 1} = {c[j, i]:g}"
        )
        return out
    c = 0.5 * (c + c.T)
    out["elastic_pd"] = bool(np.linalg.eigvalsh(c).min() > 0)
    try:
        bounds = voigt_reuss_bounds(c)
    except np.linalg.LinAlgError:
        out["elastic_bounds_ok"] = False
        out["elastic_error"] = "singular: no compliance, no Reuss bound"
        return out
    out["elastic_bounds_ok"] = _bounds_ordered(bounds) and _bounds_ordered(stored or {})
    if not out["elastic_units_ok"]:
        out["elastic_error"] = f"max |C| = {scale:.3g}: expected GPa (<= {MAX_GPA:g})"
    return out
