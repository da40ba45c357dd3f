"""Brain-tuning: LoRA placement, frozen weights, loss order, checkpoints and resume, errors."""

import numpy as np
import pandas as pd
import pytest
import torch

from brainalign import features, models, stimuli, tuning

torch.set_num_threads(1)


def _data(n_subjects: int = 2, seed: int = 0) -> tuning.TuningData:
    """Two short runs of noise-like 'speech' (2 s TRs, 4 s windows), 3 voxels per subject."""
    rng = np.random.default_rng(seed)
    audio, bounds, responses = {}, {}, {f"P{k}": {} for k in range(n_subjects)}
    for r, n_trs in (("a", 5), ("b", 2)):
        t = np.arange(12 * models.SPEECH_SR) / models.SPEECH_SR
        audio[r] = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
        times = 2.0 + 2.0 * np.arange(n_trs)
        bounds[r] = tuning.window_bounds(times, 2.0, window=4.0)
        for s in responses:
            responses[s][r] = rng.standard_normal((n_trs, 3)).astype(np.float32)
    return tuning.TuningData(audio, bounds, responses)


def _tuner(tmp_path, monkeypatch, **kwargs) -> tuning.BrainTuner:
    params = dict(cache_dir=tmp_path / "cache", batch_size=2, max_epochs=2, patience=5, lr=1e-3, checkpoint_every=1, progress=False, seed=0)
    params.update(kwargs)
    return tuning.BrainTuner("whisper-tiny-en", **params)


def test_window_bounds_end_at_the_sampling_time():
    times = stimuli.sample_times(np.array([10.0, 12.0]), 2.0)  # volumes acquired from 10 and 12 s
    start, stop = tuning.window_bounds(times, tr=2.0, window=10.0)
    assert stop.tolist() == [11 * 16000, 13 * 16000]
    assert (stop - start).tolist() == [160000, 160000]
    with pytest.raises(ValueError, match="at least one TR"):
        tuning.window_bounds(np.array([10.0]), tr=2.0, window=1.0)


def test_clips_pad_outside_the_audio_with_silence():
    data = _data()
    start, stop = tuning.window_bounds(np.array([2.0]), tr=2.0, window=4.0)  # starts 2 s before the audio
    data.bounds["a"] = (np.concatenate([start, data.bounds["a"][0][1:]]), np.concatenate([stop, data.bounds["a"][1][1:]]))
    clip = data.clips("a", np.array([0]))[0]
    assert len(clip) == 4 * 16000
    assert np.all(clip[: 2 * 16000] == 0) and np.array_equal(clip[2 * 16000 :], data.audio["a"][: 2 * 16000])


def test_subset_keeps_the_stimulus_and_the_chosen_participants():
    data = _data(n_subjects=3)
    part = data.subset(["P2", "P0"])
    assert part.subjects == ["P2", "P0"] and part.runs == data.runs
    assert part.audio is data.audio and part.bounds is data.bounds
    assert part.responses["P2"] is data.responses["P2"]
    for bad in (["P9"], []):
        with pytest.raises(ValueError, match=r"must be a non-empty list of \['P0', 'P1', 'P2'\]"):
            data.subset(bad)


def test_lora_on_attention_projections_only_and_the_rest_frozen(tmp_path, monkeypatch):
    data = _data()
    lm0 = models.load_model("whisper-tiny-en")
    before = {n: p.detach().clone() for n, p in lm0.model.named_parameters()}
    tuner = _tuner(tmp_path, monkeypatch, max_epochs=1).fit(data, ["a"], ["b"])
    trainable = tuner.net_.trainable()
    adapters = [n for n in trainable if not n.startswith("head.")]
    assert adapters and all("lora_" in n for n in adapters)
    projections = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in adapters}
    assert projections == set(tuning.LORA_TARGETS)  # q, k, v, out: not fc1/fc2, not the convolutions
    assert all(".self_attn." in n for n in adapters)
    # every pretrained weight (the convolutional front end included) is frozen and unchanged
    base = tuner.net_.peft.get_base_model()
    for n, p in base.named_parameters():
        if "lora_" in n:
            continue
        assert not p.requires_grad, n
        clean = n.replace(".base_layer", "")
        assert torch.equal(p.detach(), before[clean]), n
    # the adapters did move
    assert any(float(v.detach().abs().sum()) > 0 for n, v in trainable.items() if "lora_B" in n)


