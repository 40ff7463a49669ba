"""The PeriodicConvolution module and functional (eq. C.1)."""

from __future__ import annotations

from typing import Any

import torch
from rsh.conventions import DEFAULT_CONVENTION

from periodic_conv._backends import get_backend, resolve_backend
from periodic_conv._choices import check_backend, check_order
from periodic_conv._factored import RadialFactors, conv_factored
from periodic_conv._hub import DataHub
from periodic_conv._nodes_first import conv_nodes_first, takes_nodes_first
from periodic_conv._paths import PathTable, path_table

__all__ = ["SCALINGS", "PeriodicConvolution", "RadialFactors", "periodic_convolution"]

#: ``scaling`` values: "unit_variance" (W of thesis eq. B.33-B.36 and 1/sqrt(|N(a)|)), "none".
SCALINGS = ("unit_variance", "none")


def _check_scaling(scaling: str) -> None:
    if scaling not in SCALINGS:
        raise ValueError(
            f"scaling must be one of {SCALINGS} (renamed from normalization='thesis'/'none'), "
            f"got {scaling!r}"
        )


def _check(features, hub: DataHub, R, table: PathTable, convention: str, scaling: str):
    if not isinstance(hub, DataHub):
        raise TypeError(f"hub must be a periodic_conv.DataHub, got {type(hub).__name__}")
    tensors: list[tuple[str, Any]] = [("features", features)]
    if isinstance(R, RadialFactors):
        _check_factors(R, hub, table)
        R_dtype: torch.dtype | None = R.hidden.dtype
    else:
        R_dtype = R.dtype if isinstance(R, torch.Tensor) else None
        tensors.append(("R", R))
    for name, t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor, got {type(t).__name__} (convert with "
                "torch.as_tensor(..., dtype=hub.Y.dtype))"
            )
    if features.ndim != 2 or features.shape != (hub.num_nodes, table.irreps_in.dim):
        raise ValueError(
            f"features must have shape [N, dim(irreps_in)] = [{hub.num_nodes}, "
            f"{table.irreps_in.dim}] for irreps_in={str(table.irreps_in)!r}, "
            f"got {tuple(features.shape)}"
        )
    if not isinstance(R, RadialFactors) and (
        R.ndim != 2 or R.shape != (hub.num_edges, table.weight_numel)
    ):
        raise ValueError(
            f"R must have shape [E, weight_numel] = [{hub.num_edges}, {table.weight_numel}], "
            f"got {tuple(R.shape)}"
        )
    if hub.convention != convention:
        raise ValueError(
            f"hub.convention={hub.convention!r} differs from the layer's convention={convention!r}"
        )
    if hub.l_max < table.l_filter_max:
        raise ValueError(
            f"hub.l_max={hub.l_max} is below the layer's l_filter_max={table.l_filter_max}; "
            "build the DataHub with l_max >= every layer's l_filter_max"
        )
    if scaling == "unit_variance" and hub.sh_normalization != "integral":
        raise ValueError(
            "scaling='unit_variance' assumes integral-normalised Y (eq. B.18), got "
            f"hub.sh_normalization={hub.sh_normalization!r}"
        )
    if features.dtype != R_dtype or features.dtype != hub.Y.dtype:
        raise TypeError(
            f"features, R and hub.Y must share a dtype, got {features.dtype}, {R_dtype}, "
            f"{hub.Y.dtype}"
        )


