"""The committed encodability table: complete, reproducible, and able to say "not encoded"."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest

from brainalign import cli, encodability, models, probing, removal
from brainalign.cache import digest

RECORD = encodability.load_record()
TABLE = encodability.read_table()


def test_table_covers_every_default_model_property_and_layer():
    assert {models.get_spec(m).kind for m in encodability.DEFAULT_MODELS} == set(encodability.KINDS)
    expected = {(m, p, layer) for m in encodability.DEFAULT_MODELS for p in probing.PROPERTIES
                for layer in range(models.layer_count(m))}
    assert set(zip(TABLE.model, TABLE.property, TABLE.layer)) == expected
    assert len(TABLE) == len(expected)  # no row twice
    assert set(RECORD["models"]) == set(encodability.DEFAULT_MODELS)
    for name, info in RECORD["models"].items():
        assert info["kind"] == models.get_spec(name).kind and info["n_hidden"] == models.layer_count(name)


def test_every_model_is_probed_on_the_same_classes():
    # the baseline (training folds' majority class) depends on the labels only: one value per property
    for prop, rows in TABLE.groupby("property"):
        assert rows.n_classes.nunique() == 1, prop
        np.testing.assert_allclose(rows.baseline, rows.baseline.iloc[0], atol=1e-12, err_msg=prop)


def test_rows_are_consistent_and_verdicts_follow_the_declared_rule():
    np.testing.assert_allclose(TABLE.gain, TABLE.accuracy - TABLE.baseline, atol=1e-12)
    assert (TABLE.ci_low <= TABLE.gain + 1e-9).all() and (TABLE.gain <= TABLE.ci_high + 1e-9).all()
    committed = pd.DataFrame(RECORD["verdicts"])
    recomputed = encodability.verdicts(TABLE)
    pd.testing.assert_frame_equal(committed.reset_index(drop=True), recomputed.reset_index(drop=True))
    for row in recomputed.itertuples():
        rows = TABLE[(TABLE.model == row.model) & (TABLE.property == row.property)]
        assert (row.verdict == "encoded") == bool((rows.ci_low > 0).any())


def test_encoded_reads_the_committed_verdicts_by_any_name_of_a_model(tmp_path):
    verdicts = pd.DataFrame(RECORD["verdicts"])
    for model in encodability.DEFAULT_MODELS:
        mine = verdicts[verdicts.model == model]
        assert encodability.encoded(model) == dict(zip(mine.property, mine.verdict == "encoded"))
    assert encodability.encoded("gpt2") == {}  # never measured
    record = {**RECORD, "verdicts": [{**v, "verdict": "encoded"} for v in RECORD["verdicts"]]}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(record))
    assert all(encodability.encoded("minilm-l6", path).values())


def test_record_says_how_it_was_made():
    stim = RECORD["stimuli"]
    assert stim["n_words"] == sum(len(w) for w in stim["runs"].values()) > 2000
    assert stim["sha256"] == digest(stim["runs"])
    params = RECORD["parameters"]
    assert params["n_folds"] >= 2 and params["gap"] == params["context"] and params["ci"] == 0.95
    assert (params["speech_window"], params["speech_voice"], params["speech_rate"]) == \
        (encodability.SPEECH_WINDOW, encodability.SPEECH_VOICE, encodability.SPEECH_RATE)
    assert f"{params['speech_window']:g} s window" in RECORD["models"]["whisper-tiny-en"]["reader"]
    assert RECORD["software"]["brainalign"] and RECORD["software"]["parser"]


def test_stimuli_are_the_documentation_selection_and_not_the_cohort_text():
    text = " ".join(w for words in RECORD["stimuli"]["runs"].values() for w in words)
    assert "Ishmael" not in text and "whale" not in text.lower()
    # the documentation's text changes between Python releases (the record keeps the words it selected):
    # on the release that wrote the record, the selection is made again and must be the same
    if RECORD["software"]["python"] == ".".join(map(str, sys.version_info[:3])):
        assert encodability.stimulus_runs() == RECORD["stimuli"]["runs"]


@pytest.fixture(scope="module")
def minilm_features(data_home, one_thread):
    """MiniLM's features of the committed stimuli (computed once, in a fresh data home)."""
    lm = models.load_model("minilm-l6")
    runs = RECORD["stimuli"]["runs"]
    annotations = probing.annotate_runs(runs)
    return encodability.stimulus_features(lm, runs, context=RECORD["parameters"]["context"]), annotations


