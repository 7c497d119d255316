"""Evaluation sets: spatialized clips with a fixed, seeded pairing in held-out rooms.

``build_eval_sets`` writes ``<output_dir>/<name>`` (``datasets`` save_to_disk) for every name
of ``schema.EVAL_SET_NAMES``:

- ``doa``: single-source clips from test clips and test rooms, DoA classes balanced (class k
  for row i cycles through the classes, then the rows are shuffled), azimuth uniform over the
  bank's grid azimuths of that class (front and back), room uniform over the test rooms.
- ``doa_val``: the same from *validation* clips and *validation* rooms (fits the linear DoA
  probe that is scored on ``doa``).
- ``assignment2`` / ``assignment3``: mixtures y = (1/n) Σ h_i * x_i of 2 / 3 clips with different
  content (different first captions and, when both clips have labels, different label sets)
  in one test room, the sources in distinct DoA classes; ``candidate_captions`` holds the n!
  who-is-where captions (same sentences, permuted direction phrases) in a seeded random order
  and ``label`` the index of the true one.
- ``retrieval``: single- and two-source scenes, every clip used at most once and every
  caption distinct (so R@1 is well-defined), with spatial and content-only captions.

With ``split="validation"`` every set except ``doa_val`` is drawn from validation clips and
validation rooms instead of test ones: the same protocol for choosing settings, leaving the
test sets for the report.

A clip's content caption is its first caption. Clips are decoded, resampled to
``sample_rate`` when needed (with a warning), down-mixed to mono when they have several
channels (with a warning), then cut or zero-padded to ``clip_seconds`` (from the start).
Everything is a function of ``seed``: two builds with the same inputs are identical.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import datasets
import numpy as np
import torch
from tqdm.auto import tqdm

from ..spatial.conventions import DEFAULT_PHRASES, PhraseSet, compose_caption, doa_class, fold_azimuth
from ..spatial.rir_bank import RirBank
from ..utils.dataset_io import save_dataset_atomically
from ..spatial.spatializer import permutations_of, permuted_mixtures
from .audio_io import decoded_to_array
from .schema import EVAL_SET_NAMES, assignment_features, doa_features, retrieval_features

__all__ = ["ClipReader", "build_eval_sets"]

logger = logging.getLogger(__name__)


class ClipReader:
    """Mono, fixed-length clips of one corpus split (``schema.SOURCE_FEATURES``).

    ``clip(i)`` returns float32 (samples,) at ``sample_rate`` Hz, exactly
    ``round(clip_seconds · sample_rate)`` samples long. ``caption(i)`` is the first caption,
    ``labels(i)`` the label names, ``id(i)`` the clip id. Clips without captions are left
    out of ``usable`` (with a warning).
    """

    def __init__(self, split: datasets.Dataset, *, sample_rate: int, clip_seconds: float, name: str = "split"):
        missing = {"id", "audio", "captions", "labels"} - set(split.column_names)
        if missing:
            raise ValueError(
                f"The corpus {name} split lacks columns {sorted(missing)}; it must follow SOURCE_FEATURES."
            )
        if clip_seconds <= 0:
            raise ValueError(f"clip_seconds must be positive, got {clip_seconds}.")
        self.split = split
        self.name = name
        self.sample_rate = int(sample_rate)
        self.num_samples = int(round(clip_seconds * sample_rate))
        self.ids = [str(v) for v in split["id"]]
        self.captions = [list(c) for c in split["captions"]]
        self.label_names = [list(v) for v in split["labels"]]
        self.usable = [i for i, c in enumerate(self.captions) if c and c[0].strip()]
        if len(self.usable) < len(self.ids):
            logger.warning(
                "%d of %d clips in the corpus %s split have no caption and are not used.",
                len(self.ids) - len(self.usable),
                len(self.ids),
                name,
            )
        self._warned: set[str] = set()
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def id(self, i: int) -> str:
        return self.ids[i]

    def caption(self, i: int) -> str:
        return self.captions[i][0]

    def labels(self, i: int) -> list[str]:
        return self.label_names[i]

    def clip(self, i: int) -> np.ndarray:
        """Decoded clip ``i`` as float32 (samples,) at ``sample_rate`` Hz, fixed length."""
        if i not in self._cache:
            if len(self._cache) >= 256:
                self._cache.pop(next(iter(self._cache)))
            self._cache[i] = self._decode(i)
        return self._cache[i]

    def _decode(self, i: int) -> np.ndarray:
        array, rate = decoded_to_array(self.split[i]["audio"])
        audio = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
        if audio.shape[0] > 1:
            self._warn_once(
                f"mono:{audio.shape[0]}",
                f"Clips of the corpus {self.name} split have {audio.shape[0]} channels (e.g. {self.ids[i]}); "
                "they are down-mixed to mono (channel mean).",
            )
        audio = audio.mean(dim=0)
        if rate != self.sample_rate:
            import torchaudio.functional as AF

            self._warn_once(
                f"rate:{rate}",
                f"Clips of the corpus {self.name} split are at {rate} Hz (e.g. {self.ids[i]}); the RIR bank is at "
                f"{self.sample_rate} Hz, so they are resampled to {self.sample_rate} Hz.",
            )
            audio = AF.resample(audio, rate, self.sample_rate)
        out = np.zeros(self.num_samples, dtype=np.float32)
        n = min(self.num_samples, audio.shape[0])
        out[:n] = audio[:n].numpy()
        return out

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message)

    def distinct(self, a: int, b: int) -> bool:
        """Whether clips a and b have different content: captions differ and, when both are
        labelled, their label sets differ."""
        if _caption_key(self.caption(a)) == _caption_key(self.caption(b)):
            return False
        la, lb = set(self.labels(a)), set(self.labels(b))
        return not (la and lb and la == lb)


def _caption_key(caption: str) -> str:
    return " ".join(caption.lower().strip().rstrip(".!?").split())


@dataclass
class _ScenePlan:
    """One row to render: clip indices, room, azimuths (degrees) and the row's other columns."""

    row_id: str
    clips: list[int]
    room_id: int
    azimuths: list[float]
    extra: dict = field(default_factory=dict)


