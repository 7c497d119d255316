"""Spatialized datasets on disk: scenes rendered once, written as Parquet shards anyone can load.

``spatialize`` draws scenes from a source corpus split and the RIR bank's rooms of that split
and writes them; ``data.eval_sets`` writes the evaluation sets with the same code
(``write_part``). Every row follows ``schema.spatial_features``: the stereo mixture
y_σ = (1/n) Σ_i h_σ(i) * x_i of a scene (``spatial.permuted_mixtures``), FLAC-encoded, with its
captions, sources, directions and room.

Layout of an output directory (the layout ``push_to_hub`` gives on the Hub)::

    DIR/README.md                         dataset card (YAML ``configs`` name every split's files)
    DIR/spatialized.json                  what was built: settings, parts, counts
    DIR/skipped.json                      source clips left out (missing or undecodable)
    DIR/<data_dir>/<split>/<split>-00000-of-00004.parquet
    DIR/.partial/<config>/<split>/        shards of a part still being built

A *part* is one split of one config (``spatialize``: config ``default``, data under ``data/``;
evaluation sets: one config per set). A part's shards are written under ``.partial`` (each
file written under a temporary name, then renamed) and the part's folder is renamed into place
only once all of them exist, so a reader never sees a half-built split, and a killed build
resumes from its finished shards. A part that is complete with the same parameters is reused;
one built with other parameters is refused, as is a directory holding anything else.

Audio is quantised to ``bit_depth`` bits (16 by default, or 24) and stored as FLAC, which is
lossless at that depth: a decoded row equals ``gain`` × the rendered mixture to within half a
quantisation step (2^−bit_depth of full scale). ``gain`` is 1 unless the mixture would clip,
then full scale over its peak (counted and logged).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from ..spatial.conventions import DEFAULT_PHRASES, PhraseSet, compose_caption, doa_class, fold_azimuth
from ..spatial.rir_bank import RirBank
from ..spatial.rooms import SPLITS, canonical_split
from ..spatial.simulation import run_in_workers
from ..spatial.spatializer import PairingSampler, permutations_of, permuted_mixtures
from ..utils.dataset_io import quiet_datasets, write_json_atomically
from .audio_io import AudioDecodeError, decoded_to_array
from .clips import ClipReader, ScanReport
from .schema import spatial_features

__all__ = [
    "BIT_DEPTHS",
    "DEFAULT_BIT_DEPTH",
    "MANIFEST_FILE",
    "SKIPPED_FILE",
    "AudioClips",
    "DatasetSettingsError",
    "PartInfo",
    "ScenePlan",
    "encode_audio",
    "load_spatialized",
    "plan_pairings",
    "push_spatialized",
    "quantize",
    "read_manifest",
    "spatialize",
    "write_part",
]

logger = logging.getLogger(__name__)

#: Bumped whenever the layout or the rendering of a spatialized dataset changes.
FORMAT_VERSION = 1
MANIFEST_FILE = "spatialized.json"
SKIPPED_FILE = "skipped.json"
_PARTIAL = ".partial"
_PART_FILE = "part.json"
_SCAN_FILE = "scan.json"
#: Supported PCM depths of the FLAC audio.
BIT_DEPTHS = (16, 24)
#: Rows per Parquet row group: the unit a streaming reader fetches (as datasets writes media).
_ROWS_PER_GROUP = 100
#: Rows rendered per worker task: small enough that a few hundred rows keep every worker busy.
_ROWS_PER_TASK = 16
_SCAN_CHUNK = 64


# ---------------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------------


#: PCM bits of the stored audio. 24, not 16: the inter-channel phase features read reverberant
#: tails below 2^-16 of full scale, and 16-bit evaluation sets cost the quickstart's SELD+SCL model
#: about 5 points of zero-shot DoA (docs/experiments.md).
DEFAULT_BIT_DEPTH = 24


def quantize(waveform: np.ndarray, bit_depth: int = DEFAULT_BIT_DEPTH) -> tuple[np.ndarray, float]:
    """Quantise a float waveform (C, T) to ``bit_depth``-bit PCM levels; returns (levels / 2^(b−1), gain).

    ``gain`` is 1 unless the waveform's peak exceeds full scale ((2^(b−1) − 1) / 2^(b−1)), then
    full scale / peak: the waveform is scaled by it before rounding to the nearest level, so the
    result differs from ``gain · waveform`` by at most 2^−b.
    """
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit_depth must be one of {BIT_DEPTHS}, got {bit_depth}.")
    scale = float(2 ** (bit_depth - 1))
    full = (scale - 1.0) / scale
    x = np.asarray(waveform, dtype=np.float64)
    peak = float(np.abs(x).max()) if x.size else 0.0
    gain = 1.0 if peak <= full else full / peak
    levels = np.clip(np.rint(x * gain * scale), -scale, scale - 1.0)
    return (levels / scale).astype(np.float32), gain


def encode_audio(waveform: np.ndarray, sample_rate: int, bit_depth: int = DEFAULT_BIT_DEPTH) -> tuple[bytes, float]:
    """FLAC bytes of a waveform (C, T) float at ``sample_rate`` Hz, quantised by ``quantize``; and its gain.

    The encoder stores 24-bit samples; levels of a 16-bit grid leave 8 low bits zero, which FLAC
    drops ("wasted bits"), so a 16-bit row costs what 16-bit FLAC costs.
    """
    from torchcodec.encoders import AudioEncoder

    levels, gain = quantize(waveform, bit_depth)
    encoded = AudioEncoder(torch.from_numpy(levels), sample_rate=int(sample_rate)).to_tensor(format="flac")
    return _without_padding(encoded.numpy().tobytes()), gain


def _without_padding(flac: bytes) -> bytes:
    """FLAC bytes without PADDING metadata blocks (FFmpeg reserves 8 KiB for later tag edits,
    as much as a whole one-second stereo row); the audio frames are unchanged."""
    if flac[:4] != b"fLaC":
        raise ValueError("Not a FLAC stream.")
    blocks, position, last = [], 4, False
    while not last:
        header = flac[position]
        last, kind = bool(header & 0x80), header & 0x7F
        length = int.from_bytes(flac[position + 1 : position + 4], "big")
        if kind != 1:  # 1 = PADDING
            blocks.append(bytearray(flac[position : position + 4 + length]))
        position += 4 + length
    for block in blocks:
        block[0] &= 0x7F
    blocks[-1][0] |= 0x80  # the last metadata block carries the flag
    return b"fLaC" + b"".join(bytes(b) for b in blocks) + flac[position:]


class AudioClips:
    """The ``audio`` column of a spatialized dataset as float32 (C, T) arrays at the rendered level.

    ``clips[i]`` is one array, ``clips[a:b]`` a list; ``sampling_rate`` (Hz) is the column's. Rows
    whose mixture would have clipped are stored scaled down by their ``gain`` (< 1); they are read
    back divided by it, so every clip has the level it was rendered at, as on-the-fly
    spatialization gives it (up to the quantisation step / gain). This is what
    ``models.loading.audio_embeddings`` embeds and what training reads.
    """

    def __init__(self, dataset: datasets.Dataset, column: str = "audio"):
        feature = dataset.features.get(column)
        if not isinstance(feature, datasets.Audio) or feature.sampling_rate is None:
            raise ValueError(
                f"Column {column!r} is not an Audio column with a sampling rate; is this a spatialized dataset "
                "(spatial-clap spatialize / make-eval-sets)?"
            )
        self.sampling_rate = int(feature.sampling_rate)
        self._rows = dataset.select_columns([column]).cast_column(column, datasets.Audio(decode=False))
        self._column = column
        self._gains = np.asarray(dataset["gain"], dtype=np.float64) if "gain" in dataset.column_names else None

    def __len__(self) -> int:
        return len(self._rows)

    def _array(self, value: Mapping[str, Any], index: int) -> np.ndarray:
        array, rate = decoded_to_array(value)
        if rate != self.sampling_rate:
            raise ValueError(
                f"A row of the {self._column!r} column is at {rate} Hz, not the column's {self.sampling_rate} Hz."
            )
        if self._gains is not None and self._gains[index] != 1.0:
            array = (array / self._gains[index]).astype(np.float32)
        return array

    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            rows = range(len(self))[index]
            return [self._array(v, i) for v, i in zip(self._rows[index][self._column], rows)]
        return self._array(self._rows[int(index)][self._column], int(index))


# ---------------------------------------------------------------------------------------------
# Scenes and their rows
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenePlan:
    """One scene to render: corpus rows ``clips`` (source i = clip i), their content ``captions``,
    ``room_id`` and the azimuth drawn for each source (degrees). ``scl``: write all n!
    assignments as rows (identity first), else the drawn one only."""

    scene_id: str
    clips: tuple[int, ...]
    captions: tuple[str, ...]
    room_id: int
    azimuths_deg: tuple[float, ...]
    pairing: int = 0
    scl: bool = False

    @property
    def num_rows(self) -> int:
        return math.factorial(len(self.clips)) if self.scl and len(self.clips) > 1 else 1

    @property
    def assignments(self) -> list[tuple[int, ...]]:
        n = len(self.clips)
        return permutations_of(n) if self.scl and n > 1 else [tuple(range(n))]


def _row(plan: ScenePlan, perm: tuple[int, ...], flac: bytes, gain: float, reader: ClipReader, bank: RirBank,
         phrases: PhraseSet) -> dict:
    azimuths = [float(plan.azimuths_deg[j]) for j in perm]
    room = bank.room(plan.room_id)
    return {
        "audio": {"bytes": flac, "path": f"{plan.scene_id}-{''.join(map(str, perm))}.flac"},
        "caption": compose_caption(plan.captions, azimuths, phrases),
        "caption_src": compose_caption(plan.captions, None, phrases),
        "source_captions": list(plan.captions),
        "source_ids": [reader.id(c) for c in plan.clips],
        "labels": [reader.labels(c) for c in plan.clips],
        "n_sources": len(plan.clips),
        "azimuth_deg": azimuths,
        "folded_azimuth_deg": [float(fold_azimuth(a)) for a in azimuths],
        "doa_class": [int(doa_class(a, phrases)) for a in azimuths],
        "room_id": int(plan.room_id),
        "room_dim": [float(v) for v in room.dims_m],
        "absorption": float(room.absorption),
        "rt60": float(room.rt60(bank.config.speed_of_sound)),
        "scene_id": plan.scene_id,
        "assignment": list(perm),
        "pairing": int(plan.pairing),
        "gain": float(gain),
    }


def render_scenes(
    plans: Sequence[ScenePlan], reader: ClipReader, bank: RirBank, device: torch.device | str = "cpu"
) -> Iterator[tuple[ScenePlan, torch.Tensor | None, str | None]]:
    """Render plans: yields (plan, waveforms (rows, C, T) float32 on the CPU, None) in plan order, or
    (plan, None, reason) for a plan whose source clips do not decode. Plans with the same number
    of sources are convolved together (batched FFT on ``device``)."""
    device = torch.device(device)
    out: dict[int, tuple[torch.Tensor | None, str | None]] = {}
    for n in sorted({len(p.clips) for p in plans}):
        for scl in (False, True):
            group, sources = [], []
            for index, plan in enumerate(plans):
                if len(plan.clips) != n or plan.scl != scl:
                    continue
                try:
                    sources.append(np.stack([reader.clip(c) for c in plan.clips]))
                    group.append(index)
                except AudioDecodeError as err:
                    out[index] = (None, err.reason)
            if not group:
                continue
            chosen = [plans[i] for i in group]
            rirs = bank.get_batch([(p.room_id, az) for p in chosen for az in p.azimuths_deg], device=device)
            rirs = rirs.reshape(len(chosen), n, *rirs.shape[1:])
            audio = permuted_mixtures(torch.from_numpy(np.stack(sources)).to(device), rirs, chosen[0].assignments)
            for i, waves in zip(group, audio.cpu()):
                out[i] = (waves, None)
    for index, plan in enumerate(plans):
        yield plan, *out[index]


# ---------------------------------------------------------------------------------------------
# Row groups (rendered in worker processes) and shards
# ---------------------------------------------------------------------------------------------


@dataclass
class _Context:
    """What every render task needs; set before the workers fork, so they inherit it."""

    reader: ClipReader
    bank: RirBank
    features: datasets.Features
    bit_depth: int
    phrases: PhraseSet
    device: torch.device


_CONTEXT: _Context | None = None


def _shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def _stats_name(index: int) -> str:
    return f".stats-{index:05d}.json"


def _chunks(plans: Sequence[ScenePlan], max_rows: int) -> Iterator[list[ScenePlan]]:
    chunk, rows = [], 0
    for plan in plans:
        if chunk and rows + plan.num_rows > max_rows:
            yield chunk
            chunk, rows = [], 0
        chunk.append(plan)
        rows += plan.num_rows
    if chunk:
        yield chunk


def _render_group(task: tuple[int, int, list[ScenePlan]]) -> tuple[int, int, Any, dict]:
    """Render one group of a shard's scenes: (shard, group, Arrow table or None, stats)."""
    import pyarrow as pa

    shard, group, plans = task
    ctx = _CONTEXT
    assert ctx is not None, "the render context is set before the workers start"
    stats = {"scenes": 0, "rows": 0, "clipped_rows": 0, "audio_seconds": 0.0, "skipped_scenes": []}
    rows = []
    for plan, waves, reason in render_scenes(plans, ctx.reader, ctx.bank, ctx.device):
        if waves is None:
            stats["skipped_scenes"].append({"scene_id": plan.scene_id, "reason": reason})
            continue
        for perm, wave in zip(plan.assignments, waves.numpy()):
            flac, gain = encode_audio(wave, ctx.bank.sample_rate, ctx.bit_depth)
            stats["clipped_rows"] += int(gain < 1.0)
            stats["audio_seconds"] += wave.shape[-1] / ctx.bank.sample_rate
            rows.append(_row(plan, perm, flac, gain, ctx.reader, ctx.bank, ctx.phrases))
        stats["scenes"] += 1
    stats["rows"] = len(rows)
    if not rows:
        return shard, group, None, stats
    columns = {key: [r[key] for r in rows] for key in ctx.features}
    table = pa.Table.from_pydict(ctx.features.encode_batch(columns), schema=ctx.features.arrow_schema)
    return shard, group, table, stats


