"""Tiny stand-ins for hub models: the same transformers class, randomly initialised, built offline.

A ``paper`` parameter set names hub models (``bert-base-uncased``,
``meta-llama/Llama-3.2-1B``, ``wav2vec2-base-960h``, ...). To run such a set
end to end without the network (``brainalign run NOTEBOOK --set paper
--miniature``), :func:`~brainalign.models.load_model` builds, in miniature mode
(:func:`brainalign.config.miniature`), a model of the same class with the
same number of blocks but a width of :data:`TINY_DIM`, from a fixed seed,
and a tokenizer of the same kind (:func:`build_tokenizer`, which Study 2's
small models use too: the 2,000 commonest words of the packaged Moby-Dick
chapters, other words spelt in characters; encoders add ``[CLS]`` and
``[SEP]``, causal models nothing). Its hidden states have the real
model's count and the tiny width, so every layer index of the set stays
valid; the numbers mean nothing. A loaded tiny model says so: its spec's
``dim`` is :data:`TINY_DIM`, its ``source`` is ``"tiny"`` and its revision
starts with ``tiny:``.

Speech, vision and instruction-following multimodal models come with the
processor their real code path calls, built offline: the class's feature
extractor or image processor (on its PIL backend: torchvision is not
installed), and for the multimodal LMs the model's own processor class
(``Qwen2AudioProcessor``, ``LlavaNextVideoProcessor``, ``LlavaOnevisionProcessor``,
``VideoLlavaProcessor``, ``Qwen2_5_VLProcessor``, ``InstructBlipVideoProcessor``)
around a small audio front end or a video processor on PIL
(:func:`_video_processing`) and a :func:`build_tokenizer` tokenizer with the
model's special tokens and chat template (written from transformers' source
and the model cards, not checked against the hub files). Their encoders
besides the language model (Qwen2-Audio's audio encoder, the CLIP, SigLIP,
Qwen2.5-VL and BLIP vision towers, InstructBLIP's Q-Former) have 2 blocks
of width :data:`TINY_DIM` (LLaVA reads its tower's second-to-last state,
which so stays a block's output, as in the real model), and their inputs
are small (32 x 32 frames), so a forward pass takes milliseconds on a CPU.
"""

from __future__ import annotations

import dataclasses
import functools
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .registry import ModelSpec

__all__ = ["SPECIAL_TOKENS", "TINY_DIM", "TINY_FAMILIES", "build_tokenizer", "corpus_words", "tiny_model"]

#: width of every tiny model's hidden states
TINY_DIM = 32

#: the transformers model type of each hub entry a tiny stand-in can be built for
TINY_FAMILIES: dict[str, str] = {
    "bert-base-uncased": "bert", "bert-large-uncased": "bert", "roberta-base": "roberta",
    "gpt2": "gpt2", "gpt2-medium": "gpt2", "gpt2-large": "gpt2", "opt-125m": "opt", "pythia-160m": "gpt_neox",
    "meta-llama/Llama-3.2-1B": "llama", "google/gemma-2b": "gemma", "tiiuae/Falcon3-1B-Base": "llama",
    "Qwen/Qwen2.5-0.5B": "qwen2", "HuggingFaceTB/SmolLM2-360M": "llama",
    "wav2vec2-base-960h": "wav2vec2", "hubert-base-ls960": "hubert", "whisper-base": "whisper",
    "videomae-base": "videomae",
    "Qwen/Qwen2-Audio-7B-Instruct": "qwen2_audio", "llava-hf/LLaVA-NeXT-Video-7B-hf": "llava_next_video",
    "llava-hf/llava-onevision-qwen2-7b-ov-hf": "llava_onevision", "LanguageBind/Video-LLaVA-7B-hf": "video_llava",
    "Qwen/Qwen2.5-VL-7B-Instruct": "qwen2_5_vl", "Salesforce/instructblip-vicuna-7b": "instructblipvideo",
}

