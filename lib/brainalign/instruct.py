"""Instruction-conditioned features: what an instruction-tuned model computes for a task, volume by volume.

Study 6 (Oota et al. 2025) reads instruction-tuned video and audio language models with a task
instruction and takes, per layer, the mean hidden state over the answer's tokens. Offline, an
instruction-tuned *text* LM stands in for them (:func:`instruct_tr_features`): for each volume it
reads the run's transcript so far, with who speaks, interleaved with a description channel of
what is on screen (:func:`transcript_pieces`, :func:`image_descriptions`), then the instruction
(:func:`instruct_prompts`); the feature is the mean state over the prompt's final segment.
Online, :func:`multimodal_instruct_tr_features` follows the paper: the multimodal model itself
reads each volume's audio or video window with the instruction, answers greedily, and the
feature is the mean state over the answer's tokens.

The module is longer than most: it holds both recipes, the offline stand-in and the study's,
which share the instructions, the checks of the volumes' times and the cache, and the second
builds each supported model's prompt (six processors, each with its own conventions).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .features import cached_layers, check_times, model_max_tokens
from .models import LoadedModel, ModelSpec, resolve

__all__ = ["AUDIO_INSTRUCTIONS", "INSTRUCT_VERSION", "TASK_GROUPS", "VIDEO_INSTRUCTIONS", "image_descriptions", "instruct_prompts",
           "instruct_tr_features", "instruct_tr_features_shared", "instructions", "multimodal_instruct_tr_features",
           "multimodal_prompt", "transcript_pieces"]

#: bump when the instruction prompts or the way they are read change
INSTRUCT_VERSION = 1
#: where the transcript goes in the user message
_TRANSCRIPT = "\x00TRANSCRIPT\x00"
_USER_MESSAGE = f"Transcript of the episode so far, with what is on the screen:{_TRANSCRIPT}\n\n"

#: the study's 13 video tasks and their instructions, verbatim (Oota et al. 2025, Table 2)
VIDEO_INSTRUCTIONS = {
    "Action Recognition": "What are the main events captured in the video?",
    "Video Understanding": "Can you describe the video content in detail?",
    "Visual QA": "How many people are in the video, and what are they doing?",
    "Video Captioning": "Caption the video in a short sentence.",
    "Object & Scene Recognition": "What are the main objects and people visible in the video? Describe each one briefly.",
    "Commonsense Reasoning": "Why did the character take this action? What could have motivated them to do this?",
    "Spatial Understanding": "Where is this video taken from? What place/landmark is shown in the video?",
    "Temporal Ordering": "Step-by-step describe the activity shown in the video.",
    "Video Reasoning": "What is unusual about this video?",
    "Narrative Understanding": "Summarize the main storyline of the movie. What is the central conflict, and how is it resolved?",
    "Emotion & Sentiment": "What emotions do the characters express during the video? How does the video make you feel overall?",
    "Global Appearance": "Describe changes in characters' appearances throughout the video, including any noticeable outfit changes.",
    "Linking Events": "Explain how an early event in the video influences later developments.",
}
#: the study's 5 audio tasks and their instructions, verbatim (Oota et al. 2025, Table 3)
AUDIO_INSTRUCTIONS = {
    "Audio Understanding": "Can you describe the audio content in detail?",
    "Audio Comprehension": "What are people doing in the audio?",
    "Audio Captioning": "Caption the audio in a short sentence.",
    "Sound Event Detection": "Identify and label the sound events occurring in the audio.",
    "Speaker Identification": "Who is speaking in the audio?",
}
#: the study's five semantic groups of video tasks (its section 4.3 names the groups; which task goes in which
#: group is this compendium's reading of the names, as the study's own assignment was not available)
TASK_GROUPS = {
    "Perceptual visual processing": ["Action Recognition", "Video Captioning", "Object & Scene Recognition", "Global Appearance"],
    "Cognitive reasoning & integration": ["Visual QA", "Commonsense Reasoning", "Video Reasoning"],
    "Spatiotemporal understanding": ["Spatial Understanding", "Temporal Ordering", "Linking Events"],
    "Language & narrative understanding": ["Video Understanding", "Narrative Understanding"],
    "Social & affective understanding": ["Emotion & Sentiment"],
}


def instructions(tasks: Sequence[str] | str | None = None) -> dict[str, str]:
    """Task name -> instruction, for the named tasks (in their order) or a whole set.

    ``tasks`` is None or ``"video"`` (the 13 video tasks), ``"audio"`` (the 5 audio tasks),
    a task group of :data:`TASK_GROUPS`, or a list of task names. An unknown name is an error
    that lists the valid ones.
    """
    every = {**VIDEO_INSTRUCTIONS, **AUDIO_INSTRUCTIONS}
    if tasks is None or tasks == "video":
        return dict(VIDEO_INSTRUCTIONS)
    if tasks == "audio":
        return dict(AUDIO_INSTRUCTIONS)
    if isinstance(tasks, str):
        if tasks not in TASK_GROUPS:
            raise ValueError(f"unknown task set {tasks!r}; valid: 'video', 'audio', a task group ({', '.join(TASK_GROUPS)}) "
                             "or a list of task names")
        tasks = TASK_GROUPS[tasks]
    unknown = [t for t in tasks if t not in every]
    if unknown or not list(tasks):
        raise ValueError(f"unknown task(s) {unknown or tasks!r}; valid tasks: {', '.join(every)}")
    return {t: every[t] for t in tasks}


def image_descriptions(path: str | None = None) -> dict[str, str]:
    """Short human-written descriptions of the movie images, image name -> description.

    The packaged file (``resources/stimuli/image_descriptions.tsv``, columns
    ``image, description``) describes every image of :data:`stimuli.MOVIE_IMAGES`.
    """
    from pathlib import Path

    import pandas as pd

    path = Path(path) if path is not None else Path(__file__).resolve().parent / "resources" / "stimuli" / "image_descriptions.tsv"
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    if {"image", "description"} - set(table.columns):
        raise ValueError(f"{path} must have columns image and description; it has {list(table.columns)}")
    return dict(zip(table["image"], table["description"]))


def transcript_pieces(words, shots=None, descriptions: dict[str, str] | None = None) -> tuple[list[str], np.ndarray]:
    """A run's transcript with a description channel of what is on screen, as timed text pieces.

    Parameters
    ----------
    words : DataFrame with columns ``word, onset`` (and ``speaker``, optional), sorted by onset
    shots : DataFrame with columns ``onset, image, on_screen``, optional
        ``on_screen`` names the speaker whose face the shot shows ("" none).
    descriptions : dict, optional
        Image -> description (default :func:`image_descriptions`).

    Returns
    -------
    pieces : list of str
        In time order: ``" word"`` for each word, ``"\nS: word"`` where speaker
        ``S`` starts talking (or talks on after a screen line), and
        ``"\n[On screen: <description>, speaker S's face]"`` at each shot's
        onset (a shot comes before a word at the same time).
    times : array of shape (n_pieces,)
        When each piece happens (word onset, shot onset), non-decreasing.
    """
    onsets = words["onset"].to_numpy(float)
    if np.any(np.diff(onsets) < 0):
        raise ValueError("words must be sorted by onset")
    events = []  # (time, order, kind, payload)
    if shots is not None and len(shots):
        descriptions = image_descriptions() if descriptions is None else descriptions
        missing = sorted(set(shots["image"]) - set(descriptions))
        if missing:
            raise ValueError(f"no description for images {missing}; described images: {sorted(descriptions)}")
        for k, (t, image, who) in enumerate(zip(shots["onset"].to_numpy(float), shots["image"], shots["on_screen"])):
            face = f", speaker {who}'s face" if str(who) else ""
            events.append((t, 0, k, f"\n[On screen: {descriptions[image]}{face}]"))
    speakers = words["speaker"].astype(str).tolist() if "speaker" in words else [""] * len(words)
    for i, (t, word, who) in enumerate(zip(onsets, words["word"].astype(str), speakers)):
        events.append((t, 1, i, (word, who)))
    events.sort(key=lambda e: e[:3])
    pieces, times, last = [], [], None
    for t, kind, _, payload in events:
        if kind == 0:
            pieces.append(payload)
            last = None  # the next word starts a new line with its speaker
        else:
            word, who = payload
            pieces.append(f"\n{who}: {word}" if who and who != last else (f"\n{word}" if last is None and not who else f" {word}"))
            last = who
        times.append(t)
    return pieces, np.asarray(times, dtype=float)


def instruct_prompts(lm: LoadedModel, instruction: str, pieces: Sequence[str], times: np.ndarray,
                     ends: np.ndarray) -> tuple[list[int], np.ndarray, list[int]]:
    """The token ids of the instruction prompts of every volume, as a shared prefix and one final segment.

    The prompt of the volume sampled at ``ends[k]`` is one user
    turn in the model's chat template (plain text and ``Answer:`` for a model
    without one)::

        Transcript of the episode so far, with what is on the screen:
        [On screen: <description>, speaker A's face]
        A: <every piece (word, screen line) that happens before ends[k]>
        ...

        <instruction>

    followed by the assistant's turn header. Its tokens are
    ``prefix[:cuts[k]] + suffix``: the transcript up to the volume is a prefix
    of the whole transcript's tokens, and the *final segment* ``suffix``
    (the instruction and the answer header) is the same for every volume.

    Parameters
    ----------
    lm : LoadedModel
        A causal LM.
    instruction : str
    pieces, times : from :func:`transcript_pieces`
    ends : array of shape (n_trs,)
        Sampling time of each volume (s): where its transcript ends.

    Returns
    -------
    prefix : list of int
        Tokens of the template's head and the whole transcript.
    cuts : int array of shape (n_trs,)
        Prefix tokens in each volume's prompt.
    suffix : list of int
        Tokens of the final segment.
    """
    tok = lm.tokenizer
    message = _USER_MESSAGE + instruction.strip()
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True)
        special = False  # the template holds the special tokens
    else:
        text, special = message + "\n\nAnswer:", True
    head, tail = text.split(_TRANSCRIPT)
    transcript = "".join(pieces)
    enc = tok(head + transcript, add_special_tokens=special, return_offsets_mapping=True)
    prefix, offsets = list(enc["input_ids"]), np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    char_ends = len(head) + np.cumsum([0] + [len(p) for p in pieces])  # end of the transcript after 0, 1, ... pieces
    cut_chars = char_ends[np.searchsorted(times, np.asarray(ends, dtype=float), side="left")]
    straddle = [k for k, c in enumerate(cut_chars) if np.any((offsets[:, 0] < c) & (offsets[:, 1] > c))]
    if straddle:  # a token across a piece boundary: the prompt would not be a prefix of the whole transcript's tokens
        raise RuntimeError(f"the {lm.spec.name!r} tokenizer merges text across a word boundary (volume {straddle[0]}); "
                           "the shared-prefix recipe needs word-aligned tokens")
    cuts = np.searchsorted(offsets[:, 1], cut_chars, side="right").astype(np.int64)  # tokens ending by the cut
    return prefix, cuts, list(tok(tail, add_special_tokens=False)["input_ids"])


def _instruct_states(lm: LoadedModel, prefix: list[int], cuts: np.ndarray, suffixes: list[list[int]], layers: list[int],
                     batch_size: int) -> list[list[np.ndarray]]:
    """Per final segment (one per instruction), per layer, the mean state over each volume's final segment.

    The prefix is read once (KV cache) for every final segment. Then the final
    segments of up to ``batch_size`` volumes run as one sequence after it,
    with a custom attention mask: the segment of volume ``k`` sees the first
    ``cuts[k]`` prefix tokens and its own earlier tokens only, at positions
    ``cuts[k] + j``; so each gets exactly the states of its prompt read alone.
    The cache is cropped back to the prefix after each group.
    """
    device = lm.device
    longest = len(prefix) + max(len(x) for x in suffixes)
    if longest > (limit := model_max_tokens(lm)):
        raise ValueError(f"the transcript and prompt take {longest} tokens, more than {lm.spec.name}'s limit {limit}")
    n_prefix = len(prefix)
    dtype = next(lm.model.parameters()).dtype
    result = []
    with torch.inference_mode():
        cache = lm.model.base_model(input_ids=torch.tensor([prefix], device=device), use_cache=True).cache
        for suffix in suffixes:
            width = len(suffix)
            causal = torch.tril(torch.ones(width, width, dtype=torch.bool))
            out = [np.zeros((len(cuts), lm.spec.dim), dtype=np.float32) for _ in layers]
            for first in range(0, len(cuts), int(batch_size)):
                rows = np.arange(first, min(first + int(batch_size), len(cuts)))
                n = len(rows)
                seen = torch.from_numpy(np.arange(n_prefix)[None, :] < cuts[rows][:, None])  # (n, n_prefix)
                allowed = torch.zeros(n * width, n_prefix + n * width, dtype=torch.bool)
                allowed[:, :n_prefix] = seen.repeat_interleave(width, dim=0)
                allowed[:, n_prefix:] = torch.block_diag(*[causal] * n)
                mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)[None, None].to(device)
                positions = (torch.from_numpy(cuts[rows])[:, None] + torch.arange(width)[None, :]).reshape(1, -1).to(device)
                input_ids = torch.tensor([suffix * n], device=device)
                hidden = lm.model.base_model(input_ids=input_ids, attention_mask=mask, position_ids=positions, cache=cache,
                                             use_cache=True, output_hidden_states=True).hidden_states
                cache.crop(n_prefix - cache.get_seq_length())  # back to the prefix
                for k, layer in enumerate(layers):
                    out[k][rows] = hidden[layer][0].float().reshape(n, width, -1).mean(1).cpu().numpy()
            result.append(out)
    return result


def instruct_tr_features(
    model: str | LoadedModel,
    dataset,
    run: str,
    instruction: str,
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
    cache: bool = True,
) -> list[np.ndarray]:
    """Instruction-conditioned features of an instruction-tuned text LM, one prompt per volume. Cached.

    The offline recipe for instruction-tuned multimodal models (Oota et al.
    2025), with text standing in for the audio and the video: for each volume
    the LM reads the run's transcript up to the end of the volume's interval
    (``dataset.words(run)``, with who says each word where the dataset has a
    ``speaker`` column), interleaved with a description channel of what is on
    screen (a short human-written description of each shot's image from
    :func:`image_descriptions`, and whose face it shows), then the task
    ``instruction`` (layout: :func:`transcript_pieces`, :func:`instruct_prompts`).
    A volume's feature at each layer is the mean hidden state over the
    prompt's final segment (the instruction and the assistant's turn header):
    a cheap, documented stand-in for the paper's mean over the tokens of a
    generated answer. The transcript is read once and shared by every
    volume's prompt through the KV cache; each volume's states are exactly
    those of its prompt read alone. Cost: one pass over the run's transcript,
    plus the final segment (~20 tokens) per volume.

    Parameters
    ----------
    model : str or LoadedModel
        A causal LM (``"smollm2-135m-instruct"`` offline; a base model gives
        the base-vs-instruction-tuned contrast). The simulated cohorts'
        generator (``simulate.GENERATOR``) is refused.
    dataset : Dataset
        Gives ``runs``, ``words(run)``, ``tr``, ``sample_times(run)`` (volume
        ``k`` reads the transcript up to its sampling time: causal), and
        ``shots(run)`` where it has video (otherwise there is no screen channel).
    run : str
    instruction : str
        The task instruction, e.g. "What emotions do the characters express?".
    layers : sequence of int, optional
        Hidden states to return (0 = embeddings); all by default.
    batch_size : int
        Volumes per forward pass.
    cache : bool

    Returns
    -------
    list of ndarrays of float32, one per selected layer, each of shape (n_trs, dim)
    """
    return instruct_tr_features_shared(model, dataset, run, [instruction], layers, batch_size, cache)[0]


def instruct_tr_features_shared(
    model: str | LoadedModel,
    dataset,
    run: str,
    instructions: Sequence[str],
    layers: Sequence[int] | None = None,
    batch_size: int = 16,
    cache: bool = True,
) -> list[list[np.ndarray]]:
    """:func:`instruct_tr_features` for several instructions at once: the transcript is read once for all of them.

    Every instruction's prompt has the same prefix (the template's head and
    the transcript) and its own final segment, so the prefix's key/value cache
    serves them all. The features, and their cache entries, are the same as
    one :func:`instruct_tr_features` call per instruction; the first
    instruction whose features are not cached computes them for itself and
    every instruction after it.

    Returns
    -------
    list, one per instruction, of lists of ndarrays of float32 (one per selected layer), each of shape (n_trs, dim)
    """
    from .simulate import GENERATOR

    if isinstance(model, str):
        model = resolve(model)  # the name is looked up here, once: the spec goes on to cached_layers
    name = model.spec.name if isinstance(model, LoadedModel) else model.name if isinstance(model, ModelSpec) else None
    if name == GENERATOR:
        raise ValueError(f"model {name!r} generated the simulated cohorts' semantic signal (simulate.GENERATOR), so no study may "
                         "evaluate it; use e.g. 'smollm2-135m-instruct'")
    instructions = list(instructions)
    if not instructions:
        raise ValueError("instructions is empty: give at least one instruction")
    for x in instructions:
        if not isinstance(x, str) or not x.strip():
            raise ValueError(f"instruction must be a non-empty string, got {x!r}")
    if run not in dataset.runs:
        raise ValueError(f"unknown run {run!r}; valid runs: {', '.join(dataset.runs)}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    words = dataset.words(run).sort_values("onset", kind="stable").reset_index(drop=True)
    tr = float(dataset.tr)
    ends = check_times(dataset.sample_times(run))
    pieces, times = transcript_pieces(words, dataset.shots(run) if hasattr(dataset, "shots") else None)
    computed: dict[int, list[np.ndarray]] = {}

    def run_for(i: int):
        def run_model(lm: LoadedModel, layer_list: list[int]) -> list[np.ndarray]:
            if i not in computed:
                prompts = [instruct_prompts(lm, x, pieces, times, ends) for x in instructions[i:]]
                prefix, cuts, _ = prompts[0]  # the same for every instruction: it comes after the transcript
                states = _instruct_states(lm, prefix, cuts, [p[2] for p in prompts], layer_list, int(batch_size))
                computed.update({i + j: x for j, x in enumerate(states)})
            return computed[i]
        return run_model

    return [cached_layers("instruct_tr_features", model, "causal", layers,
                          {"instruction": x.strip(), "pieces": pieces, "times": times, "ends": ends, "tr": tr,
                           "recipe": INSTRUCT_VERSION}, cache, run_for(i))
            for i, x in enumerate(instructions)]


# -- instruction-following multimodal LMs (hub): the paper's recipe ----------------------------------------------------


#: model inputs with one entry a token besides input_ids and attention_mask (0: a text token)
_TOKEN_TYPES = frozenset({"mm_token_type_ids", "token_type_ids"})


def _pad_id(lm: LoadedModel) -> int:
    """The token that pads a batch of prompts: the tokenizer's padding token, else the end of sequence."""
    tokenizer = getattr(lm.processor, "tokenizer", lm.processor)
    for pad in (getattr(tokenizer, "pad_token_id", None), lm.model.generation_config.pad_token_id,
                lm.model.generation_config.eos_token_id):
        pad = pad[0] if isinstance(pad, (list, tuple)) else pad
        if pad is not None:
            return int(pad)
    raise ValueError(f"model {lm.spec.name!r} has no padding or end-of-sequence token to pad a batch of prompts with")