def test_losses_are_taken_per_participant_in_turn(tmp_path, monkeypatch):
    data = _data(n_subjects=3)
    tuner = _tuner(tmp_path, monkeypatch, max_epochs=1, cache=False, warmup=0.34).fit(data, ["a"], ["b"])
    h = tuner.history_
    n_batches = 3  # 5 TRs in batches of 2
    assert len(h) == n_batches * 3
    assert h["subject"].tolist() == ["P0", "P1", "P2"] * n_batches
    assert (h.groupby("batch")["subject"].apply(list) == pd.Series([["P0", "P1", "P2"]] * n_batches)).all()
    mean = _tuner(tmp_path, monkeypatch, max_epochs=1, cache=False, strategy="mean_loss").fit(data, ["a"], ["b"])
    assert mean.history_["subject"].tolist() == ["mean"] * n_batches
    # the warm-up then linear decay: lr rises, then falls
    lrs = h["lr"].to_numpy()  # 9 steps, 3 of warm-up
    np.testing.assert_allclose(lrs[:3], [1e-3 / 3, 2e-3 / 3, 1e-3])
    assert np.all(np.diff(lrs[2:]) < 0)


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    data = _data()
    full = _tuner(tmp_path / "one", monkeypatch, cache=False).fit(data, ["a"], ["b"])

    calls = {"n": 0}
    original = tuning.BrainTuner._train_batch

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # in the second epoch, after a checkpoint
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tuning.BrainTuner, "_train_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _tuner(tmp_path / "two", monkeypatch).fit(data, ["a"], ["b"])
    monkeypatch.setattr(tuning.BrainTuner, "_train_batch", original)
    resumed = _tuner(tmp_path / "two", monkeypatch).fit(data, ["a"], ["b"])
    assert resumed.resumed_
    a, b = full.net_.trainable(), resumed.net_.trainable()
    for n in a:
        torch.testing.assert_close(a[n], b[n], rtol=0, atol=1e-6)
    pd.testing.assert_frame_equal(full.history_, resumed.history_)
    # a finished run is read back, not retrained
    again = _tuner(tmp_path / "two", monkeypatch).fit(data, ["a"], ["b"])
    assert again.from_cache_ and not again.resumed_
    for n in a:
        torch.testing.assert_close(a[n], again.net_.trainable()[n], rtol=0, atol=1e-6)


def test_an_unreadable_checkpoint_starts_over(tmp_path, monkeypatch):
    data = _data()
    first = _tuner(tmp_path, monkeypatch, max_epochs=1).fit(data, ["a"], ["b"])
    (first.checkpoint_dir / "final.pt").unlink()
    (first.checkpoint_dir / "checkpoint.pt").write_bytes(b"not a checkpoint")
    again = _tuner(tmp_path, monkeypatch, max_epochs=1).fit(data, ["a"], ["b"])
    assert not again.resumed_ and not again.from_cache_
    assert again.mean_val_loss_ == first.mean_val_loss_ and np.isfinite(again.mean_val_loss_)
    pd.testing.assert_frame_equal(again.history_, first.history_)


def test_tuned_model_features_go_through_the_pretrained_path(tmp_path, monkeypatch):
    data = _data()
    tuner = _tuner(tmp_path, monkeypatch, max_epochs=1, lr=1e-2).fit(data, ["a"], ["b"])
    lm = tuner.tuned_model()
    assert lm.revision != models.revision("whisper-tiny-en") and tuner.key_[:16] in lm.revision
    assert not any("lora_" in n for n, _ in lm.model.named_parameters())
    audio, times = data.audio["a"], np.array([4.0, 6.0, 8.0])
    tuned = features.speech_tr_features(lm, audio, 16000, times, window=4.0, stride=2.0, cache=False)
    pre = features.speech_tr_features("whisper-tiny-en", audio, 16000, times, window=4.0, stride=2.0, cache=False)
    np.testing.assert_allclose(tuned[0], pre[0], atol=1e-5)  # state 0 (convolutions + positions) is frozen
    assert np.abs(tuned[-1] - pre[-1]).max() > 1e-4  # the last block changed
    pred = tuner.predict(data.clips("b", np.array([0, 1])), subject="P0")
    assert pred.shape == (2, 3)


