"""Benchmark: feature extraction for the simulated movie cohort (speech, vision, audio-video, instruction).

Usage::

    python bench/bench_media.py [--threads 2] [--out bench/results/media.json]

Two measurements, on the same machine in the same run:

1. Whisper windows: 16 windows of 16 s through the Whisper tiny.en encoder, padded to 30 s
   (what transformers' ``WhisperEncoder.forward`` requires: the baseline) against run on exactly
   their frames (``models.whisper_mel`` + ``models.whisper_encoder_states``, what
   ``features.speech_tr_features`` does).
2. The budget: every feature of all 7 movie episodes with the default settings (speech: 16 s
   windows ending at every TR; vision: EfficientNet-Lite0 on every frame; audio-video: the fusion
   model, which reuses the cached frame states; instruction: SmolLM2 with one instruction), first
   into an empty cache (a notebook's first run; the budget is 300 s on 2 cores), then again from
   the cache. Models are loaded (and converted) before the clock starts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from brainalign import datasets, features, instruct, models
from brainalign import movie_features as movie

MODELS = ("whisper-tiny-en", "efficientnet-lite0", "whisper-efficientnet-fusion", "smollm2-135m-instruct")


def whisper_windows(lm: models.LoadedModel, audio: np.ndarray, n: int = 16, window: float = 16.0) -> dict:
    sr = models.SPEECH_SR
    ends = np.linspace(window, len(audio) / sr, n)
    clips = [audio[int((e - window) * sr): int(e * sr)] for e in ends]
    with torch.inference_mode():
        t0 = time.perf_counter()
        padded = models.speech_forward(lm, clips)
        t_padded = time.perf_counter() - t0
        t0 = time.perf_counter()
        mel, n_frames = models.whisper_mel(lm, clips)
        exact = models.whisper_encoder_states(lm.model, mel, n_frames)
        t_exact = time.perf_counter() - t0
    # the input to the first block is the same; later states differ (they no longer see 14 s of padding)
    first = float((padded[0][:, : exact[0].shape[1]] - exact[0]).abs().max())
    return {"windows": n, "window_s": window, "padded_s": round(t_padded, 2), "exact_s": round(t_exact, 2),
            "speed_up": round(t_padded / t_exact, 2), "max_abs_diff_first_state": first}


def movie_features(ds, loaded: dict) -> dict:
    speech, vision, av, lm = (loaded[m] for m in MODELS)
    times = {"speech": 0.0, "vision": 0.0, "audio-video": 0.0, "instruction": 0.0}
    for run in ds.runs:
        audio, sr = ds.audio(run)
        frames, frame_times = ds.frames(run)
        sampled = ds.sample_times(run)
        steps = [
            ("speech", features.speech_tr_features, (speech, audio, sr, sampled), {"window": 16.0, "stride": ds.tr}),
            ("vision", movie.vision_tr_features, (vision, frames, frame_times, sampled), {}),
            ("audio-video", movie.av_tr_features, (av, audio, sr, frames, frame_times, sampled), {}),
            ("instruction", instruct.instruct_tr_features, (lm, ds, run, "What is happening in this scene?"), {}),
        ]
        for name, function, args, kwargs in steps:
            t0 = time.perf_counter()
            function(*args, **kwargs)
            times[name] += time.perf_counter() - t0
    times = {k: round(v, 1) for k, v in times.items()}
    return {**times, "total": round(sum(times.values()), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "media.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = datasets.load_dataset("simulated-movie")
    audio, _ = ds.audio(ds.train_runs[0])
    result = {"machine": platform.processor() or platform.machine(), "threads": args.threads,
              "whisper_windows": whisper_windows(models.load_model("whisper-tiny-en"), audio),
              "episodes": len(ds.runs), "seconds_of_movie": round(sum(len(ds.audio(r)[0]) / ds.audio(r)[1] for r in ds.runs), 1)}
    loaded = {m: models.load_model(m) for m in MODELS}
    with tempfile.TemporaryDirectory() as home:  # an empty cache: the first run of a notebook
        os.environ["BRAINALIGN_DATA"] = home
        result["cold_cache"] = movie_features(ds, loaded)
        result["warm_cache"] = movie_features(ds, loaded)
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
