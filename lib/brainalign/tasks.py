"""Downstream tasks of the audio-video brain-tuning study: MUStARD (sarcasm) and CMU-MOSEI (sentiment).

Policzer, Braunstein & Toneva (2025) evaluate a brain-tuned audio-video model on
sarcasm detection (MUStARD) and on sentiment (CMU-MOSEI). This module reads both
datasets from their released on-disk formats, builds their standard splits, and
writes small synthetic stand-ins in exactly those formats for tests and for the
embedded default. Nothing here downloads: a missing dataset stops with a message
that says where the real data comes from and which folder to fill.

* ``load_mustard(root)`` reads ``<root>/data/sarcasm_data.json`` (and finds the clips where present):
  one row per utterance, with the paths of its utterance and context clips.
* ``mustard_folds(table)`` gives the 5 released stratified folds (``<root>/data/split_indices.p``),
  or, without that file, a seeded stratified 5-fold split made the same way.
* ``mustard_speaker_independent(table)`` gives the release's speaker-independent split (test: the
  Friends utterances; train: The Big Bang Theory, The Golden Girls, Sarcasmaholics Anonymous).
* ``load_mosei(root)`` reads ``<root>/CMU_MOSEI_Labels.csd`` (and the SDK's standard folds from
  ``<root>/cmu_mosei_std_folds.py`` or an installed SDK): one row per labelled segment, with the
  sentiment, the six emotions, the binary and 7-class labels and the standard fold.

Default roots: ``config.data_home() / "mustard"`` and ``config.data_home() / "cmu_mosei"``.

Synthetic data is never mistaken for the real thing: ``write_mustard_fixture`` and
``write_mosei_fixture`` leave a marker file (``.brainalign-synthetic``) next to the
data, every table loaded from such a folder carries ``table.attrs["synthetic"] = True``
(and every split ``Split.synthetic = True``), and ``is_synthetic(obj)`` tells a
notebook which it holds. Fixture text says that it is generated.

The module is longer than most (about 760 lines): 140 of them are the record of facts below,
which belongs beside the readers it constrains, and the two datasets share their split, marker
and error code, so they stay together.

Facts and where they were checked
---------------------------------
[V] = verified in the source named; [U] = unverified.

MUStARD (Castro et al., ACL 2019; repository ``soujanyaporia/MUStARD``, MIT licence):

* [V, README + ``data/sarcasm_data.json``] the annotation file maps an id (e.g. ``"1_60"``) to
  ``{"utterance": str, "speaker": str, "context": [str], "context_speakers": [str], "sarcasm": bool}``.
* [V, ``data_loader.py``, ``data/sarcasm_speaker_independent_test.jsonnet``] the current release
  adds ``"show"`` (older versions of the file lack it; ``load_mustard`` then leaves ``show`` empty
  and the speaker-independent split cannot be built). Show codes seen in third-party analysis code:
  ``FRIENDS``, ``GOLDENGIRLS``, ``BBT``, ``SARCASMOHOLICS`` [U, not read in the release itself].
* [V, ``data_loader.py``] ``data/split_indices.p`` is a pickle (protocol 2, read with
  ``encoding="latin1"``) of 5 ``(train_index, test_index)`` pairs from
  ``StratifiedKFold(n_splits=5, shuffle=True)`` over the utterances in file order; the README
  evaluates with weighted F-score in this 5-fold cross-validation.
* [V, ``data_loader.speaker_independent_split`` and the ``.jsonnet`` test split] the
  speaker-independent setting tests on the utterances whose show is ``"FRIENDS"`` and trains on all
  others (the method's docstring says "Test: TBBT", but its code and the jsonnet split both select
  FRIENDS; the code is followed here). Speakers are named per show, so the Friends characters are
  unseen in training; generic labels such as ``PERSON`` can occur in several shows.
* [V, README] the raw clips are in a Google Drive file linked from the README; [V, HELM's MUStARD
  scenario] the archive holds ``utterances_final/<id>.mp4`` and ``context_final/<id>_c.mp4``.
* [V, secondary: Ray et al. 2022, MUStARD++, "out of 690"] 690 utterances; [U] 345 of them sarcastic
  (the annotation file itself was not counted here).

CMU-MOSEI (Zadeh et al., ACL 2018; CMU Multimodal SDK, ``CMU-MultiComp-Lab/CMU-MultimodalSDK``, MIT licence):

* [V, SDK ``standard_datasets/CMU_MOSEI/cmu_mosei.py``] the labels are the computational sequence
  ``CMU_MOSEI_Labels.csd`` ("All Labels"), downloaded by the SDK.
* [V, SDK ``computational_sequence/file_ops.py``] a ``.csd`` file is HDF5: one root group, with
  ``data/<video_id>/features`` (n_segments, n_dims) and ``data/<video_id>/intervals`` (n_segments, 2,
  start and end in seconds), and ``metadata/<key>`` (1-element variable-length strings holding JSON).
  The root group's name in the released labels file is [U]; the reader takes the first root group,
  as the SDK does.
* [V, SDK ``standard_datasets/CMU_MOSEI/README.md``] label columns are
  ``[sentiment, happy, sad, anger, surprise, disgust, fear]``; sentiment in [-3, 3], emotions in
  [0, 3]; binary sentiment is negative (< 0) vs non-negative (>= 0) (papers before 2019) or negative
  vs positive with zeros dropped (after 2019); the README's 7-class binning is reproduced by
  ``mosei_seven_class(method="sdk")``. The table's ``sentiment_7`` uses ``round(clip(s, -3, 3))``,
  the Acc-7 convention of later evaluation code [U: convention of MulT-style code, not of the SDK].
* [V, SDK ``cmu_mosei_std_folds.py``] the standard folds are three Python lists of video ids,
  ``standard_train_fold``, ``standard_valid_fold`` and ``standard_test_fold``. They are read here,
  without executing the file, from a copy of that file in the dataset folder, or from an installed
  ``mmsdk`` package.
* [U] about 23.5k labelled segments from about 3.2k videos.
* [V, third-party preprocessing code of the raw release, several repositories] the raw archive
  (``CMU_MOSEI.zip``) holds each video's full recording as ``Raw/Videos/Full/Combined/<video>.mp4``
  (some copies drop the ``Raw/`` level); the labels' intervals are seconds of that recording. [U] a
  few labelled videos lack their recording in the archive.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import pickle
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import config
from .cache import atomic_write

__all__ = [
    "TaskDataError",
    "Split",
    "MUSTARD_FOLDER",
    "MOSEI_FOLDER",
    "MUSTARD_KEYS",
    "MOSEI_LABELS",
    "MOSEI_VIDEO_DIRS",
    "SYNTHETIC_MARKER",
    "mustard_root",
    "mosei_root",
    "load_mustard",
    "mustard_folds",
    "mustard_speaker_independent",
    "load_mosei",
    "mosei_seven_class",
    "is_synthetic",
    "write_mustard_fixture",
    "write_mosei_fixture",
]

MUSTARD_FOLDER = "mustard"
MOSEI_FOLDER = "cmu_mosei"
SYNTHETIC_MARKER = ".brainalign-synthetic"

#: keys of an utterance in ``sarcasm_data.json`` (``show`` is absent from older releases)
MUSTARD_KEYS = ("utterance", "speaker", "context", "context_speakers", "show", "sarcasm")
MUSTARD_JSON = "data/sarcasm_data.json"
MUSTARD_SPLIT = "data/split_indices.p"
MUSTARD_SHOWS = ("BBT", "FRIENDS", "GOLDENGIRLS", "SARCASMOHOLICS")
#: the show held out as test set in the speaker-independent setting
MUSTARD_HELD_OUT_SHOW = "FRIENDS"
MUSTARD_REPO = "https://github.com/soujanyaporia/MUStARD"
MUSTARD_VIDEOS = "https://drive.google.com/file/d/1i9ixalVcXskA5_BkNnbR60sqJqvGyi6E/view"
#: folders (relative to the MUStARD root) searched for the utterance and the context clips, in order
MUSTARD_VIDEO_DIRS = (
    ("videos/utterances_final", "videos/context_final"),
    ("utterances_final", "context_final"),
    ("mmsd_raw_data/utterances_final", "mmsd_raw_data/context_final"),
    ("data/videos", "data/videos"),
)

#: columns of the CMU-MOSEI "All Labels" computational sequence, in order
MOSEI_LABELS = ("sentiment", "happy", "sad", "anger", "surprise", "disgust", "fear")
MOSEI_CSD = "CMU_MOSEI_Labels.csd"
MOSEI_FOLDS = "cmu_mosei_std_folds.py"
MOSEI_FOLD_NAMES = {"standard_train_fold": "train", "standard_valid_fold": "valid", "standard_test_fold": "test"}
MOSEI_SDK = "https://github.com/CMU-MultiComp-Lab/CMU-MultimodalSDK"
MOSEI_LABELS_URL = "http://immortal.multicomp.cs.cmu.edu/CMU-MOSEI/labels/CMU_MOSEI_Labels.csd"
MOSEI_RAW_URL = "http://immortal.multicomp.cs.cmu.edu/raw_datasets/CMU_MOSEI.zip"
#: folders (relative to the CMU-MOSEI root) searched for each video's full recording, ``<video>.mp4``, in order
MOSEI_VIDEO_DIRS = ("Raw/Videos/Full/Combined", "Videos/Full/Combined")
_TOL = 1e-6


class TaskDataError(ValueError):
    """A task dataset that is present but unreadable, or whose labels are out of range."""


@dataclass(frozen=True, eq=False)
class Split:
    """One train / test split of a task table.

    Unpacks as ``train, test = split``.

    Attributes
    ----------
    train, test : int array of shape (n_train,), (n_test,)
        Row positions in the table the split was made for.
    name : str
        E.g. ``"fold 1/5"`` or ``"speaker-independent"``.
    source : str
        Where the split comes from (the released split file, or the seeded rule that made it).
    synthetic : bool
        True when the table is a synthetic fixture.
    """

    train: np.ndarray
    test: np.ndarray
    name: str
    source: str
    synthetic: bool

    def __iter__(self):
        yield self.train
        yield self.test

    def __repr__(self) -> str:
        tag = ", synthetic" if self.synthetic else ""
        return f"Split({self.name!r}, n_train={len(self.train)}, n_test={len(self.test)}, source={self.source!r}{tag})"


def is_synthetic(obj: object) -> bool:
    """True when ``obj`` (a task table, a ``Split``, or a list of them) comes from a synthetic fixture."""
    if isinstance(obj, (list, tuple)) and not isinstance(obj, Split):
        return any(is_synthetic(o) for o in obj)
    attrs = getattr(obj, "attrs", None)
    if isinstance(attrs, dict) and "synthetic" in attrs:
        return bool(attrs["synthetic"])
    return bool(getattr(obj, "synthetic", False))


def mustard_root(root: str | Path | None = None) -> Path:
    """The MUStARD folder: ``root`` if given, else ``<data home>/mustard``."""
    return Path(root) if root is not None else config.data_home() / MUSTARD_FOLDER


def mosei_root(root: str | Path | None = None) -> Path:
    """The CMU-MOSEI folder: ``root`` if given, else ``<data home>/cmu_mosei``."""
    return Path(root) if root is not None else config.data_home() / MOSEI_FOLDER


def _synthetic(root: Path) -> bool:
    return (root / SYNTHETIC_MARKER).is_file()


def _mustard_hint(root: Path) -> str:
    return (
        f"MUStARD comes from {MUSTARD_REPO} (annotations {MUSTARD_JSON} and the 5-fold split {MUSTARD_SPLIT}; "
        f"MIT licence) and the raw clips from the Google Drive link in its README ({MUSTARD_VIDEOS}). "
        f"Put the repository in {root} (e.g. `git clone {MUSTARD_REPO} {root}`) and unpack the clips into "
        f"{root / 'videos'} (so that videos/utterances_final/<id>.mp4 and videos/context_final/<id>_c.mp4 exist). "
        "A synthetic stand-in for tests: brainalign.tasks.write_mustard_fixture(root)."
    )


def _mosei_hint(root: Path) -> str:
    return (
        f"CMU-MOSEI labels come from the CMU Multimodal SDK ({MOSEI_SDK}): "
        f"`from mmsdk import mmdatasdk; mmdatasdk.mmdataset(mmdatasdk.cmu_mosei.labels, '{root}')` downloads "
        f"{MOSEI_CSD} ({MOSEI_LABELS_URL}); copy the SDK's "
        f"mmsdk/mmdatasdk/dataset/standard_datasets/CMU_MOSEI/{MOSEI_FOLDS} into {root} too (or install the SDK) "
        f"for the standard train/valid/test folds, and unpack the raw videos ({MOSEI_RAW_URL}) there, so that "
        f"{root / MOSEI_VIDEO_DIRS[0]}/<video>.mp4 exist. "
        "A synthetic stand-in for tests: brainalign.tasks.write_mosei_fixture(root)."
    )


# -- MUStARD -----------------------------------------------------------------------------
def _check_str_list(value: object, key: str, uid: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TaskDataError(f"{path}: utterance {uid!r} has {key}={value!r}; expected a list of strings")
    return value


def _video(root: Path, dirs: Sequence[str], name: str) -> str | None:
    for d in dirs:
        path = root / d / name
        if path.is_file() and path.stat().st_size > 0:
            return str(path)
    return None


def load_mustard(root: str | Path | None = None) -> pd.DataFrame:
    """The MUStARD utterances, one row per utterance, in the order of ``sarcasm_data.json``.

    Parameters
    ----------
    root : path, optional
        The MUStARD folder (a clone of the repository, plus the clips); default ``<data home>/mustard``.

    Returns
    -------
    table : DataFrame of shape (n_utterances, 10)
        Columns ``id`` (str), ``order`` (position in the file, which ``split_indices.p`` indexes),
        ``utterance``, ``speaker`` (str), ``context``, ``context_speakers`` (lists of str), ``show``
        (str, or None for releases without it), ``sarcasm`` (bool), ``utterance_video`` and
        ``context_video`` (path of ``<id>.mp4`` / ``<id>_c.mp4``, or None where the clip is absent).
        ``table.attrs`` holds ``dataset``, ``root``, ``synthetic`` (True for a fixture), ``n_utterances``
        and ``n_videos``.

    Raises
    ------
    FileNotFoundError
        The annotation file is missing (the message says where MUStARD comes from and where to put it).
    TaskDataError
        The file is not valid JSON, an utterance lacks a key, or a label is not a boolean.
    """
    root = mustard_root(root)
    path = root / MUSTARD_JSON
    if not path.is_file():
        raise FileNotFoundError(f"MUStARD annotations not found: {path} is missing. {_mustard_hint(root)}")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TaskDataError(f"{path} is not valid JSON ({err}); replace it with {MUSTARD_JSON} from {MUSTARD_REPO}") from err
    if not isinstance(raw, dict) or not raw:
        raise TaskDataError(f"{path}: expected an object mapping utterance ids to utterances, got {type(raw).__name__}")
    required = [k for k in MUSTARD_KEYS if k != "show"]
    rows = []
    for order, (uid, item) in enumerate(raw.items()):
        if not isinstance(item, dict):
            raise TaskDataError(f"{path}: utterance {uid!r} is a {type(item).__name__}, expected an object with keys {required}")
        missing = [k for k in required if k not in item]
        if missing:
            raise TaskDataError(f"{path}: utterance {uid!r} lacks {missing}; every utterance needs {required} (and 'show')")
        label = item["sarcasm"]
        if not isinstance(label, bool):
            raise TaskDataError(f"{path}: utterance {uid!r} has sarcasm={label!r}; valid labels: true, false (JSON booleans)")
        for key in ("utterance", "speaker"):
            if not isinstance(item[key], str):
                raise TaskDataError(f"{path}: utterance {uid!r} has {key}={item[key]!r}; expected a string")
        context = _check_str_list(item["context"], "context", uid, path)
        speakers = _check_str_list(item["context_speakers"], "context_speakers", uid, path)
        if len(context) != len(speakers):
            warnings.warn(f"{path}: utterance {uid!r} has {len(context)} context lines but {len(speakers)} context speakers",
                          stacklevel=2)
        show = item.get("show")
        if show is not None and not isinstance(show, str):
            raise TaskDataError(f"{path}: utterance {uid!r} has show={show!r}; expected a string such as {list(MUSTARD_SHOWS)}")
        rows.append({"id": str(uid), "order": order, "utterance": item["utterance"], "speaker": item["speaker"],
                     "context": list(context), "context_speakers": list(speakers), "show": show, "sarcasm": label})
    table = pd.DataFrame(rows)
    dirs_u = [u for u, _ in MUSTARD_VIDEO_DIRS]
    dirs_c = [c for _, c in MUSTARD_VIDEO_DIRS]
    table["utterance_video"] = pd.Series([_video(root, dirs_u, f"{uid}.mp4") for uid in table["id"]], dtype=object)
    table["context_video"] = pd.Series([_video(root, dirs_c, f"{uid}_c.mp4") for uid in table["id"]], dtype=object)
    table["sarcasm"] = table["sarcasm"].astype(bool)
    table.attrs.update(dataset="MUStARD", root=str(root), synthetic=_synthetic(root), n_utterances=len(table),
                       n_videos=int(table["utterance_video"].notna().sum()))
    return table


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays, lists and tuples only (the content of ``split_indices.p``), never arbitrary objects."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a split file (only numpy arrays)")
        return super().find_class(module.replace("numpy.core.", "numpy._core."), name)


def _read_split_file(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    try:
        with open(path, "rb") as f:
            folds = _IndexUnpickler(f, encoding="latin1").load()
        pairs = [(np.asarray(tr, dtype=np.int64).ravel(), np.asarray(te, dtype=np.int64).ravel()) for tr, te in folds]
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, ImportError) as err:
        raise TaskDataError(f"{path} is not a MUStARD split file (a pickle of (train_idx, test_idx) pairs): {err}; "
                            f"replace it with {MUSTARD_SPLIT} from {MUSTARD_REPO}") from err
    return pairs


def mustard_folds(table: pd.DataFrame, root: str | Path | None = None, n_splits: int = 5, seed: int = 0) -> list[Split]:
    """The 5 stratified cross-validation folds of MUStARD.

    The released folds (``data/split_indices.p``, which index the utterances in file order) are used
    when the file is present; otherwise the folds are made the way the release made them,
    ``StratifiedKFold(n_splits, shuffle=True)`` on the sarcasm labels in file order, with
    ``random_state=seed`` (``Split.source`` says which).

    Parameters
    ----------
    table : DataFrame
        From ``load_mustard`` (all utterances; its rows may be reordered but not dropped).
    root : path, optional
        The MUStARD folder (default: the table's ``attrs["root"]``, else ``<data home>/mustard``).
    n_splits : int
        Number of folds for the seeded fallback (the release has 5).
    seed : int
        Seed of the fallback.

    Returns
    -------
    folds : list of Split
        Positions into ``table``; the test sets are disjoint and cover every row.
    """
    if "order" not in table or "sarcasm" not in table:
        raise ValueError("mustard_folds needs the table from load_mustard (columns 'order' and 'sarcasm')")
    root = mustard_root(root if root is not None else table.attrs.get("root"))
    order = table["order"].to_numpy(dtype=np.int64)
    n = len(table)
    n_file = int(table.attrs.get("n_utterances", n))
    if n != n_file or sorted(order.tolist()) != list(range(n)):
        raise ValueError(f"the table has {n} of the {n_file} utterances of its file: folds need all of them, "
                         "so split the full table and subset afterwards")
    position = np.empty(n, dtype=np.int64)
    position[order] = np.arange(n)
    synthetic = is_synthetic(table)
    path = root / MUSTARD_SPLIT
    if path.is_file():
        pairs = _read_split_file(path)
        source = str(path)
        covered = np.concatenate([te for _, te in pairs]) if pairs else np.array([], dtype=np.int64)
        for k, (tr, te) in enumerate(pairs):
            bad = [int(i) for i in np.concatenate([tr, te]) if not 0 <= i < n]
            if bad:
                raise TaskDataError(f"{path}: fold {k + 1} indexes utterances {bad[:5]} outside 0..{n - 1}; "
                                    f"the split file does not belong to this sarcasm_data.json ({n} utterances)")
            if np.intersect1d(tr, te).size or len(np.union1d(tr, te)) != n:
                raise TaskDataError(f"{path}: fold {k + 1} train and test overlap or miss utterances (n={n})")
        if len(covered) != n or len(np.unique(covered)) != n:
            raise TaskDataError(f"{path}: the test sets of the {len(pairs)} folds do not partition the {n} utterances")
    else:
        from sklearn.model_selection import StratifiedKFold

        labels = table["sarcasm"].to_numpy()[position]
        cv = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        pairs = list(cv.split(np.zeros((n, 1)), labels))
        source = f"StratifiedKFold(n_splits={n_splits}, shuffle=True, random_state={seed}) on the labels in file order"
    k = len(pairs)
    return [Split(np.sort(position[tr]), np.sort(position[te]), f"fold {i + 1}/{k}", source, synthetic)
            for i, (tr, te) in enumerate(pairs)]


def mustard_speaker_independent(table: pd.DataFrame) -> Split:
    """The speaker-independent split of MUStARD: test on Friends, train on the other shows.

    As in the release (``DataLoader.speaker_independent_split`` and
    ``data/sarcasm_speaker_independent_{train,test}.jsonnet``): the utterances whose ``show`` is
    ``"FRIENDS"`` are the test set, all others the training set.

    Parameters
    ----------
    table : DataFrame
        From ``load_mustard``.

    Returns
    -------
    split : Split
        Positions into ``table``.
    """
    if "show" not in table or table["show"].isna().all():
        raise ValueError("this MUStARD table has no 'show' labels (an older sarcasm_data.json): the speaker-independent "
                         f"split needs the current release of {MUSTARD_JSON} from {MUSTARD_REPO}")
    shows = table["show"].to_numpy()
    if table["show"].isna().any():
        missing = table.loc[table["show"].isna(), "id"].tolist()
        raise ValueError(f"utterances {missing[:5]} have no show; the speaker-independent split needs a show for every utterance")
    test = np.flatnonzero(shows == MUSTARD_HELD_OUT_SHOW)
    if test.size == 0:
        raise ValueError(f"no utterance of show {MUSTARD_HELD_OUT_SHOW!r} (the held-out show); shows present: "
                         f"{sorted(set(shows))}")
    train = np.flatnonzero(shows != MUSTARD_HELD_OUT_SHOW)
    return Split(train, test, "speaker-independent", f"test: show == {MUSTARD_HELD_OUT_SHOW!r}; train: the other shows",
                 is_synthetic(table))


# -- CMU-MOSEI ---------------------------------------------------------------------------
def _decode(value: object) -> object:
    """A metadata entry of a computational sequence: a 1-element string array holding JSON (or plain text)."""
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _mosei_folds_file(root: Path) -> Path | None:
    local = root / MOSEI_FOLDS
    if local.is_file():
        return local
    try:
        spec = importlib.util.find_spec("mmsdk")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        sdk = Path(spec.origin).parent / "mmdatasdk" / "dataset" / "standard_datasets" / "CMU_MOSEI" / MOSEI_FOLDS
        if sdk.is_file():
            return sdk
    return None


def _read_mosei_folds(path: Path) -> dict[str, str]:
    """Video id -> fold, from the SDK's folds file, read as literals (the file is not executed)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (SyntaxError, UnicodeDecodeError) as err:
        raise TaskDataError(f"{path} is not the SDK's folds file (cannot parse it: {err})") from err
    folds: dict[str, list] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in MOSEI_FOLD_NAMES:
                try:
                    value = ast.literal_eval(node.value)
                except ValueError as err:
                    raise TaskDataError(f"{path}: {name} is not a literal list of video ids") from err
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise TaskDataError(f"{path}: {name} is not a list of video-id strings")
                folds[MOSEI_FOLD_NAMES[name]] = value
    missing = [k for k, v in MOSEI_FOLD_NAMES.items() if v not in folds]
    if missing:
        raise TaskDataError(f"{path} does not define {missing}; expected the SDK's {MOSEI_FOLDS} "
                            f"({', '.join(MOSEI_FOLD_NAMES)} = [video ids])")
    fold_of: dict[str, str] = {}
    for fold, ids in folds.items():
        for vid in ids:
            if vid in fold_of and fold_of[vid] != fold:
                raise TaskDataError(f"{path}: video {vid!r} is in both the {fold_of[vid]} and the {fold} fold")
            fold_of[vid] = fold
    return fold_of


def mosei_seven_class(sentiment: np.ndarray | Sequence[float], method: str = "round") -> np.ndarray:
    """Seven sentiment classes -3..3.

    Parameters
    ----------
    sentiment : float array of shape (n,)
        Sentiment scores in [-3, 3].
    method : {"round", "sdk"}
        ``"round"``: ``round(clip(s, -3, 3))`` (numpy rounds halves to even), the usual Acc-7 rule of
        evaluation code. ``"sdk"``: the binning of the SDK's CMU-MOSEI README (-3 below -2, -2 in
        [-2, -1), -1 in [-1, 0), 0 at 0, 1 in (0, 1], 2 in (1, 2], 3 above 2).

    Returns
    -------
    classes : int array of shape (n,)
    """
    s = np.asarray(sentiment, dtype=float)
    if method == "round":
        return np.round(np.clip(s, -3.0, 3.0)).astype(np.int64)
    if method == "sdk":
        conditions = [s < -2, s < -1, s < 0, s == 0, s <= 1, s <= 2]
        return np.select(conditions, [-3, -2, -1, 0, 1, 2], default=3).astype(np.int64)
    raise ValueError(f"unknown method {method!r}; valid: ['round', 'sdk']")


def load_mosei(root: str | Path | None = None) -> pd.DataFrame:
    """The labelled segments of CMU-MOSEI, one row per segment.

    Parameters
    ----------
    root : path, optional
        The folder holding ``CMU_MOSEI_Labels.csd`` (and, for the folds, ``cmu_mosei_std_folds.py``);
        default ``<data home>/cmu_mosei``.

    Returns
    -------
    table : DataFrame of shape (n_segments, 16)
        Columns ``video`` (str), ``segment`` (its index within the video, in file order),
        ``segment_id`` (``"<video>[<segment>]"``), ``start``, ``end`` (seconds), ``sentiment`` (float in
        [-3, 3]), the six emotions ``happy`` ... ``fear`` (floats in [0, 3]; NaN when the file has only
        the sentiment column), ``binary`` (1 if sentiment >= 0, else 0), ``nonzero`` (sentiment != 0, for
        the negative-vs-positive metric that drops zeros), ``sentiment_7`` (``mosei_seven_class``,
        "round"), and ``split`` ("train", "valid", "test", or None for a video in no standard fold, or
        when the folds file is absent), ``video_path`` (the video's full recording, ``<video>.mp4`` in a
        folder of :data:`MOSEI_VIDEO_DIRS`, or None where it is absent). ``table.attrs`` holds ``dataset``,
        ``root``, ``synthetic``, ``folds`` (the folds file read, or None), ``description`` (the file's
        metadata, if any) and ``n_videos`` (the recordings found).

    Raises
    ------
    FileNotFoundError
        ``CMU_MOSEI_Labels.csd`` is missing (the message says how to get it and where to put it).
    TaskDataError
        The file is not a computational sequence, or a label is out of range.
    """
    import h5py

    root = mosei_root(root)
    path = root / MOSEI_CSD
    if not path.is_file():
        others = sorted(p.name for p in root.glob("*.csd")) if root.is_dir() else []
        found = f" (the folder has {others})" if others else ""
        raise FileNotFoundError(f"CMU-MOSEI labels not found: {path} is missing{found}. {_mosei_hint(root)}")
    rows = []
    description = None
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise TaskDataError(f"{path} is not a readable HDF5 computational sequence ({err}); download it again: "
                            f"{_mosei_hint(root)}") from err
    with f:
        groups = list(f.keys())
        if not groups or not isinstance(f[groups[0]], h5py.Group) or "data" not in f[groups[0]]:
            raise TaskDataError(f"{path}: expected a computational sequence (<root>/data/<video>/{{features,intervals}}), "
                                f"found top-level keys {groups}")
        seq = f[groups[0]]
        if "metadata" in seq:
            meta = {k: _decode(seq["metadata"][k][()]) for k in seq["metadata"] if isinstance(seq["metadata"][k], h5py.Dataset)}
            description = meta.get("computational sequence description")
        for vid in seq["data"]:
            entry = seq["data"][vid]
            if "features" not in entry or "intervals" not in entry:
                raise TaskDataError(f"{path}: video {vid!r} lacks 'features' or 'intervals' (has {list(entry)})")
            feats = np.asarray(entry["features"][()], dtype=float)
            inter = np.asarray(entry["intervals"][()], dtype=float)
            if feats.ndim != 2 or feats.shape[1] < 1 or inter.shape != (feats.shape[0], 2):
                raise TaskDataError(f"{path}: video {vid!r} has features {feats.shape} and intervals {inter.shape}; expected "
                                    f"(n, {len(MOSEI_LABELS)}) and (n, 2)")
            for i in range(feats.shape[0]):
                values = feats[i, : len(MOSEI_LABELS)]
                s = values[0]
                if not np.isfinite(s) or abs(s) > 3 + _TOL:
                    raise TaskDataError(f"{path}: video {vid!r} segment {i} has sentiment {float(s)!r}; valid range: [-3, 3]")
                emotions = np.full(len(MOSEI_LABELS) - 1, np.nan)
                emotions[: len(values) - 1] = values[1:]
                bad = [(MOSEI_LABELS[j + 1], float(e)) for j, e in enumerate(emotions[: len(values) - 1])
                       if not np.isfinite(e) or e < -_TOL or e > 3 + _TOL]
                if bad:
                    raise TaskDataError(f"{path}: video {vid!r} segment {i} has emotion intensities {bad}; valid range: [0, 3]")
                start, end = inter[i]
                if not end >= start:
                    raise TaskDataError(f"{path}: video {vid!r} segment {i} ends ({end}) before it starts ({start})")
                row = {"video": str(vid), "segment": i, "segment_id": f"{vid}[{i}]", "start": float(start), "end": float(end),
                       "sentiment": float(np.clip(s, -3, 3))}
                row.update({name: float(np.clip(e, 0, 3)) for name, e in zip(MOSEI_LABELS[1:], emotions)})
                rows.append(row)
    columns = ["video", "segment", "segment_id", "start", "end", *MOSEI_LABELS]
    table = pd.DataFrame(rows, columns=columns)
    sentiment = table["sentiment"].to_numpy(dtype=float)
    table["binary"] = (sentiment >= 0).astype(np.int64)
    table["nonzero"] = sentiment != 0
    table["sentiment_7"] = mosei_seven_class(sentiment, "round")
    folds_path = _mosei_folds_file(root)
    fold_of = _read_mosei_folds(folds_path) if folds_path is not None else {}
    table["split"] = pd.Series([fold_of.get(v) for v in table["video"]], dtype=object)
    recording = {v: _video(root, MOSEI_VIDEO_DIRS, f"{v}.mp4") for v in table["video"].unique()}
    table["video_path"] = pd.Series([recording[v] for v in table["video"]], dtype=object)
    table.attrs.update(dataset="CMU-MOSEI", root=str(root), synthetic=_synthetic(root),
                       folds=str(folds_path) if folds_path is not None else None, description=description,
                       n_videos=sum(v is not None for v in recording.values()))
    return table


# -- synthetic fixtures ------------------------------------------------------------------
def _claim(root: Path, real_file: str, writer: str, params: dict) -> None:
    """Refuse to overwrite real data; mark the folder synthetic."""
    if (root / real_file).exists() and not _synthetic(root):
        raise FileExistsError(f"{root / real_file} exists and is not a synthetic fixture: refusing to overwrite real data; "
                              "write the fixture into another folder")
    root.mkdir(parents=True, exist_ok=True)
    marker = {"synthetic": True, "writer": f"brainalign.tasks.{writer}", **params,
              "note": "generated stand-in in the real file format; no result on it is a sarcasm or sentiment result"}
    atomic_write(root / SYNTHETIC_MARKER, lambda p: p.write_text(json.dumps(marker, indent=1) + "\n"))


def write_mustard_fixture(root: str | Path, n: int = 40, seed: int = 0) -> Path:
    """Write a synthetic MUStARD in the release's format (``data/sarcasm_data.json``, ``data/split_indices.p``).

    The utterances say that they are generated; shows cycle through BBT, FRIENDS, GOLDENGIRLS and
    SARCASMOHOLICS with speakers of their own, half of the labels are sarcastic, and the split
    file holds 5 stratified folds as the release's does. No clips are written (no video writer is
    a dependency). The folder is marked synthetic.

    Parameters
    ----------
    root : path
        The folder to write (it must not hold real MUStARD data).
    n : int
        Number of utterances (even, at least 20, so every show has both labels in 5 folds).
    seed : int
        Seed of the labels, texts and folds.

    Returns
    -------
    root : Path
    """
    from sklearn.model_selection import StratifiedKFold

    if int(n) != n or n < 20 or n % 2:
        raise ValueError(f"n={n!r}: need an even number of utterances >= 20")
    n = int(n)
    root = Path(root)
    _claim(root, MUSTARD_JSON, "write_mustard_fixture", {"n": n, "seed": int(seed)})
    rng = config.rng(seed, "tasks", "mustard-fixture")
    speakers = {show: [f"{show}_SPEAKER_{c}" for c in "ABC"] for show in MUSTARD_SHOWS}
    shows = [MUSTARD_SHOWS[i % len(MUSTARD_SHOWS)] for i in range(n)]
    labels = np.zeros(n, dtype=bool)
    for show in MUSTARD_SHOWS:  # balanced within each show, so every split has both classes
        idx = np.flatnonzero(np.array(shows) == show)
        labels[rng.permutation(idx)[: len(idx) // 2]] = True
    if labels.sum() < n // 2:  # odd show sizes: top up to exactly half
        labels[rng.permutation(np.flatnonzero(~labels))[: n // 2 - labels.sum()]] = True
    data = {}
    for i in range(n):
        show = shows[i]
        uid = f"{MUSTARD_SHOWS.index(show) + 1}_{100 + 7 * i}"
        n_ctx = int(rng.integers(1, 5))
        ctx_speakers = [str(s) for s in rng.choice(speakers[show] + ["PERSON"], size=n_ctx)]
        data[uid] = {
            "utterance": f"Generated utterance {i} (synthetic fixture, not MUStARD data).",
            "speaker": str(rng.choice(speakers[show])),
            "context": [f"Generated context line {j} for utterance {i}." for j in range(n_ctx)],
            "context_speakers": ctx_speakers,
            "show": show,
            "sarcasm": bool(labels[i]),
        }
    text = json.dumps(data, indent=4, ensure_ascii=True) + "\n"
    atomic_write(root / MUSTARD_JSON, lambda p: p.write_text(text, encoding="utf-8"))
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=int(seed))
    folds = [(tr.astype(np.int64), te.astype(np.int64)) for tr, te in cv.split(np.zeros((n, 1)), labels)]
    buf = io.BytesIO()
    pickle.dump(folds, buf, protocol=2)
    atomic_write(root / MUSTARD_SPLIT, lambda p: p.write_bytes(buf.getvalue()))
    return root


def write_mosei_fixture(root: str | Path, n_videos: int = 20, seed: int = 0) -> Path:
    """Write a synthetic CMU-MOSEI labels file in the SDK's format, and a folds file like the SDK's.

    ``CMU_MOSEI_Labels.csd`` is an HDF5 computational sequence (root group ``"All Labels"``, with
    ``data/<video>/features`` (n_segments, 7) and ``data/<video>/intervals`` (n_segments, 2), and
    ``metadata`` entries as JSON strings, the description saying it is synthetic);
    ``cmu_mosei_std_folds.py`` lists the synthetic video ids in ``standard_train_fold``,
    ``standard_valid_fold`` and ``standard_test_fold`` (about 70 / 10 / 20 %). Labels are multiples
    of 1/3 (means of three ratings, as in the real data), so some sentiments are exactly 0. The
    folder is marked synthetic.

    Parameters
    ----------
    root : path
        The folder to write (it must not hold the real labels).
    n_videos : int
        Number of videos (at least 3); each has 2 to 6 segments.
    seed : int
        Seed of the labels, segment times and folds.

    Returns
    -------
    root : Path
    """
    import h5py

    if int(n_videos) != n_videos or n_videos < 3:
        raise ValueError(f"n_videos={n_videos!r}: need at least 3 videos (one per fold)")
    n_videos = int(n_videos)
    root = Path(root)
    _claim(root, MOSEI_CSD, "write_mosei_fixture", {"n_videos": n_videos, "seed": int(seed)})
    rng = config.rng(seed, "tasks", "mosei-fixture")
    videos = [f"synth{i:06d}" for i in range(n_videos)]
    data = {}
    for vid in videos:
        k = int(rng.integers(2, 7))
        durations = rng.uniform(2.0, 8.0, k)
        gaps = rng.uniform(0.2, 3.0, k)
        starts = np.cumsum(gaps) + np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        ends = starts + durations
        sentiment = rng.integers(-9, 10, k) / 3.0
        emotions = rng.integers(0, 10, (k, len(MOSEI_LABELS) - 1)) / 3.0
        data[vid] = (np.column_stack([sentiment, emotions]), np.column_stack([starts, ends]))
    metadata = {
        "root name": "All Labels",
        "computational sequence description": "SYNTHETIC fixture written by brainalign.tasks.write_mosei_fixture; "
                                              "random labels in the CMU-MOSEI format, not CMU-MOSEI data",
        "dimension names": list(MOSEI_LABELS),
        "computational sequence version": "synthetic",
        "alignment compatible": True,
        "dataset name": "CMU-MOSEI (synthetic fixture)",
        "dataset version": "synthetic",
        "creator": "brainalign",
    }

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            seq = f.create_group("All Labels")
            group = seq.create_group("data")
            for vid, (feats, inter) in data.items():
                g = group.create_group(vid)
                g.create_dataset("features", data=feats)
                g.create_dataset("intervals", data=inter)
            meta = seq.create_group("metadata")
            for key, value in metadata.items():
                ds = meta.create_dataset(key, (1,), dtype=h5py.string_dtype())
                ds[0] = json.dumps(value)

    atomic_write(root / MOSEI_CSD, write)
    order = rng.permutation(n_videos)
    n_test = max(1, round(0.2 * n_videos))
    n_valid = max(1, round(0.1 * n_videos))
    test = [videos[i] for i in order[:n_test]]
    valid = [videos[i] for i in order[n_test:n_test + n_valid]]
    train = [videos[i] for i in order[n_test + n_valid:]]
    text = ("# Synthetic folds written by brainalign.tasks.write_mosei_fixture, in the layout of the SDK's cmu_mosei_std_folds.py\n"
            f"standard_train_fold={train!r}\n\nstandard_test_fold={test!r}\n\nstandard_valid_fold={valid!r}\n")
    atomic_write(root / MOSEI_FOLDS, lambda p: p.write_text(text, encoding="utf-8"))
    return root
