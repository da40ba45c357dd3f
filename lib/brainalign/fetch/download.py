"""Checking files and fetching them: staged downloads, checksums, and the report of what is present or missing."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..cache import atomic_write, digest
from .manifest import STAGING, FetchError, FileSpec, command, file_manifest, plan
from .transports import DataLadTransport, HTTPTransport, OpenNeuroTransport, Transport


def md5sum(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """The md5 hex digest of a file (the checksum git-annex's MD5E keys carry)."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_HDF5 = b"\x89HDF\r\n\x1a\n"


def _format_problem(path: Path) -> str | None:
    """What is wrong with a file's format (cheap checks of its first bytes), or None."""
    size = path.stat().st_size
    if size == 0:
        return "empty file"
    with open(path, "rb") as f:
        head = f.read(1024)
    low = head.lstrip().lower()
    if low.startswith((b"<!doctype html", b"<html")):
        return "an HTML page, not data"
    suffix = path.suffix.lower()
    if suffix in (".hf5", ".h5", ".hdf5") and not head.startswith(_HDF5):
        return "no HDF5 signature"
    if suffix == ".gii" and b"<?xml" not in head[:64] and b"<gifti" not in low:
        return "not a GIfTI (XML) file"
    if suffix == ".json" and size < 50_000_000:
        try:
            json.loads(path.read_bytes())
        except ValueError as err:
            return f"not valid JSON ({err})"
    if suffix == ".textgrid":
        text = head.decode("utf-16") if head[:2] in (b"\xff\xfe", b"\xfe\xff") else head.decode("utf-8", "replace")
        if "ooTextFile" not in text and "TextGrid" not in text:
            return "not a Praat TextGrid"
    if suffix in (".tsv", ".csv", ".txt") and b"\x00" in head:
        return "binary bytes in a text file"
    return None


class _Stamps:
    """Remembered md5 checks of a dataset folder: relative path -> [size, mtime_ns, md5]; completed file sets;
    the md5 recorded at the first download of each file that has no published checksum (``trusted``)."""

    def __init__(self, name: str, root: Path):
        self.path = config.data_home() / ".verified" / f"{name}-{digest(str(root.resolve()))[:12]}.json"
        data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.files: dict[str, list] = data.get("files", {})
        self.sets: list[str] = data.get("sets", [])
        self.trusted: dict[str, str] = data.get("trusted", {})
        self.changed = False

    def trust(self, rel: str, path: Path) -> None:
        """Record the md5 of the first download of a file without a published checksum."""
        self.trusted[rel] = md5sum(path)
        self.record(rel, path, self.trusted[rel])

    def valid(self, rel: str, path: Path, md5: str) -> bool:
        st = path.stat()
        return self.files.get(rel) == [st.st_size, st.st_mtime_ns, md5]

    def record(self, rel: str, path: Path, md5: str) -> None:
        st = path.stat()
        self.files[rel] = [st.st_size, st.st_mtime_ns, md5]
        self.changed = True

    def complete(self, pattern: str) -> None:
        if pattern not in self.sets:
            self.sets.append(pattern)
            self.changed = True

    def save(self) -> None:
        if self.changed:
            text = json.dumps({"files": self.files, "sets": self.sets, "trusted": self.trusted}, indent=0)
            atomic_write(self.path, lambda tmp: tmp.write_text(text))
            self.changed = False


@dataclass
class FileStatus:
    """The state of one file: ``valid`` (its md5 matched), ``present`` (no checksum known; size and format
    fine), ``missing`` or ``corrupt``."""

    path: str
    state: str
    detail: str = ""


def _check(path: Path, rel: str, size: int | None, md5: str | None, stamps: _Stamps | None,
           rehash: bool = False) -> FileStatus:
    if not path.is_file():
        return FileStatus(rel, "missing")
    actual = path.stat().st_size
    if size is not None and actual != size:
        return FileStatus(rel, "corrupt", f"{actual} bytes, expected {size}")
    problem = _format_problem(path)
    if problem:
        return FileStatus(rel, "corrupt", problem)
    if md5 is None:
        return FileStatus(rel, "present", "no checksum known")
    if stamps is not None and not rehash and stamps.valid(rel, path, md5):
        return FileStatus(rel, "valid")
    got = md5sum(path)
    if got != md5:
        first = stamps is not None and stamps.trusted.get(rel) == md5
        return FileStatus(rel, "corrupt", f"md5 {got}, expected {md5}" + (" (recorded at its first download)" if first else ""))
    if stamps is not None:
        stamps.record(rel, path, md5)
    return FileStatus(rel, "valid")


def _checksums(name: str) -> dict:
    return file_manifest(name).get("checksums", {})


def _local(spec: FileSpec, base: Path, checksums: dict, stamps: _Stamps | None, rehash: bool = False) -> list[FileStatus]:
    """Check the copy of ``spec`` under ``base`` (its root, or a staging folder); a file set checks each match."""
    if not spec.is_glob:
        md5 = spec.md5
        if md5 is None and spec.trust_first and stamps is not None:
            md5 = stamps.trusted.get(spec.path)  # None until the first download
        return [_check(base / spec.path, spec.path, spec.size, md5, stamps, rehash)]
    out = []
    for path in sorted(base.glob(spec.path)):
        rel = path.relative_to(base).as_posix()
        known = checksums.get(rel, {})
        out.append(_check(path, rel, known.get("size"), known.get("md5"), stamps, rehash))
    return out or [FileStatus(spec.path, "missing", "no file matches")]


def verify(name: str, subjects: Sequence[str] | None = None, runs: Sequence[str] | None = None,
           root: str | os.PathLike | None = None, rehash: bool = False, progress: bool = True,
           include: Sequence[str] = ()) -> list[FileStatus]:
    """Check every file a selection needs: present, missing or corrupt.

    Parameters
    ----------
    name, subjects, runs, root, include
        As for ``plan``.
    rehash : bool
        Recompute every md5, even those remembered from an earlier check.

    Returns
    -------
    One ``FileStatus`` per file (a file set gives one per file on disk, or one
    ``missing``).
    """
    from tqdm.auto import tqdm

    p = plan(name, subjects, runs, root, include)
    checksums = _checksums(name)
    out = []
    stamps = {}
    for spec in tqdm(p.files, desc=f"verify {name}", unit="file", disable=not progress or len(p.files) < 2):
        st = stamps.setdefault(spec.root, _Stamps(name, spec.root))
        out += _local(spec, spec.root, checksums, st, rehash)
    for st in stamps.values():
        st.save()
    return out


def _transport(name: str, via: str | None, progress: bool = True) -> Transport:
    sources = file_manifest(name)["sources"]
    via = via or next(iter(sources))
    if via not in sources:
        raise FetchError(f"{name} cannot be fetched via {via!r}; valid: {list(sources)}")
    src = sources[via]
    if via == "openneuro":
        return OpenNeuroTransport(src["dataset"], src.get("tag"))
    if via == "http":
        return HTTPTransport(src["url"], progress=progress)
    return DataLadTransport(src["url"], install=src.get("install", "auto"), signup=file_manifest(name).get("signup"))


# -- fetching ----------------------------------------------------------------------
@dataclass
class FetchReport:
    """What a fetch did: files fetched, files already there, files that failed (path -> why)."""

    name: str
    root: Path
    fetched: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        text = (f"{self.name}: {len(self.fetched)} file(s) fetched, {len(self.skipped)} already present and valid, "
                f"{len(self.failed)} failed, in {self.root}")
        return "\n".join([text] + [f"  FAILED {p}: {why}" for p, why in self.failed.items()])


def _complete_locally(spec: FileSpec, stamps: _Stamps) -> bool:
    """Cheap: is the file there with the right size (a file set: was it completed, and is something there)?"""
    if spec.is_glob:
        return spec.path in stamps.sets and any(spec.root.glob(spec.path))
    return spec.dest.is_file() and (spec.size is None or spec.dest.stat().st_size == spec.size)


def fetch(name: str, subjects: Sequence[str] | None = None, runs: Sequence[str] | None = None,
          root: str | os.PathLike | None = None, via: str | None = None, transport: Transport | None = None,
          http: Transport | None = None, progress: bool = True, include: Sequence[str] = ()) -> FetchReport:
    """Download what a selection of a dataset needs; skip what is already there and valid.

    Parameters
    ----------
    name, subjects, runs, root, include
        As for ``plan``.
    via : str, optional
        The dataset's source (a key of the manifest's ``sources``).
    transport, http : Transport, optional
        Replace the dataset's transport, and the one for files with their own
        URL (tests pass fakes).

    Returns
    -------
    FetchReport

    Raises
    ------
    FetchError
        At once when something must be downloaded but the machine is offline,
        DataLad is missing or the dataset needs a sign-up; at the end when files
        failed (the report is in the message). Files that arrived are in place.
    """
    from tqdm.auto import tqdm

    p = plan(name, subjects, runs, root, include)
    cmd = command(name, subjects, runs, include)
    checksums = _checksums(name)
    stamps: dict[Path, _Stamps] = {}

    def stamp(spec: FileSpec) -> _Stamps:
        return stamps.setdefault(spec.root, _Stamps(name, spec.root))

    report = FetchReport(name, p.root)
    main = transport or _transport(name, via, progress)
    direct = http or HTTPTransport(progress=progress)

    def gate(todo: list[FileSpec]) -> None:
        """Refuse at once what cannot work: offline, no DataLad, no access."""
        if todo and config.is_offline():
            raise FetchError(
                f"offline: {len(todo)} of {len(p.files)} file(s) of {name} are missing or invalid in {p.root} "
                f"(first: {todo[0].path}). On a machine with internet run `{cmd}` and copy {p.root} here "
                f"(or point BRAINALIGN_DATA at its data home); to allow network access set BRAINALIGN_OFFLINE=0."
            )
        if isinstance(main, DataLadTransport) and any(not s.url for s in todo):
            main.check(p.root, cmd)

    todo = [s for s in p.files if not _complete_locally(s, stamp(s))]
    gate(todo)  # cheap checks first, so that a doomed fetch stops before hashing anything
    quick = set(todo)
    for spec in p.files:  # the full check of what is there (md5 where known; remembered)
        if spec not in quick:
            if any(s.state in ("missing", "corrupt") for s in _local(spec, spec.root, checksums, stamp(spec))):
                todo.append(spec)
            else:
                report.skipped.append(spec.path)
    gate(todo)
    batches: dict[tuple[bool, Path], list[FileSpec]] = {}
    for spec in todo:
        batches.setdefault((bool(spec.url), spec.root), []).append(spec)
    bar = tqdm(total=len(todo), desc=f"fetch {name}", unit="file", disable=not progress or len(todo) < 2)
    for (is_direct, base), specs in batches.items():
        t = direct if is_direct else main
        staging = base / STAGING
        kwargs = {}
        if isinstance(t, OpenNeuroTransport):  # a file set must not fetch again what is already in place
            have = [q.relative_to(base).as_posix() for s in specs if s.is_glob for q in base.glob(s.path)]
            if have:
                kwargs["exclude"] = have
        results = t.fetch(specs, staging, **kwargs)
        for spec in specs:
            error = results.get(spec.path, "the transport did not report this file")
            if error is None:
                _settle(spec, staging, t.in_place, checksums, stamp(spec), report)
            else:
                report.failed[spec.path] = error
            bar.update(1)
    bar.close()
    for st in stamps.values():
        st.save()
    if report.failed:
        raise FetchError(f"{report}\nrerun `{cmd}` to resume; partial downloads wait in {p.root / STAGING}")
    return report


def _settle(spec: FileSpec, staging: Path, in_place: bool, checksums: dict, stamps: _Stamps, report: FetchReport) -> None:
    """Check a downloaded file (or set) and move it into place; a file that fails its check is deleted."""
    base = spec.root if in_place else staging
    statuses = _local(spec, base, checksums, stamps)
    if spec.is_glob and statuses[0].state == "missing" and any(spec.root.glob(spec.path)):
        stamps.complete(spec.path)  # nothing new: every file of the set was in place already
        return
    ok = True
    for status in statuses:
        if status.state == "missing":
            report.failed[status.path] = "not found after the download"
            ok = False
        elif status.state == "corrupt":
            report.failed[status.path] = f"rejected: {status.detail}"
            ok = False
            if not in_place:
                (staging / status.path).unlink(missing_ok=True)
        else:
            dest = spec.root / status.path
            if not in_place:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / status.path, dest)
                if status.state == "valid":
                    stamps.record(status.path, dest, stamps.files[status.path][2])
            if status.state == "present" and spec.trust_first and not spec.is_glob:
                stamps.trust(status.path, dest)  # no published checksum: this download's is checked from now on
            report.fetched.append(status.path)
    if spec.is_glob and ok:
        stamps.complete(spec.path)
