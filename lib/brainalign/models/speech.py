"""Speech models: waveform checks, Whisper's log-mel input and encoder, and layerwise hidden states.

Every speech model reads 16 kHz audio (:data:`SPEECH_SR`; :func:`check_audio`
resamples other rates). :func:`speech_hidden_states` reads a waveform in
consecutive 30 s chunks. Whisper runs at any length up to 30 s with
:func:`whisper_encoder_states` (transformers' encoder insists on 30 s of
input; a sliding window then costs what its length costs, and its states see
only the window).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import config
from .registry import LoadedModel, check_kind

__all__ = [
    "SPEECH_SR", "check_audio", "is_whisper", "speech_context", "speech_forward", "speech_frames", "speech_hidden_states",
    "whisper_encoder_states", "whisper_mel",
]

#: the sample rate every speech model reads (Hz); other rates are resampled
SPEECH_SR = 16000


def check_audio(audio: np.ndarray, sr: int) -> np.ndarray:
    """A mono waveform as float32 at :data:`SPEECH_SR`, resampled (polyphase) if ``sr`` differs.

    Parameters
    ----------
    audio : array of shape (n_samples,)
    sr : int
        Its sample rate in Hz.

    Returns
    -------
    ndarray of float32, shape (n_samples_16k,)
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer sample rate in Hz, got {sr!r}")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be a mono waveform of shape (n_samples,), got shape {audio.shape}; "
                         "average the channels of a stereo signal first")
    if not np.issubdtype(audio.dtype, np.number) or np.iscomplexobj(audio):
        raise ValueError(f"audio must hold real numbers, got dtype {audio.dtype}")
    audio = audio.astype(np.float32)
    if not np.isfinite(audio).all():
        raise ValueError("audio holds NaN or infinite samples")
    if sr != SPEECH_SR:
        from scipy.signal import resample_poly

        g = int(np.gcd(int(sr), SPEECH_SR))
        audio = resample_poly(audio, SPEECH_SR // g, int(sr) // g).astype(np.float32)
    if len(audio) < 400:
        raise ValueError(f"audio has {len(audio)} samples at {SPEECH_SR} Hz; speech models need at least 400 (25 ms)")
    return audio


def speech_frames(lm: LoadedModel, n_samples: int) -> int:
    """Frames of the model's output that cover ``n_samples`` samples at 16 kHz."""
    if is_whisper(lm):
        hop = lm.processor.hop_length * lm.model.conv1.stride[0] * lm.model.conv2.stride[0]  # 320 samples
        return min(-(-n_samples // hop), lm.model.config.max_source_positions)
    return int(lm.model._get_feat_extract_output_lengths(torch.tensor(n_samples)))  # wav2vec2 / HuBERT


def is_whisper(lm: LoadedModel) -> bool:
    """Whether a speech model is a Whisper encoder (log-mel input, 30 s context)."""
    return hasattr(lm.model, "conv1") and hasattr(lm.model, "embed_positions")


def speech_context(lm: LoadedModel) -> int:
    """Samples the model reads at once (Whisper: its 30 s window; others: 30 s chunks)."""
    return int(getattr(lm.processor, "n_samples", 30 * SPEECH_SR))


def whisper_mel(lm: LoadedModel, clips: list[np.ndarray]) -> tuple[torch.Tensor, np.ndarray]:
    """Whisper's log-mel input of clips of any length up to 30 s, without the padding to 30 s.

    Each clip is padded with zeros to a common width (``n_fft`` samples past the
    longest clip's last frame), so the mel frames that cover a clip are exactly
    those Whisper's feature extractor computes for the clip padded to 30 s (the
    log-mel floor is taken per clip, as there).

    Parameters
    ----------
    lm : LoadedModel
        A Whisper model.
    clips : list of float32 arrays of shape (n_samples_i,), at 16 kHz

    Returns
    -------
    mel : tensor of float32, shape (n_clips, n_mels, 2 * max(n_frames) + 2)
        (at most 3000 frames).
    n_frames : int array of shape (n_clips,)
        Encoder frames of each clip, ``ceil(n_samples_i / 320)``.
    """
    hop = lm.processor.hop_length * lm.model.conv1.stride[0] * lm.model.conv2.stride[0]  # 320 samples per frame
    n_frames = np.array([-(-len(c) // hop) for c in clips], dtype=np.int64)
    if n_frames.max() > lm.model.config.max_source_positions:
        raise ValueError(f"a clip of {max(len(c) for c in clips) / SPEECH_SR:g} s is longer than Whisper's 30 s context")
    width = int(n_frames.max()) * hop + lm.processor.n_fft
    padded = np.zeros((len(clips), width), dtype=np.float32)
    for i, c in enumerate(clips):
        padded[i, : len(c)] = c
    mel = lm.processor(list(padded), sampling_rate=SPEECH_SR, return_tensors="pt", padding="longest")["input_features"]
    # one frame past the last one (the convolutions read it), as in the padded input; never more than 30 s
    return mel[..., : min(2 * int(n_frames.max()) + 2, 2 * lm.model.config.max_source_positions)], n_frames


def whisper_shared_blocks(encoders: Sequence[torch.nn.Module]) -> int:
    """How many leading blocks several Whisper encoders share, weights and all (convolutions and positions too).

    A model brain-tuned with adapters on its last blocks only (merged) shares the
    others with the pretrained model: their states need computing once. At most
    all blocks but the last (the last one's output is normalised apart).

    Returns
    -------
    int
        0 when the convolutions or positions differ, or for fewer than two encoders.
    """
    def same(modules: Sequence[torch.nn.Module]) -> bool:
        first = dict(modules[0].named_parameters())
        for other in modules[1:]:
            params = dict(other.named_parameters())
            if params.keys() != first.keys() or not all(torch.equal(params[k], v) for k, v in first.items()):
                return False
        return True

    encoders = list(encoders)
    if len(encoders) < 2:
        return 0  # nothing to share
    if not all(same([getattr(e, name) for e in encoders]) for name in ("conv1", "conv2", "embed_positions")):
        return 0
    n = min(len(e.layers) for e in encoders) - 1
    for k in range(n):
        if not same([e.layers[k] for e in encoders]):
            return k
    return n


def whisper_encoder_states(encoder: torch.nn.Module, mel: torch.Tensor, n_frames: Sequence[int] | None = None,
                           n_blocks: int | None = None, prefix: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
    """All hidden states of a Whisper encoder run on exactly the frames it is given (no padding to 30 s).

    transformers' ``WhisperEncoder.forward`` insists on 3000 mel frames (30 s);
    here the convolutions, the first ``T`` positional embeddings and the blocks
    run on ``T = mel.shape[-1] / 2`` frames, so a clip costs what its length
    costs. With 3000 mel frames this is the standard encoder. A shorter clip's
    states see only the clip (the standard encoder's also see the silence it
    is padded with): that is what a sliding window means.

    Parameters
    ----------
    encoder : WhisperEncoder
    mel : tensor of shape (batch, n_mels, n_mel_frames), n_mel_frames <= 3000
        E.g. from :func:`whisper_mel`.
    n_frames : sequence of int, optional
        Real encoder frames of each row (default: all, ``ceil(n_mel_frames / 2)``).
        Only the first ``T = max(n_frames)`` frames are run; the rest of a
        shorter row is padding, masked out of the attention, so a row's real
        frames get the same states as when it is run alone.
    n_blocks : int, optional
        Run only the first ``n_blocks`` blocks (default: all).
    prefix : sequence of tensors, optional
        The first ``k + 1`` states of the same ``mel``, from this encoder or
        one sharing its first ``k`` blocks (:func:`whisper_shared_blocks`),
        computed with ``n_blocks=k``: they are returned as they are, and only
        the blocks after them run.

    Returns
    -------
    list of ``n_blocks + 1`` tensors of shape (batch, T, d_model)
        The input to the first block (convolutions + positions), then each
        block's output, the last block's after the final layer norm.
    """
    if prefix is not None:
        states = list(prefix)
        if not 1 <= len(states) <= len(encoder.layers):
            raise ValueError(f"prefix holds {len(states)} states; give 1 to {len(encoder.layers)} (the input and whole blocks)")
        hidden = states[-1]
        t = hidden.shape[1]
    else:
        dtype = encoder.conv1.weight.dtype
        x = torch.nn.functional.gelu(encoder.conv1(mel.to(encoder.conv1.weight.device, dtype)))
        x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
        t = x.shape[1] if n_frames is None else int(max(n_frames))
        x = x[:, :t]
        if t > encoder.embed_positions.num_embeddings:
            raise ValueError(f"{t} frames are more than Whisper's {encoder.embed_positions.num_embeddings} positions (30 s)")
        hidden = x + encoder.embed_positions.weight[:t]
        states = [hidden]
    mask = None
    if n_frames is not None and min(n_frames) < t:
        keys = torch.arange(t, device=hidden.device)[None, :] >= torch.as_tensor(n_frames, device=hidden.device)[:, None]
        mask = torch.zeros(len(keys), 1, 1, t, dtype=hidden.dtype, device=hidden.device)
        mask.masked_fill_(keys[:, None, None, :], torch.finfo(hidden.dtype).min)
    end = len(encoder.layers) if n_blocks is None else int(n_blocks)
    for layer in encoder.layers[len(states) - 1 : end]:
        hidden = layer(hidden, mask)
        states.append(hidden)
    if end == len(encoder.layers):
        states[-1] = encoder.layer_norm(hidden)
    return states


def speech_forward(lm: LoadedModel, clips: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
    """All hidden states of a batch of clips of equal length: (n_layers + 1) x (batch, frames, dim), float32."""
    dtype = next(lm.model.parameters()).dtype
    if is_whisper(lm):  # the feature extractor pads to 30 s
        inputs = lm.processor(clips, sampling_rate=SPEECH_SR, return_tensors="pt")
        x = inputs["input_features"].to(lm.device, dtype)
        return lm.model(x, output_hidden_states=True).hidden_states
    inputs = lm.processor(clips, sampling_rate=SPEECH_SR, return_tensors="pt")
    return lm.model(inputs["input_values"].to(lm.device, dtype), output_hidden_states=True).hidden_states


def speech_hidden_states(lm: LoadedModel, audio: np.ndarray, sr: int, batch_size: int = 2) -> list[np.ndarray]:
    """Layerwise hidden states of a speech model over a waveform.

    The audio is resampled to 16 kHz if needed and read in consecutive 30 s
    chunks (Whisper's context; each chunk without the previous one's
    context). Whisper pads every chunk to 30 s; only the frames that cover
    real audio are returned (``ceil(n_samples / 320)`` per chunk).

    Parameters
    ----------
    lm : LoadedModel
        A speech model (``lm.spec.kind == "speech"``).
    audio : array of shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate in Hz.
    batch_size : int
        Chunks per forward pass (a 30 s chunk's attention weights take 54 MB
        per block in whisper-tiny-en, 6 heads over 1500 frames; 2 keeps a
        story's states well within a 2 GB session; a GPU takes larger batches).

    Returns
    -------
    list of ``n_layers + 1`` ndarrays of float32, each of shape (n_frames, dim)
        50 frames per second (Whisper; 49.9 for wav2vec2 / HuBERT). State 0
        is the input to the first block, state ``n_layers`` the last block's
        output (after the final layer norm for Whisper).
    """
    check_kind(lm, "speech")
    audio = check_audio(audio, sr)
    step = speech_context(lm)
    starts = list(range(0, len(audio), step))
    skip = [0] * len(starts)  # frames to drop at the start of each chunk
    if len(starts) > 1 and (rest := len(audio) - starts[-1]) < 400:  # too short to read alone: read the last 30 s
        starts[-1], skip[-1] = len(audio) - step, speech_frames(lm, step) - speech_frames(lm, rest)
    chunks = [audio[i : i + step] for i in starts]
    whisper = is_whisper(lm)
    groups: dict[int, list[int]] = {}  # chunks of one length run together (Whisper pads them all to 30 s anyway)
    for i, c in enumerate(chunks):
        groups.setdefault(0 if whisper else len(c), []).append(i)
    results: dict[int, list[np.ndarray]] = {}
    with torch.inference_mode():
        for idx in groups.values():
            for first in range(0, len(idx), int(batch_size)):
                rows = idx[first : first + int(batch_size)]
                states = speech_forward(lm, [chunks[i] for i in rows])
                for r, i in enumerate(rows):
                    n = speech_frames(lm, len(chunks[i]))
                    results[i] = [h[r, skip[i] : n].float().cpu().numpy() for h in states]
    config.release_memory()  # the chunks' freed heap
    return [np.concatenate([results[i][k] for i in range(len(chunks))], axis=0) for k in range(lm.spec.n_layers + 1)]