def _check_factors(R: RadialFactors, hub: DataHub, table: PathTable) -> None:
    h, w = R.hidden, R.weight
    for name, t in (("R.hidden", h), ("R.weight", w)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if h.ndim != 2 or h.shape[0] != hub.num_edges:
        raise ValueError(
            f"R.hidden must have shape [E, H] with E = {hub.num_edges}, got {tuple(h.shape)}"
        )
    if w.ndim != 2 or w.shape != (table.weight_numel, h.shape[1]):
        raise ValueError(
            f"R.weight must have shape [weight_numel, H] = [{table.weight_numel}, "
            f"{h.shape[1]}], got {tuple(w.shape)}"
        )
    if h.dtype != w.dtype:
        raise TypeError(f"R.hidden and R.weight must share a dtype, got {h.dtype}, {w.dtype}")


def periodic_convolution(
    features: torch.Tensor,
    hub: DataHub,
    R: torch.Tensor | RadialFactors,
    irreps_in,
    irreps_out,
    l_filter_max: int,
    *,
    convention: str = DEFAULT_CONVENTION,
    scaling: str = "unit_variance",
    backend: str = "auto",
    chunk: int | None = None,
    deterministic: bool = True,
    order: str = "auto",
) -> torch.Tensor:
    """Fused Kernel + PeriodicConvolution, eq. C.1.

    Parameters
    ----------
    features : Tensor [N, dim(irreps_in)]
        Input features F^(n), e3nn layout (blocks of [mul, 2l+1]).
    hub : DataHub
        Graph, Y and 1/sqrt(|N(a)|) of the input.
    R : Tensor [E, weight_numel] or RadialFactors
        Radial outputs per edge and path, laid out as described in ``periodic_conv._paths``;
        or their factors ``RadialFactors(hidden [E, H], weight [weight_numel, H])`` with
        R = hidden @ weight.T, which the "torch", "cpp" and "cuda" backends never keep whole:
        R is formed again in the backward pass instead of being saved (peak memory of one
        layer's R + dR instead of every layer's R; single backward only).
    irreps_in, irreps_out : str
        e3nn irreps strings.
    l_filter_max : int
        Highest filter degree l.
    convention : {"standard", "thesis", "e3nn"}
        Real spherical-harmonic basis of features, Y and couplings (``rsh.conventions``);
        must match the hub's.
    scaling : {"unit_variance", "none"}
        "unit_variance": the factor W of thesis eq. B.33-B.36 and 1/sqrt(|N(a)|), which keep
        the output variance at 1 for unit-variance inputs; "none": plain sums (for
        comparisons with e3nn's TensorProduct).
    backend : {"auto", "reference", "torch", "cpp", "cuda"}
        "auto": cuda for CUDA tensors, cpp for CPU tensors when the extension builds, else
        torch. Double backward (e.g. training on forces) needs "torch" or "reference".
    chunk : int, optional
        Edges per chunk of the torch backend (default: about 32 MB of temporaries), and of
        every backend when R is given as RadialFactors (default: about 2^21 numbers of R).
    deterministic : bool
        cuda backend only: fixed-order reductions (default) instead of atomicAdd.
        The cpp backend is always bitwise reproducible for any thread count.
    order : {"auto", "edges", "nodes"}
        R given as RadialFactors only. "edges": R is formed per chunk of edges for the
        backend's kernels (single backward). "nodes": the radial weight matrix is applied
        to the features per atom first, then one batched product per source atom with the
        hidden features (``periodic_conv._nodes_first``): plain differentiable torch ops on
        any device (the backend's kernels are not used; not with backend="reference"), any
        order of derivatives; about 1.9 times faster forward + backward where the input
        features are scalars (benchmark case "scalars in f32"),
        slower and heavier with many l_in > 0 paths; on CUDA its index_add is not
        deterministic. "auto" (default): "nodes" for CPU tensors with scalar input
        features only when backend is "auto" or "torch" (an explicit "cpp" keeps its
        kernels and their bitwise reproducibility), else "edges".

    Returns
    -------
    Tensor [N, dim(irreps_out)]
        Isolated atoms (|N(a)| = 0) get exactly zero.
    """
    _check_scaling(scaling)
    table = path_table(irreps_in, irreps_out, l_filter_max, convention)
    _check(features, hub, R, table, convention, scaling)
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int)):
        raise TypeError(f"chunk must be None or an int >= 1 (edges per chunk), got {chunk!r}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be None or an int >= 1 (edges per chunk), got {chunk!r}")
    if not isinstance(deterministic, bool):
        raise TypeError(f"deterministic must be a bool, got {deterministic!r}")
    check_backend(backend)
    check_order(order)
    if order == "nodes" and not isinstance(R, RadialFactors):
        raise ValueError("order='nodes' needs R given as RadialFactors(hidden, weight)")
    if order == "nodes" and backend == "reference":
        raise ValueError("order='nodes' cannot run with backend='reference' (the reference "
                         "materialises R and K); use backend='auto' or 'torch'")  # fmt: skip
    Y = hub.Y[:, : (l_filter_max + 1) ** 2]
    scale = hub.edge_scale(table, scaling)
    if isinstance(R, RadialFactors) and takes_nodes_first(order, backend, features.device, table):
        return conv_nodes_first(features, Y, R, hub, scale, table)
    name = resolve_backend(backend, features.device)
    fn = get_backend(name, features.device)
    if isinstance(R, RadialFactors):
        if name == "reference":  # the oracle materialises everything, R included
            R = R.hidden @ R.weight.T
        else:
            return conv_factored(
                name, features, Y, R, hub, scale, table, chunk=chunk, deterministic=deterministic
            )
    return fn(features, Y, R, hub, scale, table, chunk=chunk, deterministic=deterministic)


