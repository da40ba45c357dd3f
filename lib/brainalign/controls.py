"""Control models: language models that were not trained on human language, or lack positions.

Three kinds of control, after Parra (2025):

**Untrained copies** (:func:`untrained`): the architecture of a loaded model
with freshly initialised weights (seeded).

**Small models trained here** (:func:`train_small_model`): a small transformer of
the same families as the evaluated models (a BERT-style bidirectional encoder
with learned absolute positions trained by masked-language modelling, or a
Llama-style causal model with rotary positions trained by next-token
prediction), trained reproducibly from a seed on one of three corpora
(:data:`CORPORA`) of the same length and the same tokens:

``"human"``
    the text itself (for a dataset: the words of its *training* runs, never
    its test runs; :func:`training_words`);
``"shuffled"``
    the same words in a random order: the same vocabulary and word
    frequencies, no syntax and no context;
``"synthetic"``
    a non-linguistic sequence over the same token vocabulary and with the same
    token frequencies: a nested-bracket (Dyck) process, in which each opened
    token is closed by the same token (after Papadimitriou & Jurafsky, 2020).

All corpora are tokenised by one word-level tokenizer built from the human
text (:func:`build_tokenizer`; rarer words fall back to characters). Models of
one seed start from the same weights and see batches at the same positions,
so corpora are compared at matched size and steps. Every trained model is
cached in the data home (a rerun loads it), keyed by its configuration and
its training words.

**Positional-encoding ablation**, either at inference (:func:`positions_removed`,
a context manager that zeroes a loaded model's learned position embeddings or
rotary frequencies, and restores them on exit), or from the start of training
(``positions=False``: the small model never has positional information).
Without positions a bidirectional model reads its input as a bag of tokens;
a causal model still sees order through its causal mask.

Every control is returned as a :class:`brainalign.models.LoadedModel` whose
name and revision say what it is, so :func:`brainalign.features.word_features`
extracts and caches its features like those of any other model.

References
----------
Parra, I. (2025). Neural correlates of language models are specific to human
language. UniReps workshop, PMLR 322.
Papadimitriou, I., & Jurafsky, D. (2020). Learning music helps you read: using
transfer to study linguistic structure in language models. EMNLP.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import config
from .cache import Cache, digest
from .models import SPECIAL_TOKENS, LoadedModel, ModelSpec, build_tokenizer

__all__ = [
    "CONTROLS", "CORPORA", "KINDS", "VERSION", "SmallModelConfig", "apply_control", "build_tokenizer", "check_control",
    "make_corpus", "positions_removed", "remove_positions", "train_small_model", "training_log", "training_words",
    "untrained",
]

log = logging.getLogger(__name__)

#: bump when training or the tokenizer changes what a cached small model holds
VERSION = 1

#: corpora the small models are trained on
CORPORA = ("human", "shuffled", "synthetic")
#: families of small models
KINDS = ("encoder", "causal")
#: controls that apply to a loaded model (see :func:`apply_control`)
CONTROLS = ("untrained", "no_positions")

#: names of learned position tables (BERT/RoBERTa, GPT-2, OPT)
_POSITION_TABLES = ("position_embeddings", "wpe", "embed_positions")


def check_control(control: str) -> str:
    """``control`` if it is one of :data:`CONTROLS`, else a ValueError listing them."""
    if control not in CONTROLS:
        raise ValueError(f"unknown control {control!r}; valid: {list(CONTROLS)}")
    return control


# -- positional encoding ---------------------------------------------------------------------------
def _position_tensors(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Learned position tables and rotary inverse frequencies of ``model``, by qualified name."""
    found = []
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Embedding) and leaf in _POSITION_TABLES:
            found.append((f"{name}.weight", module.weight))
    for name, buffer in model.named_buffers():
        if name.endswith("inv_freq"):  # rotary embeddings: inv_freq and original_inv_freq
            found.append((name, buffer))
    if not found:
        raise ValueError(
            f"found no positional encoding in {type(model).__name__}: this knows learned position tables "
            f"named {list(_POSITION_TABLES)} and rotary embeddings (buffers named '*inv_freq')"
        )
    return found


def remove_positions(model: torch.nn.Module) -> list[str]:
    """Zero a model's positional encoding in place, for good; returns what was zeroed.

    Learned position tables are zeroed (and frozen, so training keeps them at
    zero); rotary inverse frequencies are zeroed, which makes every rotation
    the identity (all angles 0).

    Raises
    ------
    ValueError
        When the model has no positional encoding this function knows.
    """
    names = []
    with torch.no_grad():
        for name, tensor in _position_tensors(model):
            tensor.zero_()
            if isinstance(tensor, torch.nn.Parameter):
                tensor.requires_grad_(False)
            names.append(name)
    return names


