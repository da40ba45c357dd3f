"""The time base: volumes, sampling times, word times, and resampling onto the volumes.

The conventions (what a volume's time means, where its features are sampled,
which instant stands for a word, how far each kernel reaches) are set out in
the docstring of :mod:`brainalign.stimuli`; the functions here are the one
place that applies them: :func:`tr_times`, :func:`sample_times` and
:func:`word_times`; :func:`lanczos_resample`, :func:`make_delayed`,
:func:`hrf` and :func:`convolve_hrf`; :func:`audio_envelope` and
:func:`frames_per_tr`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import signal, stats

__all__ = [
    "SAMPLE_AT",
    "audio_envelope",
    "convolve_hrf",
    "frames_per_tr",
    "hrf",
    "lanczos_resample",
    "make_delayed",
    "sample_times",
    "tr_times",
    "word_times",
]

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

    The one place where the time base is decided (see the docstring of
    :mod:`brainalign.stimuli`):
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


# -- frames per volume --------------------------------------------------------
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