def _answers(lm: LoadedModel, batch: list[dict], max_new_tokens: int) -> list[torch.Tensor]:
    """Greedy answers to several prompts (:func:`multimodal_prompt`'s inputs), generated together.

    The prompts are padded on the left to one length (``input_ids`` with the
    padding token, the attention mask and any per-token entry with zeros; the
    media tensors are stacked), so every answer starts at the same position.
    Each answer is cut at its first end-of-sequence token, which is kept
    only when it is the whole answer. The answers are those generated one
    prompt at a time, up to the rounding of the padded attention.
    """
    model = lm.model
    width = max(b["input_ids"].shape[1] for b in batch)
    pad = _pad_id(lm)
    stacked = {}
    for key in batch[0]:
        if key in ("input_ids", "attention_mask", *_TOKEN_TYPES):
            fill = pad if key == "input_ids" else 0
            stacked[key] = torch.cat([torch.nn.functional.pad(b[key], (width - b[key].shape[1], 0), value=fill) for b in batch])
        else:
            stacked[key] = torch.cat([b[key] for b in batch])
    eos = model.generation_config.eos_token_id
    eos = {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]) if e is not None}
    with torch.inference_mode():
        generated = model.generate(**stacked, max_new_tokens=int(max_new_tokens), do_sample=False, pad_token_id=pad)
    out = []
    for answer in generated[:, width:]:
        stops = [i for i, t in enumerate(answer.tolist()) if t in eos]
        out.append(answer[: max(1, stops[0])] if stops else answer)
    return out


