"""Cartesian tensors of any rank with index-permutation symmetries ⇄ irreps.

The generalisation the thesis lists as future work (ch. 5.2): given a formula such as
``"ijkl=jikl=klij"`` (elastic) or ``"ijk=ikj"`` (piezoelectric), build an orthonormal,
rotation-equivariant change of basis from the symmetric Cartesian tensors to irreps in
rsh's "standard" real basis.

Construction: couple the n vector indices one at a time with the App. A coupling
coefficients (sqrt(2l+1) · coupling(l, l_prev, 1) is an isometry), which gives an
orthonormal basis of (R³)^⊗n labelled by coupling paths; for each l, the symmetry
projector P (average of the signed index permutations of the group the formula generates)
commutes with rotations, so it acts only on the path (multiplicity) label; its eigenvectors
of eigenvalue 1 give the copies of l in the symmetric subspace.
"""

from __future__ import annotations

import functools
import math
import re

import sympy
import torch
from rsh import Irreps

from ._coupling import coupling
from ._validate import (
    check_finite_rows,
    check_float_dtype,
    check_rtol,
    check_tensor,
    max_abs_rows,
    row_label,
)

__all__ = ["CartesianTensor"]

# Standard real l=1 harmonics are ∝ (y, z, x): m = -1, 0, 1 <- Cartesian axis 1, 2, 0.
_L1_FROM_CARTESIAN = (1, 2, 0)

_CHUNK = 65536  # rows per chunk of the symmetry check (bounds its temporaries)

_PART = re.compile(r"^-?[a-zA-Z]+$")


def _parse(formula: object) -> tuple[str, list[tuple[int, tuple[int, ...]]]]:
    if not isinstance(formula, str):
        raise TypeError(f"formula must be a str such as 'ij=ji', got {type(formula).__name__}")
    parts = [p.strip() for p in formula.replace(" ", "").split("=")]
    if not parts or any(not _PART.match(p) for p in parts):
        raise ValueError(
            f"formula must be index words joined by '=' (e.g. 'ijkl=jikl=klij', 'ij=-ji'), "
            f"got {formula!r}"
        )
    first = parts[0]
    if first.startswith("-"):
        raise ValueError(f"formula's first index word must not carry a sign, got {formula!r}")
    if len(set(first)) != len(first):
        raise ValueError(f"formula's first index word must have distinct letters, got {first!r}")
    generators = []
    for p in parts[1:]:
        sign = -1 if p.startswith("-") else 1
        word = p.lstrip("-")
        if sorted(word) != sorted(first):
            raise ValueError(
                f"formula {formula!r} is inconsistent: {word!r} is not a permutation of {first!r}"
            )
        generators.append((sign, tuple(first.index(c) for c in word)))
    return first, generators


def _close_group(
    n: int, generators: list[tuple[int, tuple[int, ...]]]
) -> dict[tuple[int, ...], int] | None:
    # Elements are signed permutations; closure under composition. Returns perm -> sign, or
    # None when the formula gives one permutation both signs (contradictory formula).
    identity = tuple(range(n))
    group = {identity: 1}
    frontier = [identity]
    while frontier:
        new = []
        for perm in frontier:
            for sign, gen in generators:
                comp = tuple(perm[i] for i in gen)
                s = group[perm] * sign
                if comp not in group:
                    group[comp] = s
                    new.append(comp)
                elif group[comp] != s:
                    return None  # one permutation with both signs: only T = 0 qualifies
        frontier = new
    return group


def _projector(n: int, group: dict[tuple[int, ...], int]) -> torch.Tensor:
    dim = 3**n
    idx = torch.arange(dim).reshape((3,) * n)
    p = torch.zeros(dim, dim, dtype=torch.float64)
    eye = torch.eye(dim, dtype=torch.float64)
    for perm, sign in group.items():
        # (P_g T)[i_1..i_n] = T[i_perm(1)..]: a permutation matrix of the flat index.
        src = idx.permute(*perm).reshape(-1)
        p += sign * eye[src]
    return p / len(group)


