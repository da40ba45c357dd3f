"""What a fetch needs: the committed file manifests, a selection's plan of files, and the command that fetches it."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import config

FILE_MANIFESTS = Path(__file__).resolve().parent.parent / "resources" / "manifests" / "files"
FETCHABLE = ("lebel2023", "narratives", "neuromod")
STAGING = ".partial"
DATALAD_INSTALL = (
    "install DataLad and git-annex: `pip install datalad` and `conda install -c conda-forge git-annex` "
    "(or `apt-get install git-annex`, or `pip install datalad-installer && datalad-installer git-annex`)"
)


class FetchError(RuntimeError):
    """A fetch that cannot proceed (offline, no access, a bad selection) or files that failed."""


# -- the manifest and the plan -------------------------------------------------------
def file_manifest(name: str) -> dict:
    """The committed file manifest of a fetchable dataset."""
    path = FILE_MANIFESTS / f"{name}.json"
    if not path.is_file():
        raise ValueError(f"dataset {name!r} cannot be fetched; fetchable datasets: {list(FETCHABLE)} "
                         "(the simulated cohort is generated: `brainalign data simulate`)")
    return json.loads(path.read_text())


def dataset_root(name: str, root: str | os.PathLike | None = None) -> Path:
    """The dataset's folder: ``root`` if given, else its folder in the data home."""
    return Path(root) if root is not None else config.data_home() / file_manifest(name)["folder"]


@dataclass(frozen=True)
class FileSpec:
    """One file to fetch, or a set of files when ``path`` holds glob characters.

    Attributes
    ----------
    path : str
        POSIX path inside the dataset (and on its server).
    root : Path
        The local folder ``path`` is relative to.
    size, md5 : int or str, optional
        What the file must be, where known.
    url : str, optional
        A direct URL, for a file that does not come from the dataset's source.
    trust_first : bool
        No checksum is published: the md5 of the first download is recorded in the data
        home and every later check compares the file with it (trust on first use).
    """

    path: str
    root: Path
    size: int | None = None
    md5: str | None = None
    url: str | None = None
    trust_first: bool = False

    @property
    def dest(self) -> Path:
        return self.root / self.path

    @property
    def is_glob(self) -> bool:
        return any(c in self.path for c in "*?[")


@dataclass
class Plan:
    """The files a selection of a dataset needs."""

    name: str
    root: Path
    files: list[FileSpec]
    subjects: list[str]
    runs: list[str]
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """A few lines: how many files, where, and what size is known."""
        sized = [f for f in self.files if f.size is not None]
        lines = [f"{self.name}: {len(self.files)} file(s) or file sets into {self.root}",
                 f"  subjects: {', '.join(self.subjects) if self.subjects else 'every subject on the server'}",
                 f"  runs: {len(self.runs)} ({', '.join(self.runs[:6])}{', ...' if len(self.runs) > 6 else ''})"]
        man = file_manifest(self.name)
        estimate = man.get("bytes", {}).get("subject", {})
        if estimate and self.subjects and set(self.runs) >= set(_all_runs(man)):
            total = sum(estimate.get(s, 0) for s in self.subjects)
            lines.append(f"  size: about {total / 1e9:.1f} GB of responses for these subjects (all their runs)")
        if sized:
            lines.append(f"  {len(sized)} file(s) of known size: {sum(f.size for f in sized) / 1e9:.2f} GB")
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def _all_runs(man: dict) -> list[str]:
    runs = man.get("runs", [])
    return [r for rs in runs.values() for r in rs] if isinstance(runs, dict) else list(runs)


def _fields(pattern: str, subject: str | None, run: str | None) -> dict:
    out = {"subject": subject, "run": run}
    if "{season}" in pattern:
        m = re.match(r"^s(\d{2})e\d{2}", run or "")
        if not m:
            raise ValueError(f"run {run!r} is not a Friends run (s<SS>e<EE><x>)")
        out["season"] = str(int(m.group(1)))
    if "{movie}" in pattern:
        out["movie"] = (run or "").rstrip("0123456789")
    return out