class _ClipCycle:
    """Clip indices from a seeded shuffle, reshuffled when exhausted (clips repeat only then)."""

    def __init__(self, indices: Sequence[int], rng: np.random.Generator):
        if len(indices) == 0:
            raise ValueError("No usable clips (every clip needs at least one caption).")
        self.indices, self.rng, self.order = list(indices), rng, []

    def next(self) -> int:
        if not self.order:
            self.order = [self.indices[j] for j in self.rng.permutation(len(self.indices))]
        return self.order.pop()


class _Directions:
    """Seeded draws of azimuths (degrees) from a bank grid by DoA class."""

    def __init__(self, azimuths: np.ndarray, phrases: PhraseSet, rng: np.random.Generator):
        self.rng = rng
        self.num_classes = len(phrases)
        classes = np.asarray(doa_class(azimuths, phrases))
        self.by_class = [azimuths[classes == k] for k in range(self.num_classes)]
        empty = [k for k, a in enumerate(self.by_class) if a.size == 0]
        if empty:
            raise ValueError(
                f"The RIR bank's azimuth grid has no direction in DoA classes {empty}; build it with a finer "
                "--azimuth-step (e.g. 30° or less)."
            )

    def balanced_classes(self, n: int) -> np.ndarray:
        classes = np.arange(n) % self.num_classes
        self.rng.shuffle(classes)
        return classes

    def in_class(self, k: int) -> float:
        choices = self.by_class[int(k)]
        return float(choices[self.rng.integers(choices.size)])

    def distinct(self, n: int) -> list[float]:
        if n > self.num_classes:
            raise ValueError(f"Cannot place {n} sources in distinct DoA classes: there are {self.num_classes}.")
        return [self.in_class(k) for k in self.rng.choice(self.num_classes, size=n, replace=False)]


