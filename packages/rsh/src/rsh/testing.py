"""Helpers for equivariance tests (public: every package's tests use them).

- :func:`random_rotation`: Haar-random rotations, proper or (``parity=True``) in O(3),
- :func:`rotations`: the same as a hypothesis strategy (needs ``hypothesis``),
- :func:`assert_equivariant`: checks ``f(g x) == g f(x)`` for rotations, inversion,
  improper rotations and translations, with irreps, Cartesian vector and Cartesian point
  inputs and outputs.

Irreps features transform along their LAST dimension with :meth:`rsh.Irreps.D`:
``x' = x @ D.T``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from ._irreps import Irreps

__all__ = [
    "CARTESIAN_POINTS",
    "CARTESIAN_VECTORS",
    "assert_equivariant",
    "quaternion_to_matrix",
    "random_rotation",
    "rotations",
]

#: Marker for ``assert_equivariant``: positions [..., 3] (x -> R x + t).
CARTESIAN_POINTS = "cartesian_points"
#: Marker for ``assert_equivariant``: Cartesian vectors [..., 3] such as forces or the rows of
#: a cell (x -> R x, not translated).
CARTESIAN_VECTORS = "cartesian_vectors"


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] (det +1) of quaternions q [..., 4] = (w, x, y, z).

    q need not be normalised (it is divided by its norm; q = 0 gives NaN).
    """
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    R = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )  # fmt: skip
    return R.reshape(*q.shape[:-1], 3, 3)


