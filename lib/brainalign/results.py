"""Parameter validation, reproduction checks and the results json of every notebook.

Each notebook validates its parameters first (``validate``), records checks as
it goes (``Report.check``: what was tested, what was expected, what was
observed, whether it held) and ends by writing ``<notebook>.json`` into its
results folder (``output_folder``: ``book/_run/`` in a source checkout), which
the book's reproduction ledger collects (``ledger_markdown``).

A check is of one of two kinds (``KINDS``). A **validation** tests the method
on the simulated cohort's planted truth: it must pass, and a failure is a bug
in the method or the cohort (``brainalign run`` then exits non-zero). A
**claim** is one of the paper's findings tested here: its verdict is
"reproduced" or "not reproduced", a result either way.
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

__all__ = ["check_parameters", "check_choice", "Report", "ledger_markdown", "peak_memory_mb", "output_folder",
           "failed_validations", "KINDS", "LOCAL_RESULTS"]

#: the kinds of check: a validation must pass; a claim is reproduced or not
KINDS = ("validation", "claim")

#: the results folder outside a source checkout (e.g. on Colab), relative to the working folder
LOCAL_RESULTS = "brainalign_results"


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
    """The results of one notebook run: parameters, checks, and run facts.

    Parameters
    ----------
    notebook : str
        Notebook name, e.g. ``"00_quickstart"``.
    params : mapping
        The parameters the notebook ran with.
    dataset : str
    simulated : bool
        Whether the data are simulated (every table and figure says so).
    """

    def __init__(self, notebook: str, params: Mapping, dataset: str, simulated: bool):
        self.notebook = notebook
        self.params = dict(params)
        self.dataset = dataset
        self.simulated = bool(simulated)
        self.checks: list[dict] = []
        self.tables: dict[str, list] = {}
        self._start = time.time()

    def check(self, claim: str, expected: str, observed, passed: bool, paper: str | None = None,
              kind: str = "validation") -> bool:
        """Record a check; ``paper`` is what the study reports for the same claim, if anything.

        ``kind`` is "validation" (the method on planted truth: must pass) or
        "claim" (a finding of the paper: ``passed`` says whether it reproduced).
        """
        check_choice("kind of check", kind, KINDS)
        row = {"claim": claim, "expected": expected, "observed": _jsonable(observed), "passed": bool(passed),
               "kind": kind}
        if kind == "claim":
            row["verdict"] = "reproduced" if passed else "not reproduced"
        if paper:
            row["paper"] = paper
        self.checks.append(row)
        mark = ("PASS" if passed else "FAIL") if kind == "validation" else row["verdict"].upper()
        print(f"[{mark}] {claim}: expected {expected}; observed {row['observed']}")
        return bool(passed)

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
        return {
            "notebook": self.notebook,
            "parameters": _jsonable(self.params),
            "dataset": self.dataset,
            "simulated": self.simulated,
            "runtime_s": round(time.time() - self._start, 1),
            "peak_memory_mb": round(peak_memory_mb(), 1),
            "versions": versions,
            "python": platform.python_version(),
            "checks": self.checks,
            "tables": self.tables,
            "all_passed": all(c["passed"] for c in self.checks),
            "validations_passed": not failed_validations(self.checks),
        }

    def write(self, out_dir: str | os.PathLike | None = None) -> Path:
        """Write ``<notebook>.json`` atomically into ``output_folder(out_dir)``; returns its path."""
        path = output_folder(out_dir) / f"{self.notebook}.json"
        text = json.dumps(self.as_dict(), indent=1)
        return atomic_write(path, lambda tmp: tmp.write_text(text))


def failed_validations(checks: Iterable[Mapping]) -> list[str]:
    """The validations among ``checks`` (a results json's ``checks``) that failed; a check without a kind is one."""
    return [c["claim"] for c in checks if c.get("kind", "validation") == "validation" and not c["passed"]]


def ledger_markdown(run_dir: str | os.PathLike) -> str:
    """The reproduction ledger page: every check of every results json ``<run_dir>/<notebook>.json``, as markdown.

    Per notebook, the paper's claims (with their verdicts) and then the validations.
    Other files beside them (a notebook's split manifest ``<notebook>.split.json``) are not results.
    """
    lines = [
        "# Reproduction ledger",
        "",
        "Every notebook ends by testing what it reproduced. This page collects those tests from the last "
        "executed run of each notebook, in two kinds: the paper's **claims**, each with its verdict "
        "(reproduced or not: a result either way), and the **validations** of the method on the simulated "
        "cohort's planted truth, which must pass. Rows marked *simulated* ran on the simulated cohort: "
        "they show what each method recovers of what was planted, not what the brain does.",
        "",
    ]
    runs = sorted(p for p in Path(run_dir).glob("*.json") if "." not in p.stem)
    if not runs:
        lines.append("*No notebook has been executed yet: run `make run`.*")
    for path in runs:
        r = json.loads(path.read_text())
        data = f"{r['dataset']} ({'simulated' if r['simulated'] else 'real data'})"
        claims = [c for c in r["checks"] if c.get("kind") == "claim"]
        validations = [c for c in r["checks"] if c.get("kind", "validation") == "validation"]
        reproduced = sum(c["passed"] for c in claims)
        passed = sum(c["passed"] for c in validations)
        lines += [
            f"## {r['notebook']}",
            "",
            f"Dataset: {data}. Parameters: `{json.dumps(r['parameters'])}`. "
            f"Runtime {r['runtime_s']} s, peak memory {r['peak_memory_mb']:.0f} MB. "
            f"**Claims: {reproduced} of {len(claims)} reproduced. Validations: {passed} of {len(validations)} passed.**",
            "",
        ]
        for title, rows, last in [("Claims", claims, "verdict"), ("Validations", validations, "passed")]:
            if not rows:
                continue
            lines += [f"### {title}", "", f"| {title[:-1].lower()} | expected | observed | paper | {last} |",
                      "|---|---|---|---|---|"]
            for c in rows:
                observed = c["observed"]
                if isinstance(observed, float):
                    observed = f"{observed:.3g}"
                outcome = c["verdict"] if last == "verdict" else ("yes" if c["passed"] else "**no**")
                cells = [c["claim"], c["expected"], str(observed), c.get("paper", ""), outcome]
                lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
            lines.append("")
    return "\n".join(lines)
