"""Which input words drive brain alignment, and which drive next-word prediction.

The method of Proietti, Capobianco & Toneva (2025). A causal language model
reads a window of ``context`` words; its hidden states at one layer, averaged
over each word's tokens, are resampled to the fMRI TRs (the Lanczos filter of
:func:`brainalign.features.tr_features`), delayed and fed to a fitted ridge
encoding model (:class:`brainalign.encoding.RidgeEncoder`, turned into a torch
map with :meth:`~brainalign.encoding.RidgeEncoder.linear_map`). Two losses are
attributed to the input embeddings of the window's words:

* **brain alignment** (BA): the mean squared error, over the voxels of a
  region, between the ridge prediction of one TR and the measured response;
* **next-word prediction** (NWP): the mean cross-entropy over the tokens of
  the word that follows the window (teacher forcing), read out at the same
  layer through the final norm and the output embeddings (the "logit lens";
  ``nwp_readout="output"`` reads the model's own output instead).

The attribution of a token is Gradient x Input (the gradient of the loss with
respect to the token's input embedding, dotted with the embedding), or
Integrated Gradients from a zero-embedding baseline (captum); a word's score
is the sum over its tokens. The window ends at the last word that the
prediction of the TR reads (the Lanczos support of its delayed TRs), so the
last word of the window is the "current word" of both losses.

The analyses work on any word attribution vector: the smallest set of words
whose absolute attribution reaches ``t`` % of the total (:func:`important_set`),
overlap of two such sets (:func:`iou`) against the overlap of random sets of
the same sizes (:func:`random_iou`), spread (:func:`spread_auc`), centre of
mass over positions (:func:`centre_of_mass`) and the profile over the distance
from the current word (:func:`distance_profile`). :func:`hrf_word_weights`
gives the weight of every word in the response of every TR under a linear
model of word-locked sources convolved with the canonical HRF, the model of
the simulated cohort.

References
----------
Proietti, M., Capobianco, R., & Toneva, M. (2025). Fine-grained analysis of
brain-LLM alignment through input attribution. arXiv:2510.12355.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import stats as sstats

from .encoding import RidgeEncoder
from .models import LoadedModel

__all__ = [
    "BASELINES", "BrainAttribution", "CONTENT_POS", "METHODS", "NWP_READOUTS", "RidgeMap", "THRESHOLDS", "WordAttributions",
    "centre_of_mass", "distance_profile", "gather_windows", "gradient_x_input", "hrf_word_weights",
    "important_set", "integrated_gradients", "iou", "iou_curve", "layer_group", "planted_share", "random_iou", "random_iou_curve",
    "set_sizes", "spread_auc", "word_classes",
]

#: the thresholds (in % of the total absolute attribution) of the study
THRESHOLDS = (1, 2, 3, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98)
#: attribution methods
METHODS = ("gradient_x_input", "integrated_gradients")
#: where the Integrated Gradients path starts: zero embeddings, or the mean input embedding
BASELINES = ("zero", "mean")
#: how the next-word loss reads the layer: logit lens (final norm + output embeddings) or the model's output
NWP_READOUTS = ("logit_lens", "output")
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
    from .stimuli import convolve_hrf, hrf, lanczos_resample

    word_times = np.asarray(word_times, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if word_times.ndim != 1 or times.ndim != 1 or len(times) < 2:
        raise ValueError(f"word_times {word_times.shape} and times {times.shape} must be 1-D (>= 2 TRs)")
    n_pre = len(hrf(tr)) - 1  # volumes before the first one whose words still reach it through the HRF
    grid = np.concatenate([times[0] - tr * np.arange(n_pre, 0, -1), times])
    kernel = lanczos_resample(np.eye(len(word_times)), word_times, grid, window=window)
    return convolve_hrf(kernel, tr, peak=peak)[n_pre:]


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
    from .linguistics import load_parser

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


# -- attribution methods -------------------------------------------------------------------------------
def gradient_x_input(outputs: Mapping[Hashable, torch.Tensor], inputs: torch.Tensor) -> dict[Hashable, torch.Tensor]:
    """Gradient x Input of several per-sample outputs of one forward pass.

    Equivalent to ``captum.attr.InputXGradient`` run once per output, without repeating the
    forward pass: the samples of a batch must not interact (each output ``[b]`` depends on
    ``inputs[b]`` only), so the gradient of the summed output is each sample's gradient.

    Parameters
    ----------
    outputs : mapping of key -> tensor of shape (batch,)
        Scalar targets per sample, computed from ``inputs`` with autograd on.
    inputs : tensor of shape (batch, ...)
        The leaf tensor the outputs were computed from (``requires_grad=True``).

    Returns
    -------
    dict of key -> tensor of the shape of ``inputs``
        ``d output[b] / d inputs[b] * inputs[b]``, detached.
    """
    if not inputs.requires_grad:
        raise ValueError("inputs must require gradients (call inputs.requires_grad_() before the forward pass)")
    keys = list(outputs)
    out = {}
    for i, key in enumerate(keys):
        value = outputs[key]
        if value.ndim != 1 or value.shape[0] != inputs.shape[0]:
            raise ValueError(f"output {key!r} must have shape ({inputs.shape[0]},), got {tuple(value.shape)}")
        (grad,) = torch.autograd.grad(value.sum(), inputs, retain_graph=i < len(keys) - 1)
        out[key] = (grad * inputs).detach()
    return out


def integrated_gradients(
    forward_func: Callable[..., torch.Tensor],
    inputs: torch.Tensor,
    n_steps: int = 20,
    additional_forward_args: tuple = (),
    internal_batch_size: int | None = None,
    baselines: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrated Gradients (``captum.attr.IntegratedGradients``), from a zero baseline by default.

    Parameters
    ----------
    forward_func : callable
        ``forward_func(inputs, *additional_forward_args)`` -> tensor of shape (batch,).
    inputs : tensor of shape (batch, ...)
    n_steps : int, default=20
        Points of the path integral (Gauss-Legendre).
    additional_forward_args : tuple
        Passed to ``forward_func``; tensors with a batch dimension are repeated along the path.
    internal_batch_size : int, optional
        Path points evaluated at once.
    baselines : tensor broadcastable to the shape of ``inputs``, optional
        Where the path starts; None: zeros.

    Returns
    -------
    attributions : tensor of the shape of ``inputs``
    delta : tensor of shape (batch,)
        Convergence delta: the sum of each sample's attributions minus
        ``forward_func(inputs) - forward_func(baselines)`` (completeness; 0 for an exact integral).
    """
    from captum.attr import IntegratedGradients

    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 2:
        raise ValueError(f"n_steps={n_steps!r} must be an integer >= 2")
    ig = IntegratedGradients(forward_func)
    attributions, delta = ig.attribute(
        inputs, baselines=torch.zeros_like(inputs) if baselines is None else baselines.expand_as(inputs).contiguous(),
        additional_forward_args=tuple(additional_forward_args) or None,
        n_steps=int(n_steps), internal_batch_size=internal_batch_size, return_convergence_delta=True,
    )
    return attributions.detach(), delta.detach()


