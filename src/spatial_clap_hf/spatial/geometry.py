"""Microphone arrays and source positions in the array frame.

Array frame (see ``conventions``): the array centre is the origin, the array faces +x,
z points up; azimuth is counter-clockwise from +x in degrees (+90° = left), elevation is
measured up from the horizontal plane in degrees. Positions are in metres.

Microphone positions are arrays shaped ``(num_mics, 3)`` (one row per microphone, columns
x, y, z) relative to the array centre; row ``m`` is channel ``m`` of every signal recorded
with that array.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = [
    "DEFAULT_STEREO_SPACING_M",
    "as_mic_positions",
    "is_centred_stereo_pair",
    "source_position",
    "stereo_pair",
    "tetrahedral_array",
]

#: Spacing of the paper's stereo pair in metres.
DEFAULT_STEREO_SPACING_M = 0.15


def stereo_pair(spacing_m: float = DEFAULT_STEREO_SPACING_M) -> np.ndarray:
    """A stereo pair on the y axis: channel 0 (left) at +y, channel 1 (right) at −y.

    Returns float64 positions shaped (2, 3) in metres, relative to the array centre.
    """
    if spacing_m <= 0:
        raise ValueError(f"Stereo spacing must be positive, got {spacing_m} m.")
    half = spacing_m / 2.0
    return np.array([[0.0, half, 0.0], [0.0, -half, 0.0]])


def tetrahedral_array(radius_m: float = 0.042) -> np.ndarray:
    """A 4-microphone tetrahedral array (A-format layout) of the given radius.

    Capsules at (azimuth, elevation) = (45°, +35.26°), (−45°, −35.26°), (135°, −35.26°),
    (−135°, +35.26°): front-left-up, front-right-down, back-left-down, back-right-up.
    Returns float64 positions shaped (4, 3) in metres, relative to the array centre.
    """
    if radius_m <= 0:
        raise ValueError(f"Array radius must be positive, got {radius_m} m.")
    elev = np.degrees(np.arctan(1.0 / np.sqrt(2.0)))
    directions = [(45.0, elev), (-45.0, -elev), (135.0, -elev), (-135.0, elev)]
    return np.stack([source_position(az, el, radius_m) for az, el in directions])


def source_position(azimuth_deg: float, elevation_deg: float = 0.0, distance_m: float = 2.0) -> np.ndarray:
    """Cartesian position (3,) in metres of a point at the given direction and distance.

    ``(cos θ cos φ, sin θ cos φ, sin φ) · distance`` with azimuth θ and elevation φ in degrees,
    relative to the array centre.
    """
    if distance_m <= 0:
        raise ValueError(f"Source distance must be positive, got {distance_m} m.")
    theta, phi = np.radians(azimuth_deg), np.radians(elevation_deg)
    return distance_m * np.array([np.cos(theta) * np.cos(phi), np.sin(theta) * np.cos(phi), np.sin(phi)])


def as_mic_positions(mic_positions: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Validate microphone positions and return them as float64 (num_mics, 3) metres."""
    positions = np.asarray(mic_positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] < 1:
        raise ValueError(
            f"Microphone positions must be shaped (num_mics, 3) in metres (one row per channel), "
            f"got shape {positions.shape}; e.g. use geometry.stereo_pair()."
        )
    if not np.all(np.isfinite(positions)):
        raise ValueError("Microphone positions contain NaN or infinite values.")
    return positions


def is_centred_stereo_pair(mic_positions: np.ndarray, atol: float = 1e-9) -> bool:
    """True for two microphones at (0, +d/2, 0) and (0, −d/2, 0): channel 0 left, channel 1 right.

    For such a pair in a shoebox centred on the array, with sources in the horizontal plane,
    mirroring the room about the x–z plane swaps the channels and maps θ → −θ, and mirroring
    about the y–z plane maps θ → 180° − θ; the RIR bank uses both symmetries.
    """
    positions = as_mic_positions(mic_positions)
    if positions.shape[0] != 2:
        return False
    left, right = positions
    return bool(
        np.allclose([left[0], left[2], right[0], right[2]], 0.0, atol=atol)
        and np.isclose(left[1], -right[1], atol=atol)
        and left[1] > 0
    )
