"""Which linguistic properties the default evaluated models encode, layer by layer.

Study 1 removes each property of :data:`brainalign.probing.PROPERTIES` from a
model's features and asks whether brain alignment drops; that tests something
only where the model carries the property. This module measures, for each
model, property and layer, how far a linear probe of the study's binned classes
(:func:`brainalign.probing.property_labels`) beats the majority class on
held-out words, and commits the table (``resources/encodability.json``, written
by ``brainalign encodability``) before any study runs.

Stimuli: plain prose sentences of the Python documentation that ships with the
interpreter (``pydoc_data.topics``), with code, grammar, tables, markup and
duplicated passages dropped and a fixed selection of about 3,000 words kept
(:func:`stimulus_runs`). It is natural English written for people, available
offline on every machine, and far from what any study evaluates on (Moby-Dick
narrative, movie dialogue); since its text changes between Python releases, the
committed file holds the selected words themselves, so the table can be
recomputed anywhere.

Measurement (:func:`probe_gain`): each model reads the text as the studies
read it (:func:`stimulus_features`: a bidirectional model each word with its
``context`` previous words, as notebooks 00 and 01 do; a causal model each
topic's passage whole, as notebooks 02 and 05 do; a speech model hears it,
see below). The probe and the baseline are those of
:func:`brainalign.probing.probe_predictions`: a ridge classifier on
standardised features and the training folds' majority class, over
``n_folds`` contiguous folds of words with ``context`` words left out of
training on each side of each test block. The **gain** is held-out accuracy
minus the baseline's, Study 1's own score (notebook 01, "probe gain over the
baseline"). Its confidence interval is a percentile bootstrap over contiguous
blocks of ``block_words`` words of the per-word gain
(``correct_probe - correct_baseline``): blocks, not words, because labels
are shared by every word of a sentence and context windows overlap; the
interval covers the uncertainty of the test words, not of the fitted probes.

A speech model hears the text as notebook 04 hears its stories
(:func:`speech_word_features`): each topic's passage is spoken as one audio
track by the project's speech synthesis (espeak-ng, voice ``en-us`` at 160
words per minute: :func:`brainalign.stimuli.synthesize_speech`, as the
simulated cohort's stories are spoken), and a word's feature at each layer is
the last frame of the window of audio that ends at the word's offset
(:func:`brainalign.features.speech_window_features`, the windows of notebook
04's evaluation), **16 s** long (:data:`SPEECH_WINDOW`, notebook 04's
``eval_window``): the word is heard with up to 16 s (about 40 words) of the
speech before it and nothing after it (notebook 04's default set approximates
these windows with consecutive 30 s chunks, ``eval_stride=None``, in which a
frame also hears what follows it; the table keeps the windows themselves).
Its classes come from the same parse of
the same words as the language models', so they are identical, and it is
probed with the same parameters; since a 16 s window spans more than the
``context`` words left out of training around a test block, the first
training words after a block hear the block's end (under their own
sentences' labels). The synthesis is deterministic (the same text always
gives the same audio; ~3 s for the selection); the cost is one encoder pass
per word (whisper-tiny-en: 0.23 s per 16 s window on an idle core, so about
12 minutes for the selection; 45 minutes on two cores shared with other jobs).

Verdict rule, declared before anything was computed: a property is
**encoded** by a model when the lower end of its gain's 95% interval is above 0
at one layer or more, and **not encoded** otherwise (:func:`verdicts`). The
rule takes the best of every layer, so with many layers (31 for SmolLM2) a gain
just above 0 at a single layer is weak evidence; :func:`verdicts` also counts
the layers above 0.

The module is longer than most (about 600 lines); a tenth of it is this account of the measurement.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from . import __version__, features, models, probing, stats
from .cache import atomic_write, digest
from .linguistics import load_parser

__all__ = [
    "DEFAULT_MODELS", "RESOURCE", "check_model", "stimulus_runs", "stimulus_features", "speech_word_features", "probe_gain",
    "encodability_table", "verdicts", "compute_record", "write_record", "load_record", "read_table", "encoded",
]

#: the models the studies evaluate by default (00, 01, 02: MiniLM; 02, 05: SmolLM2; 04: Whisper); the generator is not one
DEFAULT_MODELS = ("minilm-l6", "smollm2-135m-instruct", "whisper-tiny-en")
#: model kinds the table can be computed for: language models read the text, speech models hear it
KINDS = (*models.TEXT_KINDS, "speech")
#: the committed table
RESOURCE = Path(__file__).resolve().parent / "resources" / "encodability.json"
#: bump when the table's numbers or layout change
VERSION = 1
#: words of the stimuli, at most, and of one documentation topic (:func:`stimulus_runs`)
N_WORDS = 3000
MAX_TOPIC_WORDS = 300
#: seconds of audio a speech model hears up to each word's offset (notebook 04's eval_window)
SPEECH_WINDOW = 16.0
#: the espeak-ng voice and rate (words per minute) the runs are spoken with, those of the simulated cohort's stories
SPEECH_VOICE = "en-us"
SPEECH_RATE = 160
#: a speech model's record keeps the feature norms of every FINGERPRINT_EVERY-th word (:func:`compute_record`)
FINGERPRINT_EVERY = 100

#: a sentence is kept only without these: code, quotes of code, markup, numbers, references
_NOT_PROSE = re.compile(r'["“”()\[\]{}_=*<>|\\`#@%$&+/:;0-9]')
#: reST headings (a line of one repeated punctuation mark)
_HEADING = re.compile(r"^[*=\-~^]{3,}$", re.M)
#: a sentence ends at . ! or ? followed by a capital letter
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def check_model(name: str) -> models.ModelSpec:
    """The spec of a model the table can be computed for.

    Parameters
    ----------
    name : str
        A name of :data:`brainalign.models.MODELS` of kind ``"encoder"``,
        ``"causal"`` or ``"speech"`` (:data:`KINDS`), other than the simulated
        cohorts' generator.

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        Naming the model and the valid names.
    """
    from .simulate import GENERATOR

    valid = [n for n, s in models.MODELS.items() if s.kind in KINDS and n != GENERATOR]
    hint = f"valid names: {', '.join(valid)} (default: {', '.join(DEFAULT_MODELS)})"
    if name == GENERATOR:
        raise ValueError(f"model {name!r} generated the simulated cohorts' semantic signal (simulate.GENERATOR) "
                         f"and is never evaluated; {hint}")
    if name not in models.MODELS:
        raise ValueError(f"unknown model {name!r}; {hint}")
    spec = models.MODELS[name]
    if spec.kind not in KINDS:
        raise ValueError(f"model {name!r} is a {spec.kind} model; the probes read language and speech models: {hint}")
    return spec


# -- stimuli ----------------------------------------------------------------------------------------
def _prose_sentences(text: str) -> list[str]:
    """The plain prose sentences of one documentation topic, in order."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = paragraph.strip("\n").split("\n")
        if any(line.startswith(" ") for line in lines) or _HEADING.search(paragraph) or "::" in paragraph:
            continue  # code, grammar rules, tables, headings
        for sentence in _SENTENCE_END.split(" ".join(line.strip() for line in lines)):
            words = sentence.split()
            if (sentence.endswith(".") and len(words) >= 4 and not _NOT_PROSE.search(sentence)
                    and not any(w.endswith("-") for w in words) and words[0] != "See"):
                out.append(" ".join(words))
    return out