class _ShardWriter:
    """Collects the rendered groups of each shard (they arrive in any order) and writes a shard, groups
    in order and in Parquet row groups of ``_ROWS_PER_GROUP`` rows, once all of them are in: under a
    temporary name, renamed, then its stats file, which marks it done."""

    def __init__(self, folder: Path, split: str, groups: list[list[list[ScenePlan]]], features: datasets.Features):
        self.folder, self.split, self.groups, self.features = folder, split, groups, features
        self.pending: dict[int, dict[int, tuple[Any, dict]]] = {}

    def add(self, shard: int, group: int, table: Any, stats: dict) -> dict | None:
        """Store one row group; returns the shard's stats when it was the last one (shard written)."""
        self.pending.setdefault(shard, {})[group] = (table, stats)
        if len(self.pending[shard]) < len(self.groups[shard]):
            return None
        parts = self.pending.pop(shard)
        return self._write(shard, [parts[g] for g in range(len(self.groups[shard]))])

    def _write(self, shard: int, parts: list[tuple[Any, dict]]) -> dict:
        import pyarrow as pa
        import pyarrow.parquet as pq

        final = self.folder / _shard_name(self.split, shard, len(self.groups))
        tmp = self.folder / f".tmp-{final.name}-{os.getpid()}"
        schema = self.features.arrow_schema
        tables = [table for table, _ in parts if table is not None]
        with pq.ParquetWriter(str(tmp), schema) as writer:
            writer.write_table(pa.concat_tables(tables) if tables else schema.empty_table(), row_group_size=_ROWS_PER_GROUP)
        os.replace(tmp, final)
        stats = {
            "shard": shard,
            "scenes": sum(s["scenes"] for _, s in parts),
            "rows": sum(s["rows"] for _, s in parts),
            "clipped_rows": sum(s["clipped_rows"] for _, s in parts),
            "audio_seconds": sum(s["audio_seconds"] for _, s in parts),
            "skipped_scenes": [entry for _, s in parts for entry in s["skipped_scenes"]],
            "bytes": final.stat().st_size,
        }
        write_json_atomically(stats, self.folder / _stats_name(shard))
        return stats