@pytest.mark.parametrize("prop, layer", [("sentence_length", 3), ("object_number", 6)])
def test_recomputing_reproduces_the_committed_numbers(minilm_features, prop, layer):
    X, annotations = minilm_features
    p = RECORD["parameters"]
    labels = probing.property_labels(annotations, n_bins=p["n_bins"], n_top_constituents=p["n_top_constituents"])
    got = encodability.probe_gain(X[layer], labels[prop].to_numpy(), n_folds=p["n_folds"], gap=p["gap"], alpha=p["alpha"],
                                  block_words=p["block_words"], n_boot=p["n_boot"], ci=p["ci"], seed=p["seed"])
    row = TABLE[(TABLE.model == "minilm-l6") & (TABLE.property == prop) & (TABLE.layer == layer)].iloc[0]
    assert got["baseline"] == pytest.approx(row.baseline, abs=1e-12)  # labels only
    for key in ("accuracy", "gain", "ci_low", "ci_high"):  # a few words may flip with another BLAS
        assert got[key] == pytest.approx(row[key], abs=0.005), key


@pytest.fixture(scope="module")
def whisper_fingerprint(data_home, one_thread):
    """Whisper's features of the committed stimuli at the record's fingerprint words, heard again (~15 s)."""
    fingerprint = RECORD["models"]["whisper-tiny-en"]["fingerprint"]
    lm = models.load_model("whisper-tiny-en")
    X = encodability.speech_word_features(lm, RECORD["stimuli"]["runs"], window=RECORD["parameters"]["speech_window"],
                                          words=fingerprint["words"])
    return X, fingerprint


def test_hearing_again_reproduces_the_features_the_whisper_rows_come_from(whisper_fingerprint):
    # the full features take one encoder pass per word (minutes); every 100th word, over all runs, is heard again
    X, fingerprint = whisper_fingerprint
    committed = np.array(fingerprint["norms"])
    assert fingerprint["words"] == list(range(0, RECORD["stimuli"]["n_words"], encodability.FINGERPRINT_EVERY))
    assert committed.shape == (models.layer_count("whisper-tiny-en"), len(fingerprint["words"]))
    rtol = 1e-3  # another BLAS moves a norm by ~1e-6; words differ by far more, so another word, window or voice fails
    assert (committed.std(axis=1) > 10 * rtol * committed.mean(axis=1)).all()
    np.testing.assert_allclose(np.linalg.norm(X, axis=-1), committed, rtol=rtol)


def test_a_speech_model_hears_each_word_up_to_its_offset_only(whisper_fingerprint, one_thread):
    X, fingerprint = whisper_fingerprint
    lm = models.load_model("whisper-tiny-en")
    runs = RECORD["stimuli"]["runs"]
    first = next(iter(runs))
    longer = {first: runs[first] + ["and", "then", "some", "more", "words."]}  # words after it change nothing
    np.testing.assert_allclose(encodability.speech_word_features(lm, longer, words=[0]), X[:, :1], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="positions 0.."):
        encodability.speech_word_features(lm, runs, words=[RECORD["stimuli"]["n_words"]])


def test_sentence_shuffled_labels_are_not_encoded(minilm_features):
    X, annotations = minilm_features
    y = probing.property_labels(annotations, ["sentence_length"])["sentence_length"].to_numpy()
    for seed in (0, 1):
        fake = removal.random_labels(y, annotations["sentence"].to_numpy(), seed=seed)
        res = encodability.probe_gain(X[3], fake, gap=20, n_boot=300)
        assert res["ci_low"] <= 0, res


def test_a_planted_property_is_encoded_and_its_shuffle_is_not():
    rng = np.random.default_rng(0)
    sentences = np.repeat(np.arange(200), 10)
    y = np.array(["a", "b"])[rng.integers(0, 2, 200)][sentences]
    X = rng.standard_normal((2000, 10))
    X[:, 0] += 1.5 * (y == "a")
    found = encodability.probe_gain(X, y, gap=5, n_boot=300)
    assert found["ci_low"] > 0.1 and found["gain"] == pytest.approx(found["accuracy"] - found["baseline"])
    shuffled = encodability.probe_gain(X, removal.random_labels(y, sentences, seed=3), gap=5, n_boot=300)
    assert shuffled["ci_low"] <= 0 and abs(shuffled["gain"]) < 0.05, shuffled
    table = pd.DataFrame([{"model": "m", "property": "p", "layer": 0, **found},
                          {"model": "m", "property": "q", "layer": 0, **shuffled}])
    assert encodability.verdicts(table).verdict.tolist() == ["encoded", "not encoded"]


@pytest.mark.parametrize("name, says", [("minilm", "unknown model 'minilm'"), ("gemma-3-270m", "never evaluated"),
                                        ("efficientnet-lite0", "is a vision model")])
def test_a_bad_model_name_is_refused_naming_the_valid_ones(name, says):
    with pytest.raises(ValueError, match=says) as err:
        encodability.encodability_table(name)
    assert all(m in str(err.value) for m in encodability.DEFAULT_MODELS)
    with pytest.raises(SystemExit, match=says):
        cli.main(["encodability", "--model", name, "--out", "unused.json"])


def test_the_command_names_the_default_models(capsys):
    with pytest.raises(SystemExit):
        cli.main(["encodability", "--help"])
    assert f"(default: {' '.join(encodability.DEFAULT_MODELS)})" in " ".join(capsys.readouterr().out.split())
