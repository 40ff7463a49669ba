"""Helpers for equivariance tests (public: other packages' tests import them).

- :func:`random_rotation`: Haar-random proper rotations,
- :func:`parse_irreps`: e3nn strings such as ``"16x0e+8x1o"`` -> [(mul, l, parity)],
- :func:`irreps_wigner_D`: block-diagonal D of an irreps string,
- :func:`assert_equivariant`: checks ``f(D_in x) == D_out f(x)`` for random rotations.

Features are rotated along their LAST dimension: ``x' = x @ D.T``. Parities are parsed
and ignored (only proper rotations are drawn).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import torch

from ._wigner import wigner_D

__all__ = [
    "assert_equivariant",
    "irreps_dim",
    "irreps_wigner_D",
    "parse_irreps",
    "random_rotation",
]

_IRREP = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*([eo])\s*$")


def random_rotation(
    *shape: int, dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Haar-uniform rotation matrices [*shape, 3, 3] with det = +1.

    A normalized Gaussian 4-vector is a uniform unit quaternion, whose rotation matrix
    is Haar-distributed on SO(3).
    """
    q = torch.randn(*shape, 4, dtype=torch.float64, generator=generator)
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
    return R.reshape(*shape, 3, 3).to(dtype)


def parse_irreps(irreps: str) -> list[tuple[int, int, int]]:
    """``"16x0e+8x1o"`` -> ``[(16, 0, 1), (8, 1, -1)]`` (multiplicity, degree, parity)."""
    if not isinstance(irreps, str):
        raise TypeError(f"irreps must be a str like '16x0e+8x1o', got {type(irreps).__name__}")
    out = []
    if irreps.strip() == "":
        return out
    for part in irreps.split("+"):
        match = _IRREP.match(part)
        if match is None:
            raise ValueError(
                f"irreps must look like '16x0e+8x1o' (terms 'MULxLp', p in e/o), "
                f"got {irreps!r} (bad term {part!r})"
            )
        mul = int(match.group(1)) if match.group(1) is not None else 1
        out.append((mul, int(match.group(2)), 1 if match.group(3) == "e" else -1))
    return out


def irreps_dim(irreps: str) -> int:
    """Total dimension Σ mul (2l+1)."""
    return sum(mul * (2 * l + 1) for mul, l, _ in parse_irreps(irreps))


def irreps_wigner_D(irreps: str, R: torch.Tensor, *, convention: str = "standard") -> torch.Tensor:
    """Block-diagonal representation [..., dim, dim] of ``irreps`` for rotations R [..., 3, 3].

    Each (mul x l) term contributes ``mul`` copies of :func:`rsh.wigner_D` (l, R) in order.
    """
    parsed = parse_irreps(irreps)
    dim = sum(mul * (2 * l + 1) for mul, l, _ in parsed)
    out = torch.zeros(*R.shape[:-2], dim, dim, dtype=R.dtype, device=R.device)
    start = 0
    cache: dict[int, torch.Tensor] = {}
    for mul, l, _ in parsed:
        if l not in cache:
            cache[l] = wigner_D(l, R, convention=convention)
        d = 2 * l + 1
        for _ in range(mul):
            out[..., start : start + d, start : start + d] = cache[l]
            start += d
    return out


def _rotate(x: object, irreps: str | None, R: torch.Tensor, convention: str) -> object:
    if irreps is None or not isinstance(x, torch.Tensor):
        return x
    D = irreps_wigner_D(irreps, R, convention=convention).to(dtype=x.dtype, device=x.device)
    if x.shape[-1] != D.shape[-1]:
        raise ValueError(
            f"irreps {irreps!r} has dimension {D.shape[-1]} but the tensor's last dimension "
            f"is {x.shape[-1]}"
        )
    return x @ D.transpose(-1, -2)


def _as_list(value, n: int, name: str) -> list:
    if isinstance(value, (str, type(None))):
        return [value] * n if n == 1 else _check_len([value], n, name)
    return _check_len(list(value), n, name)


def _check_len(value: list, n: int, name: str) -> list:
    if len(value) != n:
        raise ValueError(
            f"{name} must give one irreps string (or None) per tensor: {n}, got {len(value)}"
        )
    return value


def assert_equivariant(
    fn: Callable[..., torch.Tensor | Sequence[torch.Tensor]],
    inputs: Sequence[object],
    irreps_in: str | Sequence[str | None] | None,
    irreps_out: str | Sequence[str | None] | None,
    *,
    convention: str = "standard",
    n_rotations: int = 3,
    atol: float | None = None,
    rtol: float = 1e-6,
    generator: torch.Generator | None = None,
) -> None:
    """Assert ``fn(*[D_in x]) == D_out fn(*inputs)`` for ``n_rotations`` random rotations.

    Parameters
    ----------
    fn : callable
        Takes ``*inputs``; returns a tensor or a tuple/list of tensors.
    inputs : sequence
        Positional arguments. Tensors are rotated along their last dimension with the
        irreps of the same position in ``irreps_in``; entries with irreps ``None`` (and
        non-tensors) are passed unchanged (invariants, indices, cells ...).
    irreps_in, irreps_out : str or None or sequence of them
        One e3nn irreps string per input / output. A 3-vector of Cartesian positions is
        ``"1o"`` in convention ``"e3nn"`` (its l=1 basis is (x, y, z), so D^1 = R); in
        ``"standard"`` the l=1 basis is (y, z, x).
    convention : {"standard", "thesis", "e3nn"}
        Basis of the irreps.
    n_rotations : int
        How many Haar-random rotations to try.
    atol, rtol : float
        Tolerances; atol defaults to 1e-9 (float64 outputs) or 1e-4 (others).
    generator : torch.Generator, optional
        For reproducible rotations.

    Raises
    ------
    AssertionError
        With the largest deviation, when equivariance fails.
    """
    inputs = list(inputs)
    irr_in = _as_list(irreps_in, len(inputs), "irreps_in")
    out0 = fn(*inputs)
    single = isinstance(out0, torch.Tensor)
    outs0 = [out0] if single else list(out0)
    irr_out = _as_list(irreps_out, len(outs0), "irreps_out")
    Rs = random_rotation(n_rotations, generator=generator)
    for k in range(n_rotations):
        R = Rs[k]
        rotated_in = [_rotate(x, irr, R, convention) for x, irr in zip(inputs, irr_in)]
        out_r = fn(*rotated_in)
        outs_r = [out_r] if single else list(out_r)
        for j, (a, b, irr) in enumerate(zip(outs_r, outs0, irr_out)):
            expected = _rotate(b, irr, R, convention)
            tol = atol if atol is not None else (1e-9 if a.dtype == torch.float64 else 1e-4)
            if not torch.allclose(a, expected, atol=tol, rtol=rtol):
                err = (a - expected).abs().max().item()
                raise AssertionError(
                    f"output {j} (irreps {irr!r}) is not equivariant for rotation {k}: "
                    f"max |f(Dx) - D f(x)| = {err:.3e} > atol={tol:g}, rtol={rtol:g}"
                )
