"""Network configuration: one frozen dataclass, a JSON round trip, and `mp-audit recommend`.

Every field has a default, so ``NetworkConfig()`` is a usable network (formation energy per
atom, r_cut 5 Å, 4 layers). Validation happens at construction: a bad value raises
``ValueError``/``TypeError`` naming the field, the value received and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from periodic_conv import BACKENDS, check_r_cut

__all__ = [
    "DTYPES",
    "POOLINGS",
    "NetworkConfig",
    "read_recommendation",
    "recommended_fields",
]

DTYPES = ("float32", "float64")
POOLINGS = ("mean", "sum")
SPECIES_FEATURES = ("onehot", "elemental", "both")
TENSOR_FRAMES = ("as_given", "ieee")
#: Highest atomic number the species embedding knows (H..Pu, like the thesis's MP data).
MAX_Z = 94
_TARGET = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*(:.+)?$")
_SCHEMA = "xtalnet/network-config/1"
#: Schema of the ``mp-audit recommend`` JSON that :func:`read_recommendation` accepts.
RECOMMENDATION_SCHEMA = "mp-audit/recommendation/1"


def _check_irreps(value: Any, name: str) -> str:
    from rsh import Irreps

    if not isinstance(value, str):
        raise TypeError(f"{name} must be an irreps string like '16x0e+4x1o', got {value!r}")
    irreps = Irreps(value, name=name)  # ValueError naming `name` for a malformed string
    if not any(ir.l == 0 and ir.mul > 0 for ir in irreps):
        raise ValueError(f"{name}={value!r} needs at least one scalar term (l = 0)")
    return str(irreps)


#: The largest seed (of the initialisation, the split and the batch order): the batch order's
#: generator takes seed x 1,000,003 + epoch, which must stay a 64-bit integer.
MAX_SEED = 2**32 - 1


def _check_int(value: Any, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return value


def _check_choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


@dataclass(frozen=True)
class NetworkConfig:
    """Shape and numerics of a :class:`xtalnet.Network` (frozen; JSON round trip).

    Parameters
    ----------
    targets : tuple of str
        Targets written ``COLUMN[:KIND]`` (see :mod:`xtalnet.heads`), e.g.
        ``("formation_energy_per_atom", "elastic_tensor", "band_gap")``. Several targets
        share one trunk; each gets its own linear readout and head.
    r_cut : float
        Radial cutoff, Å, in ``[periodic_conv.MIN_R_CUT, periodic_conv.MAX_R_CUT]``.
    num_layers : int
        Number of convolution -> gate -> self-connection layers (1..16).
    embed_dim : int
        Number of scalar (0e) channels the species embedding produces.
    species_features : {"onehot", "elemental", "both"}
        What the species embedding maps to its scalars: a free row per element
        (``"onehot"``), a linear map of physical descriptors of the element
        (``"elemental"``, see :mod:`xtalnet.species`) or the sum of both (``"both"``).
        A config without this field (written before it existed) means ``"onehot"``.
    composition : bool
        Join per-structure composition statistics (weighted mean, std, min and max of the
        elemental descriptors, :mod:`xtalnet.nn.composition`) to the pooled scalars before
        the readouts. A config without this field (written before it existed) means False.
    hidden_irreps : str
        Features between layers (after the gate), e3nn notation with parity. Carry both
        parities so that odd targets (piezoelectric) are reachable.
    l_filter_max : int
        Highest spherical-harmonic degree of the convolution filters. Give at least the
        targets' largest l (4 for elastic, 3 for piezoelectric tensors; ``xtalnet train``'s
        rule does): an atom on a cubic site sees its neighbours first at l = 4 (l = 3 on a
        tetrahedral one), so lower filters predict such crystals isotropic.
    num_basis : int
        Number of Bessel radial basis functions.
    radial_hidden : int
        Width of the radial MLP's hidden layers.
    radial_layers : int
        Number of hidden layers of the radial MLP (>= 1).
    cutoff_p : int
        Exponent p of the polynomial cutoff envelope (smooth to order p at r_cut).
    readout_mul : int
        Multiplicity, in the last layer's output, of every irrep a head needs but the
        hidden irreps lack (e.g. 4e for the elastic tensor).
    pooling : {"mean", "sum"}
        Per-structure pooling over atoms: mean for intensive targets, sum for extensive.
    dtype : {"float32", "float64"}
        One dtype for parameters, features and geometry.
    convention : {"standard", "thesis", "e3nn"}
        Real spherical-harmonic basis of the features.
    tensor_frame : {"as_given", "ieee"}
        Cartesian frame of the structures the network sees, and so of its tensor
        predictions: ``"as_given"``, the structure's own orientation; ``"ieee"``, every
        structure rotated first into its IEEE 176 standard orientation (pymatgen's
        ``Tensor.get_ieee_rotation``), the frame in which the Materials Project stores
        elastic tensors, so that predictions come out in that frame whatever the orientation
        of the input (a CIF's frame is a reader's convention). Scalars do not depend on it.
        A config without this field (written before it existed) means ``"as_given"``.
    backend : {"auto", "reference", "torch", "cpp", "cuda"}
        Backend of :class:`periodic_conv.PeriodicConvolution`.
    max_edges : int
        Edge budget of one batch: :func:`xtalnet.data.iter_batches` starts a new batch
        before it would exceed it, and one structure above it is refused.
    residual : bool
        Add the layer input to its output (scaled by 1/sqrt 2) where irreps agree.
    feature_norm : bool
        Per-atom, per-irrep-block RMS normalisation of every convolution output (see
        :class:`xtalnet.model.BlockRMSNorm`: W alone does not keep real crystals at unit
        variance).
    checkpoint : bool
        Recompute each layer's radial MLP and convolution in the backward pass (activation
        checkpointing): only the layer inputs are kept, for about one extra convolution
        forward per layer. Rarely needed: R [E, weight_numel] is never stored either way
        (the convolution takes it as ``periodic_conv.RadialFactors``); this also drops the
        radial MLP's hidden activations [E, radial_hidden] per layer.
    norm_eps : float
        Relative floor of that normalisation (0 < norm_eps < 1).
    band_gap_prior : tuple (p, mu, sigma) or None
        Eq. 2.1 parameters from a recommendation (p = P(gap > 0), mu and sigma of
        sqrt(gap) over non-zero gaps, sqrt(eV)); heads fitted on train data override them.
    seed : int
        Seed of the parameter initialisation, 0 … :data:`MAX_SEED` (:func:`xtalnet.train`
        takes the options' ``seed`` when the config does not give this field).
    """

    targets: tuple[str, ...] = ("formation_energy_per_atom",)
    r_cut: float = 5.0
    num_layers: int = 4
    embed_dim: int = 16
    species_features: str = "onehot"
    composition: bool = False
    hidden_irreps: str = "16x0e+4x0o+4x1o+4x1e+2x2e+2x2o"
    l_filter_max: int = 2
    num_basis: int = 8
    radial_hidden: int = 32
    radial_layers: int = 2
    cutoff_p: int = 6
    readout_mul: int = 2
    pooling: str = "mean"
    dtype: str = "float32"
    convention: str = "standard"
    tensor_frame: str = "as_given"
    backend: str = "auto"
    max_edges: int = 200_000
    residual: bool = True
    feature_norm: bool = True
    checkpoint: bool = False
    norm_eps: float = 1e-3
    band_gap_prior: tuple[float, float, float] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        targets = self.targets
        if isinstance(targets, str):
            targets = (targets,)
        if not isinstance(targets, Sequence) or len(targets) == 0:
            raise ValueError(f"targets must be a non-empty sequence of strings, got {targets!r}")
        for t in targets:
            if not isinstance(t, str) or not _TARGET.match(t):
                raise ValueError(
                    f"targets: {t!r} is not 'COLUMN[:KIND]' (e.g. 'band_gap', "
                    "'K_VRH:log', 'eps:tensor=ij=ji')"
                )
        columns = [t.split(":", 1)[0] for t in targets]
        dup = sorted({c for c in columns if columns.count(c) > 1})
        if dup:
            raise ValueError(f"targets name the column(s) {dup} more than once: {targets!r}")
        object.__setattr__(self, "targets", tuple(targets))
        # the one range of a cutoff, the conventions and the backends: periodic_conv and rsh
        object.__setattr__(self, "r_cut", check_r_cut(self.r_cut, "r_cut"))
        _check_int(self.num_layers, "num_layers", 1, 16)
        _check_int(self.embed_dim, "embed_dim", 1)
        _check_choice(self.species_features, "species_features", SPECIES_FEATURES)
        object.__setattr__(
            self, "hidden_irreps", _check_irreps(self.hidden_irreps, "hidden_irreps")
        )
        _check_int(self.l_filter_max, "l_filter_max", 0, 10)
        _check_int(self.num_basis, "num_basis", 1, 64)
        _check_int(self.radial_hidden, "radial_hidden", 1)
        _check_int(self.radial_layers, "radial_layers", 1, 8)
        _check_int(self.cutoff_p, "cutoff_p", 1, 16)
        _check_int(self.readout_mul, "readout_mul", 1)
        _check_choice(self.pooling, "pooling", POOLINGS)
        _check_choice(self.dtype, "dtype", DTYPES)
        from rsh.conventions import check_convention

        check_convention(self.convention, "convention")
        _check_choice(self.backend, "backend", BACKENDS)
        _check_choice(self.tensor_frame, "tensor_frame", TENSOR_FRAMES)
        _check_int(self.max_edges, "max_edges", 1)
        if not isinstance(self.residual, bool):
            raise TypeError(f"residual must be a bool, got {self.residual!r}")
        if not isinstance(self.checkpoint, bool):
            raise TypeError(f"checkpoint must be a bool, got {self.checkpoint!r}")
        if not isinstance(self.composition, bool):
            raise TypeError(f"composition must be a bool, got {self.composition!r}")
        if not isinstance(self.feature_norm, bool):
            raise TypeError(f"feature_norm must be a bool, got {self.feature_norm!r}")
        eps = self.norm_eps
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
            raise ValueError(f"norm_eps must be a number in (0, 1), got {eps!r}")
        object.__setattr__(self, "norm_eps", float(eps))
        _check_int(self.seed, "seed", 0, MAX_SEED)
        prior = self.band_gap_prior
        if prior is not None:
            try:
                p, mu, sigma = (float(x) for x in prior)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"band_gap_prior must be (p, mu, sigma) or None, got {prior!r}"
                ) from exc
            if not (0 <= p <= 1 and math.isfinite(mu) and math.isfinite(sigma) and sigma > 0):
                raise ValueError(
                    "band_gap_prior must have 0 <= p <= 1, finite mu and sigma > 0, got "
                    f"(p, mu, sigma) = {(p, mu, sigma)!r}"
                )
            object.__setattr__(self, "band_gap_prior", (p, mu, sigma))

    # ------------------------------------------------------------------ conversions
    @property
    def torch_dtype(self):  # -> torch.dtype (torch imported lazily: config stays light)
        """The ``torch.dtype`` of :attr:`dtype`."""
        import torch

        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]

    @property
    def columns(self) -> tuple[str, ...]:
        """Data column of each target (the keys of the network's output dict)."""
        return tuple(t.split(":", 1)[0] for t in self.targets)

    def replace(self, **changes: Any) -> NetworkConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (with a ``schema`` key)."""
        d: dict[str, Any] = {"schema": _SCHEMA}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NetworkConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them (a run's
        ``provenance`` record is ignored)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"config must be a mapping, got {type(data).__name__}")
        data = dict(data)
        data.pop("provenance", None)  # config.json of a run: which fields were given or chosen
        schema = data.pop("schema", _SCHEMA)
        if schema != _SCHEMA:
            raise ValueError(f"config schema must be {_SCHEMA!r}, got {schema!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown config keys {unknown}; allowed: {sorted(names)}")
        if "targets" in data and isinstance(data["targets"], list):
            data["targets"] = tuple(data["targets"])
        if isinstance(data.get("band_gap_prior"), list):
            data["band_gap_prior"] = tuple(data["band_gap_prior"])
        return cls(**data)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike[str]) -> NetworkConfig:
        """Read a config from a JSON file (or from JSON text starting with ``{``)."""
        return cls.from_dict(_read_json(path_or_text, "path_or_text"))

    @classmethod
    def from_recommendation(
        cls, recommendation: str | os.PathLike[str] | Mapping[str, Any], **overrides: Any
    ) -> NetworkConfig:
        """Config from ``mp-audit recommend`` JSON: r_cut, layers and the band-gap (p, mu, sigma).

        Parameters
        ----------
        recommendation : path, JSON text or dict
            Output of :func:`mp_audit.recommendation_json` (schema
            ``mp-audit/recommendation/1``).
        **overrides
            Any other :class:`NetworkConfig` field (they win over the recommendation).
        """
        rec = read_recommendation(recommendation)
        return cls(**{**recommended_fields(rec), **overrides})


def read_recommendation(recommendation: str | os.PathLike[str] | Mapping[str, Any]) -> dict:
    """An ``mp-audit recommend`` JSON (path, JSON text or dict) after checking its schema.

    Raises
    ------
    ValueError
        The file does not parse, or its schema is not ``mp-audit/recommendation/1``.
    """
    rec = (
        dict(recommendation)
        if isinstance(recommendation, Mapping)
        else _read_json(recommendation, "recommendation")
    )
    schema = rec.get("schema")
    if schema != RECOMMENDATION_SCHEMA:
        raise ValueError(
            f"recommendation must be mp-audit JSON with schema {RECOMMENDATION_SCHEMA!r}, "
            f"got schema {schema!r}"
        )
    return rec


def recommended_fields(rec: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`NetworkConfig` fields a recommendation sets: ``r_cut``, ``num_layers``
    and ``band_gap_prior`` (each only where the recommendation has it)."""
    fields: dict[str, Any] = {}
    if rec.get("r_cut") is not None:
        fields["r_cut"] = float(rec["r_cut"])
    if rec.get("layers") is not None:
        fields["num_layers"] = int(rec["layers"])
    bg = rec.get("band_gap") or {}
    if all(bg.get(k) is not None for k in ("p", "mu", "sigma")):
        fields["band_gap_prior"] = (float(bg["p"]), float(bg["mu"]), float(bg["sigma"]))
    return fields


def _read_json(source: Any, name: str) -> dict[str, Any]:
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text = source
    else:
        if not isinstance(source, (str, os.PathLike)):
            raise TypeError(
                f"{name} must be a path, JSON text or dict, got {type(source).__name__}"
            )
        p = Path(source)
        if not p.is_file():
            raise ValueError(f"{name}: no such file {str(p)!r}")
        text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{name} must hold a JSON object, got {type(data).__name__}")
    return data
