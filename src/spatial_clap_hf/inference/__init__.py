"""Using a checkpoint: the stereo zero-shot pipeline, "where is X?", file batches.

The pipeline itself is one of the model family's files (``models/spatial_clap/pipeline_spatial_clap.py``),
so checkpoints carry it; ``register_pipeline()`` (run on ``import spatial_clap_hf``) and
``load_classifier`` are the package side. Uses ``spatial`` (direction conventions) and the
loading and embedding helpers of ``models.loading``. Needs none of the optional extras except
``embed_files`` (datasets, the ``[train]`` extra).
"""

from .files import AudioFilesError, FileScores, classify_files, embed_files, embedding_features, write_embeddings
from .pipeline import (
    DIRECTION_PHRASES,
    TASK,
    AudioDecodeError,
    SpatialZeroShotAudioClassificationPipeline,
    check_channels,
    decode_audio,
    fit_channels,
    input_channels,
    load_classifier,
    read_audio_input,
    register_pipeline,
)
from .where import direction_captions, where_is

__all__ = [
    "DIRECTION_PHRASES",
    "TASK",
    "AudioDecodeError",
    "AudioFilesError",
    "FileScores",
    "SpatialZeroShotAudioClassificationPipeline",
    "check_channels",
    "classify_files",
    "decode_audio",
    "direction_captions",
    "embed_files",
    "embedding_features",
    "fit_channels",
    "input_channels",
    "load_classifier",
    "read_audio_input",
    "register_pipeline",
    "where_is",
    "write_embeddings",
]
