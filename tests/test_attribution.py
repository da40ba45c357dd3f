"""Tests of brainalign.attribution: analyses on hand-made vectors, attribution methods on known
answers, and the LM -> ridge -> response pipeline on a tiny random causal model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainalign import attribution as A
from brainalign.attribution.forward import hidden_states, input_embeddings
from brainalign.encoding import RidgeEncoder, delay_within_runs
from brainalign.stimuli import hrf

pytestmark = pytest.mark.usefixtures("one_thread")


# -- important-word sets, overlap, spread, position ---------------------------------------------------
def test_important_set_is_the_smallest_set_reaching_the_threshold():
    a = np.array([0.1, -0.4, 0.2, 0.3, 0.0])  # |a| sums to 1; order: 1, 3, 2, 0, 4
    assert A.important_set(a, 10).tolist() == [1]
    assert A.important_set(a, 40).tolist() == [1]          # exactly reached
    assert A.important_set(a, 41).tolist() == [1, 3]
    assert A.important_set(a, 70).tolist() == [1, 3]
    assert A.important_set(a, 90).tolist() == [1, 3, 2]
    assert A.important_set(a, 100).tolist() == [1, 3, 2, 0]  # the zero word is never needed
    assert A.set_sizes(a, [10, 41, 90, 100]).tolist() == [1, 2, 3, 4]
    assert A.important_set(np.zeros(3), 50).size == 0
    ties = np.ones(4)
    assert A.important_set(ties, 50).tolist() == [0, 1]     # ties broken by position
    for bad in (0, -5, 101, np.nan):
        with pytest.raises(ValueError, match="percentages in"):
            A.important_set(a, bad)
    with pytest.raises(ValueError, match="1-D"):
        A.important_set(np.ones((2, 2)), 50)


def test_iou_known_values():
    assert A.iou([1, 2, 3], [3, 2, 1]) == 1.0
    assert A.iou([1, 2], [3, 4]) == 0.0
    assert A.iou([1, 2, 3], [2, 3, 4, 5]) == pytest.approx(2 / 5)
    assert A.iou([], []) == 1.0
    a = np.array([5.0, 1, 1, 1, 1, 1])
    b = np.array([1.0, 1, 1, 1, 1, 5])
    curve = A.iou_curve(a, b, [10, 50, 100])
    assert curve[0] == 0.0 and curve[-1] == 1.0  # top word differs; all words at 100%
    np.testing.assert_array_equal(A.iou_curve(a, a), np.ones(len(A.THRESHOLDS)))
    with pytest.raises(ValueError, match="same words"):
        A.iou_curve(a, b[:3])


def test_random_iou_is_exact_and_matches_simulation():
    rng = np.random.default_rng(0)
    n, ka, kb = 30, 6, 10
    sims = [A.iou(rng.choice(n, ka, replace=False), rng.choice(n, kb, replace=False)) for _ in range(20000)]
    assert A.random_iou(n, ka, kb) == pytest.approx(np.mean(sims), abs=0.005)
    assert A.random_iou(n, n, n) == 1.0
    assert A.random_iou(n, 0, 5) == 0.0
    with pytest.raises(ValueError, match="set sizes"):
        A.random_iou(5, 6, 1)
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    chance = A.random_iou_curve(a, b)
    assert chance.shape == (len(A.THRESHOLDS),) and np.all(np.diff(chance) >= -1e-12)


def test_spread_auc_of_concentrated_and_uniform_attributions():
    t = A.THRESHOLDS
    one = np.zeros(20)
    one[7] = 3.0
    assert A.spread_auc(one, t) == pytest.approx((t[-1] - t[0]) / 100 / 20)
    flat = np.ones(20)
    sizes = np.ceil(np.asarray(t) / 100 * 20 - 1e-9)
    assert A.spread_auc(flat, t) == pytest.approx(np.trapezoid(sizes / 20, np.asarray(t) / 100))
    assert A.spread_auc(flat, t) > 9 * A.spread_auc(one, t)
    with pytest.raises(ValueError, match="increase"):
        A.spread_auc(flat, [50, 10])


def test_centre_of_mass_and_distance_profile():
    a = np.zeros((3, 5))
    a[0, -1] = 1.0   # the current word
    a[1, 0] = -2.0   # the first word of the window, 4 words back
    a[2, [1, 3]] = 1.0  # 3 and 1 words back
    np.testing.assert_allclose(A.centre_of_mass(a), [0.0, 4.0, 2.0])
    assert np.isnan(A.centre_of_mass(np.zeros(4)))
    profile = A.distance_profile(a)
    np.testing.assert_allclose(profile, [1 / 3, 1 / 6, 0, 1 / 6, 1 / 3])
    assert profile.sum() == pytest.approx(1.0)


def test_hrf_word_weights_of_words_on_the_tr_grid_are_the_hrf():
    tr = 2.0
    tr_times = np.arange(40) * tr
    word_times = np.array([10.0, 30.0])  # on TRs 5 and 15: the Lanczos kernel is exactly 1 there, 0 at other TRs
    W = A.hrf_word_weights(word_times, tr_times, tr)
    h = hrf(tr)
    assert W.shape == (40, 2)
    np.testing.assert_allclose(W[5 : 5 + len(h), 0], h, atol=1e-12)
    np.testing.assert_allclose(W[:5, 0], 0, atol=1e-12)
    assert int(np.argmax(W[:, 1])) == 15 + int(np.argmax(h))  # peaks ~5 s after the word
    # a word spoken before the first TR still reaches it through the HRF
    early = A.hrf_word_weights(np.array([-4.0]), tr_times, tr)
    np.testing.assert_allclose(early[:3, 0], h[2:5], atol=1e-12)
    late = A.hrf_word_weights(word_times, tr_times, tr, peak=6.5)  # a participant's slower HRF
    np.testing.assert_allclose(late[5 : 5 + len(h), 0], hrf(tr, peak=6.5), atol=1e-12)


def test_gather_windows_and_layer_groups():
    values = np.arange(10)
    np.testing.assert_array_equal(A.gather_windows(values, [0, 3], 4), [[0, 1, 2, 3], [3, 4, 5, 6]])
    rows = np.arange(20).reshape(2, 10)
    np.testing.assert_array_equal(A.gather_windows(rows, [1, 5], 2), [[1, 2], [15, 16]])
    with pytest.raises(ValueError, match="leave"):
        A.gather_windows(values, [8], 4)
    assert [A.layer_group(x, 30) for x in (1, 10, 11, 20, 21, 30)] == ["early", "early", "middle", "middle", "late", "late"]
    with pytest.raises(ValueError, match="valid layers are 0..30"):
        A.layer_group(31, 30)


def test_word_classes_tags_content_and_function_words():
    table = A.word_classes(["The", "old", "sailor", "walked", "slowly", "to", "the", "ship."])
    assert table["word"].tolist()[-1] == "ship."
    assert table["content"].tolist() == [False, True, True, True, True, False, False, True]
    assert table.loc[2, "pos"] == "NOUN" and table.loc[0, "pos"] == "DET"


# -- attribution methods -------------------------------------------------------------------------------
def test_gradient_x_input_of_a_linear_model_is_w_times_x_and_matches_captum():
    from captum.attr import InputXGradient

    torch.manual_seed(0)
    w = torch.randn(5, dtype=torch.float64)
    x = torch.randn(3, 5, dtype=torch.float64, requires_grad=True)
    out = A.gradient_x_input({"lin": x @ w, "sq": (x**2).sum(-1)}, x)
    torch.testing.assert_close(out["lin"], w * x.detach())
    torch.testing.assert_close(out["sq"], 2 * x.detach() ** 2)
    captum = InputXGradient(lambda inp: (inp**2).sum(-1) + torch.tanh(inp).sum(-1)).attribute(x.detach().clone())
    mine = A.gradient_x_input({"f": (x**2).sum(-1) + torch.tanh(x).sum(-1)}, x)["f"]
    torch.testing.assert_close(mine, captum)
    with pytest.raises(ValueError, match="require gradients"):
        A.gradient_x_input({"lin": x.detach() @ w}, x.detach())


def test_integrated_gradients_is_exact_for_linear_and_complete_for_smooth_functions():
    torch.manual_seed(0)
    w = torch.randn(6, dtype=torch.float64)
    x = torch.randn(4, 6, dtype=torch.float64)
    attr, delta = A.integrated_gradients(lambda inp: inp @ w, x, n_steps=5)
    torch.testing.assert_close(attr, w * x)
    assert delta.abs().max() < 1e-10

    def smooth(inp, scale):
        return torch.tanh(inp * scale).pow(2).sum(-1)

    scale = torch.full((4, 1), 0.7, dtype=torch.float64)
    attr, delta = A.integrated_gradients(smooth, x, n_steps=50, additional_forward_args=(scale,))
    gap = smooth(x, scale) - smooth(torch.zeros_like(x), scale)
    torch.testing.assert_close(attr.sum(-1), gap, atol=1e-3, rtol=1e-3)
    assert (delta.abs() / gap.abs()).max() < 1e-3
    with pytest.raises(ValueError, match="n_steps"):
        A.integrated_gradients(smooth, x, n_steps=1)


# -- the pipeline on a tiny causal model ------------------------------------------------------------------
VOCAB = ("the whale sea ship old man saw a and of to in his was it that he with as on by sailor "
         "white deep water cold boat long time night day ran fast").split()


def _tiny_lm():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from brainalign.models import LoadedModel, ModelSpec

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *VOCAB])}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=False)
    model = LlamaForCausalLM(config).eval()
    spec = ModelSpec("tiny", "causal", None, None, n_layers=2, dim=16)
    return LoadedModel(spec=spec, tokenizer=tokenizer, model=model, source="test", revision="test")


@pytest.fixture(scope="module")
def story():
    from brainalign.features import sequence_word_features, tr_features

    lm = _tiny_lm()
    rng = np.random.default_rng(1)
    words = list(rng.choice(VOCAB, 90))
    word_times = 0.5 + 0.45 * np.arange(len(words))
    tr_times = np.arange(24) * 2.0
    feats = sequence_word_features(lm, words, layers=[1, 2], cache=False)
    X = tr_features(feats, word_times, tr_times)  # (2, n_trs, 16)
    Y = X[0] @ rng.standard_normal((16, 3)) * 0.1 + rng.standard_normal((len(tr_times), 3))
    encoders = {(layer, "roi"): RidgeEncoder(delays=(1, 2, 3, 4), fixed_alphas=np.ones(3)).fit(X[i], Y)
                for i, layer in enumerate([1, 2])}
    return dict(lm=lm, words=words, word_times=word_times, tr_times=tr_times, X=X, Y=Y, encoders=encoders, feats=feats)


C = 50  # words per window in the pipeline tests (a prediction reads about 40 words of the story)


def _attributor(story, context, **kwargs):
    return A.BrainAttribution(story["lm"], story["words"], story["word_times"], story["tr_times"], story["encoders"],
                              {"roi": story["Y"]}, context=context, **kwargs)


@pytest.mark.parametrize("n_features", [3, 40])  # primal and kernel ridge
def test_linear_map_of_the_encoder_reproduces_predict(n_features):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, n_features)) * 3 + 1
    Y = X[:, :2] @ rng.standard_normal((2, 4)) + rng.standard_normal((80, 4)) * 2 + 5
    runs = np.repeat([0, 1], 40)
    enc = RidgeEncoder(delays=(1, 2), n_folds=3, gap=2).fit(X, Y, runs=runs)
    mean, scale, weights, intercept = enc.linear_map()
    assert weights.shape == (2 * n_features, 4) and intercept.shape == (4,)
    Xd = delay_within_runs(X, (1, 2), runs)
    np.testing.assert_allclose(((Xd - mean) / scale) @ weights + intercept, enc.predict(X, runs), rtol=1e-4, atol=1e-4)


def test_ridge_map_reproduces_the_encoder(story):
    enc = story["encoders"][1, "roi"]
    Xd = delay_within_runs(story["X"][0], enc.delays)
    out = A.RidgeMap(enc, dtype=torch.float64)(torch.from_numpy(Xd).double()).numpy()
    np.testing.assert_allclose(out, enc.predict(story["X"][0]), rtol=1e-4, atol=1e-4)


def test_window_prediction_equals_the_encoder_prediction(story):
    """A window that starts at the story's first word gives exactly the whole-story features (causal LM)."""
    probe = _attributor(story, context=1, fallback={1: story["feats"][0], 2: story["feats"][1]})
    t = 9
    _, last = probe.windows([t])
    att = _attributor(story, context=int(last[0]) + 1)
    assert att.windows([t])[0][0] == 0
    out = att.evaluate([t])
    for i, layer in enumerate([1, 2]):
        expected = story["encoders"][layer, "roi"].predict(story["X"][i])[t]
        np.testing.assert_allclose(out["alignment", layer, "roi"][0], expected, rtol=1e-4, atol=1e-4)


