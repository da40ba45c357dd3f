"""The transports a fetch reaches the network through: HTTP, openneuro-py and DataLad; tests replace them."""

from __future__ import annotations

import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from .manifest import DATALAD_INSTALL, FetchError, FileSpec


class Transport(Protocol):
    """Moves files from a server to disk.

    ``fetch`` downloads each file of ``files`` to ``staging / file.path`` (or, when
    ``in_place``, straight to ``file.dest``), resuming a partial file it finds
    there, and returns, per file path, None when complete or the error that
    stopped it.
    """

    name: str
    in_place: bool

    def fetch(self, files: Sequence[FileSpec], staging: Path) -> dict[str, str | None]: ...


def _urlopen(timeout: float) -> Callable:
    def opener(request):
        return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (https URLs from the manifests)

    return opener


class HTTPTransport:
    """Plain HTTP(S) downloads, resumed with Range requests.

    Parameters
    ----------
    base_url : str, optional
        Prefix of every file's path (files with their own ``url`` ignore it).
    opener : callable, optional
        ``opener(urllib.request.Request)`` -> a response with ``read(n)``,
        ``status`` and ``headers`` (default: ``urllib.request.urlopen``); tests
        inject one.
    """

    name = "http"
    in_place = False

    def __init__(self, base_url: str | None = None, opener: Callable | None = None, chunk_size: int = 1 << 20,
                 timeout: float = 60.0, progress: bool = True):
        self.base_url = base_url
        self.opener = opener or _urlopen(timeout)
        self.chunk_size = chunk_size
        self.progress = progress

    def url(self, spec: FileSpec) -> str:
        if spec.url:
            return spec.url
        if not self.base_url:
            raise FetchError(f"no URL for {spec.path}")
        return self.base_url.rstrip("/") + "/" + urllib.parse.quote(spec.path)

    def fetch(self, files: Sequence[FileSpec], staging: Path) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for spec in files:
            try:
                self._one(spec, staging / spec.path)
                out[spec.path] = None
            except (OSError, urllib.error.URLError, FetchError, ValueError) as err:
                out[spec.path] = f"{type(err).__name__}: {err}"
        return out

    def _one(self, spec: FileSpec, part: Path) -> None:
        from tqdm.auto import tqdm

        if spec.is_glob:
            raise FetchError(f"{spec.path} names a set of files, which plain HTTP cannot list; use --via openneuro")
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        if spec.size is not None and have >= spec.size:
            if have == spec.size:
                return
            part.unlink()
            have = 0
        url = self.url(spec)
        headers = {"User-Agent": "brainalign"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            response = self.opener(urllib.request.Request(url, headers=headers))
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:  # nothing left to send: the staged file is whole
                return
            raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from err
        with response:
            status = getattr(response, "status", 200)
            if have and status != 206:  # the server ignored the range: start again
                have = 0
            length = response.headers.get("Content-Length")
            expected = have + int(length) if length is not None else spec.size
            got = have
            with open(part, "ab" if have else "wb") as out, tqdm(
                total=expected, initial=have, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                desc=Path(spec.path).name, disable=not self.progress,
            ) as bar:
                while block := response.read(self.chunk_size):
                    out.write(block)
                    got += len(block)
                    bar.update(len(block))
        if expected is not None and got < expected:
            raise FetchError(f"{url}: the connection closed after {got} of {expected} bytes (rerun to resume)")


class OpenNeuroTransport:
    """Downloads from OpenNeuro with openneuro-py (which resumes partial files and checks sizes).

    Parameters
    ----------
    dataset : str
        The OpenNeuro accession (``ds003020``).
    tag : str, optional
        A snapshot version (default: the latest).
    download : callable, optional
        ``openneuro.download``'s stand-in (tests inject one).
    """

    name = "openneuro"
    in_place = False

    def __init__(self, dataset: str, tag: str | None = None, download: Callable | None = None, max_concurrent: int = 4):
        self.dataset = dataset
        self.tag = tag
        self.download = download
        self.max_concurrent = max_concurrent

    def fetch(self, files: Sequence[FileSpec], staging: Path, exclude: Sequence[str] = ()) -> dict[str, str | None]:
        download = self.download
        if download is None:
            import openneuro

            download = openneuro.download
        staging.mkdir(parents=True, exist_ok=True)
        try:
            download(dataset=self.dataset, tag=self.tag, target_dir=staging, include=[f.path for f in files],
                     exclude=list(exclude) or None, max_concurrent_downloads=self.max_concurrent)
        except Exception as err:  # openneuro-py raises many kinds (network, API, missing paths)
            return {f.path: f"openneuro-py: {type(err).__name__}: {err}" for f in files}
        return {f.path: None for f in files}


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True)