def _answer_states(lm: LoadedModel, inputs: dict, answer: torch.Tensor, layers: list[int]) -> list[np.ndarray]:
    """Per layer, the language model's mean state over the tokens of ``answer``, read after its prompt ``inputs``.

    Prompt + answer run through the model once, alone (no padding), and the
    states at the answer's positions are averaged. Inputs with one entry a
    prompt token (``mm_token_type_ids``, from which Qwen2.5-VL computes its
    3-D rotary positions in that pass, as ``generate`` does) get a text
    entry for each answer token.

    Returns
    -------
    list of ndarrays of float32, shape (dim,) each, one per layer in ``layers``
    """
    n_prompt = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        full = {**inputs, "input_ids": torch.cat([inputs["input_ids"][0], answer])[None]}
        full["attention_mask"] = torch.ones_like(full["input_ids"])
        for key in _TOKEN_TYPES.intersection(inputs):  # one entry a token (Qwen2.5-VL's): the answer's are text
            full[key] = torch.cat([inputs[key], inputs[key].new_zeros((1, len(answer)))], dim=1)
        out = lm.model(**full, output_hidden_states=True, use_cache=False)
        # InstructBLIP-Video returns its language model's output apart from its vision encoder's and Q-Former's
        hidden = out.hidden_states if "language_model_outputs" not in out else out.language_model_outputs.hidden_states
    return [hidden[layer][0, n_prompt:].float().mean(0).cpu().numpy() for layer in layers]


