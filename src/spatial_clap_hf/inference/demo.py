"""What the interactive demo shows for one clip, computed here so the UI only wires inputs to outputs.

``analyse_clip`` answers "where is X?" (direction probabilities and their polar plot) and,
when candidate labels are given, ranks them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..spatial.conventions import DEFAULT_PHRASES, PhraseSet
from .where import direction_polar_figure, where_is

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .pipeline import SpatialZeroShotAudioClassificationPipeline

__all__ = ["ClipAnalysis", "analyse_clip", "parse_labels"]


@dataclass
class ClipAnalysis:
    """The demo's answer for one clip.

    ``directions``: ``where_is`` output (sector order); ``labels``: label → probability, best
    first (empty without candidate labels); ``figure``: the polar plot; ``summary``: one line
    of Markdown naming the most likely direction.
    """

    directions: list[dict[str, Any]]
    labels: dict[str, float]
    figure: "Figure"
    summary: str


def parse_labels(text: str | None) -> list[str]:
    """Split comma-, semicolon- or newline-separated labels; blanks are dropped, order kept."""
    if not text:
        return []
    return [part.strip() for part in re.split(r"[,;\n]", text) if part.strip()]


def analyse_clip(
    classifier: "SpatialZeroShotAudioClassificationPipeline",
    audio: Any,
    description: str,
    labels: str | list[str] | None = None,
    *,
    sampling_rate: int | None = None,
    phrases: PhraseSet = DEFAULT_PHRASES,
) -> ClipAnalysis:
    """Locate ``description`` in ``audio`` and rank the optional candidate ``labels``.

    Args:
        classifier: the ``zero-shot-spatial-audio-classification`` pipeline.
        audio: a file path or any other input the pipeline takes.
        description: what to look for, e.g. "a dog barking".
        labels: candidate labels, as a list or as comma-separated text.
        sampling_rate: rate in Hz of a bare array ``audio``.
    """
    if audio is None:
        raise ValueError("No audio: upload a stereo clip or pick an example.")
    directions = where_is(classifier, audio, description, sampling_rate=sampling_rate, phrases=phrases)
    candidates = parse_labels(labels) if isinstance(labels, str) or labels is None else list(labels)
    ranked = {}
    if candidates:
        scored = classifier(audio, candidate_labels=candidates, sampling_rate=sampling_rate)
        ranked = {s["label"]: float(s["score"]) for s in scored}
    best = max(directions, key=lambda d: d["score"])
    summary = (
        f"**{description.strip()}**: most likely **{best['direction']}** "
        f"(sector centre {best['azimuth_deg']:+.0f}°, {best['score']:.0%})"
    )
    figure = direction_polar_figure(directions, title=f'Where is "{description.strip()}"?', phrases=phrases)
    return ClipAnalysis(directions=directions, labels=ranked, figure=figure, summary=summary)