def _scan_chunk(indices: list[int]) -> ScanReport:
    ctx = _CONTEXT
    assert ctx is not None
    return ctx.reader.scan(indices)


def _run(fn: Callable, tasks: list, num_proc: int) -> Iterator:
    """``run_in_workers`` with forked workers (they inherit ``_CONTEXT``); in this process where
    fork is unavailable."""
    import multiprocessing

    if num_proc > 1 and "fork" not in multiprocessing.get_all_start_methods():
        logger.warning("This platform cannot fork worker processes; spatializing in one process.")
        num_proc = 1
    return run_in_workers(fn, tasks, num_workers=num_proc, start_method="fork" if num_proc > 1 else None)


# ---------------------------------------------------------------------------------------------
# Parts, the manifest and the output directory
# ---------------------------------------------------------------------------------------------


@dataclass
class PartInfo:
    """A complete part: its config, split, folder (relative to the output directory) and counts."""

    config: str
    split: str
    data_dir: str
    rows: int
    scenes: int
    shards: int
    bytes: int
    audio_seconds: float
    clipped_rows: int
    skipped_clips: int
    room_ids: list[int] = field(default_factory=list)
    params: dict = field(default_factory=dict)


def read_manifest(directory: str | os.PathLike) -> dict:
    """The ``spatialized.json`` of an output directory (raises FileNotFoundError when absent)."""
    path = Path(directory) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{directory} holds no spatialized dataset ({MANIFEST_FILE} missing); build one with "
            "`spatial-clap spatialize` or `spatial-clap make-eval-sets`."
        )
    return json.loads(path.read_text())


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


