"""Benchmark: Study 3's brain-tuning step part by part, and one paper-sized epoch extrapolated, on CPU or GPU.

    python bench/bench_av_tuning.py [--device cpu|cuda] [--threads 2] [--repeats 3] [--out bench/results/av_tuning.json]

Inputs are random numbers of the right shapes (the cost does not depend on them).

1. **One optimiser step of the default set** (one participant's turn on a stimulus batch of 16
   windows of 10 s), forward and backward, part by part:

   - the fusion layers, LoRA on their attention (``tuning.av_lora_config``), reading a window's
     Whisper tokens (10 per second) and the tokens of the frames shown (5 per second in the movie
     cohort), a linear head on the mean state: what the default set tunes;
   - Whisper's last block, LoRA on its attention (``tuning.lora_config``, Study 4's adapters), and
     the final layer norm, over each window's 50 frames per second;
   - EfficientNet's last block (an MBConv block: no attention for the recipe's attention-only
     adapters), every weight trainable, over each frame of each window (its 7 x 7 map).

   The default set adapts the fusion layers only: the encoders' output of each window is computed
   once and kept. An adapted encoder block would run forward and backward at every step. The
   extra time of one step times ``--steps`` (the default set's 1225 optimiser steps: 7 epochs x 35
   stimulus batches x 5 participants, from its results json) is what adapting the encoders' last
   blocks would add to the default set (its validation passes, forward only, left out).

2. **One paper-sized epoch** of the paper set (CNeuroMod *Friends*, seasons 1-5 less the validation
   half-episode, 4 participants in turn, batches of 128 windows of 10 s, frames at 4 per second,
   the fusion layers adapted), extrapolated from measured units: Whisper over one window
   (inference, 16 windows a pass), EfficientNet over one frame (inference, 8 frames a pass), and one
   optimiser step of the fusion layers on 128 windows. ``--volumes`` is an assumption, not a count:
   241 half-episodes of about 11.5 minutes (460 volumes at TR 1.49 s). At that size the encoders'
   output of every window (about 12 GB in float16) is more than ``BrainTuner``'s default
   ``keep_prefix_gb`` (4), so every epoch computes it again; with ``keep_prefix_gb=16`` only the first
   epoch does.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from brainalign import models, tuning

AUDIO_RATE, WHISPER_RATE, COHORT_FPS, FRIENDS_FPS, TR = 10.0, 50.0, 5.0, 4.0, 1.49
#: assumed volumes of the paper set's tuning runs: 241 half-episodes of about 460 volumes (not counted)
PAPER_VOLUMES = 241 * 460


def _time(step, repeats: int, device: str) -> float:
    """Median wall time of ``step()`` over ``repeats`` calls, after one warm-up call."""
    step()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    from peft import get_peft_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--window", type=float, default=10.0, help="seconds per window (both sets')")
    ap.add_argument("--steps", type=int, default=1225, help="optimiser steps of the default set's tuning")
    ap.add_argument("--volumes", type=int, default=PAPER_VOLUMES, help="volumes of the paper set's tuning runs (assumed)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/av_tuning.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = args.device
    n_audio, n_frames = round(args.window * AUDIO_RATE), round(args.window * WHISPER_RATE)

    lm = models.build_av_fusion(pretrained=False, device=dev)  # the default model's architecture; weights do not matter here
    fusion = lm.model
    for p in fusion.parameters():
        p.requires_grad_(False)
    whisper, effnet = fusion.speech_lm.model, fusion.vision_lm.model
    d_audio, d_video = fusion.speech_lm.spec.dim, fusion.vision_lm.spec.dim

    get_peft_model(fusion, tuning.av_lora_config())  # the fusion layers' adapters, as the default set tunes them
    head = torch.nn.Linear(fusion.width, 500).to(dev)

    def fusion_step(batch: int, fps: float):
        n_video = round(args.window * fps)
        audio, video = torch.randn(batch, n_audio, d_audio, device=dev), torch.randn(batch, n_video, d_video, device=dev)
        audio_t = -torch.rand(batch, n_audio, device=dev) * args.window
        video_t = -torch.rand(batch, n_video, device=dev) * args.window
        return lambda: head(fusion.fuse(audio, audio_t, video, video_t)[-1].mean(1)).square().mean().backward()

    # -- 2. a paper-sized epoch's units, measured first: before an encoder block gets adapters ----
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(int(16 * args.window * models.SPEECH_SR))).astype(np.float32)
    ends = args.window * (1 + np.arange(16))
    per_window = _time(lambda: models.audio_window_tokens(fusion, audio, ends, args.window), args.repeats, dev) / 16
    frames = rng.integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    per_frame = _time(lambda: models.vision_hidden_states(fusion.vision_lm, frames), args.repeats, dev) / len(frames)
    step_128 = _time(fusion_step(128, FRIENDS_FPS), args.repeats, dev)
    v = args.volumes
    epoch = {"Whisper over every window": v * per_window,
             "EfficientNet over every frame": v * TR * FRIENDS_FPS * per_frame,
             "fusion layers, 4 participants in turn": -(-v // 128) * 4 * step_128}

    # -- 1. one step of the default set, part by part ---------------------------------------------
    last = len(whisper.layers) - 1
    get_peft_model(whisper, tuning.lora_config(layers=[last]))
    frames_in = torch.randn(16, n_frames, whisper.config.d_model, device=dev)

    def whisper_step() -> None:
        out = whisper.layers[last](frames_in, None)
        out = out[0] if isinstance(out, tuple) else out
        whisper.layer_norm(out).mean(1).square().mean().backward()

    block = effnet._blocks[-1]
    for p in block.parameters():
        p.requires_grad_(True)
    maps = torch.randn(16 * round(args.window * COHORT_FPS), block._block_args.input_filters, 7, 7, device=dev)

    def efficientnet_step() -> None:
        block.train()
        block(maps).mean((2, 3)).square().mean().backward()
        block.eval()

    parts = {"fusion layers (the default)": fusion_step(16, COHORT_FPS), "Whisper's last block": whisper_step,
             "EfficientNet's last block": efficientnet_step}
    step = {name: _time(fn, args.repeats, dev) for name, fn in parts.items()}
    extra = step["Whisper's last block"] + step["EfficientNet's last block"]

    result = {
        "device": torch.cuda.get_device_name() if dev == "cuda" else (platform.processor() or platform.machine()),
        "threads": args.threads, "torch": torch.__version__, "window_s": args.window,
        "default_step_seconds": {k: round(s, 3) for k, s in step.items()},
        "default_step_ratio_with_both_last_blocks": round((step["fusion layers (the default)"] + extra)
                                                          / step["fusion layers (the default)"], 1),
        "default_steps": args.steps, "default_added_minutes": {
            "Whisper's last block": round(step["Whisper's last block"] * args.steps / 60, 1),
            "EfficientNet's last block": round(step["EfficientNet's last block"] * args.steps / 60, 1)},
        "paper_units_seconds": {"Whisper, one window": round(per_window, 4), "EfficientNet, one frame": round(per_frame, 4),
                                "fusion step, 128 windows": round(step_128, 3)},
        "paper_volumes_assumed": v,
        "paper_epoch_hours": {k: round(s / 3600, 2) for k, s in epoch.items()},
        "paper_epoch_hours_total": round(sum(epoch.values()) / 3600, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
