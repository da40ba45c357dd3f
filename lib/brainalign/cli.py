"""Command line: run a study notebook with parameters; generate, fetch or verify data.

::

    brainalign run 00_quickstart                  # the default set of runs.yml (exit 3: a validation failed)
    brainalign run 00_quickstart --set smoke      # a named set
    brainalign run 00_quickstart -p layer 4       # override one parameter
    brainalign data simulate [simulated-movie] [--seed 0]
    brainalign data prepare simulated-movie        # its frames read once by the vision encoder, cached (set-up)
    brainalign data verify [--seed 0]
    brainalign models prepare                      # convert every packaged model once (Binder's build)
    brainalign ledger                              # write book/ledger.md from book/_run/*.json
    brainalign ledger --check                      # list failed validations and unevaluated items; exit 1 if any
    brainalign encodability [--model NAME ...] [--out PATH]   # which properties each default model encodes
    brainalign colab [--check]                     # write the notebooks' Colab set-up cells
    brainalign sweep 00_quickstart --set smoke --grid layer=0,3,6   # a grid of runs on Dask
    brainalign sweep-report 00_quickstart-smoke   # the sweep's cells in one table and a figure
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from .results import failed_validations, verdict_lines
from .runner import checkout, run_notebook

__all__ = ["main", "VALIDATION_FAILED"]

#: exit status of ``brainalign run`` when the notebook ran to its end but a validation failed (an error exits 1)
VALIDATION_FAILED = 3


def _parse_value(text: str):
    """A parameter value from the command line: YAML scalars and lists (``4``, ``true``, ``[1, 2]``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


#: datasets generated here rather than fetched
GENERATED = ("simulated", "simulated-movie")


def _data(args) -> int:
    """``brainalign data simulate|verify|fetch [DATASET]``."""
    from . import fetch
    from .datasets import DATASETS

    if args.dataset not in DATASETS:
        raise SystemExit(f"unknown dataset {args.dataset!r}; valid datasets: {sorted(DATASETS)}")
    if args.action == "prepare":
        return _prepare_frames(args.dataset, args.seed, args.root)
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
            print(fetch.plan(args.dataset, args.subjects, args.runs, args.root, args.include).describe())
            if args.dry_run:
                return 0
            report = fetch.fetch(args.dataset, args.subjects, args.runs, args.root, via=args.via, include=args.include)
            print(report)
            return 0
        subjects = args.subjects if args.subjects is not None else _subjects_on_disk(args.dataset, args.root)
        statuses = fetch.verify(args.dataset, subjects, args.runs, args.root, rehash=args.rehash, include=args.include)
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
        print(f"`{fetch.command(args.dataset, subjects, args.runs, args.include)}` fetches what is missing or corrupt")
        return 1
    return 0


def _prepare_frames(name: str, seed: int, root: Path | None = None) -> int:
    """``brainalign data prepare DATASET``: every run's frames read once by EfficientNet-Lite0, into the cache.

    The frames' states are what every audio-video and vision notebook on a movie dataset computes first
    (:func:`brainalign.models.frame_states`, shared by the features, brain-tuning and the self-supervised
    control); set-up computes them so that no notebook run spends its budget on them.
    """
    from . import models
    from .config import release_memory
    from .datasets import load_dataset

    ds = load_dataset(name, **({"seed": seed} if name in GENERATED else {}), **({"root": root} if root else {}))
    if not ds.has_video:
        raise SystemExit(f"dataset {name!r} has no video: `data prepare` reads the frames of a movie dataset "
                         "(simulated-movie, or neuromod with its movies)")
    lm = models.load_model("efficientnet-lite0")
    for run in ds.runs:
        try:
            frames, _ = ds.frames(run)
        except FileNotFoundError as err:  # the runs read so far stay cached
            raise SystemExit(f"error: {err}") from None
        models.frame_states(lm, frames)
        release_memory()
    print(f"{name}: the frames of {len(ds.runs)} runs read by {lm.spec.name}, cached")
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


def _prepare_models(names: list[str] | None) -> int:
    """``brainalign models prepare [NAME ...]``: load each packaged model once, so its conversion is cached."""
    import gc
    import time

    from . import models

    packaged = [name for name, spec in models.MODELS.items() if spec.packaged]
    for name in names or packaged:
        if name not in packaged:
            raise SystemExit(f"unknown packaged model {name!r}; valid: {packaged}")
    for name in names or packaged:
        start = time.time()
        lm = models.load_model(name)
        del lm
        gc.collect()
        print(f"{name}: ready ({time.time() - start:.0f} s)")
    return 0


def _encodability(names: list[str] | None, out: Path | None) -> int:
    """``brainalign encodability [--model NAME ...] [--out PATH]``: probe each model's layers, write the table."""
    from . import encodability

    names = list(names or encodability.DEFAULT_MODELS)
    for name in names:
        try:
            encodability.check_model(name)
        except ValueError as err:
            raise SystemExit(str(err)) from None
    path = encodability.write_record(encodability.compute_record(names), out or encodability.RESOURCE)
    table = encodability.verdicts(encodability.read_table(path))
    print(table[table.model.isin(names)].round(3).to_string(index=False))
    print(f"wrote {path}")
    return 0


def _colab(check: bool) -> int:
    """``brainalign colab [--check]``: write (or check) every notebook's Colab set-up cell."""
    from . import launch

    url, branch = launch.repository(checkout())
    changed = launch.write_colab_cells(checkout(), check=check)
    if check:
        for name in changed:
            print(f"{name}: its Colab set-up cell is not the one {url} ({branch}) gives; run `brainalign colab`")
        return 1 if changed else 0
    print(f"Colab set-up cells for {url} ({branch}): {len(changed)} notebook(s) rewritten {changed}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brainalign", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a study notebook with papermill; exit 3 when it ran but a validation failed")
    run.add_argument("study")
    run.add_argument("--set", default="default", dest="set_name", help="parameter set of notebooks/runs.yml")
    run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    run.add_argument("-k", "--kernel", default=None, help="Jupyter kernel (default: the notebook's)")
    run.add_argument("--out-dir", type=Path, default=None)
    run.add_argument("--miniature", action="store_true",
                     help="dry run: real datasets replaced by miniatures in their real formats, hub models by tiny random "
                          "ones, on the CPU; results go to the data home's miniature/runs, not the book")
    data = sub.add_parser(
        "data", help="generate, verify, fetch or prepare datasets",
        description="simulate: generate the simulated cohort. fetch: download a real dataset's files (only the "
                    "selection asked for; checked against the committed manifest; resumable). verify: report which "
                    "files are present, missing or corrupt. prepare: read a movie dataset's frames once with the "
                    "vision encoder and cache their states (what its notebooks compute first).",
    )
    data.add_argument("action", choices=["simulate", "verify", "fetch", "prepare"])
    data.add_argument("dataset", nargs="?", default="simulated",
                      help="simulated (default), simulated-movie, lebel2023, narratives or neuromod")
    data.add_argument("--seed", type=int, default=0, help="seed of a simulated cohort")
    data.add_argument("--force", action="store_true", help="regenerate a simulated cohort")
    data.add_argument("--subjects", nargs="+", default=None, help="subjects to fetch or verify (default: the manifest's)")
    data.add_argument("--runs", nargs="+", default=None, help="runs (stories, tasks, episodes) to fetch or verify")
    data.add_argument("--via", default=None, help="source: openneuro, http or datalad (default: the dataset's first)")
    data.add_argument("--root", type=Path, default=None, help="the dataset's folder (default: in the data home)")
    data.add_argument("--include", nargs="+", default=(), metavar="GROUP",
                      help="optional file groups to fetch or verify too (neuromod: movies, the .mkv files, tens of GB)")
    data.add_argument("--dry-run", action="store_true", help="show what would be fetched, download nothing")
    data.add_argument("--rehash", action="store_true", help="verify: recompute every checksum")
    ledger = sub.add_parser("ledger", help="write book/ledger.md from the executed notebooks' results")
    ledger.add_argument("--check", action="store_true",
                        help="write nothing; list the failed validations and the declared items not evaluated of every executed notebook, "
                             "exit 1 if any")
    mod = sub.add_parser("models", help="prepare the packaged models",
                         description="prepare: load each packaged model once, so that its conversion (GGUF, CTranslate2) "
                                     "is cached in the data home (Binder does this when it builds the image)")
    mod.add_argument("action", choices=["prepare"])
    mod.add_argument("names", nargs="*", help="packaged models (default: all)")
    colab = sub.add_parser("colab", help="write every notebook's Colab set-up cell from book/_config.yml's repository")
    colab.add_argument("--check", action="store_true", help="write nothing; exit 1 when a notebook's cell is out of date")
    enc = sub.add_parser("encodability", help="which linguistic properties each default model encodes, per layer",
                         description="probe Study 1's property classes at every layer of each model on text no study "
                                     "evaluates on (Python's own documentation prose; a speech model hears it spoken by "
                                     "espeak-ng, each word from the 16 s of audio ending at it: one pass per word, 12-45 "
                                     "minutes on a CPU); write the table with its confidence intervals and verdicts "
                                     "(default: the committed resources/encodability.json; other models of a file on the "
                                     "same stimuli and parameters are kept)")
    enc.add_argument("--model", nargs="+", dest="models", default=None, metavar="NAME",
                     help="language and speech models (default: minilm-l6 smollm2-135m-instruct whisper-tiny-en)")
    enc.add_argument("--out", type=Path, default=None, metavar="PATH", help="where to write the JSON (default: the committed table)")
    from . import sweep

    sweep.add_commands(sub)
    args = parser.parse_args(argv)

    if args.command == "run":
        overrides = {name: _parse_value(value) for name, value in args.parameter}
        path = run_notebook(args.study, args.set_name, overrides, out_dir=args.out_dir, kernel=args.kernel,
                            miniature=args.miniature)
        result = path.with_suffix(".json")
        if result.exists():
            summary = json.loads(result.read_text())
            print(path, "\n".join(["", *verdict_lines(summary)]))
            if args.miniature:  # a dry run checks that every step runs; its verdicts are about random numbers
                print("miniature run: every step ran; its verdicts and numbers mean nothing")
                return 0
            return VALIDATION_FAILED if failed_validations(summary["checks"]) else 0
        return 0
    if args.command == "data":
        return _data(args)
    if args.command == "models":
        return _prepare_models(args.names)
    if args.command == "colab":
        return _colab(args.check)
    if args.command == "encodability":
        return _encodability(args.models, args.out)
    if args.command in ("sweep", "sweep-report"):
        return sweep.main(args)
    if args.command == "ledger":
        from .results import ledger_markdown

        root = checkout()
        if args.check:
            problems = []
            for path in sorted((root / "book" / "_run").glob("*.json")):
                if "." not in path.stem:
                    summary = json.loads(path.read_text())
                    problems += [f"FAILED VALIDATION in {path.stem}: {claim}" for claim in failed_validations(summary["checks"])]
                    problems += [f"DECLARED BUT NOT EVALUATED in {path.stem}: {item}" for item in summary.get("missing", [])]
            print("\n".join(problems) if problems else "every validation passed; every declared item was evaluated")
            return 1 if problems else 0
        (root / "book" / "ledger.md").write_text(ledger_markdown(root / "book" / "_run"))
        print(f"wrote {root / 'book' / 'ledger.md'}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
