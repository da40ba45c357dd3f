"""Downstream task loaders (MUStARD, CMU-MOSEI) on synthetic fixtures written in the real formats."""

import json
import pickle

import h5py
import numpy as np
import pytest

from brainalign import tasks
from brainalign.tasks import TaskDataError


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    """A private data home."""
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def mustard(tmp_path):
    return tasks.write_mustard_fixture(tmp_path / "mustard", n=40, seed=3)


@pytest.fixture
def mosei(tmp_path):
    return tasks.write_mosei_fixture(tmp_path / "mosei", n_videos=20, seed=3)


# -- MUStARD -------------------------------------------------------------------------------
def test_mustard_fixture_has_the_release_schema(mustard):
    raw = json.loads((mustard / "data" / "sarcasm_data.json").read_text())
    assert len(raw) == 40
    for uid, item in raw.items():
        assert set(item) == set(tasks.MUSTARD_KEYS)
        assert isinstance(item["utterance"], str) and "synthetic" in item["utterance"]
        assert isinstance(item["speaker"], str) and isinstance(item["show"], str)
        assert isinstance(item["context"], list) and all(isinstance(c, str) for c in item["context"])
        assert len(item["context_speakers"]) == len(item["context"])
        assert isinstance(item["sarcasm"], bool)
        assert uid.split("_")[0].isdigit() and uid.split("_")[1].isdigit()
    with open(mustard / "data" / "split_indices.p", "rb") as f:
        folds = pickle.load(f, encoding="latin1")
    assert len(folds) == 5 and all(isinstance(tr, np.ndarray) and isinstance(te, np.ndarray) for tr, te in folds)


def test_load_mustard_round_trip(mustard):
    raw = json.loads((mustard / "data" / "sarcasm_data.json").read_text())
    table = tasks.load_mustard(mustard)
    assert list(table["id"]) == list(raw)
    assert list(table["order"]) == list(range(40))
    assert list(table.columns) == ["id", "order", "utterance", "speaker", "context", "context_speakers", "show", "sarcasm",
                                   "utterance_video", "context_video"]
    first = raw[table["id"][0]]
    assert table["utterance"][0] == first["utterance"] and table["context"][0] == first["context"]
    assert table["sarcasm"].dtype == bool and table["sarcasm"].sum() == 20
    assert set(table["show"]) == set(tasks.MUSTARD_SHOWS)
    assert table["utterance_video"].isna().all() and table.attrs["n_videos"] == 0
    assert table.attrs["synthetic"] is True and tasks.is_synthetic(table)
    assert tasks.is_synthetic(table[table["show"] == "BBT"])  # survives subsetting


def test_load_mustard_defaults_to_data_home(home):
    tasks.write_mustard_fixture(home / "mustard", n=20)
    assert len(tasks.load_mustard()) == 20


def test_mustard_finds_clips(mustard):
    ids = tasks.load_mustard(mustard)["id"].tolist()
    (mustard / "videos" / "utterances_final").mkdir(parents=True)
    (mustard / "videos" / "context_final").mkdir(parents=True)
    (mustard / "videos" / "utterances_final" / f"{ids[0]}.mp4").write_bytes(b"\0")
    (mustard / "videos" / "context_final" / f"{ids[0]}_c.mp4").write_bytes(b"\0")
    (mustard / "videos" / "utterances_final" / f"{ids[1]}.mp4").write_bytes(b"")  # empty: not a clip
    table = tasks.load_mustard(mustard)
    assert table["utterance_video"][0].endswith(f"utterances_final/{ids[0]}.mp4")
    assert table["context_video"][0].endswith(f"context_final/{ids[0]}_c.mp4")
    assert table["utterance_video"][1] is None and table.attrs["n_videos"] == 1


def test_real_folder_is_not_synthetic(mustard):
    (mustard / tasks.SYNTHETIC_MARKER).unlink()
    table = tasks.load_mustard(mustard)
    assert table.attrs["synthetic"] is False and not tasks.is_synthetic(table)
    assert not tasks.is_synthetic(tasks.mustard_folds(table))
    with pytest.raises(FileExistsError, match="refusing to overwrite real data"):
        tasks.write_mustard_fixture(mustard, n=20)


