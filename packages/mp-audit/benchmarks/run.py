"""Throughput of the geometric audit on the real shared structures.

``nox -s bench -- mp-audit [--jobs 2] [--repeats 3] [--limit N]``

Measures, in one process run, medians over repeats:

* ``geometry (mp_audit)``: nearest neighbor, crystal-graph diameter at 5 Å and both cell
  sphere radii (:func:`mp_audit.geometry_metrics` with ``r_cuts=[5]``), on pre-parsed
  arrays, with ``--jobs`` worker processes (the issue's target: >= 520 structures/s);
* the same with one process (parallel speed-up);
* ``anchor (pymatgen)``: the same numbers with pymatgen's ``get_neighbor_list`` + scipy
  graph, one process, on a subset (ratio only; pymatgen is the usual tool);
* ``full map step``: :func:`mp_audit.audit_entry` (CIF/dict parsing + 6 cut-offs), ``--jobs``.

The table is printed last.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import mp_audit
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

FILES = [
    "mp20/train.csv",
    "mp20/val.csv",
    "mp20/test.csv",
    "mp20/extra.csv",
    "mp_other/matminer_flla_2015.csv.gz",
    "mp_other/matminer_dielectric_constant.csv.gz",
    "mp_other/chemeleon_mp40_test.csv.gz",
    "elastic/matminer_elastic_tensor_2015.csv.gz",
    "elastic/trachote_mp_elastic_val_clean.json.gz",
    "elastic/matten_example_elasticity_tensor_n100.json",
    "elastic/matcalc_mp_binary_pbe_elasticity_2025.1.json.gz",
    "tensors/matminer_piezoelectric_tensor.csv.gz",
]


def _arrays(entry):
    warnings.simplefilter("ignore")
    s = mp_audit.parse_payload(entry.payload)
    return np.array(s.cart_coords), np.array(s.lattice.matrix)


def _geometry(item):
    return mp_audit.geometry_metrics(item[0], item[1], r_cuts=(5.0,))  # positions, cell


def _anchor(item):
    from pymatgen.core import Lattice, Structure

    pos, cell = item
    s = Structure(Lattice(cell), ["H"] * len(pos), pos, coords_are_cartesian=True)
    r = 5.0
    while True:
        i, j, _, d = s.get_neighbor_list(r)
        nn = np.full(len(s), np.inf)
        np.minimum.at(nn, i, d)
        if np.all(np.isfinite(nn)):
            break
        r *= 2
    i, j, _, d = s.get_neighbor_list(5.0)
    keep = i != j
    adj = csr_matrix((np.ones(keep.sum()), (i[keep], j[keep])), shape=(len(s), len(s)))
    if connected_components(adj, directed=False)[0] == 1:
        shortest_path(adj, unweighted=True).max()
    return nn.max(), mp_audit.inscribed_radius(cell), mp_audit.enclosing_radius(cell)


def _timed(fn, items, pool, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        if pool is None:
            for item in items:
                fn(item)
        else:
            pool.map(fn, items, chunksize=64)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="structures (default: all)")
    parser.add_argument("--anchor-size", type=int, default=1000)
    args = parser.parse_args()
    root = os.environ.get("XTAL_SHARED_DATA")
    if not root:
        sys.exit("set XTAL_SHARED_DATA=/path/to/shared/data")
    ds = mp_audit.load([Path(root) / f for f in FILES], limit=args.limit)
    entries = list(ds)
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.jobs) as pool:
        t0 = time.perf_counter()
        items = pool.map(_arrays, entries, chunksize=64)
        parse_s = time.perf_counter() - t0
        pool.map(_geometry, items[: 4 * args.jobs])  # warm the workers
        geo_par = _timed(_geometry, items, pool, args.repeats)
        full = _timed(mp_audit.audit_entry, entries, pool, 1)
    geo_one = _timed(_geometry, items, None, args.repeats)
    sub = items[: args.anchor_size]
    anchor = _timed(_anchor, sub, None, 1)
    mine_sub = _timed(_geometry, sub, None, args.repeats)
    n = len(items)
    natoms = sum(len(p) for p, _ in items)
    rows = [
        (f"geometry (mp_audit), --jobs {args.jobs}", n, geo_par, n / geo_par),
        ("geometry (mp_audit), 1 process", n, geo_one, n / geo_one),
        ("anchor (pymatgen neighbors), 1 process", len(sub), anchor, len(sub) / anchor),
        ("geometry (mp_audit), same subset, 1 process", len(sub), mine_sub, len(sub) / mine_sub),
        (f"full map step (parse + 6 cut-offs), --jobs {args.jobs}", n, full, n / full),
        (f"parse to arrays only, --jobs {args.jobs}", n, parse_s, n / parse_s),
    ]
    print(f"\n{n} structures, {natoms} atoms, {os.cpu_count()} CPUs, jobs={args.jobs}")
    print(f"{'task':58s} {'n':>7s} {'median s':>9s} {'struct/s':>9s}")
    for name, count, sec, rate in rows:
        print(f"{name:58s} {count:7d} {sec:9.2f} {rate:9.0f}")
    print(f"speed-up jobs={args.jobs} vs 1: {geo_one / geo_par:.2f}x; "
          f"mp_audit vs pymatgen anchor: {anchor / mine_sub:.1f}x; "
          f"target 520 struct/s: {'met' if n / geo_par >= 520 else 'NOT met'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
