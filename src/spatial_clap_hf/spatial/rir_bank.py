"""The RIR bank: simulated room impulse responses stored on disk per split, and their lookup.

RIRs come from ``simulation.simulate_rirs`` (a room of ``rooms.room_grid()``, the array at the
room centre, a source ``distance_m`` away at ``azimuth_deg``); every RIR is a float32 array
shaped (channels, samples).

Symmetry: for the centred stereo pair (``geometry.is_centred_stereo_pair``) at elevation 0,
RIR(−θ) is RIR(θ) with its channels swapped and RIR(180° − θ) = RIR(θ), so only azimuths in
[0°, 90°] are simulated and the others are derived on lookup. Any other array (e.g. the
tetrahedral one) or a non-zero elevation simulates the full azimuth grid.

On disk (``RirBank.build`` / ``RirBank.load``)::

    DIR/bank_config.json     the RirBankConfig the bank was built with (plus its cache key)
    DIR/<split>/             one complete split, a ``datasets.Dataset`` (save_to_disk)
    DIR/.partial/<split>/    per-room shards of a split still being built

A split directory appears only when the split is complete (atomic rename), so an
interrupted build never leaves a half split that is later taken as complete; a new build
with the same parameters resumes from the finished room shards. A build into a directory
holding a bank with different parameters raises an error naming the differences.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import numpy as np

from ..utils.dataset_io import quiet_datasets, save_dataset_atomically, write_json_atomically
from .geometry import as_mic_positions, is_centred_stereo_pair, stereo_pair
from .rooms import DEFAULT_SPLIT_SIZES, SPEED_OF_SOUND, SPLITS, RoomSpec, canonical_split, room_grid, split_rooms
from .simulation import run_in_workers, simulate_rirs

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    import torch

__all__ = [
    "BANK_FORMAT_VERSION",
    "RirBank",
    "RirBankConfig",
    "RirKey",
    "azimuth_grid",
    "normalize_azimuth",
    "rir_features",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the on-disk layout or the simulation recipe changes.
BANK_FORMAT_VERSION = 2
_CONFIG_FILE = "bank_config.json"
_PARTIAL_DIR = ".partial"


class RirKey(NamedTuple):
    """Address of one RIR in a bank: ``room_id`` and ``azimuth_deg`` (degrees, any range)."""

    room_id: int
    azimuth_deg: float


def normalize_azimuth(azimuth_deg: float | np.ndarray) -> float | np.ndarray:
    """Map azimuths (degrees) onto [−180°, 180°)."""
    out = (np.asarray(azimuth_deg, dtype=np.float64) + 180.0) % 360.0 - 180.0
    return float(out) if out.ndim == 0 else out


def azimuth_grid(step_deg: int) -> np.ndarray:
    """Azimuths (degrees, float64) on a ``step_deg`` grid over [−180°, 180°): −180, −180+step, …"""
    _check_step(step_deg)
    return np.arange(-180, 180, step_deg, dtype=np.float64)


def _check_step(step_deg: int) -> None:
    if int(step_deg) != step_deg or step_deg <= 0 or 180 % int(step_deg) != 0:
        raise ValueError(
            f"azimuth step {step_deg}° is not supported: use a whole number of degrees dividing 180 "
            "(1, 2, 3, 4, 5, 6, 9, 10, 12, 15, 18, 20, 30, 36, 45, 60, 90 or 180)."
        )


def _az_key(azimuth_deg: float) -> int:
    """Integer key (millidegrees) of a normalised azimuth, robust to float round-off."""
    return int(round(normalize_azimuth(azimuth_deg) * 1000.0)) % 360000


def _room_cap(cap: Any) -> int:
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
        raise ValueError(f"max_rooms_per_split must be a whole number ≥ 1 (or None), got {cap!r}.")
    return int(cap)


def _room_caps(value: Any) -> int | tuple[tuple[str, int], ...] | None:
    """``max_rooms_per_split`` as None, an int, or sorted (split, cap) pairs with canonical split names."""
    if value is None:
        return None
    if isinstance(value, (Mapping, tuple, list)):
        return tuple(sorted((canonical_split(split), _room_cap(cap)) for split, cap in dict(value).items()))
    return _room_cap(value)


@dataclass(frozen=True)
class RirBankConfig:
    """Everything that determines a bank's content (and hence its cache key).

    ``seed`` draws the room split (``rooms.split_rooms``); ``max_rooms_per_split`` keeps the
    first N rooms of each split (None = all), or of the splits a mapping names (e.g.
    ``{"train": 24, "validation": 6, "test": 6}``; a split it leaves out keeps all its rooms);
    ``azimuth_step_deg`` sets the azimuth grid (whole degrees dividing 180; 1 = the paper's
    grid); ``mic_positions`` (num_mics, 3) metres relative to the array centre (default: the
    0.15 m stereo pair, channel 0 at +y); ``dtype`` the storage type of the RIRs ("float32" or
    "float16"; lookups return float32).
    """

    seed: int = 0
    max_rooms_per_split: int | tuple[tuple[str, int], ...] | None = None
    azimuth_step_deg: int = 1
    distance_m: float = 2.0
    elevation_deg: float = 0.0
    mic_positions: tuple[tuple[float, float, float], ...] = field(
        default_factory=lambda: tuple(map(tuple, stereo_pair().tolist()))
    )
    sample_rate: int = 16000
    speed_of_sound: float = SPEED_OF_SOUND
    dtype: str = "float32"
    split_sizes: tuple[tuple[str, int], ...] = tuple(DEFAULT_SPLIT_SIZES.items())

    def __post_init__(self) -> None:
        _check_step(self.azimuth_step_deg)
        object.__setattr__(self, "azimuth_step_deg", int(self.azimuth_step_deg))
        positions = as_mic_positions(self.mic_positions)
        object.__setattr__(self, "mic_positions", tuple(tuple(float(v) for v in row) for row in positions))
        object.__setattr__(self, "split_sizes", tuple((str(k), int(v)) for k, v in dict(self.split_sizes).items()))
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"dtype must be 'float32' or 'float16', got {self.dtype!r}.")
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive number of Hz, got {self.sample_rate}.")
        object.__setattr__(self, "max_rooms_per_split", _room_caps(self.max_rooms_per_split))
        if not -90.0 <= self.elevation_deg <= 90.0:
            raise ValueError(f"elevation_deg must be in [−90, 90], got {self.elevation_deg}.")

    @property
    def num_channels(self) -> int:
        return len(self.mic_positions)

    @property
    def uses_symmetry(self) -> bool:
        """Whether only 0°…90° are simulated (centred stereo pair, elevation 0)."""
        return self.elevation_deg == 0.0 and is_centred_stereo_pair(np.asarray(self.mic_positions))

    def azimuths(self) -> np.ndarray:
        """The bank's full azimuth grid in degrees over [−180°, 180°)."""
        return azimuth_grid(self.azimuth_step_deg)

    def simulated_azimuths(self) -> np.ndarray:
        """Azimuths (degrees) that are simulated and stored; the others are derived by symmetry."""
        grid = self.azimuths()
        return grid[(grid >= 0) & (grid <= 90)] if self.uses_symmetry else grid

    def rooms(self, split: str) -> list[RoomSpec]:
        """Rooms of ``split`` in this bank (the first ``max_rooms_per_split`` of the seeded split)."""
        split = canonical_split(split)
        rooms = split_rooms(self.seed, dict(self.split_sizes))[split]
        cap = self.max_rooms_per_split
        if isinstance(cap, tuple):
            cap = dict(cap).get(split)
        return rooms[:cap] if cap else rooms

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["mic_positions"] = [list(p) for p in self.mic_positions]
        data["split_sizes"] = dict(self.split_sizes)
        if isinstance(self.max_rooms_per_split, tuple):
            data["max_rooms_per_split"] = dict(self.max_rooms_per_split)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RirBankConfig":
        data = dict(data)
        data["mic_positions"] = tuple(tuple(p) for p in data["mic_positions"])
        data["split_sizes"] = tuple(dict(data["split_sizes"]).items())
        return cls(**data)

    def cache_key(self) -> str:
        """Hex digest identifying the bank content (parameters + format version)."""
        payload = json.dumps({"format": BANK_FORMAT_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def rir_features(dtype: str = "float32") -> "datasets.Features":
    """Columns of a bank split; ``rir`` is (channels, samples), lengths in metres, angles in degrees."""
    from datasets import Features, List, Value

    return Features(
        {
            "rir": List(List(Value(dtype))),
            "sample_rate": Value("int32"),
            "room_dim": List(Value("float64")),
            "absorption": Value("float64"),
            "rt60": Value("float64"),
            "max_order": Value("int32"),
            "azimuth_deg": Value("float64"),
            "elevation_deg": Value("float64"),
            "distance_m": Value("float64"),
            "mic_positions": List(List(Value("float64"))),
            "split": Value("string"),
            "room_id": Value("int32"),
        }
    )


def _room_rows(room: RoomSpec, split: str, config: RirBankConfig) -> dict[str, list]:
    """Simulate a room's stored azimuths and return its bank rows as columns."""
    azimuths = config.simulated_azimuths()
    rirs = simulate_rirs(
        room,
        azimuths,
        mic_positions=np.asarray(config.mic_positions),
        distance_m=config.distance_m,
        elevation_deg=config.elevation_deg,
        sample_rate=config.sample_rate,
        speed_of_sound=config.speed_of_sound,
    )
    mics = (room.centre_m + np.asarray(config.mic_positions)).tolist()
    n = len(rirs)
    return {
        "rir": [r.astype(config.dtype) for r in rirs],
        "sample_rate": [config.sample_rate] * n,
        "room_dim": [list(room.dims_m)] * n,
        "absorption": [room.absorption] * n,
        "rt60": [room.rt60(config.speed_of_sound)] * n,
        "max_order": [room.max_order(config.speed_of_sound)] * n,
        "azimuth_deg": [float(a) for a in azimuths],
        "elevation_deg": [config.elevation_deg] * n,
        "distance_m": [config.distance_m] * n,
        "mic_positions": [mics] * n,
        "split": [split] * n,
        "room_id": [room.room_id] * n,
    }


def _worker_task(task: tuple[RoomSpec, str, RirBankConfig]) -> tuple[int, dict[str, list]]:
    room, split, config = task
    return room.room_id, _room_rows(room, split, config)



# ---------------------------------------------------------------------------------------------
# The bank
# ---------------------------------------------------------------------------------------------


class RirBank:
    """A set of simulated RIRs per split, addressed by ``(room_id, azimuth_deg)``.

    Build or reuse with ``RirBank.build(dir, config)``, open with ``RirBank.load(dir)``.
    Lookups return float32; azimuths not stored are derived by the stereo symmetry.
    RIR rows stay memory-mapped on disk (Arrow) unless ``in_memory=True``, which reads every
    stored RIR into RAM once, in the storage dtype (the paper's 480 rooms at 1°: ≈ 5 GB as
    float32, ≈ 2.5 GB as float16).
    """

    def __init__(self, config: RirBankConfig, splits: dict[str, "datasets.Dataset"], *, in_memory: bool = False):
        if not splits:
            raise ValueError("A RirBank needs at least one split.")
        self.config = config
        self._data = {canonical_split(k): v.with_format("numpy") for k, v in splits.items()}
        self._index: dict[tuple[int, int], tuple[str, int]] = {}
        self._rooms: dict[str, list[int]] = {}
        self._room_meta: dict[int, dict] = {}
        for split, ds in self._data.items():
            columns = ds.with_format(None).select_columns(["room_id", "azimuth_deg"])
            room_ids = np.asarray(list(columns["room_id"]), dtype=np.int64)
            azimuths = np.asarray(list(columns["azimuth_deg"]), dtype=np.float64)
            self._rooms[split] = list(dict.fromkeys(room_ids.tolist()))
            for row, (room_id, az) in enumerate(zip(room_ids.tolist(), azimuths.tolist())):
                self._index[(room_id, _az_key(az))] = (split, row)
        grid = {r.room_id: r for r in room_grid()}
        for split, ids in self._rooms.items():
            for room_id in ids:
                self._room_meta[room_id] = {"split": split, "room": grid[room_id]}
        self._max_lengths: dict[str, int] = {}
        self._cache: dict[tuple[str, int], np.ndarray] | None = None
        if in_memory:
            self._cache = {}
            for split, ds in self._data.items():
                for row in range(len(ds)):
                    self._cache[(split, row)] = np.asarray(ds[row]["rir"], dtype=config.dtype)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: str | os.PathLike, *, in_memory: bool = False) -> "RirBank":
        """Open the complete splits of a bank directory written by ``build``."""
        import datasets

        directory = Path(directory)
        config_path = directory / _CONFIG_FILE
        if not config_path.exists():
            raise FileNotFoundError(
                f"{directory} holds no RIR bank ({_CONFIG_FILE} missing); build one with "
                "`spatial-clap make-rirs --output-dir DIR` or RirBank.build(DIR)."
            )
        stored = json.loads(config_path.read_text())
        config = RirBankConfig.from_dict(stored["config"])
        present = [s for s in SPLITS if (directory / s).is_dir()]
        if not present:
            raise FileNotFoundError(
                f"{directory} has no complete split yet (an interrupted build?); re-run the same "
                "build command to finish it."
            )
        with quiet_datasets():
            splits = {s: datasets.load_from_disk(str(directory / s)) for s in present}
        return cls(config, splits, in_memory=in_memory)

    @classmethod
    def build(
        cls,
        directory: str | os.PathLike,
        config: RirBankConfig | None = None,
        *,
        splits: Sequence[str] = SPLITS,
        num_workers: int = 1,
        show_progress: bool = True,
        start_method: str | None = None,
    ) -> "RirBank":
        """Simulate the missing ``splits`` of a bank into ``directory`` and return the bank.

        Complete splits with the same parameters are reused without recomputation; finished
        room shards of an interrupted build are resumed. ``num_workers`` > 1 simulates rooms
        in that many worker processes (one thread each; ``start_method`` "fork" by default where
        available, else "spawn" — with spawn, call from under ``if __name__ == "__main__":``);
        0 or 1 runs in this process.
        Raises ValueError when ``directory`` holds a bank built with other parameters.
        """
        config = config or RirBankConfig()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        _claim_directory(directory, config)
        wanted = [canonical_split(s) for s in dict.fromkeys(splits)]
        todo = [s for s in wanted if not (directory / s).is_dir()]
        if not todo:
            logger.info("RIR bank %s: splits %s already complete, reusing them.", directory, wanted)
        else:
            _build_splits(directory, config, todo, num_workers, show_progress, start_method)
        partial = directory / _PARTIAL_DIR
        if partial.is_dir() and not any(partial.iterdir()):
            partial.rmdir()
        return cls.load(directory)

    # -- description --------------------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        """Sample rate of every RIR in Hz."""
        return self.config.sample_rate

    @property
    def num_channels(self) -> int:
        return self.config.num_channels

    @property
    def splits(self) -> list[str]:
        """Splits present in this bank, in ``SPLITS`` order."""
        return [s for s in SPLITS if s in self._data]

    def rooms(self, split: str) -> list[int]:
        """Room ids of ``split`` (in the split's seeded order)."""
        name = canonical_split(split)
        if name not in self._rooms:
            raise KeyError(f"This RIR bank has no {name!r} split (it has {self.splits}); build it with --split {name}.")
        return list(self._rooms[name])

    def room(self, room_id: int) -> RoomSpec:
        """The room (dimensions, absorption) behind ``room_id``."""
        return self._meta(room_id)["room"]

    def split_of(self, room_id: int) -> str:
        return self._meta(room_id)["split"]

    def azimuths(self) -> np.ndarray:
        """All azimuths (degrees, [−180°, 180°)) that ``get`` accepts."""
        return self.config.azimuths()

    def __len__(self) -> int:
        """Number of addressable RIRs: rooms × azimuths."""
        return sum(len(r) for r in self._rooms.values()) * len(self.azimuths())

    def __repr__(self) -> str:
        rooms = {s: len(r) for s, r in self._rooms.items()}
        return (
            f"RirBank(rooms={rooms}, azimuth_step={self.config.azimuth_step_deg}°, "
            f"channels={self.num_channels}, sample_rate={self.sample_rate} Hz)"
        )

    # -- lookup -------------------------------------------------------------------------------

    def get(self, room_id: int, azimuth_deg: float) -> np.ndarray:
        """The RIR of a source at ``azimuth_deg`` (degrees, any range) in room ``room_id``.

        Returns float32 shaped (channels, samples) at ``sample_rate`` Hz (a fresh array).
        """
        stored, swap = self._stored_azimuth(azimuth_deg)
        key = (int(room_id), _az_key(stored))
        if key not in self._index:
            self._meta(room_id)
            raise KeyError(f"Room {room_id} has no RIR at {stored}°; the bank is incomplete or corrupt.")
        location = self._index[key]
        if self._cache is not None:
            rir = self._cache[location].astype(np.float32)  # a copy, float32 also from float16 storage
        else:
            split, row = location
            rir = np.asarray(self._data[split][row]["rir"], dtype=np.float32)
        return np.ascontiguousarray(rir[::-1]) if swap else rir

    def max_length(self, split: str) -> int:
        """Samples of the longest RIR of ``split`` (read from the stored list lengths, no RIR decoded)."""
        import pyarrow.compute as pc

        name = canonical_split(split)
        self.rooms(name)  # a clear error for a split the bank lacks
        if name not in self._max_lengths:
            column = self._data[name].data.column("rir")
            channels = [chunk.flatten() for chunk in column.chunks]  # one list per channel
            self._max_lengths[name] = max(int(pc.max(pc.list_value_length(c)).as_py() or 0) for c in channels)
        return self._max_lengths[name]

    def get_batch(
        self,
        keys: Sequence[tuple[int, float]],
        *,
        device: "torch.device | str | None" = None,
        max_length: int | None = None,
    ) -> "torch.Tensor":
        """RIRs of ``keys`` ((room_id, azimuth_deg) pairs) as one zero-padded float32 tensor.

        Shape (batch, channels, samples) with samples = the longest RIR of the batch, or
        exactly ``max_length`` when given (longer RIRs are cut there, shorter ones padded).
        """
        import torch

        if len(keys) == 0:
            raise ValueError("get_batch needs at least one (room_id, azimuth_deg) key.")
        rirs = [self.get(room_id, az) for room_id, az in keys]
        length = max_length if max_length is not None else max(r.shape[1] for r in rirs)
        batch = np.zeros((len(rirs), self.num_channels, length), dtype=np.float32)
        for i, rir in enumerate(rirs):
            n = min(length, rir.shape[1])
            batch[i, :, :n] = rir[:, :n]
        return torch.from_numpy(batch).to(device) if device is not None else torch.from_numpy(batch)

    def stored_key(self, room_id: int, azimuth_deg: float) -> tuple[tuple[int, int], bool]:
        """``((room_id, stored azimuth in millidegrees), swap)``: which stored RIR ``get`` returns for the
        key, and whether with its channels swapped (the mirror image of a stored azimuth)."""
        stored, swap = self._stored_azimuth(azimuth_deg)
        return (int(room_id), _az_key(stored)), swap

    def _stored_azimuth(self, azimuth_deg: float) -> tuple[float, bool]:
        """The stored azimuth holding the RIR of ``azimuth_deg`` and whether to swap channels."""
        az = normalize_azimuth(float(azimuth_deg))
        step = self.config.azimuth_step_deg
        if abs(az / step - round(az / step)) > 1e-6:
            raise ValueError(
                f"Azimuth {azimuth_deg}° is not on this bank's {step}° grid; use a value from bank.azimuths()."
            )
        az = float(round(az / step) * step)
        if not self.config.uses_symmetry:
            return az, False
        if az > 90.0:
            az = 180.0 - az
        elif az < -90.0:
            az = -180.0 - az
        return abs(az), az < 0

    def _meta(self, room_id: int) -> dict:
        if int(room_id) not in self._room_meta:
            raise KeyError(f"Room {room_id} is not in this RIR bank (splits {self.splits}); see bank.rooms(split).")
        return self._room_meta[int(room_id)]


def _claim_directory(directory: Path, config: RirBankConfig) -> None:
    """Record ``config`` in ``directory`` or check it matches the one already recorded."""
    path = directory / _CONFIG_FILE
    if path.exists():
        stored = json.loads(path.read_text())
        if stored.get("cache_key") != config.cache_key():
            old = stored.get("config", {})
            new = config.to_dict()
            diff = {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}
            if stored.get("format") != BANK_FORMAT_VERSION:
                diff["format"] = (stored.get("format"), BANK_FORMAT_VERSION)
            raise ValueError(
                f"{directory} holds an RIR bank built with different parameters "
                f"(stored → requested: {diff}); use another --output-dir or delete that bank."
            )
        return
    if any(p.name in SPLITS for p in directory.iterdir()):
        raise ValueError(f"{directory} holds split folders but no {_CONFIG_FILE}; use an empty or new directory.")
    import pyroomacoustics as pra

    write_json_atomically(
        {
            "format": BANK_FORMAT_VERSION,
            "cache_key": config.cache_key(),
            "config": config.to_dict(),
            "pyroomacoustics": pra.__version__,
        },
        path,
    )


def _build_splits(
    directory: Path,
    config: RirBankConfig,
    splits: list[str],
    num_workers: int,
    show_progress: bool,
    start_method: str | None,
) -> None:
    import datasets
    from tqdm.auto import tqdm

    for stale in directory.glob(".tmp-*"):  # left by an interrupted final save
        shutil.rmtree(stale, ignore_errors=True)
    per_room = len(config.simulated_azimuths())
    tasks, done = [], {}
    for split in splits:
        shard_dir = directory / _PARTIAL_DIR / split
        shard_dir.mkdir(parents=True, exist_ok=True)
        for stale in shard_dir.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        finished = {int(p.name.split("_")[1]) for p in shard_dir.glob("room_*") if p.is_dir()}
        done[split] = finished
        tasks += [(room, split, config) for room in config.rooms(split) if room.room_id not in finished]
    # Longest rooms first (image-source cost grows with max_order³): balances the workers.
    tasks.sort(key=lambda task: -task[0].max_order(config.speed_of_sound))
    resumed = sum(len(v) for v in done.values())
    if resumed:
        logger.info("RIR bank %s: resuming, %d room(s) already simulated.", directory, resumed)
    total = sum(len(config.rooms(s)) for s in splits) * per_room
    progress = tqdm(
        total=total, initial=resumed * per_room, desc="Simulating RIRs", unit="rir", disable=not show_progress
    )
    features = rir_features(config.dtype)

    def store(room_id: int, split: str, rows: dict) -> None:
        shard = datasets.Dataset.from_dict(rows, features=features)
        save_dataset_atomically(shard, directory / _PARTIAL_DIR / split / f"room_{room_id:04d}")
        progress.update(len(rows["rir"]))

    split_of_room = {room.room_id: split for room, split, _ in tasks}
    try:
        for room_id, rows in run_in_workers(_worker_task, tasks, num_workers=num_workers, start_method=start_method):
            store(room_id, split_of_room[room_id], rows)
    finally:
        progress.close()
    for split in splits:
        shard_dir = directory / _PARTIAL_DIR / split
        with quiet_datasets():
            shards = [datasets.load_from_disk(str(shard_dir / f"room_{r.room_id:04d}")) for r in config.rooms(split)]
        save_dataset_atomically(datasets.concatenate_datasets(shards), directory / split)
        shutil.rmtree(shard_dir, ignore_errors=True)
        logger.info("RIR bank %s: split %r complete (%d rooms).", directory, split, len(shards))