class DataLadTransport:
    """Downloads with DataLad (``datalad get``) into a DataLad clone of the dataset.

    Parameters
    ----------
    url : str
        Where ``datalad install`` clones the dataset from.
    install : {"auto", "user"}
        "auto": the first fetch installs the clone; "user": the user must
        install it (datasets behind a sign-up).
    runner : callable, optional
        ``runner(command: list[str], cwd: Path)``; default ``subprocess.run``
        with ``check=True`` (tests inject one).
    """

    name = "datalad"
    in_place = True

    def __init__(self, url: str, install: str = "auto", runner: Callable | None = None, jobs: int = 4,
                 signup: str | None = None):
        self.url = url
        self.install = install
        self.runner = runner or _run
        self.jobs = jobs
        self.signup = signup

    @staticmethod
    def installed(root: Path) -> bool:
        return (root / ".datalad").is_dir() or (root / ".git").exists()

    def check(self, root: Path, cmd: str) -> None:
        """Fail at once when DataLad is missing or the clone must come from the user."""
        if self.install == "user" and not self.installed(root):
            raise FetchError(
                f"this dataset needs a sign-up: accept its terms at {self.signup}, then install it with DataLad "
                f"(`datalad install -r -s {self.url} {root}`) and rerun `{cmd}`; or copy its files into {root}"
            )
        if self.runner is _run and not (shutil.which("datalad") and shutil.which("git-annex")):
            raise FetchError(f"`datalad` and `git-annex` must be on PATH to fetch from {self.url}: {DATALAD_INSTALL}; "
                             f"then rerun `{cmd}`")

    def prepare(self, root: Path) -> None:
        if self.installed(root):
            return
        if root.exists() and any(root.iterdir()):
            raise FetchError(f"{root} exists and is not a DataLad dataset: move it away, or pass --root elsewhere")
        root.parent.mkdir(parents=True, exist_ok=True)
        self.runner(["datalad", "install", "-s", self.url, str(root)], root.parent)

    def fetch(self, files: Sequence[FileSpec], staging: Path) -> dict[str, str | None]:
        if not files:
            return {}
        root = files[0].root
        out: dict[str, str | None] = {}
        try:
            self.prepare(root)
            paths = []
            for spec in files:
                if spec.is_glob:  # install the subdatasets on the way (no content), then list the matches
                    lead = []
                    for part in spec.path.split("/")[:-1]:
                        if any(c in part for c in "*?["):
                            break
                        lead.append(part)
                    prefix = "/".join(lead) or "."
                    self.runner(["datalad", "get", "-n", "-d", str(root), prefix], root)
                    paths += [p.relative_to(root).as_posix() for p in sorted(root.glob(spec.path))]
                else:
                    paths.append(spec.path)
            for i in range(0, len(paths), 200):
                self.runner(["datalad", "get", "-J", str(self.jobs), "-d", str(root), *paths[i : i + 200]], root)
        except (subprocess.CalledProcessError, OSError, FetchError) as err:
            return {f.path: f"datalad: {err}" for f in files}
        for spec in files:
            out[spec.path] = None
        return out
