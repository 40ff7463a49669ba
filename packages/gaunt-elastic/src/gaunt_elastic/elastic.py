"""Elastic tensor ⇄ irreducible (real spherical harmonic) components, thesis ch. 4 / App. E.

Notation follows the thesis exactly:

* covariant components ``C_αβγδ = C_ijkn K_αi K_βj K_γk K_δn`` (eq. 4.6 / E.5) with
  ``K``, ``J`` of eq. E.4 (α = -1, 0, +1 ↔ Y_1,-1 = -sqrt(3/4π) y, Y_1,0 = -sqrt(3/4π) z,
  Y_1,1 = -sqrt(3/4π) x: the "thesis" real harmonics, eq. 3.2-3.3);
* reconstruction ``C_αβγδ = T S`` (eq. 4.9-4.15) with the coefficient columns
  A, B_m, D, E_m, H_m of eq. 4.10-4.14 built from real Gaunt coefficients;
* ``S`` is ordered ``q00, q2m (m=-2..2), s00, s2m, s4m`` (``IRREPS``);
* ``S = T̂⁻¹ Ĉ`` (eq. 4.17), where hats select the rows of Table E.1 (``INDEPENDENT_IDS``).

The covariant index (α, β, γ, δ) is flattened as ``27(α+1) + 9(β+1) + 3(γ+1) + (δ+1)``,
which is the "id" of Table E.1.

Units: whatever the input carries (GPa for Materials Project tensors); S has the same units.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import sympy
import torch

from ._exact import real_gaunt_exact

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

INDEPENDENT_IDS: tuple[int, ...] = (
    0, 1, 2, 4, 5, 8, 80,
    10, 11, 13, 14, 17, 50, 53,
    20, 22, 23, 26, 40, 41, 44,
)  # fmt: skip
"""Table E.1: flattened covariant ids of the 21 independent entries (in the table's order)."""

VOIGT_PAIRS: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
"""Voigt index -> Cartesian pair: xx, yy, zz, yz, xz, xy."""

_COVARIANT = (-1, 0, 1)
_CHUNK = 65536  # rows per chunk of the symmetry check (bounds its temporaries)


def canonical_index(a: int, b: int, c: int, d: int) -> tuple[int, int, int, int]:
    """Algorithm 1: map covariant indices (α, β, γ, δ) ∈ {-1, 0, 1}⁴ to their canonical copy.

    The result is the representative with α ≤ β, γ ≤ δ and (α, β) ≤ (γ, δ)
    lexicographically, whose flattened id is one of ``INDEPENDENT_IDS`` (Table E.1).

    Note: the thesis lists the pair swap *before* sorting within the pairs; taken
    literally that order maps e.g. (-1, +1, 0, -1) to (-1, +1, -1, 0) (id 19), which is
    not in Table E.1 (ids 19, 38, 47 are reached). We sort within the pairs first, then
    order the pairs, which reaches exactly the 21 ids of Table E.1.
    """
    for name, value in zip("abcd", (a, b, c, d)):
        if isinstance(value, bool) or not isinstance(value, int) or value not in _COVARIANT:
            raise ValueError(f"{name} must be one of -1, 0, 1, got {value!r}")
    if a > b:
        a, b = b, a
    if c > d:
        c, d = d, c
    if a > c or (a == c and b > d):
        a, c = c, a
        b, d = d, b
    return a, b, c, d


def flat_id(a: int, b: int, c: int, d: int) -> int:
    """Flattened covariant id of (α, β, γ, δ) ∈ {-1, 0, 1}⁴ (Table E.1's "id")."""
    return 27 * (a + 1) + 9 * (b + 1) + 3 * (c + 1) + (d + 1)


def _g(l: int, m: int, a: int, b: int) -> sympy.Expr:
    # G^{l,1,1}_{m,α,β}; the (-1)^l of the thesis harmonics cancels (l + 1 + 1 even).
    return real_gaunt_exact(l, 1, 1, m, a, b)


@functools.lru_cache(maxsize=1)
def _t_exact() -> sympy.Matrix:
    g000 = real_gaunt_exact(0, 0, 0, 0, 0, 0)
    rows = []
    for a, b, c, d in itertools.product(_COVARIANT, repeat=4):
        g0ab, g0cd = _g(0, 0, a, b), _g(0, 0, c, d)
        g2ab = [_g(2, m, a, b) for m in range(-2, 3)]
        g2cd = [_g(2, m, c, d) for m in range(-2, 3)]
        row = [g0ab * g0cd * g000]  # A, eq. 4.10
        row += [
            (g0ab * g2cd[m + 2] + g0cd * g2ab[m + 2]) * real_gaunt_exact(0, 2, 2, 0, m, m)
            for m in range(-2, 3)
        ]  # B_m, eq. 4.11
        row.append(
            sum(g2ab[i] * g2cd[i] * real_gaunt_exact(0, 2, 2, 0, i - 2, i - 2) for i in range(5))
        )  # D, eq. 4.12
        for l in (2, 4):  # E_m (eq. 4.13) and H_m (eq. 4.14)
            for m in range(-l, l + 1):
                row.append(
                    sum(
                        g2ab[i] * g2cd[j] * real_gaunt_exact(l, 2, 2, m, i - 2, j - 2)
                        for i in range(5)
                        for j in range(5)
                    )
                )
        rows.append([sympy.nsimplify(sympy.expand(x)) if x != 0 else x for x in row])
    return sympy.Matrix(rows)


def __getattr__(name: str) -> Any:
    # T, T_hat, T_hat_inv are exact sympy matrices built lazily (sympy work takes ~1 s).
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
    scale = 8 * sympy.pi ** sympy.Rational(3, 2)
    scaled = (_t_hat_exact() * scale).applyfunc(sympy.radsimp)
    inv = scaled.inv(method="LU").applyfunc(sympy.radsimp)
    return inv * scale


# ----------------------------------------------------------------------------- float path


def _real_gaunt_f(l1: int, l2: int, l3: int, m1: int, m2: int, m3: int) -> float:
    from ._exact import real_gaunt_float

    return real_gaunt_float(l1, l2, l3, m1, m2, m3)


@functools.lru_cache(maxsize=1)
def _t_float() -> torch.Tensor:
    # Same formulas as _t_exact, in float64 from the exact rational terms (no sympy).
    g = _real_gaunt_f
    t = torch.zeros(81, 21, dtype=torch.float64)
    g000 = g(0, 0, 0, 0, 0, 0)
    for row, (a, b, c, d) in enumerate(itertools.product(_COVARIANT, repeat=4)):
        g0ab, g0cd = g(0, 1, 1, 0, a, b), g(0, 1, 1, 0, c, d)
        g2ab = [g(2, 1, 1, m, a, b) for m in range(-2, 3)]
        g2cd = [g(2, 1, 1, m, c, d) for m in range(-2, 3)]
        t[row, 0] = g0ab * g0cd * g000
        for i in range(5):
            t[row, 1 + i] = (g0ab * g2cd[i] + g0cd * g2ab[i]) * g(0, 2, 2, 0, i - 2, i - 2)
        t[row, 6] = sum(g2ab[i] * g2cd[i] * g(0, 2, 2, 0, i - 2, i - 2) for i in range(5))
        col = 7
        for l in (2, 4):
            for m in range(-l, l + 1):
                t[row, col] = sum(
                    g2ab[i] * g2cd[j] * g(l, 2, 2, m, i - 2, j - 2)
                    for i in range(5)
                    for j in range(5)
                )
                col += 1
    return t


def _check_float_dtype(dtype: torch.dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")


def K_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``K`` (eq. E.4), shape [3, 3], rows α = -1, 0, +1."""
    _check_float_dtype(dtype)
    c = math.sqrt(3 / (4 * math.pi))
    return -c * torch.tensor([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=dtype)


def J_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``J`` (eq. E.4), shape [3, 3]; ``J @ K == I``."""
    _check_float_dtype(dtype)
    c = math.sqrt(4 * math.pi / 3)
    return -c * torch.tensor([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype=dtype)


def T_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``T`` (eq. 4.15), shape [81, 21]."""
    _check_float_dtype(dtype)
    return _t_float().to(dtype)


def T_hat_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``T_hat`` (eq. 4.16), shape [21, 21]."""
    _check_float_dtype(dtype)
    return _t_float()[list(INDEPENDENT_IDS)].to(dtype)


@functools.lru_cache(maxsize=1)
def _t_hat_inv_float() -> torch.Tensor:
    return torch.linalg.inv(_t_float()[list(INDEPENDENT_IDS)])


def T_hat_inv_tensor(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Float version of ``T_hat_inv`` (eq. 4.17), shape [21, 21]."""
    _check_float_dtype(dtype)
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


def _check_tensor(x: object, name: str, trailing: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    n = len(trailing)
    if x.dim() < n or tuple(x.shape[-n:]) != trailing:
        raise ValueError(
            f"{name} must have shape [..., {', '.join(map(str, trailing))}], got {tuple(x.shape)}"
        )
    return x


_SYMMETRIES = {
    "minor (ijkl = jikl)": (1, 0, 2, 3),
    "minor (ijkl = ijlk)": (0, 1, 3, 2),
    "major (ijkl = klij)": (2, 3, 0, 1),
}


def check_symmetry(C: torch.Tensor, *, rtol: float = 1e-6) -> None:
    """Raise ``ValueError`` naming the violated symmetry when C lacks a minor/major symmetry.

    The deviation ``max|C - Cᵖ|`` is compared to ``rtol * max|C|`` (per batch, worst case).
    """
    C = _check_tensor(C, "C", (3, 3, 3, 3))
    if not C.numel():
        return
    nb = C.dim() - 4
    scale = C.abs().amax()
    # Fast path, one matmul: with r = C - P·C (P: projector onto symmetric tensors) every
    # deviation C - g·C = r - g·r, so max|r| <= tol/2 proves all of them are within tol.
    flat = C.reshape(-1, 81)
    p = _symmetric_projector().to(dtype=C.dtype, device=C.device)
    if (flat - flat @ p).abs().amax() <= 0.5 * rtol * scale:
        return
    for label, perm in _SYMMETRIES.items():
        order = tuple(range(nb)) + tuple(nb + i for i in perm)
        dev = (C - C.permute(order)).abs().amax()
        if dev > rtol * scale:
            raise ValueError(
                f"C lacks the {label} symmetry: max deviation {float(dev):.3e} exceeds "
                f"rtol*max|C| = {float(rtol * scale):.3e}; pass symmetrize=True to project "
                "onto symmetric tensors"
            )


@functools.lru_cache(maxsize=1)
def _symmetric_projector() -> torch.Tensor:
    # Symmetric [81, 81] matrix averaging the 8 index permutations of the elastic symmetries.
    eye = torch.eye(81, dtype=torch.float64).reshape(81, 3, 3, 3, 3)
    return symmetrize(eye).reshape(81, 81)


def symmetrize(C: torch.Tensor) -> torch.Tensor:
    """Project C onto tensors with minor and major symmetry (average over the 8 permutations)."""
    C = _check_tensor(C, "C", (3, 3, 3, 3))
    nb = C.dim() - 4
    b = tuple(range(nb))
    perms = [(0, 1, 2, 3), (1, 0, 2, 3), (0, 1, 3, 2), (1, 0, 3, 2)]
    perms += [(p[2], p[3], p[0], p[1]) for p in perms]
    return sum(C.permute(b + tuple(nb + i for i in p)) for p in perms) / 8


@functools.lru_cache(maxsize=1)
def _redundant_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    # Flat Cartesian ids of the 60 entries that minor/major symmetry makes copies of others,
    # and the ids of the canonical entries they must equal.
    redundant, canonical = [], []
    for i, j, k, l in itertools.product(range(3), repeat=4):
        a, b = sorted((i, j))
        c, d = sorted((k, l))
        if (a, b) > (c, d):
            a, b, c, d = c, d, a, b
        src, dst = 27 * i + 9 * j + 3 * k + l, 27 * a + 9 * b + 3 * c + d
        if src != dst:
            redundant.append(src)
            canonical.append(dst)
    return torch.tensor(redundant), torch.tensor(canonical)


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
        lacks a symmetry by more than ``rtol * max|C|`` raises ``ValueError``.
    validate : bool
        Check the symmetries (default). ``False`` skips the check for throughput; the
        result for a non-symmetric C is then that of the Table E.1 entries only.
    rtol : float
        Relative tolerance of the symmetry check.

    Returns
    -------
    torch.Tensor
        Shape [..., 21] in the order of ``IRREPS`` (q00, q2m, s00, s2m, s4m), same units as C.
        Under a rotation R of C, block l rotates by ``rsh.wigner_D(l, R, convention="thesis")``.
    """
    C = _check_tensor(C, "C", (3, 3, 3, 3))
    if symmetrize:
        C = globals()["symmetrize"](C)
    m = _decompose_matrix().to(dtype=C.dtype, device=C.device)
    batch = C.shape[:-4]
    flat = C.reshape(-1, 81)
    if symmetrize or not validate or not flat.numel():
        return (flat @ m.T).reshape(*batch, 21)
    # Cheap symmetry check: compare each of the 60 redundant entries with its canonical copy
    # (i <= j, k <= l, (i, j) <= (k, l)). Those differences bound every generator deviation
    # by twice their maximum, so max <= rtol/2 · max|C| proves the symmetries; otherwise the
    # detailed check names the violated symmetry (or accepts a borderline C). Chunks bound
    # the size of the gathered temporaries.
    redundant, canonical = (t.to(C.device) for t in _redundant_pairs())
    s = flat @ m.T
    worst = flat.new_zeros(())
    inf = float("inf")
    with torch.no_grad():
        for chunk in flat.detach().split(_CHUNK):
            diff = chunk.index_select(1, redundant) - chunk.index_select(1, canonical)
            # vector_norm(inf) is a single fused reduction (abs().amax() materialises |x|).
            worst = torch.maximum(worst, torch.linalg.vector_norm(diff, inf))
        scale = torch.linalg.vector_norm(flat.detach(), inf)
    if worst > 0.5 * rtol * scale:
        check_symmetry(C, rtol=rtol)
    return s.reshape(*batch, 21)


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
    S = _check_tensor(S, "S", (21,))
    m = _reconstruct_matrix().to(dtype=S.dtype, device=S.device)
    return (S @ m.T).reshape(*S.shape[:-1], 3, 3, 3, 3)


def voigt_to_cartesian(C6: torch.Tensor) -> torch.Tensor:
    """Voigt 6×6 stiffness (xx, yy, zz, yz, xz, xy; no factors of 2) -> [..., 3, 3, 3, 3]."""
    C6 = _check_tensor(C6, "C6", (6, 6))
    idx = torch.empty(3, 3, dtype=torch.long)
    for v, (i, j) in enumerate(VOIGT_PAIRS):
        idx[i, j] = idx[j, i] = v
    flat = idx.reshape(9).to(C6.device)
    return C6[..., flat, :][..., :, flat].reshape(*C6.shape[:-2], 3, 3, 3, 3)


def cartesian_to_voigt(C: torch.Tensor, *, rtol: float = 1e-6) -> torch.Tensor:
    """[..., 3, 3, 3, 3] -> Voigt [..., 6, 6] (checks the minor and major symmetries)."""
    C = _check_tensor(C, "C", (3, 3, 3, 3))
    check_symmetry(C, rtol=rtol)
    rows = torch.tensor([3 * i + j for i, j in VOIGT_PAIRS], device=C.device)
    flat = C.reshape(*C.shape[:-4], 9, 9)
    return flat[..., rows, :][..., :, rows]


def from_pymatgen(et: Any, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """pymatgen ``ElasticTensor`` (full 3×3×3×3, GPa) -> torch tensor [3, 3, 3, 3]."""
    import numpy as np

    _check_float_dtype(dtype)
    arr = np.asarray(et, dtype=np.float64)
    if arr.shape != (3, 3, 3, 3):
        raise ValueError(f"et must be a 3x3x3x3 elastic tensor, got shape {arr.shape}")
    return torch.as_tensor(arr, dtype=dtype)


def to_pymatgen(C: torch.Tensor) -> Any:
    """Torch tensor [3, 3, 3, 3] -> pymatgen ``ElasticTensor`` (needs pymatgen)."""
    from pymatgen.analysis.elasticity import ElasticTensor

    C = _check_tensor(C, "C", (3, 3, 3, 3))
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
    S = _check_tensor(S, "S", (21,))
    root_pi = math.sqrt(math.pi)
    return S[..., 0] * (2 * root_pi / 9), S[..., 6] * (2 * root_pi / 15)
