"""Miniatures of the real datasets, in their exact on-disk formats, for running the ``paper`` sets offline.

``brainalign run NOTEBOOK --set paper --miniature`` executes a ``paper``
parameter set end to end on the CPU without the data or the network: every
real dataset the set names is replaced by a miniature written here, in the
layout its loader reads (:mod:`brainalign.datasets`), and every hub model by a
tiny random model of its class (:mod:`brainalign.models.tiny`). What runs is the
notebook's real code on real file formats; the numbers mean nothing.

The miniatures are cut from the simulated cohorts (the story cohort's
Moby-Dick chapters, word timings, audio and responses; the movie cohort's
episodes for ``neuromod``), so words, sentences, movies and responses have
realistic shapes:

``lebel2023`` (OpenNeuro ds003020)
    26 training stories, each a 40-s cut of a simulated story (Study 4's
    efficiency curve fits on up to 25 of them), and the whole test story.
    ``derivative/respdict.json``, long-format TextGrids (phones and words, with
    the silence labels the Huth lab's grids carry), ``preprocessed_data/<subject>/<story>.hf5``
    trimmed by the lab's convention (``respdict - 20`` rows), the test story
    ``wheretheressmoke`` with its repeats stacked, ``stimuli/<story>.wav``, and
    the per-subject ROI masks the ``paper`` sets take as a documented input
    (``derivative/brainalign/rois/<subject>.npz``). Every subject has its own
    voxel count, as in the real native spaces. Beside them, Study 4's
    projection to fsaverage, the other documented input
    (``derivative/transformed_data_fs_lang/``: every subject's auditory and
    language vertices, and the HCP-MMP1 annotations that say which they are).
``narratives`` (Nastase et al. 2021)
    The story ``21styear``: ``code/event_meta.json`` (the real onset of 14 TRs),
    gentle's ``align.csv`` (words cut by gentle's tokeniser, some unaligned,
    onsets that go backwards once) beside the punctuated ``transcript.txt``,
    the audio from the scan's start (``stimuli/21styear_audio.wav``),
    per-hemisphere GIfTI time series on a cut fsaverage6, HCP-MMP1 label
    files, and the study's per-word label file in its codes. Beside it, as the
    Narratives fetch brings it, the zip archive of a tiny random constituency
    parser in the release layout of ``benepar_en3`` (``parsers/``;
    :func:`write_parser`), unpacked on first use as the real one is.
``neuromod`` (CNeuroMod Friends / Movie10, the Algonauts 2025 release)
    The release's four subjects (sub-01, -02, -03, -05) and runs of both
    tasks, named and split as the manifest's: Friends ``s01e01a``,
    ``s01e01b`` (train) and ``s06e01a`` (test); Movie10 ``bourne01``,
    ``wolf01``, ``figures01`` (train) and ``life01`` (test), the last two
    shown twice (``_run-1``, ``_run-2``). Each run, 40-48 volumes of a
    simulated episode, has its responses on 1000 Schaefer-2018 parcels in
    the subjects' h5 files (the release's names, keys and float32), its
    per-TR transcript, and its movie (H.264 frames, 64 x 64 at 5 frames/s,
    and an AAC sound track) at ``stimuli/movies/``; the parcel names are in
    ``atlas/``. A parcel averages simulated voxels of the ROIs its network
    stands for (:func:`write_neuromod`).
``mustard`` and ``cmu_mosei`` (Study 3's downstream tasks, :mod:`brainalign.tasks`)
    The synthetic fixtures' annotation, label, split and fold files, with
    their clips: one 3-s .mp4 per MUStARD utterance, one full recording per
    CMU-MOSEI video, in the releases' folders, cut from the movie cohort's
    episodes (:func:`write_mustard`, :func:`write_cmu_mosei`). They are
    marked synthetic, so no result on them is called a sarcasm or a sentiment result.

The module is longer than most: every miniature needs its dataset's formats
written as the real release writes them, and their helpers live beside it.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from . import config
from .datasets.lebel2023 import FSAVERAGE_FOLDER, FSAVERAGE_ROIS
from .linguistics import CONSTITUENCY_MODEL
from .manifests import read_manifest
from .spaces import ROI_GROUPS
from .stimuli.formats import write_movie

__all__ = ["MINIATURES", "VERSION", "miniature_home", "write_cmu_mosei", "write_lebel2023", "write_mustard", "write_narratives",
           "write_neuromod", "write_parser", "prepare"]

#: bump when a miniature's content changes (a stale one is rewritten)
VERSION = 3
#: the real datasets a miniature can stand in for
MINIATURES = ("lebel2023", "narratives", "neuromod", "mustard", "cmu_mosei")
_FOLDERS = {"lebel2023": "ds003020", "narratives": "narratives",  # where each loader looks in the data home
            "neuromod": "algonauts_2025.competitors", "mustard": "mustard", "cmu_mosei": "cmu_mosei"}
_SOURCES = {"lebel2023": "simulated", "narratives": "simulated", "neuromod": "simulated-movie",  # the cohort each is cut from
            "mustard": "simulated-movie", "cmu_mosei": "simulated-movie"}
_SUBJECTS = 8  # lebel2023: UTS01-UTS08 (Study 4 tunes on 3 of them and holds out 5)
_TRAIN_STORIES = 26  # Study 4's paper set fits encoding models on up to 25 training stories
_STORY_TRS = 20  # volumes of each training story: a 40-s cut of a simulated story


def _write_hf5(path: Path, data: np.ndarray) -> None:
    """Responses as ds003020 stores them (key ``data``, float32)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.asarray(data, dtype=np.float32))


