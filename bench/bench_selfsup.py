"""Benchmark: the budget of the fusion layers' default self-supervised pretraining, and what its clips let it learn.

    python bench/bench_selfsup.py [--threads 2] [--face-p 0.9 0.05] [--skip-ceiling] [--out bench/results/selfsup.json]

1. ``tuning.pretrain_fusion`` with the default recipe, from the random initialisation and with the cache
   off: what ``load_model("whisper-efficientnet-fusion")`` runs on first use. Wall time (making the clips,
   the frozen encoders' tokens, training), the process's peak resident memory (``ru_maxrss``, the loaded
   models included), held-out correspondence accuracy per epoch (epoch 0: the random initialisation),
   clips and windows. A budget check (15 minutes, 2 GB on the project machine), not a speed claim.
   ``--face-p 0.5 0.2`` runs the same recipe on clips with the movie cohort's shot statistics instead.
   With the default shots, the weights and history are compared with those the package ships (what
   ``pretrain_fusion`` serves from its cache): the largest weight difference, and whether the held-out
   accuracies agree.
2. The ceiling the clips allow: a logistic regression on the generator's ground truth (in each window,
   the share of time someone speaks, the on-screen face is the speaker's, or the other speaker's), fitted
   on pairs of the training clips and scored on pairs of held-out clips, with the clips of the movie
   cohort's shot statistics (``face_p`` 0.5, 0.2) and of the pretraining's (``tuning.selfsup.PRETRAINING_FACE_P``).
   The pairs follow the recipe (random window ends, negatives from another clip or ``min_gap`` s away)
   but are drawn here, apart from the library's.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from brainalign import models, stimuli, tuning
from brainalign.tuning import selfsup

WINDOW, STRIDE, MIN_GAP, N_CLIPS, HELDOUT = 3.0, 0.5, 6.0, 40, 0.2


def _ground_truth(movie: stimuli.Movie, end: float, other: stimuli.Movie, other_end: float) -> list[float]:
    """Share of the window's time with speech; with the speaker's face on screen; with the other speaker's."""
    t = np.arange(-WINDOW, 0.0, 0.05)
    speaking = stimuli.speaking_at(movie.words, end + t)
    face = stimuli.on_screen_at(other.shots, other_end + t)
    speech = speaking != ""
    return [speech.mean(), ((face == speaking) & speech).mean(), ((face != speaking) & speech & (face != "")).mean()]


def ceiling(face_p: tuple[float, float], seed: int = 0) -> float:
    """Held-out accuracy of a logistic regression on the ground truth of correspondence pairs (chance 0.5)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    clips = list(selfsup.pretraining_clips(N_CLIPS, 6, seed, face_p))
    ends = [np.sort(rng.uniform(WINDOW, c.duration, max(1, round((c.duration - WINDOW) / STRIDE)))) for c in clips]
    held = set(rng.permutation(len(clips))[: round(HELDOUT * len(clips))].tolist())
    x, y, is_held = [], [], []
    for k, clip in enumerate(clips):
        pool = [j for j in range(len(clips)) if (j in held) == (k in held)]
        for end in ends[k]:
            while True:
                j = int(rng.choice(pool))
                other_end = float(rng.choice(ends[j]))
                if j != k or abs(other_end - end) >= MIN_GAP:
                    break
            x += [_ground_truth(clip, end, clip, end), _ground_truth(clip, end, clips[j], other_end)]
            y += [1, 0]
            is_held += [k in held] * 2
    x, y, is_held = np.array(x), np.array(y), np.array(is_held)
    fit = LogisticRegression().fit(x[~is_held], y[~is_held])
    return float(fit.score(x[is_held], y[is_held]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--face-p", type=float, nargs=2, default=list(selfsup.PRETRAINING_FACE_P),
                    help="shot statistics of the clips: the talking speaker's face, the other's")
    ap.add_argument("--skip-ceiling", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "selfsup.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    t = time.perf_counter()
    lm = models.build_av_fusion(pretrained=False)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    face_p = (args.face_p[0], args.face_p[1])
    state, history = tuning.pretrain_fusion(lm, face_p=face_p, cache=False, progress=False)
    pretrain_s = time.perf_counter() - t
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    shipped = {}
    if face_p == selfsup.PRETRAINING_FACE_P:
        served, served_history = tuning.pretrain_fusion(lm, progress=False)
        shipped = {"shipped_max_abs_weight_diff": max(float((state[k] - served[k]).abs().max()) for k in state),
                   "shipped_heldout_accuracy": [round(a, 4) for a in served_history["heldout_accuracy"]]}
    print(history.round(4).to_string(index=False))
    result = {
        "recipe": "tuning.pretrain_fusion defaults" + ("" if face_p == selfsup.PRETRAINING_FACE_P else f", face_p={face_p}"),
        "threads": args.threads, "load_models_s": round(load_s, 1),
        "pretrain_s": round(pretrain_s, 1), "pretrain_min": round(pretrain_s / 60, 2), "budget_min": 15,
        "peak_rss_mb": round(peak_mb), "budget_mb": 2048, **{k: round(v, 1) for k, v in history.attrs.items()},
        "heldout_accuracy": [round(a, 4) for a in history["heldout_accuracy"]],
        "train_loss": [None if np.isnan(v) else round(v, 4) for v in history["train_loss"]],
        "final_heldout_accuracy": round(float(history["heldout_accuracy"].iloc[-1]), 4),
        "face_p": list(face_p), **shipped,
        "cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "python": sys.version.split()[0],
    }
    if not args.skip_ceiling:
        result["ground_truth_ceiling"] = {f"face_p={p[0]},{p[1]}": round(ceiling(p), 4) for p in [(0.5, 0.2), selfsup.PRETRAINING_FACE_P]}
    print(json.dumps({k: v for k, v in result.items() if k not in ("heldout_accuracy", "train_loss", "shipped_heldout_accuracy")},
                     indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
