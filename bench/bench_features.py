"""Benchmark: batched word features vs one window at a time, against the machine's matmul peak.

    python bench/bench_features.py [--model minilm-l6] [--words 700] [--device cpu|cuda]
                                   [--dtype float32|bfloat16] [--out bench/results/features.json]

Measures
  1. matmul throughput (float32 unless --dtype; n x n matrices, best of several
     before and after the runs), GFLOP/s;
  2. ``word_features`` (batched, cache off) and ``word_features_loop`` on the same
     story, and the largest difference between their outputs;
  3. the batched path's achieved GFLOP/s and its fraction of the matmul peak.

FLOPs counted (useful work only; padding and masked-out attention entries are
not counted, so they show up as lost throughput)::

    FLOPs = sum over windows w of [ 2 * P * n_w  +  4 * L * n_w**2 * d_attn ]

P: weights of the linear layers in the transformer blocks (no embeddings, no
LM head, which is not run); n_w: tokens of window w; L: layers; d_attn: heads
x head dim. The attention term counts QK^T and AV (n_w**2 * d_attn
multiply-adds each, per layer) for all query/key pairs, i.e. what an encoder
computes; a causal model needs only about half of it.
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

from brainalign import features, models

SENTENCES = [
    "The old lighthouse keeper climbed the stairs every evening, counting each step aloud.",
    "Nobody in the village remembered when he had first arrived, or why he had stayed so long.",
    "One stormy night in late October, a small wooden boat appeared between the rocks and the waves.",
    "He lit the lamp, wiped the salt from the glass, and watched the beam sweep across the black water.",
    "By morning the sea was calm again, and a stranger was sitting quietly at his kitchen table.",
    "She said that she had been looking for him for years, and that his brother was still alive.",
    "The keeper poured two cups of tea and listened without a word until the fire burned low.",
]


def story(n_words: int) -> list[str]:
    """A deterministic English story of ``n_words`` words (punctuation kept on the words)."""
    words = " ".join(SENTENCES).split()
    return (words * (n_words // len(words) + 1))[:n_words]


def _cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: str, n: int, dtype: torch.dtype = torch.float32, repeats: int = 7) -> float:
    """Best n x n matmul throughput in ``dtype``, GFLOP/s."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    c = a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        c = a @ b
        sync(device)
        best = min(best, time.perf_counter() - start)
    del c
    return 2 * n**3 / best / 1e9


def linear_params(lm: models.LoadedModel) -> int:
    """Weights of the linear layers of the transformer blocks (P in the formula)."""
    total = 0
    for name, module in lm.model.base_model.named_modules():
        if "pooler" in name:
            continue
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            total += module.weight.numel()
    return total


def count_flops(lm: models.LoadedModel, words: list[str], context: int, batch_size: int) -> dict:
    texts, _ = features.windows(words, context)
    lengths = np.array([len(ids) for ids in lm.tokenizer(texts)["input_ids"]])
    cfg = lm.model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    d_attn = cfg.num_attention_heads * head_dim
    p = linear_params(lm)
    flops = float(np.sum(2.0 * p * lengths + 4.0 * cfg.num_hidden_layers * lengths**2 * d_attn))
    ordered = np.sort(lengths)
    padded = sum(int(ordered[i : i + batch_size].max()) * len(ordered[i : i + batch_size])
                 for i in range(0, len(ordered), batch_size))
    return {"params_linear": p, "d_attn": d_attn, "tokens": int(lengths.sum()), "tokens_padded": padded,
            "flops": flops}


def best_time(fn, repeats: int, device: str) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--words", type=int, default=700)
    parser.add_argument("--context", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None, help="windows per pass (default 64; 256 on cuda)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="model weights' dtype (the matmul peak is measured in the same dtype)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="timings of the batched path (best is kept)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON file (default bench/results/features.json; features-cuda.json on cuda)")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    if args.threads:
        torch.set_num_threads(args.threads)
    batch_size = args.batch_size or (256 if args.device == "cuda" else 64)
    out_path = args.out or Path(__file__).parent / "results" / (
        "features.json" if args.device == "cpu" else "features-cuda.json")

    dtype = getattr(torch, args.dtype)
    peak = matmul_gflops(args.device, 2048 if args.device == "cpu" else 8192, dtype)
    words = story(args.words)
    start = time.perf_counter()
    lm = models.load_model(args.model, dtype=dtype, device=args.device)
    load_s = time.perf_counter() - start
    features.word_features(lm, words[:64], context=args.context, batch_size=batch_size, cache=False)  # warm-up

    batched_s, batched = best_time(
        lambda: features.word_features(lm, words, context=args.context, batch_size=batch_size, cache=False),
        args.repeats, args.device)
    loop_s, loop = best_time(lambda: features.word_features_loop(lm, words, context=args.context), 1, args.device)
    diff = np.abs(batched - loop)
    scale = np.maximum(1.0, np.abs(loop).max(axis=(1, 2)))
    work = count_flops(lm, words, args.context, batch_size)
    # the peak again after the runs (a shared machine's speed drifts): keep the better one
    peak = max(peak, matmul_gflops(args.device, 2048 if args.device == "cpu" else 8192, dtype))
    achieved = work["flops"] / batched_s / 1e9

    if args.device == "cuda":
        device_name = torch.cuda.get_device_name()
    else:
        cpu = _cpu_name()
        device_name = f"{cpu}, {torch.get_num_threads()} threads"
    result = {
        "model": args.model, "dtype": args.dtype, "device": args.device, "device_name": device_name, "torch": torch.__version__,
        "words": len(words), "context": args.context, "batch_size": batch_size, "load_s": load_s,
        "matmul_gflops": peak, "batched_s": batched_s, "loop_s": loop_s, "speedup": loop_s / batched_s,
        "max_abs_diff": float(diff.max()), "max_rel_diff": float((diff.max(axis=(1, 2)) / scale).max()),
        **work, "padding_overhead": work["tokens_padded"] / work["tokens"] - 1,
        "achieved_gflops": achieved, "fraction_of_matmul": achieved / peak,
        "words_per_s": len(words) / batched_s,
    }
    rows = [
        ("model / dtype / device", f"{args.model} / {args.dtype} / {device_name}"),
        (f"matmul {args.dtype} peak", f"{peak:.0f} GFLOP/s"),
        ("windows (words x context)", (f"{len(words)} x {args.context}, {work['tokens']} tokens "
                                       f"(+{100 * result['padding_overhead']:.1f}% padding)")),
        ("batched word_features", f"{batched_s:.2f} s ({result['words_per_s']:.0f} words/s)"),
        ("word_features_loop", f"{loop_s:.2f} s"),
        ("speed-up", f"{result['speedup']:.1f}x"),
        ("max abs diff (rel. to layer max)", f"{result['max_abs_diff']:.2e} ({result['max_rel_diff']:.1e})"),
        ("FLOPs counted", f"{work['flops'] / 1e9:.0f} GFLOP (P = {work['params_linear'] / 1e6:.1f} M)"),
        ("achieved (batched)", f"{achieved:.0f} GFLOP/s = {100 * result['fraction_of_matmul']:.0f}% of matmul peak"),
    ]
    print("| quantity | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwritten to {out_path}", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
