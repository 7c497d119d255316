"""Spatial CLAP: a joint audio-text embedding that knows what sounds and where.

Audio tower: HTS-AT source encoder (``ClapAudioModel``) on the mono down-mix at 48 kHz
log-mel + SELDnet spatial encoder on the multichannel STFT, fused by an MLP into the
joint space. Text tower: any ``AutoModel`` text encoder + projection MLP. Both
embeddings are L2-normalised; one learnable logit scale.

This file is part of the self-contained model family: it imports only torch,
numpy, transformers and its sibling model files.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, ClapAudioConfig, ClapAudioModel, ClapConfig, ClapModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.modeling_utils import PreTrainedModel
from transformers.utils import ModelOutput, can_return_tuple, logging

from .configuration_spatial_clap import SpatialClapConfig
from .frontend_spatial_clap import SourceFrontend
from .modeling_seldnet import (
    SeldNetForSoundEventLocalization,
    SeldNetModel,
    SeldNetModelOutput,
    SeldReadout,
    reset_frontend_buffers,
)

MAX_LOGIT_SCALE = 100.0
# Sub-configs whose towers run eager attention whatever is requested, and what a request for
# another implementation is told (None: nothing to tell, the tower has no attention).
EAGER_ONLY_SUB_CONFIGS = {
    "source_config": "HTS-AT's shifted-window attention (with its relative position bias) has only an eager "
    "implementation",
    "spatial_config": None,
}

logger = logging.get_logger(__name__)


def contrastive_loss(logits_per_audio: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE: mean of the audio→text and text→audio cross-entropies.

    Args:
        logits_per_audio: ``(batch, batch)`` scaled similarities, row i = audio i against all
            texts; the matching text of audio i is text i.

    Returns:
        Scalar loss.
    """
    if logits_per_audio.dim() != 2 or logits_per_audio.shape[0] != logits_per_audio.shape[1]:
        raise ValueError(
            f"contrastive_loss needs square (batch, batch) logits with matching pairs on the diagonal, got shape "
            f"{tuple(logits_per_audio.shape)}."
        )
    labels = torch.arange(logits_per_audio.shape[0], device=logits_per_audio.device)
    audio_loss = F.cross_entropy(logits_per_audio, labels)
    text_loss = F.cross_entropy(logits_per_audio.t(), labels)
    return (audio_loss + text_loss) / 2.0


@dataclass
class SpatialClapAudioOutput(ModelOutput):
    """Output of [`SpatialClapModel.get_audio_features`].

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, source_hidden + spatial_hidden)`): the fused
            tower features ``concat(z_src, z_sp)`` (and the spatial readout, if configured) fed to the fusion MLP.
        pooler_output (`torch.FloatTensor` of shape `(batch, projection_dim)`): L2-normalised audio embedding.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with ``output_hidden_states=True``): the
            source tower's (HTS-AT's) hidden states as ``ClapAudioModel`` returns them: the patch embeddings and
            the output of every stage, `(batch, channels_i, height_i, width_i)`.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned with ``output_attentions=True``): HTS-AT's
            window attention weights, one per layer, `(batch * windows_i, heads_i, window_size², window_size²)`.
        spatial_hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with ``output_hidden_states=True``
            when the model has a spatial encoder): the SELDnet's hidden states (see [`SeldNetModelOutput`]).
        source_model_output (`BaseModelOutputWithPooling`): HTS-AT outputs (``pooler_output`` = z_src).
        spatial_model_output (`SeldNetModelOutput`, *optional*): SELDnet outputs (``pooler_output`` = z_sp).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    spatial_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    source_model_output: BaseModelOutputWithPooling | None = None
    spatial_model_output: SeldNetModelOutput | None = None


@dataclass
class SpatialClapOutput(ModelOutput):
    """Output of [`SpatialClapModel.forward`].

    Args:
        loss (`torch.FloatTensor` scalar, *optional*): symmetric InfoNCE (with ``return_loss=True``).
        logits_per_audio (`torch.FloatTensor` of shape `(audio_batch, text_batch)`): scaled cosine similarities.
        logits_per_text (`torch.FloatTensor` of shape `(text_batch, audio_batch)`): its transpose.
        audio_embeds (`torch.FloatTensor` of shape `(audio_batch, projection_dim)`): L2-normalised.
        text_embeds (`torch.FloatTensor` of shape `(text_batch, projection_dim)`): L2-normalised.
        text_model_output (`BaseModelOutputWithPooling`): text tower outputs.
        audio_model_output (`SpatialClapAudioOutput`): audio tower outputs.
    """

    loss: torch.FloatTensor | None = None
    logits_per_audio: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
    audio_embeds: torch.FloatTensor | None = None
    text_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutputWithPooling | None = None
    audio_model_output: SpatialClapAudioOutput | None = None

    def to_tuple(self) -> tuple[Any]:
        return tuple(
            self[k] if k not in ("text_model_output", "audio_model_output") else getattr(self, k).to_tuple()
            for k in self.keys()
        )


class ProjectionMLP(nn.Module):
    """Linear → ReLU → Linear: ``(..., in_features)`` → ``(..., out_features)``."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__()
        self.linear1 = nn.Linear(in_features, hidden_features)
        self.activation = nn.ReLU()
        self.linear2 = nn.Linear(hidden_features, out_features)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.activation(self.linear1(hidden_states)))