def _variant(lm: LoadedModel, suffix: str, note: str) -> LoadedModel:
    spec = dataclasses.replace(lm.spec, name=f"{lm.spec.name}+{suffix}", note=f"{note}; {lm.spec.note}".strip("; "))
    return dataclasses.replace(lm, spec=spec, revision=f"{lm.revision}+{suffix}")


@contextlib.contextmanager
def positions_removed(lm: LoadedModel) -> Iterator[LoadedModel]:
    """A loaded model without positional information, inside a ``with`` block.

    On entry the model's learned position embeddings (BERT-family
    ``position_embeddings``, GPT-2 ``wpe``, OPT ``embed_positions``) or rotary
    frequencies (``*inv_freq`` buffers: Llama, SmolLM2, Qwen, Pythia, Gemma)
    are zeroed in place; on exit they are restored. Nothing is copied, so this
    costs no memory. The yielded model has its own name and revision (so its
    features are cached apart); inside the block ``lm`` itself is ablated too.

    Parameters
    ----------
    lm : LoadedModel

    Yields
    ------
    LoadedModel
        The ablated model: name ``"<name>+no-positions"``.

    Examples
    --------
    >>> with positions_removed(lm) as ablated:                       # doctest: +SKIP
    ...     feats = features.word_features(ablated, words)
    """
    tensors = _position_tensors(lm.model)
    saved = [t.detach().clone() for _, t in tensors]
    with torch.no_grad():
        for _, t in tensors:
            t.zero_()
    try:
        yield _variant(lm, "no-positions", "positional encoding zeroed at inference")
    finally:
        with torch.no_grad():
            for (_, t), original in zip(tensors, saved):
                t.copy_(original)


def untrained(lm: LoadedModel, seed: int = 0) -> LoadedModel:
    """A copy of ``lm``'s architecture with freshly initialised weights.

    The model class is built from ``lm``'s configuration with the library's
    own initialisation, under ``torch.manual_seed(seed)`` (the global torch
    generator is left as it was). The tokenizer is shared.

    Parameters
    ----------
    lm : LoadedModel
    seed : int

    Returns
    -------
    LoadedModel
        Name ``"<name>+untrained-seed<seed>"``, in eval mode, with ``lm``'s dtype and device.
    """
    param = next(lm.model.parameters())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = type(lm.model)(copy.deepcopy(lm.model.config))
    model.to(dtype=param.dtype, device=param.device).eval()
    out = _variant(lm, f"untrained-seed{int(seed)}", f"random weights (seed {int(seed)})")
    return dataclasses.replace(out, model=model)


def apply_control(lm: LoadedModel, control: str, seed: int = 0) -> contextlib.AbstractContextManager[LoadedModel]:
    """A control of :data:`CONTROLS` applied to a loaded model, as a context manager.

    ``"untrained"``: :func:`untrained` (a new model, which holds a second set of
    weights until the caller drops it); ``"no_positions"``: :func:`positions_removed`
    (``lm`` is restored on exit).

    Raises
    ------
    ValueError
        For an unknown control (the message lists :data:`CONTROLS`).
    """
    check_control(control)
    if control == "no_positions":
        return positions_removed(lm)
    return contextlib.nullcontext(untrained(lm, seed))


# -- corpora ---------------------------------------------------------------------------------------
def training_words(ds: Any) -> list[str]:
    """The words of a dataset's training runs, in order: the human text small models train on.

    Only ``ds.train_runs`` are read, so a test story is never trained on.

    Parameters
    ----------
    ds : brainalign.datasets.Dataset

    Returns
    -------
    list of str
    """
    words: list[str] = []
    for run in ds.train_runs:
        if run in ds.test_runs:
            raise ValueError(f"run {run!r} is both a training and a test run of {ds.name}")
        words += [str(w) for w in ds.words(run)["word"]]
    return words


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid: {list(KINDS)}")


def _check_corpus(corpus: str) -> None:
    if corpus not in CORPORA:
        raise ValueError(f"unknown corpus {corpus!r}; valid: {list(CORPORA)}")


def _dyck(frequencies: np.ndarray, n: int, gen: np.random.Generator, max_depth: int = 8) -> np.ndarray:
    """``n`` tokens of a nested-bracket process: open a token drawn from ``frequencies`` or close the last open one."""
    p = frequencies / frequencies.sum()
    draws = gen.choice(len(p), size=n, p=p)
    coins = gen.random(n)
    out = np.empty(n, dtype=np.int64)
    stack: list[int] = []
    for i in range(n):
        close = len(stack) >= max_depth or (stack and coins[i] < 0.5)
        out[i] = stack.pop() if close else draws[i]
        if not close:
            stack.append(int(draws[i]))
    return out


