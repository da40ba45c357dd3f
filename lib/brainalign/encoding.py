"""Voxelwise encoding models: delayed features, ridge regression, scores.

A voxelwise encoding model predicts each brain target (voxel, vertex or
region) as a linear function of stimulus features. The haemodynamic response
is slow, so the features are copied at a few delays (a finite impulse response,
``delays=(1, 2, 3, 4)`` samples) before the fit. :class:`RidgeEncoder` then
z-scores features and targets on the training data, and fits a ridge
regression with one regularisation strength per target, chosen by
cross-validation over contiguous blocks of time (:func:`contiguous_folds`),
with himalaya [1]_. Models are scored with the Pearson correlation between
predicted and measured responses on held-out data (:func:`pearson_r`,
:func:`cross_validated_scores`; :func:`held_out_scores` and
:func:`held_out_predictions` for several participants who heard the same
stimulus).

The computations run on a himalaya backend: ``"torch"`` on the CPU when torch
can be imported (about 1.5x faster than ``"numpy"`` on the machines we
measured), else ``"numpy"``; ``"torch_cuda"`` on a GPU, which ``"auto"`` picks
when the library's device is the GPU (``config.device()``, e.g. on Colab's GPU
runtime). Whatever the backend,
every function here takes and returns numpy arrays.

The module is longer than most (about 680 lines) because :class:`RidgeEncoder`, a
scikit-learn estimator with its backends, folds and fixed-alpha path, is one piece of about
300 lines.

References
----------
.. [1] Dupré la Tour, T., Eickenberg, M., Nunez-Elizalde, A. O., & Gallant,
   J. L. (2022). Feature-space selection with banded ridge regression.
   NeuroImage, 264, 119728.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import scipy.linalg
from himalaya import backend as hbackend
from himalaya.kernel_ridge import KernelRidgeCV
from himalaya.ridge import RidgeCV
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from . import config
from .stimuli import make_delayed

__all__ = [
    "BACKENDS",
    "DEFAULT_ALPHAS",
    "RidgeEncoder",
    "contiguous_folds",
    "cross_validated_scores",
    "delay_within_runs",
    "held_out_predictions",
    "held_out_scores",
    "pearson_r",
    "resolve_backend",
    "set_backend",
    "use_backend",
]

#: The default grid of ridge regularisation strengths, ``np.logspace(-1, 6, 15)``
#: (a tuple, so that scikit-learn can compare and print the default).
DEFAULT_ALPHAS = tuple(float(a) for a in np.logspace(-1, 6, 15))

#: The backend names accepted by :func:`set_backend` and :class:`RidgeEncoder`.
BACKENDS = ("auto", "numpy", "torch", "torch_cuda")

# Working-memory budget (bytes) of one batch of targets inside himalaya.
_BATCH_BYTES = 256 * 2**20


# -- scores --------------------------------------------------------------------
def pearson_r(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Column-wise Pearson correlation between measured and predicted responses.

    Parameters
    ----------
    y_true : array of shape (n_samples, n_targets) or (n_samples,)
        Measured responses.
    y_pred : array of shape (n_samples, n_targets) or (n_samples,)
        Predicted responses.

    Returns
    -------
    r : array of shape (n_targets,), or a 0-d array for 1-D inputs
        Correlation of each column of ``y_true`` with the same column of
        ``y_pred``. A column that is constant in either input gives 0, not nan.
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"y_true has shape {a.shape} but y_pred has shape {b.shape}; they must match")
    if a.ndim not in (1, 2) or a.shape[0] < 2:
        raise ValueError(f"expected arrays of shape (n_samples,) or (n_samples, n_targets) with n_samples >= 2, got {a.shape}")
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = (a * b).sum(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    # An exactly constant column can leave rounding residue after centring:
    # test constancy on the raw values, not on the residue.
    constant = (np.ptp(y_true, axis=0) == 0) | (np.ptp(y_pred, axis=0) == 0) | (den == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(constant, 0.0, num / np.where(den == 0, 1.0, den))
    return np.clip(r, -1.0, 1.0)


# -- cross-validation ----------------------------------------------------------
def contiguous_folds(n_samples: int, n_folds: int = 5, gap: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split ``range(n_samples)`` into contiguous test blocks with a gap around each.

    Fold ``k`` tests on the ``k``-th of ``n_folds`` contiguous blocks (sizes
    differ by at most one) and trains on every other sample except the
    ``gap`` samples on each side of the block, so that training samples are
    never autocorrelated neighbours of test samples.

    Parameters
    ----------
    n_samples : int
        Number of samples (time points).
    n_folds : int, default=5
        Number of folds, at least 2.
    gap : int, default=5
        Samples dropped from the training set on each side of the test block.

    Returns
    -------
    folds : list of (train, test) tuples of int arrays
        One ``(train, test)`` pair per fold; the test blocks cover every
        sample exactly once, in order.
    """
    for name, value in (("n_samples", n_samples), ("n_folds", n_folds), ("gap", gap)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name}={value!r} must be an integer")  # noqa: TRY004 - the project raises ValueError for bad input
    if n_folds < 2:
        raise ValueError(f"n_folds={n_folds} must be at least 2")
    if gap < 0:
        raise ValueError(f"gap={gap} must be >= 0")
    if n_samples < n_folds:
        raise ValueError(f"n_samples={n_samples} is smaller than n_folds={n_folds}")
    index = np.arange(n_samples)
    folds = []
    for test in np.array_split(index, n_folds):
        excluded = (index >= test[0] - gap) & (index <= test[-1] + gap)
        train = index[~excluded]
        if train.size == 0:
            raise ValueError(
                f"gap={gap} leaves no training samples with n_samples={n_samples} and n_folds={n_folds}; "
                "use a smaller gap or more samples"
            )
        folds.append((train, test))
    return folds


