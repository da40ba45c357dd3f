import sys

import numpy as np
import pandas as pd
import pytest

from brainalign.stimuli import (
    NONWORDS,
    audio_envelope,
    convolve_hrf,
    hrf,
    lanczos_resample,
    make_delayed,
    read_align_csv,
    read_textgrid,
    sample_times,
    synthesize_speech,
    tr_times,
    word_times,
    write_textgrid,
)

MOBY = ("Call me Ishmael. Some years ago, never mind how long precisely, having little or no money "
        "in my purse, and nothing particular to interest me on shore, I thought I would sail about.")


# -- resampling ------------------------------------------------------------------
def test_tr_times():
    np.testing.assert_array_equal(tr_times(4, 2.0, start=1.0), [1.0, 3.0, 5.0, 7.0])
    assert tr_times(3, 1.5).dtype == np.float64
    with pytest.raises(ValueError, match="tr=0"):
        tr_times(3, 0)


def test_sample_times_centre_or_onset_and_bad_input_named():
    onsets = tr_times(3, 2.0, start=10.0)  # LeBel: 10, 12, 14 s
    np.testing.assert_array_equal(sample_times(onsets, 2.0), [11.0, 13.0, 15.0])  # the Huth lab's from_grid
    np.testing.assert_array_equal(sample_times(onsets, 2.0, at="onset"), onsets)  # Study 1's Narratives code
    with pytest.raises(ValueError, match=r"unknown sampling instant at='middle'; valid: \['centre', 'onset'\]"):
        sample_times(onsets, 2.0, at="middle")
    with pytest.raises(ValueError, match="tr=-1"):
        sample_times(onsets, -1.0)
    with pytest.raises(ValueError, match="1-D"):
        sample_times(np.zeros((2, 2)), 2.0)


def test_word_times_are_midpoints():
    words = pd.DataFrame({"word": ["a", "b"], "onset": [1.0, 2.5], "offset": [1.5, 3.5]})
    np.testing.assert_array_equal(word_times(words), [1.25, 3.0])
    with pytest.raises(ValueError, match=r"lack column\(s\) \['offset'\]"):
        word_times(words.drop(columns="offset"))


def test_lanczos_recovers_a_slow_sinusoid():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.uniform(0.05, 0.35, 1500))  # irregular "word" times, 3 to 20 per second
    grid = tr_times(140, 2.0, start=5.0)
    out = lanczos_resample(np.sin(2 * np.pi * t / 60.0), t, grid)[:, 0]
    density = lanczos_resample(np.ones_like(t), t, grid)[:, 0]
    inner = slice(5, -5)  # away from the edges, where the kernel runs out of samples
    np.testing.assert_allclose(out[inner] / density[inner], np.sin(2 * np.pi * grid / 60.0)[inner], atol=0.05)


def test_lanczos_unnormalised_sum_counts_events():
    t = np.arange(0, 200, 0.25)  # 4 events per second
    grid = tr_times(80, 2.0, start=20.0)
    rate = lanczos_resample(np.ones_like(t), t, grid)
    assert rate.shape == (80, 1)
    # the Lanczos-3 kernel integrates to 0.997 TR, so 4 events/s give about 4 * TR = 8 per sample
    np.testing.assert_allclose(rate[5:-5, 0], 8.0, rtol=0.01)


def test_lanczos_attenuates_above_cutoff():
    t = np.arange(0, 300, 0.1)
    grid = tr_times(140, 2.0, start=10.0)
    two = np.column_stack([np.sin(2 * np.pi * 0.6 * t), np.sin(2 * np.pi * 0.02 * t)])  # cutoff: 0.25 Hz
    out = lanczos_resample(two, t, grid)
    fast, slow = np.abs(out[5:-5]).max(axis=0)
    assert fast < 0.05 * slow


def test_lanczos_shape_errors():
    with pytest.raises(ValueError, match="5 rows"):
        lanczos_resample(np.ones(5), np.arange(4.0), np.arange(10.0))
    with pytest.raises(ValueError, match="new_times"):
        lanczos_resample(np.ones(4), np.arange(4.0), np.array([1.0]))


def test_make_delayed_exact():
    X = np.array([[1, 10], [2, 20], [3, 30]])
    out = make_delayed(X, [0, 1, -1])
    expected = np.array([[1, 10, 0, 0, 2, 20],
                         [2, 20, 1, 10, 3, 30],
                         [3, 30, 2, 20, 0, 0]])
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(make_delayed(X, [2]), [[0, 0], [0, 0], [1, 10]])
    assert make_delayed(X, [5, -5]).sum() == 0
    with pytest.raises(ValueError, match="delays"):
        make_delayed(X, [])


def test_hrf_shape():
    h = hrf(0.1)
    t = np.arange(len(h)) * 0.1
    assert 4.0 <= t[np.argmax(h)] <= 7.0
    assert h.sum() == pytest.approx(1.0) and h.min() < 0
    assert 12 <= t[np.argmin(h)] <= 18
    assert len(hrf(2.0)) == 17  # 0, 2, ..., 32 s