def plan(name: str, subjects: Sequence[str] | None = None, runs: Sequence[str] | None = None,
         root: str | os.PathLike | None = None, include: Sequence[str] = ()) -> Plan:
    """The files that ``subjects`` x ``runs`` of dataset ``name`` need.

    Parameters
    ----------
    name : str
        One of ``FETCHABLE``.
    subjects, runs : sequence of str, optional
        The selection; default: the manifest's default selection (for
        ``lebel2023``: UTS01-UTS03, every story; ``narratives``: the 21styear
        story and its 18 subjects of Oota et al. 2023; ``neuromod``: everything).
    root : path, optional
        The dataset folder (default: in the data home).
    include : sequence of str
        Optional file groups to fetch too (a group marked ``"optional"`` in the
        manifest is left out otherwise): ``neuromod``'s ``"movies"``, the
        episodes' and films' .mkv files, tens of GB.
    """
    man = file_manifest(name)
    optional = sorted({g["optional"] for g in man["files"] if "optional" in g})
    bad = [x for x in include if x not in optional]
    if bad:
        raise FetchError(f"unknown optional file group(s) {bad} of {name}; valid: {optional or 'none'}")
    root = dataset_root(name, root)
    known_runs = _all_runs(man)
    subject_runs: dict = man.get("subjects", {})
    run_subjects: dict = man.get("run_subjects", {})
    default = man.get("default", {})
    notes = []
    if runs is not None:
        bad = [r for r in runs if r not in known_runs]
        if bad:
            raise FetchError(f"unknown run(s) {bad} of {name}; valid runs: {known_runs}")
        runs = list(dict.fromkeys(runs))
    else:
        runs = list(default.get("runs", known_runs))
    if subjects is not None:
        if subject_runs:
            bad = [s for s in subjects if s not in subject_runs]
            if bad:
                raise FetchError(f"unknown subject(s) {bad} of {name}; valid subjects: {list(subject_runs)}")
        elif any(not re.fullmatch(r"sub-[A-Za-z0-9]+", s) for s in subjects):
            raise FetchError(f"subjects of {name} are named sub-<label> (e.g. sub-244); got {list(subjects)}")
        subjects = list(dict.fromkeys(subjects))
    fallback = list(default.get("subjects", subject_runs)) or ["*"]

    def who(run: str | None) -> list[str]:
        """The subjects of a run: those asked for, else the manifest's subjects of that run, else the default."""
        if subjects is not None:
            return subjects
        return list(run_subjects.get(run, fallback)) if run is not None else fallback

    specs: dict[tuple[Path, str], FileSpec] = {}
    used: dict[str, None] = {}
    checksums = man.get("checksums", {})
    for group in man["files"]:
        if group.get("optional", None) not in (None, *include):
            continue
        per = group.get("per", [])
        folder = config.data_home() / group["folder"] if "folder" in group else root
        if "runs" in group:  # the group's runs: a list, or the name of a list of the manifest's runs
            allowed = group["runs"] if isinstance(group["runs"], list) else man["runs"][group["runs"]]
            group_runs = [r for r in runs if r in allowed]
        else:
            group_runs = runs
        if not per:
            combos = [(None, None)]
        elif per == ["run"]:
            combos = [(None, r) for r in group_runs]
        elif per == ["subject"]:
            combos = [(s, None) for s in who(None)]
        else:
            combos = []
            for run in group_runs:
                for s in who(run):
                    have = "*" if s == "*" else subject_runs.get(s, "*")
                    if have is None:
                        combos.append((s, "*"))
                    elif have == "*" or run in have:
                        combos.append((s, run))
        for subject, run in combos:
            if subject is not None:
                used[subject] = None
            path = group["path"].format(**_fields(group["path"], subject, run))
            url = group["url"].format(**_fields(group["url"], subject, run)) if "url" in group else None
            known = checksums.get(path, {})
            specs.setdefault((folder, path), FileSpec(path, folder, known.get("size"), known.get("md5"), url,
                                                      group.get("checksum") == "first-download"))
    chosen = [s for s in used if s != "*"]
    unknown = [s for s in chosen if subject_runs.get(s, "*") is None]
    if unknown:
        notes.append(f"the runs of {', '.join(unknown)} are not listed in the manifest: all their files are fetched"
                     + (" (--runs cannot narrow them)" if runs != list(default.get("runs", known_runs)) else ""))
    if "*" in used:
        notes.append("subjects not listed: every subject the server has for these runs is fetched")
    if name == "neuromod":
        notes.append("one fMRI file per subject and task holds all its runs; --runs selects transcripts (and movies) only")
    notes += [f"left out: the optional {x} (--include {x})" for x in optional if x not in include]
    return Plan(name, root, list(specs.values()), chosen, runs, notes)


def command(name: str, subjects: Sequence[str] | None = None, runs: Sequence[str] | None = None,
            include: Sequence[str] = ()) -> str:
    """The ``brainalign data fetch`` command line for a selection."""
    parts = ["brainalign", "data", "fetch", name]
    if subjects:
        parts += ["--subjects", *subjects]
    if runs:
        parts += ["--runs", *runs]
    if include:
        parts += ["--include", *include]
    return " ".join(parts)
