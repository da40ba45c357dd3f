"""Probing: linguistic property labels for every word, linear probes, SentEval files.

The six sentence-level properties of :mod:`brainalign.linguistics` are turned
into classes by one of two schemes (:data:`CLASS_SCHEMES`). ``"study"`` uses
the fixed classes of the label file Oota et al. (2023) released: sentence
length 1-4, 5-8 and 9+ words; tree depth at most 5, 6 and at least 7; top
constituents "NP VP" against anything else (:data:`STUDY_BINS`,
:data:`STUDY_TOP_CONSTITUENTS`; how the dependency parse gives these classes:
:mod:`brainalign.linguistics`).
``"quantiles"`` fits the classes to the text at hand: numeric properties
are cut into ``n_bins`` classes of about equal size over the words, and top
constituents keeps its ``n_top_constituents`` most frequent patterns and
pools the rest as ``OTHER`` (the SentEval scheme, at the size of a story).
The study's bins suit its story; on other texts they can be very unequal (the
simulated cohort's long literary sentences would put 96% of its words in
"9+"), and a dependency depth is not the study's constituency depth. Tense
keeps its categories in both. Subject and object number keep theirs (``NN``,
``NNS``, ``NONE`` for a sentence without one) in ``"quantiles"``; the study
has two classes, and puts a sentence without a subject or an object in the
singular's (its file gives "He shrugs." object number 1 and "Guilty of
something." subject number 1, as "You didn't get half the things on my list"
object number 2), so ``"study"`` counts ``NONE`` as ``NN``. Labels are
sentence-level and broadcast to every word of the sentence.

The study released its own labels of its story (``21styear``):
:func:`read_study_labels` reads that file in the same classes, and
:func:`label_agreement` measures how well a labelling agrees with it
(agreement and Cohen's kappa, per property).

A probe is a linear classifier (a ridge classifier on standardised
features: one closed-form solve, so probing every layer, property and removal
stays fast) scored by held-out accuracy over contiguous folds of words, with
``gap`` words dropped on each side of each test block so that overlapping
context windows do not leak; the baseline is the accuracy of always answering
the training folds' majority class. Balanced accuracy (chance: 1 / n_classes)
is reported too, since some properties have very unequal classes.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .cache import atomic_write
from .encoding import contiguous_folds
from .linguistics import PROPERTIES, annotate_words

__all__ = ["CLASS_SCHEMES", "PROPERTIES", "STUDY_BINS", "STUDY_LABEL_CODES", "STUDY_TOP_CONSTITUENTS", "check_properties",
           "annotate_runs", "label_agreement", "property_labels", "probe_predictions", "probe_scores", "probe_accuracy",
           "read_study_labels", "GramRidgeClassifier", "write_senteval", "SENTEVAL_NAMES"]

#: how the numeric and pattern properties become classes (see the module docstring)
CLASS_SCHEMES = ("quantiles", "study")
#: the study's classes of the numeric properties (Oota et al. 2023, their released label file):
#: the inclusive upper bounds of the first two classes, and the three classes' names
STUDY_BINS = {"sentence_length": ((4, 8), ("1-4", "5-8", "9+")), "tree_depth": ((5, 6), ("1-5", "6", "7+"))}
#: the study's top-constituent class against all others (``np_vp`` of :func:`brainalign.linguistics.annotate_words`)
STUDY_TOP_CONSTITUENTS = "NP_VP"

#: the study's released label file (``balanced_21styear_probing_labels.csv``): the column of each property and
#: the class each of its codes stands for, in the classes of ``property_labels(classes="study")``. The file has no
#: legend; the meanings were read off its sentences ("He shrugs." has sentence length 3, "No one seems to mind but
#: her." 1, a sentence of twelve words 2; "You didn't get half the things on my list" has tense 1 and object number 2)
STUDY_LABEL_CODES = {
    "sentence_length": ("sen_len", {3: "1-4", 1: "5-8", 2: "9+"}),
    "tree_depth": ("tree_depth", {5: "1-5", 6: "6", 7: "7+"}),
    "top_constituents": ("top_const", {1: STUDY_TOP_CONSTITUENTS, 2: "OTHER"}),
    "tense": ("tense", {1: "PAST", 2: "PRES"}),
    "subject_number": ("subjnum", {1: "NN", 2: "NNS"}),
    "object_number": ("objnum", {1: "NN", 2: "NNS"}),
}

#: the SentEval file name of each property
SENTEVAL_NAMES = {
    "sentence_length": "sentence_length", "tree_depth": "tree_depth", "top_constituents": "top_constituents",
    "tense": "past_present", "subject_number": "subj_number", "object_number": "obj_number",
}


def check_properties(properties: Sequence[str] | None) -> list[str]:
    """The properties asked for (all by default); an unknown one raises, listing the valid ones."""
    properties = list(PROPERTIES) if properties is None else list(properties)
    for p in properties:
        if p not in PROPERTIES:
            raise ValueError(f"unknown property {p!r}; valid properties: {list(PROPERTIES)}")
    return properties


def annotate_runs(words: Mapping[str, Sequence[str]], constituency=None) -> pd.DataFrame:
    """Parse every run's text (sentences never cross runs) into one table.

    Parameters
    ----------
    words : mapping run -> sequence of str
        Each run's words, in order.
    constituency : benepar.Parser, optional
        A constituency parser for tree depth and top constituents
        (:func:`brainalign.linguistics.annotate_words`); None: the dependency parse.

    Returns
    -------
    DataFrame with one row per word, runs in the mapping's order: ``run``,
    ``word``, ``sentence`` (a unique id over all runs) and the six properties.
    """
    tables, offset = [], 0
    for run, run_words in words.items():
        t = annotate_words(list(run_words), constituency)
        t.insert(0, "run", run)
        t["sentence"] += offset
        offset = int(t["sentence"].max()) + 1
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def property_labels(
    annotations: pd.DataFrame,
    properties: Sequence[str] | None = None,
    n_bins: int = 3,
    n_top_constituents: int = 5,
    classes: str = "quantiles",
) -> pd.DataFrame:
    """Class labels (strings) of every word for each property.

    Parameters
    ----------
    annotations : DataFrame
        From :func:`annotate_runs` (or :func:`brainalign.linguistics.annotate_words`).
    properties : sequence of str, optional
        Properties to label (all six by default).
    n_bins : int
        ``classes="quantiles"``: classes of the numeric properties (quantiles over words; ties can make fewer).
    n_top_constituents : int
        ``classes="quantiles"``: top-constituent patterns kept as classes; the rest become ``OTHER``.
    classes : {"quantiles", "study"}
        The scheme (:data:`CLASS_SCHEMES`): classes fitted to these words, or the study's fixed
        classes (:data:`STUDY_BINS`: ``"1-4"``, ``"5-8"``, ``"9+"`` words; depth ``"1-5"``,
        ``"6"``, ``"7+"``; top constituents ``"NP_VP"`` or ``"OTHER"``).

    Returns
    -------
    DataFrame with one column per property, one row per word.
    """
    if classes not in CLASS_SCHEMES:
        raise ValueError(f"unknown class scheme {classes!r}; valid: {list(CLASS_SCHEMES)}")
    out = {}
    for prop in check_properties(properties):
        values = annotations[prop]
        if prop in ("sentence_length", "tree_depth") and classes == "study":
            bounds, names = STUDY_BINS[prop]
            out[prop] = [names[i] for i in np.searchsorted(bounds, values.to_numpy(), side="left")]
        elif prop in ("sentence_length", "tree_depth"):
            bins = pd.qcut(values.astype(float), n_bins, duplicates="drop")
            out[prop] = [f"{int(np.floor(iv.left)) + 1}-{int(iv.right)}" for iv in bins]
        elif prop == "top_constituents" and classes == "study":
            if "np_vp" not in annotations:
                raise ValueError("the study's top-constituent classes need the annotations' np_vp column "
                                 "(from linguistics.annotate_words or probing.annotate_runs)")
            out[prop] = np.where(annotations["np_vp"].to_numpy(bool), STUDY_TOP_CONSTITUENTS, "OTHER").tolist()
        elif prop == "top_constituents":
            keep = values.value_counts().index[:n_top_constituents]
            out[prop] = values.where(values.isin(keep), "OTHER").to_list()
        elif prop in ("subject_number", "object_number") and classes == "study":
            out[prop] = values.astype(str).replace("NONE", "NN").to_list()  # the study's singular class holds "none"
        else:
            out[prop] = values.astype(str).to_list()
    return pd.DataFrame(out, index=annotations.index)


def _letters(word: str) -> str:
    """A word's ASCII letters and digits, lower-cased: what the label file and an alignment share of it."""
    return re.sub(r"[^a-z0-9]", "", str(word).lower())