def stimulus_runs(n_words: int = N_WORDS, max_topic_words: int = MAX_TOPIC_WORDS) -> dict[str, list[str]]:
    """The fixed selection of documentation prose, one run per topic.

    Topics of ``pydoc_data.topics`` are read in alphabetical order; each keeps
    its plain prose sentences (no code, grammar rules, tables, headings,
    quotes of code, numbers or cross-references), a sentence seen in an
    earlier topic is dropped (topics repeat each other's text), and whole
    sentences are taken in order until the topic would pass
    ``max_topic_words`` words; the selection ends before the first sentence
    that would take it past ``n_words`` words.

    Parameters
    ----------
    n_words : int
        Words in the selection, at most.
    max_topic_words : int
        Words of one topic, at most.

    Returns
    -------
    dict topic -> list of str
        Each run's words (whitespace tokens, punctuation attached), in order.
    """
    from pydoc_data.topics import topics

    runs, seen, total, full = {}, set(), 0, False
    for topic in sorted(topics):
        words: list[str] = []
        for sentence in _prose_sentences(topics[topic]):
            size = len(sentence.split())
            full = total + size > n_words
            if full or len(words) + size > max_topic_words:
                break
            if sentence not in seen:
                seen.add(sentence)
                words += sentence.split()
                total += size
        if words:
            runs[topic] = words
        if full:
            break
    return runs


