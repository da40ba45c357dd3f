"""Self-supervised pretraining of the audio-video fusion layers (audio-visual correspondence), and its control.

Small configurations throughout: the clips are short and the runs few steps long; the default recipe is
measured in bench/README.md.
"""

from __future__ import annotations

import inspect
import logging

import numpy as np
import pytest
import torch

from brainalign import models
from brainalign.datasets import load_dataset
from brainalign.tuning import selfsup

#: a run of a few seconds: four clips of one line (two held out), one epoch
TINY = {"n_clips": 4, "lines_per_clip": 1, "heldout": 0.5, "stride": 1.0, "epochs": 1, "batch_size": 16, "progress": False}


@pytest.fixture(scope="module")
def lm(data_home, one_thread):
    """The fusion model at its random initialisation: the starting point of pretraining."""
    return models.build_av_fusion(pretrained=False)


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """An empty cache (the converted encoders stay in the module's data home: they are read before this)."""
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path))
    return tmp_path / "cache" / "av_pretraining"


def _encoders(lm):
    return {k: v.clone() for k, v in lm.model.state_dict().items() if k.split(".")[0] in ("audio", "vision")}


def test_pretraining_clips_share_no_line_with_the_cohorts_test_episode():
    movie = load_dataset("simulated-movie", seed=0)
    test_lines = {line for run in movie.split["test"] for line in movie.speakers(run)["line"]}
    train_lines = [line for run in movie.split["train"] for line in movie.speakers(run)["line"]]
    pool = selfsup.pretraining_lines()
    assert test_lines and not test_lines & set(pool["line"])
    assert list(pool["line"]) == train_lines  # every line of the training episodes, in order, and nothing else
    clips = list(selfsup.pretraining_clips(n_clips=3, lines_per_clip=2, seed=0))
    for k, clip in enumerate(clips):
        assert list(clip.lines["line"]) == list(pool["line"][2 * k : 2 * k + 2])
        assert (clip.fps, clip.frames.shape[1], clip.sr) == (movie.fps, movie.frame_size, movie.split["sr"])
    # new pauses and shots: the clip that opens with the first episode's lines is not that episode's beginning
    first = movie.shots(movie.split["train"][0])
    assert not np.allclose(clips[0].shots["offset"].to_numpy()[:2], first["offset"].to_numpy()[:2])


def test_batched_fusion_equals_one_window_at_a_time(lm):
    """Padding is masked: each window of a batch gets the states it gets alone."""
    torch.manual_seed(0)
    lengths = [(30, 15), (22, 0), (30, 9)]
    windows = [(torch.randn(a, 384), -torch.rand(a) * 3, torch.randn(v, 320), -torch.rand(v) * 3) for a, v in lengths]
    ta, tv = max(a for a, _ in lengths), max(v for _, v in lengths)
    pad = lambda x, n: torch.nn.functional.pad(x, (0, 0) * (x.dim() - 1) + (0, n - len(x)))  # noqa: E731
    batch = [torch.stack([pad(w[i], ta if i < 2 else tv) for w in windows]) for i in range(4)]
    masks = [torch.arange(ta)[None] < torch.tensor([a for a, _ in lengths])[:, None],
             torch.arange(tv)[None] < torch.tensor([v for _, v in lengths])[:, None]]
    with torch.no_grad():
        together = lm.model.fuse(*batch, *masks)
        for r, (w, (a, v)) in enumerate(zip(windows, lengths)):
            alone = lm.model.fuse(*w)
            real = torch.cat([torch.arange(a), ta + torch.arange(v)])
            for s_alone, s_batch in zip(alone, together):
                torch.testing.assert_close(s_batch[r, real], s_alone, atol=1e-5, rtol=1e-5)


def test_the_shipped_pretraining_learned_correspondence_above_chance(cache_home, monkeypatch):
    """The fusion layers that ``load_model`` ships tell a window's own frames from another window's, held out; at their
    random initialisation (epoch 0) they cannot. Chance is 0.5.

    The default recipe's weights and history ship with the package: on an empty cache ``pretrain_fusion`` copies them
    in instead of training (``bench/bench_selfsup.py`` retrains and compares). A change to what its key holds (the
    recipe, the encoders, the dialogue, espeak-ng) fails here until the entry is made again and shipped.
    """

    def refuse(*args, **kwargs):
        raise AssertionError("the default recipe's pretrained weights are not shipped for its current key: make the "
                             "entry again and ship it (bench/README.md, the pretraining section)")

    monkeypatch.setattr(selfsup, "pretraining_clips", refuse)  # the first step of training, before minutes of tokens
    _, history = selfsup.pretrain_fusion(models.build_av_fusion(pretrained=False), progress=False)
    assert len(list(cache_home.glob("*.npz"))) == 1  # copied into the cache
    before, after = history["heldout_accuracy"].iloc[0], history["heldout_accuracy"].iloc[-1]
    assert 2 * history.attrs["n_heldout_windows"] >= 400  # pairs: a standard error of 0.025 at most
    assert abs(before - 0.5) < 0.05, before
    assert after > 0.58, history.to_string()  # the weights shipped are the last epoch's
    assert history["train_loss"].iloc[-1] < 0.65 < history["train_loss"].iloc[1]


