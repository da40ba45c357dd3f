"""Grids of notebook runs on Dask: a laptop's processes, an HPC queue, or a running scheduler.

A sweep is the cartesian product of a few parameter grids over one notebook
(``brainalign sweep 00_quickstart --set smoke --grid layer=0,3,6``). Each point
of the grid is a *cell*: the notebook executed with papermill exactly as
``brainalign run`` executes it, into its own folder of
``book/_sweeps/<sweep name>/``.

The engine is Dask's ``distributed``: a ``LocalCluster`` of worker processes
(the default), a dask-jobqueue cluster (SLURM, PBS, SGE, LSF) whose jobs start
the workers, or any running scheduler. Dask places the cells, retries a cell
whose worker died (killed, out of memory, preempted) on another worker up to
``retries`` times, and serves the dashboard.

What a sweep guarantees:

- **Validated first.** Every cell's parameters are checked before anything is
  submitted; a bad name in any cell stops the sweep, naming it.
- **Content-addressed and resumable.** A cell's folder is named by a hash of
  its parameters (:attr:`Cell.id`); its ``cell.json`` records a key that hashes
  the parameters, the notebook and the library's source (:func:`library_digest`:
  the package version stays put while the code changes). A cell whose folder
  holds a finished result under the same key is skipped, so a sweep that was
  interrupted resumes where it stopped.
- **One result per cell.** Each attempt writes into its own folder under
  ``.attempts/``; only the process that runs the sweep moves a finished attempt
  into place, once per cell. The kernel of a killed worker may run on and
  write, but only into its abandoned attempt folder.
- **Failures are recorded, not fatal.** A cell whose notebook raises is moved
  into place with status ``failed`` and its error; the sweep goes on, and its
  summary gives the command that reruns just the failed cells.

The data home and the feature cache (``brainalign.cache``) are what the
workers share, on a shared filesystem: the cache's writes are safe when
several workers write one key at once, so a sweep can warm an expensive
study's cache in parallel.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .cache import atomic_write, digest, file_digest
from .runner import checkout, load_runs, run_notebook

if TYPE_CHECKING:  # distributed is imported when a sweep runs, not when the CLI starts
    import pandas as pd
    from distributed import Client

__all__ = [
    "CLUSTERS", "HEADLINES", "Headline", "Cell", "SweepResult", "parse_grid", "expand_grid", "library_digest",
    "plan_cells", "make_cluster", "execute_notebook", "run_cell", "run_sweep", "sweep_folder", "sweep_report",
    "write_report", "add_commands", "main",
]

#: where a sweep can run: ``local`` (a LocalCluster) or a batch system of dask-jobqueue
CLUSTERS = ("local", "slurm", "pbs", "sge", "lsf")

#: how each batch system asks for GPUs (one line of the job script's header); sites differ, see ``make_cluster``
_GPU_DIRECTIVE = {"slurm": "--gres=gpu:{n}", "pbs": "-l ngpus={n}", "sge": "-l gpu={n}", "lsf": '-gpu "num={n}"'}

#: parameters the sweep sets itself: a cell's results folder
_RESERVED = ("out_dir",)

#: environment variables that size the thread pools of BLAS, OpenMP and torch in a cell's kernel
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")

_CELL_FILE = "cell.json"
_ATTEMPTS = ".attempts"


@dataclass(frozen=True)
class Headline:
    """A notebook's headline measure, read from one table of its results json.

    Parameters
    ----------
    table : str
        Name of the table (``Report.table``) in the results json.
    value : str
        Column plotted (e.g. held-out Pearson r).
    x : str
        Column on the figure's x axis (e.g. ``"layer"``); each cell is one line.
    where : mapping
        Rows kept: column -> value (e.g. ``{"roi": "language"}``).
    label : str
        Axis label of ``value``.
    """

    table: str
    value: str
    x: str
    where: Mapping = field(default_factory=dict)
    label: str = ""


#: notebook -> its headline measure; a notebook without one is summarised by its checks only
HEADLINES = {
    "00_quickstart": Headline("alignment_by_roi_layer", "r", "layer", {"roi": "language"},
                              "held-out r, language ROI (mean of subjects)"),
}


@dataclass(frozen=True)
class Cell:
    """One point of a sweep's grid.

    Attributes
    ----------
    id : str
        16 hex digits: the hash of ``params``, the name of the cell's folder.
    params : dict
        Every parameter the notebook runs with: its set in ``runs.yml``, then the
        ``-p`` overrides, then the grid's values.
    overrides : dict
        What the cell passes on top of the set (``-p`` overrides and grid values).
    key : str
        Hash of ``params``, the notebook's file and the library's source: a
        finished cell is reused only under the same key.
    """

    id: str
    params: dict
    overrides: dict
    key: str


@dataclass
class SweepResult:
    """What a sweep did.

    Attributes
    ----------
    name : str
        The sweep's name.
    folder : Path
        ``<out_dir>/<name>``: one folder per cell, named by :attr:`Cell.id`.
    cells : list of Cell
        Every cell of the grid.
    done, skipped : list of str
        Ids of the cells run now, and of those already finished under the same key.
    failed : dict
        Id -> error, for cells whose notebook raised or whose workers kept dying.
    seconds : float
        Wall-clock time of the sweep (s), cluster start included.
    """

    name: str
    folder: Path
    cells: list[Cell]
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self, command: str | None = None) -> str:
        """A few lines for the terminal; ``command`` (the sweep's command line) gives the rerun command."""
        lines = [f"sweep {self.name}: {len(self.cells)} cells; {len(self.done)} run, {len(self.skipped)} already done, "
                 f"{len(self.failed)} failed ({self.seconds:.0f} s); results in {self.folder}"]
        for cell_id, error in self.failed.items():
            lines.append(f"  FAILED {cell_id} {self._params(cell_id)}: {error.strip().splitlines()[-1][:300]}")
        if self.failed and command:
            lines.append(f"rerun the failed cells: {command} --only {','.join(self.failed)}")
        return "\n".join(lines)

    def _params(self, cell_id: str) -> dict:
        return next((c.overrides for c in self.cells if c.id == cell_id), {})


# -- the grid ------------------------------------------------------------------------------------------------------


def _split_top(text: str) -> list[str]:
    """Split at the commas outside brackets (``0,[1, 2],3`` -> ``0``, ``[1, 2]``, ``3``)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_grid(specs: Sequence[str]) -> dict[str, list]:
    """Grids from the command line: ``NAME=V1,V2,...``, each value read as YAML (``4``, ``true``, ``[0, 3]``).

    Parameters
    ----------
    specs : sequence of str
        One ``NAME=V1,V2,...`` per grid.

    Returns
    -------
    grid : dict
        Parameter name -> list of values, in the order given.
    """
    grid: dict[str, list] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not values.strip():
            raise ValueError(f"bad grid {spec!r}; expected NAME=V1,V2,... (e.g. layer=0,3,6)")
        if name in grid:
            raise ValueError(f"grid {name!r} given twice; give all its values in one --grid {name}=V1,V2,...")
        parsed = []
        for text in _split_top(values):
            try:
                parsed.append(yaml.safe_load(text))
            except yaml.YAMLError:
                parsed.append(text)
        grid[name] = parsed
    return grid


def expand_grid(grid: Mapping[str, Sequence]) -> list[dict]:
    """The cartesian product of ``grid``: one dict per point, the last name varying fastest.

    Parameters
    ----------
    grid : mapping
        Parameter name -> non-empty sequence of values.

    Returns
    -------
    points : list of dict
        ``prod(len(values))`` dicts (one empty dict for an empty grid).
    """
    for name, values in grid.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
            raise ValueError(f"grid {name!r} must be a non-empty list of values, got {values!r}")
    names = list(grid)
    return [dict(zip(names, point)) for point in itertools.product(*(grid[n] for n in names))]


def library_digest() -> str:
    """A hash of the library's source: its ``.py``, ``.json`` and ``.txt`` files (what ``make run`` watches)."""
    package = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".json", ".txt") and p.is_file()):
        h.update(str(path.relative_to(package)).encode())
        h.update(bytes.fromhex(file_digest(path)))
    return h.hexdigest()