# -- the ridge encoder as a torch map ------------------------------------------------------------------
class RidgeMap(torch.nn.Module):
    """A fitted :class:`~brainalign.encoding.RidgeEncoder` as a differentiable map of delayed features.

    ``forward(Xd) == encoder.predict(X)`` for ``Xd = delay_within_runs(X, encoder.delays)``
    (see :meth:`~brainalign.encoding.RidgeEncoder.linear_map`).

    Parameters
    ----------
    encoder : RidgeEncoder
        Fitted.
    dtype : torch.dtype, default=torch.float32
    """

    def __init__(self, encoder: RidgeEncoder, dtype: torch.dtype = torch.float32):
        super().__init__()
        mean, scale, weights, intercept = encoder.linear_map()
        self.delays = tuple(int(d) for d in encoder.delays)
        self.n_features = int(encoder.n_features_in_)
        for name, value in (("mean", mean), ("scale", scale), ("weights", weights), ("intercept", intercept)):
            self.register_buffer(name, torch.as_tensor(value, dtype=dtype))

    def forward(self, delayed: torch.Tensor) -> torch.Tensor:
        """Predictions of shape (batch, n_targets) from delayed features of shape (batch, n_features * n_delays)."""
        return ((delayed - self.mean) / self.scale) @ self.weights + self.intercept