#: the special tokens of :func:`build_tokenizer`, first in its vocabulary
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# BERT's limit; causal models read long windows, and so do the multimodal LMs (their prompts hold the media's tokens)
_TEXT_POSITIONS = {"encoder": 512, "causal": 8192, "instruct-multimodal": 8192}
#: side of a tiny vision model's square input (pixels): a few patches, enough to keep its token layout
_TINY_IMAGE = 32


def build_tokenizer(words: Sequence[str], kind: str = "encoder", vocab_words: int = 2000, max_length: int = 256):
    """A word-level tokenizer with a character fallback, built from a text.

    The text is lowercased and split into words and punctuation runs; the
    ``vocab_words`` most frequent of them (ties broken alphabetically, so the
    vocabulary is deterministic) become tokens, and any other word is spelt
    with single-character WordPiece tokens (every printable ASCII character
    is in the vocabulary). Encoders get ``[CLS] ... [SEP]``; causal models no
    special token.

    Parameters
    ----------
    words : sequence of str
    kind : {"encoder", "causal"}
    vocab_words : int
        Whole-word tokens.
    max_length : int
        The tokenizer's ``model_max_length``.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
    """
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece
    from transformers import PreTrainedTokenizerFast

    if kind not in ("encoder", "causal"):
        raise ValueError(f"unknown kind {kind!r}; valid: ['encoder', 'causal']")
    if isinstance(words, str) or len(words) == 0:
        raise ValueError("words must be a non-empty sequence of words (split the text first)")
    pre = pre_tokenizers.Whitespace()
    counts = Counter(piece for w in words for piece, _ in pre.pre_tokenize_str(w.lower()))
    top = [w for w, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: int(vocab_words)]]
    chars = sorted(set("".join(counts)) | set(string.printable.strip().lower()))
    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars), *top]:
        vocab.setdefault(token, len(vocab))
    tok = Tokenizer(WordPiece(vocab=vocab, unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre
    if kind == "encoder":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=int(max_length))


def corpus_words() -> list[str]:
    """The words of the packaged Moby-Dick chapters (the simulated cohort's and the miniatures' stories)."""
    folder = Path(__file__).resolve().parent.parent / "resources" / "stimuli" / "mobydick"
    return [w for path in sorted(folder.glob("*.txt")) for w in path.read_text(encoding="utf-8").split()]


def _text_config(model_type: str, spec: ModelSpec, vocab_size: int) -> Any:
    from transformers import AutoConfig

    width = {"hidden_size": TINY_DIM, "num_hidden_layers": spec.n_layers, "num_attention_heads": 2,
             "intermediate_size": 2 * TINY_DIM, "vocab_size": vocab_size,
             "max_position_embeddings": _TEXT_POSITIONS[spec.kind]}
    extra: dict[str, Any] = {
        "bert": {"type_vocab_size": 2},
        "roberta": {"type_vocab_size": 1, "max_position_embeddings": _TEXT_POSITIONS[spec.kind] + 2},
        "opt": {"ffn_dim": 2 * TINY_DIM, "word_embed_proj_dim": TINY_DIM},
        "llama": {"num_key_value_heads": 1}, "qwen2": {"num_key_value_heads": 1},
        "gemma": {"num_key_value_heads": 1, "head_dim": TINY_DIM // 2},
    }.get(model_type, {})
    return AutoConfig.for_model(model_type, **{**width, **extra})


def _speech(model_type: str, spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    import transformers as tf

    if model_type == "whisper":
        config = tf.WhisperConfig(d_model=TINY_DIM, encoder_layers=spec.n_layers, decoder_layers=1, encoder_attention_heads=2,
                                  decoder_attention_heads=2, encoder_ffn_dim=2 * TINY_DIM, decoder_ffn_dim=2 * TINY_DIM,
                                  num_mel_bins=80)
        return tf.WhisperFeatureExtractor(feature_size=80), tf.WhisperModel(config).get_encoder()
    small = {"hidden_size": TINY_DIM, "num_hidden_layers": spec.n_layers, "num_attention_heads": 2,
             "intermediate_size": 2 * TINY_DIM, "conv_dim": (16,) * 7, "num_conv_pos_embeddings": 16}
    arch = tf.Wav2Vec2Model if model_type == "wav2vec2" else tf.HubertModel
    config = (tf.Wav2Vec2Config if model_type == "wav2vec2" else tf.HubertConfig)(**small)
    return tf.Wav2Vec2FeatureExtractor(), arch(config)


def _videomae(spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    """VideoMAE: clips of 16 frames of 32 x 32 pixels, 2-frame tubelets of 16 x 16 patches (32 tokens a clip)."""
    import transformers as tf

    # the PIL backend, named: the default VideoMAEImageProcessor needs torchvision and falls back to it with a warning
    size = {"shortest_edge": _TINY_IMAGE}, {"height": _TINY_IMAGE, "width": _TINY_IMAGE}
    processor = tf.VideoMAEImageProcessorPil(size=size[0], crop_size=size[1])
    config = tf.VideoMAEConfig(image_size=_TINY_IMAGE, patch_size=16, num_frames=16, tubelet_size=2, hidden_size=TINY_DIM,
                               num_hidden_layers=spec.n_layers, num_attention_heads=2, intermediate_size=2 * TINY_DIM)
    return processor, tf.VideoMAEModel(config)


def _chat_tokenizer(special: Sequence[str], bos: str | None = None):
    """A causal :func:`build_tokenizer` with a chat model's special tokens (whole, never lowercased), ``bos`` put first."""
    from tokenizers import AddedToken, processors

    tok = build_tokenizer(corpus_words(), "causal", vocab_words=2000, max_length=_TEXT_POSITIONS["instruct-multimodal"])
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in special], special_tokens=True)
    if bos is not None:  # as Llama's tokenizer does
        tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.convert_tokens_to_ids(bos))])
    return tok


