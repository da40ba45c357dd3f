"""Removing a linguistic property from model representations.

Three ways, all fitted on training words only and then applied to any words:

``RidgeRemoval`` (Oota et al. 2023)
    Ridge regression (with an intercept) from the property's one-hot labels
    to the features; the residual ``X - onehot(y) W`` replaces the features.
    It takes out every direction along which the classes' mean features
    differ, so no linear probe of the class means is left on the training
    words. The intercept (the features' grand mean) stays: it says nothing
    about the property, and resampled to TRs it carries the word rate, which
    a removal that also centred the features would take away from every
    property alike.
``INLP`` (Ravfogel et al. 2020)
    Iterative null-space projection: train a linear classifier, project the
    features onto the null space of its weights, repeat until a fresh
    classifier is no better than the majority class on held-out words. The
    result is one projection matrix, applied without labels.
``random_labels``
    The control: the same removal with labels permuted across sentences
    (same number of classes, same class sizes, same sentence structure, no
    relation to the property). A real removal must lower alignment more.

:func:`residuals` runs a method and caches the result on disk, keyed by the
features, labels and parameters, so later studies reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from .cache import Cache
from .probing import GramRidgeClassifier

__all__ = ["METHODS", "RidgeRemoval", "INLP", "random_labels", "residuals", "check_method", "make_remover"]

#: removal methods of :func:`residuals`
METHODS = ("ridge", "inlp")
#: bump when a method's numbers change
VERSION = 2


def check_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS`; otherwise a ValueError that lists them."""
    if method not in METHODS:
        raise ValueError(f"unknown removal method {method!r}; valid methods: {list(METHODS)}")
    return method


def make_remover(method: str, **params: object) -> RidgeRemoval | INLP:
    """An unfitted remover: ``"ridge"`` -> :class:`RidgeRemoval`, ``"inlp"`` -> :class:`INLP`."""
    return (RidgeRemoval if check_method(method) == "ridge" else INLP)(**params)