def _source(name: str = "simulated"):
    """The simulated cohort a miniature is cut from (``_SOURCES``)."""
    from .datasets import load_dataset

    return load_dataset(name)


def _stories(src, manifest: dict) -> dict[str, tuple[str, slice]]:
    """Story name -> (source run, its volumes): ``_TRAIN_STORIES`` consecutive cuts of the source's training runs,
    named as the real training stories, and the whole test run under the real test story's name."""
    cuts = [(run, slice(a, a + _STORY_TRS)) for run in src.train_runs
            for a in range(0, src.n_trs(run) - _STORY_TRS + 1, _STORY_TRS)][:_TRAIN_STORIES]
    if len(cuts) < _TRAIN_STORIES:
        raise ValueError(f"the source cohort has {len(cuts)} cuts of {_STORY_TRS} volumes; the miniature needs {_TRAIN_STORIES}")
    test = src.test_runs[0]
    return {**dict(zip(manifest["train"], cuts)), manifest["test"][0]: (test, slice(0, src.n_trs(test)))}


def _rows(src, subject: str, run: str, volumes: slice, columns: np.ndarray) -> np.ndarray:
    """A subject's responses to a cut of a run in the given columns; a repeated run's repeats stacked."""
    reps = src.repeats(subject, run)
    return reps[:, volumes][:, :, columns] if reps is not None else src.responses(subject, run)[volumes][:, columns]


