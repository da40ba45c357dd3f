"""Analyses of word attribution vectors: important-word sets, overlap, spread, profiles.

Each function takes the attributions of the words of one window, or of many
(rows: windows; the last column is the current word), as plain arrays, however
they were computed. :func:`hrf_word_weights`, :func:`weighted_share` and
:func:`planted_share` compare them with what the simulated cohort planted;
:func:`word_classes` tags words as content or function words;
:func:`most_negative` picks the words a masking test masks.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sstats

__all__ = [
    "CONTENT_POS", "THRESHOLDS", "centre_of_mass", "distance_profile", "gather_windows", "hrf_word_weights",
    "important_set", "iou", "iou_curve", "layer_group", "most_negative", "planted_share", "random_iou", "random_iou_curve",
    "set_sizes", "spread_auc", "weighted_share", "word_classes",
]

#: the thresholds (in % of the total absolute attribution) of the study
THRESHOLDS = (1, 2, 3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98)
#: universal POS tags of content (open-class) words; every other tag but punctuation is a function word
CONTENT_POS = ("NOUN", "PROPN", "VERB", "ADJ", "ADV", "NUM")


# -- analyses of word attribution vectors ------------------------------------------------------------
def _vector(attribution: np.ndarray) -> np.ndarray:
    a = np.asarray(attribution, dtype=np.float64)
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"attribution must be a finite 1-D array with at least one word, got shape {a.shape}")
    return a


def _check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if t.size == 0 or np.any(~np.isfinite(t)) or np.any(t <= 0) or np.any(t > 100):
        raise ValueError(f"thresholds={thresholds!r} must be percentages in (0, 100]")
    return t


def important_set(attribution: np.ndarray, threshold: float) -> np.ndarray:
    """The smallest set of words whose absolute attribution reaches ``threshold`` % of the total.

    Parameters
    ----------
    attribution : array of shape (n_words,)
        Word scores; their signs are ignored.
    threshold : float
        Percentage in (0, 100].

    Returns
    -------
    words : int array of shape (k,)
        Indices of the ``k`` words of largest absolute attribution (ties broken by
        position, earliest first), sorted by decreasing attribution; empty when every
        score is 0.
    """
    a = np.abs(_vector(attribution))
    t = float(_check_thresholds([threshold])[0])
    total = a.sum()
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-a, kind="stable")
    cumulative = np.cumsum(a[order]) / total
    k = int(np.searchsorted(cumulative, t / 100.0 - 1e-12)) + 1
    return order[: min(k, a.size)]


def set_sizes(attribution: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """Sizes of the important-word sets of :func:`important_set`, one per threshold.

    Returns
    -------
    sizes : int array of shape (n_thresholds,)
    """
    return np.array([important_set(attribution, t).size for t in _check_thresholds(thresholds)], dtype=np.int64)


def iou(a: Sequence[int], b: Sequence[int]) -> float:
    """Intersection over union (Jaccard index) of two sets of word indices; two empty sets give 1."""
    sa, sb = set(np.asarray(a).ravel().tolist()), set(np.asarray(b).ravel().tolist())
    union = sa | sb
    return 1.0 if not union else len(sa & sb) / len(union)


def iou_curve(attr_a: np.ndarray, attr_b: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """IoU of the important-word sets of two attributions of the same words, per threshold.

    Parameters
    ----------
    attr_a, attr_b : arrays of shape (n_words,)

    Returns
    -------
    iou : array of shape (n_thresholds,)
    """
    a, b = _pair(attr_a, attr_b)
    return np.array([iou(important_set(a, t), important_set(b, t)) for t in _check_thresholds(thresholds)])


def _pair(attr_a: np.ndarray, attr_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two attributions of the same words, as vectors."""
    a, b = _vector(attr_a), _vector(attr_b)
    if a.shape != b.shape:
        raise ValueError(f"the two attributions must cover the same words, got shapes {a.shape} and {b.shape}")
    return a, b