def _differences(old: Mapping, new: Mapping) -> dict:
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


class DatasetSettingsError(ValueError):
    """The output folder holds a spatialized dataset built with other settings (rate, clip length,
    bit depth, phrases, RIR bank) or a part built with other parameters (source corpus, scene
    sizes, seed, ...); the message names the differences."""


def _claim(directory: Path, settings: dict) -> dict:
    """The manifest of ``directory``, created for ``settings`` when the directory is new or empty.

    Raises when the directory holds something else, or a dataset built with other settings."""
    if directory.exists() and not directory.is_dir():
        raise NotADirectoryError(f"{directory} is a file; give a folder for the spatialized dataset.")
    path = directory / MANIFEST_FILE
    if path.is_file():
        manifest = json.loads(path.read_text())
        if manifest.get("settings") != settings:
            raise DatasetSettingsError(
                f"{directory} holds a spatialized dataset built with other settings (stored → requested: "
                f"{_differences(manifest.get('settings', {}), settings)}); use another --output-dir or delete it."
            )
        return manifest
    if directory.is_dir() and any(directory.iterdir()):
        raise FileExistsError(
            f"{directory} exists and holds something other than a spatialized dataset; choose an empty or new folder."
        )
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {"format": FORMAT_VERSION, "settings": settings, "parts": {}}
    write_json_atomically(manifest, path)
    return manifest


def _dataset_settings(bank: RirBank, *, clip_seconds: float, bit_depth: int, phrases: PhraseSet) -> dict:
    """What every part of one output directory shares (the bank decides the rooms of each split)."""
    return {
        "format": FORMAT_VERSION,
        "rir_bank": {"cache_key": bank.config.cache_key(), **bank.config.to_dict()},
        "sample_rate": bank.sample_rate,
        "num_channels": bank.num_channels,
        "clip_seconds": float(clip_seconds),
        "bit_depth": int(bit_depth),
        "phrases": list(phrases.phrases),
    }


def corpus_identity(split: datasets.Dataset, name: str | os.PathLike) -> dict:
    """How a part records its source corpus split: a name (its folder or Hub id), its kind
    (``dataset_card.SOURCES``), the split's fingerprint and size."""
    from .dataset_card import corpus_source

    return {
        "name": str(name),
        "source": corpus_source(split.info, name if Path(name).is_dir() else None),
        "fingerprint": getattr(split, "_fingerprint", None),
        "rows": len(split),
    }


def _finished_shards(folder: Path, split: str, total: int) -> dict[int, dict]:
    """Stats of the shards of ``folder`` that are complete (their stats file is written last)."""
    done = {}
    for path in folder.glob(".stats-*.json"):
        stats = json.loads(path.read_text())
        if (folder / _shard_name(split, int(stats["shard"]), total)).is_file():
            done[int(stats["shard"])] = stats
    return done