def stimulus_features(lm: models.LoadedModel, runs: Mapping[str, Sequence[str]], context: int = 20,
                      window: float = SPEECH_WINDOW) -> np.ndarray:
    """Word features of every run, read (or heard) as the studies read them, runs concatenated.

    Parameters
    ----------
    lm : LoadedModel
        A language or speech model.
    runs : mapping run -> sequence of str
        Each run's words.
    context : int
        Previous words in each window of a bidirectional model (words); a
        causal model reads each run whole.
    window : float
        Seconds of audio a speech model hears up to each word's offset
        (:func:`speech_word_features`).

    Returns
    -------
    array of float32, shape (n_hidden, n_words, dim)
        All hidden states (0 = embeddings, or a speech model's input to its
        first block), words of all runs in order.
    """
    if lm.spec.kind == "speech":
        return speech_word_features(lm, runs, window=window)
    if lm.spec.kind == "encoder":
        parts = [features.word_features(lm, list(words), context=context) for words in runs.values()]
    else:
        parts = [features.sequence_word_features(lm, list(words)) for words in runs.values()]
    return np.concatenate(parts, axis=1)


def speech_word_features(lm: models.LoadedModel, runs: Mapping[str, Sequence[str]], window: float = SPEECH_WINDOW,
                         words: Sequence[int] | None = None) -> np.ndarray:
    """A speech model's features of the spoken runs: each word at its offset, from the window that ends there.

    Each run is spoken as one track (:func:`brainalign.stimuli.synthesize_speech`,
    voice :data:`SPEECH_VOICE` at :data:`SPEECH_RATE` words per minute, one
    token per word) and resampled to 16 kHz; a word's feature at each layer is
    the last frame of the window ``[max(0, offset - window), offset]``, read
    alone (:func:`brainalign.features.speech_window_features`, as notebook 04
    evaluates speech models). A word ending in the first 25 ms is read at 25 ms.

    Parameters
    ----------
    lm : LoadedModel
        A speech model.
    runs : mapping run -> sequence of str
        Each run's words.
    window : float
        Seconds of audio up to each word's offset.
    words : sequence of int, optional
        Positions of the words to read, over all runs in order (default: every
        word); runs without one are not spoken.

    Returns
    -------
    array of float32, shape (n_hidden, n_selected_words, dim)
        All hidden states (0 = the input to the first block), words in the order of ``words``.
    """
    from .stimuli import synthesize_speech

    if lm.spec.kind != "speech":
        raise ValueError(f"model {lm.spec.name!r} is a {lm.spec.kind} model, not a speech model")
    sizes = [len(w) for w in runs.values()]
    wanted = np.arange(sum(sizes)) if words is None else np.asarray(words, dtype=np.int64).reshape(-1)
    if wanted.size and not (0 <= wanted.min() and wanted.max() < sum(sizes)):
        raise ValueError(f"words must be positions 0..{sum(sizes) - 1}, got {wanted.min()}..{wanted.max()}")
    dims = lm.spec.hidden_dims()
    out = np.zeros((len(dims), len(wanted), dims[0]), dtype=np.float32)
    first = 0
    for run_words, size in zip(runs.values(), sizes):
        mine = np.flatnonzero((wanted >= first) & (wanted < first + size))
        if mine.size:
            speech = synthesize_speech(" ".join(run_words), voice=SPEECH_VOICE, rate=SPEECH_RATE)
            if len(speech.words) != size:
                raise ValueError(f"a run's {size} words were spoken as {len(speech.words)} tokens; "
                                 "words must be whitespace-free tokens")
            audio = models.check_audio(speech.audio, speech.sr)
            ends = np.maximum(speech.words["offset"].to_numpy(), 400 / models.SPEECH_SR)[wanted[mine] - first]
            states, _ = features.speech_window_features(lm, audio, models.SPEECH_SR, window=window, ends=ends)
            for k, state in enumerate(states):
                out[k, mine] = state
        first += size
    return out


def _reader(spec: models.ModelSpec, context: int, window: float) -> str:
    if spec.kind == "encoder":
        return f"each word with its {context} previous words (features.word_features, as notebooks 00 and 01)"
    if spec.kind == "speech":
        return (f"each run spoken as one track by espeak-ng ({SPEECH_VOICE}, {SPEECH_RATE} words per minute: "
                "stimuli.synthesize_speech, as the simulated cohort's stories); each word the last frame of the "
                f"{window:g} s window of audio ending at its offset (encodability.speech_word_features with "
                "features.speech_window_features, as notebook 04's evaluation)")
    return "each run whole (features.sequence_word_features, as notebooks 02 and 05)"


