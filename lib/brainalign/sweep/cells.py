"""The cells of a sweep: the grid's points, each validated and keyed, and how one cell runs on a worker."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..cache import atomic_write, digest, file_digest
from ..runner import checkout, load_runs, run_notebook

#: parameters the sweep sets itself: a cell's results folder
_RESERVED = ("out_dir",)

#: environment variables that size the thread pools of BLAS, OpenMP and torch in a cell's kernel
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")

#: the record of a finished cell, in its folder
CELL_FILE = "cell.json"


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
    package = Path(__file__).resolve().parent.parent
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
    atomic_write(attempt / CELL_FILE, lambda tmp: tmp.write_text(text))
    return {**record, "attempt": str(attempt)}