def plan_cells(notebook: str, set_name: str = "default", grid: Mapping[str, Sequence] | None = None,
               overrides: Mapping | None = None,
               validate: Callable[[str, dict], None] | None = None) -> list[Cell]:
    """The cells of a sweep, every one validated before any is run.

    Parameters
    ----------
    notebook : str
        A notebook of ``notebooks/runs.yml`` (e.g. ``"00_quickstart"``).
    set_name : str
        Its parameter set.
    grid : mapping, optional
        Parameter name -> values; the cells are their cartesian product.
    overrides : mapping, optional
        Parameters fixed for every cell (``-p NAME VALUE``).
    validate : callable, optional
        ``validate(notebook, params)`` raises ``ValueError`` for a bad value;
        called for every cell after the names are checked against the
        notebook's ``parameters`` cell.

    Returns
    -------
    cells : list of Cell
        In grid order, duplicates (equal parameters) removed.
    """
    import papermill as pm

    grid, overrides = dict(grid or {}), dict(overrides or {})
    runs = load_runs(checkout())
    if notebook not in runs:
        raise ValueError(f"unknown notebook {notebook!r}; valid: {sorted(runs)}")
    if set_name not in runs[notebook]:
        raise ValueError(f"unknown parameter set {set_name!r} for {notebook}; valid: {sorted(runs[notebook])}")
    both = sorted(set(grid) & set(overrides))
    if both:
        raise ValueError(f"parameter(s) {both} given both as a grid and with -p; give each once")
    reserved = sorted(set(_RESERVED) & (set(grid) | set(overrides)))
    if reserved:
        raise ValueError(f"parameter(s) {reserved} are set by the sweep (each cell writes into its own folder)")
    source = checkout() / "notebooks" / f"{notebook}.ipynb"
    known = set(pm.inspect_notebook(str(source)))
    notebook_digest = file_digest(source)
    library = library_digest()
    cells: dict[str, Cell] = {}
    for point in expand_grid(grid):
        cell_overrides = {**overrides, **point}
        params = {**(runs[notebook][set_name] or {}), **cell_overrides}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} for {notebook} in the cell {point}; "
                             f"valid parameters: {sorted(known)}")
        if validate is not None:
            validate(notebook, params)
        cell_id = digest({"notebook": notebook, "params": params})[:16]
        key = digest({"params": params, "notebook": notebook_digest, "library": library})
        cells.setdefault(cell_id, Cell(cell_id, params, cell_overrides, key))
    return list(cells.values())


