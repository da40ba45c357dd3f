"""Noise ceilings: how well could any model predict these responses?

Two kinds of ceiling are computed here.

**From repeated presentations** of the same stimulus (:func:`explainable_variance`,
:func:`max_correlation`, :func:`max_correlation_mean`). Model each repeat of a
target as ``y_r = s + n_r``: a signal ``s`` shared by the repeats (variance
``S``) plus independent noise (variance ``N``). After z-scoring each repeat,
write ``V = mean_r var(y_r)`` (1 after z-scoring) and ``B = var(mean_r y_r)``.
Since the residuals ``y_r - ybar`` sum to zero over repeats,
``mean_r var(y_r - ybar) = V - B``, so the raw explained-variance ratio is

    ev_raw = 1 - mean_r var(y_r - ybar) / mean_r var(y_r) = B / V,

with expectation ``(S + N/R) / (S + N)``: the noise left in the mean of ``R``
repeats inflates it. The bias-corrected estimate

    ev = ev_raw - (1 - ev_raw) / (R - 1) = (R B - V) / ((R - 1) V)

has expectation ``S / (S + N)``; its numerator ``(R B - V) / (R - 1)`` is the
signal power ``SP`` of Sahani & Linden (2003), so ``ev = SP / V``.

* The best possible prediction is ``s`` itself. Its correlation with a
  **single repeat** is ``sqrt(S / (S + N)) = sqrt(ev)``: :func:`max_correlation`.
* Its correlation with the **mean of the repeats** is
  ``sqrt(S / (S + N / R)) = sqrt(SP / B) = sqrt(ev / ev_raw)``: the CCmax of
  Hsu et al. (2004) and Schoppe et al. (2016): :func:`max_correlation_mean`.

The encoding models of this library are scored against the repeat-averaged
test response, so :func:`max_correlation_mean` is the ceiling that
normalises their scores (:func:`normalize`).

**Across subjects** (:func:`cross_subject_ceiling`), after Schrimpf et al.
(2021): predict one subject's responses from other subjects' responses for a
growing number of other subjects, and extrapolate to infinitely many.

References
----------
Hsu, A., Borst, A., & Theunissen, F. E. (2004). Quantifying variability in
neural responses and its application for the validation of model predictions.
Network, 15(2), 91-109.

Sahani, M., & Linden, J. F. (2003). How linear are auditory cortical
responses? NeurIPS 15.

Schoppe, O., Harper, N. S., Willmore, B. D. B., King, A. J., & Schnupp, J. W. H.
(2016). Measuring the performance of neural models. Frontiers in
Computational Neuroscience, 10, 10.

Schrimpf, M., et al. (2021). The neural architecture of language: integrative
modeling converges on predictive processing. PNAS, 118(45), e2105646118.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from . import config
from .encoding import RidgeEncoder, cross_validated_scores, pearson_r

__all__ = [
    "CrossSubjectCeiling",
    "cross_subject_ceiling",
    "explainable_variance",
    "max_correlation",
    "max_correlation_mean",
    "normalize",
]


def _repeat_moments(repeats: np.ndarray) -> tuple[np.ndarray, int]:
    """``B = var(mean_r z_r)`` of the z-scored repeats (``V = 1``), and ``R``.

    Targets that are constant in some repeat get ``B = nan``.
    """
    repeats = np.asarray(repeats, dtype=np.float64)
    if repeats.ndim == 2:
        repeats = repeats[:, :, None]
    if repeats.ndim != 3:
        raise ValueError(f"repeats must have shape (n_repeats, n_samples, n_targets), got {repeats.shape}")
    n_repeats, n_samples = repeats.shape[:2]
    if n_repeats < 2:
        raise ValueError(f"n_repeats={n_repeats}: at least 2 repeats are needed")
    if n_samples < 2:
        raise ValueError(f"n_samples={n_samples}: at least 2 samples are needed")
    std = repeats.std(axis=1, keepdims=True)
    constant = np.any(std[:, 0] == 0, axis=0)
    z = (repeats - repeats.mean(axis=1, keepdims=True)) / np.where(std == 0, 1.0, std)
    between = z.mean(axis=0).var(axis=0)
    between[constant] = np.nan
    return between, n_repeats


def explainable_variance(repeats: np.ndarray, bias_correction: bool = True) -> np.ndarray:
    """Fraction of each target's variance that is shared across repeats.

    ``ev = 1 - mean_r var(y_r - ybar) / mean_r var(y_r)`` on repeats z-scored
    over time, bias-corrected as ``ev - (1 - ev) / (R - 1)`` (see the module
    docstring for the derivation); the corrected value estimates
    ``S / (S + N)`` without bias and can be negative for noise-only targets.

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_samples, n_targets)
        Responses to ``n_repeats`` presentations of the same stimulus (a 2-D
        array is one target).
    bias_correction : bool, default=True
        Remove the bias due to the noise left in the mean of the repeats.

    Returns
    -------
    ev : array of shape (n_targets,)
        Explainable variance; nan for targets constant in some repeat.
    """
    between, n_repeats = _repeat_moments(repeats)
    ev = between  # = 1 - mean_r var(z_r - zbar), since mean_r var(z_r) = 1
    if bias_correction:
        ev = ev - (1.0 - ev) / (n_repeats - 1)
    return ev


def max_correlation(repeats: np.ndarray) -> np.ndarray:
    """Ceiling on the Pearson r of a prediction with a **single** repeat.

    ``sqrt(max(ev, 0))`` with ``ev`` the bias-corrected explainable variance:
    the correlation of the noiseless signal with one noisy repeat.

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_samples, n_targets)

    Returns
    -------
    cc_max : array of shape (n_targets,)
    """
    return np.sqrt(np.clip(explainable_variance(repeats, bias_correction=True), 0.0, None))


def max_correlation_mean(repeats: np.ndarray) -> np.ndarray:
    """Ceiling on the Pearson r of a prediction with the **mean of the repeats**.

    ``CCmax = sqrt(SP / var(ybar)) = sqrt(ev / ev_raw)`` (Hsu et al. 2004;
    Schoppe et al. 2016): the correlation of the noiseless signal with the
    average of the ``n_repeats`` repeats. Use it to normalise models scored
    against repeat-averaged responses. It is larger than
    :func:`max_correlation`, since averaging removes noise.

    Parameters
    ----------
    repeats : array of shape (n_repeats, n_samples, n_targets)

    Returns
    -------
    cc_max : array of shape (n_targets,)
        In [0, 1]; 0 where the signal power estimate is not positive.
    """
    between, n_repeats = _repeat_moments(repeats)
    signal_power = np.clip((n_repeats * between - 1.0) / (n_repeats - 1), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        cc = np.sqrt(np.where(between > 0, signal_power / between, 0.0))
    return np.where(np.isnan(between), np.nan, np.clip(cc, 0.0, 1.0))


def normalize(scores: np.ndarray, ceiling: np.ndarray, min_ceiling: float = 0.05) -> np.ndarray:
    """Scores divided by the noise ceiling, nan where the ceiling is too low.

    Dividing by a near-zero ceiling gives huge, meaningless ratios, so targets
    whose ceiling is ``<= min_ceiling`` (or nan) get nan.

    Parameters
    ----------
    scores : array of shape (n_targets,)
        E.g. Pearson r of a model.
    ceiling : array of shape (n_targets,)
        The matching ceiling (e.g. :func:`max_correlation_mean` for scores
        against repeat-averaged responses).
    min_ceiling : float, default=0.05
        Smallest ceiling that is divided by.

    Returns
    -------
    normalized : array of shape (n_targets,)
    """
    scores = np.asarray(scores, dtype=np.float64)
    ceiling = np.asarray(ceiling, dtype=np.float64)
    if scores.shape != ceiling.shape:
        raise ValueError(f"scores has shape {scores.shape} but ceiling has shape {ceiling.shape}")
    if not min_ceiling >= 0:
        raise ValueError(f"min_ceiling={min_ceiling!r} must be >= 0")
    ok = ceiling > min_ceiling  # False for nan
    return np.divide(scores, ceiling, out=np.full(scores.shape, np.nan), where=ok)


# -- across subjects -------------------------------------------------------------
class CrossSubjectCeiling(NamedTuple):
    """The result of :func:`cross_subject_ceiling`."""

    ceiling: np.ndarray
    """array of shape (n_targets,): extrapolated r for infinitely many predictor subjects (``v0``)."""
    tau: np.ndarray
    """array of shape (n_targets,): fitted saturation constant of each target."""
    n_predictors: np.ndarray
    """array of shape (n_points,): numbers of predictor subjects, ``1 .. n_subjects - 1``."""
    curve: np.ndarray
    """array of shape (n_points, n_targets): mean held-out r for each number of predictors."""


def _fit_saturation(n: np.ndarray, curve: np.ndarray, taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares fit of ``v0 * (1 - exp(-n / tau))``, ``0 <= v0 <= 1``, to each column of ``curve``.

    For fixed ``tau`` the best ``v0`` is a one-dimensional least-squares
    problem with a closed form, so ``tau`` is profiled over the grid ``taus``
    (all targets at once).
    """
    g = 1.0 - np.exp(-n[None, :] / taus[:, None])  # (n_taus, n_points)
    # v0 is constrained to [0, 1] (a ceiling on r); for a 1-D convex quadratic
    # the constrained optimum is the clipped unconstrained one.
    v0 = np.clip((g @ curve) / (g * g).sum(axis=1, keepdims=True), 0.0, 1.0)  # (n_taus, n_targets)
    sse = ((curve[None] - v0[:, None, :] * g[:, :, None]) ** 2).sum(axis=1)
    best = np.argmin(sse, axis=0)
    cols = np.arange(curve.shape[1])
    return v0[best, cols], taus[best]


