"""Command line: run a study notebook with parameters; generate, fetch or verify data.

::

    brainalign run 00_quickstart                  # the default set of runs.yml
    brainalign run 00_quickstart --set smoke      # a named set
    brainalign run 00_quickstart -p layer 4       # override one parameter
    brainalign data simulate [--seed 0]
    brainalign data verify [--seed 0]
    brainalign ledger                              # write book/ledger.md from book/_run/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from . import config

__all__ = ["main", "run_notebook", "load_runs"]


def _root() -> Path:
    root = config.repo_root()
    if root is None:
        raise RuntimeError("the notebooks live in the brainalign source checkout; run this from a clone of it")
    return root


def load_runs(root: Path | None = None) -> dict:
    """``notebooks/runs.yml``: notebook -> set name -> parameters."""
    root = root or _root()
    return yaml.safe_load((root / "notebooks" / "runs.yml").read_text())


def _parse_value(text: str):
    """A parameter value from the command line: YAML scalars and lists (``4``, ``true``, ``[1, 2]``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


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


def run_notebook(study: str, set_name: str = "default", overrides: dict | None = None,
                 out_dir: Path | None = None, kernel: str | None = None, progress: bool = True) -> Path:
    """Execute ``notebooks/<study>.ipynb`` with papermill into ``book/_run/<study>.ipynb``.

    Parameters come from ``runs.yml[study][set_name]``, then ``overrides``. The
    executed notebook is written to a temporary name and renamed, so a failed
    run never replaces the last good one.
    """
    import papermill as pm

    root = _root()
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
    if out_dir is not None:
        params.setdefault("out_dir", str(Path(out_dir).resolve()))
    out_dir = Path(out_dir) if out_dir is not None else root / "book" / "_run"
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{study}.ipynb"
    tmp = out_dir / f".{study}.running.ipynb"
    try:
        pm.execute_notebook(
            str(source), str(tmp), parameters=params,
            kernel_name=kernel, cwd=str(root / "notebooks"), progress_bar=progress,
        )
        _tidy(tmp, root, target)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _data(args) -> int:
    from .simulate import fingerprint, generate

    if args.action == "simulate":
        root = generate(seed=args.seed, force=args.force)
        print(f"simulated cohort (seed {args.seed}) at {root}")
    elif args.action == "verify":
        from .datasets import load_dataset

        ds = load_dataset("simulated", seed=args.seed)
        n = sum(ds.responses(s, r).shape[0] for s in ds.subjects for r in ds.runs)
        print(f"{ds!r}: {n} response rows; fingerprint {fingerprint(ds.root)[:16]}")
    else:  # fetch
        raise SystemExit(
            f"fetching {args.dataset!r} needs network access to OpenNeuro; see the dataset's page in the book "
            "(real datasets are not fetched by this version)"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brainalign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a study notebook with papermill")
    run.add_argument("study")
    run.add_argument("--set", default="default", dest="set_name", help="parameter set of notebooks/runs.yml")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run.add_argument("-k", "--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    run.add_argument("--out-dir", type=Path, default=None)
    data = sub.add_parser("data", help="generate, verify or fetch datasets")
    data.add_argument("action", choices=["simulate", "verify", "fetch"])
    data.add_argument("dataset", nargs="?", default="simulated")
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--force", action="store_true")
    sub.add_parser("ledger", help="write book/ledger.md from the executed notebooks' results")
    args = parser.parse_args(argv)

    if args.command == "run":
        overrides = {name: _parse_value(value) for name, value in args.parameter}
        path = run_notebook(args.study, args.set_name, overrides, out_dir=args.out_dir, kernel=args.kernel)
        result = path.with_suffix(".json")
        if result.exists():
            summary = json.loads(result.read_text())
            failed = [c["claim"] for c in summary["checks"] if not c["passed"]]
            print(f"{path}: {len(summary['checks']) - len(failed)}/{len(summary['checks'])} checks passed")
            for claim in failed:
                print(f"  FAILED: {claim}")
        return 0
    if args.command == "data":
        return _data(args)
    if args.command == "ledger":
        from .results import ledger_markdown

        root = _root()
        (root / "book" / "ledger.md").write_text(ledger_markdown(root / "book" / "_run"))
        print(f"wrote {root / 'book' / 'ledger.md'}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