def _check_folds(folds, n, labels):
    tests = np.concatenate([s.test for s in folds])
    assert sorted(tests.tolist()) == list(range(n))  # test sets partition the table
    for s in folds:
        train, test = s
        assert np.intersect1d(train, test).size == 0 and len(train) + len(test) == n
        # stratified: each test fold's sarcastic share is within one utterance of the overall share
        assert abs(labels[test].sum() - labels.mean() * len(test)) <= 1


def test_mustard_folds_from_the_split_file(mustard):
    table = tasks.load_mustard(mustard)
    folds = tasks.mustard_folds(table)
    assert len(folds) == 5 and all(s.synthetic for s in folds)
    assert folds[0].source.endswith("split_indices.p")
    labels = table["sarcasm"].to_numpy()
    _check_folds(folds, len(table), labels)
    with open(mustard / "data" / "split_indices.p", "rb") as f:
        released = pickle.load(f, encoding="latin1")
    assert np.array_equal(folds[2].test, np.sort(released[2][1]))


def test_mustard_folds_follow_ids_when_rows_are_reordered(mustard):
    table = tasks.load_mustard(mustard)
    folds = tasks.mustard_folds(table)
    shuffled = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    moved = tasks.mustard_folds(shuffled, root=mustard)
    for a, b in zip(folds, moved):
        assert set(table["id"].to_numpy()[a.test]) == set(shuffled["id"].to_numpy()[b.test])
    with pytest.raises(ValueError, match="split the full table"):
        tasks.mustard_folds(table.iloc[:30], root=mustard)


def test_mustard_folds_fallback_is_seeded_and_stratified(mustard):
    (mustard / "data" / "split_indices.p").unlink()
    table = tasks.load_mustard(mustard)
    folds = tasks.mustard_folds(table, seed=1)
    assert "StratifiedKFold" in folds[0].source and "random_state=1" in folds[0].source
    _check_folds(folds, len(table), table["sarcasm"].to_numpy())
    again = tasks.mustard_folds(table, seed=1)
    other = tasks.mustard_folds(table, seed=2)
    assert all(np.array_equal(a.test, b.test) for a, b in zip(folds, again))
    assert not all(np.array_equal(a.test, b.test) for a, b in zip(folds, other))


def test_mustard_speaker_independent(mustard):
    table = tasks.load_mustard(mustard)
    split = tasks.mustard_speaker_independent(table)
    train, test = split
    assert set(table["show"].to_numpy()[test]) == {"FRIENDS"}
    assert "FRIENDS" not in set(table["show"].to_numpy()[train])
    assert len(train) + len(test) == len(table) and np.intersect1d(train, test).size == 0
    assert not set(table["speaker"].to_numpy()[test]) & set(table["speaker"].to_numpy()[train])  # unseen speakers
    assert split.synthetic
    table.loc[:, "show"] = None
    with pytest.raises(ValueError, match="no 'show' labels"):
        tasks.mustard_speaker_independent(table)


def test_mustard_missing_data_says_where_it_comes_from(home):
    with pytest.raises(FileNotFoundError) as err:
        tasks.load_mustard()
    msg = str(err.value)
    assert str(home / "mustard" / "data" / "sarcasm_data.json") in msg
    assert "github.com/soujanyaporia/MUStARD" in msg and "drive.google.com" in msg and "write_mustard_fixture" in msg


def _rewrite(mustard, edit):
    path = mustard / "data" / "sarcasm_data.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


def test_mustard_bad_labels_and_corrupt_files(mustard):
    first = next(iter(json.loads((mustard / "data" / "sarcasm_data.json").read_text())))
    _rewrite(mustard, lambda raw: raw[first].update(sarcasm=1))
    with pytest.raises(TaskDataError, match=rf"utterance '{first}' has sarcasm=1; valid labels: true, false"):
        tasks.load_mustard(mustard)
    _rewrite(mustard, lambda raw: raw[first].pop("sarcasm"))
    with pytest.raises(TaskDataError, match=r"lacks \['sarcasm'\]"):
        tasks.load_mustard(mustard)
    _rewrite(mustard, lambda raw: raw[first].update(sarcasm=True, context="not a list"))
    with pytest.raises(TaskDataError, match="expected a list of strings"):
        tasks.load_mustard(mustard)
    (mustard / "data" / "sarcasm_data.json").write_text('{"1_60": {"utterance": ')
    with pytest.raises(TaskDataError, match="is not valid JSON"):
        tasks.load_mustard(mustard)


