"""Benchmark: one brain-tuning step, and the time of one paper-sized epoch, on CPU or GPU.

    python bench/bench_tuning.py [--model whisper-tiny-en] [--device cpu|cuda] [--window 10]
                                 [--batch 8] [--participants 3] [--steps 3] [--threads 2] [--lora-layers 1]
                                 [--out bench/results/tuning.json]

Measures, on random audio (the cost does not depend on the content):
  1. the pretrained model's forward pass over a batch of ``window``-second windows
     (inference, no adapters): the baseline;
  2. one stimulus batch of brain-tuning with LoRA adapters on the attention
     projections and one shared head: a forward and backward pass and an AdamW
     step for each of ``participants`` participants in turn (the study's recipe);
  3. the ratio of (2) to (1), and the time of one epoch of the study's setting:
     the Moth Radio Hour's 81 tuning stories of ~16 h in all at TR 2 s (about
     28,900 TRs), 3 participants, extrapolated from the measured time per window;
  4. the same batch with adapters on the last ``lora-layers`` blocks only, the
     frozen blocks' output of the windows kept from an earlier epoch (the
     scaled-down default of the notebook): its speed-up over (2).

The head predicts 30,172 vertices as in the study (``--voxels``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from brainalign import models, tuning

#: TRs of the study's tuning set: 81 stories, about 16.1 h of the 84 at TR 2 s, minus the validation and test stories
PAPER_TUNING_TRS = int(16.1 * 3600 / 2 * 81 / 84)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="whisper-tiny-en")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    ap.add_argument("--window", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=None, help="windows per batch (default: 8 on CPU, 128 on GPU as in the study)")
    ap.add_argument("--participants", type=int, default=3)
    ap.add_argument("--voxels", type=int, default=30172)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lora-layers", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tuning.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    batch = args.batch or (128 if args.device == "cuda" else 8)
    rng = np.random.default_rng(0)
    clips = [(0.1 * rng.standard_normal(int(args.window * models.SPEECH_SR))).astype(np.float32) for _ in range(batch)]
    targets = torch.randn(batch, args.voxels, device=args.device)

    lm = models.load_model(args.model, device=args.device)
    n_blocks = lm.spec.n_layers

    def timed(fn) -> float:
        fn()  # warm-up
        _sync(args.device)
        t = time.perf_counter()
        for _ in range(args.steps):
            fn()
        _sync(args.device)
        return (time.perf_counter() - t) / args.steps

    with torch.inference_mode():
        forward = timed(lambda: tuning.last_state_from(lm, tuning.hidden_state_at(lm, clips, 0), 0))

    def tuning_batch(first: int, prefix: torch.Tensor | None = None) -> tuple[float, int]:
        lm = models.load_model(args.model, device=args.device)  # a fresh copy for each set of adapters
        torch.manual_seed(0)
        layers = None if first == 0 else range(first, n_blocks)
        net = tuning.TuningNet(lm, args.voxels, tuning.lora_config(layers=layers), first).to(args.device)
        opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-4)
        net.train()

        def step() -> None:
            x = net.prefix(clips) if prefix is None else prefix  # once per stimulus batch, shared by the participants
            for _ in range(args.participants):
                loss = torch.nn.functional.mse_loss(net(x), targets)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        return timed(step), sum(p.numel() for p in net.parameters() if p.requires_grad)

    tune, n_trainable = tuning_batch(0)
    first = n_blocks - int(args.lora_layers)
    kept = tuning.hidden_state_at(lm, clips, first)
    tune_last, _ = tuning_batch(first, kept)
    per_window = tune / batch
    result = {
        "model": args.model, "device": args.device, "threads": args.threads, "window_s": args.window, "batch": batch,
        "participants": args.participants, "voxels": args.voxels,
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None, "cpu": platform.processor() or platform.machine(),
        "forward_batch_s": round(forward, 3), "tuning_batch_s": round(tune, 3), "ratio_tuning_to_forward": round(tune / forward, 2),
        "paper_tuning_trs": PAPER_TUNING_TRS, "paper_epoch_s": round(per_window * PAPER_TUNING_TRS, 1),
        "trainable_parameters": n_trainable, "lora_layers": int(args.lora_layers),
        "tuning_batch_last_blocks_kept_prefix_s": round(tune_last, 3), "speedup_last_blocks": round(tune / tune_last, 2),
        "torch": torch.__version__, "python": sys.version.split()[0],
    }
    print(f"{args.model} on {args.device} ({args.threads} threads), batch {batch} x {args.window:g} s, "
          f"{args.participants} participants in turn:")
    print(f"  forward (pretrained, inference)  {forward:8.3f} s / batch")
    print(f"  brain-tuning step                {tune:8.3f} s / batch  ({tune / forward:.1f}x the forward pass)")
    print(f"  one paper-sized epoch ({PAPER_TUNING_TRS} TRs) {per_window * PAPER_TUNING_TRS / 60:8.1f} min")
    print(f"  adapters on the last {args.lora_layers} of {n_blocks} blocks, frozen part kept: {tune_last:8.3f} s / batch "
          f"({tune / tune_last:.1f}x faster)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
