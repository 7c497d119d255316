"""Training batches from a pre-spatialized dataset (``data.spatialized``), instead of on-the-fly scenes.

A dataset written by ``spatial-clap spatialize`` holds rendered scenes: rows with their audio,
captions, per-source labels and directions, grouped by ``scene_id`` (with ``--scl``, the n!
assignments of a mixture). Epoch e reads the scenes of draw ``e mod K`` (``pairing``; K draws
in the dataset). Each step takes, per process, a fixed number of scenes of each size (e.g. the
paper's 16 single-source and 8 two-source), in an order that is a function of (seed, epoch):
process p of W takes the p-th slice of every global batch, and a resumed run skips the first
batches of its epoch, exactly as on-the-fly training does. Without SCL a mixture contributes
its drawn assignment only; with SCL all of its rows, as consecutive samples.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import datasets
import numpy as np
import torch

from ..data.spatialized import AudioClips
from ..spatial.spatializer import SpatialBatch

__all__ = ["SceneBatchSampler", "SpatializedScenes", "collate_scenes"]

logger = logging.getLogger(__name__)

_COLUMNS = ("audio", "caption", "caption_src", "labels", "n_sources", "azimuth_deg", "room_id", "scene_id",
            "assignment", "pairing")


@dataclass
class _Scene:
    n_sources: int
    pairing: int
    rows: list[int]  # the drawn assignment first


class SpatializedScenes(torch.utils.data.Dataset):
    """The scenes of a spatialized split; item s holds the rows of scene s.

    Rows are decoded to float32 (C, T) and cut or zero-padded to ``num_samples``; their labels
    become class indices of ``class_names`` (names not in it are dropped). ``scl`` keeps every
    assignment of a mixture, otherwise only its drawn one.
    """

    def __init__(
        self,
        dataset: datasets.Dataset,
        class_names: Sequence[str],
        *,
        num_samples: int,
        sample_rate: int,
        scl: bool,
        name: str = "spatialized dataset",
    ) -> None:
        missing = [c for c in _COLUMNS if c not in dataset.column_names]
        if missing:
            raise ValueError(f"The {name} lacks columns {missing}; build it with `spatial-clap spatialize`.")
        self.clips = AudioClips(dataset)
        if self.clips.sampling_rate != int(sample_rate):
            raise ValueError(
                f"The {name} is at {self.clips.sampling_rate} Hz but data.sample_rate is {sample_rate} Hz; set "
                f"data.sample_rate: {self.clips.sampling_rate} or spatialize with a bank at {sample_rate} Hz."
            )
        self.num_samples = int(num_samples)
        self.class_index = {n: i for i, n in enumerate(class_names)}
        # Only what groups rows into scenes is read up front; a row's captions, labels and
        # directions are read when its scene is (millions of rows stay in the Arrow table).
        self._rows = dataset.select_columns([c for c in _COLUMNS if c != "audio"])
        grouping = self._rows.select_columns(["scene_id", "n_sources", "pairing", "assignment"]).to_dict()
        scenes: dict[str, _Scene] = {}
        for row, scene_id in enumerate(grouping["scene_id"]):
            n = int(grouping["n_sources"][row])
            scene = scenes.setdefault(scene_id, _Scene(n, int(grouping["pairing"][row]), []))
            scene.rows.append(row)
        for scene in scenes.values():
            scene.rows.sort(key=lambda r: list(grouping["assignment"][r]) != list(range(scene.n_sources)))
            if scl and scene.n_sources > 1 and len(scene.rows) < 2:
                raise ValueError(
                    f"batch.scl needs every assignment of each mixture, but the {name} holds only the drawn one; "
                    "spatialize it with --scl."
                )
        self.scenes = list(scenes.values())
        self.scl = bool(scl)
        self._warned = False

    def __len__(self) -> int:
        return len(self.scenes)

    def _fit(self, wave: np.ndarray) -> np.ndarray:
        if wave.shape[-1] != self.num_samples and not self._warned:
            self._warned = True
            logger.warning(
                "Rows of the spatialized dataset hold %d samples; they are cut or zero-padded to data.clip_seconds "
                "(%d samples).", wave.shape[-1], self.num_samples,
            )
        out = np.zeros((wave.shape[0], self.num_samples), dtype=np.float32)
        n = min(self.num_samples, wave.shape[-1])
        out[:, :n] = wave[:, :n]
        return out

    def __getitem__(self, index: int) -> dict:
        scene = self.scenes[int(index)]
        rows = scene.rows if (self.scl and scene.n_sources > 1) else scene.rows[:1]
        meta = [self._rows[r] for r in rows]
        return {
            "waves": np.stack([self._fit(self.clips[r]) for r in rows]),
            "captions": [m["caption"] for m in meta],
            "captions_src": [m["caption_src"] for m in meta],
            "azimuths": [tuple(float(a) for a in m["azimuth_deg"]) for m in meta],
            "assignments": [tuple(int(a) for a in m["assignment"]) for m in meta],
            "room_id": int(meta[0]["room_id"]),
            "labels": [[self.class_index[n] for n in source if n in self.class_index] for source in meta[0]["labels"]],
        }


def collate_scenes(items: Sequence[dict]) -> tuple[SpatialBatch, list[list[int]]]:
    """Scenes → a ``SpatialBatch`` (one sample per row) and the class indices of its sources.

    The sources of scene k are numbered after those of scenes 0…k−1; ``sources[b]`` of every row
    of a scene name the same numbers, so SELD targets follow each source to its direction."""
    waves, captions, captions_src, sources, azimuths, rooms, perms, identity, scene_index = [], [], [], [], [], [], [], [], []
    clip_labels: list[list[int]] = []
    for k, item in enumerate(items):
        first = len(clip_labels)
        clip_labels += item["labels"]
        own = tuple(range(first, len(clip_labels)))
        for r in range(len(item["captions"])):
            waves.append(item["waves"][r])
            captions.append(item["captions"][r])
            captions_src.append(item["captions_src"][r])
            sources.append(own)
            azimuths.append(item["azimuths"][r])
            rooms.append(item["room_id"])
            perms.append(item["assignments"][r])
            identity.append(item["assignments"][r] == tuple(range(len(own))))
            scene_index.append(k)
    batch = SpatialBatch(
        waveforms=torch.from_numpy(np.stack(waves)),
        captions=captions,
        captions_src=captions_src,
        sources=sources,
        azimuths_deg=azimuths,
        room_ids=rooms,
        permutation=perms,
        is_identity=torch.tensor(identity, dtype=torch.bool),
        scene_index=torch.tensor(scene_index, dtype=torch.long),
    )
    return batch, clip_labels


class SceneBatchSampler(torch.utils.data.Sampler[list[int]]):
    """This process's scenes for each step of one epoch.

    ``counts`` maps a number of sources to the scenes of that size per process and step.
    Epoch e uses the scenes of draw ``e mod K``; those of each size are shuffled with (seed, e, n)
    and cut into global batches of ``count × num_processes`` (incomplete tails dropped); the
    process takes its slice of each, from batch ``start`` on.
    """

    def __init__(
        self,
        scenes: Sequence[_Scene],
        counts: Mapping[int, int],
        *,
        seed: int,
        epoch: int,
        num_processes: int = 1,
        process_index: int = 0,
        start: int = 0,
    ) -> None:
        self.counts = {int(n): int(c) for n, c in counts.items() if c > 0}
        pairings = sorted({s.pairing for s in scenes})
        if not pairings:
            raise ValueError("The spatialized dataset holds no scene.")
        pairing = pairings[epoch % len(pairings)]
        self.by_size = {n: [i for i, s in enumerate(scenes) if s.pairing == pairing and s.n_sources == n] for n in self.counts}
        short = {n: len(v) for n, v in self.by_size.items() if len(v) < self.counts[n] * num_processes}
        if short:
            raise ValueError(
                f"Draw {pairing} of the spatialized dataset has too few scenes for one global batch "
                f"(scenes per size {short}, needed {({n: self.counts[n] * num_processes for n in short})}); spatialize "
                "it with those --num-sources and more clips, or use a smaller batch."
            )
        self.seed, self.epoch = int(seed), int(epoch)
        self.num_processes, self.process_index, self.start = num_processes, process_index, start

    def batches_per_epoch(self) -> int:
        return min(len(self.by_size[n]) // (c * self.num_processes) for n, c in self.counts.items())

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        orders = {
            n: [scenes[j] for j in np.random.default_rng([self.seed, self.epoch, n]).permutation(len(scenes))]
            for n, scenes in self.by_size.items()
        }
        for b in range(self.start, self.batches_per_epoch()):
            batch = []
            for n, count in self.counts.items():
                lo = (b * self.num_processes + self.process_index) * count
                batch += orders[n][lo : lo + count]
            yield batch
