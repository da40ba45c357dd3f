"""Tests of brainalign.encoding: scores, folds, delays and the ridge encoder."""

from __future__ import annotations

import numpy as np
import pytest
from himalaya.backend import get_backend
from scipy.signal import lfilter
from sklearn.linear_model import Ridge

from brainalign import encoding
from brainalign.encoding import (
    RidgeEncoder,
    contiguous_folds,
    cross_validated_scores,
    delay_within_runs,
    pearson_r,
)

DELAYS = (1, 2, 3, 4)


pytestmark = pytest.mark.usefixtures("one_thread")


# -- pearson_r -----------------------------------------------------------------
def test_pearson_r_matches_corrcoef_and_handles_constant_columns():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 4)), rng.standard_normal((50, 4))
    b[:, 1] += 2 * a[:, 1]
    expected = [np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(4)]
    np.testing.assert_allclose(pearson_r(a, b), expected, atol=1e-12)
    a[:, 2] = 0.1  # constant: rounding residue must not give a spurious r
    b[:, 3] = 7.0
    r = pearson_r(a, b)
    assert r[2] == 0 and r[3] == 0 and np.all(np.isfinite(r))
    assert float(pearson_r(a[:, 1], b[:, 1])) == pytest.approx(expected[1])
    with pytest.raises(ValueError, match="shape"):
        pearson_r(a, b[:, :3])


# -- folds -----------------------------------------------------------------------
@pytest.mark.parametrize(("n", "k", "gap"), [(100, 5, 5), (103, 4, 3), (20, 2, 0), (57, 3, 10)])
def test_contiguous_folds_properties(n, k, gap):
    folds = contiguous_folds(n, k, gap)
    assert len(folds) == k
    tests = np.concatenate([test for _, test in folds])
    np.testing.assert_array_equal(tests, np.arange(n))  # each sample tested once, in order
    for train, test in folds:
        assert np.all(np.diff(test) == 1)  # contiguous
        assert train.size > 0
        assert not np.intersect1d(train, test).size
        # distance of each training sample to the nearest test sample exceeds gap
        dist = np.abs(train[:, None] - test[None, :]).min(axis=1)
        assert dist.min() > gap
        # and everything farther than gap is used for training
        far = np.setdiff1d(np.arange(n), np.arange(test[0] - gap, test[-1] + gap + 1))
        np.testing.assert_array_equal(train, far)


@pytest.mark.parametrize(
    ("args", "match"),
    [((100, 1, 5), "n_folds"), ((100, 5, -1), "gap"), ((3, 5, 0), "n_samples"), ((10, 2, 5), "no training"), ((10.0, 2, 1), "integer")],
)
def test_contiguous_folds_bad_args(args, match):
    with pytest.raises(ValueError, match=match):
        contiguous_folds(*args)


# -- delays ----------------------------------------------------------------------
def test_delays_shift_and_fill_with_zeros():
    X = np.arange(1, 13, dtype=float).reshape(6, 2)
    out = delay_within_runs(X, (0, 2, -1))
    assert out.shape == (6, 6)
    np.testing.assert_array_equal(out[:, 0:2], X)
    np.testing.assert_array_equal(out[2:, 2:4], X[:-2])
    np.testing.assert_array_equal(out[:2, 2:4], 0)
    np.testing.assert_array_equal(out[:-1, 4:6], X[1:])
    np.testing.assert_array_equal(out[-1, 4:6], 0)
    with pytest.raises(ValueError, match="delays"):
        delay_within_runs(X, ())


def test_delays_never_cross_run_boundaries():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 3)) + 5  # no zeros in X
    runs = np.repeat([7, 3, 9], [12, 10, 8])
    out = delay_within_runs(X, DELAYS, runs)
    for start, stop in [(0, 12), (12, 22), (22, 30)]:
        np.testing.assert_array_equal(out[start:stop], delay_within_runs(X[start:stop], DELAYS))
        for i, d in enumerate(DELAYS):  # the first d samples of each run see nothing of the run before
            np.testing.assert_array_equal(out[start : start + d, 3 * i : 3 * i + 3], 0)
    assert np.all(out[4:12] != 0) and np.all(out[26:30] != 0)
    with pytest.raises(ValueError, match="runs"):
        delay_within_runs(X, DELAYS, runs[:-1])


