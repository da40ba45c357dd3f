"""Benchmark: a grid of notebook cells run one after another vs as a sweep on a local Dask cluster.

Usage::

    python bench/bench_sweep.py [--notebook 00_quickstart] [--set smoke] [--grid layer=0,3]
                                [--workers 2] [--noop-cells 20] [--out bench/results/sweep.json]

Three measurements, in one run on one machine:

``sequential``
    The baseline: each cell executed in turn as ``brainalign run`` does it
    (papermill and a fresh kernel per cell, every core for the kernel's BLAS
    and torch).
``sweep``
    The same cells through ``brainalign.sweep.run_sweep`` on a ``LocalCluster``
    of ``--workers`` worker processes (one core's threads per cell), cluster
    start included. The speed-up is sequential / sweep. Both paths must give
    the same numbers: the headline table of every cell is compared (largest
    absolute difference).
``sweep_beyond_cells_s``
    The sweep's wall time less its slowest cell's own time (what the cell's
    executor took on its worker): cluster start and the engine's work.
``engine overhead``
    ``--noop-cells`` cells whose executor does nothing, on one worker of an
    already running cluster: the wall time per cell is what the engine adds
    to a notebook's own time (planning and hashing, submission, scheduling,
    the attempt folder, ``cell.json``, the move into place). Target: under 2 s.

One warm-up cell runs first (untimed), so that both paths read the same warm
feature cache.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from brainalign import sweep
from brainalign.cache import atomic_write

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def noop(notebook, set_name, overrides, out_dir):
    """A cell that does nothing: the engine's own cost."""


def headline(results: dict, notebook: str) -> pd.Series:
    """The headline measure of one results json, by its x column."""
    spec = sweep.HEADLINES[notebook]
    table = pd.DataFrame(results["tables"][spec.table])
    for col, value in spec.where.items():
        table = table[table[col] == value]
    return table.groupby(spec.x)[spec.value].mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notebook", default="00_quickstart")
    parser.add_argument("--set", default="smoke", dest="set_name")
    parser.add_argument("--grid", action="append", default=None, help="NAME=V1,V2,... (default layer=0,3: one cell per worker)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noop-cells", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sweep.json")
    args = parser.parse_args()

    grid = sweep.parse_grid(args.grid or ["layer=0,3"])
    cells = sweep.plan_cells(args.notebook, args.set_name, grid)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        report = measure(args, grid, cells, Path(tmp))
    report["machine"]["load_average_before"] = [round(x, 2) for x in load_before]
    print(f"speed-up {report['speedup']}x ({report['sequential_s']} s -> {report['sweep_s']} s); "
          f"max abs diff of the headline: {report['max_abs_diff_headline']}")
    text = json.dumps(report, indent=1)
    atomic_write(args.out, lambda tmp: tmp.write_text(text))
    print(f"wrote {args.out}")


def measure(args: argparse.Namespace, grid: dict, cells: list, work: Path) -> dict:
    """Run the three measurements in ``work``; the report's numbers."""
    from distributed import Client

    cores = os.cpu_count() or 1
    # warm-up: the feature cache both paths read
    os.environ.update({v: str(cores) for v in THREAD_VARIABLES})
    t = time.perf_counter()
    sweep.execute_notebook(args.notebook, args.set_name, cells[0].overrides, work / "warmup")
    warmup = time.perf_counter() - t
    print(f"warm-up cell: {warmup:.1f} s")

    # baseline: one cell after another, as `brainalign run` does
    sequential = []
    for i, cell in enumerate(cells):
        t = time.perf_counter()
        sweep.execute_notebook(args.notebook, args.set_name, cell.overrides, work / "sequential" / cell.id)
        sequential.append(time.perf_counter() - t)
        print(f"sequential cell {i + 1}/{len(cells)} {cell.overrides}: {sequential[-1]:.1f} s")

    # the same cells as a sweep on a local cluster (cluster start included)
    t = time.perf_counter()
    result = sweep.run_sweep(args.notebook, args.set_name, grid, name="bench", out_dir=work / "sweeps",
                             n_workers=args.workers, progress=False)
    sweep_s = time.perf_counter() - t
    if result.failed:
        raise SystemExit(f"cells failed: {result.failed}")
    records = [json.loads((result.folder / c.id / "cell.json").read_text()) for c in cells]
    print(f"sweep on {args.workers} workers: {sweep_s:.1f} s")

    # same numbers on both paths
    diffs = []
    if args.notebook in sweep.HEADLINES:
        for cell in cells:
            a = json.loads((work / "sequential" / cell.id / f"{args.notebook}.json").read_text())
            b = json.loads((result.folder / cell.id / f"{args.notebook}.json").read_text())
            diffs.append(float(np.max(np.abs(headline(a, args.notebook) - headline(b, args.notebook)))))

    # the engine's own cost per cell: cells that do nothing, one worker, cluster already running
    noop_grid = {"seed": list(range(args.noop_cells))}
    t = time.perf_counter()
    with sweep.make_cluster("local", n_workers=1) as cluster, Client(cluster) as client:
        start_s = time.perf_counter() - t
        t = time.perf_counter()
        sweep.run_sweep(args.notebook, args.set_name, noop_grid, name="noop", out_dir=work / "sweeps",
                        client=client, execute=noop, progress=False)
        noop_s = time.perf_counter() - t
    per_cell = noop_s / args.noop_cells
    print(f"engine overhead: {per_cell:.3f} s per cell ({args.noop_cells} empty cells on 1 worker); "
          f"local cluster start {start_s:.1f} s")

    return {
        "notebook": args.notebook, "set": args.set_name, "grid": grid, "n_cells": len(cells),
        "workers": args.workers, "warmup_s": round(warmup, 1),
        "sequential_s": round(sum(sequential), 1), "sequential_cells_s": [round(x, 1) for x in sequential],
        "sweep_s": round(sweep_s, 1), "sweep_cells_s": [r["seconds"] for r in records],
        "speedup": round(sum(sequential) / sweep_s, 2),
        # beyond the slowest cell's own time: cluster start, scheduling, attempt folders, moves into place
        "sweep_beyond_cells_s": round(sweep_s - max(r["seconds"] for r in records), 2),
        "max_abs_diff_headline": max(diffs) if diffs else None,
        "engine_overhead_s_per_cell": round(per_cell, 3), "noop_cells": args.noop_cells,
        "local_cluster_start_s": round(start_s, 2),
        "machine": {"cores": cores, "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_after": [round(x, 2) for x in os.getloadavg()]},
        "versions": {p: md.version(p) for p in ("dask", "distributed", "papermill", "brainalign")},
    }


if __name__ == "__main__":
    main()