def write_part(
    output_dir: str | os.PathLike,
    *,
    config: str,
    split: str,
    data_dir: str,
    reader: ClipReader,
    bank: RirBank,
    plan: Callable[[ClipReader], list[ScenePlan]],
    params: dict,
    clip_seconds: float,
    bit_depth: int = DEFAULT_BIT_DEPTH,
    phrases: PhraseSet = DEFAULT_PHRASES,
    num_proc: int = 1,
    rows_per_shard: int = 1000,
    device: torch.device | str | None = None,
    show_progress: bool = True,
) -> PartInfo:
    """Build one part (one split of one config) of a spatialized dataset in ``output_dir``.

    ``reader`` reads the source corpus split; the clips it finds undecodable (``ClipReader.scan``,
    once) are left out and listed in ``skipped.json``, then ``plan(reader)`` draws the scenes
    (deterministic). ``params`` (JSON) records what determines the scenes: a part already complete
    with the same ``params`` and settings is reused; another is refused. Shards of
    ``rows_per_shard`` rows (whole scenes) are rendered by ``num_proc`` forked workers on the CPU
    (or in this process on ``device``), under ``.partial`` until all exist, then moved into
    ``<data_dir>/<split>/``. Returns the part's counts; the dataset card is rewritten.
    """
    from .dataset_card import write_dataset_card

    global _CONTEXT
    directory = Path(output_dir)
    split = canonical_split(split)
    if bit_depth not in BIT_DEPTHS:
        raise ValueError(f"bit_depth must be one of {BIT_DEPTHS}, got {bit_depth}.")
    if rows_per_shard < 1 or num_proc < 0:
        raise ValueError(f"rows_per_shard must be >= 1 and num_proc >= 0, got {rows_per_shard} and {num_proc}.")
    device = torch.device(device) if device is not None else torch.device("cpu")
    if device.type != "cpu" and num_proc > 1:
        raise ValueError(f"Rendering on {device} runs in this process; use num_proc 1 (workers render on the CPU).")
    if reader.sample_rate != bank.sample_rate:
        raise ValueError(f"The clip reader is at {reader.sample_rate} Hz but the RIR bank at {bank.sample_rate} Hz.")
    settings = _dataset_settings(bank, clip_seconds=clip_seconds, bit_depth=bit_depth, phrases=phrases)
    manifest = _claim(directory, settings)
    part_key = f"{config}/{split}"
    part_params = {**params, "config": config, "split": split, "data_dir": data_dir, "rows_per_shard": rows_per_shard}
    digest = _digest(part_params)
    final = directory / data_dir / split
    partial = directory / _PARTIAL / config / split

    stored = manifest["parts"].get(part_key)
    if stored is not None:
        if stored["digest"] != digest:
            raise DatasetSettingsError(
                f"{directory} already holds the {part_key} part built with other parameters (stored → requested: "
                f"{_differences(stored['params'], part_params)}); use another --output-dir or delete it."
            )
        if final.is_dir():
            logger.info("Reusing the complete %s part in %s (same parameters).", part_key, directory)
            return PartInfo(**stored["info"])
    if partial.is_dir():
        recorded = json.loads((partial / _PART_FILE).read_text()) if (partial / _PART_FILE).is_file() else None
        if recorded is not None and recorded.get("digest") != digest:
            raise ValueError(
                f"{partial} holds an interrupted {part_key} build with other parameters (stored → requested: "
                f"{_differences(recorded.get('params', {}), part_params)}); re-run it with those parameters or "
                "delete that folder."
            )
    partial.mkdir(parents=True, exist_ok=True)
    for stale in partial.glob(".tmp-*"):
        stale.unlink(missing_ok=True)
    write_json_atomically({"digest": digest, "params": part_params}, partial / _PART_FILE)

    _CONTEXT = _Context(reader, bank, spatial_features(bank.sample_rate, bank.num_channels), bit_depth, phrases, device)
    try:
        reader.notes = False  # the scan reports resampling and down-mixing once, for all workers
        fresh = reader.scan_report is None
        scan = _load_or_scan(partial, reader, num_proc, show_progress)
        if fresh:
            _report_scan(scan, reader, bank.sample_rate)
        reader.scan_report = scan
        reader.exclude(scan.failed)
        plans = plan(reader)
        if not plans:
            raise ValueError(
                f"No scene could be drawn for {part_key}: the corpus {reader.name} split has {len(reader.usable)} "
                "usable clips."
            )
        shards = list(_chunks(plans, rows_per_shard))
        done = _finished_shards(partial, split, len(shards))
        if done:
            logger.info("%s: resuming, %d of %d shard(s) already written.", part_key, len(done), len(shards))
        # Workers render small groups of scenes; this process writes each shard once all its groups are
        # in, so the work spreads over the workers whatever the shard size.
        groups = [list(_chunks(shard, _ROWS_PER_TASK)) for shard in shards]
        writer = _ShardWriter(partial, split, groups, _CONTEXT.features)
        tasks = [(i, g, group) for i in range(len(shards)) if i not in done for g, group in enumerate(groups[i])]
        progress = tqdm(
            total=len(plans),
            initial=sum(len(shards[i]) for i in done),
            desc=f"Spatializing {part_key}",
            unit="scene",
            disable=not show_progress,
        )
        try:
            for shard, group, table, stats in _run(_render_group, tasks, num_proc):
                progress.update(len(groups[shard][group]))
                written = writer.add(shard, group, table, stats)
                if written is not None:
                    done[shard] = written
        finally:
            progress.close()
    finally:
        _CONTEXT = None
    rooms = sorted({p.room_id for p in plans})
    info = _complete(directory, part_key, config, split, data_dir, part_params, digest, done, scan, reader, rooms)
    write_dataset_card(directory)
    return info


def _load_or_scan(partial: Path, reader: ClipReader, num_proc: int, show_progress: bool) -> ScanReport:
    """The clips of the split that do not decode; scanned once per build (kept for a resumed build)."""
    from collections import Counter

    path = partial / _SCAN_FILE
    if reader.scan_report is not None:  # scanned for another part of this build
        return reader.scan_report
    if path.is_file():
        data = json.loads(path.read_text())
        return ScanReport(
            {int(k): v for k, v in data["failed"].items()},
            Counter({int(k): v for k, v in data["rates"].items()}),
            Counter({int(k): v for k, v in data["channels"].items()}),
        )
    indices = list(reader.usable)
    chunks = [indices[i : i + _SCAN_CHUNK] for i in range(0, len(indices), _SCAN_CHUNK)]
    report = ScanReport()
    with tqdm(total=len(indices), desc=f"Checking {reader.name} clips", unit="clip", disable=not show_progress) as bar:
        for part in _run(_scan_chunk, chunks, num_proc):
            report.merge(part)
            bar.update(sum(part.rates.values()) + len(part.failed))
    write_json_atomically(
        {"failed": {str(k): v for k, v in sorted(report.failed.items())}, "rates": report.rates, "channels": report.channels},
        path,
    )
    return report


