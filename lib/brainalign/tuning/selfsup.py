"""Self-supervised pretraining of the audio-video fusion layers: audio-visual correspondence.

Study 3 brain-tunes the audio-video model ``"whisper-efficientnet-fusion"``
and compares it with the pretrained model and with a domain-adaptation
control. With fusion layers at their random initialisation, that comparison
would measure training, not brain signal; so the fusion layers
(:data:`models.FUSION_PARTS`: the two projections, the modality embeddings,
the transformer layers and the final norm) are pretrained here, without brain
data, while the two encoders (Whisper tiny.en, EfficientNet-Lite0) stay frozen.

**Objective: audio-visual correspondence** (Arandjelović & Zisserman 2017,
"Look, Listen and Learn"). A window of ``window`` seconds ends at a random
time of a clip. Its positive pair is its own audio tokens and video tokens;
its negative pair is its audio tokens with the video tokens of a window of
another clip, or of the same clip ending at least ``min_gap`` seconds away
(video times are taken relative to that window's own end). The fusion layers
read the pair (:meth:`models.AudioVideoFusion.fuse`), their last state,
averaged over the tokens, goes through a linear head (discarded after
training), and the loss is the binary cross-entropy of "these belong
together". Every window gives one positive and one negative pair per epoch,
the negative drawn anew each epoch. AdamW, constant learning rate. The
encoders being frozen, their token streams are computed once per clip
(:func:`clip_tokens`: Whisper's last state over each window's audio,
grouped as :func:`models.av_hidden_states` groups it, and EfficientNet's
last block per frame) and training reads only those.

**What there is to learn.** Each speaker has one voice and one face, and a
shot shows the face of the speaker talking at its middle with probability
``face_p[0]``, the other speaker's face with ``face_p[1]``, else a scene
(:func:`stimuli.make_movie`). A voice therefore goes with its speaker's face
more often within a window than across windows: the binding of voices to
faces is what there is to learn (and what the movie cohort's audio-visual
speech source, "the speaker on screen is talking", is made of). With the
cohort's shot statistics (0.5, 0.2) the binding is weak: windows hold
silence and both speakers' turns, and half the shots show a scene or the
other face, so even the generator's ground truth (who speaks and whose face
is on screen through each window) tells a held-out positive pair from a
negative one in only 58% of cases, and fusion layers pretrained on such
clips stay near chance (50%). The pretraining clips therefore show the
talking speaker's face in 90% of shots and the other's in 5%
(:data:`PRETRAINING_FACE_P`; ground truth 67%), as in the talking-head
videos that audio-visual models are pretrained on; the default recipe
reaches 61% held out. The domain-adaptation control (:func:`continue_selfsup`)
goes on with the cohort's own episodes and statistics. (Figures:
``bench/README.md``.)

**Pretraining clips** (:func:`pretraining_clips`) are made by the movie
generator for this purpose only, in the movie cohort's format (5 frames/s,
128 x 128 pixels, 16 kHz, the same two voices and faces): consecutive lines
of the dialogue (:func:`stimuli.read_dialogue`), with new pauses, shots and
camera motion (seeds drawn from ``config.rng(seed, "av-pretraining", ...)``,
never the cohort's). The lines of the cohort's test episode are left out
(:func:`pretraining_lines`); the lines of its training episodes are reused,
with other pauses, shots and camera motion (the clips are not the cohort's
episodes). The default 40 clips of 6 lines go about twice through those
lines (32 minutes of movie). A seeded fifth of the clips is held out to
measure the correspondence accuracy; as the lines come round again,
held-out clips may speak lines of training clips, over other shots.

**Cache.** :func:`pretrain_fusion` saves the weights and the history in the
library's cache (``<cache>/av_pretraining/<key>.npz``, written to a temporary
file and renamed), keyed by every parameter, the starting model's revision
(encoders, fusion version, seed), the dialogue's lines, the espeak-ng package
and :data:`models.SELFSUP_VERSION`; a later call reads them back. An entry
that fails its checksum (a truncated or corrupt file) is logged and
retrained (:class:`brainalign.cache.Cache`). The default recipe's entry
ships with the package (``resources/pretrained/av_pretraining``): on a cache
miss it is copied into the cache, checked against its checksum, so that no
installation (a CI run, Binder's build) spends the recipe's 11 minutes on it;
any other parameters, or a change to what the key holds, train anew.
``bench/bench_selfsup.py`` retrains the default with the cache off and
compares the result with the shipped weights.

**Domain adaptation** (:func:`continue_selfsup`): the same objective,
continued from a model's fusion weights on given episodes for a given number
of optimiser steps, without brain data: Study 3's control for what
brain-tuning gains by seeing the stimuli alone.

The module is longer than most: the clips, the encoders' tokens, the pairs,
the training loop and the two entry points with their checks and cache make
one recipe, and its helpers serve no other module.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import config
from ..cache import Cache, digest
from ..config import release_memory
from ..manifests import read_manifest
from ..models.audio_video import FUSION_PARTS, AudioVideoFusion, audio_window_tokens, window_frames
from ..models.registry import SELFSUP_VERSION, LoadedModel, check_kind, package_version
from ..models.speech import SPEECH_SR, check_audio
from ..models.vision import check_images, frame_states
from ..stimuli import Movie, dialogue_episodes, make_movie, read_dialogue

__all__ = [
    "PRETRAINING_FACE_P", "PRETRAINING_STEP", "ClipTokens", "clip_tokens", "continue_selfsup", "pretrain_fusion", "pretraining_clips",
    "pretraining_lines",
]

log = logging.getLogger(__name__)

#: the cache step of the pretrained weights (they depend on the packaged encoders alone, not on any dataset: a miniature
#: run shares them with the data home's cache, see :mod:`brainalign.runner`), and of the domain-adapted ones
PRETRAINING_STEP, _CONTINUED_STEP = "av_pretraining", "av_selfsup_continued"
#: how often a pretraining clip's shot shows the talking speaker's face, and the other speaker's (else a scene)
PRETRAINING_FACE_P = (0.9, 0.05)
#: frames per EfficientNet pass: at 8 its activations take about 150 MB (560 MB at 32), and it runs no slower
_FRAMES_PER_PASS = 8
#: minutes the default pretraining took in a fresh installation on the project machine (2 CPU cores; bench/README.md)
_DEFAULT_MINUTES = 11
#: the cache entries that ship with the package: the default recipe's weights and history
_SHIPPED = Path(__file__).resolve().parent.parent / "resources" / "pretrained"


# -- clips ----------------------------------------------------------------------------------------


def pretraining_lines() -> pd.DataFrame:
    """The dialogue lines the pretraining clips may speak: every line but those of the movie cohort's test episode.

    The cohort's episodes are the dialogue cut by
    :func:`stimuli.dialogue_episodes` into the runs of its split manifest
    (training episodes, then the test episode); a line whose text is that of
    a test-episode line is left out wherever it stands.

    Returns
    -------
    DataFrame with columns ``speaker, line``
        In the dialogue's order.
    """
    split = read_manifest("simulated-movie")
    episodes = dialogue_episodes(split["train"] + split["test"])
    test = {str(x) for run in split["test"] for x in episodes[run]["line"]}
    lines = read_dialogue()
    return lines[~lines["line"].astype(str).isin(test)].reset_index(drop=True)


def pretraining_clips(n_clips: int = 40, lines_per_clip: int = 6, seed: int = 0,
                      face_p: tuple[float, float] = PRETRAINING_FACE_P) -> Iterator[Movie]:
    """The clips of the self-supervised pretraining, made one at a time by the movie generator.

    Clip ``k`` speaks ``lines_per_clip`` consecutive lines of
    :func:`pretraining_lines`, starting at line ``k * lines_per_clip`` (modulo
    the number of lines: after the last line the next clip goes on from the
    first, so successive passes over the dialogue cut it differently), with
    the pauses, shots and camera motion of a seed drawn from
    ``config.rng(seed, "av-pretraining", "clip", k)``, in the movie cohort's
    format (:func:`stimuli.make_movie`'s defaults: 5 frames/s, 128 x 128
    pixels, 16 kHz audio, the default voices and faces) but with shots that
    show the talking speaker's face more often (``face_p``; see the module).

    Parameters
    ----------
    n_clips : int
        Number of clips (>= 1).
    lines_per_clip : int
        Lines of dialogue per clip (>= 1).
    seed : int
        Seed (>= 0).
    face_p : (float, float)
        Probabilities that a shot shows the face of the speaker talking at its
        middle, and the other speaker's face (else a scene); the movie cohort's
        are (0.5, 0.2).

    Yields
    ------
    Movie
        One clip (a clip of six lines lasts about 50 s; its frames take about 12 MB).
    """
    _check_int("n_clips", n_clips, 1)
    _check_int("lines_per_clip", lines_per_clip, 1)
    _check_int("seed", seed, 0)
    face_p = _check_face_p(face_p)
    return _clips(int(n_clips), int(lines_per_clip), int(seed), face_p)


def _clips(n_clips: int, lines_per_clip: int, seed: int, face_p: tuple[float, float]) -> Iterator[Movie]:
    pool = pretraining_lines()
    for k in range(n_clips):
        rows = (k * lines_per_clip + np.arange(lines_per_clip)) % len(pool)
        clip_seed = int(config.rng(seed, "av-pretraining", "clip", k).integers(2**31))
        yield make_movie(pool.iloc[rows].reset_index(drop=True), seed=clip_seed, face_p=face_p)


# -- the frozen encoders' tokens ------------------------------------------------------------------


@dataclass
class ClipTokens:
    """The frozen encoders' token streams of one clip, for windows ending at ``ends``.

    Attributes
    ----------
    ends : array of shape (n_windows,)
        Window ends (s).
    audio : float32 array of shape (n_windows, n_tokens, 384)
        Each window's audio tokens (:func:`models.audio_window_tokens`), zero-padded to the longest.
    audio_times : float32 array of shape (n_windows, n_tokens)
        Each token's time relative to its window's end (s).
    n_audio : int array of shape (n_windows,)
        Real audio tokens of each window.
    video : float32 array of shape (n_frames, 320)
        EfficientNet's last block, averaged over space, of every frame.
    frame_times : array of shape (n_frames,)
        When each frame is shown (s).
    duration : float
        Length of the clip's audio (s).
    """

    ends: np.ndarray
    audio: np.ndarray
    audio_times: np.ndarray
    n_audio: np.ndarray
    video: np.ndarray
    frame_times: np.ndarray
    duration: float


def clip_tokens(lm: LoadedModel, audio: np.ndarray, sr: int, frames: np.ndarray, frame_times: np.ndarray,
                ends: np.ndarray, window: float = 3.0, batch_size: int = 16, cache: bool = False) -> ClipTokens:
    """The token streams the fusion layers read, for windows ``[end - window, end)`` of one clip.

    Parameters
    ----------
    lm : LoadedModel
        The fusion model (``"whisper-efficientnet-fusion"``); its encoders make the tokens.
    audio : array of shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate (Hz); resampled to 16 kHz.
    frames : uint8 array of shape (n_frames, height, width, 3)
    frame_times : array of shape (n_frames,)
        When each frame is shown (s), increasing.
    ends : array of shape (n_windows,)
        Window ends (s).
    window : float
        Window length (s), in (0, 30].
    batch_size : int
        Windows per Whisper forward pass.
    cache : bool
        Read the frames' EfficientNet states from the cache that the movie
        features share (:func:`brainalign.models.frame_states`), or
        compute them there on first use; the same numbers either way.

    Returns
    -------
    ClipTokens
    """
    fusion = _check_fusion(lm)
    audio = check_audio(audio, sr)
    frames, frame_times = _check_frames(frames, frame_times)
    _check_number("window", window, 0.0, 30.0)
    ends = np.asarray(ends, dtype=float)
    if ends.ndim != 1 or not len(ends) or not np.isfinite(ends).all():
        raise ValueError(f"ends must be a non-empty 1-D array of finite times (s), got shape {ends.shape}")
    _, tokens, times = audio_window_tokens(fusion, audio, ends, float(window), int(batch_size))
    n_audio = np.array([len(t) for t in tokens])
    padded = np.zeros((len(ends), n_audio.max(), tokens[0].shape[1]), dtype=np.float32)
    padded_times = np.zeros(padded.shape[:2], dtype=np.float32)
    for i, (t, s) in enumerate(zip(tokens, times)):
        padded[i, : len(t)], padded_times[i, : len(t)] = t, s
    video = frame_states(fusion.vision_lm, frames, batch_size=_FRAMES_PER_PASS, cache=cache)[-1]
    return ClipTokens(ends=ends, audio=padded, audio_times=padded_times, n_audio=n_audio, video=video,
                      frame_times=frame_times, duration=len(audio) / SPEECH_SR)


# -- pairs and the objective ----------------------------------------------------------------------


def _window_index(clips: Sequence[ClipTokens], members: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """(clip, window) of every window of the clips ``members``."""
    pairs = [(c, i) for c in members for i in range(len(clips[c].ends))]
    arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _negatives(clips: Sequence[ClipTokens], clip: np.ndarray, win: np.ndarray, rng: np.random.Generator,
               min_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """For each window, the clip and end of another window: of another clip, or ending ``min_gap`` s away or more.

    Drawn uniformly among the windows ``(clip, win)`` that qualify.
    """
    ends = np.array([clips[c].ends[i] for c, i in zip(clip, win)])
    pick = rng.integers(len(clip), size=len(clip))
    for _ in range(50):  # rejection: almost every draw qualifies when there are several clips
        bad = (clip[pick] == clip) & (np.abs(ends[pick] - ends) < min_gap)
        if not bad.any():
            return clip[pick], ends[pick]
        pick[bad] = rng.integers(len(clip), size=int(bad.sum()))
    for j in np.flatnonzero((clip[pick] == clip) & (np.abs(ends[pick] - ends) < min_gap)):
        ok = np.flatnonzero((clip != clip[j]) | (np.abs(ends - ends[j]) >= min_gap))
        if not len(ok):
            raise ValueError(f"no window lies {min_gap:g} s or more from the one ending at {ends[j]:.2f} s: give "
                             "more or longer clips, or a smaller min_gap")
        pick[j] = rng.choice(ok)
    return clip[pick], ends[pick]


def _epoch_pairs(clips: Sequence[ClipTokens], clip: np.ndarray, win: np.ndarray, rng: np.random.Generator,
                 min_gap: float, shuffle: bool = True) -> np.ndarray:
    """One positive and one negative pair per window: rows (clip, window, video clip, video end, label)."""
    neg_clip, neg_end = _negatives(clips, clip, win, rng, min_gap)
    own_end = np.array([clips[c].ends[i] for c, i in zip(clip, win)])
    pos = np.stack([clip, win, clip, own_end, np.ones(len(clip))], axis=1)
    neg = np.stack([clip, win, neg_clip, neg_end, np.zeros(len(clip))], axis=1)
    rows = np.concatenate([pos, neg])
    return rows[rng.permutation(len(rows))] if shuffle else rows


def _batch(clips: Sequence[ClipTokens], rows: np.ndarray, window: float, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The padded tokens of a batch of pairs, and their labels (on ``like``'s device; tokens in its dtype)."""
    clip, win, vclip = rows[:, 0].astype(int), rows[:, 1].astype(int), rows[:, 2].astype(int)
    n_audio = np.array([clips[c].n_audio[i] for c, i in zip(clip, win)])
    ta = int(n_audio.max())
    audio = np.stack([clips[c].audio[i, :ta] for c, i in zip(clip, win)])
    audio_times = np.stack([clips[c].audio_times[i, :ta] for c, i in zip(clip, win)])
    inside = [window_frames(clips[c].frame_times, end, window) for c, end in zip(vclip, rows[:, 3])]
    tv = max(len(idx) for idx in inside)
    video = np.zeros((len(rows), tv, clips[0].video.shape[1]), dtype=np.float32)
    video_times = np.zeros((len(rows), tv), dtype=np.float32)
    for r, (c, end, idx) in enumerate(zip(vclip, rows[:, 3], inside)):
        video[r, : len(idx)] = clips[c].video[idx]
        video_times[r, : len(idx)] = clips[c].frame_times[idx] - end
    audio_mask = torch.from_numpy(np.arange(ta)[None, :] < n_audio[:, None])
    video_mask = torch.from_numpy(np.arange(tv)[None, :] < np.array([len(i) for i in inside])[:, None])
    batch = (torch.from_numpy(audio).to(like), torch.from_numpy(audio_times), torch.from_numpy(video).to(like),
             torch.from_numpy(video_times), audio_mask, video_mask, torch.from_numpy(rows[:, 4]).to(like))
    return tuple(x.to(like.device) for x in batch)


