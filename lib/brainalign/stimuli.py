"""Stimuli: word timings, resampling to TRs, HRFs and synthetic speech.

Word timings come from Praat TextGrids (OpenNeuro ds003020), from the gentle
``align.csv`` files of Narratives, or from :func:`synthesize_speech`, which
speaks a text with espeak-ng and reports when each word was said. Features
sampled at word times are brought onto the fMRI grid with
:func:`lanczos_resample`, delayed with :func:`make_delayed` or convolved with
the canonical HRF (:func:`convolve_hrf`).

Time base
---------
Every time is in seconds from the stimulus onset of its run. A volume is
acquired from its *onset* ``t_k`` (``Dataset.tr_times``: the trigger times)
to ``t_k + TR``. The instant a volume stands for, where stimulus features are
sampled, is :func:`sample_times`: ``t_k + TR / 2`` (``at="centre"``, the
Huth lab's LeBel pipeline, ``DataSequence.from_grid``) or ``t_k``
(``at="onset"``, Study 1's Narratives code); each dataset names its default
(``Dataset.sample_at``). A word stands at its midpoint (:func:`word_times`).

Around a sampling time ``s_k`` the features are read as follows, and nowhere
else is a fraction of a TR added:

* *windows of context* (the audio a speech model hears, the text an
  instruction model reads, the audio and frames of an audio-video model) end
  at ``s_k``: nothing after the sampling time enters them (causal);
* *resampling kernels* are centred on ``s_k`` and so reach past it: the
  Lanczos filter of :func:`lanczos_resample` by ``window`` sampling periods
  (3 TRs by default, most of its weight within half a TR), the per-volume box
  of :func:`frames_per_tr` by half a TR. Behind an FIR delay of ``d`` TRs the
  Lanczos kernel reaches ``3 - d`` TRs past the volume it predicts (none from
  a delay of 3 TRs on).

A response planted at lag ``k`` volumes on these sampling times is recovered
at FIR delay ``k`` (the simulated cohorts are generated on them).
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import ctypes
import functools
import html
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal, stats

from .cache import atomic_write

__all__ = [
    "DIALOGUE",
    "GENTLE_WORD",
    "MOVIE_FACES",
    "MOVIE_IMAGES",
    "MOVIE_VOICES",
    "Movie",
    "NONWORDS",
    "SAMPLE_AT",
    "Speech",
    "audio_envelope",
    "convolve_hrf",
    "frames_per_tr",
    "hrf",
    "lanczos_resample",
    "make_delayed",
    "make_movie",
    "movie_image",
    "on_screen_at",
    "read_align_csv",
    "read_dialogue",
    "read_textgrid",
    "read_video",
    "render_shots",
    "sample_times",
    "speaking_at",
    "synthesize_speech",
    "tr_times",
    "word_times",
    "write_textgrid",
]

#: Labels of silences, breaths, laughs and noises in forced alignments (compare lowercased, stripped).
NONWORDS: frozenset[str] = frozenset(
    {"sp", "sil", "br", "lg", "ls", "ns", "sentence_start", "sentence_end",
     "{sp}", "{sil}", "{br}", "{lg}", "{ls}", "{ns}", ""}
)

_WORD_COLUMNS = ["word", "onset", "offset"]


# -- word timings from files ---------------------------------------------------
def _tier_key(name: str) -> str:
    """A tier name folded so that "Words", "word" and "words" compare equal."""
    name = name.strip().lower()
    return name.removesuffix("s")


def read_textgrid(path: str | os.PathLike, tier: str | int = "words") -> pd.DataFrame:
    """Read the intervals of one tier of a Praat TextGrid.

    Parameters
    ----------
    path : path
        The TextGrid file (short or long format).
    tier : str or int
        The tier's name (case-insensitive, singular or plural: "words" finds a
        tier called "word") or its index. In ds003020, tier 0 is the phones and
        tier 1 the words.

    Returns
    -------
    DataFrame with columns ``word`` (str), ``onset`` and ``offset`` (float
    seconds), sorted by onset; intervals labelled with a :data:`NONWORDS`
    label (silences, breaths, noises) are dropped.
    """
    from praatio import textgrid

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TextGrid not found: {path}")
    try:
        tg = textgrid.openTextgrid(str(path), includeEmptyIntervals=False)
    except Exception as err:  # praatio raises many kinds of errors on bad files
        raise ValueError(f"{path} is not a readable TextGrid: {err}") from err
    names = list(tg.tierNames)
    if isinstance(tier, (int, np.integer)):
        if not -len(names) <= tier < len(names):
            raise ValueError(f"tier index {tier} is out of range for {path}, which has tiers {names}")
        name = names[tier]
    else:
        matches = [n for n in names if _tier_key(n) == _tier_key(str(tier))]
        if not matches:
            raise ValueError(f"no tier {tier!r} in {path}; its tiers are {names}")
        name = matches[0]
    entries = tg.getTier(name).entries
    if entries and len(entries[0]) != 3:
        raise ValueError(f"tier {name!r} of {path} is a point tier, not an interval tier")
    rows = [(label.strip(), float(start), float(end)) for start, end, label in entries
            if label.strip().lower() not in NONWORDS]
    frame = pd.DataFrame(rows, columns=_WORD_COLUMNS).astype({"word": str, "onset": float, "offset": float})
    return frame.sort_values("onset", kind="stable").reset_index(drop=True)


def _intervals(frame: pd.DataFrame | None, label: str) -> list[tuple[float, float, str]]:
    if frame is None:
        return []
    missing = {label, "onset", "offset"} - set(frame.columns)
    if missing:
        raise ValueError(f"the {label}s table lacks columns {sorted(missing)}; it has {list(frame.columns)}")
    return [(float(a), float(b), str(w)) for w, a, b in zip(frame[label], frame["onset"], frame["offset"])]


def write_textgrid(
    path: str | os.PathLike,
    words: pd.DataFrame,
    phones: pd.DataFrame | None = None,
    duration: float | None = None,
) -> Path:
    """Write word (and phone) timings as a long-format Praat TextGrid.

    The layout follows ds003020: tier 0 "phones", tier 1 "words", so
    :func:`read_textgrid` reads the file back.

    Parameters
    ----------
    path : path
        Where to write (atomically).
    words : DataFrame with columns ``word, onset, offset``
        Intervals must not overlap and must have positive length.
    phones : DataFrame with columns ``phone, onset, offset``, optional
        The phone tier is left empty when None.
    duration : float, optional
        The end time of the grid (default: the last offset).

    Returns
    -------
    The path written.
    """
    from praatio import textgrid

    word_entries = _intervals(words, "word")
    phone_entries = _intervals(phones, "phone")
    last = max([end for _, end, _ in word_entries + phone_entries], default=0.0)
    end = last if duration is None else float(duration)
    if end < last or end <= 0:
        raise ValueError(f"duration={duration} must be positive and cover the last offset ({last})")
    tg = textgrid.Textgrid()
    try:
        for name, entries in (("phones", phone_entries), ("words", word_entries)):
            tg.addTier(textgrid.IntervalTier(name, entries, 0.0, end))
    except Exception as err:  # praatio's TextgridStateError and friends
        raise ValueError(f"cannot write the {name} tier to {path}: {err}") from err
    return atomic_write(path, lambda tmp: tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True))


#: a word of a transcript as gentle cuts it (its ``MetaSentence``): letters, digits and underscores, with
#: apostrophes inside (``don't``); hyphens, punctuation and spaces separate words
GENTLE_WORD = re.compile(r"(?:\w|[’']\w)+")


def read_align_csv(path: str | os.PathLike, transcript: str | os.PathLike | None = None) -> pd.DataFrame:
    """Read a gentle forced alignment (the ``align.csv`` files of Narratives).

    The file has no header and four columns: the transcript word, the word
    gentle aligned, its onset and its offset in seconds; words gentle could not
    align have empty times. Gentle writes one row for every word of the
    transcript (:data:`GENTLE_WORD`), in order, and no punctuation.

    Parameters
    ----------
    path : path
        The ``align.csv`` file.
    transcript : path, optional
        The transcript gentle aligned (``transcript.txt`` beside ``align.csv``):
        its punctuation is put back on the words, in the column ``written``
        (``"Yes,"``, ``"\"Well"``, ``"twenty-"``: what comes after a word up to
        the next space or word belongs to it, and what opens the next word after a
        space belongs to that one), so that sentences can be told apart.

    Returns
    -------
    DataFrame with columns ``word`` (the transcript word, column 0), ``onset``
    and ``offset`` (float seconds), and ``written`` when a transcript is given;
    one row per line of the file, in the file's (the text's) order. Gentle's
    onsets go backwards in a few places; sorting
    by onset would move words out of their sentences, so the order is kept and
    the times are repaired instead: the aligned words whose onsets keep to the
    text's order (the longest run of the file's onsets that never decreases)
    keep their times, and the others count as unaligned. Missing times are
    filled by linear interpolation over the word index between the nearest
    aligned words before and after (onsets and offsets separately); unaligned
    words before the first or after the last aligned word take that word's
    times. No offset is before its onset.

    Raises
    ------
    ValueError
        When the transcript's words are not the alignment's (another story, or
        another version of the transcript): the message names the first row that
        differs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"alignment file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [row + [""] * (4 - len(row)) for row in csv.reader(f) if row]
    if not rows:
        raise ValueError(f"{path} has no words")

    def seconds(text: str, line: int) -> float:
        try:
            return float(text) if text.strip() else np.nan
        except ValueError:
            raise ValueError(f"{path} line {line}: time {text!r} is not a number") from None

    words = [row[0] for row in rows]
    onset = np.array([seconds(row[2], i + 1) for i, row in enumerate(rows)])
    offset = np.array([seconds(row[3], i + 1) for i, row in enumerate(rows)])
    known = ~(np.isnan(onset) | np.isnan(offset))
    if not known.any():
        raise ValueError(f"{path}: no word is aligned")
    index = np.arange(len(rows))
    known[index[known][~_longest_nondecreasing(onset[known])]] = False
    onset = np.interp(index, index[known], onset[known])
    offset = np.maximum(np.interp(index, index[known], offset[known]), onset)
    table = pd.DataFrame({"word": words, "onset": onset, "offset": offset})
    if transcript is not None:
        table["written"] = _punctuated(words, Path(transcript), path)
    return table


