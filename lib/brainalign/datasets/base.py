"""The dataset contract: what every loader of ``brainalign.datasets`` returns (``Dataset``).

The attributes and methods are listed in the docstring of ``brainalign.datasets``;
``split_on_disk`` is how a loader of a real dataset sets its split from the manifest.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["Dataset", "split_on_disk"]


# -- the contract ------------------------------------------------------------------
class Dataset(ABC):
    """The contract every dataset loader fulfils (see the docstring of ``brainalign.datasets``)."""

    name: str
    subjects: list[str]
    runs: list[str]
    tr: float
    space: str
    split: dict
    #: where a volume's features are sampled: a key of ``stimuli.SAMPLE_AT`` (see the docstring of ``brainalign.datasets``)
    sample_at: str = "centre"
    #: whether every subject's voxels are the same points of one space (a surface, parcels); False (ds003020's native
    #: voxels): ROIs, ceilings and fits are per subject, and nothing is averaged across subjects voxel by voxel
    shared_space: bool = True

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

    def subject_runs(self, subject: str) -> list[str]:
        """The runs for which ``subject`` has responses (all runs unless the dataset says otherwise)."""
        self._check(subject)
        return list(self.runs)

    @abstractmethod
    def words(self, run: str) -> pd.DataFrame:
        """Words of a run: columns ``word, onset, offset`` (seconds from stimulus onset).

        A dataset whose ``word`` lacks the text's punctuation adds ``written``, the word as the
        text writes it (with its punctuation), where sentences can be told apart.
        """

    @abstractmethod
    def tr_times(self, run: str) -> np.ndarray:
        """Acquisition onset (s from the stimulus onset) of every row of ``responses(subject, run)``, shape (n_trs,)."""

    def sample_times(self, run: str) -> np.ndarray:
        """Where each row's stimulus features are sampled (s), shape (n_trs,).

        ``stimuli.sample_times(self.tr_times(run), self.tr, self.sample_at)``:
        every feature, window and attribution of a run is computed at these times.
        """
        from ..stimuli import sample_times

        return sample_times(self.tr_times(run), self.tr, self.sample_at)

    @abstractmethod
    def responses(self, subject: str, run: str) -> np.ndarray:
        """Responses, float32 array of shape (n_trs, n_voxels); repeated runs give the repeat mean."""

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        """All repeats of a run, shape (n_repeats, n_trs, n_voxels), or None if not repeated."""
        return None

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        """The run's audio (float32 samples, sample rate)."""
        raise NotImplementedError(f"dataset {self.name!r} has no audio for run {run!r}")

    def frames(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """The run's video: uint8 frames (n_frames, height, width, 3) and their times in seconds (n_frames,)."""
        raise NotImplementedError(f"dataset {self.name!r} has no video for run {run!r}")

    @property
    def has_audio(self) -> bool:
        """Whether the dataset reads its stimuli's audio (:meth:`audio`; a real dataset's files may still be missing)."""
        return type(self).audio is not Dataset.audio

    @property
    def has_video(self) -> bool:
        """Whether the dataset reads its stimuli's video (:meth:`frames`): a movie dataset, not a story one."""
        return type(self).frames is not Dataset.frames

    @abstractmethod
    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """Regions of interest of ``subject`` (of every subject, where they share a space): name -> mask of shape (n_voxels,)."""

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        """Sub-regions of every ROI: ROI -> sub-region name -> boolean mask of shape (n_voxels,)."""
        raise NotImplementedError(f"dataset {self.name!r} defines no sub-regions")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, subjects={len(self.subjects)}, "
            f"runs={len(self.runs)}, tr={self.tr}, space={self.space!r})"
        )


def split_on_disk(manifest: dict, runs: Sequence[str]) -> dict:
    """The manifest's train / test runs that are on disk.

    Parameters
    ----------
    manifest : dict
        A split manifest (``brainalign.manifests.read_manifest``), or one of its ``splits``.
    runs : sequence of str
        The runs of the dataset on disk.

    Returns
    -------
    dict: ``"train"`` and ``"test"`` -> list of str, the manifest's runs in its order, those not in ``runs`` left out
    """
    present = set(runs)
    return {k: [r for r in manifest[k] if r in present] for k in ("train", "test")}