# -- where it runs ---------------------------------------------------------------------------------------------------


def make_cluster(kind: str = "local", *, n_workers: int | None = None, cores: int | None = None,
                 memory: str | None = None, gpus: int = 0, walltime: str | None = None,
                 queue: str | None = None, retries: int = 2, **options):
    """A Dask cluster for a sweep, not yet scaled when it is a batch system's.

    Parameters
    ----------
    kind : str in {"local", "slurm", "pbs", "sge", "lsf"}
        ``local``: a ``LocalCluster`` of worker processes on this machine, one
        cell at a time each. The others: a dask-jobqueue cluster whose jobs
        each start one worker running one cell at a time on ``cores`` cores;
        scale it with ``cluster.scale(jobs=n)``.
    n_workers : int, optional
        ``local`` only: worker processes (default: one per core).
    cores : int, optional
        Batch systems: cores per job (default 1); a cell's BLAS and torch use them all.
    memory : str, optional
        Batch systems: memory per job, e.g. ``"16GB"`` (default ``"4GB"``).
    gpus : int
        Batch systems: GPUs per job, asked for with one header line
        (SLURM ``--gres=gpu:N``, PBS ``-l ngpus=N``, SGE ``-l gpu=N``, LSF
        ``-gpu "num=N"``); sites that spell it otherwise pass
        ``job_extra_directives`` themselves.
    walltime : str, optional
        Batch systems: a job's time limit, e.g. ``"02:00:00"``.
    queue : str, optional
        Batch systems: the queue (SLURM: partition).
    retries : int
        How many times a cell whose worker died is given to another worker
        (the scheduler's ``allowed-failures``).
    **options
        Passed on to ``LocalCluster`` or the dask-jobqueue class.

    Returns
    -------
    cluster : distributed.LocalCluster or dask_jobqueue.JobQueueCluster
    """
    import dask

    if kind not in CLUSTERS:
        raise ValueError(f"unknown cluster {kind!r}; valid: {list(CLUSTERS)}")
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if gpus < 0:
        raise ValueError(f"gpus must be >= 0, got {gpus}")
    batch_only = {k: v for k, v in dict(cores=cores, memory=memory, gpus=gpus or None, walltime=walltime,
                                        queue=queue).items() if v is not None}
    if kind == "local" and batch_only:
        raise ValueError(f"{sorted(batch_only)} are for a batch system (slurm, pbs, sge, lsf), not the local cluster")
    with dask.config.set({"distributed.scheduler.allowed-failures": retries}):
        if kind == "local":
            from distributed import LocalCluster

            n = n_workers or os.cpu_count() or 1
            if n < 1:
                raise ValueError(f"n_workers must be >= 1, got {n}")
            return LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                dashboard_address=options.pop("dashboard_address", ":0"), **options)
        dask_jobqueue = _import_jobqueue()
        if n_workers is not None:
            raise ValueError("n_workers is for the local cluster; on a batch system give jobs (one worker each)")
        cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster, "sge": dask_jobqueue.SGECluster,
               "lsf": dask_jobqueue.LSFCluster}[kind]
        extra = list(options.pop("job_extra_directives", []))
        if gpus:
            extra.append(_GPU_DIRECTIVE[kind].format(n=gpus))
        worker_args = list(options.pop("worker_extra_args", [])) + ["--resources", "cell=1"]
        options.setdefault("scheduler_options", {"dashboard_address": ":0"})
        return cls(cores=cores or 1, processes=1, memory=memory or "4GB", walltime=walltime, queue=queue,
                   job_extra_directives=extra, worker_extra_args=worker_args, **options)