class SpatialClapPreTrainedModel(PreTrainedModel):
    """Weight init and loading glue of [`SpatialClapModel`].

    * Gradient checkpointing (``gradient_checkpointing_enable()``) recomputes HTS-AT's stages,
      the SELDnet's conv blocks and GRU, and the text tower's layers in the backward pass.
    * Attention backends: ``attn_implementation`` (``"eager"``, ``"sdpa"``, ...) selects the text
      tower's attention, which checks its own support when it is built (RoBERTa supports eager,
      SDPA, FlashAttention and FlexAttention). HTS-AT's shifted-window attention, with its relative
      position bias, has one implementation (eager), and the SELDnet has no attention: both stay
      eager whatever is requested, with a logged note.
    * ``_no_split_modules`` (for ``device_map``) keeps each HTS-AT layer and patch embedding, the
      SELDnet and its readout, and each text layer on one device.
    * The contrastive loss is a mean over the batch: ``Trainer`` passes no ``num_items_in_batch``.
    """

    config_class = SpatialClapConfig
    config: SpatialClapConfig
    base_model_prefix = "spatial_clap"
    input_modalities = ("audio", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    # The towers take no attention-interface kwargs from the top-level call (no TGI / vLLM backend).
    _supports_attention_backend = False
    _no_split_modules = ["ClapAudioLayer", "ClapAudioPatchEmbed", "SeldNetModel", "SeldReadout"]
    accepts_loss_kwargs = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, SpatialClapModel):
            init.constant_(module.logit_scale, math.log(self.config.logit_scale_init_value))
        reset_frontend_buffers(module)

    def set_attn_implementation(self, attn_implementation: str | dict, allow_all_kernels: bool = False) -> None:
        """Set the text tower's attention implementation (a string, or transformers' per-sub-config dict);
        HTS-AT and the SELDnet stay eager (see the class docstring)."""
        if isinstance(attn_implementation, str):
            attn_implementation = {"": attn_implementation, "text_config": attn_implementation}
        routed = dict(attn_implementation)
        for key in EAGER_ONLY_SUB_CONFIGS:
            _note_eager_only(key, routed.get(key, routed.get("")))
            routed[key] = "eager"
        super().set_attn_implementation(routed, allow_all_kernels=allow_all_kernels)


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``(batch, tokens, hidden)`` over the tokens where ``attention_mask`` ``(batch, tokens)`` is 1."""
    if attention_mask is None:
        return hidden_states.mean(dim=1)
    weights = attention_mask.to(hidden_states.dtype)[..., None]
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)


def sentence_segments(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, separator_id: int) -> torch.Tensor:
    """Sentence index of every token ``(batch, tokens)``, -1 on padding.

    A sentence runs up to and including a ``separator_id`` token. The last real token of a
    row (an end-of-sequence token such as ``</s>``) joins the sentence before it when it
    directly follows a separator, so ``"<s>A. B.</s>"`` has two sentences, not three.
    Expects the real tokens of each row to be contiguous (left or right padding).
    """
    mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
    sep = ((input_ids == separator_id) & mask).long()
    seg = torch.cumsum(sep, dim=1) - sep
    positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
    last = torch.where(mask, positions, -1).amax(dim=1, keepdim=True).clamp_min(0)
    before = (last - 1).clamp_min(0)
    seg = seg.scatter(1, last, torch.minimum(seg.gather(1, last), seg.gather(1, before)))
    return torch.where(mask, seg, -1)


def sentence_means(hidden_states: torch.Tensor, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean hidden state of each sentence: ``(batch, sentences, hidden)`` and its validity ``(batch, sentences)``.

    ``segments`` ``(batch, tokens)`` from `sentence_segments`; rows with fewer sentences than
    the longest are padded with zeros (validity False).
    """
    num = int(segments.max().item()) + 1 if segments.numel() else 1
    one_hot = F.one_hot(segments.clamp_min(0), max(num, 1)).to(hidden_states.dtype)
    one_hot = one_hot * (segments >= 0)[..., None].to(hidden_states.dtype)
    counts = one_hot.sum(dim=1)
    sums = torch.einsum("btk,bth->bkh", one_hot, hidden_states)
    return sums / counts.clamp_min(1.0)[..., None], counts > 0