def _punctuated(words: list[str], transcript: Path, align: Path) -> list[str]:
    """The words of an alignment with the transcript's punctuation around them."""
    if not transcript.is_file():
        raise FileNotFoundError(f"transcript not found: {transcript}")
    text = transcript.read_text(encoding="utf-8")
    spans = [m.span() for m in GENTLE_WORD.finditer(text)]
    for i, ((start, end), word) in enumerate(zip(spans, words)):
        if text[start:end] != word:
            raise ValueError(f"{transcript} does not match {align}: word {i + 1} is {text[start:end]!r} in the "
                             f"transcript and {word!r} in row {i + 1} of the alignment; use the transcript gentle aligned")
    if len(spans) != len(words):
        raise ValueError(f"{transcript} has {len(spans)} words and {align} {len(words)} rows; "
                         "use the transcript gentle aligned")
    gaps = [text[end:start] for (_, end), (start, _) in zip(spans, spans[1:])]
    lead = [_split_gap(" " + text[: spans[0][0]])[1]]
    trail = []
    for gap in gaps:
        after, before = _split_gap(gap)
        trail.append(after)
        lead.append(before)
    trail.append(_split_gap(text[spans[-1][1]:] + " ")[0])
    return [f"{a}{text[start:end]}{b}" for a, (start, end), b in zip(lead, spans, trail)]


def _split_gap(gap: str) -> tuple[str, str]:
    """The text between two words: what ends the first (up to a space), and what opens the second (after the last)."""
    spaces = [i for i, c in enumerate(gap) if c.isspace()]
    if not spaces:
        return gap, ""  # "twenty-five": the hyphen stays with the word before
    return gap[: spaces[0]], gap[spaces[-1] + 1:]


def _longest_nondecreasing(values: np.ndarray) -> np.ndarray:
    """Mask of a longest subsequence of ``values`` that never decreases (patience sorting, O(n log n))."""
    tails: list[float] = []  # tails[k]: the smallest last value of a kept run of length k + 1
    ends: list[int] = []     # the index of that value
    before = np.full(len(values), -1)
    for i, value in enumerate(values):
        k = bisect.bisect_right(tails, value)
        if k == len(tails):
            tails.append(value)
            ends.append(i)
        else:
            tails[k], ends[k] = value, i
        before[i] = ends[k - 1] if k else -1
    keep = np.zeros(len(values), dtype=bool)
    i = ends[-1] if ends else -1
    while i >= 0:
        keep[i], i = True, before[i]
    return keep


