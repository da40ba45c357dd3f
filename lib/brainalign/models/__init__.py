"""Models: a registry of names, and a loader that works offline.

Language models (kinds ``"encoder"`` and ``"causal"``) read text; speech
models (kind ``"speech"``) read a waveform; vision models (kind ``"vision"``)
read RGB images; audio-video models (kind ``"audio-video"``) read both;
instruction-following multimodal LMs (kind ``"instruct-multimodal"``, hub
only) read audio or video with a text instruction. Every name below is
importable from here (``from brainalign.models import load_model``); the
modules:

:mod:`~brainalign.models.registry`
    The names (:data:`MODELS`, :class:`ModelSpec`), the packaged models, the
    offline rules (:func:`check_available`) and the weights' identity
    (:func:`revision`). A name is looked up once, by :func:`resolve`; the spec
    then goes on.
:mod:`~brainalign.models.load`
    :func:`load_model`, by kind; :func:`build_av_fusion`.
:mod:`~brainalign.models.convert`
    The packaged weights' folders, and the GGUF and CTranslate2 converters.
:mod:`~brainalign.models.speech`, :mod:`~brainalign.models.vision`, :mod:`~brainalign.models.audio_video`
    Input checks and layerwise hidden states of each kind
    (:func:`speech_hidden_states`, :func:`vision_hidden_states` and its cached :func:`frame_states`,
    :func:`av_hidden_states`; the fusion model's window tokens,
    :func:`audio_window_tokens` and :func:`window_frames`). Language models' states are read by
    :mod:`brainalign.features`.
:mod:`~brainalign.models.instruct`
    Instruction-following multimodal LMs: their classes and the medium each reads.
:mod:`~brainalign.models.tiny`
    Tiny random stand-ins of hub models for the ``paper`` sets' miniature runs,
    and the character-fallback tokenizer they and Study 2's small models use.
"""

from __future__ import annotations

from .audio_video import FUSION_PARTS, AudioVideoFusion, AVProcessor, audio_window_tokens, av_hidden_states, window_frames
from .convert import convert_ct2_whisper, convert_gguf, read_ct2
from .instruct import INSTRUCT_CLASSES, instruct_medium
from .load import build_av_fusion, load_model
from .registry import (
    CONVERSION_VERSION,
    CT2_CONVERSION_VERSION,
    FUSION_VERSION,
    KINDS,
    MODELS,
    SELFSUP_VERSION,
    TEXT_KINDS,
    TINY_VERSION,
    Kind,
    LoadedModel,
    ModelSpec,
    check_available,
    check_kind,
    fusion_revision,
    get_spec,
    layer_count,
    model_names,
    resolve,
    revision,
)
from .speech import (
    SPEECH_SR,
    check_audio,
    is_whisper,
    speech_context,
    speech_forward,
    speech_frames,
    speech_hidden_states,
    whisper_encoder_states,
    whisper_mel,
    whisper_shared_blocks,
)
from .tiny import SPECIAL_TOKENS, TINY_DIM, TINY_FAMILIES, build_tokenizer, tiny_model
from .vision import ImagePreprocessor, check_images, frame_states, vision_hidden_states

__all__ = [
    # registry
    "CONVERSION_VERSION", "CT2_CONVERSION_VERSION", "FUSION_VERSION", "KINDS", "MODELS", "TEXT_KINDS", "Kind", "LoadedModel",
    "ModelSpec", "SELFSUP_VERSION", "check_available", "check_kind", "fusion_revision", "get_spec", "layer_count",
    "model_names", "resolve", "revision",
    # loading
    "build_av_fusion", "load_model",
    # packaged weights
    "convert_ct2_whisper", "convert_gguf", "read_ct2",
    # speech
    "SPEECH_SR", "check_audio", "is_whisper", "speech_context", "speech_forward", "speech_frames", "speech_hidden_states",
    "whisper_encoder_states", "whisper_mel", "whisper_shared_blocks",
    # vision
    "ImagePreprocessor", "check_images", "frame_states", "vision_hidden_states",
    # audio-video
    "FUSION_PARTS", "AVProcessor", "AudioVideoFusion", "audio_window_tokens", "av_hidden_states", "window_frames",
    # instruction-following multimodal LMs
    "INSTRUCT_CLASSES", "instruct_medium",
    # tiny stand-ins (miniature runs) and the character-fallback tokenizer
    "SPECIAL_TOKENS", "TINY_DIM", "TINY_FAMILIES", "TINY_VERSION", "build_tokenizer", "tiny_model",
]
