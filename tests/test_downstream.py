"""Study 3's offline downstream probes: clips, window labels, grouped folds, probe scores and their statistics."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from brainalign import stimuli
from brainalign.simulate import movie_manifest, movie_root
from brainalign.tuning import downstream

SCENES = ["camera", "coffee", "coins", "rocket"]


@pytest.fixture(scope="module")
def small():
    """Six clips of three lines each (about 3 s to make)."""
    return downstream.downstream_clips(seed=0, n_clips=6, lines_per_clip=3)


def _windows(task, n_clips=30, per_clip=12, seed=0):
    """A table of windows without movies: random speakers and faces (related) or scenes (unrelated)."""
    rng = np.random.default_rng(seed)
    clip = np.repeat(np.arange(n_clips), per_clip)
    speaker, face = rng.choice(["A", "B"], len(clip)), rng.choice(["A", "B"], len(clip))
    label = (speaker == face).astype(int) if task == "related" else rng.choice(SCENES, len(clip))
    return pd.DataFrame({"clip": clip, "group": clip, "task": task, "label": list(label),
                         "speaker": speaker, "on_screen": face})


def _planted(labels, strength, seed=1):
    """Features whose first columns are the one-hot label times ``strength``, plus unit noise."""
    labels = np.asarray(labels.tolist())
    onehot = (labels[:, None] == np.unique(labels)).astype(float)
    noise = np.random.default_rng(seed).standard_normal((len(labels), onehot.shape[1] + 8))
    noise[:, : onehot.shape[1]] += strength * onehot
    return noise


def test_window_labels_agree_with_on_screen_at_and_speaking_at(small):
    clips, windows = small
    assert set(windows["task"]) == set(downstream.TASKS)
    for w in windows.itertuples():
        clip = clips[w.clip]
        last = w.end - 1.0 + np.arange(0.0, 1.0, 0.05)  # the last `steady` second
        faces = set(stimuli.on_screen_at(clip.shots, last))
        shot = np.searchsorted(clip.shots["onset"], last, side="right") - 1
        assert faces == {w.on_screen} and set(clip.shots["image"].iloc[shot]) == {w.image}, w
        assert w.end - w.start == pytest.approx(3.0) and w.start >= 0 and w.end <= clip.duration, w
        if w.task == "unrelated":
            assert w.on_screen == "" and w.label == w.image, w
        else:
            talking = stimuli.speaking_at(clip.words, last)
            assert set(talking) <= {w.speaker, ""} and np.mean(talking == w.speaker) > 0.5, w
            assert w.on_screen != "" and w.label == int(w.on_screen == w.speaker), w


def test_windows_lie_on_the_grid_and_related_pairs_are_balanced(small):
    _, windows = small
    assert np.allclose(windows["end"] * 2, np.round(windows["end"] * 2))
    assert not windows.duplicated(["clip", "end"]).any()
    pairs = windows[windows["task"] == "related"].groupby(["speaker", "on_screen"]).size()
    assert len(pairs) == 4 and pairs.min() == pairs.max() > 0, pairs


def test_clips_speak_their_own_lines_and_never_the_test_episode(small):
    split = movie_manifest()
    episodes = stimuli.dialogue_episodes(split["train"] + split["test"])
    test_lines = {line for run in split["test"] for line in episodes[run]["line"]}
    assert len(test_lines) > 5 and test_lines <= set(stimuli.read_dialogue()["line"])
    for run in split["test"]:  # and as the cohort recorded them, where it has been generated
        recorded = movie_root(0) / "stimuli" / f"{run}_lines.tsv"
        if recorded.is_file():
            assert set(pd.read_csv(recorded, sep="\t", keep_default_na=False)["line"]) == set(episodes[run]["line"])
    default = downstream.downstream_lines()
    spoken = [line for lines in default for line in lines["line"]]
    assert len(default) == 29 and len(spoken) == len(set(spoken)) == 116
    assert not test_lines & set(spoken)
    clips, _ = small
    for clip, lines in zip(clips, downstream.downstream_lines(6, 3)):
        assert list(clip.lines["line"]) == list(lines["line"])


@pytest.mark.parametrize("n_folds", [2, 5, 30])
def test_no_clip_is_on_both_sides_of_a_fold(n_folds):
    windows = _windows("related")
    groups = windows["group"].to_numpy()
    folds = downstream.downstream_folds(windows, "related", n_folds=n_folds, seed=3)
    assert len(folds) == n_folds
    for train, test in folds:
        assert len(test) and not set(groups[train]) & set(groups[test])
        assert len(train) + len(test) == len(windows)
    assert np.array_equal(np.sort(np.concatenate([test for _, test in folds])), np.arange(len(windows)))


@pytest.mark.parametrize("task", ["related", "unrelated"])
def test_a_planted_label_is_found_and_noise_is_at_chance(task):
    windows = _windows(task)
    chance = 1 / windows["label"].nunique()
    noise = {f"noise{k}": _planted(windows["label"], 0.0, seed=10 + k) for k in range(20)}
    features = {"planted": _planted(windows["label"], 1.5), **noise}
    table = downstream.probe_downstream(features, windows, task, seed=0, n_boot=500)
    assert table["chance"].eq(chance).all()
    planted = table.loc["planted"]
    assert planted.score > chance + 0.3 and planted.ci_low > chance, planted
    noise = table.loc[list(noise)]
    covered = (noise["ci_low"] < chance) & (chance < noise["ci_high"])
    # the intervals hold the probes fixed: over 60 draws of noise they covered chance 85-93% of the time (nominal 95%);
    # at 85%, 14 or more of 20 draws cover it with probability 0.98, and the mean of 20 scores lies within 0.03 of chance
    assert covered.sum() >= 14 and abs(noise["score"].mean() - chance) < 0.03, noise
    assert (noise["diff_high"] < 0).all() and (noise["p"] > 0.99).all(), noise
    predictions = downstream.downstream_predictions(features, windows, task, seed=0)
    for name in features:  # the score is scikit-learn's balanced accuracy of the held-out predictions
        assert table.loc[name, "score"] == pytest.approx(balanced_accuracy_score(predictions["label"], predictions[name]))


def _related_shots(seed, n_clips=30, per_clip=16, shot=4):
    """Related-task windows as the clips give them: speaker and face fixed for a shot of 4 windows, the
    (speaker, face) pairs balanced over the whole table (so that each fold's clips leave the rest unbalanced)."""
    rng = np.random.default_rng(seed)
    clip = np.repeat(np.arange(n_clips), per_clip)
    speaker, face = (np.repeat(rng.choice(["A", "B"], len(clip) // shot), shot) for _ in range(2))
    windows = pd.DataFrame({"clip": clip, "group": clip, "task": "related", "label": list((speaker == face).astype(int)),
                            "speaker": speaker, "on_screen": face})
    pairs = windows.groupby(["speaker", "on_screen"])
    return pairs.sample(n=pairs.size().min(), random_state=seed).sort_index().reset_index(drop=True)


def test_speaker_and_face_apart_do_not_give_the_related_label_their_conjunction_does():
    apart_scores = []
    for seed in range(4, 8):  # without the training windows balanced in each fold, these scored 0.38-0.48
        windows = _related_shots(seed)
        speaker = (windows["speaker"] == "A").to_numpy(float)
        face = (windows["on_screen"] == "A").to_numpy(float)
        apart = np.c_[speaker, face] + 0.1 * np.random.default_rng(seed).standard_normal((len(windows), 2))
        table = downstream.probe_downstream({"apart": apart, "together": np.c_[apart, speaker * face]}, windows, "related")
        assert table.loc["apart", "ci_low"] < 0.5 < table.loc["apart", "ci_high"], table
        assert table.loc["together", "ci_low"] > 0.9 and table.loc["together", "p"] < 0.01, table
        apart_scores.append(table.loc["apart", "score"])
    assert abs(np.mean(apart_scores) - 0.5) < 0.03, apart_scores


def test_a_model_against_itself_differs_by_zero():
    windows = _windows("unrelated")
    X = _planted(windows["label"], 1.0)
    table = downstream.probe_downstream({"a": X, "b": X.copy()}, windows, "unrelated", n_boot=200)
    assert table.loc["b", "score"] == table.loc["a", "score"]
    assert (table.loc["b", ["diff", "diff_low", "diff_high"]] == 0).all() and table.loc["b", "p"] == 1.0
    assert np.isnan(table.loc["a", "p"]) and (table["reference"] == "a").all()


def test_the_same_seed_gives_the_same_table_and_clips():
    windows = _windows("related")
    features = {"a": _planted(windows["label"], 0.5), "b": _planted(windows["label"], 0.2, seed=2)}
    first = downstream.probe_downstream(features, windows, "related", seed=7, reference="b")
    pd.testing.assert_frame_equal(first, downstream.probe_downstream(features, windows, "related", seed=7, reference="b"))
    clips_a, windows_a = downstream.downstream_clips(seed=1, n_clips=2, lines_per_clip=2)
    clips_b, windows_b = downstream.downstream_clips(seed=1, n_clips=2, lines_per_clip=2)
    pd.testing.assert_frame_equal(windows_a, windows_b)
    assert all(np.array_equal(a.frames, b.frames) and np.array_equal(a.audio, b.audio) for a, b in zip(clips_a, clips_b))


@pytest.mark.parametrize("change, message", [
    (dict(task="irony"), r"unknown task 'irony'; valid tasks: \['related', 'unrelated', 'sarcasm', 'sentiment', 'emotion'\]"),
    (dict(n_folds=1), r"n_folds=1 must be an integer in \[2, 30\]"),
    (dict(n_folds=31), r"n_folds=31 must be an integer in \[2, 30\] \(the windows of task 'related' come from 30 groups\)"),
    (dict(rows=359), r"features\['a'\] has shape \(359, 10\); task 'related' has 360 windows, so it must be \(360, dim\)"),
    (dict(reference="c"), r"unknown reference model 'c'; valid: \['a'\]"),
    (dict(n_boot=0), r"n_boot=0 must be an integer >= 1"),
])
def test_bad_input_names_the_value_and_what_is_valid(change, message):
    windows = _windows("related")
    X = _planted(windows["label"], 1.0)[: change.get("rows", len(windows))]
    kwargs = {k: v for k, v in change.items() if k != "rows"}
    with pytest.raises(ValueError, match=message):
        downstream.probe_downstream({"a": X}, windows, **{"task": "related", **kwargs})


def test_too_many_clips_name_how_many_the_dialogue_allows():
    with pytest.raises(ValueError, match=r"n_clips=30 must be an integer in \[1, 29\] \(117 lines of dialogue, 4 per clip"):
        downstream.downstream_lines(n_clips=30)


def test_given_folds_are_the_outer_folds_and_untested_windows_are_left_out():
    windows = _windows("unrelated")
    train, test = np.flatnonzero(windows["clip"] < 20), np.flatnonzero(windows["clip"] >= 24)
    features = {"planted": _planted(windows["label"], 1.5), "noise": _planted(windows["label"], 0.0, seed=3)}
    predictions = downstream.downstream_predictions(features, windows, "unrelated", n_folds=3, folds=[(train, test)])
    assert len(predictions) == len(test) and set(predictions["group"]) == set(range(24, 30)) and (predictions["fold"] == 0).all()
    table = downstream.probe_downstream(features, windows, "unrelated", n_folds=3, n_boot=200, folds=[(train, test)])
    assert table.loc["planted", "score"] > 0.5 and table["n_clips"].eq(6).all() and table["n_windows"].eq(len(test)).all()
    for folds, message in [([(train, train[:5])], "on both sides"), ([(train, test), (train[:10], test)], "overlap"),
                           ([(train, [len(windows)])], "outside"), ([], "empty")]:
        with pytest.raises(ValueError, match=message):
            downstream.downstream_predictions(features, windows, "unrelated", folds=folds)


def test_study_windows_read_the_releases_items_and_splits(tmp_path):
    from brainalign import tasks

    root = tasks.write_mustard_fixture(tmp_path / "mustard", n=20)
    table = tasks.load_mustard(root)
    for uid in table["id"][:-1]:
        (root / tasks.MUSTARD_VIDEO_DIRS[0][0]).mkdir(parents=True, exist_ok=True)
        (root / tasks.MUSTARD_VIDEO_DIRS[0][0] / f"{uid}.mp4").write_bytes(b"clip")
    with pytest.raises(FileNotFoundError, match=r"1 of the 20 MUStARD utterance clips are not on disk"):
        downstream.study_windows(tasks.load_mustard(root))
    (root / tasks.MUSTARD_VIDEO_DIRS[0][0] / f"{table['id'].iloc[-1]}.mp4").write_bytes(b"clip")
    mosei_root = tasks.write_mosei_fixture(tmp_path / "mosei", n_videos=10)
    mosei = tasks.load_mosei(mosei_root)
    others = sorted(set(mosei["video"]) - set(mosei.loc[mosei["split"] == "test", "video"]))
    kept = sorted(set(mosei.loc[mosei["split"] == "test", "video"])) + others[:4]
    for video in kept:
        (mosei_root / tasks.MOSEI_VIDEO_DIRS[0]).mkdir(parents=True, exist_ok=True)
        (mosei_root / tasks.MOSEI_VIDEO_DIRS[0] / f"{video}.mp4").write_bytes(b"recording")
    study = downstream.study_windows(tasks.load_mustard(root), tasks.load_mosei(mosei_root))
    windows, splits = study["sarcasm"]
    assert list(windows["label"]) == list(table["sarcasm"].astype(int)) and windows["group"].is_unique
    assert windows.attrs["synthetic"] and len(splits["5-fold"]) == 5
    assert sorted(np.concatenate([test for _, test in splits["5-fold"]])) == list(range(20))
    (train, test), = splits["speaker-independent"]
    assert set(table["show"].iloc[test]) == {"FRIENDS"} and "FRIENDS" not in set(table["show"].iloc[train])
    windows, splits = study["sentiment"]
    segments = mosei[mosei["video"].isin(kept)]
    assert len(windows) == len(segments) and windows.attrs["left_out"] == len(mosei) - len(segments)
    assert list(windows["label"]) == list((segments["sentiment"] >= 0).astype(int))
    (train, test), = splits["standard folds"]
    assert set(windows["group"].iloc[test]) == set(segments.loc[segments["split"] == "test", "video"])
    assert not set(windows["group"].iloc[train]) & set(windows["group"].iloc[test])
    # emotion: the strongest emotion of the same segments; a tie for the strongest, or no emotion at all, leaves one out
    emotions = list(tasks.MOSEI_LABELS[1:])
    rated = tasks.load_mosei(mosei_root)  # with the recordings put on disk above
    usable = np.flatnonzero(rated["video"].isin(kept).to_numpy())
    rated.loc[:, emotions] = 1.0
    rated.loc[usable[0], emotions] = [0.0] * 6  # no emotion
    rated.loc[usable[1], ["sad", "anger"]] = 2.0  # a tie
    for k, name in zip(usable[2:], np.resize(emotions, len(usable) - 2)):
        rated.loc[k, name] = 3.0
    windows, splits = downstream.study_windows(mosei=rated)["emotion"]
    assert list(windows["label"]) == list(np.resize(emotions, len(usable) - 2))
    assert list(windows["start"]) == list(rated["start"].iloc[usable[2:]])
    assert windows.attrs["left_out"] == len(mosei) - len(segments) + 2
    (train, test), = splits["standard folds"]
    assert set(windows["group"].iloc[test]) == set(rated["video"].iloc[usable[2:]][rated["split"].iloc[usable[2:]] == "test"])
    assert not set(windows["group"].iloc[train]) & set(windows["group"].iloc[test])
    assert "emotion" not in downstream.study_windows(mosei=rated.assign(happy=np.nan))  # a file with sentiment only
    with pytest.raises(ValueError, match="give the MUStARD table"):
        downstream.study_windows()
