"""Movie stimuli and the simulated movie cohort: timing, planted sources, determinism, errors."""

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest

from brainalign import ceiling
from brainalign.datasets import load_dataset
from brainalign.simulate import MOVIE_ROI_SOURCES, MOVIE_TR, generate_movie, movie_fingerprint
from brainalign.stimuli import (
    EXPOSURE,
    audio_envelope,
    frames_per_tr,
    make_movie,
    movie_image,
    read_dialogue,
    read_video,
    render_shots,
    sample_times,
    speaking_at,
    tr_times,
)


@pytest.fixture(scope="module")
def movie_cohort():
    """The simulated movie cohort of seed 0 (generated in the data home on first use)."""
    return load_dataset("simulated-movie", seed=0)


@pytest.fixture(scope="module")
def short_movie():
    return make_movie(read_dialogue().iloc[:4], seed=3)


def _column(truth: dict, name: str) -> slice:
    names = list(truth["source_names"])
    start = np.concatenate([[0], np.cumsum(truth["source_dims"])])
    i = names.index(name)
    return slice(int(start[i]), int(start[i + 1]))


# -- frames per TR -------------------------------------------------------------------
def test_frames_per_tr_known_answer():
    frame_times = np.arange(10) * 0.5  # 0, 0.5, ..., 4.5
    # volumes acquired from 0, 1.49, 2.98, 4.47 s and sampled at their centres: each box is [onset, onset + TR)
    got = frames_per_tr(frame_times, sample_times(tr_times(4, 1.49), 1.49), 1.49)
    assert [list(g) for g in got] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    # a frame exactly at a box's edge belongs to the box that starts there
    assert [list(g) for g in frames_per_tr([0.0, 1.0, 2.0], [0.5, 1.5], 1.0)] == [[0], [1]]
    # sampled at the onsets, the boxes are centred on them: [-0.5, 0.5), [0.5, 1.5)
    assert [list(g) for g in frames_per_tr([0.0, 1.0, 2.0], [0.0, 1.0], 1.0)] == [[0], [1]]
    assert [list(g) for g in frames_per_tr([0.4, 0.6], [0.0, 1.0], 1.0)] == [[0], [1]]
    with pytest.raises(ValueError, match="tr=0"):
        frames_per_tr(frame_times, [0.0], 0)
    with pytest.raises(ValueError, match="non-decreasing"):
        frames_per_tr([1.0, 0.0], [0.0], 1.0)


