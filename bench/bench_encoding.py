"""Benchmark: brainalign's RidgeEncoder (himalaya) against scikit-learn, same data, folds and alphas.

Usage::

    python bench/bench_encoding.py [--quick] [--out bench/results/encoding.json]

Synthetic data (autocorrelated features, FIR-delayed, per-target SNR) are
delayed and z-scored once; the last 20% of samples (after a 5-sample gap) are
held out. Every method selects one alpha per target from the same grid by the
mean squared error over the same contiguous inner folds
(``brainalign.encoding.contiguous_folds``), refits on all training samples
and predicts the held-out samples; the per-target Pearson r on the held-out
samples is compared.

scikit-learn's ``RidgeCV(alpha_per_target=True)`` refuses a ``cv`` splitter
(it only supports its efficient leave-one-out), so the scikit-learn
reference with the same folds is the plain grid search it would run: one
``Ridge(solver="svd")`` fit per fold and alpha (all targets at once), the
per-target argmin of the fold-averaged MSE, and a refit with the per-target
alphas. ``RidgeCV(alpha_per_target=True)`` with leave-one-out is timed too,
for information (a different selection criterion, so its scores differ).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import sklearn
import torch
from scipy.signal import lfilter
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.preprocessing import StandardScaler

from brainalign.encoding import (
    DEFAULT_ALPHAS,
    RidgeEncoder,
    contiguous_folds,
    delay_within_runs,
    pearson_r,
)

DELAYS = (1, 2, 3, 4)
N_FOLDS, GAP = 5, 5


def simulate(n_samples: int, n_features: int, n_targets: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Delayed features (n_samples, n_features * 4) and responses (n_samples, n_targets)."""
    rng = np.random.default_rng(seed)
    X = lfilter([1.0], [1.0, -0.7], rng.standard_normal((n_samples, n_features)), axis=0)
    Xd = delay_within_runs(X, DELAYS)
    weights = rng.standard_normal((Xd.shape[1], n_targets)) * (rng.random((Xd.shape[1], 1)) < 0.2)
    signal = Xd @ weights
    signal /= signal.std(axis=0) + 1e-12
    fraction = rng.uniform(0.0, 0.6, n_targets)  # signal variance fraction per target
    Y = np.sqrt(fraction) * signal + np.sqrt(1 - fraction) * rng.standard_normal((n_samples, n_targets))
    return Xd, Y


def split(Xd: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Train on the first 80% (minus a gap), test on the last 20%; z-score with training statistics."""
    n = len(Y)
    start = int(0.8 * n)
    train, test = slice(0, start - GAP), slice(start, n)
    xs, ys = StandardScaler().fit(Xd[train]), StandardScaler().fit(Y[train])
    return xs.transform(Xd[train]), ys.transform(Y[train]), xs.transform(Xd[test]), ys.transform(Y[test])


def run_himalaya(Xtr, Ytr, Xte, Yte, backend: str, dtype: str) -> dict:
    t0 = time.perf_counter()
    model = RidgeEncoder(alphas=DEFAULT_ALPHAS, delays=(0,), n_folds=N_FOLDS, gap=GAP, backend=backend, dtype=dtype)
    model.fit(Xtr, Ytr)
    pred = model.predict(Xte)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "r": pearson_r(Yte, pred), "alphas": model.best_alphas_, "solver": type(model.model_).__name__}


def run_sklearn_grid(Xtr, Ytr, Xte, Yte) -> dict:
    """Per-target alpha by the fold-averaged MSE over the same folds, with sklearn's Ridge."""
    t0 = time.perf_counter()
    folds = contiguous_folds(len(Ytr), N_FOLDS, GAP)
    mse = np.zeros((len(DEFAULT_ALPHAS), Ytr.shape[1]))
    for train, val in folds:
        for i, alpha in enumerate(DEFAULT_ALPHAS):
            pred = Ridge(alpha=alpha, fit_intercept=False, solver="svd").fit(Xtr[train], Ytr[train]).predict(Xtr[val])
            mse[i] += ((Ytr[val] - pred) ** 2).mean(axis=0) / len(folds)
    best = np.asarray(DEFAULT_ALPHAS)[np.argmin(mse, axis=0)]  # first (smallest) alpha on ties, as himalaya
    pred = Ridge(alpha=best, fit_intercept=False, solver="svd").fit(Xtr, Ytr).predict(Xte)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "r": pearson_r(Yte, pred), "alphas": best}