def _onehot(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """One-hot rows; a class not seen in fit gets a row of zeros (nothing class-specific is removed)."""
    return (np.asarray(labels)[:, None] == classes[None, :]).astype(np.float64)


class RidgeRemoval(TransformerMixin, BaseEstimator):
    """Remove what the property's one-hot labels predict of the features.

    Parameters
    ----------
    alphas : sequence of float
        Ridge penalties; each feature dimension picks its own by efficient
        leave-one-out (as the study chose a penalty per dimension).

    Attributes
    ----------
    classes_ : array of shape (n_classes,)
    model_ : sklearn.linear_model.RidgeCV
        The fitted map from one-hot labels to features.
    offset_ : array of shape (n_features,)
        Mean over the training words of the removed part (added back, so
        the training words' mean is unchanged).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.choice(["a", "b"], 200)
    >>> X = rng.standard_normal((200, 5)) + 3.0 * (y == "a")[:, None]
    >>> R = RidgeRemoval().fit(X, y).transform(X, y)
    >>> bool(abs(R[y == "a"].mean() - R[y == "b"].mean()) < 0.05)
    True
    """

    def __init__(self, alphas: Sequence[float] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)):
        self.alphas = alphas

    def fit(self, X: np.ndarray, labels: np.ndarray) -> RidgeRemoval:
        """Fit the label -> feature map on training words: X (n_words, n_features), labels (n_words,)."""
        from sklearn.linear_model import RidgeCV

        X, labels = _check(X, labels)
        self.classes_ = np.unique(labels)
        onehot = _onehot(labels, self.classes_)
        self.model_ = RidgeCV(alphas=np.asarray(self.alphas), alpha_per_target=True).fit(onehot, X)
        self.offset_ = (onehot @ self.model_.coef_.T).mean(0)  # so the training words keep their mean
        return self

    def transform(self, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Residual features, array of shape (n_words, n_features); needs each word's label."""
        X, labels = _check(X, labels)
        return (X - _onehot(labels, self.classes_) @ self.model_.coef_.T + self.offset_).astype(np.float32)

    def fit_transform(self, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return self.fit(X, labels).transform(X, labels)


class INLP(TransformerMixin, BaseEstimator):
    """Iterative null-space projection (Ravfogel et al. 2020).

    Each iteration fits a linear classifier (standardised ridge classifier
    with balanced class weights, one weight vector per class) on the projected
    training features, and adds its weight vectors to the removed subspace.
    It stops when a classifier's balanced accuracy on held-out training words
    (every ``1 / dev_fraction``-th block of 50 consecutive words, so that the
    held-out words span the whole text) is within ``tol`` of chance
    (1 / n_classes), or after ``max_iterations``. Balanced accuracy,
    because with unequal classes plain accuracy sits at the majority share
    while the features still separate the classes.

    Parameters
    ----------
    max_iterations : int
    tol : float
        Balanced accuracy above chance that counts as "no information left".
    dev_fraction : float
        Share of the training words held out to decide when to stop.
    alpha : float
        Penalty of each iteration's ridge classifier.

    Attributes
    ----------
    projection_ : array of shape (n_features, n_features)
        Orthogonal projection onto the null space of every classifier found.
    mean_ : array of shape (n_features,)
        Training mean (the projection acts on centred features; the mean is added back).
    n_iterations_ : int
    dev_accuracy_ : list of float
        Held-out balanced accuracy of each iteration's classifier (before its directions were removed).
    baseline_ : float
        Chance level of balanced accuracy, 1 / n_classes.
    """

    def __init__(self, max_iterations: int = 20, tol: float = 0.01, dev_fraction: float = 0.2, alpha: float = 1.0):
        self.max_iterations = max_iterations
        self.tol = tol
        self.dev_fraction = dev_fraction
        self.alpha = alpha

    def fit(self, X: np.ndarray, labels: np.ndarray) -> INLP:
        """Find the projection on training words: X (n_words, n_features), labels (n_words,)."""
        from sklearn.metrics import balanced_accuracy_score

        X, labels = _check(X, labels)
        n, d = X.shape
        if not 0 < self.dev_fraction < 1:
            raise ValueError(f"dev_fraction={self.dev_fraction} must be in (0, 1)")
        dev = (np.arange(n) // 50) % int(round(1 / self.dev_fraction)) == 0
        fit_ = ~dev
        if not dev.any() or not fit_.any():
            raise ValueError(f"{n} words are too few to hold out {self.dev_fraction:.0%} of them in blocks of 50")
        self.mean_ = X[fit_].mean(0)
        scale = X[fit_].std(0) + 1e-8
        Z = (X - self.mean_) / scale  # whitened coordinates: classifiers see every dimension equally
        self.baseline_ = 1.0 / len(np.unique(labels[fit_]))
        ridge = GramRidgeClassifier(Z[fit_], labels[fit_], self.alpha, balanced=True)
        basis = np.zeros((d, 0))
        self.dev_accuracy_ = []
        for _ in range(int(self.max_iterations)):
            W = ridge.fit(basis)  # the classifier of the features projected off ``basis``
            acc = float(balanced_accuracy_score(labels[dev], ridge.predict(Z[dev])))
            self.dev_accuracy_.append(acc)
            if acc <= self.baseline_ + self.tol:
                break
            W = W - (W @ basis) @ basis.T
            q, r = np.linalg.qr(W.T)
            q = q[:, np.abs(np.diag(r)) > 1e-8 * max(1.0, np.abs(r).max())]
            basis = np.linalg.qr(np.column_stack([basis, q]))[0] if q.size else basis
        self.n_iterations_ = len(self.dev_accuracy_)
        # back in the features' own coordinates: x -> mean + S (I - B B^T) S^-1 (x - mean)
        self.projection_ = (np.eye(d) - basis @ basis.T) / scale[:, None] * scale[None, :]
        self.rank_removed_ = basis.shape[1]
        return self

    def transform(self, X: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
        """Projected features, array of shape (n_words, n_features) (labels are not needed)."""
        X = np.asarray(X, dtype=np.float64)
        return (self.mean_ + (X - self.mean_) @ self.projection_).astype(np.float32)

    def fit_transform(self, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return self.fit(X, labels).transform(X)


def _check(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    labels = np.asarray(labels)
    if X.ndim != 2 or labels.shape != (X.shape[0],):
        raise ValueError(f"X must be (n_words, n_features) and labels (n_words,), got {X.shape} and {labels.shape}")
    return X, labels


def random_labels(labels: np.ndarray, sentences: np.ndarray, seed: int = 0) -> np.ndarray:
    """The control labels: each sentence's label given to another sentence, at random.

    Parameters
    ----------
    labels : array of shape (n_words,)
        A sentence-level label of every word.
    sentences : array of shape (n_words,)
        Sentence id of every word.
    seed : int

    Returns
    -------
    array of shape (n_words,): the same classes and class sizes per sentence,
    unrelated to the property.
    """
    labels, sentences = np.asarray(labels), np.asarray(sentences)
    ids, first, inverse = np.unique(sentences, return_index=True, return_inverse=True)
    shuffled = np.random.default_rng(seed).permutation(labels[first])
    return shuffled[inverse]


def residuals(
    method: str,
    X: np.ndarray,
    labels: np.ndarray,
    train: np.ndarray,
    cache: bool = True,
    **params: object,
) -> np.ndarray:
    """Features with a property removed, the removal fitted on the ``train`` words only.

    Parameters
    ----------
    method : {"ridge", "inlp"}
    X : array of shape (n_words, n_features)
        Features of every word (training and held-out).
    labels : array of shape (n_words,)
        The property's class of every word.
    train : array of bool, shape (n_words,)
        Words the removal is fitted on.
    cache : bool
        Read and write the on-disk cache.
    **params
        Parameters of :class:`RidgeRemoval` or :class:`INLP`.

    Returns
    -------
    array of float32, shape (n_words, n_features)
    """
    check_method(method)
    X = np.asarray(X, dtype=np.float32)
    labels = np.asarray(labels).astype(str)
    train = np.asarray(train, dtype=bool)
    if train.shape != labels.shape or X.shape[0] != labels.shape[0]:
        raise ValueError(f"X {X.shape}, labels {labels.shape} and train {train.shape} must have one row per word")

    def compute() -> dict[str, np.ndarray]:
        remover = make_remover(method, **params).fit(X[train], labels[train])
        return {"residuals": remover.transform(X, labels)}

    if not cache:
        return compute()["residuals"]
    parts = {"method": method, "X": X, "labels": labels, "train": train, "params": dict(params)}
    return Cache().memoize("residuals", VERSION, parts, compute)["residuals"]