def test_planted_flash_tone_and_word_land_in_the_right_tr(short_movie):
    movie = short_movie
    grid = sample_times(tr_times(int(np.ceil(movie.duration / MOVIE_TR)), MOVIE_TR), MOVIE_TR)
    # a white flash frame at 5.2 s
    frames = movie.frames.copy()
    flash = int(np.argmin(np.abs(movie.frame_times - 5.2)))
    frames[flash] = 255
    brightness = frames.reshape(len(frames), -1).mean(1)
    per_tr = [brightness[i].max() if len(i) else 0 for i in frames_per_tr(movie.frame_times, grid, MOVIE_TR)]
    assert int(np.argmax(per_tr)) == int(movie.frame_times[flash] // MOVIE_TR) == 3
    # a loud 1 kHz tone burst at 6.3-6.5 s
    audio = movie.audio.copy()
    t = np.arange(len(audio)) / movie.sr
    burst = (t >= 6.3) & (t < 6.5)
    audio[burst] += np.sin(2 * np.pi * 1000 * t[burst]).astype(np.float32)
    fine = np.arange(0.05, movie.duration, 0.1)
    env = audio_envelope(audio, movie.sr, fine, window=0.1)
    per_tr = [env[i].max() for i in frames_per_tr(fine, grid, MOVIE_TR)]
    assert int(np.argmax(per_tr)) == int(6.4 // MOVIE_TR) == 4
    # each word's onset falls in the TR that frames_per_tr gives it, and its audio is not silent
    onsets = movie.words["onset"].to_numpy()
    which = np.concatenate([np.full(len(i), k) for k, i in enumerate(frames_per_tr(onsets, grid, MOVIE_TR))])
    assert (which == (onsets // MOVIE_TR).astype(int)).all() and len(which) == len(onsets)


def test_movie_contents(short_movie):
    movie = short_movie
    assert movie.frames.dtype == np.uint8 and movie.frames.shape[1:] == (128, 128, 3)
    assert movie.frame_times[-1] < movie.duration <= movie.frame_times[-1] + 2 / movie.fps
    assert set(movie.words["speaker"]) == {"A", "B"} and len(movie.lines) == 4
    shots = movie.shots
    assert shots["onset"].iloc[0] == 0 and np.allclose(shots["onset"].iloc[1:], shots["offset"].iloc[:-1])
    assert shots["offset"].iloc[-1] == pytest.approx(movie.duration)
    assert ((shots["offset"] - shots["onset"]) <= 5.0 + 1e-9).all()
    # faces: the shots showing a speaker show their portrait
    faces = shots[shots["on_screen"] != ""]
    assert set(faces["image"]) <= {"astronaut", "grace_hopper"} and len(faces)
    assert (faces["image"] == faces["on_screen"].map({"A": "astronaut", "B": "grace_hopper"})).all()
    # speech sits inside the words: the audio is louder within words than in the pauses between lines
    fine = np.arange(0.05, movie.duration, 0.05)
    env = audio_envelope(movie.audio, movie.sr, fine, window=0.05)
    talking = speaking_at(movie.words, fine) != ""
    assert env[talking].mean() > 10 * env[~talking].mean()
    # a cut is a jump between frames; within a shot the camera moves slowly
    diff = np.abs(np.diff(movie.frames.astype(np.float32), axis=0)).mean((1, 2, 3))
    cuts = np.searchsorted(movie.frame_times, shots["onset"].iloc[1:].to_numpy()) - 1
    within = np.setdiff1d(np.arange(len(diff)), cuts)
    assert np.median(diff[cuts]) > 4 * np.median(diff[within])


def test_each_shot_has_its_own_exposure_and_focus():
    lines = read_dialogue().iloc[:4]
    movie, plain = make_movie(lines, seed=2), make_movie(lines, seed=2, exposure=False)
    shots = movie.shots
    # the exposure is drawn apart from the shots: the shot list is the same without it
    pd.testing.assert_frame_equal(shots.drop(columns=["contrast", "brightness", "blur"]), plain.shots)
    for name, (low, high) in EXPOSURE.items():
        assert shots[name].between(low, high).all() and shots[name].nunique() == len(shots)
    # rendered: the frames of a shot have its contrast and brightness (about each frame's mean) and its blur
    frame = lambda m, k: m.frames[k].astype(np.float64)  # noqa: E731
    for k in np.flatnonzero(movie.frame_times < shots["offset"].iloc[0]):
        a, b = frame(movie, k), frame(plain, k)
        assert a.std() == pytest.approx(shots["contrast"].iloc[0] * b.std(), rel=0.25)
        assert a.mean() == pytest.approx(np.clip(b.mean() + 255 * shots["brightness"].iloc[0], 0, 255), abs=12)
    sharp = shots.assign(contrast=1.0, brightness=0.0, blur=0.0)
    assert np.array_equal(render_shots(sharp, movie.frame_times, 128), plain.frames)  # neutral exposure: as shot
    blurred = render_shots(sharp.assign(blur=0.02), movie.frame_times[:3], 128).astype(np.float64)
    edges = lambda x: np.abs(np.diff(x, axis=1)).mean()  # noqa: E731
    assert edges(blurred) < 0.7 * edges(plain.frames[:3].astype(np.float64))


def test_make_movie_is_deterministic():
    lines = read_dialogue().iloc[:2]
    a, b, c = make_movie(lines, seed=5), make_movie(lines, seed=5), make_movie(lines, seed=6)
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio)
    pd.testing.assert_frame_equal(a.words, b.words)
    pd.testing.assert_frame_equal(a.shots, b.shots)
    assert not a.shots.equals(c.shots)


def test_face_p_sets_how_often_a_shot_shows_a_face():
    lines = read_dialogue().iloc[:4]
    always, never = make_movie(lines, seed=2, face_p=(1.0, 0.0)), make_movie(lines, seed=2, face_p=(0.0, 0.0))
    assert (always.shots["on_screen"] != "").all() and (never.shots["on_screen"] == "").all()
    middles = (always.shots["onset"] + always.shots["offset"]).to_numpy() / 2
    talking = speaking_at(always.words, middles)
    assert all(face == who for face, who in zip(always.shots["on_screen"], talking) if who)  # the speaker's own face
    pd.testing.assert_frame_equal(make_movie(lines, seed=2).shots, make_movie(lines, seed=2, face_p=(0.5, 0.2)).shots)
    with pytest.raises(ValueError, match="face_p=\\(0.8, 0.3\\) must be two probabilities"):
        make_movie(lines, face_p=(0.8, 0.3))


def test_movie_input_errors():
    with pytest.raises(ValueError, match="'C'.*voices are given for"):
        make_movie(pd.DataFrame({"speaker": ["C"], "line": ["Call me Ishmael."]}))
    with pytest.raises(ValueError, match="unknown movie image 'lena'; valid"):
        movie_image("lena")
    with pytest.raises(ValueError, match="unknown movie image 'lena'"):
        make_movie(read_dialogue().iloc[:1], faces={"A": "lena", "B": "astronaut"})


# -- reading videos -----------------------------------------------------------------
def _tiny_frames() -> np.ndarray:
    frames = np.zeros((6, 16, 16, 3), np.uint8)
    for k in range(6):
        frames[k, :, : 2 + 2 * k] = (255, 0, 0)
        frames[k, :, 2 + 2 * k :] = (0, 0, 255)
    return frames


def test_read_video_gif(tmp_path):
    import imageio.v3 as iio

    path = tmp_path / "tiny.gif"
    iio.imwrite(path, _tiny_frames(), plugin="pillow", duration=200, loop=0)
    frames, times = read_video(path)
    assert frames.shape == (6, 16, 16, 3) and frames.dtype == np.uint8
    assert np.array_equal(frames, _tiny_frames())
    np.testing.assert_allclose(times, np.arange(6) * 0.2)


@pytest.mark.skipif(importlib.util.find_spec("av") is None, reason="PyAV (the optional video backend) is not installed")
def test_read_video_mp4(tmp_path):
    import imageio.v3 as iio

    path = tmp_path / "tiny.mp4"
    frames = np.repeat(np.repeat(_tiny_frames(), 4, axis=1), 4, axis=2)
    iio.imwrite(path, frames, plugin="pyav", codec="libx264", fps=5)
    got, times = read_video(path)
    assert got.shape == frames.shape
    np.testing.assert_allclose(times, np.arange(6) / 5)


def test_read_video_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="video not found"):
        read_video(tmp_path / "missing.mp4")
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"not a video")
    monkeypatch.setitem(sys.modules, "av", None)  # as if neither backend were installed
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ImportError, match="pip install av"):
        read_video(path)


