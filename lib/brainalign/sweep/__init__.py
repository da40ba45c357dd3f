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

Modules: ``cells`` (the grid, a cell's key, one cell on a worker), ``cluster``
(where it runs), ``run`` (the sweep), ``report`` and ``command`` (the command line).
"""

from .cells import Cell, execute_notebook, expand_grid, library_digest, parse_grid, plan_cells, run_cell
from .cluster import CLUSTERS, make_cluster
from .command import add_commands, main
from .report import HEADLINES, Headline, sweep_report, write_report
from .run import SweepResult, run_sweep, sweep_folder

__all__ = [
    "CLUSTERS", "HEADLINES", "Headline", "Cell", "SweepResult", "parse_grid", "expand_grid", "library_digest",
    "plan_cells", "make_cluster", "execute_notebook", "run_cell", "run_sweep", "sweep_folder", "sweep_report",
    "write_report", "add_commands", "main",
]