class PeriodicConvolution(torch.nn.Module):
    """Equivariant periodic convolution with per-edge radial weights (Kernel fused in, eq. C.1).

    Parameters
    ----------
    irreps_in, irreps_out : str
        e3nn irreps strings, e.g. ``"16x0e+16x1o+16x2e"``.
    l_filter_max : int
        Highest degree of the spherical-harmonic filter.
    convention : {"standard", "thesis", "e3nn"}
        Real spherical-harmonic basis (must match the DataHub's).
    scaling : {"unit_variance", "none"}
        See :func:`periodic_convolution`.
    backend : {"auto", "reference", "torch", "cpp", "cuda"}
    order : {"auto", "edges", "nodes"}
        Contraction order when R comes as RadialFactors (see :func:`periodic_convolution`).

    Attributes
    ----------
    weight_numel : int
        Size of R per edge: sum over paths (l_out, l_in, l) of u(l_out) v(l_in).
    """

    def __init__(
        self,
        irreps_in,
        irreps_out,
        l_filter_max: int,
        *,
        convention: str = DEFAULT_CONVENTION,
        scaling: str = "unit_variance",
        backend: str = "auto",
        order: str = "auto",
    ) -> None:
        super().__init__()
        _check_scaling(scaling)
        check_backend(backend)
        check_order(order)
        self.table = path_table(irreps_in, irreps_out, l_filter_max, convention)
        self.irreps_in = str(self.table.irreps_in)
        self.irreps_out = str(self.table.irreps_out)
        self.l_filter_max = l_filter_max
        self.convention = convention
        self.scaling = scaling
        self.backend = backend
        self.order = order

    @property
    def weight_numel(self) -> int:
        return self.table.weight_numel

    @property
    def paths(self):
        """The paths (k, i, l, l_out, l_in, u, v, offset) in R's order."""
        return self.table.paths

    def forward(
        self, features: torch.Tensor, hub: DataHub, R: torch.Tensor | RadialFactors
    ) -> torch.Tensor:
        return periodic_convolution(
            features,
            hub,
            R,
            self.table.irreps_in,
            self.table.irreps_out,
            self.l_filter_max,
            convention=self.convention,
            scaling=self.scaling,
            backend=self.backend,
            order=self.order,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.irreps_in} -> {self.irreps_out}, l_filter_max={self.l_filter_max}, "
            f"convention={self.convention!r}, scaling={self.scaling!r}, "
            f"weight_numel={self.weight_numel}, backend={self.backend!r}, order={self.order!r}"
        )
