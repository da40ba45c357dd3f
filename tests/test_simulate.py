"""The simulated cohort: layout, sizes, planted explainable variance, determinism."""

import json

import numpy as np
import pytest

from brainalign import ceiling, features, stimuli
from brainalign.datasets import load_dataset
from brainalign.encoding import RidgeEncoder, delay_within_runs
from brainalign.simulate import EV_MEDIAN, RIGHT_LANGUAGE_FACTOR, fingerprint, generate


def test_layout_and_sizes(cohort):
    root = cohort.root / "derivative"
    respdict = json.loads((root / "respdict.json").read_text())
    assert len(cohort.subjects) >= 4 and len(cohort.train_runs) >= 8 and len(cohort.test_runs) == 1
    n_vox = None
    for run in cohort.runs:
        minutes = (respdict[run] - 5) * cohort.tr / 60
        assert 3.0 <= minutes <= 6.5, (run, minutes)
        y = cohort.responses("S01", run)
        assert y.dtype == np.float32 and y.shape[0] == respdict[run] - 20 == len(cohort.tr_times(run))
        n_vox = n_vox or y.shape[1]
        assert y.shape[1] == n_vox
        words = cohort.words(run)
        assert (np.diff(words["onset"]) >= 0).all() and (words["offset"] >= words["onset"]).all()
        audio, sr = cohort.audio(run)
        assert words["offset"].iloc[-1] <= len(audio) / sr + 1e-6
    assert 2000 <= n_vox <= 6000
    reps = cohort.repeats("S01", cohort.test_runs[0])
    assert reps.ndim == 3 and reps.shape[0] >= 4


def test_rois_are_real_labels(cohort):
    rois = cohort.rois()
    for name in ["auditory", "LTC", "AG", "IFG", "PCC", "visual", "motor", "language"]:
        assert rois[name].sum() >= 10, name
    assert not (rois["auditory"] & rois["motor"]).any()


def test_repeat_ceiling_matches_planted_explainable_variance(cohort):
    """Explainable variance estimated from the repeats matches what was planted, per ROI."""
    truth = cohort.ground_truth()
    rois = cohort.rois()
    hemi = np.load(cohort.root / "derivative" / "brainalign" / "space.npz")["hemisphere"]
    for k, subject in enumerate(cohort.subjects[:2]):
        ev_hat = ceiling.explainable_variance(cohort.repeats(subject, cohort.test_runs[0]))
        for roi, median in EV_MEDIAN.items():
            mask = rois[roi] & (hemi == 0)
            planted = truth["ev"][k][mask].mean()
            assert planted == pytest.approx(median, abs=0.06)
            assert ev_hat[mask].mean() == pytest.approx(planted, abs=0.06), (subject, roi)
        for roi in ("motor", "visual"):
            assert abs(ev_hat[rois[roi]].mean()) < 0.04, (subject, roi)
    right = rois["IFG"] & (hemi == 1)
    left = rois["IFG"] & (hemi == 0)
    assert truth["ev"][0][right].mean() < truth["ev"][0][left].mean() * (RIGHT_LANGUAGE_FACTOR + 0.2)


def test_ground_truth_shares(cohort):
    truth = cohort.ground_truth()
    names = list(truth["roi_names"])
    shares = truth["roi_sources"]
    for roi in ("auditory", "LTC", "AG", "IFG", "MFG", "PCC"):
        assert shares[names.index(roi)].sum() == pytest.approx(1.0)
    for roi in ("visual", "motor", "other"):
        assert shares[names.index(roi)].sum() == 0


def test_same_seed_same_cohort(cohort, tmp_path):
    again = generate(seed=0, root=tmp_path / "again")
    assert fingerprint(again) == fingerprint(cohort.root)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    from brainalign import simulate

    def interrupted(root, seed):
        (root / "derivative").mkdir()
        (root / "derivative" / "respdict.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate, "_write_cohort", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate(seed=0, root=tmp_path / "cohort")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dataset", ["simulated", "simulated-movie"])
@pytest.mark.parametrize("lag", [1, 2, 3, 4])
def test_a_source_planted_at_lag_k_is_found_at_fir_delay_k(dataset, lag):
    """The generator and the analysis share one time base.

    The cohort's planted word-rate source (before the HRF, on the volumes) is shifted by ``lag``
    volumes; word-rate features computed as a study computes them (words of ``ds.words``, their
    midpoints, Lanczos to ``ds.sample_times``) must explain it at FIR delay ``lag`` alone. Sampled
    half a TR apart, the weight would split between two delays.
    """
    ds = load_dataset(dataset, seed=0)
    truth = ds.ground_truth()
    names = [str(n) for n in truth["source_names"]]
    column = int(np.concatenate([[0], np.cumsum(truth["source_dims"])])[names.index("word_rate")])
    X, Y, runs = [], [], []
    for i, run in enumerate(ds.train_runs):
        words = ds.words(run)
        x = features.tr_features(np.ones((1, len(words), 1)), stimuli.word_times(words), ds.sample_times(run))[0]
        planted = truth[f"stimulus_sources/{run}"][:, column]
        assert planted.shape == (len(x),)
        y = np.zeros_like(planted)
        y[lag:] = planted[:-lag]
        X.append(x), Y.append(y[:, None]), runs.append(np.full(len(x), i))
    runs = np.concatenate(runs)
    delayed = delay_within_runs(np.concatenate(X), (1, 2, 3, 4), runs)
    inside = np.concatenate([np.arange(np.sum(runs == i)) >= 4 for i in np.unique(runs)])  # all 4 delays within the run
    enc = RidgeEncoder(delays=(0,), alphas=np.logspace(-4, 2, 7), dtype="float64")
    enc.fit(delayed[inside], np.concatenate(Y)[inside], runs=runs[inside])
    weights = np.abs(enc.coef_[:, 0]) / np.abs(enc.coef_[:, 0]).sum()
    assert weights[lag - 1] > 0.9 and np.delete(weights, lag - 1).max() < 0.05, weights
