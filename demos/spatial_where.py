"""What the demo shows for one clip, computed here so that app.py only wires the UI to it.

``analyse_clip`` answers "where is X?" (the probability of each direction sector, from the
zero-shot spatial pipeline's ``where=`` mode) with a polar plot, and ranks optional
candidate labels. It needs only numpy, matplotlib and a pipeline built with
``transformers.pipeline("zero-shot-spatial-audio-classification", model=..., trust_remote_code=True)``:
the Space runs the checkpoint's own code and never installs ``spatial_clap_hf``.

Directions (docs/design.md): azimuth in degrees, counter-clockwise from the front, +90° =
left; a stereo pair folds front and back onto [−90°, 90°], shown as a half disc with the
front at the top and the left on the left, as seen from above by a listener facing the front.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

#: Bar colour of the direction plot (RGB hex).
DIRECTION_COLOR = "#1b9e77"


@dataclass
class ClipAnalysis:
    """The demo's answer for one clip.

    ``directions``: the pipeline's ``where=`` answer (sector order, left to right); ``labels``:
    label → probability, best first (empty without candidate labels); ``figure``: the polar plot;
    ``summary``: one line of Markdown naming the most likely direction.
    """

    directions: list[dict[str, Any]]
    labels: dict[str, float]
    figure: Figure
    summary: str


def parse_labels(text: str | None) -> list[str]:
    """Split comma-, semicolon- or newline-separated labels; blanks are dropped, order kept."""
    if not text:
        return []
    return [part.strip() for part in re.split(r"[,;\n]", text) if part.strip()]


def direction_polar_figure(directions: Sequence[dict[str, Any]], *, title: str | None = None) -> Figure:
    """Polar bar plot of direction scores over the folded half-plane.

    Front (0°) is at the top and the left (+90°) on the left; one bar per sector (width 180°/K,
    K sectors), its length the probability (radial axis 0–1). Returns a matplotlib ``Figure``
    (no pyplot state is touched).
    """
    if len(directions) == 0:
        raise ValueError("No direction scores to plot; pass the pipeline's where= answer.")
    width = np.radians(180.0 / len(directions))
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


def analyse_clip(classifier: Any, audio: Any, description: str, labels: str | list[str] | None = None) -> ClipAnalysis:
    """Locate ``description`` in ``audio`` and rank the optional candidate ``labels``.

    Args:
        classifier: the ``zero-shot-spatial-audio-classification`` pipeline.
        audio: a file path or any other input the pipeline takes.
        description: what to look for, e.g. "a dog barking".
        labels: candidate labels, as a list or as comma-separated text.
    """
    if audio is None:
        raise ValueError("No audio: upload a stereo clip or pick an example.")
    if not isinstance(description, str) or not description.strip():
        raise ValueError("Describe the sound to look for, e.g. 'a dog barking'; the description is empty.")
    directions = classifier(audio, where=description)
    candidates = parse_labels(labels) if isinstance(labels, str) or labels is None else list(labels)
    ranked = {}
    if candidates:
        ranked = {s["label"]: float(s["score"]) for s in classifier(audio, candidate_labels=candidates)}
    best = max(directions, key=lambda d: d["score"])
    summary = (
        f"**{description.strip()}**: most likely **{best['direction']}** "
        f"(sector centre {best['azimuth_deg']:+.0f}°, {best['score']:.0%})"
    )
    figure = direction_polar_figure(directions, title=f'Where is "{description.strip()}"?')
    return ClipAnalysis(directions=directions, labels=ranked, figure=figure, summary=summary)
