"""Targets: kinds, standardisation, losses and physical units (one module per kind).

- :mod:`~xtalnet.heads.spec`: ``COLUMN[:KIND]`` target specs, default kinds, units;
- :mod:`~xtalnet.heads.base`: the :class:`Head` interface and the shared regression losses;
- :mod:`~xtalnet.heads.scalar`: ``scalar`` and ``log`` targets;
- :mod:`~xtalnet.heads.band_gap`: the band gap of thesis eq. 2.1;
- :mod:`~xtalnet.heads.tensor`: Cartesian tensors with index symmetries;
- :func:`make_head`: the head of a target.
"""

from gaunt_elastic import VOIGT_PAIRS

from xtalnet.heads.band_gap import BandGapHead
from xtalnet.heads.base import LOSSES, Head, check_loss, residual_loss
from xtalnet.heads.make import make_head
from xtalnet.heads.scalar import LogHead, ScalarHead
from xtalnet.heads.spec import DEFAULT_KINDS, KINDS, UNITS, VOIGT_COLUMNS, TargetSpec
from xtalnet.heads.tensor import TensorHead

__all__ = [
    "DEFAULT_KINDS",
    "KINDS",
    "LOSSES",
    "UNITS",
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
