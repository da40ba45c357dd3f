"""Instruction-following multimodal LMs: which transformers class each one is, what it reads, and its loader.

Kind ``"instruct-multimodal"`` (Qwen2-Audio, LLaVA-NeXT-Video, LLaVA-OneVision,
Video-LLaVA, Qwen2.5-VL, InstructBLIP-Video; hub, 7B): loaded
with their processors and read by
``brainalign.instruct.multimodal_instruct_tr_features``; the offline stand-in
is an instruction-tuned text LM reading a transcript and a description of the
screen (``brainalign.instruct.instruct_tr_features``).
"""

from __future__ import annotations

from typing import Any

import torch

from .registry import ModelSpec

__all__ = ["INSTRUCT_CLASSES", "instruct_medium", "load_instruct"]

#: the transformers class of each instruction-following multimodal LM, and the medium it reads
INSTRUCT_CLASSES = {
    "Qwen/Qwen2-Audio-7B-Instruct": ("Qwen2AudioForConditionalGeneration", "audio"),
    "llava-hf/LLaVA-NeXT-Video-7B-hf": ("LlavaNextVideoForConditionalGeneration", "video"),
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": ("LlavaOnevisionForConditionalGeneration", "video"),
    "LanguageBind/Video-LLaVA-7B-hf": ("VideoLlavaForConditionalGeneration", "video"),
    "Qwen/Qwen2.5-VL-7B-Instruct": ("Qwen2_5_VLForConditionalGeneration", "video"),
    "Salesforce/instructblip-vicuna-7b": ("InstructBlipVideoForConditionalGeneration", "video"),
}
#: the processor class of a model whose hub files name another one (AutoProcessor would give the image processor
#: InstructBlipProcessor for this image checkpoint, read here as a video model)
INSTRUCT_PROCESSORS = {"Salesforce/instructblip-vicuna-7b": "InstructBlipVideoProcessor"}


def instruct_medium(model: torch.nn.Module) -> str:
    """``"audio"`` or ``"video"``: what an instruction-following multimodal LM reads besides text (from its class)."""
    for cls, medium in INSTRUCT_CLASSES.values():
        if type(model).__name__ == cls:
            return medium
    raise ValueError(f"{type(model).__name__} is not a supported instruction-following multimodal LM; supported classes: "
                     f"{', '.join(c for c, _ in INSTRUCT_CLASSES.values())}")


def load_instruct(spec: ModelSpec, dtype: torch.dtype) -> tuple[Any, torch.nn.Module]:
    """Processor and model of a hub instruction-following multimodal LM (network)."""
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    cls, _ = INSTRUCT_CLASSES[spec.name]
    processor = getattr(transformers, INSTRUCT_PROCESSORS.get(spec.name, "AutoProcessor")).from_pretrained(spec.hub_id)
    model = getattr(transformers, cls).from_pretrained(spec.hub_id, dtype=dtype)
    return processor, model