def _report_scan(scan: ScanReport, reader: ClipReader, sample_rate: int) -> None:
    for rate, count in sorted(scan.rates.items()):
        if rate != sample_rate:
            logger.warning(
                "%d clip(s) of the corpus %s split are at %d Hz; they are resampled to the RIR bank's %d Hz.",
                count, reader.name, rate, sample_rate,
            )
    for channels, count in sorted(scan.channels.items()):
        if channels > 1:
            logger.warning(
                "%d clip(s) of the corpus %s split have %d channels; they are down-mixed to mono (channel mean).",
                count, reader.name, channels,
            )
    if scan.failed:
        logger.warning(
            "%d clip(s) of the corpus %s split are missing or do not decode; they are skipped (see %s).",
            len(scan.failed), reader.name, SKIPPED_FILE,
        )


def _complete(
    directory: Path,
    part_key: str,
    config: str,
    split: str,
    data_dir: str,
    part_params: dict,
    digest: str,
    done: dict[int, dict],
    scan: ScanReport,
    reader: ClipReader,
    room_ids: list[int],
) -> PartInfo:
    """Write the part's skip list, move its shards into place, then record it in the manifest (a run
    stopped in between leaves an unrecorded folder, which the next run rebuilds)."""
    partial = directory / _PARTIAL / config / split
    final = directory / data_dir / split
    skipped_scenes = [entry for i in sorted(done) for entry in done[i]["skipped_scenes"]]
    info = PartInfo(
        config=config,
        split=split,
        data_dir=data_dir,
        rows=sum(s["rows"] for s in done.values()),
        scenes=sum(s["scenes"] for s in done.values()),
        shards=len(done),
        bytes=sum(s["bytes"] for s in done.values()),
        audio_seconds=round(sum(s["audio_seconds"] for s in done.values()), 3),
        clipped_rows=sum(s["clipped_rows"] for s in done.values()),
        skipped_clips=len(scan.failed),
        room_ids=room_ids,
        params=part_params,
    )
    if info.clipped_rows:
        logger.warning(
            "%d of %d %s rows would have clipped; they are scaled below full scale (their gain column is < 1).",
            info.clipped_rows, info.rows, part_key,
        )
    if skipped_scenes:
        logger.warning("%d %s scene(s) were skipped while rendering (see %s).", len(skipped_scenes), part_key, SKIPPED_FILE)
    _write_skipped(directory, part_key, reader, scan, skipped_scenes)
    for stats in partial.glob(".stats-*.json"):
        stats.unlink()
    for name in (_PART_FILE, _SCAN_FILE):
        (partial / name).unlink(missing_ok=True)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():  # an unrecorded leftover of an earlier, interrupted completion
        shutil.rmtree(final)
    os.replace(partial, final)
    _prune_empty(directory / _PARTIAL)
    # Read again: another split may have been added to this folder by a build running beside this one.
    manifest = read_manifest(directory)
    manifest["parts"][part_key] = {"digest": digest, "params": part_params, "info": info.__dict__}
    write_json_atomically(manifest, directory / MANIFEST_FILE)
    logger.info("%s: %d rows (%d scenes) in %s.", part_key, info.rows, info.scenes, final)
    return info


def _prune_empty(folder: Path) -> None:
    if not folder.is_dir():
        return
    for sub in sorted(folder.rglob("*"), key=lambda p: -len(p.parts)):
        if sub.is_dir() and not any(sub.iterdir()):
            sub.rmdir()
    if not any(folder.iterdir()):
        folder.rmdir()


def _write_skipped(directory: Path, part_key: str, reader: ClipReader, scan: ScanReport, scenes: list[dict]) -> None:
    path = directory / SKIPPED_FILE
    report = json.loads(path.read_text()) if path.is_file() else {"total": 0, "parts": {}}
    report["parts"][part_key] = {
        "clips": [{"index": i, "id": reader.id(i), "reason": r} for i, r in sorted(scan.failed.items())],
        "scenes": scenes,
    }
    report["total"] = sum(len(p["clips"]) for p in report["parts"].values())
    write_json_atomically(report, path)


# ---------------------------------------------------------------------------------------------
# spatialize: seeded pairings of a corpus split with the bank's rooms of that split
# ---------------------------------------------------------------------------------------------


def _distinct_groups(reader: ClipReader, order: Sequence[int], n: int) -> list[tuple[int, ...]]:
    """Consecutive groups of n clips of ``order`` with pairwise different content (``ClipReader.distinct``);
    a clip that fits no open group waits for the next one. Leftovers are dropped."""
    used = [False] * len(order)
    groups, first = [], 0
    while True:
        while first < len(order) and used[first]:
            first += 1
        if first >= len(order):
            break
        chosen, positions = [order[first]], [first]
        j = first + 1
        while len(chosen) < n and j < len(order):
            if not used[j] and all(reader.distinct(order[j], c) for c in chosen):
                chosen.append(order[j])
                positions.append(j)
            j += 1
        if len(chosen) < n:
            break
        for p in positions:
            used[p] = True
        groups.append(tuple(chosen))
    return groups


