""""Where is X?": score a sound description in each direction sector and plot the answer.

For a description such as "a dog barking" the five direction captions are
``compose_caption([description], [centre of sector k])`` — "A dog barking on the left
side.", "A dog barking in the front-left.", … — scored by the zero-shot pipeline. The
answer lists the sectors in the order of ``PhraseSet`` (left, +90°, to right, −90°) with
the sector centre azimuth in degrees (counter-clockwise from the front; docs/design.md) and a
probability; the probabilities sum to 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ..spatial.conventions import DEFAULT_PHRASES, PhraseSet, compose_caption, doa_class_center_deg

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .pipeline import SpatialZeroShotAudioClassificationPipeline

__all__ = ["direction_captions", "direction_polar_figure", "where_is"]

#: Bar colour of the direction plot (RGB hex).
DIRECTION_COLOR = "#1b9e77"


def direction_captions(description: str, phrases: PhraseSet = DEFAULT_PHRASES) -> list[dict[str, Any]]:
    """One caption per direction sector, left to right.

    Returns:
        ``[{"direction": phrase, "azimuth_deg": sector centre in degrees, "caption": str}]``,
        e.g. ``{"direction": "on the left side", "azimuth_deg": 72.0,
        "caption": "A dog barking on the left side."}`` for ``"a dog barking"``.
    """
    if not isinstance(description, str) or not description.strip():
        raise ValueError("Describe the sound to look for, e.g. 'a dog barking'; the description is empty.")
    rows = []
    for k, phrase in enumerate(phrases.phrases):
        azimuth = doa_class_center_deg(k, phrases)
        caption = compose_caption([description], [azimuth], phrases)
        rows.append({"direction": phrase, "azimuth_deg": azimuth, "caption": caption})
    return rows


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
    rows = direction_captions(description, phrases)
    scored = classifier(
        audio, candidate_labels=[r["caption"] for r in rows], hypothesis_template="{}", sampling_rate=sampling_rate
    )
    by_caption = {s["label"]: s["score"] for s in scored}
    return [
        {"direction": r["direction"], "azimuth_deg": r["azimuth_deg"], "score": by_caption[r["caption"]]} for r in rows
    ]


def direction_polar_figure(
    directions: Sequence[dict[str, Any]], *, title: str | None = None, phrases: PhraseSet = DEFAULT_PHRASES
) -> "Figure":
    """Polar bar plot of ``where_is`` scores over the folded half-plane.

    Front (0°) is at the top and the left (+90°) on the left, as seen from above by a
    listener facing the front; one bar per sector (width 180°/K), its length the probability
    (radial axis 0–1). Returns a matplotlib ``Figure`` (no pyplot state is touched).
    """
    import numpy as np
    from matplotlib.figure import Figure

    if len(directions) == 0:
        raise ValueError("No direction scores to plot; pass the output of where_is.")
    width = np.radians(180.0 / len(phrases))
    fig = Figure(figsize=(6.0, 3.8), dpi=100, layout="constrained")
    ax = fig.add_subplot(projection="polar")
    ax.set_theta_zero_location("N")  # 0° (front) at the top
    ax.set_theta_direction(1)  # counter-clockwise: +90° (left) on the left
    ax.set_thetamin(-90)
    ax.set_thetamax(90)
    angles = np.radians([d["azimuth_deg"] for d in directions])
    scores = [float(d["score"]) for d in directions]
    ax.bar(angles, scores, width=width * 0.92, color=DIRECTION_COLOR, edgecolor="white", linewidth=1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_yticks([0.25, 0.5, 0.75, 1.0])
    ax.set_yticklabels(["25%", "50%", "75%", "100%"], fontsize=7, color="0.4")
    ax.set_xticks(angles)
    ax.set_xticklabels([f"{d['direction']}\n{d['score']:.0%}" for d in directions], fontsize=8)
    ax.set_rlabel_position(-90)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
