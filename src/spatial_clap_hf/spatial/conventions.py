"""Direction conventions shared by every part of the package.

Array frame: the array centre is the origin, the array faces +x, z points up.
Azimuth θ is in degrees, counter-clockwise from +x: 0° = front, +90° = left,
−90° = right. Stereo channel 0 is the left microphone (+y), channel 1 the right.

A stereo pair cannot tell front from back, so direction targets use the *folded*
azimuth asin(sin θ) ∈ [−90°, 90°]. The folded half-plane is cut into equal 36°
sectors, one DoA class each, ordered from the left (+90°) to the right (−90°).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = [
    "DEFAULT_PHRASES",
    "PhraseSet",
    "compose_caption",
    "doa_class",
    "doa_class_center_deg",
    "fold_azimuth",
    "neutral_prompts",
    "num_doa_classes",
]


@dataclass(frozen=True)
class PhraseSet:
    """Spatial phrases, one per DoA sector, ordered from left (+90°) to right (−90°).

    ``prompt_template`` turns a phrase into a neutral, content-free caption used for
    zero-shot direction classification; ``{phrase}`` is replaced by the phrase.
    Users may replace the phrases (e.g. another language or more sectors); the
    number of phrases sets the number of equal sectors over [−90°, 90°].
    """

    phrases: tuple[str, ...] = (
        "on the left side",
        "in the front-left",
        "in front",
        "in the front-right",
        "on the right side",
    )
    prompt_template: str = "A sound is heard {phrase}."

    def __post_init__(self) -> None:
        if len(self.phrases) < 2:
            raise ValueError(f"A PhraseSet needs at least 2 phrases, got {len(self.phrases)}.")
        if any(not p.strip() for p in self.phrases):
            raise ValueError("A PhraseSet phrase is empty; every sector needs a phrase.")
        if "{phrase}" not in self.prompt_template:
            raise ValueError("prompt_template must contain '{phrase}'.")

    def __len__(self) -> int:
        return len(self.phrases)


DEFAULT_PHRASES = PhraseSet()


def fold_azimuth(azimuth_deg: float | np.ndarray) -> float | np.ndarray:
    """Fold an azimuth (degrees, any range) onto [−90°, 90°] as asin(sin θ).

    Front/back mirror images (θ and 180° − θ) map to the same folded angle.
    """
    folded = np.degrees(np.arcsin(np.clip(np.sin(np.radians(azimuth_deg)), -1.0, 1.0)))
    return float(folded) if np.ndim(folded) == 0 else folded


def num_doa_classes(phrases: PhraseSet = DEFAULT_PHRASES) -> int:
    """Number of DoA classes (equal sectors over the folded half-plane)."""
    return len(phrases)


def doa_class(azimuth_deg: float | np.ndarray, phrases: PhraseSet = DEFAULT_PHRASES) -> int | np.ndarray:
    """DoA class of an azimuth in degrees: 0 = leftmost sector (+90°), K−1 = rightmost (−90°).

    The azimuth is folded first. Sector k covers folded angles in
    (90 − (k+1)·w, 90 − k·w] with w = 180/K; the edges +90° and −90° belong to
    the outer sectors.
    """
    k = len(phrases)
    folded = np.asarray(fold_azimuth(azimuth_deg), dtype=np.float64)
    width = 180.0 / k
    cls = np.floor((90.0 - folded) / width + 1e-9).astype(np.int64)
    cls = np.clip(cls, 0, k - 1)
    return int(cls) if cls.ndim == 0 else cls


def doa_class_center_deg(cls: int, phrases: PhraseSet = DEFAULT_PHRASES) -> float:
    """Folded azimuth (degrees) at the centre of DoA class ``cls``."""
    k = len(phrases)
    if not 0 <= cls < k:
        raise ValueError(f"DoA class {cls} is out of range for {k} classes.")
    width = 180.0 / k
    return 90.0 - (cls + 0.5) * width


def _sentence_body(caption: str) -> str:
    body = caption.strip()
    if not body:
        raise ValueError("A source caption is empty; every source needs a description.")
    return body.rstrip(" .!?")


def compose_caption(
    source_captions: Sequence[str],
    azimuths_deg: Sequence[float] | None = None,
    phrases: PhraseSet = DEFAULT_PHRASES,
) -> str:
    """Compose the caption D of a (multi-)source scene.

    Each source caption C_i gets the phrase S of its direction ("A dog is barking"
    + "on the right side" → "A dog is barking on the right side."); several sources
    become consecutive sentences in the given order. With ``azimuths_deg=None`` the
    content-only ("src") caption is returned.
    """
    if len(source_captions) == 0:
        raise ValueError("compose_caption needs at least one source caption.")
    if azimuths_deg is not None and len(azimuths_deg) != len(source_captions):
        raise ValueError(
            f"Got {len(source_captions)} source captions but {len(azimuths_deg)} azimuths; "
            "give one azimuth per source."
        )
    sentences = []
    for i, caption in enumerate(source_captions):
        body = _sentence_body(caption)
        body = body[0].upper() + body[1:]
        if azimuths_deg is not None:
            body = f"{body} {phrases.phrases[doa_class(azimuths_deg[i], phrases)]}"
        sentences.append(body + ".")
    return " ".join(sentences)


def neutral_prompts(phrases: PhraseSet = DEFAULT_PHRASES) -> list[str]:
    """Content-free captions, one per DoA class, for zero-shot direction classification."""
    return [phrases.prompt_template.format(phrase=p) for p in phrases.phrases]
