"""A content-addressed on-disk cache.

An entry's key is the hash of everything that determines it: the checksums of
its inputs, the model id and revision, the parameters, and the version of the
step that computed it (bump ``version`` when a step's code changes its output).
Entries are written to a temporary file and renamed, so an interrupted write
leaves nothing behind; each entry carries a checksum, and an entry that fails
it (a truncated or corrupt file) is deleted and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
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
        """The arrays stored under ``key``, or None when absent or corrupt (then deleted)."""
        path = self._entry(step, key)
        check = path.with_suffix(".sha256")
        if not path.exists():
            return None
        try:
            if not check.exists() or check.read_text().strip() != file_digest(path):
                raise ValueError("checksum mismatch")
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except Exception as err:  # a corrupt entry is recomputed, never trusted
            log.warning("cache entry %s/%s is corrupt (%s); recomputing", step, key[:12], err)
            path.unlink(missing_ok=True)
            check.unlink(missing_ok=True)
            return None

    def put(self, step: str, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Store ``arrays`` under ``key`` atomically."""
        path = self._entry(step, key)

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})

        atomic_write(path, write)
        atomic_write(path.with_suffix(".sha256"), lambda tmp: tmp.write_text(file_digest(path)))

    def memoize(
        self,
        step: str,
        version: int | str,
        parts: Mapping,
        compute: Callable[[], Mapping[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """The cached arrays for ``parts``, computing and storing them on a miss."""
        key = self.key(step, version, parts)
        hit = self.get(step, key)
        if hit is not None:
            return hit
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        self.put(step, key, arrays)
        return arrays

    # -- folders --------------------------------------------------------------
    def folder(self, step: str, key: str, build: Callable[[Path], None]) -> Path:
        """A folder built once by ``build(tmpdir)``, then renamed into place.

        A manifest of file sizes written last marks the folder complete; a
        folder whose files do not match it is rebuilt.
        """
        dest = self.root / step / key
        manifest = dest / ".complete.json"
        if manifest.exists():
            try:
                sizes = json.loads(manifest.read_text())
                if all((dest / name).stat().st_size == size for name, size in sizes.items()):
                    return dest
            except (OSError, ValueError):
                pass
            log.warning("cached folder %s/%s is incomplete; rebuilding", step, key[:12])
        shutil.rmtree(dest, ignore_errors=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{key}."))
        try:
            build(tmp)
            sizes = {
                str(p.relative_to(tmp)): p.stat().st_size for p in sorted(tmp.rglob("*")) if p.is_file()
            }
            (tmp / ".complete.json").write_text(json.dumps(sizes))
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return dest
