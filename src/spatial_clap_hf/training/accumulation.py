"""Gradient accumulation that enlarges the contrastive batch: cached embedding gradients.

Plain accumulation would not help a contrastive loss, whose negatives are the batch itself.
Here (the idea of GradCache and open_clip's ``accum_freq``) the loss is computed once over the
embeddings of all micro-batches:

1. every micro-batch is embedded without gradients (its RNG state remembered);
2. the loss over all embeddings (gathered from every process, as for one large batch) is
   back-propagated to the embeddings only, and those gradients are kept;
3. every micro-batch is embedded again with gradients under its remembered RNG state (so
   dropout draws the same masks) and back-propagated with its share of the kept gradients.

Parameters then hold the gradient of the loss over the whole accumulated batch, while at most
one micro-batch's activations are alive at a time. The cost is one extra forward pass per
micro-batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

__all__ = ["average_gradients", "cached_contrastive_backward"]


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    accelerator_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), accelerator_state


def _set_rng_state(state: tuple[torch.Tensor, torch.Tensor | None], device: torch.device) -> None:
    cpu, accelerator_state = state
    torch.set_rng_state(cpu)
    if accelerator_state is not None:
        torch.cuda.set_rng_state(accelerator_state, device)


def cached_contrastive_backward(
    model: torch.nn.Module,
    micro_batches: Sequence[dict[str, torch.Tensor]],
    loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    logit_scale: torch.Tensor,
    *,
    backward: Callable[[torch.Tensor], Any] = torch.Tensor.backward,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> torch.Tensor:
    """Accumulate into the parameters' ``.grad`` the gradient of ``loss_fn`` over all micro-batches.

    Args:
        model: returns ``audio_embeds`` (B_i, D) and ``text_embeds`` (B_i, D) for ``model(**inputs)``.
        micro_batches: model inputs, one dict per micro-batch (``input_values``, ``input_ids``, ...).
        loss_fn: ``loss_fn(audio (B, D), text (B, D), logit_scale) -> ()`` over the concatenated
            embeddings (it may gather them across processes, as ``ContrastiveLoss`` does).
        logit_scale: the model's log logit scale (its gradient comes from the loss directly).
        backward: how to back-propagate the loss (e.g. ``accelerator.backward``, which scales it
            for fp16); the same scaling then reaches every parameter.
        autocast: context for the forward passes (e.g. ``accelerator.autocast``).

    Returns:
        The loss (detached).
    """
    if not micro_batches:
        raise ValueError("cached_contrastive_backward needs at least one micro-batch.")
    device = logit_scale.device
    states, audio, text = [], [], []
    with torch.no_grad():
        for inputs in micro_batches:
            states.append(_rng_state(device))
            with autocast():
                out = model(**inputs)
            audio.append(out.audio_embeds)
            text.append(out.text_embeds)
    sizes = [a.shape[0] for a in audio]
    audio_all = torch.cat(audio).detach().requires_grad_(True)
    text_all = torch.cat(text).detach().requires_grad_(True)
    with autocast():
        loss = loss_fn(audio_all, text_all, logit_scale)
    backward(loss)
    after = _rng_state(device)
    for inputs, state, audio_grad, text_grad in zip(
        micro_batches, states, audio_all.grad.split(sizes), text_all.grad.split(sizes)
    ):
        _set_rng_state(state, device)
        with autocast():
            out = model(**inputs)
        torch.autograd.backward([out.audio_embeds, out.text_embeds], [audio_grad, text_grad])
    _set_rng_state(after, device)
    return loss.detach()


def average_gradients(parameters: Sequence[torch.nn.Parameter], accelerator: Any) -> None:
    """Average ``.grad`` over all processes in one collective (what DDP does after ``backward``),
    for gradients accumulated under ``accelerator.no_sync``. A missing gradient counts as zero."""
    if accelerator.num_processes == 1:
        return
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in parameters]
    flat = accelerator.reduce(torch.cat([g.reshape(-1) for g in grads]), reduction="mean")
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
