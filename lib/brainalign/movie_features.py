"""Features of a movie's frames: vision models per frame, audio-video models per volume.

:func:`vision_tr_features` brings a vision model's pooled per-frame states
(:func:`models.vision_hidden_states`) to the volumes; :func:`av_tr_features`
reads an audio-video model over one window of sound and frames per volume
(:func:`av_tr_features_shared`: several such models that share their encoders, at once).
Both share the frames' states (:func:`models.frame_states`) and are cached like the
word and speech features of :mod:`brainalign.features`, through its
:func:`~brainalign.features.cached_layers`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .features import cached_layers, check_times
from .models import SPEECH_SR, LoadedModel, frame_states

__all__ = ["av_tr_features", "av_tr_features_shared", "clip_features", "vision_tr_features"]

#: the longest window an audio-video model reads (s): a longer clip is read over its last ``MAX_WINDOW`` seconds
MAX_WINDOW = 30.0


def vision_tr_features(
    model: str | LoadedModel,
    frames: np.ndarray,
    frame_times: np.ndarray,
    times: np.ndarray,
    method: str = "lanczos",
    layers: Sequence[int] | None = None,
    batch_size: int = 32,
    cache: bool = True,
) -> list[np.ndarray]:
    """Vision-model features of a movie's frames at the volumes' sampling times.

    Each frame's pooled hidden states (:func:`models.vision_hidden_states`)
    are brought to the volumes by ``"lanczos"`` (Lanczos resampling scaled by
    ``frame step / TR``: a kernel-weighted mean) or ``"mean"`` (the mean of
    the frames in each volume's box, :func:`brainalign.stimuli.frames_per_tr`:
    the TR centred on its sampling time; zeros where no frame falls). Cached.

    Parameters
    ----------
    model : str or LoadedModel
        A vision model name (loaded only on a cache miss) or a loaded one.
    frames : uint8 array of shape (n_frames, height, width, 3)
    frame_times : array of shape (n_frames,)
        When each frame is shown (s), increasing.
    times : array of shape (n_trs,)
        Sampling time of each volume (s): ``Dataset.sample_times(run)``.
    method : {"lanczos", "mean"}
    layers : sequence of int, optional
        Hidden states to return; all by default.
    batch_size : int
        Frames per forward pass.
    cache : bool

    Returns
    -------
    list of ndarrays of float32, one per selected layer, layer ``k`` of shape (n_trs, spec.hidden_dims()[k])
    """
    from .models import check_images
    from .stimuli import frames_per_tr, lanczos_resample

    frames = check_images(frames)
    frame_times = np.asarray(frame_times, dtype=float)
    times = check_times(times)
    if frame_times.shape != (len(frames),) or (len(frames) > 1 and not np.all(np.diff(frame_times) > 0)):
        raise ValueError(f"frame_times must be increasing with shape ({len(frames)},), got shape {frame_times.shape}")
    if method not in ("lanczos", "mean"):
        raise ValueError(f"method must be 'lanczos' or 'mean', got {method!r}")
    tr = float(np.mean(np.diff(times)))

    def run(lm: LoadedModel, layer_list: list[int]) -> list[np.ndarray]:
        states = frame_states(lm, frames, batch_size=batch_size, cache=cache)
        states = [states[layer] for layer in layer_list]
        if method == "lanczos":
            step = float(np.median(np.diff(frame_times))) if len(frames) > 1 else tr
            return [(step / tr) * lanczos_resample(s, frame_times, times) for s in states]
        boxes = frames_per_tr(frame_times, times, tr)
        return [np.stack([s[idx].mean(0) if len(idx) else np.zeros(s.shape[1]) for idx in boxes]) for s in states]

    parts = {"frames": frames, "frame_times": frame_times, "times": times, "method": method}
    return cached_layers("vision_tr_features", model, "vision", layers, parts, cache, run)


def av_tr_features(
    model: str | LoadedModel,
    audio: np.ndarray,
    sr: int,
    frames: np.ndarray,
    frame_times: np.ndarray,
    times: np.ndarray,
    window: float = 3.0,
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
    cache: bool = True,
) -> list[np.ndarray]:
    """Audio-video model features, one window per volume. Cached.

    Volume ``k`` gets the states of the window ``[s_k - window, s_k)`` that
    ends at its sampling time ``s_k = times[k]`` (``Dataset.sample_times``:
    causal, see the time base of :mod:`brainalign.stimuli`). A window sees
    only its own audio and frames (:func:`models.av_hidden_states`), so a
    change in the stimulus at time ``e`` moves the features of the volumes
    whose sampling time is in ``(e, e + window]``, and no earlier one.

    ``"whisper-efficientnet-fusion"``'s fusion layers are pretrained,
    self-supervised, on audio-visual correspondence over generated movie clips
    (:mod:`brainalign.tuning.selfsup`; the default recipe's weights ship with
    the package, other recipes are trained once and cached); a model from
    ``models.build_av_fusion(pretrained=False)`` has them at their random
    initialisation. Its unimodal states (0-4 Whisper, 5-21 EfficientNet) are
    the pretrained encoders'.

    Parameters
    ----------
    model : str or LoadedModel
        ``"whisper-efficientnet-fusion"`` (loaded only on a cache miss), or a
        model from :func:`models.build_av_fusion`.
    audio : array of shape (n_samples,)
    sr : int
    frames : uint8 array of shape (n_frames, height, width, 3)
    frame_times : array of shape (n_frames,)
        When each frame is shown (s), increasing.
    times : array of shape (n_trs,)
        Sampling time of each volume (s), increasing: where its window ends.
    window : float
        Seconds of audio and video in each window (at most 30).
    layers : sequence of int, optional
        Hidden states to return (see :func:`models.av_hidden_states`); all by default.
    batch_size : int
        Windows per Whisper forward pass.
    cache : bool

    Returns
    -------
    list of ndarrays of float32, one per selected layer, layer ``k`` of shape (n_trs, spec.hidden_dims()[k])
        For ``"whisper-efficientnet-fusion"``: widths 384 (layers 0-4), 32-320 (5-21), 256 (22-24).
    """
    from .models import av_hidden_states

    audio, frames, parts = _av_parts(audio, sr, frames, frame_times, times, window)

    def run(lm: LoadedModel, layer_list: list[int]) -> list[np.ndarray]:
        video = frame_states(lm.model.vision_lm, frames, cache=cache) if len(frames) and hasattr(lm.model, "vision_lm") else None
        states = av_hidden_states(lm, audio, SPEECH_SR, frames, parts["frame_times"], parts["times"], window=float(window),
                                  batch_size=batch_size, video_states=video)
        return [states[layer] for layer in layer_list]

    return cached_layers("av_tr_features", model, "audio-video", layers, parts, cache, run)


def av_tr_features_shared(
    lms: Sequence[LoadedModel],
    audio: np.ndarray,
    sr: int,
    frames: np.ndarray,
    frame_times: np.ndarray,
    times: np.ndarray,
    window: float = 3.0,
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
    cache: bool = True,
) -> list[list[np.ndarray]]:
    """:func:`av_tr_features` for several fusion models that share their encoders, at once.

    The same features, cached under the same entries, as one call per model.
    The encoders' work (Whisper over each window's audio, EfficientNet over
    each frame) is done once, by the first model whose features are not
    cached, for itself and every model after it; each model then runs only its
    own fusion layers. The pretrained model, a copy brain-tuned with adapters
    on its fusion layers and one with fusion layers trained further
    (:func:`tuning.continue_selfsup`) share their encoders: three models cost
    about one.

    Parameters
    ----------
    lms : sequence of LoadedModel
        Fusion models (``load_model("whisper-efficientnet-fusion")``, its tuned
        copies, :func:`models.build_av_fusion`) whose encoders have the same revisions.
    audio, sr, frames, frame_times, times, window, layers, batch_size, cache
        See :func:`av_tr_features`.

    Returns
    -------
    list, one per model, of lists of ndarrays of float32 (one per selected layer), each of shape (n_trs, dim)

    Raises
    ------
    ValueError
        When ``lms`` is empty, a model is not the fusion model, or their encoders differ.
    """
    from .models import AudioVideoFusion, audio_window_tokens, av_hidden_states

    lms = list(lms)
    if not lms:
        raise ValueError("lms is empty: give at least one loaded fusion model")
    if not all(isinstance(lm, LoadedModel) and isinstance(lm.model, AudioVideoFusion) for lm in lms):
        raise ValueError("av_tr_features_shared reads fusion models (whisper-efficientnet-fusion and its tuned copies), loaded")
    encoders = {(lm.model.speech_lm.revision, lm.model.vision_lm.revision) for lm in lms}
    if len(encoders) > 1:
        raise ValueError(f"the models' encoders differ ({sorted(encoders)}); compute their features one model at a time")
    audio, frames, parts = _av_parts(audio, sr, frames, frame_times, times, window)
    computed: dict[int, list[np.ndarray]] = {}

    def run_for(i: int):
        def run(_lm: LoadedModel, layer_list: list[int]) -> list[np.ndarray]:
            if i not in computed:
                video = frame_states(lms[i].model.vision_lm, frames, cache=cache)
                tokens = audio_window_tokens(lms[i].model, audio, parts["times"], float(window), int(batch_size))
                for j, lm in enumerate(lms[i:]):
                    computed[i + j] = av_hidden_states(lm, audio, SPEECH_SR, frames, parts["frame_times"], parts["times"],
                                                       window=float(window), batch_size=batch_size, video_states=video,
                                                       audio_tokens=tokens)
            return [computed[i][layer] for layer in layer_list]
        return run

    return [cached_layers("av_tr_features", lm, "audio-video", layers, parts, cache, run_for(i)) for i, lm in enumerate(lms)]


def _av_parts(audio: np.ndarray, sr: int, frames: np.ndarray, frame_times: np.ndarray, times: np.ndarray,
              window: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """The checked inputs of an audio-video feature call: the audio at 16 kHz, the frames, and the cache key's parts."""
    from .models import check_audio, check_images

    times = check_times(times, minimum=1)  # a window per time, on its own: one clip is one window
    raw = np.asarray(audio)
    audio = check_audio(raw, sr)
    frames = check_images(frames)
    frame_times = np.asarray(frame_times, dtype=float)
    if frame_times.shape != (len(frames),) or np.any(np.diff(frame_times) <= 0):
        raise ValueError(f"frame_times must be increasing with shape ({len(frames)},), got shape {frame_times.shape}")
    if not (np.isfinite(window) and 0 < window <= MAX_WINDOW):
        raise ValueError(f"window={window!r} must be a number of seconds in (0, {MAX_WINDOW:g}]")
    parts = {"audio": raw, "sr": int(sr), "frames": frames, "frame_times": frame_times, "times": times, "window": float(window)}
    return audio, frames, parts


