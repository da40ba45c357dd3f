"""Brain-tuning of speech and audio-video models: single- and multi-participant, LoRA, one shared head.

The recipe of Moussa & Toneva (2025). Each sample is the audio window that
ends at one TR (``window`` seconds: the TR's own ``tr`` seconds and the
seconds before; silence before the story's onset counts as zeros) paired with
that TR's responses of every tuning participant. The speech model gets LoRA
adapters (:func:`lora_config`: rank 8, alpha 32, dropout 0.1) on its
attention projections only (``q_proj, k_proj, v_proj, out_proj``) of every
block, or of the last ``lora_layers`` blocks; everything else, the
convolutional front end included, stays frozen (the frozen part's output is
computed once per window, without gradients). The last hidden
state is averaged over time and read by **one linear head shared by all
participants**. The loss is the mean squared error on the participant's
z-scored responses; with ``strategy="in_turn"`` (the study's choice), each
stimulus batch is used once per participant, in turn, each time with its own
backward pass and optimiser step (``"mean_loss"``: one step on the mean of
the participants' losses). AdamW, a linear warm-up over ``warmup`` of the
planned steps then a linear decay to 0, and early stopping on the loss of the
validation runs.

Training state (adapters, head, optimiser, scheduler, RNG, history) is saved
in the cache (``<cache>/brain_tuning/<key>/``) every ``checkpoint_every``
batches and after every epoch, under a key made of every parameter, the
model's revision and the data; a run that is interrupted resumes from its last
checkpoint and ends where an uninterrupted run would, and a finished run is
read back instead of retrained.

A tuned model's features go through the same path as the pretrained
model's: :meth:`BrainTuner.tuned_model` returns a :class:`models.LoadedModel`
with the adapters merged into the weights and a revision naming the tuning
run, for :func:`features.speech_tr_features` (which caches it apart from the
pretrained model).

The audio-video model (``"whisper-efficientnet-fusion"``, Study 3) is tuned
the same way on data with video (``tuning_data(..., video=True)``): the
adapters go on the attention of its fusion layers (:func:`av_lora_config`,
:class:`AVTuningNet`), and its two encoders stay frozen, so their tokens of
each window are the frozen prefix; the merged model's features come from
:func:`movie_features.av_tr_features`. The self-supervised control
(:func:`continue_selfsup`) also leaves the encoders frozen, but trains every
fusion parameter itself rather than adapters on their attention.

Study 4's downstream probe's labels come from phone timings: :func:`phone_class`
maps espeak-ng phoneme mnemonics (the simulated cohort's TextGrids, tier 0) to
six broad classes and :func:`frame_phone_classes` labels model frames.

Study 3's audio-video model needs pretrained fusion layers and a
domain-adaptation control: :func:`pretrain_fusion` pretrains them,
self-supervised, on audio-visual correspondence over generated movie clips
(:func:`pretraining_clips`), and :func:`continue_selfsup` continues that
objective on given episodes. Study 3's downstream probes, offline, are two
tasks on movie clips made for them alone (:func:`downstream_clips`): whether
the face on screen is the speaker's (what the STS was planted with) and which
scene is shown (what it was not), scored by :func:`probe_downstream`; the study's own tasks (MUStARD
sarcasm, CMU-MOSEI sentiment: :data:`STUDY_TASKS`) are read as windows with their released splits by
:func:`study_windows`.

Modules: ``data`` (windows, responses, phone labels), ``net`` (the adapted model and its
head), ``trainer`` (:class:`BrainTuner`), ``selfsup`` (self-supervised pretraining of the
audio-video fusion layers, and the domain-adaptation control) and ``downstream`` (Study 3's
offline downstream tasks and probes).
"""

from .data import PHONE_CLASSES, TuningData, frame_phone_classes, phone_class, tuning_data, window_bounds
from .downstream import (
    DOWNSTREAM_FACE_P,
    PROBE_ALPHAS,
    STUDY_TASKS,
    TASKS,
    downstream_clips,
    downstream_folds,
    downstream_lines,
    downstream_predictions,
    label_windows,
    probe_downstream,
    study_windows,
)
from .net import LORA_TARGETS, AVTuningNet, TuningNet, av_lora_config, hidden_state_at, last_state_from, lora_config
from .selfsup import (
    PRETRAINING_FACE_P,
    PRETRAINING_STEP,
    ClipTokens,
    clip_tokens,
    continue_selfsup,
    pretrain_fusion,
    pretraining_clips,
    pretraining_lines,
)
from .trainer import STRATEGIES, TUNING_VERSION, BrainTuner

__all__ = [
    "LORA_TARGETS", "PHONE_CLASSES", "STRATEGIES", "TUNING_VERSION", "AVTuningNet", "BrainTuner", "TuningData", "TuningNet",
    "av_lora_config", "frame_phone_classes", "hidden_state_at", "last_state_from", "lora_config", "phone_class",
    "tuning_data", "window_bounds",
    # self-supervised pretraining of the audio-video fusion layers (Study 3)
    "PRETRAINING_FACE_P", "PRETRAINING_STEP", "ClipTokens", "clip_tokens", "continue_selfsup", "pretrain_fusion", "pretraining_clips",
    "pretraining_lines",
    # Study 3's downstream tasks, offline
    "DOWNSTREAM_FACE_P", "PROBE_ALPHAS", "STUDY_TASKS", "TASKS", "downstream_clips", "downstream_folds", "downstream_lines",
    "downstream_predictions", "label_windows", "probe_downstream", "study_windows",
]
