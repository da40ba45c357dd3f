"""The networks brain-tuning trains: a model with LoRA adapters on its attention and one shared linear head.

:class:`TuningNet` adapts a speech model's blocks; :class:`AVTuningNet` the fusion layers of the
audio-video model. Each computes its frozen prefix once per window (:meth:`window_prefix`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch

from .. import models

#: the modules that get LoRA adapters (attention projections of Whisper, wav2vec2 and HuBERT)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


# -- model ----------------------------------------------------------------------------------------


def _lora(rank: int, alpha: float, dropout: float, targets, **where):
    from peft import LoraConfig

    if int(rank) < 1:
        raise ValueError(f"rank must be >= 1, got {rank!r}")
    if not 0 <= float(dropout) < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    return LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=targets,
                      bias="none", **where)


def lora_config(rank: int = 8, alpha: float = 32, dropout: float = 0.1, layers: Sequence[int] | None = None):
    """peft's ``LoraConfig`` on the attention projections (:data:`LORA_TARGETS`) only.

    ``layers``: the transformer blocks that get adapters (default: all).
    """
    where = {} if layers is None else {"layers_to_transform": [int(x) for x in layers], "layers_pattern": "layers"}
    return _lora(rank, alpha, dropout, list(LORA_TARGETS), **where)


def av_lora_config(rank: int = 8, alpha: float = 32, dropout: float = 0.1, layers: Sequence[int] | None = None):
    """peft's ``LoraConfig`` on the attention of the audio-video model's fusion layers only.

    The fusion layers' attention is a ``torch.nn.MultiheadAttention``, adapted by
    peft as a whole (its input and output projections); the two encoders get no
    adapter. ``layers``: the fusion layers that get adapters (default: all).
    """
    which = r"\d+" if layers is None else "(" + "|".join(str(int(x)) for x in layers) + ")"
    return _lora(rank, alpha, dropout, rf"layers\.{which}\.self_attn")


@contextmanager
def _attention_without_fastpath() -> Iterator[None]:
    """Turn off torch's fused inference path of ``TransformerEncoderLayer``, which reads the attention weights
    directly and so would skip LoRA adapters that are not merged."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


@contextmanager
def _evaluating(module: torch.nn.Module) -> Iterator[None]:
    """``module`` in evaluation mode, then back in the mode it was in: the frozen prefix of a window is computed so
    (no dropout; batch norm with its running statistics, left as they are), whatever the mode of the network."""
    training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(training)


def _blocks(lm: models.LoadedModel) -> torch.nn.ModuleList:
    return lm.model.layers if models.is_whisper(lm) else lm.model.encoder.layers


def hidden_state_at(lm: models.LoadedModel, clips: list[np.ndarray], k: int) -> torch.Tensor:
    """Hidden state ``k`` (the input to block ``k``) of equal-length clips, without gradients.

    Everything before block ``k`` is frozen in brain-tuning from block ``k`` on,
    so this state can be computed once per clip and kept (:class:`BrainTuner`
    does, for the frozen prefix of every window).

    Parameters
    ----------
    lm : LoadedModel
        A speech model (wav2vec 2.0, HuBERT or Whisper's encoder).
    clips : list of ndarray, each of shape (n_samples,)
        Waveforms at ``models.SPEECH_SR``, all of one length.
    k : int
        0 (the feature encoder's output, or Whisper's convolutions and positions) up to the number of blocks.

    Returns
    -------
    tensor of shape (n_clips, n_frames, dim)
    """
    with torch.no_grad():
        if models.is_whisper(lm):
            mel, n_frames = models.whisper_mel(lm, clips)
            return models.whisper_encoder_states(lm.model, mel, n_frames, n_blocks=k)[k]
        inputs = lm.processor(clips, sampling_rate=models.SPEECH_SR, return_tensors="pt")
        x = inputs["input_values"].to(lm.device, next(lm.model.parameters()).dtype)
        return lm.model(x, output_hidden_states=True).hidden_states[k]