def test_only_the_fusion_weights_train_and_the_same_seed_gives_the_same_weights(lm):
    encoders, start = _encoders(lm), lm.model.fusion_state()
    first, history = selfsup.pretrain_fusion(lm, seed=3, cache=False, **TINY)
    again, _ = selfsup.pretrain_fusion(lm, seed=3, cache=False, **TINY)
    other, _ = selfsup.pretrain_fusion(lm, seed=4, cache=False, **TINY)
    assert set(first) == set(start) and all(k.split(".")[0] in models.FUSION_PARTS for k in first)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)
    assert all(not torch.equal(first[k], start[k]) for k in first if k.startswith("layers.0.self_attn"))
    # the starting model is left as it was, its encoders bit for bit
    assert all(torch.equal(v, lm.model.fusion_state()[k]) for k, v in start.items())
    assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in encoders.items())
    assert list(history["epoch"]) == [0, 1] and history["steps"].iloc[-1] >= 1


def test_the_registered_model_loads_the_pretrained_weights(lm, monkeypatch):
    """``pretrained=True`` loads pretrain_fusion's weights into the fusion layers and nothing else (stubbed: its
    default run takes minutes)."""
    state, history = selfsup.pretrain_fusion(lm, cache=False, **TINY)
    calls = []

    def stub(start, seed=0):
        calls.append((start.revision, seed))
        return state, history

    monkeypatch.setattr(selfsup, "pretrain_fusion", stub)
    pretrained = models.load_model("whisper-efficientnet-fusion")
    assert calls == [(models.fusion_revision(pretrained=False), 0)]
    assert pretrained.revision == models.revision("whisper-efficientnet-fusion") == models.fusion_revision()
    assert "-selfsup" in pretrained.revision and "-random-" in lm.revision
    assert all(torch.equal(v, pretrained.model.fusion_state()[k]) for k, v in state.items())
    whisper = models.load_model("whisper-tiny-en").model.state_dict()
    assert all(torch.equal(v, pretrained.model.audio.state_dict()[k]) for k, v in whisper.items())
    for k, v in models.load_model("efficientnet-lite0").model.state_dict().items():
        assert torch.equal(v, pretrained.model.vision.state_dict()[k])


def test_the_second_call_reads_the_cache_and_a_corrupt_entry_is_retrained(lm, cache_home, monkeypatch, caplog):
    state, history = selfsup.pretrain_fusion(lm, **TINY)
    (entry,) = cache_home.glob("*.npz")
    written = entry.stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("pretraining ran although its result is cached")

    monkeypatch.setattr(selfsup, "pretraining_clips", refuse)
    again, history_again = selfsup.pretrain_fusion(lm, **TINY)
    assert entry.stat().st_mtime_ns == written
    assert all(torch.equal(state[k], again[k]) for k in state)
    assert history_again.equals(history) and history_again.attrs == history.attrs
    with pytest.raises(AssertionError, match="cached"):  # another parameter is another entry
        selfsup.pretrain_fusion(lm, **{**TINY, "lr": 1e-3})
    entry.write_bytes(entry.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING), pytest.raises(AssertionError, match="cached"):
        selfsup.pretrain_fusion(lm, **TINY)  # the corrupt entry is not trusted: pretraining runs again
    assert "is corrupt" in caplog.text and not entry.exists()


def test_continue_selfsup_adapts_a_copy_and_leaves_the_input_model(lm):
    clips = list(selfsup.pretraining_clips(n_clips=2, lines_per_clip=2, seed=7))
    encoders, start = _encoders(lm), lm.model.fusion_state()
    adapted = selfsup.continue_selfsup(lm, [c.audio for c in clips], clips[0].sr, [c.frames for c in clips],
                                       [c.frame_times for c in clips], n_steps=3, batch_size=8, stride=1.0, cache=False,
                                       progress=False)
    assert all(torch.equal(v, lm.model.fusion_state()[k]) for k, v in start.items())
    assert all(torch.equal(v, lm.model.state_dict()[k]) for k, v in encoders.items())
    assert adapted.model is not lm.model and adapted.model.audio is lm.model.audio  # frozen encoders, shared
    changed = adapted.model.fusion_state()
    assert all(not torch.equal(changed[k], v) for k, v in start.items() if k.startswith("layers."))
    assert adapted.revision.startswith(lm.revision + "+selfsup-continued-")
    # the unimodal states are the encoders' and do not move; the fusion states do
    clip = clips[1]  # 14 s
    ends = np.array([3.0, clip.duration])
    before = models.av_hidden_states(lm, clip.audio, clip.sr, clip.frames, clip.frame_times, ends)
    after = models.av_hidden_states(adapted, clip.audio, clip.sr, clip.frames, clip.frame_times, ends)
    for k in range(22):
        np.testing.assert_array_equal(before[k], after[k])
    assert np.abs(after[-1] - before[-1]).max() > 1e-3
    # one episode may be given as arrays; its negatives come from the same episode, far enough away
    single = selfsup.continue_selfsup(lm, clip.audio, clip.sr, clip.frames, clip.frame_times, n_steps=1, batch_size=4,
                                      min_gap=3.0, cache=False, progress=False)
    assert single.revision != adapted.revision


