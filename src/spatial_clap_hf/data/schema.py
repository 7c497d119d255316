"""Column contracts of the datasets this package writes and reads.

Source corpora (the AudioCaps builder output and the embedded synthetic corpus) hold
*mono, dry* clips with their content captions. Spatialized datasets (``spatial-clap
spatialize`` and the evaluation sets) hold stereo scenes rendered in simulated rooms, one
schema for both: ``spatial_features``.
"""

from __future__ import annotations

from datasets import Audio, Features, List, Value

__all__ = ["EVAL_SET_NAMES", "SOURCE_FEATURES", "spatial_features"]

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

#: Names of the evaluation sets: the configs of one spatialized dataset (``<eval-dir>/<name>/<split>/``).
#: All come from test rooms and test clips, except ``doa_val`` (validation rooms and clips),
#: which only fits the linear DoA probe scored on ``doa``.
EVAL_SET_NAMES = ("doa", "doa_val", "assignment2", "assignment3", "retrieval")


def spatial_features(sample_rate: int = 16000, num_channels: int = 2) -> Features:
    """Columns of a spatialized dataset (``spatial-clap spatialize``, the evaluation sets).

    One row is one rendering of a scene: ``audio`` FLAC-encoded, (num_channels, samples) at
    ``sample_rate`` Hz, channel 0 the left microphone. Per scene: ``source_ids``,
    ``source_captions`` (one content caption per source) and ``labels`` (one list of class names
    per source), ``n_sources``; the room (``room_id``, ``room_dim`` in metres (x, y, z),
    wall energy ``absorption``, Sabine ``rt60`` in seconds); ``scene_id``, ``pairing`` (the draw
    of a train split: 0, 1, … K−1; 0 for a fixed test pairing). Per row: ``assignment`` σ
    (source i is heard from the direction drawn for source σ(i); the identity is the drawn
    scene, the other n! − 1 are its SCL swaps and share its ``scene_id``), the per-source
    ``azimuth_deg`` (degrees, counter-clockwise from the front: +90° = left),
    ``folded_azimuth_deg`` (asin(sin θ) ∈ [−90°, 90°]) and ``doa_class`` (0 = left … K−1 =
    right) under that assignment; ``caption`` (each source's caption with the phrase of its
    direction, one sentence per source) and ``caption_src`` (content only); ``gain``, the factor
    the rendered mixture was scaled by before quantisation (1 unless it would have clipped).
    """
    return Features(
        {
            "audio": Audio(sampling_rate=int(sample_rate), num_channels=int(num_channels)),
            "caption": Value("string"),
            "caption_src": Value("string"),
            "source_captions": List(Value("string")),
            "source_ids": List(Value("string")),
            "labels": List(List(Value("string"))),
            "n_sources": Value("int32"),
            "azimuth_deg": List(Value("float32")),
            "folded_azimuth_deg": List(Value("float32")),
            "doa_class": List(Value("int32")),
            "room_id": Value("int32"),
            "room_dim": List(Value("float32")),
            "absorption": Value("float32"),
            "rt60": Value("float32"),
            "scene_id": Value("string"),
            "assignment": List(Value("int32")),
            "pairing": Value("int32"),
            "gain": Value("float32"),
        }
    )
