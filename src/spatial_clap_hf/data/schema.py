"""Column contracts of the datasets this package writes and reads.

Source corpora (the AudioCaps builder output and the embedded synthetic corpus) hold
*mono, dry* clips with their content captions; spatialization happens later. Evaluation
sets hold *spatialized* clips, already mixed in test rooms with a fixed pairing.
"""

from __future__ import annotations

from datasets import Audio, Features, List, Value

__all__ = [
    "EVAL_SET_NAMES",
    "SOURCE_FEATURES",
    "assignment_features",
    "doa_features",
    "retrieval_features",
]

#: One row per clip. ``audio`` decodes (torchcodec) to a mono clip; ``captions`` holds
#: one or more content captions (AudioCaps val/test have five); ``labels`` the clip's
#: sound-event class names (AudioSet display names for AudioCaps), used as SELD classes.
SOURCE_FEATURES = Features(
    {
        "id": Value("string"),
        "audio": Audio(),
        "captions": List(Value("string")),
        "labels": List(Value("string")),
    }
)

#: Names of the evaluation sets, each saved with ``save_to_disk`` under ``<eval-dir>/<name>``.
#: All come from test rooms and test clips, except ``doa_val`` (validation rooms and clips,
#: same columns as ``doa``), which only fits the linear DoA probe scored on ``doa``.
EVAL_SET_NAMES = ("doa", "doa_val", "assignment2", "assignment3", "retrieval")


def _spatial_columns() -> dict:
    # ``waveform``: float32, shaped (channels, samples), at ``sampling_rate`` Hz.
    return {
        "id": Value("string"),
        "waveform": List(List(Value("float32"))),
        "sampling_rate": Value("int32"),
        "room_id": Value("int32"),
        "azimuths_deg": List(Value("float32")),
        "source_ids": List(Value("string")),
    }


def doa_features() -> Features:
    """Single-source clips: ``doa_class`` (0 = left … K−1 = right) of the folded azimuth."""
    return Features(
        {
            **_spatial_columns(),
            "folded_azimuth_deg": Value("float32"),
            "doa_class": Value("int32"),
            "caption_src": Value("string"),
            "caption_sp_src": Value("string"),
        }
    )


def assignment_features() -> Features:
    """n-source mixtures: ``candidate_captions`` holds the n! who-is-where captions
    (same content, permuted directions) and ``label`` the index of the true one."""
    return Features(
        {
            **_spatial_columns(),
            "candidate_captions": List(Value("string")),
            "label": Value("int32"),
        }
    )


def retrieval_features() -> Features:
    """Single- and multi-source clips with their spatial and content-only captions."""
    return Features(
        {
            **_spatial_columns(),
            "n_sources": Value("int32"),
            "caption_src": Value("string"),
            "caption_sp_src": Value("string"),
        }
    )
