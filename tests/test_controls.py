"""Control models: positional ablation, untrained copies, corpora, and small models trained here."""

import dataclasses

import numpy as np
import pytest
import torch

from brainalign import controls, features, models
from brainalign.cache import Cache, digest

WORDS = ["the", "old", "sailor", "saw", "a", "whale"]
PERMUTED = ["a", "sailor", "saw", "the", "old"]  # the context of the last word ("whale"), reordered


def _last_word(lm, context_words, last="whale"):
    """Features (all layers) of ``last`` read after ``context_words``."""
    return features.word_features(lm, [*context_words, last], context=len(context_words), cache=False)[:, -1]


@pytest.fixture(scope="module")
def minilm():
    return models.load_model("minilm-l6")


def _tiny_llama(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=64, initializer_range=0.5)  # sharp attention
    return LlamaForCausalLM(cfg).eval()


# -- positional ablation at inference ------------------------------------------------------------
def test_bidirectional_model_without_positions_reads_its_context_as_a_bag(minilm):
    context = WORDS[:5]
    assert sorted(PERMUTED) == sorted(context) and PERMUTED != context
    intact = _last_word(minilm, context), _last_word(minilm, PERMUTED)
    assert np.abs(intact[0][1:] - intact[1][1:]).max() > 1e-2  # order matters to the intact model
    with controls.positions_removed(minilm) as ablated:
        assert ablated.spec.name == "minilm-l6+no-positions" and ablated.revision.endswith("+no-positions")
        bag = _last_word(ablated, context), _last_word(ablated, PERMUTED)
        np.testing.assert_allclose(bag[0], bag[1], atol=1e-4)  # every layer is invariant to the order
        assert np.abs(bag[0] - intact[0]).max() > 1e-2
    # restored on exit, exactly
    np.testing.assert_array_equal(_last_word(minilm, context), intact[0])


