"""Datasets: source corpora (AudioCaps, embedded synthetic corpus), evaluation sets, collators.

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
from .eval_sets import build_eval_sets
from .schema import EVAL_SET_NAMES, SOURCE_FEATURES, assignment_features, doa_features, retrieval_features
from .synthetic import SYNTHETIC_CLASSES, ClipSpec, make_synthetic_corpus

__all__ = [
    "AUDIO_EXTENSIONS",
    "EVAL_SET_NAMES",
    "SOURCE_FEATURES",
    "SYNTHETIC_CLASSES",
    "AudioCapsBuilder",
    "AudioCapsConfig",
    "AudioDecodeError",
    "ClipSpec",
    "assignment_features",
    "build_audiocaps",
    "build_eval_sets",
    "decoded_to_array",
    "doa_features",
    "load_audio",
    "load_corpus",
    "load_label_names",
    "make_synthetic_corpus",
    "probe_audio",
    "retrieval_features",
    "save_corpus",
]
