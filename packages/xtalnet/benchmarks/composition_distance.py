"""Benchmark of the composition distance in an ensemble's σ
(:class:`xtalnet.composition_distance.TrainingCompositions`) against the nearest-neighbour
search a user would write: scikit-learn's ``NearestNeighbors(metric="manhattan",
algorithm="brute")`` on dense fractional-composition vectors.

    python benchmarks/composition_distance.py [--quick]
    nox -s bench -- xtalnet --only distance

Training sets: the 847 MP-20 training crystals (XTAL_SHARED_DATA; queries: the 385 crystals of
its test and extra files) and synthetic ones of 10 k and 100 k crystals (1-5 elements drawn
with the MP-20 element frequencies, 1-8 atoms of each; 2,000 queries drawn alike). Both sides
index once (``index_s``: ours, from the atomic numbers; scikit-learn's, from the dense
vectors, which it is handed ready-made) and then answer every query; the speed-up is the
median over repeats of t(scikit-learn) / t(ours) for the queries. The distances must agree
to 1e-9 (``max_diff``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import Counter
from pathlib import Path

import numpy as np
from xtalnet.composition_distance import TrainingCompositions, fractional_composition

MAX_Z = 119


def _mp20_numbers(split: str) -> list[np.ndarray] | None:
    root = os.environ.get("XTAL_SHARED_DATA")
    path = Path(root) / "mp20" / f"{split}.csv" if root else None
    if path is None or not path.is_file():
        return None
    import warnings

    import pandas as pd
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cifs = pd.read_csv(path).cif
        return [np.array(Structure.from_str(c, fmt="cif").atomic_numbers) for c in cifs]


def _synthetic(n: int, weights: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """``n`` cells: 1-5 distinct elements drawn with ``weights`` [MAX_Z], 1-8 atoms each."""
    p = weights / weights.sum()
    out = []
    for k in rng.integers(1, 6, n):
        z = rng.choice(MAX_Z, size=min(int(k), int((p > 0).sum())), replace=False, p=p)
        out.append(np.repeat(z, rng.integers(1, 9, len(z))))
    return out


def _dense(numbers: list[np.ndarray]) -> np.ndarray:
    x = np.zeros((len(numbers), MAX_Z))
    for i, z in enumerate(numbers):
        elements, fractions = fractional_composition(z)
        x[i, elements] = fractions
    return x


def bench_case(name: str, train: list, queries: list, repeats: int) -> dict:
    from sklearn.neighbors import NearestNeighbors

    t0 = time.perf_counter()
    ours = TrainingCompositions.from_numbers(train)
    index_s = time.perf_counter() - t0
    x_train, x_query = _dense(train), _dense(queries)
    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=1, metric="manhattan", algorithm="brute").fit(x_train)
    sk_index_s = time.perf_counter() - t0
    ratios, t_ours, t_sk = [], [], []
    for _ in range(repeats):  # interleaved: a load that changes hits both alike
        t0 = time.perf_counter()
        d = ours.distance(queries)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ref = nn.kneighbors(x_query, return_distance=True)[0][:, 0]
        t_sk.append(time.perf_counter() - t0)
        ratios.append(t_sk[-1] / t_ours[-1])
    return dict(case=name, train=len(train), distinct=len(ours._columns), queries=len(queries),
                index_s=index_s, sk_index_s=sk_index_s, query_s=float(np.median(t_ours)),
                sk_query_s=float(np.median(t_sk)), speedup=float(np.median(ratios)),
                max_diff=float(np.abs(d - ref).max()))  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repeat, no 100 k case")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    repeats = 1 if a.quick else a.repeats
    rng = np.random.default_rng(0)
    train = _mp20_numbers("train")
    weights = np.ones(MAX_Z)
    weights[0] = 0.0
    cases = []
    if train is not None:
        queries = (_mp20_numbers("test") or []) + (_mp20_numbers("extra") or [])
        cases.append(("MP-20", train, queries))
        weights = np.zeros(MAX_Z)
        for z, c in Counter(int(e) for zs in train for e in set(zs.tolist())).items():
            weights[z] = c
    sizes = (10_000,) if a.quick else (10_000, 100_000)
    for n in sizes:
        cases.append((f"synthetic {n // 1000} k", _synthetic(n, weights, rng),
                      _synthetic(2000, weights, rng)))  # fmt: skip
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"# composition distance benchmark, {stamp}, {platform.machine()} "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    rows = []
    for name, tr, q in cases:
        rows.append(bench_case(name, tr, q, repeats))
        print(json.dumps(rows[-1]), flush=True)
        if not rows[-1]["max_diff"] <= 1e-9:
            raise SystemExit(f"{name}: the distances differ from scikit-learn's by "
                             f"{rows[-1]['max_diff']:.3g}")  # fmt: skip
    print("\n| training set | crystals (distinct) | queries | index (s) ours / sklearn "
          "| queries (s) ours / sklearn | speed-up | max |Δd| |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['train']} ({r['distinct']}) | {r['queries']} | "
              f"{r['index_s']:.3f} / {r['sk_index_s']:.3f} | {r['query_s']:.3f} / "
              f"{r['sk_query_s']:.3f} | {r['speedup']:.1f}x | {r['max_diff']:.1e} |")  # fmt: skip


if __name__ == "__main__":
    main()
