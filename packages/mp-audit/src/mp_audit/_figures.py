"""The chapter-2 figures (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display; set before pyplot is imported
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

FIGURES: dict[str, str] = {
    "nearest_neighbor": "Fig. 2.2: largest atom-to-nearest-neighbor distance per structure",
    "graph_diameter": "Fig. 2.3: crystal-graph diameter (-1 = disconnected)",
    "inscribed_radius": "Fig. 2.4: radius of the largest sphere inside the unit cell",
    "enclosing_radius": "Fig. 2.5: radius of the smallest sphere enclosing the unit cell",
    "coverage": "Coverage of structures by cut-off and number of layers (§2.2.2)",
    "band_gap": "Fig. 2.6: band gap",
    "sqrt_band_gap": "Fig. 2.7: standardised square root of the non-zero band gaps",
    "formation_energy": "Fig. 2.8: formation energy per atom",
    "formation_energy_by_run_type": "Fig. 2.9: formation energy per atom by run type",
    "nsites": "Fig. 2.10: atoms per unit cell, coloured by parity",
    "elements": "Fig. 2.11: presence of the elements across structures",
}


def _clipped_hist(ax, values: np.ndarray, clip: float, bins: int, unit: str, what: str) -> None:
    above = int((values > clip).sum())
    ax.hist(np.minimum(values, clip), bins=bins, range=(0, clip), color="#4C72B0")
    ax.set_xlabel(f"{what} ({unit}), clipped at {clip:g}")
    ax.set_ylabel("structures")
    ax.set_title(
        f"{above} structures above {clip:g} {unit}; max {values.max():.1f} {unit}", fontsize=9
    )


def _fig_nearest_neighbor(table, summary, ax) -> None:
    nn = table["nn_max"].to_numpy()
    _clipped_hist(ax, nn, 6.0, 60, "Å", "nearest-neighbor distance")
    ax.axvline(summary["graph_r_cut"], color="k", ls="--", lw=1, label="r_cut")
    ax.legend()


def _fig_graph_diameter(table, summary, ax) -> None:
    r = summary["graph_r_cut"]
    d = table[f"diameter_{r:g}"].to_numpy().astype(int)
    clipped = np.minimum(d, 9)
    values, counts = np.unique(clipped, return_counts=True)
    colors = ["#C44E52" if v < 0 else "#4C72B0" for v in values]
    ax.bar(values, counts, color=colors)
    ax.set_yscale("log")  # the tail (disconnected, large diameters) is what matters here
    ax.set_xticks(range(-1, 10))
    ax.set_xlabel(f"diameter at r_cut = {r:g} Å (hops), clipped at 9")
    ax.set_ylabel("structures")
    finite = d[d >= 0]
    top = finite.max() if len(finite) else "n/a"
    ax.set_title(
        f"{int((d > 9).sum())} above 9; max finite {top}; {int((d < 0).sum())} disconnected",
        fontsize=9,
    )


def _fig_inscribed(table, summary, ax) -> None:
    _clipped_hist(ax, table["inscribed_radius"].to_numpy(), 15.0, 60, "Å", "inscribed radius")


def _fig_enclosing(table, summary, ax) -> None:
    _clipped_hist(ax, table["enclosing_radius"].to_numpy(), 50.0, 60, "Å", "enclosing radius")


def _fig_coverage(table, summary, ax) -> None:
    cov = summary["coverage"]
    layers = summary["coverage_layers"]
    grid = np.array([cov[k] for k in cov], dtype=float)
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(layers)), [str(x) for x in layers])
    ax.set_yticks(range(len(cov)), [f"{k} Å" for k in cov])
    ax.set_xlabel("layers")
    ax.set_ylabel("r_cut")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(
                j,
                i,
                f"{100 * grid[i, j]:.0f}",
                ha="center",
                va="center",
                color="w" if grid[i, j] < 0.6 else "k",
                fontsize=7,
            )
    rec = summary.get("recommendation", {})
    if rec.get("r_cut") is not None:
        i = [float(k) for k in cov].index(rec["r_cut"])
        j = layers.index(rec["layers"])
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="r", lw=2))
    ax.set_title(
        f"% covered; red: smallest reaching {100 * rec.get('target', 0.98):g}%", fontsize=9
    )
    plt.colorbar(im, ax=ax)


def _fig_band_gap(table, summary, ax) -> None:
    gaps = table["band_gap"].dropna().to_numpy()
    ax.hist(gaps, bins=80, color="#4C72B0")
    ax.set_xlabel("band gap (eV)")
    ax.set_ylabel("structures")
    ax.set_title(f"{100 * np.mean(gaps == 0):.1f}% exactly zero", fontsize=9)


def _fig_sqrt_band_gap(table, summary, ax) -> None:
    gaps = table["band_gap"].dropna().to_numpy()
    root = np.sqrt(gaps[gaps > 0])
    st = summary["band_gap"]["sqrt_nonzero"]
    ax.hist((root - st["mean"]) / st["std"], bins=60, color="#55A868")
    ax.set_xlabel("(√gap - μ) / σ for gap > 0")
    ax.set_ylabel("structures")
    ax.set_title(
        f"μ = {st['mean']:.3f}, σ = {st['std']:.3f}, skew = {st['skew']:.3f}, "
        f"kurtosis = {st['kurtosis']:.3f}",
        fontsize=9,
    )


def _fig_formation(table, summary, ax) -> None:
    ef = table["formation_energy_per_atom"].dropna().to_numpy()
    ax.hist(ef, bins=80, color="#8172B2")
    ax.set_xlabel("formation energy (eV/atom)")
    ax.set_ylabel("structures")


def _fig_formation_by_run_type(table, summary, ax) -> None:
    t = table[table["formation_energy_per_atom"].notna()]
    groups = t.groupby(t["run_type"].fillna("unknown"))["formation_energy_per_atom"]
    lo, hi = t["formation_energy_per_atom"].min(), t["formation_energy_per_atom"].max()
    for name, values in groups:
        ax.hist(values, bins=80, range=(lo, hi), alpha=0.6, label=f"{name} ({len(values)})")
    ax.set_xlabel("formation energy (eV/atom)")
    ax.set_ylabel("structures")
    ax.legend(fontsize=8)


def _fig_nsites(table, summary, ax) -> None:
    n = table["nsites"].dropna().to_numpy().astype(int)
    values, counts = np.unique(np.minimum(n, 100), return_counts=True)
    ax.bar(values, counts, color=np.where(values % 2 == 0, "#4C72B0", "#DD8452"), width=1.0)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color="#4C72B0", label="even"), Patch(color="#DD8452", label="odd")])
    ax.set_xlabel("atoms per unit cell, clipped at 100")
    ax.set_ylabel("structures")
    above = int((n > 100).sum())
    ax.set_title(f"{above} ({100 * above / len(n):.2f}%) above 100; max {n.max()}", fontsize=9)


def _table_position(symbol: str) -> tuple[int, int] | None:
    from pymatgen.core import Element

    try:
        el = Element(symbol)
    except ValueError:
        return None
    z = el.Z
    if 57 <= z <= 71:
        return 8, 3 + z - 57
    if 89 <= z <= 103:
        return 9, 3 + z - 89
    return el.row, el.group


def _fig_elements(table, summary, ax) -> None:
    presence = summary.get("elements", {})
    grid = np.full((10, 18), np.nan)
    for sym, count in presence.items():
        pos = _table_position(sym)
        if pos is not None and pos[0] <= 9:
            grid[pos[0] - 1, pos[1] - 1] = count
    im = ax.imshow(np.log10(np.where(grid > 0, grid, np.nan)), cmap="magma_r")
    for sym, count in presence.items():
        pos = _table_position(sym)
        if pos is not None and pos[0] <= 9:
            dark = np.log10(max(count, 1)) > 0.6 * np.nanmax(np.log10(np.maximum(grid, 1)))
            ax.text(
                pos[1] - 1,
                pos[0] - 1,
                f"{sym}\n{count}",
                ha="center",
                va="center",
                fontsize=5,
                color="w" if dark else "k",
            )
    ax.set_axis_off()
    plt.colorbar(im, ax=ax, label="log10(structures)", shrink=0.7)


_DRAW: dict[str, tuple[Callable, Callable[[pd.DataFrame, dict], bool]]] = {
    "nearest_neighbor": (_fig_nearest_neighbor, lambda t, s: "nearest_neighbor" in s),
    "graph_diameter": (_fig_graph_diameter, lambda t, s: "graph" in s),
    "inscribed_radius": (_fig_inscribed, lambda t, s: "cell_spheres" in s),
    "enclosing_radius": (_fig_enclosing, lambda t, s: "cell_spheres" in s),
    "coverage": (_fig_coverage, lambda t, s: "coverage" in s),
    "band_gap": (_fig_band_gap, lambda t, s: "band_gap" in s),
    "sqrt_band_gap": (
        _fig_sqrt_band_gap,
        lambda t, s: "band_gap" in s and (s["band_gap"]["sqrt_nonzero"] or {}).get("count", 0) > 3,
    ),
    "formation_energy": (_fig_formation, lambda t, s: "formation_energy" in s),
    "formation_energy_by_run_type": (
        _fig_formation_by_run_type,
        lambda t, s: "formation_energy" in s,
    ),
    "nsites": (_fig_nsites, lambda t, s: "sizes" in s),
    "elements": (_fig_elements, lambda t, s: "elements" in s),
}


def make_figures(
    table: pd.DataFrame, summary: dict[str, Any], out_dir: str | Path
) -> dict[str, Path]:
    """Draw every figure the data allows into ``out_dir``; returns ``{name: png path}``.

    Figures whose data the source lacks (no band gaps, no formation energies) are skipped.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ok = table[table["parse_error"].isna()]
    if "nn_max" in ok:
        ok = ok[ok["nn_max"].notna()]
    paths: dict[str, Path] = {}
    for name, (draw, available) in _DRAW.items():
        if not available(ok, summary):
            continue
        fig, ax = plt.subplots(figsize=(9, 5) if name == "elements" else (6, 4), dpi=100)
        try:
            draw(ok, summary, ax)
            fig.suptitle(FIGURES[name], fontsize=10)
            fig.tight_layout()
            path = out / f"{name}.png"
            fig.savefig(path)
            paths[name] = path
        finally:
            plt.close(fig)
    return paths
