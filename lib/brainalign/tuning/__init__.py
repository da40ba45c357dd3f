"""Brain-tuning of speech models: single- and multi-participant, LoRA, one shared head.

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

The downstream probe's labels come from phone timings: :func:`phone_class`
maps espeak-ng phoneme mnemonics (the simulated cohort's TextGrids, tier 0) to
six broad classes and :func:`frame_phone_classes` labels model frames.

Modules: ``data`` (windows, responses, phone labels), ``net`` (the adapted model and its
head) and ``trainer`` (:class:`BrainTuner`).
"""

from .data import PHONE_CLASSES, TuningData, frame_phone_classes, phone_class, tuning_data, window_bounds
from .net import LORA_TARGETS, TuningNet, hidden_state_at, last_state_from, lora_config
from .trainer import STRATEGIES, TUNING_VERSION, BrainTuner

__all__ = [
    "LORA_TARGETS", "PHONE_CLASSES", "STRATEGIES", "TUNING_VERSION", "BrainTuner", "TuningData", "TuningNet",
    "frame_phone_classes", "hidden_state_at", "last_state_from", "lora_config", "phone_class", "tuning_data", "window_bounds",
]
