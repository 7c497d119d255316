"""Audio files in, scores or embeddings out: the work behind ``spatial-clap classify`` / ``embed``.

Every file is read and checked before any model work starts, so a bad file (unreadable,
wrong channel count) stops the run with one error listing every bad file and the fix,
instead of failing half-way.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..spatial.conventions import DEFAULT_PHRASES, PhraseSet
from .pipeline import AudioDecodeError, check_channels, decode_audio, fit_channels, input_channels

if TYPE_CHECKING:
    import datasets

    from .pipeline import SpatialZeroShotAudioClassificationPipeline

__all__ = [
    "AudioFilesError",
    "FileScores",
    "classify_files",
    "embed_files",
    "embedding_features",
    "write_embeddings",
]

logger = logging.getLogger(__name__)


class AudioFilesError(ValueError):
    """One or more input files are unusable; ``errors`` holds one message per bad file."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass
class FileScores:
    """Scores of one file: ``scores`` as the pipeline (labels) or ``where_is`` (directions) returns them.

    ``sample_rate`` is the file's rate in Hz; ``resampled`` says whether the processor
    resampled it to the model's rate.
    """

    path: str
    sample_rate: int
    resampled: bool
    scores: list[dict[str, Any]]


def classify_files(
    classifier: "SpatialZeroShotAudioClassificationPipeline",
    paths: Sequence[str | os.PathLike],
    *,
    labels: Sequence[str] | None = None,
    where: str | None = None,
    top_k: int | None = None,
    hypothesis_template: str = "{}",
    phrases: PhraseSet = DEFAULT_PHRASES,
) -> list[FileScores]:
    """Score each file against ``labels`` (best first) or answer "where is ``where``?" (sector order).

    Exactly one of ``labels`` / ``where`` is given. ``top_k`` keeps the K best labels, or the
    K most likely directions (still in left-to-right order). Files may have any sample rate
    (the processor resamples; ``FileScores.resampled`` says so).

    Raises:
        AudioFilesError: some files are unreadable or have the wrong channel count (all listed).
    """
    if (labels is None) == (where is None):
        raise ValueError("Pass either labels (candidate labels) or where (a sound description), not both or neither.")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}.")
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError("No audio files given; pass at least one file.")
    rates = _probe_files(paths, spatial=classifier.is_spatial, num_channels=classifier.num_channels)
    results = []
    for path, rate in tqdm(list(zip(paths, rates)), desc="classify", unit="file", disable=len(paths) < 2):
        if labels is not None:
            scores = classifier(
                path, candidate_labels=list(labels), hypothesis_template=hypothesis_template, top_k=top_k
            )
        else:
            scores = classifier(path, where=where, direction_phrases=list(phrases.phrases), top_k=top_k)
        results.append(FileScores(path, rate, rate != classifier.sampling_rate, scores))
    return results


# ------------------------------------------------------------------------------------ embeddings


def _datasets():
    """The ``datasets`` module, which embedding tables are made of (not part of the core install)."""
    try:
        import datasets
    except ImportError as err:
        raise ImportError(
            "Embedding files into a table needs the datasets library, which the core install leaves out: "
            "pip install 'spatial_clap_hf[train]' (or pip install datasets)."
        ) from err
    return datasets


def embedding_features() -> "datasets.Features":
    """Columns of an embeddings file: ``source`` (file path or text), ``kind`` ("audio"/"text"),
    ``embedding`` (L2-normalised, float32, length ``projection_dim``)."""
    _datasets()
    from datasets import Features, List, Value

    return Features({"source": Value("string"), "kind": Value("string"), "embedding": List(Value("float32"))})


def _probe_files(paths: Sequence[str], *, spatial: bool, num_channels: int) -> list[int]:
    """Decode every file, check its channels and length; return the sample rates (Hz). Raises ``AudioFilesError``."""
    rates, errors = [], []
    for path in tqdm(paths, desc="check files", unit="file", disable=len(paths) < 2):
        try:
            array, rate = decode_audio(path)
            if array.shape[-1] == 0:
                raise ValueError(f"The audio file '{path}' holds no samples (zero length); pass real audio.")
            check_channels(array.shape, spatial=spatial, num_channels=num_channels, source=f"audio file '{path}'")
            rates.append(rate)
        except (AudioDecodeError, ValueError) as err:
            errors.append(str(err))
    if errors:
        raise AudioFilesError(errors)
    return rates