def read_study_labels(path: str | os.PathLike, words: Sequence[str]) -> pd.DataFrame:
    """The study's released per-word labels, in the classes of ``property_labels(classes="study")``.

    Parameters
    ----------
    path : path
        The label file Oota et al. (2023) released for their story (a CSV with a ``words``
        column, then one column of integer codes per property: :data:`STUDY_LABEL_CODES`).
    words : sequence of str
        The story's words, in the text's order (``Dataset.words(run)["word"]``): the file
        must hold the same words in the same order, one row each.

    Returns
    -------
    DataFrame with one column per property, one row per word.

    Raises
    ------
    ValueError
        A missing column, a code the study does not use, or words that are not the story's
        (the message names the first row that differs).
    """
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8", encoding_errors="replace")
    missing = [c for c in ["words"] + [col for col, _ in STUDY_LABEL_CODES.values()] if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: no column(s) {missing}; the study's label file has words, "
                         f"{', '.join(col for col, _ in STUDY_LABEL_CODES.values())}")
    if len(table) != len(words):
        raise ValueError(f"{path} labels {len(table)} words but the story has {len(words)}: it is not this story's label file")
    ours, theirs = [_letters(w) for w in words], [_letters(w) for w in table["words"]]
    differ = [i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b]
    if differ:
        i = differ[0]
        raise ValueError(f"{path}: row {i + 2} labels {table['words'].iloc[i]!r} where the story has {words[i]!r} "
                         f"({len(differ)} rows differ): the file and the story's words must be in the same order")
    out = {}
    for prop, (column, codes) in STUDY_LABEL_CODES.items():
        values = pd.to_numeric(table[column], errors="coerce")
        bad = ~values.isin(list(codes))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"{path}: row {i + 2} has {column}={table[column].iloc[i]!r}; the study's codes are {sorted(codes)}")
        out[prop] = values.astype(int).map(codes).to_list()
    return pd.DataFrame(out)