def last_state_from(lm: models.LoadedModel, hidden: torch.Tensor, k: int) -> torch.Tensor:
    """The last hidden state, from state ``k``: blocks ``k, k + 1, ...`` and the final norm (with gradients).

    ``last_state_from(lm, hidden_state_at(lm, clips, k), k)`` is the model's last
    hidden state of ``clips`` for every ``k``.

    Parameters
    ----------
    lm : LoadedModel
        The speech model of :func:`hidden_state_at`.
    hidden : tensor of shape (n_clips, n_frames, dim)
        Hidden state ``k``.
    k : int
        Which state ``hidden`` is.

    Returns
    -------
    tensor of shape (n_clips, n_frames, dim)
    """
    for block in _blocks(lm)[k:]:
        hidden = block(hidden, None)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # some transformers versions return a tuple
    if models.is_whisper(lm):
        return lm.model.layer_norm(hidden)
    return lm.model.encoder.layer_norm(hidden) if lm.model.config.do_stable_layer_norm else hidden


class TuningNet(torch.nn.Module):
    """Speech model with LoRA adapters on blocks ``first, ...``, mean pooling of the last state, a shared linear head.

    Everything before block ``first`` is frozen, so its output (:meth:`prefix`)
    is computed without gradients, in eval mode, and can be kept.
    """

    def __init__(self, lm: models.LoadedModel, n_outputs: int, config, first: int) -> None:
        from peft import get_peft_model

        super().__init__()
        self.lm, self.first = lm, int(first)
        for p in lm.model.parameters():
            p.requires_grad_(False)  # the convolutional front end and every non-adapter weight stay frozen
        self.peft = get_peft_model(lm.model, config)  # injects the adapters into lm.model in place
        self.head = torch.nn.Linear(lm.spec.dim, int(n_outputs))

    def window_prefix(self, data, keys: Sequence[tuple[str, int]]) -> torch.Tensor:
        """The frozen prefix of windows ``(run, row)`` of a :class:`~brainalign.tuning.TuningData`."""
        return self.prefix([data.clips(r, np.array([i]))[0] for r, i in keys])

    def prefix(self, clips: list[np.ndarray]) -> torch.Tensor:
        with _evaluating(self):
            return hidden_state_at(self.lm, clips, self.first)

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        return self.head(last_state_from(self.lm, prefix, self.first).float().mean(dim=1))

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}


