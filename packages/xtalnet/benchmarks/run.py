"""Benchmark of xtalnet: training-step throughput and peak memory against an e3nn twin,
and the time of one epoch over the MP-20 training structures.

    nox -s bench -- xtalnet [--quick] [--only twin|epoch|distance] [--cases ...] [--compile off,on]

Twin: the same network (config, embedding, Bessel radial MLPs, BlockRMSNorm, pooling,
readouts, heads) in which every layer's fused ``PeriodicConvolution`` is replaced by e3nn's
``TensorProduct`` (the same 'uvw' paths, per-edge weights from the same radial MLP) followed
by a scatter-sum with the same W / sqrt|N(a)| scaling, the gate by ``e3nn.nn.Gate`` and the
self-connection by ``e3nn.o3.Linear``; parameter counts are printed and must agree. A
training step is forward + backward + AdamW step on one batch. Times and speed-ups come from
one process per (case, compile) that runs one step of each implementation in turn for
``--repeats`` rounds (speed-up = median over rounds of t(e3nn) / t(impl), robust to a load
that changes over time); peak memory comes from one process per variant, so that it is its
own (VmHWM after resetting it through /proc/self/clear_refs, minus the resident set before
the step; ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed blocks leave the resident set).
``xtalnet-ckpt`` is the same network with ``checkpoint=True``.

Cases: ``mp20 f32`` / ``mp20 f64``: 32 MP-20 structures (<= 20 atoms, r_cut 5 Å; from
XTAL_SHARED_DATA, else 32 ASE dcdft crystals), default config; ``thesis f64``: one 100-atom
cell at r_cut 3.7 Å (about 12 neighbours), hidden 16x l = 0..4 (natural parities), filter
l <= 8, 2 layers, float64. Epoch: the 847 MP-20 training structures, the network the defaults
rule builds for the formation energy (1 layer, float32), batches of ``--batch-size``: graph
building and one training epoch,
from the same weights with periodic-conv's default ``order`` and with ``order="edges"`` in
every layer (the anchor).
Medians over repeats; tables printed last. Distance: the composition distance of an
ensemble's σ against scikit-learn's nearest neighbours (``benchmarks/composition_distance.py``,
its table printed as it comes).
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

CASES = ("mp20 f32", "mp20 f64", "thesis f64")
THESIS_HIDDEN = "16x0e+16x1o+16x2e+16x3o+16x4e"


def mp20_structures(n: int | None, split: str = "train"):
    """MP-20 structures and their targets from XTAL_SHARED_DATA (None if absent)."""
    root = os.environ.get("XTAL_SHARED_DATA")
    path = Path(root) / "mp20" / f"{split}.csv" if root else None
    if path is None or not path.is_file():
        return None
    import warnings

    import pandas as pd
    from pymatgen.core import Structure

    df = pd.read_csv(path)
    if n is not None:
        df = df.iloc[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        structures = [Structure.from_str(c, fmt="cif") for c in df.cif]
    return structures, df


def thesis_structure():
    """100 atoms on a jittered grid in a 12 Å cube (periodic-conv's benchmark cell)."""
    from ase import Atoms

    rng = np.random.default_rng(0)
    n, side, k = 100, 12.0, 5
    grid = np.stack(np.meshgrid(*[np.arange(k)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pick = rng.choice(len(grid), n, replace=False)
    frac = (grid[pick] + 0.5 + rng.uniform(-0.25, 0.25, (n, 3))) / k
    return Atoms("Si" * 50 + "O" * 50, scaled_positions=frac, cell=np.eye(3) * side, pbc=True)


def case_setup(case: str):
    import xtalnet

    dtype = case.split()[-1].replace("f", "float")
    targets = ["formation_energy_per_atom", "band_gap"]
    if case.startswith("thesis"):
        cfg = xtalnet.NetworkConfig(targets=targets, dtype=dtype, r_cut=3.7, num_layers=2,
                                    hidden_irreps=THESIS_HIDDEN, l_filter_max=8,
                                    convention="e3nn")  # fmt: skip
        structures = [thesis_structure()]
    else:
        cfg = xtalnet.NetworkConfig(targets=targets, dtype=dtype, convention="e3nn")
        got = mp20_structures(32)
        if got is None:
            from ase.collections import dcdft

            structures = [a for a in dcdft][:32]
        else:
            structures = got[0]
    return cfg, structures


# --------------------------------------------------------------------------- the e3nn twin
def e3nn_twin(net):
    """Replace conv / gate / self-connection of every layer by e3nn modules (in place)."""
    import torch
    from e3nn import nn as enn
    from e3nn import o3

    E3nnConv = _make_conv_class()
    dtype = net.config.torch_dtype
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        for layer in net.layers:
            table = layer.conv.table
            ir_in, ir_out = str(layer.conv.irreps_in), str(layer.conv.irreps_out)
            lf = layer.conv.l_filter_max
            sh = o3.Irreps("+".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lf + 1)))
            instr = [(p.i, p.l, p.k, "uvw", True) for p in layer.conv.paths]
            tp = o3.TensorProduct(ir_in, sh, ir_out, instr, irrep_normalization="none",
                                  path_normalization="none", shared_weights=False,
                                  internal_weights=False)  # fmt: skip
            assert tp.weight_numel == layer.conv.weight_numel
            layer.conv = E3nnConv(tp, table, o3.Irreps(ir_out))
            g = layer.gate
            scalars = o3.Irreps(str(g.irreps_scalars))
            acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
            gated = o3.Irreps(str(g.irreps_gated)) if g.num_gates else o3.Irreps("")
            gates = o3.Irreps(f"{g.num_gates}x0e") if g.num_gates else o3.Irreps("")
            layer.gate = enn.Gate(scalars, acts, gates, [torch.sigmoid] * (1 if g.num_gates else 0),
                                  gated)  # fmt: skip
            ir = o3.Irreps(str(layer.irreps_out))
            layer.self_connection = o3.Linear(ir, ir)
    finally:
        torch.set_default_dtype(old)
    return net.to(dtype)


def _make_conv_class():
    import torch
    from periodic_conv import RadialFactors
    from torch import nn

    class E3nnConv(nn.Module):
        def __init__(self, tp, table, irreps_out) -> None:
            super().__init__()
            self.tp = tp
            self.table = table
            idx = []
            for k, (mul, ir) in enumerate(irreps_out):
                idx += [k] * (mul * ir.dim)
            self.register_buffer("block", torch.tensor(idx), persistent=False)
            self.register_buffer("w", torch.tensor(table.w_nonzero), persistent=False)
            self.dim_out = irreps_out.dim

        def forward(self, x, hub, R):
            if isinstance(R, RadialFactors):  # e3nn takes R itself (as every TFN code does)
                R = R.hidden @ R.weight.T
            msg = self.tp(x[hub.src], hub.Y[:, : self.tp.irreps_in2.dim], R)
            out = torch.zeros(x.shape[0], self.dim_out, dtype=x.dtype, device=x.device)
            out = out.index_add(0, hub.dst, msg)
            return out * hub.inv_sqrt_counts[:, None] * self.w.to(x.dtype)[self.block]

    return E3nnConv


# --------------------------------------------------------------------------- one variant
def make_step(case: str, impl: str, compile_: str):
    """(step, batch, params, twin_params): one training step of the variant, ready to call."""
    import torch
    import xtalnet

    cfg, structures = case_setup(case)
    if impl == "xtalnet-ckpt":
        cfg = cfg.replace(checkpoint=True)
    net = xtalnet.Network(cfg)
    n_params = xtalnet.count_parameters(net)
    if impl == "e3nn-eager":
        # torch 2.13's dynamo cannot compile the e3nn 0.6.0 modules (guard creation calls
        # len() on an e3nn Irrep, which raises NotImplementedError): the anchor of the
        # compile-on rows is the eager twin
        impl, compile_ = "e3nn", "off"
    if impl == "e3nn":
        e3nn_twin(net)
    twin_params = xtalnet.count_parameters(net)
    g = np.random.default_rng(0)
    for col, head in net.heads.items():
        head.fit(np.abs(g.normal(size=64)) if col == "band_gap" else g.normal(size=64))
    batch = xtalnet.collate(structures, cfg.replace(max_edges=10**8))
    targets = {
        "formation_energy_per_atom": net.heads["formation_energy_per_atom"].encode(
            g.normal(size=batch.num_graphs)
        ),
        "band_gap": net.heads["band_gap"].encode(np.abs(g.normal(size=batch.num_graphs))),
    }
    model = torch.compile(net) if compile_ == "on" else net
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = net.loss(model(batch), targets)
        loss.backward()
        opt.step()
        return loss.detach()

    return step, batch, n_params, twin_params


def run_interleaved(case: str, compile_: str, rounds: int, impls: list[str]) -> dict:
    """All implementations in one process, one step each in turn per round: the speed-up is
    the median over rounds of t(e3nn) / t(impl), robust to load that changes over time."""
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    steps = {impl: make_step(case, impl, compile_)[0] for impl in impls}
    for step in steps.values():
        step()  # warm-up
    times: dict[str, list[float]] = {impl: [] for impl in impls}
    for _ in range(rounds):
        for impl, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[impl].append(time.perf_counter() - t0)
    anchor = next((i for i in ("e3nn", "e3nn-eager") if i in times), None)
    ref = np.asarray(times[anchor]) if anchor is not None else None
    return {
        impl: {
            "time_s": float(np.median(t)),
            "speedup": float(np.median(ref / np.asarray(t))) if ref is not None else float("nan"),
        }
        for impl, t in times.items()
    }


def run_variant(case: str, impl: str, compile_: str, repeats: int) -> dict:
    import gc

    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    step, batch, n_params, twin_params = make_step(case, impl, compile_)
    t0 = time.perf_counter()
    step()  # warm-up (extension load, compilation)
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    gc.collect()
    ok = reset_peak()
    base = resident_bytes()
    step()
    peak = peak_bytes() - base if ok else float("nan")
    t = float(np.median(times))
    return dict(case=case, impl=impl, compile=compile_, time_s=t,
                structures_per_s=batch.num_graphs / t, peak_bytes=peak, warmup_s=warm,
                params=n_params, twin_params=twin_params, atoms=batch.num_nodes,
                edges=batch.num_edges, structures=batch.num_graphs)  # fmt: skip


def epoch_bench(batch_size: int) -> dict:
    import copy

    import torch
    import xtalnet
    from periodic_conv import PeriodicConvolution
    from xtalnet.defaults import choose

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    got = mp20_structures(None)
    if got is None:
        return {"skipped": "set XTAL_SHARED_DATA to time an epoch over MP-20"}
    structures, df = got
    # the network the defaults rule builds for these structures and this target (1 layer)
    targets = ["formation_energy_per_atom"]
    rule = choose(targets, len(structures), {"r_cut": 5.0, "layers": 3}, {})
    chosen = {c.field: c.value for c in rule if c.kind == "config"}
    cfg = xtalnet.NetworkConfig(targets=targets, **chosen)
    net = xtalnet.Network(cfg)
    for col in net.heads:
        net.heads[col].fit(df[col].to_numpy())
    t0 = time.perf_counter()
    batches = list(xtalnet.iter_batches(structures, cfg, batch_size))
    t_graph = time.perf_counter() - t0
    enc = {
        col: [net.heads[col].encode(df[col].to_numpy()[idx]) for idx, _ in batches]
        for col in net.heads
    }
    # the anchor: the same epoch from the same weights with every layer's convolution in
    # periodic-conv's per-edge order (R formed per edge chunk), then in its default order
    init = copy.deepcopy(net.state_dict())
    times = {}
    for order in ("edges", "auto"):
        net.load_state_dict(init)
        for m in net.modules():
            if isinstance(m, PeriodicConvolution):
                m.order = order
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
        t0 = time.perf_counter()
        losses = []
        for k, (_, b) in enumerate(batches):
            opt.zero_grad(set_to_none=True)
            loss = net.loss(net(b), {c: enc[c][k] for c in enc})
            loss.backward()
            opt.step()
            losses.append(loss.item())
        times[order] = time.perf_counter() - t0
    t_train = times["auto"]
    return dict(structures=len(structures), batches=len(batches), graph_s=t_graph,
                epoch_s=t_train, epoch_edges_s=times["edges"],
                params=xtalnet.count_parameters(net),
                edges=sum(b.num_edges for _, b in batches), first_loss=losses[0],
                last_loss=losses[-1], threads=torch.get_num_threads())  # fmt: skip


def _spawn(args: list[str], memory: bool = False) -> dict:
    # memory: large blocks always come from mmap and go back to the OS when freed, so the
    # resident set before the measured step holds no allocator cache (else VmHWM - VmRSS
    # undercounts); not for timings (every large allocation would fault its pages in again).
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536") if memory else None
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                         env=env)  # fmt: skip
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", choices=["twin", "epoch", "distance"], default=None)
    ap.add_argument("--quick", action="store_true", help="1 repeat, MP-20 float32 case only")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--compile", default="off,on", help="off, on or off,on")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--impls", default="xtalnet,xtalnet-ckpt,e3nn",
                    help="xtalnet, xtalnet-ckpt (checkpoint=True), e3nn; with --compile on "
                    "e3nn becomes e3nn-eager (the twin does not compile)")  # fmt: skip
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--variant", nargs=4, metavar=("CASE", "IMPL", "COMPILE", "REPEATS"),
                    help=argparse.SUPPRESS)  # fmt: skip
    ap.add_argument("--epoch-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--interleaved", nargs=4, metavar=("CASE", "COMPILE", "ROUNDS", "IMPLS"),
                    help=argparse.SUPPRESS)  # fmt: skip
    a = ap.parse_args()
    if a.variant:
        case, impl, comp, rep = a.variant
        print(json.dumps(run_variant(case, impl, comp, int(rep))))
        return
    if a.interleaved:
        case, comp, rounds, imps = a.interleaved
        print(json.dumps(run_interleaved(case, comp, int(rounds), imps.split(","))))
        return
    if a.epoch_child:
        print(json.dumps(epoch_bench(a.batch_size)))
        return
    cases = ["mp20 f32"] if a.quick else [c.strip() for c in a.cases.split(",")]
    repeats = 1 if a.quick else a.repeats
    compiles = ["off"] if a.quick else [c.strip() for c in a.compile.split(",")]
    threads = os.environ.get("BENCH_THREADS", "2")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# xtalnet benchmark, {stamp}, {platform.machine()} {os.cpu_count()} CPUs, "
          f"threads={threads}")  # fmt: skip
    impls = [i.strip() for i in a.impls.split(",")]
    rows = []
    if a.only in (None, "twin"):
        for case in cases:
            for comp in compiles:
                run_impls = [("e3nn-eager" if i == "e3nn" and comp == "on" else i) for i in impls]
                inter = _spawn(["--interleaved", case, comp, str(repeats), ",".join(run_impls)])
                print(json.dumps(inter), flush=True)
                for impl in run_impls:
                    r = _spawn(["--variant", case, impl, comp, "1"], memory=True)
                    r.update(case=case, impl=impl, compile=comp)
                    if impl in inter:
                        r["step_s"], r["speedup"] = inter[impl]["time_s"], inter[impl]["speedup"]
                    rows.append(r)
                    print(json.dumps(r), flush=True)
    epoch = None
    if a.only in (None, "epoch"):
        epoch = _spawn(["--epoch-child", "--batch-size", str(a.batch_size)])
        print(json.dumps(epoch), flush=True)
    if a.only in (None, "distance"):
        script = Path(__file__).with_name("composition_distance.py")
        subprocess.run([sys.executable, str(script), *(["--quick"] if a.quick else [])],
                       check=True)  # fmt: skip
    if rows:
        print("\n| case | compile | impl | step (s) | structures/s | speed-up vs e3nn | peak (MiB) "
              "| peak / e3nn | params (ours / twin) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            twin = next((x for x in rows if x["case"] == r["case"] and x["compile"] == r["compile"]
                         and x["impl"] in ("e3nn", "e3nn-eager")), None)  # fmt: skip
            if "error" in r:
                print(f"| {r['case']} | {r['compile']} | {r['impl']} | error: {r['error']} |")
                continue
            ok = twin is not None and "error" not in twin
            sp = f"{r['speedup']:.2f}x" if "speedup" in r else "-"
            step_s = r.get("step_s", r["time_s"])
            pm = f"{r['peak_bytes'] / twin['peak_bytes']:.2f}" if ok and twin["peak_bytes"] else "-"
            print(f"| {r['case']} | {r['compile']} | {r['impl']} | {step_s:.3f} | "
                  f"{r['structures'] / step_s:.1f} | {sp} | {r['peak_bytes'] / 2**20:.1f} | {pm} | "
                  f"{r['params']} / {r['twin_params']} |")  # fmt: skip
    if epoch is not None and "epoch_s" in epoch:
        print(f"\nEpoch over {epoch['structures']} MP-20 training structures "
              f"({epoch['batches']} batches of <= {a.batch_size}, {epoch['edges']} edges, "
              f"{epoch['params']} parameters, {epoch['threads']} threads): graphs "
              f"{epoch['graph_s']:.1f} s, training epoch {epoch['epoch_s']:.1f} s; with "
              f"order='edges' in every layer (the anchor, same run) {epoch['epoch_edges_s']:.1f} "
              f"s: {epoch['epoch_edges_s'] / epoch['epoch_s']:.2f}x")  # fmt: skip
    elif epoch is not None:
        print(f"\nEpoch: {epoch}")


if __name__ == "__main__":
    main()
