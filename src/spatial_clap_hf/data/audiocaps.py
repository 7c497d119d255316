"""AudioCaps as a source corpus: a ``datasets.GeneratorBasedBuilder`` over a local copy.

Expected layout of ``audiocaps_dir`` (the official CSVs, audio fetched separately)::

    <audiocaps_dir>/train.csv, val.csv, test.csv     (or under <audiocaps_dir>/dataset/)
    <audiocaps_dir>/audio/**/<clip files>

The CSVs have the columns ``audiocap_id, youtube_id, start_time, caption``. Rows are
grouped per ``youtube_id``: val/test carry five captions per clip, train usually one, but
a clip listed several times gets all its captions. The row ``id`` is the YouTube id.
Splits: ``train`` (train.csv), ``validation`` (val.csv), ``test`` (test.csv).

Audio files are found by YouTube id anywhere below ``audio/``; accepted file names
(extensions wav, flac, mp3, ogg, any case) are ``<id>.<ext>``, ``Y<id>.<ext>`` and
``<id>_<anything>.<ext>`` / ``Y<id>_<anything>.<ext>`` (e.g. ``<id>_30.000.wav`` or
``<id>_30000_40000.flac``). When several files match one id the first in sorted path
order is used and the others are reported in a warning. The builder's Arrow cache
references the files by absolute path; ``build_audiocaps`` saves with ``save_to_disk``,
which embeds each file's bytes as they are (no re-encoding), so the saved corpus is
self-contained and takes about as much disk space as the audio folder.

Clips whose file is missing, or whose file does not open and decode (first half second,
checked with torchcodec), are skipped, logged with counts, and listed in
``<output_dir>/skipped.json``.

AudioSet labels (optional, ``audioset_dir``): the segment CSVs
``balanced_train_segments.csv``, ``unbalanced_train_segments.csv``, ``eval_segments.csv``
(comment lines start with ``#``; columns ``YTID, start_seconds, end_seconds,
positive_labels``) and ``class_labels_indices.csv`` (``index, mid, display_name``) give
each clip's ``labels`` as display names; without them ``labels`` is empty.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import datasets
from datasets.builder import Key

from .audio_io import AUDIO_EXTENSIONS, AudioDecodeError, probe_audio
from .schema import SOURCE_FEATURES

__all__ = [
    "AUDIOCAPS_SPLIT_FILES",
    "AUDIOSET_SEGMENT_FILES",
    "AudioCapsBuilder",
    "AudioCapsConfig",
    "build_audiocaps",
    "check_corpus_output_dir",
    "find_audio_files",
    "load_corpus",
    "load_label_names",
    "read_audiocaps_csv",
    "read_audioset_class_names",
    "read_audioset_labels",
    "save_corpus",
    "save_label_names",
]

logger = logging.getLogger(__name__)

#: Split name → AudioCaps CSV file name.
AUDIOCAPS_SPLIT_FILES: dict[str, str] = {"train": "train.csv", "validation": "val.csv", "test": "test.csv"}
#: AudioSet segment CSVs read (those present) when an AudioSet folder is given.
AUDIOSET_SEGMENT_FILES: tuple[str, ...] = (
    "balanced_train_segments.csv",
    "unbalanced_train_segments.csv",
    "eval_segments.csv",
)
AUDIOSET_CLASS_FILE = "class_labels_indices.csv"
SKIP_REPORT_FILE = "skipped.json"
LABEL_NAMES_FILE = "label_names.json"
REASON_MISSING = "no audio file found"
REASON_DECODE = "decode failed"
_SKIP_DIR = "skipped"


# --------------------------------------------------------------------------- CSV readers


def read_audiocaps_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read one AudioCaps CSV into ``{youtube_id: [captions...]}``.

    Clips keep the order of their first row; captions keep the row order. Needs the
    columns ``youtube_id`` and ``caption`` (``audiocap_id`` and ``start_time`` are unused).
    """
    path = Path(path)
    grouped: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"youtube_id", "caption"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(
                f"{path} lacks the column(s) {sorted(missing)}; an AudioCaps CSV has "
                "'audiocap_id,youtube_id,start_time,caption'."
            )
        for row in reader:
            youtube_id, caption = (row["youtube_id"] or "").strip(), (row["caption"] or "").strip()
            if not youtube_id or not caption:
                logger.warning("%s: row %s has an empty youtube_id or caption; ignored.", path, reader.line_num)
                continue
            grouped.setdefault(youtube_id, []).append(caption)
    return grouped