def test_adapting_the_last_blocks_only(tmp_path, monkeypatch):
    data = _data()
    tuner = _tuner(tmp_path, monkeypatch, max_epochs=1, lora_layers=1, lr=1e-2, cache=False).fit(data, ["a"], ["b"])
    adapters = [n for n in tuner.net_.trainable() if not n.startswith("head.")]
    assert adapters and all(".layers.3." in n for n in adapters)  # whisper-tiny-en has blocks 0-3
    # the forward from the frozen blocks' output is the model's own last state
    lm = tuner.tuned_model()
    clips = data.clips("b", np.array([0, 1]))
    mel, n_frames = models.whisper_mel(lm, clips)
    last = models.whisper_encoder_states(lm.model, mel, n_frames)[-1].float().mean(1)
    with torch.no_grad():
        torch.testing.assert_close(tuner.net_.head(last), torch.from_numpy(tuner.predict(clips)), rtol=1e-4, atol=1e-5)
    pre = models.load_model("whisper-tiny-en")
    states = [features.speech_tr_features(m, data.audio["a"], 16000, np.array([4.0, 6.0]), window=4.0, stride=2.0, cache=False)
              for m in (pre, lm)]
    for k in range(4):  # states 0-3 (the input to block 3) are untouched
        np.testing.assert_allclose(states[1][k], states[0][k], atol=1e-5)
    assert np.abs(states[1][4] - states[0][4]).max() > 1e-4
    assert tuner.mean_val_loss_ > 0 and np.isfinite(tuner.epochs_["val_loss"]).all()


def test_models_sharing_blocks_run_them_once_and_keep_their_own_features(tmp_path, monkeypatch):
    data = _data()
    tuner = _tuner(tmp_path, monkeypatch, max_epochs=1, lora_layers=1, lr=1e-2, cache=False).fit(data, ["a"], ["b"])
    pre, lm = models.load_model("whisper-tiny-en"), tuner.tuned_model()
    assert models.whisper_shared_blocks([pre.model, lm.model]) == 3  # blocks 0-2; block 3 was tuned
    assert models.whisper_shared_blocks([pre.model, pre.model]) == 3  # at most all but the last
    assert models.whisper_shared_blocks([pre.model]) == 0
    audio, times = data.audio["a"], np.array([2.0, 4.0, 6.0, 8.0, 10.0])
    alone = [features.speech_tr_features(m, audio, 16000, times, window=4.0, stride="volumes", cache=False) for m in (pre, lm)]
    calls = {"pretrained": 0, "tuned": 0}
    hooks = [m.model.layers[0].register_forward_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1))
             for k, m in (("pretrained", pre), ("tuned", lm))]
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path / "home"))
    shared = features.speech_tr_features_shared([pre, lm], audio, 16000, times, window=4.0, batch_size=2)
    for h in hooks:
        h.remove()
    assert calls == {"pretrained": 3, "tuned": 0}  # 5 windows in batches of 2: the shared block ran once per batch
    for a, b in zip(alone, shared):
        for x, y in zip(a, b):
            np.testing.assert_allclose(y, x, atol=1e-5)
    assert np.abs(shared[1][4] - shared[0][4]).max() > 1e-4  # each model its own last state
    # the entries are those of one call per model: a single call now reads them from the cache
    monkeypatch.setattr(features, "_window_states", lambda *a, **k: pytest.fail("recomputed a cached entry"))
    again = features.speech_tr_features(lm, audio, 16000, times, window=4.0, stride="volumes")
    np.testing.assert_array_equal(again[4], shared[1][4])


@pytest.mark.parametrize("strategy", ["in_turn", "mean_loss"])
def test_micro_batches_take_the_batchs_step(tmp_path, monkeypatch, strategy):
    """Gradients summed over micro-batches give the step of the whole batch (no dropout: the same computation)."""
    data = _data()
    fitted = [_tuner(tmp_path, monkeypatch, max_epochs=1, lora_layers=1, batch_size=4, micro_batch=m, dropout=0.0, cache=False,
                     strategy=strategy).fit(data, ["a"], ["b"]) for m in (1, 4)]
    one, whole = (t.net_.trainable() for t in fitted)
    assert fitted[0].history_["loss"].to_numpy() == pytest.approx(fitted[1].history_["loss"].to_numpy(), rel=1e-4)
    for name in whole:
        torch.testing.assert_close(one[name], whole[name], rtol=1e-4, atol=1e-6)
    assert any((whole[n] != 0).any() for n in whole if "lora_B" in n)  # a step was taken


