"""The simulated cohorts as datasets: ``Simulated`` (stories) and ``SimulatedMovie``, generated on first use.

The generators are ``brainalign.simulate.generate`` and ``generate_movie``; this module reads what
they write, and both cohorts sample their features where the generators planted their sources
(``brainalign.simulate.SAMPLE_AT``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..simulate import SAMPLE_AT
from ..spaces import LANGUAGE_ROIS, MOVIE_ROI_GROUPS, fslr_areas, glasser_area, glasser_subregions
from .base import Dataset
from .lebel2023 import DS003020

__all__ = ["Simulated", "SimulatedMovie", "load_simulated", "load_simulated_movie"]


class Simulated(DS003020):
    """The simulated cohort: ds003020 layout plus its space, ROIs and ground truth.

    Generated deterministically from ``seed`` on first use (see
    ``brainalign.simulate``); every figure made from it is labelled simulated.
    """

    name = "simulated"
    space = "fsLR-32k cortex (subsampled)"
    shared_space = True  # unlike ds003020's native voxels: every participant is read on the same vertices
    simulated = True
    #: the instants the cohort's sources were planted at (``simulate.SAMPLE_AT``)
    sample_at = SAMPLE_AT

    def __init__(self, root: str | Path):
        super().__init__(root, tr=2.0)
        meta = self.root / "derivative" / "brainalign"
        self.split = json.loads((meta / "split.json").read_text())
        with np.load(meta / "space.npz") as z:
            self.vertices = z["vertices"]
            self._roi_names = [str(n) for n in z["roi_names"]]
            self._roi_index = z["roi_index"]
        self.held_out_subjects = list(self.split.get("held_out_subjects", []))

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks (the same for every subject): the ``ROI_GROUPS`` and "language"."""
        out = {name: self._roi_index == i for i, name in enumerate(self._roi_names) if name != "other"}
        out["language"] = np.isin(self._roi_index, [self._roi_names.index(n) for n in LANGUAGE_ROIS])
        return out

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        """ROI -> Glasser area -> mask, from the HCP-MMP1 labels of the sampled fsLR vertices."""
        return glasser_subregions(fslr_areas(self.vertices))

    def ground_truth(self) -> dict[str, np.ndarray]:
        """What was planted: per-voxel source shares and explainable variance, the sources per run."""
        with np.load(self.root / "derivative" / "brainalign" / "ground_truth.npz") as z:
            return {k: z[k] for k in z.files}