# -- the time base: volumes, sampling times, words -------------------------------
#: where in its acquisition a volume's features are sampled, as a fraction of the TR after its onset
SAMPLE_AT: dict[str, float] = {"onset": 0.0, "centre": 0.5}


def tr_times(n_trs: int, tr: float, start: float = 0.0) -> np.ndarray:
    """The acquisition onsets of ``n_trs`` volumes.

    Parameters
    ----------
    n_trs : int
        Number of volumes.
    tr : float
        Repetition time (s).
    start : float
        Onset of the first volume (s from the stimulus onset; negative when the
        scan starts before the stimulus).

    Returns
    -------
    times : array of shape (n_trs,)
        ``start + tr * arange(n_trs)``, float64 seconds.
    """
    if int(n_trs) != n_trs or n_trs < 0:
        raise ValueError(f"n_trs={n_trs} must be a non-negative integer")
    if not tr > 0:
        raise ValueError(f"tr={tr} must be positive")
    return float(start) + float(tr) * np.arange(int(n_trs), dtype=np.float64)


def sample_times(tr_times: np.ndarray, tr: float, at: str = "centre") -> np.ndarray:
    """The instant each volume stands for: where its stimulus features are sampled.

    The one place where the time base is decided (see the module docstring):
    every feature, window, simulated source and attribution weight is
    computed at these times.

    Parameters
    ----------
    tr_times : array of shape (n_trs,)
        Acquisition onset of each volume (s), as ``Dataset.tr_times`` returns it.
    tr : float
        Repetition time (s).
    at : {"centre", "onset"}
        ``"centre"``: ``tr_times + tr / 2``, the middle of each acquisition (the
        Huth lab's LeBel pipeline); ``"onset"``: ``tr_times`` (Study 1's
        Narratives code).

    Returns
    -------
    times : array of shape (n_trs,)
        Sampling times (s), float64.

    Examples
    --------
    >>> sample_times(tr_times(3, 2.0, start=10.0), 2.0).tolist()
    [11.0, 13.0, 15.0]
    >>> sample_times([0.0, 1.5], 1.5, at="onset").tolist()
    [0.0, 1.5]
    """
    if at not in SAMPLE_AT:
        raise ValueError(f"unknown sampling instant at={at!r}; valid: {sorted(SAMPLE_AT)}")
    if not (np.isfinite(tr) and tr > 0):
        raise ValueError(f"tr={tr!r} must be a positive number of seconds")
    onsets = np.asarray(tr_times, dtype=np.float64)
    if onsets.ndim != 1:
        raise ValueError(f"tr_times must be 1-D, got shape {onsets.shape}")
    return onsets + SAMPLE_AT[at] * float(tr)


def word_times(words: pd.DataFrame) -> np.ndarray:
    """The instant each word stands for: the midpoint of its onset and offset.

    Parameters
    ----------
    words : DataFrame with columns ``onset`` and ``offset`` (s), n_words rows

    Returns
    -------
    times : array of shape (n_words,)
        ``(onset + offset) / 2`` (s), float64.
    """
    missing = {"onset", "offset"} - set(words.columns)
    if missing:
        raise ValueError(f"words lack column(s) {sorted(missing)}; they need onset and offset (s)")
    return ((words["onset"].to_numpy(np.float64) + words["offset"].to_numpy(np.float64)) / 2)


# -- resampling to the fMRI grid ------------------------------------------------