def run_sklearn_loo(Xtr, Ytr, Xte, Yte) -> dict:
    t0 = time.perf_counter()
    model = RidgeCV(alphas=DEFAULT_ALPHAS, fit_intercept=False, alpha_per_target=True).fit(Xtr, Ytr)
    pred = model.predict(Xte)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "r": pearson_r(Yte, pred), "alphas": np.asarray(model.alpha_)}


def sklearn_refuses_cv_with_alpha_per_target(Xtr, Ytr) -> str:
    try:
        folds = contiguous_folds(len(Ytr), N_FOLDS, GAP)
        RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True, cv=folds).fit(Xtr[:, :5], Ytr[:, :2])
    except ValueError as err:
        return str(err)
    return "accepted"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data (seconds)")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "encoding.json"))
    args = parser.parse_args()

    n_samples, n_features, n_targets = (400, 100, 300) if args.quick else (1000, 400, 2000)
    Xd, Y = simulate(n_samples, n_features, n_targets)
    Xtr, Ytr, Xte, Yte = split(Xd, Y)
    print(f"data: {n_samples} samples ({len(Ytr)} train, {len(Yte)} test), {n_features} features x {len(DELAYS)} delays "
          f"= {Xd.shape[1]}, {n_targets} targets, {len(DEFAULT_ALPHAS)} alphas, {N_FOLDS} contiguous folds (gap {GAP})")

    runs = {
        "himalaya torch float32 (default)": run_himalaya(Xtr, Ytr, Xte, Yte, "torch", "float32"),
        "himalaya torch float64": run_himalaya(Xtr, Ytr, Xte, Yte, "torch", "float64"),
        "himalaya numpy float64": run_himalaya(Xtr, Ytr, Xte, Yte, "numpy", "float64"),
        "sklearn Ridge grid, same folds (float64)": run_sklearn_grid(Xtr, Ytr, Xte, Yte),
        "sklearn RidgeCV LOO (float64, other criterion)": run_sklearn_loo(Xtr, Ytr, Xte, Yte),
    }
    ref = runs["sklearn Ridge grid, same folds (float64)"]
    rows = []
    for name, res in runs.items():
        rows.append({
            "method": name,
            "seconds": round(res["seconds"], 3),
            "speedup_vs_sklearn_grid": round(ref["seconds"] / res["seconds"], 2),
            "max_abs_diff_r_vs_sklearn_grid": float(np.max(np.abs(res["r"] - ref["r"]))),
            "alphas_equal_frac": float(np.mean(np.isclose(res["alphas"], ref["alphas"], rtol=1e-4))),
            "median_r": float(np.median(res["r"])),
            "solver": res.get("solver", ""),
        })

    print()
    print("| method | seconds | speed-up vs sklearn grid | max abs diff r | same alpha | median r |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['method']} | {row['seconds']:.2f} | {row['speedup_vs_sklearn_grid']:.2f}x | "
              f"{row['max_abs_diff_r_vs_sklearn_grid']:.1e} | {row['alphas_equal_frac']:.3f} | {row['median_r']:.3f} |")

    main_diff = rows[1]["max_abs_diff_r_vs_sklearn_grid"]
    agree = main_diff < 1e-3
    refusal = sklearn_refuses_cv_with_alpha_per_target(Xtr, Ytr)
    print()
    print(f"held-out r, himalaya float64 vs sklearn grid: max abs diff {main_diff:.1e} -> {'AGREE' if agree else 'DISAGREE'} (tol 1e-3)")
    print(f"default float32: max abs diff {rows[0]['max_abs_diff_r_vs_sklearn_grid']:.1e}")
    print(f"sklearn RidgeCV(alpha_per_target=True, cv=folds): {refusal}")

    result = {
        "data": {"n_samples": n_samples, "n_train": len(Ytr), "n_test": len(Yte), "n_features": n_features,
                 "n_delays": len(DELAYS), "n_targets": n_targets, "n_alphas": len(DEFAULT_ALPHAS),
                 "n_folds": N_FOLDS, "gap": GAP, "quick": args.quick},
        "rows": rows,
        "agree_1e-3": bool(agree),
        "sklearn_ridgecv_with_cv_and_alpha_per_target": refusal,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": os.getloadavg()[0], "python": platform.python_version(),
                    "numpy": np.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__,
                    "torch_threads": torch.get_num_threads()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