# -- the simulated movie cohort ------------------------------------------------------
def test_movie_cohort_layout(movie_cohort):
    ds = movie_cohort
    assert ds.tr == MOVIE_TR and ds.subjects == [f"S{i:02d}" for i in range(1, 11)]
    assert ds.held_out_subjects == ["S06", "S07", "S08", "S09", "S10"]
    assert len(ds.train_runs) == 10 and len(ds.test_runs) == 1
    train_minutes = sum(len(ds.tr_times(r)) for r in ds.train_runs) * ds.tr / 60
    assert train_minutes >= 15, train_minutes
    rois = ds.rois()
    for name in ("visual", "MT", "ventral", "auditory", "STS", "TPOJ1", "language", "motor", "OFC"):
        assert rois[name].sum() >= 25, name
    assert not (rois["STS"] & rois["language"]).any() and not (rois["STS"] & rois["TPOJ1"]).any()
    for run in ds.runs:
        audio, sr = ds.audio(run)
        duration = len(audio) / sr
        assert 60 <= duration <= 120, (run, duration)
        y = ds.responses("S01", run)
        assert y.dtype == np.float32 and y.shape == (len(ds.tr_times(run)), len(ds.vertices))
        assert ds.tr_times(run)[-1] < duration <= ds.tr_times(run)[-1] + ds.tr
        words = ds.words(run)
        assert (words["onset"] >= 0).all() and words["offset"].max() <= duration
        lines = ds.speakers(run)
        assert set(lines["speaker"]) == {"A", "B"}
    run = ds.test_runs[0]
    assert ds.repeats("S02", run).shape[0] == 4 and ds.repeats("S02", ds.train_runs[0]) is None


