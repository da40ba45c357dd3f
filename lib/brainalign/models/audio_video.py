"""Audio-video models: the offline fusion model and its layerwise hidden states over windows.

``"whisper-efficientnet-fusion"``: whisper-tiny-en and efficientnet-lite0,
whose token streams (Whisper frames at 10 tokens/s, one EfficientNet vector
per video frame) are projected to width 256 and read by a 2-layer fusion
transformer with modality and time embeddings (:class:`AudioVideoFusion`;
built by :func:`brainalign.models.build_av_fusion`). The fusion layers of
the registered model are pretrained, self-supervised, on audio-visual
correspondence (:mod:`brainalign.tuning.selfsup`: does this sound go with
these frames?) over generated movie clips that share no line with the movie
cohort's test episode; ``build_av_fusion(pretrained=False)`` gives their
seeded random initialisation, a control. Its 25 hidden states are Whisper's
5, EfficientNet's 17 and the fusion's 3 (:func:`av_hidden_states`); the
window's tokens, which the fusion layers read, come from
:func:`audio_window_tokens` and :func:`window_frames`. TVLT, the audio-video
model of the studies, left transformers in 5.x; the nearest one transformers
5.x ships, PE Audio-Video (``"pe-av-large"``), is registered as hub-only and
is not read yet: its video tower is a timm model, and timm (with torchvision)
is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .registry import LoadedModel, check_kind
from .speech import SPEECH_SR, check_audio, whisper_encoder_states, whisper_mel
from .vision import check_images, vision_hidden_states

__all__ = ["FUSION_PARTS", "AVProcessor", "AudioVideoFusion", "audio_window_tokens", "av_hidden_states", "window_frames"]

#: the fusion model's own modules and parameters (everything but the two encoders): what pretraining and tuning change
FUSION_PARTS = ("audio_proj", "video_proj", "modality", "layers", "norm")


@dataclass
class AVProcessor:
    """The preprocessors of an audio-video model's two streams.

    Attributes
    ----------
    audio : WhisperFeatureExtractor
    vision : ImagePreprocessor
    """

    audio: Any
    vision: Any


class AudioVideoFusion(torch.nn.Module):
    """Whisper tiny.en and EfficientNet-Lite0, read together by a small fusion transformer.

    The two encoders are the pretrained packaged models. A new instance's
    fusion layers are a seeded random initialisation (``seed``); the
    registered model loads self-supervised weights into them
    (:func:`brainalign.tuning.pretrain_fusion`, audio-visual correspondence,
    through :meth:`load_fusion_state`). With random weights, the fusion states
    are random (but fixed) mixtures of the two streams: a control.

    Token streams, over a window ``[end - window, end)``: the Whisper encoder's
    last state (after its final layer norm) over the window's audio, averaged
    in groups of ``50 / audio_rate`` frames (one token per ``1 / audio_rate``
    s); and EfficientNet's last block, averaged over space, one token per video
    frame in the window. Each stream is layer-normalised (no affine) and
    projected to ``width``; a modality embedding and a sinusoidal embedding of
    the token's time relative to the window's end are added; the tokens then go
    through ``n_layers`` pre-norm transformer layers (GELU, no dropout).

    Parameters
    ----------
    speech : LoadedModel
        ``whisper-tiny-en``.
    vision : LoadedModel
        ``efficientnet-lite0``.
    width : int
        Width of the fusion layers.
    n_layers : int
        Fusion layers.
    n_heads : int
        Attention heads of the fusion layers.
    audio_rate : float
        Audio tokens per second (a divisor of 50).
    seed : int
        Seed of the fusion layers' initialisation.
    """

    def __init__(self, speech: LoadedModel, vision: LoadedModel, width: int = 256, n_layers: int = 2, n_heads: int = 4,
                 audio_rate: float = 10.0, seed: int = 0):
        super().__init__()
        if 50 % round(50 / audio_rate) or not 0 < audio_rate <= 50:
            raise ValueError(f"audio_rate must divide Whisper's 50 frames/s (50, 25, 10, 5, ...), got {audio_rate!r}")
        self.speech_lm, self.vision_lm = speech, vision
        self.audio, self.vision = speech.model, vision.model
        self.width, self.n_heads, self.audio_rate, self.seed = int(width), int(n_heads), float(audio_rate), int(seed)
        d_audio, d_video = speech.spec.dim, vision.spec.dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.audio_proj = torch.nn.Linear(d_audio, self.width)
            self.video_proj = torch.nn.Linear(d_video, self.width)
            self.modality = torch.nn.Parameter(0.5 * torch.randn(2, self.width))
            self.layers = torch.nn.ModuleList([
                torch.nn.TransformerEncoderLayer(self.width, int(n_heads), 4 * self.width, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=True)
                for _ in range(int(n_layers))
            ])
            self.norm = torch.nn.LayerNorm(self.width)
        periods = torch.logspace(np.log10(0.2), np.log10(60.0), self.width // 2)
        self.register_buffer("frequencies", 2 * np.pi / periods, persistent=False)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """Sinusoidal embedding of times in seconds, shape (...) -> (..., width)."""
        angle = t[..., None].to(self.frequencies) * self.frequencies
        emb = torch.cat([angle.sin(), angle.cos()], dim=-1)
        return 0.5 * torch.nn.functional.pad(emb, (0, self.width - emb.shape[-1]))

    def fuse(self, audio_tokens: torch.Tensor, audio_times: torch.Tensor, video_tokens: torch.Tensor,
             video_times: torch.Tensor, audio_mask: torch.Tensor | None = None,
             video_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The fusion layers' states of one window's tokens, or of a batch of windows.

        Parameters
        ----------
        audio_tokens : tensor of shape (n_audio, 384), or (n_windows, n_audio, 384)
            From :func:`audio_window_tokens`.
        audio_times : tensor of shape (n_audio,), or (n_windows, n_audio)
            Seconds relative to the window's end (<= 0).
        video_tokens : tensor of shape (n_video, 320), or (n_windows, n_video, 320)
            EfficientNet's last state of the frames in the window (:func:`window_frames`).
        video_times : tensor of shape (n_video,), or (n_windows, n_video)
        audio_mask, video_mask : bool tensors of shape (n_windows, n_audio) and (n_windows, n_video), optional
            A batch only: True for a real token, False for padding (a window
            with fewer tokens than the longest); default all real. Padding is
            masked out of the attention.

        Returns
        -------
        list of ``n_layers + 1`` tensors of shape (n_audio + n_video, width), or (n_windows, n_audio + n_video, width)
            The input tokens, then each layer's output (the last after a final
            layer norm); audio tokens first. A batch's padded positions hold
            numbers that mean nothing.
        """
        one = audio_tokens.dim() == 2
        if one:
            audio_tokens, audio_times, video_tokens, video_times = (
                x[None] for x in (audio_tokens, audio_times, video_tokens, video_times))
        ln = torch.nn.functional.layer_norm
        parts = [self.audio_proj(ln(audio_tokens, audio_tokens.shape[-1:])) + self.modality[0]
                 + self.time_embedding(audio_times)]
        masks = [audio_mask]
        if video_tokens.shape[1]:
            parts.append(self.video_proj(ln(video_tokens, video_tokens.shape[-1:])) + self.modality[1]
                         + self.time_embedding(video_times))
            masks.append(video_mask)
        hidden = torch.cat(parts, dim=1)
        padding = None
        if any(m is not None for m in masks):
            real = [torch.ones(p.shape[:2], dtype=torch.bool, device=hidden.device) if m is None else m.to(hidden.device)
                    for p, m in zip(parts, masks)]
            padding = ~torch.cat(real, dim=1)
        states = [hidden]
        for layer in self.layers:
            hidden = layer(hidden, src_key_padding_mask=padding)
            states.append(hidden)
        states[-1] = self.norm(hidden)
        return [s[0] for s in states] if one else states

    def fusion_state(self) -> dict[str, torch.Tensor]:
        """A copy of the fusion layers' weights (:data:`FUSION_PARTS`; not the encoders')."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k.split(".")[0] in FUSION_PARTS}

    def load_fusion_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load fusion weights from :meth:`fusion_state` (of a model of the same width and number of layers).

        Raises
        ------
        ValueError
            When ``state`` lacks a fusion weight, has another name, or a shape differs.
        """
        own = self.fusion_state()
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
        if missing or extra or wrong:
            raise ValueError(f"not the fusion weights of this model (width {self.width}, {len(self.layers)} layers): "
                             f"missing {missing[:3]}, unexpected {extra[:3]}, other shapes {wrong[:3]}")
        self.load_state_dict(dict(state), strict=False)

    def fusion_copy(self) -> AudioVideoFusion:
        """A new model with a copy of these fusion weights, sharing this model's (frozen) encoders."""
        new = AudioVideoFusion(self.speech_lm, self.vision_lm, width=self.width, n_layers=len(self.layers),
                               n_heads=self.n_heads, audio_rate=self.audio_rate, seed=self.seed)
        param = self.audio_proj.weight
        new.to(param.device, param.dtype).eval()
        new.load_fusion_state(self.fusion_state())
        return new


