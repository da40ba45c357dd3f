"""Banded ridge, variance partitioning and winner-take-all maps on data with a known answer."""

import numpy as np
import pytest

from brainalign import partition


def _bands_and_responses(seed=0, n_runs=4, n=80):
    """Three random feature spaces; voxels 0-9 driven by band a, 10-19 by band b, 20-29 by nothing (one TR's lag)."""
    rng = np.random.default_rng(seed)
    runs = [f"r{i}" for i in range(n_runs)]
    X = {b: {r: rng.standard_normal((n, 12)) for r in runs} for b in ("a", "b", "c")}
    mixing = {band: rng.standard_normal((4, 10)) for band in ("a", "b")}
    Y = {}
    for s in ("S1", "S2"):
        Y[s] = {}
        for r in runs:
            y = rng.standard_normal((n, 30))
            for band, cols in (("a", slice(0, 10)), ("b", slice(10, 20))):
                drive = np.roll(X[band][r][:, :4] @ mixing[band], 1, axis=0)
                drive[0] = 0
                y[:, cols] += drive / drive.std(0)
            Y[s][r] = y
    return runs, X, Y


def test_banded_ridge_gives_each_voxel_its_band():
    runs, X, Y = _bands_and_responses()
    split, weights = partition.banded_ridge_predictions(X, Y, runs[:-1], runs[-1], delays=(1,), n_iter=8,
                                                        alphas=np.logspace(-1, 4, 6), seed=0)
    for s in Y:
        assert split[s].shape == (3, 80, 30) and weights[s].shape == (3, 30)
        np.testing.assert_allclose(weights[s].sum(0), 1.0)
        train = np.concatenate([Y[s][r] for r in runs[:-1]])
        yz = (Y[s][runs[-1]] - train.mean(0)) / train.std(0)
        r2 = partition.split_r2(yz, split[s])
        # band a explains voxels 0-9 and b 10-19 (a random search of 8 draws leaves some weight on a wrong band here and there)
        assert np.all(r2[0, :10] > 0.15) and np.all(r2[1, 10:20] > 0.15) and r2[0, :10].mean() > 0.35 and r2[1, 10:20].mean() > 0.35
        assert np.abs(r2[1:, :10]).mean() < 0.03 and np.abs(r2[[0, 2], 10:20]).mean() < 0.03
        assert np.abs(r2[1:, :10]).max() < 0.15 and np.abs(r2[[0, 2], 10:20]).max() < 0.15
        assert np.all(np.abs(r2[:, 20:]) < 0.1) and np.abs(r2[:, 20:]).mean() < 0.02  # nothing where nothing was planted
        assert weights[s][0, :10].mean() > 0.8 and weights[s][1, 10:20].mean() > 0.8
        # the parts add up to the joint prediction's R² (both centred on the test run)
        total, yc = split[s].sum(0), yz - yz.mean(0)
        joint_r2 = 1 - ((yc - total + total.mean(0)) ** 2).sum(0) / (yc**2).sum(0)
        np.testing.assert_allclose(r2.sum(0), joint_r2, atol=0.05)
    with pytest.raises(ValueError, match="missing: \\[\\('a', 'r9'\\)"):
        partition.banded_ridge_predictions(X, Y, runs[:-1], "r9")
    with pytest.raises(ValueError, match="n_iter must be a positive integer"):
        partition.banded_ridge_predictions(X, Y, runs[:-1], runs[-1], n_iter=0)


def test_split_r2_of_known_parts():
    rng = np.random.default_rng(1)
    y = rng.standard_normal((200, 3))
    split = np.stack([y * 0.5, np.zeros_like(y), rng.standard_normal((200, 3)) * 0.01])
    r2 = partition.split_r2(y, split)
    np.testing.assert_allclose(r2[0], 0.75, atol=0.01)  # (2y - 0.5y)·0.5y / |y|² = 0.75: the R² of predicting 0.5y
    np.testing.assert_allclose(r2[1], 0.0)
    with pytest.raises(ValueError, match="must be \\(n_bands"):
        partition.split_r2(y, split[:, :10])


def test_variance_partition():
    v = partition.variance_partition(0.3, 0.3, 0.3)  # identical spaces
    assert v["shared"] == pytest.approx(0.3) and v["unique_a"] == pytest.approx(0) and v["unique_b"] == pytest.approx(0)
    v = partition.variance_partition(np.array([0.2]), np.array([0.1]), np.array([0.3]))  # disjoint spaces
    np.testing.assert_allclose([v["shared"][0], v["unique_a"][0], v["unique_b"][0]], [0.0, 0.2, 0.1], atol=1e-12)
    with pytest.raises(ValueError, match="one shape"):
        partition.variance_partition(np.zeros(2), np.zeros(2), np.zeros(3))


def test_winner_take_all_and_organisation_test():
    rng = np.random.default_rng(2)
    regions = np.repeat(["V1", "A1", "STS"], 100)
    organised = {k: rng.normal(0, 0.05, 300) + (regions == roi) for k, roi in [("vision", "V1"), ("speech", "A1"), ("av", "STS")]}
    win = partition.winner_take_all(organised)
    assert (win == np.repeat([0, 1, 2], 100)).mean() > 0.99
    mi, p = partition.organisation_test(win, regions, n_permutations=200, seed=0)
    assert mi > 1.4 and p == pytest.approx(1 / 201)  # log2(3) bits at most; no shuffle reaches it
    noise = {k: rng.normal(0, 1, 300) for k in organised}
    mi0, p0 = partition.organisation_test(partition.winner_take_all(noise), regions, n_permutations=200, seed=0)
    assert mi0 < 0.05 and p0 > 0.05
    masked = partition.winner_take_all(organised, include=regions != "STS")
    assert np.all(masked[regions == "STS"] == -1)
    assert partition.organisation_test(np.full(300, -1), regions) == (0.0, 1.0)
    with pytest.raises(ValueError, match="scores is empty"):
        partition.winner_take_all({})
    with pytest.raises(ValueError, match="n_permutations must be a positive integer"):
        partition.organisation_test(win, regions, n_permutations=0)
