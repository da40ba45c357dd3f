"""Tiny stand-ins for hub models: the same transformers class, randomly initialised, built offline.

A ``paper`` parameter set names hub models (``bert-base-uncased``,
``meta-llama/Llama-3.2-1B``, ``wav2vec2-base-960h``, ...). To run such a set
end to end without the network (``brainalign run NOTEBOOK --set paper
--miniature``), :func:`~brainalign.models.load_model` builds, in miniature mode
(:func:`brainalign.config.miniature`), a model of the same class with the
same number of blocks but a width of :data:`TINY_DIM`, from a fixed seed,
and a tokenizer of the same kind (:func:`build_tokenizer`, which Study 2's
small models use too: the 2,000 commonest words of the packaged Moby-Dick
chapters, other words spelt in characters; encoders add ``[CLS]`` and
``[SEP]``, causal models nothing). Its hidden states have the real
model's count and the tiny width, so every layer index of the set stays
valid; the numbers mean nothing. A loaded tiny model says so: its spec's
``dim`` is :data:`TINY_DIM`, its ``source`` is ``"tiny"`` and its revision
starts with ``tiny:``.
"""

from __future__ import annotations

import dataclasses
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .registry import ModelSpec

__all__ = ["SPECIAL_TOKENS", "TINY_DIM", "TINY_FAMILIES", "build_tokenizer", "corpus_words", "tiny_model"]

#: width of every tiny model's hidden states
TINY_DIM = 32

#: the transformers model type of each hub entry a tiny stand-in can be built for
TINY_FAMILIES: dict[str, str] = {
    "bert-base-uncased": "bert", "bert-large-uncased": "bert", "roberta-base": "roberta",
    "gpt2": "gpt2", "gpt2-medium": "gpt2", "gpt2-large": "gpt2", "opt-125m": "opt", "pythia-160m": "gpt_neox",
    "meta-llama/Llama-3.2-1B": "llama", "google/gemma-2b": "gemma", "tiiuae/Falcon3-1B-Base": "llama",
    "Qwen/Qwen2.5-0.5B": "qwen2", "HuggingFaceTB/SmolLM2-360M": "llama",
    "wav2vec2-base-960h": "wav2vec2", "hubert-base-ls960": "hubert", "whisper-base": "whisper",
}

#: the special tokens of :func:`build_tokenizer`, first in its vocabulary
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

_TEXT_POSITIONS = {"encoder": 512, "causal": 8192}  # BERT's limit; causal models read long windows


