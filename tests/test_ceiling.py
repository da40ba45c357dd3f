"""Tests of brainalign.ceiling on synthetic data with a known signal fraction."""

from __future__ import annotations

import numpy as np
import pytest

from brainalign import ceiling
from brainalign.ceiling import (
    cross_subject_ceiling,
    explainable_variance,
    max_correlation,
    max_correlation_mean,
    normalize,
)

FRACTIONS = np.array([0.05, 0.2, 0.4, 0.6, 0.8])


pytestmark = pytest.mark.usefixtures("one_thread")


def _repeats(n_repeats=6, n_samples=1000, n_per_fraction=20, seed=0):
    """Repeats ``sqrt(f) s + sqrt(1 - f) n_r`` with arbitrary offsets and scales per repeat."""
    rng = np.random.default_rng(seed)
    f = np.repeat(FRACTIONS, n_per_fraction)
    signal = rng.standard_normal((n_samples, f.size))
    noise = rng.standard_normal((n_repeats, n_samples, f.size))
    reps = np.sqrt(f) * signal + np.sqrt(1 - f) * noise
    reps = reps * rng.uniform(0.5, 2.0, (n_repeats, 1, 1)) + rng.uniform(-5, 5, (n_repeats, 1, 1))
    return reps, signal, f


def _by_fraction(values, f):
    return np.array([values[f == x].mean() for x in FRACTIONS])


def test_explainable_variance_recovers_signal_fraction():
    reps, _, f = _repeats()
    ev = explainable_variance(reps)
    assert ev.shape == (f.size,)
    np.testing.assert_allclose(_by_fraction(ev, f), FRACTIONS, atol=0.03)
    # uncorrected EV is inflated by the noise left in the mean of R repeats
    raw = explainable_variance(reps, bias_correction=False)
    np.testing.assert_allclose(_by_fraction(raw, f), FRACTIONS + (1 - FRACTIONS) / 6, atol=0.03)
    assert np.all(raw > ev)


def test_max_correlations_match_simulated_correlations():
    reps, signal, f = _repeats(seed=1)
    mean = reps.mean(axis=0)
    empirical_mean = np.array([np.corrcoef(signal[:, j], mean[:, j])[0, 1] for j in range(f.size)])
    empirical_single = np.array([np.corrcoef(signal[:, j], reps[0, :, j])[0, 1] for j in range(f.size)])
    np.testing.assert_allclose(_by_fraction(max_correlation_mean(reps), f), _by_fraction(empirical_mean, f), atol=0.03)
    np.testing.assert_allclose(_by_fraction(max_correlation(reps), f), _by_fraction(empirical_single, f), atol=0.03)
    # the theoretical values: sqrt(f / (f + (1 - f) / R)) and sqrt(f)
    np.testing.assert_allclose(
        _by_fraction(max_correlation_mean(reps), f), np.sqrt(FRACTIONS / (FRACTIONS + (1 - FRACTIONS) / 6)), atol=0.03
    )
    assert np.all(max_correlation_mean(reps) >= max_correlation(reps))


def test_noise_only_and_constant_targets():
    rng = np.random.default_rng(2)
    reps = rng.standard_normal((4, 500, 50))
    assert abs(explainable_variance(reps).mean()) < 0.01
    cc = max_correlation_mean(reps)
    assert np.all((cc >= 0) & (cc <= 1))
    reps[2, :, 0] = 3.0  # constant in one repeat
    assert np.isnan(explainable_variance(reps)[0]) and np.isnan(max_correlation_mean(reps)[0])
    assert np.isfinite(explainable_variance(reps)[1:]).all()
    with pytest.raises(ValueError, match="n_repeats"):
        explainable_variance(reps[:1])
    with pytest.raises(ValueError, match="shape"):
        explainable_variance(reps[0, 0])


def test_normalize():
    scores = np.array([0.2, 0.3, 0.1, 0.4])
    ceil = np.array([0.5, 0.04, np.nan, 0.8])
    out = normalize(scores, ceil)
    np.testing.assert_allclose(out, [0.4, np.nan, np.nan, 0.5])
    np.testing.assert_allclose(normalize(scores, ceil, min_ceiling=0.01)[1], 7.5)
    with pytest.raises(ValueError, match="shape"):
        normalize(scores, ceil[:3])
    with pytest.raises(ValueError, match="min_ceiling"):
        normalize(scores, ceil, min_ceiling=-1)


def test_saturation_fit_recovers_known_curve():
    n = np.arange(1.0, 8.0)
    v0, tau = np.array([0.3, 0.6, 0.9]), np.array([0.5, 1.5, 3.0])
    curve = v0 * (1 - np.exp(-n[:, None] / tau))
    fit_v0, fit_tau = ceiling._fit_saturation(n, curve, np.logspace(-1, np.log10(7.0), 400))
    np.testing.assert_allclose(fit_v0, v0, atol=0.01)
    np.testing.assert_allclose(fit_tau, tau, rtol=0.02)