def _logits(fusion: AudioVideoFusion, head: torch.nn.Linear, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The head's logit of "these belong together" for each pair: the last fusion state averaged over real tokens."""
    audio, audio_times, video, video_times, audio_mask, video_mask, _ = batch
    last = fusion.fuse(audio, audio_times, video, video_times, audio_mask, video_mask)[-1]
    real = torch.cat([audio_mask, video_mask], dim=1) if video.shape[1] else audio_mask
    real = real.to(last.dtype)[..., None]
    return head((last * real).sum(1) / real.sum(1)).squeeze(-1)


def _evaluate(fusion: AudioVideoFusion, head: torch.nn.Linear, clips: Sequence[ClipTokens], rows: np.ndarray,
              window: float, batch_size: int) -> tuple[float, float]:
    """Mean binary cross-entropy and accuracy over fixed pairs."""
    losses, hits = [], []
    with torch.no_grad():
        for first in range(0, len(rows), batch_size):
            batch = _batch(clips, rows[first : first + batch_size], window, fusion.audio_proj.weight)
            logit = _logits(fusion, head, batch)
            losses.append(torch.nn.functional.binary_cross_entropy_with_logits(logit, batch[-1], reduction="sum").item())
            hits.append(((logit > 0).to(batch[-1].dtype) == batch[-1]).sum().item())
    return float(np.sum(losses) / len(rows)), float(np.sum(hits) / len(rows))


def _train(fusion: AudioVideoFusion, clips: Sequence[ClipTokens], train: Sequence[int], heldout: Sequence[int],
           n_steps: int | None, epochs: int, p: dict, progress: bool) -> pd.DataFrame:
    """Train ``fusion`` in place on correspondence; the history per epoch (epoch 0: before training).

    ``n_steps`` None: ``epochs`` passes over the training pairs; else that many
    optimiser steps (the last epoch cut short where they end). ``p``: from :func:`_check_training`.
    """
    from tqdm.auto import tqdm

    window, min_gap, batch_size, seed = p["window"], p["min_gap"], p["batch_size"], p["seed"]

    clip, win = _window_index(clips, train)
    per_epoch = -(-2 * len(clip) // batch_size)
    total = per_epoch * epochs if n_steps is None else int(n_steps)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(config.rng(seed, "av-pretraining", "head").integers(2**31)))
        head = torch.nn.Linear(fusion.width, 1).to(fusion.audio_proj.weight.device, fusion.audio_proj.weight.dtype)
    params = [w for name, w in fusion.named_parameters() if name.split(".")[0] in FUSION_PARTS] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
    held_rows = None
    if heldout:
        held_clip, held_win = _window_index(clips, heldout)
        held_rows = _epoch_pairs(clips, held_clip, held_win, config.rng(seed, "av-pretraining", "heldout-pairs"), min_gap,
                                 shuffle=False)

    def record(epoch: int, losses: list[float]) -> dict:
        row = {"epoch": epoch, "steps": step, "train_loss": float(np.mean(losses)) if losses else np.nan}
        if held_rows is not None:
            row["heldout_loss"], row["heldout_accuracy"] = _evaluate(fusion, head, clips, held_rows, window, batch_size)
        return row

    step, epoch, history = 0, 0, []
    history.append(record(0, []))
    bar = tqdm(total=total, desc="correspondence", unit="step", disable=not progress, leave=False)
    while step < total:
        epoch += 1
        rows, losses = _epoch_pairs(clips, clip, win, config.rng(seed, "av-pretraining", "epoch", epoch), min_gap), []
        for first in range(0, len(rows), batch_size):
            if step == total:
                break
            batch = _batch(clips, rows[first : first + batch_size], window, fusion.audio_proj.weight)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(_logits(fusion, head, batch), batch[-1])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            bar.update(1)
        history.append(record(epoch, losses))
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}")
    bar.close()
    return pd.DataFrame(history)