def random_iou(n_words: int, size_a: int, size_b: int) -> float:
    """Expected IoU of two independent uniformly random sets of ``size_a`` and ``size_b`` of ``n_words`` words.

    Exact: the intersection is hypergeometric, ``E[I / (size_a + size_b - I)]``.
    """
    if not 0 <= size_a <= n_words or not 0 <= size_b <= n_words:
        raise ValueError(f"set sizes {size_a}, {size_b} must lie in [0, n_words={n_words}]")
    if size_a == 0 and size_b == 0:
        return 1.0
    i = np.arange(max(0, size_a + size_b - n_words), min(size_a, size_b) + 1)
    pmf = sstats.hypergeom.pmf(i, n_words, size_a, size_b)
    return float(np.sum(pmf * i / (size_a + size_b - i)))


def random_iou_curve(attr_a: np.ndarray, attr_b: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """The chance level of :func:`iou_curve`: expected IoU of random sets of the same sizes, per threshold.

    Returns
    -------
    iou : array of shape (n_thresholds,)
    """
    a, b = _pair(attr_a, attr_b)
    sa, sb = set_sizes(a, thresholds), set_sizes(b, thresholds)
    return np.array([random_iou(a.size, int(x), int(y)) for x, y in zip(sa, sb)])


def spread_auc(attribution: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> float:
    """Attribution spread: area under the important-set size (as a fraction of the words) against ``t / 100``.

    The trapezoid rule on the threshold grid; larger means the attribution is spread over more
    words. One word carrying everything gives ``(t_max - t_min) / 100 / n_words``.
    """
    a = _vector(attribution)
    t = _check_thresholds(thresholds)
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"thresholds={thresholds!r} must increase")
    return float(np.trapezoid(set_sizes(a, t) / a.size, t / 100.0))


def _magnitudes(attribution: np.ndarray) -> np.ndarray:
    a = np.abs(np.asarray(attribution, dtype=np.float64))
    if a.ndim not in (1, 2) or a.shape[-1] == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"attribution must be a finite array of shape (n_words,) or (n_samples, n_words), got {a.shape}")
    return a


def centre_of_mass(attribution: np.ndarray) -> np.ndarray:
    """Mean distance from the current (last) word, weighted by absolute attribution.

    Parameters
    ----------
    attribution : array of shape (n_words,) or (n_samples, n_words)
        Words in reading order: the last column is the current word (distance 0),
        the first is ``n_words - 1`` words back.

    Returns
    -------
    com : float array of shape () or (n_samples,)
        nan where every score is 0.
    """
    a = _magnitudes(attribution)
    distance = np.arange(a.shape[-1])[::-1]
    total = a.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (a * distance).sum(-1) / np.where(total > 0, total, 1.0), np.nan)


def distance_profile(attribution: np.ndarray) -> np.ndarray:
    """Mean share of absolute attribution at each distance from the current word.

    Parameters
    ----------
    attribution : array of shape (n_samples, n_words) or (n_words,)
        Words in reading order (the last column is the current word).

    Returns
    -------
    profile : array of shape (n_words,)
        ``profile[d]``: share of the attribution on the word ``d`` words before the
        current word, averaged over samples (each sample's shares sum to 1; samples
        whose scores are all 0 are left out).
    """
    a = np.atleast_2d(_magnitudes(attribution))
    total = a.sum(-1, keepdims=True)
    keep = total[:, 0] > 0
    if not keep.any():
        return np.full(a.shape[-1], np.nan)
    return (a[keep] / total[keep]).mean(0)[::-1]


