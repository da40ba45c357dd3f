"""Which feature space explains which voxel: banded ridge, variance partitioning, winner-take-all maps.

Study 6 (Oota et al. 2025) asks which of several feature spaces (models, layers, task
instructions) best explains each part of the brain. Three tools answer it:

- :func:`banded_ridge_predictions`: one encoding model over several feature spaces at once, each
  space with its own regularisation (banded ridge: himalaya's multiple-kernel ridge [1]_), whose
  prediction splits into one part per space; :func:`split_r2` scores each part, and the parts'
  scores add up to the joint model's R².
- :func:`variance_partition`: the variance two spaces explain together, and what each explains
  alone, from the scores of each space's model and of their joint model.
- :func:`winner_take_all` and :func:`organisation_test`: the space that explains each voxel
  best, and whether the map those winners draw follows the brain's regions more than the same
  winners shuffled over the voxels.

References
----------
.. [1] Dupré la Tour, T., Eickenberg, M., Nunez-Elizalde, A. O., & Gallant, J. L. (2022).
   Feature-space selection with banded ridge regression. NeuroImage, 264, 119728.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import config
from .encoding import DEFAULT_ALPHAS, contiguous_folds, delay_within_runs, use_backend

__all__ = ["banded_ridge_predictions", "organisation_test", "split_r2", "variance_partition", "winner_take_all"]


def _band_matrices(X: Mapping[str, np.ndarray], runs: Sequence[str], delays: Sequence[int],
                   train: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One band's delayed features of the training runs and of every other run, z-scored with the training statistics
    and divided by the square root of their width (so that every band's kernel starts at the same scale)."""
    delayed = {r: delay_within_runs(np.asarray(X[r], dtype=np.float64), delays) for r in runs}
    fit = np.concatenate([delayed[r] for r in train])
    mean, std = fit.mean(0), fit.std(0)
    std[std == 0] = 1.0
    scale = np.sqrt(fit.shape[1])
    return (fit - mean) / std / scale, {r: (delayed[r] - mean) / std / scale for r in runs}


