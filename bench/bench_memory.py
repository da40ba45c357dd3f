"""Benchmark: the peak memory of every notebook, under Binder's memory limit.

    python bench/bench_memory.py [NOTEBOOK ...] [--set default] [--limit-mb 2048] [--interval 0.1]
                                 [--out bench/results/memory-<set>.json]

A Binder session has 2 GB (``launch.BINDER_MEMORY_MB``) for all it runs: the Jupyter
server, the kernel and what the kernel starts. Each notebook runs here as
``brainalign run NOTEBOOK --set SET`` (papermill and its kernel) in a child process, into
a temporary folder, under that limit, enforced one of two ways:

``cgroup``
    A fresh cgroup v2 with ``memory.max`` at the limit and no swap, when this process
    may make one (root, cgroup v2 with the memory controller enabled for children of
    the root). The kernel stops a run that needs more, as Binder's would; the peak is
    the cgroup's ``memory.peak`` (page cache included, as in Binder's accounting).
``watchdog``
    Otherwise: the resident memory (RSS) of the whole process tree is sampled every
    ``interval`` seconds, and the tree is killed when it exceeds the limit. A peak
    shorter than the interval can be missed, so the kernel's own high-water mark
    (``ru_maxrss``, recorded by the notebook in its results json) is reported beside it.

This is a budget check, not a speed claim: there is no baseline to compare with.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from brainalign import launch
from brainalign.cache import atomic_write
from brainalign.cli import VALIDATION_FAILED
from brainalign.runner import load_runs

MB = 2**20
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _cgroup(limit: int, name: str) -> Path | None:
    """A new cgroup v2 limited to ``limit`` bytes without swap, or None when none can be made here."""
    try:
        if "memory" not in (CGROUP_ROOT / "cgroup.subtree_control").read_text().split():
            return None
        group = CGROUP_ROOT / f"brainalign-bench-{os.getpid()}-{name}"
        group.mkdir()
    except OSError:
        return None
    try:
        (group / "memory.max").write_text(str(limit))
        if (group / "memory.swap.max").exists():
            (group / "memory.swap.max").write_text("0")
    except OSError:
        group.rmdir()
        return None
    return group


def _tree_rss(proc: psutil.Process) -> tuple[int, list[psutil.Process]]:
    """Resident bytes of ``proc`` and all its descendants, and the processes."""
    tree = [proc, *proc.children(recursive=True)]
    total = 0
    for p in tree:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total, tree


def _watch(child: subprocess.Popen, limit: int, interval: float, enforce: bool) -> tuple[int, bool]:
    """Sample the child's tree until it exits: the peak RSS, and whether it was killed over ``limit``."""
    proc = psutil.Process(child.pid)
    peak, killed = 0, False
    while child.poll() is None:
        try:
            rss, tree = _tree_rss(proc)
        except psutil.NoSuchProcess:
            break
        peak = max(peak, rss)
        if enforce and rss > limit:
            for p in reversed(tree):  # the kernel and its children first, then papermill
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            killed = True
            break
        time.sleep(interval)
    child.wait()
    return peak, killed


def run_one(notebook: str, set_name: str, limit_mb: int, interval: float) -> dict:
    """Run one notebook under the limit; its peaks, outcome and wall time."""
    limit = limit_mb * MB
    group = _cgroup(limit, notebook)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        cmd = [sys.executable, "-m", "brainalign.cli", "run", notebook, "--set", set_name, "--out-dir", tmp]
        join = (lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None
        start = time.time()
        with open(Path(tmp) / "run.log", "w") as log:
            child = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=join)
            sampled, killed = _watch(child, limit, interval, enforce=group is None)
        wall = time.time() - start
        row = {"notebook": notebook, "set": set_name, "method": "cgroup" if group else "watchdog",
               "limit_mb": limit_mb, "wall_s": round(wall, 1), "sampled_tree_peak_mb": round(sampled / MB)}
        if group is not None:
            events = dict(line.split() for line in (group / "memory.events").read_text().splitlines())
            killed = int(events.get("oom_kill", 0)) > 0
            peak_file = group / "memory.peak"
            row["cgroup_peak_mb"] = round(int(peak_file.read_text()) / MB) if peak_file.exists() else None
            group.rmdir()
        result = Path(tmp) / f"{notebook}.json"
        if result.exists():
            summary = json.loads(result.read_text())
            row["kernel_peak_mb"] = round(summary["peak_memory_mb"])
            row["validations_passed"] = summary["validations_passed"]
        ran = child.returncode in (0, VALIDATION_FAILED) and result.exists()  # 3: ran, a validation failed
        row["status"] = "over the limit" if killed else "ok" if ran else f"failed (exit {child.returncode})"
        if row["status"] != "ok":
            row["log_tail"] = (Path(tmp) / "run.log").read_text()[-2000:]
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs = load_runs()
    ap.add_argument("notebooks", nargs="*", help=f"default: all ({', '.join(sorted(runs))})")
    ap.add_argument("--set", default="default", dest="set_name", help="parameter set of notebooks/runs.yml")
    ap.add_argument("--limit-mb", type=int, default=launch.BINDER_MEMORY_MB)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between two samples (watchdog)")
    ap.add_argument("--out", default=None, help="default: bench/results/memory-<set>.json")
    args = ap.parse_args(argv)
    notebooks = args.notebooks or sorted(runs)
    for name in notebooks:
        if name not in runs:
            raise SystemExit(f"unknown notebook {name!r}; valid: {sorted(runs)}")
        if args.set_name not in runs[name]:
            raise SystemExit(f"unknown parameter set {args.set_name!r} for {name}; valid: {sorted(runs[name])}")
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"memory-{args.set_name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in notebooks:
        row = run_one(name, args.set_name, args.limit_mb, args.interval)
        rows.append(row)
        peak = row.get("cgroup_peak_mb") or row["sampled_tree_peak_mb"]
        print(f"{name:36s} {args.set_name:8s} {row['status']:16s} peak {peak:5d} MB (kernel {row.get('kernel_peak_mb', '-')} MB)"
              f"  {row['wall_s']:7.1f} s  [{row['method']}, limit {args.limit_mb} MB]", flush=True)
        record = {
            "limit_mb": args.limit_mb, "set": args.set_name, "rows": rows,
            "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                        "cpu": platform.processor() or platform.machine(), "python": sys.version.split()[0]},
        }
        # after every notebook: an interrupted run (the default sets take most of an hour) keeps what it measured
        text = json.dumps(record, indent=1) + "\n"
        atomic_write(out, lambda tmp, text=text: tmp.write_text(text))
    return rows


if __name__ == "__main__":
    rows = main()
    sys.exit(0 if all(r["status"] == "ok" for r in rows) else 1)