def multimodal_prompt(lm: LoadedModel, instruction: str, media, fps: float | None = None) -> dict:
    """The model inputs of one instruction about one clip, through the model's processor and chat template.

    The user turn holds the medium (``{"type": "audio"}`` or ``{"type": "video"}``)
    and the instruction, in the processor's chat template, followed by the
    assistant's turn header. A video-reading processor without a chat
    template (Video-LLaVA's hub processor may have none) gets its model
    card's prompt, ``USER: <video>\\n<instruction> ASSISTANT:``. InstructBLIP-Video
    has no chat template: its prompt is the instruction, which its processor
    gives the Q-Former too (``qformer_input_ids``), and it reads exactly 4 frames.

    Parameters
    ----------
    lm : LoadedModel
        An instruction-following multimodal LM (:data:`models.INSTRUCT_CLASSES`).
    instruction : str
    media : array
        Audio-reading models: a 16 kHz waveform of shape (n_samples,).
        Video-reading models: uint8 frames of shape (n_frames, height, width, 3).
    fps : float, optional
        Video models: frames per second of ``media`` (given to the processor as
        the clip's metadata; Qwen2.5-VL spaces its temporal positions by it, and
        its processor assumes 24 fps without it).

    Returns
    -------
    dict of tensors
        ``input_ids`` of shape (1, n_tokens) (media placeholders expanded by the
        processor), ``attention_mask`` and the media tensors (and whatever else
        the processor gives: ``video_grid_thw``, ``second_per_grid_ts``,
        ``mm_token_type_ids``, ``qformer_input_ids``), on the model's device;
        pixels and audio features in the model's dtype.
    """
    from .models import SPEECH_SR, instruct_medium

    medium = instruct_medium(lm.model)
    processor, instruction = lm.processor, instruction.strip()
    kind = type(lm.model).__name__
    if kind == "InstructBlipVideoForConditionalGeneration":
        if len(media) != 4:
            raise ValueError(f"InstructBLIP-Video reads clips of exactly 4 frames, got {len(media)}: use n_frames=4")
        inputs = processor(text=instruction, images=[media], return_tensors="pt")
    else:
        if getattr(processor, "chat_template", None) or medium == "audio":
            messages = [{"role": "user", "content": [{"type": medium}, {"type": "text", "text": instruction}]}]
            text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        else:
            text = f"USER: <video>\n{instruction} ASSISTANT:"
        if medium == "audio":
            inputs = processor(text=text, audio=[media], sampling_rate=SPEECH_SR, return_tensors="pt")
        elif fps is not None:
            metadata = [{"total_num_frames": len(media), "fps": float(fps), "frames_indices": list(range(len(media)))}]
            inputs = processor(text=text, videos=[media], video_metadata=metadata, return_tensors="pt")
        else:
            inputs = processor(text=text, videos=[media], return_tensors="pt")
    dtype = next(lm.model.parameters()).dtype
    inputs = {k: torch.as_tensor(v) if k == "second_per_grid_ts" else v for k, v in inputs.items()}
    return {k: (v.to(lm.device, dtype) if v.is_floating_point() and k != "second_per_grid_ts" else v.to(lm.device))
            for k, v in inputs.items() if isinstance(v, torch.Tensor)}


