"""Benchmark: the peak memory of every notebook, under Binder's memory limit.

    python bench/bench_memory.py [NOTEBOOK ...] [--set default] [--limit-mb 2048] [--interval 0.1]
                                 [--out bench/results/memory-<set>.json]
    python bench/bench_memory.py --setup [--out bench/results/memory-setup.json]

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
    shorter than the interval can be missed, so the operating system's high-water
    marks are reported beside it: the notebook kernel's (``ru_maxrss``, recorded in
    its results json) and that of the largest process of the tree (from ``wait4``).

``--setup`` measures, instead of notebooks, what Binder runs once when it builds the
image: the ``brainalign`` commands of ``postBuild`` (every packaged model's conversion,
then both simulated cohorts), in order, in one fresh data home, so every cache is cold.

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
ROOT = Path(__file__).resolve().parent.parent
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


def _watch(child: subprocess.Popen, limit: int, interval: float, enforce: bool) -> tuple[int, int, bool]:
    """Sample the child's tree until it exits.

    Returns the sampled peak RSS of the tree, the high-water mark of its largest
    process (the kernel's own, from ``wait4``: no peak is missed between samples),
    and whether the tree was killed over ``limit``.
    """
    proc = psutil.Process(child.pid)
    peak, killed = 0, False
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            child.returncode = os.waitstatus_to_exitcode(status)
            return peak, usage.ru_maxrss * 1024, killed
        try:
            rss, tree = _tree_rss(proc)
        except psutil.NoSuchProcess:
            continue
        peak = max(peak, rss)
        if enforce and rss > limit:
            for p in reversed(tree):  # the kernel and its children first, then papermill
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
            killed = True
        time.sleep(interval)


def _run_limited(cmd: list[str], label: str, limit_mb: int, interval: float, log: Path,
                 env: dict | None = None) -> tuple[dict, subprocess.Popen]:
    """Run ``cmd`` under the limit; the row of its peaks and wall time, and the finished child."""
    limit = limit_mb * MB
    group = _cgroup(limit, label)
    join = (lambda: (group / "cgroup.procs").write_text(str(os.getpid()))) if group else None
    start = time.time()
    with open(log, "w") as out:
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, preexec_fn=join, env=env)
        sampled, largest, killed = _watch(child, limit, interval, enforce=group is None)
    row = {"method": "cgroup" if group else "watchdog", "limit_mb": limit_mb, "wall_s": round(time.time() - start, 1),
           "sampled_tree_peak_mb": round(sampled / MB), "largest_process_peak_mb": round(largest / MB)}
    if group is not None:
        events = dict(line.split() for line in (group / "memory.events").read_text().splitlines())
        killed = int(events.get("oom_kill", 0)) > 0
        peak_file = group / "memory.peak"
        row["cgroup_peak_mb"] = round(int(peak_file.read_text()) / MB) if peak_file.exists() else None
        group.rmdir()
    row["killed"] = killed
    return row, child


def run_one(notebook: str, set_name: str, limit_mb: int, interval: float) -> dict:
    """Run one notebook under the limit; its peaks, outcome and wall time."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        cmd = [sys.executable, "-m", "brainalign.cli", "run", notebook, "--set", set_name, "--out-dir", tmp]
        measured, child = _run_limited(cmd, notebook, limit_mb, interval, Path(tmp) / "run.log")
        killed = measured.pop("killed")
        row = {"notebook": notebook, "set": set_name, **measured}
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


def setup_steps() -> list[list[str]]:
    """The ``brainalign`` commands of Binder's ``postBuild``, in order."""
    lines = (ROOT / "postBuild").read_text().splitlines()
    return [line.split() for line in lines if line.startswith("brainalign ")]


def run_setup(limit_mb: int, interval: float) -> list[dict]:
    """Each set-up step of the Binder image under the limit, in one fresh data home (cold caches)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-setup-") as home:
        env = {**os.environ, "BRAINALIGN_DATA": home}
        for step in setup_steps():
            cmd = [sys.executable, "-m", "brainalign.cli", *step[1:]]
            label = " ".join(step)
            measured, child = _run_limited(cmd, f"setup-{len(rows)}", limit_mb, interval, Path(home) / "step.log", env)
            killed = measured.pop("killed")
            row = {"notebook": label, "set": "setup", **measured}
            row["status"] = "over the limit" if killed else "ok" if child.returncode == 0 else f"failed (exit {child.returncode})"
            if row["status"] != "ok":
                row["log_tail"] = (Path(home) / "step.log").read_text()[-2000:]
            rows.append(row)
            if row["status"] != "ok":
                break  # the next steps need this one's output
    return rows


def _write(out: Path, rows: list[dict], limit_mb: int, set_name: str) -> None:
    record = {
        "limit_mb": limit_mb, "set": set_name, "rows": rows,
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
                    "cpu": platform.processor() or platform.machine(), "python": sys.version.split()[0]},
    }
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(out, lambda tmp: tmp.write_text(text))


def _print(row: dict) -> None:
    peak = row.get("cgroup_peak_mb") or row["sampled_tree_peak_mb"]
    print(f"{row['notebook']:36s} {row['set']:8s} {row['status']:16s} peak {peak:5d} MB "
          f"(kernel {row.get('kernel_peak_mb', '-')} MB)  {row['wall_s']:7.1f} s  [{row['method']}, limit {row['limit_mb']} MB]",
          flush=True)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    runs = load_runs()
    ap.add_argument("notebooks", nargs="*", help=f"default: all ({', '.join(sorted(runs))})")
    ap.add_argument("--set", default="default", dest="set_name", help="parameter set of notebooks/runs.yml")
    ap.add_argument("--setup", action="store_true",
                    help="instead of notebooks, the Binder image's set-up steps (postBuild's brainalign commands)")
    ap.add_argument("--limit-mb", type=int, default=launch.BINDER_MEMORY_MB)
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between two samples (watchdog)")
    ap.add_argument("--out", default=None, help="default: bench/results/memory-<set or setup>.json")
    args = ap.parse_args(argv)
    label = "setup" if args.setup else args.set_name
    out = Path(args.out) if args.out else Path(__file__).parent / "results" / f"memory-{label}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.setup:
        if args.notebooks:
            raise SystemExit("--setup measures postBuild's steps; give no notebooks with it")
        rows = run_setup(args.limit_mb, args.interval)
        for row in rows:
            _print(row)
        _write(out, rows, args.limit_mb, label)
        return rows
    notebooks = args.notebooks or sorted(runs)
    for name in notebooks:
        if name not in runs:
            raise SystemExit(f"unknown notebook {name!r}; valid: {sorted(runs)}")
        if args.set_name not in runs[name]:
            raise SystemExit(f"unknown parameter set {args.set_name!r} for {name}; valid: {sorted(runs[name])}")
    rows = []
    for name in notebooks:
        rows.append(run_one(name, args.set_name, args.limit_mb, args.interval))
        _print(rows[-1])
        # after every notebook: an interrupted run (the default sets take most of an hour) keeps what it measured
        _write(out, rows, args.limit_mb, label)
    return rows


if __name__ == "__main__":
    rows = main()
    sys.exit(0 if all(r["status"] == "ok" for r in rows) else 1)
