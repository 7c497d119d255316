"""Mono, fixed-length source clips of a corpus split, for everything that spatializes to disk.

``ClipReader`` reads a ``SOURCE_FEATURES`` split (the AudioCaps builder output or the embedded
synthetic corpus): clip ``i`` decoded (torchcodec), down-mixed to mono (channel mean) when it
has several channels, resampled to the RIR bank's rate when it has another one, then cut or
zero-padded to ``clip_seconds`` from its start. ``scan`` decodes clips once to find those that
are missing or undecodable, so that they can be left out before any scene is drawn; what it
finds (and the clips it resamples or down-mixes) is reported by ``ScanReport``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import datasets
import numpy as np
import torch

from ..models.spatial_clap.frontend_spatial_clap import SincResampler
from .audio_io import AudioDecodeError, decoded_to_array

__all__ = ["ClipReader", "ScanReport", "caption_key"]

logger = logging.getLogger(__name__)


def caption_key(caption: str) -> str:
    """A caption normalised for comparison: lower case, single spaces, no final punctuation."""
    return " ".join(caption.lower().strip().rstrip(".!?").split())


@dataclass
class ScanReport:
    """What ``ClipReader.scan`` found: ``failed`` (row index → reason) and the sample rates and
    channel counts of the clips that decoded (value → number of clips)."""

    failed: dict[int, str] = field(default_factory=dict)
    rates: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)

    def merge(self, other: "ScanReport") -> None:
        self.failed.update(other.failed)
        self.rates.update(other.rates)
        self.channels.update(other.channels)


class ClipReader:
    """Mono, fixed-length clips of one corpus split (``schema.SOURCE_FEATURES``).

    ``clip(i)`` returns float32 (samples,) at ``sample_rate`` Hz, exactly
    ``round(clip_seconds · sample_rate)`` samples long, and raises ``AudioDecodeError`` when the
    clip is missing or does not decode. ``caption(i)`` is the first caption, ``captions(i)`` all
    of them, ``labels(i)`` the label names, ``id(i)`` the clip id. ``usable`` lists the clips
    with a caption (the others are reported and never used); ``exclude`` removes more (e.g.
    those ``scan`` found undecodable).
    """

    def __init__(self, split: datasets.Dataset, *, sample_rate: int, clip_seconds: float, name: str = "split"):
        missing = {"id", "audio", "captions", "labels"} - set(split.column_names)
        if missing:
            raise ValueError(
                f"The corpus {name} split lacks columns {sorted(missing)}; it must follow SOURCE_FEATURES."
            )
        if clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be positive, got {clip_seconds}.")
        # Encoded values (bytes or path): decoding errors are ours to report, not datasets'.
        self.split = split.cast_column("audio", datasets.Audio(decode=False))
        self.name = name
        self.sample_rate = int(sample_rate)
        self.num_samples = int(round(clip_seconds * sample_rate))
        self.ids = [str(v) for v in split["id"]]
        self._captions = [list(c) for c in split["captions"]]
        self.label_names = [list(v) for v in split["labels"]]
        self.usable = [i for i, c in enumerate(self._captions) if c and c[0].strip()]
        if len(self.usable) < len(self.ids):
            logger.warning(
                "%d of %d clips in the corpus %s split have no caption and are not used.",
                len(self.ids) - len(self.usable),
                len(self.ids),
                name,
            )
        self.notes = True
        #: What ``scan`` found over ``usable`` (set by the first build that scans this reader).
        self.scan_report: ScanReport | None = None
        self._warned: set[str] = set()
        self._cache: dict[int, np.ndarray] = {}
        self._resamplers: dict[int, SincResampler] = {}  # by source rate: the kernel is built once

    def __len__(self) -> int:
        return len(self.ids)

    def id(self, i: int) -> str:
        return self.ids[i]

    def caption(self, i: int) -> str:
        return self._captions[i][0]

    def captions(self, i: int) -> list[str]:
        return self._captions[i]

    def labels(self, i: int) -> list[str]:
        return self.label_names[i]

    def exclude(self, indices: Sequence[int]) -> None:
        """Leave these clips out of ``usable``."""
        drop = set(int(i) for i in indices)
        self.usable = [i for i in self.usable if i not in drop]

    def clip(self, i: int) -> np.ndarray:
        """Decoded clip ``i`` as float32 (samples,) at ``sample_rate`` Hz, fixed length."""
        if i not in self._cache:
            if len(self._cache) >= 256:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = self._decode(i)[0]
        return self._cache[i]

    def _decode(self, i: int) -> tuple[np.ndarray, int, int]:
        """(clip, native rate, native channels) of row ``i``; raises ``AudioDecodeError``."""
        value = self.split[int(i)]["audio"]
        if value is None or (value.get("bytes") is None and value.get("path") is None):
            raise AudioDecodeError(None, "the row holds no audio")
        array, rate = decoded_to_array(value)
        audio = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        channels = audio.shape[0]
        if channels > 1:
            self._note(
                f"mono:{channels}",
                f"Clips of the corpus {self.name} split have {channels} channels (e.g. {self.ids[i]}); "
                "they are down-mixed to mono (channel mean).",
            )
        audio = audio.mean(dim=0)
        if rate != self.sample_rate:
            self._note(
                f"rate:{rate}",
                f"Clips of the corpus {self.name} split are at {rate} Hz (e.g. {self.ids[i]}); the RIR bank is at "
                f"{self.sample_rate} Hz, so they are resampled to {self.sample_rate} Hz.",
            )
            if rate not in self._resamplers:  # the model family's resampler, as the feature extractor's
                self._resamplers[rate] = SincResampler(int(rate), self.sample_rate)
            audio = self._resamplers[rate](audio)
        out = np.zeros(self.num_samples, dtype=np.float32)
        n = min(self.num_samples, audio.shape[0])
        out[:n] = audio[:n].numpy()
        return out, int(rate), int(channels)

    def scan(self, indices: Sequence[int]) -> ScanReport:
        """Decode clips ``indices`` once: which fail (missing, unreadable, empty) and why, and the
        native rates and channel counts of the others. Never raises for a bad clip."""
        report = ScanReport()
        for i in indices:
            try:
                _, rate, channels = self._decode(int(i))
            except AudioDecodeError as err:
                report.failed[int(i)] = err.reason
                continue
            report.rates[rate] += 1
            report.channels[channels] += 1
        return report

    def _note(self, key: str, message: str) -> None:
        if self.notes and key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def distinct(self, a: int, b: int) -> bool:
        """Whether clips a and b have different content: captions differ and, when both are
        labelled, their label sets differ."""
        if caption_key(self.caption(a)) == caption_key(self.caption(b)):
            return False
        la, lb = set(self.labels(a)), set(self.labels(b))
        return not (la and lb and la == lb)