def _voxels(n_voxels: int, rois: dict[str, np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` voxels, sorted, with voxels of every ROI among them."""
    chosen = {int(rng.choice(np.flatnonzero(mask))) for mask in rois.values() if mask.any()}
    rest = rng.choice(np.setdiff1d(np.arange(n_voxels), list(chosen)), n - len(chosen), replace=False)
    return np.sort(np.concatenate([list(chosen), rest]).astype(int))


def _surface(rois: dict[str, np.ndarray], per_hemi: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulated voxels standing for the vertices of a cut surface, and the HCP-MMP1 area each is labelled with.

    Returns the voxels (``2 * per_hemi``: the left hemisphere's, then the right's) and their bare area names
    (an area of the voxel's ROI group; ``"???"`` outside every group).
    """
    keep = _voxels(len(next(iter(rois.values()))), {r: m for r, m in rois.items() if r != "language"}, 2 * per_hemi, rng)
    area = np.full(len(keep), "???", dtype=object)
    for roi, group in ROI_GROUPS.items():
        inside = rois[roi][keep]
        area[inside] = [group[i % len(group)] for i in range(int(inside.sum()))]
    return keep, area


def _write_projection(folder: Path, source, stories: dict[str, tuple[str, slice]], subjects: list[str],
                      rng: np.random.Generator) -> None:
    """Study 4's projection to fsaverage (``FSAVERAGE_FOLDER``): HCP-MMP1 annotations and every subject's kept columns."""
    import nibabel as nib

    per_hemi = 100
    keep, area = _surface(source.rois(), per_hemi, rng)
    kept_areas = [a for roi in FSAVERAGE_ROIS for a in ROI_GROUPS[roi]]
    columns = []
    folder.mkdir(parents=True)
    for hemi, half in (("lh", slice(0, per_hemi)), ("rh", slice(per_hemi, None))):
        present = sorted(set(area[half]))
        ctab = np.column_stack([rng.integers(0, 255, (len(present), 3)), np.zeros(len(present), int),
                                np.arange(len(present))]).astype(np.int32)
        labels = [f"{hemi[0].upper()}_{a}_ROI-{hemi}" if a != "???" else "???" for a in present]  # mne's label names
        nib.freesurfer.write_annot(str(folder / f"{hemi}.HCPMMP1.annot"), np.array([present.index(a) for a in area[half]]),
                                   ctab, labels, fill_ctab=True)
        columns.append(keep[half][np.isin(area[half], kept_areas)])
    columns = np.concatenate(columns)
    for k, subject in enumerate(subjects):
        out = folder / f"UTS{k + 1:02d}_nonc"
        out.mkdir()
        for story, (run, volumes) in stories.items():
            _write_hf5(out / f"{story}.hf5", _rows(source, subject, run, volumes, columns))


def write_lebel2023(root: str | Path, source=None, seed: int = 0) -> Path:
    """A ds003020 miniature at ``root``: 8 subjects, 26 short training stories and the repeated test story.

    Native responses with per-subject ROI masks, and Study 4's projection to fsaverage of the same subjects.

    Parameters
    ----------
    root : path
        The folder to write (it must not exist yet).
    source : Dataset, optional
        The simulated story cohort to cut from (default: ``load_dataset("simulated")``).
    seed : int
        Seed of each subject's voxel selection.
    """
    from .stimuli import GENTLE_WORD, write_textgrid, write_wav

    root, src = Path(root), source if source is not None else _source()
    manifest = read_manifest("lebel2023")
    stories = _stories(src, manifest)
    deriv = root / "derivative"
    respdict = {}
    for story, (run, volumes) in stories.items():
        start, n = volumes.start * src.tr, volumes.stop - volumes.start  # the cut's first second and its volumes
        words = src.words(run)
        words = words[(words["onset"] >= start) & (words["offset"] <= start + n * src.tr)]
        words = words.assign(word=["".join(GENTLE_WORD.findall(str(w))).lower() for w in words["word"]],
                             onset=words["onset"] - start, offset=words["offset"] - start)
        words = words[words["word"] != ""]  # the grids' words: lower case, no punctuation
        respdict[story] = n + 20
        gaps = words.assign(word="sp", onset=words["offset"], offset=words["onset"].shift(-1))  # the grids' silences
        gaps = gaps[gaps["offset"] > gaps["onset"] + 1e-3]
        grid = pd.concat([words, gaps]).sort_values("onset", kind="stable").reset_index(drop=True)
        phones = grid.assign(phone=np.where(grid["word"] == "sp", "sp", "AH0"))[["phone", "onset", "offset"]]
        write_textgrid(deriv / "TextGrids" / f"{story}.TextGrid", grid, phones, duration=(n + 15) * src.tr)
        audio, sr = src.audio(run)
        (root / "stimuli").mkdir(parents=True, exist_ok=True)
        write_wav(root / "stimuli" / f"{story}.wav", audio[int(round(start * sr)) : int(round((start + n * src.tr) * sr))], sr)
    (deriv / "respdict.json").write_text(json.dumps(respdict, indent=1))
    rois = src.rois()
    rng = config.rng(seed, "miniature", "lebel2023")
    for k, subject in enumerate(src.subjects[:_SUBJECTS]):
        uts = f"UTS{k + 1:02d}"
        keep = _voxels(len(next(iter(rois.values()))), rois, 150 + 10 * k, rng)
        folder = deriv / "preprocessed_data" / uts
        folder.mkdir(parents=True, exist_ok=True)
        for story, (run, volumes) in stories.items():
            _write_hf5(folder / f"{story}.hf5", _rows(src, subject, run, volumes, keep))
        masks = deriv / "brainalign" / "rois"
        masks.mkdir(parents=True, exist_ok=True)
        np.savez(masks / f"{uts}.npz", **{name: mask[keep] for name, mask in rois.items()})
    _write_projection(root / FSAVERAGE_FOLDER, src, stories, src.subjects[:_SUBJECTS], rng)
    return root


def _gentle_rows(words: pd.DataFrame, start: float) -> pd.DataFrame:
    """Gentle's alignment rows of the written words: one row per gentle token, times from the scan start."""
    from .stimuli import GENTLE_WORD

    rows = []
    for written, onset, offset in words[["word", "onset", "offset"]].itertuples(index=False):
        tokens = GENTLE_WORD.findall(str(written))
        edges = np.linspace(onset, offset, len(tokens) + 1) + start
        rows += [(t, t.lower(), round(a, 2), round(b, 2)) for t, a, b in zip(tokens, edges[:-1], edges[1:])]
    table = pd.DataFrame(rows, columns=["word", "aligned", "onset", "offset"]).astype({"onset": object, "offset": object})
    table.loc[5, ["aligned", "onset", "offset"]] = ["", "", ""]  # a word gentle could not align
    table.loc[20, "onset"], table.loc[21, "onset"] = table.loc[21, "onset"], table.loc[20, "onset"]  # onsets going backwards
    return table


def _study_label_file(path: Path, align: Path) -> None:
    """The study's label file of gentle's words, in its columns and codes (the labels are brainalign's own)."""
    from .probing import STUDY_LABEL_CODES, annotate_runs, property_labels
    from .stimuli import read_align_csv

    words = read_align_csv(align, align.with_name("transcript.txt"))
    labels = property_labels(annotate_runs({"story": list(words["written"])}), list(STUDY_LABEL_CODES), classes="study")
    table = {"words": list(words["word"])}
    for prop, (column, codes) in STUDY_LABEL_CODES.items():
        code_of = {cls: code for code, cls in codes.items()}
        table[column] = [code_of[cls] for cls in labels[prop]]
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(table).to_csv(path, index=False)


def _write_gifti(path: Path, data: np.ndarray, intent: str, labels: list[str] | None = None) -> None:
    """A GIfTI file: one float data array per row of ``data`` (a time series), or one label array with its table."""
    import nibabel as nib

    if labels is None:
        img = nib.gifti.GiftiImage()
        for row in data.astype(np.float32):
            img.add_gifti_data_array(nib.gifti.GiftiDataArray(row, intent=intent, datatype="float32"))
    else:
        table = nib.gifti.GiftiLabelTable()
        for key, name in enumerate(labels):
            label = nib.gifti.GiftiLabel(key=key, red=0.5, green=0.5, blue=0.5, alpha=1.0)
            label.label = name
            table.labels.append(label)
        img = nib.gifti.GiftiImage(labeltable=table)
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(data.astype(np.int32), intent=intent, datatype="int32"))
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def _write_story_audio(path: Path, source, runs: list[str], starts: list[float], lead: float, length: float) -> None:
    """The runs' audio, each from its start (s after the story onset), the story ``lead`` s into a ``length``-s file."""
    from .stimuli import write_wav

    sr = source.audio(runs[0])[1]
    out = np.zeros(int(round(length * sr)), dtype=np.float32)
    for run, start in zip(runs, starts):
        audio, _ = source.audio(run)
        at = int(round((lead + start) * sr))
        out[at : at + len(audio)] = audio[: len(out) - at]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav(path, out, sr)


def write_narratives(root: str | Path, source=None, seed: int = 0, n_subjects: int = 3) -> Path:
    """A Narratives miniature at ``root``: the story ``21styear`` heard by ``n_subjects`` subjects.

    The story is two simulated chapters read one after the other; the vertices
    of each hemisphere are simulated voxels, labelled with an HCP-MMP1 area of
    their region, and their volumes are the simulated ones, one per TR of 1.5 s
    (the simulated TR is 2 s: a miniature tests formats and code paths, not
    alignment). See :func:`write_lebel2023` for the parameters.
    """
    root, src = Path(root), source if source is not None else _source()
    tr, onset, rng = 1.5, 14, config.rng(seed, "miniature", "narratives")  # the real 21styear starts 14 TRs into the scan
    runs = src.train_runs[:2]
    parts, starts, shift = [], [], 0.0
    for run in runs:
        w = src.words(run)
        parts.append(w.assign(onset=w["onset"] + shift, offset=w["offset"] + shift))
        starts.append(shift)
        shift = float(parts[-1]["offset"].iloc[-1]) + 2.0
    words = pd.concat(parts, ignore_index=True)
    duration = int(np.ceil(shift / tr))
    _write_story_audio(root / "stimuli" / "21styear_audio.wav", src, runs, starts, onset * tr, (onset + duration + 10) * tr)
    story = root / "stimuli" / "gentle" / "21styear"
    story.mkdir(parents=True)
    gentle = _gentle_rows(words, onset * tr)
    gentle.to_csv(story / "align.csv", header=False, index=False)
    (story / "transcript.txt").write_text(" ".join(words["word"]) + "\n")
    _study_label_file(root / "stimuli" / "oota2023" / "21styear_probing_labels.csv", story / "align.csv")
    (root / "code").mkdir(parents=True)
    (root / "code" / "event_meta.json").write_text(json.dumps({"21styear": {"21styear": {"duration": duration, "onset": onset}}}))
    (root / "code" / "scan_exclude.json").write_text(json.dumps({"21styear": {}}))
    per_hemi = 120
    keep, area = _surface(src.rois(), per_hemi, rng)
    func = root / "derivatives" / "afni-nosmooth"
    for hemi, half in (("L", slice(0, per_hemi)), ("R", slice(per_hemi, None))):
        names = sorted(set(area[half]))
        labels = [f"{hemi}_{a}_ROI" if a != "???" else "???" for a in names]
        _write_gifti(func / "tpl-fsaverage6" / f"tpl-fsaverage6_hemi-{hemi}_desc-MMP_dseg.label.gii",
                     np.array([names.index(a) for a in area[half]]), "NIFTI_INTENT_LABEL", labels)
    for k, subject in enumerate(src.subjects[:n_subjects]):
        sub = f"sub-{k + 1:03d}"
        y = np.concatenate([src.responses(subject, r)[:, keep] for r in runs])
        scan = np.zeros((onset + duration + 10, len(keep)), np.float32)
        n = min(duration, len(y))
        scan[onset : onset + n] = y[:n]
        for hemi, half in (("L", slice(0, per_hemi)), ("R", slice(per_hemi, None))):
            _write_gifti(func / sub / "func" / f"{sub}_task-21styear_space-fsaverage6_hemi-{hemi}_desc-clean.func.gii",
                         scan[:, half], "NIFTI_INTENT_TIME_SERIES")
    return root


# -- CNeuroMod (Algonauts 2025) ------------------------------------------------------
_NEUROMOD_SUBJECTS = ("sub-01", "sub-02", "sub-03", "sub-05")  # the release's four
_NEUROMOD_REPEATED = ("figures", "life")  # the Movie10 films shown twice
_NEUROMOD_TRS = 48  # volumes of a run shown once (71.5 s), cut from the fifth volume of a simulated episode on
_NEUROMOD_REPEAT_TRS = 40  # volumes of a film shown twice, cut from the cohort's repeated test episode
_NEUROMOD_FRAME = 64  # pixels of the movies' frames (square), at the cohort's 5 frames/s
_MUSTARD_CLIP = 3.0  # seconds of each MUStARD utterance clip
#: The Schaefer-2018 7-network sub-regions of each hemisphere in the order file's order, their parcels (500 a
#: hemisphere; the real names, approximate counts) and the simulated movie ROIs whose voxels stand for them (none:
#: voxels of no ROI). Auditory cortex belongs to SomMot in the 7-network atlas, MT to DorsAttn_Post.
_SCHAEFER_BLOCKS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("Vis", 80, ("visual", "ventral")), ("SomMot", 90, ("auditory", "motor")), ("DorsAttn_Post", 45, ("MT",)),
    ("DorsAttn_FEF", 15, ()), ("SalVentAttn_ParOper", 15, ()), ("SalVentAttn_FrOperIns", 25, ()), ("SalVentAttn_Med", 15, ()),
    ("Limbic_OFC", 15, ("OFC",)), ("Limbic_TempPole", 15, ()), ("Cont_Par", 20, ()), ("Cont_PFCl", 25, ()),
    ("Cont_pCun", 5, ()), ("Cont_Cing", 10, ()), ("Default_Temp", 45, ("LTC", "STS")), ("Default_Par", 30, ("AG", "TPOJ1")),
    ("Default_PFC", 40, ("IFG", "MFG")), ("Default_pCunPCC", 10, ("PCC",)),
)
_SCHAEFER_COLOURS = {"Vis": (120, 18, 134), "SomMot": (70, 130, 180), "DorsAttn": (0, 118, 14), "SalVentAttn": (196, 58, 250),
                     "Limbic": (220, 248, 164), "Cont": (230, 148, 34), "Default": (205, 62, 78)}  # Yeo's network colours


def _parcels(source, rng: np.random.Generator, per_parcel: int = 3) -> tuple[list[str], np.ndarray]:
    """The 1000 parcel names (``7Networks_LH_Vis_1``...) and, for each, the ``per_parcel`` simulated voxels it averages.

    A parcel's voxels come from the ROIs of its block in ``_SCHAEFER_BLOCKS``, in its hemisphere, each voxel of a
    pool used about as often as the others (pools smaller than their parcels' need are reused).
    """
    with np.load(Path(source.root) / "brainalign" / "space.npz") as z:  # the cohort's documented layout
        hemisphere = z["hemisphere"]
    rois = {name: mask for name, mask in source.rois().items() if name != "language"}
    outside = ~np.any(list(rois.values()), axis=0)
    names, voxels = [], []
    for h, hemi in enumerate(("LH", "RH")):
        for block, n, groups in _SCHAEFER_BLOCKS:
            mask = np.any([rois[g] for g in groups], axis=0) if groups else outside
            pool = np.flatnonzero(mask & (hemisphere == h))
            draws = np.concatenate([rng.permutation(pool) for _ in range(-(-n * per_parcel // len(pool)))])
            voxels.append(draws[: n * per_parcel].reshape(n, per_parcel))
            names += [f"7Networks_{hemi}_{block}_{i}" for i in range(1, n + 1)]
    return names, np.concatenate(voxels)


def _write_transcript(path: Path, words: pd.DataFrame, n_trs: int, tr: float) -> None:
    """An Algonauts 2025 transcript: one row per TR, the words whose onset falls in it, as Python list literals."""
    rows = []
    for k in range(n_trs):
        w = words[(words["onset"] >= k * tr) & (words["onset"] < (k + 1) * tr)]
        rows.append({"text_per_tr": " ".join(w["word"]), "words_per_tr": str(list(w["word"])),
                     "onsets_per_tr": str([round(float(x), 3) for x in w["onset"]]),
                     "durations_per_tr": str([round(float(x), 3) for x in w["offset"] - w["onset"]])})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)


def _neuromod_runs(src) -> dict[str, dict[str, tuple[str, int, int, tuple[int, ...] | None]]]:
    """Task -> run -> (source episode, first volume, volumes, repeats shown or None): the runs of the miniature.

    Friends: the first two training runs of the manifest and its first test run; Movie10: the first run of every
    training film and of the test film. A film shown twice is cut from the cohort's repeated test episode (the
    only one it repeats), two repeats each: the test film its start, a training film its end; the others from
    successive training episodes, from their fifth volume on. Every cut ends before the episode's sound does (its
    last volume runs past it).
    """
    manifest = read_manifest("neuromod")
    movie10 = manifest["splits"]["movie10"]
    films = [r for r in movie10["train"] + movie10["test"] if r.endswith("01")]
    tasks = {"friends": manifest["train"][:2] + manifest["test"][:1], "movie10": films}

    def heard(episode: str) -> int:
        """The episode's volumes that end before its sound track does."""
        audio, sr = src.audio(episode)
        return int(len(audio) / sr // src.tr)

    episodes, test = iter(src.train_runs), src.test_runs[0]
    out: dict = {}
    for task, runs in tasks.items():
        for run in runs:
            if run.rstrip("0123456789") in _NEUROMOD_REPEATED:
                start = 0 if run in movie10["test"] else heard(test) - _NEUROMOD_REPEAT_TRS
                out.setdefault(task, {})[run] = (test, start, _NEUROMOD_REPEAT_TRS, (0, 1) if start == 0 else (2, 3))
            else:
                episode = next(episodes)
                out.setdefault(task, {})[run] = (episode, 4, min(_NEUROMOD_TRS, heard(episode) - 4), None)
    return out


def _h5_keys(task: str, runs: dict) -> dict[str, list[str]]:
    """The release's dataset keys of each run (:func:`_neuromod_runs`): ``ses-<NNN>_task-<run>``, and ``_run-<k>``
    for the k-th showing of a film shown twice; a session for every Friends episode (its parts share it) and for
    every showing of a film."""
    keys: dict[str, list[str]] = {}
    session, last = 0, None
    for run, (_, _, _, reps) in runs.items():
        keys[run] = []
        for i in range(len(reps) if reps else 1):
            session += task == "movie10" or run[:6] != last
            last = run[:6]
            keys[run].append(f"ses-{session:03d}_task-{run}" + (f"_run-{i + 1}" if reps else ""))
    return keys


def write_neuromod(root: str | Path, source=None, seed: int = 0) -> Path:
    """A miniature of the Algonauts 2025 release of CNeuroMod at ``root``: 4 subjects, Friends and Movie10 runs.

    Each run is a cut of a simulated movie episode (:func:`_neuromod_runs`):
    its volumes in the subjects' h5 files (1000 parcels, float32, the
    release's keys; sub-02 has one volume more of the first Friends run, as
    subjects' runs differ in the release), its words in a per-TR transcript,
    its sound track and frames (64 x 64 at 5 frames/s) in a .mkv file, and
    the Schaefer-2018 label file in ``atlas/``. A parcel averages three
    simulated voxels of the ROIs its network stands for (``_SCHAEFER_BLOCKS``:
    visual and ventral voxels for Vis, auditory and motor for SomMot, MT for
    DorsAttn_Post, OFC for Limbic_OFC, LTC and STS for Default_Temp, AG and
    TPOJ1 for Default_Par, IFG and MFG for Default_PFC, PCC for
    Default_pCunPCC, voxels of no ROI for the other networks), so responses
    keep their ROIs' structure. The films shown twice (Hidden Figures and Life)
    overlap, both cut from the cohort's one repeated episode: a miniature tests
    formats and code paths, not generalisation.

    Parameters
    ----------
    root : path
        The folder to write (it must not exist yet).
    source : Dataset, optional
        The simulated movie cohort to cut from (default: ``load_dataset("simulated-movie")``).
    seed : int
        Seed of the parcels' voxels.
    """
    import h5py

    from .datasets.neuromod import H5_STEM
    from .spaces import SCHAEFER_LABELS
    from .stimuli import render_shots

    root, src = Path(root), source if source is not None else _source("simulated-movie")
    tr, fps = src.tr, src.fps
    names, voxels = _parcels(src, config.rng(seed, "miniature", "neuromod"))
    atlas = root / "atlas" / SCHAEFER_LABELS
    atlas.parent.mkdir(parents=True)
    atlas.write_text("".join(f"{i}\t{name}\t" + "\t".join(map(str, _SCHAEFER_COLOURS[name.split("_")[2]])) + "\t0\n"
                             for i, name in enumerate(names, 1)))
    plan = _neuromod_runs(src)
    stimuli = root / "stimuli"
    for task, runs in plan.items():
        for run, (episode, first, n, _) in runs.items():
            start, end = first * tr, (first + n) * tr
            words = src.words(episode)
            words = words[(words["onset"] >= start) & (words["offset"] <= end)]
            words = words.assign(onset=words["onset"] - start, offset=words["offset"] - start)
            if task == "friends":
                folder, transcript, movie = f"friends/s{int(run[1:3])}", f"friends_{run}.tsv", f"friends_{run}.mkv"
            else:  # the movies lack the transcripts' "movie10_" prefix
                folder, transcript, movie = f"movie10/{run.rstrip('0123456789')}", f"movie10_{run}.tsv", f"{run}.mkv"
            _write_transcript(stimuli / "transcripts" / folder / transcript, words, n, tr)
            audio, sr = src.audio(episode)
            # the episode's frames shown at the cut's frame times, rendered from its shot list at a small size
            shown = np.floor(start * fps + np.arange(int(n * tr * fps)) + 1e-6) / fps
            write_movie(stimuli / "movies" / folder / movie, render_shots(src.shots(episode), shown, _NEUROMOD_FRAME), fps,
                         audio[int(round(start * sr)) : int(round(end * sr))], sr)
    for k, subject in enumerate(_NEUROMOD_SUBJECTS):
        for task, runs in plan.items():
            desc = "_desc-s123456" if task == "friends" else ""
            path = root / "fmri" / subject / "func" / f"{subject}_task-{task}_{H5_STEM}{desc}_bold.h5"
            path.parent.mkdir(parents=True, exist_ok=True)
            keys = _h5_keys(task, runs)
            with h5py.File(path, "w") as f:
                for run, (episode, first, n, reps) in runs.items():
                    extra = int(subject == "sub-02" and run == next(iter(plan["friends"])))  # one volume more, cut by the loader
                    shown = [src.responses(src.subjects[k], episode)] if reps is None else \
                        [src.repeats(src.subjects[k], episode)[r] for r in reps]
                    for key, y in zip(keys[run], shown):
                        f.create_dataset(key, data=y[first : first + n + extra][:, voxels].mean(axis=-1).astype(np.float32))
    return root


def _cut(src, episode: str, start: float, end: float, path: Path) -> None:
    """Seconds ``start`` to ``end`` of a simulated movie episode as a movie file (64 x 64 frames at its frame rate)."""
    from .stimuli import render_shots

    audio, sr = src.audio(episode)
    shown = np.floor(start * src.fps + np.arange(int(round((end - start) * src.fps))) + 1e-6) / src.fps
    write_movie(path, render_shots(src.shots(episode), shown, _NEUROMOD_FRAME), src.fps,
                 audio[int(round(start * sr)) : int(round(end * sr))], sr)


def write_mustard(root: str | Path, source=None, seed: int = 0) -> Path:
    """A miniature of MUStARD at ``root``: the release's annotation and split files and one clip per utterance.

    The annotations and the 5 folds are :func:`brainalign.tasks.write_mustard_fixture`'s (20 generated utterances,
    marked synthetic); each utterance's clip, ``videos/utterances_final/<id>.mp4`` (H.264 and AAC, as the release's),
    is 3 s of a simulated movie episode (:data:`_MUSTARD_CLIP`), the clips of successive utterances following each
    other through the cohort's training episodes. A miniature tests formats and code paths: its labels are random.
    """
    from .tasks import MUSTARD_VIDEO_DIRS, load_mustard, write_mustard_fixture

    root, src = Path(root), source if source is not None else _source("simulated-movie")
    write_mustard_fixture(root, n=20, seed=seed)
    folder = root / MUSTARD_VIDEO_DIRS[0][0]
    for k, uid in enumerate(load_mustard(root)["id"]):
        episode = src.train_runs[k % len(src.train_runs)]
        start = 2.0 + _MUSTARD_CLIP * (k // len(src.train_runs))
        _cut(src, episode, start, start + _MUSTARD_CLIP, folder / f"{uid}.mp4")
    return root


def write_cmu_mosei(root: str | Path, source=None, seed: int = 0) -> Path:
    """A miniature of CMU-MOSEI at ``root``: the labels file, the folds file and each video's full recording.

    The labels and folds are :func:`brainalign.tasks.write_mosei_fixture`'s (3 generated videos of 2-6 labelled
    segments, marked synthetic); each video's recording, ``Raw/Videos/Full/Combined/<video>.mp4`` (the raw
    archive's layout), runs from the start of a simulated movie episode to a second past its last segment.
    """
    from .tasks import MOSEI_VIDEO_DIRS, load_mosei, write_mosei_fixture

    root, src = Path(root), source if source is not None else _source("simulated-movie")
    write_mosei_fixture(root, n_videos=3, seed=seed)
    ends = load_mosei(root).groupby("video", sort=True)["end"].max()
    for k, (video, end) in enumerate(ends.items()):
        _cut(src, src.train_runs[k % len(src.train_runs)], 0.0, float(end) + 1.0, root / MOSEI_VIDEO_DIRS[0] / f"{video}.mp4")
    return root


def write_parser(folder: str | Path) -> Path:
    """A tiny constituency parser in the release layout of :data:`brainalign.linguistics.CONSTITUENCY_MODEL`, at ``folder``.

    The Berkeley Neural Parser's classes around a T5 model, as ``benepar_en3``
    (which reads T5-small), with random weights (a fixed seed), a T5 tokenizer
    whose sentencepiece vocabulary is learnt from the packaged Moby-Dick
    chapters, and the English treebank's labels: ``<folder>/benepar_en3/``
    (``config.json``: T5's and, under ``benepar``, the parser's; the tokenizer's
    files; ``benepar_model.bin``) and the zip archive it is fetched as beside it.
    Its trees are valid and meaningless.
    """
    import tempfile
    import zipfile

    import sentencepiece
    import torch
    from benepar import nkutil, parse_chart
    from transformers import T5Config, T5Tokenizer

    from .linguistics import benepar_compatible
    from .models.tiny import corpus_words

    model = Path(folder) / CONSTITUENCY_MODEL
    model.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "corpus.txt").write_text(" ".join(corpus_words()).replace(". ", ".\n"))
        sentencepiece.SentencePieceTrainer.train(input=str(Path(tmp) / "corpus.txt"), model_prefix=str(Path(tmp) / "spm"),
                                                 vocab_size=400, model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                                 minloglevel=2)
        tokenizer = T5Tokenizer(vocab_file=str(Path(tmp) / "spm.model"), extra_ids=0)
    tokenizer.save_pretrained(model)
    T5Config(d_model=32, d_ff=64, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=16, vocab_size=len(tokenizer),
             decoder_start_token_id=0).save_pretrained(model)
    hparams = dict(d_model=32, use_chars_lstm=False, use_pretrained=True, pretrained_model="t5-small", d_char_emb=8,
                   char_lstm_input_dropout=0.0, use_encoder=True, morpho_emb_dropout=0.0, encoder_max_len=512, num_heads=2,
                   d_kv=8, d_ff=32, relu_dropout=0.0, residual_dropout=0.0, attention_dropout=0.0, num_layers=1,
                   d_label_hidden=16, predict_tags=True, d_tag_hidden=16, tag_loss_scale=1.0, force_root_constituent=True)
    labels = ["", "S", "NP", "VP", "PP", "SBAR", "ADVP", "ADJP", "WHNP", "WHADJP", "SINV", "SQ", "FRAG", "S::VP", "NP::NP"]
    tags = ["DT", "NN", "NNS", "NNP", "VBD", "VBZ", "VBP", "VB", "IN", "PRP", "JJ", "RB", "CC", ".", ","]
    with torch.random.fork_rng(devices=[]), benepar_compatible():
        torch.manual_seed(0)
        parser = parse_chart.ChartParser({t: i for i, t in enumerate(tags)}, {x: i for i, x in enumerate(labels)}, {},
                                         nkutil.HParams(**hparams), pretrained_model_path=str(model))
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "benepar": {**parser.config, "hparams": hparams}}))
    torch.save(parser.state_dict(), model / "benepar_model.bin")
    with zipfile.ZipFile(model.with_name(model.name + ".zip"), "w") as z:
        for f in sorted(model.iterdir()):
            z.write(f, f"{model.name}/{f.name}")
    return model


_WRITERS = {"lebel2023": write_lebel2023, "narratives": write_narratives, "neuromod": write_neuromod,
            "mustard": write_mustard, "cmu_mosei": write_cmu_mosei}


def miniature_home() -> Path:
    """The data home of miniature runs (``miniature`` inside the data home); its cache is its own."""
    return config.data_home() / "miniature"


def prepare(names, home: str | Path | None = None) -> dict[str, Path]:
    """Write the miniatures of ``names`` into ``home`` (default :func:`miniature_home`), where their loaders look.

    A miniature already there at :data:`VERSION` is kept; an older one is rewritten.
    Each is written into a temporary folder and renamed, so an interrupted
    write leaves nothing half-written.

    Returns
    -------
    dict: dataset name -> its folder
    """
    home = Path(home) if home is not None else miniature_home()
    unknown = [n for n in names if n not in MINIATURES]
    if unknown:
        raise ValueError(f"no miniature of dataset(s) {unknown}; miniatures exist of {list(MINIATURES)}")
    out, sources, written = {}, {}, set()
    for name in dict.fromkeys(names):
        folder = home / _FOLDERS[name]
        stamp = folder / ".brainalign-miniature"
        if not (stamp.is_file() and stamp.read_text().strip() == str(VERSION)):
            cohort = _SOURCES[name]
            if cohort not in sources:  # each cohort loaded once
                sources[cohort] = _source(cohort)
            tmp = home / f".{_FOLDERS[name]}.writing"
            shutil.rmtree(tmp, ignore_errors=True)
            _WRITERS[name](tmp, sources[cohort])
            (tmp / ".brainalign-miniature").write_text(str(VERSION))
            shutil.rmtree(folder, ignore_errors=True)
            tmp.rename(folder)
            written.add(name)
        out[name] = folder
    parsers = home / "parsers"
    stale = "narratives" in written or not (parsers / f"{CONSTITUENCY_MODEL}.zip").is_file()
    if "narratives" in out and stale and importlib.util.find_spec("benepar"):
        # the Narratives fetch brings the constituency parser's zip too, as this one does; the run unpacks it, as a real one
        tmp = home / ".parsers.writing"
        shutil.rmtree(tmp, ignore_errors=True)
        write_parser(tmp)
        parsers.mkdir(exist_ok=True)
        shutil.rmtree(parsers / CONSTITUENCY_MODEL, ignore_errors=True)  # an older parser unpacked from an older zip
        (tmp / f"{CONSTITUENCY_MODEL}.zip").replace(parsers / f"{CONSTITUENCY_MODEL}.zip")
        shutil.rmtree(tmp)
    return out