def _fingerprint(X: np.ndarray, every: int = FINGERPRINT_EVERY) -> dict:
    """The L2 norm of every ``every``-th word's features at each layer (X: n_hidden x n_words x dim)."""
    words = np.arange(0, X.shape[1], every)
    return {"words": words.tolist(), "norms": np.linalg.norm(X[:, words], axis=-1).astype(float).tolist()}


# -- probes -----------------------------------------------------------------------------------------
def probe_gain(
    X: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    n_folds: int = 5,
    gap: int = 20,
    alpha: float = 10.0,
    block_words: int = 100,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out probe gain over the majority class, with its bootstrap interval.

    Parameters
    ----------
    X : array of shape (n_words, n_features)
        Word features of one layer, in text order.
    labels : array of shape (n_words,)
        Class of each word.
    n_folds, gap, alpha
        As in :func:`brainalign.probing.probe_predictions` (``gap`` in words).
    block_words : int
        Words per bootstrap block (contiguous; the last blocks may be one word longer).
    n_boot : int
        Bootstrap resamples.
    ci : float
        Confidence level of the interval, in (0, 1).
    seed : int
        Seed of the resampling.

    Returns
    -------
    dict with ``accuracy``, ``baseline``, ``balanced`` and ``chance``
    (:func:`brainalign.probing.probe_scores`), ``n_classes``, ``gain``
    (accuracy - baseline) and ``ci_low``, ``ci_high`` (of the gain).
    """
    y = np.asarray(labels)
    if isinstance(block_words, bool) or not isinstance(block_words, (int, np.integer)) or block_words < 1:
        raise ValueError(f"block_words={block_words!r} must be a positive integer")
    n_blocks = len(y) // block_words
    if n_blocks < 2:
        raise ValueError(f"{len(y)} words make fewer than 2 blocks of block_words={block_words}")
    predicted, majority = probing.probe_predictions(X, y, n_folds=n_folds, gap=gap, alpha=alpha)
    scores = probing.probe_scores(y, predicted, majority)
    per_word = (predicted == y).astype(np.float64) - (majority == y)
    block_means = np.array([b.mean() for b in np.array_split(per_word, n_blocks)])
    if np.ptp(block_means) == 0:  # e.g. one class only: nothing to resample
        low = high = float(block_means[0])
    else:
        low, high = stats.bootstrap_ci(block_means, n_boot=n_boot, ci=ci, seed=seed)
    return {**scores, "n_classes": int(len(np.unique(y))), "gain": scores["accuracy"] - scores["baseline"],
            "ci_low": float(low), "ci_high": float(high)}


def encodability_table(
    model: str,
    runs: Mapping[str, Sequence[str]] | None = None,
    properties: Sequence[str] | None = None,
    layers: Sequence[int] | None = None,
    context: int = 20,
    n_folds: int = 5,
    alpha: float = 10.0,
    n_bins: int = 3,
    n_top_constituents: int = 5,
    block_words: int = 100,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    window: float = SPEECH_WINDOW,
) -> pd.DataFrame:
    """Probe gain of each property's classes at each layer of one model.

    Parameters
    ----------
    model : str
        A language or speech model (:func:`check_model`).
    runs : mapping run -> sequence of str, optional
        The stimuli (default: :func:`stimulus_runs`).
    properties : sequence of str, optional
        Properties to probe (default: all six).
    layers : sequence of int, optional
        Hidden states to probe (0 = embeddings; default: all).
    context : int
        Previous words read with each word by a bidirectional model, and the
        words left out of training on each side of a test block (words).
    n_folds, alpha
        As in :func:`brainalign.probing.probe_predictions`.
    n_bins, n_top_constituents
        As in :func:`brainalign.probing.property_labels`.
    block_words, n_boot, ci, seed
        As in :func:`probe_gain`.
    window : float
        Seconds of audio a speech model hears up to each word's offset (:func:`speech_word_features`).

    Returns
    -------
    DataFrame with one row per property and layer: ``model``, ``property``,
    ``layer``, ``accuracy``, ``baseline``, ``gain``, ``ci_low``, ``ci_high``,
    ``balanced``, ``chance``, ``n_classes``.
    """
    return _measure(model, runs, properties, layers, context, n_folds, alpha, n_bins, n_top_constituents, block_words,
                    n_boot, ci, seed, window)[0]


def _measure(model, runs, properties, layers, context, n_folds, alpha, n_bins, n_top_constituents, block_words, n_boot,
             ci, seed, window) -> tuple[pd.DataFrame, np.ndarray]:
    """:func:`encodability_table` and the features it probed."""
    spec = check_model(model)
    props = probing.check_properties(properties)
    n_hidden = spec.n_layers + 1
    layers = list(range(n_hidden)) if layers is None else [int(x) for x in layers]
    bad = [x for x in layers if not 0 <= x < n_hidden]
    if bad:
        raise ValueError(f"layer(s) {bad} do not exist; valid layers of {model!r}: 0..{n_hidden - 1}")
    runs = stimulus_runs() if runs is None else runs
    annotations = probing.annotate_runs(runs)
    labels = probing.property_labels(annotations, props, n_bins=n_bins, n_top_constituents=n_top_constituents)
    X = stimulus_features(models.load_model(spec.name), runs, context=context, window=window)
    rows = []
    for layer in layers:
        for prop in props:
            res = probe_gain(X[layer], labels[prop].to_numpy(), n_folds=n_folds, gap=context, alpha=alpha,
                             block_words=block_words, n_boot=n_boot, ci=ci, seed=seed)
            rows.append({"model": spec.name, "property": prop, "layer": layer, **res})
    columns = ["model", "property", "layer", "accuracy", "baseline", "gain", "ci_low", "ci_high", "balanced", "chance",
               "n_classes"]
    return pd.DataFrame(rows)[columns], X


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """The verdict of each model and property, and its best layer.

    Parameters
    ----------
    table : DataFrame
        From :func:`encodability_table` or :func:`read_table`.

    Returns
    -------
    DataFrame with one row per model and property: ``verdict`` ("encoded"
    when ``ci_low > 0`` at some layer, else "not encoded"), ``n_layers_encoded``
    (layers with ``ci_low > 0``), and the ``layer`` of the largest gain with
    its ``gain``, ``ci_low`` and ``ci_high``.
    """
    rows = []
    for (model, prop), group in table.groupby(["model", "property"], sort=False):
        best = group.loc[group["gain"].idxmax()]
        n_above = int((group["ci_low"] > 0).sum())
        rows.append({"model": model, "property": prop, "verdict": "encoded" if n_above else "not encoded",
                     "n_layers_encoded": n_above, "n_layers": len(group), "layer": int(best["layer"]),
                     "gain": float(best["gain"]), "ci_low": float(best["ci_low"]), "ci_high": float(best["ci_high"])})
    return pd.DataFrame(rows)


# -- the committed record ---------------------------------------------------------------------------
def _software() -> dict[str, str]:
    parser = load_parser()
    versions = {"brainalign": __version__, "python": ".".join(map(str, sys.version_info[:3])),
                "parser": f"{parser.meta['lang']}_{parser.meta['name']} {parser.meta['version']}"}
    for dist in ("spacy", "torch", "transformers", "scikit-learn", "numpy", "scipy"):
        versions[dist] = importlib.metadata.version(dist)
    return versions


def compute_record(
    model_names: Sequence[str] = DEFAULT_MODELS,
    runs: Mapping[str, Sequence[str]] | None = None,
    context: int = 20,
    n_folds: int = 5,
    alpha: float = 10.0,
    n_bins: int = 3,
    n_top_constituents: int = 5,
    block_words: int = 100,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    window: float = SPEECH_WINDOW,
) -> dict:
    """The table of every model, with what it takes to reproduce it.

    Parameters
    ----------
    model_names : sequence of str
        Models to probe (default: :data:`DEFAULT_MODELS`).
    runs : mapping run -> sequence of str, optional
        The stimuli (default: :func:`stimulus_runs`).
    context, n_folds, alpha, n_bins, n_top_constituents, block_words, n_boot, ci, seed, window
        As in :func:`encodability_table`.

    Returns
    -------
    dict with ``version``, ``stimuli`` (description, counts, sha256 and the
    words of each run), ``parameters``, ``verdict_rule``, ``software``,
    ``models`` (revision and reader of each; for a speech model also a
    ``fingerprint``: the ``words`` at every :data:`FINGERPRINT_EVERY`-th
    position and the L2 ``norms`` of their features, one list per layer, so
    that the features the rows come from can be checked on a few words
    without hearing them all), ``rows`` (the table) and ``verdicts``.
    """
    specs = [check_model(name) for name in model_names]
    from_pydoc = runs is None
    runs = stimulus_runs() if runs is None else {str(k): [str(w) for w in v] for k, v in runs.items()}
    params = {"context": context, "n_folds": n_folds, "gap": context, "alpha": alpha, "n_bins": n_bins,
              "n_top_constituents": n_top_constituents, "score": "held-out accuracy - majority-class accuracy (gain)",
              "ci": ci, "ci_method": f"percentile bootstrap over contiguous blocks of {block_words} words of the "
                                     "per-word gain (stats.bootstrap_ci)",
              "block_words": block_words, "n_boot": n_boot, "seed": seed, "speech_window": float(window),
              "speech_voice": SPEECH_VOICE, "speech_rate": SPEECH_RATE}
    tables, model_info = [], {}
    for spec in specs:
        table, X = _measure(spec.name, runs, None, None, context, n_folds, alpha, n_bins, n_top_constituents,
                            block_words, n_boot, ci, seed, window)
        tables.append(table)
        model_info[spec.name] = {"kind": spec.kind, "revision": models.revision(spec.name), "n_hidden": spec.n_layers + 1,
                                 "reader": _reader(spec, context, window)}
        if spec.kind == "speech":
            model_info[spec.name]["fingerprint"] = _fingerprint(X)
        del X
    table = pd.concat(tables, ignore_index=True)
    n_sentences = int(probing.annotate_runs(runs)["sentence"].nunique())
    source = ("plain prose sentences of the Python documentation shipped with the interpreter (pydoc_data.topics): "
              "topics in alphabetical order, code, grammar, tables, headings, quotes of code, numbers and "
              f"cross-references dropped, repeated sentences dropped, whole sentences kept up to {MAX_TOPIC_WORDS} words "
              f"per topic and {N_WORDS} in all (encodability.stimulus_runs); one run per topic" if from_pydoc
              else "runs given to compute_record")
    stimuli = {"description": source, "n_words": sum(len(v) for v in runs.values()), "n_sentences": n_sentences,
               "n_runs": len(runs), "sha256": digest(runs), "runs": runs}
    return {
        "version": VERSION,
        "description": "held-out probe gain over the majority class of Study 1's binned property classes, per model "
                       "and layer (brainalign.encodability)",
        "verdict_rule": f"encoded: the lower end of the gain's {ci:.0%} interval is above 0 at one layer or more",
        "stimuli": stimuli,
        "parameters": params,
        "software": _software(),
        "models": model_info,
        "rows": table.to_dict(orient="records"),
        "verdicts": verdicts(table).to_dict(orient="records"),
    }


def write_record(record: dict, path: str | Path = RESOURCE, merge: bool = True) -> Path:
    """Write a record as JSON; with ``merge``, keep the other models of a file on the same stimuli and parameters.

    Parameters
    ----------
    record : dict
        From :func:`compute_record`.
    path : path
        Where to write (default: the committed :data:`RESOURCE`).
    merge : bool
        When ``path`` holds a record of the same stimuli (sha256), parameters and
        version, its rows of models that ``record`` lacks are kept.

    Returns
    -------
    The path written.
    """
    path = Path(path)
    if merge and path.exists():
        old = json.loads(path.read_text())
        same = all(old.get(k) == record[k] for k in ("version", "parameters")) and \
            old.get("stimuli", {}).get("sha256") == record["stimuli"]["sha256"]
        if same:
            kept = [r for r in old["rows"] if r["model"] not in record["models"]]
            model_info = {k: v for k, v in old["models"].items() if k not in record["models"]}
            record = {**record, "models": {**model_info, **record["models"]}, "rows": kept + record["rows"]}
            record["verdicts"] = verdicts(pd.DataFrame(record["rows"])).to_dict(orient="records")
    text = json.dumps(record, indent=1, ensure_ascii=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load_record(path: str | Path = RESOURCE) -> dict:
    """The record written by :func:`write_record` (default: the committed one)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_table(path: str | Path = RESOURCE) -> pd.DataFrame:
    """The committed table: one row per model, property and layer (columns of :func:`encodability_table`)."""
    return pd.DataFrame(load_record(path)["rows"])


def encoded(model: str, path: str | Path = RESOURCE) -> dict[str, bool]:
    """Which of Study 1's properties ``model`` encodes, by the committed verdicts: property -> encoded.

    Empty when the table has no row for the model (its encodability was never
    measured: ``brainalign encodability --model NAME`` measures it). A claim
    about removing a property the model does not encode cannot be tested with it.
    """
    name = models.get_spec(model).name
    return {v["property"]: v["verdict"] == "encoded" for v in load_record(path)["verdicts"] if v["model"] == name}
