"""The ``zero-shot-spatial-audio-classification`` pipeline on the package side: registration and loading.

The pipeline itself lives in the model family (``models/spatial_clap/pipeline_spatial_clap.py``):
it is one of the files every checkpoint carries, and config.json's ``custom_pipelines`` points
at it, so ``transformers.pipeline(TASK, model=..., trust_remote_code=True)`` works where this
package is not installed. This module re-exports it and adds what only the package does:

- ``register_pipeline()`` (run on ``import spatial_clap_hf``) adds the task to transformers'
  ``PIPELINE_REGISTRY``, for checkpoints saved before their config carried ``custom_pipelines``;
- ``load_classifier(dir_or_hub_id)`` builds the pipeline with the package's classes (no remote
  code is run).

A checkpoint whose config.json names the pipeline in ``custom_pipelines`` makes
``transformers.pipeline`` ask for ``trust_remote_code=True`` (or ``pipeline_class=``) even
when the package is imported: that is transformers' rule for pipelines in a checkpoint's
code. ``load_classifier`` passes ``pipeline_class``.
"""

from __future__ import annotations

import os

import torch
from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from ..models.spatial_clap.pipeline_spatial_clap import (
    DIRECTION_PHRASES,
    TASK,
    AudioDecodeError,
    SpatialZeroShotAudioClassificationPipeline,
    check_channels,
    decode_audio,
    fit_channels,
    input_channels,
    read_audio_input,
)

__all__ = [
    "DIRECTION_PHRASES",
    "TASK",
    "AudioDecodeError",
    "SpatialZeroShotAudioClassificationPipeline",
    "check_channels",
    "decode_audio",
    "fit_channels",
    "input_channels",
    "load_classifier",
    "read_audio_input",
    "register_pipeline",
]


def register_pipeline() -> None:
    """Register ``TASK`` with transformers' ``PIPELINE_REGISTRY`` (idempotent).

    After this, ``transformers.pipeline(TASK, model=DIR)`` builds the pipeline from a checkpoint
    whose config.json has no ``custom_pipelines`` entry (model via ``AutoModel``, processor via
    ``AutoProcessor``).
    """
    current = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if current is not None and current.get("impl") is SpatialZeroShotAudioClassificationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=SpatialZeroShotAudioClassificationPipeline,
        pt_model=AutoModel,
        type="multimodal",
    )


def load_classifier(
    model: str | os.PathLike, device: str | torch.device = "auto"
) -> SpatialZeroShotAudioClassificationPipeline:
    """Build the pipeline from a saved checkpoint directory or Hub id on ``device``, with the package's code.

    ``device="auto"`` picks CUDA when available, else the CPU.
    """
    import spatial_clap_hf  # noqa: F401  (registers the Auto classes)
    from transformers import pipeline

    from ..models.loading import resolve_device

    register_pipeline()
    path = str(model)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path} holds no config.json; pass a directory written by save_pretrained.")
    looks_local = os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") != 1
    if not os.path.exists(path) and looks_local:
        raise FileNotFoundError(f"Model directory {path} does not exist; pass a save_pretrained directory or a Hub id.")
    return pipeline(
        TASK, model=path, device=resolve_device(device), pipeline_class=SpatialZeroShotAudioClassificationPipeline
    )
