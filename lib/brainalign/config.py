"""Runtime configuration: where data lives, offline mode, smoke mode, device, seeds.

Every setting reads an environment variable, so notebooks, the CLI and the
tests agree without passing flags around:

``BRAINALIGN_DATA``
    The data home (default: ``data/home`` in a source checkout, else
    ``~/brainalign_data``). Generated cohorts, downloads and the cache live here.
``BRAINALIGN_OFFLINE``
    ``1`` forbids network access (hub models and downloads fail at once with a
    message that says what to fetch); ``0`` allows it. Unset: offline when the
    Hugging Face hub cannot be reached, or when ``HF_HUB_OFFLINE=1``.
``BRAINALIGN_SMOKE``
    ``1`` shrinks every step to seconds (used by the tests).
``BRAINALIGN_MINIATURE``
    ``1`` replaces every hub model by a tiny randomly initialised model of the
    same class (:mod:`brainalign.models.tiny`): the miniature runs of the
    ``paper`` sets (``brainalign run NOTEBOOK --set paper --miniature``).
``BRAINALIGN_DEVICE``
    Where torch models and himalaya compute by default: ``cpu`` (the default),
    ``cuda``, or ``auto`` (the GPU when torch sees one, else the CPU). The Colab
    set-up cell of every notebook sets ``auto``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import os
import socket
from pathlib import Path

import numpy as np

__all__ = ["data_home", "cache_dir", "is_offline", "smoke", "miniature", "DEVICES", "device", "rng", "repo_root", "release_memory"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def repo_root() -> Path | None:
    """The source checkout that holds this package, or None when installed elsewhere."""
    here = Path(__file__).resolve().parent
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "lib" / "brainalign").is_dir():
            return parent
    return None


def data_home() -> Path:
    """The folder that holds generated and downloaded data, created on first use."""
    env = os.environ.get("BRAINALIGN_DATA")
    if env:
        path = Path(env).expanduser()
    else:
        root = repo_root()
        path = root / "data" / "home" if root is not None else Path.home() / "brainalign_data"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir() -> Path:
    """The content-addressed cache inside the data home."""
    path = data_home() / "cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _flag(name: str) -> bool | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    value = value.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={value!r} is not a boolean; use 1 or 0")


@functools.lru_cache(maxsize=1)
def _hub_reachable(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def is_offline() -> bool:
    """True when the network must not (or cannot) be used."""
    flag = _flag("BRAINALIGN_OFFLINE")
    if flag is not None:
        return flag
    if _flag("HF_HUB_OFFLINE"):
        return True
    return not _hub_reachable()


def smoke() -> bool:
    """True in smoke mode (tiny sizes, for tests)."""
    return bool(_flag("BRAINALIGN_SMOKE"))


def miniature() -> bool:
    """True in miniature mode: hub models are tiny random stand-ins, datasets real-format miniatures."""
    return bool(_flag("BRAINALIGN_MINIATURE"))


#: the values ``BRAINALIGN_DEVICE`` accepts
DEVICES = ("cpu", "cuda", "auto")


def device() -> str:
    """The torch device that models and himalaya use unless told otherwise.

    Returns
    -------
    device : {"cpu", "cuda"}
        ``BRAINALIGN_DEVICE`` (unset: ``"cpu"``); ``"auto"`` resolves to
        ``"cuda"`` when torch sees a GPU, else ``"cpu"``.

    Raises
    ------
    ValueError
        When ``BRAINALIGN_DEVICE`` is not one of :data:`DEVICES`.
    """
    value = os.environ.get("BRAINALIGN_DEVICE", "").strip().lower() or "cpu"
    if value not in DEVICES:
        raise ValueError(f"BRAINALIGN_DEVICE={value!r} is not one of {DEVICES}")
    if value == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return value


def rng(seed: int, *keys: object) -> np.random.Generator:
    """A random generator that depends only on ``seed`` and the ``keys``.

    Every random choice in the library draws from ``rng(seed, "what", ...)``,
    so the same seed gives the same numbers whatever runs before.
    """
    text = repr((int(seed),) + tuple(str(k) for k in keys)).encode()
    digest = hashlib.sha256(text).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


@functools.lru_cache(maxsize=1)
def _libc_trim():
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_memory() -> bool:
    """Give the memory that the process has freed back to the system, where the C library allows it.

    Many tensors of a few MB each (a training run's activations, batches of
    windows) are freed into glibc's heap, which keeps them: the process stays
    hundreds of MB larger than what it holds, and the next step's peak adds
    to that. After such a step the library calls this (glibc's
    ``malloc_trim``; the remedy dask's documentation gives for the same
    symptom), so that a notebook fits a small memory budget such as Binder's.
    It changes no number.

    Returns
    -------
    bool
        Whether anything could be done (False where the C library has no
        ``malloc_trim``: macOS, musl).
    """
    trim = _libc_trim()
    if trim is None:
        return False
    trim(0)
    return True
