"""Statistics for encoding-model scores: permutation tests, FDR, group tests, CIs.

fMRI time series are autocorrelated, so shuffling single samples makes the
null distribution of a correlation too narrow; :func:`block_permutation_test`
shuffles blocks of consecutive samples instead. :func:`fdr` corrects the
resulting per-voxel p-values for multiple comparisons (Benjamini-Hochberg),
:func:`wilcoxon_across_subjects` compares scores across subjects, and
:func:`bootstrap_ci` gives percentile bootstrap confidence intervals.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats as sstats

from . import config

__all__ = ["block_permutation_test", "bootstrap_ci", "fdr", "wilcoxon_across_subjects"]

_ALTERNATIVES = ("two-sided", "greater", "less")

# Working-memory budget (bytes) of one batch of permuted predictions.
_BATCH_BYTES = 128 * 2**20


def _zscore_columns(y: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit norm (so a dot product is Pearson r); constant columns give 0."""
    y = y - y.mean(axis=0)
    norm = np.sqrt((y * y).sum(axis=0))
    return y / np.where(norm == 0, 1.0, norm)


def block_permutation_test(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    block_size: int = 10,
    n_permutations: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided permutation test of the Pearson r between prediction and response.

    The null distribution shuffles the order of blocks of ``block_size``
    consecutive samples of ``y_pred`` (the order within a block is kept, which
    preserves most of the autocorrelation). The series is cut into blocks from
    its start; the incomplete tail block, if any, is shuffled as one more
    (shorter) block, so every permutation uses all samples. The same
    permutations are used for every target. The p-value is
    ``(1 + #{r_perm >= r}) / (1 + n_permutations)``, so it is never 0.

    Parameters
    ----------
    y_true : array of shape (n_samples, n_targets) or (n_samples,)
        Measured responses (a 1-D array is one time course, e.g. an ROI mean).
    y_pred : array of the same shape as ``y_true``
        Predicted responses.
    block_size : int, default=10
        Samples per block; choose it longer than the autocorrelation.
    n_permutations : int, default=1000
        Number of block permutations.
    seed : int, default=0
        Seed of the permutations.
    groups : array of shape (n_groups, n_targets) of bool, optional
        Test groups of targets instead (e.g. ROI masks): the statistic of a
        group is the mean r of its targets, under the same permutations.

    Returns
    -------
    r : array of shape (n_targets,) or (n_groups,), or 0-d for 1-D inputs
        Observed Pearson r (mean r of each group with ``groups``).
    p : array of the same shape as ``r``
        One-sided p-value (large r is significant).
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise ValueError(f"y_true {a.shape} and y_pred {b.shape} must have the same shape, (n_samples,) or (n_samples, n_targets)")
    squeeze = a.ndim == 1
    if squeeze:
        a, b = a[:, None], b[:, None]
    n_samples = a.shape[0]
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size={block_size!r} must be a positive integer")
    n_blocks = -(-n_samples // block_size)
    if n_blocks < 2:
        raise ValueError(f"block_size={block_size} leaves fewer than 2 blocks in {n_samples} samples")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations={n_permutations!r} must be a positive integer")

    weights = None
    if groups is not None:
        groups = np.atleast_2d(np.asarray(groups, dtype=bool))
        if squeeze or groups.shape[1] != a.shape[1] or not groups.any(axis=1).all():
            raise ValueError(f"groups must be non-empty boolean masks of shape (n_groups, {a.shape[1]}); "
                             f"got shape {groups.shape}")
        weights = (groups / groups.sum(axis=1, keepdims=True)).T  # (n_targets, n_groups)
    za, zb = _zscore_columns(a), _zscore_columns(b)
    r = (za * zb).sum(axis=0)
    if weights is not None:
        r = r @ weights
    blocks = [np.arange(start, min(start + block_size, n_samples)) for start in range(0, n_samples, block_size)]
    gen = config.rng(seed, "block_permutation_test")
    batch = int(max(1, _BATCH_BYTES // (8 * za.size)))
    exceed = np.zeros(r.shape, dtype=np.int64)
    for start in range(0, n_permutations, batch):
        size = min(batch, n_permutations - start)
        index = np.stack([np.concatenate([blocks[k] for k in gen.permutation(n_blocks)]) for _ in range(size)])
        r_perm = np.einsum("bnt,nt->bt", zb[index], za)  # (size, n_targets)
        if weights is not None:
            r_perm = r_perm @ weights
        exceed += (r_perm >= r).sum(axis=0)
    p = (1.0 + exceed) / (1.0 + n_permutations)
    if squeeze:
        return r[0], p[0]
    return r, p


def fdr(pvals: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg false discovery rate control.

    Parameters
    ----------
    pvals : array of any shape
        p-values in [0, 1]; nan entries (e.g. masked voxels) are left out of
        the correction, get q = nan and are never rejected.
    alpha : float, default=0.05
        False discovery rate.

    Returns
    -------
    reject : bool array of the shape of ``pvals``
        True where the null hypothesis is rejected (``q <= alpha``).
    qvals : array of the shape of ``pvals``
        BH-adjusted p-values (``scipy.stats.false_discovery_control``).
    """
    p = np.asarray(pvals, dtype=np.float64)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be in (0, 1)")
    finite = ~np.isnan(p)
    if np.any((p[finite] < 0) | (p[finite] > 1)):
        raise ValueError("pvals must lie in [0, 1] (or be nan)")
    q = np.full(p.shape, np.nan)
    if finite.any():
        q[finite] = sstats.false_discovery_control(p[finite], method="bh")
    reject = np.zeros(p.shape, dtype=bool)
    reject[finite] = q[finite] <= alpha
    return reject, q


def wilcoxon_across_subjects(
    a: np.ndarray, b: np.ndarray | None = None, alternative: str = "two-sided"
) -> tuple[np.ndarray, np.ndarray]:
    """Paired Wilcoxon signed-rank test across subjects (``scipy.stats.wilcoxon``).

    Parameters
    ----------
    a : array of shape (n_subjects,) or (n_subjects, n_items)
        One value per subject (and per item, e.g. per layer or ROI).
    b : array of the shape of ``a``, optional
        The paired values to compare with; None tests ``a`` against 0.
    alternative : {"two-sided", "greater", "less"}, default="two-sided"
        ``"greater"``: ``a`` tends to exceed ``b``.

    Returns
    -------
    statistic : float or array of shape (n_items,)
    p : float or array of shape (n_items,)
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative={alternative!r} is not one of {_ALTERNATIVES}")
    a = np.asarray(a, dtype=np.float64)
    if a.ndim not in (1, 2) or a.shape[0] < 2:
        raise ValueError(f"a must have shape (n_subjects,) or (n_subjects, n_items) with n_subjects >= 2, got {a.shape}")
    if b is not None:
        b = np.asarray(b, dtype=np.float64)
        if b.shape != a.shape:
            raise ValueError(f"a has shape {a.shape} but b has shape {b.shape}")
    res = sstats.wilcoxon(a, b, alternative=alternative, axis=0)
    return res.statistic, res.pvalue


def bootstrap_ci(
    values: np.ndarray,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    statistic: Callable[..., np.ndarray] = np.mean,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap confidence interval of a statistic over axis 0.

    Resamples the rows of ``values`` (e.g. subjects) with replacement
    (``scipy.stats.bootstrap``, percentile method).

    Parameters
    ----------
    values : array of shape (n, ...)
        Observations along axis 0.
    n_boot : int, default=1000
        Bootstrap resamples.
    ci : float, default=0.95
        Confidence level, in (0, 1).
    seed : int, default=0
        Seed of the resampling.
    statistic : callable, default=np.mean
        Called as ``statistic(x, axis=...)``; it must accept an ``axis``
        argument, as numpy reductions do.

    Returns
    -------
    low, high : arrays of shape values.shape[1:] (floats for 1-D input)
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim < 1 or values.shape[0] < 2:
        raise ValueError(f"values must have at least 2 observations along axis 0, got shape {values.shape}")
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci!r} must be in (0, 1)")
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot={n_boot!r} must be a positive integer")
    res = sstats.bootstrap(
        (values,),
        statistic,
        n_resamples=n_boot,
        confidence_level=ci,
        method="percentile",
        axis=0,
        rng=config.rng(seed, "bootstrap_ci"),
    )
    return res.confidence_interval.low, res.confidence_interval.high