def clip_features(
    lms: Sequence[LoadedModel],
    paths: Sequence[str],
    starts: Sequence[float] | None = None,
    ends: Sequence[float] | None = None,
    layers: Sequence[int] | None = None,
    frame_rate: float = 5.0,
    frame_size: int = 128,
    cache: bool = True,
) -> list[list[np.ndarray]]:
    """Audio-video model features of clips of movie files, one window per clip (e.g. a MUStARD utterance).

    Clip ``i`` is ``[starts[i], ends[i])`` seconds of the file ``paths[i]``
    (default: the whole file; a clip that runs past the file's sound ends with
    it). Its sound and its frames (``frame_rate``
    frames/s, short side ``frame_size`` pixels: :func:`stimuli.formats.read_movie_frames`)
    are cut out, so nothing before or after the clip is seen, and read as one
    window that ends at the clip's end and spans the whole clip (its last
    :data:`MAX_WINDOW` seconds if it is longer), by :func:`av_tr_features_shared`:
    each model's states averaged over the window's tokens. Each file is decoded once.

    Parameters
    ----------
    lms : sequence of LoadedModel
        Fusion models that share their encoders (see :func:`av_tr_features_shared`).
    paths : sequence of str
        Movie files (any container FFmpeg reads: .mp4, .mkv).
    starts, ends : sequence of float, optional
        Each clip's start and end in its file (s); NaN or None: the file's start or end.
    layers : sequence of int, optional
        Hidden states to keep (default: all).
    frame_rate, frame_size : float, int
        The frames kept per second, and their short side in pixels.
    cache : bool
        Cache each clip's features (:func:`av_tr_features_shared`).

    Returns
    -------
    list, one per model, of lists of ndarrays of float32 (one per selected layer), each of shape (n_clips, dim)

    Raises
    ------
    FileNotFoundError, ValueError
        A file is missing or unreadable (naming it), or a clip is empty or lies outside its file.
    """
    from .stimuli.formats import read_movie_audio, read_movie_frames

    paths = [str(p) for p in paths]
    n = len(paths)
    starts = np.zeros(n) if starts is None else np.asarray([np.nan if v is None else v for v in starts], dtype=float)
    ends = np.full(n, np.nan) if ends is None else np.asarray([np.nan if v is None else v for v in ends], dtype=float)
    if not n or starts.shape != (n,) or ends.shape != (n,):
        raise ValueError(f"give one start and one end per clip ({n} paths, {starts.size} starts, {ends.size} ends)")
    by_file: dict[str, list[int]] = {}
    for i, path in enumerate(paths):
        by_file.setdefault(path, []).append(i)
    rows: dict[int, list[list[np.ndarray]]] = {}
    for path, clips in by_file.items():
        audio, sr = read_movie_audio(path)
        frames, times = read_movie_frames(path, frame_rate, frame_size)
        length = len(audio) / sr
        for i in clips:
            start = 0.0 if np.isnan(starts[i]) else float(starts[i])
            asked = length if np.isnan(ends[i]) else float(ends[i])
            end = min(asked, length)  # labels can run past a recording's end
            keep = (times >= start) & (times < end)
            if not 0 <= start < end or not keep.any():
                raise ValueError(f"clip {i} ({start:g}-{asked:g} s) is empty or outside {path} ({length:.2f} s of sound, "
                                 f"{len(times)} frames)")
            sound = audio[int(round(start * sr)) : int(round(end * sr))]
            rows[i] = av_tr_features_shared(lms, sound, sr, frames[keep], times[keep] - start, np.array([end - start]),
                                            window=min(end - start, MAX_WINDOW), layers=layers, cache=cache)
    return [[np.concatenate([rows[i][m][k] for i in range(n)]) for k in range(len(rows[0][m]))] for m in range(len(rows[0]))]