def test_kept_frozen_states_give_the_run_of_states_recomputed_every_batch(tmp_path, monkeypatch):
    """The frozen blocks' output kept in one block of memory (two epochs read it back) changes no number."""
    data = _data()
    fitted = [_tuner(tmp_path, monkeypatch, lora_layers=1, dropout=0.0, cache=False, keep_prefix_gb=gb).fit(data, ["a"], ["b"])
              for gb in (4.0, 0.0)]
    kept, recomputed = fitted
    np.testing.assert_allclose(kept.history_["loss"], recomputed.history_["loss"], rtol=1e-6)
    np.testing.assert_allclose(kept.epochs_["val_loss"], recomputed.epochs_["val_loss"], rtol=1e-6)
    assert kept._store is None and not kept._slots  # training's memory is let go


def test_tuning_learns_a_target_planted_in_the_pretrained_features():
    """Responses that are a linear function of the pretrained model's pooled last state are learnt: the validation
    loss falls far below that of predicting the training mean, and the predictions match the planted responses."""
    rng = np.random.default_rng(0)
    audio, bounds = {}, {}
    for r, seconds in (("a", 16), ("b", 8)):
        t = np.arange(seconds * models.SPEECH_SR) / models.SPEECH_SR
        audio[r] = (0.1 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
        bounds[r] = tuning.window_bounds(np.arange(2.0, seconds + 0.25, 0.5), 0.5, window=2.0)
    windows = tuning.TuningData(audio, bounds, {"P0": {r: np.zeros((len(bounds[r][0]), 1), np.float32) for r in audio}})
    lm = models.load_model("whisper-tiny-en")
    pooled = {}
    for r in audio:
        mel, n_frames = models.whisper_mel(lm, windows.clips(r, np.arange(len(bounds[r][0]))))
        with torch.no_grad():
            pooled[r] = models.whisper_encoder_states(lm.model, mel, n_frames)[-1].float().mean(1).numpy()
    centre = pooled["a"].mean(0)
    directions = np.linalg.svd(pooled["a"] - centre, full_matrices=False)[2][:2].T  # the two main directions
    planted = {r: ((pooled[r] - centre) @ directions).astype(np.float32) for r in audio}
    data = tuning.TuningData(audio, bounds, {"P0": planted})
    tuner = tuning.BrainTuner("whisper-tiny-en", lora_layers=1, lr=1e-5, head_lr=1e-2, batch_size=4, max_epochs=5, warmup=0.0,
                              dropout=0.0, weight_decay=0.0, patience=5, cache=False, progress=False, seed=0)
    tuner.fit(data, ["a"], ["b"])
    assert tuner.mean_val_loss_ > 0.5
    assert tuner.epochs_["val_loss"].min() < 0.1 * tuner.mean_val_loss_, tuner.epochs_
    pred = tuner.predict(data.clips("b", np.arange(len(bounds["b"][0]))), subject="P0")
    r2 = 1 - ((pred - planted["b"]) ** 2).sum(0) / ((planted["b"] - planted["b"].mean(0)) ** 2).sum(0)
    assert (r2 > 0.8).all(), r2
    # the linear readout of the frozen features, in the tuner's unit: the planted map is found with a light penalty,
    # and a penalty that shrinks it to nothing is as good as the training mean
    reference = tuner.ridge_reference(pooled, {"P0": planted}, penalties=(1e-3, 1e9))
    assert reference[1e-3] < 0.05 and 0.9 < reference[1e9] < 1.5, reference


def test_blocks_run_from_a_frozen_state_give_the_last_state_of_wav2vec2_and_hubert():
    import dataclasses

    import transformers as tf

    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 37,
             "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16}
    clips = [np.random.default_rng(k).standard_normal(16000).astype(np.float32) for k in range(2)]
    for name, arch, config in [("wav2vec2-base-960h", tf.Wav2Vec2Model, tf.Wav2Vec2Config(**small)),
                               ("hubert-base-ls960", tf.HubertModel, tf.HubertConfig(**small, do_stable_layer_norm=True))]:
        spec = dataclasses.replace(models.MODELS[name], n_layers=3, dim=32)
        lm = models.LoadedModel(spec=spec, tokenizer=tf.Wav2Vec2FeatureExtractor(), model=arch(config).eval(), source="hub",
                                revision="test")
        x = lm.processor(clips, sampling_rate=16000, return_tensors="pt")["input_values"]
        with torch.no_grad():
            want = lm.model(x).last_hidden_state
            for k in range(3):  # the input to each block
                torch.testing.assert_close(tuning.last_state_from(lm, tuning.hidden_state_at(lm, clips, k), k), want)


def test_clear_errors(tmp_path, monkeypatch):
    data = _data()
    with pytest.raises(ValueError, match="nope"):
        tuning.BrainTuner("nope").fit(data, ["a"], ["b"])
    with pytest.raises(ValueError, match="speech models"):
        tuning.BrainTuner("minilm-l6").fit(data, ["a"], ["b"])
    with pytest.raises(ValueError, match="unknown strategy 'sum'"):
        tuning.BrainTuner(strategy="sum").fit(data, ["a"], ["b"])
    with pytest.raises(ValueError, match="lora_layers=5.*1..4"):
        tuning.BrainTuner(lora_layers=5).fit(data, ["a"], ["b"])
    with pytest.raises(ValueError, match="unknown run 'zzz'"):
        tuning.BrainTuner().fit(data, ["zzz"], ["b"])
    with pytest.raises(ValueError, match="disjoint"):
        tuning.BrainTuner().fit(data, ["a"], ["a"])
    with pytest.raises(RuntimeError, match="not fitted"):
        tuning.BrainTuner().tuned_model()

    class DS:
        name, subjects, runs = "fake", ["S01"], ["a"]

    with pytest.raises(ValueError, match="unknown subject 'S09'.*S01"):
        tuning.tuning_data(DS(), ["S09"], ["a"])
    with pytest.raises(ValueError, match="unknown run 'x'"):
        tuning.tuning_data(DS(), ["S01"], ["x"])
    bad = _data()
    bad.responses["P1"]["a"] = bad.responses["P1"]["a"][:, :2]
    with pytest.raises(ValueError, match="one space"):
        tuning.TuningData(bad.audio, bad.bounds, bad.responses)


def test_phone_classes():
    assert tuning.phone_class("'aU") == "vowel" and tuning.phone_class("@L") == "vowel"
    assert tuning.phone_class("t#") == "stop" and tuning.phone_class("dZ") == "fricative"
    assert tuning.phone_class("N") == "nasal" and tuning.phone_class("r-") == "approximant"
    assert tuning.phone_class(";") is None
    phones = pd.DataFrame({"word": ["s", "'a", ";"], "onset": [0.0, 0.1, 0.3], "offset": [0.1, 0.2, 0.4]})
    labels = tuning.frame_phone_classes(phones, n_frames=25, fps=50)
    assert labels[0] == "fricative" and labels[6] == "vowel" and labels[12] == "silence" and labels[16] == ""


# -- the audio-video model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def movie_data():
    """Two short generated movies (TR 1.5 s, 3 s windows ending at each volume), 3 voxels of one participant."""
    rng = np.random.default_rng(0)
    audio, bounds, video, responses = {}, {}, {}, {"P0": {}}
    for r, seed in (("a", 0), ("b", 1)):
        mv = stimuli.make_movie(stimuli.read_dialogue().iloc[2 * seed : 2 * seed + 2], seed=seed, size=64)
        audio[r] = models.check_audio(mv.audio, mv.sr)
        times = np.arange(1.5, mv.duration, 1.5)
        bounds[r] = tuning.window_bounds(times, 1.5, window=3.0)
        video[r] = (mv.frames, mv.frame_times)
        responses["P0"][r] = rng.standard_normal((len(times), 3)).astype(np.float32)
    return tuning.TuningData(audio, bounds, responses, video)


def _random_fusion(monkeypatch):
    """Tuning mechanics do not need pretrained fusion layers: the seeded initialisation, without the pretraining run."""
    fusion = models.build_av_fusion(pretrained=False)
    monkeypatch.setattr(models, "load_model", lambda *args, **kwargs: fusion)
    return fusion


def test_av_tuning_adapts_the_fusion_attention_only_and_its_merged_model_gives_the_same_states(movie_data, tmp_path,
                                                                                             monkeypatch):
    fusion = _random_fusion(monkeypatch)
    before = {n: p.detach().clone() for n, p in fusion.model.named_parameters()}
    statistics = {n: b.clone() for n, b in fusion.model.named_buffers() if ".vision." in f".{n}" and "running_" in n}
    tuner = tuning.BrainTuner("whisper-efficientnet-fusion", cache_dir=tmp_path, batch_size=4, max_epochs=2, lr=1e-2,
                              head_lr=1e-2, dropout=0.0, progress=False, seed=0).fit(movie_data, ["a"], ["b"])
    # the frozen encoders read the windows in evaluation mode: EfficientNet's batch norm kept its running statistics
    # (in training mode it would have normalised each batch of frames by its own, and updated them)
    buffers = dict(fusion.model.named_buffers())
    assert statistics and all(torch.equal(buffers[n], b) for n, b in statistics.items()), "batch-norm statistics changed"
    trainable = [n for n in tuner.net_.trainable() if not n.startswith("head.")]
    assert trainable and all(".self_attn." in n and "lora_" in n and ".audio." not in n and ".vision." not in n
                             for n in trainable), trainable
    base = {n.replace("base_model.model.", "").replace(".base_layer", ""): p for n, p in tuner.net_.peft.named_parameters()
            if "lora_" not in n}
    # peft adapts a MultiheadAttention by adding its adapters into the base weights for each forward pass and taking
    # them out after: the attention's base weights come back up to float rounding; every other weight, exactly
    attention = [n for n in before if ".self_attn." in n]
    assert all(torch.equal(base[n], before[n]) for n in before if n not in attention), "a frozen weight changed"
    assert all(torch.allclose(base[n], before[n], rtol=0, atol=1e-6) for n in attention)
    # the adapters moved the model: the merged model's last fusion state differs from the untuned one's ...
    rows = np.arange(len(movie_data.bounds["b"][0]))
    frames, times = movie_data.video["b"]
    ends = movie_data.ends("b", rows)
    tuned = tuner.tuned_model()
    merged = models.av_hidden_states(tuned, movie_data.audio["b"], models.SPEECH_SR, frames, times, ends)[-1]
    untuned = models.av_hidden_states(fusion, movie_data.audio["b"], models.SPEECH_SR, frames, times, ends)[-1]
    assert np.abs(merged - untuned).max() > 1e-3
    # ... and is what the tuning net computed, adapters unmerged, in eval mode (the head's input)
    with torch.no_grad():
        pooled = tuner.net_.pooled(tuner.net_.window_prefix(movie_data, [("b", int(i)) for i in rows])).numpy()
    np.testing.assert_allclose(pooled, merged, rtol=1e-3, atol=1e-4)
    assert tuned.revision.startswith(fusion.revision + "+braintuned-")
    with pytest.raises(ValueError, match="need its windows' video"):
        tuner.predict(movie_data.clips("b", rows))


def test_av_tuning_reads_the_frames_through_the_library_cache_when_it_caches_there(movie_data, tmp_path, monkeypatch):
    """A tuning run that caches in the library's cache stores the frames' EfficientNet states where the movie features
    and the self-supervised control read them; a run given its own cache_dir leaves the library's cache alone."""
    fusion = _random_fusion(monkeypatch)
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path / "home"))
    frames = movie_data.video["a"][0]
    expected = models.vision_hidden_states(fusion.model.vision_lm, frames)[-1]
    params = dict(batch_size=4, max_epochs=1, progress=False, seed=0)
    tuning.BrainTuner("whisper-efficientnet-fusion", cache_dir=tmp_path / "own", **params).fit(movie_data, ["a"], ["b"])
    assert not (tmp_path / "home" / "cache" / "frame_states").exists()
    fusion = _random_fusion(monkeypatch)  # peft adapted the first copy in place
    tuning.BrainTuner("whisper-efficientnet-fusion", **params).fit(movie_data, ["a"], ["b"])
    assert len(list((tmp_path / "home" / "cache" / "frame_states").glob("*.npz"))) == 2  # runs a and b
    monkeypatch.setattr(models.vision, "vision_hidden_states", lambda *a, **k: pytest.fail("EfficientNet ran again"))
    np.testing.assert_array_equal(models.frame_states(fusion.model.vision_lm, frames)[-1], expected)


def test_av_tuning_needs_video_and_existing_fusion_layers(movie_data, tmp_path, monkeypatch):
    _random_fusion(monkeypatch)
    no_video = tuning.TuningData(movie_data.audio, movie_data.bounds, movie_data.responses)
    with pytest.raises(ValueError, match="tune it on data with video"):
        tuning.BrainTuner("whisper-efficientnet-fusion", cache=False, progress=False).fit(no_video, ["a"], ["b"])
    with pytest.raises(ValueError, match="lora_layers=3: whisper-efficientnet-fusion has 2 fusion layers"):
        tuning.BrainTuner("whisper-efficientnet-fusion", lora_layers=3, cache=False, progress=False).fit(movie_data, ["a"], ["b"])
    with pytest.raises(ValueError, match="has no video"):
        movie_data.subset(["P0"]).__class__(movie_data.audio, movie_data.bounds, movie_data.responses).frames("a", [0])
    with pytest.raises(ValueError, match="video has runs"):
        tuning.TuningData(movie_data.audio, movie_data.bounds, movie_data.responses, {"a": movie_data.video["a"]})
