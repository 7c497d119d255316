""""Where is X?": score a sound description in each direction sector.

For a description such as "a dog barking" the direction captions are "A dog barking on the
left side.", "A dog barking in the front-left.", … — one per sector of a ``PhraseSet``, as
``compose_caption`` writes training captions — scored by the zero-shot pipeline (its
``where=`` mode, which checkpoints carry, so the same answer comes with ``trust_remote_code``
where this package is absent). The answer lists the sectors in the order of the ``PhraseSet``
(left, +90°, to right, −90°) with the sector centre azimuth in degrees (counter-clockwise
from the front; docs/design.md) and a probability; the probabilities sum to 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models.spatial_clap.pipeline_spatial_clap import direction_captions as _pipeline_direction_captions
from ..spatial.conventions import DEFAULT_PHRASES, PhraseSet

if TYPE_CHECKING:
    from .pipeline import SpatialZeroShotAudioClassificationPipeline

__all__ = ["direction_captions", "where_is"]


def direction_captions(description: str, phrases: PhraseSet = DEFAULT_PHRASES) -> list[dict[str, Any]]:
    """One caption per direction sector, left to right.

    Returns:
        ``[{"direction": phrase, "azimuth_deg": sector centre in degrees, "caption": str}]``,
        e.g. ``{"direction": "on the left side", "azimuth_deg": 72.0,
        "caption": "A dog barking on the left side."}`` for ``"a dog barking"``.
    """
    return _pipeline_direction_captions(description, phrases.phrases)


def where_is(
    classifier: "SpatialZeroShotAudioClassificationPipeline",
    audio: Any,
    description: str,
    *,
    sampling_rate: int | None = None,
    phrases: PhraseSet = DEFAULT_PHRASES,
) -> list[dict[str, Any]]:
    """Where is ``description`` in ``audio``?

    Args:
        classifier: the ``zero-shot-spatial-audio-classification`` pipeline.
        audio: any input the pipeline takes (file path, ``{"array", "sampling_rate"}``, …).
        description: the sound, e.g. ``"a dog barking"``.
        sampling_rate: rate in Hz of a bare array ``audio``.
        phrases: the direction sectors (default: the five equal sectors of the folded azimuth).

    Returns:
        ``[{"direction": phrase, "azimuth_deg": sector centre, "score": probability}]`` in
        sector order (left to right); the scores sum to 1.
    """
    return classifier(audio, where=description, direction_phrases=list(phrases.phrases), sampling_rate=sampling_rate)
