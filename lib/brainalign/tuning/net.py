"""The network brain-tuning trains: a speech model with LoRA adapters and one shared linear head.

The adapters sit on the attention projections; the frozen prefix of blocks is computed once per window.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .. import models

#: the modules that get LoRA adapters (attention projections of Whisper, wav2vec2 and HuBERT)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")


# -- model ----------------------------------------------------------------------------------------


def lora_config(rank: int = 8, alpha: float = 32, dropout: float = 0.1, layers: Sequence[int] | None = None):
    """peft's ``LoraConfig`` on the attention projections (:data:`LORA_TARGETS`) only.

    ``layers``: the transformer blocks that get adapters (default: all).
    """
    from peft import LoraConfig

    if int(rank) < 1:
        raise ValueError(f"rank must be >= 1, got {rank!r}")
    if not 0 <= float(dropout) < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    where = {} if layers is None else {"layers_to_transform": [int(x) for x in layers], "layers_pattern": "layers"}
    return LoraConfig(r=int(rank), lora_alpha=float(alpha), lora_dropout=float(dropout), target_modules=list(LORA_TARGETS),
                      bias="none", **where)


def _blocks(lm: models.LoadedModel) -> torch.nn.ModuleList:
    return lm.model.layers if models.is_whisper(lm) else lm.model.encoder.layers


def hidden_state_at(lm: models.LoadedModel, clips: list[np.ndarray], k: int) -> torch.Tensor:
    """Hidden state ``k`` (the input to block ``k``) of equal-length clips, without gradients.

    Everything before block ``k`` is frozen in brain-tuning from block ``k`` on,
    so this state can be computed once per clip and kept (:class:`BrainTuner`
    does, for the frozen prefix of every window).

    Parameters
    ----------
    lm : LoadedModel
        A speech model (wav2vec 2.0, HuBERT or Whisper's encoder).
    clips : list of ndarray, each of shape (n_samples,)
        Waveforms at ``models.SPEECH_SR``, all of one length.
    k : int
        0 (the feature encoder's output, or Whisper's convolutions and positions) up to the number of blocks.

    Returns
    -------
    tensor of shape (n_clips, n_frames, dim)
    """
    with torch.no_grad():
        if models.is_whisper(lm):
            mel, n_frames = models.whisper_mel(lm, clips)
            return models.whisper_encoder_states(lm.model, mel, n_frames, n_blocks=k)[k]
        inputs = lm.processor(clips, sampling_rate=models.SPEECH_SR, return_tensors="pt")
        x = inputs["input_values"].to(lm.device, next(lm.model.parameters()).dtype)
        return lm.model(x, output_hidden_states=True).hidden_states[k]


def last_state_from(lm: models.LoadedModel, hidden: torch.Tensor, k: int) -> torch.Tensor:
    """The last hidden state, from state ``k``: blocks ``k, k + 1, ...`` and the final norm (with gradients).

    ``last_state_from(lm, hidden_state_at(lm, clips, k), k)`` is the model's last
    hidden state of ``clips`` for every ``k``.

    Parameters
    ----------
    lm : LoadedModel
        The speech model of :func:`hidden_state_at`.
    hidden : tensor of shape (n_clips, n_frames, dim)
        Hidden state ``k``.
    k : int
        Which state ``hidden`` is.

    Returns
    -------
    tensor of shape (n_clips, n_frames, dim)
    """
    for block in _blocks(lm)[k:]:
        hidden = block(hidden, None)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden  # some transformers versions return a tuple
    if models.is_whisper(lm):
        return lm.model.layer_norm(hidden)
    return lm.model.encoder.layer_norm(hidden) if lm.model.config.do_stable_layer_norm else hidden


class TuningNet(torch.nn.Module):
    """Speech model with LoRA adapters on blocks ``first, ...``, mean pooling of the last state, a shared linear head.

    Everything before block ``first`` is frozen, so its output (:meth:`prefix`)
    is computed without gradients, in eval mode, and can be kept.
    """

    def __init__(self, lm: models.LoadedModel, n_outputs: int, config, first: int) -> None:
        from peft import get_peft_model

        super().__init__()
        self.lm, self.first = lm, int(first)
        for p in lm.model.parameters():
            p.requires_grad_(False)  # the convolutional front end and every non-adapter weight stay frozen
        self.peft = get_peft_model(lm.model, config)  # injects the adapters into lm.model in place
        self.head = torch.nn.Linear(lm.spec.dim, int(n_outputs))

    def prefix(self, clips: list[np.ndarray]) -> torch.Tensor:
        training = self.training
        self.eval()
        try:
            return hidden_state_at(self.lm, clips, self.first)
        finally:
            self.train(training)

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        return self.head(last_state_from(self.lm, prefix, self.first).float().mean(dim=1))

    def trainable(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if p.requires_grad}