def test_convolve_hrf_is_causal_and_keeps_shape():
    impulse = np.zeros((50, 2))
    impulse[10, 0] = 1
    resp = convolve_hrf(impulse, 2.0)
    assert resp.shape == (50, 2) and resp[:, 1].max() == 0
    assert resp[:10, 0].max() == 0 and np.argmax(resp[:, 0]) == 13  # peak 6 s after the impulse at TR 2
    np.testing.assert_allclose(convolve_hrf(impulse[:, 0], 2.0), resp[:, 0])


# -- word timings from files ----------------------------------------------------
def test_textgrid_round_trip(tmp_path):
    words = pd.DataFrame({"word": ["call", "sp", "me", "{BR}", "ishmael"], "onset": [0.1, 0.4, 0.5, 0.8, 0.9],
                          "offset": [0.4, 0.5, 0.8, 0.9, 1.3]})
    phones = pd.DataFrame({"phone": ["K", "AO", "L"], "onset": [0.1, 0.2, 0.3], "offset": [0.2, 0.3, 0.4]})
    path = write_textgrid(tmp_path / "story.TextGrid", words, phones, duration=2.0)
    assert path.read_text().startswith('File type = "ooTextFile"')
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away
    by_index = read_textgrid(path, tier=1)
    assert list(by_index["word"]) == ["call", "me", "ishmael"]  # "sp" and "{BR}" dropped
    np.testing.assert_allclose(by_index["onset"], [0.1, 0.5, 0.9])
    np.testing.assert_allclose(by_index["offset"], [0.4, 0.8, 1.3])
    for name in ("word", "Words"):
        pd.testing.assert_frame_equal(read_textgrid(path, tier=name), by_index)
    assert list(read_textgrid(path, tier="phone")["word"]) == ["K", "AO", "L"]
    assert read_textgrid(write_textgrid(tmp_path / "nophones.TextGrid", words), tier=0).empty


def test_textgrid_errors(tmp_path):
    path = write_textgrid(tmp_path / "story.TextGrid", pd.DataFrame({"word": ["a"], "onset": [0.0], "offset": [1.0]}))
    with pytest.raises(ValueError, match="no tier 'syllables'.*phones.*words"):
        read_textgrid(path, tier="syllables")
    with pytest.raises(ValueError, match="tier index 2"):
        read_textgrid(path, tier=2)
    with pytest.raises(FileNotFoundError, match="missing.TextGrid"):
        read_textgrid(tmp_path / "missing.TextGrid")
    (tmp_path / "bad.TextGrid").write_text("this is not a textgrid")
    with pytest.raises(ValueError, match="bad.TextGrid is not a readable TextGrid"):
        read_textgrid(tmp_path / "bad.TextGrid")
    overlapping = pd.DataFrame({"word": ["a", "b"], "onset": [0.0, 0.5], "offset": [1.0, 1.5]})
    with pytest.raises(ValueError, match="words tier"):
        write_textgrid(tmp_path / "overlap.TextGrid", overlapping)


def test_nonwords():
    assert {"sp", "{ns}", "sentence_start", ""} <= NONWORDS and "ishmael" not in NONWORDS


def test_align_csv_interpolates_unaligned(tmp_path):
    path = tmp_path / "align.csv"
    path.write_text('I,i,0.5,0.7\nwas,was,,\n"nan",,,\nborn,born,1.1,1.5\n')
    words = read_align_csv(path)
    assert list(words["word"]) == ["I", "was", "nan", "born"]  # words kept verbatim, even "nan"
    np.testing.assert_allclose(words["onset"], [0.5, 0.7, 0.9, 1.1])
    np.testing.assert_allclose(words["offset"], [0.7, 0.9666667, 1.2333333, 1.5], rtol=1e-6)
    # gentle's onsets go backwards in places: the text's order is kept, the out-of-order time is dropped
    (tmp_path / "back.csv").write_text("the,the,10.0,10.2\nlast,last,10.3,10.5\ntwenty,twenty,9.0,9.3\n"
                                       "five,five,10.9,11.2\nyears,years,50.0,50.4\nago,ago,11.5,11.9\n")
    back = read_align_csv(tmp_path / "back.csv")
    assert list(back["word"]) == ["the", "last", "twenty", "five", "years", "ago"]
    np.testing.assert_allclose(back["onset"], [10.0, 10.3, 10.6, 10.9, 11.2, 11.5])
    np.testing.assert_allclose(back["offset"], [10.2, 10.5, 10.85, 11.2, 11.55, 11.9])
    # the transcript gentle aligned puts the punctuation back: what follows a word up to a space is its own,
    # what opens the next word after a space is the next word's; a hyphen stays with the word before it
    (tmp_path / "transcript.txt").write_text('"Well," she said -- the last twenty-five years... Don\'t go!\n(Really.)\n')
    tokens = ["Well", "she", "said", "the", "last", "twenty", "five", "years", "Don't", "go", "Really"]
    (tmp_path / "t.csv").write_text("".join(f"{w},{w.lower()},{i},{i + 0.5}\n" for i, w in enumerate(tokens)))
    written = read_align_csv(tmp_path / "t.csv", tmp_path / "transcript.txt")["written"]
    assert list(written) == ['"Well,"', "she", "said", "the", "last", "twenty-", "five", "years...", "Don't", "go!", "(Really.)"]
    (tmp_path / "transcript.txt").write_text("Well she said the last twenty five years")
    with pytest.raises(ValueError, match=r"has 8 words and .*t.csv 11 rows"):
        read_align_csv(tmp_path / "t.csv", tmp_path / "transcript.txt")
    (tmp_path / "bad.csv").write_text("I,i,0.5,soon\n")
    with pytest.raises(ValueError, match="'soon'"):
        read_align_csv(tmp_path / "bad.csv")