# -- backends ------------------------------------------------------------------
def resolve_backend(name: str = "auto") -> str:
    """The himalaya backend that ``name`` stands for.

    Parameters
    ----------
    name : {"auto", "numpy", "torch", "torch_cuda"}
        ``"auto"`` is ``"torch_cuda"`` when :func:`brainalign.config.device`
        is ``"cuda"``, else ``"torch"`` (on the CPU) when torch can be
        imported, else ``"numpy"``.

    Returns
    -------
    backend : str
        ``"numpy"``, ``"torch"`` or ``"torch_cuda"``.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend={name!r} is not one of {BACKENDS}")
    if name == "auto":
        if importlib.util.find_spec("torch") is None:
            return "numpy"
        return "torch_cuda" if config.device() == "cuda" else "torch"
    return name


def set_backend(name: str = "auto") -> str:
    """Set himalaya's global backend and return its resolved name.

    Parameters
    ----------
    name : {"auto", "numpy", "torch", "torch_cuda"}
        See :func:`resolve_backend`.

    Returns
    -------
    backend : str
        The backend now in use.
    """
    resolved = resolve_backend(name)
    hbackend.set_backend(resolved, on_error="raise")
    return resolved


@contextlib.contextmanager
def use_backend(name: str = "auto") -> Iterator[object]:
    """Use a himalaya backend inside a ``with`` block, then restore the previous one.

    Yields the backend module.
    """
    previous = hbackend.get_backend().name
    set_backend(name)
    try:
        yield hbackend.get_backend()
    finally:
        hbackend.set_backend(previous)


# -- delays ----------------------------------------------------------------------
def _segments(runs: np.ndarray) -> list[slice]:
    """Slices of the contiguous stretches of equal run labels."""
    change = np.flatnonzero(runs[1:] != runs[:-1]) + 1
    bounds = np.concatenate([[0], change, [len(runs)]])
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]


def _check_delays(delays: Sequence[int]) -> tuple[int, ...]:
    try:
        out = tuple(int(d) for d in delays)
    except TypeError:
        raise ValueError(f"delays={delays!r} must be a sequence of integers, e.g. (1, 2, 3, 4)") from None
    if len(out) == 0 or any(float(d) != int(d) for d in delays):
        raise ValueError(f"delays={delays!r} must be a non-empty sequence of integers, e.g. (1, 2, 3, 4)")
    return out


def _check_runs(runs: np.ndarray | None, n_samples: int) -> np.ndarray:
    if runs is None:
        return np.zeros(n_samples, dtype=int)
    runs = np.asarray(runs)
    if runs.shape != (n_samples,):
        raise ValueError(f"runs has shape {runs.shape}; it must label each sample, shape ({n_samples},)")
    return runs


def delay_within_runs(X: np.ndarray, delays: Sequence[int], runs: np.ndarray | None = None) -> np.ndarray:
    """Delayed copies of the features, never crossing a run boundary.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Features, in time order.
    delays : sequence of int
        Delays in samples (``0`` keeps the features as they are).
    runs : array of shape (n_samples,), optional
        Run label of each sample. Every stretch of equal consecutive labels is
        delayed on its own, so no delayed value crosses from one stretch into
        the next (the first ``d`` samples of a stretch get zeros at delay ``d``).
        Samples that are not consecutive in time (e.g. either side of a gap)
        must therefore carry different labels. None: one run.

    Returns
    -------
    X_delayed : array of shape (n_samples, n_features * len(delays))
        :func:`brainalign.stimuli.make_delayed` of each run, stacked:
        delay-major column blocks: columns ``[i * n_features, (i + 1) * n_features)``
        hold ``X`` delayed by ``delays[i]``.
    """
    delays = _check_delays(delays)
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_samples, n_features), got {X.shape}")
    runs = _check_runs(runs, X.shape[0])
    parts = [make_delayed(X[seg], delays) for seg in _segments(runs)]
    return np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


# -- the estimator ---------------------------------------------------------------
def _to_numpy(backend: object, array: object) -> np.ndarray:
    return np.asarray(backend.to_numpy(array))


class RidgeEncoder(RegressorMixin, BaseEstimator):
    """Delayed-feature ridge encoding model with one alpha per target.

    ``fit`` delays the features within runs (:func:`delay_within_runs`),
    z-scores the delayed features and the targets with statistics of the
    training data only, and fits himalaya's ``KernelRidgeCV`` (when delayed
    features outnumber samples) or ``RidgeCV`` (otherwise). Both choose, for
    each target, the alpha of ``alphas`` with the smallest mean squared error
    over the contiguous folds of :func:`contiguous_folds`, then refit on all
    the training data.

    Parameters
    ----------
    alphas : array of shape (n_alphas,), default=DEFAULT_ALPHAS
        Ridge regularisation strengths to try (default ``np.logspace(-1, 6, 15)``).
    delays : sequence of int, default=(1, 2, 3, 4)
        FIR delays in samples.
    n_folds : int, default=5
        Folds of the inner cross-validation that selects alphas.
    gap : int, default=5
        Samples dropped on each side of each inner test block.
    backend : {"auto", "numpy", "torch", "torch_cuda"}, default="auto"
        himalaya backend (see :func:`resolve_backend`); the global backend is
        restored after each call.
    n_targets_batch : int or None, default=None
        Targets solved at once; None picks a batch that keeps himalaya's
        working memory near 256 MiB.
    n_alphas_batch : int or None, default=None
        Alphas solved at once; None: all.
    dtype : {"float32", "float64"}, default="float32"
        Precision of the computation.
    fixed_alphas : array of shape (n_targets,) or None, default=None
        Skip the inner cross-validation and fit each target with this alpha,
        e.g. the ``best_alphas_`` of a reference model, so that models of
        altered features are compared at equal regularisation (one solve
        instead of ``n_folds * n_alphas``; computed with numpy whatever the
        backend). ``alphas`` is then ignored.

    Attributes
    ----------
    best_alphas_ : array of shape (n_targets,)
        Selected alpha of each target.
    cv_scores_ : array of shape (n_targets,)
        Inner cross-validation score at the selected alpha: minus the mean
        squared error of the z-scored targets, averaged over folds (nan with
        ``fixed_alphas``).
    x_scaler_ : sklearn.preprocessing.StandardScaler
        Scaler of the delayed features, fitted on the training data.
    y_scaler_ : sklearn.preprocessing.StandardScaler
        Scaler of the targets, fitted on the training data
        (``y_scaler_.mean_``, ``y_scaler_.scale_``).
    model_ : himalaya.kernel_ridge.KernelRidgeCV or himalaya.ridge.RidgeCV
        The fitted himalaya model (on the z-scored, delayed data).
    backend_ : str
        The backend used.
    n_features_in_ : int
        Number of (undelayed) features.

    Examples
    --------
    >>> import numpy as np
    >>> from brainalign.encoding import RidgeEncoder
    >>> rng = np.random.default_rng(0)
    >>> X, Y = rng.standard_normal((200, 10)), rng.standard_normal((200, 3))
    >>> r = RidgeEncoder(delays=(0,)).fit(X[:150], Y[:150]).score(X[150:], Y[150:])
    >>> r.shape
    (3,)
    """

    def __init__(
        self,
        alphas: Sequence[float] | np.ndarray = DEFAULT_ALPHAS,
        delays: Sequence[int] = (1, 2, 3, 4),
        n_folds: int = 5,
        gap: int = 5,
        backend: str = "auto",
        n_targets_batch: int | None = None,
        n_alphas_batch: int | None = None,
        dtype: str = "float32",
        fixed_alphas: np.ndarray | None = None,
    ):
        self.alphas = alphas
        self.delays = delays
        self.n_folds = n_folds
        self.gap = gap
        self.backend = backend
        self.n_targets_batch = n_targets_batch
        self.n_alphas_batch = n_alphas_batch
        self.dtype = dtype
        self.fixed_alphas = fixed_alphas

    # -- helpers ---------------------------------------------------------------
    def _check_params(self) -> np.ndarray:
        alphas = np.asarray(self.alphas, dtype=np.float64).ravel()
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
            raise ValueError(f"alphas={self.alphas!r} must be a non-empty array of positive finite numbers")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype={self.dtype!r} is not one of ('float32', 'float64')")
        for name in ("n_targets_batch", "n_alphas_batch"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name}={value!r} must be a positive integer or None")
        _check_delays(self.delays)
        resolve_backend(self.backend)
        return np.sort(alphas)

    def _features(self, X: np.ndarray, runs: np.ndarray | None) -> np.ndarray:
        X = np.asarray(X, dtype=self.dtype)
        if X.ndim != 2:
            raise ValueError(f"X must have shape (n_samples, n_features), got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains nan or inf")
        return delay_within_runs(X, self.delays, runs)

    # -- sklearn API -----------------------------------------------------------
    def fit(self, X: np.ndarray, Y: np.ndarray, runs: np.ndarray | None = None) -> RidgeEncoder:
        """Fit the encoding model.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Stimulus features, in time order.
        Y : array of shape (n_samples, n_targets)
            Responses (a 1-D array is one target).
        runs : array of shape (n_samples,), optional
            Run label of each sample; delays never cross a change of label
            (see :func:`delay_within_runs`). None: one run.

        Returns
        -------
        self : RidgeEncoder
        """
        alphas = self._check_params()
        Y = np.asarray(Y, dtype=self.dtype)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or not np.all(np.isfinite(Y)):
            raise ValueError(f"Y must be a finite array of shape (n_samples, n_targets), got shape {Y.shape}")
        Xd = self._features(X, runs)
        self.n_features_in_ = int(np.asarray(X).shape[1])
        if Xd.shape[0] != Y.shape[0]:
            raise ValueError(f"X has {Xd.shape[0]} samples but Y has {Y.shape[0]}")
        n_samples, n_features = Xd.shape

        self.x_scaler_ = StandardScaler().fit(Xd)
        Xz = self.x_scaler_.transform(Xd).astype(self.dtype, copy=False)
        del Xd
        self.y_scaler_ = StandardScaler().fit(Y)
        Yz = self.y_scaler_.transform(Y).astype(self.dtype, copy=False)

        n_alphas_batch = self.n_alphas_batch or len(alphas)
        n_targets_batch = self.n_targets_batch
        if n_targets_batch is None:
            per_target = 3 * n_alphas_batch * max(n_samples, n_features) * np.dtype(self.dtype).itemsize
            n_targets_batch = int(max(1, _BATCH_BYTES // per_target))
        solver_params = {
            "n_targets_batch": n_targets_batch,
            "n_targets_batch_refit": n_targets_batch,
            "n_alphas_batch": n_alphas_batch,
        }
        kernel = n_features > n_samples
        if self.fixed_alphas is not None:
            return self._fit_fixed(Xz, Yz)
        cv = contiguous_folds(n_samples, self.n_folds, self.gap)
        if kernel:
            model = KernelRidgeCV(alphas=alphas, kernel="linear", cv=cv, solver_params=solver_params)
        else:
            solver_params["warn"] = False
            model = RidgeCV(alphas=alphas, cv=cv, solver_params=solver_params)

        with use_backend(self.backend) as backend:
            self.backend_ = backend.name
            model.fit(Xz, Yz)
            self.best_alphas_ = _to_numpy(backend, model.best_alphas_)
            self.cv_scores_ = _to_numpy(backend, model.cv_scores_)
        self.model_ = model
        self.n_targets_ = Y.shape[1]
        config.release_memory()  # the solver's freed heap: the next fit's peak starts lower
        return self

    def _fit_fixed(self, Xz: np.ndarray, Yz: np.ndarray) -> RidgeEncoder:
        fixed = np.asarray(self.fixed_alphas, dtype=np.float64).ravel()
        if fixed.shape != (Yz.shape[1],) or not np.all(np.isfinite(fixed)) or np.any(fixed <= 0):
            raise ValueError(f"fixed_alphas must hold one positive alpha per target ({Yz.shape[1]}), "
                             f"got shape {np.shape(self.fixed_alphas)}")
        self.backend_ = "numpy"
        self.model_ = _FixedAlphaRidge(fixed).fit(Xz, Yz)
        self.best_alphas_ = fixed.astype(self.dtype)
        self.cv_scores_ = np.full(Yz.shape[1], np.nan, dtype=self.dtype)
        self.n_targets_ = Yz.shape[1]
        return self

    @property
    def coef_(self) -> np.ndarray:
        """Weights on the z-scored delayed features, array of shape (n_features * n_delays, n_targets).

        Computed on demand from kernel ridge's dual coefficients (it takes
        ``n_features * n_delays * n_targets`` floats of memory).
        """
        check_is_fitted(self, "model_")
        with use_backend(self.backend_) as backend:
            if hasattr(self.model_, "dual_coef_"):
                coef = backend.to_cpu(self.model_.X_fit_).T @ backend.to_cpu(self.model_.dual_coef_)
            else:
                coef = self.model_.coef_
            return _to_numpy(backend, coef)

    def linear_map(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The fitted model as an affine map of the delayed features, in the units of ``Y``.

        For features ``X`` delayed as in :meth:`fit` (``Xd = delay_within_runs(X, delays, runs)``),
        ``predict(X, runs) == ((Xd - mean) / scale) @ weights + intercept``, so a differentiable
        copy of the model (e.g. a torch linear layer) can be built from these four arrays.

        Returns
        -------
        mean : array of shape (n_features * n_delays,)
            Training mean of each delayed feature.
        scale : array of shape (n_features * n_delays,)
            Training standard deviation of each delayed feature (1 where it is constant).
        weights : array of shape (n_features * n_delays, n_targets)
            :attr:`coef_` times the training standard deviation of each target.
        intercept : array of shape (n_targets,)
            Training mean of each target.
        """
        check_is_fitted(self, "model_")
        y_scale = self.y_scaler_.scale_.astype(np.float64)
        weights = self.coef_.astype(np.float64) * y_scale[None, :]
        return (self.x_scaler_.mean_.astype(np.float64), self.x_scaler_.scale_.astype(np.float64), weights,
                self.y_scaler_.mean_.astype(np.float64))

    def predict(self, X: np.ndarray, runs: np.ndarray | None = None) -> np.ndarray:
        """Predict responses, in the original units of ``Y``.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
            Stimulus features, in time order.
        runs : array of shape (n_samples,), optional
            Run label of each sample (see :meth:`fit`).

        Returns
        -------
        Y_pred : array of shape (n_samples, n_targets)
        """
        check_is_fitted(self, "model_")
        if np.asarray(X).ndim == 2 and np.asarray(X).shape[1] != self.n_features_in_:
            raise ValueError(f"X has {np.asarray(X).shape[1]} features but the model was fitted with {self.n_features_in_}")
        Xz = self.x_scaler_.transform(self._features(X, runs)).astype(self.dtype, copy=False)
        with use_backend(self.backend_) as backend:
            Yz = _to_numpy(backend, self.model_.predict(Xz))
        return self.y_scaler_.inverse_transform(Yz.reshape(len(Xz), -1))

    def score(self, X: np.ndarray, Y: np.ndarray, runs: np.ndarray | None = None) -> np.ndarray:
        """Pearson correlation of the prediction with ``Y``, per target.

        Unlike scikit-learn's ``score`` (one float, R²), this returns one
        correlation per target: that is what voxelwise studies report.

        Parameters
        ----------
        X : array of shape (n_samples, n_features)
        Y : array of shape (n_samples, n_targets)
        runs : array of shape (n_samples,), optional

        Returns
        -------
        r : array of shape (n_targets,)
        """
        Y = np.asarray(Y)
        return pearson_r(Y.reshape(len(Y), -1), self.predict(X, runs))