def _chat_text_config(model_type: str, spec: ModelSpec, tok, eos: str) -> Any:
    """The language model's config, with the tokenizer's vocabulary, padding and end-of-turn (``eos``) tokens."""
    config = _text_config(model_type, spec, len(tok))
    config.pad_token_id, config.bos_token_id, config.eos_token_id = tok.pad_token_id, None, tok.convert_tokens_to_ids(eos)
    return config


def _chat_generation(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with generation stopping at its language model's end-of-turn token and padding with its padding token."""
    text = model.config.text_config
    model.generation_config.pad_token_id, model.generation_config.eos_token_id = text.pad_token_id, text.eos_token_id
    return model


def _qwen2_audio(spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    """Qwen2-Audio: a Qwen2 LM, a 2-block audio encoder, and the real processor class with its chat template.

    The feature extractor is Whisper's with the real model's 128 mel bins and
    30 s context (the encoder's 1500 positions need 3000 mel frames); the chat
    template is the processor's own (``Qwen2AudioProcessor.default_chat_template``).
    """
    import transformers as tf

    tok = _chat_tokenizer(["<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>"])
    audio = tf.Qwen2AudioEncoderConfig(num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2,
                                       encoder_ffn_dim=2 * TINY_DIM, d_model=TINY_DIM, max_source_positions=1500)
    config = tf.Qwen2AudioConfig(audio_config=audio, text_config=_chat_text_config("qwen2", spec, tok, "<|im_end|>"),
                                 audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"))
    model = _chat_generation(tf.Qwen2AudioForConditionalGeneration(config))
    processor = tf.Qwen2AudioProcessor(feature_extractor=tf.WhisperFeatureExtractor(feature_size=128), tokenizer=tok)
    return processor, model


@functools.cache
def _video_processing() -> tuple[type, type, type]:
    """Video processors without torchvision: the classes ``PilVideoProcessor``, ``PilBlipVideoProcessor``, ``PilQwenVLVideoProcessor``.

    transformers' video processors (``LlavaNextVideoVideoProcessor``,
    ``LlavaOnevisionVideoProcessor``, ``VideoLlavaVideoProcessor``,
    ``InstructBlipVideoVideoProcessor``, ``Qwen2VLVideoProcessor``) run their
    steps with torchvision, whose PyPI wheel does not load beside the CPU
    build of torch (its C operators are missing), so it cannot be installed
    here. ``PilVideoProcessor`` runs the same steps, frame by frame, on the
    PIL backend of the image processors: a resize to ``size`` (the shorter
    side, bicubic, or both sides where ``size`` has a height and a width), a
    centre crop to ``crop_size`` (where ``do_center_crop``), pixels scaled
    to [0, 1] and normalised with CLIP's mean and standard deviation; it
    gives what the real ones give, ``pixel_values_videos``, one array of
    shape (n_frames, 3, height, width) per video (``pixel_values`` for
    InstructBLIP-Video's ``PilBlipVideoProcessor``), with the videos'
    metadata where asked, and samples no frames (the caller picks them).
    ``PilQwenVLVideoProcessor`` is Qwen2-VL's (and Qwen2.5-VL's): frames
    resized so that both sides are multiples of ``patch_size * merge_size``
    (``smart_resize``), normalised, the frame count padded to a multiple of
    ``temporal_patch_size`` with the last frame, and cut into flattened
    patches in the order of ``Qwen2VLVideoProcessor.patchify``, with
    ``video_grid_thw``.

    Built on first use, so that importing this module does not import transformers.
    """
    from transformers.image_processing_backends import PilBackend
    from transformers.image_processing_utils import BatchFeature
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling, SizeDict
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
    from transformers.video_processing_utils import VideoProcessorMixin
    from transformers.video_utils import make_batched_metadata, make_batched_videos

    class PilVideoProcessor(VideoProcessorMixin, PilBackend):
        # LlavaNextVideoVideoProcessor's defaults
        resample = PILImageResampling.BICUBIC
        image_mean, image_std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
        size, crop_size, default_to_square = {"shortest_edge": 224}, {"height": 224, "width": 224}, False
        do_resize = do_center_crop = do_rescale = do_normalize = do_convert_rgb = True
        do_sample_frames = False
        output_key = "pixel_values_videos"

        def _decode_and_sample_videos(self, videos, video_metadata=None, do_sample_frames=None, sample_indices_fn=None):
            if do_sample_frames:
                raise ValueError(f"{type(self).__name__} does not sample frames: pass the frames to read")
            videos = make_batched_videos(videos)
            return videos, make_batched_metadata(videos, video_metadata=video_metadata)

        def _prepare_input_videos(self, videos, do_convert_rgb=None, input_data_format=None, device=None):
            return [[self.process_image(frame, do_convert_rgb=do_convert_rgb, input_data_format=input_data_format)
                     for frame in video] for video in videos]

        def _preprocess(self, videos, return_tensors=None, **kwargs):
            kwargs.update(do_pad=False, pad_size=None)
            out = [np.stack(PilBackend._preprocess(self, frames, return_tensors=None, **kwargs)["pixel_values"])
                   for frames in videos]
            return BatchFeature(data={self.output_key: out}, tensor_type=return_tensors)

    class PilBlipVideoProcessor(PilVideoProcessor):
        # InstructBlipVideoVideoProcessor's defaults: a square resize, no crop, its output named pixel_values
        size, crop_size, default_to_square, do_center_crop = {"height": 384, "width": 384}, None, True, False
        output_key = "pixel_values"
        model_input_names = ["pixel_values"]

    class PilQwenVLVideoProcessor(PilVideoProcessor):
        # Qwen2VLVideoProcessor's defaults (size: min and max pixels of a frame)
        size, crop_size, do_center_crop = {"shortest_edge": 128 * 28 * 28, "longest_edge": 28 * 28 * 768}, None, False
        patch_size, temporal_patch_size, merge_size = 14, 2, 2
        model_input_names = ["pixel_values_videos", "video_grid_thw"]

        def _preprocess(self, videos, size, return_tensors=None, **kwargs):
            pixels, grids = [], []
            for frames in videos:
                height, width = np.asarray(frames[0]).shape[-2:]
                h, w = smart_resize(height, width, factor=self.patch_size * self.merge_size, min_pixels=size.shortest_edge,
                                    max_pixels=size.longest_edge)
                out = super()._preprocess([frames], size=SizeDict(height=h, width=w), **kwargs)[self.output_key][0]
                t, m, p = self.temporal_patch_size, self.merge_size, self.patch_size
                out = np.concatenate([out, np.repeat(out[-1:], -len(out) % t, axis=0)])
                gt, gh, gw = len(out) // t, h // p, w // p
                patches = out.reshape(gt, t, 3, gh // m, m, p, gw // m, m, p).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
                pixels.append(patches.reshape(gt * gh * gw, 3 * t * p * p))
                grids.append([gt, gh, gw])
            return BatchFeature(data={self.output_key: np.concatenate(pixels), "video_grid_thw": np.array(grids)},
                                tensor_type=return_tensors)

    return PilVideoProcessor, PilBlipVideoProcessor, PilQwenVLVideoProcessor


@functools.cache
def _pil_processor(name: str) -> type:
    """transformers' processor class ``name``, accepting a video processor that runs on PIL (:func:`_video_processing`).

    The real class (chat template, media tokens expanded to the model's
    count) with one change: the check that its video processor is a
    ``VideoProcessorMixin``. transformers looks that class up by name, and
    without torchvision the lookup fails (its video-processor registry is a
    placeholder), so the check is an ``isinstance`` here.
    """
    import transformers
    from transformers.video_processing_utils import VideoProcessorMixin

    def check_argument_for_proper_class(self, argument_name, argument):
        if argument_name != "video_processor":
            return super(cls, self).check_argument_for_proper_class(argument_name, argument)
        if not isinstance(argument, VideoProcessorMixin):
            raise TypeError(f"Received a {type(argument).__name__} for argument video_processor, "
                            "but a VideoProcessorMixin was expected.")
        return VideoProcessorMixin

    base = getattr(transformers, name)
    cls = type(f"{name}Pil", (base,), {"check_argument_for_proper_class": check_argument_for_proper_class,
                                       "__module__": __name__})
    return cls


#: LLaVA-NeXT-Video-7B's prompt format, ``USER: <video>\n<instruction> ASSISTANT:`` (its model card's), as a chat template
LLAVA_NEXT_VIDEO_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def _llava_next_video(spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    """LLaVA-NeXT-Video: a Llama LM, a 2-block CLIP vision tower, and the real processor class.

    Frames of 32 x 32 pixels in 8 x 8 patches: 16 patches, average-pooled
    (stride 2) to 4 video tokens a frame. The processor is
    ``LlavaNextVideoProcessor`` (which expands ``<video>`` to those tokens)
    around a video processor on the PIL backend, as transformers' own needs
    torchvision (:func:`_video_processing`).
    """
    import transformers as tf

    tok = _chat_tokenizer(["<s>", "</s>", "<video>", "<image>"], bos="<s>")
    side, patch = _TINY_IMAGE, 8
    vision = tf.CLIPVisionConfig(image_size=side, patch_size=patch, hidden_size=TINY_DIM, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=2 * TINY_DIM, projection_dim=TINY_DIM)
    pinpoints = [[side, 2 * side], [2 * side, side], [2 * side, 2 * side]]  # the real ones' pattern, at this side
    config = tf.LlavaNextVideoConfig(vision_config=vision, text_config=_chat_text_config("llama", spec, tok, "</s>"),
                                     video_token_index=tok.convert_tokens_to_ids("<video>"),
                                     image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints)
    model = _chat_generation(tf.LlavaNextVideoForConditionalGeneration(config))
    size = {"shortest_edge": side}, {"height": side, "width": side}
    processor = _pil_processor("LlavaNextVideoProcessor")(
        video_processor=_video_processing()[0](size=size[0], crop_size=size[1]),
        image_processor=tf.LlavaNextImageProcessorPil(size=size[0], crop_size=size[1], image_grid_pinpoints=pinpoints),
        tokenizer=tok, chat_template=LLAVA_NEXT_VIDEO_TEMPLATE, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1)  # CLIP's class token
    return processor, model


#: LLaVA-OneVision's prompt format (ChatML, ``<|im_start|>user <video>\n<instruction><|im_end|>``), as a chat template
#: written after the llava-hf processors' templates; not checked against the hub file
LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] }}{% endfor %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

#: Qwen2-VL's and Qwen2.5-VL's prompt format (ChatML with a default system turn; a video is
#: ``<|vision_start|><|video_pad|><|vision_end|>``), as a chat template; not checked against the hub file
QWEN_VL_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'video' %}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _llava_onevision(spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    """LLaVA-OneVision: a Qwen2 LM, a 2-block SigLIP vision tower, and the real processor class.

    Frames of 32 x 32 pixels in 8 x 8 patches: 16 patches, pooled 2 x 2 to 4
    video tokens a frame, and one newline token a video. The processor is
    ``LlavaOnevisionProcessor`` around a video processor on the PIL backend
    (a square resize, as ``LlavaOnevisionVideoProcessor``'s) and the PIL
    image processor; its chat template is :data:`LLAVA_ONEVISION_TEMPLATE`.
    """
    import transformers as tf

    tok = _chat_tokenizer(["<|im_start|>", "<|im_end|>", "<video>", "<image>"])
    side, patch = _TINY_IMAGE, 8
    vision = tf.SiglipVisionConfig(image_size=side, patch_size=patch, hidden_size=TINY_DIM, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=2 * TINY_DIM, vision_use_head=False)
    pinpoints = [[side, side], [side, 2 * side], [2 * side, side], [2 * side, 2 * side]]
    config = tf.LlavaOnevisionConfig(vision_config=vision, text_config=_chat_text_config("qwen2", spec, tok, "<|im_end|>"),
                                     video_token_index=tok.convert_tokens_to_ids("<video>"),
                                     image_token_index=tok.convert_tokens_to_ids("<image>"), image_grid_pinpoints=pinpoints)
    model = _chat_generation(tf.LlavaOnevisionForConditionalGeneration(config))
    square = {"height": side, "width": side}
    processor = _pil_processor("LlavaOnevisionProcessor")(
        video_processor=_video_processing()[0](size=square, crop_size=None, do_center_crop=False),
        image_processor=tf.LlavaOnevisionImageProcessorPil(size=square, image_grid_pinpoints=pinpoints),
        tokenizer=tok, chat_template=LLAVA_ONEVISION_TEMPLATE, num_image_tokens=(side // patch) ** 2,
        vision_feature_select_strategy="full")
    return processor, model


def _video_llava(spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    """Video-LLaVA: a Llama LM, 2-block CLIP image and video towers, and the real processor class.

    Frames of 32 x 32 pixels in 8 x 8 patches: 16 patches and the class token,
    17 video tokens a frame (the video tower's every state is kept). The
    processor is ``VideoLlavaProcessor`` around a video processor on the PIL
    backend (``VideoLlavaVideoProcessor``'s steps) and ``VideoLlavaImageProcessor``;
    the chat template is LLaVA-NeXT-Video's, ``USER: <video>\n<instruction> ASSISTANT:``
    (Video-LLaVA's model card prompt).
    """
    import transformers as tf

    tok = _chat_tokenizer(["<s>", "</s>", "<video>", "<image>"], bos="<s>")
    side, patch = _TINY_IMAGE, 8
    vision = tf.CLIPVisionConfig(image_size=side, patch_size=patch, hidden_size=TINY_DIM, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=2 * TINY_DIM, projection_dim=TINY_DIM)
    config = tf.VideoLlavaConfig(vision_config=vision, text_config=_chat_text_config("llama", spec, tok, "</s>"),
                                 video_token_index=tok.convert_tokens_to_ids("<video>"),
                                 image_token_index=tok.convert_tokens_to_ids("<image>"))
    model = _chat_generation(tf.VideoLlavaForConditionalGeneration(config))
    size = {"shortest_edge": side}, {"height": side, "width": side}
    processor = _pil_processor("VideoLlavaProcessor")(
        video_processor=_video_processing()[0](size=size[0], crop_size=size[1]),
        image_processor=tf.VideoLlavaImageProcessor(size=size[0], crop_size=size[1]),
        tokenizer=tok, chat_template=LLAVA_NEXT_VIDEO_TEMPLATE, patch_size=patch, vision_feature_select_strategy="default",
        num_additional_image_tokens=1)  # CLIP's class token
    return processor, model


def _qwen2_5_vl(spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    """Qwen2.5-VL: a Qwen2.5-VL LM (3-D rotary positions), a 2-block windowed vision transformer, and the real processor class.

    Patches of 8 x 8 pixels and 2 frames, merged 2 x 2: a 40 x 56 frame is
    resized to 32 x 48 (at most 2,048 pixels, sides multiples of 16), so 4
    frames are 2 x 4 x 6 patches, 12 video tokens. The processor is
    ``Qwen2_5_VLProcessor`` around a video processor on the PIL backend
    (``Qwen2VLVideoProcessor``'s steps) and ``Qwen2VLImageProcessorPil``; the chat
    template is :data:`QWEN_VL_TEMPLATE`.
    """
    import transformers as tf

    tok = _chat_tokenizer(["<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"])
    patch, merge, temporal = 8, 2, 2
    vision = tf.Qwen2_5_VLVisionConfig(depth=2, hidden_size=TINY_DIM, intermediate_size=2 * TINY_DIM, num_heads=2,
                                       patch_size=patch, spatial_merge_size=merge, temporal_patch_size=temporal,
                                       window_size=2 * patch * merge, out_hidden_size=TINY_DIM, fullatt_block_indexes=[1],
                                       initializer_range=0.02)
    text = tf.Qwen2_5_VLTextConfig(hidden_size=TINY_DIM, num_hidden_layers=spec.n_layers, num_attention_heads=2,
                                   num_key_value_heads=1, intermediate_size=2 * TINY_DIM, vocab_size=len(tok),
                                   max_position_embeddings=_TEXT_POSITIONS[spec.kind], max_window_layers=spec.n_layers,
                                   rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
                                   pad_token_id=tok.pad_token_id, bos_token_id=None,
                                   eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                                                             ("vision_start_token_id", "<|vision_start|>"),
                                                             ("vision_end_token_id", "<|vision_end|>"))}
    config = tf.Qwen2_5_VLConfig(vision_config=vision, text_config=text, **ids)
    model = _chat_generation(tf.Qwen2_5_VLForConditionalGeneration(config))
    pixels = {"shortest_edge": (patch * merge) ** 2, "longest_edge": 2 * _TINY_IMAGE**2}
    processor = _pil_processor("Qwen2_5_VLProcessor")(
        video_processor=_video_processing()[2](size=pixels, patch_size=patch, merge_size=merge, temporal_patch_size=temporal),
        image_processor=tf.Qwen2VLImageProcessorPil(size=pixels, patch_size=patch, merge_size=merge, temporal_patch_size=temporal),
        tokenizer=tok, chat_template=QWEN_VL_TEMPLATE)
    return processor, model


def _instructblip_video(spec: ModelSpec) -> tuple[Any, torch.nn.Module]:
    """InstructBLIP-Video: a Llama (Vicuna) LM, a 2-block vision transformer and a 2-block Q-Former, and the real processor class.

    Frames of 32 x 32 pixels in 8 x 8 patches; the Q-Former's 4 queries read
    each frame, so a clip of 4 frames (the processor's and the model's fixed
    count) is 16 video tokens before the text. The processor is
    ``InstructBlipVideoProcessor`` around a video processor on the PIL
    backend (``InstructBlipVideoVideoProcessor``'s steps), the LM's tokenizer
    and an encoder :func:`build_tokenizer` for the Q-Former's copy of the
    instruction. It has no chat template: the prompt is the instruction itself.
    """
    import transformers as tf

    tok = _chat_tokenizer(["<s>", "</s>", "<video>"], bos="<s>")
    qformer_tok = build_tokenizer(corpus_words(), "encoder", vocab_words=2000, max_length=512)
    side, patch, queries = _TINY_IMAGE, 8, 4
    vision = tf.InstructBlipVideoVisionConfig(hidden_size=TINY_DIM, intermediate_size=2 * TINY_DIM, num_hidden_layers=2,
                                              num_attention_heads=2, image_size=side, patch_size=patch, initializer_range=0.02)
    qformer = tf.InstructBlipVideoQFormerConfig(vocab_size=len(qformer_tok), hidden_size=TINY_DIM, num_hidden_layers=2,
                                                num_attention_heads=2, intermediate_size=2 * TINY_DIM,
                                                encoder_hidden_size=TINY_DIM, pad_token_id=qformer_tok.pad_token_id)
    text = _chat_text_config("llama", spec, tok, "</s>")
    text.bos_token_id = tok.convert_tokens_to_ids("<s>")
    config = tf.InstructBlipVideoConfig(vision_config=vision, qformer_config=qformer, text_config=text, num_query_tokens=queries,
                                        video_token_index=tok.convert_tokens_to_ids("<video>"))
    model = _chat_generation(tf.InstructBlipVideoForConditionalGeneration(config))
    processor = _pil_processor("InstructBlipVideoProcessor")(
        video_processor=_video_processing()[1](size={"height": side, "width": side}), tokenizer=tok,
        qformer_tokenizer=qformer_tok, num_query_tokens=queries)
    return processor, model


#: the builders of the stand-ins that are neither text nor speech models
_BUILDERS = {"videomae": _videomae, "qwen2_audio": _qwen2_audio, "llava_next_video": _llava_next_video,
             "llava_onevision": _llava_onevision, "video_llava": _video_llava, "qwen2_5_vl": _qwen2_5_vl,
             "instructblipvideo": _instructblip_video}


def tiny_model(spec: ModelSpec, seed: int = 0) -> tuple[ModelSpec, Any, torch.nn.Module]:
    """A randomly initialised model of ``spec``'s class, with its processor, built without a download.

    Parameters
    ----------
    spec : ModelSpec
        A hub entry of :data:`TINY_FAMILIES`.
    seed : int
        Seed of the weights (the same seed gives the same model).

    Returns
    -------
    spec : ModelSpec
        ``spec`` with ``dim`` = :data:`TINY_DIM`.
    processor
        A tokenizer (text models), the class's feature extractor (speech
        models) or image processor (VideoMAE), or the class's processor
        (instruction-following multimodal LMs).
    model : torch.nn.Module
        The model (a language model's class with its head; a speech model's
        encoder; ``VideoMAEModel``; the multimodal LM's class for generation).

    Raises
    ------
    ValueError
        When no tiny stand-in is defined for ``spec``; the message lists those that are.
    """
    model_type = TINY_FAMILIES.get(spec.name)
    if model_type is None:
        raise ValueError(f"model {spec.name!r} has no tiny stand-in for miniature runs; models with one: "
                         f"{', '.join(TINY_FAMILIES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if spec.kind == "speech":
            processor, model = _speech(model_type, spec)
        elif model_type in _BUILDERS:
            processor, model = _BUILDERS[model_type](spec)
        else:
            from transformers import AutoModel, AutoModelForCausalLM

            processor = build_tokenizer(corpus_words(), spec.kind, vocab_words=2000, max_length=_TEXT_POSITIONS[spec.kind])
            config = _text_config(model_type, spec, len(processor))
            config.pad_token_id, config.bos_token_id, config.eos_token_id = processor.pad_token_id, None, None
            model = (AutoModel if spec.kind == "encoder" else AutoModelForCausalLM).from_config(config)
    return dataclasses.replace(spec, dim=TINY_DIM), processor, model