# -- the encoder on planted weights ----------------------------------------------
def _simulate(n=600, p=20, seed=0):
    """Autocorrelated features; 3 SNR groups of targets with known signal fraction, and null targets."""
    rng = np.random.default_rng(seed)
    X = lfilter([1.0], [1.0, -0.6], rng.standard_normal((n, p)), axis=0)
    W = rng.standard_normal((p * len(DELAYS), 30))
    signal = delay_within_runs(X, DELAYS) @ W
    signal /= signal.std(axis=0)
    fractions = np.repeat([0.25, 0.5, 0.8], 10)
    noise = rng.standard_normal((n, 30))
    Y_signal = np.sqrt(fractions) * signal + np.sqrt(1 - fractions) * noise
    Y = np.concatenate([Y_signal, rng.standard_normal((n, 20))], axis=1) * 3.0 + 10.0
    return X, Y, signal * np.sqrt(fractions) * 3.0 + 10.0, fractions


@pytest.fixture(scope="module")
def planted():
    X, Y, signal, fractions = _simulate()
    model = RidgeEncoder(delays=DELAYS).fit(X[:450], Y[:450])
    return X, Y, signal, fractions, model


def test_ridge_recovers_planted_weights(planted):
    X, Y, signal, fractions, model = planted
    r = model.score(X[450:], Y[450:])
    assert r.shape == (50,)
    for f in np.unique(fractions):
        group = r[:30][fractions == f]
        assert group.mean() > 0.8 * np.sqrt(f), (f, group.mean())
        assert group.mean() < np.sqrt(f) + 0.05  # cannot beat the noise
    assert abs(r[30:].mean()) < 0.05  # null targets
    pred = model.predict(X[450:])
    clean = pearson_r(signal[450:, 20:30], pred[:, 20:30])
    assert np.all(clean > 0.9)
    # predictions are in the units of Y (mean 10, scale 3), not z-scores
    assert abs(pred[:, :30].mean() - 10.0) < 0.5
    assert model.best_alphas_.shape == (50,) and model.cv_scores_.shape == (50,)
    # null targets are regularised harder than high-SNR ones
    assert np.median(model.best_alphas_[30:]) > np.median(model.best_alphas_[20:30])