class _FixedAlphaRidge:
    """Ridge regression with a given alpha per target, in closed form.

    With the thin SVD ``X = U diag(s) V^T``, the weights of target ``t`` are
    ``V diag(s / (s^2 + alpha_t)) U^T y_t``: one decomposition serves every
    target and alpha. (himalaya's solvers accept an alpha per target but then
    build one ``n_samples x n_samples`` matrix per target.) The fitted state is
    ``V`` and the scaled projections, so memory stays at
    ``(n_features + n_targets) * rank`` floats.
    """

    def __init__(self, alphas: np.ndarray):
        self.alphas = alphas

    def fit(self, Xz: np.ndarray, Yz: np.ndarray) -> _FixedAlphaRidge:
        # the SVD from the eigendecomposition of the smaller Gram matrix (faster than a direct SVD)
        X64 = Xz.astype(np.float64)
        small_n = X64.shape[0] <= X64.shape[1]
        # scipy's divide-and-conquer driver: numpy's eigh was 10x slower on these rank-deficient Gram matrices
        s2, vecs = scipy.linalg.eigh(X64 @ X64.T if small_n else X64.T @ X64, driver="evd")
        keep = s2 > s2.max() * 1e-10
        s = np.sqrt(s2[keep])
        vecs = vecs[:, keep]
        U, V = (vecs, X64.T @ vecs / s) if small_n else (X64 @ vecs / s, vecs)
        self.V_ = V.astype(Xz.dtype)
        shrink = (s[:, None] / (s[:, None] ** 2 + self.alphas[None, :])).astype(Yz.dtype)
        self.M_ = (U.T.astype(Yz.dtype) @ Yz) * shrink
        return self

    def predict(self, Xz: np.ndarray) -> np.ndarray:
        return (Xz @ self.V_) @ self.M_

    @property
    def coef_(self) -> np.ndarray:
        return self.V_ @ self.M_


