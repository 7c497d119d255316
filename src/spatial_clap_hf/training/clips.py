"""Mono training clips from a source corpus, in a deterministic, resumable order.

The order of an epoch is a pure function of (seed, epoch): process p of W takes the p-th
slice of each global batch. Resuming after k finished steps of an epoch therefore only
needs to skip the first k batches of that epoch's order.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.audio_io import decoded_to_array
from ..models.spatial_clap.frontend_spatial_clap import SincResampler

__all__ = ["ClipBatch", "ClipDataset", "EpochBatchSampler", "class_names_of", "collate_clips"]

logger = logging.getLogger(__name__)


def class_names_of(corpus_dir: str | Path | None, split: datasets.Dataset) -> list[str]:
    """SED class names: ``label_names.json`` beside a saved corpus, else the sorted labels of ``split``."""
    if corpus_dir is not None and (Path(corpus_dir) / "label_names.json").is_file():
        return list(json.loads((Path(corpus_dir) / "label_names.json").read_text()))
    return sorted({label for labels in split["labels"] for label in labels})


def _fit_length(clip: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Repeat-pad (as CLAP does) or cut a non-empty mono clip (samples,) to ``num_samples``."""
    if clip.numel() < num_samples:
        clip = clip.repeat(-(-num_samples // clip.numel()))
    return clip[:num_samples]


class ClipDataset(torch.utils.data.Dataset):
    """Row i of a SOURCE_FEATURES split → one mono clip of ``clip_seconds`` at ``sample_rate``.

    Multichannel sources are averaged to mono and other sample rates resampled (both logged
    once). Each item is ``(index, clip (samples,) float32, caption, label indices)``; the
    caption is one of the row's captions, chosen by (seed, epoch, index).

    Decoding a clip costs about 8 ms (mostly opening the decoder), as much as half a small
    model's training step at batch 32; ``preload`` decodes the whole split once into memory
    instead (``"auto"``: when it takes at most ``PRELOAD_LIMIT_BYTES``). The decoded split is
    kept for the process's next dataset over the same split, length and rate (the quickstart
    trains six models on one split in one process).
    """

    PRELOAD_LIMIT_BYTES = 2 * 1024**3
    _preloaded: dict[tuple, torch.Tensor] = {}
    _PRELOADED_KEEP = 2

    def __init__(
        self,
        split: datasets.Dataset,
        class_names: Sequence[str],
        *,
        clip_seconds: float,
        sample_rate: int,
        seed: int = 0,
        preload: bool | str = "auto",
    ) -> None:
        self.split = split
        self.class_index = {name: i for i, name in enumerate(class_names)}
        self.num_samples = int(round(clip_seconds * sample_rate))
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)
        self.epoch = 0
        self._warned: set[str] = set()
        self._resamplers: dict[int, SincResampler] = {}  # by source rate: the kernel is built once
        self._clips: torch.Tensor | None = None
        self._captions: list[list[str]] = split["captions"]
        self._labels = [[self.class_index[n] for n in row if n in self.class_index] for row in split["labels"]]
        if preload == "auto":
            preload = len(split) * self.num_samples * 4 <= self.PRELOAD_LIMIT_BYTES
        if preload:
            self._clips = self._preload()

    def _preload(self) -> torch.Tensor:
        """All clips of the split ``(rows, samples)``, decoded once per process."""
        files = tuple(f["filename"] for f in self.split.cache_files)
        key = (self.split._fingerprint, files, self.num_samples, self.sample_rate)
        cache = ClipDataset._preloaded
        if key not in cache:
            clips = torch.stack([self._decode(i) for i in tqdm(range(len(self.split)), desc="decoding clips")])
            while len(cache) >= self._PRELOADED_KEEP:
                cache.pop(next(iter(cache)))
            cache[key] = clips
        return cache[key]

    def __len__(self) -> int:
        return len(self.split)

    def _warn_once(self, key: str, message: str, *args) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    def _decode(self, index: int) -> torch.Tensor:
        row = self.split[int(index)]
        array, rate = decoded_to_array(row["audio"])
        clip = torch.from_numpy(array)
        if clip.shape[0] > 1:
            self._warn_once("mono", "Source clips have %d channels; averaging them to mono.", clip.shape[0])
        clip = clip.mean(dim=0)
        if rate != self.sample_rate:
            self._warn_once("rate", "Resampling source clips from %d Hz to %d Hz.", rate, self.sample_rate)
            if rate not in self._resamplers:  # the model family's resampler, as the feature extractor's
                self._resamplers[rate] = SincResampler(rate, self.sample_rate)
            clip = self._resamplers[rate](clip)
        if clip.numel() == 0:
            raise ValueError(f"Row {index} ({row['id']}) of the corpus has an empty clip.")
        return _fit_length(clip, self.num_samples)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, str, list[int]]:
        index = int(index)
        captions = self._captions[index]
        if not captions:
            raise ValueError(f"Row {index} of the corpus has no caption.")
        choice = np.random.default_rng([self.seed, self.epoch, index]).integers(len(captions))
        clip = self._clips[index] if self._clips is not None else self._decode(index)
        return index, clip, captions[choice], self._labels[index]


@dataclass
class ClipBatch:
    """Mono clips of one step: ``clips`` (N, samples) float32 and per-clip metadata."""

    indices: list[int]
    clips: torch.Tensor
    captions: list[str]
    labels: list[list[int]]


def collate_clips(items: Sequence[tuple[int, torch.Tensor, str, list[int]]]) -> ClipBatch:
    return ClipBatch(
        indices=[i for i, *_ in items],
        clips=torch.stack([c for _, c, *_ in items]),
        captions=[c for _, _, c, _ in items],
        labels=[l for *_, l in items],
    )


class EpochBatchSampler(torch.utils.data.Sampler[list[int]]):
    """This process's slices of the global batches of one epoch.

    Epoch e shuffles all ``num_items`` indices with (seed, e), cuts them into global
    batches of ``batch_size × num_processes`` (the incomplete tail is dropped) and yields
    the ``process_index``-th ``batch_size`` slice of each, starting at batch ``start``.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        *,
        seed: int,
        epoch: int,
        num_processes: int = 1,
        process_index: int = 0,
        start: int = 0,
    ) -> None:
        global_batch = batch_size * num_processes
        if num_items < global_batch:
            raise ValueError(
                f"The corpus split has {num_items} clips, fewer than one global batch of {global_batch} "
                f"({batch_size} per process × {num_processes} processes); use a larger corpus or smaller batch."
            )
        self.num_items, self.batch_size = num_items, batch_size
        self.seed, self.epoch = seed, epoch
        self.num_processes, self.process_index, self.start = num_processes, process_index, start

    def batches_per_epoch(self) -> int:
        return self.num_items // (self.batch_size * self.num_processes)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch() - self.start)

    def __iter__(self) -> Iterator[list[int]]:
        order = np.random.default_rng([self.seed, self.epoch]).permutation(self.num_items)
        global_batch = self.batch_size * self.num_processes
        for b in range(self.start, self.batches_per_epoch()):
            lo = b * global_batch + self.process_index * self.batch_size
            yield order[lo : lo + self.batch_size].tolist()