class AVTuningNet(torch.nn.Module):
    """The audio-video fusion model with LoRA adapters on its fusion layers, mean pooling, a shared linear head.

    The two encoders stay frozen, so their tokens of each window are the frozen
    prefix: the audio tokens that :func:`models.audio_window_tokens` makes from
    the window's audio and EfficientNet's last state of each frame shown in the
    window (the tokens :func:`models.av_hidden_states` gives the fusion layers).
    The fusion layers read them with their adapters, and the head reads the last
    state averaged over the window's tokens.

    A window's prefix is one tensor of shape ``(n_audio + n_video, d + 2)``:
    ``n_audio`` rows of audio tokens, then ``n_video`` rows of frame tokens
    (zero-padded to width ``d``, the wider of the two), each row followed by
    its time relative to the window's end and 1 for a real token, 0 for padding.
    ``n_audio`` and ``n_video`` are the most a window of the data holds.

    With ``cache``, the frames' EfficientNet states go through the cache that the
    movie features and the self-supervised control share
    (:func:`brainalign.models.frame_states`), so a run's frames are encoded once.
    """

    def __init__(self, lm: models.LoadedModel, n_outputs: int, config, cache: bool = False) -> None:
        from peft import get_peft_model

        super().__init__()
        if not isinstance(lm.model, models.AudioVideoFusion):
            raise ValueError(f"AVTuningNet adapts the offline audio-video fusion model, not {lm.spec.name!r}")
        self.lm, self.fusion, self.cache = lm, lm.model, bool(cache)
        for p in self.fusion.parameters():
            p.requires_grad_(False)
        self.peft = get_peft_model(self.fusion, config)  # injects the adapters into the fusion layers in place
        self.head = torch.nn.Linear(self.fusion.width, int(n_outputs))
        self.d_audio, self.d_video = self.fusion.speech_lm.spec.dim, self.fusion.vision_lm.spec.dim
        self.shape_: tuple[int, int] | None = None  # (n_audio, n_video), set by the first prefix
        # EfficientNet's last state of every frame of a run, computed once per run: a frame is shown in the windows
        # of several volumes (about window / TR of them), and the encoder reads each frame alone
        self._frame_tokens: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # run -> (its frames, their tokens)

    def _shape(self, data) -> tuple[int, int]:
        if self.shape_ is None:
            seconds = data.window_samples / models.SPEECH_SR
            n_audio = -(-int(round(seconds * 50)) // round(50 / self.fusion.audio_rate))
            n_video = 1
            for r in data.runs:
                times = np.asarray(data.video[r][1])
                ends = data.ends(r, np.arange(len(data.bounds[r][0])))
                n_video = max(n_video, max(len(models.window_frames(times, end, seconds)) for end in ends))
            self.shape_ = (n_audio, n_video)
        return self.shape_

    def window_prefix(self, data, keys: Sequence[tuple[str, int]]) -> torch.Tensor:
        """The encoders' tokens of windows ``(run, row)`` of a :class:`~brainalign.tuning.TuningData` with video, packed.

        The encoders read them in evaluation mode, whatever the mode of the
        network: in training mode EfficientNet's batch norm would normalise each
        batch of frames by its own statistics and update its running ones, so
        the tokens tuning learns from would not be those the model is scored on.
        """
        if data.video is None:
            raise ValueError("an audio-video model is tuned on data with video: tuning_data(..., video=True)")
        n_audio, n_video = self._shape(data)
        width = max(self.d_audio, self.d_video)
        out = np.zeros((len(keys), n_audio + n_video, width + 2), dtype=np.float32)
        seconds = data.window_samples / models.SPEECH_SR
        runs = sorted({r for r, _ in keys})
        with _evaluating(self):
            for r in runs:
                at = [k for k, (run, _) in enumerate(keys) if run == r]
                rows = np.array([keys[k][1] for k in at])
                ends = data.ends(r, rows)
                _, tokens, times = models.audio_window_tokens(self.fusion, data.audio[r], ends, seconds)
                frames, frame_times = data.video[r]
                if r not in self._frame_tokens or self._frame_tokens[r][0] is not frames:
                    self._frame_tokens[r] = (frames, models.frame_states(self.fusion.vision_lm, frames, cache=self.cache)[-1])
                frame_tokens, frame_times = self._frame_tokens[r][1], np.asarray(frame_times)
                for k, tok, tim, end in zip(at, tokens, times, ends):
                    inside = models.window_frames(frame_times, end, seconds)
                    vid, vtimes = frame_tokens[inside], frame_times[inside] - end
                    na, nv = len(tok), len(vid)
                    out[k, :na, : self.d_audio], out[k, :na, width], out[k, :na, width + 1] = tok, tim, 1.0
                    rows_v = slice(n_audio, n_audio + nv)
                    out[k, rows_v, : self.d_video], out[k, rows_v, width], out[k, rows_v, width + 1] = vid, vtimes, 1.0
        return torch.from_numpy(out).to(self.lm.device)

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(prefix))

    def pooled(self, prefix: torch.Tensor) -> torch.Tensor:
        """The fusion's last state averaged over each window's tokens (what the head reads): (n_windows, width)."""
        n_audio = self._shape_or_fail()[0]
        audio, video = prefix[:, :n_audio], prefix[:, n_audio:]
        dtype = self.fusion.audio_proj.weight.dtype
        with _attention_without_fastpath():
            last = self.fusion.fuse(audio[..., : self.d_audio].to(dtype), audio[..., -2], video[..., : self.d_video].to(dtype),
                                    video[..., -2], audio[..., -1] > 0.5, video[..., -1] > 0.5)[-1]
        real = prefix[..., -1:].to(last.dtype)
        return ((last * real).sum(1) / real.sum(1).clamp(min=1)).float()

    def _shape_or_fail(self) -> tuple[int, int]:
        if self.shape_ is None:
            raise RuntimeError("no prefix yet: compute one with window_prefix(data, keys) first")
        return self.shape_

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}