# -- outer cross-validation ----------------------------------------------------
def cross_validated_scores(
    X: np.ndarray,
    Y: np.ndarray,
    runs: np.ndarray | None = None,
    n_folds: int = 4,
    gap: int = 5,
    **encoder_kwargs: object,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out Pearson r of a :class:`RidgeEncoder`, over contiguous folds.

    The features are delayed once over the whole recording (within runs;
    they are the stimulus, so this leaks nothing about the responses). Then,
    for each of ``n_folds`` contiguous test blocks, an encoder is fitted on
    the samples outside the block and ``gap`` samples either side of it
    (z-scoring and alpha selection use those training samples only) and
    predicts the block. The score of each target is the correlation of the
    concatenated held-out predictions with ``Y``. The defaults follow
    Oota et al. (2023): 4 folds, 5 samples removed on each side.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Stimulus features, in time order.
    Y : array of shape (n_samples, n_targets)
        Responses.
    runs : array of shape (n_samples,), optional
        Run label of each sample (delays never cross a run boundary).
    n_folds : int, default=4
        Outer folds.
    gap : int, default=5
        Samples dropped on each side of each outer test block.
    **encoder_kwargs
        Parameters of :class:`RidgeEncoder` (``alphas``, ``delays``,
        ``backend``, ...).

    Returns
    -------
    scores : array of shape (n_targets,)
        Pearson r of the held-out predictions.
    predictions : array of shape (n_samples, n_targets)
        Held-out predictions, in the units of ``Y``.
    """
    X = np.asarray(X)
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X {X.shape} and Y {Y.shape} must be 2-D with the same number of samples")
    delays = encoder_kwargs.pop("delays", (1, 2, 3, 4))
    Xd = delay_within_runs(X, delays, _check_runs(runs, X.shape[0]))
    predictions = np.empty(Y.shape, dtype=np.float64)
    for train, test in contiguous_folds(X.shape[0], n_folds, gap):
        encoder = RidgeEncoder(delays=(0,), **encoder_kwargs).fit(Xd[train], Y[train])
        predictions[test] = encoder.predict(Xd[test])
    return pearson_r(Y, predictions), predictions


def held_out_predictions(
    X: Mapping[str, np.ndarray],
    Y: Mapping[str, Mapping[str, np.ndarray]],
    train_runs: Sequence[str],
    test_run: str,
    **encoder_kwargs: object,
) -> dict[str, np.ndarray]:
    """Held-out predictions of every voxel of several participants who heard the same stimulus, from one fit.

    The participants share the features, so one :class:`RidgeEncoder` fits all their voxels
    side by side (one decomposition of the features serves every target); each voxel still
    gets its own penalty, chosen by contiguous folds that never split a training run.

    Parameters
    ----------
    X : mapping of run -> array of shape (n_trs, n_features)
        The stimulus features of each run.
    Y : mapping of participant -> mapping of run -> array of shape (n_trs, n_voxels)
        Each participant's responses (the number of voxels may differ between participants).
    train_runs : sequence of str
        The runs the encoder is fitted on.
    test_run : str
        The run it predicts (its responses are not read, beyond their shape).
    **encoder_kwargs
        Parameters of :class:`RidgeEncoder` (``delays``, ``n_folds``, ``alphas``, ...).

    Returns
    -------
    dict of participant -> array of shape (n_trs of test_run, n_voxels)
        The prediction of each voxel's response to ``test_run``.
    """
    runs = list(train_runs) + [test_run]
    missing = [(s, r) for s in Y for r in runs if r not in Y[s]] + [("features", r) for r in runs if r not in X]
    if not Y or not train_runs or missing:
        raise ValueError(f"held-out fits need participants, training runs, and every run in X and Y; missing: {missing}")
    subjects = list(Y)
    groups = np.concatenate([np.full(len(X[r]), i) for i, r in enumerate(train_runs)])
    targets = np.concatenate([np.concatenate([Y[s][r] for r in train_runs]) for s in subjects], axis=1)
    encoder = RidgeEncoder(**encoder_kwargs).fit(np.concatenate([X[r] for r in train_runs]), targets, runs=groups)
    predicted = encoder.predict(X[test_run])
    return dict(zip(subjects, np.split(predicted, np.cumsum([Y[s][test_run].shape[1] for s in subjects])[:-1], axis=1)))


def held_out_scores(
    X: Mapping[str, np.ndarray],
    Y: Mapping[str, Mapping[str, np.ndarray]],
    train_runs: Sequence[str],
    test_run: str,
    **encoder_kwargs: object,
) -> dict[str, np.ndarray]:
    """Held-out Pearson r of every voxel of several participants who heard the same stimulus, from one fit.

    The predictions of :func:`held_out_predictions` (one encoder for every participant's
    voxels, each voxel with its own penalty) scored against ``test_run``'s responses.

    Parameters
    ----------
    X, Y, train_runs, test_run, **encoder_kwargs
        As in :func:`held_out_predictions`.

    Returns
    -------
    dict of participant -> array of shape (n_voxels,)
        Pearson r of each voxel's prediction of ``test_run``.
    """
    predicted = held_out_predictions(X, Y, train_runs, test_run, **encoder_kwargs)
    return {s: pearson_r(Y[s][test_run], p) for s, p in predicted.items()}