def test_mustard_older_release_without_show(mustard):
    _rewrite(mustard, lambda raw: [item.pop("show") for item in raw.values()])
    table = tasks.load_mustard(mustard)
    assert table["show"].isna().all() and len(tasks.mustard_folds(table)) == 5


def test_mustard_split_file_checks(mustard):
    table = tasks.load_mustard(mustard)
    split = mustard / "data" / "split_indices.p"
    with open(split, "wb") as f:
        pickle.dump([(np.arange(0, 30), np.arange(30, 45))], f, protocol=2)  # indexes past the 40 utterances
    with pytest.raises(TaskDataError, match="does not belong to this sarcasm_data.json"):
        tasks.mustard_folds(table)
    with open(split, "wb") as f:
        pickle.dump([(np.arange(0, 30), np.arange(25, 40))], f, protocol=2)
    with pytest.raises(TaskDataError, match="overlap"):
        tasks.mustard_folds(table)

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled",))

    split.write_bytes(pickle.dumps([Evil()], protocol=2))
    with pytest.raises(TaskDataError, match="not allowed in a split file"):
        tasks.mustard_folds(table)


def test_mustard_fixture_arguments(tmp_path):
    with pytest.raises(ValueError, match="n=7"):
        tasks.write_mustard_fixture(tmp_path / "m", n=7)
    a = tasks.load_mustard(tasks.write_mustard_fixture(tmp_path / "a", n=20, seed=5))
    b = tasks.load_mustard(tasks.write_mustard_fixture(tmp_path / "b", n=20, seed=5))
    c = tasks.load_mustard(tasks.write_mustard_fixture(tmp_path / "c", n=20, seed=6))
    assert a.equals(b) and not a["sarcasm"].equals(c["sarcasm"])


# -- CMU-MOSEI -----------------------------------------------------------------------------
def test_mosei_fixture_has_the_sdk_layout(mosei):
    with h5py.File(mosei / "CMU_MOSEI_Labels.csd", "r") as f:
        (root,) = list(f)
        seq = f[root]
        assert set(seq) == {"data", "metadata"}
        vid = next(iter(seq["data"]))
        feats, inter = seq["data"][vid]["features"][()], seq["data"][vid]["intervals"][()]
        assert feats.shape[1] == 7 and inter.shape == (feats.shape[0], 2)
        assert json.loads(seq["metadata"]["dimension names"][0]) == list(tasks.MOSEI_LABELS)
        assert "SYNTHETIC" in json.loads(seq["metadata"]["computational sequence description"][0])
    text = (mosei / "cmu_mosei_std_folds.py").read_text()
    assert "standard_train_fold=" in text and "standard_valid_fold=" in text and "standard_test_fold=" in text


def test_load_mosei_round_trip(mosei):
    table = tasks.load_mosei(mosei)
    with h5py.File(mosei / "CMU_MOSEI_Labels.csd", "r") as f:
        data = f["All Labels"]["data"]
        n = sum(data[v]["features"].shape[0] for v in data)
        vid = sorted(data)[4]
        feats, inter = data[vid]["features"][()], data[vid]["intervals"][()]
    assert len(table) == n and table["video"].nunique() == 20
    rows = table[table["video"] == vid]
    assert np.allclose(rows[list(tasks.MOSEI_LABELS)].to_numpy(), feats)
    assert np.allclose(rows[["start", "end"]].to_numpy(), inter)
    assert list(rows["segment_id"]) == [f"{vid}[{i}]" for i in range(len(rows))]
    s = table["sentiment"].to_numpy()
    assert s.min() >= -3 and s.max() <= 3
    assert np.array_equal(table["binary"].to_numpy(), (s >= 0).astype(int))
    assert np.array_equal(table["nonzero"].to_numpy(), s != 0) and (~table["nonzero"]).any()
    assert set(table["sentiment_7"]) <= set(range(-3, 4))
    assert table.attrs["synthetic"] is True and "SYNTHETIC" in table.attrs["description"]


