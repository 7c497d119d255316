"""SELDnet-style spatial encoder (CRNN on the multichannel STFT) and its SED/DoA pretraining heads.

Angles are folded azimuths in degrees, asin(sin θ) ∈ [−90°, 90°] (0° front, +90° left,
−90° right). Targets are clip-level (one value per clip and class, which is what a static
source gives) and are broadcast over frames; frame-level targets are accepted too.

This file is part of the self-contained model family: it imports only torch,
numpy, transformers and its sibling model files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_seldnet import SeldNetConfig
from .frontend_spatial_clap import ClapLogMel, SincResampler, SourceFrontend, SpatialStftFrontend

_FRONTENDS = (SincResampler, ClapLogMel, SourceFrontend, SpatialStftFrontend)
DOA_SCALE_DEG = 90.0


@dataclass
class SeldNetModelOutput(ModelOutput):
    """Output of [`SeldNetModel`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, frames, 2 * gru_hidden_size)`): frame features.
        pooler_output (`torch.FloatTensor` of shape `(batch, 2 * gru_hidden_size)`): z_sp, the mean of the
            frame features over the valid frames.
        frame_mask (`torch.LongTensor` of shape `(batch, frames)`): 1 on frames whose centre lies on a real
            (non-padded) sample, 0 on padding (an integer mask, like transformers' attention masks); all 1
            without ``attention_mask``.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with ``output_hidden_states=True``): the
            STFT feature planes `(batch, planes, frames, bins)`, the output of every conv block
            `(batch, conv_filters[i], frames, bins_i)` (``bins_i`` after that block's frequency pooling), and the
            GRU's output `(batch, frames, 2 * gru_hidden_size)` (its last layer: ``nn.GRU`` does not return the
            inner ones), which equals ``last_hidden_state``.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    frame_mask: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class SeldNetSoundEventLocalizationOutput(ModelOutput):
    """Output of [`SeldNetForSoundEventLocalization`].

    Args:
        loss (`torch.FloatTensor` scalar, *optional*): ``sed_loss + doa_loss_weight * doa_loss`` of the
            terms whose labels were given.
        logits (`torch.FloatTensor` of shape `(batch, frames, num_classes)`, *optional*): the SED logits, one
            per frame and class (sigmoid gives the activity probability); ``None`` when ``num_classes == 0``.
            Also readable as ``sed_logits``.
        sed_loss, doa_loss (`torch.FloatTensor` scalars, *optional*): the two terms.
        doa_deg (`torch.FloatTensor`): folded azimuth predictions in degrees in [−90, 90]; shape
            `(batch, frames, num_classes)` for ``doa_mode="per_class"``, `(batch,)` for ``"single"``.
        last_hidden_state, pooler_output, frame_mask, hidden_states: as in [`SeldNetModelOutput`].
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    sed_loss: torch.FloatTensor | None = None
    doa_loss: torch.FloatTensor | None = None
    doa_deg: torch.FloatTensor | None = None
    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    frame_mask: torch.LongTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None

    @property
    def sed_logits(self) -> torch.FloatTensor | None:
        """The SED logits `(batch, frames, num_classes)`: the same tensor as ``logits``."""
        return self.logits


def init_gru_(gru: nn.GRU) -> None:
    """PyTorch's default GRU init, U(−1/√hidden, 1/√hidden), through ``transformers.initialization``."""
    bound = 1.0 / math.sqrt(gru.hidden_size)
    for param in gru.parameters():
        init.uniform_(param, -bound, bound)


def reset_frontend_buffers(module: nn.Module) -> None:
    """Recompute the non-persistent buffers of a front-end module (no-op for other modules)."""
    if isinstance(module, _FRONTENDS) and hasattr(module, "reset_buffers"):
        module.reset_buffers()


def frame_mask_from_samples(attention_mask: torch.Tensor | None, num_frames: int, hop_length: int) -> torch.Tensor | None:
    """Sample mask ``(batch, samples)`` -> bool frame mask ``(batch, frames)``: frame t is valid when sample
    ``t * hop_length`` is.

    Frame t of a centred STFT is centred on sample ``t * hop_length``. Rows without any valid frame
    keep their first frame so that pooling stays defined.
    """
    if attention_mask is None:
        return None
    index = torch.clamp(torch.arange(num_frames, device=attention_mask.device) * hop_length, max=attention_mask.shape[-1] - 1)
    mask = attention_mask[:, index].bool()
    mask[:, 0] |= ~mask.any(dim=1)
    return mask


def _is_reentrant(checkpoint_function) -> bool:
    """Whether a gradient-checkpointing function (``functools.partial`` of ``torch.utils.checkpoint.checkpoint``)
    runs the reentrant variant: transformers passes ``use_reentrant=False`` unless told otherwise."""
    return getattr(checkpoint_function, "keywords", {}).get("use_reentrant") is not False


def masked_time_mean(values: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over axis 1 of ``(batch, frames, ...)`` counting only frames where ``frame_mask`` ``(batch, frames)``
    (bool or 0/1 integers) is set."""
    if frame_mask is None:
        return values.mean(dim=1)
    weights = frame_mask.to(device=values.device, dtype=values.dtype)
    weights = weights.reshape(*frame_mask.shape, *([1] * (values.dim() - 2)))
    return (values * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


class SeldNetPreTrainedModel(PreTrainedModel):
    """Weight init and loading glue shared by the SELDnet models.

    Gradient checkpointing (``gradient_checkpointing_enable()``) recomputes every conv block and
    the GRU in the backward pass. The network has no attention, so ``attn_implementation`` has
    only ``"eager"`` (as for transformers' convolutional models). ``_no_split_modules`` keeps the
    encoder inside a `SpatialClapModel` on one device, and each conv block (an eval-mode block
    folds its BatchNorm into its convolution) and head.
    """

    config_class = SeldNetConfig
    config: SeldNetConfig
    base_model_prefix = "seldnet"
    main_input_name = "input_values"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = True
    _supports_sdpa = False
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = False
    _no_split_modules = ["SeldNetModel", "SeldConvBlock", "SeldHead"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, nn.GRU):
            init_gru_(module)
        reset_frontend_buffers(module)


class SeldConvBlock(nn.Module):
    """Conv2d 3×3 → BatchNorm → ReLU → max-pool along frequency: ``(B, C_in, T, F)`` → ``(B, C_out, T, F // pool)``.

    Computed in a cheaper, equal order: the max-pool runs before the ReLU (they commute, as the
    ReLU is monotonic), so the ReLU touches a ``pool`` times smaller tensor; in eval mode the
    BatchNorm is folded into the convolution's weights (one pass over the largest tensor instead
    of two). Outputs agree with the plain order to float rounding.

    With gradient checkpointing (set by ``gradient_checkpointing_enable()``), training keeps only
    the block's input and output: the full-resolution convolution output, the largest tensor of
    the SELDnet, is recomputed in the backward pass. The BatchNorm then normalises with the batch
    statistics inside the recomputed function and updates its running averages once, outside it
    (a plain BatchNorm inside would update them a second time during the recomputation).
    """

    gradient_checkpointing = False

    def __init__(self, in_channels: int, out_channels: int, frequency_pool: int, dropout: float):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=(1, frequency_pool))
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.training and self.gradient_checkpointing:
            return self._checkpointed_forward(hidden_states)
        if self.training or self._offloaded():
            normed = self.norm(self.conv(hidden_states))
        else:
            normed = nn.functional.conv2d(hidden_states, *self._folded_conv(), padding=self.conv.padding)
        return self.dropout(self.activation(self.pool(normed)))

    def _checkpointed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """Training forward under gradient checkpointing: ``(B, C_in, T, F)`` → ``(B, C_out, T, F // pool)``."""
        norm = self.norm

        def block(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            conv = self.conv(inputs)
            var, mean = torch.var_mean(conv.detach(), dim=(0, 2, 3), correction=0)
            normed = nn.functional.batch_norm(conv, None, None, norm.weight, norm.bias, training=True, eps=norm.eps)
            return self.dropout(self.activation(self.pool(normed))), mean, var

        output, mean, var = self._gradient_checkpointing_func(block, hidden_states)
        if norm.track_running_stats:
            count = hidden_states.shape[0] * hidden_states.shape[2] * hidden_states.shape[3]
            self._update_running_stats(mean, var * (count / max(count - 1, 1)))
        return output

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        """Update the BatchNorm's running averages with one batch's statistics ``(C_out,)`` as ``nn.BatchNorm2d``
        does in training."""
        norm = self.norm
        norm.num_batches_tracked.add_(1)
        factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
        norm.running_mean.mul_(1.0 - factor).add_(mean.to(norm.running_mean.dtype), alpha=factor)
        norm.running_var.mul_(1.0 - factor).add_(unbiased_var.to(norm.running_var.dtype), alpha=factor)

    def _offloaded(self) -> bool:
        """Whether weights are offloaded (a ``device_map`` with ``"cpu"`` or ``"disk"``): they wait on the meta
        device until the conv's and the norm's own hooks load them, so folding, which reads them, cannot run."""
        return any(t.is_meta for t in (self.conv.weight, self.conv.bias, self.norm.weight, self.norm.running_var))

    def _folded_conv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Weight and bias of the convolution with the eval-mode BatchNorm folded in."""
        norm = self.norm
        scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)
        bias = (self.conv.bias - norm.running_mean) * scale + norm.bias
        return self.conv.weight * scale[:, None, None, None], bias


class SeldNetModel(SeldNetPreTrainedModel):
    """SELDnet-style CRNN encoder: waveforms → frame features and time-pooled z_sp.

    STFT feature planes (see `SeldNetConfig.input_features`) → conv blocks → 2-layer
    bidirectional GRU → ``last_hidden_state`` ``(batch, frames, 2 * gru_hidden_size)``;
    ``pooler_output`` is its mean over valid frames.
    """

    def __init__(self, config: SeldNetConfig):
        super().__init__(config)
        self.frontend = SpatialStftFrontend(config)
        in_channels = config.num_input_planes
        blocks = []
        for filters, pool in zip(config.conv_filters, config.frequency_pool_sizes):
            blocks.append(SeldConvBlock(in_channels, filters, pool, config.dropout))
            in_channels = filters
        self.conv_blocks = nn.ModuleList(blocks)
        self.gru = nn.GRU(
            input_size=config.conv_filters[-1] * config.pooled_frequency_bins,
            hidden_size=config.gru_hidden_size,
            num_layers=config.gru_num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.gru_num_layers > 1 else 0.0,
        )
        self.gradient_checkpointing = False
        self.post_init()

    def _run_gru(self, hidden: torch.Tensor) -> torch.Tensor:
        """The GRU on ``(batch, frames, features)``; recomputed in the backward pass under gradient checkpointing.

        cuDNN draws the GRU's inter-layer dropout from its own generator, which a recomputation cannot
        replay, so with dropout on CUDA the GRU keeps its activations instead.
        """
        replayable = self.gru.dropout == 0 or not hidden.is_cuda
        if self.gradient_checkpointing and self.training and replayable:
            return self._gradient_checkpointing_func(self.gru, hidden)[0]
        return self.gru(hidden)[0]

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
    ) -> SeldNetModelOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, num_channels, samples)`): waveforms at
                ``config.sample_rate`` Hz.
            attention_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 on real samples,
                0 on padding; padded frames are left out of ``pooler_output``.
            output_hidden_states (`bool`, *optional*): also return the feature planes and every block's
                output (see [`SeldNetModelOutput`]); defaults to ``config.output_hidden_states``.
            return_dict (`bool`, *optional*, keyword only): a [`SeldNetModelOutput`] (default:
                ``config.return_dict``) or a tuple of its non-None fields.
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        features = self.frontend(input_values).to(self.dtype)  # (B, P, T, F)
        if self.config.channels_last:
            features = features.contiguous(memory_format=torch.channels_last)
        if self.gradient_checkpointing and self.training and _is_reentrant(self._gradient_checkpointing_func):
            # Reentrant checkpointing differentiates a checkpointed block only through inputs that require
            # grad; the feature planes do not, which would leave the whole SELDnet without gradients.
            features.requires_grad_(True)
        all_hidden_states = (features,) if output_hidden_states else None
        hidden = features
        for block in self.conv_blocks:
            hidden = block(hidden)
            if output_hidden_states:
                all_hidden_states += (hidden,)
        batch, channels, frames, bins = hidden.shape
        hidden = self._run_gru(hidden.permute(0, 2, 1, 3).reshape(batch, frames, channels * bins))
        if output_hidden_states:
            all_hidden_states += (hidden,)
        if attention_mask is not None:
            attention_mask = attention_mask.to(hidden.device)
        frame_mask = frame_mask_from_samples(attention_mask, frames, self.config.hop_length)
        pooled = masked_time_mean(hidden, frame_mask)
        if frame_mask is None:
            frame_mask = torch.ones(batch, frames, dtype=torch.long, device=hidden.device)
        return SeldNetModelOutput(
            last_hidden_state=hidden,
            pooler_output=pooled,
            frame_mask=frame_mask.long(),
            hidden_states=all_hidden_states,
        )


