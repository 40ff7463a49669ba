"""Benchmark gaunt-elastic against its anchors in one process: ``nox -s bench -- gaunt-elastic``.

1. All float real Gaunt tables with l1, l2, l3 <= 10 (cold caches), against sympy's
   ``real_gaunt`` called per entry (timed on a random sample, extrapolated to all entries).
2. All coupling coefficients with l_out, l_in, l <= 10 (cold caches) against e3nn's
   ``wigner_3j`` (cold lru_cache).
3. Batched ``elastic.cartesian_to_irreps`` on N tensors (float64) against e3nn's
   ``io.CartesianTensor("ijkl=jikl=klij").from_cartesian``.

Medians over repeats; the table is printed last. ``--quick`` shrinks sizes.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import random
import statistics
import time

import torch


def _median_time(fn, repeats: int, setup=None) -> float:
    times = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_gaunt(repeats: int, sample: int) -> list[tuple[str, float, str]]:
    import gaunt_elastic as ge
    import sympy.physics.wigner as sw
    from gaunt_elastic import _gaunt

    def clear():
        _gaunt._dense_tables.cache_clear()
        _gaunt._sh_on_quadrature.cache_clear()

    def build():
        for l1, l2, l3 in itertools.product(range(11), repeat=3):
            ge.gaunt_tensor(l1, l2, l3)

    ours = _median_time(build, repeats, setup=clear)
    n_entries = 121**3
    rng = random.Random(0)
    entries = []
    for _ in range(sample):
        ls = [rng.randint(0, 10) for _ in range(3)]
        entries.append((*ls, *[rng.randint(-l, l) for l in ls]))
    t0 = time.perf_counter()
    for e in entries:
        sw.real_gaunt(*e)
    per_entry = (time.perf_counter() - t0) / sample
    sympy_total = per_entry * n_entries
    return [
        ("gaunt tables l<=10 (1331 blocks, cold)", ours, "ours"),
        (
            f"  sympy real_gaunt per entry x {n_entries} (extrapolated from {sample})",
            sympy_total,
            f"{sympy_total / ours:.0f}x slower",
        ),
    ]


def _triples(l_max: int) -> list[tuple[int, int, int]]:
    return [
        (a, b, c)
        for a, b in itertools.product(range(l_max + 1), repeat=2)
        for c in range(abs(a - b), min(a + b, l_max) + 1)
    ]


def bench_coupling(repeats: int) -> list[tuple[str, float, str]]:
    import gaunt_elastic as ge
    from gaunt_elastic import _coupling, _exact

    def clear():
        _coupling._raw.cache_clear()
        _exact.wigner_3j.cache_clear()

    rows = []
    all10 = _triples(10)
    ours10 = _median_time(lambda: [ge.coupling(*t) for t in all10], repeats, setup=clear)
    rows.append((f"coupling l<=10 ({len(all10)} triples, cold)", ours10, "ours"))
    # e3nn's cold wigner_3j takes about a minute for l <= 10 here: compare on l <= 6.
    six = _triples(6)
    ours6 = _median_time(lambda: [ge.coupling(*t) for t in six], repeats, setup=clear)
    rows.append((f"coupling l<=6 ({len(six)} triples, cold)", ours6, "ours"))
    try:
        from e3nn import o3
        from e3nn.o3 import _wigner

        def clear_e3nn():
            _wigner._so3_clebsch_gordan.cache_clear()
            _wigner._su2_clebsch_gordan.cache_clear()

        ref = _median_time(
            lambda: [o3.wigner_3j(*t, dtype=torch.float64) for t in six],
            repeats,
            setup=clear_e3nn,
        )
        rows.append(("  e3nn o3.wigner_3j l<=6 (cold)", ref, f"{ref / ours6:.2f}x ours"))
    except (ImportError, AttributeError) as exc:  # anchor optional
        rows.append((f"  e3nn anchor skipped ({exc})", float("nan"), ""))
    return rows


def bench_elastic(n: int, repeats: int) -> list[tuple[str, float, str]]:
    from gaunt_elastic import elastic as el

    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, 6, 6, dtype=torch.float64, generator=g)
    c = el.voigt_to_cartesian(a + a.transpose(-1, -2))
    el.cartesian_to_irreps(c[:10])  # build the cached matrices outside the timing
    ours = _median_time(lambda: el.cartesian_to_irreps(c), repeats)
    s = el.cartesian_to_irreps(c)
    back = _median_time(lambda: el.irreps_to_cartesian(s), repeats)
    rows = [
        (f"cartesian_to_irreps, {n} tensors float64", ours, f"{n / ours / 1e6:.2f} M tensors/s"),
        (f"irreps_to_cartesian, {n} tensors float64", back, f"{n / back / 1e6:.2f} M tensors/s"),
    ]
    try:
        from e3nn import io

        ct = io.CartesianTensor("ijkl=jikl=klij")
        ct.from_cartesian(c[:10])
        ref = _median_time(lambda: ct.from_cartesian(c), repeats)
        rows.append(("  e3nn CartesianTensor.from_cartesian", ref, f"{ref / ours:.2f}x ours"))
    except ImportError as exc:
        rows.append((f"  e3nn anchor skipped ({exc})", float("nan"), ""))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (CI smoke run)")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    n = 10_000 if args.quick else 1_000_000
    sample = 50 if args.quick else 400
    rows = (
        bench_gaunt(repeats, sample) + bench_coupling(min(repeats, 3)) + bench_elastic(n, repeats)
    )
    print(
        f"\ngaunt-elastic benchmark — {time.strftime('%Y-%m-%d')}, {platform.machine()} "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print(f"| {'task':<66} | {'median s':>9} | {'ratio':<18} |")
    print(f"|{'-' * 68}|{'-' * 11}|{'-' * 20}|")
    for name, t, ratio in rows:
        print(f"| {name:<66} | {t:9.3f} | {ratio:<18} |")


if __name__ == "__main__":
    main()