def make_corpus(corpus: str, words: Sequence[str], tokenizer, seed: int = 0) -> np.ndarray:
    """The token stream of a training corpus.

    Parameters
    ----------
    corpus : {"human", "shuffled", "synthetic"}
        See the module docstring.
    words : sequence of str
        The human text, in order.
    tokenizer : transformers tokenizer
        From :func:`build_tokenizer`.
    seed : int
        Seed of the shuffle (``"shuffled"``) or of the process (``"synthetic"``).

    Returns
    -------
    ndarray of int64, shape (n_tokens,)
        No special tokens. ``"synthetic"`` has as many tokens as ``"human"``, drawn
        with the human text's token frequencies.
    """
    _check_corpus(corpus)
    words = [str(w) for w in words]
    if corpus == "shuffled":
        words = [words[i] for i in config.rng(seed, "controls", "shuffled-words").permutation(len(words))]
    ids = np.asarray(tokenizer(" ".join(words), add_special_tokens=False, verbose=False)["input_ids"], dtype=np.int64)
    if corpus == "synthetic":
        freq = np.bincount(ids, minlength=len(tokenizer)).astype(float)
        ids = _dyck(freq, len(ids), config.rng(seed, "controls", "synthetic"))
    return ids


# -- small models --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SmallModelConfig:
    """Everything that determines a small control model.

    Attributes
    ----------
    kind : {"encoder", "causal"}
        BERT-style masked-LM encoder (learned positions) or Llama-style causal LM (rotary).
    corpus : {"human", "shuffled", "synthetic"}
    positions : bool
        False: trained (and used) without any positional encoding.
    n_layers, dim, n_heads : int
        Transformer blocks, width, attention heads (feed-forward width ``4 * dim``).
    vocab_words : int
        Whole-word tokens of the tokenizer (:func:`build_tokenizer`).
    seq_len, batch_size, steps : int
        Training sequences (tokens), sequences per step, optimiser steps.
    lr : float
        Peak learning rate of AdamW (linear warm-up over 10% of the steps, then cosine decay).
    seed : int
        Initial weights and batch positions (shared by the corpora); shuffle or synthetic process.
    """

    kind: str = "encoder"
    corpus: str = "human"
    positions: bool = True
    n_layers: int = 4
    dim: int = 128
    n_heads: int = 4
    vocab_words: int = 2000
    seq_len: int = 64
    batch_size: int = 16
    steps: int = 300
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        _check_kind(self.kind)
        _check_corpus(self.corpus)
        for name in ("n_layers", "dim", "n_heads", "vocab_words", "seq_len", "batch_size", "steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (0 if name == "steps" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.dim % self.n_heads or (self.dim // self.n_heads) % 2:
            raise ValueError(f"dim={self.dim} must be a multiple of n_heads={self.n_heads} with an even head width")
        if self.seq_len < 4:
            raise ValueError(f"seq_len must be at least 4, got {self.seq_len}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")

    @property
    def name(self) -> str:
        """The model's name: ``small-<kind>-<corpus>[-nopos]``."""
        return f"small-{self.kind}-{self.corpus}" + ("" if self.positions else "-nopos")


def _max_positions(cfg: SmallModelConfig) -> int:
    return max(256, cfg.seq_len)


def _new_model(cfg: SmallModelConfig, tokenizer) -> torch.nn.Module:
    """The untrained small model (weights from ``torch.manual_seed(cfg.seed)``)."""
    common = dict(vocab_size=len(tokenizer), hidden_size=cfg.dim, num_hidden_layers=cfg.n_layers,
                  num_attention_heads=cfg.n_heads, intermediate_size=4 * cfg.dim,
                  max_position_embeddings=_max_positions(cfg), pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if cfg.kind == "encoder":
            from transformers import BertConfig, BertForMaskedLM

            model = BertForMaskedLM(BertConfig(type_vocab_size=1, **common))
        else:
            from transformers import LlamaConfig, LlamaForCausalLM

            model = LlamaForCausalLM(LlamaConfig(num_key_value_heads=cfg.n_heads, tie_word_embeddings=True,
                                                 bos_token_id=None, eos_token_id=None, **common))
    if not cfg.positions:
        remove_positions(model)
    return model


def _mask_tokens(ids: torch.Tensor, tokenizer, special: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: 15% of the ordinary tokens are predicted; of them 80% become [MASK], 10% a random token."""
    labels = ids.clone()
    chosen = (torch.rand(ids.shape, generator=gen) < 0.15) & ~special
    labels[~chosen] = -100
    ids = ids.clone()
    roll = torch.rand(ids.shape, generator=gen)
    ids[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    ids[swap] = torch.randint(len(SPECIAL_TOKENS), len(tokenizer), (int(swap.sum()),), generator=gen)
    return ids, labels


def _train(cfg: SmallModelConfig, words: Sequence[str], progress: bool = False) -> tuple[torch.nn.Module, Any, list[float]]:
    """Build the tokenizer and model and train it; returns (model, tokenizer, loss per step)."""
    from tqdm.auto import tqdm

    tokenizer = build_tokenizer(words, cfg.kind, cfg.vocab_words, _max_positions(cfg))
    stream = torch.from_numpy(make_corpus(cfg.corpus, words, tokenizer, cfg.seed))
    model = _new_model(cfg, tokenizer)
    body = cfg.seq_len - 2 if cfg.kind == "encoder" else cfg.seq_len
    if len(stream) <= body:
        raise ValueError(f"the training text has {len(stream)} tokens, fewer than one sequence of {body}; "
                         "give more words or a smaller seq_len")
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    warmup = max(1, cfg.steps // 10)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, cfg.steps - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    starts_gen = config.rng(cfg.seed, "controls", "batches")
    gen = torch.Generator().manual_seed(cfg.seed)
    offsets = torch.arange(body)
    losses = []
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # dropout
        for _ in tqdm(range(cfg.steps), desc=cfg.name, disable=not progress, leave=False):
            starts = torch.from_numpy(starts_gen.integers(0, len(stream) - body, cfg.batch_size))
            ids = stream[starts[:, None] + offsets]
            if cfg.kind == "encoder":
                ids = torch.cat([torch.full((len(ids), 1), tokenizer.cls_token_id), ids,
                                 torch.full((len(ids), 1), tokenizer.sep_token_id)], dim=1)
                special = torch.zeros_like(ids, dtype=torch.bool)
                special[:, [0, -1]] = True
                inputs, labels = _mask_tokens(ids, tokenizer, special, gen)
            else:
                inputs, labels = ids, ids
            loss = model(input_ids=inputs, labels=labels).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
    model.eval()
    return model, tokenizer, losses


def _load_small(folder: Path, cfg: SmallModelConfig, revision: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, PreTrainedTokenizerFast
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    auto = AutoModelForMaskedLM if cfg.kind == "encoder" else AutoModelForCausalLM
    model = auto.from_pretrained(folder, dtype=torch.float32).eval()
    if not cfg.positions:
        remove_positions(model)  # rotary frequencies are rebuilt from the config on load
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder)
    spec = ModelSpec(cfg.name, cfg.kind, None, None, cfg.n_layers, cfg.dim, licence="trained here",  # type: ignore[arg-type]
                     note=f"small control model: {cfg}")
    return LoadedModel(spec=spec, tokenizer=tokenizer, model=model, source="trained", revision=revision)


def train_small_model(
    words: Sequence[str], cfg: SmallModelConfig | None = None, cache: bool = True, progress: bool = False, **overrides: Any,
) -> LoadedModel:
    """Train a small control model (or load it from the cache).

    Parameters
    ----------
    words : sequence of str
        The human text (e.g. :func:`training_words`); the tokenizer is built
        from it, and every corpus is derived from it.
    cfg : SmallModelConfig, optional
        The model and its training (defaults otherwise).
    cache : bool
        Keep the trained model in the data home and reuse it.
    progress : bool
        Show a progress bar while training.
    **overrides
        Fields of :class:`SmallModelConfig` to change, e.g. ``corpus="shuffled"``.

    Returns
    -------
    LoadedModel
        In eval mode; its revision identifies the configuration and the words.
        :func:`training_log` gives the loss per step.
    """
    cfg = dataclasses.replace(cfg or SmallModelConfig(), **overrides)
    if isinstance(words, str):
        raise TypeError("words must be a sequence of words, not one string; split it first")
    words = [str(w) for w in words]
    parts = {"config": dataclasses.asdict(cfg), "words": digest(words)}
    key = Cache.key("controls", VERSION, parts)
    revision = f"brainalign-controls-v{VERSION}:{key[:16]}"

    def build(tmp: Path) -> None:
        model, tokenizer, losses = _train(cfg, words, progress)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model.config.brainalign_control = {**dataclasses.asdict(cfg), "losses": losses, "n_words": len(words)}
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    if cache:
        return _load_small(Cache().folder("controls", key, build), cfg, revision)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        return _load_small(Path(tmp), cfg, revision)


def training_log(lm: LoadedModel) -> dict:
    """The training record of a small model: its configuration, ``n_words`` and ``losses`` (one per step)."""
    record = getattr(lm.model.config, "brainalign_control", None)
    if record is None:
        raise ValueError(f"model {lm.spec.name!r} was not trained by brainalign.controls.train_small_model")
    return dict(record)