def random_rotation(
    *shape: int,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
    parity: bool = False,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Haar-random orthogonal matrices [*shape, 3, 3].

    A normalised Gaussian 4-vector is a uniform unit quaternion, whose rotation matrix is
    Haar-distributed on SO(3).

    Parameters
    ----------
    *shape : int
        Batch shape (none: one matrix [3, 3]).
    dtype : torch.dtype
    generator : torch.Generator, optional
        For reproducible draws (CPU generator; the result is moved to ``device``).
    parity : bool
        False: proper rotations (det +1). True: Haar on O(3): each matrix is multiplied by
        -1 (an improper rotation, det -1) with probability 1/2.
    device : torch.device or str, optional
    """
    q = torch.randn((*shape, 4), dtype=torch.float64, generator=generator)
    R = quaternion_to_matrix(q)
    if parity:
        flip = torch.rand(tuple(shape), dtype=torch.float64, generator=generator) < 0.5
        R = torch.where(flip[..., None, None], -R, R)
    return R.to(dtype=dtype, device=device)


def rotations(*, parity: bool = False, dtype: torch.dtype = torch.float64) -> Any:
    """Hypothesis strategy for one orthogonal matrix [3, 3].

    Draws quaternion components in [-1, 1] (so it also finds axis-aligned quarter and half
    turns, and shrinks towards simple rotations); ``parity=True`` also draws improper
    matrices (det -1). Needs ``hypothesis`` (a test dependency, imported on call).
    """
    from hypothesis import strategies as st

    comp = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
    quats = st.tuples(comp, comp, comp, comp).filter(lambda q: sum(c * c for c in q) > 1e-2)
    signs = st.sampled_from([1.0, -1.0]) if parity else st.just(1.0)

    def build(args: tuple[tuple[float, ...], float]) -> torch.Tensor:
        q, sign = args
        return (sign * quaternion_to_matrix(torch.tensor(q, dtype=torch.float64))).to(dtype)

    return st.tuples(quats, signs).map(build)


# ----------------------------------------------------------------------------- equivariance
IrrepsLike = Any  # str | Irreps | None | the two Cartesian markers


def _normalise_spec(spec: IrrepsLike, name: str) -> Irreps | str | None:
    if spec is None or spec in (CARTESIAN_POINTS, CARTESIAN_VECTORS):
        return spec
    return Irreps(spec, name=name)


def _as_list(value: Any, n: int, name: str) -> list[Irreps | str | None]:
    if value is None or isinstance(value, (str, Irreps)):
        values = [value] * n if n == 1 else [value]
    else:
        values = list(value)
    if len(values) != n:
        raise ValueError(
            f"{name} must give one irreps (or None / {CARTESIAN_POINTS!r} / "
            f"{CARTESIAN_VECTORS!r}) per tensor: {n}, got {len(values)}"
        )
    return [_normalise_spec(v, f"{name}[{i}]") for i, v in enumerate(values)]


def _transform(
    x: object, spec: Irreps | str | None, R: torch.Tensor, t: torch.Tensor, convention: str
) -> object:
    if spec is None or not isinstance(x, torch.Tensor):
        return x
    if isinstance(spec, str):  # Cartesian
        if x.shape[-1:] != (3,):
            raise ValueError(f"{spec} must have last dimension 3, got shape {list(x.shape)}")
        y = x @ R.to(dtype=x.dtype, device=x.device).T
        if spec == CARTESIAN_POINTS:
            y = y + t.to(dtype=x.dtype, device=x.device)
        return y
    D = spec.D(R, convention=convention).to(dtype=x.dtype, device=x.device)
    if x.shape[-1] != spec.dim:
        raise ValueError(
            f"irreps {str(spec)!r} has dimension {spec.dim} but the tensor's last dimension "
            f"is {x.shape[-1]}"
        )
    return x @ D.transpose(-1, -2)


def _transforms(
    n_rotations: int, parity: bool, translation: bool, generator: torch.Generator | None
) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    Rs = random_rotation(n_rotations, generator=generator)
    out = [(f"rotation {k}", Rs[k]) for k in range(n_rotations)]
    if parity:
        out.append(("inversion", -torch.eye(3, dtype=torch.float64)))
        out += [(f"improper rotation {k}", -Rs[k]) for k in range(n_rotations)]
    ts = torch.randn(len(out), 3, dtype=torch.float64, generator=generator)
    if not translation:
        ts = torch.zeros_like(ts)
    return [
        (name + (" + translation" if translation else ""), R, t) for (name, R), t in zip(out, ts)
    ]


def assert_equivariant(
    fn: Callable[..., torch.Tensor | Sequence[torch.Tensor]],
    inputs: Sequence[object],
    irreps_in: IrrepsLike | Sequence[IrrepsLike],
    irreps_out: IrrepsLike | Sequence[IrrepsLike],
    *,
    convention: str = "standard",
    n_rotations: int = 3,
    parity: bool = True,
    translation: bool = False,
    atol: float | None = None,
    rtol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> float:
    """Assert ``fn(*[g x]) == g fn(*inputs)`` for random rotations g (and more, see below).

    Parameters
    ----------
    fn : callable
        Takes ``*inputs``; returns a tensor or a tuple/list of tensors.
    inputs : sequence
        Positional arguments.
    irreps_in, irreps_out : irreps, None, ``"cartesian_points"``, ``"cartesian_vectors"``
        or a sequence of them (one per input / output). An irreps (str or :class:`rsh.Irreps`)
        transforms the tensor's last dimension with ``Irreps.D`` (parity included);
        ``"cartesian_points"`` (positions [..., 3]) become R x + t; ``"cartesian_vectors"``
        (forces, cell rows) become R x; ``None`` (and non-tensors) are passed unchanged
        (invariants, indices, atomic numbers ...). A Cartesian vector is also ``"1o"`` in
        convention ``"e3nn"`` (whose l = 1 basis is (x, y, z)).
    convention : {"standard", "thesis", "e3nn"}
        Basis of the irreps.
    n_rotations : int
        How many Haar-random proper rotations to try.
    parity : bool
        Also try the inversion -I and the improper rotations -R (so parities are checked).
    translation : bool
        Translate Cartesian points by a random vector with every transformation.
    atol, rtol : float
        Tolerances; atol defaults to 1e-9 (float64 outputs) or 1e-4 (others).
    generator : torch.Generator, optional
        For reproducible rotations and translations.

    Returns
    -------
    float
        The largest deviation max |f(g x) - g f(x)| seen.

    Raises
    ------
    AssertionError
        Naming the output and the transformation, with the deviation, when it fails.
    """
    if isinstance(n_rotations, bool) or not isinstance(n_rotations, int) or n_rotations < 1:
        raise ValueError(f"n_rotations must be an int >= 1, got {n_rotations!r}")
    inputs = list(inputs)
    irr_in = _as_list(irreps_in, len(inputs), "irreps_in")
    out0 = fn(*inputs)
    single = isinstance(out0, torch.Tensor)
    outs0 = [out0] if single else list(out0)
    irr_out = _as_list(irreps_out, len(outs0), "irreps_out")
    worst = 0.0
    for label, R, t in _transforms(n_rotations, parity, translation, generator):
        moved = [_transform(x, s, R, t, convention) for x, s in zip(inputs, irr_in)]
        out_g = fn(*moved)
        outs_g = [out_g] if single else list(out_g)
        for j, (a, b, spec) in enumerate(zip(outs_g, outs0, irr_out)):
            expected = _transform(b, spec, R, t, convention)
            err = _compare(j, a, expected, spec, label, atol, rtol)
            worst = max(worst, err)
    return worst


def _compare(
    j: int,
    a: object,
    expected: object,
    spec: Irreps | str | None,
    label: str,
    atol: float | None,
    rtol: float,
) -> float:
    """max |a - expected| of output ``j`` under transformation ``label``; AssertionError
    (naming both) when the shapes differ or the values are not close."""
    assert isinstance(expected, torch.Tensor) and isinstance(a, torch.Tensor)
    if a.shape != expected.shape:
        raise AssertionError(
            f"output {j} has shape {list(a.shape)} under {label} but "
            f"{list(expected.shape)} without it"
        )
    tol = atol if atol is not None else (1e-9 if a.dtype == torch.float64 else 1e-4)
    err = (a - expected).abs().max().item() if a.numel() else 0.0
    if not torch.allclose(a, expected, atol=tol, rtol=rtol):
        raise AssertionError(
            f"output {j} ({_describe(spec)}) is not equivariant under {label}: "
            f"max |f(g x) - g f(x)| = {err:.3e} > atol={tol:g}, rtol={rtol:g}"
        )
    return err


def _describe(spec: Irreps | str | None) -> str:
    if spec is None:
        return "invariant"
    if isinstance(spec, Irreps):
        return f"irreps {str(spec)!r}"
    return spec