def test_movie_cohort_frames_match_audio_and_shots(movie_cohort):
    ds = movie_cohort
    run = ds.train_runs[1]
    frames, times = ds.frames(run)  # also checks the digest of the simulated frames
    audio, sr = ds.audio(run)
    assert frames.shape == (len(times), 128, 128, 3) and frames.dtype == np.uint8
    assert times[-1] < len(audio) / sr <= times[-1] + 2 / ds.fps
    who = ds.on_screen(run)
    assert who.shape == times.shape and set(who) <= {"", "A", "B"} and {"A", "B"} <= set(who)
    # the words said by a speaker whose face is on screen: the audio is loud there
    words = ds.words(run)
    fine = np.arange(0.025, len(audio) / sr, 0.05)
    env = audio_envelope(audio, sr, fine, window=0.05)
    talking = speaking_at(words, fine) != ""
    assert env[talking].mean() > 10 * env[~talking].mean()


def test_movie_cohort_planted_sources_are_recovered(movie_cohort):
    """STS follows audio-visual speech; auditory the envelope; the ventral stream faces; motor and OFC nothing."""
    ds = movie_cohort
    truth = ds.ground_truth()
    rois = ds.rois()
    X = np.concatenate([truth[f"sources/{r}"] for r in ds.train_runs])

    def r_with(source: str, subject: str = "S01") -> np.ndarray:
        Y = np.concatenate([ds.responses(subject, r) for r in ds.train_runs])
        x = X[:, _column(truth, source)][:, 0]
        x, Y = (x - x.mean()) / x.std(), (Y - Y.mean(0)) / Y.std(0)
        return x @ Y / len(x)

    names = list(truth["roi_names"])

    def expected(source: str, roi: str) -> tuple[np.ndarray, float]:
        """S01's own voxels of ``roi`` and the r a one-column source with positive weights planted there:
        sqrt(ev * share), attenuated only by the HRF's peak differing from the canonical one."""
        own = truth["planted_roi_index"][0] == names.index(roi)
        share = truth["roi_sources"][names.index(roi), list(truth["source_names"]).index(source)]
        return own, float(np.sqrt(truth["ev"][0][own] * share).mean())

    for source, roi in [("av_speech", "STS"), ("av_speech", "TPOJ1"), ("envelope", "auditory"), ("face", "ventral")]:
        own, r_planted = expected(source, roi)
        r = r_with(source)
        assert r[own].mean() > 0.7 * r_planted, (source, roi, r[own].mean(), r_planted)
        assert r[own].mean() > r[rois["motor"]].mean() + 0.1, (source, roi)
    for source in truth["source_names"]:
        for control in ("motor", "OFC"):
            assert abs(r_with(str(source))[rois[control]].mean()) < 0.08, (source, control)
    # the shares say so too: motor and OFC get nothing, every other planted ROI sums to 1
    assert truth["roi_sources"][names.index("motor")].sum() == 0 == truth["roi_sources"][names.index("OFC")].sum()
    for roi in MOVIE_ROI_SOURCES:
        assert truth["roi_sources"][names.index(roi)].sum() == pytest.approx(1.0)
    # explainable variance estimated from the repeats matches what was planted
    ev_hat = ceiling.explainable_variance(ds.repeats("S01", ds.test_runs[0]))
    for roi in ("visual", "auditory", "STS"):
        assert ev_hat[rois[roi]].mean() == pytest.approx(truth["ev"][0][rois[roi]].mean(), abs=0.06), roi
    assert abs(ev_hat[rois["motor"]].mean()) < 0.04


