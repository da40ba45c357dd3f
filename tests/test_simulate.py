"""The simulated cohort: layout, sizes, planted explainable variance, determinism."""

import json

import numpy as np
import pytest

from brainalign import ceiling, features, stimuli
from brainalign.datasets import load_dataset
from brainalign.encoding import RidgeEncoder, delay_within_runs
from brainalign.simulate import (
    EV_MEDIAN,
    HRF_PEAK_RANGE,
    INDIVIDUAL_SHARE,
    RIGHT_LANGUAGE_FACTOR,
    ROI_SOURCES,
    SELECTIVE_FRACTION,
    fingerprint,
    generate,
    planted_syntax,
    selective_drive,
)


def test_layout_and_sizes(cohort):
    root = cohort.root / "derivative"
    respdict = json.loads((root / "respdict.json").read_text())
    assert len(cohort.subjects) >= 12 and len(cohort.held_out_subjects) >= 5
    assert len(cohort.train_runs) >= 8 and len(cohort.test_runs) == 1
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
    """Explainable variance estimated from the repeats matches what was planted, per ROI; the planted
    values are the ROI medians times the participant's SNR factor, on the participant's own ROI."""
    truth = cohort.ground_truth()
    rois = cohort.rois()
    names = list(truth["roi_names"])
    hemi = np.load(cohort.root / "derivative" / "brainalign" / "space.npz")["hemisphere"]
    for k, subject in enumerate(cohort.subjects[:2]):
        ev_hat = ceiling.explainable_variance(cohort.repeats(subject, cohort.test_runs[0]))
        for roi, median in EV_MEDIAN.items():
            own = (truth["planted_roi_index"][k] == names.index(roi)) & (hemi == 0)
            planted = truth["ev"][k][own].mean()
            tolerance = 0.03 + 3 * 0.1 / np.sqrt(own.sum())  # a voxel's planted value has sd <= 0.1 around the median
            assert planted == pytest.approx(min(median * truth["snr_factor"][k], 0.9), abs=tolerance), (subject, roi)
            mask = rois[roi] & (hemi == 0)
            assert ev_hat[mask].mean() == pytest.approx(truth["ev"][k][mask].mean(), abs=0.06), (subject, roi)
        for roi in ("motor", "visual"):
            assert abs(ev_hat[rois[roi]].mean()) < 0.04, (subject, roi)
    ifg = truth["planted_roi_index"][0] == names.index("IFG")
    right, left = ifg & (hemi == 1), ifg & (hemi == 0)
    assert truth["ev"][0][right].mean() < truth["ev"][0][left].mean() * (RIGHT_LANGUAGE_FACTOR + 0.2)


def test_participants_differ_as_documented(cohort):
    """Each participant's ROIs, HRF peaks and SNR are their own, within the documented ranges; a planted
    ROI moves only over its own atlas area and unlabelled cortex, never onto a noise-only ROI."""
    truth = cohort.ground_truth()
    names = list(truth["roi_names"])
    atlas = np.load(cohort.root / "derivative" / "brainalign" / "space.npz")["roi_index"]
    planted = truth["planted_roi_index"]
    assert planted.shape == (len(cohort.subjects), len(atlas))
    assert float(truth["individual_share"]) == INDIVIDUAL_SHARE
    for roi in ROI_SOURCES:
        i = names.index(roi)
        peaks = truth["hrf_peak"][:, i]
        assert (peaks >= HRF_PEAK_RANGE[0]).all() and (peaks <= HRF_PEAK_RANGE[1]).all() and peaks.std() > 0.3, roi
        assert set(np.unique(atlas[(planted == i).any(0)])) <= {i, names.index("other")}, roi
        kept = [((planted[k] == i) & (atlas == i)).sum() / (atlas == i).sum() for k in range(len(planted))]
        assert 0.3 < np.mean(kept) < 0.98 and np.std(kept) > 0, (roi, kept)
    for roi in ("visual", "motor"):
        assert ((planted == names.index(roi)) == (atlas == names.index(roi))).all(), roi
        assert (truth["ev"][:, atlas == names.index(roi)] == 0).all(), roi
    assert np.isnan(truth["hrf_peak"][:, names.index("motor")]).all()
    assert truth["snr_factor"].std() > 0.1


def test_planted_syntax_is_the_generators_own(monkeypatch):
    """The brain's syntactic sources are computed without the parser and labels that Study 1 probes."""
    import inspect
    import sys

    from brainalign import linguistics, simulate
    from brainalign.simulate import common, movie, story

    source = "".join(inspect.getsource(m) for m in (simulate, story, common, movie))
    assert "from .linguistics" not in source and "import spacy" not in source and "annotate_words(" not in source
    monkeypatch.setitem(sys.modules, "spacy", None)  # importing spaCy now fails
    monkeypatch.setattr(linguistics, "annotate_words", lambda words: pytest.fail("the generator used the labeller"))
    words = "The man, who saw that the ship which sailed was old, left. Call me Ishmael.".split()
    got = planted_syntax(words)
    assert list(got["clause_depth"]) == [0, 0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 2, 0, 0, 0]
    np.testing.assert_allclose(np.exp(got["sentence_length"]), [12] * 12 + [3] * 3)


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


