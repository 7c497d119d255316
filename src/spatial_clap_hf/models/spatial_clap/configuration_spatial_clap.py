"""Configuration of the Spatial CLAP model (HTS-AT source tower + SELDnet spatial tower + text tower).

This file is part of the self-contained model family: it imports only torch,
numpy, transformers and its sibling model files, so that checkpoints saved with
``save_pretrained`` can be loaded with ``trust_remote_code=True``.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import transformers

#: The oldest transformers release this model family works with (``SubConfigSpec`` first ships in 5.20);
#: pyproject.toml's floor, checked by running a checkpoint's code on it (tests/models/test_transformers_floor.py).
MIN_TRANSFORMERS_VERSION = "5.20.0"


def _release(version: str) -> tuple[int, ...]:
    """``"5.20.0.dev0"`` -> ``(5, 20, 0)``."""
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


if _release(transformers.__version__) < _release(MIN_TRANSFORMERS_VERSION):
    raise ImportError(
        f"Spatial CLAP's model code needs transformers>={MIN_TRANSFORMERS_VERSION}, but transformers "
        f"{transformers.__version__} is installed; upgrade it: "
        f"pip install -U 'transformers>={MIN_TRANSFORMERS_VERSION},<6'."
    )

from transformers import AutoConfig, ClapAudioConfig  # noqa: E402  (after the version check: clearer error)
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec  # noqa: E402

from .configuration_seldnet import SeldNetConfig  # noqa: E402

if TYPE_CHECKING:
    # Never imported at run time (the pipeline pulls in transformers.pipelines, seconds of imports). Named
    # here because save_pretrained copies a module's relative imports with it: every saved config then
    # ships pipeline_spatial_clap.py, the file its custom_pipelines entry points at.
    from .pipeline_spatial_clap import SpatialZeroShotAudioClassificationPipeline  # noqa: F401

SPATIAL_ENCODERS = ("seld", "doa", "none")
TEXT_POOLINGS = ("mean", "cls", "pooler", "sentence")

#: Task name of the zero-shot spatial pipeline (``pipeline_spatial_clap.py``).
PIPELINE_TASK = "zero-shot-spatial-audio-classification"


def default_custom_pipelines() -> dict:
    """The ``custom_pipelines`` entry of every Spatial CLAP config.json: transformers' ``pipeline(PIPELINE_TASK,
    model=..., trust_remote_code=True)`` finds the pipeline class in the checkpoint's own files through it."""
    return {
        PIPELINE_TASK: {
            "impl": "pipeline_spatial_clap.SpatialZeroShotAudioClassificationPipeline",
            "pt": ["AutoModel"],
            "type": "multimodal",
        }
    }


