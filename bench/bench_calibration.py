"""Benchmark: false-positive rate and power of brainalign's statistical tests on the cohort's noise.

Usage::

    python bench/bench_calibration.py [--quick] [--out bench/results/calibration.json]

Every test of ``brainalign.stats`` is run as the notebooks run it, on data drawn
the way the simulated cohort draws its responses, over a test story of
``N_TRS`` = 150 volumes (TR 2 s, blocks of 10 volumes, 1000 permutations or
bootstrap draws, alpha 0.05).

The null (false-positive rate). The cohort's generator with the signal
switched off: responses are pure ``brainalign.simulate.noise`` (AR(1) per
voxel, shared AR(1) factors through the cohort's loadings, slow cosine
drifts), and predictions are realistic but independent of them: 16 random
stimulus features, white at the TR, through the HRF
(``brainalign.stimuli.convolve_hrf``), mixed by random voxel weights. Their
autocorrelation (0.80, 0.41, 0.11 at lags 1-3) is that of the sources the
cohort plants (0.78-0.80, 0.40-0.45, 0.10-0.18). Several subjects heard the
same story, so their predictions share the features and differ in the weights;
their noise is independent. Every null draw is a fresh data set (draws are
spread over ``SEEDS``, each with its own noise loadings) and counts once: one
voxel per draw for the per-voxel test, the family-wise rate for FDR. The rate
gets a Wilson 95% interval.

The planted effect (power). Responses are ``sqrt(ev) * signal + sqrt(1 - ev) *
noise`` with the ROI's median explainable variance ``simulate.EV_MEDIAN`` (per
voxel: the cohort's Beta draw around it); the signal is other random features
through the HRF, unit variance. A fitted model's prediction is modelled as
``rho * signal + sqrt(1 - rho**2) * error`` with an independent smooth error
(the same kind of series as the null's prediction) and ``rho`` the correlation
between prediction and planted signal that the quickstart's encoding model
reaches in that ROI (``FIT_CORRELATION``: its held-out r divided by the noise
ceiling at the best layer). For the comparison of two predictions (paired
bootstrap, Wilcoxon), the second model is the first without one property: the
signal is split into a part the property carries (share ``s``, the median of
the shares the cohort plants in ``simulate.ROI_SOURCES``) and the rest, and the
second prediction keeps the rest and the first model's error. Power is given
per ROI and averaged over the six ROIs.

The criterion, declared before any data: at alpha 0.05 no test may be
anti-conservative, i.e. the upper end of its false-positive rate's 95% interval
must be at most 0.07. A test is conservative when that upper end is below 0.05;
a conservative test passes only if its power at the planted effects (the mean
over the six ROIs) is at least 0.8.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy
from scipy import stats as sstats

from brainalign import config, simulate, stats
from brainalign.stimuli import convolve_hrf

N_TRS = 150  # volumes of a test story
TR = 2.0  # s, the cohort's repetition time
BLOCK_SIZE = 10
N_PERMUTATIONS = 1000
N_BOOTSTRAPS = 1000
ALPHA = 0.05
BOUND = 0.07  # largest acceptable upper end of a false-positive rate's 95% interval
MIN_POWER = 0.8  # for a conservative test
SEEDS = (0, 1, 2, 3, 4)
N_FEATURES = 16
BURN_IN = 20  # TRs dropped from the start of every convolved series (the HRF lasts 32 s)
N_FACTORS = 5  # shared noise factors, as the cohort draws its loadings
ROI_VOXELS = 40  # voxels per ROI and subject in every test of a ROI or group
N_STACKED = 4  # subjects stacked side by side for the paired bootstrap
N_LAYERS = 4  # comparisons per ROI in the paired-bootstrap FDR family (4 layers x 6 ROIs)
SHARED_ERROR = 0.5  # share of the error variance two predictions of equal quality have in common
ROIS = tuple(simulate.EV_MEDIAN)
#: correlation of a fitted prediction with the planted signal: held-out r / noise ceiling at the
#: quickstart's best layer (book/_run/00_quickstart.json, minilm-l6 layer 3, ``normalized``)
FIT_CORRELATION = {"auditory": 0.52, "LTC": 0.40, "AG": 0.29, "IFG": 0.19, "MFG": 0.16, "PCC": 0.33}


def removed_share() -> float:
    """The median share of a ROI's signal that one planted source carries (``simulate.ROI_SOURCES``)."""
    return float(np.median([share for sources in simulate.ROI_SOURCES.values() for share in sources.values()]))