def multimodal_instruct_tr_features(
    model: str | LoadedModel,
    instruction: str,
    times: np.ndarray,
    audio: np.ndarray | None = None,
    sr: int | None = None,
    frames: np.ndarray | None = None,
    frame_times: np.ndarray | None = None,
    window: float = 4.0,
    n_frames: int = 4,
    max_new_tokens: int = 16,
    layers: Sequence[int] | None = None,
    batch_size: int = 1,
    cache: bool = True,
) -> list[np.ndarray]:
    """Instruction-conditioned features of an instruction-following multimodal LM (Oota et al. 2025). Cached.

    For each volume ``k`` (sampling time ``s_k = times[k]``) the model reads,
    in its chat template, the media of the causal window ``[s_k - window, s_k)``
    and the ``instruction``; it answers greedily (at most ``max_new_tokens`` tokens),
    and the volume's feature at each layer is the language model's mean hidden
    state over the answer's tokens (:func:`_answer_states`). Qwen2-Audio reads
    the window's audio (resampled to 16 kHz; at least 0.1 s); the video
    models read ``n_frames`` frames of the window, evenly spaced (the frames
    shown at those times; a window before the first frame shows it), given to
    the processor as a clip of ``n_frames / window`` frames per second
    (Qwen2.5-VL spaces its temporal positions by it). InstructBLIP-Video reads
    exactly 4 frames (``n_frames=4``).

    Parameters
    ----------
    model : str or LoadedModel
        A model of :data:`models.INSTRUCT_CLASSES` (``"Qwen/Qwen2-Audio-7B-Instruct"``,
        ``"llava-hf/LLaVA-NeXT-Video-7B-hf"``, ...; hub, loaded only on a cache
        miss), or a loaded model of those classes.
    instruction : str
    times : array of shape (n_trs,)
        Sampling time of each volume (s), increasing: ``Dataset.sample_times(run)``.
    audio : array of shape (n_samples,), optional
        Mono waveform (audio models).
    sr : int, optional
        Its sample rate (Hz).
    frames : uint8 array of shape (n_frames_total, height, width, 3), optional
        Video models.
    frame_times : array of shape (n_frames_total,), optional
        When each frame is shown (s), increasing.
    window : float
        Seconds of media per volume.
    n_frames : int
        Frames per window (video models).
    max_new_tokens : int
        Longest answer.
    layers : sequence of int, optional
        Language-model hidden states to return (0 = embeddings); all by default.
    batch_size : int
        Volumes whose answers are generated together (:func:`_answers`; the
        dominant cost on a GPU); each answer's states are then read alone, so
        the features do not depend on it, up to a greedy answer that a
        rounding difference of the padded prompts turns (not part of the cache key).
    cache : bool

    Returns
    -------
    list of ndarrays of float32, one per selected layer, each of shape (n_trs, dim)
    """
    from .models import SPEECH_SR, check_audio, check_images, instruct_medium

    if not isinstance(instruction, str) or not instruction.strip():
        raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
    ends = check_times(times)
    if not (np.isfinite(window) and window > 0):
        raise ValueError(f"window={window!r} must be a positive number of seconds")
    for name, value in (("n_frames", n_frames), ("max_new_tokens", max_new_tokens), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if (audio is None) == (frames is None):
        raise ValueError("give either audio (with sr) for an audio model, or frames (with frame_times) for a video model")
    if audio is not None:
        if sr is None:
            raise ValueError("audio needs its sample rate sr")
        wave = check_audio(audio, sr)
        parts = {"audio": np.asarray(audio), "sr": int(sr)}
    else:
        frames = check_images(frames)
        frame_times = np.asarray(frame_times, dtype=float) if frame_times is not None else None
        if frame_times is None or frame_times.shape != (len(frames),) or np.any(np.diff(frame_times) <= 0):
            raise ValueError(f"frame_times must be increasing with shape ({len(frames)},), got "
                             f"{None if frame_times is None else frame_times.shape}")
        parts = {"frames": frames, "frame_times": frame_times, "n_frames": int(n_frames)}

    def clip(k: int):
        if audio is not None:
            stop = int(np.clip(round(ends[k] * SPEECH_SR), SPEECH_SR // 10, len(wave)))
            start = int(np.clip(round((ends[k] - window) * SPEECH_SR), 0, stop - SPEECH_SR // 10))
            return wave[start:stop]
        shown = ends[k] - window + window * (np.arange(int(n_frames)) + 0.5) / int(n_frames)
        return frames[np.clip(np.searchsorted(frame_times, shown, side="right") - 1, 0, len(frames) - 1)]

    def run(lm: LoadedModel, layer_list: list[int]) -> list[np.ndarray]:
        medium = instruct_medium(lm.model)
        if (medium == "audio") != (audio is not None):
            raise ValueError(f"model {lm.spec.name!r} reads {medium}; give {'audio and sr' if medium == 'audio' else 'frames'}")
        fps = None if audio is not None else int(n_frames) / float(window)  # the window's frames are evenly spaced
        rows = []
        for first in range(0, len(ends), int(batch_size)):
            prompts = [multimodal_prompt(lm, instruction, clip(k), fps=fps) for k in range(first, min(first + int(batch_size), len(ends)))]
            rows += [_answer_states(lm, p, a, layer_list) for p, a in zip(prompts, _answers(lm, prompts, max_new_tokens))]
            del prompts
        return [np.stack([r[j] for r in rows]).astype(np.float32) for j in range(len(layer_list))]

    parts.update({"instruction": instruction.strip(), "ends": ends, "window": float(window),
                  "max_new_tokens": int(max_new_tokens), "recipe": INSTRUCT_VERSION})
    return cached_layers("multimodal_instruct_tr_features", model, "instruct-multimodal", layers, parts, cache, run)
