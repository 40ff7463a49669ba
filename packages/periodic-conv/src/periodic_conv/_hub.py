"""The data hub (thesis §3.3.4): per-input quantities computed once and reused by every layer."""

from __future__ import annotations

import math

import torch
from rsh.conventions import DEFAULT_CONVENTION, check_convention, check_degree

from periodic_conv._neighbors import Graph

__all__ = ["DataHub"]

SH_NORMALIZATIONS = ("integral", "component", "norm")
# Y_00 for each normalisation: the value used on r = 0 edges, where the direction is undefined
# and every Y_lm with l > 0 is set to zero (App. B, caveat after eq. B.18).
_Y00 = {"integral": 1.0 / math.sqrt(4.0 * math.pi), "component": 1.0, "norm": 1.0}


def _edge_harmonics(
    vectors: torch.Tensor, l_max: int, *, convention: str, normalization: str
) -> torch.Tensor:
    """Real spherical harmonics of edge directions, [E, (l_max+1)^2], l-major (rsh underneath).

    Zero vectors (r = 0, self-interaction) get Y_00 only and a zero gradient, never NaN.
    """
    import rsh

    if normalization not in SH_NORMALIZATIONS:
        raise ValueError(
            f"sh_normalization must be one of {SH_NORMALIZATIONS}, got {normalization!r}"
        )
    is_zero = (vectors.detach() == 0).all(dim=-1, keepdim=True)
    # A safe direction keeps both forward and backward free of 0/0 on r = 0 edges.
    safe = torch.where(
        is_zero, torch.tensor([0.0, 0.0, 1.0], dtype=vectors.dtype, device=vectors.device), vectors
    )
    y = rsh.spherical_harmonics(
        safe, l_max, normalize=True, normalization=normalization, convention=convention
    )
    y0 = torch.zeros((l_max + 1) ** 2, dtype=y.dtype, device=y.device)
    y0[0] = _Y00[normalization]
    return torch.where(is_zero, y0, y)


def _check_graph(graph: Graph) -> None:
    """Shapes and index ranges of a (possibly hand-built) graph, once per hub."""
    n, e = graph.num_nodes, graph.num_edges
    for name in ("center", "neighbor"):
        t = getattr(graph, name)
        if not isinstance(t, torch.Tensor) or t.dtype != torch.long or tuple(t.shape) != (e,):
            raise ValueError(
                f"graph.{name} must be an int64 tensor of shape [E] = [{e}] (E from "
                f"graph.center), got {getattr(t, 'dtype', type(t).__name__)} "
                f"{tuple(getattr(t, 'shape', ()))}"
            )
        if e and (int(t.min()) < 0 or int(t.max()) >= n):
            raise ValueError(
                f"graph.{name} holds atom indices in [{int(t.min())}, {int(t.max())}], outside "
                f"[0, {n}) (N = {n} atoms in graph.positions)"
            )
    if tuple(graph.edge_vec.shape) != (e, 3):
        raise ValueError(f"graph.edge_vec must have shape [E, 3] = [{e}, 3], got "
                         f"{tuple(graph.edge_vec.shape)}")  # fmt: skip
    if tuple(graph.counts.shape) != (n,):
        raise ValueError(f"graph.counts must have shape [N] = [{n}], got "
                         f"{tuple(graph.counts.shape)}")  # fmt: skip


