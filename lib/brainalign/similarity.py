"""Representational similarity between a model and the brain, beyond encoding correlations.

Every measure compares two representations of the *same* stimuli (rows): a
model's features ``X`` of shape (n_stimuli, p) and brain responses ``Y`` of
shape (n_stimuli, q), with ``p`` and ``q`` free to differ.

:func:`pca_reduce`
    Principal components fitted on training data only, then applied to every
    other set (the dimensionality-reduction control of Parra 2025).
:func:`rsa`
    Representational similarity analysis [1]_: the rank correlation of the two
    representational dissimilarity matrices (:func:`rdm`), with a permutation
    null that shuffles stimulus labels (in blocks, for time series).
:func:`linear_cka`
    Linear centered kernel alignment [2]_, and its debiased variant (the
    unbiased HSIC estimator of Song et al. 2012), which is near 0 for
    unrelated representations even when features outnumber stimuli.
:func:`procrustes`
    Orthogonal Procrustes: the best rotation between the centred, unit-norm
    representations (scipy), its residual distance and its score.
:func:`gromov_wasserstein`
    The Gromov-Wasserstein discrepancy [3]_ between the two sets of pairwise
    distances (POT), which compares geometries without a feature mapping.

:func:`compare` runs any of them by name (:data:`MEASURES`); for all but
Gromov-Wasserstein, larger means more similar (:data:`HIGHER_IS_MORE_SIMILAR`).

References
----------
.. [1] Kriegeskorte, N., Mur, M., & Bandettini, P. (2008). Representational
   similarity analysis: connecting the branches of systems neuroscience.
   Frontiers in Systems Neuroscience, 2, 4.
.. [2] Kornblith, S., Norouzi, M., Lee, H., & Hinton, G. (2019). Similarity of
   neural network representations revisited. ICML.
.. [3] Mémoli, F. (2011). Gromov-Wasserstein distances and the metric approach
   to object matching. Foundations of Computational Mathematics, 11, 417-487.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist, squareform
from scipy.stats import rankdata
from sklearn.decomposition import PCA

from . import config

__all__ = [
    "HIGHER_IS_MORE_SIMILAR", "MEASURES", "RDM_METRICS", "ProcrustesResult", "RSAResult", "check_measure", "compare",
    "gromov_wasserstein", "linear_cka", "pca_reduce", "procrustes", "rdm", "rsa",
]

RDM_METRICS = ("correlation", "euclidean", "cosine", "sqeuclidean")


def _pair(X: np.ndarray, Y: np.ndarray, min_rows: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Both representations as finite float64 2-D arrays with the same number of rows."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2:
        raise ValueError(f"X and Y must have shape (n_stimuli, n_features); got {X.shape} and {Y.shape}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} stimuli (rows) but Y has {Y.shape[0]}; they must describe the same stimuli")
    if X.shape[0] < min_rows:
        raise ValueError(f"need at least {min_rows} stimuli (rows), got {X.shape[0]}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(Y))):
        raise ValueError("X and Y must be finite (no nan or inf)")
    return X, Y


# -- dimensionality reduction ----------------------------------------------------------------------
def pca_reduce(
    X_train: np.ndarray, *X_other: np.ndarray, n_components: int = 50, seed: int = 0,
) -> tuple[np.ndarray, ...]:
    """Project data on principal components fitted on the training data only.

    Parameters
    ----------
    X_train : array of shape (n_train, n_features)
        The data the components are fitted on (e.g. the training stories).
    *X_other : arrays of shape (n_i, n_features)
        Further data projected on the same components (e.g. the test story);
        they never influence the fit.
    n_components : int, default=50
        Components kept; at most ``min(n_train, n_features)`` (fewer are kept
        when the data have fewer).
    seed : int
        Seed of the randomised SVD that scikit-learn uses for large inputs.

    Returns
    -------
    tuple of arrays
        ``(X_train_reduced, *X_other_reduced)``, each of shape (n_i, k) with
        ``k = min(n_components, n_train, n_features)``, float32.
    """
    X_train = np.asarray(X_train)
    if X_train.ndim != 2:
        raise ValueError(f"X_train must have shape (n_samples, n_features), got {X_train.shape}")
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components!r}")
    for i, X in enumerate(X_other):
        if np.ndim(X) != 2 or np.shape(X)[1] != X_train.shape[1]:
            raise ValueError(f"X_other[{i}] has shape {np.shape(X)}; it needs {X_train.shape[1]} features like X_train")
    k = int(min(n_components, *X_train.shape))
    pca = PCA(n_components=k, random_state=int(seed)).fit(X_train)
    return tuple(pca.transform(X).astype(np.float32) for X in (X_train, *X_other))


# -- RSA -----------------------------------------------------------------------------------------
def rdm(X: np.ndarray, metric: str = "correlation") -> np.ndarray:
    """Representational dissimilarity matrix of a representation.

    Parameters
    ----------
    X : array of shape (n_stimuli, n_features)
    metric : {"correlation", "euclidean", "cosine", "sqeuclidean"}
        Dissimilarity of two stimuli's patterns (``"correlation"``: 1 - Pearson r
        across features, the usual choice in RSA).

    Returns
    -------
    array of shape (n_stimuli, n_stimuli)
        Symmetric, zero diagonal.
    """
    if metric not in RDM_METRICS:
        raise ValueError(f"unknown RDM metric {metric!r}; valid: {list(RDM_METRICS)}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] < 2:
        raise ValueError(f"X must have shape (n_stimuli >= 2, n_features), got {X.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        d = pdist(X, metric=metric)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"the {metric!r} RDM is undefined for a constant pattern; use metric='euclidean'")
    return squareform(d)


@dataclass(frozen=True)
class RSAResult:
    """The outcome of :func:`rsa`.

    Attributes
    ----------
    r : float
        Correlation of the two RDMs' upper triangles.
    p : float
        One-sided permutation p-value, ``(1 + #{null >= r}) / (1 + n_permutations)``
        (nan without permutations).
    null : array of shape (n_permutations,)
        The correlations under shuffled stimulus labels.
    """

    r: float
    p: float
    null: np.ndarray


def _block_permutation(n: int, block_size: int, gen: np.random.Generator) -> np.ndarray:
    blocks = [np.arange(s, min(s + block_size, n)) for s in range(0, n, block_size)]
    return np.concatenate([blocks[k] for k in gen.permutation(len(blocks))])


def rsa(
    X: np.ndarray,
    Y: np.ndarray,
    metric: str = "correlation",
    method: str = "spearman",
    n_permutations: int = 1000,
    block_size: int = 1,
    seed: int = 0,
) -> RSAResult:
    """Representational similarity analysis with a permutation null.

    The RDM of each representation is computed with ``metric``; the score is
    the correlation of their upper triangles (Spearman by default, as
    Kriegeskorte et al. 2008 recommend). The null distribution relabels the
    stimuli of ``Y`` (rows and columns of its RDM together) at random; with
    ``block_size > 1``, blocks of consecutive stimuli keep their order, as
    fMRI time points must for an honest null (their autocorrelation otherwise
    inflates the score's apparent significance).

    Parameters
    ----------
    X : array of shape (n_stimuli, p)
    Y : array of shape (n_stimuli, q)
    metric : {"correlation", "euclidean", "cosine", "sqeuclidean"}
        See :func:`rdm`.
    method : {"spearman", "pearson"}
        Correlation of the two RDMs.
    n_permutations : int, default=1000
        Shuffles in the null (0: no test).
    block_size : int, default=1
        Consecutive stimuli shuffled together.
    seed : int

    Returns
    -------
    RSAResult
    """
    X, Y = _pair(X, Y, min_rows=3)
    if method not in ("spearman", "pearson"):
        raise ValueError(f"unknown method {method!r}; valid: ['spearman', 'pearson']")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 0:
        raise ValueError(f"n_permutations must be an integer >= 0, got {n_permutations!r}")
    n = X.shape[0]
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or not 1 <= block_size <= n // 2:
        raise ValueError(f"block_size must be an integer in [1, {n // 2}] for {n} stimuli, got {block_size!r}")
    iu = np.triu_indices(n, k=1)
    a, b = rdm(X, metric), rdm(Y, metric)
    if method == "spearman":  # ranks of the entries do not change when the stimuli are relabelled
        a = squareform(rankdata(a[iu]), checks=False)
        b = squareform(rankdata(b[iu]), checks=False)
    va = a[iu] - a[iu].mean()
    va /= np.linalg.norm(va) or 1.0

    def corr(perm: np.ndarray | None) -> float:
        vb = (b if perm is None else b[np.ix_(perm, perm)])[iu]
        vb = vb - vb.mean()
        norm = np.linalg.norm(vb)
        return float(va @ vb / norm) if norm > 0 else 0.0

    r = corr(None)
    gen = config.rng(seed, "rsa")
    null = np.array([corr(_block_permutation(n, int(block_size), gen)) for _ in range(int(n_permutations))])
    p = float((1 + np.sum(null >= r)) / (1 + len(null))) if len(null) else float("nan")
    return RSAResult(r=r, p=p, null=null)


# -- CKA -----------------------------------------------------------------------------------------
def _hsic_unbiased(K: np.ndarray, L: np.ndarray) -> float:
    """The unbiased HSIC estimator of Song et al. (2012) for Gram matrices K, L of shape (n, n), n > 3."""
    n = K.shape[0]
    K = K.copy()
    L = L.copy()
    np.fill_diagonal(K, 0.0)
    np.fill_diagonal(L, 0.0)
    ones_k, ones_l = K.sum(0), L.sum(0)
    value = np.sum(K * L) + ones_k.sum() * ones_l.sum() / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ones_k @ ones_l)
    return float(value / (n * (n - 3)))


def linear_cka(X: np.ndarray, Y: np.ndarray, debiased: bool = False) -> float:
    """Linear centered kernel alignment (Kornblith et al. 2019).

    With ``X`` and ``Y`` centred on their columns,
    ``CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``: 1 for representations
    equal up to a rotation and an isotropic scaling, near 0 for unrelated ones
    when stimuli far outnumber features. With few stimuli and many features
    the plain estimate is biased upwards; ``debiased=True`` replaces each
    HSIC term by its unbiased estimator (Song et al. 2012), which can go
    slightly below 0.

    Parameters
    ----------
    X : array of shape (n_stimuli, p)
    Y : array of shape (n_stimuli, q)
    debiased : bool
        Use the unbiased HSIC estimator (needs more than 3 stimuli).

    Returns
    -------
    float
        In [0, 1] (debiased: at most 1).
    """
    X, Y = _pair(X, Y, min_rows=4 if debiased else 2)
    X = X - X.mean(0)
    Y = Y - Y.mean(0)
    if debiased:
        K, L = X @ X.T, Y @ Y.T
        kk, ll = _hsic_unbiased(K, K), _hsic_unbiased(L, L)
        if kk <= 0 or ll <= 0:
            return 0.0
        return _hsic_unbiased(K, L) / np.sqrt(kk * ll)
    if X.shape[1] > X.shape[0] or Y.shape[1] > Y.shape[0]:  # cheaper through the Gram matrices
        K, L = X @ X.T, Y @ Y.T
        num, den = np.sum(K * L), np.linalg.norm(K) * np.linalg.norm(L)
    else:
        num = np.linalg.norm(Y.T @ X) ** 2
        den = np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y)
    return float(num / den) if den > 0 else 0.0


# -- Procrustes ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProcrustesResult:
    """The outcome of :func:`procrustes`.

    Attributes
    ----------
    score : float
        Sum of the singular values of ``Xn^T Yn`` (the centred, unit-Frobenius-norm
        representations, the narrower one padded with zero columns): 1 when
        ``Y`` is a rotated, scaled and shifted copy of ``X``, 0 when no
        rotation aligns them at all.
    distance : float
        ``min_R ||Xn R - Yn||_F = sqrt(2 - 2 score)``, in [0, sqrt(2)].
    rotation : array of shape (d, d), d = max(p, q)
        The orthogonal ``R`` that attains it.
    """

    score: float
    distance: float
    rotation: np.ndarray


def procrustes(X: np.ndarray, Y: np.ndarray) -> ProcrustesResult:
    """Orthogonal Procrustes alignment of two representations of the same stimuli.

    Both are centred and scaled to unit Frobenius norm; the narrower one is
    padded with zero columns; :func:`scipy.linalg.orthogonal_procrustes` finds
    the rotation ``R`` minimising ``||Xn R - Yn||_F``.

    With more features than stimuli almost any two representations can be
    rotated onto each other; reduce them first (:func:`pca_reduce`).

    Parameters
    ----------
    X : array of shape (n_stimuli, p)
    Y : array of shape (n_stimuli, q)

    Returns
    -------
    ProcrustesResult
    """
    X, Y = _pair(X, Y)
    Xn, Yn = X - X.mean(0), Y - Y.mean(0)
    nx, ny = np.linalg.norm(Xn), np.linalg.norm(Yn)
    if nx == 0 or ny == 0:
        raise ValueError("a constant representation has no shape to align")
    Xn, Yn = Xn / nx, Yn / ny
    d = max(Xn.shape[1], Yn.shape[1])
    Xn = np.pad(Xn, ((0, 0), (0, d - Xn.shape[1])))
    Yn = np.pad(Yn, ((0, 0), (0, d - Yn.shape[1])))
    R, score = orthogonal_procrustes(Xn, Yn)
    score = float(min(score, 1.0))
    return ProcrustesResult(score=score, distance=float(np.sqrt(max(2.0 - 2.0 * score, 0.0))), rotation=R)


# -- Gromov-Wasserstein ----------------------------------------------------------------------------
def gromov_wasserstein(X: np.ndarray, Y: np.ndarray, metric: str = "euclidean", max_iter: int = 1000) -> float:
    """Gromov-Wasserstein discrepancy between the geometries of two representations (POT).

    Each representation becomes its matrix of pairwise ``metric`` distances,
    divided by its mean so that scale does not count; POT's
    ``ot.gromov.gromov_wasserstein2`` (square loss, uniform weights) then
    finds the soft matching of stimuli that best preserves distances. The
    stimulus pairing is *not* imposed: the discrepancy asks whether the two
    sets have the same shape. 0 for isometric sets; larger is less similar.
    The solver (conditional gradient from the independent coupling) is
    deterministic but finds a local optimum.

    Parameters
    ----------
    X : array of shape (n_stimuli, p)
    Y : array of shape (n_stimuli, q)
    metric : {"correlation", "euclidean", "cosine", "sqeuclidean"}
    max_iter : int
        Iterations of the solver.

    Returns
    -------
    float
        The GW discrepancy (squared-loss objective at the optimum found).
    """
    import ot

    X, Y = _pair(X, Y, min_rows=3)
    C1, C2 = rdm(X, metric), rdm(Y, metric)
    for C, name in ((C1, "X"), (C2, "Y")):
        if C.mean() == 0:
            raise ValueError(f"{name} has all stimuli at the same point; its geometry is empty")
    C1, C2 = C1 / C1.mean(), C2 / C2.mean()
    n = X.shape[0]
    w = np.full(n, 1.0 / n)
    return float(ot.gromov.gromov_wasserstein2(C1, C2, w, w, loss_fun="square_loss", max_iter=int(max_iter)))


# -- by name ---------------------------------------------------------------------------------------
#: name -> function(X, Y, seed) returning one number
MEASURES: dict[str, Callable[..., float]] = {
    "rsa": lambda X, Y, seed=0: rsa(X, Y, n_permutations=0, seed=seed).r,
    "cka": lambda X, Y, seed=0: linear_cka(X, Y),
    "cka_debiased": lambda X, Y, seed=0: linear_cka(X, Y, debiased=True),
    "procrustes": lambda X, Y, seed=0: procrustes(X, Y).score,
    "gromov_wasserstein": lambda X, Y, seed=0: gromov_wasserstein(X, Y),
}

#: whether a larger value of a measure means more similar
HIGHER_IS_MORE_SIMILAR = {"rsa": True, "cka": True, "cka_debiased": True, "procrustes": True, "gromov_wasserstein": False}


def check_measure(measure: str) -> str:
    """``measure`` if it is a name of :data:`MEASURES`, else a ValueError listing the valid ones."""
    if measure not in MEASURES:
        raise ValueError(f"unknown similarity measure {measure!r}; valid: {list(MEASURES)}")
    return measure


def compare(X: np.ndarray, Y: np.ndarray, measure: str, seed: int = 0) -> float:
    """One similarity measure between two representations of the same stimuli, by name.

    Parameters
    ----------
    X : array of shape (n_stimuli, p)
    Y : array of shape (n_stimuli, q)
    measure : str
        A name of :data:`MEASURES`: ``"rsa"`` (Spearman r of correlation-distance
        RDMs), ``"cka"``, ``"cka_debiased"``, ``"procrustes"`` (score) or
        ``"gromov_wasserstein"`` (a discrepancy: lower is more similar).
    seed : int

    Returns
    -------
    float
    """
    return float(MEASURES[check_measure(measure)](X, Y, seed=seed))
