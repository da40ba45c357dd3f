"""Miniature runs of the `paper` sets: tiny stand-ins of hub models, and dataset miniatures in the real formats."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from brainalign import config, datasets, features, miniature, models, probing
from brainalign.linguistics import load_constituency_parser
from brainalign.stimuli import GENTLE_WORD


@pytest.fixture
def miniature_mode(monkeypatch):
    monkeypatch.setenv("BRAINALIGN_MINIATURE", "1")
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "1")


def _media(name: str) -> dict:
    """The media arguments of ``multimodal_instruct_tr_features`` for an instruction-following model: 5 s of audio or video."""
    rng = np.random.default_rng(0)
    if models.INSTRUCT_CLASSES[name][1] == "audio":
        return {"audio": (0.1 * rng.standard_normal(5 * 16000)).astype(np.float32), "sr": 16000}
    return {"frames": rng.integers(0, 256, (25, 40, 56, 3), dtype=np.uint8), "frame_times": 0.2 * np.arange(25), "n_frames": 4}


_INSTRUCT = {"Qwen/Qwen2-Audio-7B-Instruct": "Who is speaking in the audio?",
             "llava-hf/LLaVA-NeXT-Video-7B-hf": "Caption the video in a short sentence.",
             "llava-hf/llava-onevision-qwen2-7b-ov-hf": "What are the main events captured in the video?",
             "LanguageBind/Video-LLaVA-7B-hf": "Step-by-step describe the activity shown in the video.",
             "Qwen/Qwen2.5-VL-7B-Instruct": "Where is this video taken from? What place/landmark is shown in the video?",
             "Salesforce/instructblip-vicuna-7b": "What emotions do the characters express during the video?"}


@pytest.mark.parametrize("name", sorted(models.TINY_FAMILIES))
def test_a_hub_model_becomes_a_tiny_model_of_its_class(name, miniature_mode, no_network, one_thread):
    from brainalign import instruct

    spec = models.MODELS[name]
    real_spec, source = models.check_available(name)  # offline, yet available: its stand-in is built here
    assert source == "tiny" and real_spec is spec
    lm = models.load_model(name)
    assert lm.revision == f"tiny:{spec.hub_id}:v{models.TINY_VERSION}" and lm.source == "tiny"
    assert lm.model.config.model_type == models.TINY_FAMILIES[name]
    assert lm.spec.dim == models.TINY_DIM and lm.spec.n_layers == spec.n_layers
    if spec.kind == "speech":
        audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
        states = models.speech_hidden_states(lm, audio, 16000)
        assert len(states) == spec.n_layers + 1 and states[0].shape[1] == models.TINY_DIM
    elif spec.kind == "vision":  # VideoMAE: clips of 16 frames; a frame's state is its 2-frame tubelet's
        assert type(lm.model).__name__ == "VideoMAEModel" and lm.model.config.num_frames == 16
        frames = np.random.default_rng(0).integers(0, 256, (20, 40, 56, 3), dtype=np.uint8)
        states = models.vision_hidden_states(lm, frames)
        assert len(states) == spec.n_layers + 1
        assert all(s.shape == (20, models.TINY_DIM) and np.isfinite(s).all() for s in states)
        np.testing.assert_array_equal(states[-1][0], states[-1][1])  # one tubelet
        assert not np.allclose(states[-1][1], states[-1][2]) and not np.allclose(states[-1][15], states[-1][16])
    elif spec.kind == "instruct-multimodal":
        assert type(lm.model).__name__ == models.INSTRUCT_CLASSES[name][0]
        times = np.array([1.5, 3.0, 4.5])
        feats = instruct.multimodal_instruct_tr_features(lm, _INSTRUCT[name], times, **_media(name), window=2.0,
                                                         max_new_tokens=3, layers=[0, spec.n_layers], cache=False)
        assert [f.shape for f in feats] == [(3, models.TINY_DIM)] * 2 and all(np.isfinite(f).all() for f in feats)
        assert not np.allclose(feats[1][0], feats[1][1])  # each volume reads its own window
    else:
        words = "Call me Ishmael . Some years ago , never mind how long precisely".split()
        feats = features.word_features(lm, words, context=4, cache=False)
        assert feats.shape == (spec.n_layers + 1, len(words), models.TINY_DIM) and np.isfinite(feats).all()
    again = models.load_model(name)  # the same seed: the same weights
    for a, b in zip(lm.model.parameters(), again.model.parameters()):
        torch.testing.assert_close(a, b)


def test_tiny_tokenizer_reads_the_stories_words_whole(miniature_mode):
    lm = models.load_model("gpt2")
    ids = lm.tokenizer("Call me Ishmael. Some years ago", add_special_tokens=True)["input_ids"]
    assert len(ids) == 7  # six words and a full stop, each one token: the vocabulary holds the chapters' words
    enc = models.load_model("bert-base-uncased").tokenizer("call me", add_special_tokens=True)
    assert enc.tokens()[0] == "[CLS]" and enc.tokens()[-1] == "[SEP]"


def test_outside_miniature_mode_hub_models_still_need_the_hub(monkeypatch):
    monkeypatch.delenv("BRAINALIGN_MINIATURE", raising=False)
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="needs the Hugging Face hub"):
        models.check_available("bert-base-uncased")
    assert models.revision("bert-base-uncased") == "hub:google-bert/bert-base-uncased"


def test_a_model_without_a_stand_in_is_named(miniature_mode):
    with pytest.raises(ValueError, match="'clip-vit-base-patch32' has no tiny stand-in.*bert-base-uncased"):
        models.tiny_model(models.MODELS["clip-vit-base-patch32"])
    with pytest.raises(ValueError, match="'clip-vit-base-patch32' has no tiny stand-in"):
        models.load_model("clip-vit-base-patch32")


@pytest.mark.parametrize("name", sorted(_INSTRUCT))
def test_a_tiny_multimodal_lm_reads_its_media_through_its_real_processor(name, miniature_mode, no_network, one_thread):
    import transformers

    from brainalign import instruct

    lm = models.load_model(name)
    media = _media(name)
    if "audio" in media:  # Qwen2AudioProcessor: a 2 s clip is 200 mel frames, 100 after the first conv, 50 after pooling
        assert type(lm.processor) is transformers.Qwen2AudioProcessor
        inputs = instruct.multimodal_prompt(lm, _INSTRUCT[name], media["audio"][: 2 * 16000])
        assert inputs["input_features"].shape == (1, 128, 3000) and int(inputs["feature_attention_mask"].sum()) == 200
        assert int((inputs["input_ids"] == lm.model.config.audio_token_id).sum()) == 50
    else:
        inputs = _check_video_inputs(lm, name)
    assert inputs["attention_mask"].shape == inputs["input_ids"].shape
    assert set(models.INSTRUCT_CLASSES) == set(_INSTRUCT) and not [n for n in models.INSTRUCT_CLASSES if n not in models.TINY_FAMILIES]
    assert inputs["attention_mask"].shape == inputs["input_ids"].shape
    times = np.array([1.5, 3.0, 4.5])
    kwargs = {**media, "window": 2.0, "max_new_tokens": 3, "layers": [lm.spec.n_layers], "cache": False}
    first = instruct.multimodal_instruct_tr_features(lm, _INSTRUCT[name], times, **kwargs)[0]
    again = instruct.multimodal_instruct_tr_features(models.load_model(name), _INSTRUCT[name], times, **kwargs)[0]
    other = instruct.multimodal_instruct_tr_features(lm, "What is unusual about it?", times, **kwargs)[0]
    np.testing.assert_array_equal(first, again)  # the same seed, the same features
    assert np.abs(first - other).max() > 1e-3 * np.abs(first).max()  # the features depend on the instruction


def _tokens(lm, token: str, inputs: dict) -> list[int]:
    """Where ``token`` is in the prompt; asserted to be one run."""
    ids = inputs["input_ids"][0].tolist()
    at = [i for i, t in enumerate(ids) if t == lm.processor.tokenizer.convert_tokens_to_ids(token)]
    assert at and at == list(range(at[0], at[0] + len(at)))  # the template's one placeholder, expanded in place
    return at


def _check_video_inputs(lm, name: str) -> dict:
    """The inputs of each video model's real processor around the tiny stand-in's PIL video processor: counts and layout."""
    import transformers

    from brainalign import instruct

    rng = np.random.default_rng(3)
    frames = np.full((4, 40, 56, 3), 128, dtype=np.uint8)
    tok = lm.processor.tokenizer
    kind = type(lm.processor).__mro__[1].__name__  # the real class under the PIL-accepting subclass
    assert isinstance(lm.processor, getattr(transformers, kind)) and kind != "ProcessorMixin"
    inputs = instruct.multimodal_prompt(lm, _INSTRUCT[name], frames)
    ids = inputs["input_ids"][0].tolist()
    if kind == "Qwen2_5_VLProcessor":
        # 40 x 56 -> 32 x 64 (sides multiples of 16, at most 2,048 pixels); 4 frames in 2-frame, 8 x 8 patches: 2 x 4 x 8
        assert inputs["video_grid_thw"].tolist() == [[2, 4, 8]] and inputs["pixel_values_videos"].shape == (64, 3 * 2 * 8 * 8)
        at = _tokens(lm, "<|video_pad|>", inputs)
        assert len(at) == 16  # merged 2 x 2
        assert tok.convert_ids_to_tokens([ids[at[0] - 1], ids[at[-1] + 1]]) == ["<|vision_start|>", "<|vision_end|>"]
        assert np.flatnonzero(inputs["mm_token_type_ids"][0].numpy()).tolist() == at and int(inputs["mm_token_type_ids"].max()) == 2
        assert inputs["second_per_grid_ts"].tolist() == pytest.approx([2 / 24])  # the processor's default frame rate
        assert instruct.multimodal_prompt(lm, _INSTRUCT[name], frames, fps=2.0)["second_per_grid_ts"].tolist() == [1.0]
        # the patch layout of Qwen2VLVideoProcessor.patchify: a 2 x 2 merge block of 8 x 8 patches over 2 frames, then the next
        clip = rng.integers(0, 256, (4, 32, 64, 3), dtype=np.uint8)  # already the right size: the resize keeps it
        patches = instruct.multimodal_prompt(lm, _INSTRUCT[name], clip)["pixel_values_videos"].numpy().reshape(-1, 3, 2, 8, 8)
        mean, std = np.array(lm.processor.video_processor.image_mean), np.array(lm.processor.video_processor.image_std)
        norm = (clip / 255 - mean) / std  # (frame, y, x, channel)
        for k, (t, y, x) in {0: (0, 0, 0), 1: (0, 0, 8), 2: (0, 8, 0), 4: (0, 0, 16), 32: (2, 0, 0)}.items():
            expected = norm[t : t + 2, y : y + 8, x : x + 8].transpose(3, 0, 1, 2)
            np.testing.assert_allclose(patches[k], expected, rtol=1e-4, atol=1e-4)
        return inputs
    key = "pixel_values" if kind == "InstructBlipVideoProcessor" else "pixel_values_videos"
    pixels = inputs[key]
    assert pixels.shape == (1, 4, 3, 32, 32)  # the frames resized (and cropped) to the towers' 32 x 32
    mean, std = np.array(lm.processor.video_processor.image_mean), np.array(lm.processor.video_processor.image_std)
    np.testing.assert_allclose(pixels[0, 0, :, 5, 5].numpy(), (128 / 255 - mean) / std, rtol=1e-5)  # CLIP's normalisation
    if kind == "LlavaNextVideoProcessor":  # 32 x 32 frames in 8 x 8 patches, pooled 2 x 2: 4 tokens a frame
        assert len(_tokens(lm, "<video>", inputs)) == 16
        assert ids[0] == tok.convert_tokens_to_ids("<s>")  # as Llama's tokenizer, then "USER: <video>\n"
    elif kind == "LlavaOnevisionProcessor":  # 16 patches pooled 2 x 2: 4 tokens a frame, and one newline token a video
        assert len(_tokens(lm, "<video>", inputs)) == 4 * 4 + 1
        assert ids[0] == tok.convert_tokens_to_ids("<|im_start|>")
        assert tok.decode(ids).endswith("<|im_end|> <|im_start|> as ##s ##i ##s ##t ##a ##n ##t")  # the assistant's header last
    elif kind == "VideoLlavaProcessor":  # 16 patches and the class token a frame, every one kept
        assert len(_tokens(lm, "<video>", inputs)) == 4 * (16 + 1)
        assert ids[0] == tok.convert_tokens_to_ids("<s>")
        # a hub processor without a chat template gets the model card's prompt: the same as the stand-in's template gives
        template, lm.processor.chat_template = lm.processor.chat_template, None
        try:
            assert instruct.multimodal_prompt(lm, _INSTRUCT[name], frames)["input_ids"][0].tolist() == ids
        finally:
            lm.processor.chat_template = template
    else:  # InstructBLIP-Video: the Q-Former's 4 queries a frame before the text, the instruction also in the Q-Former's ids
        assert kind == "InstructBlipVideoProcessor"
        assert _tokens(lm, "<video>", inputs) == list(range(16)) and ids[16] == tok.convert_tokens_to_ids("<s>")
        assert tok.decode(ids[17:]).replace(" ##", "") == tok.decode(tok(_INSTRUCT[name].lower())["input_ids"][1:]).replace(" ##", "")
        qformer = lm.processor.qformer_tokenizer
        ids = inputs["qformer_input_ids"][0].tolist()  # the instruction alone, in the Q-Former's encoder tokens
        assert ids == qformer(_INSTRUCT[name])["input_ids"] and qformer.convert_ids_to_tokens(ids)[:3] == ["[CLS]", "what", "e"]
        assert inputs["qformer_attention_mask"].shape == inputs["qformer_input_ids"].shape
        with pytest.raises(ValueError, match="exactly 4 frames"):
            instruct.multimodal_prompt(lm, _INSTRUCT[name], frames[:3])
    return inputs


@pytest.mark.parametrize("name", sorted(_INSTRUCT))
def test_answers_generated_together_give_the_features_of_one_at_a_time(name, miniature_mode, no_network, one_thread):
    """Batched generation pads the prompts on the left and stacks the media; each answer's states are read alone."""
    from brainalign import instruct

    lm = models.load_model(name)
    times = np.array([0.5, 1.5, 3.0, 4.5, 5.0])  # the first windows are cut at 0: shorter audio, fewer audio tokens
    kwargs = dict(**_media(name), window=2.0, max_new_tokens=4, layers=[lm.spec.n_layers], cache=False)
    if name == "Salesforce/instructblip-vicuna-7b":
        kwargs["n_frames"] = 4
    one = instruct.multimodal_instruct_tr_features(lm, _INSTRUCT[name], times, **kwargs)[0]
    together = instruct.multimodal_instruct_tr_features(lm, _INSTRUCT[name], times, batch_size=3, **kwargs)[0]
    np.testing.assert_allclose(together, one, rtol=1e-4, atol=1e-5)
    if models.INSTRUCT_CLASSES[name][1] == "audio":  # the batch was padded
        lengths = {instruct.multimodal_prompt(lm, _INSTRUCT[name], kwargs["audio"][: int(t * 16000)])["input_ids"].shape[1]
                   for t in times[:3]}
        assert len(lengths) > 1
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        instruct.multimodal_instruct_tr_features(lm, _INSTRUCT[name], times, batch_size=0, **kwargs)