def test_clip_tokens_share_the_movie_features_frame_states(lm, cache_home, monkeypatch):
    """With ``cache=True`` the frames' states go through the movie features' cache: the same tokens, and the movie
    features of the same frames, and the cached domain-adaptation control, read them back instead of running
    EfficientNet again."""
    clip = list(selfsup.pretraining_clips(n_clips=2, lines_per_clip=2, seed=7))[1]  # 14 s
    ends = np.array([3.0, clip.duration])
    fresh = selfsup.clip_tokens(lm, clip.audio, clip.sr, clip.frames, clip.frame_times, ends)
    stored = selfsup.clip_tokens(lm, clip.audio, clip.sr, clip.frames, clip.frame_times, ends, cache=True)
    np.testing.assert_array_equal(stored.video, fresh.video)
    np.testing.assert_array_equal(stored.audio, fresh.audio)
    monkeypatch.setattr(models.vision, "vision_hidden_states", lambda *a, **k: pytest.fail("EfficientNet ran again"))
    again = models.frame_states(lm.model.vision_lm, clip.frames)
    np.testing.assert_array_equal(again[-1], fresh.video)
    # the domain-adaptation control, cached, reads them too
    selfsup.continue_selfsup(lm, clip.audio, clip.sr, clip.frames, clip.frame_times, n_steps=1, batch_size=4, min_gap=3.0,
                             progress=False)


BAD = [
    ("pretrain", {"window": 0.0}, "window=0.0 must be a number in \\(0, 30\\]"),
    ("pretrain", {"window": -1}, "window=-1 must be a number in \\(0, 30\\]"),
    ("pretrain", {"n_clips": 0}, "n_clips=0 must be an integer >= 2"),
    ("pretrain", {"seed": -1}, "seed=-1 must be an integer >= 0"),
    ("pretrain", {"heldout": 1.0}, "heldout=1.0 must be a share of the clips in \\(0, 1\\)"),
    ("pretrain", {"min_gap": 1.0}, "min_gap=1.0 must be a number in \\[3, inf\\)"),
    ("pretrain", {"face_p": (0.9, 0.2)}, "face_p=\\(0.9, 0.2\\) must be two probabilities"),
    ("continue", {"n_steps": 0}, "n_steps=0 must be an integer >= 1"),
    ("continue", {"window": 31.0}, "window=31.0 must be a number in \\(0, 30\\]"),
    ("continue", {"seed": -2}, "seed=-2 must be an integer >= 0"),
    ("continue", {"audio": [], "frames": [], "frame_times": []}, "no episodes"),
    ("clips", {"n_clips": 0}, "n_clips=0 must be an integer >= 1"),
]


@pytest.mark.parametrize(("call", "bad", "message"), BAD)
def test_bad_input_names_the_value_and_the_valid_range(lm, call, bad, message):
    audio, frames, times = np.zeros(16000 * 8, np.float32), np.zeros((40, 16, 16, 3), np.uint8), np.arange(40) / 5.0
    with pytest.raises(ValueError, match=message):
        if call == "pretrain":
            selfsup.pretrain_fusion(lm, **{**TINY, **bad})
        elif call == "continue":
            kwargs = {"audio": audio, "frames": frames, "frame_times": times, "n_steps": 1, **bad}
            selfsup.continue_selfsup(lm, sr=16000, cache=False, **kwargs)
        else:
            selfsup.pretraining_clips(**bad)


def test_a_model_other_than_the_fusion_model_is_refused(data_home):
    whisper = models.load_model("whisper-tiny-en")
    with pytest.raises(ValueError, match="'whisper-tiny-en' is a speech model, not a audio-video model; audio-video "
                                         "models: whisper-efficientnet-fusion"):
        selfsup.pretrain_fusion(whisper, **TINY)


def test_the_two_entry_points_share_their_training_defaults():
    pretrain = inspect.signature(selfsup.pretrain_fusion).parameters
    adapt = inspect.signature(selfsup.continue_selfsup).parameters
    shared = ("window", "stride", "min_gap", "batch_size", "lr", "weight_decay", "seed", "cache", "progress")
    assert {name: pretrain[name].default for name in shared} == {name: adapt[name].default for name in shared}
    assert pretrain["window"].default == inspect.signature(models.av_hidden_states).parameters["window"].default == 3.0