def _import_jobqueue():
    """``dask_jobqueue``, keeping the Ctrl-C handler: importing it makes Ctrl-C exit the process at once."""
    import signal
    import threading

    before = signal.getsignal(signal.SIGINT)
    import dask_jobqueue

    if threading.current_thread() is threading.main_thread() and before is not None:
        signal.signal(signal.SIGINT, before)
    return dask_jobqueue


# -- one cell ---------------------------------------------------------------------------------------------------------


def execute_notebook(notebook: str, set_name: str, overrides: Mapping, out_dir: Path) -> None:
    """Execute one cell as ``brainalign run`` does: ``<out_dir>/<notebook>.ipynb`` and its results json.

    The default executor of :func:`run_sweep`; another callable with this
    signature can be given in its place (a test's, or a site's own launcher).
    """
    run_notebook(notebook, set_name, dict(overrides), out_dir=out_dir, progress=False)


def run_cell(cell: Cell, notebook: str, set_name: str, attempts: str | os.PathLike, threads: int | None = None,
             execute: Callable[[str, str, Mapping, Path], None] = execute_notebook) -> dict:
    """Run one cell into a fresh attempt folder (on a worker); the sweep moves it into place.

    Parameters
    ----------
    cell : Cell
    notebook, set_name : str
    attempts : path
        Where this attempt's folder ``<cell.id>-<random>`` is made.
    threads : int, optional
        Threads for BLAS, OpenMP and torch in the cell's kernel (set through
        the environment the kernel inherits). None: the machine's cores
        divided by the worker's Dask threads.
    execute : callable
        ``execute(notebook, set_name, overrides, out_dir)``; an exception it
        raises is recorded as the cell's error.

    Returns
    -------
    record : dict
        What ``cell.json`` holds (status ``done`` or ``failed``, error, seconds,
        worker, outputs), plus ``attempt``: the attempt's folder.
    """
    if threads is None:
        try:
            from distributed import get_worker

            per_worker = get_worker().state.nthreads
        except (ImportError, ValueError, AttributeError):
            per_worker = 1
        threads = max(1, (os.cpu_count() or 1) // per_worker)
    os.environ.update({name: str(threads) for name in _THREAD_VARIABLES})
    attempt = Path(attempts) / f"{cell.id}-{uuid.uuid4().hex[:8]}"
    attempt.mkdir(parents=True)
    start = time.time()
    try:
        execute(notebook, set_name, cell.overrides, attempt)
        status, error = "done", None
    except Exception as err:  # the cell's failure is its result: recorded, and the sweep goes on
        status, error = "failed", f"{type(err).__name__}: {err}"[-4000:]
    if not attempt.is_dir():  # the sweep gave up on this attempt (interrupted) and removed its folder
        raise RuntimeError(f"attempt {attempt.name} was abandoned by its sweep")
    record = {
        "id": cell.id, "key": cell.key, "notebook": notebook, "set": set_name, "params": cell.params,
        "overrides": cell.overrides, "status": status, "error": error, "seconds": round(time.time() - start, 2),
        "threads": threads, "worker": f"{socket.gethostname()}:{os.getpid()}", "attempt": attempt.name,
        "outputs": sorted(p.name for p in attempt.iterdir() if p.is_file() and not p.name.startswith(".")),
    }
    text = json.dumps(record, indent=1, default=str)
    atomic_write(attempt / _CELL_FILE, lambda tmp: tmp.write_text(text))
    return {**record, "attempt": str(attempt)}


def _finished(folder: Path, cell: Cell) -> bool:
    """Whether ``folder`` holds this cell's finished result under the same key."""
    try:
        record = json.loads((folder / _CELL_FILE).read_text())
    except (OSError, ValueError):
        return False
    return (record.get("status") == "done" and record.get("key") == cell.key
            and all((folder / name).exists() for name in record.get("outputs", [])))


def _put_in_place(attempt: Path, dest: Path, trash: Path) -> None:
    """Move a finished attempt to ``dest``; a previous result there (stale or failed) is moved aside first."""
    if dest.exists():
        trash.mkdir(parents=True, exist_ok=True)
        os.rename(dest, trash / f"{dest.name}-{uuid.uuid4().hex[:8]}")
    os.rename(attempt, dest)


# -- the sweep --------------------------------------------------------------------------------------------------------


def sweep_folder(name: str, out_dir: str | os.PathLike | None = None) -> Path:
    """``<out_dir>/<name>``; ``out_dir`` defaults to ``book/_sweeps`` in the checkout."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"bad sweep name {name!r}; use letters, digits, '-' and '_'")
    base = Path(out_dir) if out_dir is not None else checkout() / "book" / "_sweeps"
    return base / name


def _write_manifest(folder: Path, notebook: str, set_name: str, grid: Mapping, cells: list[Cell]) -> None:
    """``sweep.json``: the grid and every cell's parameters (merged with the cells of earlier sweeps of this name)."""
    path = folder / "sweep.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        manifest = {"cells": {}}
    manifest.update(notebook=notebook, set=set_name, grid={k: list(v) for k, v in grid.items()})
    manifest["cells"].update({c.id: c.overrides for c in cells})
    text = json.dumps(manifest, indent=1, default=str)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def run_sweep(notebook: str, set_name: str = "default", grid: Mapping[str, Sequence] | None = None,
              overrides: Mapping | None = None, *, name: str | None = None, out_dir: str | os.PathLike | None = None,
              client: Client | None = None, scheduler: str | None = None, cluster: str = "local",
              jobs: int = 1, retries: int = 2, only: Sequence[str] | None = None, threads: int | None = None,
              execute: Callable[[str, str, Mapping, Path], None] = execute_notebook,
              validate: Callable[[str, dict], None] | None = None, progress: bool = True,
              **cluster_options) -> SweepResult:
    """Run the grid of cells of a notebook on Dask; finished cells are skipped.

    Parameters
    ----------
    notebook, set_name, grid, overrides, validate
        As :func:`plan_cells`.
    name : str, optional
        The sweep's folder under ``out_dir`` (default ``<notebook>-<set_name>``).
    out_dir : path, optional
        Default ``book/_sweeps`` in the checkout; on a cluster, a shared filesystem.
    client : distributed.Client, optional
        Run on this client's cluster (it is left running).
    scheduler : str, optional
        The address of a running scheduler (``tcp://host:8786``).
    cluster : str in {"local", "slurm", "pbs", "sge", "lsf"}
        Otherwise, the cluster started for this sweep and closed after it.
    jobs : int
        Batch systems: jobs (workers) to ask for.
    retries : int
        A cell whose worker dies is given to another worker up to this many
        times (for the clusters started here; a running scheduler keeps its own
        ``allowed-failures``).
    only : sequence of str, optional
        Run only these cell ids (the rerun command of a summary).
    threads : int, optional
        BLAS / torch threads of each cell (default: a local cluster's cores
        shared among its workers; elsewhere a worker's cores among its Dask
        threads).
    execute : callable
        ``execute(notebook, set_name, overrides, out_dir)`` (default: papermill,
        :func:`execute_notebook`).
    progress : bool
        Show a progress bar of cells done / failed / running.
    **cluster_options
        To :func:`make_cluster` (``n_workers``, ``cores``, ``memory``, ``gpus``, ``walltime``, ``queue``).

    Returns
    -------
    SweepResult
    """
    start = time.time()
    grid = dict(grid or {})
    cells = plan_cells(notebook, set_name, grid, overrides, validate)
    if only is not None:
        ids = [c.id for c in cells]
        unknown = sorted(set(only) - set(ids))
        if unknown:
            raise ValueError(f"unknown cell id(s) {unknown} in this grid; valid: {ids}")
        cells = [c for c in cells if c.id in set(only)]
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    folder = sweep_folder(name or f"{notebook}-{set_name}", out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    _write_manifest(folder, notebook, set_name, grid, cells)
    result = SweepResult(folder.name, folder, cells)
    todo = []
    for cell in cells:
        (result.skipped if _finished(folder / cell.id, cell) else todo).append(cell)
    result.skipped = [c.id for c in result.skipped]
    if todo:
        attempts = folder / _ATTEMPTS / uuid.uuid4().hex[:12]
        try:
            _submit(result, todo, notebook, set_name, attempts, client, scheduler, cluster, jobs, retries,
                    threads, execute, progress, cluster_options)
        finally:
            shutil.rmtree(attempts, ignore_errors=True)  # abandoned attempts; an orphaned kernel may still write there
            try:
                (folder / _ATTEMPTS).rmdir()
            except OSError:
                pass
    result.seconds = round(time.time() - start, 1)
    return result


def _submit(result: SweepResult, todo: list[Cell], notebook: str, set_name: str, attempts: Path,
            client: Client | None, scheduler: str | None, cluster: str, jobs: int, retries: int,
            threads: int | None, execute: Callable, progress: bool, cluster_options: dict) -> None:
    """Submit ``todo`` and gather the attempts as they finish; the one place that moves results into place."""
    from contextlib import ExitStack

    from distributed import Client, as_completed
    from tqdm.auto import tqdm

    with ExitStack() as stack:
        resources = None
        if client is None and scheduler is not None:
            client = stack.enter_context(Client(scheduler))
        elif client is None:
            if cluster == "local":
                cluster_options.setdefault("n_workers", min(len(todo), os.cpu_count() or 1))
                if threads is None:
                    threads = max(1, (os.cpu_count() or 1) // cluster_options["n_workers"])
            made = stack.enter_context(make_cluster(cluster, retries=retries, **cluster_options))
            if cluster != "local":
                made.scale(jobs=jobs)
                resources = {"cell": 1}
            client = stack.enter_context(Client(made))
        print(f"sweep {result.name}: {len(todo)} cells to run; dashboard: {client.dashboard_link}", flush=True)
        futures = {
            client.submit(run_cell, cell, notebook, set_name, str(attempts), threads, execute, pure=False,
                          key=f"cell-{cell.id}-{uuid.uuid4().hex[:6]}", resources=resources): cell
            for cell in todo
        }
        mine = {f.key for f in futures}
        bar = tqdm(total=len(todo), unit="cell", desc=result.name, disable=not progress)
        trash = attempts / "replaced"
        try:
            for future in as_completed(futures):
                cell = futures[future]
                try:
                    record = future.result()
                except Exception as err:  # KilledWorker: the cell's workers kept dying
                    error = f"{type(err).__name__}: {err}"
                    if type(err).__name__ == "KilledWorker":
                        error += " (its worker died on every try: killed, out of memory or preempted)"
                    failed = attempts / f"{cell.id}-lost"
                    failed.mkdir(parents=True, exist_ok=True)
                    record = {"id": cell.id, "key": cell.key, "notebook": notebook, "set": set_name,
                              "params": cell.params, "overrides": cell.overrides, "status": "failed", "error": error,
                              "outputs": []}
                    text = json.dumps(record, indent=1, default=str)
                    atomic_write(failed / _CELL_FILE, lambda tmp, t=text: tmp.write_text(t))
                    record["attempt"] = str(failed)
                if cell.id not in result.done and cell.id not in result.failed:  # one result per cell, ever
                    _put_in_place(Path(record["attempt"]), result.folder / cell.id, trash)
                    if record["status"] == "done":
                        result.done.append(cell.id)
                    else:
                        result.failed[cell.id] = record["error"] or "failed"
                bar.update(1)
                running = sum(k in mine for keys in client.processing().values() for k in keys)
                bar.set_postfix(done=len(result.done), failed=len(result.failed), running=running)
        finally:
            bar.close()
            for future in futures:
                future.cancel()


# -- the report -------------------------------------------------------------------------------------------------------


def sweep_report(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gather the cells of a sweep folder into one table, and the headline measure of each cell.

    Parameters
    ----------
    folder : path
        A sweep's folder (:func:`sweep_folder`).

    Returns
    -------
    cells : DataFrame
        One row per cell: ``cell``, ``status``, the parameters that vary across
        the cells, ``seconds``, ``checks`` (passed / total), ``failed_checks``
        (their claims), ``headline`` (the peak of the headline measure) and
        ``error``.
    headline : DataFrame
        Long table of the headline measure: ``cell``, the varying parameters,
        the ``x`` column and ``value`` (empty when the notebook has none).
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no sweep at {folder}")
    records = []
    for path in sorted(folder.glob(f"*/{_CELL_FILE}")):
        if not path.parent.name.startswith("."):
            records.append(json.loads(path.read_text()))
    if not records:
        raise FileNotFoundError(f"the sweep at {folder} has no finished cell yet")
    names = sorted({k for r in records for k in r["overrides"]})
    varying = [n for n in names if len({json.dumps(r["params"].get(n), default=str) for r in records}) > 1]
    rows, curves = [], []
    for r in records:
        row = {"cell": r["id"], "status": r["status"], **{n: r["params"].get(n) for n in varying},
               "seconds": r.get("seconds"), "checks": "", "failed_checks": "", "headline": None,
               "error": (r.get("error") or "").strip().splitlines()[-1][:200] if r.get("error") else ""}
        results = folder / r["id"] / f"{r['notebook']}.json"
        if r["status"] == "done" and results.exists():
            res = json.loads(results.read_text())
            evaluated = [c for c in res.get("checks", []) if c.get("passed") is not None]
            row["checks"] = f"{sum(c['passed'] for c in evaluated)}/{len(evaluated)}"
            row["failed_checks"] = "; ".join(c["claim"] for c in evaluated if not c["passed"])
            spec = HEADLINES.get(r["notebook"])
            if spec is not None and spec.table in res.get("tables", {}):
                table = pd.DataFrame(res["tables"][spec.table])
                for col, value in spec.where.items():
                    table = table[table[col] == value]
                curve = table.groupby(spec.x)[spec.value].mean()
                if len(curve):
                    row["headline"] = round(float(curve.max()), 4)
                for x, value in curve.items():
                    curves.append({"cell": r["id"], **{n: r["params"].get(n) for n in varying}, spec.x: x,
                                   "value": float(value)})
        rows.append(row)
    return pd.DataFrame(rows), pd.DataFrame(curves)


def write_report(folder: str | os.PathLike) -> tuple[Path, Path | None]:
    """Write ``report.md`` (the cells' table) and ``headline.png`` (the headline across the grid) into ``folder``.

    Returns
    -------
    table, figure : Path
        The two files; ``figure`` is None when the notebook has no headline
        measure or no cell finished.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    cells, curves = sweep_report(folder)
    manifest = json.loads((folder / "sweep.json").read_text()) if (folder / "sweep.json").exists() else {}
    notebook = manifest.get("notebook", "")
    done = int((cells.status == "done").sum())
    text = "\n".join([
        f"# Sweep {folder.name}", "",
        f"Notebook `{notebook}`, set `{manifest.get('set', '')}`, grid `{json.dumps(manifest.get('grid', {}))}`: "
        f"{done} of {len(cells)} cells done.", "",
        cells.fillna("").to_markdown(index=False), "",
    ])
    table = atomic_write(folder / "report.md", lambda tmp: tmp.write_text(text))
    if curves.empty:
        return table, None
    spec = HEADLINES[notebook]
    labels = [c for c in curves.columns if c not in ("cell", spec.x, "value")]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for cell_id, group in curves.groupby("cell", sort=False):
        first = group.iloc[0]
        label = ", ".join(f"{n}={first[n]}" for n in labels) or cell_id
        ax.plot(group[spec.x], group["value"], marker="o", label=label)
    ax.set(xlabel=spec.x, ylabel=spec.label or spec.value, title=f"{notebook}: sweep {folder.name}")
    ax.legend(fontsize="small", frameon=False)
    fig.tight_layout()
    figure = atomic_write(folder / "headline.png", lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return table, figure


# -- the command line -------------------------------------------------------------------------------------------------


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
