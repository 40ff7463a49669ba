"""Benchmark of periodic-conv: fused convolution vs e3nn, and the neighbour list.

    nox -s bench -- periodic-conv [--quick] [--only conv|neighbors]

Convolution: each (case, implementation, mode) runs in its own process so that its peak
memory (VmHWM after resetting it through /proc/self/clear_refs, minus the resident set before
the call) is its own. Cases: the thesis case (100 atoms, ~12 neighbours, 16x per l = 0..4 in
and out, filter l <= 8, float64), the same in float32, and a 444-atom cell. Implementations:
``cpp``, ``torch`` (fused), ``reference`` (K materialised) and e3nn (TensorProduct with per-edge
weights + scatter, the same maths); ``cpp+factors`` / ``torch+factors`` take R as
``RadialFactors(hidden [E, 32], weight)`` (gradients of both factors) instead of R
itself, formed per edge chunk (``order="edges"``); ``nodes`` takes the same factors with
the weight matrix applied per atom first (``order="nodes"``, plain torch). Neighbour
list: our wrapper (default path, and the slower paths it falls back to) vs bare vesin,
called in turn in each round (ratios are medians of per-round ratios), and pymatgen
``get_all_neighbors``, in this process. Medians over repeats; tables printed last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# shared helpers of every package's benchmark: <repo>/benchmarks
sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
from peak_memory import peak_bytes, reset_peak, resident_bytes

# The thesis case had no parity (every l a path, 85 paths); irreps now carry parity
# (rsh.Irreps), those of spherical harmonics, so only paths with p_out = p_in (-1)^l remain.
IRREPS = "16x0e+16x1o+16x2e+16x3o+16x4e"
L_FILTER = 8
DENSITY = 100 / 12.0**3  # atoms per Å^3: 100 atoms in a 12 Å cube
R_CUT = 3.7  # Å: about 12 neighbours at this density
CASES = {
    "thesis f64": dict(n=100, dtype="float64"),
    "thesis f32": dict(n=100, dtype="float32"),
    "444 atoms f64": dict(n=444, dtype="float64"),
    # xtalnet's first layer: the species embedding (scalars) in, its default hidden irreps
    # before the gate out, filter l <= 2, r_cut 5 Å (about 30 neighbours)
    "scalars in f32": dict(n=100, dtype="float32", irreps_in="16x0e",
                           irreps_out="16x0e+6x0e+4x1o+2x2e", l_filter=2, r_cut=5.0),
}  # fmt: skip


def structure(n: int, seed: int = 0):
    """n atoms on a jittered simple-cubic grid in a cube at DENSITY (no overlapping atoms)."""
    rng = np.random.default_rng(seed)
    side = (n / DENSITY) ** (1 / 3)
    k = int(np.ceil(n ** (1 / 3)))
    grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pick = rng.choice(len(grid), n, replace=False)
    frac = (grid[pick] + 0.5 + rng.uniform(-0.25, 0.25, (n, 3))) / k
    return frac * side, np.eye(3) * side


def run_variant(case: str, impl: str, mode: str, repeats: int) -> dict:
    import gc

    import periodic_conv as pc
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    dtype = getattr(torch, CASES[case]["dtype"])
    spec = CASES[case]
    irreps_in, irreps_out = spec.get("irreps_in", IRREPS), spec.get("irreps_out", IRREPS)
    l_filter = spec.get("l_filter", L_FILTER)
    pos, cell = structure(spec["n"])
    g = pc.neighbor_list(torch.tensor(pos, dtype=dtype), torch.tensor(cell, dtype=dtype),
                         spec.get("r_cut", R_CUT))  # fmt: skip
    # R given as RadialFactors(hidden [E, 32], weight), per edge chunk or per atom first
    factored = impl.endswith("+factors") or impl == "nodes"
    backend = {"e3nn": "torch", "nodes": "torch"}.get(impl, impl.removesuffix("+factors"))
    order = "nodes" if impl == "nodes" else "edges"
    conv = pc.PeriodicConvolution(irreps_in, irreps_out, l_filter, convention="e3nn",
                                  backend=backend, order=order)  # fmt: skip
    hub = pc.DataHub(g, l_filter, convention="e3nn")
    gen = torch.Generator().manual_seed(0)
    dim, dim_out = pc.Irreps(irreps_in).dim, pc.Irreps(irreps_out).dim
    F = torch.randn(g.num_nodes, dim, generator=gen, dtype=dtype)
    R = torch.randn(g.num_edges, conv.weight_numel, generator=gen, dtype=dtype)
    G = torch.randn(g.num_nodes, dim_out, generator=gen, dtype=dtype)
    hidden = torch.randn(g.num_edges, 32, generator=gen, dtype=dtype)
    weight = torch.randn(conv.weight_numel, 32, generator=gen, dtype=dtype) / 32**0.5
    if impl == "e3nn":
        from e3nn import o3

        sh = o3.Irreps.spherical_harmonics(l_filter)
        # the same paths as ours, each e3nn 'uvw' instruction with per-edge weights
        instr = [(p.i, p.l, p.k, "uvw", True) for p in conv.paths]
        old = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        tp = o3.TensorProduct(irreps_in, sh, irreps_out, instr, irrep_normalization="none",
                              path_normalization="none", shared_weights=False,
                              internal_weights=False)  # fmt: skip
        torch.set_default_dtype(old)
        R = torch.randn(g.num_edges, tp.weight_numel, generator=gen, dtype=dtype)
        Y = hub.Y
        scale = hub.inv_sqrt_counts[hub.dst][:, None]

        def call(F, R):
            msg = tp(F[hub.src], Y, R) * scale
            return torch.zeros(F.shape[0], dim_out, dtype=dtype).index_add(0, hub.dst, msg)
    else:

        def call(F, R):
            return conv(F, hub, R)

    def once():
        if factored:
            if mode == "fwd":
                with torch.no_grad():
                    return conv(F, hub, pc.RadialFactors(hidden, weight))
            Fg, hg, wg = (t.clone().requires_grad_(True) for t in (F, hidden, weight))
            conv(Fg, hub, pc.RadialFactors(hg, wg)).backward(G)
            return hg.grad
        if mode == "fwd":
            with torch.no_grad():
                return call(F, R)
        Fg = F.clone().requires_grad_(True)
        Rg = R.clone().requires_grad_(True)
        out = call(Fg, Rg)
        out.backward(G)
        return Rg.grad

    once()  # warm-up (builds the extension / e3nn code once)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    gc.collect()
    ok = reset_peak()
    base = resident_bytes()
    once()
    peak = peak_bytes() - base if ok else float("nan")
    return dict(case=case, impl=impl, mode=mode, time_s=float(np.median(times)),
                peak_bytes=peak, r_bytes=R.numel() * R.element_size(),
                k_bytes=g.num_edges * dim * dim_out * R.element_size(), edges=g.num_edges,
                mean_neighbors=g.num_edges / g.num_nodes)  # fmt: skip


def neighbor_bench(repeats: int) -> list[dict]:
    """Our wrapper (cpp grouping and numpy fallback) vs bare vesin, interleaved call by call so
    that both see the same machine state; pymatgen separately (much slower)."""
    import periodic_conv as pc
    import torch
    import vesin
    from periodic_conv import _build, _search
    from pymatgen.core import Lattice, Structure

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    cpp = _build.load_extension()  # as after any use of the cpp convolution backend
    rows = []
    for n in (100, 444):
        pos, cell = structure(n)
        tp, tc = torch.tensor(pos), torch.tensor(cell)
        s = Structure(Lattice(cell), ["Si"] * n, pos, coords_are_cartesian=True)
        r_cut = 5.0  # the thesis's recommended cutoff (§2.2.1)

        def ours(tp=tp, tc=tc, r_cut=r_cut):
            _search._GROUP_BACKEND = "auto"
            return pc.neighbor_list(tp, tc, r_cut)

        def ours_cpp(tp=tp, tc=tc, r_cut=r_cut):
            _search._GROUP_BACKEND = "cpp" if cpp else "numpy"
            return pc.neighbor_list(tp, tc, r_cut)

        def ours_numpy(tp=tp, tc=tc, r_cut=r_cut):
            _search._GROUP_BACKEND = "numpy"
            return pc.neighbor_list(tp, tc, r_cut)

        def bare(pos=pos, cell=cell, r_cut=r_cut):
            nl = vesin.NeighborList(cutoff=r_cut, full_list=True)
            return nl.compute(pos, cell, True, quantities="ijSd")

        def pmg(s=s, r_cut=r_cut):
            return s.get_all_neighbors(r_cut)

        fast = {"ours": ours, "ours_cpp": ours_cpp, "ours_numpy": ours_numpy, "vesin": bare}
        ts: dict[str, list[float]] = {k: [] for k in fast}
        for f in fast.values():
            f()
        for _ in range(repeats):
            for name, f in fast.items():
                t0 = time.perf_counter()
                f()
                ts[name].append(time.perf_counter() - t0)
        res = {k: float(np.median(v)) for k, v in ts.items()}
        # median of the per-round ratios: robust to slow phases of a shared machine
        for key in ("ours", "ours_cpp", "ours_numpy"):
            res["ratio_" + key] = float(np.median(np.array(ts[key]) / np.array(ts["vesin"])))
        pts = []
        for _ in range(max(1, repeats // 30)):
            t0 = time.perf_counter()
            pmg()
            pts.append(time.perf_counter() - t0)
        res["pymatgen"] = float(np.median(pts))
        _search._GROUP_BACKEND = "auto"
        path = "fused" if "fused" in _search._compiled_ops() else ("cpp" if cpp else "numpy")
        rows.append(dict(n=n, r_cut=r_cut, edges=ours().num_edges, path=path, **res))
    return rows


def print_neighbor_table(nl: list[dict]) -> None:
    if not nl:
        return
    print(
        "\n| atoms | r_cut (Å) | edges | ours (ms) | bare vesin (ms) | ours / vesin | "
        "vesin Python API + cpp grouping / vesin | numpy fallback / vesin | "
        "pymatgen get_all_neighbors (ms) | pymatgen / ours |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in nl:
        print(
            f"| {r['n']} | {r['r_cut']} | {r['edges']} | {r['ours'] * 1e3:.3f} | "
            f"{r['vesin'] * 1e3:.3f} | {r['ratio_ours']:.2f} | {r['ratio_ours_cpp']:.2f} | "
            f"{r['ratio_ours_numpy']:.2f} | {r['pymatgen'] * 1e3:.1f} | "
            f"{r['pymatgen'] / r['ours']:.0f}x |"
        )
    print(f"('ours' took the {nl[0]['path']} path; ratios: medians of per-round ratios)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="thesis f64 case only, fewer repeats")
    ap.add_argument("--variant", help=argparse.SUPPRESS)
    ap.add_argument("--impls", default="cpp,cpp+factors,nodes,torch,torch+factors,reference,e3nn",
                    help="+factors: R passed as RadialFactors(hidden [E, 32], weight); "
                    "nodes: the same, order='nodes'")  # fmt: skip
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    ap.add_argument("--modes", default="fwd,fwd+bwd")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["conv", "neighbors"], help="run one part only")
    ap.add_argument("--nl-repeats", type=int, default=0, help="neighbour-list rounds")
    args = ap.parse_args()
    if args.variant:
        case, impl, mode, repeats = json.loads(args.variant)
        print("RESULT " + json.dumps(run_variant(case, impl, mode, repeats)), flush=True)
        return

    import torch

    threads = os.environ.get("BENCH_THREADS", "2")
    header = (
        f"\nperiodic-conv benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {threads} torch threads, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    nl_repeats = args.nl_repeats or (31 if args.quick else 201)
    if args.only == "neighbors":
        nl = neighbor_bench(nl_repeats)
        print(header)
        print_neighbor_table(nl)
        return

    cases = ["thesis f64"] if args.quick else args.cases.split(",")
    repeats = 2 if args.quick else args.repeats
    results = []
    for case in cases:
        for impl in args.impls.split(","):
            if impl == "reference" and CASES[case]["n"] > 100:
                continue  # K alone would need E * dim^2 numbers (~7 GB); reported as estimate
            for mode in args.modes.split(","):
                cmd = [
                    sys.executable,
                    __file__,
                    "--variant",
                    json.dumps([case, impl, mode, repeats]),
                ]
                # Large blocks always come from mmap and go back to the OS when freed, so the
                # resident set before the measured call holds no allocator cache.
                env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
                p = subprocess.run(cmd, capture_output=True, text=True, env=env)
                line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
                if p.returncode != 0 or not line:
                    print(f"{case} {impl} {mode} FAILED:\n{p.stderr[-2000:]}", file=sys.stderr)
                    continue
                r = json.loads(line[0][7:])
                results.append(r)
                msg = f"{case:14s} {impl:9s} {mode:8s} {r['time_s']:9.4f} s"
                msg += f" {r['peak_bytes'] / 2**20:9.1f} MiB"
                print(msg, file=sys.stderr, flush=True)
    nl = [] if args.only == "conv" else neighbor_bench(nl_repeats)

    mib = 2**20
    print(header)
    print(
        "\n| case | impl | mode | time (s) | vs e3nn | peak (MiB) | peak / e3nn | peak / size(R) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    by = {(r["case"], r["impl"], r["mode"]): r for r in results}
    for r in results:
        e = by.get((r["case"], "e3nn", r["mode"]))
        speed = f"{e['time_s'] / r['time_s']:.2f}x" if e else "-"
        mem = f"{r['peak_bytes'] / e['peak_bytes']:.2f}" if e and e["peak_bytes"] > 0 else "-"
        print(
            f"| {r['case']} | {r['impl']} | {r['mode']} | {r['time_s']:.4f} | {speed} | "
            f"{r['peak_bytes'] / mib:.1f} | {mem} | {r['peak_bytes'] / r['r_bytes']:.2f} |"
        )
    for case in cases:
        r = next((x for x in results if x["case"] == case), None)
        if r:
            print(
                f"\n{case}: E = {r['edges']} edges ({r['mean_neighbors']:.1f} per atom), "
                f"size(R) = {r['r_bytes'] / mib:.1f} MiB, K would be {r['k_bytes'] / mib:.1f} MiB"
            )
    print_neighbor_table(nl)


if __name__ == "__main__":
    main()