def _pick_distinct(reader: ClipReader, cycle: _ClipCycle, n: int, *, max_tries: int = 1000) -> list[int]:
    chosen = [cycle.next()]
    tries = 0
    while len(chosen) < n:
        candidate = cycle.next()
        if all(reader.distinct(candidate, c) for c in chosen):
            chosen.append(candidate)
            continue
        tries += 1
        if tries > max_tries:
            raise ValueError(
                f"Could not find {n} clips with different content (captions and label sets) in the corpus "
                f"{reader.name} split; it needs more varied clips."
            )
    return chosen


# ---------------------------------------------------------------------------------------------
# Plans
# ---------------------------------------------------------------------------------------------


def _plan_doa(
    name: str,
    reader: ClipReader,
    rooms: Sequence[int],
    directions: _Directions,
    rng: np.random.Generator,
    n: int,
    phrases: PhraseSet,
) -> list[_ScenePlan]:
    cycle = _ClipCycle(reader.usable, rng)
    plans = []
    for i, k in enumerate(directions.balanced_classes(n)):
        clip, azimuth = cycle.next(), directions.in_class(k)
        caption = reader.caption(clip)
        plans.append(
            _ScenePlan(
                f"{name}-{i:05d}",
                [clip],
                int(rooms[rng.integers(len(rooms))]),
                [azimuth],
                {
                    "folded_azimuth_deg": float(fold_azimuth(azimuth)),
                    "doa_class": int(doa_class(azimuth, phrases)),
                    "caption_src": compose_caption([caption], None, phrases),
                    "caption_sp_src": compose_caption([caption], [azimuth], phrases),
                },
            )
        )
    return plans


def _plan_assignment(
    name: str,
    reader: ClipReader,
    rooms: Sequence[int],
    directions: _Directions,
    rng: np.random.Generator,
    n: int,
    num_sources: int,
    phrases: PhraseSet,
) -> list[_ScenePlan]:
    cycle = _ClipCycle(reader.usable, rng)
    perms = permutations_of(num_sources)
    plans = []
    for i in range(n):
        clips = _pick_distinct(reader, cycle, num_sources)
        azimuths = directions.distinct(num_sources)
        captions = [reader.caption(c) for c in clips]
        candidates = [compose_caption(captions, [azimuths[j] for j in perm], phrases) for perm in perms]
        order = rng.permutation(len(perms))
        plans.append(
            _ScenePlan(
                f"{name}-{i:05d}",
                clips,
                int(rooms[rng.integers(len(rooms))]),
                azimuths,
                {"candidate_captions": [candidates[j] for j in order], "label": int(np.flatnonzero(order == 0)[0])},
            )
        )
    return plans


def _plan_retrieval(
    name: str,
    reader: ClipReader,
    rooms: Sequence[int],
    directions: _Directions,
    rng: np.random.Generator,
    n: int,
    two_source_fraction: float,
    phrases: PhraseSet,
) -> list[_ScenePlan]:
    sizes = np.where(np.arange(n) < round(n * two_source_fraction), 2, 1)
    rng.shuffle(sizes)
    pool = _unique_caption_pool(reader, rng)
    available = len(pool)
    single_classes = iter(directions.balanced_classes(int((sizes == 1).sum())))
    plans = []
    for size in sizes:
        clips = _take_distinct(reader, pool, int(size))
        if clips is None:
            break
        captions = [reader.caption(c) for c in clips]
        azimuths = [directions.in_class(next(single_classes))] if size == 1 else directions.distinct(2)
        plans.append(
            _ScenePlan(
                f"{name}-{len(plans):05d}",
                clips,
                int(rooms[rng.integers(len(rooms))]),
                azimuths,
                {
                    "n_sources": int(size),
                    "caption_src": compose_caption(captions, None, phrases),
                    "caption_sp_src": compose_caption(captions, azimuths, phrases),
                },
            )
        )
    if len(plans) < n:
        logger.warning(
            "The %s set has %d rows instead of %d: the corpus %s split has only %d clips with distinct "
            "captions and each clip is used once (so that every caption is unique).",
            name,
            len(plans),
            n,
            reader.name,
            available,
        )
    return plans