def test_qwen2_5_vl_answer_states_read_the_answer_at_its_3d_positions(miniature_mode, no_network, one_thread):
    """The pass over prompt + answer gets the 3-D rotary positions generate used: the answer's tokens are text tokens."""
    from brainalign import instruct

    name = "Qwen/Qwen2.5-VL-7B-Instruct"
    lm = models.load_model(name)
    frames = np.random.default_rng(5).integers(0, 256, (4, 40, 56, 3), dtype=np.uint8)
    inputs = instruct.multimodal_prompt(lm, _INSTRUCT[name], frames)
    layer = lm.spec.n_layers
    got = instruct._answer_states(lm, inputs, instruct._answers(lm, [inputs], 3)[0], [layer])[0]
    n = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        answer = lm.model.generate(**inputs, max_new_tokens=3, do_sample=False)[0, n:]
        stops = [i for i, t in enumerate(answer.tolist()) if t == lm.model.generation_config.eos_token_id]
        answer = answer[: max(1, stops[0])] if stops else answer
        ids = torch.cat([inputs["input_ids"][0], answer])[None]
        types = torch.cat([inputs["mm_token_type_ids"][0], torch.zeros_like(answer)])[None]
        positions, deltas = lm.model.model.get_rope_index(ids, mm_token_type_ids=types, video_grid_thw=inputs["video_grid_thw"],
                                                          second_per_grid_ts=inputs["second_per_grid_ts"])
        assert int(deltas[0, 0]) < 0  # the video's tokens take fewer positions than tokens: the 1-D positions would differ
        pixels = {k: inputs[k] for k in ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")}
        hidden = lm.model(input_ids=ids, position_ids=positions, use_cache=False, output_hidden_states=True, **pixels).hidden_states
        plain = lm.model(input_ids=ids, use_cache=False, output_hidden_states=True, **pixels).hidden_states  # no token types
    np.testing.assert_allclose(got, hidden[layer][0, n:].float().mean(0).numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(got, plain[layer][0, n:].float().mean(0).numpy(), rtol=1e-3, atol=1e-4)


@pytest.fixture(scope="module")
def minis(tmp_path_factory, cohort):
    home = tmp_path_factory.mktemp("miniature")
    return miniature.prepare(["lebel2023", "narratives"], home)


def test_the_lebel2023_miniature_is_read_by_its_loader(minis, cohort):
    ds = datasets.DS003020(minis["lebel2023"], split={"train": [], "test": ["wheretheressmoke"]})
    assert ds.subjects == [f"UTS{k:02d}" for k in range(1, 9)] and not ds.shared_space
    counts = {s: ds.responses(s, "wheretheressmoke").shape[1] for s in ds.subjects}
    assert len(set(counts.values())) == len(counts)  # native spaces: every subject has its own voxel count
    for s in ds.subjects[:3]:
        rois = ds.rois(s)
        assert set(rois) == set(cohort.rois()) and all(m.shape == (counts[s],) and m.any() for m in rois.values())
    reps = ds.repeats("UTS01", "wheretheressmoke")
    assert reps.shape[0] == len(cohort.repeats("S01", cohort.test_runs[0])) and reps.shape[1] == ds.n_trs("wheretheressmoke")
    respdict = json.loads((minis["lebel2023"] / "derivative" / "respdict.json").read_text())
    assert len(respdict) >= 26  # Study 4's paper set fits on up to 25 training stories
    for story, n in respdict.items():
        assert ds.responses("UTS02", story).shape[0] == n - 20  # the lab's trimming convention
        words = ds.words(story)
        assert len(words) > 50 and words["onset"].iloc[0] < 5 and all(w == w.lower() and GENTLE_WORD.fullmatch(w) for w in words["word"])
        audio, sr = ds.audio(story)
        assert len(audio) / sr > words["offset"].iloc[-1]
    with pytest.raises(ValueError, match="voxels are subject-specific"):
        ds.rois()


def test_the_narratives_miniature_is_read_by_its_loader(minis):
    ds = datasets.Narratives(minis["narratives"])
    assert ds.runs == ["21styear"] and len(ds.subjects) == 3 and ds.shared_space
    align = pd.read_csv(minis["narratives"] / "stimuli" / "gentle" / "21styear" / "align.csv", header=None,
                        keep_default_na=False)
    onsets = pd.to_numeric(align[2], errors="coerce")
    assert (align[1] == "").any() and (onsets.diff() < 0).any()  # an unaligned word and an onset going backwards
    words = ds.words("21styear")
    assert list(words["word"]) == list(align[0]) and words["onset"].is_monotonic_increasing  # text order, times repaired
    assert words["written"].str.endswith(".").sum() > 20  # sentences come from the transcript's punctuation
    y = ds.responses("sub-001", "21styear")
    assert y.shape == (len(ds.tr_times("21styear")), len(ds.areas())) and np.abs(y).sum() > 0
    assert all(mask.any() for mask in ds.rois().values())
    labels = ds.study_labels("21styear")
    assert list(labels.columns) == list(probing.STUDY_LABEL_CODES) and len(labels) == len(words)
    # the constituency parser's zip, as the fetch brings it, where its loader looks (the data home's parsers/)
    assert [f.name for f in (minis["narratives"].parent / "parsers").iterdir()] == ["benepar_en3.zip"]
    parser = load_constituency_parser(minis["narratives"].parent / "parsers" / "benepar_en3")
    assert parser.parse(["He", "ran", "."]).leaves() == ["He", "ran", "."]


def test_prepare_keeps_a_current_miniature_rewrites_a_stale_one_and_names_unknown_datasets(minis, tmp_path, cohort):
    folder = minis["narratives"]
    stamp = folder / ".brainalign-miniature"
    before = stamp.stat().st_mtime_ns
    assert miniature.prepare(["narratives"], folder.parent)["narratives"] == folder and stamp.stat().st_mtime_ns == before
    home = tmp_path / "home"
    first = miniature.prepare(["narratives"], home)["narratives"]
    (first / ".brainalign-miniature").write_text("0")
    (first / "stale").write_text("")
    again = miniature.prepare(["narratives"], home)["narratives"]
    assert (again / ".brainalign-miniature").read_text() == str(miniature.VERSION) and not (again / "stale").exists()
    assert not list(home.glob(".*writing"))
    with pytest.raises(ValueError, match=r"no miniature of dataset\(s\) \['hcp'\]"):
        miniature.prepare(["hcp"], home)


def test_the_miniature_home_is_inside_the_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAINALIGN_DATA", str(tmp_path))
    assert miniature.miniature_home() == tmp_path / "miniature"
    monkeypatch.setenv("BRAINALIGN_MINIATURE", "1")
    assert config.miniature()
    monkeypatch.setenv("BRAINALIGN_MINIATURE", "maybe")
    with pytest.raises(ValueError, match="BRAINALIGN_MINIATURE='maybe' is not a boolean"):
        config.miniature()


def test_which_loaders_share_a_space(cohort):
    assert cohort.shared_space and datasets.Narratives.shared_space and datasets.NeuroMod.shared_space
    assert not datasets.DS003020.shared_space


def test_study_4s_projection_is_read_as_one_shared_space(minis, tmp_path):
    import shutil

    import nibabel as nib

    ds = datasets.DS003020(minis["lebel2023"], space="fsaverage")
    assert ds.shared_space and ds.subjects == [f"UTS{k:02d}" for k in range(1, 9)]
    rois = ds.rois()
    assert set(rois) == {"auditory", "LTC", "AG", "IFG", "MFG", "language"}  # the regions the study kept, no others
    width = ds.responses("UTS01", "wheretheressmoke").shape[1]
    assert width == len(ds.projected_areas()) == ds.responses("UTS05", "wheretheressmoke").shape[1]
    assert all(m.shape == (width,) for m in rois.values()) and rois["language"].sum() + rois["auditory"].sum() == width
    with pytest.raises(ValueError, match=r"unknown space 'mni' of lebel2023; valid: \['native', 'fsaverage'\]"):
        datasets.DS003020(minis["lebel2023"], space="mni")
    root = tmp_path / "ds003020"
    shutil.copytree(minis["lebel2023"], root)
    folder = root / "derivative" / "transformed_data_fs_lang"
    (folder / "rh.HCPMMP1.annot").unlink()
    with pytest.raises(FileNotFoundError, match=r"rh.HCPMMP1.annot is missing. Study 4 projected .* FreeSurfer v7"):
        datasets.DS003020(root, space="fsaverage")
    nib.freesurfer.write_annot(str(folder / "rh.HCPMMP1.annot"), np.zeros(100, int),  # labels that keep no right vertex
                               np.array([[9, 9, 9, 0, 0]]), ["???"], fill_ctab=True)
    with pytest.raises(ValueError, match="columns, but the HCP-MMP1 annotations beside it label"):
        datasets.DS003020(root, space="fsaverage").responses("UTS01", "wheretheressmoke")


def test_narratives_audio_is_cut_to_the_story(minis, tmp_path):
    import shutil

    from scipy.io import wavfile

    ds = datasets.Narratives(minis["narratives"])
    audio, sr = ds.audio("21styear")
    n_trs = len(ds.tr_times("21styear"))
    assert audio.dtype == np.float32 and len(audio) == round(n_trs * ds.tr * sr)
    words = ds.words("21styear")
    first = int(words["onset"].iloc[0] * sr)
    assert np.abs(audio[first : first + sr // 2]).max() > 0.01  # the first word is heard when the words say it is
    root = tmp_path / "narratives"
    shutil.copytree(minis["narratives"], root)
    sr_, full = wavfile.read(root / "stimuli" / "21styear_audio.wav")
    wavfile.write(root / "stimuli" / "21styear_audio.wav", sr_, np.stack([full, full], axis=1)[: len(full) // 2])
    with pytest.raises(ValueError, match="21styear_audio.wav lasts .* but story '21styear' ends"):
        datasets.Narratives(root).audio("21styear")
    (root / "stimuli" / "21styear_audio.wav").unlink()
    with pytest.raises(FileNotFoundError, match="21styear_audio.wav is missing; `brainalign data fetch narratives --runs 21styear`"):
        datasets.Narratives(root).audio("21styear")


def test_read_wav_scales_integers_and_averages_channels(tmp_path):
    from scipy.io import wavfile

    from brainalign.stimuli import read_wav

    wavfile.write(tmp_path / "a.wav", 8000, np.array([[-32768, 0], [16384, 16384]], dtype=np.int16))
    audio, sr = read_wav(tmp_path / "a.wav")
    assert sr == 8000 and audio.dtype == np.float32
    np.testing.assert_allclose(audio, [-0.5, 0.5])
    (tmp_path / "b.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(ValueError, match="b.wav is not a readable WAV file"):
        read_wav(tmp_path / "b.wav")


def test_write_wav_is_read_back_and_glasser_area_reads_mnes_labels(tmp_path):
    from brainalign.spaces import glasser_area
    from brainalign.stimuli import read_wav, write_wav

    x = np.array([-2.0, -0.5, 0.0, 0.25, 1.0], dtype=np.float32)
    write_wav(tmp_path / "x.wav", x, 16000)
    back, sr = read_wav(tmp_path / "x.wav")
    assert sr == 16000
    np.testing.assert_allclose(back, np.clip(x, -1, 1), atol=1 / 16384)
    assert [glasser_area(n) for n in ("L_A1_ROI-lh", "R_p9-46v_ROI-rh", "L_A1_ROI", "A1", "???")] == [
        "A1", "p9-46v", "A1", "A1", "???"]


def test_the_neuromod_miniature_is_read_by_its_loader_with_its_movies(tmp_path, monkeypatch):
    import h5py

    home = tmp_path / "home"
    folder = miniature.prepare(["neuromod"], home)["neuromod"]  # cut from the movie cohort of the data home
    monkeypatch.setenv("BRAINALIGN_DATA", str(home))  # then read as a miniature run reads it (runner._miniature_setup)
    monkeypatch.setenv("BRAINALIGN_MINIATURE", "1")
    assert folder == home / "algonauts_2025.competitors" and not list(home.glob(".*writing"))
    assert (folder / ".brainalign-miniature").read_text() == str(miniature.VERSION)
    friends = datasets.load_dataset("neuromod", task="friends", frame_size=32)
    movie10 = datasets.load_dataset("neuromod", task="movie10", frame_rate=2.0, frame_size=32)
    assert friends.split == {"train": ["s01e01a", "s01e01b"], "test": ["s06e01a"]}
    assert movie10.split == {"train": ["bourne01", "wolf01", "figures01"], "test": ["life01"]}
    for ds in (friends, movie10):
        assert ds.subjects == ["sub-01", "sub-02", "sub-03", "sub-05"] and ds.n_parcels == 1000
        rois = ds.rois()
        assert rois["Vis"].sum() == 160 and rois["LTC"].sum() == 90 and rois["language"].any()
        for run in ds.runs:
            n = len(ds.tr_times(run))
            assert 40 <= n <= 60 and ds.responses("sub-05", run).shape == (n, 1000)
            words = ds.words(run)
            assert len(words) > 50 and words["onset"].min() >= 0 and words["offset"].max() <= n * ds.tr
            audio, sr = ds.audio(run)
            assert sr == 16000 and abs(len(audio) / sr - n * ds.tr) < 0.1
            first = int(words["onset"].iloc[0] * sr)
            assert np.abs(audio[first : first + sr // 4]).max() > 0.01  # the first word is heard when it is said
            frames, times = ds.frames(run)
            assert frames.shape == (len(times), 32, 32, 3) and frames.std() > 10
            np.testing.assert_allclose(times, np.arange(len(times)) / ds.frame_rate)
            assert n * ds.tr - 1 / ds.frame_rate - 0.2 <= times[-1] < n * ds.tr  # the movie lasts as long as the run
    with h5py.File(next((folder / "fmri" / "sub-02" / "func").glob("*task-friends*.h5")), "r") as f:
        assert f["ses-001_task-s01e01a"].shape[0] == len(friends.tr_times("s01e01a")) + 1  # cut to the shortest subject
    assert movie10.repeats("sub-01", "life01").shape[0] == 2 and movie10.repeats("sub-01", "figures01").shape[0] == 2
    assert movie10.repeats("sub-01", "bourne01") is None
    # the parcels keep the simulated ROIs' structure: language parcels covary, parcels of no ROI do not
    y = np.concatenate([friends.responses("sub-01", r) for r in friends.train_runs])
    corr = np.corrcoef(y.T)
    rois = friends.rois()

    def within(mask: np.ndarray) -> float:
        block = corr[np.ix_(mask, mask)]
        return float(block[~np.eye(len(block), dtype=bool)].mean())

    assert within(rois["LTC"]) > within(rois["Cont"]) + 0.02


def test_the_downstream_task_miniatures_have_their_clips_where_the_readers_look(tmp_path):
    from brainalign import tasks
    from brainalign.stimuli.formats import read_movie_audio, read_movie_frames

    folders = miniature.prepare(["mustard", "cmu_mosei"], tmp_path)
    mustard, mosei = tasks.load_mustard(folders["mustard"]), tasks.load_mosei(folders["cmu_mosei"])
    assert tasks.is_synthetic(mustard) and tasks.is_synthetic(mosei)
    assert mustard["utterance_video"].notna().all() and mosei["video_path"].notna().all() and mosei["split"].notna().all()
    audio, sr = read_movie_audio(mustard["utterance_video"].iloc[0])
    frames, _ = read_movie_frames(mustard["utterance_video"].iloc[0], 5.0, 64)
    assert abs(len(audio) / sr - 3.0) < 0.1 and len(frames) == 15 and np.abs(audio).max() > 0
    for path, segments in mosei.groupby("video_path"):
        audio, sr = read_movie_audio(path)
        assert len(audio) / sr > segments["end"].max()  # every labelled segment lies inside its recording
