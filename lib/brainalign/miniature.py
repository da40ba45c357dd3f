"""Miniatures of the real datasets, in their exact on-disk formats, for running the ``paper`` sets offline.

``brainalign run NOTEBOOK --set paper --miniature`` executes a ``paper``
parameter set end to end on the CPU without the data or the network: every
real dataset the set names is replaced by a miniature written here, in the
layout its loader reads (:mod:`brainalign.datasets`), and every hub model by a
tiny random model of its class (:mod:`brainalign.models.tiny`). What runs is the
notebook's real code on real file formats; the numbers mean nothing.

The miniatures are cut from the simulated story cohort (its Moby-Dick
chapters, word timings, audio and responses), so words, sentences and
responses have realistic shapes:

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

__all__ = ["MINIATURES", "VERSION", "miniature_home", "write_lebel2023", "write_narratives", "write_parser", "prepare"]

#: bump when a miniature's content changes (a stale one is rewritten)
VERSION = 3
#: the real datasets a miniature can stand in for
MINIATURES = ("lebel2023", "narratives")
_FOLDERS = {"lebel2023": "ds003020", "narratives": "narratives"}  # where each loader looks in the data home
_SUBJECTS = 8  # lebel2023: UTS01-UTS08 (Study 4 tunes on 3 of them and holds out 5)
_TRAIN_STORIES = 26  # Study 4's paper set fits encoding models on up to 25 training stories
_STORY_TRS = 20  # volumes of each training story: a 40-s cut of a simulated story


def _write_hf5(path: Path, data: np.ndarray) -> None:
    """Responses as ds003020 stores them (key ``data``, float32)."""
    import h5py

    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=np.asarray(data, dtype=np.float32))


def _source():
    from .datasets import load_dataset

    return load_dataset("simulated")


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


_WRITERS = {"lebel2023": write_lebel2023, "narratives": write_narratives}


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
    out, source, written = {}, None, set()
    for name in dict.fromkeys(names):
        folder = home / _FOLDERS[name]
        stamp = folder / ".brainalign-miniature"
        if not (stamp.is_file() and stamp.read_text().strip() == str(VERSION)):
            source = source or _source()
            tmp = home / f".{_FOLDERS[name]}.writing"
            shutil.rmtree(tmp, ignore_errors=True)
            _WRITERS[name](tmp, source)
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
