"""Command line: run a study notebook with parameters; generate, fetch or verify data.

::

    brainalign run 00_quickstart                  # the default set of runs.yml
    brainalign run 00_quickstart --set smoke      # a named set
    brainalign run 00_quickstart -p layer 4       # override one parameter
    brainalign data simulate [simulated-movie] [--seed 0]
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


#: datasets generated here rather than fetched
GENERATED = ("simulated", "simulated-movie")


def _data(args) -> int:
    """``brainalign data simulate|verify|fetch [DATASET]``."""
    from . import fetch
    from .datasets import DATASETS

    if args.dataset not in DATASETS:
        raise SystemExit(f"unknown dataset {args.dataset!r}; valid datasets: {sorted(DATASETS)}")
    if args.dataset in GENERATED:
        from . import simulate

        if args.action == "fetch":
            raise SystemExit(f"the {args.dataset} cohort is generated, not fetched: "
                             f"`brainalign data simulate {args.dataset} [--seed 0]`")
        generate, fingerprint = ((simulate.generate, simulate.fingerprint) if args.dataset == "simulated"
                                 else (simulate.generate_movie, simulate.movie_fingerprint))
        if args.action == "simulate":
            root = generate(seed=args.seed, force=args.force)
            print(f"{args.dataset} cohort (seed {args.seed}) at {root}")
        else:  # verify
            from .datasets import load_dataset

            ds = load_dataset(args.dataset, seed=args.seed)
            n = sum(ds.responses(s, r).shape[0] for s in ds.subjects for r in ds.runs)
            print(f"{ds!r}: {n} response rows; fingerprint {fingerprint(ds.root)[:16]}")
        return 0
    if args.action == "simulate":
        raise SystemExit(f"only the simulated cohorts ({', '.join(GENERATED)}) are generated; fetch {args.dataset!r} with "
                         f"`brainalign data fetch {args.dataset}`")
    try:
        if args.action == "fetch":
            print(fetch.plan(args.dataset, args.subjects, args.runs, args.root).describe())
            if args.dry_run:
                return 0
            report = fetch.fetch(args.dataset, args.subjects, args.runs, args.root, via=args.via)
            print(report)
            return 0
        subjects = args.subjects if args.subjects is not None else _subjects_on_disk(args.dataset, args.root)
        statuses = fetch.verify(args.dataset, subjects, args.runs, args.root, rehash=args.rehash)
    except fetch.FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = {state: sum(s.state == state for s in statuses) for state in ("valid", "present", "missing", "corrupt")}
    root = fetch.dataset_root(args.dataset, args.root)
    print(f"{args.dataset} in {root}: {counts['valid']} valid (md5), {counts['present']} present (no checksum known), "
          f"{counts['missing']} missing, {counts['corrupt']} corrupt")
    bad = [s for s in statuses if s.state in ("missing", "corrupt")]
    for s in bad[:20]:
        print(f"  {s.state.upper()} {s.path}{': ' + s.detail if s.detail else ''}")
    if len(bad) > 20:
        print(f"  ... and {len(bad) - 20} more")
    if counts["missing"] or counts["corrupt"]:
        print(f"`{fetch.command(args.dataset, subjects, args.runs)}` fetches what is missing or corrupt")
        return 1
    return 0


def _subjects_on_disk(name: str, root: Path | None) -> list[str] | None:
    """Subjects with a folder on disk (what ``verify`` checks by default), or None when there are none."""
    from . import fetch

    man = fetch.file_manifest(name)
    base = fetch.dataset_root(name, root)
    found: dict[str, None] = {}
    for group in man["files"]:
        if "{subject}" in group["path"]:
            parent = group["path"].split("{subject}")[0]
            for p in sorted(base.glob(parent + "*")):
                if p.is_dir() and (p.name in man.get("subjects", {}) or (not man.get("subjects") and p.name.startswith("sub-"))):
                    found[p.name] = None
    return list(found) or None


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
    data = sub.add_parser(
        "data", help="generate, verify or fetch datasets",
        description="simulate: generate the simulated cohort. fetch: download a real dataset's files (only the "
                    "selection asked for; checked against the committed manifest; resumable). verify: report which "
                    "files are present, missing or corrupt.",
    )
    data.add_argument("action", choices=["simulate", "verify", "fetch"])
    data.add_argument("dataset", nargs="?", default="simulated",
                      help="simulated (default), simulated-movie, lebel2023, narratives or neuromod")
    data.add_argument("--seed", type=int, default=0, help="seed of a simulated cohort")
    data.add_argument("--force", action="store_true", help="regenerate a simulated cohort")
    data.add_argument("--subjects", nargs="+", default=None, help="subjects to fetch or verify (default: the manifest's)")
    data.add_argument("--runs", nargs="+", default=None, help="runs (stories, tasks, episodes) to fetch or verify")
    data.add_argument("--via", default=None, help="source: openneuro, http or datalad (default: the dataset's first)")
    data.add_argument("--root", type=Path, default=None, help="the dataset's folder (default: in the data home)")
    data.add_argument("--dry-run", action="store_true", help="show what would be fetched, download nothing")
    data.add_argument("--rehash", action="store_true", help="verify: recompute every checksum")
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