class DataHub:
    """Input-lifetime data shared by all convolution layers of a network (thesis Fig. 3.5).

    Parameters
    ----------
    graph : Graph
        Neighbour graph (edge vectors may carry autograd history for forces/stress).
    l_max : int
        Highest filter degree any layer will use (Y is computed up to it once).
    convention : {"standard", "thesis", "e3nn"}
        Real spherical-harmonic basis; must match the layers' convention.
    sh_normalization : {"integral", "component", "norm"}
        Normalisation of Y (as ``rsh.spherical_harmonics``' ``normalization``);
        ``scaling="unit_variance"`` layers need "integral" (eq. B.18).

    Attributes
    ----------
    Y : Tensor [E, (l_max+1)^2]
        Spherical harmonics of the edge directions (r = 0 edges: Y_00 only).
    src, dst : Tensor [E]
        Neighbour b* (message source) and center a (message destination) of each edge.
    is_self : Tensor [E] bool
        Edges with r = 0.
    inv_sqrt_counts : Tensor [N]
        1/sqrt(|N(a)|), 0 for isolated atoms (their output is zero, no division by zero).
    """

    def __init__(
        self,
        graph: Graph,
        l_max: int,
        *,
        convention: str = DEFAULT_CONVENTION,
        sh_normalization: str = "integral",
    ) -> None:
        if not isinstance(graph, Graph):
            raise TypeError(f"graph must be a periodic_conv.Graph, got {type(graph).__name__}")
        l_max = check_degree(l_max, "l_max")
        _check_graph(graph)
        convention = check_convention(convention)
        self.graph = graph
        self.l_max = l_max
        self.convention = convention
        self.sh_normalization = sh_normalization
        self.src = graph.neighbor
        self.dst = graph.center
        self.length = graph.length
        self.is_self = (graph.edge_vec.detach() == 0).all(dim=-1)
        self.Y = _edge_harmonics(
            graph.edge_vec, l_max, convention=convention, normalization=sh_normalization
        )
        counts = graph.counts.to(graph.edge_vec.dtype)
        self.inv_sqrt_counts = torch.where(
            counts > 0, counts.clamp(min=1).rsqrt(), torch.zeros_like(counts)
        )
        self._scale_cache: dict = {}
        self._csr: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._by_source: (
            tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int] | None
        ) = None

    def csr(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(row_ptr by center, edge order by neighbour, row_ptr by neighbour), built once.

        The compiled backends reduce in these fixed orders, which makes them deterministic.
        """
        if self._csr is None:
            n = self.num_nodes
            if self.num_edges > 1 and bool((self.dst[1:] < self.dst[:-1]).any()):
                raise ValueError("hub edges must be sorted by center (as Graph builds them)")
            row_ptr = torch.zeros(n + 1, dtype=torch.long, device=self.dst.device)
            row_ptr[1:] = torch.bincount(self.dst, minlength=n).cumsum(0)
            src_perm = torch.sort(self.src, stable=True).indices
            src_ptr = torch.zeros(n + 1, dtype=torch.long, device=self.src.device)
            src_ptr[1:] = torch.bincount(self.src, minlength=n).cumsum(0)
            self._csr = (row_ptr, src_perm, src_ptr)
        return self._csr

    def by_source(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Edges grouped by source atom, for padded per-atom products; built once.

        Returns (perm, src_sorted, slot, inverse, width): ``perm`` orders the edges by
        source (stable), ``src_sorted = src[perm]``, ``slot`` is each of those edges' place
        within its source's group, ``inverse`` undoes ``perm`` and ``width`` is the largest
        group (one host sync).
        """
        if self._by_source is None:
            _, perm, src_ptr = self.csr()
            src_sorted = self.src[perm]
            order = torch.arange(self.num_edges, device=self.src.device)
            slot = order - src_ptr[src_sorted]
            inverse = torch.empty_like(perm)
            inverse[perm] = order
            width = int((src_ptr[1:] - src_ptr[:-1]).max()) if self.num_nodes else 0
            self._by_source = (perm, src_sorted, slot, inverse, width)
        return self._by_source

    @property
    def num_nodes(self) -> int:
        return self.graph.num_nodes

    @property
    def num_edges(self) -> int:
        return self.graph.num_edges

    @property
    def isolated(self) -> torch.Tensor:
        """Indices of atoms with no neighbour (their convolution output is exactly zero)."""
        return self.graph.isolated

    def edge_scale(self, table, scaling: str) -> torch.Tensor:
        """Per-edge, per-output-block factor W(l_out, r = 0?) / sqrt(|N(a)|), [E, n_out_blocks].

        Cached per (table, scaling): reused by every layer with the same irreps_out.
        """
        key = (id(table), scaling)
        hit = self._scale_cache.get(key)
        if hit is not None and hit[0] is table:
            return hit[1]
        dtype, device = self.Y.dtype, self.Y.device
        n_out = len(table.irreps_out)
        if scaling == "none":
            scale = torch.ones(self.num_edges, n_out, dtype=dtype, device=device)
        else:
            w1 = torch.tensor(table.w_nonzero, dtype=dtype, device=device)
            w0 = torch.tensor(table.w_zero, dtype=dtype, device=device)
            w = torch.where(self.is_self[:, None], w0, w1)
            scale = w * self.inv_sqrt_counts.detach()[self.dst][:, None]
        self._scale_cache[key] = (table, scale)
        return scale
