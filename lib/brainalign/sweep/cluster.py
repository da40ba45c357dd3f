"""Where a sweep runs: a ``LocalCluster`` of worker processes, or a dask-jobqueue cluster of a batch system."""

from __future__ import annotations

import os

#: where a sweep can run: ``local`` (a LocalCluster) or a batch system of dask-jobqueue
CLUSTERS = ("local", "slurm", "pbs", "sge", "lsf")

#: how each batch system asks for GPUs (one line of the job script's header); sites differ, see ``make_cluster``
_GPU_DIRECTIVE = {"slurm": "--gres=gpu:{n}", "pbs": "-l ngpus={n}", "sge": "-l gpu={n}", "lsf": '-gpu "num={n}"'}


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
