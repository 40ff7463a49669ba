"""Irreducible representations of O(3) in e3nn notation: ``Irreps("16x0e+8x1o+4x2e")``.

One type for every package. Features transform along their LAST dimension:
``x' = x @ irreps.D(R).T``.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable, Iterator
from typing import Any, overload

import torch

from ._validate import check_float_tensor
from ._wigner import check_orthogonal, wigner_D
from .conventions import DEFAULT_CONVENTION, check_convention, check_degree

__all__ = ["Irrep", "Irreps"]

_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*([eoy])\s*$")
_PARITY_LETTER = {1: "e", -1: "o"}


def _check_parity(parity: object, l: int, name: str) -> int:
    """+1/-1, or the letters "e"/"o"/"y" ("y" is (-1)^l, the parity of Y_l)."""
    if isinstance(parity, str):
        if parity == "y":
            return (-1) ** l
        if parity in ("e", "o"):
            return 1 if parity == "e" else -1
    elif not isinstance(parity, bool) and isinstance(parity, numbers.Integral):
        if int(parity) in (1, -1):
            return int(parity)
    raise ValueError(f"{name} parity must be +1, -1, 'e', 'o' or 'y', got {parity!r}")


class Irrep:
    """``mul`` copies of the O(3) irrep of degree ``l`` and parity ``parity`` (+1 or -1).

    Parameters
    ----------
    mul : int
        Multiplicity, >= 0.
    l : int
        Degree, >= 0.
    parity : int or str
        +1 / "e" (even), -1 / "o" (odd), or "y" meaning (-1)^l (stored as +1/-1).

    Attributes
    ----------
    mul, l, parity : int
    dim : int
        ``mul * (2l + 1)``.
    """

    __slots__ = ("l", "mul", "parity")
    mul: int
    l: int
    parity: int

    def __init__(self, mul: int, l: int, parity: int | str) -> None:
        mul = check_degree(mul, "mul")
        l = check_degree(l, "l")
        object.__setattr__(self, "mul", mul)
        object.__setattr__(self, "l", l)
        object.__setattr__(self, "parity", _check_parity(parity, l, f"irrep {mul}x{l}"))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Irrep is immutable")

    def __reduce__(self) -> tuple[type, tuple[int, int, int]]:
        return (Irrep, (self.mul, self.l, self.parity))

    @property
    def dim(self) -> int:
        return self.mul * (2 * self.l + 1)

    @property
    def ir_dim(self) -> int:
        """Dimension of one copy, 2l + 1."""
        return 2 * self.l + 1

    def __iter__(self) -> Iterator[int]:
        """``mul, l, parity = irrep``."""
        return iter((self.mul, self.l, self.parity))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Irrep):
            return NotImplemented
        return (self.mul, self.l, self.parity) == (other.mul, other.l, other.parity)

    def __hash__(self) -> int:
        return hash((self.mul, self.l, self.parity))

    def __str__(self) -> str:
        return f"{self.mul}x{self.l}{_PARITY_LETTER[self.parity]}"

    def __repr__(self) -> str:
        return f"Irrep({self.mul}, {self.l}, {self.parity})"


def _parse_string(text: str, name: str) -> list[Irrep]:
    if text.strip() == "":
        raise ValueError(
            f"{name}={text!r} is empty: write e.g. '16x0e+8x1o'; an empty Irreps is Irreps([])"
        )
    blocks = []
    for term in text.split("+"):
        m = _TERM.match(term)
        if m is None:
            raise ValueError(
                f"{name}={text!r} does not parse: term {term!r} is not '<mul>x<l><p>' with "
                "parity p in e/o/y (e.g. '16x0e+8x1o+4x2e'; y means (-1)^l)"
            )
        mul = int(m.group(1)) if m.group(1) is not None else 1
        blocks.append(Irrep(mul, int(m.group(2)), m.group(3)))
    return blocks


def _parse_item(item: object, name: str, i: int) -> Irrep:
    if isinstance(item, Irrep):
        return item
    if isinstance(item, (tuple, list)) and len(item) == 3:
        mul, l, p = item
        return Irrep(mul, l, p)
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], (tuple, list)):
        mul, (l, p) = item  # e3nn's (mul, (l, p))
        return Irrep(mul, l, p)
    raise TypeError(
        f"{name}[{i}] must be an Irrep or a (mul, l, parity) tuple, got {type(item).__name__} "
        f"{item!r}"
    )


class Irreps:
    """A direct sum of O(3) irreps, e.g. ``Irreps("16x0e+8x1o+4x2e")``, in the given order.

    Parameters
    ----------
    irreps : str or Irreps or Irrep or iterable of Irrep / (mul, l, parity)
        An e3nn string (parities e/o; y = (-1)^l is normalised at parse time; an empty or
        blank string is an error), another ``Irreps`` (or an object whose ``str`` is an irreps
        string, such as ``e3nn.o3.Irreps``), or blocks. ``Irreps([])`` is the empty sum.
    name : str
        Argument name used in error messages.

    Notes
    -----
    Zero multiplicities are kept (``remove_zero_multiplicities`` and ``simplify`` drop
    them). Iterating gives the :class:`Irrep` blocks; ``str`` round-trips for every
    non-empty Irreps.
    """

    __slots__ = ("_blocks",)
    _blocks: tuple[Irrep, ...]

    def __init__(self, irreps: Any, *, name: str = "irreps") -> None:
        if isinstance(irreps, Irreps):
            blocks: list[Irrep] = list(irreps)
        elif isinstance(irreps, Irrep):
            blocks = [irreps]
        elif isinstance(irreps, str):
            blocks = _parse_string(irreps, name)
        elif type(irreps).__module__.startswith("e3nn"):
            text = str(irreps)
            blocks = _parse_string(text, name) if text else []
        elif isinstance(irreps, Iterable) and not isinstance(irreps, (bytes, torch.Tensor)):
            blocks = [_parse_item(item, name, i) for i, item in enumerate(irreps)]
        else:
            raise TypeError(
                f"{name} must be an irreps string like '16x0e+8x1o', an Irreps or a list of "
                f"(mul, l, parity) tuples, got {type(irreps).__name__} {irreps!r}"
            )
        object.__setattr__(self, "_blocks", tuple(blocks))

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Irreps is immutable")

    def __reduce__(self) -> tuple[type, tuple[list[Irrep]]]:
        return (Irreps, (list(self._blocks),))

    # ------------------------------------------------------------------ sizes
    @property
    def dim(self) -> int:
        """Σ mul (2l + 1): the length of a feature vector."""
        return sum(b.dim for b in self._blocks)

    @property
    def num_irreps(self) -> int:
        """Σ mul: the number of irreducible copies."""
        return sum(b.mul for b in self._blocks)

    @property
    def lmax(self) -> int:
        """Largest degree (ValueError for the empty Irreps)."""
        if not self._blocks:
            raise ValueError("Irreps([]) has no lmax")
        return max(b.l for b in self._blocks)

    @property
    def ls(self) -> list[int]:
        """The degree of every copy, in order (``mul`` repeats per block)."""
        return [b.l for b in self._blocks for _ in range(b.mul)]

    def slices(self) -> list[slice]:
        """One ``slice`` of the feature dimension per block, in order."""
        out, start = [], 0
        for b in self._blocks:
            out.append(slice(start, start + b.dim))
            start += b.dim
        return out

    # ------------------------------------------------------------------ algebra
    def remove_zero_multiplicities(self) -> Irreps:
        """The same blocks in the same order without those of multiplicity 0 (as in e3nn).

        ``"2x0e+0x1o+1x2e"`` -> ``"2x0e+1x2e"``; the feature layout is unchanged, since a
        block of multiplicity 0 has dimension 0. Neighbouring blocks are not merged (see
        :meth:`simplify`).
        """
        return Irreps([b for b in self._blocks if b.mul > 0])

    def simplify(self) -> Irreps:
        """Drop zero multiplicities and merge neighbouring blocks of the same (l, parity).

        The order is kept, so features need no permutation: ``"1x0e+2x0e+0x1o"`` -> ``"3x0e"``.
        """
        out: list[Irrep] = []
        for b in self.remove_zero_multiplicities():
            if out and (out[-1].l, out[-1].parity) == (b.l, b.parity):
                out[-1] = Irrep(out[-1].mul + b.mul, b.l, b.parity)
            else:
                out.append(b)
        return Irreps(out)

    def __add__(self, other: object) -> Irreps:
        if not isinstance(other, (Irreps, str, Irrep)):
            return NotImplemented
        return Irreps([*self._blocks, *Irreps(other, name="other")])

    def __radd__(self, other: object) -> Irreps:
        if not isinstance(other, (str, Irrep)):
            return NotImplemented
        return Irreps([*Irreps(other, name="other"), *self._blocks])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = Irreps(other)
            except (TypeError, ValueError):
                return False
        if not isinstance(other, Irreps):
            return NotImplemented
        return self._blocks == other._blocks

    def __hash__(self) -> int:
        return hash(self._blocks)

    # ------------------------------------------------------------------ sequence
    def __iter__(self) -> Iterator[Irrep]:
        return iter(self._blocks)

    def __len__(self) -> int:
        """Number of blocks."""
        return len(self._blocks)

    @overload
    def __getitem__(self, index: int) -> Irrep: ...
    @overload
    def __getitem__(self, index: slice) -> Irreps: ...
    def __getitem__(self, index: int | slice) -> Irrep | Irreps:
        if isinstance(index, slice):
            return Irreps(self._blocks[index])
        return self._blocks[index]

    def __str__(self) -> str:
        return "+".join(str(b) for b in self._blocks)

    def __repr__(self) -> str:
        return f"Irreps({str(self)!r})" if self._blocks else "Irreps([])"

    # ------------------------------------------------------------------ representation
    def D(self, R: torch.Tensor, *, convention: str = DEFAULT_CONVENTION) -> torch.Tensor:
        """Block-diagonal representation matrix [..., dim, dim] of orthogonal R [..., 3, 3].

        Each block of ``mul`` copies of (l, p) contributes ``mul`` copies of
        ``p^k wigner_D(l, det(R) R)`` with k = 1 for improper R (det -1) and 0 for proper R:
        odd blocks change sign under inversion, even blocks do not. Features rotate as
        ``x @ D.T``; ``D(R1 @ R2) == D(R1) @ D(R2)``.

        Parameters
        ----------
        R : Tensor [..., 3, 3]
            Orthogonal matrices (see :func:`rsh.wigner_D`), float32/float64.
        convention : {"standard", "thesis", "e3nn"}
            Basis of every block (in "e3nn", ``Irreps("1o").D(R) == R``).

        Returns
        -------
        Tensor [..., dim, dim], dtype and device of R.
        """
        convention = check_convention(convention)
        R = check_float_tensor("R", R, (3, 3))
        R = check_orthogonal(R, "R")
        batch = R.shape[:-2]
        det = torch.linalg.det(R.to(torch.float64)).sign().to(R.dtype)  # [...]
        proper = R * det[..., None, None]
        improper = det < 0
        out = R.new_zeros(*batch, self.dim, self.dim)
        cache: dict[int, torch.Tensor] = {}
        start = 0
        for b in self._blocks:
            if b.mul == 0:
                continue
            if b.l not in cache:
                cache[b.l] = wigner_D(b.l, proper, convention=convention)
            d = cache[b.l]
            if b.parity == -1:
                d = torch.where(improper[..., None, None], -d, d)
            n = 2 * b.l + 1
            for _ in range(b.mul):
                out[..., start : start + n, start : start + n] = d
                start += n
        return out
