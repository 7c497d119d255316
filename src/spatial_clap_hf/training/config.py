"""Typed training configuration, loaded from the YAML presets in ``recipes/``.

One ``TrainConfig`` describes either stage:
- ``stage: spatial`` — pretraining ``SeldNetForSoundEventLocalization`` (objective ``seld`` or ``doa``);
- ``stage: contrastive`` — training ``SpatialClapModel`` (spatial encoder none/doa/seld, SCL on/off).

Unknown keys are errors (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..models.spatial_clap.configuration_spatial_clap import SPATIAL_ENCODERS

__all__ = [
    "BatchConfig",
    "DataConfig",
    "MIXED_PRECISION",
    "ModelConfig",
    "OptimConfig",
    "SPATIAL_OBJECTIVES",
    "STAGES",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "merge_values",
]

#: Training stages: spatial-encoder pretraining (stage 1) and contrastive training (stage 2).
STAGES = ("spatial", "contrastive")
#: Objectives of the spatial-encoder pretraining.
SPATIAL_OBJECTIVES = ("seld", "doa")


@dataclass
class DataConfig:
    """Where the mono source clips and the room impulse responses come from.

    ``corpus``: a saved source corpus (``save_to_disk`` DatasetDict with the
    SOURCE_FEATURES schema, e.g. the AudioCaps builder output); ``None`` builds the
    embedded synthetic corpus under ``<output_dir>/corpus`` with the ``synthetic_*`` sizes.
    ``rirs``: an RIR-bank directory; built (train and val rooms only) when missing, with the
    first ``rir_max_rooms`` rooms of each split (None: all), or per split given a mapping
    (e.g. ``{train: 24, val: 6}``).
    ``spatialized``: instead of both, a pre-spatialized dataset (``spatial-clap spatialize``
    output folder or its Hub id) whose ``train`` split holds the scenes, read as rendered.
    """

    corpus: str | None = None
    spatialized: str | None = None
    synthetic_n_train: int = 1024
    synthetic_n_validation: int = 128
    synthetic_n_test: int = 128
    rirs: str | None = None
    rir_max_rooms: int | dict[str, int] | None = None
    rir_azimuth_step_deg: float = 1.0
    rir_num_workers: int = 2
    clip_seconds: float = 10.0
    sample_rate: int = 16000
    num_workers: int = 0


@dataclass
class BatchConfig:
    """Batch composition from mono clips (the paper: 16 single + 8 two-source from 32 clips).

    With ``scl`` every two-source mixture also appears with its sources' directions
    swapped (all n! assignments), as its own sample with its own caption; ``n_mix3``
    three-source mixtures (stage 2 only) give six assignments each. ``direction_twins``
    of the single-source clips also appear a second time, at a direction of another DoA class
    in the same room (stage 2 only): in a batch of mostly different sounds, these are the
    pairs that only direction tells apart.
    """

    n_single: int = 16
    n_mix2: int = 8
    n_mix3: int = 0
    scl: bool = False
    direction_twins: int = 0

    @property
    def mono_clips(self) -> int:
        """Mono clips drawn per process and step."""
        return self.n_single + 2 * self.n_mix2 + 3 * self.n_mix3

    @property
    def mixture_sizes(self) -> list[int]:
        """Sources of each mixture of a batch, in order (after the single-source scenes)."""
        return [2] * self.n_mix2 + [3] * self.n_mix3


@dataclass
class ModelConfig:
    """How the model is built.

    Either a ``preset`` from ``spatial_clap_hf.list_presets()`` (random weights, optional
    ``overrides``), or pretrained parts: ``source_model`` (an HF-format CLAP checkpoint),
    ``text_model`` (any text checkpoint) and, for stage 2, ``spatial_model`` (a stage-1
    output directory; ``None`` gives the mono baseline).

    ``init_from``: a saved ``SpatialClapModel`` directory (e.g. a trained mono baseline)
    whose source tower, text tower, text projection, logit scale and tokenizer start this
    model; the fusion MLP starts fresh (its input size depends on the spatial encoder).
    """

    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    source_model: str | None = None
    text_model: str | None = None
    tokenizer: str | None = None
    spatial_model: str | None = None
    spatial_encoder: str = "seld"
    init_from: str | None = None
    freeze_source: bool = False
    freeze_text: bool = False
    freeze_spatial: bool = False
    #: Recompute activations in the backward pass (every tower): less memory, more compute.
    gradient_checkpointing: bool = False


#: Mixed-precision modes (accelerate's).
MIXED_PRECISION = ("no", "bf16", "fp16")


@dataclass
class OptimConfig:
    """The optimizer and its schedule.

    ``mixed_precision``: ``None`` takes the launch configuration's (``accelerate launch
    --mixed_precision`` or its config file; "no" without one); a value set here wins over it.
    The precision a run actually used is recorded in its ``training_config.json``.

    ``accum_steps``: micro-batches per optimizer step. Stage 2 computes the contrastive loss over
    the embeddings of all ``accum_steps`` micro-batches (cached features: each micro-batch is
    embedded without gradients, the loss's gradients with respect to the embeddings are cached,
    then each micro-batch is embedded again with gradients), so the contrastive batch is
    ``accum_steps`` times larger at the memory of one micro-batch; a mixture and its SCL
    permutations stay in one micro-batch. Stage 1's losses are per sample: its micro-batch losses
    are averaged. BatchNorm statistics (the SELDnet's, when it trains) are per micro-batch.
    """

    lr: float = 1e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    #: ``None``: no epoch bound (``max_steps`` decides).
    epochs: int | None = 50
    max_steps: int | None = None
    grad_clip: float | None = 1.0
    mixed_precision: str | None = None
    accum_steps: int = 1


@dataclass
class TrainConfig:
    stage: str = "contrastive"
    objective: str = "seld"
    # Stage 1 with the SELD objective: None (the paper) gives every source's class as active in
    # all frames of the clip; a level in dB (e.g. -30.0) makes frame-level targets — a class is
    # active (and its DoA counted) in the frames where its dry source is within that many dB of
    # the source's loudest frame, so the per-class DoA is learnt where the source is heard.
    seld_frame_activity_db: float | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    output_dir: str = "runs/train"
    seed: int = 0
    save_every: int = 500
    #: Newest checkpoints kept under ``<output_dir>/checkpoints`` (older ones are deleted).
    keep_checkpoints: int = 2
    log_every: int = 10
    log_with: list[str] = field(default_factory=lambda: ["tensorboard"])
    push_to_hub: str | None = None

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("stage", self.stage, STAGES),
            ("objective", self.objective, SPATIAL_OBJECTIVES),
            ("model.spatial_encoder", self.model.spatial_encoder, SPATIAL_ENCODERS),
        ):
            if value not in allowed:
                raise ValueError(f"{key} must be one of {allowed}, got {value!r}.")
        if self.optim.mixed_precision is not None and self.optim.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"optim.mixed_precision must be null or one of {MIXED_PRECISION}, got {self.optim.mixed_precision!r}.")
        if isinstance(self.optim.accum_steps, bool) or not isinstance(self.optim.accum_steps, int) or self.optim.accum_steps < 1:
            raise ValueError(f"optim.accum_steps must be a whole number >= 1, got {self.optim.accum_steps!r}.")
        if self.keep_checkpoints < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {self.keep_checkpoints!r}.")
        if self.optim.epochs is None and self.optim.max_steps is None:
            raise ValueError("optim.epochs is null (no epoch bound): set optim.max_steps to end the training.")
        if self.data.spatialized:
            spatialized_excludes = {
                "data.corpus": self.data.corpus,
                "data.rirs": self.data.rirs,
                "batch.direction_twins": self.batch.direction_twins,
                "seld_frame_activity_db": self.seld_frame_activity_db if self.stage == "spatial" else None,
            }
            clash = {k: v for k, v in spatialized_excludes.items() if v}
            if clash:
                raise ValueError(
                    f"data.spatialized (scenes already rendered) cannot be combined with {clash}: the corpus, the RIR "
                    "bank, direction twins and frame-level targets belong to on-the-fly spatialization. Unset them."
                )
        stage2_only = {"batch.n_mix3": self.batch.n_mix3, "batch.direction_twins": self.batch.direction_twins}
        if self.stage == "spatial" and any(stage2_only.values()):
            raise ValueError(
                f"{stage2_only} apply to stage 2 only; stage 1 forms its own scenes from batch.mono_clips. "
                "Set them to 0 for the spatial pretraining."
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"Unknown key(s) {unknown} in {where}; valid keys: {sorted(known)}.")
    kwargs = {}
    for name, value in values.items():
        sub = {"model": ModelConfig, "data": DataConfig, "batch": BatchConfig, "optim": OptimConfig}.get(name)
        if cls is TrainConfig and sub is not None:
            if not isinstance(value, Mapping):
                raise ValueError(f"'{name}' in {where} must be a mapping, got {type(value).__name__}.")
            value = _build(sub, value, f"{where}.{name}")
        kwargs[name] = value
    return cls(**kwargs)


def merge_values(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` applied: nested mappings merge key by key, other values replace."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = value
    return merged


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def config_from_dict(
    values: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, where: str = "config"
) -> TrainConfig:
    """A ``TrainConfig`` from nested ``values`` (the YAML layout) and dotted ``overrides``."""
    tree = copy.deepcopy(dict(values))
    for dotted, value in (overrides or {}).items():
        _set_dotted(tree, dotted, value)
    return _build(TrainConfig, tree, where)


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Read a YAML recipe and apply dotted ``overrides`` (``{"optim.max_steps": 10}``)."""
    values: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        values = yaml.safe_load(text) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a YAML mapping at the top level.")
    return config_from_dict(values, overrides, where=str(path or "config"))
