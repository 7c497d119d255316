"""Datasets: source corpora (AudioCaps, embedded synthetic corpus), spatialized datasets, evaluation sets.

May use ``spatial_clap_hf.spatial``; imports no model, training or evaluation code.
"""

from .audio_io import AUDIO_EXTENSIONS, AudioDecodeError, decoded_to_array, load_audio, probe_audio
from .audiocaps import (
    AudioCapsBuilder,
    AudioCapsConfig,
    build_audiocaps,
    load_corpus,
    load_label_names,
    save_corpus,
)
from .clips import ClipReader
from .eval_sets import build_eval_sets
from .schema import EVAL_SET_NAMES, SOURCE_FEATURES, spatial_features
from .spatialized import AudioClips, load_spatialized, push_spatialized, read_manifest, spatialize
from .synthetic import SYNTHETIC_CLASSES, ClipSpec, make_synthetic_corpus

__all__ = [
    "AUDIO_EXTENSIONS",
    "EVAL_SET_NAMES",
    "SOURCE_FEATURES",
    "SYNTHETIC_CLASSES",
    "AudioCapsBuilder",
    "AudioCapsConfig",
    "AudioClips",
    "AudioDecodeError",
    "ClipReader",
    "ClipSpec",
    "build_audiocaps",
    "build_eval_sets",
    "decoded_to_array",
    "load_audio",
    "load_corpus",
    "load_label_names",
    "load_spatialized",
    "make_synthetic_corpus",
    "probe_audio",
    "push_spatialized",
    "read_manifest",
    "save_corpus",
    "spatial_features",
    "spatialize",
]