# -- attribution through a language model ----------------------------------------------------------------
@dataclass
class WordAttributions:
    """Word attributions of some TRs' windows.

    Attributes
    ----------
    trs : int array of shape (n_windows,)
        The attributed TRs.
    first, last : int arrays of shape (n_windows,)
        Story indices of each window's first and last (current) word.
    scores : dict of key -> array of shape (n_windows, context)
        Word attributions, column ``j`` for word ``first + j``. Keys are
        ``("alignment", layer, target)`` and ``("next_word", layer)``.
    delta : dict of key -> array of shape (n_windows,)
        Integrated Gradients only: the convergence delta of each window.
    gap : dict of key -> array of shape (n_windows,)
        Integrated Gradients only: ``loss(input) - loss(baseline)``, the sum the attributions should make.
    method : str
    """

    trs: np.ndarray
    first: np.ndarray
    last: np.ndarray
    scores: dict
    method: str
    delta: dict = field(default_factory=dict)
    gap: dict = field(default_factory=dict)


class _StopForward(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a forward hook to skip the blocks no target reads."""


@dataclass
class _Batch:
    """Tensors of a batch of windows (rows: windows)."""

    ids: torch.Tensor          # (B, T) token ids, right-padded
    attention: torch.Tensor    # (B, T) bool
    word_of: torch.Tensor      # (B, T) long: window word of each token, context = the next word, -1 none
    lanczos: torch.Tensor      # (B, n_delays, context) weights of the window's words in the delayed TRs
    constant: dict             # layer -> (B, n_delays, dim): words read before the window, from fallback features
    targets: dict              # target name -> (B, n_targets) measured responses
    next_pos: torch.Tensor     # (B, T) bool: positions whose logits predict a token of the next word
    next_ids: torch.Tensor     # (B, T) long: the predicted token at those positions (0 elsewhere)


class BrainAttribution:
    """Attribute brain-alignment and next-word losses of a causal LM to the words of one story.

    Parameters
    ----------
    lm : LoadedModel
        A causal language model (:func:`brainalign.models.load_model`).
    words : sequence of str, length n_words
        The story's words, in order, as the encoders' features were computed from them.
    word_times : array of shape (n_words,)
        Time of each word (s), as given to :func:`brainalign.features.tr_features`.
    times : array of shape (n_trs,)
        Sampling times of the story's volumes (s, ``Dataset.sample_times``), as given to
        :func:`brainalign.features.tr_features`.
    encoders : mapping of (layer, target) -> RidgeEncoder
        Encoders fitted on TR features of hidden state ``layer`` (0 = embeddings; the
        :func:`~brainalign.features.tr_features` of word features that average each word's
        tokens), predicting the responses named ``target`` (e.g. ``"S01/LTC"``). All share
        the same delays.
    responses : mapping of target -> array of shape (n_trs, n_targets)
        The measured responses of each target on this story.
    context : int, default=64
        Words per window (the current word included).
    nwp_readout : {"output", "logit_lens"}, default="output"
        How the next-word loss reads hidden state ``layer``: the model's own output (the
        same for every layer), or the layer through the model's final norm and output
        embeddings (the logit lens).
    fallback : mapping of layer -> array of shape (n_words, dim), optional
        Word features for the words a prediction reads that lie before its window (held
        constant); None: such TRs are not eligible.
    window : int, default=3
        Lobes of the Lanczos filter (as in :func:`~brainalign.features.tr_features`).

    Attributes
    ----------
    eligible : int array
        The TRs that can be attributed: their delayed TRs lie in the story, their window
        fits in it, a word follows it, and the words their prediction reads lie in the
        window (or have ``fallback`` features).
    layers : list of int
        The layers of the encoders.
    delays : tuple of int
        The encoders' delays.
    lanczos : array of shape (n_trs, n_words)
        Weight of each word in each TR's features.

    Examples
    --------
    >>> att = BrainAttribution(lm, words, word_times, times, {(15, "S01/LTC"): encoder},
    ...                        {"S01/LTC": Y_test[:, ltc]})                     # doctest: +SKIP
    >>> res = att.attribute(att.eligible[:8])                                  # doctest: +SKIP
    >>> res.scores["alignment", 15, "S01/LTC"].shape, res.scores["next_word", 15].shape  # doctest: +SKIP
    ((8, 64), (8, 64))
    """

    def __init__(
        self,
        lm: LoadedModel,
        words: Sequence[str],
        word_times: np.ndarray,
        times: np.ndarray,
        encoders: Mapping[tuple[int, str], RidgeEncoder],
        responses: Mapping[str, np.ndarray],
        context: int = 64,
        nwp_readout: str = "output",
        fallback: Mapping[int, np.ndarray] | None = None,
        window: int = 3,
    ):
        from .stimuli import lanczos_resample

        if lm.spec.kind != "causal":
            raise ValueError(f"model {lm.spec.name!r} is an {lm.spec.kind}; attribution needs a causal language model")
        if nwp_readout not in NWP_READOUTS:
            raise ValueError(f"unknown nwp_readout {nwp_readout!r}; valid: {list(NWP_READOUTS)}")
        if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1:
            raise ValueError(f"context={context!r} must be a positive integer (words per window)")
        self.lm, self.context, self.nwp_readout = lm, int(context), nwp_readout
        self.words = [str(w) for w in words]
        self.word_times = np.asarray(word_times, dtype=np.float64)
        self.times = np.asarray(times, dtype=np.float64)
        if self.word_times.shape != (len(self.words),):
            raise ValueError(f"word_times has shape {self.word_times.shape}; expected ({len(self.words)},)")
        self.n_layers = lm.spec.n_layers
        if not encoders:
            raise ValueError("encoders is empty: give at least one (layer, target) -> fitted RidgeEncoder")
        self.maps: dict[tuple[int, str], RidgeMap] = {}
        delays = set()
        for (layer, target), encoder in encoders.items():
            layer_group(int(layer), self.n_layers)  # validates the layer
            if target not in responses:
                raise ValueError(f"no responses for target {target!r}; responses has {sorted(responses)}")
            self.maps[int(layer), target] = RidgeMap(encoder).to(lm.device)
            delays.add(self.maps[int(layer), target].delays)
            if self.maps[int(layer), target].n_features != lm.spec.dim:
                raise ValueError(f"the encoder of {(layer, target)} was fitted on {encoder.n_features_in_} features; "
                                 f"{lm.spec.name} has {lm.spec.dim}")
        if len(delays) != 1:
            raise ValueError(f"all encoders must share the same delays, got {sorted(delays)}")
        self.delays = delays.pop()
        self.layers = sorted({layer for layer, _ in self.maps})
        self.responses = {k: np.asarray(v, dtype=np.float32) for k, v in responses.items()}
        for name, y in self.responses.items():
            if y.ndim != 2 or len(y) != len(self.times):
                raise ValueError(f"responses[{name!r}] has shape {y.shape}; expected ({len(self.times)}, n_targets)")
        self.fallback = {int(k): np.asarray(v, dtype=np.float32) for k, v in (fallback or {}).items()}
        self.lanczos = lanczos_resample(np.eye(len(self.words)), self.word_times, self.times, window=window)
        self._plan()

    # -- windows -------------------------------------------------------------------------------------
    def _plan(self) -> None:
        n_trs, n_words = self.lanczos.shape
        self._first = np.full(n_trs, -1)
        self._last = np.full(n_trs, -1)
        self._why = np.full(n_trs, "", dtype=object)
        for t in range(n_trs):
            rows = [t - d for d in self.delays]
            if min(rows) < 0 or max(rows) >= n_trs:
                self._why[t] = f"its delayed TRs {rows} leave the story's {n_trs} TRs"
                continue
            read = np.flatnonzero(np.any(self.lanczos[rows] != 0, axis=0))
            if read.size == 0:
                self._why[t] = "its prediction reads no word"
                continue
            last = int(read.max())
            first = last - self.context + 1
            if first < 0:
                self._why[t] = f"its window of {self.context} words would start before the story"
            elif last + 1 >= n_words:
                self._why[t] = "no word follows its window (nothing to predict)"
            elif read.min() < first and not all(layer in self.fallback for layer in self.layers):
                self._why[t] = (f"its prediction reads {first - read.min()} word(s) before its window; "
                                "use a longer context or give fallback features")
            else:
                self._first[t], self._last[t] = first, last
        self.eligible = np.flatnonzero(self._first >= 0)

    def windows(self, trs: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """First and last (current) word of each TR's window.

        Returns
        -------
        first, last : int arrays of shape (n,)
        """
        trs = self._check_trs(trs)
        return self._first[trs], self._last[trs]

    def _check_trs(self, trs: Sequence[int]) -> np.ndarray:
        trs = np.asarray(trs, dtype=np.int64).ravel()
        bad = [int(t) for t in trs if not 0 <= t < len(self._first) or self._first[t] < 0]
        if bad:
            t = bad[0]
            why = self._why[t] if 0 <= t < len(self._first) else f"the story has TRs 0..{len(self._first) - 1}"
            raise ValueError(f"TR {t} cannot be attributed: {why}. Eligible TRs: {len(self.eligible)} "
                             f"({self.eligible.min() if self.eligible.size else '-'}.."
                             f"{self.eligible.max() if self.eligible.size else '-'})")
        return trs

    def _batch(self, trs: np.ndarray) -> _Batch:
        tok = self.lm.tokenizer
        C, n_delays, dim = self.context, len(self.delays), self.lm.spec.dim
        ids, word_of = [], []
        for t in trs:
            first, last = self._first[t], self._last[t]
            chunk = self.words[first : last + 2]  # the window and the next word
            ends = np.cumsum([len(w) + 1 for w in chunk]) - 1
            enc = tok(" ".join(chunk), add_special_tokens=True, return_offsets_mapping=True, return_attention_mask=False)
            offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
            real = offsets[:, 1] > offsets[:, 0]
            owner = np.where(real, np.searchsorted(ends, offsets[:, 1] - 1, side="right"), -1)
            missing = np.setdiff1d(np.arange(len(chunk)), owner)
            if missing.size:
                raise ValueError(f"word {first + missing[0]} ({chunk[missing[0]]!r}) gives no tokens with the "
                                 f"{self.lm.spec.name!r} tokenizer; remove or replace it")
            ids.append(np.asarray(enc["input_ids"], dtype=np.int64))
            word_of.append(owner)
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        B = len(trs)
        ids_t = torch.full((B, width), pad, dtype=torch.long)
        word_t = torch.full((B, width), -1, dtype=torch.long)
        for b, (x, w) in enumerate(zip(ids, word_of)):
            ids_t[b, : len(x)] = torch.from_numpy(x)
            word_t[b, : len(w)] = torch.from_numpy(w)
        attention = torch.arange(width)[None, :] < torch.tensor([len(x) for x in ids])[:, None]
        is_next = word_t == C
        next_pos = torch.zeros_like(is_next)
        next_pos[:, :-1] = is_next[:, 1:]
        next_ids = torch.where(next_pos, torch.roll(ids_t, -1, dims=1), torch.zeros_like(ids_t))
        lanczos = np.zeros((B, n_delays, C), dtype=np.float32)
        constant = {layer: np.zeros((B, n_delays, dim), dtype=np.float32) for layer in self.layers}
        for b, t in enumerate(trs):
            first, last = self._first[t], self._last[t]
            rows = self.lanczos[[t - d for d in self.delays]]  # (n_delays, n_words)
            lanczos[b] = rows[:, first : last + 1]
            if first > 0 and np.any(rows[:, :first] != 0):
                for layer in self.layers:
                    constant[layer][b] = rows[:, :first] @ self.fallback[layer][:first]
        targets = {name: torch.from_numpy(y[trs]) for name, y in self.responses.items()}
        return _Batch(ids_t, attention, word_t, torch.from_numpy(lanczos),
                      {k: torch.from_numpy(v) for k, v in constant.items()}, targets, next_pos, next_ids)

    # -- the forward pass ------------------------------------------------------------------------------
    def _embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.model.get_input_embeddings()(ids.to(self.lm.device)).detach().float()

    def _decoder_layers(self) -> torch.nn.ModuleList | None:
        base = self.lm.model.base_model
        for name in ("layers", "h"):
            layers = getattr(base, name, None)
            if isinstance(layers, torch.nn.ModuleList) and len(layers) == self.n_layers:
                return layers
        return None

    def _hidden_states(self, x: torch.Tensor, attention: torch.Tensor, deepest: int) -> Sequence[torch.Tensor]:
        """Hidden states 0..``deepest`` (as the model's ``output_hidden_states``), stopping after block ``deepest``.

        Blocks past the deepest layer a target reads are skipped: forward hooks record each
        block's output and interrupt the pass. Models whose blocks are not found, and the last
        layer (which the model normalises), run the whole forward pass.
        """
        base = self.lm.model.base_model
        x = x.to(next(self.lm.model.parameters()).dtype)
        blocks = self._decoder_layers()
        if blocks is None or deepest >= self.n_layers:
            return base(inputs_embeds=x, attention_mask=attention.long(), output_hidden_states=True,
                        use_cache=False).hidden_states
        captured: dict[int, torch.Tensor] = {}

        def before(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            captured[0] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
            if deepest == 0:
                raise _StopForward

        def after(i: int) -> Callable:
            def hook(module: torch.nn.Module, args: tuple, output: object) -> None:
                captured[i + 1] = output[0] if isinstance(output, tuple) else output
                if i + 1 == deepest:
                    raise _StopForward

            return hook

        handles = [blocks[0].register_forward_pre_hook(before, with_kwargs=True)]
        handles += [blocks[i].register_forward_hook(after(i)) for i in range(deepest)]
        try:
            base(inputs_embeds=x, attention_mask=attention.long(), use_cache=False)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return [captured[i] for i in range(deepest + 1)]

    def _head(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        if layer < self.n_layers:  # the last hidden state is already normalised
            base = self.lm.model.base_model
            norm = next((getattr(base, n) for n in ("norm", "ln_f", "final_layer_norm", "final_layernorm")
                         if hasattr(base, n)), None)
            if norm is None:
                raise ValueError(f"no final norm found in {type(base).__name__}; use nwp_readout='output'")
            hidden = norm(hidden)
        return self.lm.model.get_output_embeddings()(hidden).float()

    def _outputs(self, x: torch.Tensor, batch: _Batch, idx: torch.Tensor, keys: Sequence[tuple],
                 losses: bool = True) -> dict:
        """Per-window outputs of ``keys`` for input embeddings ``x`` of the windows ``idx`` of ``batch``.

        Alignment keys give the loss (B,) or, with ``losses=False``, the prediction (B, n_targets);
        next-word keys give the cross-entropy (B,).
        """
        device = x.device
        idx = idx.to(batch.ids.device)
        attention = batch.attention[idx].to(device)
        deepest = max(self.n_layers if k[0] == "next_word" and self.nwp_readout == "output" else k[1] for k in keys)
        hidden = self._hidden_states(x, attention, deepest)
        word_of = batch.word_of[idx].to(device)
        onehot = (word_of[:, None, :] == torch.arange(self.context, device=device)[None, :, None]).float()  # (B, C, T)
        average = onehot / onehot.sum(-1, keepdim=True).clamp(min=1)
        result = {}
        for key in keys:
            if key[0] == "alignment":
                layer, target = key[1], key[2]
                features = average @ hidden[layer].float()  # (B, C, dim)
                tr_feats = batch.lanczos[idx].to(device) @ features + batch.constant[layer][idx].to(device)
                prediction = self.maps[layer, target](tr_feats.reshape(len(idx), -1))
                if losses:
                    result[key] = ((prediction - batch.targets[target][idx].to(device)) ** 2).mean(-1)
                else:
                    result[key] = prediction
            elif key[0] == "next_word":
                layer = self.n_layers if self.nwp_readout == "output" else key[1]
                sel = batch.next_pos[idx].to(device)
                logits = self._head(hidden[layer][sel], layer)  # (M, vocab)
                ce = torch.nn.functional.cross_entropy(logits, batch.next_ids[idx].to(device)[sel], reduction="none")
                rows = sel.nonzero()[:, 0]
                total = torch.zeros(len(idx), device=device).index_add(0, rows, ce)
                result[key] = total / torch.bincount(rows, minlength=len(idx)).clamp(min=1)
            else:
                raise ValueError(f"unknown target key {key!r}; keys are ('alignment', layer, target) or ('next_word', layer)")
        return result

    def keys(self) -> list[tuple]:
        """Every target: ``("alignment", layer, target)`` for each encoder, ``("next_word", layer)`` per layer."""
        return [("alignment", layer, target) for layer, target in self.maps] + [("next_word", layer) for layer in self.layers]

    def _canonical(self, key: tuple) -> tuple:
        """The key that computes ``key``: with the output readout, every next-word key is the last layer's."""
        return ("next_word", self.n_layers) if key[0] == "next_word" and self.nwp_readout == "output" else key

    def _check_keys(self, keys: Sequence[tuple] | None) -> list[tuple]:
        valid = self.keys()
        keys = valid if keys is None else [tuple(k) for k in keys]
        for key in keys:
            if key not in valid:
                raise ValueError(f"unknown target {key!r}; valid targets: {valid}")
        return keys

    def _to_words(self, token_scores: torch.Tensor, batch: _Batch, idx: torch.Tensor) -> np.ndarray:
        """Sum token scores (B, T) over each window word's tokens: (B, context)."""
        word_of = batch.word_of[idx].to(token_scores.device)
        inside = (word_of >= 0) & (word_of < self.context)
        out = torch.zeros(len(idx), self.context + 1, device=token_scores.device, dtype=token_scores.dtype)
        out.scatter_add_(1, torch.where(inside, word_of, self.context), token_scores * inside)
        return out[:, : self.context].detach().cpu().double().numpy()

    # -- public API --------------------------------------------------------------------------------------
    def attribute(
        self,
        trs: Sequence[int],
        keys: Sequence[tuple] | None = None,
        method: str = "gradient_x_input",
        batch_size: int = 8,
        n_steps: int = 20,
        baseline: str = "zero",
        progress: bool = False,
    ) -> WordAttributions:
        """Word attributions of each TR's losses, in batches of windows.

        Parameters
        ----------
        trs : sequence of int
            TRs to attribute (see :attr:`eligible`).
        keys : sequence of tuple, optional
            Targets (see :meth:`keys`); all by default.
        method : {"gradient_x_input", "integrated_gradients"}
            Gradient x Input shares one forward pass between the targets; Integrated
            Gradients (captum, ``n_steps`` points, zero-embedding baseline) runs per target.
        batch_size : int, default=8
            Windows per forward pass (Integrated Gradients: path points per pass).
        n_steps : int, default=20
            Integrated Gradients only.
        baseline : {"zero", "mean"}, default="zero"
            Integrated Gradients only: the path starts at zero embeddings (as in the study), or at
            the mean input embedding of the vocabulary at every position. Models that normalise
            their inputs (RMSNorm, LayerNorm) are scale-invariant away from zero and change
            abruptly near it, so the zero baseline can need many more steps to converge.
        progress : bool
            Show a progress bar.

        Returns
        -------
        WordAttributions
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid: {list(METHODS)}")
        start_point = self._baseline(baseline)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        trs = self._check_trs(trs)
        requested = self._check_keys(keys)
        keys = list(dict.fromkeys(self._canonical(k) for k in requested))  # each distinct target once
        scores = {k: np.zeros((len(trs), self.context)) for k in keys}
        delta = {k: np.zeros(len(trs)) for k in keys} if method == "integrated_gradients" else {}
        gap = {k: np.zeros(len(trs)) for k in keys} if method == "integrated_gradients" else {}
        step = batch_size if method == "gradient_x_input" else 1
        starts = range(0, len(trs), step)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"attribution ({method})")
        for start in starts:
            rows = slice(start, start + step)
            batch = self._batch(trs[rows])
            idx = torch.arange(len(trs[rows]))
            x = self._embed(batch.ids)
            if method == "gradient_x_input":
                x.requires_grad_(True)
                outputs = self._outputs(x, batch, idx, keys)
                for key, value in gradient_x_input(outputs, x).items():
                    scores[key][rows] = self._to_words(value.sum(-1), batch, idx)
                continue
            for key in keys:
                def func(inputs: torch.Tensor, index: torch.Tensor, key: tuple = key, batch: _Batch = batch) -> torch.Tensor:
                    return self._outputs(inputs, batch, index, [key])[key]

                attr, d = integrated_gradients(func, x, n_steps=n_steps, additional_forward_args=(idx,),
                                               internal_batch_size=batch_size, baselines=start_point)
                token_scores = attr.sum(-1)
                scores[key][rows] = self._to_words(token_scores, batch, idx)
                delta[key][rows] = d.cpu().double().numpy()
                gap[key][rows] = (token_scores.sum(-1) - d).cpu().double().numpy()
        first, last = self.windows(trs)
        scores, delta, gap = ({k: d[self._canonical(k)].copy() for k in requested} if d else {} for d in (scores, delta, gap))
        return WordAttributions(trs=trs, first=first, last=last, scores=scores, method=method, delta=delta, gap=gap)

    def _baseline(self, baseline: str) -> torch.Tensor | None:
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; valid: {list(BASELINES)}")
        if baseline == "zero":
            return None
        return self.lm.model.get_input_embeddings().weight.detach().float().mean(0)[None, None, :]

    def path_losses(self, tr: int, alphas: Sequence[float], baseline: str = "zero",
                    keys: Sequence[tuple] | None = None) -> dict:
        """The losses along the straight path from a baseline to the input embeddings of one TR's window.

        The path Integrated Gradients integrates over: ``loss(b + alpha * (x - b))``. A loss that
        jumps along the path needs many more integration points than a smooth one.

        Parameters
        ----------
        tr : int
            An eligible TR.
        alphas : sequence of float, length n_alphas
            Positions on the path (0: the baseline, 1: the input).
        baseline : {"zero", "mean"}
            See :meth:`attribute`.
        keys : sequence of tuple, optional
            Targets (see :meth:`keys`); all by default.

        Returns
        -------
        dict of key -> array of shape (n_alphas,)
        """
        trs = self._check_trs([tr])
        requested = self._check_keys(keys)
        keys = list(dict.fromkeys(self._canonical(k) for k in requested))
        batch = self._batch(trs)
        x = self._embed(batch.ids)
        start = self._baseline(baseline)
        start = torch.zeros_like(x) if start is None else start.expand_as(x)
        out: dict = {k: [] for k in keys}
        with torch.no_grad():
            for a in alphas:
                for key, value in self._outputs(start + float(a) * (x - start), batch, torch.arange(1), keys).items():
                    out[key].append(float(value[0]))
        return {k: np.asarray(out[self._canonical(k)]) for k in requested}

    def evaluate(
        self,
        trs: Sequence[int],
        mask: np.ndarray | None = None,
        keys: Sequence[tuple] | None = None,
        batch_size: int = 8,
        fill: str = "zero",
    ) -> dict:
        """Predictions and next-word losses of each TR's window, optionally with words masked.

        Parameters
        ----------
        trs : sequence of int, length n
        mask : bool array of shape (n, context), optional
            Words whose input embeddings are replaced by ``fill``.
        keys : sequence of tuple, optional
            Targets (see :meth:`keys`); all by default.
        batch_size : int, default=8
        fill : {"zero", "mean"}, default="zero"
            What a masked word's embeddings become: zeros, or the mean input embedding (the
            baselines of :meth:`attribute`).

        Returns
        -------
        dict of key -> array
            Alignment keys: the prediction, shape (n, n_targets); next-word keys: the
            cross-entropy of the next word (nats per token), shape (n,).
        """
        trs = self._check_trs(trs)
        requested = self._check_keys(keys)
        keys = list(dict.fromkeys(self._canonical(k) for k in requested))
        replacement = self._baseline(fill)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (len(trs), self.context):
                raise ValueError(f"mask has shape {mask.shape}; expected ({len(trs)}, {self.context})")
        parts: dict = {k: [] for k in keys}
        with torch.no_grad():
            for start in range(0, len(trs), batch_size):
                rows = slice(start, start + batch_size)
                batch = self._batch(trs[rows])
                idx = torch.arange(len(trs[rows]))
                x = self._embed(batch.ids)
                if mask is not None:
                    m = torch.from_numpy(mask[rows])
                    word_of = batch.word_of
                    drop = torch.zeros_like(word_of, dtype=torch.bool)
                    inside = (word_of >= 0) & (word_of < self.context)
                    drop[inside] = m[torch.nonzero(inside)[:, 0], word_of[inside]]
                    keep = (~drop).to(x.device)[..., None].float()
                    x = x * keep if replacement is None else x * keep + replacement * (1 - keep)
                for key, value in self._outputs(x, batch, idx, keys, losses=False).items():
                    parts[key].append(value.cpu().double().numpy())
        return {k: np.concatenate(parts[self._canonical(k)]) for k in requested}
