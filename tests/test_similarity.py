"""Similarity measures against known answers: invariances, planted rotations, nulls."""

import numpy as np
import pytest

from brainalign import similarity as S


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _rotation(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


# -- PCA ------------------------------------------------------------------------------------------
def test_pca_is_fitted_on_training_data_only(rng):
    train = rng.standard_normal((200, 30)) * np.linspace(5, 0.1, 30)
    test = rng.standard_normal((40, 30))
    a_train, a_test = S.pca_reduce(train, test, n_components=5)
    b_train, b_test = S.pca_reduce(train, test * 100, n_components=5)
    assert a_train.shape == (200, 5) and a_test.shape == (40, 5)
    np.testing.assert_allclose(a_train, b_train)  # the other data never change the components
    # the test data are projected on the training data's mean and components
    u, s, vt = np.linalg.svd(train - train.mean(0), full_matrices=False)
    expected = (test - train.mean(0)) @ vt[:5].T
    np.testing.assert_allclose(np.abs(a_test), np.abs(expected), rtol=1e-4, atol=1e-4)
    assert np.var(a_train[:, 0]) > np.var(a_train[:, 4])


def test_pca_keeps_at_most_the_rank_and_checks_shapes(rng):
    (out,) = S.pca_reduce(rng.standard_normal((10, 4)), n_components=50)
    assert out.shape == (10, 4)
    with pytest.raises(ValueError, match="needs 4 features"):
        S.pca_reduce(rng.standard_normal((10, 4)), rng.standard_normal((3, 5)))
    with pytest.raises(ValueError, match="n_components must be a positive integer"):
        S.pca_reduce(rng.standard_normal((10, 4)), n_components=0)


# -- RSA ------------------------------------------------------------------------------------------
def test_rdm_metrics_and_errors(rng):
    X = rng.standard_normal((6, 3))
    d = S.rdm(X, "euclidean")
    assert d.shape == (6, 6) and np.allclose(d, d.T) and np.allclose(np.diag(d), 0)
    assert np.isclose(d[0, 1], np.linalg.norm(X[0] - X[1]))
    with pytest.raises(ValueError, match=r"unknown RDM metric 'manhattan'; valid: \['correlation'"):
        S.rdm(X, "manhattan")


def test_rsa_of_identical_rdms_is_one_and_significant(rng):
    X = rng.standard_normal((40, 10))
    res = S.rsa(X, 2.0 * X + 1.0, n_permutations=200, seed=1)
    assert res.r == pytest.approx(1.0)
    assert res.p == pytest.approx(1 / 201)
    assert abs(res.null.mean()) < 0.02


def test_rsa_null_for_unrelated_representations(rng):
    X, Y = rng.standard_normal((40, 10)), rng.standard_normal((40, 10))
    res = S.rsa(X, Y, n_permutations=300, seed=0)
    assert abs(res.r) < 0.1
    assert res.p > 0.05
    assert abs(res.null.mean()) < 0.01 and res.null.std() < 0.05


def test_rsa_recovers_a_shared_structure_under_noise(rng):
    X = rng.standard_normal((50, 20))
    Y = X @ rng.standard_normal((20, 30)) + 0.5 * rng.standard_normal((50, 30))
    res = S.rsa(X, Y, metric="euclidean", n_permutations=200)
    assert res.r > 0.5 and res.p < 0.01


def test_rsa_is_deterministic_and_block_null_is_wider_for_smooth_series(rng):
    t = np.arange(120)
    X = np.column_stack([np.sin(t / 8 + k) for k in range(5)]) + 0.1 * rng.standard_normal((120, 5))
    Y = np.column_stack([np.cos(t / 9 + k) for k in range(5)]) + 0.1 * rng.standard_normal((120, 5))
    a = S.rsa(X, Y, n_permutations=100, seed=3)
    b = S.rsa(X, Y, n_permutations=100, seed=3)
    np.testing.assert_array_equal(a.null, b.null)
    blocked = S.rsa(X, Y, n_permutations=100, seed=3, block_size=12)
    assert blocked.null.std() > a.null.std()  # autocorrelated series need the blocked null
    with pytest.raises(ValueError, match="block_size must be an integer in"):
        S.rsa(X, Y, block_size=100)
    with pytest.raises(ValueError, match="unknown method 'kendall'"):
        S.rsa(X, Y, method="kendall")


# -- CKA ------------------------------------------------------------------------------------------
def test_cka_of_a_representation_with_itself_is_one(rng):
    X = rng.standard_normal((30, 8))
    assert S.linear_cka(X, X) == pytest.approx(1.0)
    assert S.linear_cka(X, X, debiased=True) == pytest.approx(1.0)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_rotation_scaling_and_shift(rng, debiased):
    X, Y = rng.standard_normal((60, 12)), rng.standard_normal((60, 7))
    Y = Y + X[:, :7]  # related, so CKA is well away from 0 and 1
    base = S.linear_cka(X, Y, debiased)
    moved = S.linear_cka(3.5 * X @ _rotation(rng, 12) + 2.0, 0.1 * Y @ _rotation(rng, 7) - 1.0, debiased)
    assert moved == pytest.approx(base, rel=1e-9)
    assert 0.2 < base < 0.9
    # but not to an anisotropic scaling
    assert S.linear_cka(X * np.linspace(0.1, 10, 12), Y, debiased) != pytest.approx(base, rel=1e-3)


def test_cka_wide_and_narrow_paths_agree(rng):
    X, Y = rng.standard_normal((20, 5)), rng.standard_normal((20, 40))
    K, L = X - X.mean(0), Y - Y.mean(0)
    expected = np.linalg.norm(L.T @ K) ** 2 / (np.linalg.norm(K.T @ K) * np.linalg.norm(L.T @ L))
    assert S.linear_cka(X, Y) == pytest.approx(expected)


def test_debiased_cka_removes_the_bias_of_many_features(rng):
    X, Y = rng.standard_normal((40, 800)), rng.standard_normal((40, 800))
    assert S.linear_cka(X, Y) > 0.8  # the plain estimate is fooled by features >> stimuli
    assert abs(S.linear_cka(X, Y, debiased=True)) < 0.05


# -- Procrustes -----------------------------------------------------------------------------------
def test_procrustes_recovers_a_planted_rotation(rng):
    X = rng.standard_normal((50, 6))
    Q = _rotation(rng, 6)
    res = S.procrustes(X, 4.0 * X @ Q + 3.0)
    np.testing.assert_allclose(res.rotation, Q, atol=1e-8)
    assert res.score == pytest.approx(1.0) and res.distance == pytest.approx(0.0, abs=1e-6)


def test_procrustes_of_unrelated_data_and_different_widths(rng):
    X, Y = rng.standard_normal((500, 3)), rng.standard_normal((500, 5))
    res = S.procrustes(X, Y)
    assert res.rotation.shape == (5, 5)
    assert res.score < 0.2
    assert res.distance == pytest.approx(np.sqrt(2 - 2 * res.score))
    with pytest.raises(ValueError, match="constant representation"):
        S.procrustes(np.ones((10, 3)), Y[:10])


# -- Gromov-Wasserstein ---------------------------------------------------------------------------
def test_gromov_wasserstein_is_zero_for_isometric_sets_in_any_order(rng):
    X = rng.standard_normal((40, 5))
    Y = 2.0 * X @ _rotation(rng, 5) + 1.0  # scale is divided out
    assert S.gromov_wasserstein(X, Y) == pytest.approx(0.0, abs=1e-8)
    assert S.gromov_wasserstein(X, Y[rng.permutation(40)]) == pytest.approx(0.0, abs=1e-8)


def test_gromov_wasserstein_grows_with_distortion(rng):
    X = rng.standard_normal((60, 2)) * [5.0, 1.0]
    near = S.gromov_wasserstein(X, X + 0.1 * rng.standard_normal(X.shape))
    far = S.gromov_wasserstein(X, rng.standard_normal((60, 2)))
    assert 0 <= near < far


# -- by name --------------------------------------------------------------------------------------
def test_compare_by_name_and_unknown_measure(rng):
    X = rng.standard_normal((30, 4))
    for measure in S.MEASURES:
        value = S.compare(X, X, measure)
        assert value == pytest.approx(0.0 if not S.HIGHER_IS_MORE_SIMILAR[measure] else 1.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"unknown similarity measure 'svcca'; valid: \['rsa', 'cka'"):
        S.compare(X, X, "svcca")
    with pytest.raises(ValueError, match="same stimuli"):
        S.compare(X, X[:20], "cka")