def lanczos_resample(
    values: np.ndarray,
    times: np.ndarray,
    new_times: np.ndarray,
    window: int = 3,
    cutoff_mult: float = 1.0,
) -> np.ndarray:
    """Resample values given at irregular times onto new times with a Lanczos filter.

    As in the Huth lab's ``lanczosinterp2D``: with ``f = cutoff_mult /
    mean(diff(new_times))`` (the sampling rate of the new grid), the kernel is
    ``L(t) = sinc(f t) * sinc(f t / window)`` for ``|f t| <= window`` and 0
    beyond (normalised sinc), i.e. the Lanczos kernel of order ``window`` in
    units of the new sampling period, low-passing at the new grid's Nyquist
    frequency. The output is the plain sum ``out[j] = sum_i L(new_times[j] -
    times[i]) * values[i]``, not normalised by the density of ``times``: ones
    at ``r`` events per second give about ``r / f`` (events per new sample).

    Parameters
    ----------
    values : array of shape (n_old, n_features) or (n_old,)
        A 1-D array is treated as one feature.
    times : array of shape (n_old,)
        When each row of ``values`` happened, in seconds.
    new_times : array of shape (n_new,)
        Where to sample, in seconds (at least two, increasing on average).
    window : int
        The order of the Lanczos kernel (lobes on each side).
    cutoff_mult : float
        Scales the cutoff frequency.

    Returns
    -------
    resampled : array of shape (n_new, n_features)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    times = np.asarray(times, dtype=np.float64)
    new_times = np.asarray(new_times, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be 1-D or 2-D, got shape {values.shape}")
    if times.ndim != 1 or len(times) != len(values):
        raise ValueError(f"times has shape {times.shape}; it must be 1-D with one entry per row of values "
                         f"({len(values)} rows)")
    if new_times.ndim != 1 or len(new_times) < 2:
        raise ValueError(f"new_times has shape {new_times.shape}; it must be 1-D with at least 2 entries")
    if int(window) != window or window < 1:
        raise ValueError(f"window={window} must be a positive integer")
    if not cutoff_mult > 0:
        raise ValueError(f"cutoff_mult={cutoff_mult} must be positive")
    step = np.mean(np.diff(new_times))
    if not step > 0:
        raise ValueError("new_times must increase on average")
    x = (new_times[:, None] - times[None, :]) * (cutoff_mult / step)
    kernel = np.sinc(x) * np.sinc(x / window)
    kernel[np.abs(x) > window] = 0.0
    return kernel @ values


def make_delayed(X: np.ndarray, delays: Sequence[int]) -> np.ndarray:
    """Stack delayed copies of the features (the finite impulse response model).

    Parameters
    ----------
    X : array of shape (n_samples, n_features) or (n_samples,)
        A 1-D array is treated as one feature.
    delays : sequence of int
        Delays in samples. A copy delayed by ``d > 0`` holds at row ``t`` the
        row ``t - d`` of ``X`` (the past), zeros in its first ``d`` rows;
        ``d < 0`` shifts the other way, zeros in the last ``-d`` rows.

    Returns
    -------
    delayed : array of shape (n_samples, n_features * len(delays))
        The delayed copies side by side, in the order of ``delays``.
    """
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise ValueError(f"X must be 1-D or 2-D, got shape {X.shape}")
    delays = list(delays)
    if not delays or any(int(d) != d for d in delays):
        raise ValueError(f"delays={delays} must be a non-empty sequence of integers")
    n = len(X)
    copies = []
    for d in map(int, delays):
        shifted = np.zeros_like(X)
        if d >= 0:
            shifted[d:] = X[: max(n - d, 0)]
        else:
            shifted[: max(n + d, 0)] = X[-d:]
        copies.append(shifted)
    return np.concatenate(copies, axis=1)


def hrf(tr: float, duration: float = 32.0, peak: float = 5.0) -> np.ndarray:
    """The SPM canonical haemodynamic response, sampled every ``tr`` seconds.

    A difference of gamma densities: a response peaking at ``peak`` s (shape
    ``peak + 1``, unit scale; 5 s is SPM's canonical response) minus one sixth
    of an undershoot peaking at 15 s (shape 16), sampled at ``0, tr, 2 tr, ...``
    up to ``duration`` and normalised to sum 1.

    Returns
    -------
    h : array of shape (floor(duration / tr) + 1,)
    """
    if not tr > 0:
        raise ValueError(f"tr={tr} must be positive")
    if not duration >= tr:
        raise ValueError(f"duration={duration} must be at least tr={tr}")
    if not 0 < peak < 15:
        raise ValueError(f"peak={peak} must be in (0, 15) seconds (before the undershoot)")
    t = tr * np.arange(int(np.floor(duration / tr + 1e-9)) + 1)
    h = stats.gamma.pdf(t, peak + 1.0) - stats.gamma.pdf(t, 16.0) / 6.0
    return h / h.sum()


def convolve_hrf(X: np.ndarray, tr: float, peak: float = 5.0) -> np.ndarray:
    """Convolve each column with :func:`hrf` (peaking at ``peak`` s) causally, keeping the input length.

    Parameters
    ----------
    X : array of shape (n_samples, n_features) or (n_samples,)
        Sampled every ``tr`` seconds.
    tr : float
        The sampling period in seconds.
    peak : float, default=5.0
        Time to the response's peak, seconds.

    Returns
    -------
    convolved : array of the shape of X
        ``convolved[t] = sum_k hrf[k] * X[t - k]``.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim not in (1, 2):
        raise ValueError(f"X must be 1-D or 2-D, got shape {X.shape}")
    return signal.lfilter(hrf(tr, peak=peak), [1.0], X, axis=0)


def audio_envelope(audio: np.ndarray, sr: int, times: np.ndarray, window: float = 0.1) -> np.ndarray:
    """The root-mean-square amplitude of the audio around given times.

    Parameters
    ----------
    audio : array of shape (n_samples,)
    sr : int
        Its sample rate in Hz.
    times : array of shape (n_times,)
        Window centres in seconds.
    window : float
        The window length in seconds; the audio counts as 0 outside its extent.

    Returns
    -------
    envelope : array of shape (n_times,)
    """
    audio = np.asarray(audio, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if audio.ndim != 1:
        raise ValueError(f"audio must be 1-D (mono), got shape {audio.shape}")
    if not sr > 0 or not window > 0:
        raise ValueError(f"sr={sr} and window={window} must be positive")
    power = np.concatenate([[0.0], np.cumsum(audio**2)])
    half = window / 2
    lo = np.clip(np.round((times - half) * sr), 0, len(audio)).astype(int)
    hi = np.clip(np.round((times + half) * sr), 0, len(audio)).astype(int)
    return np.sqrt(np.maximum(power[hi] - power[lo], 0.0) / (window * sr))


# -- speech synthesis with espeak-ng --------------------------------------------
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 1
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_SSML = 0x10
_RATE, _PITCH = 1, 3
_EVENT_END_OF_LIST, _EVENT_WORD, _EVENT_MARK, _EVENT_PHONEME = 0, 1, 3, 7

_ESPEAK_LOCK = threading.Lock()


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),  # priority byte, then the first language
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def _espeak_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError as err:
        raise RuntimeError("speech synthesis needs espeak-ng: pip install espeakng-loader") from err
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


@contextlib.contextmanager
def _espeak() -> Iterator[tuple[ctypes.CDLL, int, str]]:
    """A fresh, initialised copy of libespeak-ng, its sample rate and data folder.

    The synthesiser keeps state between utterances in static variables (the
    pitch flutter phase, the gain control) that neither ``espeak_Terminate``
    nor a new ``espeak_Initialize`` resets, so the same text speaks slightly
    differently each time in one process. Loading a private copy of the
    library for each call starts every utterance from the same state.
    """
    import _ctypes

    lib_path, data_path = _espeak_paths()
    with _ESPEAK_LOCK, tempfile.TemporaryDirectory(prefix="brainalign-espeak-") as tmp:
        copy = Path(tmp) / Path(lib_path).name
        try:
            shutil.copyfile(lib_path, copy)
            lib = ctypes.CDLL(str(copy))
        except OSError as err:
            raise RuntimeError(f"cannot load espeak-ng from {lib_path} ({err}): pip install espeakng-loader") from err
        try:
            lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
            lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
            lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
            lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
            lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
            lib.espeak_Synth.argtypes = [
                ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
            ]
            # The data folder itself (or its parent) must be given; otherwise the
            # library looks in the build machine's install prefix and fails.
            sr = lib.espeak_Initialize(
                _AUDIO_OUTPUT_SYNCHRONOUS, 500, data_path.encode(), _INITIALIZE_PHONEME_EVENTS
            )
            if sr <= 0:
                raise RuntimeError(f"espeak-ng failed to initialise with data at {data_path}")
            try:
                yield lib, sr, data_path
            finally:
                lib.espeak_Terminate()
        finally:
            _ctypes.dlclose(lib._handle)


@functools.lru_cache(maxsize=1)
def _voice_names() -> tuple[dict[str, str], dict[str, str]]:
    """Lowercased voice names -> espeak identifiers, and lowercased variants -> file names."""
    voices: dict[str, str] = {}
    with _espeak() as (lib, _, data_path):
        listed = lib.espeak_ListVoices(None)
        i = 0
        while listed[i]:
            voice = listed[i].contents
            ident = voice.identifier.decode()
            voices.setdefault(ident.lower(), ident)
            voices.setdefault(ident.rsplit("/", 1)[-1].lower(), ident)
            if voice.languages:
                voices.setdefault(voice.languages[1:].decode().lower(), ident)
            i += 1
    variants = {p.name.lower(): p.name for p in (Path(data_path) / "voices" / "!v").iterdir()}
    return voices, variants


def _resolve_voice(voice: str) -> str:
    """The espeak identifier (with variant) of a voice name such as "en-us" or "en-gb+f3"."""
    voices, variants = _voice_names()
    base, _, variant = voice.strip().partition("+")
    ident = voices.get(base.lower())
    if ident is None or (variant and variant.lower() not in variants):
        english = sorted(k for k in voices if k.startswith("en") and "/" not in k)
        raise ValueError(
            f"unknown espeak-ng voice {voice!r}; valid names include {english} "
            f"(and {len(voices)} names in all, e.g. 'fr', 'de'), optionally with a variant "
            f"such as '+f3' or '+m3' from {sorted(variants)[:12]}..."
        )
    return ident + (f"+{variants[variant.lower()]}" if variant else "")


@dataclass
class Speech:
    """Synthetic speech and when its words and phones were said.

    Attributes
    ----------
    audio : array of shape (n_samples,)
        float32 waveform in [-1, 1].
    sr : int
        Sample rate in Hz.
    words : DataFrame with columns ``word, onset, offset``
        One row per token of the text, times in seconds.
    phones : DataFrame with columns ``phone, onset, offset``
        espeak-ng phoneme mnemonics (stress marks included), pauses left out.
    """

    audio: np.ndarray
    sr: int
    words: pd.DataFrame
    phones: pd.DataFrame

    @property
    def duration(self) -> float:
        """The length of the audio in seconds."""
        return len(self.audio) / self.sr


def _phone_table(phonemes: list[tuple[int, str]], end_ms: int) -> pd.DataFrame:
    """Phones from PHONEME events: each lasts until the next; pauses and empty phones dropped."""
    rows = []
    for k, (start, name) in enumerate(phonemes):
        stop = phonemes[k + 1][0] if k + 1 < len(phonemes) else end_ms
        if not name.startswith("_") and stop > start:
            rows.append((name, start / 1000, stop / 1000))
    return pd.DataFrame(rows, columns=["phone", "onset", "offset"]).astype(
        {"phone": str, "onset": float, "offset": float}
    )


def _word_times(onsets: np.ndarray, phones: pd.DataFrame, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and offsets of every token from their own onsets (NaN where espeak gave none).

    Tokens with a time earlier than every later token's are anchors. A token
    with no time, or one no earlier than the next anchor (espeak folds
    unstressed words such as "the" into a neighbour), shares the interval of
    the anchor before it (the first anchor's, at the start). Each anchor's
    interval runs to the end of its last spoken phone (leaving out a trailing
    pause) or to the next anchor, and is split evenly among the tokens that
    share it, so that all intervals have positive length and are in order.
    """
    n = len(onsets)
    anchors: list[int] = []
    bound = end
    for i in range(n - 1, -1, -1):
        if np.isfinite(onsets[i]) and onsets[i] < bound:
            anchors.append(i)
            bound = onsets[i]
    anchors.reverse()
    if not anchors:  # nothing timed: spread the tokens over the audio
        edges = np.linspace(0.0, end, n + 1)
        return edges[:-1], edges[1:]
    starts = [0] + anchors[1:]  # leading untimed tokens join the first anchor
    stops = anchors[1:] + [n]
    on, off = np.empty(n), np.empty(n)
    phone_on, phone_off = phones["onset"].to_numpy(), phones["offset"].to_numpy()
    for a, first, last in zip(anchors, starts, stops):
        t0 = onsets[a]
        t1 = onsets[last] if last < n else end
        inside = (phone_on >= t0) & (phone_on < t1)
        t_end = min(phone_off[inside].max(), t1) if inside.any() else t1
        edges = np.linspace(t0, t_end, last - first + 1)
        on[first:last], off[first:last] = edges[:-1], edges[1:]
    return on, off


def synthesize_speech(text: str, voice: str = "en-us", rate: int = 160, pitch: int | None = None) -> Speech:
    """Speak a text with espeak-ng and time each of its words.

    Tokens are ``text.split()``; each is sent as SSML preceded by a
    ``<mark/>``. A token's onset is the audio position of espeak's WORD event
    for it (mapped back through its character position), else of its mark.
    Marks alone are not enough: espeak drops the mark of a word that follows a
    full stop, and folds unstressed words ("the", "a") into a neighbour; see
    ``_word_times`` for how such tokens are placed. Times have a resolution of
    1 ms. The same arguments always give the same audio.

    Parameters
    ----------
    text : str
        Clean text; punctuation stays attached to the tokens in ``words``.
    voice : str
        An espeak-ng voice: a language such as "en-us", "en-gb", "en-gb-x-rp",
        optionally with a variant, e.g. "en-us+f3", "en-gb+m3".
    rate : int
        Speaking rate in words per minute (80 to 450).
    pitch : int, optional
        Base pitch, 0 to 100 (espeak's default, 50, when None).

    Returns
    -------
    :class:`Speech`, with one row of ``words`` per token.
    """
    tokens = text.split()
    if not tokens:
        raise ValueError("text has no words to speak")
    if not 80 <= rate <= 450:
        raise ValueError(f"rate={rate} must be between 80 and 450 words per minute")
    if pitch is not None and not 0 <= pitch <= 100:
        raise ValueError(f"pitch={pitch} must be between 0 and 100")
    ident = _resolve_voice(voice)

    source, starts = "<speak>", []
    for i, token in enumerate(tokens):
        source += f'<mark name="{i}"/>'
        starts.append(len(source))
        source += html.escape(token, quote=False) + " "
    source += "</speak>"
    starts_arr = np.array(starts)

    chunks: list[np.ndarray] = []
    word_events: list[tuple[int, int]] = []  # (audio ms, 1-based character position)
    marks: dict[int, int] = {}
    phonemes: list[tuple[int, str]] = []

    def collect(wav, n_samples, events) -> int:
        if n_samples > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        k = 0
        while events[k].type != _EVENT_END_OF_LIST:
            event = events[k]
            if event.type == _EVENT_WORD:
                word_events.append((event.audio_position, event.text_position))
            elif event.type == _EVENT_MARK and event.id.name:
                marks.setdefault(int(event.id.name), event.audio_position)
            elif event.type == _EVENT_PHONEME:
                phonemes.append((event.audio_position, event.id.string.decode("utf-8", "replace")))
            k += 1
        return 0

    callback = _SynthCallback(collect)
    data = source.encode("utf-8") + b"\0"
    with _espeak() as (lib, sr, _):
        lib.espeak_SetSynthCallback(callback)
        if lib.espeak_SetVoiceByName(ident.encode()) != 0:
            raise ValueError(f"espeak-ng could not load voice {voice!r} ({ident})")
        lib.espeak_SetParameter(_RATE, int(rate), 0)
        lib.espeak_SetParameter(_PITCH, 50 if pitch is None else int(pitch), 0)
        status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8 | _SSML, None, None)
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed with status {status}")

    audio = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
    end = len(audio) / sr
    onsets = np.full(len(tokens), np.nan)
    for ms, position in word_events:
        k = int(np.searchsorted(starts_arr, position - 1, side="right")) - 1
        if k >= 0 and np.isnan(onsets[k]):
            onsets[k] = ms / 1000
    for k, ms in marks.items():
        if 0 <= k < len(tokens) and np.isnan(onsets[k]):
            onsets[k] = ms / 1000
    phones = _phone_table(phonemes, round(end * 1000))
    on, off = _word_times(onsets, phones, end)
    words = pd.DataFrame({"word": tokens, "onset": on, "offset": off})
    return Speech(audio=audio, sr=int(sr), words=words, phones=phones)


# -- video: frames per TR, reading real videos, building a movie -----------------
def frames_per_tr(frame_times: np.ndarray, times: np.ndarray, tr: float) -> list[np.ndarray]:
    """Which frames (or any time-stamped samples) fall in each volume's box.

    Volume ``k``'s box is the TR-long interval centred on its sampling time,
    ``[times[k] - tr / 2, times[k] + tr / 2)``. With the sampling times at the
    volumes' centres (:func:`sample_times`, ``at="centre"``) that is the
    acquisition interval ``[onset, onset + tr)``, the convention of the
    CNeuroMod / Algonauts per-TR transcripts.

    Parameters
    ----------
    frame_times : array of shape (n_frames,)
        When each frame is shown, in seconds (non-decreasing).
    times : array of shape (n_trs,)
        Sampling time of each volume (s, increasing), from :func:`sample_times`.
    tr : float
        The repetition time in seconds.

    Returns
    -------
    list of n_trs int arrays
        The indices of the frames inside each volume's box (possibly empty).
    """
    frame_times = np.asarray(frame_times, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if frame_times.ndim != 1 or times.ndim != 1:
        raise ValueError(f"frame_times {frame_times.shape} and times {times.shape} must be 1-D")
    if not tr > 0:
        raise ValueError(f"tr={tr} must be positive")
    if np.any(np.diff(frame_times) < 0) or np.any(np.diff(times) <= 0):
        raise ValueError("frame_times must be non-decreasing and times increasing")
    start = times - tr / 2
    lo = np.searchsorted(frame_times, start - 1e-9, side="left")
    hi = np.searchsorted(frame_times, start + tr - 1e-9, side="left")
    return [np.arange(a, b) for a, b in zip(lo, hi)]


def _video_backend() -> str:
    """The installed imageio plugin that decodes video containers ("pyav" or "FFMPEG")."""
    try:
        import imageio.v3  # noqa: F401
    except ImportError as err:
        raise ImportError("reading videos needs imageio and a video backend: pip install imageio av") from err
    try:
        import av  # noqa: F401

        return "pyav"
    except ImportError:
        pass
    try:
        import imageio_ffmpeg  # noqa: F401

        return "FFMPEG"
    except ImportError:
        raise ImportError(
            "reading video files (.mp4, .mkv, .avi, ...) needs a video backend for imageio: "
            "pip install av  (PyAV, recommended)  or  pip install imageio-ffmpeg"
        ) from None


_PILLOW_VIDEO = {".gif", ".apng", ".webp"}


def read_video(path: str | os.PathLike, fps: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read every frame of a video file, with the time each frame is shown.

    Video containers (.mp4, .mkv, .avi, .mov, .webm ...) are decoded through
    imageio with PyAV (``pip install av``) or imageio-ffmpeg, imported only
    here; animated GIF / APNG / WebP files through imageio's Pillow plugin.

    Parameters
    ----------
    path : path
        The video file.
    fps : float, optional
        The frame rate, when the file's metadata lack it (or to override it).

    Returns
    -------
    frames : uint8 array of shape (n_frames, height, width, 3)
    frame_times : float64 array of shape (n_frames,)
        Seconds from the start of the video.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video not found: {path}")
    if path.suffix.lower() in _PILLOW_VIDEO:
        import imageio.v3 as iio

        frames = np.asarray(iio.imread(path, index=None, plugin="pillow", mode="RGB"))
        if frames.ndim == 3:
            frames = frames[None]
        if fps is None:
            meta = iio.immeta(path, plugin="pillow")
            ms = float(meta.get("duration", 0) or 0)
            if not ms > 0:
                raise ValueError(f"{path} does not state its frame duration; pass fps=")
            fps = 1000.0 / ms
    else:
        plugin = _video_backend()
        import imageio.v3 as iio

        try:
            frames = np.asarray(iio.imread(path, index=None, plugin=plugin))
            meta = iio.immeta(path, plugin=plugin)
        except Exception as err:  # decoders raise many kinds of errors on bad files
            raise ValueError(f"{path} is not a readable video: {err}") from err
        if fps is None:
            fps = meta.get("fps")
            if not fps:
                raise ValueError(f"{path} does not state its frame rate; pass fps=")
        if frames.ndim == 3:  # grey frames
            frames = np.repeat(frames[..., None], 3, axis=-1)
    if not fps > 0:
        raise ValueError(f"fps={fps} must be positive")
    frames = np.ascontiguousarray(frames[..., :3], dtype=np.uint8)
    return frames, np.arange(len(frames)) / float(fps)


#: Images that ship inside installed packages (no download): name -> provenance and licence.
MOVIE_IMAGES: dict[str, str] = {
    "astronaut": "scikit-image sample: astronaut Eileen Collins, NASA photograph, public domain",
    "grace_hopper": "matplotlib sample_data: Rear Admiral Grace Hopper, US Navy photograph, public domain",
    "coffee": "scikit-image sample: coffee cup, CC0 (Rachel Michetti)",
    "chelsea": "scikit-image sample: Chelsea the cat, CC0 (Stefan van der Walt)",
    "rocket": "scikit-image sample: SpaceX rocket launch, released to the public domain by SpaceX",
    "camera": "scikit-image sample: cameraman, CC0 (Lav Varshney)",
    "coins": "scikit-image sample: Greek coins, Brooklyn Museum, no known copyright restrictions",
    "hubble_deep_field": "scikit-image sample: Hubble deep field, NASA, public domain",
}
#: The default faces of the two speakers of a movie: speaker -> image.
MOVIE_FACES = {"A": "astronaut", "B": "grace_hopper"}
#: The default espeak-ng voices of the two speakers.
MOVIE_VOICES = {"A": "en-us+f4", "B": "en-gb+m3"}
DIALOGUE = Path(__file__).resolve().parent / "resources" / "stimuli" / "dialogue.tsv"


@functools.lru_cache(maxsize=16)
def movie_image(name: str) -> np.ndarray:
    """A natural image that ships with an installed package, as uint8 RGB of shape (height, width, 3)."""
    if name not in MOVIE_IMAGES:
        raise ValueError(f"unknown movie image {name!r}; valid: {sorted(MOVIE_IMAGES)}")
    if name == "grace_hopper":
        from matplotlib import cbook
        from PIL import Image

        with cbook.get_sample_data("grace_hopper.jpg") as f:
            image = np.asarray(Image.open(f).convert("RGB"))
    else:
        import skimage.data

        image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    image = image[..., :3].astype(np.uint8)
    image.setflags(write=False)
    return image


def read_dialogue(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """Dialogue lines: a tab-separated file with columns ``speaker`` and ``line`` (default: the packaged one).

    The packaged file holds the quoted speech of *Moby-Dick* (Project Gutenberg
    #2701, public domain) chapters 19 and 16, in order, one quoted paragraph a
    row, given to two speakers "A" (Ishmael where the text says "said I") and
    "B", who otherwise take turns; then (``chapter`` "watch") a conversation of
    two sailors on a night watch, written for this compendium in the novel's
    setting, so that the movie cohort has enough dialogue for 15 minutes of
    training movie.
    """
    path = Path(path) if path is not None else DIALOGUE
    if not path.is_file():
        raise FileNotFoundError(f"dialogue file not found: {path}")
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = {"speaker", "line"} - set(table.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}; it has {list(table.columns)}")
    return table[["speaker", "line"]].reset_index(drop=True)


@dataclass
class Movie:
    """A synthetic movie: shots of still images with camera motion, and a spoken dialogue.

    Attributes
    ----------
    frames : uint8 array of shape (n_frames, size, size, 3)
    frame_times : array of shape (n_frames,)
        When each frame is shown (s): ``arange(n_frames) / fps``.
    fps : float
    audio : float32 array of shape (n_samples,), sample rate ``sr``
    sr : int
    words : DataFrame with columns ``word, onset, offset, speaker``
    lines : DataFrame with columns ``speaker, onset, offset, line`` (who speaks when)
    shots : DataFrame with columns ``onset, offset, image, on_screen, x0, y0, zoom0, x1, y1, zoom1``
        ``on_screen`` is the speaker whose face the shot shows ("" for none);
        the crop of side ``zoom * min(height, width)`` moves linearly from
        centre ``(x0, y0)`` to ``(x1, y1)`` (fractions of the image).
    """

    frames: np.ndarray
    frame_times: np.ndarray
    fps: float
    audio: np.ndarray
    sr: int
    words: pd.DataFrame
    lines: pd.DataFrame
    shots: pd.DataFrame

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sr

    def on_screen(self, times: np.ndarray | None = None) -> np.ndarray:
        """The speaker on screen at each time (default: each frame); "" where none is."""
        return on_screen_at(self.shots, self.frame_times if times is None else times)


def on_screen_at(shots: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """The ``on_screen`` entry of the shot showing at each time; array of str of shape (n_times,)."""
    times = np.asarray(times, dtype=np.float64)
    k = np.searchsorted(shots["onset"].to_numpy(), times, side="right") - 1
    inside = (k >= 0) & (times < shots["offset"].to_numpy()[np.clip(k, 0, None)])
    faces = shots["on_screen"].to_numpy(dtype=object)
    return np.where(inside, faces[np.clip(k, 0, None)], "").astype(str)


def speaking_at(words: pd.DataFrame, times: np.ndarray) -> np.ndarray:
    """Who is saying a word at each time ("" in silence); array of str of shape (n_times,)."""
    times = np.asarray(times, dtype=np.float64)
    out = np.full(len(times), "", dtype=object)
    for on, off, who in zip(words["onset"], words["offset"], words["speaker"]):
        out[(times >= on) & (times < off)] = who
    return out.astype(str)


def render_shots(shots: pd.DataFrame, frame_times: np.ndarray, size: int = 128) -> np.ndarray:
    """Render the frames of a shot list (bilinear crops of the images; see :class:`Movie`).

    Returns
    -------
    frames : uint8 array of shape (n_frames, size, size, 3); black outside every shot.
    """
    from scipy.ndimage import map_coordinates

    frame_times = np.asarray(frame_times, dtype=np.float64)
    frames = np.zeros((len(frame_times), size, size, 3), np.uint8)
    unit = (np.arange(size) + 0.5) / size - 0.5
    for shot in shots.itertuples(index=False):
        image = movie_image(shot.image).astype(np.float32)
        h, w = image.shape[:2]
        idx = np.flatnonzero((frame_times >= shot.onset) & (frame_times < shot.offset))
        for i in idx:
            a = (frame_times[i] - shot.onset) / max(shot.offset - shot.onset, 1e-9)
            x = (1 - a) * shot.x0 + a * shot.x1
            y = (1 - a) * shot.y0 + a * shot.y1
            side = ((1 - a) * shot.zoom0 + a * shot.zoom1) * min(h, w)
            rows = np.clip(y * h + unit * side, 0, h - 1)
            cols = np.clip(x * w + unit * side, 0, w - 1)
            rr, cc = np.meshgrid(rows, cols, indexing="ij")
            for c in range(3):
                frames[i, ..., c] = np.clip(map_coordinates(image[..., c], [rr, cc], order=1), 0, 255).round()
    return frames


def _resample_audio(audio: np.ndarray, sr: int, new_sr: int) -> np.ndarray:
    from fractions import Fraction

    if sr == new_sr:
        return audio.astype(np.float32)
    ratio = Fraction(int(new_sr), int(sr)).limit_denominator(1000)
    return signal.resample_poly(audio, ratio.numerator, ratio.denominator).astype(np.float32)


def _plan_shots(rng: np.random.Generator, duration: float, lines: pd.DataFrame, faces: dict[str, str],
                shot_range: tuple[float, float], scenes: Sequence[str]) -> pd.DataFrame:
    """Cut the movie into shots; each shows the current speaker's face (p 0.5), the other's (0.2) or a scene."""
    speakers = sorted(faces)
    rows, t = [], 0.0
    while t < duration - 1e-9:
        length = min(float(rng.uniform(*shot_range)), duration - t)
        mid = t + length / 2
        talking = lines[(lines["onset"] <= mid) & (lines["offset"] > mid)]["speaker"]
        current = str(talking.iloc[0]) if len(talking) else str(rng.choice(speakers))
        others = [s for s in speakers if s != current]
        u = rng.uniform()
        if u < 0.5 and current in faces:
            who = current
        elif u < 0.7 and others:
            who = str(rng.choice(others))
        else:
            who = ""
        image = faces[who] if who else str(rng.choice(list(scenes)))
        zoom0, zoom1 = rng.uniform(0.55, 0.95, 2)
        x0, y0, x1, y1 = 0.5 + rng.uniform(-0.12, 0.12, 4)
        rows.append((t, t + length, image, who, x0, y0, zoom0, x1, y1, zoom1))
        t += length
    return pd.DataFrame(rows, columns=["onset", "offset", "image", "on_screen", "x0", "y0", "zoom0", "x1", "y1", "zoom1"])


def make_movie(
    lines: pd.DataFrame | None = None,
    seed: int = 0,
    fps: float = 5.0,
    size: int = 128,
    sr: int = 16000,
    voices: dict[str, str] | None = None,
    faces: dict[str, str] | None = None,
    scenes: Sequence[str] | None = None,
    shot_range: tuple[float, float] = (2.0, 5.0),
    rate: int = 175,
    lead: float = 2.0,
) -> Movie:
    """Build a short movie: natural images as shots with camera motion, and a spoken dialogue.

    Each line is spoken by its speaker's espeak-ng voice (:func:`synthesize_speech`),
    the lines separated by pauses of 0.3-1 s, and now and then (p 0.15) by a
    silence of 3-6 s. The movie is cut into shots of ``shot_range`` seconds; a
    shot shows the face of the speaker talking at its middle (probability 0.5),
    the other speaker's face (0.2) or a scene without a face; the camera pans
    and zooms slowly within each shot. Everything is deterministic given ``seed``.

    Parameters
    ----------
    lines : DataFrame with columns ``speaker, line``, optional
        The dialogue (default: the first 6 lines of :func:`read_dialogue`).
    seed : int
        Seed of the pauses and the shots.
    fps : float
        Frame rate.
    size : int
        Frames are ``size x size`` RGB.
    sr : int
        Sample rate of the audio (espeak speaks at 22050 Hz; resampled).
    voices : dict, optional
        speaker -> espeak-ng voice (default ``MOVIE_VOICES``). Variants with a
        "breath" setting (e.g. ``+f1``, ``+f2``, ``+f3``, ``+f5``, ``+klatt``) add
        random noise and do not give the same audio twice.
    faces : dict, optional
        speaker -> image of their face (default ``MOVIE_FACES``).
    scenes : sequence of str, optional
        Images of the shots without a face (default: every other ``MOVIE_IMAGES``).
    shot_range : (float, float)
        Shortest and longest shot, seconds.
    rate : int
        Speaking rate in words per minute.
    lead : float
        Silence before the first and after the last line, seconds.

    Returns
    -------
    :class:`Movie`
    """
    lines = read_dialogue().iloc[:6] if lines is None else lines
    voices = dict(MOVIE_VOICES if voices is None else voices)
    faces = dict(MOVIE_FACES if faces is None else faces)
    if not len(lines):
        raise ValueError("lines is empty: a movie needs at least one line of dialogue")
    unknown = sorted(set(lines["speaker"]) - set(voices))
    if unknown:
        raise ValueError(f"speakers {unknown} have no voice; voices are given for {sorted(voices)}")
    for image in list(faces.values()) + list(scenes or []):
        if image not in MOVIE_IMAGES:
            raise ValueError(f"unknown movie image {image!r}; valid: {sorted(MOVIE_IMAGES)}")
    scenes = [s for s in MOVIE_IMAGES if s not in faces.values()] if scenes is None else list(scenes)
    if not fps > 0 or int(size) < 8 or not shot_range[0] > 0 or shot_range[1] < shot_range[0]:
        raise ValueError(f"fps={fps} must be positive, size={size} at least 8 and shot_range={shot_range} increasing")
    from .config import rng as seeded_rng

    rng = seeded_rng(seed, "movie")

    chunks, word_rows, line_rows = [np.zeros(int(round(lead * sr)), np.float32)], [], []
    t = lead
    for k, (who, text) in enumerate(zip(lines["speaker"], lines["line"])):
        if k:
            pause = rng.uniform(3.0, 6.0) if rng.uniform() < 0.15 else rng.uniform(0.3, 1.0)
            chunks.append(np.zeros(int(round(pause * sr)), np.float32))
            t += len(chunks[-1]) / sr
        speech = synthesize_speech(str(text), voice=voices[who], rate=rate)
        audio = _resample_audio(speech.audio, speech.sr, sr)
        chunks.append(audio)
        length = len(audio) / sr
        w = speech.words
        for word, on, off in zip(w["word"], w["onset"], w["offset"]):
            word_rows.append((word, t + min(on, length), t + min(off, length), str(who)))
        line_rows.append((str(who), t + w["onset"].iloc[0], t + min(w["offset"].iloc[-1], length), str(text)))
        t += length
    chunks.append(np.zeros(int(round(lead * sr)), np.float32))
    audio = np.concatenate(chunks).astype(np.float32)
    duration = len(audio) / sr
    words = pd.DataFrame(word_rows, columns=["word", "onset", "offset", "speaker"])
    spoken = pd.DataFrame(line_rows, columns=["speaker", "onset", "offset", "line"])
    shots = _plan_shots(rng, duration, spoken, faces, tuple(shot_range), scenes)
    frame_times = np.arange(int(np.floor(duration * fps))) / fps
    frames = render_shots(shots, frame_times, int(size))
    return Movie(frames=frames, frame_times=frame_times, fps=float(fps), audio=audio, sr=int(sr),
                 words=words, lines=spoken, shots=shots)