@functools.lru_cache(maxsize=16)
def _path_basis(n: int) -> dict[int, list[torch.Tensor]]:
    """Orthonormal equivariant bases of (R³)^⊗n: l -> list of [2l+1, 3^n] (one per path)."""
    v = torch.zeros(3, 3, dtype=torch.float64)
    for m, axis in enumerate(_L1_FROM_CARTESIAN):
        v[m, axis] = 1.0
    bases: dict[int, list[torch.Tensor]] = {1: [v]}
    for _ in range(n - 1):
        new: dict[int, list[torch.Tensor]] = {}
        for l_prev, qs in bases.items():
            for l in range(abs(l_prev - 1), l_prev + 2):
                c = coupling(l, l_prev, 1) * math.sqrt(2 * l + 1)  # [2l+1, 2l_prev+1, 3]
                for q in qs:
                    # new[i, (x, a)] = sum_{j, m} c[i, j, m] q[j, x] v[m, a]
                    t = torch.einsum("ijm,jx,ma->ixa", c, q, v).reshape(2 * l + 1, -1)
                    new.setdefault(l, []).append(t)
        bases = new
    if n == 0:
        return {0: [torch.ones(1, 1, dtype=torch.float64)]}
    return bases


class CartesianTensor:
    """A Cartesian tensor type with index-permutation symmetries, and its irreps.

    Parameters
    ----------
    formula : str
        Index words joined by ``=``, e.g. ``"ij=ji"`` (dielectric), ``"ijk=ikj"``
        (piezoelectric), ``"ijkl=jikl=klij"`` (elastic). A leading ``-`` marks
        antisymmetry (``"ij=-ji"``). Every word must be a permutation of the first.

    Attributes
    ----------
    formula : str
    rank : int
    irreps : rsh.Irreps
        e.g. ``Irreps("2x0e+2x2e+1x4e")``; parity is (-1)^rank (``str()`` gives the e3nn
        string).
    dim : int
        Number of irreducible components.

    Notes
    -----
    ``from_cartesian(T)`` gives ``x = Q · vec(T)`` with Q = ``change_of_basis()`` [dim, 3^rank],
    orthonormal rows spanning the symmetric tensors; x rotates by
    ``self.irreps.D(R)`` (rsh's "standard" basis) when T rotates by an orthogonal R in every
    index, improper R included (parity (-1)^rank).
    Within a multiplicity (several copies of one l) the basis is fixed but arbitrary.
    """

    def __init__(self, formula: str) -> None:
        self.indices, generators = _parse(formula)
        self.formula = formula
        self.rank = len(self.indices)
        if self.rank > 6:
            raise ValueError(f"formula rank must be <= 6, got rank {self.rank} in {formula!r}")
        group = _close_group(self.rank, generators)
        if group is None:
            raise ValueError(
                f"formula {formula!r} is contradictory: its relations give one index "
                "permutation both signs, so only the zero tensor satisfies it"
            )
        self._projector = _projector(self.rank, group)
        self._q, self._ls = self._build()
        parity = 1 if self.rank % 2 == 0 else -1
        counts: dict[int, int] = {}
        for l in self._ls:
            counts[l] = counts.get(l, 0) + 1
        self.irreps = Irreps([(c, l, parity) for l, c in sorted(counts.items())])
        self.dim = int(self._q.shape[0])

    def _build(self) -> tuple[torch.Tensor, list[int]]:
        rows, ls = [], []
        p = self._projector
        for l, qs in sorted(_path_basis(self.rank).items()):
            b = torch.stack(qs)  # [paths, 2l+1, 3^n]
            # P commutes with rotations: it acts on the path label only (Schur's lemma).
            m = torch.einsum("pix,xy,qiy->pq", b, p, b) / (2 * l + 1)
            for vec in _image_basis(m):
                rows.append(torch.einsum("p,pix->ix", vec, b))
                ls.append(l)
        if not rows:
            return torch.zeros(0, 3**self.rank, dtype=torch.float64), []
        return torch.cat(rows), ls

    def __repr__(self) -> str:
        return f"CartesianTensor({self.formula!r})  # {self.irreps}, dim {self.dim}"

    @property
    def ls(self) -> list[int]:
        """Degree l of each irrep copy, in the order of the components."""
        return list(self._ls)

    def change_of_basis(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Float matrix Q [dim, 3^rank]: irreps x = Q · vec(T); Q Qᵀ = I."""
        return self._q.to(check_float_dtype(dtype))

    def change_of_basis_exact(self) -> sympy.Matrix:
        """Exact sympy Q: each float entry is recognised as ±sqrt(rational) and verified.

        Raises ``ValueError`` if an entry is not of that form (the float Q is still valid).
        """
        return _exact_matrix(self._q)

    def projector(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Symmetry projector [3^rank, 3^rank] (mean of the signed index permutations)."""
        return self._projector.to(check_float_dtype(dtype))

    def from_cartesian(
        self, T: torch.Tensor, *, symmetrize: bool = False, rtol: float = 1e-6
    ) -> torch.Tensor:
        """Irreducible components [..., dim] of Cartesian tensors T [..., 3, ..., 3].

        Parameters
        ----------
        T : torch.Tensor
            Shape [..., 3, ..., 3] (``rank`` trailing axes of size 3), floating dtype.
        symmetrize : bool
            Use the projection of T onto the symmetric tensors (which is what Q sees anyway)
            instead of checking the symmetry.
        rtol : float
            Relative tolerance, a number ``>= 0`` (``math.inf``: any): each tensor must
            satisfy ``max|T - P T| <= rtol * max|T|`` (P: the symmetry projector).

        Raises
        ------
        ValueError
            Naming the first offending tensor (``T[i]``): NaN or inf entries (always
            checked), or a symmetry violation (unless ``symmetrize=True``).
        """
        T = check_tensor(T, "T", (3,) * self.rank)
        rtol = check_rtol(rtol)
        batch = tuple(T.shape[: T.dim() - self.rank])
        flat = T.reshape(-1, 3**self.rank)
        p = self._projector.to(dtype=T.dtype, device=T.device)
        with torch.no_grad():
            for start in range(0, flat.shape[0], _CHUNK):
                chunk = flat.detach()[start : start + _CHUNK]
                scale = max_abs_rows(chunk)
                check_finite_rows(scale, "T", batch, start)
                if symmetrize:
                    continue
                dev = max_abs_rows(chunk - chunk @ p.T)
                over = dev > rtol * scale
                if bool(over.any()):
                    r = int(over.nonzero()[0, 0])
                    label = row_label("T", start + r, batch)
                    raise ValueError(
                        f"{label} lacks the symmetry {self.formula!r}: max deviation "
                        f"{float(dev[r]):.3e} exceeds rtol*max|{label}| = "
                        f"{rtol * float(scale[r]):.3e}; pass symmetrize=True"
                    )
        # Q's rows lie in the symmetric subspace (Q Pᵀ = Q): Q T = Q (P T), so symmetrize
        # needs no extra projection.
        out = flat @ self._q.to(dtype=T.dtype, device=T.device).T
        return out.reshape(*batch, self.dim)

    def to_cartesian(self, x: torch.Tensor) -> torch.Tensor:
        """Cartesian tensors [..., 3, ..., 3] (symmetric) from components [..., dim]."""
        x = check_tensor(x, "x", (self.dim,))
        flat = x @ self._q.to(dtype=x.dtype, device=x.device)
        return flat.reshape(*x.shape[:-1], *((3,) * self.rank))


def _image_basis(m: torch.Tensor) -> list[torch.Tensor]:
    """Orthonormal basis of the image of the projector m, by Gram-Schmidt on its columns.

    Unlike an eigensolver this is canonical (no arbitrary rotation inside the eigenvalue-1
    space), so the entries stay simple surds that ``change_of_basis_exact`` recognises.
    """
    basis: list[torch.Tensor] = []
    for col in m.T:
        v = col.clone()
        for u in basis:
            v = v - (u @ v) * u
        norm = torch.linalg.norm(v)
        if norm > 1e-8:
            basis.append(v / norm)
    return basis


def _exact_matrix(q: torch.Tensor) -> sympy.Matrix:
    rows = []
    for row in q.tolist():
        out = []
        for value in row:
            if abs(value) < 1e-12:
                out.append(sympy.Integer(0))
                continue
            square = sympy.Rational(value * value).limit_denominator(10**6)
            if abs(float(square) - value * value) > 1e-13:
                raise ValueError(f"entry {value!r} is not ±sqrt(rational) with small denominator")
            out.append(sympy.sign(value) * sympy.sqrt(square))
        rows.append(out)
    return sympy.Matrix(rows)
