"""A content-addressed on-disk cache.

An entry's key is the hash of everything that determines it: the checksums of
its inputs, the model id and revision, the parameters, and the version of the
step that computed it (bump ``version`` when a step's code changes its output).
Entries are written to a temporary file and renamed, so an interrupted write
leaves nothing behind; each entry carries a checksum, and an entry that fails
it (a truncated or corrupt file) is deleted and recomputed.

Several processes may compute and write one key at once (the workers of a
sweep sharing a cache on a shared filesystem). The first complete entry to be
published wins and is never replaced: an array entry is published with a hard
link, which fails when the name exists, and a folder with a rename, which fails
onto a non-empty folder; the loser's copy is discarded and it reads the
winner's. A published entry is therefore immutable, so its checksum (a function
of its bytes) can be written by any process that finds it missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from . import config

__all__ = ["digest", "file_digest", "Cache", "atomic_write"]

log = logging.getLogger(__name__)


def _canonical(obj: object) -> object:
    """A JSON-able, order-stable stand-in for ``obj`` used for hashing."""
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        return {"ndarray": hashlib.sha256(arr.tobytes()).hexdigest(), "shape": list(arr.shape), "dtype": str(arr.dtype)}
    if isinstance(obj, Path):
        return {"file": file_digest(obj)}
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return obj.item()
    if isinstance(obj, float):
        return repr(obj)
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    raise TypeError(f"cannot hash a {type(obj).__name__} for a cache key")


def digest(obj: object) -> str:
    """The sha256 hex digest of ``obj`` (dicts, lists, arrays, paths, scalars)."""
    text = json.dumps(_canonical(obj), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_digest(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _publish_once(tmp: Path, path: Path) -> bool:
    """Give the complete file ``tmp`` the name ``path`` unless that name exists; True when it was given.

    A hard link is atomic and never replaces an existing name. On a filesystem
    without hard links the file is renamed over (the last writer wins there).
    """
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here (some network or FUSE filesystems)
        os.replace(tmp, path)
        return True


class Cache:
    """Arrays and folders stored under keys derived from their inputs.

    Parameters
    ----------
    root : path, optional
        Where entries live (default: ``config.cache_dir()``).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else config.cache_dir()

    @staticmethod
    def key(step: str, version: int | str, parts: Mapping) -> str:
        """The key of an entry: hash of the step, its version and its parts."""
        return digest({"step": step, "version": str(version), "parts": parts})

    def _entry(self, step: str, key: str) -> Path:
        return self.root / step / f"{key}.npz"

    # -- arrays ---------------------------------------------------------------
    def get(self, step: str, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None when absent or corrupt (then deleted).

        An entry found without its checksum file was published by a writer that
        has not written the checksum yet (or was killed before it did); it is
        complete (only complete files are published), so its checksum is written
        here.
        """
        path = self._entry(step, key)
        check = path.with_suffix(".sha256")
        if not path.exists():
            return None
        try:
            try:
                expected = check.read_text().strip()
            except FileNotFoundError:
                expected = None
            actual = file_digest(path)
            if expected is None:
                try:
                    atomic_write(check, lambda tmp: tmp.write_text(actual))
                except PermissionError:  # a read-only cache: the entry is still complete
                    pass
            elif expected != actual:
                raise ValueError("checksum mismatch")
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except FileNotFoundError:  # deleted meanwhile by a process that found it corrupt
            return None
        except Exception as err:  # a corrupt entry is recomputed, never trusted
            log.warning("cache entry %s/%s is corrupt (%s); recomputing", step, key[:12], err)
            # the checksum first: while the entry exists no new one can be published, so this deletes
            # only what was judged corrupt
            check.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            return None

    def put(self, step: str, key: str, arrays: Mapping[str, np.ndarray]) -> bool:
        """Store ``arrays`` under ``key`` atomically, unless another process stored that key first.

        Returns
        -------
        stored : bool
            True when this call's entry was published; False when an entry of
            ``key`` existed already (it is kept; this call's copy is discarded).
        """
        path = self._entry(step, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp)
        try:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
            checksum = file_digest(tmp)
            stored = _publish_once(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        if stored:
            atomic_write(path.with_suffix(".sha256"), lambda t: t.write_text(checksum))
        return stored

    def memoize(
        self,
        step: str,
        version: int | str,
        parts: Mapping,
        compute: Callable[[], Mapping[str, np.ndarray]],
        shipped: str | os.PathLike | None = None,
    ) -> dict[str, np.ndarray]:
        """The cached arrays for ``parts``, computing and storing them on a miss.

        ``shipped`` is a read-only folder of entries that came with the
        package, laid out as a cache (``<shipped>/<step>/<key>.npz`` and its
        ``.sha256``): on a miss, an entry of ``key`` found there and matching
        its checksum is copied into this cache instead of being computed (one
        that does not match is logged and left alone, and the arrays are computed).
        """
        key = self.key(step, version, parts)
        hit = self.get(step, key)
        if hit is None and shipped is not None:
            hit = self._adopt(Path(shipped), step, key)
        if hit is not None:
            return hit
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        if not self.put(step, key, arrays):  # another process stored it first: use its entry, as every reader will
            stored = self.get(step, key)
            if stored is not None:
                return stored
        return arrays

    def _adopt(self, shipped: Path, step: str, key: str) -> dict[str, np.ndarray] | None:
        path = shipped / step / f"{key}.npz"
        if not path.exists():
            return None
        try:
            if file_digest(path) != path.with_suffix(".sha256").read_text().strip():
                raise ValueError("checksum mismatch")
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except Exception as err:  # never trusted, never deleted: it belongs to the installation
            log.warning("shipped cache entry %s is unusable (%s); computing it", path, err)
            return None
        self.put(step, key, arrays)
        return arrays

    # -- folders --------------------------------------------------------------
    def folder(self, step: str, key: str, build: Callable[[Path], None]) -> Path:
        """A folder built once by ``build(tmpdir)``, then renamed into place.

        A manifest of file sizes written last marks the folder complete; a
        folder whose files do not match it is rebuilt. When several processes
        build one key at once, the first rename wins and the others discard
        their copy.
        """
        dest = self.root / step / key
        if self._complete(dest):
            return dest
        # checked in this order, as another process may publish between the two looks: a folder that existed
        # before the completeness check and fails it was damaged after its (always complete) publication
        if dest.exists() and not self._complete(dest):
            log.warning("cached folder %s/%s is incomplete; rebuilding", step, key[:12])
            self._discard(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{key}."))
        try:
            build(tmp)
            sizes = {
                str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
            }
            (tmp / ".complete.json").write_text(json.dumps(sizes))
            for _ in range(3):
                try:
                    os.rename(tmp, dest)  # fails onto a non-empty folder: never replaces a published one
                    return dest
                except OSError:
                    if self._complete(dest):  # another process published it first
                        return dest
                    self._discard(dest)
            raise OSError(f"could not publish the cached folder {dest}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _complete(dest: Path) -> bool:
        """Whether ``dest`` holds every file of its manifest, at its recorded size."""
        try:
            sizes = json.loads((dest / ".complete.json").read_text())
            return all((dest / name).stat().st_size == size for name, size in sizes.items())
        except (OSError, ValueError):
            return False

    @classmethod
    def _discard(cls, dest: Path) -> None:
        """Move a damaged folder aside (one rename, so a concurrent publisher is never hit), then delete it.

        When what was moved aside is complete after all (another process discarded the damaged folder and
        published a new one between this process's check and its rename), it is put back.
        """
        aside = dest.with_name(f".{dest.name}.discard.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        try:
            os.rename(dest, aside)
        except OSError:
            return  # gone already, or replaced meanwhile
        if cls._complete(aside):
            try:
                os.rename(aside, dest)
                return
            except OSError:  # a third copy was published meanwhile: keep that one
                pass
        shutil.rmtree(aside, ignore_errors=True)