class SpatialClapModel(SpatialClapPreTrainedModel):
    """Spatial CLAP dual encoder.

    Inputs: waveforms ``input_values`` ``(batch, channels, samples)`` at ``config.sample_rate`` Hz
    (use [`SpatialClapFeatureExtractor`] to pad/cut them to ``config.max_length_s``) and token ids
    from the text tower's tokenizer. Outputs L2-normalised ``projection_dim`` embeddings and scaled
    similarities; the logit scale is ``exp(logit_scale)`` capped at ``MAX_LOGIT_SCALE`` (100, as CLIP).
    """

    def __init__(self, config: SpatialClapConfig):
        super().__init__(config)
        _keep_eager_only_towers_eager(config)
        self.source_frontend = SourceFrontend.from_config(config)
        self.source_model = ClapAudioModel(config.source_config)
        self.spatial_model = SeldNetModel(config.spatial_config) if config.spatial_encoder != "none" else None
        self.spatial_readout = (
            SeldReadout(config.spatial_config, config.spatial_readout_bins, mean_doa=config.spatial_readout_mean_doa)
            if config.spatial_readout_size
            else None
        )
        fused = config.source_hidden_size + config.spatial_hidden_size
        self.fusion = ProjectionMLP(fused, config.fusion_hidden_size, config.projection_dim)
        self.text_model = AutoModel.from_config(config.text_config)
        if config.text_pooling != "pooler" and getattr(self.text_model, "pooler", None) is not None:
            # Unused by mean/cls pooling; parameters that never get a gradient stall DDP's reduction.
            self.text_model.pooler = None
        text_hidden = config.text_config.hidden_size
        self.text_projection = ProjectionMLP(text_hidden, config.projection_dim, config.projection_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(config.logit_scale_init_value)))
        self.post_init()

    def load_spatial_encoder(self, stage1: SeldNetModel | SeldNetForSoundEventLocalization) -> None:
        """Copy a stage-1 spatial encoder into this model, with its heads when the model has a readout."""
        if self.spatial_model is None:
            raise ValueError("This model has no spatial encoder (spatial_encoder='none').")
        encoder = stage1.seldnet if isinstance(stage1, SeldNetForSoundEventLocalization) else stage1
        self.spatial_model.load_state_dict(encoder.state_dict())
        if self.spatial_readout is not None:
            if not isinstance(stage1, SeldNetForSoundEventLocalization):
                raise ValueError(
                    "spatial_readout_bins > 0 reads the stage-1 SED/DoA heads; pass the stage-1 model with its heads "
                    "(load_stage1_spatial(path, with_heads=True))."
                )
            self.spatial_readout.load_heads(stage1)

    # ------------------------------------------------------------ embeddings
    def get_input_embeddings(self) -> nn.Module:
        """The text tower's token embeddings (what ``resize_token_embeddings`` resizes)."""
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.text_model.set_input_embeddings(value)

    # ------------------------------------------------------------------ audio
    def _check_audio(self, input_values: torch.Tensor) -> None:
        expected = self.config.spatial_config.num_channels if self.spatial_model is not None else None
        if input_values.dim() != 3:
            raise ValueError(
                f"input_values must be waveforms (batch, channels, samples), got shape {tuple(input_values.shape)}."
            )
        if expected is not None and input_values.shape[1] != expected:
            raise ValueError(
                f"input_values has {input_values.shape[1]} channel(s) but the spatial encoder expects {expected}; "
                "pass (batch, channels, samples) with the model's channel count."
            )

    def _output_flags(self, output_hidden_states: bool | None, output_attentions: bool | None) -> tuple[bool, bool]:
        """The requested ``output_*`` flags, the config's where not given."""
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        return bool(output_hidden_states), bool(output_attentions)

    @can_return_tuple
    def get_audio_features(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SpatialClapAudioOutput | tuple:
        r"""Audio embeddings.

        Args:
            input_values (`torch.FloatTensor` of shape `(batch, channels, samples)`): waveforms at
                ``config.sample_rate`` Hz.
            attention_mask (`torch.Tensor` of shape `(batch, samples)`, *optional*): 1 on the clip's own
                samples, 0 on padding; used by the spatial encoder's time pooling.
            output_hidden_states (`bool`, *optional*): also return both towers' hidden states (defaults to
                ``config.output_hidden_states``).
            output_attentions (`bool`, *optional*): also return HTS-AT's attention weights (defaults to
                ``config.output_attentions``; the SELDnet has no attention).
            return_dict (`bool`, *optional*, keyword only): a [`SpatialClapAudioOutput`] (default:
                ``config.return_dict``) or a tuple of its non-None fields.

        Returns:
            [`SpatialClapAudioOutput`] whose ``pooler_output`` is the L2-normalised embedding
            ``(batch, projection_dim)`` (as ``ClapModel.get_audio_features``).
        """
        output_hidden_states, output_attentions = self._output_flags(output_hidden_states, output_attentions)
        self._check_audio(input_values)
        input_features, is_longer = self.source_frontend(input_values)
        input_features = input_features.to(self.source_model.dtype)
        source_out = self.source_model(
            input_features=input_features,
            is_longer=is_longer,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        parts = [source_out.pooler_output]
        spatial_out = None
        if self.spatial_model is not None:
            spatial_out = self.spatial_model(
                input_values, attention_mask=attention_mask, output_hidden_states=output_hidden_states, return_dict=True
            )
            parts.append(spatial_out.pooler_output)
            if self.spatial_readout is not None:
                parts.append(self.spatial_readout(spatial_out))
        # The towers may sit on different devices (device_map); the fusion reads them on the first one's.
        fused = torch.cat([part.to(parts[0].device) for part in parts], dim=-1)
        embeds = F.normalize(self.fusion(fused), dim=-1)
        return SpatialClapAudioOutput(
            last_hidden_state=fused,
            pooler_output=embeds,
            hidden_states=source_out.hidden_states,
            attentions=source_out.attentions,
            spatial_hidden_states=spatial_out.hidden_states if spatial_out is not None else None,
            source_model_output=source_out,
            spatial_model_output=spatial_out,
        )

    # ------------------------------------------------------------------- text
    def _embed_text(self, outputs: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """Projected (not yet normalised) caption embeddings ``(batch, projection_dim)``."""
        if self.config.text_pooling != "sentence":
            return self.text_projection(self._pool_text(outputs, attention_mask))
        separator = self.config.text_sentence_separator_id
        if separator is None:
            raise ValueError(
                "text_pooling='sentence' needs config.text_sentence_separator_id, the tokenizer's id of the "
                "sentence-ending token; set it to tokenizer.convert_tokens_to_ids('.')."
            )
        segments = sentence_segments(input_ids, attention_mask, separator)
        means, valid = sentence_means(outputs.last_hidden_state, segments)
        projected = self.text_projection(means) * valid[..., None].to(means.dtype)
        return projected.sum(dim=1)

    def _pool_text(self, outputs: Any, attention_mask: torch.Tensor | None) -> torch.Tensor:
        pooling = self.config.text_pooling
        if pooling == "mean":
            return masked_mean(outputs.last_hidden_state, attention_mask)
        if pooling == "cls":
            return outputs.last_hidden_state[:, 0]
        pooled = getattr(outputs, "pooler_output", None)
        if pooled is None:
            raise ValueError(
                f"text_pooling='pooler' but {type(self.text_model).__name__} returns no pooler_output; "
                "use text_pooling='mean' or 'cls'."
            )
        return pooled

    @can_return_tuple
    def get_text_features(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        r"""Text embeddings.

        Args:
            input_ids (`torch.LongTensor` of shape `(batch, tokens)`): token ids.
            attention_mask (`torch.Tensor` of shape `(batch, tokens)`, *optional*): 1 on real tokens.
            token_type_ids, position_ids (`torch.LongTensor` of shape `(batch, tokens)`, *optional*): passed to
                the text tower when given (e.g. the ``token_type_ids`` of a BERT tokenizer).
            output_hidden_states (`bool`, *optional*): also return the text tower's hidden states (defaults to
                ``config.output_hidden_states``).
            output_attentions (`bool`, *optional*): also return its attention weights (defaults to
                ``config.output_attentions``; transformers' text towers return them only with
                ``attn_implementation="eager"``).
            return_dict (`bool`, *optional*, keyword only): a ``BaseModelOutputWithPooling`` (default:
                ``config.return_dict``) or a tuple of its non-None fields.

        Returns:
            The text model's ``BaseModelOutputWithPooling`` with ``pooler_output`` replaced by the
            L2-normalised embedding ``(batch, projection_dim)`` (as ``ClapModel.get_text_features``).
        """
        output_hidden_states, output_attentions = self._output_flags(output_hidden_states, output_attentions)
        # Only what was given: text towers differ in the ids they take (DistilBERT has no token types).
        extra = {
            name: value
            for name, value in (("token_type_ids", token_type_ids), ("position_ids", position_ids))
            if value is not None
        }
        text_out = self.text_model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **extra,
        )
        embeds = F.normalize(self._embed_text(text_out, input_ids, attention_mask), dim=-1)
        return BaseModelOutputWithPooling(
            last_hidden_state=text_out.last_hidden_state,
            pooler_output=embeds,
            hidden_states=getattr(text_out, "hidden_states", None),
            attentions=getattr(text_out, "attentions", None),
        )

    # ---------------------------------------------------------------- forward
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        audio_attention_mask: torch.Tensor | None = None,
        return_loss: bool | None = False,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SpatialClapOutput | tuple:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(text_batch, tokens)`): caption token ids.
            attention_mask (`torch.Tensor` of shape `(text_batch, tokens)`, *optional*): text mask.
            input_values (`torch.FloatTensor` of shape `(audio_batch, channels, samples)`): waveforms at
                ``config.sample_rate`` Hz.
            audio_attention_mask (`torch.Tensor` of shape `(audio_batch, samples)`, *optional*): sample mask
                (the processor's ``audio_attention_mask``).
            return_loss (`bool`, *optional*): also return the symmetric InfoNCE loss (needs equal batches,
                caption i matching clip i).
            token_type_ids, position_ids (`torch.LongTensor` of shape `(text_batch, tokens)`, *optional*):
                passed to the text tower when given.
            output_hidden_states (`bool`, *optional*): also return every tower's hidden states, in
                ``audio_model_output`` and ``text_model_output`` (defaults to ``config.output_hidden_states``).
            output_attentions (`bool`, *optional*): also return the attention weights of HTS-AT and the text
                tower (defaults to ``config.output_attentions``).
            return_dict (`bool`, *optional*, keyword only): a [`SpatialClapOutput`] (default:
                ``config.return_dict``) or a tuple of its non-None fields, nested outputs as tuples.
        """
        if input_ids is None or input_values is None:
            raise ValueError(
                "SpatialClapModel.forward needs both input_ids and input_values; use get_text_features or "
                "get_audio_features for one modality."
            )
        flags = {"output_hidden_states": output_hidden_states, "output_attentions": output_attentions}
        audio_out = self.get_audio_features(
            input_values, attention_mask=audio_attention_mask, return_dict=True, **flags
        )
        text_out = self.get_text_features(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            return_dict=True,
            **flags,
        )
        audio_embeds = audio_out.pooler_output
        # The towers may sit on different devices (device_map); the logits live on the audio embeddings'.
        text_embeds = text_out.pooler_output.to(audio_embeds.device)
        scale = self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE).to(audio_embeds.device)
        logits_per_audio = scale * audio_embeds @ text_embeds.t()
        loss = contrastive_loss(logits_per_audio) if return_loss else None
        return SpatialClapOutput(
            loss=loss,
            logits_per_audio=logits_per_audio,
            logits_per_text=logits_per_audio.t(),
            audio_embeds=audio_embeds,
            text_embeds=text_embeds,
            text_model_output=text_out,
            audio_model_output=audio_out,
        )

    # ------------------------------------------------------- building from parts
    @classmethod
    def from_pretrained_parts(
        cls,
        source_model_name_or_path: str | os.PathLike,
        text_model_name_or_path: str | os.PathLike,
        spatial_model_name_or_path: str | os.PathLike | None = None,
        **config_overrides,
    ) -> "SpatialClapModel":
        """Build a model from pretrained towers; the fusion and projection layers start fresh.

        Args:
            source_model_name_or_path: an HF-format CLAP checkpoint (``ClapModel``: its ``audio_model``
                weights and ``audio_config`` are taken) or a ``ClapAudioModel`` checkpoint.
            text_model_name_or_path: any text checkpoint loadable with ``AutoModel``.
            spatial_model_name_or_path: a saved ``SeldNetModel`` or ``SeldNetForSoundEventLocalization``
                (encoder weights copied, heads skipped); ``None`` builds the mono model
                (``spatial_encoder="none"``).
            **config_overrides: further ``SpatialClapConfig`` fields (e.g. ``projection_dim``,
                ``spatial_encoder="doa"``, ``scl``); tower configs come from the checkpoints.
        """
        for key in ("source_config", "text_config", "spatial_config"):
            if key in config_overrides:
                raise ValueError(f"{key} comes from the pretrained checkpoint; do not pass it to from_pretrained_parts.")
        source = _load_clap_audio(source_model_name_or_path)
        text = AutoModel.from_pretrained(text_model_name_or_path)
        spatial = None
        if spatial_model_name_or_path:
            with_heads = config_overrides.get("spatial_readout_bins", 0) > 0
            spatial = load_stage1_spatial(spatial_model_name_or_path, with_heads=with_heads)
        if spatial is None:
            config_overrides.setdefault("spatial_encoder", "none")
        elif config_overrides.get("spatial_encoder", "seld") == "none":
            raise ValueError("spatial_encoder='none' contradicts the given spatial_model_name_or_path.")
        if spatial is not None:
            config_overrides.setdefault("sample_rate", spatial.config.sample_rate)
        config = SpatialClapConfig(
            source_config=source.config.to_dict(),
            text_config=text.config.to_dict(),
            spatial_config=spatial.config.to_dict() if spatial is not None else None,
            **config_overrides,
        )
        model = cls(config)
        model.source_model.load_state_dict(source.state_dict())
        text_state = text.state_dict()
        if getattr(model.text_model, "pooler", None) is None:
            text_state = {k: v for k, v in text_state.items() if not k.startswith("pooler.")}
        model.text_model.load_state_dict(text_state)
        if spatial is not None:
            model.load_spatial_encoder(spatial)
        return model


def _keep_eager_only_towers_eager(config: SpatialClapConfig) -> None:
    """Set HTS-AT's and the SELDnet's sub-configs to eager attention before their towers are built.

    ``attn_implementation`` given to ``from_pretrained`` reaches every sub-config; these two towers
    have no other implementation (see ``EAGER_ONLY_SUB_CONFIGS``), so it applies to the text tower.
    """
    for key in EAGER_ONLY_SUB_CONFIGS:
        sub_config = getattr(config, key)
        if sub_config is not None:
            _note_eager_only(key, sub_config._attn_implementation)
            sub_config._attn_implementation_internal = "eager"


def _note_eager_only(key: str, requested: str | None) -> None:
    """Log, once, that a requested attention implementation does not reach the tower of sub-config ``key``."""
    note = EAGER_ONLY_SUB_CONFIGS[key]
    if note is not None and requested not in (None, "eager"):
        logger.warning_once(f"attn_implementation={requested!r} applies to the text tower; {note}.")


def load_stage1_spatial(
    name_or_path: str | os.PathLike, with_heads: bool = False
) -> SeldNetModel | SeldNetForSoundEventLocalization:
    """A stage-1 spatial encoder checkpoint: the bare ``SeldNetModel``, or with ``with_heads`` the
    ``SeldNetForSoundEventLocalization`` with its trained SED/DoA heads (an error if it has none)."""
    if not with_heads:
        return SeldNetModel.from_pretrained(name_or_path)
    model, info = SeldNetForSoundEventLocalization.from_pretrained(name_or_path, output_loading_info=True)
    missing = [k for k in info["missing_keys"] if k.startswith(("sed_head.", "doa_head."))]
    if missing:
        raise ValueError(
            f"{name_or_path} has no trained SED/DoA heads (missing {missing[:2]}...), which spatial_readout_bins > 0 "
            "reads; use the output of stage-1 pretraining or set spatial_readout_bins=0."
        )
    return model


def _load_clap_audio(name_or_path: str | os.PathLike) -> ClapAudioModel:
    """Load the HTS-AT tower from a ``ClapModel`` or ``ClapAudioModel`` checkpoint."""
    config = AutoConfig.from_pretrained(name_or_path)
    if isinstance(config, ClapConfig):
        return ClapModel.from_pretrained(name_or_path).audio_model
    if isinstance(config, ClapAudioConfig):
        return ClapAudioModel.from_pretrained(name_or_path)
    raise ValueError(
        f"{name_or_path} holds a {type(config).__name__}, not a CLAP checkpoint; pass a ClapModel or ClapAudioModel "
        "checkpoint (e.g. laion/larger_clap_music_and_speech)."
    )


__all__ = [
    "SpatialClapAudioOutput",
    "SpatialClapModel",
    "SpatialClapOutput",
    "SpatialClapPreTrainedModel",
    "contrastive_loss",
    "load_stage1_spatial",
]
