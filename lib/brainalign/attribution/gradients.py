"""Attribution methods on torch tensors: Gradient x Input and Integrated Gradients.

:func:`gradient_x_input` attributes several per-sample outputs of one forward
pass; :func:`integrated_gradients` wraps captum's ``IntegratedGradients``
(captum is imported only there).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping

import numpy as np
import torch

__all__ = ["METHODS", "gradient_x_input", "integrated_gradients"]

#: attribution methods
METHODS = ("gradient_x_input", "integrated_gradients")


# -- attribution methods -------------------------------------------------------------------------------
def gradient_x_input(outputs: Mapping[Hashable, torch.Tensor], inputs: torch.Tensor) -> dict[Hashable, torch.Tensor]:
    """Gradient x Input of several per-sample outputs of one forward pass.

    Equivalent to ``captum.attr.InputXGradient`` run once per output, without repeating the
    forward pass: the samples of a batch must not interact (each output ``[b]`` depends on
    ``inputs[b]`` only), so the gradient of the summed output is each sample's gradient.

    Parameters
    ----------
    outputs : mapping of key -> tensor of shape (batch,)
        Scalar targets per sample, computed from ``inputs`` with autograd on.
    inputs : tensor of shape (batch, ...)
        The leaf tensor the outputs were computed from (``requires_grad=True``).

    Returns
    -------
    dict of key -> tensor of the shape of ``inputs``
        ``d output[b] / d inputs[b] * inputs[b]``, detached.
    """
    if not inputs.requires_grad:
        raise ValueError("inputs must require gradients (call inputs.requires_grad_() before the forward pass)")
    keys = list(outputs)
    out = {}
    for i, key in enumerate(keys):
        value = outputs[key]
        if value.ndim != 1 or value.shape[0] != inputs.shape[0]:
            raise ValueError(f"output {key!r} must have shape ({inputs.shape[0]},), got {tuple(value.shape)}")
        (grad,) = torch.autograd.grad(value.sum(), inputs, retain_graph=i < len(keys) - 1)
        out[key] = (grad * inputs).detach()
    return out


def integrated_gradients(
    forward_func: Callable[..., torch.Tensor],
    inputs: torch.Tensor,
    n_steps: int = 20,
    additional_forward_args: tuple = (),
    internal_batch_size: int | None = None,
    baselines: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integrated Gradients (``captum.attr.IntegratedGradients``), from a zero baseline by default.

    Parameters
    ----------
    forward_func : callable
        ``forward_func(inputs, *additional_forward_args)`` -> tensor of shape (batch,).
    inputs : tensor of shape (batch, ...)
    n_steps : int, default=20
        Points of the path integral (Gauss-Legendre).
    additional_forward_args : tuple
        Passed to ``forward_func``; tensors with a batch dimension are repeated along the path.
    internal_batch_size : int, optional
        Path points evaluated at once.
    baselines : tensor broadcastable to the shape of ``inputs``, optional
        Where the path starts; None: zeros.

    Returns
    -------
    attributions : tensor of the shape of ``inputs``
    delta : tensor of shape (batch,)
        Convergence delta: the sum of each sample's attributions minus
        ``forward_func(inputs) - forward_func(baselines)`` (completeness; 0 for an exact integral).
    """
    from captum.attr import IntegratedGradients

    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 2:
        raise ValueError(f"n_steps={n_steps!r} must be an integer >= 2")
    ig = IntegratedGradients(forward_func)
    attributions, delta = ig.attribute(
        inputs, baselines=torch.zeros_like(inputs) if baselines is None else baselines.expand_as(inputs).contiguous(),
        additional_forward_args=tuple(additional_forward_args) or None,
        n_steps=int(n_steps), internal_batch_size=internal_batch_size, return_convergence_delta=True,
    )
    return attributions.detach(), delta.detach()
