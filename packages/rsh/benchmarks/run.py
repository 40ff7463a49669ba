"""Benchmark rsh (torch and C++ backends) against sphericart-torch and e3nn.

Same process, 2 threads; for every (N, l_max, dtype, mode) the implementations run
interleaved (one timed sample of each per round, after warm-up), and we report the median
ns/point of each and the median over rounds of the paired ratio time / sphericart time.
Entry point of ``nox -s bench -- rsh [args]``; ``--quick`` (used by ``nox -s demo``) runs a
small subset in about a minute. Prints a table last.

Usage: python run.py [--quick] [--n 1000 100000] [--l-max 1 2 4] [--dtype float32 float64]
       [--mode fwd fwd+bwd] [--impl rsh-cpp rsh-torch sphericart e3nn] [--repeats 7]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

# On a shared, oversubscribed machine spinning OpenMP workers distort every timing (ours,
# sphericart's and torch's alike); passive waiting must be chosen before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import rsh
import torch


def make_impls(l_max: int) -> dict[str, object]:
    impls: dict[str, object] = {
        "rsh-cpp": lambda x: rsh.spherical_harmonics(x, l_max, backend="cpp"),
        "rsh-torch": lambda x: rsh.spherical_harmonics(x, l_max, backend="torch"),
    }
    try:
        import sphericart.torch as sct

        mod = sct.SphericalHarmonics(l_max)
        impls["sphericart"] = lambda x: mod(x)
    except ImportError:
        pass
    try:
        from e3nn import o3

        if l_max <= 11:  # e3nn's hard-coded polynomials stop at l = 11 (12 via recursion)
            ls = list(range(l_max + 1))
            impls["e3nn"] = lambda x: o3.spherical_harmonics(ls, x, True, "integral")
    except ImportError:
        pass
    return impls


def one_sample(fn, x: torch.Tensor, grad_out: torch.Tensor | None, inner: int) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        if grad_out is None:
            with torch.no_grad():
                fn(x)
        else:
            y = fn(x)
            y.backward(grad_out)
    return (time.perf_counter() - t0) / inner


def bench_case(n, l_max, dtype, mode, names, repeats, gen, budget=3e5):
    x = torch.randn(n, 3, dtype=dtype, generator=gen).to(dtype)
    impls = {k: v for k, v in make_impls(l_max).items() if k in names}
    grad_out = None
    if mode == "fwd+bwd":
        x.requires_grad_()
        grad_out = torch.randn(n, (l_max + 1) ** 2, dtype=dtype, generator=gen)
    inner = max(1, int(budget // (n * max(l_max, 1))))  # ~equal work per sample
    for fn in impls.values():  # warm-up (and C++ build) outside the timings
        one_sample(fn, x, grad_out, 1)
    times: dict[str, list[float]] = {k: [] for k in impls}
    for _ in range(repeats):
        for k, fn in impls.items():
            if x.grad is not None:
                x.grad = None
            times[k].append(one_sample(fn, x, grad_out, inner))
    rows = []
    for k in impls:
        ns = statistics.median(times[k]) / n * 1e9
        ratio = None
        if "sphericart" in times:
            ratio = statistics.median(a / b for a, b in zip(times[k], times["sphericart"]))
        rows.append((n, l_max, str(dtype).replace("torch.", ""), mode, k, ns, ratio))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~1 minute)")
    parser.add_argument("--n", type=int, nargs="+", default=None)
    parser.add_argument("--l-max", type=int, nargs="+", default=None)
    parser.add_argument(
        "--dtype", nargs="+", default=["float32", "float64"], choices=["float32", "float64"]
    )
    parser.add_argument("--mode", nargs="+", default=["fwd", "fwd+bwd"], choices=["fwd", "fwd+bwd"])
    impls = ["rsh-cpp", "rsh-torch", "sphericart", "e3nn"]
    parser.add_argument("--impl", nargs="+", default=impls, choices=impls)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        ns = args.n or [2000]
        ls = args.l_max or [2, 6, 10]
        repeats = args.repeats or 3
        budget = 3e4
    else:
        ns = args.n or [1000, 100000, 1000000]
        ls = args.l_max or [1, 2, 4, 6, 8, 10, 12]
        repeats = args.repeats or 7
        budget = 3e5
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for n in ns:
        for l_max in ls:
            for dt in args.dtype:
                for mode in args.mode:
                    dtype = getattr(torch, dt)
                    rows += bench_case(n, l_max, dtype, mode, args.impl, repeats, gen, budget)
                    print(f"done N={n} l_max={l_max} {dt} {mode}", flush=True)
    print()
    print(
        f"# rsh benchmark {datetime.date.today()}, {platform.machine()} {platform.processor()}, "
        f"torch {torch.__version__}, {args.threads} threads, median of {repeats} interleaved "
        "rounds; ratio = median of paired (time / sphericart time)"
    )
    print("| N | l_max | dtype | mode | impl | ns/point | ratio vs sphericart |")
    print("|---:|---:|---|---|---|---:|---:|")
    for n, l, dt, mode, k, ns_, ratio in rows:
        r = f"{ratio:.2f}" if ratio is not None else "-"
        print(f"| {n:.0e} | {l} | {dt} | {mode} | {k} | {ns_:.1f} | {r} |")


if __name__ == "__main__":
    main()
