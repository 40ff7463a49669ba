"""Elastic tensor ⇄ irreducible (real spherical harmonic) components, thesis ch. 4 / App. E.

Notation follows the thesis exactly:

* covariant components ``C_αβγδ = C_ijkn K_αi K_βj K_γk K_δn`` (eq. 4.6 / E.5) with
  ``K``, ``J`` of eq. E.4 (α = -1, 0, +1 ↔ Y_1,-1 = -sqrt(3/4π) y, Y_1,0 = -sqrt(3/4π) z,
  Y_1,1 = -sqrt(3/4π) x: the "thesis" real harmonics, eq. 3.2-3.3);
* reconstruction ``C_αβγδ = T S`` (eq. 4.9-4.15) with the coefficient columns
  A, B_m, D, E_m, H_m of eq. 4.10-4.14 built from real Gaunt coefficients;
* ``S`` is ordered ``q00, q2m (m=-2..2), s00, s2m, s4m`` (``IRREPS``);
* ``S = T̂⁻¹ Ĉ`` (eq. 4.17), where hats select the rows of Table E.1 (``INDEPENDENT_IDS``)
  in ascending id order, the order of the thesis's supplementary matrices (8π^{3/2}) T̂ and
  T̂⁻¹/(8π^{3/2}) (Table E.1 itself prints the same 21 ids column by column).

The covariant index (α, β, γ, δ) is flattened as ``27(α+1) + 9(β+1) + 3(γ+1) + (δ+1)``,
which is the "id" of Table E.1.

Exact and float versions come from one computation: T is built once in exact surd
arithmetic (``SurdSum``, from the integer Racah formula); the sympy matrices and the float
tensors are two renderings of it. The minor/major symmetries are one group of index
permutations (``_PERMUTATIONS``) from which Algorithm 1, the symmetry check and the
projector ``symmetrize`` are all derived.

Units: whatever the input carries (GPa for Materials Project tensors); S has the same units.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import numpy as np
import sympy
import torch

from ._exact import SurdSum, real_gaunt_surd
from ._validate import (
    check_finite_rows,
    check_float_dtype,
    check_index,
    check_rtol,
    check_tensor,
    max_abs_rows,
    row_label,
)

__all__ = [
    "INDEPENDENT_IDS",
    "IRREPS",
    "VOIGT_PAIRS",
    "J",
    "J_tensor",
    "K",
    "K_tensor",
    "T",  # noqa: F822 (lazy, module __getattr__)
    "T_hat",  # noqa: F822
    "T_hat_inv",  # noqa: F822
    "T_hat_inv_tensor",
    "T_hat_tensor",
    "T_tensor",
    "canonical_index",
    "cartesian_to_irreps",
    "cartesian_to_voigt",
    "check_symmetry",
    "flat_id",
    "from_pymatgen",
    "irreps_to_cartesian",
    "symmetrize",
    "to_pymatgen",
    "voigt_moduli_from_irreps",
    "voigt_to_cartesian",
]

IRREPS = "1x0e+1x2e+1x0e+1x2e+1x4e"
"""Column order of S: q00, q2m, s00, s2m, s4m (e3nn irreps string; 21 components)."""

_PERM_K = sympy.Matrix([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
K = -sympy.sqrt(sympy.Rational(3, 4) / sympy.pi) * _PERM_K
"""Eq. E.4: covariant components x_α = K_αi x_i (rows α = -1, 0, +1)."""
J = -sympy.sqrt(4 * sympy.pi / 3) * _PERM_K.T
"""Eq. E.4: Cartesian components x_i = J_iα x_α; J = (4π/3) Kᵀ = K⁻¹."""

VOIGT_PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
"""Voigt index -> Cartesian pair: xx, yy, zz, yz, xz, xy."""

_COVARIANT = (-1, 0, 1)
_CHUNK = 65536  # rows per chunk of the symmetry check (bounds its temporaries)

# ------------------------------------------------------------------ index symmetries (E.18)

_GENERATORS: dict[str, tuple[int, int, int, int]] = {
    "minor (ijkl = jikl)": (1, 0, 2, 3),
    "minor (ijkl = ijlk)": (0, 1, 3, 2),
    "major (ijkl = klij)": (2, 3, 0, 1),
}


def _close(generators: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], ...]:
    group: set[tuple[int, ...]] = {(0, 1, 2, 3)}
    frontier = list(group)
    while frontier:
        new = []
        for p in frontier:
            for g in generators:
                q = tuple(p[i] for i in g)
                if q not in group:
                    group.add(q)
                    new.append(q)
        frontier = new
    return tuple(sorted(group))


_PERMUTATIONS = _close(tuple(_GENERATORS.values()))
"""The 8 index permutations that the minor and major symmetries generate (eq. E.18)."""


def _canonical(a: int, b: int, c: int, d: int) -> tuple[int, int, int, int]:
    # The lexicographically smallest copy of (a, b, c, d) under the 8 symmetries: exactly
    # what Algorithm 1 returns when the in-pair sorts come first (sorted pairs, then the
    # smaller pair first). Works on any ordered index values, so it serves the covariant
    # (-1, 0, 1) and the Cartesian (0, 1, 2) ids alike.
    x = (a, b, c, d)
    return min((x[p[0]], x[p[1]], x[p[2]], x[p[3]]) for p in _PERMUTATIONS)


def _check_covariant(a: object, b: object, c: object, d: object) -> tuple[int, int, int, int]:
    return (
        check_index(a, "a", _COVARIANT),
        check_index(b, "b", _COVARIANT),
        check_index(c, "c", _COVARIANT),
        check_index(d, "d", _COVARIANT),
    )


def canonical_index(a: int, b: int, c: int, d: int) -> tuple[int, int, int, int]:
    """Algorithm 1: map covariant indices (α, β, γ, δ) ∈ {-1, 0, 1}⁴ to their canonical copy.

    The result is the representative with α ≤ β, γ ≤ δ and (α, β) ≤ (γ, δ)
    lexicographically, whose flattened id is one of ``INDEPENDENT_IDS`` (Table E.1).
    Integers of any integer type (numpy included) are accepted; anything else raises
    ``TypeError``, values outside {-1, 0, 1} raise ``ValueError``.

    Note: the thesis lists the pair swap *before* sorting within the pairs; taken
    literally that order maps e.g. (-1, +1, 0, -1) to (-1, +1, -1, 0) (id 19), which is
    not in Table E.1 (ids 19, 38, 47 are reached). We sort within the pairs first, then
    order the pairs, which reaches exactly the 21 ids of Table E.1.
    """
    return _canonical(*_check_covariant(a, b, c, d))


def flat_id(a: int, b: int, c: int, d: int) -> int:
    """Flattened covariant id ``27(α+1) + 9(β+1) + 3(γ+1) + (δ+1)`` (Table E.1's "id").

    Each of (α, β, γ, δ) must be an integer in {-1, 0, 1} (``TypeError``/``ValueError``).
    """
    a, b, c, d = _check_covariant(a, b, c, d)
    return 27 * (a + 1) + 9 * (b + 1) + 3 * (c + 1) + (d + 1)


INDEPENDENT_IDS: tuple[int, ...] = tuple(
    sorted({flat_id(*_canonical(*x)) for x in itertools.product(_COVARIANT, repeat=4)})
)
"""Table E.1: flattened covariant ids of the 21 independent entries, in ascending order.

``(0, 1, 2, 4, 5, 8, 10, 11, 13, 14, 17, 20, 22, 23, 26, 40, 41, 44, 50, 53, 80)``: the
order of the rows of ``T_hat`` and of the columns of ``T_hat_inv`` (and of the thesis's
supplementary matrices). Table E.1 prints the same ids column by column (0, …, 8, 80, 10, …).
"""

# ----------------------------------------------------------------------------- T (eq. 4.15)


@functools.lru_cache(maxsize=1)
def _t_surd() -> tuple[tuple[SurdSum, ...], ...]:
    # π^{3/2} T, exactly: every entry is a product of three real Gaunt coefficients, each a
    # surd divided by sqrt(π). Rows: covariant ids 0..80; columns: A, B_m, D, E_m, H_m.
    g = real_gaunt_surd  # sqrt(π) G^{l1 l2 l3}_{m1 m2 m3}
    g000 = g(0, 0, 0, 0, 0, 0)
    g022 = [g(0, 2, 2, 0, m, m) for m in range(-2, 3)]
    rows = []
    for a, b, c, d in itertools.product(_COVARIANT, repeat=4):
        # G^{l,1,1}_{m,α,β}; the (-1)^l of the thesis harmonics cancels (l + 1 + 1 even).
        g0ab, g0cd = g(0, 1, 1, 0, a, b), g(0, 1, 1, 0, c, d)
        g2ab = [g(2, 1, 1, m, a, b) for m in range(-2, 3)]
        g2cd = [g(2, 1, 1, m, c, d) for m in range(-2, 3)]
        row = [g0ab * g0cd * g000]  # A, eq. 4.10
        row += [(g0ab * g2cd[i] + g0cd * g2ab[i]) * g022[i] for i in range(5)]  # B_m, eq. 4.11
        row.append(sum((g2ab[i] * g2cd[i] * g022[i] for i in range(5)), SurdSum()))  # D, 4.12
        for l in (2, 4):  # E_m (eq. 4.13) and H_m (eq. 4.14)
            for m in range(-l, l + 1):
                terms = (
                    g2ab[i] * g2cd[j] * g(l, 2, 2, m, i - 2, j - 2)
                    for i in range(5)
                    for j in range(5)
                    if g2ab[i] and g2cd[j]
                )
                row.append(sum(terms, SurdSum()))
        rows.append(tuple(row))
    return tuple(rows)


@functools.lru_cache(maxsize=1)
def _t_exact() -> sympy.Matrix:
    scale = sympy.pi ** sympy.Rational(-3, 2)
    return sympy.Matrix([[x.to_sympy() * scale for x in row] for row in _t_surd()])


@functools.lru_cache(maxsize=1)
def _t_float() -> torch.Tensor:
    t = torch.tensor([[float(x) for x in row] for row in _t_surd()], dtype=torch.float64)
    return t / math.pi**1.5


def __getattr__(name: str) -> Any:
    # T, T_hat, T_hat_inv are exact sympy matrices built lazily (the inverse takes seconds).
    if name == "T":
        return _t_exact()
    if name == "T_hat":
        return _t_hat_exact()
    if name == "T_hat_inv":
        return _t_hat_inv_exact()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=1)
def _t_hat_exact() -> sympy.Matrix:
    t = _t_exact()
    return sympy.Matrix([list(t.row(i)) for i in INDEPENDENT_IDS])


@functools.lru_cache(maxsize=1)
def _t_hat_inv_exact() -> sympy.Matrix:
    # Invert the π-free matrix 8π^{3/2} T̂ (entries are surds), then restore the factor.
    t = _t_surd()
    scaled = sympy.Matrix([[8 * x.to_sympy() for x in t[i]] for i in INDEPENDENT_IDS])
    inv = scaled.inv(method="LU").applyfunc(sympy.radsimp)
    return inv * (8 * sympy.pi ** sympy.Rational(3, 2))


def K_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``K`` (eq. E.4), shape [3, 3], rows α = -1, 0, +1."""
    check_float_dtype(dtype)
    return torch.tensor(np.array(K.evalf(20), dtype=np.float64)).to(dtype)


def J_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``J`` (eq. E.4), shape [3, 3]; ``J @ K == I``."""
    check_float_dtype(dtype)
    return torch.tensor(np.array(J.evalf(20), dtype=np.float64)).to(dtype)


def T_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``T`` (eq. 4.15), shape [81, 21]."""
    check_float_dtype(dtype)
    return _t_float().to(dtype)


def T_hat_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``T_hat`` (eq. 4.16), shape [21, 21]; rows in ``INDEPENDENT_IDS`` order."""
    check_float_dtype(dtype)
    return _t_float()[list(INDEPENDENT_IDS)].to(dtype)


@functools.lru_cache(maxsize=1)
def _t_hat_inv_float() -> torch.Tensor:
    return torch.linalg.inv(_t_float()[list(INDEPENDENT_IDS)])


def T_hat_inv_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``T_hat_inv`` (eq. 4.17), shape [21, 21]; columns in ``INDEPENDENT_IDS``
    order."""
    check_float_dtype(dtype)
    return _t_hat_inv_float().to(dtype)


def _kron4(m: torch.Tensor) -> torch.Tensor:
    k2 = torch.kron(m, m)
    return torch.kron(k2, k2)


@functools.lru_cache(maxsize=1)
def _decompose_matrix() -> torch.Tensor:
    # S = T̂⁻¹ · select(K⊗K⊗K⊗K · vec C): one [21, 81] matrix.
    cov = _kron4(K_tensor())  # [81 cov, 81 cart]
    return _t_hat_inv_float() @ cov[list(INDEPENDENT_IDS)]


@functools.lru_cache(maxsize=1)
def _reconstruct_matrix() -> torch.Tensor:
    # C = J⊗J⊗J⊗J · T · S: one [81, 21] matrix.
    return _kron4(J_tensor()) @ _t_float()


# ------------------------------------------------------------------ symmetry check, projector


def _flat(i: int, j: int, k: int, l: int) -> int:
    return 27 * i + 9 * j + 3 * k + l


@functools.lru_cache(maxsize=1)
def _difference_matrix() -> torch.Tensor:
    # [81, 60]: column k is e_x - e_y for the k-th Cartesian entry x that the symmetries make
    # a copy of y = Algorithm 1 applied to x (y != x). flat @ D gives every C[x] - C[y]
    # exactly (the other terms are exact zeros) in one matmul, faster than two gathers.
    pairs = [
        (_flat(*ijkl), _flat(*_canonical(*ijkl))) for ijkl in itertools.product(range(3), repeat=4)
    ]
    pairs = [(x, y) for x, y in pairs if x != y]
    d = torch.zeros(81, len(pairs), dtype=torch.float64)
    for k, (x, y) in enumerate(pairs):
        d[x, k], d[y, k] = 1.0, -1.0
    return d


@functools.lru_cache(maxsize=1)
def _symmetric_projector() -> torch.Tensor:
    # Symmetric [81, 81] matrix: the mean of the 8 permutation matrices of _PERMUTATIONS.
    idx = torch.arange(81).reshape(3, 3, 3, 3)
    eye = torch.eye(81, dtype=torch.float64)
    return torch.stack([eye[idx.permute(*p).reshape(-1)] for p in _PERMUTATIONS]).mean(dim=0)


def _symmetry_error(row: torch.Tensor, label: str, dev: float, bound: float, hint: str) -> str:
    # Name the generators this one tensor violates (cheap: one row).
    c = row.reshape(3, 3, 3, 3)
    devs = {name: float((c - c.permute(*p)).abs().max()) for name, p in _GENERATORS.items()}
    names = [name for name, d in devs.items() if d > bound] or [max(devs, key=devs.__getitem__)]
    noun = "symmetry" if len(names) == 1 else "symmetries"
    return (
        f"{label} lacks the {', '.join(names)} {noun}: max deviation {dev:.3e} between "
        f"entries that must be equal exceeds rtol*max|{label}| = {bound:.3e}{hint}"
    )


def _check_rows(
    flat: torch.Tensor, batch: tuple[int, ...], rtol: float | None, name: str, hint: str
) -> None:
    """The one check: every row of ``flat`` [n, 81] is finite and (unless ``rtol`` is None)
    symmetric: ``max |C[x] - C[canonical(x)]| <= rtol * max |C|`` row by row."""
    d = _difference_matrix().to(dtype=flat.dtype, device=flat.device)
    with torch.no_grad():
        for start in range(0, flat.shape[0], _CHUNK):
            chunk = flat.detach()[start : start + _CHUNK]
            scale = max_abs_rows(chunk)  # NaN or inf exactly for rows holding NaN or inf
            check_finite_rows(scale, name, batch, start)
            if rtol is None:
                continue
            dev = max_abs_rows(chunk @ d)
            over = dev > rtol * scale
            if bool(over.any()):
                r = int(over.nonzero()[0, 0])
                label = row_label(name, start + r, batch)
                bound = rtol * float(scale[r])
                raise ValueError(_symmetry_error(chunk[r], label, float(dev[r]), bound, hint))


def check_symmetry(C: torch.Tensor, *, rtol: float = 1e-6) -> None:
    """Check that every tensor of a batch is finite and has the minor and major symmetries.

    Parameters
    ----------
    C : torch.Tensor
        Shape [..., 3, 3, 3, 3], floating dtype (e.g. GPa).
    rtol : float
        Relative tolerance, a number ``>= 0`` (``math.inf``: any): each tensor's largest difference
        between entries that the symmetries make equal (``C[x]`` and its copy ``C[y]``,
        ``y`` = Algorithm 1 applied to the Cartesian indices of ``x``) must not exceed
        ``rtol * max|C|`` of that same tensor.

    Raises
    ------
    ValueError
        Naming the first offending tensor (``C[i, j]``): non-finite entries, or the
        violated symmetries (minor ijkl = jikl, minor ijkl = ijlk, major ijkl = klij).
    """
    C = check_tensor(C, "C", (3, 3, 3, 3))
    rtol = check_rtol(rtol)
    batch = tuple(C.shape[:-4])
    _check_rows(C.reshape(-1, 81), batch, rtol, "C", "; symmetrize(C) projects onto them")


def symmetrize(C: torch.Tensor) -> torch.Tensor:
    """Project C onto tensors with minor and major symmetry (mean of the 8 permutations)."""
    C = check_tensor(C, "C", (3, 3, 3, 3))
    return _project(C.reshape(-1, 81)).reshape(C.shape)


def _project(flat: torch.Tensor) -> torch.Tensor:
    return flat @ _symmetric_projector().to(dtype=flat.dtype, device=flat.device)


# ----------------------------------------------------------------------------- transforms


def cartesian_to_irreps(
    C: torch.Tensor, *, symmetrize: bool = False, validate: bool = True, rtol: float = 1e-6
) -> torch.Tensor:
    """Irreducible components S = T̂⁻¹ Ĉ (eq. 4.17) of Cartesian elastic tensors.

    Parameters
    ----------
    C : torch.Tensor
        Elastic tensors, shape [..., 3, 3, 3, 3], floating dtype (e.g. GPa).
    symmetrize : bool
        Project C onto the minor+major symmetric tensors first. Otherwise a tensor that
        lacks a symmetry by more than ``rtol * max|C|`` (of that tensor) raises
        ``ValueError`` (see ``check_symmetry``).
    validate : bool
        Check every tensor (default): a tensor with NaN or inf entries raises
        ``ValueError`` naming it, and so does an asymmetric one unless ``symmetrize``.
        ``False`` skips all checks for throughput; the result for a non-symmetric C is
        then that of the Table E.1 entries only, and non-finite C gives non-finite S.
    rtol : float
        Relative tolerance of the symmetry check, a number ``>= 0`` (``math.inf`` accepts
        any asymmetry; the finiteness check still runs). NaN and negative values raise.

    Returns
    -------
    torch.Tensor
        Shape [..., 21] in the order of ``IRREPS`` (q00, q2m, s00, s2m, s4m), same units as C.
        Under a rotation R of C, block l rotates by ``rsh.wigner_D(l, R, convention="thesis")``.
    """
    C = check_tensor(C, "C", (3, 3, 3, 3))
    rtol = check_rtol(rtol)
    batch = tuple(C.shape[:-4])
    flat = C.reshape(-1, 81)
    if validate:
        hint = "; pass symmetrize=True to project onto symmetric tensors"
        _check_rows(flat, batch, None if symmetrize else rtol, "C", hint)
    if symmetrize:
        flat = _project(flat)
    m = _decompose_matrix().to(dtype=C.dtype, device=C.device)
    return (flat @ m.T).reshape(*batch, 21)


def irreps_to_cartesian(S: torch.Tensor) -> torch.Tensor:
    """Cartesian elastic tensors C = J⊗J⊗J⊗J · T · S (eq. 4.7, 4.15).

    Parameters
    ----------
    S : torch.Tensor
        Shape [..., 21] in the order of ``IRREPS``, floating dtype.

    Returns
    -------
    torch.Tensor
        Shape [..., 3, 3, 3, 3], same units as S.
    """
    S = check_tensor(S, "S", (21,))
    m = _reconstruct_matrix().to(dtype=S.dtype, device=S.device)
    return (S @ m.T).reshape(*S.shape[:-1], 3, 3, 3, 3)


def voigt_to_cartesian(C6: torch.Tensor) -> torch.Tensor:
    """Voigt 6×6 stiffness (xx, yy, zz, yz, xz, xy; no factors of 2) -> [..., 3, 3, 3, 3]."""
    C6 = check_tensor(C6, "C6", (6, 6))
    idx = torch.empty(3, 3, dtype=torch.long)
    for v, (i, j) in enumerate(VOIGT_PAIRS):
        idx[i, j] = idx[j, i] = v
    flat = idx.reshape(9).to(C6.device)
    return C6[..., flat, :][..., :, flat].reshape(*C6.shape[:-2], 3, 3, 3, 3)


def cartesian_to_voigt(C: torch.Tensor, *, rtol: float = 1e-6) -> torch.Tensor:
    """[..., 3, 3, 3, 3] -> Voigt [..., 6, 6]; checks every tensor (``check_symmetry``)."""
    C = check_tensor(C, "C", (3, 3, 3, 3))
    check_symmetry(C, rtol=rtol)
    rows = torch.tensor([3 * i + j for i, j in VOIGT_PAIRS], device=C.device)
    flat = C.reshape(*C.shape[:-4], 9, 9)
    return flat[..., rows, :][..., :, rows]


def from_pymatgen(et: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """pymatgen ``ElasticTensor`` (full 3×3×3×3, GPa) -> torch tensor [3, 3, 3, 3].

    Any real-valued array-like of that shape is accepted; strings, objects and booleans
    raise ``TypeError`` (numeric strings are not parsed), other shapes ``ValueError``.
    """
    check_float_dtype(dtype)
    try:
        arr = np.asarray(et)
    except (TypeError, ValueError) as err:  # ragged nested lists
        raise TypeError(f"et must be a 3x3x3x3 array of real numbers, got {et!r:.80}") from err
    if arr.dtype.kind not in "iuf":
        raise TypeError(
            f"et must be a 3x3x3x3 array of real numbers (e.g. pymatgen ElasticTensor), "
            f"got an array of dtype {arr.dtype} ({type(et).__name__})"
        )
    if arr.shape != (3, 3, 3, 3):
        raise ValueError(f"et must be a 3x3x3x3 elastic tensor, got shape {arr.shape}")
    return torch.as_tensor(arr.astype(np.float64), dtype=dtype)


def to_pymatgen(C: torch.Tensor) -> Any:
    """Torch tensor [3, 3, 3, 3] -> pymatgen ``ElasticTensor`` (needs pymatgen)."""
    from pymatgen.analysis.elasticity import ElasticTensor

    C = check_tensor(C, "C", (3, 3, 3, 3))
    if C.dim() != 4:
        raise ValueError(f"C must be a single tensor [3, 3, 3, 3], got {tuple(C.shape)}")
    check_symmetry(C)
    return ElasticTensor(C.detach().cpu().double().numpy())


def voigt_moduli_from_irreps(S: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Voigt bulk and shear moduli from the isotropic components q00 and s00.

    The exact relation (derived with sympy, tested on every MP tensor) is::

        q00 = 9 K_V / (2 sqrt(pi)),    s00 = 15 G_V / (2 sqrt(pi))

    because q00 = C_iijj / (2 sqrt(pi)) with C_iijj = 9 K_V, and s00 is the other rotation
    invariant, s00 = (3 C_ijij - C_iijj) / (4 sqrt(pi)) with C_ijij = 3 K_V + 10 G_V.

    Parameters
    ----------
    S : torch.Tensor
        Shape [..., 21] (``IRREPS`` order), e.g. GPa.

    Returns
    -------
    (K_V, G_V) : tuple of torch.Tensor
        Each of shape [...], same units as S.
    """
    S = check_tensor(S, "S", (21,))
    root_pi = math.sqrt(math.pi)
    return S[..., 0] * (2 * root_pi / 9), S[..., 6] * (2 * root_pi / 15)