def _unique_caption_pool(reader: ClipReader, rng: np.random.Generator) -> list[int]:
    """Usable clips in a seeded order, keeping only the first clip of each caption."""
    pool, seen = [], set()
    for j in rng.permutation(len(reader.usable)):
        clip = reader.usable[int(j)]
        key = _caption_key(reader.caption(clip))
        if key not in seen:
            seen.add(key)
            pool.append(clip)
    if len(pool) < len(reader.usable):
        logger.warning(
            "%d clips of the corpus %s split repeat another clip's caption; retrieval uses one clip per caption.",
            len(reader.usable) - len(pool),
            reader.name,
        )
    return pool


def _take_distinct(reader: ClipReader, pool: list[int], n: int) -> list[int] | None:
    """Pop n clips with pairwise different content from the front of ``pool`` (None if impossible)."""
    chosen: list[int] = []
    for clip in pool:
        if all(reader.distinct(clip, c) for c in chosen):
            chosen.append(clip)
        if len(chosen) == n:
            for c in chosen:
                pool.remove(c)
            return chosen
    return None


# ---------------------------------------------------------------------------------------------
# Rendering and writing
# ---------------------------------------------------------------------------------------------


def _render(plans: list[_ScenePlan], reader: ClipReader, bank: RirBank, device: torch.device) -> list[np.ndarray]:
    """Waveforms (C, T) float32 of a chunk of plans with the same number of sources."""
    n = len(plans[0].clips)
    sources = torch.from_numpy(np.stack([np.stack([reader.clip(c) for c in p.clips]) for p in plans])).to(device)
    keys = [(p.room_id, az) for p in plans for az in p.azimuths]
    rirs = bank.get_batch(keys, device=device)
    rirs = rirs.reshape(len(plans), n, *rirs.shape[1:])
    audio = permuted_mixtures(sources, rirs, [tuple(range(n))])[:, 0]
    return list(audio.cpu().numpy().astype(np.float32))


