"""Named model presets: one factory (``create_model``) over a registry of configurations.

* ``"tiny"``: scaled-down HTS-AT (32 mels, spec_size 128: clips up to 5.1 s), 2-layer RoBERTa
  with a 1000-token vocabulary (see ``train_caption_tokenizer``), small SELDnet with
  inter-channel phase features; a forward on a few 4 s clips takes well under a second on CPU.
* ``"tiny-mono"``: ``"tiny"`` without spatial encoder (``spatial_encoder="none"``).
* ``"paper"``: the paper's model with random weights: HTS-AT-base (as in
  ``laion/larger_clap_music_and_speech``: 128-d patches, depths 2-2-12-2, 1024-d output),
  RoBERTa-base text config, SELDnet (64 filters, BiGRU 2x128, 527 AudioSet classes).
* ``"paper-mono"``: ``"paper"`` without spatial encoder.

Nothing is downloaded: presets build configs; load pretrained towers with
``SpatialClapModel.from_pretrained_parts``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from .spatial_clap.configuration_spatial_clap import SpatialClapConfig
from .spatial_clap.modeling_spatial_clap import SpatialClapModel

__all__ = ["create_model", "get_config", "list_presets", "register_preset"]

_PRESETS: dict[str, Callable[[], dict[str, Any]]] = {}
_SUB_CONFIGS = ("source_config", "spatial_config", "text_config")


def register_preset(name: str) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """Decorator registering a function that returns ``SpatialClapConfig`` keyword arguments under ``name``."""

    def wrap(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        if name in _PRESETS:
            raise ValueError(f"Preset {name!r} is already registered.")
        _PRESETS[name] = fn
        return fn

    return wrap


def list_presets() -> list[str]:
    """Names of the registered presets, sorted."""
    return sorted(_PRESETS)


def _merge(preset: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Apply overrides: dicts for sub-configs are merged key by key, everything else replaces."""
    merged = copy.deepcopy(preset)
    for key, value in overrides.items():
        if key in _SUB_CONFIGS and isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    if merged.get("spatial_encoder") == "none":
        merged["spatial_config"] = None
    return merged


def get_config(name: str, **overrides: Any) -> SpatialClapConfig:
    """Config of preset ``name``; ``overrides`` replace top-level fields, dicts merge into sub-configs.

    Example: ``get_config("tiny", projection_dim=64, spatial_config={"input_features": "mag_phase"})``.
    """
    if name not in _PRESETS:
        raise ValueError(f"Unknown preset {name!r}; available: {', '.join(list_presets())}.")
    return SpatialClapConfig(**_merge(_PRESETS[name](), overrides))


def create_model(name: str, **overrides: Any) -> SpatialClapModel:
    """A randomly initialised ``SpatialClapModel`` of preset ``name`` (see ``get_config``)."""
    return SpatialClapModel(get_config(name, **overrides))


def _tiny_source() -> dict[str, Any]:
    return {
        "model_type": "clap_audio_model",
        "num_mel_bins": 32,
        "spec_size": 128,
        "window_size": 8,
        "patch_size": 4,
        "patch_stride": [4, 4],
        "patch_embeds_hidden_size": 16,
        "depths": [1, 1],
        "num_attention_heads": [1, 2],
        "hidden_size": 32,
        "projection_dim": 32,
        "num_classes": 8,
        "mlp_ratio": 2.0,
        "enable_fusion": False,
    }


def _tiny_text() -> dict[str, Any]:
    return {
        "model_type": "roberta",
        "vocab_size": 1000,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 66,
        "type_vocab_size": 1,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "layer_norm_eps": 1e-5,
    }


def _tiny_spatial() -> dict[str, Any]:
    return {
        "num_channels": 2,
        "input_features": "mag_ipd",
        "max_frequency_bins": 256,
        "conv_filters": [16, 16, 16],
        "frequency_pool_sizes": [8, 8, 2],
        "gru_hidden_size": 32,
        "gru_num_layers": 2,
        "num_classes": 8,
        "head_hidden_size": 32,
    }


@register_preset("tiny")
def _tiny() -> dict[str, Any]:
    return {
        "source_config": _tiny_source(),
        "spatial_config": _tiny_spatial(),
        "text_config": _tiny_text(),
        "spatial_encoder": "seld",
        "fusion_hidden_size": 64,
        "projection_dim": 32,
        "max_length_s": 4.0,
    }


@register_preset("tiny-mono")
def _tiny_mono() -> dict[str, Any]:
    return {**_tiny(), "spatial_encoder": "none", "spatial_config": None}


def _paper_source() -> dict[str, Any]:
    return {
        "model_type": "clap_audio_model",
        "num_mel_bins": 64,
        "spec_size": 256,
        "window_size": 8,
        "patch_size": 4,
        "patch_stride": [4, 4],
        "patch_embeds_hidden_size": 128,
        "depths": [2, 2, 12, 2],
        "num_attention_heads": [4, 8, 16, 32],
        "hidden_size": 1024,
        "projection_dim": 512,
        "num_classes": 527,
        "enable_fusion": False,
    }


def _paper_text() -> dict[str, Any]:
    return {
        "model_type": "roberta",
        "vocab_size": 50265,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "max_position_embeddings": 514,
        "type_vocab_size": 1,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "layer_norm_eps": 1e-5,
    }


@register_preset("paper")
def _paper() -> dict[str, Any]:
    return {
        "source_config": _paper_source(),
        "spatial_config": {"num_channels": 2, "input_features": "mag_phase", "num_classes": 527},
        "text_config": _paper_text(),
        "spatial_encoder": "seld",
        "fusion_hidden_size": 512,
        "projection_dim": 512,
        "max_length_s": 10.0,
    }


@register_preset("paper-mono")
def _paper_mono() -> dict[str, Any]:
    return {**_paper(), "spatial_encoder": "none", "spatial_config": None}