def read_audioset_labels(
    audioset_dir: str | os.PathLike, youtube_ids: set[str] | None = None
) -> tuple[list[str], dict[str, list[str]]]:
    """Read AudioSet class names and per-clip labels.

    Args:
        audioset_dir: folder holding ``class_labels_indices.csv`` and at least one of
            ``AUDIOSET_SEGMENT_FILES`` (searched recursively).
        youtube_ids: keep only these clips (``None`` keeps all).

    Returns:
        ``(label_names, labels)``: display names in class-index order, and
        ``{youtube_id: [display names]}`` in the order of ``positive_labels``.
    """
    root = Path(audioset_dir)
    class_file = _class_file(root)
    mid_to_name, label_names = _read_class_indices(class_file)
    segment_files = [p for p in (_find_one(root, name) for name in AUDIOSET_SEGMENT_FILES) if p is not None]
    if not segment_files:
        raise FileNotFoundError(f"No AudioSet segment CSV ({', '.join(AUDIOSET_SEGMENT_FILES)}) under {root}.")
    labels: dict[str, list[str]] = {}
    unknown: Counter[str] = Counter()
    for segment_file in segment_files:
        for ytid, mids in _read_segments(segment_file):
            if youtube_ids is not None and ytid not in youtube_ids:
                continue
            names = labels.setdefault(ytid, [])
            for mid in mids:
                if mid not in mid_to_name:
                    unknown[mid] += 1
                elif mid_to_name[mid] not in names:
                    names.append(mid_to_name[mid])
    if unknown:
        logger.warning(
            "%d label ids in the segment CSVs are not in %s and were ignored: %s",
            sum(unknown.values()), class_file.name, sorted(unknown)[:10],
        )
    return label_names, labels


def read_audioset_class_names(audioset_dir: str | os.PathLike) -> list[str]:
    """AudioSet display names in class-index order, from ``class_labels_indices.csv``."""
    return _read_class_indices(_class_file(Path(audioset_dir)))[1]


def _class_file(root: Path) -> Path:
    if not root.is_dir():
        raise FileNotFoundError(f"AudioSet folder {root} does not exist.")
    class_file = _find_one(root, AUDIOSET_CLASS_FILE)
    if class_file is None:
        raise FileNotFoundError(
            f"No {AUDIOSET_CLASS_FILE} under {root}; download it with the AudioSet segment CSVs, "
            "or build without an AudioSet folder (labels stay empty)."
        )
    return class_file


def _find_one(root: Path, name: str) -> Path | None:
    direct = root / name
    if direct.is_file():
        return direct
    found = sorted(root.rglob(name))
    return found[0] if found else None