def build_tokenizer(words: Sequence[str], kind: str = "encoder", vocab_words: int = 2000, max_length: int = 256):
    """A word-level tokenizer with a character fallback, built from a text.

    The text is lowercased and split into words and punctuation runs; the
    ``vocab_words`` most frequent of them (ties broken alphabetically, so the
    vocabulary is deterministic) become tokens, and any other word is spelt
    with single-character WordPiece tokens (every printable ASCII character
    is in the vocabulary). Encoders get ``[CLS] ... [SEP]``; causal models no
    special token.

    Parameters
    ----------
    words : sequence of str
    kind : {"encoder", "causal"}
    vocab_words : int
        Whole-word tokens.
    max_length : int
        The tokenizer's ``model_max_length``.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    if kind not in ("encoder", "causal"):
        raise ValueError(f"unknown kind {kind!r}; valid: ['encoder', 'causal']")
    if isinstance(words, str) or len(words) == 0:
        raise ValueError("words must be a non-empty sequence of words (split the text first)")
    pre = pre_tokenizers.Whitespace()
    counts = Counter(piece for w in words for piece, _ in pre.pre_tokenize_str(w.lower()))
    top = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: int(vocab_words)]]
    chars = sorted(set("".join(counts)) | set(string.printable.strip().lower()))
    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars), *top]:
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    if kind == "encoder":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=int(max_length))


def corpus_words() -> list[str]:
    """The words of the packaged Moby-Dick chapters (the simulated cohort's and the miniatures' stories)."""
    folder = Path(__file__).resolve().parent.parent / "resources" / "stimuli" / "mobydick"
    return [w for path in sorted(folder.glob("*.txt")) for w in path.read_text(encoding="utf-8").split()]


def _text_config(model_type: str, spec: ModelSpec, vocab_size: int) -> Any:
    from transformers import AutoConfig

    width = {"hidden_size": TINY_DIM, "num_hidden_layers": spec.n_layers, "num_attention_heads": 2,
             "intermediate_size": 2 * TINY_DIM, "vocab_size": vocab_size,
             "max_position_embeddings": _TEXT_POSITIONS[spec.kind]}
    extra: dict[str, Any] = {
        "bert": {"type_vocab_size": 2},
        "roberta": {"type_vocab_size": 1, "max_position_embeddings": _TEXT_POSITIONS[spec.kind] + 2},
        "opt": {"ffn_dim": 2 * TINY_DIM, "word_embed_proj_dim": TINY_DIM},
        "llama": {"num_key_value_heads": 1}, "qwen2": {"num_key_value_heads": 1},
        "gemma": {"num_key_value_heads": 1, "head_dim": TINY_DIM // 2},
    }.get(model_type, {})
    return AutoConfig.for_model(model_type, **{**width, **extra})


def _speech(model_type: str, spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    import transformers as tf

    if model_type == "whisper":
        config = tf.WhisperConfig(d_model=TINY_DIM, encoder_layers=spec.n_layers, decoder_layers=1, encoder_attention_heads=2,
                                  decoder_attention_heads=2, encoder_ffn_dim=2 * TINY_DIM, decoder_ffn_dim=2 * TINY_DIM,
                                  num_mel_bins=80)
        return tf.WhisperFeatureExtractor(feature_size=80), tf.WhisperModel(config).get_encoder()
    small = {"hidden_size": TINY_DIM, "num_hidden_layers": spec.n_layers, "num_attention_heads": 2,
             "intermediate_size": 2 * TINY_DIM, "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16}
    arch = tf.Wav2Vec2Model if model_type == "wav2vec2" else tf.HubertModel
    config = (tf.Wav2Vec2Config if model_type == "wav2vec2" else tf.HubertConfig)(**small)
    return tf.Wav2Vec2FeatureExtractor(), arch(config)


def tiny_model(spec: ModelSpec, seed: int = 0) -> tuple[ModelSpec, Any, torch.nn.Module]:
    """A randomly initialised model of ``spec``'s class, with its processor, built without a download.

    Parameters
    ----------
    spec : ModelSpec
        A hub entry of :data:`TINY_FAMILIES`.
    seed : int
        Seed of the weights (the same seed gives the same model).

    Returns
    -------
    spec : ModelSpec
        ``spec`` with ``dim`` = :data:`TINY_DIM`.
    processor
        A tokenizer (text models) or the class's feature extractor (speech models).
    model : torch.nn.Module
        The model (a language model's class with its head; a speech model's encoder).

    Raises
    ------
    ValueError
        When no tiny stand-in is defined for ``spec``; the message lists those that are.
    """
    model_type = TINY_FAMILIES.get(spec.name)
    if model_type is None:
        raise ValueError(f"model {spec.name!r} has no tiny stand-in for miniature runs; models with one: "
                         f"{', '.join(TINY_FAMILIES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.kind == "speech":
            processor, model = _speech(model_type, spec)
        else:
            from transformers import AutoModel, AutoModelForCausalLM

            processor = build_tokenizer(corpus_words(), spec.kind, vocab_words=2000, max_length=_TEXT_POSITIONS[spec.kind])
            config = _text_config(model_type, spec, len(processor))
            config.pad_token_id, config.bos_token_id, config.eos_token_id = processor.pad_token_id, None, None
            model = (AutoModel if spec.kind == "encoder" else AutoModelForCausalLM).from_config(config)
    return dataclasses.replace(spec, dim=TINY_DIM), processor, model
