"""Brain-tuning's data: each volume's audio window (and video, for an audio-video model) and every tuning participant's responses.

Also the labels of the downstream probe: espeak-ng phoneme mnemonics in six broad classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import models
from ..cache import digest

#: broad phoneme classes of the downstream probe (frames outside any phone are "silence")
PHONE_CLASSES = ("vowel", "stop", "fricative", "nasal", "approximant", "silence")

_VOWEL_START = set("aeiouAEIOUV03@")
_STOPS = {"p", "b", "t", "d", "k", "g", "t#", "t2", "d#", "?"}
_FRICATIVES = {"f", "v", "T", "D", "s", "z", "S", "Z", "h", "x", "tS", "dZ"}
_NASALS = {"m", "n", "N", "n-", "m-"}
_APPROXIMANTS = {"l", "r", "w", "j", "r-", "l-", "R"}


# -- phone labels for the downstream probe ---------------------------------------------------------


def phone_class(symbol: str) -> str | None:
    """The broad class of an espeak-ng phoneme mnemonic, or None when it is not a phone.

    Stress marks (``'`` and ``,``) are ignored; affricates count as fricatives;
    syllabic consonants (``n-``, ``@L``) follow their consonant or vowel start.

    Parameters
    ----------
    symbol : str
        E.g. ``"'aU"``, ``"t#"``, ``"n"``.

    Returns
    -------
    str in :data:`PHONE_CLASSES` or None
    """
    s = str(symbol).strip().lstrip("',")
    if not s:
        return None
    if s in _STOPS:
        return "stop"
    if s in _FRICATIVES:
        return "fricative"
    if s in _NASALS:
        return "nasal"
    if s in _APPROXIMANTS:
        return "approximant"
    if s[0] in _VOWEL_START:
        return "vowel"
    return None


def frame_phone_classes(phones: pd.DataFrame, n_frames: int, fps: float = 50.0) -> np.ndarray:
    """The phone class at the centre of every model frame.

    Parameters
    ----------
    phones : DataFrame with columns ``word`` (the phone symbol), ``onset``, ``offset`` (s)
        E.g. ``stimuli.read_textgrid(path, tier=0)``.
    n_frames : int
        Frames of the model's states over the audio.
    fps : float
        Frames per second (50 for Whisper).

    Returns
    -------
    labels : ndarray of str, shape (n_frames,)
        A class of :data:`PHONE_CLASSES`, or ``""`` for a phone of no class.
    """
    missing = {"word", "onset", "offset"} - set(phones.columns)
    if missing:
        raise ValueError(f"phones lacks columns {sorted(missing)}; expected word, onset, offset")
    centres = (np.arange(int(n_frames)) + 0.5) / float(fps)
    labels = np.full(int(n_frames), "silence", dtype=object)
    onsets, offsets = phones["onset"].to_numpy(float), phones["offset"].to_numpy(float)
    idx = np.searchsorted(onsets, centres, side="right") - 1
    inside = (idx >= 0) & (centres < offsets[np.clip(idx, 0, None)])
    classes = np.array([phone_class(p) or "" for p in phones["word"]], dtype=object)
    labels[inside] = classes[idx[inside]]
    return labels.astype(str)


# -- data -----------------------------------------------------------------------------------------


def window_bounds(times: np.ndarray, tr: float, window: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """The audio window of every volume, in samples at :data:`models.SPEECH_SR`.

    The window of the volume sampled at ``s`` (``Dataset.sample_times``) ends
    at ``s`` and starts ``window`` seconds earlier: causal, the stimulus up to
    the volume's sampling time (see the time base of :mod:`brainalign.stimuli`).
    Bounds may fall outside the audio (the missing part is read as silence).

    Parameters
    ----------
    times : array of shape (n_trs,)
        Sampling time of each volume (s).
    tr : float
        Seconds per TR.
    window : float
        Window length in seconds (``>= tr``).

    Returns
    -------
    start, stop : int arrays of shape (n_trs,)
    """
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) == 0:
        raise ValueError(f"times must be a non-empty 1-D array, got shape {times.shape}")
    if not (np.isfinite(tr) and tr > 0):
        raise ValueError(f"tr={tr!r} must be a positive number of seconds")
    if not (np.isfinite(window) and window >= tr):
        raise ValueError(f"window={window!r} must be at least one TR ({tr} s)")
    stop = np.round(times * models.SPEECH_SR).astype(np.int64)
    return stop - int(round(window * models.SPEECH_SR)), stop


@dataclass
class TuningData:
    """Audio windows (and the video frames shown in them) paired with the responses of several participants.

    Attributes
    ----------
    audio : dict run -> float32 array of shape (n_samples,)
        At :data:`models.SPEECH_SR`.
    bounds : dict run -> (start, stop) int arrays of shape (n_trs,)
        Each TR's window (:func:`window_bounds`).
    responses : dict subject -> dict run -> float32 array of shape (n_trs, n_voxels)
        Every subject has every run, with the run's number of TRs.
    video : dict run -> (frames, frame_times), optional
        For an audio-video model: uint8 frames of shape (n_frames, height, width, 3) and
        when each is shown (s, increasing, in the audio's time frame). A window's frames
        are those shown in it (:meth:`frames`).
    """

    audio: dict[str, np.ndarray]
    bounds: dict[str, tuple[np.ndarray, np.ndarray]]
    responses: dict[str, dict[str, np.ndarray]]
    video: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    subjects: list[str] = field(init=False)
    runs: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.runs = list(self.audio)
        self.subjects = list(self.responses)
        if not self.runs or not self.subjects:
            raise ValueError("TuningData needs at least one run and one subject")
        if set(self.bounds) != set(self.runs):
            raise ValueError(f"bounds has runs {sorted(self.bounds)} but audio has {sorted(self.runs)}")
        widths = {int(np.median(stop - start)) for start, stop in self.bounds.values()}
        if len(widths) != 1:
            raise ValueError(f"every window must have one length, got {sorted(widths)} samples")
        n_vox = set()
        for s, per_run in self.responses.items():
            for r in self.runs:
                if r not in per_run:
                    raise ValueError(f"subject {s!r} has no responses for run {r!r}; runs: {self.runs}")
                y = per_run[r]
                if y.ndim != 2 or len(y) != len(self.bounds[r][0]):
                    raise ValueError(f"responses of {s!r} in {r!r} have shape {y.shape}; expected ({len(self.bounds[r][0])}, n_voxels)")
                n_vox.add(y.shape[1])
        if len(n_vox) != 1:
            raise ValueError(f"subjects must share one space (one number of voxels), got {sorted(n_vox)}")
        if self.video is not None:
            if set(self.video) != set(self.runs):
                raise ValueError(f"video has runs {sorted(self.video)} but audio has {sorted(self.runs)}")
            for r, (frames, times) in self.video.items():
                times = np.asarray(times)
                if frames.ndim != 4 or frames.dtype != np.uint8 or times.shape != (len(frames),) or np.any(np.diff(times) <= 0):
                    raise ValueError(f"video of {r!r}: frames must be uint8 (n_frames, height, width, 3) with increasing "
                                     f"times of shape (n_frames,); got {frames.dtype} {frames.shape} and {times.shape}")

    @property
    def window_samples(self) -> int:
        start, stop = next(iter(self.bounds.values()))
        return int(stop[0] - start[0])

    @property
    def n_voxels(self) -> int:
        return int(next(iter(next(iter(self.responses.values())).values())).shape[1])

    def clips(self, run: str, rows: np.ndarray) -> list[np.ndarray]:
        """The windows of TRs ``rows`` of ``run``, zero-padded outside the audio: float32 (window_samples,) each."""
        audio, (start, stop) = self.audio[run], self.bounds[run]
        out = []
        for i in rows:
            clip = np.zeros(int(stop[i] - start[i]), dtype=np.float32)
            lo, hi = max(0, int(start[i])), min(len(audio), int(stop[i]))
            if hi > lo:
                clip[lo - int(start[i]) : hi - int(start[i])] = audio[lo:hi]
            out.append(clip)
        return out

    def ends(self, run: str, rows: np.ndarray) -> np.ndarray:
        """When the windows of TRs ``rows`` of ``run`` end (s)."""
        return self.bounds[run][1][np.asarray(rows)] / models.SPEECH_SR

    def frames(self, run: str, rows: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The frames shown in the windows of TRs ``rows`` of ``run``, and their times relative to the window's end (s).

        Returns
        -------
        list of (uint8 array of shape (n_inside, height, width, 3), array of shape (n_inside,))
            ``n_inside`` may be 0 (a window before the first frame).
        """
        if self.video is None:
            raise ValueError("this TuningData has no video: give video= (tuning_data(..., video=True))")
        frames, times = self.video[run]
        start, stop = self.bounds[run]
        out = []
        for i in np.asarray(rows):
            end, length = stop[i] / models.SPEECH_SR, (stop[i] - start[i]) / models.SPEECH_SR
            inside = models.window_frames(times, end, length)
            out.append((frames[inside], np.asarray(times)[inside] - end))
        return out

    def subset(self, subjects: Sequence[str]) -> TuningData:
        """The same audio and windows with the responses of ``subjects`` only (e.g. the tuning participants)."""
        unknown = [s for s in subjects if s not in self.responses]
        if unknown or not subjects:
            raise ValueError(f"subjects {list(subjects)} must be a non-empty list of {self.subjects}; unknown: {unknown}")
        return TuningData(self.audio, self.bounds, {s: self.responses[s] for s in subjects}, self.video)

    def digest(self) -> str:
        """A hash of the audio, windows, responses and video (part of the tuning run's key)."""
        content = {"audio": self.audio, "bounds": {r: list(b) for r, b in self.bounds.items()}, "responses": self.responses}
        if self.video is not None:
            content["video"] = {r: [np.asarray(f), np.asarray(t)] for r, (f, t) in self.video.items()}
        return digest(content)


def tuning_data(ds, subjects: Sequence[str], runs: Sequence[str], voxels: np.ndarray | None = None,
                window: float = 10.0, video: bool = False) -> TuningData:
    """A :class:`TuningData` from a dataset with audio.

    Parameters
    ----------
    ds : datasets.Dataset
        With ``audio(run)``.
    subjects : sequence of str
        Participants (must share the dataset's space).
    runs : sequence of str
    voxels : bool array of shape (n_voxels,), optional
        The tuning targets (default: all voxels).
    window : float
        Seconds of audio per TR (:func:`window_bounds`).
    video : bool
        Also read each run's frames (``ds.frames(run)``), for an audio-video model.
    """
    for s in subjects:
        if s not in ds.subjects:
            raise ValueError(f"unknown subject {s!r} in {ds.name}; valid: {ds.subjects}")
    for r in runs:
        if r not in ds.runs:
            raise ValueError(f"unknown run {r!r} in {ds.name}; valid: {ds.runs}")
    audio, bounds = {}, {}
    for r in runs:
        wave, sr = ds.audio(r)
        audio[r] = models.check_audio(wave, sr)
        bounds[r] = window_bounds(ds.sample_times(r), ds.tr, window)
    responses = {}
    for s in subjects:
        responses[s] = {}
        for r in runs:
            y = np.asarray(ds.responses(s, r), dtype=np.float32)
            if voxels is not None:
                if len(voxels) != y.shape[1]:
                    raise ValueError(f"voxels has {len(voxels)} entries but {ds.name} has {y.shape[1]} voxels")
                y = y[:, np.asarray(voxels, bool)]
            responses[s][r] = y
    if video and not hasattr(ds, "frames"):
        raise ValueError(f"dataset {ds.name!r} has no video; an audio-video model is tuned on a movie dataset")
    return TuningData(audio, bounds, responses, {r: ds.frames(r) for r in runs} if video else None)