def test_rotary_model_without_positions_ignores_order_in_its_first_block():
    model = _tiny_llama()
    ids = torch.tensor([[5, 9, 14, 23, 31, 7]])
    perm = torch.tensor([[23, 5, 31, 9, 14, 7]])  # same tokens, the last one kept last

    def first_block_last_token(x):
        with torch.no_grad():
            return model.model(input_ids=x, output_hidden_states=True).hidden_states[1][0, -1]

    before = first_block_last_token(ids)
    assert not torch.allclose(before, first_block_last_token(perm), atol=1e-4)
    lm = models.LoadedModel(spec=models.get_spec("smollm2-135m-instruct"), tokenizer=None, model=model,
                            source="test", revision="r")
    with controls.positions_removed(lm) as ablated:
        assert torch.count_nonzero(model.model.rotary_emb.inv_freq) == 0
        assert ablated.revision == "r+no-positions"
        torch.testing.assert_close(first_block_last_token(ids), first_block_last_token(perm), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(first_block_last_token(ids), before, atol=0, rtol=0)


def test_a_model_without_positional_encoding_is_refused():
    with pytest.raises(ValueError, match=r"found no positional encoding in Linear.*position_embeddings"):
        controls.remove_positions(torch.nn.Linear(3, 3))


# -- untrained copies ------------------------------------------------------------------------------
def test_untrained_copy_is_seeded_and_leaves_the_model_alone(minilm):
    before = minilm.model.embeddings.word_embeddings.weight.detach().clone()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = controls.untrained(minilm, seed=1)
    assert torch.rand(1) == expected_next  # the global generator is untouched
    b, c = controls.untrained(minilm, seed=1), controls.untrained(minilm, seed=2)
    wa, wb, wc = (m.model.embeddings.word_embeddings.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    assert not torch.allclose(wa, before)
    assert torch.equal(minilm.model.embeddings.word_embeddings.weight, before)
    assert a.spec.name == "minilm-l6+untrained-seed1" and a.revision != minilm.revision
    assert sum(p.numel() for p in a.model.parameters()) == sum(p.numel() for p in minilm.model.parameters())
    assert not a.model.training
    feats = features.word_features(a, WORDS, context=3, cache=False)
    assert feats.shape == (7, len(WORDS), 384)
    # every state ends in a freshly initialised LayerNorm (weight 1, bias 0): each one-token word has mean 0 and sd 1
    np.testing.assert_allclose(feats.mean(-1), 0, atol=1e-5)
    np.testing.assert_allclose(feats.std(-1), 1, atol=1e-5)


def test_apply_control_by_name(minilm):
    with controls.apply_control(minilm, "untrained", seed=0) as u:
        assert u.spec.name.endswith("untrained-seed0")
    with controls.apply_control(minilm, "no_positions") as n:
        assert n.spec.name.endswith("no-positions")
    with pytest.raises(ValueError, match=r"unknown control 'shuffled'; valid: \['untrained', 'no_positions'\]"):
        controls.apply_control(minilm, "shuffled")


# -- tokenizer and corpora -------------------------------------------------------------------------
TEXT = ("Call me Ishmael. Some years ago, never mind how long precisely, having little or no money in my purse, "
        "and nothing particular to interest me on shore, I thought I would sail about a little and see the watery "
        "part of the world.").split()


def test_tokenizer_is_word_level_with_a_character_fallback():
    tok = controls.build_tokenizer(TEXT, "encoder", vocab_words=20)
    again = controls.build_tokenizer(TEXT, "encoder", vocab_words=20)
    assert tok.get_vocab() == again.get_vocab()  # deterministic
    enc = tok("Call me Zyzzyva.", return_offsets_mapping=True)
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert tokens[1:3] == ["call", "me"] and tokens[3:5] == ["z", "##y"]
    assert "[UNK]" not in tokens
    assert enc["offset_mapping"][1] == (0, 4)
    causal = controls.build_tokenizer(TEXT, "causal")
    assert causal.convert_ids_to_tokens(causal("call me")["input_ids"]) == ["call", "me"]
    with pytest.raises(ValueError, match=r"unknown kind 'seq2seq'; valid: \['encoder', 'causal'\]"):
        controls.build_tokenizer(TEXT, "seq2seq")


def test_corpora_share_tokens_but_not_structure():
    words = TEXT * 100
    tok = controls.build_tokenizer(words, "causal")
    human = controls.make_corpus("human", words, tok)
    shuffled = controls.make_corpus("shuffled", words, tok, seed=0)
    synthetic = controls.make_corpus("synthetic", words, tok, seed=0)
    assert len(human) == len(shuffled) == len(synthetic)
    np.testing.assert_array_equal(np.sort(human), np.sort(shuffled))  # the same tokens...
    assert not np.array_equal(human, shuffled)  # ...in another order
    np.testing.assert_array_equal(controls.make_corpus("shuffled", words, tok, seed=0), shuffled)
    n = len(tok)
    p_h, p_s = np.bincount(human, minlength=n) / len(human), np.bincount(synthetic, minlength=n) / len(synthetic)
    assert 0.5 * np.abs(p_h - p_s).sum() < 0.1  # same token frequencies
    # nested brackets: a closing token repeats the token opened last, so immediate repeats are common
    assert np.mean(synthetic[1:] == synthetic[:-1]) > 0.2 > np.mean(human[1:] == human[:-1])
    with pytest.raises(ValueError, match=r"unknown corpus 'music'; valid: \['human', 'shuffled', 'synthetic'\]"):
        controls.make_corpus("music", words, tok)


def test_training_words_never_include_the_test_story(cohort):
    words = controls.training_words(cohort)
    assert len(words) == sum(len(cohort.words(r)) for r in cohort.train_runs)
    test = list(cohort.words(cohort.test_runs[0])["word"])
    text = " " + " ".join(words) + " "
    assert " ".join(test[:8]) not in text
    assert " ".join(list(cohort.words(cohort.train_runs[0])["word"])[:8]) in text


# -- small models ------------------------------------------------------------------------------------
TINY = controls.SmallModelConfig(n_layers=1, dim=16, n_heads=2, seq_len=12, batch_size=4, steps=6, vocab_words=50)


def test_small_model_config_is_validated():
    with pytest.raises(ValueError, match=r"unknown corpus 'dna'; valid"):
        dataclasses.replace(TINY, corpus="dna")
    with pytest.raises(ValueError, match="dim=15 must be a multiple of n_heads=2"):
        dataclasses.replace(TINY, dim=15)
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        dataclasses.replace(TINY, steps=-1)
    assert dataclasses.replace(TINY, kind="causal", positions=False).name == "small-causal-human-nopos"


@pytest.mark.parametrize("kind", controls.KINDS)
def test_small_model_training_is_reproducible(kind, one_thread):
    words = TEXT * 5
    a = controls.train_small_model(words, TINY, cache=False, kind=kind)
    b = controls.train_small_model(words, TINY, cache=False, kind=kind)
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert a.revision == b.revision
    log = controls.training_log(a)
    assert len(log["losses"]) == TINY.steps and log["corpus"] == "human" and log["kind"] == kind
    shuffled = controls.train_small_model(words, TINY, cache=False, kind=kind, corpus="shuffled")
    assert shuffled.revision != a.revision and shuffled.spec.name == f"small-{kind}-shuffled"
    feats = features.word_features(a, WORDS, context=3, cache=False)
    assert feats.shape == (TINY.n_layers + 1, len(WORDS), TINY.dim)
    np.testing.assert_array_equal(features.word_features(b, WORDS, context=3, cache=False), feats)
    assert np.abs(features.word_features(shuffled, WORDS, context=3, cache=False)[-1] - feats[-1]).max() > 1e-3


def test_small_model_learns_its_text(one_thread):
    words = TEXT * 10
    lm = controls.train_small_model(words, TINY, cache=False, kind="causal", steps=120, dim=32, lr=3e-3)
    losses = controls.training_log(lm)["losses"]
    assert np.mean(losses[-10:]) < 0.6 * np.mean(losses[:5])


def test_small_model_is_cached(data_home, monkeypatch, one_thread):
    words = TEXT * 5
    first = controls.train_small_model(words, TINY)
    key = Cache.key("controls", controls.VERSION, {"config": dataclasses.asdict(TINY), "words": digest(words)})
    entry = data_home / "cache" / "controls" / key
    assert (entry / ".complete.json").is_file() and (entry / "model.safetensors").is_file()
    assert first.revision == f"brainalign-controls-v{controls.VERSION}:{key[:16]}"

    def no_training(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(controls, "_train", no_training)
    again = controls.train_small_model(words, TINY)
    assert again.revision == first.revision and controls.training_log(again) == controls.training_log(first)
    for p, q in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(p, q)
    with pytest.raises(AssertionError, match="trained again"):
        controls.train_small_model(words, TINY, seed=1)


@pytest.mark.parametrize("kind", controls.KINDS)
def test_small_model_without_positions_has_none(kind, data_home, one_thread):
    lm = controls.train_small_model(TEXT * 5, TINY, kind=kind, positions=False)  # cached, then loaded
    if kind == "encoder":
        assert torch.count_nonzero(lm.model.bert.embeddings.position_embeddings.weight) == 0
        # a bidirectional model without positions: invariant to the order of the context
        np.testing.assert_allclose(_last_word(lm, WORDS[:5]), _last_word(lm, PERMUTED), atol=1e-5)
    else:
        assert torch.count_nonzero(lm.model.model.rotary_emb.inv_freq) == 0
        with_positions = controls.train_small_model(TEXT * 5, TINY, kind=kind)
        assert torch.count_nonzero(with_positions.model.model.rotary_emb.inv_freq) > 0
