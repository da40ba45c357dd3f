"""Property labels, probes, SentEval files, and the three removals (ridge residuals, INLP, random control)."""

import numpy as np
import pandas as pd
import pytest

from brainalign import probing, removal
from brainalign.cache import Cache


def _planted(n=1200, d=20, seed=0):
    """Words in sentences of 12; a 3-class sentence property written into two feature directions."""
    rng = np.random.default_rng(seed)
    sentences = np.repeat(np.arange(n // 12), 12)
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, n // 12)][sentences]
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 3.0, d)  # unequal scales: INLP must undo its whitening
    X[:, 0] += 2.0 * (labels == "a")
    X[:, 1] += 2.0 * (labels == "b")
    return X, labels, sentences


def test_a_planted_property_is_probed_and_both_removals_bring_the_probe_to_baseline():
    X, y, _ = _planted()
    before = probing.probe_accuracy(X, y, gap=5)
    assert before["accuracy"] > before["baseline"] + 0.3
    for method in removal.METHODS:
        after = probing.probe_accuracy(X, y, gap=5, remover=removal.make_remover(method))
        assert after["accuracy"] <= after["baseline"] + 0.05, (method, after)
        assert abs(after["balanced"] - after["chance"]) < 0.06, (method, after)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_probe_is_scikit_learns_standardised_ridge_classifier(n_classes):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from brainalign.encoding import contiguous_folds

    X, y, _ = _planted(seed=1)
    X[:, 2] += 0.5 * np.sin(np.arange(len(X)) / 7)  # something the probe gets partly right
    if n_classes == 2:
        y = np.where(y == "c", "a", y)
    predicted, _ = probing.probe_predictions(X, y, gap=5, alpha=10.0)
    expected = np.empty_like(y)
    for train, test in contiguous_folds(len(y), 5, 5):
        expected[test] = make_pipeline(StandardScaler(), RidgeClassifier(alpha=10.0)).fit(X[train], y[train]).predict(X[test])
    assert (predicted == expected).all()
    assert 0.5 < (predicted == y).mean() < 1  # neither trivial nor perfect


def _inlp_with_sklearn(X, labels, alpha=1.0, max_iterations=20, tol=0.01):
    """INLP's loop written with scikit-learn's RidgeClassifier refitted on the projected features at every step."""
    from sklearn.linear_model import RidgeClassifier
    from sklearn.metrics import balanced_accuracy_score

    dev = (np.arange(len(X)) // 50) % 5 == 0
    Z = (X - X[~dev].mean(0)) / (X[~dev].std(0) + 1e-8)
    basis, accuracies = np.zeros((X.shape[1], 0)), []
    for _ in range(max_iterations):
        Zp = Z - (Z @ basis) @ basis.T
        clf = RidgeClassifier(alpha=alpha, class_weight="balanced").fit(Zp[~dev], labels[~dev])
        accuracies.append(balanced_accuracy_score(labels[dev], clf.predict(Zp[dev])))
        if accuracies[-1] <= 1 / len(np.unique(labels[~dev])) + tol:
            break
        W = np.atleast_2d(clf.coef_)
        W = W - (W @ basis) @ basis.T
        q, r = np.linalg.qr(W.T)
        q = q[:, np.abs(np.diag(r)) > 1e-8 * max(1.0, np.abs(r).max())]
        basis = np.linalg.qr(np.column_stack([basis, q]))[0] if q.size else basis
    return basis, accuracies


@pytest.mark.parametrize("n_classes", [2, 3])
def test_inlp_finds_what_refitting_scikit_learn_classifiers_finds(n_classes):
    """INLP's classifiers come from one Gram matrix; they are scikit-learn's RidgeClassifier, refitted at every step."""
    X, y, _ = _planted()
    if n_classes == 2:
        y = np.where(y == "c", "a", y)
    basis, accuracies = _inlp_with_sklearn(X, y)
    inlp = removal.INLP().fit(X, y)
    np.testing.assert_allclose(inlp.dev_accuracy_, accuracies, atol=1e-12)
    assert inlp.rank_removed_ == basis.shape[1] >= 1
    scale = X[(np.arange(len(X)) // 50) % 5 != 0].std(0) + 1e-8
    np.testing.assert_allclose(inlp.projection_, (np.eye(X.shape[1]) - basis @ basis.T) / scale[:, None] * scale[None, :],
                               atol=1e-8)


def test_a_class_alone_in_its_training_words_is_predicted_and_inlp_removes_nothing():
    """A rare class can be absent from a fold: trained on one class, the classifier predicts it, and INLP stops at once."""
    X, _, _ = _planted()
    one = np.full(len(X), "a")
    clf = probing.GramRidgeClassifier(X, one, alpha=1.0, balanced=True)
    clf.fit()
    assert (clf.predict(X[:7]) == "a").all()
    inlp = removal.INLP().fit(X, one)
    assert inlp.rank_removed_ == 0 and inlp.n_iterations_ == 1
    np.testing.assert_allclose(inlp.transform(X), X, rtol=1e-5, atol=1e-4)


def test_ridge_removal_keeps_the_grand_mean_and_inlp_is_a_projection():
    X, y, _ = _planted()
    R = removal.RidgeRemoval().fit(X, y).transform(X, y)
    np.testing.assert_allclose(R.mean(0), X.mean(0), atol=1e-4)
    for c in "abc":  # class means equalised
        np.testing.assert_allclose(R[y == c].mean(0), R.mean(0), atol=0.1)
    inlp = removal.INLP().fit(X, y)
    P = inlp.projection_
    np.testing.assert_allclose(P @ P, P, atol=1e-8)  # idempotent
    assert 1 <= inlp.rank_removed_ < X.shape[1]
    Z = inlp.transform(X)
    np.testing.assert_allclose(inlp.transform(Z), Z, atol=1e-4)  # projecting twice changes nothing


def test_random_labels_keep_classes_and_sentences_but_not_the_property():
    X, y, sentences = _planted()
    r = removal.random_labels(y, sentences, seed=1)
    assert sorted(np.unique(r)) == sorted(np.unique(y))
    assert (pd.Series(r).groupby(sentences).nunique() == 1).all()  # one label per sentence
    np.testing.assert_array_equal(np.sort(r), np.sort(y))  # same class sizes
    assert np.mean(r == y) < 0.6
    np.testing.assert_array_equal(r, removal.random_labels(y, sentences, seed=1))


def test_residuals_are_fitted_on_training_words_and_cached(tmp_path, monkeypatch):
    """The residuals are written to the cache's residuals entry of their inputs, and a second call reads them back."""
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path))
    X, y, _ = _planted()
    train = np.arange(len(y)) < 900
    R = removal.residuals("ridge", X, y, train)
    expected = removal.RidgeRemoval().fit(X[train], y[train]).transform(X, y)
    np.testing.assert_allclose(R, expected, rtol=1e-5, atol=1e-5)
    parts = {"method": "ridge", "X": X.astype(np.float32), "labels": y.astype(str), "train": train, "params": {}}
    key = Cache.key("residuals", removal.VERSION, parts)
    assert sorted(p.name for p in (tmp_path / "cache" / "residuals").iterdir()) == [f"{key}.npz", f"{key}.sha256"]
    stored = Cache(tmp_path / "cache").get("residuals", key)
    assert list(stored) == ["residuals"]
    np.testing.assert_array_equal(stored["residuals"], R)

    def refuse(*args, **kwargs):
        raise AssertionError("the removal was fitted again although its residuals are cached")

    monkeypatch.setattr(removal, "make_remover", refuse)
    again = removal.residuals("ridge", X, y, train)
    assert again.dtype == R.dtype
    np.testing.assert_array_equal(again, R)
    with pytest.raises(AssertionError, match="fitted again"):  # other training words, other entry
        removal.residuals("ridge", X, y, np.arange(len(y)) < 800)


def test_bad_methods_and_properties_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown removal method 'pca'.*\['ridge', 'inlp'\]"):
        removal.make_remover("pca")
    with pytest.raises(ValueError, match=r"unknown property 'mood'.*tree_depth"):
        probing.check_properties(["mood"])


def test_the_studys_classes_are_its_fixed_bins():
    ann = pd.DataFrame({"sentence_length": [1, 4, 5, 8, 9, 30], "tree_depth": [2, 5, 6, 7, 7, 12],
                        "top_constituents": ["NP_VP", "NP_VP_NP", "ADVP_NP_VP", "VP", "NP_VP", "NP_VP"],
                        "np_vp": [True, True, False, False, True, True],
                        "tense": ["PAST", "PRES"] * 3, "subject_number": ["NN"] * 6,
                        "object_number": ["NNS", "NONE", "NN", "NNS", "NONE", "NN"]})
    study = probing.property_labels(ann, classes="study")
    assert list(study["sentence_length"]) == ["1-4", "1-4", "5-8", "5-8", "9+", "9+"]
    assert list(study["tree_depth"]) == ["1-5", "1-5", "6", "7+", "7+", "7+"]
    assert list(study["top_constituents"]) == ["NP_VP", "NP_VP", "OTHER", "OTHER", "NP_VP", "NP_VP"]
    assert list(study["tense"]) == list(ann["tense"])
    # the study's two number classes: a sentence without an object ("He shrugs.") is in the singular's
    assert list(study["object_number"]) == ["NNS", "NN", "NN", "NNS", "NN", "NN"]
    assert list(probing.property_labels(ann)["object_number"]) == list(ann["object_number"])
    # the default fits its classes to the words: three about equal bins, the most frequent patterns
    fitted = probing.property_labels(ann)
    assert list(fitted["sentence_length"]) == ["1-4", "1-4", "5-8", "5-8", "9-30", "9-30"]
    assert set(fitted["top_constituents"]) == set(ann["top_constituents"])
    with pytest.raises(ValueError, match=r"unknown class scheme 'fixed'.*\['quantiles', 'study'\]"):
        probing.property_labels(ann, classes="fixed")
    with pytest.raises(ValueError, match="np_vp column"):
        probing.property_labels(ann.drop(columns="np_vp"), ["top_constituents"], classes="study")


def test_labels_and_senteval_files(tmp_path):
    words = {"one": "The old man saw the whales. They swam away quickly.".split(),
             "two": "Ships sailed. A sailor sings songs to the crew every night.".split()}
    ann = probing.annotate_runs(words)
    assert ann["sentence"].nunique() == 4 and list(ann["run"].unique()) == ["one", "two"]
    labels = probing.property_labels(ann, n_bins=2)
    assert set(labels.columns) == set(probing.PROPERTIES)
    assert labels["tense"].isin(["PAST", "PRES"]).all()
    assert labels.groupby(ann["sentence"]).nunique().max().max() == 1  # sentence-level labels
    paths = probing.write_senteval(tmp_path, ann, labels, {"one": "tr", "two": "te"})
    lines = (tmp_path / "past_present.txt").read_text().splitlines()
    assert len(paths) == 6 and len(lines) == 4
    split, label, sentence = lines[0].split("\t")
    assert (split, label, sentence) == ("tr", "PAST", "The old man saw the whales.")
    assert lines[-1].startswith("te\tPRES\tA sailor sings")
    with pytest.raises(ValueError, match="unknown SentEval split"):
        probing.write_senteval(tmp_path, ann, labels, {"one": "train", "two": "te"})
