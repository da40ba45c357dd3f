"""The model registry and the offline loaders (no network: hub names must fail at once)."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest
import torch

from brainalign import models
from brainalign.models import convert

SENTENCE = "The keeper lit the lamp and watched the small boats come home."


def test_unknown_name_lists_valid_names():
    for call in (models.load_model, models.get_spec, models.layer_count, models.revision):
        with pytest.raises(ValueError, match="unknown model 'gpt-5'") as err:
            call("gpt-5")
        for name in ("minilm-l6", "smollm2-135m-instruct", "gemma-3-270m", "gpt2", "bert-base-uncased"):
            assert name in str(err.value)


@pytest.mark.parametrize(("name", "alternative"), [
    ("gpt2", "smollm2-135m-instruct"), ("bert-base-uncased", "minilm-l6"), ("meta-llama/Llama-3.2-1B", "gemma-3-270m"),
    ("wav2vec2-base-960h", "whisper-tiny-en"), ("whisper-base", "whisper-tiny-en"), ("hubert-base-ls960", "whisper-tiny-en"),
    ("clip-vit-base-patch32", "efficientnet-lite0"), ("videomae-base", "efficientnet-lite0"),
    ("pe-av-large", "whisper-efficientnet-fusion"),
])
def test_hub_model_offline_fails_at_once(monkeypatch, no_network, name, alternative):
    monkeypatch.setenv("BRAINALIGN_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as err:
        models.load_model(name)
    assert time.perf_counter() - start < 1.0
    message = str(err.value)
    assert "Hugging Face hub" in message and "BRAINALIGN_OFFLINE=0" in message and alternative in message


def test_registry_is_consistent():
    hub_ids = [s.hub_id for s in models.MODELS.values() if s.hub_id]
    assert len(hub_ids) == len(set(hub_ids))
    packaged = {s.name for s in models.MODELS.values() if s.packaged}
    assert packaged == {"minilm-l6", "smollm2-135m-instruct", "gemma-3-270m", "whisper-tiny-en", "efficientnet-lite0",
                        "whisper-efficientnet-fusion"}
    for name, spec in models.MODELS.items():
        assert spec.name == name and spec.kind in models.KINDS
        assert spec.n_layers > 0 and spec.dim > 0
        assert models.layer_count(name) == spec.n_layers + 1
    assert models.MODELS["smollm2-135m-instruct"].instruct and not models.MODELS["gemma-3-270m"].instruct
    assert models.layer_count("minilm-l6") == 7


def test_hub_id_of_packaged_model_resolves_offline(data_home, no_network):
    assert models.revision("HuggingFaceTB/SmolLM2-135M-Instruct") == models.revision("smollm2-135m-instruct")
    lm = models.load_model("sentence-transformers/all-MiniLM-L6-v2")
    assert lm.source == "packaged" and lm.spec.name == "minilm-l6"
    assert lm.revision == models.revision("minilm-l6")


def _check_spec(lm: models.LoadedModel) -> None:
    """The spec's n_layers/dim agree with the config and with what a forward pass returns."""
    cfg = lm.model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size) == (lm.spec.n_layers, lm.spec.dim)
    assert not lm.model.training and lm.tokenizer.is_fast
    assert next(lm.model.parameters()).dtype == torch.float32
    enc = lm.tokenizer(SENTENCE, return_tensors="pt")
    with torch.inference_mode():
        out = lm.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], output_hidden_states=True)
    assert len(out.hidden_states) == models.layer_count(lm.spec.name)
    assert out.hidden_states[-1].shape == (1, enc["input_ids"].shape[1], lm.spec.dim)


def test_minilm_spec_matches_model(data_home, no_network):
    lm = models.load_model("minilm-l6")
    assert type(lm.model).__name__ == "BertModel"
    _check_spec(lm)


def _check_conversion(name: str, gguf_path) -> None:
    """Convert (or reuse) a packaged GGUF model; its logits equal the GGUF-loaded model's."""
    from transformers import AutoModelForCausalLM

    models.load_model(name)  # converts on the first call of the session
    with pytest.MonkeyPatch.context() as mp:  # the second load reads the cached folder, never the GGUF
        mp.setattr(convert, "convert_gguf", lambda *a: pytest.fail(f"{name} was converted twice"))
        lm = models.load_model(name)
    _check_spec(lm)
    ids = lm.tokenizer(SENTENCE, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        converted = lm.model(input_ids=ids).logits
    del lm
    gc.collect()
    gguf = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    with torch.inference_mode():
        reference = gguf.eval()(input_ids=ids).logits
    del gguf
    gc.collect()
    diff = (converted - reference).abs().max().item()
    assert diff < 1e-3, f"converted {name} differs from the GGUF model by {diff}"
    assert np.isfinite(converted.numpy()).all()


def test_smollm2_conversion_matches_gguf(data_home, no_network):
    _check_conversion("smollm2-135m-instruct", convert._smollm2_gguf())
    folders = list((data_home / "cache" / "models").iterdir())
    assert any((f / "model.safetensors").is_file() for f in folders)


def test_gemma_conversion_matches_gguf(no_network, tmp_path, monkeypatch):
    """Gemma, the simulated cohort's generator, from the data home where `make data` converted it (converting it again
    in a fresh home would repeat, on a larger model, what the SmolLM2 test checks)."""
    monkeypatch.delenv("BRAINALIGN_DATA", raising=False)  # the module's other tests share a fresh one
    _check_conversion("gemma-3-270m", convert._gemma_gguf(tmp_path))