def test_cross_subject_ceiling_on_shared_signal():
    """Subjects share a signal of known fraction f.

    Predicting a subject from the mean of k others gives
    r(k) = sqrt(f) * sqrt(k f / (k f + 1 - f)), which tends to sqrt(f).
    """
    rng = np.random.default_rng(3)
    n_samples, n_subjects = 1000, 6
    f = np.array([0.4, 0.5, 0.6, 0.7])
    signal = rng.standard_normal((n_samples, f.size))
    subjects = [np.sqrt(f) * signal + np.sqrt(1 - f) * rng.standard_normal((n_samples, f.size)) for _ in range(n_subjects)]
    res = cross_subject_ceiling(subjects, n_subsets=4, seed=0)
    assert res.curve.shape == (n_subjects - 1, f.size) and res.ceiling.shape == (f.size,)
    np.testing.assert_array_equal(res.n_predictors, np.arange(1, n_subjects))
    k = res.n_predictors[:, None].astype(float)
    theory = np.sqrt(f) * np.sqrt(k * f / (k * f + 1 - f))
    np.testing.assert_allclose(res.curve, theory, atol=0.07)
    # the exponential extrapolation of Schrimpf et al. lies between the last point and the true limit
    # (it is biased low: r(k) approaches its limit more slowly than an exponential does)
    expected, _ = ceiling._fit_saturation(res.n_predictors.astype(float), theory, np.logspace(-1, np.log10(5.0), 200))
    np.testing.assert_allclose(res.ceiling, expected, atol=0.05)
    assert np.all(res.ceiling < np.sqrt(f))
    assert np.all(res.ceiling > res.curve[-1] - 0.05)
    # seeded: same draws, same result
    short = [y[:300] for y in subjects]
    np.testing.assert_array_equal(
        cross_subject_ceiling(short, n_subsets=1, seed=0).curve, cross_subject_ceiling(short, n_subsets=1, seed=0).curve
    )
    with pytest.raises(ValueError, match="at least 3"):
        cross_subject_ceiling(subjects[:2])
    with pytest.raises(ValueError, match="same shape"):
        cross_subject_ceiling([subjects[0], subjects[1], subjects[2][:, :2]])


def test_cross_subject_ceiling_on_held_out_test_responses():
    """Fitted on training responses, scored on test responses: the ceiling of the test data (here, averaged repeats).

    With the test responses the mean of m presentations, the shared signal's fraction rises to
    f_m = f / (f + (1 - f) / m), and so does the curve: r(k) = sqrt(f_m) * sqrt(k f_m / (k f_m + 1 - f_m))
    for a ridge that has learnt the other subjects' signal."""
    rng = np.random.default_rng(4)
    n_train, n_test, n_subjects, m = 1500, 400, 5, 4
    f = np.array([0.3, 0.5])
    signal, test_signal = rng.standard_normal((n_train, f.size)), rng.standard_normal((n_test, f.size))
    train = [np.sqrt(f) * signal + np.sqrt(1 - f) * rng.standard_normal((n_train, f.size)) for _ in range(n_subjects)]
    test = [np.sqrt(f) * test_signal + np.sqrt(1 - f) * rng.standard_normal((m, n_test, f.size)).mean(0) for _ in range(n_subjects)]
    res = cross_subject_ceiling(train, n_subsets=3, seed=0, test_responses_by_subject=test)
    fm = f / (f + (1 - f) / m)
    k = res.n_predictors[:, None].astype(float)
    np.testing.assert_allclose(res.curve, np.sqrt(fm) * np.sqrt(k * fm / (k * fm + 1 - fm)), atol=0.07)
    single = cross_subject_ceiling(train, n_subsets=3, seed=0)
    assert np.all(res.ceiling > single.ceiling + 0.05)  # averaged repeats are more predictable than one presentation
    with pytest.raises(ValueError, match="test_responses_by_subject must hold 5 arrays"):
        cross_subject_ceiling(train, test_responses_by_subject=test[:4])


def test_cross_subject_ceiling_median_over_bootstraps():
    """The study's ceiling: the median v0 over fits to bootstrap resamples of the draws."""
    rng = np.random.default_rng(5)
    n_samples, n_subjects = 600, 5
    f = np.array([0.2, 0.5, 0.8])
    signal = rng.standard_normal((n_samples, f.size))
    subjects = [np.sqrt(f) * signal + np.sqrt(1 - f) * rng.standard_normal((n_samples, f.size)) for _ in range(n_subjects)]
    plain = cross_subject_ceiling(subjects, n_subsets=4, seed=0)
    boot = cross_subject_ceiling(subjects, n_subsets=4, seed=0, n_bootstraps=50)
    np.testing.assert_array_equal(boot.curve, plain.curve)  # the same draws; only the fit differs
    np.testing.assert_allclose(boot.ceiling, plain.ceiling, atol=0.03)
    assert not np.array_equal(boot.ceiling, plain.ceiling)
    assert np.all(np.diff(boot.ceiling) > 0)  # more shared signal, a higher ceiling
    np.testing.assert_array_equal(boot.ceiling, cross_subject_ceiling(subjects, n_subsets=4, seed=0, n_bootstraps=50).ceiling)
    # one draw per point: every resample is that draw, so the median is the plain fit
    one = cross_subject_ceiling(subjects, n_subsets=1, seed=0)
    np.testing.assert_array_equal(cross_subject_ceiling(subjects, n_subsets=1, seed=0, n_bootstraps=5).ceiling, one.ceiling)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n_bootstraps=.* must be an integer >= 0"):
            cross_subject_ceiling(subjects, n_bootstraps=bad)
