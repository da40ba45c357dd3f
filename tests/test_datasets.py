"""The ds003020 layout reader, on a small fixture in the exact on-disk format."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest

from brainalign.datasets import DS003020, load_dataset, read_manifest
from brainalign.stimuli import write_textgrid


@pytest.fixture
def ds003020(tmp_path):
    """Two stories, two subjects; the test story holds 3 repeats stacked as (R * T, V)."""
    deriv = tmp_path / "derivative"
    respdict = {"souls": 40, "wheretheressmoke": 36}
    (deriv / "TextGrids").mkdir(parents=True)
    (deriv / "respdict.json").write_text(json.dumps(respdict))
    words = pd.DataFrame({"word": ["so", "sp", "it", "began"], "onset": [0.5, 0.9, 1.2, 1.5],
                          "offset": [0.9, 1.2, 1.5, 2.0]})
    for story in respdict:
        write_textgrid(deriv / "TextGrids" / f"{story}.TextGrid", words, duration=60.0)
    rng = np.random.default_rng(0)
    for subject in ("UTS01", "UTS02"):
        (deriv / "preprocessed_data" / subject).mkdir(parents=True)
        with h5py.File(deriv / "preprocessed_data" / subject / "souls.hf5", "w") as f:
            f.create_dataset("data", data=rng.standard_normal((40 - 20, 7)))
        with h5py.File(deriv / "preprocessed_data" / subject / "wheretheressmoke.hf5", "w") as f:
            f.create_dataset("resp", data=rng.standard_normal((3 * (36 - 20), 7)))  # older key
    return tmp_path


def test_layout_and_trimming(ds003020):
    ds = DS003020(ds003020, split={"train": ["souls"], "test": ["wheretheressmoke"]})
    assert ds.subjects == ["UTS01", "UTS02"] and ds.runs == ["souls", "wheretheressmoke"]
    y = ds.responses("UTS01", "souls")
    assert y.dtype == np.float32 and y.shape == (20, 7)
    times = ds.tr_times("souls")
    assert len(times) == len(y)
    # grid of respdict - 5 TRs starting 10 s before the sound, rows [10:-5] kept
    assert times[0] == pytest.approx(10 * 2.0 - 10.0) and np.allclose(np.diff(times), 2.0)
    assert ds.repeats("UTS01", "souls") is None


def test_repeats_stacked_and_averaged(ds003020):
    ds = DS003020(ds003020)
    reps = ds.repeats("UTS02", "wheretheressmoke")
    assert reps.shape == (3, 16, 7)
    np.testing.assert_allclose(ds.responses("UTS02", "wheretheressmoke"), reps.mean(0), rtol=1e-6)


def test_words_drop_nonwords(ds003020):
    words = DS003020(ds003020).words("souls")
    assert list(words["word"]) == ["so", "it", "began"]


def test_bad_input_is_named(ds003020, tmp_path):
    ds = DS003020(ds003020)
    with pytest.raises(ValueError, match="unknown subject 'UTS09'.*UTS01"):
        ds.responses("UTS09", "souls")
    with pytest.raises(ValueError, match="unknown run 'avatar'"):
        ds.responses("UTS01", "avatar")
    (ds003020 / "derivative" / "preprocessed_data" / "UTS01" / "souls.hf5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        ds.responses("UTS01", "souls")
    with pytest.raises(FileNotFoundError, match="respdict.json"):
        DS003020(tmp_path / "empty")


def test_unknown_dataset_and_offline_real_data(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*simulated"):
        load_dataset("nope")
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="ds003020.*download"):
        load_dataset("lebel2023")


def test_manifests_are_versioned_and_consistent():
    real = read_manifest("lebel2023")
    respdict = json.loads((__import__("pathlib").Path(__file__).parent / "fixtures" / "ds003020_respdict.json").read_text())
    assert real["version"] >= 1 and real["test"] == ["wheretheressmoke"]
    assert sorted(real["train"] + real["test"]) == sorted(respdict)
    sim = read_manifest("simulated")
    assert not set(sim["train"]) & set(sim["test"])
    assert set(sim["held_out_subjects"]) <= set(sim["subjects"]) and len(sim["subjects"]) >= 4
    with pytest.raises(ValueError, match="manifests exist for"):
        read_manifest("nope")
