"""Irreps strings in e3nn notation ("16x0e+8x1o+4x2e"), with or without parity."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Irrep", "Irreps", "parse_irreps"]

_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*([eoy]?)\s*$")


@dataclass(frozen=True)
class Irrep:
    """One block of ``mul`` copies of the irrep of degree ``l``.

    ``parity`` is +1 (``e``), -1 (``o``) or 0 when the string carried no parity.
    """

    mul: int
    l: int
    parity: int

    @property
    def dim(self) -> int:
        return self.mul * (2 * self.l + 1)

    def __str__(self) -> str:
        p = {1: "e", -1: "o", 0: ""}[self.parity]
        return f"{self.mul}x{self.l}{p}"


@dataclass(frozen=True)
class Irreps:
    """A parsed irreps string: a tuple of :class:`Irrep` blocks in the given order."""

    blocks: tuple[Irrep, ...]

    @property
    def dim(self) -> int:
        return sum(b.dim for b in self.blocks)

    @property
    def has_parity(self) -> bool:
        return bool(self.blocks) and self.blocks[0].parity != 0

    @property
    def lmax(self) -> int:
        return max(b.l for b in self.blocks)

    def offsets(self) -> list[int]:
        out, o = [], 0
        for b in self.blocks:
            out.append(o)
            o += b.dim
        return out

    def __str__(self) -> str:
        return "+".join(str(b) for b in self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)


def parse_irreps(irreps: Any, name: str = "irreps") -> Irreps:
    """Parse an e3nn irreps string (or an object whose ``str`` is one, e.g. ``e3nn.o3.Irreps``).

    Parity letters ``e``/``o`` are optional but must be all present or all absent; ``y``
    (e3nn's spherical-harmonic parity) is read as (-1)^l. Zero multiplicities are dropped.
    """
    if isinstance(irreps, Irreps):
        return irreps
    if not isinstance(irreps, str):
        if type(irreps).__module__.startswith("e3nn"):
            irreps = str(irreps)
        else:
            raise TypeError(f"{name} must be an irreps string like '16x0e+8x1o', got {irreps!r}")
    blocks = []
    for term in irreps.split("+"):
        m = _TERM.match(term)
        if m is None:
            raise ValueError(
                f"{name}={irreps!r} does not parse: term {term!r} is not '<mul>x<l><e|o>' "
                "(e.g. '16x0e+8x1o+4x2e')"
            )
        mul = int(m.group(1)) if m.group(1) is not None else 1
        l = int(m.group(2))
        p = {"e": 1, "o": -1, "": 0, "y": (-1) ** l}[m.group(3)]
        if mul > 0:
            blocks.append(Irrep(mul, l, p))
    if not blocks:
        raise ValueError(f"{name}={irreps!r} has no irreps with multiplicity > 0")
    if len({b.parity == 0 for b in blocks}) != 1:
        raise ValueError(
            f"{name}={irreps!r} mixes terms with and without parity; write all with e/o or none"
        )
    return Irreps(tuple(blocks))
