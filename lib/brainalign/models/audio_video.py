"""Audio-video models: the offline fusion model and its layerwise hidden states over windows.

``"whisper-efficientnet-fusion"``: whisper-tiny-en and efficientnet-lite0,
whose token streams (Whisper frames at 10 tokens/s, one EfficientNet vector
per video frame) are projected to width 256 and read by a 2-layer fusion
transformer with modality and time embeddings (:class:`AudioVideoFusion`;
built by :func:`brainalign.models.build_av_fusion`). **The fusion layers are
not pretrained** (a seeded random initialisation): a starting point for
brain-tuning, not a pretrained audio-video model. Its 25 hidden states are
Whisper's 5, EfficientNet's 17 and the fusion's 3 (:func:`av_hidden_states`).
TVLT, the audio-video model of the studies, left transformers in 5.x; the
nearest one transformers 5.x ships, PE Audio-Video (``"pe-av-large"``), is
registered as hub-only and is not read yet: its video tower is a timm model,
and timm (with torchvision) is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .registry import LoadedModel, check_kind
from .speech import SPEECH_SR, check_audio, whisper_encoder_states, whisper_mel
from .vision import check_images, vision_hidden_states

__all__ = ["AVProcessor", "AudioVideoFusion", "av_hidden_states"]


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

    The two encoders are the pretrained packaged models. The fusion layers are
    **not pretrained**: their weights are a seeded random initialisation. Use
    the model as a starting point for brain-tuning, or as a control; it is not
    a pretrained audio-video model, and the fusion states of an untrained
    model are random (but fixed) mixtures of the two streams.

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
        self.width, self.audio_rate, self.seed = int(width), float(audio_rate), int(seed)
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
        """Sinusoidal embedding of times in seconds, shape (n,) -> (n, width)."""
        angle = t[:, None].to(self.frequencies) * self.frequencies[None, :]
        emb = torch.cat([angle.sin(), angle.cos()], dim=1)
        return 0.5 * torch.nn.functional.pad(emb, (0, self.width - emb.shape[1]))

    def fuse(self, audio_tokens: torch.Tensor, audio_times: torch.Tensor, video_tokens: torch.Tensor,
             video_times: torch.Tensor) -> list[torch.Tensor]:
        """The fusion layers' states of one window's tokens.

        Parameters
        ----------
        audio_tokens : tensor of shape (n_audio, 384)
        audio_times : tensor of shape (n_audio,)
            Seconds relative to the window's end (<= 0).
        video_tokens : tensor of shape (n_video, 320)
        video_times : tensor of shape (n_video,)

        Returns
        -------
        list of ``n_layers + 1`` tensors of shape (n_audio + n_video, width)
            The input tokens, then each layer's output (the last after a final layer norm).
        """
        ln = torch.nn.functional.layer_norm
        parts = [self.audio_proj(ln(audio_tokens, audio_tokens.shape[-1:])) + self.modality[0] + self.time_embedding(audio_times)]
        if len(video_tokens):
            parts.append(self.video_proj(ln(video_tokens, video_tokens.shape[-1:])) + self.modality[1]
                         + self.time_embedding(video_times))
        hidden = torch.cat(parts)[None]
        states = [hidden[0]]
        for layer in self.layers:
            hidden = layer(hidden)
            states.append(hidden[0])
        states[-1] = self.norm(hidden[0])
        return states


def _window_clips(audio: np.ndarray, ends: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample bounds ``[start, stop)`` of the audio windows ending at ``ends`` (at least 400 samples each)."""
    stop = np.clip(np.round(ends * SPEECH_SR).astype(int), 400, len(audio))
    start = np.clip(np.round((ends - window) * SPEECH_SR).astype(int), 0, None)
    start = np.minimum(start, stop - 400)
    return start, stop


def av_hidden_states(lm: LoadedModel, audio: np.ndarray, sr: int, frames: np.ndarray, frame_times: np.ndarray,
                     ends: np.ndarray, window: float = 3.0, batch_size: int = 16,
                     video_states: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Layerwise states of the audio-video fusion model over windows ``[end - window, end)``.

    Each window is read alone: Whisper runs on exactly the window's audio
    (:func:`whisper_encoder_states`; its states see nothing outside the
    window), EfficientNet on each frame shown in the window, and the fusion
    layers on the window's tokens (see :class:`AudioVideoFusion`).

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
    speech_lm, vision_lm = fusion.speech_lm, fusion.vision_lm
    n_audio_states, n_video_states = speech_lm.spec.n_layers + 1, vision_lm.spec.n_layers + 1
    out = [np.zeros((len(ends), d), dtype=np.float32) for d in lm.spec.hidden_dims()]
    if video_states is None:
        video_states = vision_hidden_states(vision_lm, frames)
    if len(video_states) != n_video_states or any(len(v) != len(frames) for v in video_states):
        raise ValueError(f"video_states must be {n_video_states} arrays of {len(frames)} rows (vision_hidden_states of the frames)")
    group = round(50 / fusion.audio_rate)
    start, stop = _window_clips(audio, ends, float(window))
    order = np.argsort(stop - start, kind="stable")
    with torch.inference_mode():
        for first in range(0, len(order), int(batch_size)):
            batch = order[first : first + int(batch_size)]
            mel, n_frames = whisper_mel(speech_lm, [audio[start[i] : stop[i]] for i in batch])
            states = whisper_encoder_states(speech_lm.model, mel, n_frames)
            for r, i in enumerate(batch):
                n = int(n_frames[r])
                for k in range(n_audio_states):
                    out[k][i] = states[k][r, :n].float().mean(0).cpu().numpy()
                last = states[-1][r, :n].float()
                n_tok = -(-n // group)
                tokens = torch.stack([last[j * group : (j + 1) * group].mean(0) for j in range(n_tok)])
                lo = np.arange(n_tok) * group
                centre = (lo + np.minimum(lo + group, n)) / 2 * 0.02  # seconds from the clip's start (50 frames/s)
                token_times = torch.from_numpy(start[i] / SPEECH_SR + centre - ends[i]).float()
                inside = np.flatnonzero((frame_times >= ends[i] - window) & (frame_times < ends[i]))
                if len(inside):
                    for k in range(n_video_states):
                        out[n_audio_states + k][i] = video_states[k][inside].mean(0)
                    video_tokens = torch.from_numpy(video_states[-1][inside])
                else:
                    video_tokens = torch.zeros(0, vision_lm.spec.dim)
                video_times = torch.from_numpy(frame_times[inside] - ends[i]).float()
                dtype = fusion.audio_proj.weight.dtype
                fused = fusion.fuse(tokens.to(dtype), token_times, video_tokens.to(lm.device, dtype), video_times)
                for k, s in enumerate(fused):
                    out[n_audio_states + n_video_states + k][i] = s.float().mean(0).cpu().numpy()
    return out
