"""Attribution through the pipeline language model -> ridge encoder -> fMRI, word by word.

:class:`RidgeMap` turns a fitted ridge encoder into a differentiable torch map;
:class:`BrainAttribution` builds, for each TR, the window of words its
prediction reads, computes both losses from the window's input embeddings
(:mod:`~brainalign.attribution.forward`) and attributes them to the words
(:mod:`~brainalign.attribution.gradients`); :class:`WordAttributions` holds the
result. The method is described in :mod:`brainalign.attribution`.

The module is longer than most: it is one class whose methods (attribution, the converging
Integrated Gradients, the path's losses, masking) share the plan of each TR's window and its
forward pass, which splitting would pull apart from their one user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..encoding import RidgeEncoder
from ..models import LoadedModel
from .forward import hidden_states, input_embeddings, layer_logits
from .gradients import METHODS, gradient_x_input, integrated_gradients
from .measures import layer_group

__all__ = ["BASELINES", "NWP_READOUTS", "BrainAttribution", "RidgeMap", "WordAttributions"]

#: where the Integrated Gradients path starts: zero embeddings, or the mean input embedding
BASELINES = ("zero", "mean")
#: how the next-word loss reads the layer: logit lens (final norm + output embeddings) or the model's output
NWP_READOUTS = ("logit_lens", "output")


# -- the ridge encoder as a torch map ------------------------------------------------------------------
class RidgeMap(torch.nn.Module):
    """A fitted :class:`~brainalign.encoding.RidgeEncoder` as a differentiable map of delayed features.

    ``forward(Xd) == encoder.predict(X)`` for ``Xd = delay_within_runs(X, encoder.delays)``
    (see :meth:`~brainalign.encoding.RidgeEncoder.linear_map`).

    Parameters
    ----------
    encoder : RidgeEncoder
        Fitted.
    dtype : torch.dtype, default=torch.float32
    """

    def __init__(self, encoder: RidgeEncoder, dtype: torch.dtype = torch.float32):
        super().__init__()
        mean, scale, weights, intercept = encoder.linear_map()
        self.delays = tuple(int(d) for d in encoder.delays)
        self.n_features = int(encoder.n_features_in_)
        for name, value in (("mean", mean), ("scale", scale), ("weights", weights), ("intercept", intercept)):
            self.register_buffer(name, torch.as_tensor(value, dtype=dtype))

    def forward(self, delayed: torch.Tensor) -> torch.Tensor:
        """Predictions of shape (batch, n_targets) from delayed features of shape (batch, n_features * n_delays)."""
        return ((delayed - self.mean) / self.scale) @ self.weights + self.intercept


# -- attribution through a language model ----------------------------------------------------------------
@dataclass
class WordAttributions:
    """Word attributions of some TRs' windows.

    Attributes
    ----------
    trs : int array of shape (n_windows,)
        The attributed TRs.
    first, last : int arrays of shape (n_windows,)
        Story indices of each window's first and last (current) word.
    scores : dict of key -> array of shape (n_windows, context)
        Word attributions, column ``j`` for word ``first + j``. Keys are
        ``("alignment", layer, target)`` and ``("next_word", layer)``.
    delta : dict of key -> array of shape (n_windows,)
        Integrated Gradients only: the convergence delta of each window.
    gap : dict of key -> array of shape (n_windows,)
        Integrated Gradients only: ``loss(input) - loss(baseline)``, the sum the attributions should make.
    method : str
    """

    trs: np.ndarray
    first: np.ndarray
    last: np.ndarray
    scores: dict
    method: str
    delta: dict = field(default_factory=dict)
    gap: dict = field(default_factory=dict)


@dataclass
class _Batch:
    """Tensors of a batch of windows (rows: windows)."""

    ids: torch.Tensor          # (B, T) token ids, right-padded
    attention: torch.Tensor    # (B, T) bool
    word_of: torch.Tensor      # (B, T) long: window word of each token, context = the next word, -1 none
    lanczos: torch.Tensor      # (B, n_delays, context) weights of the window's words in the delayed TRs
    constant: dict             # layer -> (B, n_delays, dim): words read before the window, from fallback features
    targets: dict              # target name -> (B, n_targets) measured responses
    next_pos: torch.Tensor     # (B, T) bool: positions whose logits predict a token of the next word
    next_ids: torch.Tensor     # (B, T) long: the predicted token at those positions (0 elsewhere)


class BrainAttribution:
    """Attribute brain-alignment and next-word losses of a causal LM to the words of one story.

    Parameters
    ----------
    lm : LoadedModel
        A causal language model (:func:`brainalign.models.load_model`).
    words : sequence of str, length n_words
        The story's words, in order, as the encoders' features were computed from them.
    word_times : array of shape (n_words,)
        Time of each word (s), as given to :func:`brainalign.features.tr_features`.
    times : array of shape (n_trs,)
        Sampling times of the story's volumes (s, ``Dataset.sample_times``), as given to
        :func:`brainalign.features.tr_features`.
    encoders : mapping of (layer, target) -> RidgeEncoder
        Encoders fitted on TR features of hidden state ``layer`` (0 = embeddings; the
        :func:`~brainalign.features.tr_features` of word features that average each word's
        tokens), predicting the responses named ``target`` (e.g. ``"S01/LTC"``). All share
        the same delays.
    responses : mapping of target -> array of shape (n_trs, n_targets)
        The measured responses of each target on this story.
    context : int, default=64
        Words per window (the current word included).
    nwp_readout : {"output", "logit_lens"}, default="output"
        How the next-word loss reads hidden state ``layer``: the model's own output (the
        same for every layer), or the layer through the model's final norm and output
        embeddings (the logit lens).
    fallback : mapping of layer -> array of shape (n_words, dim), optional
        Word features for the words a prediction reads that lie before its window (held
        constant); None: such TRs are not eligible.
    window : int, default=3
        Lobes of the Lanczos filter (as in :func:`~brainalign.features.tr_features`).

    Attributes
    ----------
    eligible : int array
        The TRs that can be attributed: their delayed TRs lie in the story, their window
        fits in it, a word follows it, and the words their prediction reads lie in the
        window (or have ``fallback`` features).
    layers : list of int
        The layers of the encoders.
    delays : tuple of int
        The encoders' delays.
    lanczos : array of shape (n_trs, n_words)
        Weight of each word in each TR's features.

    Examples
    --------
    >>> att = BrainAttribution(lm, words, word_times, times, {(15, "S01/LTC"): encoder},
    ...                        {"S01/LTC": Y_test[:, ltc]})                     # doctest: +SKIP
    >>> res = att.attribute(att.eligible[:8])                                  # doctest: +SKIP
    >>> res.scores["alignment", 15, "S01/LTC"].shape, res.scores["next_word", 15].shape  # doctest: +SKIP
    ((8, 64), (8, 64))
    """

    def __init__(
        self,
        lm: LoadedModel,
        words: Sequence[str],
        word_times: np.ndarray,
        times: np.ndarray,
        encoders: Mapping[tuple[int, str], RidgeEncoder],
        responses: Mapping[str, np.ndarray],
        context: int = 64,
        nwp_readout: str = "output",
        fallback: Mapping[int, np.ndarray] | None = None,
        window: int = 3,
    ):
        from ..stimuli import lanczos_resample

        if lm.spec.kind != "causal":
            raise ValueError(f"model {lm.spec.name!r} is an {lm.spec.kind}; attribution needs a causal language model")
        if nwp_readout not in NWP_READOUTS:
            raise ValueError(f"unknown nwp_readout {nwp_readout!r}; valid: {list(NWP_READOUTS)}")
        if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1:
            raise ValueError(f"context={context!r} must be a positive integer (words per window)")
        self.lm, self.context, self.nwp_readout = lm, int(context), nwp_readout
        self.words = [str(w) for w in words]
        self.word_times = np.asarray(word_times, dtype=np.float64)
        self.times = np.asarray(times, dtype=np.float64)
        if self.word_times.shape != (len(self.words),):
            raise ValueError(f"word_times has shape {self.word_times.shape}; expected ({len(self.words)},)")
        self.n_layers = lm.spec.n_layers
        if not encoders:
            raise ValueError("encoders is empty: give at least one (layer, target) -> fitted RidgeEncoder")
        self.maps: dict[tuple[int, str], RidgeMap] = {}
        delays = set()
        for (layer, target), encoder in encoders.items():
            layer_group(int(layer), self.n_layers)  # validates the layer
            if target not in responses:
                raise ValueError(f"no responses for target {target!r}; responses has {sorted(responses)}")
            self.maps[int(layer), target] = RidgeMap(encoder).to(lm.device)
            delays.add(self.maps[int(layer), target].delays)
            if self.maps[int(layer), target].n_features != lm.spec.dim:
                raise ValueError(f"the encoder of {(layer, target)} was fitted on {encoder.n_features_in_} features; "
                                 f"{lm.spec.name} has {lm.spec.dim}")
        if len(delays) != 1:
            raise ValueError(f"all encoders must share the same delays, got {sorted(delays)}")
        self.delays = delays.pop()
        self.layers = sorted({layer for layer, _ in self.maps})
        self.responses = {k: np.asarray(v, dtype=np.float32) for k, v in responses.items()}
        for name, y in self.responses.items():
            if y.ndim != 2 or len(y) != len(self.times):
                raise ValueError(f"responses[{name!r}] has shape {y.shape}; expected ({len(self.times)}, n_targets)")
        self.fallback = {int(k): np.asarray(v, dtype=np.float32) for k, v in (fallback or {}).items()}
        self.lanczos = lanczos_resample(np.eye(len(self.words)), self.word_times, self.times, window=window)
        self._plan()

    # -- windows -------------------------------------------------------------------------------------
    def _plan(self) -> None:
        n_trs, n_words = self.lanczos.shape
        self._first = np.full(n_trs, -1)
        self._last = np.full(n_trs, -1)
        self._why = np.full(n_trs, "", dtype=object)
        for t in range(n_trs):
            rows = [t - d for d in self.delays]
            if min(rows) < 0 or max(rows) >= n_trs:
                self._why[t] = f"its delayed TRs {rows} leave the story's {n_trs} TRs"
                continue
            read = np.flatnonzero(np.any(self.lanczos[rows] != 0, axis=0))
            if read.size == 0:
                self._why[t] = "its prediction reads no word"
                continue
            last = int(read.max())
            first = last - self.context + 1
            if first < 0:
                self._why[t] = f"its window of {self.context} words would start before the story"
            elif last + 1 >= n_words:
                self._why[t] = "no word follows its window (nothing to predict)"
            elif read.min() < first and not all(layer in self.fallback for layer in self.layers):
                self._why[t] = (f"its prediction reads {first - read.min()} word(s) before its window; "
                                "use a longer context or give fallback features")
            else:
                self._first[t], self._last[t] = first, last
        self.eligible = np.flatnonzero(self._first >= 0)

    def windows(self, trs: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """First and last (current) word of each TR's window.

        Returns
        -------
        first, last : int arrays of shape (n,)
        """
        trs = self._check_trs(trs)
        return self._first[trs], self._last[trs]

    def _check_trs(self, trs: Sequence[int]) -> np.ndarray:
        trs = np.asarray(trs, dtype=np.int64).ravel()
        bad = [int(t) for t in trs if not 0 <= t < len(self._first) or self._first[t] < 0]
        if bad:
            t = bad[0]
            why = self._why[t] if 0 <= t < len(self._first) else f"the story has TRs 0..{len(self._first) - 1}"
            raise ValueError(f"TR {t} cannot be attributed: {why}. Eligible TRs: {len(self.eligible)} "
                             f"({self.eligible.min() if self.eligible.size else '-'}.."
                             f"{self.eligible.max() if self.eligible.size else '-'})")
        return trs

    def _batch(self, trs: np.ndarray) -> _Batch:
        tok = self.lm.tokenizer
        C, n_delays, dim = self.context, len(self.delays), self.lm.spec.dim
        ids, word_of = [], []
        for t in trs:
            first, last = self._first[t], self._last[t]
            chunk = self.words[first : last + 2]  # the window and the next word
            ends = np.cumsum([len(w) + 1 for w in chunk]) - 1
            enc = tok(" ".join(chunk), add_special_tokens=True, return_offsets_mapping=True, return_attention_mask=False)
            offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
            real = offsets[:, 1] > offsets[:, 0]
            owner = np.where(real, np.searchsorted(ends, offsets[:, 1] - 1, side="right"), -1)
            missing = np.setdiff1d(np.arange(len(chunk)), owner)
            if missing.size:
                raise ValueError(f"word {first + missing[0]} ({chunk[missing[0]]!r}) gives no tokens with the "
                                 f"{self.lm.spec.name!r} tokenizer; remove or replace it")
            ids.append(np.asarray(enc["input_ids"], dtype=np.int64))
            word_of.append(owner)
        width = max(len(x) for x in ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        B = len(trs)
        ids_t = torch.full((B, width), pad, dtype=torch.long)
        word_t = torch.full((B, width), -1, dtype=torch.long)
        for b, (x, w) in enumerate(zip(ids, word_of)):
            ids_t[b, : len(x)] = torch.from_numpy(x)
            word_t[b, : len(w)] = torch.from_numpy(w)
        attention = torch.arange(width)[None, :] < torch.tensor([len(x) for x in ids])[:, None]
        is_next = word_t == C
        next_pos = torch.zeros_like(is_next)
        next_pos[:, :-1] = is_next[:, 1:]
        next_ids = torch.where(next_pos, torch.roll(ids_t, -1, dims=1), torch.zeros_like(ids_t))
        lanczos = np.zeros((B, n_delays, C), dtype=np.float32)
        constant = {layer: np.zeros((B, n_delays, dim), dtype=np.float32) for layer in self.layers}
        for b, t in enumerate(trs):
            first, last = self._first[t], self._last[t]
            rows = self.lanczos[[t - d for d in self.delays]]  # (n_delays, n_words)
            lanczos[b] = rows[:, first : last + 1]
            if first > 0 and np.any(rows[:, :first] != 0):
                for layer in self.layers:
                    constant[layer][b] = rows[:, :first] @ self.fallback[layer][:first]
        targets = {name: torch.from_numpy(y[trs]) for name, y in self.responses.items()}
        return _Batch(ids_t, attention, word_t, torch.from_numpy(lanczos),
                      {k: torch.from_numpy(v) for k, v in constant.items()}, targets, next_pos, next_ids)


    # -- the targets --------------------------------------------------------------------------------------
    def _outputs(self, x: torch.Tensor, batch: _Batch, idx: torch.Tensor, keys: Sequence[tuple],
                 losses: bool = True) -> dict:
        """Per-window outputs of ``keys`` for input embeddings ``x`` of the windows ``idx`` of ``batch``.

        Alignment keys give the loss (B,) or, with ``losses=False``, the prediction (B, n_targets);
        next-word keys give the cross-entropy (B,).
        """
        device = x.device
        idx = idx.to(batch.ids.device)
        attention = batch.attention[idx].to(device)
        deepest = max(self.n_layers if k[0] == "next_word" and self.nwp_readout == "output" else k[1] for k in keys)
        hidden = hidden_states(self.lm, x, attention, deepest)
        word_of = batch.word_of[idx].to(device)
        onehot = (word_of[:, None, :] == torch.arange(self.context, device=device)[None, :, None]).float()  # (B, C, T)
        average = onehot / onehot.sum(-1, keepdim=True).clamp(min=1)
        result = {}
        for key in keys:
            if key[0] == "alignment":
                layer, target = key[1], key[2]
                features = average @ hidden[layer].float()  # (B, C, dim)
                tr_feats = batch.lanczos[idx].to(device) @ features + batch.constant[layer][idx].to(device)
                prediction = self.maps[layer, target](tr_feats.reshape(len(idx), -1))
                if losses:
                    result[key] = ((prediction - batch.targets[target][idx].to(device)) ** 2).mean(-1)
                else:
                    result[key] = prediction
            elif key[0] == "next_word":
                layer = self.n_layers if self.nwp_readout == "output" else key[1]
                sel = batch.next_pos[idx].to(device)
                logits = layer_logits(self.lm, hidden[layer][sel], layer)  # (M, vocab)
                ce = torch.nn.functional.cross_entropy(logits, batch.next_ids[idx].to(device)[sel], reduction="none")
                rows = sel.nonzero()[:, 0]
                total = torch.zeros(len(idx), device=device).index_add(0, rows, ce)
                result[key] = total / torch.bincount(rows, minlength=len(idx)).clamp(min=1)
            else:
                raise ValueError(f"unknown target key {key!r}; keys are ('alignment', layer, target) or ('next_word', layer)")
        return result

    def keys(self) -> list[tuple]:
        """Every target: ``("alignment", layer, target)`` for each encoder, ``("next_word", layer)`` per layer."""
        return [("alignment", layer, target) for layer, target in self.maps] + [("next_word", layer) for layer in self.layers]

    def _canonical(self, key: tuple) -> tuple:
        """The key that computes ``key``: with the output readout, every next-word key is the last layer's."""
        return ("next_word", self.n_layers) if key[0] == "next_word" and self.nwp_readout == "output" else key

    def _check_keys(self, keys: Sequence[tuple] | None) -> list[tuple]:
        valid = self.keys()
        keys = valid if keys is None else [tuple(k) for k in keys]
        for key in keys:
            if key not in valid:
                raise ValueError(f"unknown target {key!r}; valid targets: {valid}")
        return keys

    def _to_words(self, token_scores: torch.Tensor, batch: _Batch, idx: torch.Tensor) -> np.ndarray:
        """Sum token scores (B, T) over each window word's tokens: (B, context)."""
        word_of = batch.word_of[idx].to(token_scores.device)
        inside = (word_of >= 0) & (word_of < self.context)
        out = torch.zeros(len(idx), self.context + 1, device=token_scores.device, dtype=token_scores.dtype)
        out.scatter_add_(1, torch.where(inside, word_of, self.context), token_scores * inside)
        return out[:, : self.context].detach().cpu().double().numpy()

    # -- public API --------------------------------------------------------------------------------------
    def attribute(
        self,
        trs: Sequence[int],
        keys: Sequence[tuple] | None = None,
        method: str = "gradient_x_input",
        batch_size: int = 8,
        n_steps: int = 20,
        baseline: str = "zero",
        hold_first: bool = True,
        progress: bool = False,
    ) -> WordAttributions:
        """Word attributions of each TR's losses, in batches of windows.

        Parameters
        ----------
        trs : sequence of int
            TRs to attribute (see :attr:`eligible`).
        keys : sequence of tuple, optional
            Targets (see :meth:`keys`); all by default.
        method : {"gradient_x_input", "integrated_gradients"}
            Gradient x Input shares one forward pass between the targets; Integrated
            Gradients (captum, ``n_steps`` points, zero-embedding baseline) runs per target.
        batch_size : int, default=8
            Windows per forward pass (Integrated Gradients: path points per pass).
        n_steps : int, default=20
            Integrated Gradients only.
        baseline : {"zero", "mean"}, default="zero"
            Integrated Gradients only: the path starts at zero embeddings (as in the study), or at
            the mean input embedding of the vocabulary at every position. Models that normalise
            their inputs (RMSNorm, LayerNorm) are scale-invariant away from zero and change
            abruptly near it, so the zero baseline can need many more steps to converge.
        hold_first : bool, default=True
            Integrated Gradients only: the sequence's first token (the tokenizer's begin token, else
            the first word's first token) keeps its embedding along the path and gets no attribution.
            A causal model attends to its first token as a sink, with massive activations (Xiao et
            al. 2024; Sun et al. 2024); from a baseline with one embedding at every position, each
            position acts as a first token, and the loss jumps as they switch on and off along the
            path. Held, the path is smoother. False: every token moves, as in the study.
        progress : bool
            Show a progress bar.

        Returns
        -------
        WordAttributions
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; valid: {list(METHODS)}")
        self._baseline(baseline)  # validates it
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
        trs = self._check_trs(trs)
        requested = self._check_keys(keys)
        keys = list(dict.fromkeys(self._canonical(k) for k in requested))  # each distinct target once
        scores = {k: np.zeros((len(trs), self.context)) for k in keys}
        delta = {k: np.zeros(len(trs)) for k in keys} if method == "integrated_gradients" else {}
        gap = {k: np.zeros(len(trs)) for k in keys} if method == "integrated_gradients" else {}
        step = batch_size if method == "gradient_x_input" else 1
        starts = range(0, len(trs), step)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"attribution ({method})")
        for start in starts:
            rows = slice(start, start + step)
            batch = self._batch(trs[rows])
            idx = torch.arange(len(trs[rows]))
            x = input_embeddings(self.lm, batch.ids)
            if method == "gradient_x_input":
                x.requires_grad_(True)
                outputs = self._outputs(x, batch, idx, keys)
                for key, value in gradient_x_input(outputs, x).items():
                    scores[key][rows] = self._to_words(value.sum(-1), batch, idx)
                continue
            for key in keys:
                def func(inputs: torch.Tensor, index: torch.Tensor, key: tuple = key, batch: _Batch = batch) -> torch.Tensor:
                    return self._outputs(inputs, batch, index, [key])[key]

                attr, d = integrated_gradients(func, x, n_steps=n_steps, additional_forward_args=(idx,),
                                               internal_batch_size=batch_size,
                                               baselines=self._path_start(x, baseline, hold_first))
                token_scores = attr.sum(-1)
                scores[key][rows] = self._to_words(token_scores, batch, idx)
                delta[key][rows] = d.cpu().double().numpy()
                gap[key][rows] = (token_scores.sum(-1) - d).cpu().double().numpy()
        first, last = self.windows(trs)
        scores, delta, gap = ({k: d[self._canonical(k)].copy() for k in requested} if d else {} for d in (scores, delta, gap))
        return WordAttributions(trs=trs, first=first, last=last, scores=scores, method=method, delta=delta, gap=gap)

    def converged_integrated_gradients(
        self,
        trs: Sequence[int],
        key: tuple,
        n_steps: int = 20,
        max_factor: int = 8,
        tolerance: float = 0.05,
        batch_size: int = 8,
        baseline: str = "zero",
        hold_first: bool = True,
    ) -> tuple[WordAttributions, dict[int, float]]:
        """Integrated Gradients of one target, its path points doubled until the attributions are complete.

        Integrated Gradients is complete: a window's attributions sum to the loss difference
        between the input and the baseline, up to the error of the path integral. A loss
        that changes sharply along the path needs more points; starting from ``n_steps``,
        the points are doubled until the median over the TRs of
        ``|convergence delta| / |loss difference|`` is below ``tolerance``, or until
        ``max_factor * n_steps`` points were tried.

        Parameters
        ----------
        trs : sequence of int
            Eligible TRs.
        key : tuple
            One target (see :meth:`keys`).
        n_steps : int, default=20
            Points of the first try.
        max_factor : int, default=8
            The most points tried, as a multiple of ``n_steps`` (a power of two reaches it exactly).
        tolerance : float, default=0.05
            The median relative completeness gap at which the doubling stops.
        batch_size, baseline, hold_first
            See :meth:`attribute`.

        Returns
        -------
        attributions : WordAttributions
            Those of the last try.
        history : dict of int -> float
            Points of each try -> its median relative completeness gap; the last entry is
            the returned try's, below ``tolerance`` if the attributions converged.
        """
        if isinstance(max_factor, bool) or not isinstance(max_factor, (int, np.integer)) or max_factor < 1:
            raise ValueError(f"max_factor={max_factor!r} must be a positive integer")
        if not 0 < tolerance < 1:
            raise ValueError(f"tolerance={tolerance!r} must be in (0, 1)")
        steps, history = int(n_steps), {}
        while True:
            out = self.attribute(trs, keys=[key], method="integrated_gradients", batch_size=batch_size,
                                 n_steps=steps, baseline=baseline, hold_first=hold_first)
            history[steps] = float(np.median(np.abs(out.delta[key]) / np.abs(out.gap[key])))
            if history[steps] < tolerance or steps >= max_factor * int(n_steps):
                return out, history
            steps *= 2

    def _baseline(self, baseline: str) -> torch.Tensor | None:
        if baseline not in BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; valid: {list(BASELINES)}")
        if baseline == "zero":
            return None
        return self.lm.model.get_input_embeddings().weight.detach().float().mean(0)[None, None, :]

    def _path_start(self, x: torch.Tensor, baseline: str, hold_first: bool) -> torch.Tensor:
        """The start of the path to input embeddings ``x`` (batch, tokens, dim); see :meth:`attribute`."""
        start = self._baseline(baseline)
        start = torch.zeros_like(x) if start is None else start.to(x.device, x.dtype).expand_as(x).clone()
        if hold_first:
            start[:, 0] = x[:, 0]
        return start

    def path_losses(self, tr: int, alphas: Sequence[float], baseline: str = "zero",
                    keys: Sequence[tuple] | None = None, hold_first: bool = True) -> dict:
        """The losses along the straight path from a baseline to the input embeddings of one TR's window.

        The path Integrated Gradients integrates over: ``loss(b + alpha * (x - b))``. A loss that
        jumps along the path needs many more integration points than a smooth one.

        Parameters
        ----------
        tr : int
            An eligible TR.
        alphas : sequence of float, length n_alphas
            Positions on the path (0: the baseline, 1: the input).
        baseline : {"zero", "mean"}
            See :meth:`attribute`.
        keys : sequence of tuple, optional
            Targets (see :meth:`keys`); all by default.
        hold_first : bool, default=True
            See :meth:`attribute`.

        Returns
        -------
        dict of key -> array of shape (n_alphas,)
        """
        trs = self._check_trs([tr])
        requested = self._check_keys(keys)
        keys = list(dict.fromkeys(self._canonical(k) for k in requested))
        batch = self._batch(trs)
        x = input_embeddings(self.lm, batch.ids)
        start = self._path_start(x, baseline, hold_first)
        out: dict = {k: [] for k in keys}
        with torch.no_grad():
            for a in alphas:
                for key, value in self._outputs(start + float(a) * (x - start), batch, torch.arange(1), keys).items():
                    out[key].append(float(value[0]))
        return {k: np.asarray(out[self._canonical(k)]) for k in requested}

    def evaluate(
        self,
        trs: Sequence[int],
        mask: np.ndarray | None = None,
        keys: Sequence[tuple] | None = None,
        batch_size: int = 8,
        fill: str = "zero",
    ) -> dict:
        """Predictions and next-word losses of each TR's window, optionally with words masked.

        Parameters
        ----------
        trs : sequence of int, length n
        mask : bool array of shape (n, context), optional
            Words whose input embeddings are replaced by ``fill``.
        keys : sequence of tuple, optional
            Targets (see :meth:`keys`); all by default.
        batch_size : int, default=8
        fill : {"zero", "mean"}, default="zero"
            What a masked word's embeddings become: zeros, or the mean input embedding (the
            baselines of :meth:`attribute`).

        Returns
        -------
        dict of key -> array
            Alignment keys: the prediction, shape (n, n_targets); next-word keys: the
            cross-entropy of the next word (nats per token), shape (n,).
        """
        trs = self._check_trs(trs)
        requested = self._check_keys(keys)
        keys = list(dict.fromkeys(self._canonical(k) for k in requested))
        replacement = self._baseline(fill)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (len(trs), self.context):
                raise ValueError(f"mask has shape {mask.shape}; expected ({len(trs)}, {self.context})")
        parts: dict = {k: [] for k in keys}
        with torch.no_grad():
            for start in range(0, len(trs), batch_size):
                rows = slice(start, start + batch_size)
                batch = self._batch(trs[rows])
                idx = torch.arange(len(trs[rows]))
                x = input_embeddings(self.lm, batch.ids)
                if mask is not None:
                    m = torch.from_numpy(mask[rows])
                    word_of = batch.word_of
                    drop = torch.zeros_like(word_of, dtype=torch.bool)
                    inside = (word_of >= 0) & (word_of < self.context)
                    drop[inside] = m[torch.nonzero(inside)[:, 0], word_of[inside]]
                    keep = (~drop).to(x.device)[..., None].float()
                    x = x * keep if replacement is None else x * keep + replacement * (1 - keep)
                for key, value in self._outputs(x, batch, idx, keys, losses=False).items():
                    parts[key].append(value.cpu().double().numpy())
        return {k: np.concatenate(parts[self._canonical(k)]) for k in requested}

    def linear_contributions(self, trs: Sequence[int], key: tuple) -> np.ndarray:
        """What each window word's own features add to an alignment target's prediction, through the encoder alone.

        The encoder is linear in the features, so the prediction of TR ``t`` is a sum over
        words: word ``j`` adds ``sum_d K[t - d, j] (h_j / s_d) W_d`` over the delays ``d``
        (``K`` the Lanczos filter, ``h_j`` the word's feature in the whole-story read, i.e. the
        ``fallback`` features the encoder was fitted on, ``s_d`` and ``W_d`` the encoder's scale
        and weights at delay ``d``); what is left, the same for every word, is
        ``intercept - sum_d (m_d / s_d) W_d`` (``m_d`` the encoder's feature means). No
        gradient goes through the language model and no measured response enters: this is
        what the encoder itself has learned about which words move the region, the reference
        against which the gradient attributions of the same encoder can be read.

        Parameters
        ----------
        trs : sequence of int, length n
        key : tuple
            An alignment target ``("alignment", layer, target)``; ``fallback`` must hold ``layer``.

        Returns
        -------
        array of shape (n, context, n_targets)
            Column ``j`` for window word ``first + j``.
        """
        trs = self._check_trs(trs)
        key = tuple(self._check_keys([key])[0])
        if key[0] != "alignment":
            raise ValueError(f"linear_contributions reads an encoder: give an alignment key, not {key!r}")
        if key[1] not in self.fallback:
            raise ValueError(f"linear_contributions reads the whole-story features of layer {key[1]}: give them as fallback")
        ridge = self.maps[key[1], key[2]]
        n_delays = len(ridge.delays)
        scale = ridge.scale.cpu().double().numpy().reshape(n_delays, 1, -1)
        weights = ridge.weights.cpu().double().numpy().reshape(n_delays, ridge.n_features, -1)
        features = self.fallback[key[1]].astype(np.float64)
        first, _ = self.windows(trs)
        out = np.zeros((len(trs), self.context, weights.shape[-1]))
        for n, (t, start) in enumerate(zip(trs, first)):
            inside = slice(int(start), int(start) + self.context)
            for i, d in enumerate(ridge.delays):
                out[n] += self.lanczos[t - d, inside, None] * ((features[inside] / scale[i]) @ weights[i])
        return out
