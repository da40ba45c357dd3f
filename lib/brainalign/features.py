"""Word-level and TR-level features from the hidden states of language models.

The recipe is that of Oota et al. (2023): for word ``i`` of a story, the model
reads the window ``words[i - context : i + 1]`` (the word and up to ``context``
previous words, joined by spaces); the word's feature at each layer is the mean,
over the word's sub-word tokens, of that layer's hidden state. Layer 0 is the
embedding layer, layers ``1..L`` the transformer blocks' outputs (the last one
after the final layer norm, as Hugging Face models return it).

Words are never edited: pass them as they should be read (with or without
punctuation). Encoders see their usual ``[CLS] ... [SEP]``; causal models get
the BOS token when their tokenizer adds one by default (Gemma does, SmolLM2 and
GPT-2 do not).

Speed: the work is matrix products, so a float32 run is bounded by the CPU's
float32 matmul throughput (``bench/bench_features.py`` measures both). On CPUs
with bfloat16 units, ``load_model(name, dtype=torch.bfloat16)`` about halves
the time, at ~1% relative error in the features (they are returned as float32;
the cache keeps the two dtypes apart).

Speech models (``models.MODELS`` kind ``"speech"``) have their own TR-level
features: :func:`speech_tr_features` (the last frame of sliding audio windows,
resampled to the TRs or one window per volume) and cached like the word
features; vision and audio-video features of a movie are in
:mod:`brainalign.movie_features`, the instruction-conditioned states of Study 6
in :mod:`brainalign.instruct`. The module is longer than most because the word
and speech features share their cache key, layer check and one resolution of a
model name (:func:`cached_layers`).

Cost on the simulated movie cohort (7 episodes, 635 s, 3200 frames): Whisper windows of
16 s cost ~0.23 s each on one core, so ``speech_tr_features`` with ``stride=0.1`` costs
~2.5 s per second of audio, and with ``stride`` equal to the TR (1.49 s) ~15x less: the
TR is the default of the notebooks' default sets, 0.1 s that of the ``paper`` sets.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .cache import Cache
from .config import release_memory
from .models import SPEECH_SR, TEXT_KINDS, LoadedModel, ModelSpec, load_model, model_names, resolve, revision

__all__ = [
    "SPEECH_VERSION", "SPEECH_WINDOW_BATCH", "VERSION", "cached_layers", "check_times",
    "model_max_tokens", "sequence_word_features", "speech_tr_features", "speech_tr_features_shared", "speech_window_features",
    "tr_features", "windows", "word_features", "word_features_loop",
]

#: bump when the features' numbers change
VERSION = 1
#: bump when the speech window features change (2: Whisper windows run at their own length, not padded to 30 s)
SPEECH_VERSION = 2


def windows(words: Sequence[str], context: int = 20) -> tuple[list[str], np.ndarray]:
    """The text each word is read in, and where the word sits in it.

    Parameters
    ----------
    words : sequence of str, length n_words
    context : int
        Number of previous words in each window.

    Returns
    -------
    texts : list of str, length n_words
        ``" ".join(words[max(0, i - context) : i + 1])``.
    spans : ndarray of int64, shape (n_words, 2)
        Character span ``[start, end)`` of word ``i`` in ``texts[i]``.
    """
    words = _check_words(words)
    if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 0:
        raise ValueError(f"context must be an integer >= 0, got {context!r}")
    texts = [" ".join(words[max(0, i - context) : i + 1]) for i in range(len(words))]
    spans = np.array([(len(t) - len(w), len(t)) for t, w in zip(texts, words)], dtype=np.int64).reshape(-1, 2)
    return texts, spans


def _check_words(words: Sequence[str]) -> list[str]:
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not one string; split it first (e.g. text.split())")
    words = list(words)
    bad = [(i, w) for i, w in enumerate(words) if not isinstance(w, str) or not w.strip()]
    if bad:
        i, w = bad[0]
        raise ValueError(f"words must be non-empty strings; word {i} is {w!r} ({len(bad)} bad word(s) in all)")
    return words


def _check_layers(layers: Sequence[int] | None, n_hidden: int) -> list[int]:
    if layers is None:
        return list(range(n_hidden))
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -n_hidden <= layer < n_hidden:
            raise ValueError(
                f"layer {layer!r} does not exist; valid layers are 0..{n_hidden - 1} "
                f"(0 = embeddings, {n_hidden - 1} = last block; negative indices count from the end)"
            )
        out.append(int(layer) % n_hidden)
    return out


def model_max_tokens(lm: LoadedModel) -> int:
    """The most tokens a text model reads at once (its positions, or its tokenizer's limit)."""
    limit = getattr(lm.model.config, "max_position_embeddings", None) or 10**9
    tok_limit = getattr(lm.tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 10**7:
        limit = min(limit, tok_limit)
    return int(limit)


def _forward(lm: LoadedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """All hidden states, shape (n_layers + 1) x (batch, tokens, dim), skipping the LM head."""
    kwargs = {"use_cache": False} if lm.spec.kind == "causal" else {}
    out = lm.model.base_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True, **kwargs)
    return out.hidden_states


def _no_tokens_error(words: list[str], i: int, lm: LoadedModel) -> ValueError:
    return ValueError(f"word {i} ({words[i]!r}) gives no tokens with the {lm.spec.name!r} tokenizer "
                      "(e.g. only characters it drops); remove or replace it")


def _resolve_model(model: str | ModelSpec | LoadedModel) -> tuple[ModelSpec, str, str]:
    """Spec, revision and dtype of ``model``: a name is resolved here, once, and nothing is loaded."""
    if isinstance(model, LoadedModel):
        return model.spec, model.revision, str(next(model.model.parameters()).dtype)
    if isinstance(model, (str, ModelSpec)):
        spec = resolve(model)
        return spec, revision(spec), str(torch.float32)
    raise TypeError(f"model must be a model name or a LoadedModel, got {type(model).__name__}")


def _check_text_model(model: str | ModelSpec | LoadedModel, spec: ModelSpec) -> None:
    if spec.kind not in TEXT_KINDS:
        name = model if isinstance(model, str) else spec.name
        raise ValueError(f"model {name!r} is a {spec.kind} model; word features need a language model: "
                         f"{', '.join(model_names('encoder') + model_names('causal'))}")


def word_features(
    model: str | LoadedModel,
    words: Sequence[str],
    context: int = 20,
    layers: Sequence[int] | None = None,
    batch_size: int = 64,
    cache: bool = True,
) -> np.ndarray:
    """Hidden-state features of every word, read with its ``context`` previous words.

    Windows are tokenised together, sorted by length, and run in padded
    batches of ``batch_size`` windows (one forward pass each).

    Parameters
    ----------
    model : str or LoadedModel
        A model name (loaded only on a cache miss) or a loaded model.
    words : sequence of str, length n_words
        The story's words, in order.
    context : int
        Number of previous words in each window (0: each word alone).
    layers : sequence of int, optional
        Hidden states to return (0 = embeddings, ``L`` = last block); all by default.
    batch_size : int
        Windows per forward pass.
    cache : bool
        Read and write the on-disk cache.

    Returns
    -------
    ndarray of float32, shape (n_layers_selected, n_words, dim)
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    return _features(
        "word_features", model, words, layers, {"context": int(context)}, cache,
        lambda lm, words, layer_list: _batched(lm, words, context, layer_list, int(batch_size)),
    )


def _features(step: str, model: str | LoadedModel, words: Sequence[str], layers: Sequence[int] | None,
              params: dict, cache: bool, run) -> np.ndarray:
    """Check the inputs, then ``run(lm, words, layers)`` or read its result from the cache.

    The cache key holds the model's name, revision and dtype, the words, the
    layers and ``params``; a model given by name is loaded only on a miss.
    """
    spec, rev, dtype = _resolve_model(model)
    _check_text_model(model, spec)
    words = _check_words(words)
    layer_list = _check_layers(layers, spec.n_layers + 1)

    def compute() -> dict[str, np.ndarray]:
        lm = model if isinstance(model, LoadedModel) else load_model(spec)
        return {"features": run(lm, words, layer_list)}

    if not cache:
        return compute()["features"]
    parts = {"model": spec.name, "revision": rev, "dtype": dtype, "words": words, "layers": layer_list, **params}
    return Cache().memoize(step, VERSION, parts, compute)["features"]


def _batched(lm: LoadedModel, words: list[str], context: int, layers: list[int], batch_size: int) -> np.ndarray:
    texts, spans = windows(words, context)
    n = len(texts)
    out = torch.zeros(len(layers), n, lm.spec.dim, dtype=torch.float32)
    if n == 0:
        return out.numpy()
    enc = lm.tokenizer(texts, add_special_tokens=True, return_offsets_mapping=True, return_attention_mask=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    lengths = np.array([len(x) for x in ids])
    if lengths.max() > (limit := model_max_tokens(lm)):
        i = int(lengths.argmax())
        raise ValueError(f"the window of word {i} has {lengths[i]} tokens, more than {lm.spec.name}'s limit {limit}; "
                         "use a smaller context")
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    order = np.argsort(lengths, kind="stable")
    device = lm.device
    with torch.inference_mode():
        for first in range(0, n, batch_size):
            rows = order[first : first + batch_size]
            width = int(lengths[rows].max())
            input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
            offs = np.zeros((len(rows), width, 2), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : lengths[i]] = ids[i]
                offs[r, : lengths[i]] = offsets[i]
            attention = torch.from_numpy(np.arange(width)[None, :] < lengths[rows][:, None])
            # tokens of the last word: a non-empty character span that overlaps the word's span
            start, end = (torch.from_numpy(spans[rows, k])[:, None] for k in (0, 1))
            offs_t = torch.from_numpy(offs)
            tok_start, tok_end = offs_t[..., 0], offs_t[..., 1]
            mask = attention & (tok_end > tok_start) & (tok_end > start) & (tok_start < end)
            counts = mask.sum(1)
            if (counts == 0).any():
                raise _no_tokens_error(words, int(rows[int((counts == 0).nonzero()[0, 0])]), lm)
            weights = (mask.float() / counts[:, None]).to(device)[:, None, :]  # (B, 1, T)
            hidden = _forward(lm, torch.from_numpy(input_ids).to(device), attention.long().to(device))
            index = torch.from_numpy(rows)
            for k, layer in enumerate(layers):
                out[k, index] = torch.bmm(weights, hidden[layer].float()).squeeze(1).cpu()
    return out.numpy()


def word_features_loop(
    model: str | LoadedModel,
    words: Sequence[str],
    context: int = 20,
    layers: Sequence[int] | None = None,
) -> np.ndarray:
    """The same as :func:`word_features`, one window at a time and without the cache.

    The plain baseline, kept to check and time the batched path.

    Returns
    -------
    ndarray of float32, shape (n_layers_selected, n_words, dim)
    """
    spec = model.spec if isinstance(model, LoadedModel) else resolve(model)
    _check_text_model(model, spec)
    lm = model if isinstance(model, LoadedModel) else load_model(spec)
    words = _check_words(words)
    layer_list = _check_layers(layers, lm.spec.n_layers + 1)
    texts, spans = windows(words, context)
    out = np.zeros((len(layer_list), len(texts), lm.spec.dim), dtype=np.float32)
    with torch.inference_mode():
        for i, (text, (start, end)) in enumerate(zip(texts, spans)):
            enc = lm.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
            keep = [j for j, (s, e) in enumerate(enc["offset_mapping"]) if e > s and e > start and s < end]
            if not keep:
                raise _no_tokens_error(words, i, lm)
            input_ids = torch.tensor([enc["input_ids"]], device=lm.device)
            hidden = _forward(lm, input_ids, torch.ones_like(input_ids))
            for k, layer in enumerate(layer_list):
                out[k, i] = hidden[layer][0, keep].float().mean(0).cpu().numpy()
    return out


def sequence_word_features(
    model: str | LoadedModel,
    words: Sequence[str],
    layers: Sequence[int] | None = None,
    max_tokens: int | None = None,
    cache: bool = True,
) -> np.ndarray:
    """Features of every word read in the whole story at once (one forward pass).

    The story ``" ".join(words)`` is tokenised once; a word's feature is the
    mean of its tokens' hidden states. For a causal model this equals
    :func:`word_features` with an unlimited context (each word sees all the
    previous ones), at the cost of one pass instead of one per word. Stories
    longer than ``max_tokens`` are cut into consecutive chunks read
    independently (each chunk starts without context).

    Parameters
    ----------
    model : str or LoadedModel
    words : sequence of str, length n_words
    layers : sequence of int, optional
        Hidden states to return (0 = embeddings); all by default.
    max_tokens : int, optional
        Tokens per forward pass (default: the model's limit).
    cache : bool
        Read and write the on-disk cache.

    Returns
    -------
    ndarray of float32, shape (n_layers_selected, n_words, dim)
    """
    if max_tokens is not None and int(max_tokens) < 2:
        raise ValueError(f"max_tokens must be >= 2, got {max_tokens!r}")
    return _features(
        "sequence_word_features", model, words, layers, {"max_tokens": max_tokens}, cache,
        lambda lm, words, layer_list: _whole_story(lm, words, layer_list, max_tokens),
    )


def _whole_story(lm: LoadedModel, words: list[str], layers: list[int], max_tokens: int | None) -> np.ndarray:
    n = len(words)
    out = torch.zeros(len(layers), n, lm.spec.dim, dtype=torch.float32)
    if n == 0:
        return out.numpy()
    text = " ".join(words)
    ends = np.cumsum([len(w) + 1 for w in words]) - 1  # exclusive end of each word in the text
    enc = lm.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True, return_attention_mask=False)
    ids = np.asarray(enc["input_ids"], dtype=np.int64)
    offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    real = offsets[:, 1] > offsets[:, 0]  # special tokens have empty spans
    # a token belongs to the word that holds its last character
    word_of = np.searchsorted(ends, offsets[:, 1] - 1, side="right")
    counts = np.bincount(word_of[real], minlength=n)
    if (counts == 0).any():
        raise _no_tokens_error(words, int(np.flatnonzero(counts == 0)[0]), lm)
    step = min(int(max_tokens), model_max_tokens(lm)) if max_tokens is not None else model_max_tokens(lm)
    device = lm.device
    with torch.inference_mode():
        for first in range(0, len(ids), step):
            chunk = slice(first, first + step)
            input_ids = torch.from_numpy(ids[None, chunk]).to(device)
            hidden = _forward(lm, input_ids, torch.ones_like(input_ids))
            keep = torch.from_numpy(np.flatnonzero(real[chunk])).to(device)
            index = torch.from_numpy(word_of[chunk][real[chunk]])
            for k, layer in enumerate(layers):
                out[k].index_add_(0, index, hidden[layer][0, keep].float().cpu())
    return (out / torch.from_numpy(counts).float()[None, :, None]).numpy()


def tr_features(
    word_feats: np.ndarray,
    word_times: np.ndarray,
    times: np.ndarray,
    window: int = 3,
    cutoff_mult: float = 1.0,
) -> np.ndarray:
    """Resample word features to the volumes' sampling times (Lanczos filter).

    The kernel is centred on each sampling time and reaches ``window`` TRs
    to either side (see the time base of :mod:`brainalign.stimuli`).

    Parameters
    ----------
    word_feats : ndarray, shape (n_layers, n_words, dim)
        From :func:`word_features`.
    word_times : ndarray, shape (n_words,)
        Time of each word (s): :func:`brainalign.stimuli.word_times`, its midpoint.
    times : ndarray, shape (n_trs,)
        Sampling time of each volume (s): ``Dataset.sample_times(run)``.
    window : int
        Lobes of the Lanczos kernel.
    cutoff_mult : float
        Multiplies the cutoff frequency (1.0: the Nyquist frequency of the TRs).

    Returns
    -------
    ndarray of float32, shape (n_layers, n_trs, dim)
    """
    from .stimuli import lanczos_resample

    feats = np.asarray(word_feats)
    word_times = np.asarray(word_times, dtype=float)
    times = np.asarray(times, dtype=float)
    if feats.ndim != 3:
        raise ValueError(f"word_feats must have shape (n_layers, n_words, dim), got shape {feats.shape}")
    n_layers, n_words, dim = feats.shape
    if word_times.shape != (n_words,):
        raise ValueError(f"word_times must have shape ({n_words},) to match word_feats, got {word_times.shape}")
    if times.ndim != 1:
        raise ValueError(f"times must be one-dimensional, got shape {times.shape}")
    # the filter is linear and acts on each column alone: resample all layers in one call
    flat = feats.transpose(1, 0, 2).reshape(n_words, n_layers * dim)
    resampled = np.asarray(lanczos_resample(flat, word_times, times, window=window, cutoff_mult=cutoff_mult))
    return resampled.reshape(len(times), n_layers, dim).transpose(1, 0, 2).astype(np.float32)


# -- speech and vision ------------------------------------------------------------------------------------------------


def check_times(times: np.ndarray, minimum: int = 2) -> np.ndarray:
    """``times`` as floats, checked to be the increasing sampling times of at least ``minimum`` volumes (two where the
    caller reads the TR from them)."""
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) < minimum or not np.all(np.diff(times) > 0):
        raise ValueError(f"times must be 1-D and increasing with at least {minimum} entries, got shape {times.shape}")
    return times


def cached_layers(step: str, model: str | ModelSpec | LoadedModel, kind: str, layers: Sequence[int] | None, parts: dict,
                  cache: bool, run) -> list[np.ndarray]:
    """``run(lm, layer_list)`` (a list of arrays, one per selected layer), or its cached result.

    ``model`` is a name (resolved here), a spec from :func:`models.resolve` or a loaded model
    of ``kind``; a name or spec is loaded only on a cache miss.
    """
    spec, rev, dtype = _resolve_model(model)
    if spec.kind != kind:
        raise ValueError(f"model {spec.name!r} is a {spec.kind} model, not a {kind} model; "
                         f"{kind} models: {', '.join(model_names(kind))}")
    layer_list = _check_layers(layers, spec.n_layers + 1)

    def compute() -> dict[str, np.ndarray]:
        lm = model if isinstance(model, LoadedModel) else load_model(spec)
        return {f"layer_{k}": np.asarray(a, dtype=np.float32) for k, a in enumerate(run(lm, layer_list))}

    if cache:
        key_parts = {"model": spec.name, "revision": rev, "dtype": dtype, "layers": layer_list, **parts}
        arrays = Cache().memoize(step, VERSION, key_parts, compute)
    else:
        arrays = compute()
    return [arrays[f"layer_{k}"] for k in range(len(layer_list))]


def _window_ends(duration: float, stride: float) -> np.ndarray:
    if not (np.isfinite(stride) and stride > 0):
        raise ValueError(f"stride={stride!r} must be a positive number of seconds")
    return stride * np.arange(1, int(np.floor(duration / stride + 1e-9)) + 1)


#: windows per forward pass of :func:`speech_window_features` by default, by device: on the CPU
#: small batches are as fast as large ones (4: 34 s, 16: 41 s for a 5-minute story's 16 s windows
#: on one core, whisper-tiny-en) and need far less memory (about 0.3 GB above the model against
#: 0.7 GB: attention over 800 frames per window), which a 2 GB Binder session needs
SPEECH_WINDOW_BATCH = {"cpu": 4, "cuda": 32}


def _speech_batch(lm: LoadedModel, batch_size: int | None) -> int:
    """``batch_size``, checked, or the default for the model's device."""
    if batch_size is None:
        return SPEECH_WINDOW_BATCH["cpu" if lm.device.type == "cpu" else "cuda"]
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    return int(batch_size)


def speech_window_features(lm: LoadedModel, audio: np.ndarray, sr: int, window: float = 16.0, stride: float = 0.1,
                           layers: Sequence[int] | None = None, batch_size: int | None = None,
                           ends: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """The last frame's hidden states of sliding windows over a waveform (not cached).

    The window ending at ``t`` covers ``[max(0, t - window), t]``; windows end
    every ``stride`` seconds from ``stride`` to the end of the audio, or at
    the given ``ends`` (the part of a window before the audio is left out, the
    part after it is silence). Each is
    read alone, at its own length, and the state of its last frame is kept:
    the model's representation of the sound at ``t`` given up to ``window``
    seconds of past, and nothing outside the window. Whisper is run on
    exactly the window's frames (:func:`models.whisper_encoder_states`, not
    padded to 30 s, so a 16 s window costs about 0.23 s instead of 0.53 s on
    one core), windows of similar length batched together with the padding
    masked out; wav2vec2 / HuBERT read windows of variable length natively
    (windows of one length are batched).

    Parameters
    ----------
    lm : LoadedModel
        A speech model.
    audio : array of shape (n_samples,)
    sr : int
    window, stride : float
        Seconds.
    layers : sequence of int, optional
        Hidden states to keep (0 = the input to the first block); all by default.
    batch_size : int, optional
        Windows per forward pass; None: :data:`SPEECH_WINDOW_BATCH` for the model's device.
    ends : array of shape (n_windows,), optional
        The windows' end times (s), in place of the ``stride`` grid (``stride`` is then ignored).

    Returns
    -------
    states : list of ndarrays of float32, one per selected layer, each of shape (n_windows, dim)
    ends : ndarray of shape (n_windows,)
        The windows' end times (s).
    """
    states, ends = _window_states([lm], audio, sr, window, stride, layers, batch_size, ends)
    return states[0], ends


def _window_states(lms: Sequence[LoadedModel], audio: np.ndarray, sr: int, window: float, stride: float,
                   layers: Sequence[int] | None, batch_size: int | None,
                   ends: np.ndarray | None) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """:func:`speech_window_features` of several models of one architecture: each model's states, and the ends.

    Whisper encoders that share their leading blocks (:func:`models.whisper_shared_blocks`)
    run those once per batch of windows; the rest of each model runs on their output.
    """
    from .models import (
        check_audio,
        check_kind,
        is_whisper,
        speech_context,
        speech_forward,
        speech_frames,
        whisper_encoder_states,
        whisper_mel,
        whisper_shared_blocks,
    )

    lm = lms[0]
    for other in lms:
        check_kind(other, "speech")
        if other.spec.n_layers != lm.spec.n_layers or is_whisper(other) != is_whisper(lm):
            raise ValueError(f"{other.spec.name!r} and {lm.spec.name!r} are not of one architecture")
    audio = check_audio(audio, sr)
    layer_list = _check_layers(layers, lm.spec.n_layers + 1)
    batch_size = _speech_batch(lm, batch_size)
    if not (np.isfinite(window) and window > 0):
        raise ValueError(f"window={window!r} must be a positive number of seconds")
    if ends is None:
        ends = _window_ends(len(audio) / SPEECH_SR, float(stride))
    else:
        ends = np.asarray(ends, dtype=np.float64)
        if ends.ndim != 1 or not np.isfinite(ends).all():
            raise ValueError(f"ends must be a 1-D array of finite times (s), got shape {ends.shape}")
    if window * SPEECH_SR > speech_context(lm):
        raise ValueError(f"window={window} s is longer than {lm.spec.name}'s context ({speech_context(lm) / SPEECH_SR:g} s)")
    stop = np.round(ends * SPEECH_SR).astype(int)
    start = np.maximum(0, stop - int(round(window * SPEECH_SR)))
    if len(stop) and stop.max() > len(audio):  # after the sound: silence
        audio = np.pad(audio, (0, int(stop.max()) - len(audio)))
    keep = stop - start >= 400  # a window too short for the model (the first 25 ms) is read as 25 ms
    start[~keep] = 0
    stop[~keep] = 400
    whisper = is_whisper(lm)
    shared = whisper_shared_blocks([m.model for m in lms]) if whisper else 0
    lengths = stop - start
    out = [[np.zeros((len(ends), lm.spec.hidden_dims()[layer]), dtype=np.float32) for layer in layer_list] for _ in lms]
    # Whisper: windows sorted by length, batched with masked padding; others: windows of one length together
    groups = [np.argsort(lengths, kind="stable")] if whisper else [np.flatnonzero(lengths == n) for n in np.unique(lengths)]
    with torch.inference_mode():
        for rows in groups:
            for first in range(0, len(rows), int(batch_size)):
                batch = rows[first : first + int(batch_size)]
                clips = [audio[start[i] : stop[i]] for i in batch]
                index = torch.arange(len(batch))
                if whisper:
                    mel, n_frames = whisper_mel(lm, clips)
                    last = torch.from_numpy(n_frames - 1)
                    prefix = whisper_encoder_states(lm.model, mel, n_frames, n_blocks=shared) if shared else None
                for m, model in enumerate(lms):
                    if whisper:
                        states = whisper_encoder_states(model.model, mel, n_frames, prefix=prefix)
                    else:
                        states = speech_forward(model, clips)
                        last = torch.tensor([speech_frames(model, len(c)) - 1 for c in clips])
                    for k, layer in enumerate(layer_list):
                        out[m][k][batch] = states[layer][index, last].float().cpu().numpy()
    release_memory()  # the batches' freed heap, hundreds of MB
    return out, ends


def speech_tr_features(
    model: str | LoadedModel,
    audio: np.ndarray,
    sr: int,
    times: np.ndarray,
    window: float = 16.0,
    stride: float | str | None = 0.1,
    layers: Sequence[int] | None = None,
    batch_size: int | None = None,
    cache: bool = True,
) -> list[np.ndarray]:
    """Speech-model features at the volumes' sampling times.

    The features of :func:`speech_window_features` (the last frame of a
    ``window``-second window ending every ``stride`` seconds, as in the
    evaluation of speech-model brain tuning) are Lanczos-resampled to
    ``times`` and scaled by ``stride / TR``, so a constant feature stays
    about constant (a kernel-weighted mean). Each window is causal; the
    Lanczos kernel reaches 3 window ends past a sampling time, so a volume's
    feature reads audio up to ``3 * stride`` s after it. ``stride="volumes"``
    is strictly causal: one window ends at each sampling time and its state is
    the volume's feature, with no resampling (the study's 16 s windows ending
    at each TR). Cached.

    The cost is one forward pass per window: ``duration / stride`` windows
    of ``window`` seconds each (whisper-tiny-en: about 0.23 s per 16 s window
    on one CPU core, so ``stride=0.1`` costs ~2.3 s per second of audio and
    ``stride`` = one TR of 1.5-2 s about 15x less; the notebooks' default sets
    use the TR, the ``paper`` sets 0.1 s). ``stride=None`` is the fast approximation: every
    frame of :func:`models.speech_hidden_states` (consecutive 30 s chunks,
    one pass per 30 s, so ~100x fewer passes than ``stride=0.1``) is
    resampled instead; a frame then sees the rest of its chunk, up to 30 s of
    past *and future*, and ``window`` is ignored.

    Parameters
    ----------
    model : str or LoadedModel
        A speech model name (loaded only on a cache miss) or a loaded one.
    audio : array of shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate (Hz); resampled to 16 kHz.
    times : array of shape (n_trs,)
        Sampling time of each volume (s), in the audio's time frame: ``Dataset.sample_times(run)``.
    window : float
        Window length (s).
    stride : float, "volumes" or None
        Step between window ends (s); "volumes": one window ending at each of
        ``times``; None: consecutive chunks (see above).
    layers : sequence of int, optional
        Hidden states to return; all by default.
    batch_size : int, optional
        Windows per forward pass; None: :data:`SPEECH_WINDOW_BATCH` for the model's device.
    cache : bool
        Read and write the on-disk cache.

    Returns
    -------
    list of ndarrays of float32, one per selected layer, each of shape (n_trs, dim)
    """
    from .models import check_audio, speech_hidden_states
    from .stimuli import lanczos_resample

    times = check_times(times)
    audio = np.asarray(audio)
    check_audio(audio, sr)  # bad input fails even when the features are cached
    if isinstance(stride, str) and stride != "volumes":
        raise ValueError(f"stride={stride!r}: give seconds, 'volumes' or None")
    tr = float(np.mean(np.diff(times)))

    def run(lm: LoadedModel, layer_list: list[int]) -> list[np.ndarray]:
        if stride == "volumes":
            return speech_window_features(lm, audio, sr, window, layers=layer_list, batch_size=batch_size, ends=times)[0]
        if stride is None:
            frames = speech_hidden_states(lm, audio, sr, batch_size=max(1, _speech_batch(lm, batch_size) // 4))  # 30 s chunks
            states = [frames[layer] for layer in layer_list]
            step = len(check_audio(audio, sr)) / SPEECH_SR / len(states[0])  # seconds per frame (~0.02)
            ends = (np.arange(len(states[0])) + 1) * step  # each frame's end
        else:
            states, ends = speech_window_features(lm, audio, sr, window, stride, layer_list, batch_size)
            step = float(stride)
        return [(step / tr) * lanczos_resample(s, ends, times) for s in states]

    return cached_layers("speech_tr_features", model, "speech", layers, _speech_parts(audio, sr, times, window, stride), cache, run)


def _speech_parts(audio: np.ndarray, sr: int, times: np.ndarray, window: float, stride: float | str | None) -> dict:
    """What, besides the model and layers, keys a cached :func:`speech_tr_features` entry."""
    return {"audio": audio, "sr": int(sr), "times": times, "window": float(window),
            "stride": stride if stride is None or isinstance(stride, str) else float(stride), "speech_version": SPEECH_VERSION}


def speech_tr_features_shared(
    lms: Sequence[LoadedModel],
    audio: np.ndarray,
    sr: int,
    times: np.ndarray,
    window: float = 16.0,
    layers: Sequence[int] | None = None,
    batch_size: int | None = None,
    cache: bool = True,
) -> list[list[np.ndarray]]:
    """:func:`speech_tr_features` with ``stride="volumes"`` for several models of one architecture at once.

    The same features, cached under the same entries, as one call per model.
    Whisper models that share their leading blocks (a model brain-tuned with
    adapters on its last blocks, and the pretrained one:
    :func:`models.whisper_shared_blocks`) run those blocks once per window, so
    three such models of four blocks, the last one tuned, run 6 block passes per
    window instead of 12. The first model whose features are not
    cached computes them for itself and every model after it.

    Parameters
    ----------
    lms : sequence of LoadedModel
        Speech models of one architecture.
    audio, sr, times, window, layers, batch_size, cache
        See :func:`speech_tr_features`.

    Returns
    -------
    list, one per model, of lists of ndarrays of float32 (one per selected layer), each of shape (n_trs, dim)
    """
    from .models import check_audio

    lms = list(lms)
    if not lms:
        raise ValueError("lms is empty: give at least one loaded speech model")
    times = check_times(times)
    audio = np.asarray(audio)
    check_audio(audio, sr)
    parts = _speech_parts(audio, sr, times, window, "volumes")
    computed: dict[int, list[np.ndarray]] = {}

    def run_for(i: int):
        def run(_lm: LoadedModel, layer_list: list[int]) -> list[np.ndarray]:
            if i not in computed:
                states, _ = _window_states(lms[i:], audio, sr, window, 0.0, layer_list, batch_size, times)
                computed.update({i + j: s for j, s in enumerate(states)})
            return computed[i]
        return run

    return [cached_layers("speech_tr_features", lm, "speech", layers, parts, cache, run_for(i)) for i, lm in enumerate(lms)]