def banded_ridge_predictions(
    X: Mapping[str, Mapping[str, np.ndarray]],
    Y: Mapping[str, Mapping[str, np.ndarray]],
    train_runs: Sequence[str],
    test_run: str,
    delays: Sequence[int] = (1, 2, 3, 4, 5),
    alphas: np.ndarray = DEFAULT_ALPHAS,
    n_iter: int = 20,
    n_folds: int = 5,
    gap: int = 5,
    seed: int = 0,
    n_targets_batch: int = 2000,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Banded ridge over several feature spaces, fitted on the training runs; its prediction of the test run, split by space.

    Each space (band) is delayed within runs, z-scored with the training runs' statistics and
    given a linear kernel. himalaya's ``MultipleKernelRidgeCV`` then chooses, for each target,
    the weights of the bands and the penalty (random search: ``n_iter`` draws of band weights
    on the simplex, each with every ``alphas``) by contiguous folds over the training samples
    (:func:`~brainalign.encoding.contiguous_folds`, as :class:`~brainalign.encoding.RidgeEncoder`);
    the targets are z-scored with the training runs' statistics. Several participants who saw
    the same stimulus share the kernels; each voxel gets its own weights.

    Parameters
    ----------
    X : mapping of band name -> mapping of run -> array of shape (n_trs, n_features)
        The feature spaces.
    Y : mapping of participant -> mapping of run -> array of shape (n_trs, n_voxels)
    train_runs : sequence of str
    test_run : str
    delays : sequence of int
        FIR delays in samples (Oota et al. 2025: five).
    alphas : array
        Penalties tried with every draw of band weights.
    n_iter : int
        Draws of band weights (the first ones are each band alone and all bands equal).
    n_folds, gap : int
        The inner cross-validation.
    seed : int
    n_targets_batch : int
        Targets solved at once (memory).

    Returns
    -------
    split : dict of participant -> array of shape (n_bands, n_trs of test_run, n_voxels)
        Each band's part of the prediction of the z-scored test responses (z-scored with the
        training statistics); the parts add up to the joint prediction.
    weights : dict of participant -> array of shape (n_bands, n_voxels)
        The chosen weight of each band for each voxel (they sum to one).
    """
    from himalaya.kernel_ridge import MultipleKernelRidgeCV

    bands, subjects = list(X), list(Y)
    runs = list(train_runs) + [test_run]
    missing = [(b, r) for b in bands for r in runs if r not in X[b]] + [(s, r) for s in subjects for r in runs if r not in Y[s]]
    if len(bands) < 1 or not subjects or not list(train_runs) or missing:
        raise ValueError(f"banded ridge needs bands, participants, training runs and every run in X and Y; missing: {missing}")
    lengths = {r: len(Y[subjects[0]][r]) for r in runs}
    bad = [(b, r) for b in bands for r in runs if len(X[b][r]) != lengths[r]]
    if bad:
        raise ValueError(f"features and responses differ in length for {bad}")
    for name, value in (("n_iter", n_iter), ("n_folds", n_folds)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    parts = [_band_matrices(X[b], runs, delays, train_runs) for b in bands]
    train_k = np.stack([f @ f.T for f, _ in parts])
    test_k = np.stack([by_run[test_run] @ f.T for f, by_run in parts])
    gen = config.rng(seed, "banded_ridge")
    n_bands = len(bands)
    draws = np.concatenate([np.eye(n_bands), np.full((1, n_bands), 1.0 / n_bands),
                            gen.dirichlet(np.ones(n_bands), size=max(0, int(n_iter) - n_bands - 1))])[: max(int(n_iter), 1)]
    cv = contiguous_folds(sum(lengths[r] for r in train_runs), int(n_folds), int(gap))  # as RidgeEncoder's: a gap either side
    split, weights = {}, {}
    for s in subjects:  # one fit per participant: the same result as side by side (each voxel is its own), less memory
        targets = np.concatenate([Y[s][r] for r in train_runs]).astype(np.float64)
        mean, std = targets.mean(0), targets.std(0)
        std[std == 0] = 1.0
        with use_backend("numpy"), np.errstate(divide="ignore"):  # a band weighted 0 has log weight -inf
            model = MultipleKernelRidgeCV(kernels="precomputed", solver="random_search",
                                          solver_params={"n_iter": draws, "alphas": np.asarray(alphas, dtype=np.float64),
                                                         "n_targets_batch": int(n_targets_batch), "progress_bar": False},
                                          cv=cv, random_state=int(seed))
            model.fit(train_k, (targets - mean) / std)
            split[s] = np.asarray(model.predict(test_k, split=True))
            w = np.exp(np.asarray(model.deltas_))  # band weights over the penalty
        weights[s] = w / w.sum(0, keepdims=True)
        del model, targets
        config.release_memory()
    return split, weights


def split_r2(y_true: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Each band's share of the joint prediction's R² (they add up to it, both centred on the scored samples).

    ``R²_b = (2 y - ŷ) · ŷ_b / ||y - ȳ||²`` per target, with ``ŷ`` the sum of the
    parts ``ŷ_b`` (la Tour et al. 2022, eq. 8): a part that predicts nothing gets about
    zero, and a part that predicts what another part already does is not counted twice.

    Parameters
    ----------
    y_true : array of shape (n_samples, n_targets)
        Responses, in the units of the prediction.
    split : array of shape (n_bands, n_samples, n_targets)

    Returns
    -------
    array of shape (n_bands, n_targets)
    """
    y = np.asarray(y_true, dtype=np.float64)
    split = np.asarray(split, dtype=np.float64)
    if split.ndim != 3 or split.shape[1:] != y.shape:
        raise ValueError(f"split {split.shape} must be (n_bands, *{y.shape})")
    total = split.sum(0)
    centred = y - y.mean(0)
    ss = (centred**2).sum(0)
    ss[ss == 0] = np.nan
    return np.einsum("ij,bij->bj", 2 * centred - (total - total.mean(0)), split - split.mean(1, keepdims=True)) / ss