def test_truncated_forward_gives_the_models_hidden_states(story):
    att = _attributor(story, context=C)
    batch = att._batch(att.eligible[:2])
    x = input_embeddings(att.lm, batch.ids)
    with torch.no_grad():
        full = story["lm"].model.base_model(inputs_embeds=x, attention_mask=batch.attention.long(),
                                            output_hidden_states=True).hidden_states
        for deepest in (0, 1, 2):
            mine = hidden_states(att.lm, x, batch.attention, deepest)
            assert len(mine) == deepest + 1
            for a, b in zip(mine, full):
                torch.testing.assert_close(a, b)


def test_next_word_loss_is_the_models_cross_entropy(story):
    att = _attributor(story, context=C, nwp_readout="logit_lens")
    t = int(att.eligible[2])
    first, last = att.windows([t])
    chunk = story["words"][first[0] : last[0] + 2]
    ids = story["lm"].tokenizer(" ".join(chunk), return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = story["lm"].model(input_ids=ids).logits[0]
    expected = torch.nn.functional.cross_entropy(logits[-2:-1], ids[0, -1:]).item()
    lens = att.evaluate([t])
    out = _attributor(story, context=C, nwp_readout="output").evaluate([t])
    assert out["next_word", 1][0] == pytest.approx(expected, rel=1e-5)   # the output readout ignores the layer
    assert lens["next_word", 2][0] == pytest.approx(expected, rel=1e-5)  # the logit lens of the last layer is the output
    assert abs(lens["next_word", 1][0] - expected) > 1e-4


def test_gradient_x_input_attributions_match_captum_and_integrated_gradients_converge(story):
    from captum.attr import InputXGradient

    att = _attributor(story, context=C)
    trs = att.eligible[[0, 3, 5]]
    gxi = att.attribute(trs, batch_size=2)
    assert gxi.scores["alignment", 1, "roi"].shape == (3, C)
    assert set(gxi.scores) == {("alignment", 1, "roi"), ("alignment", 2, "roi"), ("next_word", 1), ("next_word", 2)}
    np.testing.assert_array_equal(gxi.last - gxi.first, C - 1)
    # the same numbers from captum's InputXGradient, one target at a time
    batch = att._batch(trs)
    idx = torch.arange(3)
    key = ("alignment", 2, "roi")
    captum = InputXGradient(lambda x, i: att._outputs(x, batch, i, [key])[key]).attribute(
        input_embeddings(att.lm, batch.ids), additional_forward_args=(idx,))
    np.testing.assert_allclose(att._to_words(captum.sum(-1), batch, idx), gxi.scores[key], rtol=1e-4, atol=1e-7)
    ig = att.attribute(trs[:1], keys=[key, ("next_word", 2)], method="integrated_gradients", n_steps=64, batch_size=16)
    for k in ig.scores:
        assert abs(ig.delta[k][0]) < 0.01 * abs(ig.gap[k][0]) + 1e-4  # completeness (float32 rounding: 1e-4)
    assert abs(ig.gap[key][0]) > 0.1  # the alignment loss does depend on the words


def test_output_readout_shares_one_next_word_attribution_and_mean_baseline_converges(story):
    att = _attributor(story, context=C, nwp_readout="output")
    trs = att.eligible[:2]
    res = att.attribute(trs)
    np.testing.assert_array_equal(res.scores["next_word", 1], res.scores["next_word", 2])
    key = ("alignment", 2, "roi")
    ig = att.attribute(trs[:1], keys=[key], method="integrated_gradients", n_steps=32, batch_size=16, baseline="mean")
    assert abs(ig.delta[key][0]) < 0.01 * abs(ig.gap[key][0]) + 1e-4
    alphas = [0.0, 0.5, 1.0]
    path = att.path_losses(int(trs[0]), alphas, baseline="mean", keys=[key, ("next_word", 1)])
    assert path[key].shape == (3,)
    # the path ends at the input and starts at the baseline: its end points give the gap IG explains
    assert path[key][-1] - path[key][0] == pytest.approx(ig.gap[key][0], rel=1e-3, abs=1e-5)
    plain = att.evaluate(trs[:1], keys=[("next_word", 1)])
    assert path["next_word", 1][-1] == pytest.approx(plain["next_word", 1][0], rel=1e-5)
    with pytest.raises(ValueError, match="unknown baseline 'noise'"):
        att.attribute(trs[:1], keys=[key], method="integrated_gradients", baseline="noise")


def test_integrated_gradients_holds_the_first_token_and_stays_complete(story):
    att = _attributor(story, context=C)
    trs = att.eligible[:1]
    key = ("next_word", 2)
    batch = att._batch(trs)
    first_word_tokens = int((batch.word_of[0] == 0).sum())
    held = att.attribute(trs, keys=[key], method="integrated_gradients", n_steps=64, batch_size=16)
    moved = att.attribute(trs, keys=[key], method="integrated_gradients", n_steps=64, batch_size=16, hold_first=False)
    for out in (held, moved):
        assert abs(out.delta[key][0]) < 0.01 * abs(out.gap[key][0]) + 1e-4
    assert held.gap[key][0] != pytest.approx(moved.gap[key][0], rel=1e-3)  # another start: another loss difference
    assert first_word_tokens == 1 and int(batch.word_of[0, 0]) == 0  # the tiny tokenizer: the first word is the first token
    assert held.scores[key][0, 0] == 0.0  # the held token is all of the first word: no attribution
    assert moved.scores[key][0, 0] != 0.0
    # the path's start holds the first token: its loss is that of the baseline with the first token kept
    path_held = att.path_losses(int(trs[0]), [0.0, 1.0], keys=[key])[key]
    path_moved = att.path_losses(int(trs[0]), [0.0, 1.0], keys=[key], hold_first=False)[key]
    assert path_held[1] - path_held[0] == pytest.approx(held.gap[key][0], rel=1e-3, abs=1e-5)
    assert path_moved[1] - path_moved[0] == pytest.approx(moved.gap[key][0], rel=1e-3, abs=1e-5)
    assert path_held[1] == pytest.approx(path_moved[1], rel=1e-6)  # both end at the input


def test_masking_zeroes_word_embeddings(story):
    att = _attributor(story, context=C)
    trs = att.eligible[:4]
    plain = att.evaluate(trs)
    none = att.evaluate(trs, mask=np.zeros((4, C), bool))
    for key in plain:
        np.testing.assert_allclose(none[key], plain[key], rtol=1e-6)
    mask = np.zeros((4, C), bool)
    mask[:, -1] = True  # the current word: the next-word loss must change
    masked = att.evaluate(trs, mask=mask)
    assert np.all(np.abs(masked["next_word", 2] - plain["next_word", 2]) > 1e-6)
    mean_fill = att.evaluate(trs, mask=mask, fill="mean")
    assert np.all(np.abs(mean_fill["next_word", 2] - masked["next_word", 2]) > 1e-6)  # another replacement
    with pytest.raises(ValueError, match="mask has shape"):
        att.evaluate(trs, mask=np.zeros((4, 3), bool))
    with pytest.raises(ValueError, match="unknown baseline 'ones'"):
        att.evaluate(trs, mask=mask, fill="ones")


def test_bad_input_gets_clear_errors(story):
    att = _attributor(story, context=C)
    with pytest.raises(ValueError, match="unknown method 'shap'.*gradient_x_input"):
        att.attribute(att.eligible[:1], method="shap")
    with pytest.raises(ValueError, match=r"unknown target \('alignment', 1, 'motor'\).*valid targets"):
        att.attribute(att.eligible[:1], keys=[("alignment", 1, "motor")])
    with pytest.raises(ValueError, match="TR 0 cannot be attributed: its delayed TRs"):
        att.attribute([0])
    with pytest.raises(ValueError, match="unknown nwp_readout 'final'"):
        _attributor(story, context=C, nwp_readout="final")
    with pytest.raises(ValueError, match="no responses for target 'roi'"):
        A.BrainAttribution(story["lm"], story["words"], story["word_times"], story["tr_times"], story["encoders"],
                           {"other": story["Y"]})
    bad = {(3, "roi"): story["encoders"][1, "roi"]}
    with pytest.raises(ValueError, match="valid layers are 0..2"):
        A.BrainAttribution(story["lm"], story["words"], story["word_times"], story["tr_times"], bad, {"roi": story["Y"]})
    short = _attributor(story, context=5)
    assert short.eligible.size == 0  # every prediction reads more than 5 words
    with pytest.raises(ValueError, match="reads .* word\\(s\\) before its window"):
        short.attribute([12])
    assert _attributor(story, context=5, fallback={1: story["feats"][0], 2: story["feats"][1]}).eligible.size > 0


def test_linear_contributions_sum_to_the_encoders_prediction(story):
    """Each word's own term, summed over a window holding every word a prediction reads, plus the encoder's constant,
    is the encoder's prediction from the whole-story features."""
    fallback = {1: story["feats"][0], 2: story["feats"][1]}
    att = _attributor(story, context=C, fallback=fallback)
    trs = att.eligible[:5]
    first, _ = att.windows(trs)
    assert all(not np.any(att.lanczos[[t - d for d in att.delays], :f]) for t, f in zip(trs, first))  # all inside
    for i, layer in enumerate([1, 2]):
        enc = story["encoders"][layer, "roi"]
        c = att.linear_contributions(trs, ("alignment", layer, "roi"))
        assert c.shape == (len(trs), C, 3)
        mean, scale, weights, intercept = enc.linear_map()
        constant = intercept - (mean / scale) @ weights
        np.testing.assert_allclose(c.sum(1) + constant, enc.predict(story["X"][i])[trs], rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="give an alignment key"):
        att.linear_contributions(trs, ("next_word", 1))
    with pytest.raises(ValueError, match="give them as fallback"):
        _attributor(story, context=C).linear_contributions(trs, ("alignment", 1, "roi"))


def test_planted_share():
    """The share of |attribution| on the fewest words carrying half the planted drive; errors on bad input."""
    drive = np.array([[0.0, 4.0, 1.0, 3.0, 2.0], [1.0, 1.0, 1.0, 1.0, 0.0]])
    att = np.array([[1.0, -2.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    got = A.planted_share(att, drive)  # row 0: words 1 and 3 carry 7 of 10; row 1: no attribution
    assert got[0] == pytest.approx(3 / 4) and np.isnan(got[1])
    assert A.planted_share(np.ones((1, 5)), drive[:1])[0] == pytest.approx(2 / 5)  # uniform: the set's size
    with pytest.raises(ValueError, match="one 2-D shape"):
        A.planted_share(att[0], drive[0])
    with pytest.raises(ValueError, match="non-negative"):
        A.planted_share(att, -drive)


def test_weighted_share_and_most_negative():
    """The weighted share of |attribution| and the masked words, on hand-made windows; errors on bad input."""
    weights = np.array([[0.0, 0.5, 1.0, 0.5], [1.0, 1.0, 1.0, 1.0]])
    att = np.array([[2.0, 0.0, -1.0, 1.0], [0.3, -0.2, 0.1, 0.4]])
    share = A.weighted_share(att, weights)
    assert share[0] == pytest.approx((1.0 + 0.5) / 4.0) and share[1] == pytest.approx(1.0)
    assert A.weighted_share(np.ones((1, 4)), weights[:1])[0] == pytest.approx(weights[0].mean())  # uniform: the mean weight
    assert np.isnan(A.weighted_share(np.zeros((1, 4)), weights[:1])[0])
    mask = A.most_negative(att, 2)
    np.testing.assert_array_equal(mask, [[False, True, True, False], [False, True, True, False]])
    assert A.most_negative(np.zeros((1, 4)), 1)[0].tolist() == [True, False, False, False]  # ties: the earlier word
    with pytest.raises(ValueError, match="one 2-D shape"):
        A.weighted_share(att, weights[:, :3])
    with pytest.raises(ValueError, match="non-negative"):
        A.weighted_share(att, -weights)
    for k in (0, 5, 1.5):
        with pytest.raises(ValueError, match=f"k={k!r} must be an integer from 1 to the 4 words"):
            A.most_negative(att, k)


def test_converged_integrated_gradients_doubles_the_points_until_complete(story):
    att = _attributor(story, context=C)
    trs = att.eligible[:1]
    key = ("alignment", 2, "roi")
    out, history = att.converged_integrated_gradients(trs, key, n_steps=2, max_factor=64, tolerance=0.01, batch_size=16)
    steps = list(history)
    assert steps[0] == 2 and all(b == 2 * a for a, b in zip(steps, steps[1:]))
    assert history[steps[-1]] < 0.01 and all(v >= 0.01 for v in list(history.values())[:-1])
    assert len(steps) > 1  # two points do not integrate the loss of a transformer
    direct = att.attribute(trs, keys=[key], method="integrated_gradients", n_steps=steps[-1], batch_size=16)
    np.testing.assert_allclose(out.scores[key], direct.scores[key], rtol=1e-5, atol=1e-8)
    # a tolerance never met stops at max_factor times the first number of points
    _, capped = att.converged_integrated_gradients(trs, key, n_steps=2, max_factor=4, tolerance=1e-12, batch_size=16)
    assert list(capped) == [2, 4, 8]
    for bad, match in [({"max_factor": 0}, "max_factor=0"), ({"tolerance": 1.5}, "tolerance=1.5")]:
        with pytest.raises(ValueError, match=match):
            att.converged_integrated_gradients(trs, key, **bad)