class SpatialClapConfig(PreTrainedConfig):
    r"""Configuration of [`SpatialClapModel`].

    The audio tower takes waveforms ``(batch, channels, samples)`` at ``sample_rate`` Hz. The
    source encoder (HTS-AT, a `ClapAudioModel`) sees their channel mean resampled to
    ``source_sample_rate`` Hz as CLAP log-mel features (``mel_n_fft``, ``mel_hop_length``,
    ``mel_fmin``..``mel_fmax`` Hz, ``source_config.num_mel_bins`` mels; the defaults are those of
    ``ClapFeatureExtractor``); the spatial encoder (SELDnet) sees the multichannel STFT.

    Args:
        source_config (`ClapAudioConfig` or `dict`, *optional*): HTS-AT audio encoder config.
        spatial_config (`SeldNetConfig` or `dict`, *optional*): spatial encoder config; must be
            ``None`` when ``spatial_encoder="none"`` and defaults to ``SeldNetConfig()`` otherwise.
        text_config (any text-model config or `dict` with ``model_type``, *optional*): text
            encoder config, built with ``AutoModel.from_config``; RoBERTa-base by default.
        spatial_encoder (`str`, defaults to `"seld"`): how the spatial encoder was pretrained:
            ``"seld"`` (SED + per-class DoA), ``"doa"`` (single-source DoA) or ``"none"`` (mono
            baseline without spatial encoder). ``"seld"`` and ``"doa"`` use the same network.
        text_pooling (`str`, defaults to `"mean"`): ``"mean"`` (mean of the last hidden states over
            the attention mask), ``"cls"`` (first token), ``"pooler"`` (the text model's pooler) or
            ``"sentence"``: each sentence of the caption (its tokens up to and including the
            separator ``text_sentence_separator_id``) is mean-pooled and projected on its own, and
            the caption's embedding is the normalised sum of its sentences' projections. A
            multi-source caption has one sentence per source, so each source's description is bound
            to its direction phrase before the sources are combined (with mean pooling, captions
            that differ only in who-is-where hold the same tokens and embed almost alike). For a
            one-sentence caption it equals ``"mean"``.
        text_sentence_separator_id (`int`, *optional*): token id that ends a sentence (the
            tokenizer's id of ``"."``); needed by ``text_pooling="sentence"`` (training sets it from
            the tokenizer).
        spatial_readout_bins (`int`, defaults to 0): 0 (the paper) feeds the fusion MLP z_sp only;
            ``n >= 2`` also feeds it the spatial encoder's pretraining heads read out as a class ×
            direction map with ``n`` direction bins (`SeldReadout`), standardised over its cells
            (zero mean, unit variance per clip): which sound is where, in a form the fusion can use
            directly. The heads come with the stage-1 checkpoint.
        spatial_readout_mean_doa (`bool`, defaults to `False`): with a readout, also feed the fusion
            each class's mean predicted DoA (frames weighted by the class's activity; in units of
            90°) and its square, so that the distance to a caption's direction is linear in the
            features (see `SeldReadout`).
        fusion_hidden_size (`int`, defaults to 512): hidden width of the fusion MLP.
        projection_dim (`int`, defaults to 512): width of the joint embedding space.
        logit_scale_init_value (`float`, defaults to 1/0.07): initial logit scale; the model stores
            its natural log as the learnable parameter.
        sample_rate (`int`, defaults to 16000): rate of the model's input waveforms in Hz.
        max_length_s (`float`, defaults to 10.0): clip length in seconds that the feature extractor
            pads / truncates to; must fit the source encoder's ``spec_size``.
        scl (`bool`, defaults to `False`): metadata: trained with spatial contrastive learning.
        contrastive_steps (`int`, *optional*): metadata: contrastive optimizer steps behind these weights,
            those of the model training started from included (``None``: not recorded).
        started_from (`str`, *optional*): metadata: the model (directory or Hub id) whose towers this
            model's training started from (``None``: the pretrained towers or a preset).
        source_sample_rate (`int`, defaults to 48000): rate of the source encoder's mel front-end in Hz.
        mel_n_fft (`int`, defaults to 1024), mel_hop_length (`int`, defaults to 480): STFT window
            and hop of the log-mel in samples at ``source_sample_rate``.
        mel_fmin (`float`, defaults to 50.0), mel_fmax (`float`, defaults to 14000.0): mel range in Hz.
        mel_float64 (`bool`, defaults to `True`): compute the log-mel STFT in float64, as
            ``ClapFeatureExtractor`` does. False computes it in float32: a few 1e-3 dB off in bands
            ~90 dB below the peak, and several times cheaper on CPU (``benchmarks/bench_frontends.py``)
            and on GPUs with slow float64; right for models trained from scratch.
        initializer_range (`float`, defaults to 0.02): std of the normal init of the fusion and
            projection layers.

    A saved config.json always carries ``custom_pipelines`` (``default_custom_pipelines()``, unless the
    config already holds one): transformers' record of the pipeline in the checkpoint's own code. It is
    written by ``to_dict`` rather than kept on every instance because transformers gives a config's
    ``custom_pipelines`` precedence over registered pipelines: an in-memory model, or one loaded from a
    checkpoint saved before configs named the pipeline, still reaches the pipeline that
    ``import spatial_clap_hf`` registers.
    """

    model_type = "spatial_clap"
    sub_configs_defaults = {
        # An explicit spec: transformers 5.20-5.22 require one for every entry (5.23 also takes a bare class).
        "source_config": SubConfigSpec(config_class=ClapAudioConfig),
        "spatial_config": SubConfigSpec(config_class=SeldNetConfig, optional=True),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="roberta"),
    }

    source_config: dict | PreTrainedConfig | None = None
    spatial_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    spatial_encoder: str = "seld"
    text_pooling: str = "mean"
    text_sentence_separator_id: int | None = None
    spatial_readout_bins: int = 0
    spatial_readout_mean_doa: bool = False
    fusion_hidden_size: int = 512
    projection_dim: int = 512
    logit_scale_init_value: float = 1 / 0.07
    sample_rate: int = 16000
    max_length_s: float = 10.0
    scl: bool = False
    contrastive_steps: int | None = None
    started_from: str | None = None
    source_sample_rate: int = 48000
    mel_n_fft: int = 1024
    mel_hop_length: int = 480
    mel_fmin: float = 50.0
    mel_fmax: float = 14000.0
    mel_float64: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.spatial_encoder not in SPATIAL_ENCODERS:
            raise ValueError(
                f"SpatialClapConfig.spatial_encoder={self.spatial_encoder!r} is not supported; use one of {SPATIAL_ENCODERS}."
            )
        if self.spatial_encoder == "none" and self.spatial_config is not None:
            raise ValueError(
                "SpatialClapConfig: spatial_encoder='none' builds no spatial encoder, but a spatial_config was given; "
                "drop spatial_config or choose spatial_encoder='seld' or 'doa'."
            )
        super().__post_init__(**kwargs)
        if self.spatial_encoder != "none" and self.spatial_config is None:
            self.spatial_config = SeldNetConfig(sample_rate=self.sample_rate)
        self._check()

    def _check(self) -> None:
        if self.text_pooling not in TEXT_POOLINGS:
            raise ValueError(
                f"SpatialClapConfig.text_pooling={self.text_pooling!r} is not supported; use one of {TEXT_POOLINGS}."
            )
        if self.spatial_readout_bins < 0 or self.spatial_readout_bins == 1:
            raise ValueError(
                f"SpatialClapConfig.spatial_readout_bins must be 0 (no readout) or >= 2, got {self.spatial_readout_bins}."
            )
        if self.spatial_readout_mean_doa and not self.spatial_readout_bins:
            raise ValueError(
                "SpatialClapConfig.spatial_readout_mean_doa=True extends the readout; set spatial_readout_bins >= 2 too "
                "(or spatial_readout_mean_doa=False)."
            )
        if self.spatial_config is not None and self.spatial_config.sample_rate != self.sample_rate:
            raise ValueError(
                f"SpatialClapConfig.sample_rate={self.sample_rate} Hz differs from spatial_config.sample_rate="
                f"{self.spatial_config.sample_rate} Hz; both towers read the same waveform, set them equal."
            )
        if self.max_length_s <= 0:
            raise ValueError(f"SpatialClapConfig.max_length_s must be > 0 seconds, got {self.max_length_s}.")
        if self.logit_scale_init_value <= 0:
            raise ValueError(f"SpatialClapConfig.logit_scale_init_value must be > 0, got {self.logit_scale_init_value}.")
        max_frames = self.max_source_frames
        frames = self.source_frames(self.max_length_samples)
        if frames > max_frames:
            raise ValueError(
                f"SpatialClapConfig: max_length_s={self.max_length_s} s gives {frames} mel frames, but the source encoder "
                f"(spec_size={self.source_config.spec_size}, num_mel_bins={self.source_config.num_mel_bins}) accepts at "
                f"most {max_frames}; lower max_length_s to <= {self.max_length_s * max_frames / frames:.2f} s or raise "
                "source_config.spec_size."
            )
        freq_ratio = self.source_config.spec_size // self.source_config.num_mel_bins
        if freq_ratio < 1 or self.source_config.num_mel_bins > self.source_config.spec_size // freq_ratio:
            raise ValueError(
                f"SpatialClapConfig: source_config.num_mel_bins={self.source_config.num_mel_bins} does not fit "
                f"spec_size={self.source_config.spec_size}; use spec_size = k * num_mel_bins with integer k >= 1."
            )

    def to_dict(self) -> dict:
        output = super().to_dict()
        output.setdefault("custom_pipelines", default_custom_pipelines())
        return output

    @property
    def max_length_samples(self) -> int:
        """Clip length in samples at ``sample_rate`` (``round(max_length_s * sample_rate)``)."""
        return int(round(self.max_length_s * self.sample_rate))

    @property
    def max_source_frames(self) -> int:
        """Most mel frames the source encoder accepts: ``spec_size * (spec_size // num_mel_bins)``."""
        spec_size = self.source_config.spec_size
        return spec_size * (spec_size // self.source_config.num_mel_bins)

    def source_frames(self, num_samples: int) -> int:
        """Mel frames of a ``num_samples``-sample clip at ``sample_rate`` after resampling and centred STFT."""
        resampled = math.ceil(num_samples * self.source_sample_rate / self.sample_rate)
        return resampled // self.mel_hop_length + 1

    @property
    def source_hidden_size(self) -> int:
        """Width of the HTS-AT pooled output: ``patch_embeds_hidden_size * 2 ** (len(depths) - 1)``."""
        cfg = self.source_config
        return int(cfg.patch_embeds_hidden_size * 2 ** (len(cfg.depths) - 1))

    @property
    def spatial_hidden_size(self) -> int:
        """Width of the spatial features fed to the fusion: z_sp plus the readout (0 without spatial encoder)."""
        if self.spatial_config is None:
            return 0
        return self.spatial_config.output_size + self.spatial_readout_size

    @property
    def spatial_readout_size(self) -> int:
        """Width of the spatial heads' readout fed to the fusion (0 without readout)."""
        if self.spatial_config is None or not self.spatial_readout_bins:
            return 0
        return self.spatial_config.readout_size(self.spatial_readout_bins, self.spatial_readout_mean_doa)


__all__ = ["MIN_TRANSFORMERS_VERSION", "PIPELINE_TASK", "SpatialClapConfig", "default_custom_pipelines"]
