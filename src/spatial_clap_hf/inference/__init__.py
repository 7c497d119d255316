"""Using a checkpoint: the stereo zero-shot pipeline, "where is X?", file batches and the demo's logic.

``register_pipeline()`` (run on ``import spatial_clap_hf``) makes
``transformers.pipeline("zero-shot-spatial-audio-classification", model=DIR)`` available.
Uses the model through the Auto classes, ``data`` (audio decoding), ``spatial``
(direction conventions) and the loading and embedding helpers of ``models.loading``.
"""

from .demo import ClipAnalysis, analyse_clip, parse_labels
from .files import AudioFilesError, FileScores, classify_files, embed_files, embedding_features, write_embeddings
from .pipeline import (
    TASK,
    SpatialZeroShotAudioClassificationPipeline,
    check_channels,
    fit_channels,
    input_channels,
    load_classifier,
    read_audio_input,
    register_pipeline,
)
from .where import direction_captions, direction_polar_figure, where_is

__all__ = [
    "TASK",
    "AudioFilesError",
    "ClipAnalysis",
    "FileScores",
    "SpatialZeroShotAudioClassificationPipeline",
    "analyse_clip",
    "check_channels",
    "classify_files",
    "direction_captions",
    "direction_polar_figure",
    "embed_files",
    "embedding_features",
    "fit_channels",
    "input_channels",
    "load_classifier",
    "parse_labels",
    "read_audio_input",
    "register_pipeline",
    "where_is",
]
