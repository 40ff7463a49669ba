"""The neighbour search behind :func:`periodic_conv.neighbor_list`: vesin, then the edges
grouped by center.

Three paths give the same graph: "fused" (vesin's C API and the grouping in one compiled
op), "cpp" (vesin's Python API, compiled grouping) and "numpy" (vesin's Python API, numpy
grouping). The compiled ones are used only when the extension is already built: this
module never compiles it.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

__all__ = ["search"]


def search(
    pos_t: torch.Tensor,
    cell_t: torch.Tensor,
    pbc_t: tuple[bool, bool, bool],
    r_cut: float,
    self_interaction: bool,
    differentiable: bool,
) -> tuple[Any, ...]:
    """All pairs closer than ``r_cut``, grouped by center: (center, neighbor, shift, edge
    vectors, lengths, counts, edge_batch, batch) as CPU tensors.

    ``pos_t`` and ``cell_t`` are contiguous float64 CPU tensors (the cell to search with:
    shifts are in its basis). With ``differentiable`` the vectors and lengths may be None
    (the caller recomputes them with autograd).
    """
    n = pos_t.shape[0]
    ops = _compiled_ops()
    if "fused" in ops:
        op, fn_neighbors, fn_free = ops["fused"]
        return op(pos_t, cell_t, list(pbc_t), float(r_cut), self_interaction,
                  not differentiable, fn_neighbors, fn_free)  # fmt: skip
    import vesin

    nl = vesin.NeighborList(cutoff=float(r_cut), full_list=True)
    op = ops.get("group")
    # copy=False: the arrays are views into `nl`'s buffers, alive as long as `nl` is; the
    # grouping below copies them into arrays of its own.
    quantities = "PS" if differentiable or op is not None else "PSDd"
    pairs, shifts, *vd = nl.compute(
        pos_t.numpy(), cell_t.numpy(), list(pbc_t), quantities, copy=False
    )
    if op is not None:
        out = op(
            torch.from_numpy(np.ascontiguousarray(pairs).view(np.int64)),
            torch.from_numpy(np.ascontiguousarray(shifts, dtype=np.int32)),
            None if differentiable else pos_t,
            None if differentiable else cell_t,
            n,
            self_interaction,
        )
    else:
        out = tuple(
            None if a is None else torch.from_numpy(a)
            for a in _group_numpy(
                pairs,
                shifts,
                vd[0] if vd else None,
                vd[1] if vd else None,
                n,
                self_interaction,
            )
        )
        out += (torch.zeros(len(out[0]), dtype=torch.long), torch.zeros(n, dtype=torch.long))
    del nl, pairs, shifts, vd  # the views into vesin's buffers die with `nl`
    return out


def _group_numpy(
    pairs: np.ndarray,
    shifts: np.ndarray,
    vectors: np.ndarray | None,
    distances: np.ndarray | None,
    n: int,
    self_interaction: bool,
) -> tuple[Any, ...]:
    """Group vesin's edges by center, stably (vesin's order within a center), in numpy.

    ``pairs`` [E, 2] and ``shifts`` [E, 3] may be views into vesin's buffers: every array
    returned owns its memory. With ``self_interaction`` the (a, a, 0) edge comes last in the
    group of a. Returns center, neighbor, shift (int64), vectors, distances (float64 or None)
    and counts |N(a)| (int64).
    """
    i = pairs[:, 0].view(np.int64)  # uint64 -> int64 reinterpretation, no copy
    j = pairs[:, 1].view(np.int64)
    if self_interaction:
        ar = np.arange(n, dtype=np.int64)
        i = np.concatenate([i, ar])
        j = np.concatenate([j, ar])
        shifts = np.concatenate([shifts, np.zeros((n, 3), dtype=shifts.dtype)])
        if vectors is not None and distances is not None:
            vectors = np.concatenate([vectors, np.zeros((n, 3))])
            distances = np.concatenate([distances, np.zeros(n)])
    counts = np.bincount(i, minlength=n)
    # The edges of center a are rows counts[:a].sum() ... of the result, so center is a
    # repeat of 0..n-1 (cheaper than gathering i).
    center = np.repeat(np.arange(n, dtype=np.int64), counts)
    if len(i) < 2 or bool((i[1:] >= i[:-1]).all()):
        neighbor = np.array(j, dtype=np.int64)  # copy: j may view vesin's buffer
        shift = shifts.astype(np.int64)
        if vectors is not None and distances is not None:
            # vesin converts (copies) vectors/distances to the output dtype; copy only if not
            vectors = vectors if vectors.flags.owndata else vectors.copy()
            distances = distances if distances.flags.owndata else distances.copy()
    else:
        # Stable sort keeps vesin's order within a center; with fewer than 2^16 atoms the key
        # is cast to uint16, for which numpy's stable sort is a radix sort. np.take is several
        # times faster than fancy indexing for the 2-D arrays.
        order = np.argsort(i.astype(np.uint16) if n < 2**16 else i, kind="stable")
        neighbor = np.take(j, order)
        shift = np.take(shifts, order, axis=0).astype(np.int64)
        if vectors is not None and distances is not None:
            vectors = np.take(vectors, order, axis=0)
            distances = np.take(distances, order)
    return center, neighbor, shift, vectors, distances, counts


#: Private switch for tests and benchmarks: "fused" (vesin's C API and the grouping in one
#: compiled op), "cpp" (vesin's Python API, compiled grouping), "numpy", or "auto" (the first
#: available of these, never compiling the extension from here).
_GROUP_BACKEND = "auto"
_OPS: dict[str, Any] = {}


def _compiled_ops() -> dict[str, Any]:
    """The compiled ops usable under ``_GROUP_BACKEND`` ({} for the numpy path), cached."""
    if _GROUP_BACKEND == "numpy":
        return {}
    if not _OPS:
        from periodic_conv import _build

        forced = _GROUP_BACKEND in ("fused", "cpp")
        if not (_build.load_extension() if forced else _build.extension_ready()):
            if forced:
                raise RuntimeError(
                    f"_GROUP_BACKEND={_GROUP_BACKEND!r} but the C++ extension is unavailable"
                )
            return {}
        # the overloads themselves: skips the overload resolution of each call (µs count here)
        _OPS["group"] = torch.ops.periodic_conv.group_by_center.default
        fns, reason = _vesin_functions()
        if fns is not None and not hasattr(torch.ops.periodic_conv, "vesin_grouped"):
            fns, reason = None, _build.vesin_include()[1] or "built without vesin.h"
        if fns is None:
            warnings.warn(
                f"periodic_conv.neighbor_list: the fused vesin path is unavailable ({reason}); "
                "using vesin's Python API and the compiled grouping (same graph, ~1.2x slower)",
                RuntimeWarning,
                stacklevel=4,
            )
        else:
            _OPS["fused"] = (torch.ops.periodic_conv.vesin_grouped.default, *fns)
    if _GROUP_BACKEND == "cpp":
        return {"group": _OPS["group"]}
    if _GROUP_BACKEND == "fused" and "fused" not in _OPS:
        raise RuntimeError("_GROUP_BACKEND='fused' but the fused vesin path is unavailable")
    return _OPS


def _vesin_functions() -> tuple[tuple[int, int] | None, str]:
    """(addresses of vesin_neighbors / vesin_free in the libvesin that Python's vesin loaded,
    "") or (None, why not). ``vesin._c_lib.get_library`` is private to vesin: the version
    range pinned in pyproject.toml is the one this was written and tested for."""
    import ctypes

    from periodic_conv import _build

    inc, reason = _build.vesin_include()
    if inc is None:
        return None, reason
    try:
        from vesin._c_lib import get_library

        lib = get_library()
        fns = (
            ctypes.cast(lib.vesin_neighbors, ctypes.c_void_p).value,
            ctypes.cast(lib.vesin_free, ctypes.c_void_p).value,
        )
    except (ImportError, AttributeError, OSError) as exc:
        return None, f"vesin's library is not where vesin 0.6 keeps it: {type(exc).__name__}: {exc}"
    if not all(fns):
        return None, "vesin_neighbors / vesin_free have null addresses"
    return (int(fns[0]), int(fns[1])), ""  # type: ignore[arg-type]