def _window_clips(audio: np.ndarray, ends: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample bounds ``[start, stop)`` of the audio windows ending at ``ends`` (at least 400 samples each)."""
    stop = np.clip(np.round(ends * SPEECH_SR).astype(int), 400, len(audio))
    start = np.clip(np.round((ends - window) * SPEECH_SR).astype(int), 0, None)
    start = np.minimum(start, stop - 400)
    return start, stop


def window_frames(frame_times: np.ndarray, end: float, window: float) -> np.ndarray:
    """Indices of the video frames shown in the window ``[end - window, end)``.

    Parameters
    ----------
    frame_times : array of shape (n_frames,)
        When each frame is shown (s).
    end : float
        The window's end (s).
    window : float
        Its length (s).

    Returns
    -------
    int array of shape (n_inside,)
    """
    return np.flatnonzero((frame_times >= end - window) & (frame_times < end))


def audio_window_tokens(fusion: AudioVideoFusion, audio: np.ndarray, ends: np.ndarray, window: float,
                        batch_size: int = 16) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Whisper over the audio of each window ``[end - window, end)``: its states, and the fusion model's audio tokens.

    Whisper runs on exactly the window's audio (:func:`whisper_encoder_states`;
    its states see nothing outside the window). A window reaching past the
    audio reads the audio it has (at least 25 ms). The audio tokens are
    Whisper's last state (after its final layer norm), averaged in groups of
    ``50 / fusion.audio_rate`` frames; a token's time is the centre of its
    group, relative to the window's end. Inputs are as
    :func:`av_hidden_states` checks them.

    Parameters
    ----------
    fusion : AudioVideoFusion
    audio : float32 array of shape (n_samples,)
        Mono waveform at 16 kHz (:func:`check_audio`).
    ends : array of shape (n_windows,)
        Window ends (s).
    window : float
        Window length (s), at most 30.
    batch_size : int
        Windows per Whisper forward pass.

    Returns
    -------
    state_means : list of ndarrays of float32, state ``k`` of shape (n_windows, 384)
        Each Whisper state (input to the first block, then each block's
        output) averaged over the window's frames.
    tokens : list of ``n_windows`` float32 arrays of shape (n_tokens_i, 384)
        The audio tokens of each window (``ceil(n_frames_i / group)``).
    token_times : list of ``n_windows`` float32 arrays of shape (n_tokens_i,)
        Each token's time relative to the window's end (s, negative).
    """
    speech_lm = fusion.speech_lm
    ends = np.asarray(ends, dtype=float)
    group = round(50 / fusion.audio_rate)
    n_states = speech_lm.spec.n_layers + 1
    means = [np.zeros((len(ends), speech_lm.spec.dim), dtype=np.float32) for _ in range(n_states)]
    tokens: list[np.ndarray] = [np.zeros(0)] * len(ends)
    times: list[np.ndarray] = [np.zeros(0)] * len(ends)
    start, stop = _window_clips(audio, ends, float(window))
    order = np.argsort(stop - start, kind="stable")
    with torch.inference_mode():
        for first in range(0, len(order), int(batch_size)):
            batch = order[first : first + int(batch_size)]
            mel, n_frames = whisper_mel(speech_lm, [audio[start[i] : stop[i]] for i in batch])
            states = whisper_encoder_states(speech_lm.model, mel, n_frames)
            for r, i in enumerate(batch):
                n = int(n_frames[r])
                for k in range(n_states):
                    means[k][i] = states[k][r, :n].float().mean(0).cpu().numpy()
                last = states[-1][r, :n].float()
                n_tok = -(-n // group)
                tokens[i] = torch.stack([last[j * group : (j + 1) * group].mean(0) for j in range(n_tok)]).cpu().numpy()
                lo = np.arange(n_tok) * group
                centre = (lo + np.minimum(lo + group, n)) / 2 * 0.02  # seconds from the clip's start (50 frames/s)
                times[i] = (start[i] / SPEECH_SR + centre - ends[i]).astype(np.float32)
    return means, tokens, times


def av_hidden_states(lm: LoadedModel, audio: np.ndarray, sr: int, frames: np.ndarray, frame_times: np.ndarray,
                     ends: np.ndarray, window: float = 3.0, batch_size: int = 16,
                     video_states: list[np.ndarray] | None = None,
                     audio_tokens: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] | None = None) -> list[np.ndarray]:
    """Layerwise states of the audio-video fusion model over windows ``[end - window, end)``.

    Each window is read alone: Whisper runs on exactly the window's audio
    (:func:`audio_window_tokens`; its states see nothing outside the
    window), EfficientNet on each frame shown in the window
    (:func:`window_frames`), and the fusion layers on the window's tokens (see
    :class:`AudioVideoFusion`).

    Parameters
    ----------
    lm : LoadedModel
        From ``load_model("whisper-efficientnet-fusion")`` or :func:`~brainalign.models.build_av_fusion`.
    audio : array of shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate (Hz); resampled to 16 kHz.
    frames : uint8 array of shape (n_frames, height, width, 3)
    frame_times : array of shape (n_frames,)
        When each frame is shown (s), increasing, in the audio's time frame.
    ends : array of shape (n_windows,)
        Window ends (s). A window reaching past the audio reads the audio it has
        (at least 25 ms).
    window : float
        Window length (s), at most 30.
    batch_size : int
        Windows per Whisper forward pass.
    video_states : list of arrays, optional
        ``vision_hidden_states(lm.model.vision_lm, frames)``, if already at hand.
    audio_tokens : tuple, optional
        ``audio_window_tokens(lm.model, audio, ends, window)``, if already at
        hand (models that share the encoders share them: a tuned copy and its
        pretrained model).

    Returns
    -------
    list of ndarrays of float32, state ``k`` of shape (n_windows, lm.spec.hidden_dims()[k])
        States 0-4: Whisper's states (:func:`whisper_encoder_states`), mean
        over the window's frames. States 5-21: EfficientNet's (stem + 16
        blocks, pooled over space; :func:`vision_hidden_states`), mean over the
        window's video frames (zeros where no frame falls in the window).
        States 22-: the fusion input and each fusion layer's output, mean over
        the window's tokens.
    """
    check_kind(lm, "audio-video")
    if not isinstance(lm.model, AudioVideoFusion):
        raise ValueError(f"av_hidden_states reads the offline fusion model ('whisper-efficientnet-fusion'), not {lm.spec.name!r}")
    audio = check_audio(audio, sr)
    frames = check_images(frames)
    if not len(frames):
        raise ValueError("frames is empty: an audio-video model needs at least one frame")
    frame_times = np.asarray(frame_times, dtype=float)
    if frame_times.shape != (len(frames),) or np.any(np.diff(frame_times) <= 0):
        raise ValueError(f"frame_times must be increasing with shape ({len(frames)},), got shape {frame_times.shape}")
    ends = np.asarray(ends, dtype=float)
    if ends.ndim != 1 or not np.isfinite(ends).all():
        raise ValueError(f"ends must be a 1-D array of finite times, got shape {ends.shape}")
    if not (np.isfinite(window) and 0 < window <= 30):
        raise ValueError(f"window={window!r} must be a number of seconds in (0, 30]")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    fusion: AudioVideoFusion = lm.model
    vision_lm = fusion.vision_lm
    n_audio_states, n_video_states = fusion.speech_lm.spec.n_layers + 1, vision_lm.spec.n_layers + 1
    out = [np.zeros((len(ends), d), dtype=np.float32) for d in lm.spec.hidden_dims()]
    if video_states is None:
        video_states = vision_hidden_states(vision_lm, frames)
    if len(video_states) != n_video_states or any(len(v) != len(frames) for v in video_states):
        raise ValueError(f"video_states must be {n_video_states} arrays of {len(frames)} rows (vision_hidden_states of the frames)")
    if audio_tokens is None:
        audio_tokens = audio_window_tokens(fusion, audio, ends, float(window), int(batch_size))
    means, tokens, token_times = audio_tokens
    if len(means) != n_audio_states or any(len(x) != len(ends) for x in (*means, tokens, token_times)):
        raise ValueError(f"audio_tokens must be audio_window_tokens of the {len(ends)} windows ({n_audio_states} state means, "
                         "then the tokens and their times)")
    out[:n_audio_states] = means
    dtype, device = fusion.audio_proj.weight.dtype, lm.device
    with torch.inference_mode():
        for i, end in enumerate(ends):
            inside = window_frames(frame_times, end, window)
            if len(inside):
                for k in range(n_video_states):
                    out[n_audio_states + k][i] = video_states[k][inside].mean(0)
            fused = fusion.fuse(torch.from_numpy(tokens[i]).to(device, dtype), torch.from_numpy(token_times[i]),
                                torch.from_numpy(video_states[-1][inside]).to(device, dtype),
                                torch.from_numpy(frame_times[inside] - end).float())
            for k, s in enumerate(fused):
                out[n_audio_states + n_video_states + k][i] = s.float().mean(0).cpu().numpy()
    return out
