"""A causal language model run from input embeddings, as the attributions need it.

The losses that :class:`~brainalign.attribution.BrainAttribution` attributes are
functions of the input embeddings of a window's tokens
(:func:`input_embeddings`), which the attribution methods perturb.
:func:`hidden_states` runs the model's blocks on them only as deep as the
deepest layer a loss reads; :func:`layer_logits` reads the next-token logits of
any layer (the logit lens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ..models import LoadedModel

__all__ = ["hidden_states", "input_embeddings", "layer_logits"]


class _StopForward(Exception):  # noqa: N818 - a signal, not an error
    """Raised by a forward hook to skip the blocks no target reads."""


def input_embeddings(lm: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
    """The input embeddings of token ids: float32, detached, on the model's device.

    Parameters
    ----------
    lm : LoadedModel
        A causal language model (:func:`brainalign.models.load_model`).
    ids : long tensor of shape (batch, n_tokens)

    Returns
    -------
    embeddings : tensor of shape (batch, n_tokens, dim)
    """
    return lm.model.get_input_embeddings()(ids.to(lm.device)).detach().float()


def _decoder_layers(lm: LoadedModel) -> torch.nn.ModuleList | None:
    """The model's ``lm.spec.n_layers`` transformer blocks (``layers`` or ``h`` of its base model); None if not found."""
    base = lm.model.base_model
    for name in ("layers", "h"):
        layers = getattr(base, name, None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) == lm.spec.n_layers:
            return layers
    return None


def hidden_states(lm: LoadedModel, x: torch.Tensor, attention: torch.Tensor, deepest: int) -> Sequence[torch.Tensor]:
    """Hidden states 0..``deepest`` (as the model's ``output_hidden_states``), stopping after block ``deepest``.

    Blocks past the deepest layer a target reads are skipped: forward hooks record each
    block's output and interrupt the pass. Models whose blocks are not found, and the last
    layer (which the model normalises), run the whole forward pass.

    Parameters
    ----------
    lm : LoadedModel
        A causal language model.
    x : tensor of shape (batch, n_tokens, dim)
        Input embeddings (:func:`input_embeddings`, or a point on a path to them).
    attention : bool tensor of shape (batch, n_tokens)
        True for real tokens, False for padding.
    deepest : int
        The deepest hidden state needed (0 = the embeddings, ``lm.spec.n_layers`` = the last).

    Returns
    -------
    hidden : sequence of ``deepest + 1`` tensors of shape (batch, n_tokens, dim)
    """
    base = lm.model.base_model
    x = x.to(next(lm.model.parameters()).dtype)
    blocks = _decoder_layers(lm)
    if blocks is None or deepest >= lm.spec.n_layers:
        return base(inputs_embeds=x, attention_mask=attention.long(), output_hidden_states=True,
                    use_cache=False).hidden_states
    captured: dict[int, torch.Tensor] = {}

    def before(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        captured[0] = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        if deepest == 0:
            raise _StopForward

    def after(i: int) -> Callable:
        def hook(module: torch.nn.Module, args: tuple, output: object) -> None:
            captured[i + 1] = output[0] if isinstance(output, tuple) else output
            if i + 1 == deepest:
                raise _StopForward

        return hook

    handles = [blocks[0].register_forward_pre_hook(before, with_kwargs=True)]
    handles += [blocks[i].register_forward_hook(after(i)) for i in range(deepest)]
    try:
        base(inputs_embeds=x, attention_mask=attention.long(), use_cache=False)
    except _StopForward:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return [captured[i] for i in range(deepest + 1)]


def layer_logits(lm: LoadedModel, hidden: torch.Tensor, layer: int) -> torch.Tensor:
    """Next-token logits read from hidden state ``layer`` through the final norm and the output embeddings.

    The logit lens for ``layer < lm.spec.n_layers``; the last hidden state, which the model
    has already normalised, goes to the output embeddings as it is (the model's own logits).

    Parameters
    ----------
    lm : LoadedModel
        A causal language model.
    hidden : tensor of shape (..., dim)
        Hidden state ``layer`` at some positions.
    layer : int
        Its layer (0 = the embeddings).

    Returns
    -------
    logits : float32 tensor of shape (..., vocab_size)
    """
    if layer < lm.spec.n_layers:  # the last hidden state is already normalised
        base = lm.model.base_model
        norm = next((getattr(base, n) for n in ("norm", "ln_f", "final_layer_norm", "final_layernorm")
                     if hasattr(base, n)), None)
        if norm is None:
            raise ValueError(f"no final norm found in {type(base).__name__}; use nwp_readout='output'")
        hidden = norm(hidden)
    return lm.model.get_output_embeddings()(hidden).float()