# -- the simulated movie cohort ------------------------------------------------------
class SimulatedMovie(Dataset):
    """The simulated movie-watching cohort (see ``brainalign.simulate.generate_movie``).

    Eleven episodes of about 90 s (ten train, one test presented ``n_repeats``
    times, four by default; the split manifest names them), watched by ten
    participants, five of them held out: shots of natural images with slow
    camera motion (:func:`brainalign.stimuli.make_movie`) and a dialogue of
    two speakers. TR 1.49 s as in CNeuroMod; volume ``k`` is
    acquired over the movie interval ``[k * tr, (k + 1) * tr)`` (onsets:
    ``tr_times``) and stands for its middle (``sample_times``). Layout::

        stimuli/<run>.wav              16 kHz mono speech track
        stimuli/<run>_words.tsv        word, onset, offset, speaker
        stimuli/<run>_lines.tsv        speaker, onset, offset, line
        stimuli/<run>_shots.tsv        onset, offset, image, on_screen, camera path (frames are rendered from it)
        fmri/<subject>.h5              one dataset per run: (n_trs, n_voxels); the test run (n_repeats, n_trs, n_voxels)
        brainalign/split.json          split, seed, tr, fps, frame size, n_trs and frame digests per run
        brainalign/space.npz           fsLR vertices, ROI index per vertex (``MOVIE_ROI_GROUPS``), hemisphere
        brainalign/ground_truth.npz    planted sources per run, ROI shares, explainable variance
    """

    name = "simulated-movie"
    space = "fsLR-32k cortex (subsampled)"
    simulated = True
    #: the instants the cohort's sources were planted at (``simulate.SAMPLE_AT``)
    sample_at = SAMPLE_AT

    def __init__(self, root: str | Path):
        self.root = Path(root)
        meta = self.root / "brainalign"
        if not (meta / "split.json").exists():
            raise FileNotFoundError(f"{meta / 'split.json'} not found: {self.root} is not a simulated movie cohort")
        self.split = json.loads((meta / "split.json").read_text())
        self.subjects = list(self.split["subjects"])
        self.runs = list(self.split["train"]) + list(self.split["test"])
        self.tr = float(self.split["tr"])
        self.fps = float(self.split["fps"])
        self.frame_size = int(self.split["frame_size"])
        self.held_out_subjects = list(self.split.get("held_out_subjects", []))
        with np.load(meta / "space.npz") as z:
            self.vertices = z["vertices"]
            self._roi_names = [str(n) for n in z["roi_names"]]
            self._roi_index = z["roi_index"]

    def _table(self, run: str, what: str) -> pd.DataFrame:
        self._check(run=run)
        return pd.read_csv(self.root / "stimuli" / f"{run}_{what}.tsv", sep="\t", keep_default_na=False)

    def n_trs(self, run: str) -> int:
        """Number of volumes of a run."""
        self._check(run=run)
        return int(self.split["n_trs"][run])

    def tr_times(self, run: str) -> np.ndarray:
        """Acquisition onset of each volume, ``arange(n_trs) * tr`` seconds, shape (n_trs,)."""
        from ..stimuli import tr_times

        return tr_times(self.n_trs(run), self.tr)

    def words(self, run: str) -> pd.DataFrame:
        """Words of a run: ``word, onset, offset`` (s) and the ``speaker`` who says it."""
        return self._table(run, "words").astype({"word": str, "speaker": str})

    def speakers(self, run: str) -> pd.DataFrame:
        """Who speaks when: one row per line of dialogue, columns ``speaker, onset, offset, line``."""
        return self._table(run, "lines").astype({"speaker": str, "line": str})

    def shots(self, run: str) -> pd.DataFrame:
        """The shots: ``onset, offset, image, on_screen`` (speaker whose face is shown, "" none) and camera path."""
        return self._table(run, "shots").astype({"image": str, "on_screen": str})

    def frame_times(self, run: str) -> np.ndarray:
        """When each frame is shown (s), shape (n_frames,)."""
        duration = len(self.audio(run)[0]) / self.split["sr"]
        return np.arange(int(np.floor(duration * self.fps))) / self.fps

    def on_screen(self, run: str) -> np.ndarray:
        """The speaker whose face is on screen in each frame ("" for none), array of str of shape (n_frames,)."""
        from ..stimuli import on_screen_at

        return on_screen_at(self.shots(run), self.frame_times(run))

    def frames(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """The run's video: uint8 frames of shape (n_frames, size, size, 3) and their times (s), (n_frames,).

        Rendered from the shot list; a digest checks they are the frames the responses were simulated from.
        """
        from ..simulate import frames_digest
        from ..stimuli import render_shots

        times = self.frame_times(run)
        frames = render_shots(self.shots(run), times, self.frame_size)
        if frames_digest(frames) != self.split["frames_sha256"][run]:
            raise RuntimeError(
                f"the frames of {run!r} rendered now differ from those the responses of {self.root} were simulated "
                "from (the renderer or the images changed): regenerate the cohort with "
                "brainalign.simulate.generate_movie(seed, force=True)"
            )
        return frames, times

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        from ..stimuli import read_wav

        self._check(run=run)
        return read_wav(self.root / "stimuli" / f"{run}.wav")

    def _read(self, subject: str, run: str) -> np.ndarray:
        import h5py

        self._check(subject, run)
        with h5py.File(self.root / "fmri" / f"{subject}.h5", "r") as f:
            return np.asarray(f[run], dtype=np.float32)

    def responses(self, subject: str, run: str) -> np.ndarray:
        data = self._read(subject, run)
        return data.mean(axis=0) if data.ndim == 3 else data

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        data = self._read(subject, run)
        return data if data.ndim == 3 else None

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks (the same for every subject): ``MOVIE_ROI_GROUPS`` and "language" (LTC, AG, IFG, MFG, PCC)."""
        out = {name: self._roi_index == i for i, name in enumerate(self._roi_names) if name != "other"}
        out["language"] = np.isin(self._roi_index, [self._roi_names.index(n) for n in LANGUAGE_ROIS])
        return out

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        """ROI -> Glasser area -> mask, from the HCP-MMP1 labels of the sampled fsLR vertices."""
        bare = np.asarray([glasser_area(a) for a in fslr_areas(self.vertices)], dtype=object)
        out = {}
        for roi, group in MOVIE_ROI_GROUPS.items():
            masks = {area: bare == area for area in group}
            out[roi] = {area: m for area, m in masks.items() if m.any()}
        return out

    def ground_truth(self) -> dict[str, np.ndarray]:
        """What was planted: ``sources/<run>`` (HRF-convolved, (n_trs, sum of dims)), ``stimulus_sources/<run>``
        (before the HRF), ``source_names``, ``source_dims``, ``roi_sources`` (ROI x source shares),
        ``roi_names`` and ``ev`` (subject x voxel explainable variance)."""
        with np.load(self.root / "brainalign" / "ground_truth.npz") as z:
            return {k: z[k] for k in z.files}


def load_simulated(seed: int = 0, root: str | Path | None = None) -> Simulated:
    """The ``simulated`` loader of ``load_dataset``: the story cohort of ``seed``, generated in ``root`` on first use."""
    from ..simulate import generate

    return Simulated(generate(seed=seed, root=root))


def load_simulated_movie(seed: int = 0, root: str | Path | None = None) -> SimulatedMovie:
    """The ``simulated-movie`` loader of ``load_dataset``: the movie cohort of ``seed``, generated in ``root`` on first use."""
    from ..simulate import generate_movie

    return SimulatedMovie(generate_movie(seed=seed, root=root))

