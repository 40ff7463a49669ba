"""Cartesian tensors with index symmetries, predicted through their irreps.

Conventions of the Materials Project data (checked against ``XTAL_SHARED_DATA``):

- elastic stiffness ``6 × 6`` Voigt in GPa, order xx, yy, zz, yz, xz, xy, no factors of 2;
- piezoelectric (stress) tensor ``e_iJ`` ``3 × 6`` in C/m², same Voigt order on the
  symmetric pair ``jk``, no factors of 2 (``e_iJ = e_ijk``): the real MP tensors of
  point groups 3m and 32 (whose symmetry couples normal and shear columns) are invariant
  under their crystal's point group only with this convention (tested);
- dielectric tensors ``3 × 3`` (dimensionless), symmetric.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gaunt_elastic import VOIGT_PAIRS, CartesianTensor

from xtalnet import _metrics
from xtalnet.heads.base import Head
from xtalnet.heads.spec import ELASTIC_FORMULA, VOIGT_COLUMNS, TargetSpec, tensor_type

# the members' spread of an entry fixed by symmetry is rounding, far below this fraction of
# the target's scale; a real spread (members that differ in seed and inputs) far above it
SYMMETRY_ROUNDING = 1e-4

__all__ = ["TensorHead"]


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
        ct = tensor_type(spec.formula, spec.column)
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

    def true_values(self, values: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """Tensors in the decoded layout ``[n, *output_shape]`` (projected onto the
        formula's symmetry, as the head sees them) and the mask of present rows."""
        enc = self.encode(values)
        present = ~torch.isnan(enc).any(dim=1).cpu().numpy()
        return self.decode(torch.nan_to_num(enc)), present

    def fixed_entries(self, spread: np.ndarray) -> np.ndarray:
        """Entries whose members agree to rounding (spread <= ``SYMMETRY_ROUNDING`` x the
        largest irrep scale): an equivariant network predicts an entry that the crystal's
        symmetry forces to zero (C14 of a cubic crystal) exactly, up to float rounding
        (about 1e-8 of the scale). The data's value there is noise, not an error σ could
        explain: counting it made the σ scale 1e6 (de Jong elastic tensor, 2 members)."""
        size = float(self.block_scales().max())
        return np.asarray(spread, dtype=np.float64) <= SYMMETRY_ROUNDING * size

    def derived(self, decoded: np.ndarray) -> dict[str, np.ndarray]:
        """Elastic tensors (6 x 6 Voigt, GPa): the Voigt-Reuss-Hill ``K_VRH`` and ``G_VRH``."""
        if not self.is_elastic:
            return {}
        k, g = _metrics.vrh_moduli(decoded)
        return {"K_VRH": k, "G_VRH": g}

    @property
    def is_elastic(self) -> bool:
        """A stiffness tensor in Voigt layout (6 x 6): K_VRH and G_VRH can be derived."""
        return self.spec.formula == ELASTIC_FORMULA and self.output_shape == (6, 6)