def _read_class_indices(path: Path) -> tuple[dict[str, str], list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        missing = {"index", "mid", "display_name"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} lacks the column(s) {sorted(missing)}; expected 'index,mid,display_name'.")
        rows = sorted(((int(r["index"]), r["mid"].strip(), r["display_name"].strip()) for r in reader))
    return {mid: name for _, mid, name in rows}, [name for _, _, name in rows]


def _read_segments(path: Path) -> Iterator[tuple[str, list[str]]]:
    """Yield ``(YTID, [mids])`` from an AudioSet segment CSV ('#' lines are comments)."""
    with open(path, newline="", encoding="utf-8") as f:
        lines = (line for line in f if line.strip() and not line.lstrip().startswith("#"))
        for row in csv.reader(lines, skipinitialspace=True):
            if len(row) < 4:
                logger.warning("%s: malformed row %r ignored.", path, row)
                continue
            yield row[0].strip(), [m.strip() for m in row[3].split(",") if m.strip()]


# --------------------------------------------------------------------------- audio files


def find_audio_files(audio_dir: str | os.PathLike, youtube_ids: set[str]) -> dict[str, Path]:
    """Map each YouTube id to its audio file below ``audio_dir`` (see module doc for names).

    Each file goes to the longest wanted id its name matches. Ids without a file are
    absent from the result. With several files for one id, the first in sorted path
    order wins and a warning says how many ids were ambiguous.
    """
    audio_dir = Path(audio_dir)
    candidates: dict[str, list[Path]] = {}
    extensions = {f".{e}" for e in AUDIO_EXTENSIONS}
    for path in sorted(p for p in audio_dir.rglob("*") if p.suffix.lower() in extensions and p.is_file()):
        # A file belongs to one clip: the longest candidate id that is a wanted id.
        matches = [i for i in sorted(_ids_in_stem(path.stem), key=len, reverse=True) if i in youtube_ids]
        if matches:
            candidates.setdefault(matches[0], []).append(path)
    ambiguous = {k: v for k, v in candidates.items() if len(v) > 1}
    if ambiguous:
        example = next(iter(ambiguous.items()))
        logger.warning(
            "%d clip ids match several audio files; using the first in sorted order "
            "(e.g. %s: %s).", len(ambiguous), example[0], [str(p) for p in example[1]],
        )
    return {youtube_id: paths[0] for youtube_id, paths in candidates.items()}


def _ids_in_stem(stem: str) -> set[str]:
    """Candidate YouTube ids of a file stem: itself, without a leading 'Y', and each
    prefix ending before an underscore (for ``<id>_<start>`` names)."""
    ids = set()
    for base in (stem, stem[1:] if stem.startswith("Y") else None):
        if not base:
            continue
        ids.add(base)
        ids.update(base[:i] for i, ch in enumerate(base) if ch == "_" and i > 0)
    return ids


# --------------------------------------------------------------------------- builder


@dataclass
class AudioCapsConfig(datasets.BuilderConfig):
    """``data_dir``: the AudioCaps folder. ``audioset_dir``: optional AudioSet CSV folder.
    ``probe_seconds``: how much of each file is decoded to check it. ``shard_size``: clips
    per generation shard (the unit ``num_proc`` workers share)."""

    audioset_dir: str | None = None
    probe_seconds: float = 0.5
    shard_size: int = 256


class AudioCapsBuilder(datasets.GeneratorBasedBuilder):
    """Builds the AudioCaps source corpus (``SOURCE_FEATURES``) from a local copy.

    Use directly, without a dataset script::

        builder = AudioCapsBuilder(data_dir="AudioCaps", audioset_dir="AudioSet", cache_dir="cache")
        builder.download_and_prepare()
        corpus = builder.as_dataset()          # DatasetDict train/validation/test
        skipped = builder.skipped_clips()      # [{"split", "youtube_id", "reason", "path"}]

    or through :func:`build_audiocaps`, which also saves the corpus and the skip report.
    """

    BUILDER_CONFIG_CLASS = AudioCapsConfig
    VERSION = datasets.Version("1.0.0")

    def _info(self) -> datasets.DatasetInfo:
        return datasets.DatasetInfo(
            description="AudioCaps clips (mono source audio) with their captions and AudioSet labels.",
            features=SOURCE_FEATURES,
            homepage="https://audiocaps.github.io/",
            license="Captions: MIT (github.com/cdjkim/audiocaps); audio: YouTube videos indexed by AudioSet.",
            citation=(
                "@inproceedings{kim2019audiocaps, title={AudioCaps: Generating Captions for Audios in "
                "the Wild}, author={Kim, Chris Dongjoo and Kim, Byeongchang and Lee, Hyunmin and "
                "Kim, Gunhee}, booktitle={NAACL-HLT}, year={2019}}"
            ),
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        root = _check_audiocaps_dir(self.config.data_dir)
        captions = {split: read_audiocaps_csv(_find_csv(root, name)) for split, name in AUDIOCAPS_SPLIT_FILES.items()}
        all_ids = {youtube_id for per_split in captions.values() for youtube_id in per_split}
        files = find_audio_files(root / "audio", all_ids)
        labels: dict[str, list[str]] = {}
        if self.config.audioset_dir is not None:
            _, labels = read_audioset_labels(self.config.audioset_dir, all_ids)
            unlabelled = len(all_ids - set(labels))
            if unlabelled:
                logger.warning(
                    "%d of %d AudioCaps clips have no AudioSet labels (labels = []).", unlabelled, len(all_ids)
                )
        logger.info("Found audio for %d of %d AudioCaps clips.", len(files), len(all_ids))
        generators = []
        for split, per_split in captions.items():
            clips = [
                {
                    "youtube_id": youtube_id,
                    "captions": caps,
                    "labels": labels.get(youtube_id, []),
                    "path": str(files[youtube_id].resolve()) if youtube_id in files else None,
                }
                for youtube_id, caps in per_split.items()
            ]
            size = max(1, int(self.config.shard_size))
            shards = [{"index": i // size, "clips": clips[i : i + size]} for i in range(0, len(clips), size)]
            generators.append(datasets.SplitGenerator(name=split, gen_kwargs={"shards": shards, "split": split}))
        return generators

    def _generate_examples(self, shards: list[dict], split: str) -> Iterator[tuple[Key, dict]]:
        for shard in shards:
            skipped = []
            for item, clip in enumerate(shard["clips"]):
                reason = self._check_clip(clip)
                if reason is not None:
                    skipped.append(
                        {"split": split, "youtube_id": clip["youtube_id"], "reason": reason, "path": clip["path"]}
                    )
                    continue
                yield Key(shard["index"], item), {
                    "id": clip["youtube_id"],
                    "audio": clip["path"],
                    "captions": clip["captions"],
                    "labels": clip["labels"],
                }
            self._write_skipped(split, shard["index"], skipped)

    def _as_dataset(self, split: Any = datasets.Split.TRAIN, in_memory: bool = False) -> datasets.Dataset:
        # A split whose clips were all skipped has no Arrow data; datasets cannot read it back.
        name = str(split)
        if self.info.splits is not None and name in self.info.splits and self.info.splits[name].num_examples == 0:
            logger.warning("AudioCaps split '%s' has no usable clips; it is empty.", name)
            return datasets.Dataset.from_dict({k: [] for k in SOURCE_FEATURES}, features=SOURCE_FEATURES, split=name)
        return super()._as_dataset(split=split, in_memory=in_memory)

    def _check_clip(self, clip: dict) -> str | None:
        """``None`` when the clip's audio opens and decodes, else the skip reason."""
        if clip["path"] is None:
            return REASON_MISSING
        try:
            probe_audio(clip["path"], probe_seconds=self.config.probe_seconds)
        except AudioDecodeError as err:
            return f"{REASON_DECODE}: {err.reason}"
        return None

    def _write_skipped(self, split: str, shard_index: int, skipped: list[dict]) -> None:
        # Written inside the (temporary) output folder, so it moves with the prepared data
        # and survives multiprocessing (one file per shard).
        folder = Path(self._output_dir) / _SKIP_DIR
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{split}-{shard_index:05d}.json").write_text(json.dumps(skipped))

    def skipped_clips(self) -> list[dict]:
        """Clips left out by ``download_and_prepare``: dicts with ``split``, ``youtube_id``,
        ``reason`` and ``path`` (``None`` when no file was found), in split and CSV order."""
        folder = Path(self._output_dir) / _SKIP_DIR
        if not folder.is_dir():
            raise RuntimeError("No skip records found; call download_and_prepare() first.")
        order = {split: i for i, split in enumerate(AUDIOCAPS_SPLIT_FILES)}
        files = sorted(folder.glob("*.json"), key=lambda p: (order[p.stem.rsplit("-", 1)[0]], p.stem))
        return [entry for f in files for entry in json.loads(f.read_text())]


def _check_audiocaps_dir(data_dir: str | None) -> Path:
    if data_dir is None:
        raise ValueError("AudioCapsBuilder needs data_dir=<AudioCaps folder with train/val/test.csv and audio/>.")
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"AudioCaps folder {root} does not exist.")
    if not (root / "audio").is_dir():
        raise FileNotFoundError(
            f"No audio folder at {root / 'audio'}; put the clips (named <youtube_id>*.wav/flac/mp3/ogg) "
            "anywhere below <audiocaps_dir>/audio/."
        )
    return root


def _find_csv(root: Path, name: str) -> Path:
    for candidate in (root / name, root / "dataset" / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"AudioCaps CSV {name} not found in {root} or {root / 'dataset'}; the builder needs "
        f"{', '.join(AUDIOCAPS_SPLIT_FILES.values())} from https://github.com/cdjkim/audiocaps."
    )


# --------------------------------------------------------------------------- build, save, load (both corpora)


def build_audiocaps(
    audiocaps_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    audioset_dir: str | os.PathLike | None = None,
    num_proc: int | None = None,
) -> datasets.DatasetDict:
    """Build the AudioCaps corpus and ``save_to_disk(output_dir)`` (audio bytes embedded).

    Also writes ``<output_dir>/skipped.json`` (``{"total", "per_split", "skipped": [...]}``;
    each entry has ``split``, ``youtube_id``, ``reason``, ``path``) and
    ``<output_dir>/label_names.json`` (AudioSet display names in class-index order, or
    ``[]`` without ``audioset_dir``). ``num_proc`` workers share the decode check.

    Returns:
        The saved ``DatasetDict`` (train/validation/test), loaded back from ``output_dir``.
    """
    audiocaps_dir, output_dir = Path(audiocaps_dir), Path(output_dir)
    _check_audiocaps_dir(str(audiocaps_dir))
    check_corpus_output_dir(output_dir)
    label_names = read_audioset_class_names(audioset_dir) if audioset_dir is not None else []
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    cache_dir = tempfile.mkdtemp(prefix=".audiocaps-build-", dir=output_dir.parent)
    try:
        builder = AudioCapsBuilder(
            data_dir=str(audiocaps_dir.resolve()),
            audioset_dir=None if audioset_dir is None else str(Path(audioset_dir).resolve()),
            cache_dir=cache_dir,
        )
        builder.download_and_prepare(num_proc=num_proc)
        corpus = builder.as_dataset()
        skipped = builder.skipped_clips()
        save_corpus(corpus, output_dir, label_names=label_names)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    _write_skip_report(output_dir, skipped, {split: len(ds) for split, ds in corpus.items()})
    return load_corpus(output_dir)


def check_corpus_output_dir(output_dir: Path) -> None:
    """Refuse a non-empty folder unless it holds a saved corpus (which will be replaced)."""
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir} is a file; give a folder for the corpus.")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / "dataset_dict.json").is_file():
        raise FileExistsError(
            f"{output_dir} exists and holds something other than a saved corpus; choose an empty or new folder."
        )


def _clear_previous_corpus(output_dir: Path) -> None:
    """Remove a corpus saved earlier in ``output_dir`` (its splits and side files only)."""
    index = output_dir / "dataset_dict.json"
    if not index.is_file():
        return
    logger.info("Replacing the corpus saved in %s.", output_dir)
    for split in json.loads(index.read_text()).get("splits", []):
        shutil.rmtree(output_dir / split, ignore_errors=True)
    for name in ("dataset_dict.json", SKIP_REPORT_FILE, LABEL_NAMES_FILE, "synthetic_corpus.json"):
        (output_dir / name).unlink(missing_ok=True)


def save_corpus(corpus: datasets.DatasetDict, output_dir: str | os.PathLike, *, label_names: list[str]) -> None:
    """Save a source corpus with ``save_to_disk`` plus ``label_names.json``.

    ``output_dir`` must be new, empty, or hold a corpus saved earlier, which is replaced.
    """
    output_dir = Path(output_dir)
    check_corpus_output_dir(output_dir)
    missing = {"train", "validation", "test"} - set(corpus)
    if missing:
        raise ValueError(f"A source corpus needs the splits train/validation/test; missing {sorted(missing)}.")
    _clear_previous_corpus(output_dir)
    # An empty split needs one (empty) shard written, or load_from_disk cannot read it back.
    corpus.save_to_disk(str(output_dir), num_shards={split: 1 for split, ds in corpus.items() if len(ds) == 0})
    save_label_names(output_dir, label_names)


def _write_skip_report(output_dir: Path, skipped: list[dict], kept: dict[str, int]) -> None:
    per_split = {split: sum(1 for s in skipped if s["split"] == split) for split in AUDIOCAPS_SPLIT_FILES}
    report = {"total": len(skipped), "per_split": per_split, "skipped": skipped}
    (output_dir / SKIP_REPORT_FILE).write_text(json.dumps(report, indent=1))
    for split in AUDIOCAPS_SPLIT_FILES:
        reasons = Counter(s["reason"].split(":")[0] for s in skipped if s["split"] == split)
        logger.info(
            "AudioCaps %s: %d clips kept, %d skipped %s.", split, kept.get(split, 0), per_split[split], dict(reasons)
        )
    if skipped:
        logger.warning(
            "Skipped %d AudioCaps clips (missing or undecodable audio); see %s.",
            len(skipped), output_dir / SKIP_REPORT_FILE,
        )


def save_label_names(corpus_dir: str | os.PathLike, label_names: list[str]) -> None:
    """Write the corpus' ordered class names (the SED classes) to ``<corpus_dir>/label_names.json``."""
    Path(corpus_dir, LABEL_NAMES_FILE).write_text(json.dumps(list(label_names), indent=0))


def load_label_names(corpus_dir: str | os.PathLike) -> list[str]:
    """The ordered class names saved with a corpus; when the file is absent, the sorted
    set of labels found in the corpus (logged)."""
    path = Path(corpus_dir, LABEL_NAMES_FILE)
    if path.is_file():
        return list(json.loads(path.read_text()))
    corpus = load_corpus(corpus_dir)
    names = sorted({name for split in corpus.values() for labels in split["labels"] for name in labels})
    logger.info("No %s in %s; using the %d labels found in the corpus.", LABEL_NAMES_FILE, corpus_dir, len(names))
    return names


def load_corpus(path: str | os.PathLike) -> datasets.DatasetDict:
    """Load a source corpus (AudioCaps or synthetic): a folder saved with ``save_to_disk``, or a
    Hub dataset id (``user/name``, read with ``load_dataset``) with the same splits and columns.

    Checks that it has the splits train/validation/test and the ``SOURCE_FEATURES`` columns.
    """
    path = Path(path)
    if (path / "dataset_dict.json").is_file():
        corpus = datasets.load_from_disk(str(path))
    elif not path.exists() and _looks_like_hub_id(str(path)):
        corpus = datasets.load_dataset(str(path))
    else:
        raise FileNotFoundError(
            f"No saved corpus at {path}; create one with `spatial-clap make-corpus` or "
            "`spatial-clap build-audiocaps`, or give a Hub dataset id (user/name)."
        )
    missing_splits = {"train", "validation", "test"} - set(corpus)
    if missing_splits:
        raise ValueError(f"Corpus at {path} lacks the split(s) {sorted(missing_splits)}.")
    for split, ds in corpus.items():
        missing = set(SOURCE_FEATURES) - set(ds.column_names)
        if missing:
            raise ValueError(f"Corpus split '{split}' at {path} lacks the column(s) {sorted(missing)}.")
    return corpus


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))