def cross_subject_ceiling(
    responses_by_subject: Sequence[np.ndarray],
    n_subsets: int = 5,
    n_folds: int = 4,
    gap: int = 5,
    seed: int = 0,
    test_responses_by_subject: Sequence[np.ndarray] | None = None,
    n_bootstraps: int = 0,
    **encoder_kwargs: object,
) -> CrossSubjectCeiling:
    """Noise ceiling from how well other subjects predict a subject (Schrimpf et al. 2021).

    For each number ``k = 1 .. S-1`` of predictor subjects, ``n_subsets``
    times: draw a target subject (cycling over subjects) and ``k`` other
    subjects at random, predict the target subject's responses from the
    predictor subjects' responses (all their targets side by side) with a
    ridge :class:`~brainalign.encoding.RidgeEncoder` without delays, scored by
    :func:`~brainalign.encoding.cross_validated_scores` (contiguous folds). The
    mean held-out r over the draws gives a curve ``r(k)`` per target; the
    curve ``v0 * (1 - exp(-k / tau))`` is fitted to it by least squares
    (``v0`` in [0, 1], ``tau`` on a log grid from 0.1 to ``S - 1``) and
    ``v0``, its limit for infinitely many subjects, is the ceiling. Bounding
    ``tau`` keeps a curve that is still rising linearly from extrapolating
    without limit: ``v0`` is then at most ``r(S - 1) / (1 - 1/e)``. With
    ``n_bootstraps`` > 0 the curve is instead fitted that many times, each time
    to the means of the draws resampled with replacement at every ``k``, and
    the ceiling is the median ``v0`` (as Oota et al. 2025 take the median over
    100 bootstraps).

    The ridge regression from the pooled targets of the predictor subjects
    has estimation error, so with few samples or many targets the ceiling
    is biased low (most for low-SNR targets).

    Parameters
    ----------
    responses_by_subject : list of arrays of shape (n_samples, n_targets)
        Responses of ``S >= 3`` subjects to the same stimulus, in a shared space
        (same samples and targets).
    n_subsets : int, default=5
        Draws per number of predictor subjects.
    n_folds, gap : int
        Outer cross-validation (see :func:`~brainalign.encoding.cross_validated_scores`).
    seed : int, default=0
        Seed of the random draws (and of the bootstraps).
    test_responses_by_subject : list of arrays of shape (n_test_samples, n_targets), optional
        The subjects' responses to a held-out stimulus, in the same order: the
        draws are scored there, fitted on all of ``responses_by_subject``.
    n_bootstraps : int, default=0
        0: fit the mean curve once. Else: the median of the fits to this many
        bootstrap resamples of the draws (``ceiling`` and ``tau``; ``curve`` stays
        the mean over the draws).
    **encoder_kwargs
        Parameters of :class:`~brainalign.encoding.RidgeEncoder` (``alphas``,
        ``backend``, ...); ``delays`` defaults to ``(0,)``.

    Returns
    -------
    result : CrossSubjectCeiling
        ``ceiling`` (n_targets,), ``tau`` (n_targets,), ``n_predictors``
        (S - 1,) and ``curve`` (S - 1, n_targets).
    """
    subjects = [np.asarray(y, dtype=np.float64) for y in responses_by_subject]
    n_subjects = len(subjects)
    if n_subjects < 3:
        raise ValueError(f"{n_subjects} subjects given; at least 3 are needed to extrapolate")
    shape = subjects[0].shape
    if len(shape) != 2 or any(y.shape != shape for y in subjects):
        raise ValueError(f"every subject must have the same shape (n_samples, n_targets); got {[y.shape for y in subjects]}")
    if not isinstance(n_subsets, (int, np.integer)) or n_subsets < 1:
        raise ValueError(f"n_subsets={n_subsets!r} must be a positive integer")
    if isinstance(n_bootstraps, bool) or not isinstance(n_bootstraps, (int, np.integer)) or n_bootstraps < 0:
        raise ValueError(f"n_bootstraps={n_bootstraps!r} must be an integer >= 0 (0: no bootstrap)")
    encoder_kwargs.setdefault("delays", (0,))
    tests = None
    if test_responses_by_subject is not None:
        tests = [np.asarray(y, dtype=np.float64) for y in test_responses_by_subject]
        if len(tests) != n_subjects or any(y.ndim != 2 or y.shape[1] != shape[1] or y.shape != tests[0].shape for y in tests):
            raise ValueError(f"test_responses_by_subject must hold {n_subjects} arrays of one shape (n_test_samples, {shape[1]}); "
                             f"got {[y.shape for y in tests]}")
    gen = config.rng(seed, "cross_subject_ceiling")
    n_predictors = np.arange(1, n_subjects)
    draws = np.zeros((len(n_predictors), n_subsets, shape[1]))
    for i, k in enumerate(n_predictors):
        for draw in range(n_subsets):
            target = (i + draw) % n_subjects
            others = [s for s in range(n_subjects) if s != target]
            chosen = gen.choice(others, size=k, replace=False)
            X = np.concatenate([subjects[s] for s in sorted(chosen)], axis=1)
            if tests is None:
                scores, _ = cross_validated_scores(X, subjects[target], None, n_folds, gap, **dict(encoder_kwargs))
            else:
                fitted = RidgeEncoder(**dict(encoder_kwargs)).fit(X, subjects[target])
                scores = pearson_r(tests[target], fitted.predict(np.concatenate([tests[s] for s in sorted(chosen)], axis=1)))
            draws[i, draw] = scores
    curve = draws.mean(axis=1)
    n, taus = n_predictors.astype(np.float64), np.logspace(-1, np.log10(n_subjects - 1.0), 200)
    if not n_bootstraps:
        ceiling, tau = _fit_saturation(n, curve, taus)
    else:
        boot = config.rng(seed, "cross_subject_ceiling", "bootstrap")
        fits = [_fit_saturation(n, np.take_along_axis(draws, boot.integers(0, n_subsets, (len(n), n_subsets, 1)), 1).mean(1), taus)
                for _ in range(int(n_bootstraps))]
        ceiling, tau = (np.median(np.stack(x), axis=0) for x in zip(*fits))
    return CrossSubjectCeiling(ceiling=ceiling, tau=tau, n_predictors=n_predictors, curve=curve)
