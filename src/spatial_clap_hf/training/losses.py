"""Contrastive loss across processes, with gradients through the gather.

``accelerator.gather`` returns tensors without a gradient path, so a contrastive loss
computed on its output would only train on the local rows. Here every process gathers
all embeddings with ``torch.distributed.nn.functional.all_gather`` (whose backward
reduce-scatters the gradients back to their owners) and computes the loss on the full
global similarity matrix. Every process then holds the same loss L; the gradient that
reaches process j's embeddings is world_size · ∂L/∂e_j, and DDP's gradient averaging
divides that by world_size again — so parameters receive exactly ∂L/∂θ, the gradient of
one process holding the whole global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ..models.spatial_clap.modeling_spatial_clap import MAX_LOGIT_SCALE, contrastive_loss

__all__ = ["ContrastiveLoss", "gather_with_grad"]


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (local_batch, ...) from every process along dim 0, keeping gradients.

    All processes must pass the same local batch size. A no-op in a single process.
    """
    if not _distributed():
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


class ContrastiveLoss(nn.Module):
    """Symmetric InfoNCE over the global batch (all processes), differentiable end to end.

    ``forward(audio_embeds (B, D), text_embeds (B, D), logit_scale_log ())``: embeddings
    are L2-normalised here; ``logit_scale_log`` is the log of the temperature's inverse,
    as stored by the model (exponentiated and clamped at ``MAX_LOGIT_SCALE``, as the model does).
    """

    def __init__(self, max_logit_scale: float = MAX_LOGIT_SCALE) -> None:
        super().__init__()
        self.max_logit_scale = max_logit_scale

    def forward(
        self, audio_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale_log: torch.Tensor
    ) -> torch.Tensor:
        audio = nn.functional.normalize(gather_with_grad(audio_embeds), dim=-1)
        text = nn.functional.normalize(gather_with_grad(text_embeds), dim=-1)
        scale = logit_scale_log.exp().clamp(max=self.max_logit_scale)
        logits_per_audio = scale * audio @ text.t()
        return contrastive_loss(logits_per_audio)
