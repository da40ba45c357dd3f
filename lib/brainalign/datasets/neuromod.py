"""Courtois NeuroMod Friends / Movie10 through the Algonauts 2025 release: ``NeuroMod`` and the ``neuromod`` loader."""

from __future__ import annotations

import ast
import numbers
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..manifests import read_manifest
from ..spaces import SCHAEFER_LABELS, SCHAEFER_ROI_GROUPS, read_schaefer_labels, schaefer_rois
from .base import Dataset, split_on_disk

__all__ = ["NeuroMod", "read_transcript_tsv", "load_neuromod", "ALGONAUTS_SIGNUP", "ALGONAUTS_REPO", "H5_STEM"]


def read_transcript_tsv(path: str | Path) -> pd.DataFrame:
    """Words of an Algonauts 2025 transcript (one row per 1.49-s TR).

    The columns ``words_per_tr``, ``onsets_per_tr`` and ``durations_per_tr``
    hold Python list literals (empty in silent TRs); onsets are seconds from
    the movie onset.

    Returns
    -------
    DataFrame with columns ``word``, ``onset``, ``offset`` (= onset + duration),
    sorted by onset.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"transcript not found: {path}")
    table = pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str)
    need = {"words_per_tr", "onsets_per_tr", "durations_per_tr"}
    if need - set(table.columns):
        raise ValueError(f"{path} lacks columns {sorted(need - set(table.columns))}; it has {list(table.columns)}")

    def parse(text: str, row: int, column: str) -> list:
        text = text.strip()
        if not text:
            return []
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ValueError(f"{path} row {row + 1}: {column} is not a list: {text[:60]!r}") from None
        return list(value) if isinstance(value, (list, tuple)) else [value]

    rows = []
    for i, rec in enumerate(table.itertuples(index=False)):
        words = parse(rec.words_per_tr, i, "words_per_tr")
        onsets = parse(rec.onsets_per_tr, i, "onsets_per_tr")
        durations = parse(rec.durations_per_tr, i, "durations_per_tr")
        if not len(words) == len(onsets) == len(durations):
            raise ValueError(f"{path} row {i + 1}: {len(words)} words, {len(onsets)} onsets, {len(durations)} durations")
        rows += [(str(w).strip(), float(o), float(o) + float(d)) for w, o, d in zip(words, onsets, durations) if str(w).strip()]
    frame = pd.DataFrame(rows, columns=["word", "onset", "offset"]).astype({"word": str, "onset": float, "offset": float})
    return frame.sort_values("onset", kind="stable").reset_index(drop=True)


#: the part of the release's fMRI file names after the task (then ``_desc-s123456`` for Friends, and ``_bold.h5``)
H5_STEM = "space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net"
_KEY = {
    "friends": re.compile(r"^ses-\d+_task-(s\d{2}e\d{2}[a-z])$"),
    "movie10": re.compile(r"^ses-\d+_task-([a-z]+\d{2})(?:_run-\d+)?$"),
}
ALGONAUTS_SIGNUP = "https://forms.gle/kmgYdxR92H4nUBfH7"
ALGONAUTS_REPO = "https://github.com/courtois-neuromod/algonauts_2025.competitors.git"


class NeuroMod(Dataset):
    """Courtois NeuroMod Friends or Movie10, as released for the Algonauts 2025 challenge.

    Layout read::

        fmri/sub-0X/func/sub-0X_task-friends_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_desc-s123456_bold.h5
            one dataset per run, "ses-<NNN>_task-s<SS>e<EE><x>", each (n_trs, 1000)
        fmri/sub-0X/func/sub-0X_task-movie10_space-MNI152NLin2009cAsym_atlas-Schaefer18_parcel-1000Par7Net_bold.h5
            "ses-<NNN>_task-<movie><seg>[_run-<1|2>]"
        stimuli/transcripts/friends/s<S>/friends_s<SS>e<EE><x>.tsv
        stimuli/transcripts/movie10/<movie>/movie10_<movie><seg>.tsv
            one row per TR: text_per_tr, words_per_tr, onsets_per_tr, durations_per_tr
        stimuli/movies/friends/s<S>/friends_s<SS>e<EE><x>.mkv
        stimuli/movies/movie10/<movie>/<movie><seg>.mkv
            the run's video and sound track, from the movie onset (read only by ``audio`` and ``frames``)

    Runs are named without the session prefix (``s01e02a``, ``life03``) and
    are those with both fMRI (for at least one subject) and a transcript. A
    run stored more than once (Movie10's ``figures`` and ``life``, shown twice:
    ``_run-1``, ``_run-2``) gives repeats. The fMRI and the movie start
    together: row ``k`` is acquired from ``k * 1.49`` s after the movie onset,
    the time base of the transcripts, and stands for the interval it was
    acquired over (features sampled at its middle, ``sample_at = "centre"``). Subjects' runs can differ by a TR or two; every
    subject's responses are cut to the shortest one on disk, so they all match
    ``tr_times``. Some runs are missing for some subjects (see
    ``subject_runs``).

    ``audio(run)`` is the movie's sound track mixed to mono, at the file's
    sample rate; ``frames(run)`` its frames at ``frame_rate`` frames per second
    (for every time ``0, 1/frame_rate, ...`` the frame shown then), resized so
    that the short side is ``frame_size`` pixels. Both are decoded from the
    .mkv file as a stream (:func:`brainalign.stimuli.formats.read_movie_frames`):
    decoded whole at ~30 frames/s and full size, an episode would take tens of
    GB; at 4 frames/s and 224 pixels it takes a few hundred MB.

    Space: 1000 Schaefer-2018 parcels (7 networks) in MNI152NLin2009cAsym. ROIs
    come from the parcel names of ``Schaefer2018_1000Parcels_7Networks_order.txt``
    (``SCHAEFER_ROI_GROUPS``). Access needs a sign-up (the Algonauts 2025 terms
    of use); see ``brainalign data fetch neuromod``.
    """

    name = "neuromod"
    space = "MNI152NLin2009cAsym, Schaefer-2018 1000 parcels (7 networks)"
    tr = 1.49
    TASKS = ("friends", "movie10")

    def __init__(self, root: str | Path, task: str = "friends", split: dict | None = None, labels: str | Path | None = None,
                 frame_rate: float = 4.0, frame_size: int = 224):
        import h5py

        if task not in self.TASKS:
            raise ValueError(f"unknown task {task!r} for neuromod; valid: {list(self.TASKS)}")
        if isinstance(frame_rate, bool) or not (isinstance(frame_rate, numbers.Real) and frame_rate > 0):
            raise ValueError(f"frame_rate={frame_rate!r}: the frames kept per second must be a number > 0 (e.g. 4.0)")
        if isinstance(frame_size, bool) or not (isinstance(frame_size, numbers.Integral) and frame_size >= 16):
            raise ValueError(f"frame_size={frame_size!r}: the pixels of the frames' short side must be an integer >= 16 "
                             "(e.g. 224)")
        self.frame_rate = float(frame_rate)
        self.frame_size = int(frame_size)
        self.root = Path(root)
        self.task = task
        self._labels_path = Path(labels) if labels is not None else None
        self._h5: dict[str, Path] = {}
        for sub in sorted((self.root / "fmri").glob("sub-*")):
            path = self._find_h5(sub)
            if path is not None:
                self._h5[sub.name] = path
        if not self._h5:
            raise FileNotFoundError(
                f"no {task} fMRI in {self.root / 'fmri'} (expected fmri/sub-0X/func/sub-0X_task-{task}_{H5_STEM}*_bold.h5). "
                f"The Algonauts 2025 release needs a sign-up ({ALGONAUTS_SIGNUP}); then `brainalign data fetch neuromod` "
                f"(see its message) fills {self.root}"
            )
        self._keys: dict[tuple[str, str], list[str]] = {}
        shapes: dict[str, list[tuple[int, int]]] = {}
        for subject, path in self._h5.items():
            try:
                with h5py.File(path, "r") as f:
                    for key in sorted(f):
                        m = _KEY[task].match(key)
                        if m:
                            self._keys.setdefault((subject, m.group(1)), []).append(key)
                            shapes.setdefault(m.group(1), []).append(tuple(f[key].shape))
            except OSError as err:
                raise ValueError(f"{path} is not a readable HDF5 file ({err})") from err
        with_fmri = sorted(shapes)
        self.runs = [r for r in with_fmri if self._transcript(r).is_file()]
        if not self.runs:
            raise FileNotFoundError(
                f"no transcripts for the {len(with_fmri)} {task} runs with fMRI in {self.root / 'stimuli' / 'transcripts'}; "
                f"`brainalign data fetch neuromod` fetches them"
            )
        self._n = {r: min(s[0] for s in shapes[r]) for r in self.runs}
        widths = {s[1] for r in self.runs for s in shapes[r]}
        if len(widths) != 1:
            raise ValueError(f"runs of {self.root / 'fmri'} have different numbers of parcels: {sorted(widths)}")
        self.n_parcels = widths.pop()
        self.subjects = sorted({s for s, r in self._keys if r in self._n})
        self.split = split if split is not None else {"train": list(self.runs), "test": []}

    def _find_h5(self, sub: Path) -> Path | None:
        func = sub / "func"
        desc = "_desc-s123456" if self.task == "friends" else ""
        exact = func / f"{sub.name}_task-{self.task}_{H5_STEM}{desc}_bold.h5"
        if exact.exists():
            return exact
        found = sorted(p for p in func.glob(f"{sub.name}_task-{self.task}_{H5_STEM}*_bold.h5") if "cropped" not in p.name)
        return found[0] if found else None

    def _transcript(self, run: str) -> Path:
        base = self.root / "stimuli" / "transcripts" / self.task
        if self.task == "friends":
            return base / f"s{int(run[1:3])}" / f"friends_{run}.tsv"
        movie = run.rstrip("0123456789")
        return base / movie / f"movie10_{run}.tsv"

    def movie(self, run: str) -> Path:
        """Where the run's movie file is (whether or not it is there)."""
        self._check(run=run)
        base = self.root / "stimuli" / "movies" / self.task
        if self.task == "friends":
            return base / f"s{int(run[1:3])}" / f"friends_{run}.mkv"
        return base / run.rstrip("0123456789") / f"{run}.mkv"  # no "movie10_" prefix, unlike the transcripts

    def _movie_file(self, run: str) -> Path:
        path = self.movie(run)
        if not path.is_file():
            raise FileNotFoundError(
                f"the movie of run {run!r} is not at {path}. The movies are in the release's stimuli/movies/ folder, "
                f"which `brainalign data fetch neuromod` leaves out unless asked (they are tens of GB): "
                f"`brainalign data fetch neuromod --include movies --runs {run}` fetches it (or, in the DataLad clone at "
                f"{self.root}, `datalad get {path.relative_to(self.root)}`; or copy the file there)"
            )
        return path

    def audio(self, run: str) -> tuple[np.ndarray, int]:
        """The run's sound track: float32 mono samples from the movie onset, and the file's sample rate."""
        from ..stimuli.formats import read_movie_audio

        return read_movie_audio(self._movie_file(run))

    def frames(self, run: str) -> tuple[np.ndarray, np.ndarray]:
        """The run's video: uint8 frames (n_frames, height, width, 3), ``frame_rate`` per second, the short side
        ``frame_size`` pixels, and their times (s from the movie onset), (n_frames,)."""
        from ..stimuli.formats import read_movie_frames

        return read_movie_frames(self._movie_file(run), self.frame_rate, self.frame_size)

    def subject_runs(self, subject: str) -> list[str]:
        self._check(subject)
        return [r for r in self.runs if (subject, r) in self._keys]

    def tr_times(self, run: str) -> np.ndarray:
        from ..stimuli import tr_times

        self._check(run=run)
        return tr_times(self._n[run], self.tr)

    def words(self, run: str) -> pd.DataFrame:
        self._check(run=run)
        return read_transcript_tsv(self._transcript(run))

    def _read(self, subject: str, run: str) -> np.ndarray:
        import h5py

        self._check(subject, run)
        keys = self._keys.get((subject, run))
        if not keys:
            raise FileNotFoundError(f"subject {subject!r} has no fMRI for run {run!r} in {self._h5[subject]} "
                                    f"(missing from the release or not fetched; {len(self.subject_runs(subject))} runs on disk)")
        n = self._n[run]
        with h5py.File(self._h5[subject], "r") as f:
            return np.stack([np.asarray(f[k][:n], dtype=np.float32) for k in keys])

    def responses(self, subject: str, run: str) -> np.ndarray:
        data = self._read(subject, run)
        return data[0] if len(data) == 1 else data.mean(axis=0)

    def repeats(self, subject: str, run: str) -> np.ndarray | None:
        data = self._read(subject, run)
        return data if len(data) > 1 else None

    def labels(self) -> list[str]:
        """Parcel names (``"LH_Vis_1"``...), in the order of the response columns."""
        candidates = [self._labels_path] if self._labels_path is not None else [
            self.root / "atlas" / SCHAEFER_LABELS, config.data_home() / "atlases" / SCHAEFER_LABELS]
        for path in candidates:
            if path.is_file():
                names = read_schaefer_labels(path)
                if len(names) != self.n_parcels:
                    raise ValueError(f"{path} names {len(names)} parcels; the responses have {self.n_parcels}")
                return names
        raise FileNotFoundError(
            f"no Schaefer-2018 parcel names ({SCHAEFER_LABELS}) at {[str(p) for p in candidates]}: "
            "`brainalign data fetch neuromod` fetches them (from the CBIG repository) into the data home's atlases/ "
            "folder; or pass labels=PATH"
        )

    def rois(self, subject: str | None = None) -> dict[str, np.ndarray]:
        """ROI masks over the 1000 parcels (``schaefer_rois``; the same for every subject)."""
        return schaefer_rois(self.labels())

    def subregions(self) -> dict[str, dict[str, np.ndarray]]:
        """ROI -> parcel name -> mask (one parcel each), for the groups of ``SCHAEFER_ROI_GROUPS``."""
        names = self.labels()
        rois = schaefer_rois(names)
        return {roi: {n: np.arange(len(names)) == i for i, n in enumerate(names) if rois[roi][i]}
                for roi in SCHAEFER_ROI_GROUPS}


