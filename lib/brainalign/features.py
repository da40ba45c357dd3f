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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .cache import Cache
from .models import LoadedModel, get_spec, load_model, revision

__all__ = ["VERSION", "sequence_word_features", "tr_features", "windows", "word_features", "word_features_loop"]

#: bump when the features' numbers change
VERSION = 1


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


def _max_tokens(lm: LoadedModel) -> int:
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
    return ValueError(
        f"word {i} ({words[i]!r}) gives no tokens with the {lm.spec.name!r} tokenizer "
        "(e.g. only characters it drops); remove or replace it"
    )


def _resolve_model(model: str | LoadedModel) -> tuple[str, str, str, int]:
    """Name, revision, dtype and number of hidden states, without loading a model given by name."""
    if isinstance(model, LoadedModel):
        dtype = str(next(model.model.parameters()).dtype)
        return model.spec.name, model.revision, dtype, model.spec.n_layers + 1
    if isinstance(model, str):
        spec = get_spec(model)
        return spec.name, revision(model), str(torch.float32), spec.n_layers + 1
    raise TypeError(f"model must be a model name or a LoadedModel, got {type(model).__name__}")


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
    name, rev, dtype, n_hidden = _resolve_model(model)
    words = _check_words(words)
    layer_list = _check_layers(layers, n_hidden)

    def compute() -> dict[str, np.ndarray]:
        lm = model if isinstance(model, LoadedModel) else load_model(model)
        return {"features": run(lm, words, layer_list)}

    if not cache:
        return compute()["features"]
    parts = {"model": name, "revision": rev, "dtype": dtype, "words": words, "layers": layer_list, **params}
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
    if lengths.max() > (limit := _max_tokens(lm)):
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
    lm = model if isinstance(model, LoadedModel) else load_model(model)
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
    step = min(int(max_tokens), _max_tokens(lm)) if max_tokens is not None else _max_tokens(lm)
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
    tr_times: np.ndarray,
    window: int = 3,
    cutoff_mult: float = 1.0,
) -> np.ndarray:
    """Resample word features to the fMRI acquisition times (Lanczos filter).

    Parameters
    ----------
    word_feats : ndarray, shape (n_layers, n_words, dim)
        From :func:`word_features`.
    word_times : ndarray, shape (n_words,)
        Time of each word (s), e.g. its onset or middle.
    tr_times : ndarray, shape (n_trs,)
        Time of each volume (s).
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
    tr_times = np.asarray(tr_times, dtype=float)
    if feats.ndim != 3:
        raise ValueError(f"word_feats must have shape (n_layers, n_words, dim), got shape {feats.shape}")
    n_layers, n_words, dim = feats.shape
    if word_times.shape != (n_words,):
        raise ValueError(f"word_times must have shape ({n_words},) to match word_feats, got {word_times.shape}")
    if tr_times.ndim != 1:
        raise ValueError(f"tr_times must be one-dimensional, got shape {tr_times.shape}")
    # the filter is linear and acts on each column alone: resample all layers in one call
    flat = feats.transpose(1, 0, 2).reshape(n_words, n_layers * dim)
    resampled = np.asarray(lanczos_resample(flat, word_times, tr_times, window=window, cutoff_mult=cutoff_mult))
    return resampled.reshape(len(tr_times), n_layers, dim).transpose(1, 0, 2).astype(np.float32)
