"""``summary.json``, ``report.md`` and a self-contained ``report.html`` (images inlined)."""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ._figures import FIGURES, make_figures

#: the chapter-2 numbers of the thesis (MP V2019.11), for side-by-side comparison
THESIS: dict[str, Any] = {
    "n_entries": 124515,
    "n_unexpected_run_type": 3158,
    "nn_above_6A": 174,
    "nn_max": 13.4,
    "diameter_above_9": 152,
    "diameter_max_finite": 32,
    "inscribed_above_15A": 107,
    "inscribed_max": 24.7,
    "enclosing_above_50A": 718,
    "enclosing_max": 211.5,
    "recommendation": "5 Å, 4 layers (98%)",
    "zero_gap_fraction": 0.45,
    "sqrt_gap_mean": 1.274,
    "sqrt_gap_std": 0.612,
    "sqrt_gap_skew": -0.097,
    "sqrt_gap_kurtosis": -0.802,
    "nsites_above_100": 0.031,
    "nsites_max": 444,
    "noble_gases": {"He": 5, "Ne": 0, "Ar": 1, "Kr": 13, "Xe": 143},
    "radioactive": {
        "Tc": 644, "Pm": 513, "Po": 0, "At": 0, "Rn": 0, "Fr": 0, "Ra": 0,
        "Ac": 296, "Th": 954, "Pa": 250, "U": 2038, "Np": 338, "Pu": 385,
    },
}  # fmt: skip


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def _ids(values: Any, limit: int = 20) -> str:
    if isinstance(values, str):
        return values
    values = list(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return f"{len(values)}" + (
        f" ({shown}{', ...' if len(values) > limit else ''})" if values else ""
    )


def comparison_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Rows ``[statistic, this data, thesis (MP V2019.11)]`` of the chapter-2 numbers."""
    t = THESIS
    rows = [["structures", _fmt(summary.get("n_entries")), _fmt(t["n_entries"])]]
    issues = summary.get("data_issues", {})
    rows.append(["unexpected run type", _fmt(issues.get("n_unexpected_run_type")), "3158"])
    nn = summary.get("nearest_neighbor")
    if nn:
        rows += [
            ["nearest-neighbor distance > 6 Å", _fmt(nn["nn_max"]["above_6A"]), "174"],
            ["max nearest-neighbor distance (Å)", _fmt(nn["nn_max"]["max"], 1), "13.4"],
        ]
        r = summary["graph_r_cut"]
        g = summary["graph"][f"{r:g}"]
        thesis = r == 5.0  # the thesis's numbers are at 5 Å
        rows += [
            [f"diameter at {r:g} Å > 9", _fmt(g["above_9"]), "152" if thesis else "n/a"],
            [f"max finite diameter at {r:g} Å", _fmt(g["max_finite"]), "32" if thesis else "n/a"],
            [f"disconnected at {r:g} Å", _fmt(g["disconnected"]), "n/a"],
        ]
        cs = summary["cell_spheres"]
        rows += [
            ["inscribed radius > 15 Å", _fmt(cs["inscribed"]["above_15A"]), "107"],
            ["max inscribed radius (Å)", _fmt(cs["inscribed"]["max"], 1), "24.7"],
            ["enclosing radius > 50 Å", _fmt(cs["enclosing"]["above_50A"]), "718"],
            ["max enclosing radius (Å)", _fmt(cs["enclosing"]["max"], 1), "211.5"],
        ]
        rec = summary["recommendation"]
        got = (
            f"{rec['r_cut']:g} Å, {rec['layers']} layers ({100 * rec['coverage']:.1f}%)"
            if rec.get("r_cut") is not None
            else "target not reached"
        )
        rows.append([f"recommendation at {100 * rec['target']:g}%", got, t["recommendation"]])
    bg = summary.get("band_gap")
    if bg and bg.get("count"):
        s = bg["sqrt_nonzero"]
        rows += [
            ["zero band gap fraction", _fmt(bg["zero_fraction"]), "0.45"],
            ["mean √gap (gap > 0)", _fmt(s["mean"]), "1.274"],
            ["std √gap", _fmt(s["std"]), "0.612"],
            ["skew √gap", _fmt(s["skew"]), "-0.097"],
            ["kurtosis √gap", _fmt(s["kurtosis"]), "-0.802"],
        ]
    sz = summary.get("sizes")
    if sz:
        rows += [
            ["atoms per cell > 100", f"{100 * sz['fraction_above_100']:.2f}%", "3.1%"],
            ["max atoms per cell", _fmt(sz["max"]), "444"],
        ]
    return rows


def _blocks(summary: dict[str, Any], rec: dict[str, Any], figures: dict[str, Path]) -> list:
    b: list = [("h1", f"mp-audit report: {summary.get('source', '?')}")]
    meta = summary.get("meta", {})
    line = (
        f"{summary['n_entries']} entries, {summary['n_parsed']} parsed, "
        f"{summary['n_geometry']} with cell geometry."
    )
    if meta.get("db_version"):
        line += f" Materials Project database version {meta['db_version']}."
    b.append(("p", line))
    if meta.get("files"):
        b.append(("table", ["file", "rows"], [[k, str(v)] for k, v in meta["files"].items()]))
    b.append(("h2", "Chapter-2 statistics next to the thesis"))
    b.append(
        ("table", ["statistic", "this data", "thesis (MP V2019.11)"], comparison_rows(summary))
    )
    b.append(("h2", "Recommendation (§2.2.2, eq. 2.1)"))
    b.append(("pre", json.dumps(rec, indent=2)))
    if "coverage" in summary:
        layers = summary["coverage_layers"]
        rows = [
            [f"{r} Å", *[f"{100 * v:.1f}" for v in vals]] for r, vals in summary["coverage"].items()
        ]
        b.append(("table", ["r_cut \\ layers", *map(str, layers)], rows))
        b.append(("fig", "coverage"))
    b.append(("h2", "Data issues (§2.1)"))
    issues = summary["data_issues"]
    rows = [
        [k.replace("_", " "), _ids(v) if isinstance(v, (list, str)) else _fmt(v)]
        for k, v in issues.items()
        if k != "parse_failures"
    ]
    rows.insert(0, ["parse failures", _ids([f["material_id"] for f in issues["parse_failures"]])])
    b.append(("table", ["issue", "count (ids)"], rows))
    for section, names in [
        ("Radial cut-off (§2.2.1)", ["nearest_neighbor", "graph_diameter"]),
        ("Cell geometry", ["inscribed_radius", "enclosing_radius"]),
        ("Band gap (§2.3.1)", ["band_gap", "sqrt_band_gap"]),
        ("Formation energy (§2.3.2)", ["formation_energy", "formation_energy_by_run_type"]),
        ("Sizes and composition (§2.4)", ["nsites", "elements"]),
    ]:
        present = [n for n in names if n in figures]
        if present:
            b.append(("h2", section))
            b += [("fig", n) for n in present]
    if "formation_energy" in summary:
        fe = summary["formation_energy"]["by_run_type"]
        rows = [[k, str(v["count"]), _fmt(v["mean"]), _fmt(v["std"])] for k, v in fe.items()]
        b.append(("table", ["run type", "count", "mean (eV/atom)", "std (eV/atom)"], rows))
    if "noble_gases" in summary:
        rows = [
            [r["element"], str(r["structures"]), str(THESIS["noble_gases"][r["element"]])]
            for r in summary["noble_gases"]
        ]
        b.append(("table", ["noble gas (Table 2.1)", "structures", "thesis"], rows))
        rows = [
            [r["element"], str(r["structures"]), str(THESIS["radioactive"][r["element"]])]
            for r in summary["radioactive"]
        ]
        b.append(("table", ["radioactive (Table 2.2)", "structures", "thesis"], rows))
    return b


def _markdown(blocks: list, figures: dict[str, Path]) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}\n")
        elif kind == "h2":
            out.append(f"## {block[1]}\n")
        elif kind == "p":
            out.append(block[1] + "\n")
        elif kind == "pre":
            out.append(f"```json\n{block[1]}\n```\n")
        elif kind == "table":
            head, rows = block[1], block[2]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            out += ["| " + " | ".join(c.replace("|", "/") for c in r) + " |" for r in rows]
            out.append("")
        elif kind == "fig":
            out.append(f"![{FIGURES[block[1]]}]({figures[block[1]].name})\n")
    return "\n".join(out)


def _html(blocks: list, figures: dict[str, Path], title: str) -> str:
    e = html.escape
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{e(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{e(block[1])}</p>")
        elif kind == "pre":
            body.append(f"<pre>{e(block[1])}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in block[2]
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif kind == "fig":
            data = base64.b64encode(figures[block[1]].read_bytes()).decode("ascii")
            cap = e(FIGURES[block[1]])
            body.append(
                f'<figure><img alt="{cap}" src="data:image/png;base64,{data}"/>'
                f"<figcaption>{cap}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}pre{background:#f5f5f5;padding:1em;overflow:auto}"
    )
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def write_report(result: Any, out_dir: str | Path) -> dict[str, Path]:
    """Write ``summary.json``, the PNG figures, ``report.md`` and ``report.html``.

    Everything is written into a temporary folder beside ``out_dir`` first and moved in at
    the end, so a failure leaves no partial report (and no new folder) behind.

    Parameters
    ----------
    result
        An :class:`mp_audit.AuditResult`.
    out_dir
        Output folder (created; an earlier report in it is replaced, its figures that this
        report does not draw removed).

    Returns
    -------
    dict
        Paths of everything written, keyed ``summary``, ``markdown``, ``html``, ``recommendation``
        and each figure name.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir={str(out)!r} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        written = _write_all(result, tmp)
        earlier = (out / "summary.json").is_file()
        out.mkdir(exist_ok=True)
        for path in written.values():
            os.replace(path, out / path.name)
        if earlier:  # an earlier report's figures that this one does not draw: not its own
            for name in set(FIGURES) - set(written):
                (out / f"{name}.png").unlink(missing_ok=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {key: out / path.name for key, path in written.items()}


def _write_all(result: Any, out: Path) -> dict[str, Path]:
    figures = make_figures(result.table, result.summary, out)
    summary_path = out / "summary.json"
    payload = {"summary": result.summary, "recommendation": result.recommendation, "thesis": THESIS}
    summary_path.write_text(json.dumps(payload, indent=2, default=str))
    rec_path = out / "recommendation.json"
    rec_path.write_text(json.dumps(result.recommendation, indent=2))
    blocks = _blocks(result.summary, result.recommendation, figures)
    md = out / "report.md"
    md.write_text(_markdown(blocks, figures))
    page = out / "report.html"
    page.write_text(_html(blocks, figures, f"mp-audit: {result.source}"))
    return {
        "summary": summary_path,
        "recommendation": rec_path,
        "markdown": md,
        "html": page,
        **figures,
    }