def variance_partition(score_a: np.ndarray, score_b: np.ndarray, score_joint: np.ndarray) -> dict[str, np.ndarray]:
    """Shared and unique explained variance of two feature spaces (Oota et al. 2025, appendix M).

    From the explained variance (R², or the study's normalized alignment) of a model of space
    ``a``, one of space ``b`` and one of both together: ``shared = a + b - joint``,
    ``unique_a = joint - b``, ``unique_b = joint - a``. Two identical spaces share all of
    it; two spaces that explain different variance share none.

    Returns
    -------
    dict with ``shared``, ``unique_a``, ``unique_b`` (arrays like the scores)
    """
    a, b, joint = (np.asarray(x, dtype=np.float64) for x in (score_a, score_b, score_joint))
    if not (a.shape == b.shape == joint.shape):
        raise ValueError(f"the three scores must have one shape; got {a.shape}, {b.shape}, {joint.shape}")
    return {"shared": a + b - joint, "unique_a": joint - b, "unique_b": joint - a}


def winner_take_all(scores: Mapping[str, np.ndarray], include: np.ndarray | None = None) -> np.ndarray:
    """The feature space with the highest score at each target (-1 where not included).

    Parameters
    ----------
    scores : mapping of space -> array of shape (n_targets,)
    include : bool array of shape (n_targets,), optional
        Targets that enter the map (default: all).

    Returns
    -------
    int array of shape (n_targets,): the index of the winning space in ``scores``' order, or -1.
    """
    if not scores:
        raise ValueError("scores is empty: give at least one feature space")
    table = np.stack([np.asarray(v, dtype=np.float64) for v in scores.values()])
    if table.ndim != 2:
        raise ValueError(f"each space's scores must be 1-D with one value per target; got {table.shape[1:]}")
    winners = np.argmax(np.where(np.isnan(table), -np.inf, table), axis=0)  # a nan score never wins
    if include is not None:
        include = np.asarray(include, dtype=bool)
        if include.shape != winners.shape:
            raise ValueError(f"include {include.shape} must have one value per target {winners.shape}")
        winners = np.where(include, winners, -1)
    return winners


def _mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    """Mutual information (bits) between two label arrays."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    joint = np.zeros((ai.max() + 1, bi.max() + 1))
    np.add.at(joint, (ai, bi), 1.0)
    joint /= joint.sum()
    outer = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / outer[nz])).sum())


def organisation_test(winners: np.ndarray, regions: np.ndarray, n_permutations: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """Does a winner-take-all map follow the regions more than its winners shuffled over the voxels?

    The statistic is the mutual information (bits) between each mapped voxel's winner and its
    region; the null shuffles the winners across the mapped voxels (the same winners, in no
    relation to the regions). Voxels with winner -1 (not in the map) are left out.

    Parameters
    ----------
    winners : int array of shape (n_voxels,), from :func:`winner_take_all`
    regions : array of shape (n_voxels,)
        Each voxel's region label.
    n_permutations : int
    seed : int

    Returns
    -------
    mutual_information : float
    p : float
        ``(1 + #{null >= observed}) / (1 + n_permutations)``; 1.0 where fewer than two voxels are mapped.
    """
    winners, regions = np.asarray(winners), np.asarray(regions)
    if winners.shape != regions.shape or winners.ndim != 1:
        raise ValueError(f"winners {winners.shape} and regions {regions.shape} must be 1-D, one per voxel")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer, got {n_permutations!r}")
    mapped = winners >= 0
    if mapped.sum() < 2:
        return 0.0, 1.0
    w, g = winners[mapped], regions[mapped]
    observed = _mutual_information(w, g)
    gen = config.rng(seed, "organisation_test")
    null = np.array([_mutual_information(gen.permutation(w), g) for _ in range(int(n_permutations))])
    return observed, float((1 + np.sum(null >= observed - 1e-12)) / (1 + int(n_permutations)))
