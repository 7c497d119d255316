"""What each training stage builds and optimises.

A task owns its model, turns a batch of mono clips into spatialized samples on the
training device (``spatial.Spatializer``) and returns the loss:
- ``SpatialPretrainingTask`` (stage 1): ``SeldNetForSoundEventLocalization`` with the
  ``seld`` objective (half single-source, half two-source samples; SED BCE + masked DoA
  MSE) or the ``doa`` objective (single-source; one folded angle, MSE);
- ``ContrastiveTask`` (stage 2): ``SpatialClapModel`` with symmetric InfoNCE over the
  global batch, optionally with spatial contrastive learning (every assignment of a
  mixture's directions as its own sample).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from ..hub import hub_ids, write_model_card
from ..models.presets import get_config
from ..models.spatial_clap.configuration_seldnet import SeldNetConfig
from ..models.spatial_clap.feature_extraction_spatial_clap import (
    SpatialClapFeatureExtractor,
)
from ..models.spatial_clap.modeling_seldnet import SeldNetForSoundEventLocalization
from ..models.spatial_clap.modeling_spatial_clap import (
    SpatialClapModel,
    load_stage1_spatial,
)
from ..models.spatial_clap.processing_spatial_clap import SpatialClapProcessor
from ..models.tokenization import train_caption_tokenizer
from ..spatial import SpatialBatch, Spatializer, neutral_prompts, source_activity
from ..spatial.conventions import DEFAULT_PHRASES
from .accumulation import cached_contrastive_backward
from .clips import ClipBatch
from .config import TrainConfig
from .losses import ContrastiveLoss

__all__ = ["ContrastiveTask", "SpatialPretrainingTask", "build_task"]

logger = logging.getLogger(__name__)


@dataclass
class Scenes:
    """Rendered scenes of one step: ``batch`` (waveforms, captions, directions), the class indices
    of each source clip, and the dry clips (N, T) where they exist (on-the-fly spatialization)."""

    batch: SpatialBatch
    clip_labels: Sequence[Sequence[int]]
    clips: torch.Tensor | None = None


def _maybe_checkpoint(model: nn.Module, config: TrainConfig) -> None:
    """Gradient checkpointing of every tower when ``model.gradient_checkpointing`` asks for it."""
    if not config.model.gradient_checkpointing:
        return
    if hasattr(model, "activation_checkpointing_enable"):  # transformers' name from 5.2x on
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        logger.info("Gradient checkpointing on: activations are recomputed in the backward pass.")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


class SpatialPretrainingTask:
    """Stage 1: SELDnet pretraining on spatialized mono clips.

    Batches of M mono clips become M/2 single-source and M/4 two-source samples
    (``seld``; the paper's 48 from 64) or M single-source samples (``doa``).
    """

    def __init__(self, config: TrainConfig, class_names: Sequence[str]) -> None:
        self.config = config
        self.objective = config.objective
        self.class_names = list(class_names)
        self.model = self._build_model()
        _maybe_checkpoint(self.model, config)
        self.frozen: list[nn.Module] = []

    def _build_model(self) -> SeldNetForSoundEventLocalization:
        mc = self.config.model
        if mc.spatial_model:
            return SeldNetForSoundEventLocalization.from_pretrained(mc.spatial_model)
        if not mc.preset:
            raise ValueError("Stage 1 needs model.preset (random init) or model.spatial_model (a checkpoint).")
        spatial = get_config(mc.preset, **mc.overrides).spatial_config
        if spatial is None:
            raise ValueError(f"Preset {mc.preset!r} has no spatial encoder to pretrain.")
        values = spatial.to_dict()
        values.update(
            num_classes=len(self.class_names),
            doa_mode="per_class" if self.objective == "seld" else "single",
            id2label=dict(enumerate(self.class_names)),
            label2id={name: i for i, name in enumerate(self.class_names)},
        )
        for key in ("model_type", "transformers_version", "architectures"):
            values.pop(key, None)
        return SeldNetForSoundEventLocalization(SeldNetConfig(**values))

    def num_single(self, num_clips: int) -> int:
        """Single-source samples among ``num_clips`` clips; the rest form two-source mixtures."""
        if self.objective == "doa":
            return num_clips
        return num_clips - 2 * (num_clips // 4)

    def scene_counts(self, mono_clips: int) -> dict[int, int]:
        """Scenes per step by number of sources, for a batch of ``mono_clips`` clips (pre-spatialized data)."""
        single = self.num_single(mono_clips)
        return {1: single, 2: (mono_clips - single) // 2}

    def render(self, batch: ClipBatch, spatializer: Spatializer, epoch: int) -> Scenes:
        """Spatialize a batch of mono clips into this stage's scenes."""
        num_single = self.num_single(len(batch.indices))
        scene_batch = spatializer(
            batch.clips, batch.indices, batch.captions, epoch=epoch, num_single=num_single, num_sources=2
        )
        return Scenes(scene_batch, batch.labels, batch.clips)

    def scene_loss(self, model: nn.Module, scenes: Scenes) -> tuple[torch.Tensor, dict]:
        """The loss of rendered scenes (frame-level targets need their dry clips, ``seld_frame_activity_db``)."""
        scene_batch, clip_labels = scenes.batch, scenes.clip_labels
        if self.objective == "doa":
            out = model(input_values=scene_batch.waveforms, doa_labels=scene_batch.doa_targets())
            return out.loss, {"doa_loss": out.loss.detach()}
        if self.config.seld_frame_activity_db is None:
            activity, doa = scene_batch.seld_targets(clip_labels, len(self.class_names))
        else:
            if scenes.clips is None:
                raise ValueError("seld_frame_activity_db needs the dry source clips; pre-spatialized data has none.")
            spatial = _unwrap(model).config
            clip_activity = source_activity(
                scenes.clips,
                n_fft=spatial.n_fft,
                hop_length=spatial.hop_length,
                threshold_db=self.config.seld_frame_activity_db,
            )
            activity, doa = scene_batch.seld_frame_targets(clip_labels, len(self.class_names), clip_activity)
        out = model(input_values=scene_batch.waveforms, sed_labels=activity, doa_labels=doa)
        return out.loss, {"sed_loss": out.sed_loss.detach(), "doa_loss": out.doa_loss.detach()}

    def accumulated_backward(self, model: nn.Module, micro_batches: Sequence[Scenes], accelerator: Any) -> tuple[torch.Tensor, dict]:
        """The mean of the per-sample losses of ``micro_batches``, back-propagated one micro-batch at a time."""
        total, logs = 0.0, {}
        for scenes in micro_batches:
            with accelerator.autocast():
                loss, logs = self.scene_loss(model, scenes)
            accelerator.backward(loss / len(micro_batches))
            total = total + loss.detach()
        return total / len(micro_batches), logs

    def save(
        self,
        model: nn.Module,
        directory: Path,
        *,
        state_dict: dict | None = None,
        is_main_process: bool = True,
        steps: int | None = None,
    ) -> None:
        """Write the pretrained SELDnet (config + safetensors) to ``directory`` (``steps`` unused: no
        contrastive steps here)."""
        _unwrap(model).save_pretrained(directory, state_dict=state_dict, is_main_process=is_main_process)


class ContrastiveTask:
    """Stage 2: Spatial CLAP contrastive training (optionally with SCL)."""

    def __init__(
        self,
        config: TrainConfig,
        class_names: Sequence[str],
        train_captions: Sequence[str],
        model: SpatialClapModel | None = None,
    ) -> None:
        """``model`` replaces the one ``config.model`` describes (e.g. random weights for benchmarks)."""
        self.config = config
        self.batch = config.batch
        self.model = model if model is not None else self._build_model()
        _maybe_checkpoint(self.model, config)
        self.donor_steps: int | None = 0  # contrastive steps behind the towers training starts from
        if model is None and config.model.init_from:
            self._init_towers_from(config.model.init_from)
        self.tokenizer = self._build_tokenizer(train_captions)
        self._set_sentence_separator()
        self.loss_fn = ContrastiveLoss()
        self.frozen = self._freeze()

    def _build_model(self) -> SpatialClapModel:
        mc = self.config.model
        spatial_encoder = mc.spatial_encoder if mc.spatial_model else "none"
        if mc.spatial_encoder != "none" and not mc.spatial_model:
            raise ValueError(
                f"spatial_encoder={mc.spatial_encoder!r} needs model.spatial_model (a stage-1 output directory); "
                "set spatial_encoder: none for the mono baseline."
            )
        meta = {"spatial_encoder": spatial_encoder, "scl": bool(self.batch.scl)}
        if mc.source_model or mc.text_model:
            if not (mc.source_model and mc.text_model):
                raise ValueError("Pretrained parts need both model.source_model and model.text_model.")
            return SpatialClapModel.from_pretrained_parts(
                mc.source_model, mc.text_model, mc.spatial_model, **meta, **mc.overrides
            )
        if not mc.preset:
            raise ValueError("Stage 2 needs model.preset or model.source_model + model.text_model.")
        overrides = dict(mc.overrides, **meta)
        if mc.spatial_model:
            overrides["spatial_config"] = SeldNetConfig.from_pretrained(mc.spatial_model).to_dict()
            model = SpatialClapModel(get_config(mc.preset, **overrides))
            with_heads = model.config.spatial_readout_bins > 0
            model.load_spatial_encoder(load_stage1_spatial(mc.spatial_model, with_heads=with_heads))
            return model
        overrides["spatial_config"] = None
        return SpatialClapModel(get_config(mc.preset, **overrides))

    def _init_towers_from(self, directory: str) -> None:
        """Start the source and text towers (and logit scale) from a saved model, and its fusion too
        where the two fuse the same features (a mono model continuing a mono model): training then
        continues the donor rather than restarting its audio projection. Records where the model
        started and how many contrastive steps it brings (``config.started_from``)."""
        donor = SpatialClapModel.from_pretrained(directory)
        names = ["source_model", "text_model", "text_projection"]
        if _same_shapes(self.model.fusion, donor.fusion):
            names.append("fusion")
        for name in names:
            getattr(self.model, name).load_state_dict(getattr(donor, name).state_dict())
        with torch.no_grad():
            self.model.logit_scale.copy_(donor.logit_scale)
        self.model.config.started_from = str(directory)
        self.donor_steps = donor.config.contrastive_steps
        logger.info("%s start from %s.", ", ".join(names), directory)

    def _build_tokenizer(self, train_captions: Sequence[str]) -> PreTrainedTokenizerBase:
        mc = self.config.model
        name = mc.tokenizer or mc.text_model or mc.init_from
        if name:
            return AutoTokenizer.from_pretrained(name)
        # Random-init text tower: a small tokenizer learnt from the corpus captions and phrases.
        texts = list(train_captions) + list(DEFAULT_PHRASES.phrases) + neutral_prompts()
        vocab = self.model.config.text_config.vocab_size
        max_len = self.model.config.text_config.max_position_embeddings - 2
        return train_caption_tokenizer(texts, vocab_size=vocab, model_max_length=max_len)

    def _set_sentence_separator(self) -> None:
        """``text_pooling="sentence"`` ends sentences at the tokenizer's ``"."`` token."""
        config = self.model.config
        if config.text_pooling != "sentence" or config.text_sentence_separator_id is not None:
            return
        ids = self.tokenizer(".", add_special_tokens=False)["input_ids"]
        if len(ids) != 1 or ids[0] == self.tokenizer.unk_token_id:
            raise ValueError(
                f"text_pooling='sentence' needs '.' to be one token, but this tokenizer gives {ids}; "
                "set model.overrides.text_sentence_separator_id to the id of its sentence-ending token."
            )
        config.text_sentence_separator_id = ids[0]

    def _freeze(self) -> list[nn.Module]:
        mc = self.config.model
        towers = {
            "source": (mc.freeze_source, [self.model.source_model]),
            "text": (mc.freeze_text, [self.model.text_model]),
            "spatial": (mc.freeze_spatial, [self.model.spatial_model, self.model.spatial_readout]),
        }
        frozen = []
        for name, (flag, modules) in towers.items():
            modules = [m for m in modules if m is not None]
            if flag and modules:
                for module in modules:
                    module.requires_grad_(False)
                frozen += modules
                logger.info("Freezing the %s tower.", name)
        return frozen

    def scene_counts(self, mono_clips: int) -> dict[int, int]:
        """Scenes per step by number of sources (pre-spatialized data): the batch's single-source scenes and mixtures."""
        return {1: self.batch.n_single, 2: self.batch.n_mix2, 3: self.batch.n_mix3}

    def render(self, batch: ClipBatch, spatializer: Spatializer, epoch: int) -> Scenes:
        """Spatialize a batch of mono clips into this stage's scenes (SCL permutations, direction twins)."""
        scene_batch = spatializer(
            batch.clips,
            batch.indices,
            batch.captions,
            epoch=epoch,
            num_single=self.batch.n_single,
            num_sources=self.batch.mixture_sizes,
            scl=self.batch.scl,
            num_twins=self.batch.direction_twins,
        )
        return Scenes(scene_batch, batch.labels, batch.clips)

    def model_inputs(self, scenes: Scenes) -> dict[str, torch.Tensor]:
        """The scenes' waveforms and their tokenized spatial captions: the model's inputs."""
        scene_batch = scenes.batch
        tokens = self.tokenizer(scene_batch.captions, padding=True, truncation=True, return_tensors="pt")
        device = scene_batch.waveforms.device
        return {
            "input_ids": tokens["input_ids"].to(device),
            "attention_mask": tokens["attention_mask"].to(device),
            "input_values": scene_batch.waveforms,
        }

    def scene_loss(self, model: nn.Module, scenes: Scenes) -> tuple[torch.Tensor, dict]:
        """The symmetric InfoNCE of rendered scenes and their spatial captions."""
        out = model(**self.model_inputs(scenes))
        loss = self.loss_fn(out.audio_embeds, out.text_embeds, _unwrap(model).logit_scale)
        return loss, {"logit_scale": _unwrap(model).logit_scale.detach().exp()}

    def accumulated_backward(self, model: nn.Module, micro_batches: Sequence[Scenes], accelerator: Any) -> tuple[torch.Tensor, dict]:
        """One contrastive loss over all ``micro_batches`` (cached embedding gradients), back-propagated."""
        with accelerator.autocast():
            inputs = [self.model_inputs(scenes) for scenes in micro_batches]
        logit_scale = _unwrap(model).logit_scale
        loss = cached_contrastive_backward(
            model, inputs, self.loss_fn, logit_scale, backward=accelerator.backward, autocast=accelerator.autocast
        )
        return loss, {"logit_scale": logit_scale.detach().exp()}

    def processor(self) -> SpatialClapProcessor:
        cfg = self.model.config
        channels = cfg.spatial_config.num_channels if cfg.spatial_config is not None else 2
        extractor = SpatialClapFeatureExtractor(
            num_channels=channels, sampling_rate=cfg.sample_rate, max_length_s=cfg.max_length_s
        )
        return SpatialClapProcessor(feature_extractor=extractor, tokenizer=self.tokenizer)

    def save(
        self,
        model: nn.Module,
        directory: Path,
        *,
        state_dict: dict | None = None,
        is_main_process: bool = True,
        steps: int | None = None,
    ) -> None:
        """Write an AutoModel/AutoProcessor-loadable directory: model, processor, model card.

        ``steps``, the optimizer steps of this training, go into ``config.contrastive_steps`` with
        those of the model it started from. Call on every process with the full ``state_dict``
        (``accelerator.get_state_dict``, which gathers sharded weights); only the main process writes."""
        model = _unwrap(model)
        if steps is not None:
            model.config.contrastive_steps = None if self.donor_steps is None else self.donor_steps + steps
        model.save_pretrained(directory, state_dict=state_dict, is_main_process=is_main_process)
        if not is_main_process:
            return
        self.processor().save_pretrained(directory)
        write_model_card(
            directory,
            model.config,
            repo_id=self.config.push_to_hub or "path/to/this/model",
            training_description=describe_training(self.config),
            **card_sources(self.config),
        )


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    """Whether two modules hold parameters and buffers of the same names and shapes."""
    shapes = lambda m: {k: tuple(v.shape) for k, v in m.state_dict().items()}  # noqa: E731
    return shapes(a) == shapes(b)


def card_sources(config: TrainConfig) -> dict[str, list[str]]:
    """Model-card metadata on what a stage-2 model was built from: ``base_model`` (the pretrained towers or
    the initial model) and ``datasets`` (the corpus and the RIR bank, or the pre-spatialized dataset), each
    as the Hub ids among them (local directories are named in the card's training paragraph instead)."""
    mc, dc = config.model, config.data
    towers = [] if mc.preset else [mc.source_model, mc.text_model]
    return {"base_model": hub_ids([*towers, mc.init_from]), "datasets": hub_ids([dc.corpus, dc.rirs, dc.spatialized])}


def describe_training(config: TrainConfig) -> str:
    """One paragraph on how a stage-2 model was trained, for its model card."""
    mc, dc, bc, oc = config.model, config.data, config.batch, config.optim
    towers = mc.preset and f"preset `{mc.preset}`" or f"HTS-AT from `{mc.source_model}`, text tower from `{mc.text_model}`"
    corpus = f"`{dc.corpus}`" if dc.corpus else "the embedded synthetic corpus"
    clips = f"{dc.sample_rate} Hz, {dc.clip_seconds} s clips"
    data = f"{corpus}, spatialized with simulated shoebox-room impulse responses ({clips})"
    if dc.spatialized:  # scenes read as rendered: no corpus or RIR bank of this run
        data = (f"the pre-spatialized dataset `{dc.spatialized}` (scenes rendered once with simulated shoebox-room "
                f"impulse responses; {clips})")
    scenes = f"{bc.n_single} single-source and {bc.n_mix2} two-source"
    if bc.n_mix3:
        scenes = f"{bc.n_single} single-source, {bc.n_mix2} two-source and {bc.n_mix3} three-source"
    return (
        f"Contrastive training ({towers}; spatial encoder `{mc.spatial_encoder if mc.spatial_model else 'none'}`"
        f"{f' from `{mc.spatial_model}`' if mc.spatial_model else ''}) on {data}. "
        f"Batches of {scenes} scenes per process"
        f"{', each mixture also with its directions swapped (spatial contrastive learning)' if bc.scl else ''}; "
        f"AdamW, learning rate {oc.lr}, {oc.warmup_steps} warm-up steps then cosine decay, "
        f"{_length(oc)}, seed {config.seed}."
    )


def _length(oc: Any) -> str:
    """How long a training runs, in words (``optim.epochs`` None: ``max_steps`` alone)."""
    if oc.epochs is None:
        return f"{oc.max_steps} steps"
    return f"{oc.epochs} epochs{f' (at most {oc.max_steps} steps)' if oc.max_steps else ''}"


def build_task(config: TrainConfig, class_names: Sequence[str], train_captions: Sequence[str]) -> Any:
    """The task for ``config.stage``."""
    if config.stage == "spatial":
        return SpatialPretrainingTask(config, class_names)
    if config.stage == "contrastive":
        return ContrastiveTask(config, class_names, train_captions)
    raise ValueError(f"stage must be 'spatial' or 'contrastive', got {config.stage!r}.")