def test_mosei_standard_folds(mosei):
    table = tasks.load_mosei(mosei)
    assert set(table["split"]) == {"train", "valid", "test"}
    per_video = table.groupby("video")["split"].nunique()
    assert (per_video == 1).all()  # folds are by video, never splitting one
    counts = table.drop_duplicates("video")["split"].value_counts()
    assert counts["train"] > counts["test"] >= counts["valid"] >= 1
    (mosei / "cmu_mosei_std_folds.py").unlink()
    table = tasks.load_mosei(mosei)
    assert table["split"].isna().all() and table.attrs["folds"] is None


def test_mosei_folds_file_is_parsed_not_executed(mosei, tmp_path):
    marker = tmp_path / "executed"
    (mosei / "cmu_mosei_std_folds.py").write_text(
        f"open({str(marker)!r}, 'w')\nstandard_train_fold=['synth000000']\nstandard_valid_fold=[]\n"
        "standard_test_fold=['synth000000']\n")
    with pytest.raises(TaskDataError, match="in both the train and the test fold"):
        tasks.load_mosei(mosei)
    assert not marker.exists()
    (mosei / "cmu_mosei_std_folds.py").write_text("standard_train_fold=['a']\n")
    with pytest.raises(TaskDataError, match="does not define"):
        tasks.load_mosei(mosei)


def test_mosei_seven_class():
    s = np.array([-3.0, -2.5, -2.0, -1.5, -0.4, 0.0, 0.4, 1.0, 1.5, 2.5, 3.0])
    assert tasks.mosei_seven_class(s).tolist() == [-3, -2, -2, -2, 0, 0, 0, 1, 2, 2, 3]
    assert tasks.mosei_seven_class(s, "sdk").tolist() == [-3, -3, -2, -2, -1, 0, 1, 1, 2, 3, 3]
    with pytest.raises(ValueError, match=r"valid: \['round', 'sdk'\]"):
        tasks.mosei_seven_class(s, "floor")


def _set_label(mosei, value, column=0):
    with h5py.File(mosei / "CMU_MOSEI_Labels.csd", "r+") as f:
        ds = f["All Labels"]["data"]["synth000003"]["features"]
        feats = ds[()]
        feats[1, column] = value
        ds[...] = feats


def test_mosei_bad_labels(mosei):
    _set_label(mosei, 3.5)
    with pytest.raises(TaskDataError, match=r"'synth000003' segment 1 has sentiment 3.5; valid range: \[-3, 3\]"):
        tasks.load_mosei(mosei)
    _set_label(mosei, np.nan)
    with pytest.raises(TaskDataError, match="sentiment nan"):
        tasks.load_mosei(mosei)
    _set_label(mosei, 0.0)
    _set_label(mosei, -1.0, column=3)
    with pytest.raises(TaskDataError, match=r"\('anger', -1.0\)\]; valid range: \[0, 3\]"):
        tasks.load_mosei(mosei)


def test_mosei_missing_and_corrupt(home, mosei):
    with pytest.raises(FileNotFoundError) as err:
        tasks.load_mosei()
    msg = str(err.value)
    assert str(home / "cmu_mosei" / "CMU_MOSEI_Labels.csd") in msg and "CMU-MultimodalSDK" in msg
    assert "cmu_mosei_std_folds.py" in msg and "write_mosei_fixture" in msg
    (mosei / "CMU_MOSEI_Labels.csd").write_bytes(b"<html>not found</html>")
    with pytest.raises(TaskDataError, match="not a readable HDF5 computational sequence"):
        tasks.load_mosei(mosei)
    with h5py.File(mosei / "CMU_MOSEI_Labels.csd", "w") as f:
        f.create_dataset("data", data=np.zeros(3))
    with pytest.raises(TaskDataError, match="expected a computational sequence"):
        tasks.load_mosei(mosei)


def test_mosei_fixture_refuses_real_data(mosei):
    (mosei / tasks.SYNTHETIC_MARKER).unlink()
    assert tasks.load_mosei(mosei).attrs["synthetic"] is False
    with pytest.raises(FileExistsError, match="refusing to overwrite real data"):
        tasks.write_mosei_fixture(mosei)
