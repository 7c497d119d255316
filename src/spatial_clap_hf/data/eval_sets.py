"""Evaluation sets: spatialized clips with a fixed, seeded pairing in held-out rooms.

``build_eval_sets`` writes one spatialized dataset (``data.spatialized``, the schema of
``schema.spatial_features``) with one config per name of ``schema.EVAL_SET_NAMES``, its rows
under ``<output_dir>/<name>/<split>/``:

- ``doa``: single-source clips from test clips and test rooms, DoA classes balanced (class k
  for row i cycles through the classes, then the rows are shuffled), azimuth uniform over the
  bank's grid azimuths of that class (front and back), room uniform over the test rooms.
- ``doa_val``: the same from *validation* clips and *validation* rooms (fits the linear DoA
  probe that is scored on ``doa``).
- ``assignment2`` / ``assignment3``: mixtures y = (1/n) Σ h_i * x_i of 2 / 3 clips with different
  content (different first captions and, when both clips have labels, different label sets)
  in one test room, the sources in distinct DoA classes, each with all n! assignments of its
  directions as rows sharing its ``scene_id`` (as ``spatialize --scl`` writes them): the
  who-is-where captions of a scene's rows are the candidates of each of its rows.
- ``retrieval``: single- and two-source scenes, every clip used at most once and every
  caption distinct (so R@1 is well-defined), with spatial (``caption``) and content-only
  (``caption_src``) captions.

With ``split="validation"`` every set except ``doa_val`` is drawn from validation clips and
validation rooms instead of test ones: the same protocol for choosing settings, leaving the
test sets for the report.

A clip's content caption is its first caption. Clips are read by ``clips.ClipReader``
(resampled to the bank's rate and down-mixed to mono when needed, with a logged note; cut
or zero-padded to ``clip_seconds``); clips that are missing or do not decode are left out
and listed in ``skipped.json``. Everything is a function of ``seed``: two builds with the
same inputs are identical.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import datasets
import numpy as np
import torch

from ..spatial.conventions import DEFAULT_PHRASES, PhraseSet, doa_class
from ..spatial.rir_bank import RirBank
from .clips import ClipReader, caption_key
from .schema import EVAL_SET_NAMES
from .spatialized import DEFAULT_BIT_DEPTH, ScenePlan, corpus_identity, load_spatialized, write_part

__all__ = ["build_eval_sets"]

logger = logging.getLogger(__name__)


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
    name: str, reader: ClipReader, rooms: Sequence[int], directions: _Directions, rng: np.random.Generator, n: int
) -> list[ScenePlan]:
    cycle = _ClipCycle(reader.usable, rng)
    plans = []
    for i, k in enumerate(directions.balanced_classes(n)):
        clip, azimuth = cycle.next(), directions.in_class(k)
        room = int(rooms[rng.integers(len(rooms))])
        plans.append(ScenePlan(f"{name}-{i:05d}", (clip,), (reader.caption(clip),), room, (azimuth,)))
    return plans


def _plan_assignment(
    name: str,
    reader: ClipReader,
    rooms: Sequence[int],
    directions: _Directions,
    rng: np.random.Generator,
    n: int,
    num_sources: int,
) -> list[ScenePlan]:
    cycle = _ClipCycle(reader.usable, rng)
    plans = []
    for i in range(n):
        clips = _pick_distinct(reader, cycle, num_sources)
        azimuths = directions.distinct(num_sources)
        room = int(rooms[rng.integers(len(rooms))])
        captions = tuple(reader.caption(c) for c in clips)
        plans.append(ScenePlan(f"{name}-{i:05d}", tuple(clips), captions, room, tuple(azimuths), scl=True))
    return plans


def _plan_retrieval(
    name: str,
    reader: ClipReader,
    rooms: Sequence[int],
    directions: _Directions,
    rng: np.random.Generator,
    n: int,
    two_source_fraction: float,
) -> list[ScenePlan]:
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
        azimuths = [directions.in_class(next(single_classes))] if size == 1 else directions.distinct(2)
        room = int(rooms[rng.integers(len(rooms))])
        captions = tuple(reader.caption(c) for c in clips)
        plans.append(ScenePlan(f"{name}-{len(plans):05d}", tuple(clips), captions, room, tuple(azimuths)))
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
        key = caption_key(reader.caption(clip))
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


def build_eval_sets(
    corpus: datasets.DatasetDict,
    bank: RirBank,
    output_dir: str | os.PathLike,
    *,
    n_doa: int = 500,
    n_doa_val: int | None = None,
    n_assignment2: int = 500,
    n_assignment3: int = 500,
    n_retrieval: int = 1000,
    seed: int = 0,
    sample_rate: int | None = None,
    clip_seconds: float = 10.0,
    split: str = "test",
    retrieval_two_source_fraction: float = 0.5,
    phrases: PhraseSet = DEFAULT_PHRASES,
    bit_depth: int = DEFAULT_BIT_DEPTH,
    num_proc: int = 1,
    device: torch.device | str | None = None,
    corpus_name: str | os.PathLike = "corpus",
    show_progress: bool = True,
) -> dict[str, datasets.Dataset]:
    """Build (or reuse) every evaluation set; returns ``{name: Dataset}`` read back from ``output_dir``.

    ``corpus``: source corpus with "validation" and "test" splits (``SOURCE_FEATURES``, mono
    clips); the sets use its ``split`` split and that split's rooms (``"test"``: the report's
    sets; ``"validation"``: the same protocol on validation clips and rooms, for choosing
    settings), ``doa_val`` always its validation split and the bank's validation rooms
    (``n_doa_val`` rows, default ``n_doa``). ``sample_rate`` (Hz), when given, must equal the
    bank's; clips at other rates are resampled. ``clip_seconds`` fixes every clip's length.
    Rendering, workers (``num_proc``), resuming and refusals are ``spatialized.write_part``'s;
    ``corpus_name`` (its folder or Hub id) goes into the card.
    """
    if sample_rate is not None and int(sample_rate) != bank.sample_rate:
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
        if needed not in bank.splits:
            raise ValueError(
                f"The RIR bank has no {needed!r} split (it has {bank.splits}); evaluation sets need validation and "
                f"test rooms: `spatial-clap make-rirs --split {needed}`."
            )
    readers = {
        s: ClipReader(corpus[s], sample_rate=bank.sample_rate, clip_seconds=clip_seconds, name=s)
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
        rooms = bank.rooms(set_split)
        params = {
            "kind": f"eval:{name}",
            "corpus": corpus_identity(corpus[set_split], corpus_name),
            "seed": int(seed),
            "rows": int(sizes[name]),
            "num_sources": {"doa": [1], "doa_val": [1], "assignment2": [2], "assignment3": [3]}.get(name, [1, 2]),
            "scl": name.startswith("assignment"),
        }
        if name == "retrieval":
            params["two_source_fraction"] = float(retrieval_two_source_fraction)

        def plan(reader: ClipReader, name=name, index=index, rooms=rooms) -> list[ScenePlan]:
            rng = np.random.default_rng([seed, index])
            directions = _Directions(bank.azimuths(), phrases, rng)
            if name in ("doa", "doa_val"):
                return _plan_doa(name, reader, rooms, directions, rng, sizes[name])
            if name.startswith("assignment"):
                return _plan_assignment(name, reader, rooms, directions, rng, sizes[name], int(name[-1]))
            return _plan_retrieval(name, reader, rooms, directions, rng, sizes[name], retrieval_two_source_fraction)

        write_part(
            output_dir,
            config=name,
            split=set_split,
            data_dir=name,
            reader=readers[set_split],
            bank=bank,
            plan=plan,
            params=params,
            clip_seconds=clip_seconds,
            bit_depth=bit_depth,
            phrases=phrases,
            num_proc=num_proc,
            device=device,
            show_progress=show_progress,
        )
        out[name] = load_spatialized(output_dir, name, set_split)
        logger.info("Eval set %s: %d rows in %s.", name, len(out[name]), Path(output_dir) / name)
    return out
