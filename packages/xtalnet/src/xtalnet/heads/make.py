"""The head of a target: :func:`make_head` picks the class of its kind."""

from __future__ import annotations

from typing import Any

import torch

from xtalnet.heads.band_gap import BandGapHead
from xtalnet.heads.base import Head, check_dtype
from xtalnet.heads.scalar import LogHead, ScalarHead
from xtalnet.heads.spec import TargetSpec
from xtalnet.heads.tensor import TensorHead

__all__ = ["make_head"]


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
    check_dtype(dtype)
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