def test_movie_cohort_errors(movie_cohort):
    ds = movie_cohort
    with pytest.raises(ValueError, match="unknown run 's09e99'.*valid"):
        ds.frames("s09e99")
    with pytest.raises(ValueError, match="unknown subject 'UTS01'.*valid"):
        ds.responses("UTS01", ds.runs[0])
    with pytest.raises(ValueError, match="unknown run"):
        ds.speakers("chapel")


def test_movie_cohort_is_deterministic(movie_cohort, tmp_path):
    again = generate_movie(seed=0, root=tmp_path / "again")
    assert movie_fingerprint(again) == movie_fingerprint(movie_cohort.root)
    for run in movie_cohort.runs:
        pd.testing.assert_frame_equal(pd.read_csv(again / "stimuli" / f"{run}_shots.tsv", sep="\t"),
                                      pd.read_csv(movie_cohort.root / "stimuli" / f"{run}_shots.tsv", sep="\t"))


def test_movie_cohort_fulfils_the_dataset_contract(movie_cohort):
    from test_datasets import check_contract

    check_contract(movie_cohort, movie_cohort.rois())
    reps = movie_cohort.repeats("S03", movie_cohort.test_runs[0])
    np.testing.assert_allclose(reps.mean(0), movie_cohort.responses("S03", movie_cohort.test_runs[0]), rtol=1e-5, atol=1e-6)


def test_movie_frames_that_differ_from_the_simulated_ones_are_refused(movie_cohort, tmp_path):
    import shutil

    from brainalign.datasets import SimulatedMovie

    root = tmp_path / "copy"
    shutil.copytree(movie_cohort.root, root, ignore=shutil.ignore_patterns("fmri"))
    run = movie_cohort.runs[0]
    shots = pd.read_csv(root / "stimuli" / f"{run}_shots.tsv", sep="\t", keep_default_na=False)
    shots.loc[0, "zoom0"] *= 0.9
    shots.to_csv(root / "stimuli" / f"{run}_shots.tsv", sep="\t", index=False)
    with pytest.raises(RuntimeError, match="regenerate"):
        SimulatedMovie(root).frames(run)


def test_cli_verifies_the_movie_cohort_and_refuses_to_fetch_it(movie_cohort, capsys):
    from brainalign import cli

    assert cli.main(["data", "verify", "simulated-movie"]) == 0
    assert f"fingerprint {movie_fingerprint(movie_cohort.root)[:16]}" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="simulated-movie cohort is generated, not fetched"):
        cli.main(["data", "fetch", "simulated-movie"])


def test_cli_prepares_the_movie_cohorts_frames_and_refuses_a_dataset_without_video(movie_cohort, monkeypatch, capsys):
    from brainalign import cli, models
    from brainalign.models import vision

    assert cli.main(["data", "prepare", "simulated-movie"]) == 0
    assert f"the frames of {len(movie_cohort.runs)} runs" in capsys.readouterr().out

    def refuse(*args, **kwargs):
        raise AssertionError("frame states computed again: `data prepare` did not cache them")

    monkeypatch.setattr(vision, "vision_hidden_states", refuse)
    lm = models.load_model("efficientnet-lite0")
    for run in (movie_cohort.train_runs[0], movie_cohort.test_runs[0]):
        frames, _ = movie_cohort.frames(run)
        states = models.frame_states(lm, frames)
        assert len(states) == lm.spec.n_layers + 1 and all(len(s) == len(frames) for s in states)
    with pytest.raises(SystemExit, match="has no video.*simulated-movie"):
        cli.main(["data", "prepare", "simulated"])
