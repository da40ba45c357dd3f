"""Benchmark: does a word's input attribution predict what replacing that word does to the loss?

    python bench/bench_attribution.py [--windows 6] [--words 40] [--out bench/results/attribution.json]

Gradient x Input rests on a first-order expansion: replacing token ``j``'s input embedding ``x_j`` by a
reference ``b`` changes a loss ``L`` by about ``-grad_j L . (x_j - b)``. This checks that premise on the
model that Study 5's default set attributes (SmolLM2-135M), with no planted truth involved: for every
token of a window but the first and the last, the actual change of the loss when that token alone is
replaced, against its first-order estimate, as a rank correlation over the window's tokens.

- references: zero embeddings (the study's Gradient x Input) and the vocabulary's mean input embedding
  (the default set's Integrated Gradients baseline);
- a small step, ``x_j + 0.01 (b - x_j)``, where the expansion must hold (the control: a correlation near 1
  says the gradients are right);
- Integrated Gradients (mean baseline, first token held, 32 points) against the same replacement;
- two losses: the next-word cross-entropy of the window's last token, and a stand-in for an encoder of the
  middle layer (layer 15): the squared norm of a fixed random linear map (32 outputs) of the mean hidden
  state of the window's last 12 tokens.

Windows of ``--words`` words of the simulated cohort's test story, evenly spaced.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from brainalign import attribution, datasets, models

MODEL, LAYER, LAST, READOUT, IG_STEPS, SMALL = "smollm2-135m-instruct", 15, 12, 32, 32, 0.01


def losses(lm, ids: torch.Tensor, x: torch.Tensor, readout: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-row losses of a batch of input embeddings ``x`` (rows: variants of one window ``ids``)."""
    out = lm.model(inputs_embeds=x, use_cache=False, output_hidden_states=True)
    target = ids[0, -1].expand(len(x))
    nwp = torch.nn.functional.cross_entropy(out.logits[:, -2].float(), target, reduction="none")
    h = out.hidden_states[LAYER][:, -LAST:].float().mean(1)
    return {"next_word": nwp, "layer_readout": ((h @ readout) ** 2).sum(-1)}


def replaced(lm, ids, x0, readout, positions, target, batch=8) -> dict[str, np.ndarray]:
    """The change of each loss when token ``j`` alone becomes ``target[j]``, for each of ``positions``."""
    with torch.no_grad():
        base = {k: float(v[0]) for k, v in losses(lm, ids, x0, readout).items()}
        parts: dict[str, list] = {k: [] for k in base}
        for s in range(0, len(positions), batch):
            rows = positions[s:s + batch]
            x = x0.repeat(len(rows), 1, 1)
            for n, j in enumerate(rows):
                x[n, j] = target[j]
            for k, v in losses(lm, ids, x, readout).items():
                parts[k].append(v.numpy() - base[k])
    return {k: np.concatenate(v) for k, v in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--words", type=int, default=40)
    parser.add_argument("--out", default="bench/results/attribution.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(2)
    lm = models.load_model(MODEL)
    ds = datasets.load_dataset("simulated", seed=0)
    words = list(ds.words(ds.test_runs[0])["word"])
    embed = lm.model.get_input_embeddings()
    mean = embed.weight.detach().float().mean(0)
    readout = torch.randn(lm.spec.dim, READOUT, generator=torch.Generator().manual_seed(0)) / lm.spec.dim ** 0.5
    starts = np.linspace(0, len(words) - args.words, args.windows).astype(int)
    rho: dict[str, list[float]] = {}
    t0 = time.time()
    for w0 in starts:
        ids = lm.tokenizer(" ".join(words[w0:w0 + args.words]), return_tensors="pt").input_ids
        x0 = embed(ids).detach().float()
        positions = list(range(1, ids.shape[1] - 1))
        x = x0.clone().requires_grad_(True)
        loss = losses(lm, ids, x, readout)
        grads = {k: torch.autograd.grad(v.sum(), x, retain_graph=True)[0][0] for k, v in loss.items()}
        for name, b in {"zero": torch.zeros_like(mean), "mean": mean}.items():
            full = replaced(lm, ids, x0, readout, positions, {j: b for j in positions})
            step = replaced(lm, ids, x0, readout, positions, {j: x0[0, j] + SMALL * (b - x0[0, j]) for j in positions})
            for key, grad in grads.items():
                first = np.array([float(-(grad[j] * (x0[0, j] - b)).sum()) for j in positions])
                rho.setdefault(f"{key}, {name} reference, replaced", []).append(spearmanr(full[key], first).statistic)
                rho.setdefault(f"{key}, {name} reference, small step (control)", []).append(
                    spearmanr(step[key], SMALL * first).statistic)
            if name == "mean":
                start = mean.expand_as(x0).clone()
                start[:, 0] = x0[:, 0]
                for key in grads:
                    ig, _ = attribution.integrated_gradients(lambda inp, key=key, ids=ids: losses(lm, ids, inp, readout)[key], x0,
                                                             n_steps=IG_STEPS, internal_batch_size=8, baselines=start)
                    tokens = ig[0].sum(-1).numpy()
                    rho.setdefault(f"{key}, Integrated Gradients (mean), replaced", []).append(
                        spearmanr(full[key], -tokens[positions]).statistic)
        print(f"window at word {w0}: {time.time() - t0:.0f} s", flush=True)
    table = {k: {"mean": float(np.mean(v)), "min": float(np.min(v)), "max": float(np.max(v)), "per_window": [float(r) for r in v]}
             for k, v in sorted(rho.items())}
    for k, v in table.items():
        print(f"{k:62s} rank correlation {v['mean']:+.2f} ({v['min']:+.2f} to {v['max']:+.2f})")
    out = {"model": MODEL, "windows": int(args.windows), "words": int(args.words), "starts": starts.tolist(),
           "seconds": round(time.time() - t0, 1), "machine": platform.machine(), "torch": torch.__version__, "results": table}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