# -- data like the cohort's ---------------------------------------------------------------------------
def stimulus_features(rng: np.random.Generator, n_features: int = N_FEATURES) -> np.ndarray:
    """Random stimulus features through the HRF, array of shape (N_TRS, n_features), white before it."""
    white = rng.standard_normal((N_TRS + BURN_IN, n_features))
    return convolve_hrf(white, TR)[BURN_IN:]


def zscore(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit variance."""
    x = x - x.mean(axis=0)
    return x / x.std(axis=0)


def voxel_series(rng: np.random.Generator, features: np.ndarray, n_voxels: int) -> np.ndarray:
    """Features mixed by random voxel weights, z-scored: array of shape (N_TRS, n_voxels)."""
    return zscore(features @ rng.standard_normal((features.shape[1], n_voxels)))


def noise_loadings(seed: int, n_voxels: int) -> np.ndarray:
    """The shared-factor loadings of seed ``seed``, drawn as the cohort draws them: (N_FACTORS, n_voxels)."""
    return config.rng(seed, "noise-loadings").standard_normal((N_FACTORS, n_voxels))


def voxel_ev(rng: np.random.Generator, roi: str, n_voxels: int) -> np.ndarray:
    """Explainable variance per voxel: the cohort's Beta draw around the ROI's median, shape (n_voxels,)."""
    median = simulate.EV_MEDIAN[roi]
    return rng.beta(12.0 * median, 12.0 * (1.0 - median), n_voxels)


def responses(rng: np.random.Generator, signal: np.ndarray | None, ev: np.ndarray, loadings: np.ndarray) -> np.ndarray:
    """``sqrt(ev) * signal + sqrt(1 - ev) * noise`` (pure noise when ``signal`` is None), z-scored."""
    eps = simulate.noise(rng, N_TRS, loadings.shape[1], loadings, tr=TR)
    if signal is None:
        return zscore(eps)
    return zscore(np.sqrt(ev) * signal + np.sqrt(1.0 - ev) * eps)


def fitted(signal: np.ndarray, rho: float | np.ndarray, error: np.ndarray) -> np.ndarray:
    """A fitted model's prediction: ``rho * signal + sqrt(1 - rho**2) * error``, z-scored."""
    return zscore(rho * signal + np.sqrt(1.0 - rho**2) * error)


@dataclass
class Planted:
    """One subject's data with the planted effect in every ROI, ROI after ROI (``ROIS``), ``n_voxels`` each.

    ``full`` predicts the whole signal; ``reduced`` is the same model without the property that
    carries ``removed_share()`` of the signal. Arrays of shape (N_TRS, len(ROIS) * n_voxels).
    """

    Y: np.ndarray
    full: np.ndarray
    reduced: np.ndarray


def planted(rng: np.random.Generator, features: tuple[np.ndarray, np.ndarray, np.ndarray], loadings: np.ndarray,
            n_voxels: int) -> Planted:
    """One subject: the stimulus ``features`` (rest of the signal, property, model error) are shared by subjects."""
    rest_f, property_f, error_f = features
    share = removed_share()
    n_all = len(ROIS) * n_voxels
    rest, prop = voxel_series(rng, rest_f, n_all), voxel_series(rng, property_f, n_all)
    signal = zscore(np.sqrt(1.0 - share) * rest + np.sqrt(share) * prop)
    ev = np.concatenate([voxel_ev(rng, roi, n_voxels) for roi in ROIS])
    rho = np.repeat([FIT_CORRELATION[roi] for roi in ROIS], n_voxels)
    error = voxel_series(rng, error_f, n_all)
    Y = responses(rng, signal, ev, loadings)
    return Planted(Y, fitted(signal, rho, error), fitted(np.sqrt(1.0 - share) * rest, rho, error))


def roi_masks(n_voxels: int, n_subjects: int = 1) -> np.ndarray:
    """Bool masks of shape (len(ROIS), n_subjects * len(ROIS) * n_voxels) over subjects stacked side by side."""
    one = np.repeat(np.eye(len(ROIS), dtype=bool), n_voxels, axis=1)
    return np.tile(one, n_subjects)


def three_features(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stimulus features of the rest of the signal, of the property and of the model error."""
    return stimulus_features(rng), stimulus_features(rng), stimulus_features(rng)


# -- one draw of each test: the null (True if rejected) and the planted effect (rejections per ROI) -----
def perm_voxel_null(seed: int, i: int) -> bool:
    """One voxel of noise against one prediction independent of it."""
    rng = config.rng(seed, "calibration", "perm-voxel", i)
    loadings = noise_loadings(seed, 64)[:, [i % 64]]
    y = responses(rng, None, np.zeros(1), loadings)[:, 0]
    pred = voxel_series(rng, stimulus_features(rng), 1)[:, 0]
    _, p = stats.block_permutation_test(y, pred, BLOCK_SIZE, N_PERMUTATIONS, seed=i)
    return bool(p <= ALPHA)


def perm_voxel_power(seed: int, i: int) -> np.ndarray:
    """One voxel per ROI, at the ROI's median explainable variance."""
    rng = config.rng(seed, "calibration", "perm-voxel-power", i)
    signal = voxel_series(rng, stimulus_features(rng), len(ROIS))
    ev = np.array([simulate.EV_MEDIAN[roi] for roi in ROIS])
    Y = responses(rng, signal, ev, noise_loadings(seed, len(ROIS)))
    pred = fitted(signal, np.array([FIT_CORRELATION[roi] for roi in ROIS]), voxel_series(rng, stimulus_features(rng), len(ROIS)))
    _, p = stats.block_permutation_test(Y, pred, BLOCK_SIZE, N_PERMUTATIONS, seed=i)
    return p <= ALPHA


def perm_roi_mean_null(seed: int, i: int) -> bool:
    """A ROI's mean time course of noise against the ROI mean of independent predictions."""
    rng = config.rng(seed, "calibration", "perm-roi-mean", i)
    y = responses(rng, None, np.zeros(ROI_VOXELS), noise_loadings(seed, ROI_VOXELS)).mean(axis=1)
    pred = voxel_series(rng, stimulus_features(rng), ROI_VOXELS).mean(axis=1)
    _, p = stats.block_permutation_test(y, pred, BLOCK_SIZE, N_PERMUTATIONS, seed=i)
    return bool(p <= ALPHA)


def _roi_means(x: np.ndarray, n_voxels: int) -> np.ndarray:
    """(N_TRS, len(ROIS) * n_voxels) -> the ROI-mean time courses, (N_TRS, len(ROIS))."""
    return x.reshape(len(x), len(ROIS), n_voxels).mean(axis=2)


def perm_roi_mean_power(seed: int, i: int) -> np.ndarray:
    """Each ROI's mean time course against the ROI mean of the fitted predictions."""
    rng = config.rng(seed, "calibration", "perm-roi-mean-power", i)
    data = planted(rng, three_features(rng), noise_loadings(seed, len(ROIS) * ROI_VOXELS), ROI_VOXELS)
    _, p = stats.block_permutation_test(_roi_means(data.Y, ROI_VOXELS), _roi_means(data.full, ROI_VOXELS),
                                        BLOCK_SIZE, N_PERMUTATIONS, seed=i)
    return p <= ALPHA


def perm_roi_groups_null(seed: int, i: int) -> bool:
    """The mean r over a ROI's voxels of noise, against independent predictions."""
    rng = config.rng(seed, "calibration", "perm-roi-groups", i)
    Y = responses(rng, None, np.zeros(ROI_VOXELS), noise_loadings(seed, ROI_VOXELS))
    pred = voxel_series(rng, stimulus_features(rng), ROI_VOXELS)
    _, p = stats.block_permutation_test(Y, pred, BLOCK_SIZE, N_PERMUTATIONS, seed=i, groups=np.ones((1, ROI_VOXELS), bool))
    return bool(p[0] <= ALPHA)


def perm_roi_groups_power(seed: int, i: int) -> np.ndarray:
    """The mean r over each ROI's voxels, planted effect in every ROI."""
    rng = config.rng(seed, "calibration", "perm-roi-groups-power", i)
    data = planted(rng, three_features(rng), noise_loadings(seed, len(ROIS) * ROI_VOXELS), ROI_VOXELS)
    _, p = stats.block_permutation_test(data.Y, data.full, BLOCK_SIZE, N_PERMUTATIONS, seed=i, groups=roi_masks(ROI_VOXELS))
    return p <= ALPHA


def _stacked_null(rng: np.random.Generator, seed: int, n_voxels: int, n_predictions: int) -> tuple[np.ndarray, list]:
    """N_STACKED subjects' noise side by side and ``n_predictions`` independent predictions of it."""
    loadings = noise_loadings(seed, n_voxels)
    Y = np.concatenate([responses(rng, None, np.zeros(n_voxels), loadings) for _ in range(N_STACKED)], axis=1)
    preds = []
    for _ in range(n_predictions):
        features = stimulus_features(rng)  # one stimulus, every subject's own weights
        preds.append(np.concatenate([voxel_series(rng, features, n_voxels) for _ in range(N_STACKED)], axis=1))
    return Y, preds


def boot_group_null(seed: int, i: int) -> bool:
    """Two predictions, both independent of the responses (the signal switched off)."""
    rng = config.rng(seed, "calibration", "boot-null", i)
    Y, (a, b) = _stacked_null(rng, seed, ROI_VOXELS, 2)
    _, p = stats.paired_block_bootstrap(Y, a, b, groups=np.ones((1, Y.shape[1]), bool), block_size=BLOCK_SIZE,
                                        n_bootstraps=N_BOOTSTRAPS, seed=i)
    return bool(p[0] <= ALPHA)


def boot_group_equal_null(seed: int, i: int) -> bool:
    """The signal on (ROI ``i % 6``); two predictions of equal quality that share half their error."""
    rng = config.rng(seed, "calibration", "boot-equal", i)
    roi = ROIS[i % len(ROIS)]
    rho = FIT_CORRELATION[roi]
    signal_f, common_f, a_f, b_f = (stimulus_features(rng) for _ in range(4))
    loadings = noise_loadings(seed, ROI_VOXELS)
    Y, A, B = [], [], []
    for _ in range(N_STACKED):
        signal = voxel_series(rng, signal_f, ROI_VOXELS)
        Y.append(responses(rng, signal, voxel_ev(rng, roi, ROI_VOXELS), loadings))
        common = voxel_series(rng, common_f, ROI_VOXELS)
        for out, own_f in ((A, a_f), (B, b_f)):
            error = np.sqrt(SHARED_ERROR) * common + np.sqrt(1 - SHARED_ERROR) * voxel_series(rng, own_f, ROI_VOXELS)
            out.append(fitted(signal, rho, error))
    Y, A, B = (np.concatenate(x, axis=1) for x in (Y, A, B))
    _, p = stats.paired_block_bootstrap(Y, A, B, groups=np.ones((1, Y.shape[1]), bool), block_size=BLOCK_SIZE,
                                        n_bootstraps=N_BOOTSTRAPS, seed=i)
    return bool(p[0] <= ALPHA)


def _stacked_planted(rng: np.random.Generator, seed: int, n_voxels: int, n_subjects: int) -> list[Planted]:
    features = three_features(rng)
    loadings = noise_loadings(seed, len(ROIS) * n_voxels)
    return [planted(rng, features, loadings, n_voxels) for _ in range(n_subjects)]


def boot_group_power(seed: int, i: int) -> np.ndarray:
    """The full model against the model without the property, per ROI over the stacked subjects."""
    rng = config.rng(seed, "calibration", "boot-power", i)
    subjects = _stacked_planted(rng, seed, ROI_VOXELS, N_STACKED)
    Y, A, B = (np.concatenate([getattr(s, k) for s in subjects], axis=1) for k in ("Y", "full", "reduced"))
    _, p = stats.paired_block_bootstrap(Y, A, B, groups=roi_masks(ROI_VOXELS, N_STACKED), block_size=BLOCK_SIZE,
                                        n_bootstraps=N_BOOTSTRAPS, seed=i)
    return p <= ALPHA


def _roi_mean_r(Y: np.ndarray, pred: np.ndarray, n_voxels: int) -> np.ndarray:
    """Each ROI's mean Pearson r over its voxels (columns z-scored), shape (len(Y[0]) // n_voxels,)."""
    return ((Y * pred).mean(axis=0)).reshape(-1, n_voxels).mean(axis=1)


def wilcoxon_null(n_subjects: int) -> Callable[[int, int], bool]:
    """Null draws of the Wilcoxon test over ``n_subjects``: each subject's ROI-mean r of two independent predictions."""
    def draw(seed: int, i: int) -> bool:
        rng = config.rng(seed, "calibration", "wilcoxon", n_subjects, i)
        loadings = noise_loadings(seed, ROI_VOXELS)
        a_f, b_f = stimulus_features(rng), stimulus_features(rng)
        a, b = np.empty(n_subjects), np.empty(n_subjects)
        for k in range(n_subjects):
            Y = responses(rng, None, np.zeros(ROI_VOXELS), loadings)
            a[k] = _roi_mean_r(Y, voxel_series(rng, a_f, ROI_VOXELS), ROI_VOXELS)[0]
            b[k] = _roi_mean_r(Y, voxel_series(rng, b_f, ROI_VOXELS), ROI_VOXELS)[0]
        return bool(stats.wilcoxon_across_subjects(a, b, "greater")[1] <= ALPHA)
    return draw


def wilcoxon_power(n_subjects: int) -> Callable[[int, int], np.ndarray]:
    """Planted-effect draws: each subject's ROI-mean r of the full model against the model without the property."""
    def draw(seed: int, i: int) -> np.ndarray:
        rng = config.rng(seed, "calibration", "wilcoxon-power", n_subjects, i)
        subjects = _stacked_planted(rng, seed, ROI_VOXELS, n_subjects)
        a = np.stack([_roi_mean_r(s.Y, s.full, ROI_VOXELS) for s in subjects])
        b = np.stack([_roi_mean_r(s.Y, s.reduced, ROI_VOXELS) for s in subjects])
        return stats.wilcoxon_across_subjects(a, b, "greater")[1] <= ALPHA
    return draw


def _fdr_perm_family(seed: int, i: int, subjects: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """BH over subjects x ROIs of block permutation tests per ROI (groups), as the quickstart: (n_subjects, n_rois)."""
    masks = roi_masks(ROI_VOXELS)
    p = np.stack([stats.block_permutation_test(Y, pred, BLOCK_SIZE, N_PERMUTATIONS, seed=1000 * i + k, groups=masks)[1]
                  for k, (Y, pred) in enumerate(subjects)])
    return stats.fdr(p, alpha=ALPHA)[0]


def fdr_perm_null(seed: int, i: int) -> bool:
    """True if BH rejects any of the 24 tests under the complete null."""
    rng = config.rng(seed, "calibration", "fdr-perm", i)
    n_all = len(ROIS) * ROI_VOXELS
    loadings = noise_loadings(seed, n_all)
    features = stimulus_features(rng)
    subjects = [(responses(rng, None, np.zeros(n_all), loadings), voxel_series(rng, features, n_all)) for _ in range(N_STACKED)]
    return bool(_fdr_perm_family(seed, i, subjects).any())


def fdr_perm_power(seed: int, i: int) -> np.ndarray:
    """Share of each ROI's tests (one per subject) that BH rejects, planted effect in every ROI."""
    rng = config.rng(seed, "calibration", "fdr-perm-power", i)
    subjects = [(s.Y, s.full) for s in _stacked_planted(rng, seed, ROI_VOXELS, N_STACKED)]
    return _fdr_perm_family(seed, i, subjects).mean(axis=0)


def _fdr_boot_family(seed: int, i: int, Y: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """BH over layers x ROIs of paired bootstraps per ROI of stacked subjects, as notebook 01: (n_layers, n_rois)."""
    masks = roi_masks(ROI_VOXELS, N_STACKED)
    p = np.stack([stats.paired_block_bootstrap(Y, a, b, groups=masks, block_size=BLOCK_SIZE, n_bootstraps=N_BOOTSTRAPS,
                                               seed=1000 * i + k)[1] for k, (a, b) in enumerate(pairs)])
    return stats.fdr(p, alpha=ALPHA)[0]


def fdr_boot_null(seed: int, i: int) -> bool:
    """True if BH rejects any of the 24 comparisons of two independent predictions."""
    rng = config.rng(seed, "calibration", "fdr-boot", i)
    Y, preds = _stacked_null(rng, seed, len(ROIS) * ROI_VOXELS, 2 * N_LAYERS)
    return bool(_fdr_boot_family(seed, i, Y, list(zip(preds[::2], preds[1::2], strict=True))).any())


def fdr_boot_power(seed: int, i: int) -> np.ndarray:
    """Every layer's full and reduced model; the layers differ in their fitted error."""
    rng = config.rng(seed, "calibration", "fdr-boot-power", i)
    loadings = noise_loadings(seed, len(ROIS) * ROI_VOXELS)
    rest_f, property_f = stimulus_features(rng), stimulus_features(rng)
    error_fs = [stimulus_features(rng) for _ in range(N_LAYERS)]
    layers = [[planted(config.rng(seed, "calibration", "fdr-boot-power", i, k), (rest_f, property_f, error_f), loadings,
                       ROI_VOXELS) for k in range(N_STACKED)] for error_f in error_fs]
    Y = np.concatenate([s.Y for s in layers[0]], axis=1)  # the same subjects (same keys) in every layer
    pairs = [tuple(np.concatenate([getattr(s, k) for s in layer], axis=1) for k in ("full", "reduced")) for layer in layers]
    return _fdr_boot_family(seed, i, Y, pairs).mean(axis=0)


# -- rates, intervals, verdicts -------------------------------------------------------------------------
@dataclass
class Case:
    """One test as a notebook uses it: its null draw, its planted-effect draw and how many of each."""

    name: str
    null: Callable[[int, int], bool]
    power: Callable[[int, int], np.ndarray]
    n_null: int
    n_power: int
    note: str = ""


def wilson_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n``."""
    z = sstats.norm.ppf(0.5 + level / 2)
    phat = k / n
    centre = (phat + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def wilcoxon_exact_size(n_subjects: int, alpha: float = ALPHA) -> float:
    """The exact size of the one-sided signed-rank test at ``alpha``: P(p <= alpha) under the null."""
    ranks = np.arange(1, n_subjects + 1)
    signs = (np.arange(2**n_subjects)[:, None] >> np.arange(n_subjects)) & 1
    w = signs @ ranks
    tail = np.array([(w >= x).mean() for x in range(w.max() + 2)])
    return float((tail[w] <= alpha).mean())


def spread(n_draws: int) -> list[tuple[int, int]]:
    """(seed, draw) pairs: ``n_draws`` draws spread evenly over ``SEEDS``."""
    return [(SEEDS[i % len(SEEDS)], i) for i in range(n_draws)]


def run_case(case: Case) -> dict:
    """The false-positive rate with its interval, the power by ROI and the verdict of one test."""
    t0 = time.perf_counter()
    rejected = sum(case.null(seed, i) for seed, i in spread(case.n_null))
    low, high = wilson_interval(rejected, case.n_null)
    t1 = time.perf_counter()
    power = np.mean([case.power(seed, i) for seed, i in spread(case.n_power)], axis=0)
    t2 = time.perf_counter()
    fpr = rejected / case.n_null
    anti = high > BOUND
    conservative = high < ALPHA
    mean_power = float(power.mean())
    if anti:
        verdict = "FAIL: anti-conservative"
    elif conservative and mean_power < MIN_POWER:
        verdict = f"FAIL: conservative, power < {MIN_POWER}"
    else:
        verdict = "pass"
    return {"test": case.name, "n_null": case.n_null, "false_positives": int(rejected), "fpr": fpr,
            "fpr_low": low, "fpr_high": high, "n_power": case.n_power,
            "power_by_roi": {roi: float(x) for roi, x in zip(ROIS, power, strict=True)}, "power_mean": mean_power,
            "conservative": bool(conservative), "anti_conservative": bool(anti), "verdict": verdict, "note": case.note,
            "seconds_null": round(t1 - t0, 1), "seconds_power": round(t2 - t1, 1)}


def cases(n_null: int, n_power: int) -> list[Case]:
    """Every test, as the notebooks use it; the slowest get half the null draws (still half-width <= 0.015)."""
    slow = max(n_null // 2, 1)
    return [
        Case("block permutation, per voxel", perm_voxel_null, perm_voxel_power, n_null, n_power,
             "one voxel per draw"),
        Case("block permutation, ROI-mean time course", perm_roi_mean_null, perm_roi_mean_power, n_null, n_power,
             f"{ROI_VOXELS} voxels averaged"),
        Case("block permutation, per ROI (groups, mean r)", perm_roi_groups_null, perm_roi_groups_power, slow, n_power,
             f"{ROI_VOXELS} voxels; as notebook 00"),
        Case("paired block bootstrap, per group (null: no signal)", boot_group_null, boot_group_power, n_null, n_power,
             f"{N_STACKED} subjects x {ROI_VOXELS} voxels stacked; as notebook 01"),
        Case("paired block bootstrap, per group (null: equal-quality predictions)", boot_group_equal_null,
             boot_group_power, n_null, n_power, "signal on, predictions share half their error"),
        Case("Wilcoxon across subjects, n = 5 (one-sided)", wilcoxon_null(5), wilcoxon_power(5), n_null, n_power,
             f"exact size {wilcoxon_exact_size(5):.4f}"),
        Case("Wilcoxon across subjects, n = 12 (one-sided)", wilcoxon_null(12), wilcoxon_power(12), n_null, n_power,
             f"exact size {wilcoxon_exact_size(12):.4f}"),
        Case("FDR (BH) over 24 block permutation tests (family-wise)", fdr_perm_null, fdr_perm_power, slow, n_power,
             f"{N_STACKED} subjects x {len(ROIS)} ROIs; as notebook 00"),
        Case("FDR (BH) over 24 paired bootstraps (family-wise)", fdr_boot_null, fdr_boot_power, n_null, n_power,
             f"{N_LAYERS} layers x {len(ROIS)} ROIs; as notebook 01"),
    ]


def print_table(rows: list[dict]) -> None:
    """The summary table, then the power by ROI, in Markdown."""
    print("| test | null draws | false-positive rate [95% CI] | power at planted effect: mean (min-max over ROIs) "
          "| conservative? | verdict |")
    print("| --- | ---: | --- | --- | --- | --- |")
    for row in rows:
        power = row["power_by_roi"].values()
        print(f"| {row['test']} | {row['n_null']} | {row['fpr']:.3f} [{row['fpr_low']:.3f}, {row['fpr_high']:.3f}] | "
              f"{row['power_mean']:.2f} ({min(power):.2f}-{max(power):.2f}) | {'yes' if row['conservative'] else 'no'} | "
              f"{row['verdict']} |")
    print()
    print("| test | " + " | ".join(ROIS) + " |")
    print("| --- |" + " ---: |" * len(ROIS))
    for row in rows:
        print(f"| {row['test']} | " + " | ".join(f"{row['power_by_roi'][roi]:.2f}" for roi in ROIS) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 null and 40 power draws per test (a minute or two)")
    parser.add_argument("--n-null", type=int, default=2000, help="null draws per test (the slowest two get half)")
    parser.add_argument("--n-power", type=int, default=200, help="planted-effect draws per test (each covers every ROI)")
    parser.add_argument("--only", default=None, help="run only the tests whose name contains this text")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "calibration.json"))
    args = parser.parse_args()
    n_null, n_power = (200, 40) if args.quick else (args.n_null, args.n_power)

    share = removed_share()
    print(f"{N_TRS} TRs (TR {TR} s), blocks of {BLOCK_SIZE}, {N_PERMUTATIONS} permutations / {N_BOOTSTRAPS} bootstrap draws, "
          f"alpha {ALPHA}; seeds {SEEDS}; planted: EV_MEDIAN {simulate.EV_MEDIAN}, fitted r with the signal "
          f"{FIT_CORRELATION}, removed property share {share:.2f}")
    rows = []
    for case in cases(n_null, n_power):
        if args.only and args.only not in case.name:
            continue
        row = run_case(case)
        rows.append(row)
        print(f"  {row['test']}: {row['fpr']:.3f} [{row['fpr_low']:.3f}, {row['fpr_high']:.3f}], power {row['power_mean']:.2f}, "
              f"{row['verdict']} ({row['seconds_null'] + row['seconds_power']:.0f} s)", flush=True)
    print()
    print_table(rows)
    failed = [row["test"] for row in rows if row["verdict"] != "pass"]
    print()
    print(f"criterion: upper end of the 95% interval <= {BOUND}; conservative tests need mean power >= {MIN_POWER}: "
          + ("all pass" if not failed else f"FAILED: {failed}"))
    if args.quick:
        print("--quick: 200 null draws leave intervals too wide for the criterion; the verdicts need the full run")

    result = {
        "setup": {"n_trs": N_TRS, "tr_s": TR, "block_size": BLOCK_SIZE, "n_permutations": N_PERMUTATIONS,
                  "n_bootstraps": N_BOOTSTRAPS, "alpha": ALPHA, "bound": BOUND, "min_power": MIN_POWER, "seeds": list(SEEDS),
                  "n_null": n_null, "n_power": n_power, "quick": args.quick, "roi_voxels": ROI_VOXELS,
"n_stacked": N_STACKED, "ev_median": simulate.EV_MEDIAN,
                  "fit_correlation": FIT_CORRELATION, "removed_share": share},
        "rows": rows,
        "all_pass": not failed,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": os.getloadavg()[0], "python": platform.python_version(),
                    "numpy": np.__version__, "scipy": scipy.__version__},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