def test_scalers_use_training_data_only(planted):
    X, Y, _, _, model = planted
    Xd = delay_within_runs(X[:450], DELAYS)
    np.testing.assert_allclose(model.x_scaler_.mean_, Xd.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.y_scaler_.mean_, Y[:450].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(model.y_scaler_.scale_, Y[:450].std(axis=0), rtol=1e-4)


@pytest.mark.parametrize(("n_features", "solver"), [(20, "RidgeCV"), (80, "KernelRidgeCV")])
def test_encoder_equals_ridge_at_selected_alphas(n_features, solver):
    """Both himalaya paths (primal and kernel) give sklearn's ridge at the chosen alphas."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, n_features))
    Y = X[:, :3] @ rng.standard_normal((3, 6)) + rng.standard_normal((200, 6))
    model = RidgeEncoder(delays=(0, 1, 2, 3), dtype="float64").fit(X[:150], Y[:150])
    assert type(model.model_).__name__ == solver
    Xz_train = model.x_scaler_.transform(delay_within_runs(X[:150], (0, 1, 2, 3)))
    Xz_test = model.x_scaler_.transform(delay_within_runs(X[150:], (0, 1, 2, 3)))
    Yz = model.y_scaler_.transform(Y[:150])
    ref = Ridge(alpha=model.best_alphas_, fit_intercept=False, solver="svd").fit(Xz_train, Yz)
    expected = model.y_scaler_.inverse_transform(ref.predict(Xz_test))
    np.testing.assert_allclose(model.predict(X[150:]), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(model.coef_, ref.coef_.T, rtol=1e-6, atol=1e-8)


def test_backends_agree_and_global_backend_is_restored():
    rng = np.random.default_rng(4)
    X, Y = rng.standard_normal((150, 10)), rng.standard_normal((150, 4))
    before = get_backend().name
    preds = [RidgeEncoder(backend=b, dtype="float64").fit(X, Y).predict(X) for b in ("numpy", "torch")]
    np.testing.assert_allclose(preds[0], preds[1], rtol=1e-8, atol=1e-8)
    assert isinstance(preds[1], np.ndarray)
    assert get_backend().name == before
    assert encoding.resolve_backend("auto") == "torch"
    with pytest.raises(ValueError, match="backend"):
        RidgeEncoder(backend="cupy").fit(X, Y)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"alphas": [1.0, -1.0]}, "alphas"), ({"dtype": "int8"}, "dtype"), ({"delays": (1.5,)}, "delays"),
     ({"n_targets_batch": 0}, "n_targets_batch")],
)
def test_encoder_bad_params(kwargs, match):
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((60, 3)), rng.standard_normal((60, 2))
    with pytest.raises(ValueError, match=match):
        RidgeEncoder(**kwargs).fit(X, Y)


def test_encoder_bad_shapes():
    rng = np.random.default_rng(6)
    X, Y = rng.standard_normal((60, 3)), rng.standard_normal((59, 2))
    with pytest.raises(ValueError, match="samples"):
        RidgeEncoder().fit(X, Y)
    model = RidgeEncoder().fit(X[:59], Y)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :2])


# -- outer cross-validation ----------------------------------------------------
def test_cross_validated_scores_do_not_see_test_responses():
    X, Y, _, _ = _simulate(n=400, seed=7)
    Y = Y[:, 20:35]  # 10 high-SNR and 5 null targets
    kwargs = {"delays": DELAYS, "dtype": "float64"}
    scores, pred = cross_validated_scores(X, Y, n_folds=4, gap=5, **kwargs)
    assert scores.shape == (15,) and pred.shape == Y.shape
    assert scores[:10].min() > 0.75 and abs(scores[10:].mean()) < 0.1
    np.testing.assert_allclose(scores, pearson_r(Y, pred))

    train, test = contiguous_folds(400, 4, 5)[1]
    # same as an encoder fitted on the training samples only
    Xd = delay_within_runs(X, DELAYS)
    manual = RidgeEncoder(delays=(0,), dtype="float64").fit(Xd[train], Y[train]).predict(Xd[test])
    np.testing.assert_allclose(pred[test], manual, rtol=1e-8, atol=1e-8)

    # changing the held-out responses (and those in the gap) leaves their predictions unchanged;
    # a scaler fitted on all of Y would shift them
    Y2 = Y.copy()
    Y2[test[0] - 5 : test[-1] + 6] = Y2[test[0] - 5 : test[-1] + 6] * 50.0 + 1000.0
    _, pred2 = cross_validated_scores(X, Y2, n_folds=4, gap=5, **kwargs)
    np.testing.assert_allclose(pred2[test], pred[test], rtol=1e-8, atol=1e-8)
    assert not np.allclose(pred2[contiguous_folds(400, 4, 5)[0][1]], pred[contiguous_folds(400, 4, 5)[0][1]])


def test_cross_validated_scores_respects_runs():
    rng = np.random.default_rng(8)
    X, Y = rng.standard_normal((120, 4)), rng.standard_normal((120, 3))
    runs = np.repeat([0, 1], 60)
    _, with_runs = cross_validated_scores(X, Y, runs)
    _, without = cross_validated_scores(X, Y, None)
    assert with_runs.shape == without.shape == (120, 3)
    assert not np.allclose(with_runs, without)  # the boundary samples see different features


def test_held_out_scores_fit_every_participant_at_once():
    """One fit for participants who heard the same stimulus gives each voxel the score of its own fit."""
    rng = np.random.default_rng(9)
    runs = ["a", "b", "c", "test"]
    X = {r: rng.standard_normal((80, 6)) for r in runs}
    W = rng.standard_normal((6, 4))
    Y = {"signal": {r: np.roll(X[r], 1, axis=0) @ W + 0.5 * rng.standard_normal((80, 4)) for r in runs},
         "noise": {r: rng.standard_normal((80, 2)) for r in runs}}  # another number of voxels, nothing planted
    kw = dict(delays=(1,), n_folds=3)
    got = encoding.held_out_scores(X, Y, runs[:3], "test", **kw)
    assert list(got) == ["signal", "noise"] and got["signal"].shape == (4,) and got["noise"].shape == (2,)
    assert np.all(got["signal"] > 0.8) and np.all(np.abs(got["noise"]) < 0.3)
    groups = np.repeat([0, 1, 2], 80)
    for s in Y:  # each participant alone: the same scores (each voxel has its own penalty and z-scoring)
        alone = RidgeEncoder(**kw).fit(np.concatenate([X[r] for r in runs[:3]]), np.concatenate([Y[s][r] for r in runs[:3]]),
                                       runs=groups)
        np.testing.assert_allclose(got[s], pearson_r(Y[s]["test"], alone.predict(X["test"])), rtol=1e-5, atol=1e-6)
        # the predictions behind the scores: each participant's own columns, in the test run's shape
        predicted = encoding.held_out_predictions(X, Y, runs[:3], "test", **kw)[s]
        assert predicted.shape == Y[s]["test"].shape
        np.testing.assert_allclose(predicted, alone.predict(X["test"]), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"missing: \[\('noise', 'test'\)\]"):
        encoding.held_out_scores(X, {**Y, "noise": {r: Y["noise"][r] for r in runs[:3]}}, runs[:3], "test", **kw)


def test_fixed_alphas_reproduce_the_cross_validated_fit():
    rng = np.random.default_rng(3)
    for n_features in (8, 120):  # primal ridge, then kernel ridge (delayed features outnumber samples)
        X = rng.standard_normal((100, n_features))
        Y = X[:, :2] @ rng.standard_normal((2, 5)) + rng.standard_normal((100, 5))
        ref = RidgeEncoder(delays=(0, 1)).fit(X[:80], Y[:80])
        fixed = RidgeEncoder(delays=(0, 1), fixed_alphas=ref.best_alphas_).fit(X[:80], Y[:80])
        np.testing.assert_allclose(fixed.predict(X[80:]), ref.predict(X[80:]), rtol=1e-3, atol=1e-4)
        assert np.isnan(fixed.cv_scores_).all()
    with pytest.raises(ValueError, match="one positive alpha per target"):
        RidgeEncoder(fixed_alphas=[1.0, 2.0]).fit(X, Y)


def test_linear_map_reproduces_predict_for_every_solver():
    rng = np.random.default_rng(5)
    for n_features, extra in ((8, {}), (120, {}), (120, {"fixed_alphas": np.full(4, 10.0)})):
        X = rng.standard_normal((90, n_features)) * 3.0 + 1.0
        Y = X[:, :3] @ rng.standard_normal((3, 4)) * 5.0 + 7.0 + rng.standard_normal((90, 4))
        enc = RidgeEncoder(delays=(0, 1), **extra).fit(X[:70], Y[:70])
        mean, scale, weights, intercept = enc.linear_map()
        Xd = encoding.delay_within_runs(X[70:], (0, 1))
        np.testing.assert_allclose(((Xd - mean) / scale) @ weights + intercept, enc.predict(X[70:]), rtol=1e-3, atol=1e-3)
