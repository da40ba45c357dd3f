"""Running a sweep: its cells submitted to Dask, each finished attempt moved into place once, finished cells skipped."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..cache import atomic_write
from ..runner import checkout
from .cells import CELL_FILE, Cell, execute_notebook, plan_cells, run_cell
from .cluster import make_cluster

if TYPE_CHECKING:  # distributed is imported when a sweep runs, not when the CLI starts
    from distributed import Client

#: the folder, inside a sweep's, of the attempts in flight
_ATTEMPTS = ".attempts"


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


def _finished(folder: Path, cell: Cell) -> bool:
    """Whether ``folder`` holds this cell's finished result under the same key."""
    try:
        record = json.loads((folder / CELL_FILE).read_text())
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
                    atomic_write(failed / CELL_FILE, lambda tmp, t=text: tmp.write_text(t))
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
