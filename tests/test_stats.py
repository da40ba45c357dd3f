"""Tests of brainalign.stats: block permutation, FDR, Wilcoxon, bootstrap, and their calibration."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from brainalign import config, simulate, stats
from brainalign.stats import (
    block_permutation_test,
    bootstrap_ci,
    fdr,
    wilcoxon_across_subjects,
)
from brainalign.stimuli import convolve_hrf


def _ar1(rng, shape, phi=0.6):
    return lfilter([1.0], [1.0, -phi], rng.standard_normal(shape), axis=0)


def test_block_permutation_null_false_positive_rate():
    rng = np.random.default_rng(0)
    y_true, y_pred = _ar1(rng, (300, 300)), _ar1(rng, (300, 300))
    r, p = block_permutation_test(y_true, y_pred, block_size=10, n_permutations=1000, seed=0)
    assert r.shape == p.shape == (300,)
    rate = (p < 0.05).mean()
    assert 0.02 <= rate <= 0.09, rate
    assert p.min() >= 1 / 1001 and p.max() <= 1
    # shuffling single samples ignores the autocorrelation and gives too many false positives
    _, p1 = block_permutation_test(y_true, y_pred, block_size=1, n_permutations=1000, seed=0)
    assert (p1 < 0.05).mean() > rate


def test_block_permutation_real_effect_and_1d():
    rng = np.random.default_rng(1)
    y_true = _ar1(rng, (305, 3))  # 305: an incomplete tail block
    y_pred = y_true + 1.5 * _ar1(rng, (305, 3))
    r, p = block_permutation_test(y_true, y_pred, block_size=10, n_permutations=999, seed=3)
    assert np.all(r > 0.3) and np.all(p < 0.01)
    np.testing.assert_allclose(r, [np.corrcoef(y_true[:, j], y_pred[:, j])[0, 1] for j in range(3)])
    r1, p1 = block_permutation_test(y_true[:, 0], y_pred[:, 0], n_permutations=999, seed=3)
    assert np.ndim(r1) == 0 and r1 == pytest.approx(r[0]) and p1 == pytest.approx(p[0])
    # seeded
    np.testing.assert_array_equal(block_permutation_test(y_true, -y_pred, n_permutations=200, seed=5)[1],
                                  block_permutation_test(y_true, -y_pred, n_permutations=200, seed=5)[1])
    assert np.all(block_permutation_test(y_true, -y_pred, n_permutations=200)[1] > 0.9)  # one-sided


def test_block_permutation_groups_of_targets():
    """A group of weak effects is significant as a whole; a group of nulls is not."""
    rng = np.random.default_rng(4)
    y_true = _ar1(rng, (200, 60))
    y_pred = _ar1(rng, (200, 60))
    y_pred[:, :30] += 0.4 * y_true[:, :30]  # weak effect in the first 30 targets
    groups = np.zeros((2, 60), bool)
    groups[0, :30], groups[1, 30:] = True, True
    r, p = block_permutation_test(y_true, y_pred, n_permutations=500, seed=0, groups=groups)
    r_each, _ = block_permutation_test(y_true, y_pred, n_permutations=10, seed=0)
    np.testing.assert_allclose(r, [r_each[:30].mean(), r_each[30:].mean()])
    assert p[0] < 0.01 and p[1] > 0.05
    with pytest.raises(ValueError, match="groups"):
        block_permutation_test(y_true, y_pred, groups=np.zeros((1, 60), bool))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"block_size": 0}, "block_size"), ({"block_size": 400}, "fewer than 2 blocks"), ({"n_permutations": 0}, "n_permutations")],
)
def test_block_permutation_bad_args(kwargs, match):
    y = np.random.default_rng(2).standard_normal((100, 2))
    with pytest.raises(ValueError, match=match):
        block_permutation_test(y, y, **kwargs)
    with pytest.raises(ValueError, match="shape"):
        block_permutation_test(y, y[:, :1])


def test_fdr_matches_hand_computed_bh():
    p = np.array([0.01, 0.04, 0.03, 0.2, np.nan, 0.005])
    # sorted finite p: .005 .01 .03 .04 .2 (m = 5); p * m / rank: .025 .025 .05 .05 .2; then running min from the top
    reject, q = fdr(p, alpha=0.05)
    np.testing.assert_allclose(q, [0.025, 0.05, 0.05, 0.2, np.nan, 0.025])
    np.testing.assert_array_equal(reject, [True, True, True, False, False, True])
    reject, _ = fdr(p, alpha=0.03)
    np.testing.assert_array_equal(reject, [True, False, False, False, False, True])
    reject2d, q2d = fdr(p.reshape(2, 3))
    assert reject2d.shape == q2d.shape == (2, 3)
    with pytest.raises(ValueError, match="alpha"):
        fdr(p, alpha=1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fdr(np.array([0.5, 1.2]))


def test_wilcoxon_across_subjects():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((8, 3))
    shifted = base + 0.5 + 0.1 * rng.standard_normal((8, 3))
    stat, p = wilcoxon_across_subjects(shifted, base)
    assert stat.shape == p.shape == (3,)
    assert np.all(p < 0.05)
    _, p_one = wilcoxon_across_subjects(shifted, base, alternative="greater")
    _, p_wrong = wilcoxon_across_subjects(shifted, base, alternative="less")
    assert np.all(p_one < p) and np.all(p_wrong > 0.9)
    _, p0 = wilcoxon_across_subjects(shifted[:, 0] - base[:, 0])  # against zero
    assert p0 == pytest.approx(p[0])
    _, p_null = wilcoxon_across_subjects(rng.standard_normal(8), rng.standard_normal(8))
    assert p_null > 0.05
    with pytest.raises(ValueError, match="alternative"):
        wilcoxon_across_subjects(base, alternative="bigger")


def test_wilcoxon_family_tests_each_pair_and_corrects_over_the_family():
    import pandas as pd

    subjects = [f"S{i:02d}" for i in range(1, 9)]
    rng = np.random.default_rng(5)
    base = pd.Series(rng.standard_normal(8), index=subjects)
    better = base + 0.5 + 0.1 * rng.standard_normal(8)
    same = pd.Series(base.to_numpy() + 0.3 * rng.standard_normal(8), index=subjects)
    # the second values are read at the first values' participants, whatever their order
    out = stats.wilcoxon_family({"better": (better, base[::-1]), "same": (same, base), "better > 0": (better - base, None)})
    assert list(out) == ["better", "same", "better > 0"]
    p = [wilcoxon_across_subjects(better.to_numpy(), base.to_numpy(), "greater")[1],
         wilcoxon_across_subjects(same.to_numpy(), base.to_numpy(), "greater")[1],
         wilcoxon_across_subjects((better - base).to_numpy(), None, "greater")[1]]
    _, q = fdr(np.array(p))
    for row, p_k, q_k in zip(out.values(), p, q):
        assert row["p"] == pytest.approx(p_k) and row["q"] == pytest.approx(q_k)
    assert out["better"]["difference"] == pytest.approx(float((better - base).mean()))
    assert out["better"]["q"] < 0.05 < out["same"]["q"]
    assert out["better"]["p"] == pytest.approx(out["better > 0"]["p"])  # paired = the differences against 0
    with pytest.raises(ValueError, match=r"'better': the second values lack participant\(s\) \['S08'\]"):
        stats.wilcoxon_family({"better": (better, base[:7])})
    with pytest.raises(ValueError, match="pairs is empty"):
        stats.wilcoxon_family({})


def test_first_crossing_interpolates_where_a_curve_reaches_a_level():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    y = np.array([0.1, 0.2, 0.4, 0.3])
    assert stats.first_crossing(x, y, 0.3) == pytest.approx(3.0)  # between 2 and 4, not at the later dip
    assert stats.first_crossing(x, y, 0.05) == 1.0  # already reached at the first point
    assert stats.first_crossing(x, y, 0.4) == 4.0
    assert np.isnan(stats.first_crossing(x, y, 0.5))  # never reached
    with pytest.raises(ValueError, match="strictly increasing"):
        stats.first_crossing(x[::-1], y, 0.3)
    with pytest.raises(ValueError, match="one non-zero length"):
        stats.first_crossing(x, y[:3], 0.3)


def test_bootstrap_ci():
    rng = np.random.default_rng(5)
    values = rng.normal(1.0, 1.0, size=(200, 2))
    low, high = bootstrap_ci(values, n_boot=2000, seed=0)
    assert low.shape == high.shape == (2,)
    mean = values.mean(axis=0)
    assert np.all(low < mean) and np.all(mean < high)
    half_width = 1.96 * values.std(axis=0, ddof=1) / np.sqrt(200)
    np.testing.assert_allclose(high - low, 2 * half_width, rtol=0.15)
    again = bootstrap_ci(values, n_boot=2000, seed=0)
    np.testing.assert_array_equal(again[0], low)
    lo, hi = bootstrap_ci(values[:, 0], statistic=np.median, ci=0.5)
    assert np.ndim(lo) == 0 and lo < np.median(values[:, 0]) < hi
    with pytest.raises(ValueError, match="ci"):
        bootstrap_ci(values, ci=95)


def test_paired_block_bootstrap_finds_a_better_prediction_and_not_a_tie():
    rng = np.random.default_rng(0)
    n, v = 200, 30
    signal = rng.standard_normal((n, v))
    Y = signal + rng.standard_normal((n, v))
    good = signal + 0.5 * rng.standard_normal((n, v))
    worse = signal + 1.5 * rng.standard_normal((n, v))
    diff, p = stats.paired_block_bootstrap(Y, good, worse, groups=np.ones((1, v), bool), n_bootstraps=500)
    r = np.mean([np.corrcoef(Y[:, i], good[:, i])[0, 1] - np.corrcoef(Y[:, i], worse[:, i])[0, 1] for i in range(v)])
    np.testing.assert_allclose(diff[0], r, rtol=1e-4)
    assert p[0] < 0.01 and r > 0
    # two predictions of equal quality: p is not small, and reversed, the better one is not "better"
    other = signal + 1.5 * rng.standard_normal((n, v))
    _, p_tie = stats.paired_block_bootstrap(Y, other, worse, groups=np.ones((1, v), bool), n_bootstraps=500)
    _, p_rev = stats.paired_block_bootstrap(Y, worse, good, groups=np.ones((1, v), bool), n_bootstraps=500)
    assert p_tie[0] > 0.05 and p_rev[0] > 0.95
    d_each, p_each = stats.paired_block_bootstrap(Y, good, worse, n_bootstraps=50)
    assert d_each.shape == p_each.shape == (v,)
    with pytest.raises(ValueError, match="block_size"):
        stats.paired_block_bootstrap(Y, good, worse, block_size=150)


def test_groups_of_one_target_give_the_per_target_test():
    """The grouped path (block-pair products) and the per-target path (gathered samples) agree exactly."""
    rng = np.random.default_rng(7)
    y_true, y_pred, other = _ar1(rng, (123, 5)), _ar1(rng, (123, 5)), _ar1(rng, (123, 5))  # 123: a tail stays in place
    one_each = np.eye(5, dtype=bool)
    r, p = block_permutation_test(y_true, y_pred, n_permutations=300, seed=2)
    r_g, p_g = block_permutation_test(y_true, y_pred, n_permutations=300, seed=2, groups=one_each)
    np.testing.assert_allclose(r_g, r)
    np.testing.assert_array_equal(p_g, p)
    d, q = stats.paired_block_bootstrap(y_true, y_pred, other, n_bootstraps=300, seed=2)
    d_g, q_g = stats.paired_block_bootstrap(y_true, y_pred, other, groups=one_each, n_bootstraps=300, seed=2)
    np.testing.assert_allclose(d_g, d)
    np.testing.assert_array_equal(q_g, q)


# -- calibration on the simulated cohort's noise (bench/bench_calibration.py is the full version) -------
# 200 null draws per test, each a fresh test story of 150 TRs: the cohort's noise (AR(1), shared factors,
# slow drifts; simulate.noise) against predictions independent of it (white random features through the
# HRF, mixed by random voxel weights). A test passes when the upper end of the Wilson 95% interval of its
# false-positive rate at alpha 0.05 is at most FPR_BOUND = 0.14, i.e. at most 18 rejections in 200. At a
# true rate of 0.05 that fails with probability 0.006 (0.03 at 0.06); a rate of 0.15 is caught with
# probability 0.99. The seeds are fixed, so the outcome is deterministic.
N_TRS, TR, N_NULL = 150, 2.0, 200
FPR_BOUND = 0.14


def _wilson_upper(k: int, n: int, z: float = 1.959964) -> float:
    phat = k / n
    return (phat + z**2 / (2 * n) + z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2))) / (1 + z**2 / n)


def _cohort_noise(rng, n_voxels: int, seed: int) -> np.ndarray:
    loadings = config.rng(seed, "noise-loadings").standard_normal((5, n_voxels))
    return simulate.noise(rng, N_TRS, n_voxels, loadings, tr=TR)


def _stimulus(rng) -> np.ndarray:
    return convolve_hrf(rng.standard_normal((N_TRS + 20, 16)), TR)[20:]  # 20 TRs of burn-in for the HRF


def _prediction(rng, features: np.ndarray, n_voxels: int) -> np.ndarray:
    return features @ rng.standard_normal((features.shape[1], n_voxels))


def _null_voxel(i: int) -> float:
    rng = config.rng(i % 5, "test-calibration", "voxel", i)
    y = _cohort_noise(rng, 1, i % 5)[:, 0]
    return block_permutation_test(y, _prediction(rng, _stimulus(rng), 1)[:, 0], 10, 500, seed=i)[1]


def _null_roi_groups(i: int) -> float:
    rng = config.rng(i % 5, "test-calibration", "roi", i)
    Y = _cohort_noise(rng, 20, i % 5)
    return block_permutation_test(Y, _prediction(rng, _stimulus(rng), 20), 10, 500, seed=i, groups=np.ones((1, 20), bool))[1][0]


def _null_roi_mean(i: int) -> float:
    rng = config.rng(i % 5, "test-calibration", "roi-mean", i)
    y = _cohort_noise(rng, 20, i % 5).mean(axis=1)
    return block_permutation_test(y, _prediction(rng, _stimulus(rng), 20).mean(axis=1), 10, 500, seed=i)[1]


def _null_paired_group(i: int) -> float:
    """Four subjects' voxels side by side (one stimulus, own weights), two predictions independent of them."""
    rng = config.rng(i % 5, "test-calibration", "paired", i)
    Y = np.concatenate([_cohort_noise(rng, 10, i % 5) for _ in range(4)], axis=1)
    a_features, b_features = _stimulus(rng), _stimulus(rng)
    A = np.concatenate([_prediction(rng, a_features, 10) for _ in range(4)], axis=1)
    B = np.concatenate([_prediction(rng, b_features, 10) for _ in range(4)], axis=1)
    return stats.paired_block_bootstrap(Y, A, B, groups=np.ones((1, 40), bool), block_size=10, n_bootstraps=500, seed=i)[1][0]


