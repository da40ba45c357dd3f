"""Word features: batched = one window at a time, no future leakage, context-free words, cache."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from brainalign import features, models
from brainalign.stimuli import lanczos_resample

TEXT = (
    "The old lighthouse keeper climbed the stairs every evening, counting each step aloud. "
    "Nobody in the village remembered when he had first arrived, or why he stayed. "
    "One stormy night, a small boat appeared between the rocks and the waves. "
    "He lit the lamp, wiped the salt from the glass, and watched the light sweep across the water."
)
WORDS = TEXT.split()




@pytest.fixture(scope="module")
def minilm(data_home):
    return models.load_model("minilm-l6")


@pytest.fixture(scope="module")
def smollm2(data_home):
    return models.load_model("smollm2-135m-instruct")


def assert_close_scaled(a: np.ndarray, b: np.ndarray, rel: float = 1e-4) -> None:
    """Equal up to float32 rounding, relative to each layer's largest value.

    SmolLM2's residual stream carries 'massive activations' (~2e4), whose
    rounding (one float32 ulp is ~2e-3 there) spreads through a layer, so
    tolerances are relative to the layer's scale.
    """
    assert a.shape == b.shape
    scale = np.maximum(1.0, np.abs(b).max(axis=(1, 2)))
    err = np.abs(a - b).max(axis=(1, 2))
    assert (err <= rel * scale).all(), f"per-layer error {err} vs scale {scale}"


def test_windows_and_spans():
    texts, spans = features.windows(["a", "bb", "ccc", "dd"], context=2)
    assert texts == ["a", "a bb", "a bb ccc", "bb ccc dd"]
    assert [t[s:e] for t, (s, e) in zip(texts, spans)] == ["a", "bb", "ccc", "dd"]
    texts, _ = features.windows(["a", "bb"], context=0)
    assert texts == ["a", "bb"]


def test_minilm_shape_and_batched_equals_loop(minilm):
    words = WORDS[:40]
    batched = features.word_features(minilm, words, cache=False, batch_size=16)
    assert batched.shape == (7, 40, 384) and batched.dtype == np.float32
    assert np.isfinite(batched).all() and np.abs(batched).max() > 0
    loop = features.word_features_loop(minilm, words)
    assert np.abs(batched - loop).max() < 1e-4
    some = features.word_features(minilm, words, layers=[0, -1, 3], cache=False)
    np.testing.assert_allclose(some, batched[[0, 6, 3]], atol=1e-5)


@pytest.mark.parametrize("fixture", ["minilm", "smollm2"])
def test_no_future_leakage(request, fixture):
    lm = request.getfixturevalue(fixture)
    k = 12
    other = WORDS[:k] + ["Meanwhile", "purple", "elephants", "danced", "on", "the", "moon."]
    a = features.word_features(lm, WORDS[:30], context=8, cache=False)
    b = features.word_features(lm, other, context=8, cache=False)
    assert_close_scaled(a[:, :k], b[:, :k], rel=1e-5)
    assert np.abs(a[:, k] - b[:, k]).max() > 1e-2  # a changed word changes its own features


def test_smollm2_batched_equals_loop(smollm2):
    words = WORDS[:24]
    batched = features.word_features(smollm2, words, context=6, batch_size=8, cache=False)
    assert batched.shape == (31, 24, 576)
    loop = features.word_features_loop(smollm2, words, context=6)
    assert_close_scaled(batched, loop)


def _alone(lm: models.LoadedModel, word: str) -> np.ndarray:
    """The mean over the word's non-special tokens, from a direct forward pass (n_hidden, dim)."""
    enc = lm.tokenizer(word, return_tensors="pt", return_special_tokens_mask=True)
    keep = enc.pop("special_tokens_mask")[0] == 0
    with torch.inference_mode():
        out = lm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
    return torch.stack([h[0, keep].mean(0) for h in out.hidden_states]).numpy()


@pytest.mark.parametrize("fixture", ["minilm", "smollm2"])
def test_context_zero_is_the_word_alone(request, fixture):
    lm = request.getfixturevalue(fixture)
    words = ["lighthouse", "keeper,", "the", "unremembered"]
    feats = features.word_features(lm, words, context=0, cache=False)
    for i, word in enumerate(words):
        assert_close_scaled(feats[:, i : i + 1], _alone(lm, word)[:, None], rel=1e-5)


def test_second_call_comes_from_the_cache(minilm, monkeypatch):
    first = features.word_features(minilm, WORDS, context=5)

    def refuse(*args, **kwargs):
        raise AssertionError("the model ran although the features are cached")

    monkeypatch.setattr(features, "_batched", refuse)
    monkeypatch.setattr(features, "load_model", refuse)
    start = time.perf_counter()
    second = features.word_features("minilm-l6", WORDS, context=5)  # by name: nothing is loaded
    assert time.perf_counter() - start < 1.0
    np.testing.assert_array_equal(first, second)
    with pytest.raises(AssertionError, match="cached"):  # other parameters, other entry
        features.word_features("minilm-l6", WORDS, context=4)


def test_sequence_features_equal_unlimited_context(smollm2):
    words = WORDS[:20]
    whole = features.sequence_word_features(smollm2, words, layers=[0, 5, -1], cache=False)
    windowed = features.word_features(smollm2, words, context=len(words), layers=[0, 5, -1], cache=False)
    assert whole.shape == (3, 20, 576)
    assert_close_scaled(whole, windowed, rel=1e-5)
    chunked = features.sequence_word_features(smollm2, words, layers=[0], max_tokens=8, cache=False)
    np.testing.assert_allclose(chunked, whole[:1], atol=1e-6)  # layer 0 needs no context


def test_bad_inputs(minilm):
    with pytest.raises(TypeError, match="split"):
        features.word_features(minilm, "a whole sentence", cache=False)
    with pytest.raises(ValueError, match="word 1"):
        features.word_features(minilm, ["a", " ", "b"], cache=False)
    with pytest.raises(ValueError, match=r"valid layers are 0\.\.6"):
        features.word_features(minilm, ["a"], layers=[7], cache=False)
    with pytest.raises(ValueError, match="context"):
        features.word_features(minilm, ["a"], context=-1, cache=False)
    with pytest.raises(ValueError, match="unknown model"):
        features.word_features("no-such-model", ["a"])
    # a zero-width space: BERT's normaliser drops it, leaving the word without tokens
    for compute in (features.word_features, features.word_features_loop, features.sequence_word_features):
        kwargs = {} if compute is features.word_features_loop else {"cache": False}
        with pytest.raises(ValueError, match="word 1 .* no tokens"):
            compute(minilm, ["a", "\u200b", "b"], **kwargs)


def test_tr_features_resamples_each_layer():
    rng = np.random.default_rng(0)
    word_feats = rng.standard_normal((3, 50, 4)).astype(np.float32)
    word_times = np.sort(rng.uniform(0, 40, 50))
    tr_times = np.arange(0, 40, 2.0)
    out = features.tr_features(word_feats, word_times, tr_times)
    assert out.shape == (3, 20, 4) and out.dtype == np.float32
    for k in range(3):
        expected = np.asarray(lanczos_resample(word_feats[k], word_times, tr_times, window=3))
        np.testing.assert_allclose(out[k], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="word_times"):
        features.tr_features(word_feats, word_times[:-1], tr_times)
