"""Study 3's downstream probes, offline: a task the STS was planted to carry, and one it was not.

Policzer, Braunstein & Toneva (2025) brain-tune an audio-video model on the
superior temporal sulcus (STS) and probe its frozen features on two
downstream tasks: sarcasm in sitcom clips (MUStARD), which improves, and
sentiment and emotion (CMU-MOSEI), which do not. Offline, both tasks are
built from the compendium's own movie generator (:func:`stimuli.make_movie`),
whose simulated movie cohort planted "audio-visual speech" in the STS: the
fraction of each TR during which the speaker whose face is on screen is
talking (:mod:`brainalign.simulate.movie`).

Tasks (:data:`TASKS`), for the window of ``window`` seconds that ends at a time:

``"related"``
    Is the face on screen the face of the person speaking? Label 1 if it is,
    0 if it is the other speaker's face; windows where someone speaks and a
    face is on screen at the window's end. The windows are balanced over the
    four (speaker, face) pairs, so that neither who speaks nor whose face is
    shown predicts the label alone: only their conjunction does, which is
    what the STS was planted with. A linear probe of features that carry the
    voice and the face separately (two unimodal encoders side by side) is
    at chance by construction.
``"unrelated"``
    Which scene image is shown (six classes: :data:`stimuli.MOVIE_IMAGES`
    without the two faces); windows whose end shows a scene without a face.
    The STS was not planted to carry it.

A window is kept only where its label is unambiguous over its last
``steady`` seconds (1 s by default): one shot is on screen throughout, and,
for the related task, one line of dialogue is being spoken throughout. Window
ends lie on a grid of ``stride`` seconds (0.5 s), the whole window inside
its clip, so two windows of a clip overlap by ``window - stride`` seconds at
most.

**Clips** (:func:`downstream_clips`) are made by the movie generator for this
purpose only, in the movie cohort's format (5 frames/s, 128 x 128 pixels,
16 kHz audio, the default voices and faces): clip ``k`` speaks
``lines_per_clip`` consecutive lines of the dialogue, no line in two clips
(:func:`downstream_lines`), with the pauses, shots and camera motion of a
seed drawn from ``config.rng(seed, "downstream", "clip", k)``. The lines of
the movie cohort's test episode are never used
(:func:`brainalign.tuning.selfsup.pretraining_lines`); lines of its training
episodes are, spoken by the same two voices, under other shots, so a model
tuned on the cohort has heard these lines but never seen them with these
faces. A shot shows the speaker's face or the other speaker's with equal
probability (:data:`DOWNSTREAM_FACE_P`: 0.35 each; a scene otherwise), so
that both labels of the related task are common.

**Probe** (:func:`probe_downstream`): a ridge classifier
(:class:`brainalign.probing.GramRidgeClassifier`, class-balanced) on the
features standardised inside each training fold, its penalty chosen from
:data:`PROBE_ALPHAS` by grouped cross-validation inside the training folds
only; the outer folds are grouped by clip (:func:`downstream_folds`), the
same for every model. For the related task the training windows of each
fold are also balanced over the four (speaker, face) pairs (a random subset,
the same for every model): the windows are balanced as a whole, but taking
out a fold's clips leaves the other pairs over-represented, and a probe of
the voice and the face apart then learns the opposite of the test fold's
imbalance (features holding the two apart scored 0.38, below chance, on the
default windows without this step; 0.55, CI 0.45-0.65, with it). The score
is the **balanced accuracy** of the held-out predictions, pooled over folds,
for both tasks (the mean recall over classes; chance is 1 / n_classes
whatever the class counts; on the related task's balanced windows it equals
the accuracy). Windows of one clip are not independent, so the confidence intervals resample clips (percentile
bootstrap), and the paired difference of each model to the reference is
tested by swapping the two models' predictions on randomly chosen clips (a
paired permutation test: under the null, the two models are exchangeable
within a clip). Both hold the fitted probes fixed: they leave out how the
score would vary with other training windows, which cross-validation
couples to the test windows. On 60 draws of noise features (360 windows of
30 clips; 10 and 100 dimensions) the 95% intervals covered chance 85-93% of
the time, and the scores varied 1.1-1.4 times as much as the bootstrap
says; read an interval that barely excludes chance with that in mind.
Everything is deterministic given ``seed``.

**The study's own tasks** (:data:`STUDY_TASKS`, the `paper` set): MUStARD
sarcasm and CMU-MOSEI sentiment and emotion, read by :mod:`brainalign.tasks`, become
windows with :func:`study_windows` (one per utterance or labelled segment,
read whole by :func:`brainalign.movie_features.clip_features`) and are probed
the same way, on the datasets' released splits (``folds`` of
:func:`probe_downstream`) instead of clip-grouped folds.

The module is longer than most: the offline tasks, the study's tasks and the
probe that scores both belong together, since the claims compare them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..probing import GramRidgeClassifier
from ..stimuli import Movie, make_movie
from .selfsup import pretraining_lines

__all__ = ["DOWNSTREAM_FACE_P", "PROBE_ALPHAS", "STUDY_TASKS", "TASKS", "downstream_clips", "downstream_folds",
           "downstream_lines", "downstream_predictions", "label_windows", "probe_downstream", "study_windows"]

#: the downstream tasks: name -> what a window's label says
TASKS = {
    "related": "1 if the face on screen is the speaking person's face, 0 if it is the other speaker's",
    "unrelated": "the scene image on screen (no face)",
}
#: the study's own downstream tasks (the `paper` set; real data only), read by :func:`study_windows`
STUDY_TASKS = {
    "sarcasm": "MUStARD: 1 if the utterance is sarcastic, 0 if not",
    "sentiment": "CMU-MOSEI: 1 if the segment's sentiment is non-negative, 0 if negative",
    "emotion": "CMU-MOSEI: the segment's strongest emotion (happy, sad, anger, surprise, disgust or fear)",
}
#: probabilities that a downstream clip's shot shows the face of the speaker talking at its middle, and the other face
DOWNSTREAM_FACE_P = (0.35, 0.35)
#: ridge penalties the probe chooses from (on standardised features)
PROBE_ALPHAS = tuple(10.0 ** np.arange(-1, 6))
#: the columns over whose combinations the training windows of a task are balanced in each fold (see the probe)
_STRATA = {"related": ("speaker", "on_screen"), "unrelated": (), "sarcasm": (), "sentiment": (), "emotion": ()}
_WINDOW_COLUMNS = ("clip", "group", "start", "end", "task", "label", "speaker", "on_screen", "image")


def _check_int(name: str, value: object, minimum: int, maximum: int | None = None, why: str = "") -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= minimum
    if not ok or (maximum is not None and value > maximum):
        valid = f"an integer >= {minimum}" if maximum is None else f"an integer in [{minimum}, {maximum}]"
        raise ValueError(f"{name}={value!r} must be {valid}{why}")
    return int(value)


def _check_seconds(window: float, stride: float, steady: float) -> None:
    if not (np.isfinite(stride) and stride > 0):
        raise ValueError(f"stride={stride!r} must be a positive number of seconds")
    if not (np.isfinite(steady) and 0 < steady):
        raise ValueError(f"steady={steady!r} must be a positive number of seconds")
    if not (np.isfinite(window) and window >= steady):
        raise ValueError(f"window={window!r} must be at least steady={steady!r} seconds")


def downstream_lines(n_clips: int = 29, lines_per_clip: int = 4) -> list[pd.DataFrame]:
    """The dialogue lines of each downstream clip: consecutive lines, none in two clips, none of the test episode.

    Clip ``k`` takes lines ``k * lines_per_clip`` to ``(k + 1) * lines_per_clip - 1``
    of :func:`brainalign.tuning.selfsup.pretraining_lines` (the dialogue
    without the movie cohort's test episode; 117 lines).

    Parameters
    ----------
    n_clips : int
        Number of clips, from 1 to ``len(pretraining_lines()) // lines_per_clip``.
    lines_per_clip : int
        Lines of dialogue per clip (>= 1).

    Returns
    -------
    list of DataFrame with columns ``speaker, line``
        One per clip, index from 0.
    """
    lines_per_clip = _check_int("lines_per_clip", lines_per_clip, 1)
    pool = pretraining_lines()
    n_clips = _check_int("n_clips", n_clips, 1, len(pool) // lines_per_clip,
                         f" ({len(pool)} lines of dialogue, {lines_per_clip} per clip, none in two clips)")
    return [pool.iloc[k * lines_per_clip:(k + 1) * lines_per_clip].reset_index(drop=True) for k in range(n_clips)]


def label_windows(clips: Sequence[Movie], window: float = 3.0, stride: float = 0.5, steady: float = 1.0) -> pd.DataFrame:
    """Every window of the clips whose label is unambiguous, for both tasks (not balanced).

    Parameters
    ----------
    clips : sequence of Movie
        Clip ``k`` of the sequence is clip ``k`` of the table.
    window : float
        Length of a window (s), at least ``steady``.
    stride : float
        Window ends lie on multiples of ``stride`` (s), with the whole window inside its clip.
    steady : float
        Seconds before a window's end during which its shot, and for the related
        task its line of dialogue, must not change.

    Returns
    -------
    DataFrame, one row per window, by clip then end
        ``clip`` (int), ``group`` (the cross-validation group: the clip),
        ``start`` and ``end`` (s; ``end - start == window``), ``task`` (a key of
        :data:`TASKS`), ``label`` (related: int 1 or 0; unrelated: the scene's
        image), ``speaker`` (who speaks throughout the last ``steady`` seconds;
        "" for the unrelated task), ``on_screen`` (whose face: "" for a scene)
        and ``image`` (the shot's image).
    """
    _check_seconds(window, stride, steady)
    rows, first = [], int(np.ceil(window / stride - 1e-9))  # the first end that leaves a whole window
    for k, clip in enumerate(clips):
        ends = stride * np.arange(first, int(np.floor(clip.duration / stride + 1e-9)) + 1)
        shots, lines = clip.shots, clip.lines
        shot = np.searchsorted(shots["onset"].to_numpy(), ends - steady, side="right") - 1
        for end, s in zip(ends, shot):
            if s < 0 or shots["offset"].iloc[s] < end:  # a cut within the last `steady` seconds
                continue
            face, image = str(shots["on_screen"].iloc[s]), str(shots["image"].iloc[s])
            if not face:
                rows.append((k, k, end - window, end, "unrelated", image, "", face, image))
                continue
            spoken = lines[(lines["onset"] <= end - steady) & (lines["offset"] >= end)]
            if len(spoken):
                speaker = str(spoken["speaker"].iloc[0])
                rows.append((k, k, end - window, end, "related", int(face == speaker), speaker, face, image))
    table = pd.DataFrame(rows, columns=list(_WINDOW_COLUMNS))
    return table.astype({"clip": int, "group": int, "start": float, "end": float, "label": object})


def _equal_cells(cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions of a random subset of ``cells`` with as many of each cell as the rarest has, in order."""
    _, cell, counts = np.unique(cells, return_inverse=True, return_counts=True)
    keep = [rng.choice(np.flatnonzero(cell == c), counts.min(), replace=False) for c in range(len(counts))]
    return np.sort(np.concatenate(keep))


def _cells(windows: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Each window's values of ``columns``, joined into one string."""
    return np.array(["|".join(map(str, row)) for row in windows[list(columns)].itertuples(index=False)], dtype=str)


def _balance_related(windows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Keep as many related-task windows of each (speaker, face) pair as the rarest pair has, chosen at random."""
    related = np.flatnonzero(windows["task"].to_numpy() == "related")
    pairs = _cells(windows.iloc[related], _STRATA["related"])
    if len(np.unique(pairs)) < 4:  # a pair never occurs: balancing leaves nothing
        keep = related[:0]
    else:
        keep = related[_equal_cells(pairs, config.rng(seed, "downstream", "balance"))]
    drop = np.setdiff1d(related, keep)
    return windows.drop(index=windows.index[drop]).reset_index(drop=True)


def downstream_clips(
    seed: int = 0,
    n_clips: int = 29,
    lines_per_clip: int = 4,
    window: float = 3.0,
    stride: float = 0.5,
    steady: float = 1.0,
    face_p: tuple[float, float] = DOWNSTREAM_FACE_P,
) -> tuple[list[Movie], pd.DataFrame]:
    """The movie clips of the downstream probes, and their labelled windows.

    The default makes 29 clips (the lines of :func:`downstream_lines`; 964 s
    of movie, 236 MB of frames, 12-15 s on the project machine) and 839
    windows: 384 of the related task, from all 29 clips (96 of each
    (speaker, face) pair, so 192 of each label), and 455 of the unrelated
    task, from 27 clips (camera 49, chelsea 57, coffee 106, coins 71,
    hubble_deep_field 106 and rocket 66 windows, from 10 to 21 shots of
    each scene).

    Parameters
    ----------
    seed : int
        Seed of the clips' pauses, shots and camera motion, and of the balancing (>= 0).
    n_clips, lines_per_clip : int
        As in :func:`downstream_lines`.
    window, stride, steady : float
        As in :func:`label_windows` (s).
    face_p : (float, float)
        Probabilities that a shot shows the face of the speaker talking at its
        middle, and the other speaker's face (:func:`stimuli.make_movie`).

    Returns
    -------
    clips : list of Movie
        In the movie cohort's format (5 frames/s, 128 x 128 pixels, 16 kHz).
    windows : DataFrame
        :func:`label_windows` of the clips, the related task's windows
        balanced over the four (speaker, face) pairs by keeping a random
        subset of each (none if a pair never occurs).
    """
    seed = _check_int("seed", seed, 0)
    _check_seconds(window, stride, steady)
    clips = [make_movie(lines, seed=int(config.rng(seed, "downstream", "clip", k).integers(2**31)), face_p=face_p)
             for k, lines in enumerate(downstream_lines(n_clips, lines_per_clip))]
    return clips, _balance_related(label_windows(clips, window, stride, steady), seed)


def study_windows(mustard: pd.DataFrame | None = None, mosei: pd.DataFrame | None = None) -> dict[str, tuple]:
    """The study's downstream items as windows of :data:`STUDY_TASKS`, with the datasets' own evaluation splits.

    A MUStARD utterance (task ``"sarcasm"``) is its whole utterance clip; a
    CMU-MOSEI segment (task ``"sentiment"``, binary: non-negative or negative,
    the convention of papers before 2019) is its interval of the video's full
    recording. Where the labels file holds the six emotions, the same segments
    make the task ``"emotion"``: the label is the emotion rated most intense,
    among the segments where one emotion is rated above all the others (a
    segment with no emotion, or a tie for the most intense, is left out), so
    one probe scores six classes, chance 1/6 in balanced accuracy. A MUStARD
    utterance is a group of its own (the unit the probe's intervals
    resample); the segments of one CMU-MOSEI video share a group (one speaker,
    one recording).

    Parameters
    ----------
    mustard : DataFrame, optional
        :func:`brainalign.tasks.load_mustard`'s table; every utterance's clip must be on disk (the release's
        splits hold every utterance).
    mosei : DataFrame, optional
        :func:`brainalign.tasks.load_mosei`'s table; segments whose video has no recording on disk, or is in no
        standard fold, are left out (``windows.attrs["left_out"]`` counts them).

    Returns
    -------
    dict: task -> (windows, splits)
        ``windows``: one row per item, columns ``path, start, end`` (NaN: the clip's own end), ``task``, ``label``
        (int; ``"emotion"``: the emotion's name), ``group``; ``splits``: setting name -> list of (train, test)
        positions among the windows, for :func:`probe_downstream`'s ``folds``: MUStARD's released 5 folds
        (``"5-fold"``) and its speaker-independent split (train on three shows, test on Friends), CMU-MOSEI's
        standard folds (train and valid against test) for both its tasks.
    """
    from .. import tasks

    out: dict[str, tuple] = {}
    if mustard is not None:
        missing = mustard.loc[mustard["utterance_video"].isna(), "id"].tolist()
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of the {len(mustard)} MUStARD utterance clips are not on disk (e.g. {missing[:3]}): the "
                f"released splits hold every utterance; unpack the clips ({tasks.MUSTARD_VIDEOS}) so that "
                f"{Path(mustard.attrs.get('root', '.')) / tasks.MUSTARD_VIDEO_DIRS[0][0]}/<id>.mp4 exist")
        windows = pd.DataFrame({"path": mustard["utterance_video"].astype(str), "start": 0.0, "end": np.nan,
                                "task": "sarcasm", "label": mustard["sarcasm"].astype(int), "group": mustard["id"].astype(str)})
        windows.attrs.update(dataset="MUStARD", synthetic=tasks.is_synthetic(mustard), left_out=0)
        splits = {"5-fold": [tuple(split) for split in tasks.mustard_folds(mustard)],
                  "speaker-independent": [tuple(tasks.mustard_speaker_independent(mustard))]}
        out["sarcasm"] = (windows, splits)
    if mosei is not None:
        usable = mosei["video_path"].notna() & mosei["split"].notna()
        if not usable.any():
            raise FileNotFoundError(
                f"no CMU-MOSEI segment has both its video's recording on disk ({mosei.attrs.get('n_videos', 0)} recordings "
                f"found) and a standard fold (folds file: {mosei.attrs.get('folds')}); put <video>.mp4 into "
                f"{Path(mosei.attrs.get('root', '.')) / tasks.MOSEI_VIDEO_DIRS[0]} and {tasks.MOSEI_FOLDS} beside the labels")
        rows = mosei[usable].reset_index(drop=True)
        windows = pd.DataFrame({"path": rows["video_path"].astype(str), "start": rows["start"], "end": rows["end"],
                                "task": "sentiment", "label": rows["binary"].astype(int), "group": rows["video"].astype(str)})
        windows.attrs.update(dataset="CMU-MOSEI", synthetic=tasks.is_synthetic(mosei), left_out=int((~usable).sum()))
        test = (rows["split"] == "test").to_numpy()
        if test.all() or not test.any():
            raise FileNotFoundError(f"the CMU-MOSEI recordings on disk ({mosei.attrs.get('n_videos', 0)}) cover "
                                    f"{'only' if test.all() else 'none of'} the standard test fold's videos; the probe needs "
                                    f"both sides: put the missing <video>.mp4 into "
                                    f"{Path(mosei.attrs.get('root', '.')) / tasks.MOSEI_VIDEO_DIRS[0]}")
        out["sentiment"] = (windows, {"standard folds": [(np.flatnonzero(~test), np.flatnonzero(test))]})
        emotions = rows[list(tasks.MOSEI_LABELS[1:])].to_numpy(float)
        if np.isfinite(emotions).all():  # the labels file has the emotions (NaN: only the sentiment column)
            top = emotions.max(1)
            one = (top > 0) & ((emotions == top[:, None]).sum(1) == 1)
            names = np.array(tasks.MOSEI_LABELS[1:])[emotions.argmax(1)]
            chosen = windows[one].reset_index(drop=True).assign(task="emotion", label=names[one])
            chosen.attrs.update(windows.attrs, left_out=windows.attrs["left_out"] + int((~one).sum()))
            if test[one].all() or not test[one].any():
                raise ValueError(f"the CMU-MOSEI segments with one strongest emotion ({int(one.sum())}) are "
                                 f"{'all' if test[one].all() else 'none'} in the standard test fold; the emotion probe "
                                 "needs both sides")
            out["emotion"] = (chosen, {"standard folds": [(np.flatnonzero(~test[one]), np.flatnonzero(test[one]))]})
    if not out:
        raise ValueError("give the MUStARD table, the CMU-MOSEI table, or both")
    return out


def _task_rows(windows: pd.DataFrame, task: str) -> pd.DataFrame:
    """The windows of ``task``, checked: a task of :data:`TASKS` or :data:`STUDY_TASKS` with windows of two classes or more."""
    if task not in _STRATA:
        raise ValueError(f"unknown task {task!r}; valid tasks: {[*TASKS, *STUDY_TASKS]}")
    missing = [c for c in ("task", "label", "group", *_STRATA[task]) if c not in windows.columns]
    if missing:
        raise ValueError(f"windows lack the columns {missing}; label_windows, downstream_clips and study_windows give them")
    rows = windows[windows["task"] == task].reset_index(drop=True)
    n_classes = rows["label"].nunique()
    if n_classes < 2:
        raise ValueError(f"task {task!r} has {len(rows)} windows of {n_classes} class(es); a probe needs at least 2 classes")
    return rows


def _group_folds(groups: np.ndarray, n_folds: int, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds of whole groups: the groups shuffled, then cut into ``n_folds`` parts of (nearly) equal counts."""
    parts = np.array_split(rng.permutation(np.unique(groups)), n_folds)
    return [(np.flatnonzero(~np.isin(groups, part)), np.flatnonzero(np.isin(groups, part))) for part in parts]


def downstream_folds(windows: pd.DataFrame, task: str, n_folds: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds of a task's windows, grouped: the windows of one clip are all on one side.

    The groups (clips) are shuffled by ``config.rng(seed, "downstream",
    "folds", task)`` and cut into ``n_folds`` parts of as many groups each
    (to one group).

    Parameters
    ----------
    windows : DataFrame
        With columns ``task, label, group`` (:func:`downstream_clips`); only the rows of ``task`` are split.
    task : str
        A key of :data:`TASKS`.
    n_folds : int
        From 2 to the number of groups of the task's windows.
    seed : int
        Seed of the shuffle.

    Returns
    -------
    list of (train, test)
        Integer arrays of positions among the task's windows (in the table's order); every window is tested once.
    """
    rows = _task_rows(windows, task)
    groups = rows["group"].to_numpy()
    n_groups = len(np.unique(groups))
    n_folds = _check_int("n_folds", n_folds, 2, n_groups, f" (the windows of task {task!r} come from {n_groups} groups)")
    return _group_folds(groups, n_folds, config.rng(seed, "downstream", "folds", task))


def _fit_probe(Z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[GramRidgeClassifier, np.ndarray, np.ndarray]:
    """A class-balanced ridge classifier of standardised ``Z``, and the mean and scale it standardised with."""
    mean, scale = Z.mean(0), Z.std(0)
    scale[scale == 0] = 1.0  # as StandardScaler: a constant feature stays 0
    probe = GramRidgeClassifier((Z - mean) / scale, y, alpha, balanced=True)
    probe.fit()
    return probe, mean, scale


def _balanced_accuracy(hits: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Balanced accuracy from counts of windows of each class predicted correctly and in all: (n_draws, n_classes) each.

    A class absent from a draw does not count (as in ``sklearn.metrics.balanced_accuracy_score``).
    """
    recall = np.divide(hits, counts, out=np.full(hits.shape, np.nan), where=counts > 0)
    return np.nanmean(recall, axis=1)


def _choose_alpha(Z: np.ndarray, y: np.ndarray, groups: np.ndarray, n_folds: int, alphas: Sequence[float],
                  rng: np.random.Generator) -> float:
    """The penalty whose pooled held-out balanced accuracy over grouped folds of ``Z`` is best (ties: the largest)."""
    from sklearn.metrics import balanced_accuracy_score

    folds = _group_folds(groups, min(n_folds, len(np.unique(groups))), rng)
    predicted = np.empty((len(alphas), len(y)), dtype=y.dtype)
    for train, test in folds:
        probe, mean, scale = _fit_probe(Z[train], y[train], alphas[0])
        for a, alpha in enumerate(alphas):
            probe.alpha = float(alpha)  # one Gram matrix, one solve per penalty
            probe.fit()
            predicted[a, test] = probe.predict((Z[test] - mean) / scale)
    scores = [balanced_accuracy_score(y, p) for p in predicted]
    return float(max(a for a, s in zip(alphas, scores) if s >= max(scores) - 1e-12))


def _check_features(features: Mapping[str, np.ndarray], n_windows: int, task: str) -> dict[str, np.ndarray]:
    if not isinstance(features, Mapping) or not features:
        raise ValueError("features must be a non-empty dict: model name -> array of shape (n_windows, dim)")
    out = {}
    for name, X in features.items():
        if str(name) in ("group", "label", "fold"):
            raise ValueError(f"model name {name!r} is taken by a column of the predictions; name it otherwise")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) != n_windows:
            raise ValueError(f"features[{name!r}] has shape {X.shape}; task {task!r} has {n_windows} windows, "
                             f"so it must be ({n_windows}, dim)")
        if not np.isfinite(X).all():
            raise ValueError(f"features[{name!r}] holds non-finite values")
        out[str(name)] = X
    return out


def _check_folds(folds: Sequence, n_rows: int, task: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Given (train, test) position pairs among a task's windows: in range, each pair disjoint, the test sets too."""
    out, tested = [], np.zeros(n_rows, dtype=int)
    for k, pair in enumerate(folds):
        train, test = (np.asarray(part, dtype=np.int64).ravel() for part in pair)
        if len(train) == 0 or len(test) == 0:
            raise ValueError(f"fold {k} of task {task!r} has {len(train)} training and {len(test)} test windows; both need some")
        if min(train.min(), test.min()) < 0 or max(train.max(), test.max()) >= n_rows:
            raise ValueError(f"fold {k} of task {task!r} indexes windows outside 0..{n_rows - 1}")
        if np.intersect1d(train, test).size:
            raise ValueError(f"fold {k} of task {task!r} has windows on both sides")
        np.add.at(tested, test, 1)
        out.append((train, test))
    if not out:
        raise ValueError(f"folds of task {task!r} is empty; give one (train, test) pair or more")
    if tested.max() > 1:
        raise ValueError(f"the test sets of the folds of task {task!r} overlap: a window is tested {tested.max()} times")
    return out


def downstream_predictions(
    features: Mapping[str, np.ndarray],
    windows: pd.DataFrame,
    task: str,
    n_folds: int = 5,
    seed: int = 0,
    alphas: Sequence[float] = PROBE_ALPHAS,
    folds: Sequence | None = None,
) -> pd.DataFrame:
    """Held-out predictions of a linear probe of each model's frozen features, on the same folds for every model.

    For each fold of :func:`downstream_folds`, the penalty is chosen among
    ``alphas`` by grouped cross-validation inside the training windows (as
    many inner folds as ``n_folds``, at most one per training clip; the best
    pooled balanced accuracy, ties to the largest penalty), then a
    class-balanced ridge classifier (:class:`probing.GramRidgeClassifier`)
    of the features standardised on the training windows is fitted with it
    and predicts the test windows. For the related task, the training
    windows of each fold are first cut to as many of each (speaker, face)
    pair as the rarest pair has (a random subset, the same for every model;
    the module docstring says why).

    Parameters
    ----------
    features : dict
        Model name -> array of shape (n_windows, dim): the features of the
        task's windows, in the table's order.
    windows : DataFrame
        With columns ``task, label, group`` and, for the related task,
        ``speaker, on_screen`` (:func:`downstream_clips`).
    task : str
        A key of :data:`TASKS` or :data:`STUDY_TASKS`.
    n_folds : int
        Outer folds, from 2 to the number of groups; every training side must hold at least two groups. With
        ``folds``, the most inner folds that choose the penalty.
    seed : int
        Seed of the outer and inner folds.
    alphas : sequence of float
        Candidate penalties (positive).
    folds : sequence of (train, test), optional
        The outer folds themselves, as positions among the task's windows (in the table's order), e.g. a
        dataset's released splits (:func:`brainalign.tasks.mustard_folds`); the test sets must not overlap, and
        windows that no test set holds are left out of the predictions. None: :func:`downstream_folds`.

    Returns
    -------
    DataFrame, one row per tested window of the task
        ``group``, ``label``, ``fold`` (the fold that tests it) and one column of
        predicted labels per model; ``attrs["alphas"]`` holds, per model, the
        penalty chosen in each fold.
    """
    rows = _task_rows(windows, task)
    folds = downstream_folds(rows, task, n_folds, seed) if folds is None else _check_folds(folds, len(rows), task)
    features = _check_features(features, len(rows), task)
    alphas = [float(a) for a in alphas]
    if not alphas or min(alphas) <= 0:
        raise ValueError(f"alphas={alphas!r} must be one or more positive penalties")
    groups = rows["group"].to_numpy()
    y = np.asarray(rows["label"].tolist())  # int labels (related) or str (unrelated), not object
    if _STRATA[task]:  # the same training windows for every model
        cells = _cells(rows, _STRATA[task])
        folds = [(train[_equal_cells(cells[train], config.rng(seed, "downstream", "train", task, f))], test)
                 for f, (train, test) in enumerate(folds)]
    n_train = [len(np.unique(groups[train])) for train, _ in folds]
    if min(n_train) < 2:
        raise ValueError(f"n_folds={n_folds} leaves {min(n_train)} group on a training side, which needs at least 2 "
                         f"to choose the penalty; use fewer folds (the task has {len(np.unique(groups))} groups)")
    out = pd.DataFrame({"group": groups, "label": y, "fold": 0})
    chosen: dict[str, list[float]] = {}
    for name, X in features.items():
        predicted = np.empty(len(y), dtype=y.dtype)
        chosen[name] = []
        for f, (train, test) in enumerate(folds):
            inner = config.rng(seed, "downstream", "inner-folds", task, f)
            alpha = _choose_alpha(X[train], y[train], groups[train], n_folds, alphas, inner)
            probe, mean, scale = _fit_probe(X[train], y[train], alpha)
            predicted[test] = probe.predict((X[test] - mean) / scale)
            out.loc[test, "fold"] = f
            chosen[name].append(alpha)
        out[name] = predicted
    tested = np.sort(np.concatenate([test for _, test in folds]))
    out = out.iloc[tested].reset_index(drop=True)
    out.attrs["alphas"] = chosen
    return out


def probe_downstream(
    features: Mapping[str, np.ndarray],
    windows: pd.DataFrame,
    task: str,
    n_folds: int = 5,
    seed: int = 0,
    n_boot: int = 1000,
    reference: str | None = None,
    ci: float = 0.95,
    alphas: Sequence[float] = PROBE_ALPHAS,
    folds: Sequence | None = None,
) -> pd.DataFrame:
    """Balanced accuracy of a linear probe of each model's frozen features, and its paired difference to a reference.

    The held-out predictions are :func:`downstream_predictions`'s (the same
    folds for every model). The score is the balanced accuracy of all held-out
    windows; its confidence interval is the percentile bootstrap over clips
    (groups): ``n_boot`` draws of as many clips as there are, with
    replacement, each scored on the windows of the clips drawn, the same draws
    for every model. The difference to the reference model has its interval
    from the same draws, and a one-sided p-value (model better than the
    reference) from ``n_boot`` paired permutations: on each clip, with
    probability 1/2, the two models' predictions are swapped; ``p = (1 +
    #{permuted difference >= observed}) / (1 + n_boot)``. Both hold the
    fitted probes fixed (the module docstring says what that leaves out).

    Parameters
    ----------
    features, windows, task, n_folds, alphas, folds
        As in :func:`downstream_predictions`.
    seed : int
        Seed of the folds, the bootstrap draws and the permutations.
    n_boot : int
        Bootstrap draws, and permutations (>= 1).
    reference : str, optional
        The model the others are compared with (default: the first key of ``features``).
    ci : float
        Confidence level of the intervals, in (0, 1).

    Returns
    -------
    DataFrame indexed by model, in the order of ``features``
        ``task``, ``metric`` ("balanced accuracy"), ``score``, ``ci_low``,
        ``ci_high``, ``chance`` (1 / n_classes), ``reference``, ``diff``
        (score minus the reference's), ``diff_low``, ``diff_high``, ``p``
        (one-sided; NaN for the reference itself), ``alpha`` (the median
        penalty chosen over folds), ``n_windows`` and ``n_clips``.
    """
    names = [str(name) for name in features] if isinstance(features, Mapping) else []
    reference = names[0] if reference is None and names else reference
    if names and reference not in names:
        raise ValueError(f"unknown reference model {reference!r}; valid: {names}")
    n_boot = _check_int("n_boot", n_boot, 1)
    if not 0 < ci < 1:
        raise ValueError(f"ci={ci!r} must be in (0, 1)")
    predictions = downstream_predictions(features, windows, task, n_folds, seed, alphas, folds)
    y = predictions["label"].to_numpy()
    groups, clip = np.unique(predictions["group"].to_numpy(), return_inverse=True)
    classes, label = np.unique(y, return_inverse=True)
    total = np.zeros((len(groups), len(classes)))
    np.add.at(total, (clip, label), 1)

    def correct(name: str) -> np.ndarray:
        counts = np.zeros_like(total)
        np.add.at(counts, (clip, label), predictions[name].to_numpy() == y)
        return counts

    hits = {name: correct(name) for name in names}
    n_clips = len(groups)
    draws = config.rng(seed, "downstream", "bootstrap", task).multinomial(n_clips, np.full(n_clips, 1 / n_clips), n_boot)
    swaps = config.rng(seed, "downstream", "swap", task).integers(0, 2, (n_boot, n_clips)).astype(float)
    tails = [(1 - ci) / 2 * 100, (1 + ci) / 2 * 100]
    boot = {name: _balanced_accuracy(draws @ hits[name], draws @ total) for name in names}
    whole = total.sum(0, keepdims=True)
    score = {name: float(_balanced_accuracy(hits[name].sum(0, keepdims=True), whole)[0]) for name in names}
    rows = {}
    for name in names:
        low, high = np.percentile(boot[name], tails)
        diff_low, diff_high = np.percentile(boot[name] - boot[reference], tails)
        diff, p = score[name] - score[reference], np.nan
        if name != reference:  # swap the two models' predictions on a random half of the clips
            mine = (1 - swaps) @ hits[name] + swaps @ hits[reference]
            theirs = (1 - swaps) @ hits[reference] + swaps @ hits[name]
            permuted = _balanced_accuracy(mine, whole) - _balanced_accuracy(theirs, whole)
            p = (1 + np.sum(permuted >= diff - 1e-12)) / (1 + n_boot)
        rows[name] = dict(task=task, metric="balanced accuracy", score=score[name], ci_low=low, ci_high=high,
                          chance=1 / len(classes), reference=reference, diff=diff, diff_low=diff_low,
                          diff_high=diff_high, p=p, alpha=float(np.median(predictions.attrs["alphas"][name])),
                          n_windows=len(y), n_clips=n_clips)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table
