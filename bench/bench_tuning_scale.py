"""Benchmark: how much of Study 3's tuning target the movie cohort's tuning episodes can teach.

    python bench/bench_tuning_scale.py [--seed 0] [--threads 2] [--out bench/results/tuning_scale.json]

Study 3's notebook brain-tunes the audio-video model on the STS responses of five
participants over nine tuning episodes (about 13 minutes), stopping early on a tenth.
This script measures, on that validation episode and in the notebook's unit (the MSE
of each participant's z-scored STS responses, relative to predicting each voxel's
training mean), three readouts of the tuning target:

1. **the planted truth**: the cohort's own audio-visual speech source through the HRF,
   one regressor fitted by least squares on the tuning episodes: about the most any
   model's features can reach there, since the other planted sources are a minority;
2. **ridge on the pretrained model's states**: the mean over each 10-s window's tokens
   of the fusion input and of each fusion layer (what the tuning head reads, before
   tuning), one head shared by the participants, its penalty the best of a grid *on
   the validation episode itself* (optimistic);
3. **brain-tuning** (``tuning.BrainTuner``, the notebook's parameters) at the
   notebook's learning rate (1e-3), at Study 4's (1e-4), and with the adapters'
   learning rate at 1e-6 (the head alone learns), epoch by epoch: training and
   validation loss. Each run is cached with the notebook's own tuning runs.

About 10 minutes for the windows' features, then a few minutes per tuning run on 2
CPU cores (the first tuning run also computes the windows' frozen encoder tokens).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from brainalign import datasets, models, movie_features, tuning

MODEL = "whisper-efficientnet-fusion"
WINDOW = 10.0
#: the notebook's tuning parameters (its defaults), and the learning rates compared
TUNING = dict(rank=8, alpha=32, dropout=0.1, batch_size=16, max_epochs=30, patience=3)
RATES = {"notebook (1e-3)": dict(lr=1e-3), "Study 4's recipe (1e-4)": dict(lr=1e-4),
         "head alone (adapters 1e-6, head 1e-3)": dict(lr=1e-6, head_lr=1e-3)}
PENALTIES = (1e1, 1e2, 1e3, 1e4, 1e5)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tuning_scale.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    ds = datasets.load_dataset("simulated-movie", seed=args.seed)
    held = list(ds.held_out_subjects)
    subjects = [s for s in ds.subjects if s not in held][:5]  # the notebook's tuning participants
    val_run, tune_runs = ds.train_runs[-1], ds.train_runs[:-1]
    sts = ds.rois()["STS"]

    truth = ds.ground_truth()
    names, dims = [str(n) for n in truth["source_names"]], [int(d) for d in truth["source_dims"]]
    col = int(np.sum(dims[: names.index("av_speech")]))
    av = {r: truth[f"sources/{r}"][:, col : col + 1] for r in ds.train_runs}

    lm = models.load_model(MODEL)
    n_hidden = models.layer_count(MODEL)
    layers = list(range(n_hidden - len(lm.model.layers) - 1, n_hidden))  # the fusion input and each fusion layer
    feats = {}
    for r in ds.train_runs:
        audio, sr = ds.audio(r)
        frames, times = ds.frames(r)
        feats[r] = movie_features.av_tr_features_shared([lm], audio, sr, frames, times, ds.sample_times(r), window=WINDOW,
                                                        layers=layers)[0]
    features_s = time.time() - t0

    data = tuning.tuning_data(ds, subjects, ds.train_runs, voxels=sts, window=WINDOW, video=True)
    responses = {s: {r: ds.responses(s, r)[:, sts] for r in ds.train_runs} for s in subjects}
    tuned, planted, ridge = {}, None, {}
    for label, rate in RATES.items():
        t1 = time.time()
        tuner = tuning.BrainTuner(MODEL, seed=args.seed, **TUNING, **rate).fit(data, tune_runs, [val_run])
        ep = tuner.epochs_
        tuned[label] = {"best_relative_mse": round(float(ep.val_loss.min()) / tuner.mean_val_loss_, 4),
                        "best_epoch": tuner.best_epoch_,
                        "validation_by_epoch": [round(float(v) / tuner.mean_val_loss_, 4) for v in ep.val_loss],
                        "training_by_epoch": [round(float(v), 4) for v in ep.train_loss],
                        "from_cache": tuner.from_cache_, "seconds": round(time.time() - t1, 1)}
        print(label, tuned[label], flush=True)
        if planted is None:  # the readouts, in the unit of the first tuner (every tuner z-scores the same way)
            planted = round(tuner.ridge_reference(av, responses, penalties=(1e-6,))[1e-6], 4)
            for k, layer in enumerate(layers):
                scores = tuner.ridge_reference({r: feats[r][k] for r in ds.train_runs}, responses, PENALTIES)
                best = min(scores, key=scores.get)
                ridge[layer] = {"relative_mse": round(scores[best], 4), "penalty": best}

    result = {"dataset": "simulated-movie", "seed": args.seed, "tuning_subjects": subjects, "validation_episode": val_run,
              "tuning_windows": int(sum(len(data.bounds[r][0]) for r in tune_runs)),
              "planted_av_speech": round(planted, 4), "ridge_on_pretrained_states": ridge, "brain_tuning": tuned,
              "features_s": round(features_s, 1), "total_s": round(time.time() - t0, 1)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "brain_tuning"}, indent=1))
    return result


if __name__ == "__main__":
    main()