def label_agreement(labels: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """How well one labelling of words agrees with another, per property.

    Parameters
    ----------
    labels, reference : DataFrame
        One column per property, one row per word, the same words in the same order (for
        example :func:`property_labels` with ``classes="study"`` against :func:`read_study_labels`).

    Returns
    -------
    DataFrame indexed by property (the columns both have): ``n_words``, ``agreement`` (the
    fraction of words with the same class), ``kappa`` (Cohen's kappa: 0 for the agreement
    that the two labellings' class frequencies give by chance, 1 for identical labels) and
    ``chance_agreement``.
    """
    from sklearn.metrics import cohen_kappa_score

    if len(labels) != len(reference):
        raise ValueError(f"the labellings have {len(labels)} and {len(reference)} words; they must label the same words")
    shared = [p for p in labels.columns if p in reference.columns]
    if not shared:
        raise ValueError(f"no property in both labellings: {list(labels.columns)} and {list(reference.columns)}")
    rows = {}
    for prop in shared:
        a, b = labels[prop].astype(str).to_numpy(), reference[prop].astype(str).to_numpy()
        agreement = float(np.mean(a == b))
        classes = np.union1d(a, b)
        chance = float(sum(np.mean(a == c) * np.mean(b == c) for c in classes))
        kappa = float(cohen_kappa_score(a, b)) if chance < 1 else float("nan")
        rows[prop] = dict(n_words=len(a), agreement=agreement, kappa=kappa, chance_agreement=chance)
    return pd.DataFrame.from_dict(rows, orient="index")


def probe_predictions(
    X: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    n_folds: int = 5,
    gap: int = 20,
    alpha: float = 10.0,
    remover: object | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Held-out class of every word, from a linear probe and from the majority baseline.

    Parameters
    ----------
    X : array of shape (n_words, n_features)
        Word features, in text order.
    labels : array of shape (n_words,)
        Class of each word.
    n_folds : int
        Contiguous folds (each word is tested once).
    gap : int
        Words dropped from training on each side of a test block (use the context length).
    alpha : float
        Ridge penalty of the probe (on standardised features).
    remover : estimator, optional
        A property remover (:func:`brainalign.removal.make_remover`): a fresh
        copy is fitted on each training fold and transforms both the training
        and the test words before the probe sees them, so nothing of the test
        words enters the removal.

    Returns
    -------
    predicted : array of shape (n_words,)
        The probe's class for each word, from the fold that tests it.
    majority : array of shape (n_words,)
        The most frequent class of that fold's training words.
    """
    from sklearn.base import clone
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(labels)
    if X.ndim != 2 or y.shape != (len(X),):
        raise ValueError(f"X must be (n_words, n_features) and labels (n_words,), got {X.shape} and {y.shape}")
    predicted = np.empty(len(y), dtype=y.dtype)
    majority = np.empty(len(y), dtype=y.dtype)
    for train, test in contiguous_folds(len(y), n_folds, gap):
        classes, counts = np.unique(y[train], return_counts=True)
        majority[test] = classes[np.argmax(counts)]
        if len(classes) == 1:
            predicted[test] = majority[test]
            continue
        Xtr, Xte = X[train], X[test]
        if remover is not None:
            fitted = clone(remover).fit(Xtr, y[train])
            Xtr, Xte = fitted.transform(Xtr, y[train]), fitted.transform(Xte, y[test])
        scaler = StandardScaler().fit(Xtr)  # the probe: scikit-learn's StandardScaler and RidgeClassifier(alpha)
        probe = GramRidgeClassifier(scaler.transform(Xtr), y[train], alpha)
        probe.fit()
        predicted[test] = probe.predict(scaler.transform(Xte))
    return predicted, majority


def probe_scores(labels: Sequence[str] | np.ndarray, predicted: np.ndarray, majority: np.ndarray) -> dict[str, float]:
    """The scores of :func:`probe_accuracy` from held-out predictions.

    Parameters
    ----------
    labels : array of shape (n_words,)
        Class of each word.
    predicted, majority : arrays of shape (n_words,)
        From :func:`probe_predictions`.

    Returns
    -------
    dict with ``accuracy``, ``baseline``, ``balanced`` and ``chance``, as
    :func:`probe_accuracy` defines them.
    """
    from sklearn.metrics import balanced_accuracy_score

    y = np.asarray(labels)
    return {"accuracy": float(np.mean(predicted == y)), "baseline": float(np.mean(majority == y)),
            "balanced": float(balanced_accuracy_score(y, predicted)), "chance": 1.0 / len(np.unique(y))}


def probe_accuracy(
    X: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    n_folds: int = 5,
    gap: int = 20,
    alpha: float = 10.0,
    remover: object | None = None,
) -> dict[str, float]:
    """Held-out accuracy of a linear probe and of the majority-class baseline.

    Parameters
    ----------
    X : array of shape (n_words, n_features)
        Word features, in text order.
    labels : array of shape (n_words,)
        Class of each word.
    n_folds, gap, alpha, remover
        As in :func:`probe_predictions`, which this scores.

    Returns
    -------
    dict with ``accuracy`` and ``baseline`` (fraction of held-out words
    classified correctly by the probe, and by the training folds' majority
    class), ``balanced`` (the probe's balanced accuracy) and ``chance``
    (1 / n_classes).
    """
    predicted, majority = probe_predictions(X, labels, n_folds=n_folds, gap=gap, alpha=alpha, remover=remover)
    return probe_scores(labels, predicted, majority)


@functools.cache
def _blas_threads():
    """One controller of the loaded BLAS libraries for every fit: ``threadpool_limits`` finds them anew on each call,
    by reading the process's memory map, which took nine tenths of a downstream probe's time."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


class GramRidgeClassifier:
    """scikit-learn's ``RidgeClassifier(alpha)`` (optionally ``class_weight="balanced"``), from one Gram matrix.

    The probes and INLP fit many ridge classifiers to the same words: INLP one
    per iteration, with a growing subspace ``B`` projected out of the features
    (``Z (I - B B^T)``). The (weighted) Gram matrix of the centred features and
    their products with the targets are computed once; each fit is then a
    ``d x d`` solve with the solution RidgeClassifier gives: targets +-1 (one
    column for two classes), sample weights (balanced or all 1), weighted
    centring for the intercept, Cholesky solve of ``(P G P + alpha I) w = P c``
    with ``P = I - B B^T``, on one thread (at this size, threads only wait for
    each other: on a busy machine a multi-threaded Cholesky of 384 x 384 took
    50 times longer than a single-threaded one).

    Parameters
    ----------
    Z : array of shape (n_samples, n_features)
        Training features.
    labels : array of shape (n_samples,)
    alpha : float
        Ridge penalty.
    balanced : bool, default=False
        Weight the samples as ``class_weight="balanced"`` does.
    """

    def __init__(self, Z: np.ndarray, labels: np.ndarray, alpha: float, balanced: bool = False):
        self.classes_, y = np.unique(labels, return_inverse=True)
        k = len(self.classes_)
        weights = len(y) / (k * np.bincount(y))[y] if balanced else np.ones(len(y))
        T = -np.ones((len(y), k))
        T[np.arange(len(y)), y] = 1.0
        T = T[:, 1:] if k == 2 else T  # two classes: one column, +1 for the second
        self.z_mean_ = weights @ Z / weights.sum()
        self.t_mean_ = weights @ T / weights.sum()
        Zc = (Z - self.z_mean_) * np.sqrt(weights)[:, None]
        self.gram_ = Zc.T @ Zc
        self.cross_ = Zc.T @ ((T - self.t_mean_) * np.sqrt(weights)[:, None])
        self.alpha = float(alpha)

    def fit(self, basis: np.ndarray | None = None) -> np.ndarray:
        """The weights (n_classes or 1, n_features) of the classifier of the features projected off ``basis`` (None: none)."""
        from scipy import linalg

        d = self.gram_.shape[0]
        basis = np.zeros((d, 0)) if basis is None else basis
        with _blas_threads().limit(limits=1):  # d x d work: threads only wait for each other, most of all on a busy machine
            P = np.eye(d) - basis @ basis.T
            A = P @ self.gram_ @ P
            A[np.diag_indices(d)] += self.alpha
            self.coef_ = linalg.cho_solve(linalg.cho_factor(A, overwrite_a=True), P @ self.cross_).T
        self.basis_ = basis
        return self.coef_

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """Classes of rows of ``Z``, projected off the basis of the last :meth:`fit`, by that fit's classifier.

        Trained on one class only (a rare class can be absent from a fold), it predicts that class.
        """
        if len(self.classes_) == 1:
            return np.repeat(self.classes_, len(Z))
        basis = self.basis_
        Zp = Z - (Z @ basis) @ basis.T
        mean = self.z_mean_ - (self.z_mean_ @ basis) @ basis.T
        scores = (Zp - mean) @ self.coef_.T + self.t_mean_
        return self.classes_[(scores[:, 0] > 0).astype(int)] if scores.shape[1] == 1 else self.classes_[scores.argmax(1)]


def write_senteval(
    folder: str | os.PathLike,
    annotations: pd.DataFrame,
    labels: pd.DataFrame,
    splits: Mapping[str, str],
) -> list[str]:
    """Write one SentEval probing file per property: ``<split>\\t<label>\\t<sentence>`` per line.

    Parameters
    ----------
    folder : path
        Where to write ``<senteval name>.txt`` (e.g. ``tree_depth.txt``, ``past_present.txt``).
    annotations : DataFrame
        From :func:`annotate_runs` (columns ``run``, ``word``, ``sentence``).
    labels : DataFrame
        From :func:`property_labels`, same rows.
    splits : mapping run -> {"tr", "va", "te"}
        SentEval split of each run's sentences.

    Returns
    -------
    The paths written.
    """
    from pathlib import Path

    bad = sorted(set(splits.values()) - {"tr", "va", "te"})
    if bad:
        raise ValueError(f"unknown SentEval split(s) {bad}; valid: ['tr', 'va', 'te']")
    missing = sorted(set(annotations["run"]) - set(splits))
    if missing:
        raise ValueError(f"no split given for run(s) {missing}")
    first = annotations.groupby("sentence", sort=True).head(1).index
    text = annotations.groupby("sentence", sort=True)["word"].agg(" ".join)
    paths = []
    for prop in labels.columns:
        lines = [f"{splits[annotations.at[i, 'run']]}\t{labels.at[i, prop]}\t{sentence}"
                 for i, sentence in zip(first, text)]
        path = Path(folder) / f"{SENTEVAL_NAMES[prop]}.txt"
        atomic_write(path, lambda tmp, lines=lines: tmp.write_text("\n".join(lines) + "\n"))
        paths.append(str(path))
    return paths