def _waveforms(paths: Sequence[str], spatial: bool, num_channels: int):
    """Rows ``{"waveform": (num_channels, samples) float32, "sampling_rate": Hz}`` of the files."""
    for path in tqdm(paths, desc="decode", unit="file"):
        array, rate = decode_audio(path)
        clip = fit_channels(array, spatial=spatial, num_channels=num_channels, source=f"audio file '{path}'")
        yield {"waveform": clip, "sampling_rate": rate}


def _audio_embeddings_by_rate(
    model: Any, processor: Any, paths: list[str], rates: list[int], *, batch_size: int, device: Any
) -> np.ndarray:
    """(len(paths), D) embeddings; files are grouped by sample rate (one rate per evaluation-style set)."""
    datasets = _datasets()
    from datasets import Features, List, Value

    from ..models.loading import audio_embeddings

    spatial, num_channels = input_channels(model.config, processor.feature_extractor)
    features = Features({"waveform": List(List(Value("float32"))), "sampling_rate": Value("int32")})
    out: np.ndarray | None = None
    for rate in sorted(set(rates)):
        index = [i for i, r in enumerate(rates) if r == rate]
        group = [paths[i] for i in index]
        with tempfile.TemporaryDirectory(prefix="spatial_clap_embed_") as cache:
            try:
                dataset = datasets.Dataset.from_generator(
                    _waveforms,
                    # a tuple, not a list: datasets would make one shard (and one progress bar) per list item
                    gen_kwargs={"paths": tuple(group), "spatial": spatial, "num_channels": num_channels},
                    features=features,
                    cache_dir=cache,
                )
            except datasets.exceptions.DatasetGenerationError as err:  # surface the file's own error
                raise (err.__cause__ or err) from None
            emb = audio_embeddings(
                model, processor, dataset, batch_size=batch_size, device=device, desc=f"audio at {rate} Hz"
            ).numpy()
            del dataset
        if out is None:
            out = np.zeros((len(paths), emb.shape[1]), dtype=np.float32)
        out[index] = emb
    assert out is not None
    return out


def embed_files(
    model: Any,
    processor: Any,
    paths: Sequence[str | os.PathLike] = (),
    texts: Sequence[str] = (),
    *,
    batch_size: int = 8,
    device: Any = "cpu",
) -> "datasets.Dataset":
    """Embed audio files and texts with a Spatial CLAP model.

    Files may have any sample rate (the processor resamples, with a warning); spatial models
    need their channel count, mono models take any. Audio rows come first, in ``paths``
    order, then text rows in ``texts`` order.

    Returns:
        A ``datasets.Dataset`` with ``embedding_features()``: ``source`` (path or text),
        ``kind`` ("audio" / "text"), ``embedding`` float32 ``(projection_dim,)``.

    Raises:
        AudioFilesError: some files are unreadable or have the wrong channel count (all listed).
    """
    datasets = _datasets()

    from ..models.loading import text_embeddings

    paths, texts = [str(p) for p in paths], list(texts)
    if not paths and not texts:
        raise ValueError("Nothing to embed: pass audio files and/or texts.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Text {i} is empty; every text needs words.")
    spatial, num_channels = input_channels(model.config, processor.feature_extractor)
    model.eval()
    rows: dict[str, list] = {"source": [], "kind": [], "embedding": []}
    if paths:
        rates = _probe_files(paths, spatial=spatial, num_channels=num_channels)
        for path, rate in zip(paths, rates):
            if rate != int(processor.feature_extractor.sampling_rate):
                logger.warning(
                    "'%s' is %d Hz audio; the processor resamples it to the model's %d Hz.",
                    path,
                    rate,
                    processor.feature_extractor.sampling_rate,
                )
        audio = _audio_embeddings_by_rate(model, processor, paths, rates, batch_size=batch_size, device=device)
        rows["source"] += paths
        rows["kind"] += ["audio"] * len(paths)
        rows["embedding"] += list(audio)
    if texts:
        text = text_embeddings(model, processor, texts, batch_size=batch_size, device=device).numpy()
        rows["source"] += texts
        rows["kind"] += ["text"] * len(texts)
        rows["embedding"] += list(text)
    return datasets.Dataset.from_dict(rows, features=embedding_features())


def write_embeddings(dataset: "datasets.Dataset", output: str | os.PathLike) -> Path:
    """Write an ``embed_files`` dataset as one Parquet file (``datasets.Dataset.from_parquet`` reloads it)."""
    out = Path(output)
    if out.is_dir():
        raise IsADirectoryError(
            f"The output {out} is a directory; give a file name such as {out / 'embeddings.parquet'}."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    dataset.to_parquet(str(out))
    return out