def load_neuromod(root: str | Path | None = None, task: str = "friends", labels: str | Path | None = None,
                  frame_rate: float = 4.0, frame_size: int = 224) -> NeuroMod:
    """The ``neuromod`` loader of ``load_dataset``: ``NeuroMod`` with the manifest's split of ``task``.

    ``root`` defaults to ``algonauts_2025.competitors`` in the data home; ``task``, ``labels``, ``frame_rate`` and
    ``frame_size`` go to ``NeuroMod``.
    """
    root = Path(root) if root is not None else config.data_home() / "algonauts_2025.competitors"
    if not (root / "fmri").is_dir():
        raise FileNotFoundError(
            f"dataset 'neuromod' (CNeuroMod Friends / Movie10, Algonauts 2025 release) is not at {root}. Access needs "
            f"a sign-up: accept the terms at {ALGONAUTS_SIGNUP}, then `brainalign data fetch neuromod` says how to "
            f"install it with DataLad into {root} (or copy its fmri/ and stimuli/transcripts/ folders there). "
            "Offline, use dataset='simulated'."
        )
    manifest = read_manifest("neuromod")
    ds = NeuroMod(root, task=task, labels=labels, frame_rate=frame_rate, frame_size=frame_size)
    ds.split = split_on_disk(manifest if task == "friends" else manifest["splits"][task], ds.runs)
    return ds
