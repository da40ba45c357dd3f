"""``brainalign sweep`` and ``brainalign sweep-report``: the command line of sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .cells import parse_grid, plan_cells
from .cluster import CLUSTERS, make_cluster
from .report import write_report
from .run import run_sweep, sweep_folder


def add_commands(sub) -> None:
    """Add ``sweep`` and ``sweep-report`` to the subcommands ``sub`` of ``brainalign``'s parser."""
    sw = sub.add_parser(
        "sweep", help="run a grid of notebook runs on Dask (local processes, SLURM/PBS/SGE/LSF, or a scheduler)",
        description="The cartesian product of the grids over the notebook's parameters; each cell is executed "
                    "as `brainalign run` does, into book/_sweeps/NAME/<cell id>/. Finished cells are skipped.")
    sw.add_argument("notebook")
    sw.add_argument("--set", default="default", dest="set_name", help="parameter set of notebooks/runs.yml")
    sw.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2,...", help="a parameter's values")
    sw.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="a parameter fixed for every cell")
    sw.add_argument("--name", default=None, help="the sweep's folder (default NOTEBOOK-SET)")
    sw.add_argument("--out-dir", type=Path, default=None, help="default book/_sweeps (shared on a cluster)")
    sw.add_argument("--cluster", default="local", choices=CLUSTERS)
    sw.add_argument("--scheduler", default=None, metavar="ADDRESS", help="use a running Dask scheduler")
    sw.add_argument("--workers", type=int, default=None, help="local: worker processes (default: one per core)")
    sw.add_argument("--jobs", type=int, default=1, help="batch systems: jobs to submit (one worker each)")
    sw.add_argument("--cores", type=int, default=None, help="batch systems: cores per job")
    sw.add_argument("--memory", default=None, help="batch systems: memory per job, e.g. 16GB")
    sw.add_argument("--gpus", type=int, default=0, help="batch systems: GPUs per job")
    sw.add_argument("--walltime", default=None, help="batch systems: time limit per job, e.g. 02:00:00")
    sw.add_argument("--queue", default=None, help="batch systems: queue (SLURM partition)")
    sw.add_argument("--retries", type=int, default=2, help="tries of a cell whose worker died (default 2)")
    sw.add_argument("--only", default=None, metavar="ID,ID", help="run only these cells (a summary's rerun command)")
    sw.add_argument("--dry-run", action="store_true", help="list the cells (and print the job script); run nothing")
    rep = sub.add_parser("sweep-report", help="gather a sweep's cells into a table and a figure")
    rep.add_argument("name")
    rep.add_argument("--out-dir", type=Path, default=None, help="where the sweep is (default book/_sweeps)")


def main(args) -> int:
    """Run ``brainalign sweep`` or ``brainalign sweep-report`` from parsed arguments."""
    if args.command == "sweep-report":
        table, figure = write_report(sweep_folder(args.name, args.out_dir))
        print(table.read_text())
        print(f"wrote {table}" + (f" and {figure}" if figure else ""))
        return 0
    try:
        return _sweep(args)
    except ValueError as err:  # a bad grid, name or value: say so, no traceback
        raise SystemExit(f"error: {err}") from None


def _sweep(args) -> int:
    grid = parse_grid(args.grid)
    overrides = {}
    for pname, value in args.parameter:
        try:
            overrides[pname] = yaml.safe_load(value)
        except yaml.YAMLError:
            overrides[pname] = value
    options = {k: v for k, v in dict(n_workers=args.workers, cores=args.cores, memory=args.memory,
                                     walltime=args.walltime, queue=args.queue).items() if v is not None}
    if args.gpus:
        options["gpus"] = args.gpus
    if args.dry_run:
        cells = plan_cells(args.notebook, args.set_name, grid, overrides)
        for cell in cells:
            print(cell.id, json.dumps(cell.overrides, default=str))
        if args.cluster != "local":
            options.pop("n_workers", None)
            with make_cluster(args.cluster, retries=args.retries, **options) as made:
                print(made.job_script())
        return 0
    only = args.only.split(",") if args.only else None
    result = run_sweep(args.notebook, args.set_name, grid, overrides, name=args.name, out_dir=args.out_dir,
                       scheduler=args.scheduler, cluster=args.cluster, jobs=args.jobs, retries=args.retries,
                       only=only, **options)
    print(result.summary(_command(args)))
    return 1 if result.failed else 0


def _command(args) -> str:
    """The command line of a sweep (without ``--only``), rebuilt from its arguments."""
    import shlex

    words = ["brainalign", "sweep", args.notebook, "--set", args.set_name]
    for spec in args.grid:
        words += ["--grid", spec]
    for pname, value in args.parameter:
        words += ["-p", pname, value]
    words += ["--name", args.name] if args.name else []
    words += ["--out-dir", str(args.out_dir)] if args.out_dir else []
    words += ["--scheduler", args.scheduler] if args.scheduler else ["--cluster", args.cluster]
    for flag in ("workers", "jobs", "cores", "memory", "gpus", "walltime", "queue", "retries"):
        value = getattr(args, flag)
        if value is not None and value != {"jobs": 1, "gpus": 0, "retries": 2}.get(flag):
            words += [f"--{flag}", str(value)]
    return shlex.join(words)
