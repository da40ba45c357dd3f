"""The study notebooks and their parameter sets: find them, and execute one with papermill.

``notebooks/runs.yml`` names each notebook's parameter sets (``default``,
``smoke``, ``paper``); :func:`run_notebook` executes a notebook in one of them,
with overrides, as ``brainalign run`` and every cell of ``brainalign sweep`` do.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import yaml

from . import config

__all__ = ["checkout", "load_runs", "run_notebook"]


def checkout() -> Path:
    """The source checkout that holds ``notebooks/`` and ``book/`` (the notebooks are not installed with the package)."""
    root = config.repo_root()
    if root is None:
        raise RuntimeError("the notebooks live in the brainalign source checkout; run this from a clone of it")
    return root


def load_runs(root: Path | None = None) -> dict:
    """``notebooks/runs.yml``: notebook -> set name -> parameters."""
    root = root or checkout()
    return yaml.safe_load((root / "notebooks" / "runs.yml").read_text())


_WIDGET = "application/vnd.jupyter.widget-view+json"


def _tidy(path: Path, root: Path, target: Path) -> None:
    """Prepare an executed notebook for the book.

    Its input and output paths are recorded relative to the checkout (no
    machine paths), and progress-bar widgets are dropped: their state is not
    saved, so they would show as empty bars.
    """
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if _WIDGET not in o.get("data", {})]
    meta = nb.metadata.get("papermill", {})
    meta["output_path"] = str(target)
    for key in ("input_path", "output_path"):
        if meta.get(key):
            p = Path(meta[key]).resolve()
            meta[key] = str(p.relative_to(root)) if p.is_relative_to(root) else p.name
    meta.pop("environment_variables", None)
    nbformat.write(nb, path)


@contextlib.contextmanager
def _environment(**values: str):
    """Set environment variables for the duration (the notebook's kernel inherits them), then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _miniature_setup(params: dict, known: dict) -> dict[str, str]:
    """Write the miniatures of the real datasets ``params`` names; the environment of a miniature run.

    The set's device becomes the CPU. Returns the environment variables to run with.
    """
    from . import miniature
    from .datasets import DATASETS

    named = {k: v for k, v in params.items() if k.endswith("dataset") and isinstance(v, str) and v in DATASETS}
    simulated = {k: v for k, v in named.items() if v.startswith("simulated")}
    if simulated or not named:
        raise ValueError(f"a miniature run stands in for real datasets, but this set names {simulated or 'none'}; "
                         f"use it with a set of real datasets (the `paper` sets: {sorted(miniature.MINIATURES)})")
    # Study 3's `paper` set also reads the study's downstream datasets (MUStARD, CMU-MOSEI) from the data home
    tasks = ["mustard", "cmu_mosei"] if params.get("downstream") == "study" else []
    miniature.prepare([*named.values(), *tasks])
    # the audio-video model's self-supervised fusion weights depend on its packaged encoders alone, not on any data:
    # the miniature's cache shares them with the data home's (minutes of training, not repeated for a dry run)
    from .tuning import PRETRAINING_STEP

    shared, link = config.cache_dir() / PRETRAINING_STEP, miniature.miniature_home() / "cache" / PRETRAINING_STEP
    if not link.is_symlink():
        shared.mkdir(parents=True, exist_ok=True)
        link.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(link, ignore_errors=True)  # weights a dry run trained for itself before
        link.symlink_to(shared, target_is_directory=True)
    if "device" in known:
        params["device"] = "cpu"
    return {"BRAINALIGN_DATA": str(miniature.miniature_home()), "BRAINALIGN_MINIATURE": "1", "BRAINALIGN_OFFLINE": "1"}


def run_notebook(study: str, set_name: str = "default", overrides: dict | None = None,
                 out_dir: Path | None = None, kernel: str | None = None, progress: bool = True,
                 miniature: bool = False) -> Path:
    """Execute ``notebooks/<study>.ipynb`` with papermill into ``book/_run/<study>.ipynb``.

    Parameters come from ``runs.yml[study][set_name]``, then ``overrides``. The
    executed notebook is written to a temporary name and renamed, so a failed
    run never replaces the last good one.

    ``miniature=True`` is a dry run of the set: each real dataset it names is
    replaced by a miniature in the real on-disk format
    (:mod:`brainalign.miniature`, written once into its own data home), each hub
    model by a tiny random model of its class, the device by the CPU; the
    results go to ``runs`` in the miniature data home unless ``out_dir`` says
    otherwise, never to the book.
    """
    import papermill as pm

    root = checkout()
    runs = load_runs(root)
    if study not in runs:
        raise ValueError(f"unknown study {study!r}; valid: {sorted(runs)}")
    if set_name not in runs[study]:
        raise ValueError(f"unknown parameter set {set_name!r} for {study}; valid: {sorted(runs[study])}")
    params = dict(runs[study][set_name] or {})
    params.update(overrides or {})
    source = root / "notebooks" / f"{study}.ipynb"
    known = pm.inspect_notebook(str(source))
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for {study}; valid parameters: {sorted(known)}")
    env = {}
    if miniature:
        env = _miniature_setup(params, known)
        out_dir = out_dir if out_dir is not None else Path(env["BRAINALIGN_DATA"]) / "runs"
    if out_dir is not None:
        params.setdefault("out_dir", str(Path(out_dir).resolve()))
    out_dir = Path(out_dir) if out_dir is not None else root / "book" / "_run"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{study}.ipynb"
    tmp = out_dir / f".{study}.running.ipynb"
    try:
        with _environment(**env):
            pm.execute_notebook(
                str(source), str(tmp), parameters=params,
                kernel_name=kernel, cwd=str(root / "notebooks"), progress_bar=progress,
            )
        _tidy(tmp, root, target)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