class SeldHead(nn.Module):
    """2-layer MLP (Linear → ReLU → Linear) applied on the last axis."""

    def __init__(self, in_features: int, hidden: int, out_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, hidden)
        self.activation = nn.ReLU()
        self.out_proj = nn.Linear(hidden, out_features)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.out_proj(self.activation(self.dense(hidden_states)))


def apply_heads(
    sed_head: nn.Module | None, doa_head: nn.Module, encoder_output: SeldNetModelOutput, per_class: bool
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """SED logits ``(batch, frames, num_classes)`` (None without a SED head) and the DoA in units
    of ``DOA_SCALE_DEG`` (tanh, in [−1, 1]): per class and frame ``(batch, frames, num_classes)``
    with ``per_class``, else one per clip from the pooled features ``(batch,)``."""
    frames = encoder_output.last_hidden_state
    sed_logits = sed_head(frames) if sed_head is not None else None
    if per_class:
        return sed_logits, torch.tanh(doa_head(frames))
    return sed_logits, torch.tanh(doa_head(encoder_output.pooler_output)).squeeze(-1)


def direction_bins(doa_deg: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Soft one-hot of folded azimuths ``(...)`` in degrees over ``num_bins`` evenly spaced bin
    centres from −90° to 90° (linear interpolation between the two nearest centres): ``(..., num_bins)``,
    each row summing to 1."""
    if num_bins < 2:
        raise ValueError(f"direction_bins needs num_bins >= 2, got {num_bins}.")
    width = 2 * DOA_SCALE_DEG / (num_bins - 1)
    centres = torch.linspace(-DOA_SCALE_DEG, DOA_SCALE_DEG, num_bins, device=doa_deg.device, dtype=doa_deg.dtype)
    return (1.0 - (doa_deg.clamp(-DOA_SCALE_DEG, DOA_SCALE_DEG)[..., None] - centres).abs() / width).clamp_min(0.0)


class SeldReadout(nn.Module):
    """The SELD pretraining heads' predictions as fusion features.

    ``class_direction_map``: ``doa_mode="per_class"``: for every frame, class k's activity
    probability spreads over the direction bins of its predicted azimuth; the map is the mean
    over valid frames, ``(batch, num_classes * num_bins)``. It states which sound is where in a
    form a linear layer can read, while the time-mean of the frame features (z_sp) mixes the
    sources. ``doa_mode="single"``: the direction bins of the clip's one predicted azimuth,
    ``(batch, num_bins)``.

    ``forward`` gives what the fusion reads: the map standardised over its cells (zero mean,
    unit variance per clip: it holds class activities, mostly near 0), then with ``mean_doa``
    the mean predicted DoA d in units of ``DOA_SCALE_DEG`` (per class, frames weighted by the
    class's activity probability; per clip for ``"single"``) and d². With d and d², the squared
    distance (d − θ)² to a caption's direction θ is linear in the features; the map alone scores
    a direction by bin overlap, which is flat beyond one bin width.
    Width: ``config.readout_size(num_bins, mean_doa)``.
    The heads are those of `SeldNetForSoundEventLocalization` (load them with ``load_heads``).
    """

    def __init__(self, config: SeldNetConfig, num_bins: int, mean_doa: bool = False):
        super().__init__()
        self.per_class = config.doa_mode == "per_class"
        self.num_bins = num_bins
        self.mean_doa = mean_doa
        width = config.output_size
        self.sed_head = SeldHead(width, config.head_hidden_size, config.num_classes) if self.per_class else None
        self.doa_head = SeldHead(width, config.head_hidden_size, config.num_classes if self.per_class else 1)

    def load_heads(self, model: "SeldNetForSoundEventLocalization") -> None:
        """Copy the trained SED/DoA heads of a stage-1 model."""
        if model.config.doa_mode != ("per_class" if self.per_class else "single"):
            raise ValueError(f"The stage-1 model has doa_mode={model.config.doa_mode!r}, unlike this readout.")
        if self.sed_head is not None:
            self.sed_head.load_state_dict(model.sed_head.state_dict())
        self.doa_head.load_state_dict(model.doa_head.state_dict())

    def _predictions(self, encoder_output: SeldNetModelOutput) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Activity probabilities ``(batch, frames, num_classes)`` (None for ``"single"``) and DoA
        in units of ``DOA_SCALE_DEG``: ``(batch, frames, num_classes)``, or ``(batch,)`` for ``"single"``."""
        sed_logits, doa_unit = apply_heads(self.sed_head, self.doa_head, encoder_output, self.per_class)
        return (torch.sigmoid(sed_logits) if sed_logits is not None else None), doa_unit

    def _map(self, probs: torch.Tensor | None, doa_unit: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        bins = direction_bins(DOA_SCALE_DEG * doa_unit, self.num_bins)
        if probs is None:
            return bins
        return masked_time_mean((probs[..., None] * bins).flatten(2), frame_mask)  # cells (B, T, K, bins)

    def class_direction_map(self, encoder_output: SeldNetModelOutput) -> torch.Tensor:
        """The raw class × direction map ``(batch, num_classes * num_bins)`` (``(batch, num_bins)`` for ``"single"``)."""
        return self._map(*self._predictions(encoder_output), encoder_output.frame_mask)

    def forward(self, encoder_output: SeldNetModelOutput) -> torch.Tensor:
        probs, doa_unit = self._predictions(encoder_output)
        cells = self._map(probs, doa_unit, encoder_output.frame_mask)
        features = [nn.functional.layer_norm(cells, cells.shape[-1:])]
        if self.mean_doa:
            if probs is None:
                mean = doa_unit[:, None]
            else:
                weights = probs * encoder_output.frame_mask[..., None].to(device=probs.device, dtype=probs.dtype)
                mean = (weights * doa_unit).sum(1) / weights.sum(1).clamp_min(1e-4)
            features += [mean, mean * mean]
        return torch.cat(features, dim=-1)


class SeldNetForSoundEventLocalization(SeldNetPreTrainedModel):
    """SELDnet with the pretraining heads: SED (sigmoid per class) and DoA (folded azimuth regression).

    * ``doa_mode="per_class"`` (SELD): both heads run on every frame; the DoA head gives one
      angle per class, ``90° * tanh(·)``.
    * ``doa_mode="single"`` (DoA pretraining): the DoA head runs on the time-pooled z_sp and
      gives one angle per clip; the SED head (if ``num_classes > 0``) still runs per frame.

    Losses (when labels are given): SED = BCE over valid frames and all classes; DoA = MSE of
    angles divided by 90° (so in [−1, 1]), per_class: counted only where the class is active
    (``sed_labels > 0.5``) on valid frames, single: per clip.
    """

    def __init__(self, config: SeldNetConfig):
        super().__init__(config)
        self.seldnet = SeldNetModel(config)
        width = config.output_size
        self.sed_head = SeldHead(width, config.head_hidden_size, config.num_classes) if config.num_classes > 0 else None
        doa_outputs = config.num_classes if config.doa_mode == "per_class" else 1
        self.doa_head = SeldHead(width, config.head_hidden_size, doa_outputs)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        sed_labels: torch.Tensor | None = None,
        doa_labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
    ) -> SeldNetSoundEventLocalizationOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch, num_channels, samples)`): waveforms at
                ``config.sample_rate`` Hz.
            attention_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 on real samples.
            sed_labels (`torch.Tensor` of shape `(batch, num_classes)` or `(batch, frames, num_classes)`,
                *optional*): class activity in {0, 1} (clip-level labels are broadcast over frames).
                With ``doa_mode="per_class"`` they are also the mask of the DoA loss.
            doa_labels (`torch.Tensor`, *optional*): folded azimuths in degrees. per_class: same shape as
                ``sed_labels`` (values of inactive classes are ignored); single: `(batch,)`.
            output_hidden_states (`bool`, *optional*): also return the encoder's hidden states (see
                [`SeldNetModelOutput`]); defaults to ``config.output_hidden_states``.
            return_dict (`bool`, *optional*, keyword only): a [`SeldNetSoundEventLocalizationOutput`]
                (default: ``config.return_dict``) or a tuple of its non-None fields.
        """
        base = self.seldnet(
            input_values, attention_mask=attention_mask, output_hidden_states=output_hidden_states, return_dict=True
        )
        frames = base.last_hidden_state
        frame_mask = base.frame_mask.bool()
        sed_logits, doa_unit = apply_heads(self.sed_head, self.doa_head, base, self.config.doa_mode == "per_class")

        sed_loss = doa_loss = loss = None
        if sed_labels is not None:
            if sed_logits is None:
                raise ValueError("sed_labels were given but this model has no SED head (num_classes=0).")
            sed_loss = self._sed_loss(sed_logits, sed_labels, frame_mask)
        if doa_labels is not None:
            doa_loss = self._doa_loss(doa_unit, doa_labels, sed_labels, frame_mask)
        if sed_loss is not None or doa_loss is not None:
            loss = (sed_loss if sed_loss is not None else 0.0) + self.config.doa_loss_weight * (
                doa_loss if doa_loss is not None else 0.0
            )
            loss = torch.as_tensor(loss, device=frames.device)

        return SeldNetSoundEventLocalizationOutput(
            loss=loss,
            logits=sed_logits,
            sed_loss=sed_loss,
            doa_loss=doa_loss,
            doa_deg=doa_unit * DOA_SCALE_DEG,
            last_hidden_state=frames,
            pooler_output=base.pooler_output,
            frame_mask=base.frame_mask,
            hidden_states=base.hidden_states,
        )

    @staticmethod
    def _frame_targets(labels: torch.Tensor, like: torch.Tensor, name: str) -> torch.Tensor:
        """Broadcast clip-level ``(B, K)`` targets to frame level ``(B, T, K)``; check frame-level shapes."""
        labels = labels.to(device=like.device, dtype=like.dtype)
        if labels.dim() == 2 and labels.shape == (like.shape[0], like.shape[2]):
            labels = labels[:, None, :].expand_as(like)
        if labels.shape != like.shape:
            raise ValueError(
                f"{name} must be (batch, num_classes) = {(like.shape[0], like.shape[2])} or (batch, frames, num_classes) = "
                f"{tuple(like.shape)}, got {tuple(labels.shape)}."
            )
        return labels

    def _sed_loss(self, sed_logits: torch.Tensor, sed_labels: torch.Tensor, frame_mask: torch.Tensor) -> torch.Tensor:
        targets = self._frame_targets(sed_labels, sed_logits, "sed_labels")
        pos_weight = self.config.sed_pos_weight
        if pos_weight == "balanced":
            pos_weight = max(self.config.num_classes - 1, 1)
        if pos_weight is not None:
            pos_weight = torch.tensor(float(pos_weight), device=sed_logits.device, dtype=sed_logits.dtype)
        per_item = nn.functional.binary_cross_entropy_with_logits(
            sed_logits, targets, reduction="none", pos_weight=pos_weight
        )
        weights = frame_mask[..., None].to(device=per_item.device, dtype=per_item.dtype).expand_as(per_item)
        return (per_item * weights).sum() / weights.sum().clamp_min(1.0)

    def _doa_loss(
        self,
        doa_unit: torch.Tensor,
        doa_labels: torch.Tensor,
        sed_labels: torch.Tensor | None,
        frame_mask: torch.Tensor,
    ) -> torch.Tensor:
        if self.config.doa_mode == "single":
            targets = doa_labels.to(device=doa_unit.device, dtype=doa_unit.dtype).reshape(-1)
            if targets.shape != doa_unit.shape:
                raise ValueError(
                    f"doa_labels for doa_mode='single' must be (batch,) = {tuple(doa_unit.shape)} degrees, got "
                    f"{tuple(doa_labels.shape)}."
                )
            return nn.functional.mse_loss(doa_unit, targets / DOA_SCALE_DEG)
        if sed_labels is None:
            raise ValueError(
                "doa_mode='per_class' needs sed_labels with doa_labels: the DoA loss is counted only where a class is active."
            )
        targets = self._frame_targets(doa_labels, doa_unit, "doa_labels") / DOA_SCALE_DEG
        active = self._frame_targets(sed_labels, doa_unit, "sed_labels") > 0.5
        weights = (active & frame_mask[..., None].to(active.device)).to(doa_unit.dtype)
        # Inactive entries get weight 0 and a neutral target, so their labels cannot leak into the loss.
        error = torch.where(weights > 0, doa_unit - targets, torch.zeros_like(doa_unit))
        return (error.square() * weights).sum() / weights.sum().clamp_min(1.0)

    def _class_name(self, class_id: int) -> str:
        id2label = self.config.id2label or {}
        if len(id2label) == self.config.num_classes and class_id in id2label:
            return str(id2label[class_id])
        return f"class_{class_id}"

    @torch.no_grad()
    def predict(
        self,
        input_values: torch.Tensor,
        threshold: float = 0.5,
        attention_mask: torch.Tensor | None = None,
        frame_level: bool = False,
    ) -> list:
        """Detected events with folded azimuths in degrees.

        Args:
            input_values: waveforms ``(batch, num_channels, samples)`` at ``config.sample_rate`` Hz.
            threshold: SED probability above which a class counts as active.
            attention_mask: optional ``(batch, samples)`` mask of real samples.
            frame_level: per-frame events instead of per-clip ones (``doa_mode="per_class"`` only).

        Returns:
            Clip level: one list per clip of dicts ``{"class_id", "label", "probability", "azimuth_deg"}``
            sorted by probability; probability = mean SED probability over valid frames, azimuth = mean
            DoA of that class over valid frames. Frame level: one list per clip of one such list per
            frame. With ``doa_mode="single"`` every detected class carries the clip's single azimuth;
            without SED head (``num_classes == 0``) each clip gives one dict with ``class_id``,
            ``label`` and ``probability`` set to None. Azimuths lie in [−90, 90].
        """
        was_training = self.training
        self.eval()
        try:
            out = self(input_values, attention_mask=attention_mask, return_dict=True)
        finally:
            self.train(was_training)
        single = self.config.doa_mode == "single"
        if frame_level and single:
            raise ValueError("frame_level=True needs doa_mode='per_class'; doa_mode='single' predicts one angle per clip.")
        probs = torch.sigmoid(out.sed_logits) if out.sed_logits is not None else None
        results = []
        for b in range(input_values.shape[0]):
            mask = out.frame_mask[b]
            if probs is None:
                results.append([{"class_id": None, "label": None, "probability": None, "azimuth_deg": float(out.doa_deg[b])}])
            elif frame_level:
                frames = []
                for t in torch.nonzero(mask).flatten().tolist():
                    frames.append(self._events(probs[b, t], out.doa_deg[b, t], threshold))
                results.append(frames)
            else:
                clip_probs = masked_time_mean(probs[b : b + 1], mask[None])[0]
                clip_doa = out.doa_deg[b] if single else masked_time_mean(out.doa_deg[b : b + 1], mask[None])[0]
                results.append(self._events(clip_probs, clip_doa, threshold))
        return results

    def _events(self, probs: torch.Tensor, doa_deg: torch.Tensor, threshold: float) -> list[dict]:
        """Active classes of one clip or frame: probs ``(K,)``, doa_deg ``(K,)`` or scalar (single mode)."""
        events = []
        for k in torch.nonzero(probs > threshold).flatten().tolist():
            angle = doa_deg if doa_deg.dim() == 0 else doa_deg[k]
            events.append(
                {"class_id": k, "label": self._class_name(k), "probability": float(probs[k]), "azimuth_deg": float(angle)}
            )
        return sorted(events, key=lambda e: -e["probability"])


__all__ = [
    "SeldNetForSoundEventLocalization",
    "SeldNetModel",
    "SeldNetModelOutput",
    "SeldNetPreTrainedModel",
    "SeldNetSoundEventLocalizationOutput",
    "SeldReadout",
    "direction_bins",
]
