"""The paper's shoebox-room grid and its seeded train / val / test split.

Grid: x ∈ {7.0, 7.5, …, 10.5} m (8 values), y ∈ {6.0, …, 8.5} m (6), z ∈ {2.5, …, 4.5} m (5),
wall absorption r ∈ {0.4, 0.5, 0.6} (3): 720 rooms. ``room_id`` is the room's index in
this grid (x slowest, r fastest), so an id means the same room in every bank.

Absorption ``r`` is the *energy* absorption coefficient of every wall, flat over frequency:
``pyroomacoustics.Material(energy_absorption=r)``, i.e. each reflection scales the pressure
amplitude by sqrt(1 − r). The room's target reverberation time is Sabine's
RT60 = 24 ln(10) V / (c S r) (V volume in m³, S wall area in m², c in m/s), and the
image-source order needed to reach it comes from ``pyroomacoustics.inverse_sabine``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "ABSORPTIONS",
    "DEFAULT_SPLIT_SIZES",
    "ROOM_X_M",
    "ROOM_Y_M",
    "ROOM_Z_M",
    "SPEED_OF_SOUND",
    "SPLITS",
    "RoomSpec",
    "canonical_split",
    "room_grid",
    "sabine_rt60",
    "split_rooms",
]

ROOM_X_M = tuple(np.round(np.arange(7.0, 10.5 + 1e-9, 0.5), 2).tolist())
ROOM_Y_M = tuple(np.round(np.arange(6.0, 8.5 + 1e-9, 0.5), 2).tolist())
ROOM_Z_M = tuple(np.round(np.arange(2.5, 4.5 + 1e-9, 0.5), 2).tolist())
ABSORPTIONS = (0.4, 0.5, 0.6)
#: Speed of sound in m/s used for every simulation (the paper's value).
SPEED_OF_SOUND = 340.0
#: Split names of every split thing (corpora, RIR banks, evaluation sets), in order.
SPLITS = ("train", "validation", "test")
#: Rooms per split drawn from the 720-room grid (the paper's 360 / 60 / 60).
DEFAULT_SPLIT_SIZES = {"train": 360, "validation": 60, "test": 60}

_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


def canonical_split(split: str) -> str:
    """Map a split name to one of ``SPLITS`` ("val" → "validation"); raise on unknown names."""
    name = _SPLIT_ALIASES.get(split, split)
    if name not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {SPLITS} ('val' is accepted for 'validation').")
    return name


def sabine_rt60(dims_m: tuple[float, float, float], absorption: float, c: float = SPEED_OF_SOUND) -> float:
    """Sabine reverberation time in seconds of a shoebox with uniform energy absorption."""
    if not 0.0 < absorption <= 1.0:
        raise ValueError(f"Energy absorption must be in (0, 1], got {absorption}.")
    lx, ly, lz = dims_m
    volume = lx * ly * lz
    surface = 2.0 * (lx * ly + lx * lz + ly * lz)
    return 24.0 * math.log(10.0) * volume / (c * surface * absorption)


@dataclass(frozen=True)
class RoomSpec:
    """One shoebox room: ``dims_m`` (x, y, z) in metres and flat wall energy ``absorption``."""

    room_id: int
    dims_m: tuple[float, float, float]
    absorption: float

    def rt60(self, c: float = SPEED_OF_SOUND) -> float:
        """Sabine RT60 target in seconds."""
        return sabine_rt60(self.dims_m, self.absorption, c)

    def max_order(self, c: float = SPEED_OF_SOUND) -> int:
        """Image-source order reaching the Sabine RT60 (``pyroomacoustics.inverse_sabine``)."""
        import pyroomacoustics as pra

        absorption, order = pra.inverse_sabine(self.rt60(c), list(self.dims_m), c=c)
        assert abs(absorption - self.absorption) < 1e-9, (absorption, self.absorption)
        return int(order)

    @property
    def centre_m(self) -> np.ndarray:
        """Room centre (3,) in metres, where the array sits."""
        return np.asarray(self.dims_m, dtype=np.float64) / 2.0


def room_grid() -> list[RoomSpec]:
    """All 720 rooms of the paper's grid, ``room_id`` = list index."""
    combos = itertools.product(ROOM_X_M, ROOM_Y_M, ROOM_Z_M, ABSORPTIONS)
    return [RoomSpec(i, (x, y, z), r) for i, (x, y, z, r) in enumerate(combos)]


def split_rooms(seed: int = 0, sizes: dict[str, int] | None = None) -> dict[str, list[RoomSpec]]:
    """Seeded split of the grid into disjoint train / validation / test room lists.

    A random permutation of the 720 rooms (``numpy.random.default_rng(seed)``) is cut into
    consecutive blocks of ``sizes`` (default 360 / 60 / 60); rooms beyond their sum are unused.
    Each list keeps the permutation order, so its first N rooms are a random subset
    (used by partial banks).
    """
    sizes = dict(DEFAULT_SPLIT_SIZES if sizes is None else sizes)
    unknown = set(sizes) - set(SPLITS)
    if unknown:
        raise ValueError(f"Unknown split names {sorted(unknown)}; use {SPLITS}.")
    grid = room_grid()
    if sum(sizes.values()) > len(grid) or min(sizes.values(), default=0) < 0:
        raise ValueError(f"Split sizes {sizes} must be non-negative and sum to at most {len(grid)} rooms.")
    order = np.random.default_rng(seed).permutation(len(grid))
    out, start = {}, 0
    for split in SPLITS:
        n = sizes.get(split, 0)
        out[split] = [grid[i] for i in order[start : start + n]]
        start += n
    return out