def test_generation_runs_on_one_thread_whatever_the_callers_threads(tmp_path, monkeypatch):
    """A multithreaded BLAS sums in an order set by its thread count: the cohort is written on one thread
    (numpy's BLAS and torch alike), so that its bytes are the same on every machine, and the caller's
    thread counts are restored afterwards."""
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from brainalign.simulate import story

    seen = {}

    def record(root, seed):
        (root / "derivative").mkdir()
        (root / "derivative" / "respdict.json").write_text("{}")
        seen["blas"] = {pool["num_threads"] for pool in threadpool_info()}
        seen["torch"] = torch.get_num_threads()

    monkeypatch.setattr(story, "_write_cohort", record)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threadpool_limits(2):
            generate(seed=0, root=tmp_path / "cohort")
            assert {pool["num_threads"] for pool in threadpool_info()} == {2}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen == {"blas": {1}, "torch": 1}


def test_the_generators_never_import_datasets():
    """The ROI groups come from ``spaces`` and the splits from ``manifests``: ``datasets`` imports ``simulate``, never the reverse."""
    import ast
    from pathlib import Path

    from brainalign import simulate

    for path in sorted(Path(simulate.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [alias.name for alias in node.names]
                assert not any("datasets" in n for n in names), f"{path.name} line {node.lineno} imports datasets"


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    from brainalign.simulate import story

    def interrupted(root, seed):
        (root / "derivative").mkdir()
        (root / "derivative" / "respdict.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(story, "_write_cohort", interrupted)  # where generate looks it up
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


def test_word_drive_is_each_words_planted_pattern():
    """A word's drive of a ROI is the root mean square, over the ROI's voxels, of its sources times the weights
    in response units; a ROI without planted signal (no HRF) and a source that is not a word's add nothing."""
    from brainalign.simulate.story import _word_drive

    participant = dict(weights=np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0], [5.0, 5.0, 5.0]]), rois=np.array([0, 0, 1]),
                       hrf_peak={"A": 5.0})
    words = {"a": np.array([[1.0], [2.0]]), "c": np.array([[0.0], [1.0]])}  # "b" (like the envelope) is no word's
    got = _word_drive(participant, words, {"a": 1, "b": 1, "c": 1}, ["A", "B", "other"], scale=np.array([1.0, 0.5, 1.0]))
    np.testing.assert_allclose(got[0], [np.sqrt((1 + 0) / 2), np.sqrt((7**2 + 2.5**2) / 2)])
    assert (got[1:] == 0).all()


def test_ground_truth_word_drive(cohort):
    truth = cohort.ground_truth()
    names = list(truth["roi_names"])
    for run in cohort.runs[:2]:
        drive = truth[f"word_drive/{run}"]
        assert drive.shape == (len(cohort.subjects), len(names), len(cohort.words(run)))
        for roi in ("visual", "motor", "other"):
            assert (drive[:, names.index(roi)] == 0).all(), roi
        for roi in ROI_SOURCES:
            d = drive[:, names.index(roi)]
            assert (d > 0).all() and d.std(1).min() > 0, roi  # every word drives it, some more than others
            assert np.corrcoef(d[0], d[1])[0, 1] < 0.999, roi  # participants' weights differ


def test_selective_drive_responds_to_a_tenth_of_the_words():
    rng = np.random.default_rng(0)
    semantic = {"a": rng.standard_normal((3000, 16)), "b": rng.standard_normal((1000, 16)) + 0.3}
    out = selective_drive(semantic, seed=0)
    every = np.concatenate([out["a"], out["b"]])[:, 0]
    assert out["a"].shape == (3000, 1) and (every >= 0).all()
    assert (every > 0).mean() == pytest.approx(SELECTIVE_FRACTION, abs=0.002)
    # one direction: a word twice as far from the centre responds at least as strongly
    doubled = selective_drive({"a": semantic["a"], "b": semantic["b"], "c": 2 * semantic["a"][:1]}, seed=0)
    assert doubled["c"][0, 0] >= doubled["a"][0, 0]
    again = selective_drive(semantic, seed=0)
    np.testing.assert_array_equal(again["a"], out["a"])
    assert not np.array_equal(selective_drive(semantic, seed=1)["a"], out["a"])  # the direction comes from the seed
    with pytest.raises(ValueError, match="fraction=1.5"):
        selective_drive(semantic, seed=0, fraction=1.5)


def test_the_selected_words_drive_ltc_far_more_than_the_others(cohort):
    """The word-selective source gives LTC's per-word truth its contrast: the words it selects drive LTC
    much more than the words it ignores, in every participant."""
    truth = cohort.ground_truth()
    names = list(truth["roi_names"])
    run = cohort.test_runs[0]
    drive = truth[f"word_drive/{run}"][:, names.index("LTC")]
    top = drive >= np.quantile(drive, 1 - SELECTIVE_FRACTION, axis=1, keepdims=True)
    ratio = np.array([drive[k][top[k]].mean() / drive[k][~top[k]].mean() for k in range(len(drive))])
    assert (ratio > 1.5).all(), ratio  # seed 0: 1.79-1.88 (the dense sources alone gave 1.33)
    auditory = truth[f"word_drive/{run}"][:, names.index("auditory")]  # no selective source planted there
    top_a = auditory >= np.quantile(auditory, 1 - SELECTIVE_FRACTION, axis=1, keepdims=True)
    ratio_a = np.array([auditory[k][top_a[k]].mean() / auditory[k][~top_a[k]].mean() for k in range(len(auditory))])
    assert (ratio > ratio_a).all()