# -- speech ------------------------------------------------------------------------
def test_speech_timings():
    speech = synthesize_speech(MOBY)
    words = speech.words
    assert list(words.columns) == ["word", "onset", "offset"]
    assert list(words["word"]) == MOBY.split()
    assert speech.sr == 22050 and speech.audio.dtype == np.float32 and np.abs(speech.audio).max() <= 1
    assert (np.diff(words["onset"]) >= 0).all() and (words["offset"] > words["onset"]).all()
    assert (words["onset"].to_numpy()[1:] >= words["offset"].to_numpy()[:-1] - 1e-9).all()  # no overlaps
    assert words["offset"].iloc[-1] <= speech.duration
    assert 0.15 < speech.duration / len(words) < 0.6
    assert len(speech.phones) > len(words) and not speech.phones["phone"].str.startswith("_").any()
    # "some" starts after the pause that follows "Ishmael."
    assert words.loc[3, "onset"] - words.loc[2, "offset"] > 0.1
    # the audio is loud within a word and the words cover the speech
    mid = ((words["onset"] + words["offset"]) / 2).to_numpy()
    assert (audio_envelope(speech.audio, speech.sr, mid, window=0.05) > 0.005).mean() > 0.9


def test_speech_is_deterministic_and_voices_differ():
    first = synthesize_speech(MOBY)
    synthesize_speech("Something else entirely, to change the synthesiser's state.", voice="en-gb+m3")
    again = synthesize_speech(MOBY)
    np.testing.assert_array_equal(first.audio, again.audio)
    pd.testing.assert_frame_equal(first.words, again.words)
    female = synthesize_speech("Call me Ishmael.", voice="en-us+f3")
    male = synthesize_speech("Call me Ishmael.")
    assert female.duration > 0.5 and len(female.words) == 3
    assert len(female.audio) != len(male.audio) or not np.array_equal(female.audio, male.audio)


def test_speech_errors():
    with pytest.raises(ValueError, match="unknown espeak-ng voice 'klingon'.*en-us"):
        synthesize_speech("hello", voice="klingon")
    with pytest.raises(ValueError, match="nonsense"):
        synthesize_speech("hello", voice="en-us+nonsense")
    with pytest.raises(ValueError, match="rate=10"):
        synthesize_speech("hello", rate=10)
    with pytest.raises(ValueError, match="no words"):
        synthesize_speech("   ")


def test_envelope_follows_speech():
    speech = synthesize_speech("Call me Ishmael.")
    audio = np.concatenate([np.zeros(speech.sr), speech.audio])
    times = np.array([0.5, 1.0 + speech.words["onset"].iloc[2] + 0.1, -1.0, 100.0])
    env = audio_envelope(audio, speech.sr, times)
    assert env.shape == (4,)
    assert env[0] == 0 and env[1] > 0.01 and env[2] == 0 and env[3] == 0
    tone = np.sin(2 * np.pi * 100 * np.arange(8000) / 8000)
    assert audio_envelope(tone, 8000, np.array([0.5]))[0] == pytest.approx(1 / np.sqrt(2), rel=1e-3)


def test_speech_textgrid_round_trip(tmp_path):
    speech = synthesize_speech(MOBY)
    path = write_textgrid(tmp_path / "moby.TextGrid", speech.words, speech.phones, duration=speech.duration)
    back = read_textgrid(path)
    assert list(back["word"]) == MOBY.split()
    np.testing.assert_allclose(back["onset"], speech.words["onset"], atol=1e-9)
    assert len(read_textgrid(path, tier="phones")) == len(speech.phones)


def test_speech_needs_espeakng_loader(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # makes the import fail
    with pytest.raises(RuntimeError, match="pip install espeakng-loader"):
        synthesize_speech("hello")


def test_longest_nondecreasing_run_is_longest_and_in_order():
    from brainalign.stimuli.formats import _longest_nondecreasing

    rng = np.random.default_rng(0)
    for n in (0, 1, 2, 7, 30):
        for _ in range(20):
            values = rng.integers(0, 6, n).astype(float)
            keep = _longest_nondecreasing(values)
            assert (np.diff(values[keep]) >= 0).all()
            best = [1] * n  # the O(n^2) dynamic programme
            for i in range(n):
                for j in range(i):
                    if values[j] <= values[i]:
                        best[i] = max(best[i], best[j] + 1)
            assert keep.sum() == max(best, default=0)