def _shares(clips: int, sizes: Sequence[int]) -> list[int]:
    """Clips of each size's share of a draw: an equal part each, whole scenes only; single-source
    scenes (when asked for) take what the mixtures leave."""
    counts = [int(clips / len(sizes) // n) * n for n in sizes]
    if 1 in sizes:
        counts[list(sizes).index(1)] += clips - sum(counts)
    return counts


def _caption_of(reader: ClipReader, clip: int, *, split: str, seed: int, pairing: int) -> str:
    """The test split's first caption; elsewhere one of the clip's captions, drawn per pairing as the
    training loop draws one per epoch (rng of (seed, epoch, row index))."""
    captions = reader.captions(clip)
    if split == "test" or len(captions) == 1:
        return captions[0]
    return captions[int(np.random.default_rng([seed, pairing, clip]).integers(len(captions)))]


def _check_plan_args(split: str, num_sources: Sequence[int], pairings: int, max_scenes: int | None) -> list[int]:
    """The sorted distinct source counts; raises on arguments no plan can satisfy."""
    sizes = sorted(set(int(n) for n in num_sources))
    if not sizes or sizes[0] < 1:
        raise ValueError(f"num_sources must be one or more counts >= 1, got {list(num_sources)}.")
    if pairings < 1:
        raise ValueError(f"pairings must be >= 1, got {pairings}.")
    if split == "test" and pairings != 1:
        raise ValueError("The test split has one fixed pairing; --pairings K > 1 is for train (and validation).")
    if max_scenes is not None and max_scenes < 1:
        raise ValueError(f"max_scenes must be >= 1 (or None for all), got {max_scenes}.")
    return sizes


def plan_pairings(
    reader: ClipReader,
    bank: RirBank,
    *,
    split: str,
    num_sources: Sequence[int] = (1,),
    scl: bool = False,
    pairings: int = 1,
    max_scenes: int | None = None,
    seed: int = 0,
    phrases: PhraseSet = DEFAULT_PHRASES,
) -> list[ScenePlan]:
    """Scenes of ``pairings`` seeded draws over the usable clips of a split.

    In draw p the clips are shuffled (rng of (seed, split, p)) and shared equally among the sizes
    of ``num_sources``, in order (whole scenes; single-source scenes take the remainder); each
    share is grouped n at a time, the sources of a mixture with different content. So a draw uses
    every clip once, like an epoch of on-the-fly training: with ``1 2``, half the clips are
    single-source scenes and half form two-source mixtures (the paper's 16 + 8 scenes from 32
    clips). The scenes of the sizes are interleaved (one of each in
    turn), cut to ``max_scenes`` per draw, and each gets its room and directions from
    ``spatial.PairingSampler`` (a function of (seed, split, p, clip ids); fixed for the test
    split; the sources of a scene in one room, in distinct DoA classes).
    """
    split = canonical_split(split)
    sizes = _check_plan_args(split, num_sources, pairings, max_scenes)
    sampler = PairingSampler(bank.rooms(split), bank.azimuths(), split=split, seed=seed, phrases=phrases)
    classes = len(set(sampler.classes.tolist()))
    if sizes[-1] > classes:
        raise ValueError(f"Cannot place {sizes[-1]} sources in distinct DoA classes: this bank's grid has {classes}.")
    code = SPLITS.index(split)
    plans: list[ScenePlan] = []
    for p in range(pairings):
        order = [reader.usable[j] for j in np.random.default_rng([seed, code, p]).permutation(len(reader.usable))]
        by_size, lo = [], 0
        for n, count in zip(sizes, _shares(len(order), sizes)):
            share, lo = order[lo : lo + count], lo + count
            groups = [(c,) for c in share] if n == 1 else _distinct_groups(reader, share, n)
            if len(groups) * n < len(share):
                logger.info("Draw %d: %d of %d clips form no %d-source mixture.", p, len(share) - len(groups) * n, len(share), n)
            by_size.append(groups)
        scenes = [g for turn in itertools.zip_longest(*by_size) for g in turn if g is not None]
        for k, group in enumerate(scenes[:max_scenes]):
            keys = sampler.scene([reader.id(c) for c in group], epoch=p)
            plans.append(
                ScenePlan(
                    scene_id=f"{split}-{p:03d}-{k:06d}",
                    clips=tuple(group),
                    captions=tuple(_caption_of(reader, c, split=split, seed=seed, pairing=p) for c in group),
                    room_id=keys[0].room_id,
                    azimuths_deg=tuple(float(key.azimuth_deg) for key in keys),
                    pairing=p,
                    scl=scl,
                )
            )
    return plans


def spatialize(
    corpus: datasets.DatasetDict,
    bank: RirBank,
    output_dir: str | os.PathLike,
    *,
    split: str,
    num_sources: Sequence[int] = (1,),
    scl: bool = False,
    pairings: int = 1,
    max_scenes: int | None = None,
    seed: int = 0,
    clip_seconds: float = 10.0,
    bit_depth: int = DEFAULT_BIT_DEPTH,
    num_proc: int = 1,
    rows_per_shard: int = 1000,
    device: torch.device | str | None = None,
    phrases: PhraseSet = DEFAULT_PHRASES,
    corpus_name: str = "corpus",
    show_progress: bool = True,
) -> PartInfo:
    """Spatialize a corpus split into ``output_dir`` (config ``default``, ``data/<split>/``).

    Scenes come from ``plan_pairings`` (``num_sources``, ``pairings``, ``max_scenes``, ``seed``)
    with the bank's rooms of ``split`` only; with ``scl`` every mixture gives its n! assignments
    as rows sharing a ``scene_id``. Clips are cut or zero-padded to ``clip_seconds`` and
    resampled to the bank's rate. See ``write_part`` for workers, resuming and refusals; the
    output directory gets a dataset card (``README.md``). Returns the part's counts.
    """
    split = canonical_split(split)
    if split not in bank.splits:
        raise ValueError(
            f"The RIR bank has no {split!r} split (it has {bank.splits}); build it with "
            f"`spatial-clap make-rirs --split {split}` or choose one of those splits."
        )
    if split not in corpus:
        raise ValueError(f"The corpus has no {split!r} split (it has {list(corpus)}).")
    _check_plan_args(split, num_sources, pairings, max_scenes)
    reader = ClipReader(corpus[split], sample_rate=bank.sample_rate, clip_seconds=clip_seconds, name=split)
    params = {
        "kind": "spatialize",
        "corpus": corpus_identity(corpus[split], corpus_name),
        "num_sources": sorted(set(int(n) for n in num_sources)),
        "scl": bool(scl),
        "pairings": int(pairings),
        "max_scenes": max_scenes,
        "seed": int(seed),
    }
    plan_kwargs = dict(split=split, num_sources=num_sources, scl=scl, pairings=pairings, max_scenes=max_scenes,
                       seed=seed, phrases=phrases)
    return write_part(
        output_dir,
        config="default",
        split=split,
        data_dir="data",
        reader=reader,
        bank=bank,
        plan=lambda r: plan_pairings(r, bank, **plan_kwargs),
        params=params,
        clip_seconds=clip_seconds,
        bit_depth=bit_depth,
        phrases=phrases,
        num_proc=num_proc,
        rows_per_shard=rows_per_shard,
        device=device,
        show_progress=show_progress,
    )


# ---------------------------------------------------------------------------------------------
# Reading and pushing
# ---------------------------------------------------------------------------------------------


def _is_local(path_or_id: str | os.PathLike) -> bool:
    return Path(path_or_id).exists()


def load_spatialized(
    path_or_id: str | os.PathLike,
    config: str = "default",
    split: str | None = None,
    *,
    streaming: bool = False,
) -> datasets.Dataset | datasets.IterableDataset:
    """One split of one config of a spatialized dataset: a local output directory or a Hub id.

    ``split`` None takes the config's only split (an error when it has several). Locally, only
    complete parts are read (``spatialized.json``), with ``datasets``' Parquet reader.
    """
    if _is_local(path_or_id):
        directory = Path(path_or_id)
        parts = {k: v for k, v in read_manifest(directory)["parts"].items() if v["params"]["config"] == config}
        if not parts:
            raise ValueError(f"{directory} has no complete {config!r} part (complete: {sorted(read_manifest(directory)['parts'])}).")
        splits = {v["params"]["split"]: v["params"] for v in parts.values()}
        split = _one_split(split, list(splits), f"{directory} config {config!r}")
        params = splits[split]
        files = sorted(str(p) for p in (directory / params["data_dir"] / split).glob(f"{split}-*.parquet"))
        if not files:
            raise FileNotFoundError(f"{directory / params['data_dir'] / split} holds no Parquet shard; rebuild that part.")
        with quiet_datasets():
            return datasets.load_dataset("parquet", data_files={split: files}, split=split, streaming=streaming)
    name = str(path_or_id)
    if split is None:
        names = datasets.get_dataset_split_names(name, config)
        split = _one_split(None, names, f"{name} config {config!r}")
    return datasets.load_dataset(name, config, split=split, streaming=streaming)


def _one_split(split: str | None, available: Sequence[str], where: str) -> str:
    if split is not None:
        split = canonical_split(split)
        if split not in available:
            raise ValueError(f"{where} has no {split!r} split (it has {sorted(available)}).")
        return split
    if len(available) != 1:
        raise ValueError(f"{where} has the splits {sorted(available)}; name one.")
    return available[0]


def push_spatialized(
    directory: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    max_shard_size: str = "500MB",
) -> str:
    """Upload a spatialized dataset to the Hub dataset repository ``repo_id``; returns its URL.

    Every complete part goes through ``datasets``' own ``push_to_hub`` (Parquet shards under the
    same ``<data_dir>/<split>/`` folders as here), then the dataset card, whose YAML names those
    files. The token comes from ``token``, else ``HF_TOKEN`` or a prior ``hf auth login``; the
    Hub address from ``HF_ENDPOINT``.
    """
    from huggingface_hub import DatasetCard

    from .dataset_card import render_dataset_card

    directory = Path(directory)
    manifest = read_manifest(directory)
    if "/" not in repo_id:
        raise ValueError(f"Hub repository ids look like 'user/name'; got {repo_id!r}.")
    if not manifest["parts"]:
        raise ValueError(f"{directory} holds no complete part yet; nothing to push.")
    for entry in manifest["parts"].values():
        params = entry["params"]
        dataset = load_spatialized(directory, params["config"], params["split"])
        dataset.push_to_hub(
            repo_id,
            config_name=params["config"],
            split=params["split"],
            data_dir=f"{params['data_dir']}/{params['split']}",
            token=token,
            private=private,
            max_shard_size=max_shard_size,
            commit_message=f"Upload {params['config']}/{params['split']}",
        )
    card = render_dataset_card(directory, repo_id=repo_id)
    DatasetCard(str(card)).push_to_hub(repo_id, token=token, repo_type="dataset", commit_message="Upload dataset card")
    from huggingface_hub import constants

    return f"{constants.ENDPOINT}/datasets/{repo_id}"
