"""Target specs: ``COLUMN[:KIND]``, the kinds, the defaults of well-known columns, units.

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
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from gaunt_elastic import CartesianTensor

__all__ = [
    "DEFAULT_KINDS",
    "ELASTIC_FORMULA",
    "KINDS",
    "UNITS",
    "VOIGT_COLUMNS",
    "TargetSpec",
    "tensor_type",
]

#: Kinds of target.
KINDS: tuple[str, ...] = ("scalar", "log", "band_gap", "tensor")

#: Index symmetries of a stiffness tensor (minor and major).
ELASTIC_FORMULA = "ijkl=jikl=klij"
_SYM2 = "ij=ji"
_PIEZO = "ijk=ikj"

#: Default ``(kind, formula)`` of well-known columns; any other column is ``scalar``.
DEFAULT_KINDS: dict[str, tuple[str, str | None]] = {
    "band_gap": ("band_gap", None),
    "elastic_tensor": ("tensor", ELASTIC_FORMULA),
    "elastic_tensor_original": ("tensor", ELASTIC_FORMULA),
    "elasticity.elastic_tensor": ("tensor", ELASTIC_FORMULA),
    "elastic_tensor_voigt": ("tensor", ELASTIC_FORMULA),
    "elastic_tensor_full": ("tensor", ELASTIC_FORMULA),
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

#: Physical unit of well-known columns, as printed beside their metrics and predictions.
UNITS: dict[str, str] = {
    "formation_energy_per_atom": "eV/atom",
    "band_gap": "eV",
    "elastic_tensor": "GPa",
    "elastic_tensor_original": "GPa",
    "elasticity.elastic_tensor": "GPa",
    "K_VRH": "GPa",
    "G_VRH": "GPa",
    "K_wien2k": "GPa",
    "bulk_modulus_vrh": "GPa",
    "shear_modulus_vrh": "GPa",
    "piezoelectric_tensor": "C/m²",
}


@functools.lru_cache(maxsize=32)
def _cartesian_tensor(formula: str) -> CartesianTensor:
    return CartesianTensor(formula)


def tensor_type(formula: str, target: str) -> CartesianTensor:
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
            tensor_type(self.formula, self.column)
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

    @property
    def unit(self) -> str:
        """Physical unit of the column (``""`` when unknown), e.g. ``"eV/atom"``."""
        return UNITS.get(self.column, "")

    def __str__(self) -> str:
        if DEFAULT_KINDS.get(self.column, ("scalar", None)) == (self.kind, self.formula):
            return self.column
        if self.kind == "tensor":
            return f"{self.column}:tensor={self.formula}"
        return f"{self.column}:{self.kind}"