@pytest.mark.parametrize("null_p", [_null_voxel, _null_roi_groups, _null_roi_mean, _null_paired_group],
                         ids=["permutation-voxel", "permutation-roi-groups", "permutation-roi-mean", "paired-group"])
def test_false_positive_rate_on_cohort_noise(null_p):
    p = np.array([null_p(i) for i in range(N_NULL)])
    k = int((p <= 0.05).sum())
    assert _wilson_upper(k, N_NULL) <= FPR_BOUND, f"{k} of {N_NULL} null draws rejected at alpha 0.05"


def test_wilson_bound_catches_a_test_that_ignores_the_autocorrelation():
    """The same check fails a test that shuffles single samples (block_size=1): the bound has teeth."""
    p = []
    for i in range(N_NULL):
        rng = config.rng(i % 5, "test-calibration", "voxel", i)
        y = _cohort_noise(rng, 1, i % 5)[:, 0]
        p.append(block_permutation_test(y, _prediction(rng, _stimulus(rng), 1)[:, 0], 1, 500, seed=i)[1])
    k = int((np.array(p) <= 0.05).sum())
    assert _wilson_upper(k, N_NULL) > FPR_BOUND, k


def test_correlation_ci_covers_the_true_correlation():
    """Fisher's z interval: about 95 % coverage of the true r for bivariate normal pairs; clear errors."""
    rng = np.random.default_rng(0)
    rho, n, hits = 0.6, 12, 0
    cov = [[1, rho], [rho, 1]]
    for _ in range(2000):
        x, y = rng.multivariate_normal([0, 0], cov, n).T
        r, low, high = stats.correlation_ci(x, y)
        assert low < r < high
        hits += low <= rho <= high
    assert 0.93 <= hits / 2000 <= 0.97
    assert stats.correlation_ci(np.arange(7.0), 2 * np.arange(7.0) + 1)[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 4"):
        stats.correlation_ci([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    with pytest.raises(ValueError, match="constant"):
        stats.correlation_ci(np.ones(5), np.arange(5.0))