def _write_set(
    name: str,
    plans: list[_ScenePlan],
    reader: ClipReader,
    bank: RirBank,
    features: datasets.Features,
    path: Path,
    *,
    batch_size: int,
    device: torch.device,
) -> datasets.Dataset:
    """Render ``plans`` in chunks, write them as shards and save the set atomically at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".tmp-{name}-", dir=path.parent) as tmp:
        shards = []
        progress = tqdm(total=len(plans), desc=f"Eval set {name}", unit="clip")
        for start in range(0, len(plans), batch_size):
            chunk = plans[start : start + batch_size]
            waves: dict[int, np.ndarray] = {}
            for n in sorted({len(p.clips) for p in chunk}):
                group = [i for i, p in enumerate(chunk) if len(p.clips) == n]
                waves.update(zip(group, _render([chunk[i] for i in group], reader, bank, device)))
            rows = [_row(p, waves[i], reader, bank.sample_rate) for i, p in enumerate(chunk)]
            columns = {k: [r[k] for r in rows] for k in features}
            shard = datasets.Dataset.from_dict(columns, features=features)
            shard_path = Path(tmp) / f"shard_{len(shards):05d}"
            save_dataset_atomically(shard, shard_path)
            shards.append(datasets.load_from_disk(str(shard_path)))
            progress.update(len(chunk))
        progress.close()
        full = datasets.concatenate_datasets(shards) if shards else datasets.Dataset.from_dict(
            {k: [] for k in features}, features=features
        )
        save_dataset_atomically(full, path)
    return datasets.load_from_disk(str(path))


def _row(plan: _ScenePlan, waveform: np.ndarray, reader: ClipReader, sample_rate: int) -> dict:
    return {
        "id": plan.row_id,
        "waveform": waveform,
        "sampling_rate": sample_rate,
        "room_id": plan.room_id,
        "azimuths_deg": [float(a) for a in plan.azimuths],
        "source_ids": [reader.id(c) for c in plan.clips],
        **plan.extra,
    }


def build_eval_sets(
    corpus: datasets.DatasetDict,
    bank: RirBank,
    output_dir: str | Path,
    *,
    n_doa: int = 500,
    n_doa_val: int | None = None,
    n_assignment2: int = 500,
    n_assignment3: int = 500,
    n_retrieval: int = 1000,
    seed: int = 0,
    sample_rate: int = 16000,
    clip_seconds: float = 10.0,
    split: str = "test",
    retrieval_two_source_fraction: float = 0.5,
    phrases: PhraseSet = DEFAULT_PHRASES,
    batch_size: int = 32,
    device: torch.device | str | None = None,
) -> dict[str, datasets.Dataset]:
    """Build and save every evaluation set; returns ``{name: Dataset}`` (loaded from disk).

    ``corpus``: source corpus with "validation" and "test" splits (``SOURCE_FEATURES``, mono
    clips); the sets use its ``split`` split and that split's rooms (``"test"``: the report's
    sets; ``"validation"``: the same protocol on validation clips and rooms, for choosing
    settings), ``doa_val`` always its validation split and the bank's val rooms (``n_doa_val``
    rows, default ``n_doa``). ``sample_rate`` (Hz) must equal the bank's; clips at other rates
    are resampled. ``clip_seconds`` fixes every clip's length. Convolution runs batched on
    ``device`` (default CPU).
    """
    if int(sample_rate) != bank.sample_rate:
        raise ValueError(
            f"sample_rate {sample_rate} Hz differs from the RIR bank's {bank.sample_rate} Hz; "
            "pass the bank's rate (clips are resampled to it) or build a bank at that rate."
        )
    if not 0.0 <= retrieval_two_source_fraction <= 1.0:
        raise ValueError(f"retrieval_two_source_fraction must be in [0, 1], got {retrieval_two_source_fraction}.")
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}.")
    n_doa_val = n_doa if n_doa_val is None else n_doa_val
    for needed in ("test", "validation"):
        if needed not in corpus:
            raise ValueError(f"The corpus has no {needed!r} split (it has {list(corpus)}); evaluation sets need it.")
    device = torch.device(device) if device is not None else torch.device("cpu")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    readers = {
        s: ClipReader(corpus[s], sample_rate=sample_rate, clip_seconds=clip_seconds, name=s)
        for s in ("test", "validation")
    }
    sizes = {
        "doa": n_doa,
        "doa_val": n_doa_val,
        "assignment2": n_assignment2,
        "assignment3": n_assignment3,
        "retrieval": n_retrieval,
    }
    out = {}
    for index, name in enumerate(EVAL_SET_NAMES):
        set_split = "validation" if name == "doa_val" else split
        reader = readers[set_split]
        rooms = bank.rooms(set_split)
        rng = np.random.default_rng([seed, index])
        directions = _Directions(bank.azimuths(), phrases, rng)
        if name in ("doa", "doa_val"):
            plans, features = _plan_doa(name, reader, rooms, directions, rng, sizes[name], phrases), doa_features()
        elif name.startswith("assignment"):
            num_sources = int(name[-1])
            plans = _plan_assignment(name, reader, rooms, directions, rng, sizes[name], num_sources, phrases)
            features = assignment_features()
        else:
            plans = _plan_retrieval(
                name, reader, rooms, directions, rng, sizes[name], retrieval_two_source_fraction, phrases
            )
            features = retrieval_features()
        out[name] = _write_set(
            name, plans, reader, bank, features, output_dir / name, batch_size=batch_size, device=device
        )
        logger.info("Eval set %s: %d rows in %s.", name, len(out[name]), output_dir / name)
    info = {
        "seed": seed,
        "split": split,
        "sample_rate": sample_rate,
        "clip_seconds": clip_seconds,
        "sizes": {k: len(v) for k, v in out.items()},
        "rir_bank": {"cache_key": bank.config.cache_key(), **bank.config.to_dict()},
    }
    (output_dir / "eval_sets.json").write_text(json.dumps(info, indent=2, sort_keys=True))
    return out