def hrf_word_weights(word_times: np.ndarray, times: np.ndarray, tr: float, window: int = 3, peak: float = 5.0) -> np.ndarray:
    """Weight of every word in the response of every TR, for word-locked sources seen through the HRF.

    A source with value ``v_j`` at word ``j`` is resampled to the volumes' sampling times with the Lanczos filter
    (:func:`brainalign.stimuli.lanczos_resample`) and convolved with the canonical HRF
    (:func:`brainalign.stimuli.convolve_hrf`); the response at TR ``t`` is then
    ``sum_j W[t, j] v_j``. This is how the simulated cohort plants its word-level sources, so
    ``|W[t]|`` says which words the planted response of TR ``t`` depends on (about 2-12 s
    before it, most around 5 s).

    Parameters
    ----------
    word_times : array of shape (n_words,)
        Time of each word (s), as used for the features (:func:`brainalign.stimuli.word_times`).
    times : array of shape (n_trs,)
        Sampling times of the volumes (s, ``Dataset.sample_times``), regularly spaced by ``tr``.
    tr : float
        Repetition time (s).
    window : int, default=3
        Lobes of the Lanczos kernel.
    peak : float, default=5.0
        The HRF's time to peak (s; the simulated cohort draws one per participant and ROI,
        ``ground_truth()["hrf_peak"]``).

    Returns
    -------
    W : array of shape (n_trs, n_words)
        Signed weights (the HRF's undershoot is negative).
    """
    from ..stimuli import convolve_hrf, hrf, lanczos_resample

    word_times = np.asarray(word_times, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if word_times.ndim != 1 or times.ndim != 1 or len(times) < 2:
        raise ValueError(f"word_times {word_times.shape} and times {times.shape} must be 1-D (>= 2 TRs)")
    n_pre = len(hrf(tr)) - 1  # volumes before the first one whose words still reach it through the HRF
    grid = np.concatenate([times[0] - tr * np.arange(n_pre, 0, -1), times])
    kernel = lanczos_resample(np.eye(len(word_times)), word_times, grid, window=window)
    return convolve_hrf(kernel, tr, peak=peak)[n_pre:]


def weighted_share(attributions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted share of each window's |attribution|: ``sum_j |a_j| w_j / sum_j |a_j|``.

    With ``w`` a window's HRF weights (:func:`hrf_word_weights`) scaled to a maximum of 1,
    the share is 1 when every attribution falls on the words at the HRF's peak lag and the
    mean weight when the attribution is uniform.

    Parameters
    ----------
    attributions : array of shape (n_windows, n_words)
    weights : array of shape (n_windows, n_words)
        Non-negative weight of each word of each window.

    Returns
    -------
    share : array of shape (n_windows,)
        nan for a window whose attributions are all zero.
    """
    a, w = np.abs(np.asarray(attributions, dtype=np.float64)), np.asarray(weights, dtype=np.float64)
    if a.ndim != 2 or a.shape != w.shape:
        raise ValueError(f"attributions {a.shape} and weights {w.shape} must be one 2-D shape")
    if (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("the weights must be finite and non-negative")
    total = a.sum(1)
    return np.divide((a * w).sum(1), total, out=np.full(len(a), np.nan), where=total > 0)


def most_negative(attributions: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` words of each window with the most negative attribution, as a mask.

    Setting a word's input embedding to zero changes a loss by about minus the word's
    Gradient x Input attribution, so the words whose attribution of a loss is most negative
    are those that most support the prediction: the words a masking test masks.

    Parameters
    ----------
    attributions : array of shape (n_windows, n_words)
    k : int
        Words per window, 1 <= k <= n_words.

    Returns
    -------
    mask : bool array of shape (n_windows, n_words)
        True at the masked words (ties: the earlier word first).
    """
    a = np.asarray(attributions, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"attributions must be 2-D (n_windows, n_words), got shape {a.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= a.shape[1]:
        raise ValueError(f"k={k!r} must be an integer from 1 to the {a.shape[1]} words of a window")
    mask = np.zeros(a.shape, dtype=bool)
    np.put_along_axis(mask, np.argsort(a, axis=1, kind="stable")[:, :k], True, axis=1)
    return mask


def planted_share(attributions: np.ndarray, drive: np.ndarray, threshold: float = 50) -> np.ndarray:
    """Share of each window's |attribution| that falls on its planted words.

    The planted words of a window are its important set (:func:`important_set`)
    under the planted drive: the fewest words carrying ``threshold`` % of it. In
    the simulated cohort the drive of word ``j`` at TR ``t`` is
    ``|W[t, j]| * d_j``: its weight through the Lanczos filter and the HRF
    (:func:`hrf_word_weights`, at the participant's HRF peak) times how strongly
    its sources move the region's voxels (``ground_truth()["word_drive/<run>"]``).

    Parameters
    ----------
    attributions : array of shape (n_windows, n_words)
    drive : array of shape (n_windows, n_words)
        Non-negative planted drive of each word of each window.
    threshold : float, default=50
        Percentage of the drive the planted set carries.

    Returns
    -------
    share : array of shape (n_windows,)
        ``sum over planted words |a_j| / sum |a_j|`` (1: every attribution on
        the planted words; a uniform attribution gets the set's size over the window's).
    """
    attributions, drive = np.asarray(attributions, dtype=np.float64), np.asarray(drive, dtype=np.float64)
    if attributions.ndim != 2 or attributions.shape != drive.shape:
        raise ValueError(f"attributions {attributions.shape} and drive {drive.shape} must be one 2-D shape")
    if (drive < 0).any() or not np.isfinite(drive).all():
        raise ValueError("the planted drive must be finite and non-negative")
    out = np.full(len(attributions), np.nan)
    for i, (a, d) in enumerate(zip(np.abs(attributions), drive)):
        if a.sum() > 0 and d.sum() > 0:
            out[i] = a[important_set(d, threshold)].sum() / a.sum()
    return out


def gather_windows(values: np.ndarray, first: np.ndarray, width: int) -> np.ndarray:
    """Slices ``values[..., first[i] : first[i] + width]`` of a per-word array, one per window.

    Parameters
    ----------
    values : array of shape (n_words,) or (n_windows, n_words)
        One value per word of the story (the same for every window), or one row per window.
    first : int array of shape (n_windows,)
        Index of each window's first word.
    width : int
        Words per window.

    Returns
    -------
    out : array of shape (n_windows, width)
    """
    values = np.asarray(values)
    first = np.asarray(first, dtype=np.int64).ravel()
    index = first[:, None] + np.arange(int(width))[None, :]
    if index.size and (index.min() < 0 or index.max() >= values.shape[-1]):
        raise ValueError(f"windows of {width} words starting at {first.min()}..{first.max()} leave the "
                         f"{values.shape[-1]} words")
    if values.ndim == 1:
        return values[index]
    if values.ndim == 2 and values.shape[0] == len(first):
        return np.take_along_axis(values, index, axis=1)
    raise ValueError(f"values must have shape (n_words,) or ({len(first)}, n_words), got {values.shape}")


def layer_group(layer: int, n_layers: int) -> str:
    """``"early"``, ``"middle"`` or ``"late"``: the third of the model's depth ``layer / n_layers`` falls in."""
    if not 0 <= layer <= n_layers:
        raise ValueError(f"layer {layer} does not exist; valid layers are 0..{n_layers}")
    depth = layer / n_layers
    return "early" if depth <= 1 / 3 else "middle" if depth <= 2 / 3 else "late"


def word_classes(words: Sequence[str]) -> pd.DataFrame:
    """Part of speech of every whitespace word, and whether it is a content word.

    The text ``" ".join(words)`` is tagged by spaCy (:func:`brainalign.linguistics.load_parser`);
    a word takes the universal POS tag of its first token that is not punctuation
    (``"PUNCT"`` if it has none).

    Returns
    -------
    DataFrame with n_words rows and columns ``word``, ``pos`` and ``content`` (a POS in
    :data:`CONTENT_POS`).
    """
    from ..linguistics import load_parser

    words = [str(w) for w in words]
    if not words:
        raise ValueError("word_classes needs at least one word")
    ends = np.cumsum([len(w) + 1 for w in words]) - 1
    doc = load_parser()(" ".join(words))
    pos = ["PUNCT"] * len(words)
    for token in doc:
        j = int(np.searchsorted(ends, token.idx, side="right"))
        if j < len(words) and token.pos_ not in ("PUNCT", "SPACE") and pos[j] == "PUNCT":
            pos[j] = token.pos_
    table = pd.DataFrame({"word": words, "pos": pos})
    table["content"] = table["pos"].isin(CONTENT_POS)
    return table