# -- the two entry points -------------------------------------------------------------------------


def pretrain_fusion(
    lm: LoadedModel,
    n_clips: int = 40,
    lines_per_clip: int = 6,
    face_p: tuple[float, float] = PRETRAINING_FACE_P,
    heldout: float = 0.2,
    window: float = 3.0,
    stride: float = 0.5,
    min_gap: float = 6.0,
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 3e-4,
    weight_decay: float = 0.01,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Pretrain the fusion layers of ``lm`` on audio-visual correspondence over generated clips (see the module).

    ``lm`` is left as it is: a copy of its fusion layers is trained. The
    result is cached (see the module); deterministic on the CPU given the
    seed (and the machine's torch build and thread count).

    Parameters
    ----------
    lm : LoadedModel
        The starting point: ``models.build_av_fusion(seed, pretrained=False)``
        (its fusion layers' initialisation; its encoders make the tokens).
    n_clips : int
        Clips to make (:func:`pretraining_clips`), held-out ones included (>= 2).
    lines_per_clip : int
        Lines of dialogue per clip (>= 1).
    face_p : (float, float)
        Probabilities that a clip's shot shows the talking speaker's face, and
        the other speaker's (:func:`pretraining_clips`).
    heldout : float
        Share of the clips held out, in (0, 1); at least one clip each side.
    window : float
        Window length (s), in (0, 30]; the default is :func:`models.av_hidden_states`'.
    stride : float
        Seconds of clip per window (> 0): a clip of ``d`` s gets
        ``max(1, round((d - window) / stride))`` windows ending at random times
        in ``[window, d]`` (the tokens of every window are computed once).
    min_gap : float
        A negative pair's video window of the same clip ends at least this many
        seconds from the audio window's end (>= window: the windows do not overlap).
    epochs : int
        Passes over the training windows (>= 1); each is one positive and one negative pair per window.
    batch_size : int
        Pairs per optimiser step (>= 2).
    lr : float
        AdamW learning rate (> 0).
    weight_decay : float
        AdamW weight decay (>= 0).
    seed : int
        Seed of the clips, the windows, the held-out split, the pairs and the head (>= 0).
    cache : bool
        Read the result from the cache (or, for the default recipe, from the
        entry shipped with the package), or train and store it there. False:
        train, whatever is stored.
    progress : bool
        Progress bars.

    Returns
    -------
    state : dict of str to tensor
        The trained fusion weights (:meth:`models.AudioVideoFusion.fusion_state`;
        load them with ``load_fusion_state``).
    history : DataFrame
        One row per epoch, epoch 0 before training: ``epoch``, ``steps``
        (optimiser steps so far), ``train_loss`` (mean over the epoch's
        steps; NaN at epoch 0), ``heldout_loss`` and ``heldout_accuracy``
        (over fixed pairs of the held-out clips: one positive and one
        negative per window; chance 0.5). ``history.attrs`` holds ``n_train_clips``,
        ``n_heldout_clips``, ``n_train_windows``, ``n_heldout_windows``,
        ``audio_seconds`` (of all clips) and ``train_seconds`` (of the run
        that trained, clips and tokens included).

    Raises
    ------
    ValueError
        When ``lm`` is not the fusion model, or a parameter is out of range
        (the message names the value and the valid range).
    """
    fusion = _check_fusion(lm)
    _check_int("n_clips", n_clips, 2)
    _check_int("lines_per_clip", lines_per_clip, 1)
    _check_int("epochs", epochs, 1)
    face_p = _check_face_p(face_p)
    if not (isinstance(heldout, (int, float)) and 0 < heldout < 1):
        raise ValueError(f"heldout={heldout!r} must be a share of the clips in (0, 1)")
    p = _check_training(window, stride, min_gap, batch_size, lr, weight_decay, seed)
    params = {"n_clips": int(n_clips), "lines_per_clip": int(lines_per_clip), "face_p": face_p, "heldout": float(heldout),
              "epochs": int(epochs), **p}

    def compute() -> dict[str, np.ndarray]:
        log.info("pretraining the fusion layers of %r on audio-visual correspondence (%d clips, %d epochs): the default "
                 "takes about %d minutes on 2 CPU cores, once; the weights are then cached", lm.spec.name, n_clips, epochs,
                 _DEFAULT_MINUTES)
        start = time.perf_counter()
        model = fusion.fusion_copy()
        n_held = min(max(1, int(round(heldout * n_clips))), n_clips - 1)
        held = np.sort(config.rng(seed, "av-pretraining", "heldout").permutation(int(n_clips))[:n_held])
        movies = pretraining_clips(n_clips, lines_per_clip, seed, face_p)
        clips = _tokens(lm, ((m.audio, m.sr, m.frames, m.frame_times) for m in movies), p, "ends")
        train = sorted(set(range(n_clips)) - set(held.tolist()))
        history = _train(model, clips, train, list(held), None, int(epochs), p, progress)
        meta = {"n_train_clips": len(train), "n_heldout_clips": len(held),
                "n_train_windows": sum(len(clips[k].ends) for k in train),
                "n_heldout_windows": sum(len(clips[k].ends) for k in held),
                "audio_seconds": sum(c.duration for c in clips), "train_seconds": time.perf_counter() - start}
        log.info("pretrained the fusion layers in %.0f s; held-out correspondence accuracy %.3f (chance 0.5)",
                 meta["train_seconds"], history["heldout_accuracy"].iloc[-1])
        return _pack(model.fusion_state(), history, meta)

    if not cache:
        return _unpack(compute(), fusion)
    parts = {"model": lm.revision, "params": params, "lines": digest(pretraining_lines().to_numpy(dtype=str)),
             "espeak": package_version("espeakng-loader")}
    return _unpack(Cache().memoize(PRETRAINING_STEP, SELFSUP_VERSION, parts, compute, shipped=_SHIPPED), fusion)


def continue_selfsup(
    lm: LoadedModel,
    audio: np.ndarray | Sequence[np.ndarray],
    sr: int,
    frames: np.ndarray | Sequence[np.ndarray],
    frame_times: np.ndarray | Sequence[np.ndarray],
    n_steps: int,
    window: float = 3.0,
    stride: float = 0.5,
    min_gap: float = 6.0,
    batch_size: int = 64,
    lr: float = 3e-4,
    weight_decay: float = 0.01,
    seed: int = 0,
    cache: bool = True,
    progress: bool = True,
) -> LoadedModel:
    """The domain-adaptation control: the self-supervised objective continued on given episodes, without brain data.

    The fusion layers of a copy of ``lm`` go on training on audio-visual
    correspondence (see the module) over windows of the given episodes, for
    ``n_steps`` optimiser steps, from ``lm``'s fusion weights with a new head;
    the encoders stay frozen (and are shared with ``lm``). ``lm`` is left as
    it is. Cached like :func:`pretrain_fusion`, keyed by the episodes too;
    with ``cache``, the episodes' frame states go through the cache that the
    movie features share (:func:`brainalign.models.frame_states`).

    Parameters
    ----------
    lm : LoadedModel
        The fusion model to start from (e.g. ``load_model("whisper-efficientnet-fusion")``).
    audio : array of shape (n_samples,), or a list of them
        Each episode's mono waveform.
    sr : int
        Their sample rate (Hz).
    frames : uint8 array of shape (n_frames, height, width, 3), or a list of them
        Each episode's frames.
    frame_times : array of shape (n_frames,), or a list of them
        When each frame is shown (s), increasing.
    n_steps : int
        Optimiser steps (>= 1).
    window, stride, min_gap, batch_size, lr, weight_decay, seed, cache, progress
        As in :func:`pretrain_fusion`.

    Returns
    -------
    LoadedModel
        A new model with the adapted fusion layers; its revision is ``lm``'s
        followed by ``+selfsup-continued-`` and a digest of the episodes and
        the parameters.

    Raises
    ------
    ValueError
        When ``lm`` is not the fusion model, no episode is given, the episodes'
        lists differ in length, or a parameter is out of range.
    """
    fusion = _check_fusion(lm)
    episodes = [audio] if isinstance(audio, np.ndarray) else list(audio)
    frame_list = [frames] if isinstance(frames, np.ndarray) else list(frames)
    times_list = [frame_times] if isinstance(frame_times, np.ndarray) and np.ndim(frame_times) == 1 else list(frame_times)
    if not episodes:
        raise ValueError("no episodes: give at least one (audio, frames, frame_times)")
    if not len(episodes) == len(frame_list) == len(times_list):
        raise ValueError(f"audio, frames and frame_times must list the same episodes, got {len(episodes)}, "
                         f"{len(frame_list)} and {len(times_list)}")
    _check_int("n_steps", n_steps, 1)
    p = _check_training(window, stride, min_gap, batch_size, lr, weight_decay, seed)
    episodes = [check_audio(a, sr) for a in episodes]
    checked = [_check_frames(f, t) for f, t in zip(frame_list, times_list)]
    data = digest([[a, f, t] for a, (f, t) in zip(episodes, checked)])
    key = Cache.key(_CONTINUED_STEP, SELFSUP_VERSION, {"model": lm.revision, "params": {"n_steps": int(n_steps), **p},
                                                       "data": data})

    def compute() -> dict[str, np.ndarray]:
        start = time.perf_counter()
        model = fusion.fusion_copy()
        # a notebook's features of the same episodes read their frame states back (EfficientNet over every frame took
        # most of the control's time)
        clips = _tokens(lm, ((a, SPEECH_SR, f, t) for a, (f, t) in zip(episodes, checked)), p, "continued", cache)
        history = _train(model, clips, list(range(len(clips))), [], int(n_steps), 1, p, progress)
        meta = {"n_train_clips": len(clips), "n_train_windows": sum(len(c.ends) for c in clips),
                "audio_seconds": sum(c.duration for c in clips), "train_seconds": time.perf_counter() - start}
        return _pack(model.fusion_state(), history, meta)

    arrays = Cache().memoize(_CONTINUED_STEP, SELFSUP_VERSION, {"key": key}, compute) if cache else compute()
    state, _ = _unpack(arrays, fusion)
    model = fusion.fusion_copy()
    model.load_fusion_state(state)
    return LoadedModel(spec=lm.spec, tokenizer=lm.tokenizer, model=model, source=lm.source,
                       revision=f"{lm.revision}+selfsup-continued-{key[:12]}")


# -- helpers --------------------------------------------------------------------------------------


def _tokens(lm: LoadedModel, episodes: Iterable[tuple[np.ndarray, int, np.ndarray, np.ndarray]], p: dict,
            what: str, cache_frames: bool = False) -> list[ClipTokens]:
    """The tokens of each (audio, sr, frames, frame_times), for windows ending at random times (seeded by ``what``, k)."""
    out = []
    for k, (audio, sr, frames, frame_times) in enumerate(episodes):
        rng = config.rng(p["seed"], "av-pretraining", what, k)
        ends = _window_ends(len(audio) / sr, p["window"], p["stride"], rng)
        out.append(clip_tokens(lm, audio, sr, frames, frame_times, ends, p["window"], cache=cache_frames))
        release_memory()  # the encoders' freed activations, else the process grows by about 40 MB a clip
    return out


def _window_ends(duration: float, window: float, stride: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted random window ends in ``[window, duration]`` (s), one per ``stride`` s; one at the end of a short clip."""
    if duration <= window:
        return np.array([duration])
    n = max(1, int(round((duration - window) / stride)))
    return np.sort(rng.uniform(window, duration, n))


def _pack(state: dict[str, torch.Tensor], history: pd.DataFrame, meta: dict) -> dict[str, np.ndarray]:
    arrays = {f"state/{k}": v.detach().cpu().float().numpy() for k, v in state.items()}
    arrays.update({f"history/{c}": history[c].to_numpy(dtype=float) for c in history.columns})
    arrays.update({f"meta/{k}": np.asarray(v, dtype=float) for k, v in meta.items()})
    return arrays


def _unpack(arrays: dict[str, np.ndarray], fusion: AudioVideoFusion) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """The state (on ``fusion``'s device, in its dtype) and the history from the arrays of :func:`_pack`."""
    param = fusion.audio_proj.weight
    state = {k[len("state/"):]: torch.from_numpy(np.array(v)).to(param.device, param.dtype)
             for k, v in arrays.items() if k.startswith("state/")}
    history = pd.DataFrame({k[len("history/"):]: v for k, v in arrays.items() if k.startswith("history/")})
    for column in ("epoch", "steps"):
        history[column] = history[column].astype(int)
    history.attrs = {k[len("meta/"):]: float(v) for k, v in arrays.items() if k.startswith("meta/")}
    return state, history


def _check_fusion(lm: LoadedModel) -> AudioVideoFusion:
    check_kind(lm, "audio-video")
    if not isinstance(lm.model, AudioVideoFusion):
        raise ValueError(f"self-supervised training reads the offline fusion model ('whisper-efficientnet-fusion'), "
                         f"not {lm.spec.name!r}")
    return lm.model


def _check_frames(frames: np.ndarray, frame_times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = check_images(frames)
    frame_times = np.asarray(frame_times, dtype=float)
    if not len(frames):
        raise ValueError("frames is empty: an episode needs at least one frame")
    if frame_times.shape != (len(frames),) or np.any(np.diff(frame_times) <= 0):
        raise ValueError(f"frame_times must be increasing with shape ({len(frames)},), got shape {frame_times.shape}")
    return frames, frame_times


def _check_face_p(face_p: object) -> tuple[float, float]:
    try:
        p = tuple(float(x) for x in face_p)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        p = ()
    if len(p) != 2 or not all(np.isfinite(p)) or min(p) < 0 or sum(p) > 1:
        raise ValueError(f"face_p={face_p!r} must be two probabilities in [0, 1] summing to at most 1")
    return p  # type: ignore[return-value]


def _check_training(window: object, stride: object, min_gap: object, batch_size: object, lr: object,
                    weight_decay: object, seed: object) -> dict:
    """The parameters both entry points share, checked (a ValueError naming the value and the valid range)."""
    _check_int("batch_size", batch_size, 2)
    _check_int("seed", seed, 0)
    window = _check_number("window", window, 0.0, 30.0)
    return {"window": window, "stride": _check_number("stride", stride, 0.0, np.inf),
            "min_gap": _check_number("min_gap", min_gap, window, np.inf, closed=True), "batch_size": int(batch_size),
            "lr": _check_number("lr", lr, 0.0, np.inf),
            "weight_decay": _check_number("weight_decay", weight_decay, 0.0, np.inf, closed=True), "seed": int(seed)}


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r} must be an integer >= {low}")


def _check_number(name: str, value: object, low: float, high: float, closed: bool = False) -> float:
    """``value`` as a float in ``(low, high]`` (``[low, high]`` when ``closed``), else a ValueError naming the range."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or not (low <= value if closed else low < value) or value > high:
        bounds = f"{'[' if closed else '('}{low:g}, {high:g}{')' if np.isinf(high) else ']'}"
        raise ValueError(f"{name}={value!r} must be a number in {bounds}")
    return float(value)
