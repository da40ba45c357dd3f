"""Benchmark: Study 6's instruction-conditioned features, shared transcript against one call per instruction and per volume.

Usage::

    python bench/bench_instruct.py [--runs 2] [--threads 2] [--device cpu] [--out bench/results/instruct.json]

Three ways to compute SmolLM2-135M-Instruct's features of every volume of ``--runs`` episodes
of the simulated movie cohort for all 18 instructions of Study 6, on the same machine in the same
run (nothing cached):

1. ``instruct.instruct_tr_features_shared``: the transcript (the prompt's prefix) read once per
   episode for all instructions, then each instruction's final segment for up to 16 volumes per
   pass, against the prefix's key/value cache (what the notebook does);
2. ``instruct.instruct_tr_features``, one call per instruction: the prefix read once per
   instruction;
3. the per-volume loop (the baseline): every volume's prompt, for every instruction, read alone
   from its first token (on the first ``--loop-tasks`` instructions, the rate extrapolated).

Clips per second count (volume, instruction) pairs; tokens per second count the tokens of the
prompts as read alone (what each path computes states for). The paths give the same features
(largest absolute difference reported).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from brainalign import datasets, instruct, models
from brainalign.features import check_times


def loop_features(lm, ds, run: str, instruction: str, layer: int) -> tuple[np.ndarray, int]:
    """Each volume's prompt read alone: the per-clip baseline. Returns the features and the tokens read."""
    words = ds.words(run).sort_values("onset", kind="stable").reset_index(drop=True)
    pieces, times = instruct.transcript_pieces(words, ds.shots(run))
    prefix, cuts, suffix = instruct.instruct_prompts(lm, instruction, pieces, times, check_times(ds.sample_times(run)))
    out, tokens = [], 0
    with torch.inference_mode():
        for cut in cuts:
            ids = torch.tensor([prefix[:cut] + suffix], device=lm.device)
            hidden = lm.model.base_model(input_ids=ids, output_hidden_states=True).hidden_states[layer]
            out.append(hidden[0, -len(suffix):].float().mean(0).cpu().numpy())
            tokens += ids.shape[1]
    return np.stack(out), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="episodes of the movie cohort")
    parser.add_argument("--loop-tasks", type=int, default=3, help="instructions the per-volume loop is timed on")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "instruct.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = datasets.load_dataset("simulated-movie", seed=0)
    lm = models.load_model("smollm2-135m-instruct", device=args.device)
    tasks = list(instruct.instructions("video").values()) + list(instruct.instructions("audio").values())
    runs, layer = ds.runs[: args.runs], 15
    clips = sum(len(ds.sample_times(r)) for r in runs) * len(tasks)

    t0 = time.perf_counter()
    shared = {r: instruct.instruct_tr_features_shared(lm, ds, r, tasks, layers=[layer], cache=False) for r in runs}
    t_shared = time.perf_counter() - t0
    t0 = time.perf_counter()
    alone = {r: [instruct.instruct_tr_features(lm, ds, r, x, layers=[layer], cache=False) for x in tasks] for r in runs}
    t_alone = time.perf_counter() - t0
    t0, tokens, diff = time.perf_counter(), 0, 0.0
    for r in runs:
        for i, x in enumerate(tasks[: args.loop_tasks]):
            f, n = loop_features(lm, ds, r, x, layer)
            tokens += n
            diff = max(diff, float(np.abs(f - shared[r][i][0]).max()))
    t_loop = (time.perf_counter() - t0) * len(tasks) / args.loop_tasks
    tokens = tokens * len(tasks) / args.loop_tasks
    diff_alone = max(float(np.abs(a[0] - s[0]).max()) for r in runs for a, s in zip(alone[r], shared[r]))
    rows = {name: {"seconds": round(t, 1), "clips_per_s": round(clips / t, 1), "tokens_per_s": round(tokens / t)}
            for name, t in [("shared transcript", t_shared), ("one call per instruction", t_alone),
                            ("per-volume loop (extrapolated)", t_loop)]}
    result = {"runs": runs, "instructions": len(tasks), "clips": clips, "prompt_tokens": int(tokens), "paths": rows,
              "speed_up_vs_loop": round(t_loop / t_shared, 1), "speed_up_vs_per_instruction": round(t_alone / t_shared, 2),
              "max_abs_diff_loop": diff, "max_abs_diff_per_instruction": diff_alone,
              "device": args.device, "threads": args.threads, "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__}
    print(json.dumps(result, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
