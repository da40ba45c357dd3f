"""Parameter validation, declared checks and the results json of every notebook.

Each notebook validates its parameters first (``validate``), records checks as
it goes (``Report.check``: which declared item, what was observed, whether it
held) and ends by writing ``<notebook>.json`` into its results folder
(``output_folder``: ``book/_run/`` in a source checkout), which the book's
reproduction ledger collects (``ledger_markdown``).

What a notebook checks is declared before the data, in one committed file
(``resources/claims.yml``, read by :func:`declared`): per notebook, each item's
id, kind, wording, criterion, statistical test, and for a claim the paper's
number and its source. A notebook evaluates exactly those: checking an id that
is not declared is an error, and a declared item that a run neither evaluates
nor marks (``Report.not_evaluated``, ``Report.not_testable``) is listed in the
results json's ``missing``.

An item is of one of two kinds (``KINDS``). A **validation** tests the method
on the simulated cohort's planted truth: it must pass, and a failure is a bug
in the method or the cohort (``brainalign run`` then exits non-zero); on real
data it is not evaluated. A **claim** is one of the paper's findings: its
verdict is "reproduced", "not reproduced" or "not testable here" (with the
reason), a result either way.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from . import config
from .cache import atomic_write

__all__ = ["check_parameters", "check_choice", "check_items", "check_range", "Report", "ledger_markdown", "peak_memory_mb", "output_folder",
           "failed_validations", "verdict_lines", "declared", "KINDS", "VERDICTS", "LOCAL_RESULTS", "CLAIMS_FILE"]

#: the kinds of check: a validation must pass; a claim is reproduced or not
KINDS = ("validation", "claim")

#: the verdicts an item can have in a results json, per kind
VERDICTS = {"validation": ("passed", "failed", "not evaluated"),
            "claim": ("reproduced", "not reproduced", "not testable here", "not evaluated")}

#: every notebook's declared validations and claims
CLAIMS_FILE = Path(__file__).resolve().parent / "resources" / "claims.yml"

#: the fields of a declared item; ``paper`` and ``source`` are required of a claim
_FIELDS = {"id", "kind", "claim", "criterion", "test", "paper", "source"}

#: the results folder outside a source checkout (e.g. on Colab), relative to the working folder
LOCAL_RESULTS = "brainalign_results"


def declared(notebook: str, path: str | os.PathLike | None = None) -> list[dict]:
    """The validations and claims declared for ``notebook`` in the claims file, in their order.

    Parameters
    ----------
    notebook : str
        A notebook name, e.g. ``"00_quickstart"``.
    path : path, optional
        The claims file (default: :data:`CLAIMS_FILE`).

    Returns
    -------
    items : list of dict
        Each with ``id``, ``kind``, ``claim`` (the wording), ``criterion`` (our
        measure and what it must show; ``{name}`` fields are filled in by the
        notebook), ``test``, and for a claim ``paper`` (the paper's number) and
        ``source`` (where in the paper).
    """
    import yaml

    path = Path(path) if path is not None else CLAIMS_FILE
    table = yaml.safe_load(path.read_text()) or {}
    if notebook not in table:
        raise ValueError(f"no checks are declared for {notebook!r} in {path.name}; declared: {sorted(table)}")
    items = table[notebook]
    seen = set()
    for item in items:
        where = f"{path.name}: {notebook}: {item.get('id', item)!r}"
        unknown = set(item) - _FIELDS
        needed = {"id", "kind", "claim", "criterion", "test"} | ({"paper", "source"} if item.get("kind") == "claim" else set())
        if unknown or needed - set(item):
            raise ValueError(f"{where}: fields {sorted(unknown)} are unknown and {sorted(needed - set(item))} missing; "
                             f"valid fields: {sorted(_FIELDS)}")
        check_choice(f"kind of check in {where}", item["kind"], KINDS)
        if item["id"] in seen:
            raise ValueError(f"{where}: declared twice")
        seen.add(item["id"])
    return items


def output_folder(out_dir: str | os.PathLike | None = None) -> Path:
    """The folder a notebook writes its results to.

    Parameters
    ----------
    out_dir : path, optional
        The folder asked for (a notebook's ``out_dir`` parameter). None: the
        book's ``book/_run`` in a source checkout, where ``brainalign run``
        puts the executed notebooks and the ledger reads them; outside one
        (Colab opens a single notebook) ``./brainalign_results``.

    Returns
    -------
    folder : Path
        Not created here; :meth:`Report.write` creates it.
    """
    if out_dir is not None:
        return Path(out_dir)
    root = config.repo_root()
    return root / "book" / "_run" if root is not None else Path(LOCAL_RESULTS)


def check_choice(name: str, value, valid: Iterable) -> None:
    """Raise a ValueError naming ``value`` and the valid choices unless ``value`` is one of them."""
    valid = list(valid)
    if value not in valid:
        raise ValueError(f"unknown {name} {value!r}; valid: {valid}")


def check_items(name: str, values: Iterable, valid: Iterable) -> list:
    """``values`` as a list, after checking that it is not empty and that each item is one of ``valid``."""
    values, valid = list(values), list(valid)
    if not values:
        raise ValueError(f"no {name} given (an empty list); valid: {valid}")
    for value in values:
        check_choice(name, value, valid)
    return values


def check_range(name: str, value, low: float | None = None, high: float | None = None) -> None:
    """Raise a ValueError naming ``value`` and the valid range unless it lies in [low, high].

    A list (e.g. FIR delays) must not be empty, and each of its items must lie in the range.
    """
    valid = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise ValueError(f"{name} is an empty list; give values in {valid}")
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"{name}={item!r} is not a number; valid: {valid}")
        if (low is not None and item < low) or (high is not None and item > high):
            raise ValueError(f"{name}={item!r} is out of range; valid: {valid}")


_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


def check_parameters(namespace: Mapping, names: Iterable[str]) -> dict:
    """The notebook's parameters, after checking that no unknown one was injected.

    Call it in the first cell after the ``parameters`` cell, before any other
    name is defined, with ``globals()`` and the names of the parameters cell.
    papermill injects a mistyped ``-p NAME VALUE`` as a new variable; any
    public data variable other than the known parameters is such a name.

    Returns
    -------
    dict : parameter name -> value.
    """
    from types import ModuleType

    names = list(names)
    missing = [n for n in names if n not in namespace]
    if missing:
        raise ValueError(f"parameters {missing} are not defined; the parameters cell defines {names}")
    unknown = sorted(
        n for n, v in namespace.items()
        if not n.startswith("_") and n not in names and n not in _IPYTHON_NAMES
        and not callable(v) and not isinstance(v, ModuleType)
    )
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid parameters: {sorted(names)}")
    return {n: namespace[n] for n in names}


def peak_memory_mb() -> float:
    """Peak resident memory of this process (MB).

    On Linux, the high-water mark of the process's own memory (``VmHWM`` of
    ``/proc/self/status``). ``getrusage``'s ``ru_maxrss`` is read elsewhere; on
    Linux it is not used, because it carries over ``execve`` the peak of the
    parent at the time of the fork: a notebook kernel started by a large process
    (a test session) would report its parent's peak.
    """
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def _jsonable(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class Report:
    """The results of one notebook run: parameters, its declared checks, and run facts.

    Parameters
    ----------
    notebook : str
        Notebook name, e.g. ``"00_quickstart"``.
    params : mapping
        The parameters the notebook ran with.
    dataset : str
    simulated : bool
        Whether the data are simulated (every table and figure says so). On
        real data the validations, which need planted truth, are not evaluated.
    items : list of dict, optional
        The declared validations and claims (default: ``declared(notebook)``).
    """

    def __init__(self, notebook: str, params: Mapping, dataset: str, simulated: bool, items: list[dict] | None = None):
        self.notebook = notebook
        self.params = dict(params)
        self.dataset = dataset
        self.simulated = bool(simulated)
        self.items = {item["id"]: item for item in (items if items is not None else declared(notebook))}
        self.checks: list[dict] = []
        self.tables: dict[str, list] = {}
        self._start = time.time()

    def _row(self, item_id: str, fields: Mapping) -> dict:
        check_choice(f"check of {self.notebook}", item_id, self.items)
        if any(c["id"] == item_id for c in self.checks):
            raise ValueError(f"{item_id!r} of {self.notebook} was already recorded")
        item = self.items[item_id]
        try:
            claim, expected = item["claim"].format_map(fields), item["criterion"].format_map(fields)
        except KeyError as err:
            raise ValueError(f"the wording or criterion of {item_id!r} needs the field {err}; pass it") from None
        row = {"id": item_id, "kind": item["kind"], "claim": claim, "expected": expected, "test": item["test"]}
        if item["kind"] == "claim":
            row["paper"] = item["paper"]
            row["source"] = item["source"]
        return row

    def check(self, item_id: str, observed, passed: bool, **fields) -> bool:
        """Record the outcome of the declared item ``item_id``; returns ``passed``.

        ``fields`` fill the ``{name}`` fields of its declared wording and
        criterion (the layers, ROIs, alpha of this run). A validation passes or fails; a claim
        is reproduced or not.
        """
        row = self._row(item_id, fields)
        row["observed"] = _jsonable(observed)
        row["passed"] = bool(passed)
        if row["kind"] == "claim":
            row["verdict"] = "reproduced" if passed else "not reproduced"
        else:
            row["verdict"] = "passed" if passed else "failed"
        self.checks.append(row)
        print(f"[{row['verdict'].upper()}] {row['claim']}: expected {row['expected']}; observed {row['observed']}")
        return bool(passed)

    def not_testable(self, item_id: str, why: str, observed=None, **fields) -> None:
        """Record that the declared claim ``item_id`` cannot be tested here, and why.

        For example: the evaluated model does not encode the property the claim
        is about (the cohort's encodability table), so removing it tests nothing.
        """
        row = self._row(item_id, fields)
        if row["kind"] != "claim":
            raise ValueError(f"{item_id!r} is a validation: it is evaluated or not, never 'not testable'")
        row.update(observed=_jsonable(observed), passed=None, verdict="not testable here", why=why)
        self.checks.append(row)
        print(f"[NOT TESTABLE HERE] {row['claim']}: {why}")

    def not_evaluated(self, item_id: str, why: str, **fields) -> None:
        """Record that this run does not evaluate the declared item ``item_id`` (a smoke set too small for it), and why."""
        row = self._row(item_id, fields)
        row.update(observed=None, passed=None, verdict="not evaluated", why=why)
        self.checks.append(row)
        print(f"[NOT EVALUATED] {row['claim']}: {why}")

    def missing(self) -> list[str]:
        """Declared items this run has neither evaluated nor marked (validations on real data excepted)."""
        done = {c["id"] for c in self.checks}
        return [i for i, item in self.items.items()
                if i not in done and (self.simulated or item["kind"] == "claim")]

    def table(self, name: str, frame) -> None:
        """Attach a small table (a DataFrame) to the results json."""
        self.tables[name] = _jsonable(frame.to_dict(orient="records"))

    def as_dict(self) -> dict:
        import importlib.metadata as md

        versions = {}
        for pkg in ("brainalign", "numpy", "torch", "transformers", "himalaya", "scikit-learn", "nilearn"):
            try:
                versions[pkg] = md.version(pkg)
            except md.PackageNotFoundError:
                pass
        checks = list(self.checks)
        done = {c["id"] for c in checks}
        for item_id, item in self.items.items():  # what this run left out, in the declared order, with the reason
            if item_id not in done:
                why = ("real data: no planted truth" if not self.simulated and item["kind"] == "validation"
                       else "not reached in this run")
                checks.append({**self._row(item_id, _Blank()), "observed": None, "passed": None,
                               "verdict": "not evaluated", "why": why})
        return {
            "notebook": self.notebook,
            "parameters": _jsonable(self.params),
            "dataset": self.dataset,
            "simulated": self.simulated,
            "miniature": config.miniature(),  # a dry run: real formats, tiny random models, meaningless numbers
            "runtime_s": round(time.time() - self._start, 1),
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "versions": versions,
            "python": platform.python_version(),
            "checks": checks,
            "missing": self.missing(),
            "tables": self.tables,
            "validations_passed": not failed_validations(checks),
        }

    def summary(self) -> str:
        """This run's claims by verdict and validations passed, with each claim's verdict and each failure."""
        return "\n".join(verdict_lines(self.as_dict()))

    def write(self, out_dir: str | os.PathLike | None = None) -> Path:
        """Write ``<notebook>.json`` atomically into ``output_folder(out_dir)``; returns its path."""
        path = output_folder(out_dir) / f"{self.notebook}.json"
        text = json.dumps(self.as_dict(), indent=1)
        return atomic_write(path, lambda tmp: tmp.write_text(text))


class _Blank(dict):
    """Format fields of an item that was not evaluated: each shows as its own name."""

    def __missing__(self, key):
        return "{" + key + "}"


def failed_validations(checks: Iterable[Mapping]) -> list[str]:
    """The validations among ``checks`` (a results json's ``checks``) that were evaluated and failed."""
    return [c["claim"] for c in checks if c.get("kind", "validation") == "validation" and c.get("passed") is False]


def verdict_lines(summary: dict) -> list[str]:
    """A results json in a few lines: claims by verdict, validations passed, then each claim's verdict and each failure."""
    checks = summary["checks"]
    n = _counts(checks)
    lines = ["claims: " + ", ".join(f"{n[v]} {v}" for v in ("reproduced", "not reproduced", "not testable here"))
             + f"; validations: {n['passed']} of {n['validations']} passed"]
    lines += [f"  {c['verdict']}: {c['claim']}" for c in checks if c["kind"] == "claim"]
    lines += [f"  FAILED VALIDATION: {claim}" for claim in failed_validations(checks)]
    lines += [f"  DECLARED BUT NOT EVALUATED: {item}" for item in summary.get("missing", [])]
    return lines


def _cell(value) -> str:
    if isinstance(value, float):
        value = f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _counts(checks: list[Mapping]) -> dict:
    """How many claims have each verdict, and how many validations passed of how many."""
    claims = [c["verdict"] for c in checks if c["kind"] == "claim"]
    validations = [c["verdict"] for c in checks if c["kind"] == "validation"]
    return {v: claims.count(v) for v in VERDICTS["claim"]} | {"passed": validations.count("passed"),
                                                               "validations": len(validations)}


def ledger_markdown(run_dir: str | os.PathLike) -> str:
    """The reproduction ledger page, as markdown, from every results json ``<run_dir>/<notebook>.json``.

    At the top, one row per notebook: its claims by verdict and its validations
    passed. Then per notebook: how it ran, the paper's claims (the paper's number
    and source beside ours, and the verdict) and the validations. Other files
    beside them (a notebook's split manifest ``<notebook>.split.json``) are not results.
    """
    lines = [
        "# Reproduction ledger",
        "",
        "Every notebook ends by testing what was declared for it before the data "
        "(`lib/brainalign/resources/claims.yml`). This page collects those tests from the last executed run of each "
        "notebook, in two kinds. The paper's **claims** each have a verdict: reproduced, not reproduced (a result, "
        "reported as it is) or not testable here (with the reason). The **validations** test each method on the "
        "simulated cohort's planted truth: what was planted is recovered where it was planted, and nothing is found "
        "where nothing was planted. They must pass; on real data they are not evaluated, except where the study "
        "released a truth of its own (Study 1's labels of its story, against which its labeller is checked). "
        "A run on the simulated cohort "
        "shows what a method recovers of what was planted, not what the brain does, so its claim verdicts say whether "
        "the paper's finding holds on these simulated data and these small models, not whether it holds in the brain.",
        "",
    ]
    runs = [json.loads(p.read_text()) for p in sorted(Path(run_dir).glob("*.json")) if "." not in p.stem]
    stale = [r["notebook"] for r in runs if "missing" not in r]  # written before the checks were declared
    runs = [r for r in runs if "missing" in r]
    if stale:
        lines += [f"*Executed before its checks were declared, so not shown: {', '.join(stale)}; run `make run` "
                  "again.*", ""]
    if not runs:
        return "\n".join(lines + ["*No notebook has been executed yet: run `make run`.*"])
    lines += ["| notebook | data | claims reproduced | not reproduced | not testable here | not evaluated "
              "| validations passed |", "|---|---|---|---|---|---|---|"]
    for r in runs:
        n = _counts(r["checks"])
        lines.append(f"| {r['notebook']} | "
                     f"{'simulated' if r['simulated'] else 'real'} | {n['reproduced']} | {n['not reproduced']} | "
                     f"{n['not testable here']} | {n['not evaluated']} | {n['passed']} of {n['validations']} |")
    lines.append("")
    for r in runs:
        data = f"{r['dataset']} ({'simulated' if r['simulated'] else 'real data'})"
        claims = [c for c in r["checks"] if c["kind"] == "claim"]
        validations = [c for c in r["checks"] if c["kind"] == "validation"]
        lines += [f"## {r['notebook']}", "",
                  f"Dataset: {data}. Parameters: `{json.dumps(r['parameters'])}`. "
                  f"Runtime {r['runtime_s']} s, peak memory {r['peak_memory_mb']:.0f} MB.", ""]
        if r.get("missing"):
            lines += [f"**Declared but neither evaluated nor marked in this run: {', '.join(r['missing'])}.**", ""]
        if claims:
            lines += ["### The paper's claims", "", "| claim | paper (source) | our measure | ours | verdict |",
                      "|---|---|---|---|---|"]
            for c in claims:
                verdict = c["verdict"] + (f": {c['why']}" if c.get("why") else "")
                lines.append("| " + " | ".join(_cell(x) for x in [
                    c["claim"], f"{c['paper']} ({c['source']})", c["expected"], c["observed"], verdict]) + " |")
            lines.append("")
        if validations:
            lines += ["### Validations on planted truth", "", "| validation | criterion | observed | outcome |",
                      "|---|---|---|---|"]
            for c in validations:
                outcome = {"passed": "passed", "failed": "**failed**"}.get(c["verdict"], c["verdict"])
                outcome += f": {c['why']}" if c.get("why") else ""
                lines.append("| " + " | ".join(_cell(x) for x in [c["claim"], c["expected"], c["observed"], outcome])
                             + " |")
            lines.append("")
    return "\n".join(lines)
