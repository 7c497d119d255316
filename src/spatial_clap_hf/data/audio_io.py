"""Audio decoding with torchcodec, the decoder ``datasets`` itself uses for ``Audio()``.

Everything returns float32 arrays shaped (channels, samples) together with the sample
rate in Hz. ``decoded_to_array`` is the one place that turns whatever an ``Audio``
column yields into such an array; the rest of the package goes through it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..models.spatial_clap.pipeline_spatial_clap import AudioDecodeError as PipelineAudioDecodeError

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioDecodeError",
    "decoded_to_array",
    "load_audio",
    "probe_audio",
]

logger = logging.getLogger(__name__)

#: File extensions (lower case, without the dot) the corpus builders look for.
AUDIO_EXTENSIONS: tuple[str, ...] = ("wav", "flac", "mp3", "ogg")


class AudioDecodeError(PipelineAudioDecodeError):
    """An audio file (or encoded audio value) of a corpus or dataset could not be decoded.

    The message names the file and the reason; ``path`` and ``reason`` hold them too. A subclass
    of the pipeline's ``AudioDecodeError`` (a ``ValueError``): one ``except`` catches both.
    """

    def __init__(self, path: str | os.PathLike | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.reason = reason
        self.source = f"audio file '{self.path}'" if self.path is not None else "in-memory audio"
        ValueError.__init__(
            self,
            f"Could not decode {self.source}: {reason}. Check that the file exists and is a complete "
            f"{'/'.join(AUDIO_EXTENSIONS)} file readable by FFmpeg (re-download or re-encode it).",
        )


def _decoder_class():
    try:
        from torchcodec.decoders import AudioDecoder
    except (ImportError, RuntimeError) as err:  # RuntimeError: FFmpeg libraries missing
        raise ImportError(
            "Audio decoding needs torchcodec with the system FFmpeg libraries "
            "(Debian package 'ffmpeg'); see README.md (Install)."
        ) from err
    return AudioDecoder


def _open_decoder(source: Any, path_for_errors: str | None, sample_rate: int | None = None):
    """Open a torchcodec ``AudioDecoder`` on a path or bytes; errors become ``AudioDecodeError``."""
    AudioDecoder = _decoder_class()
    try:
        return AudioDecoder(source, sample_rate=sample_rate)
    except (RuntimeError, ValueError) as err:
        raise AudioDecodeError(path_for_errors, _short_reason(err)) from err


def _short_reason(err: Exception) -> str:
    """The last line-part of an FFmpeg/torchcodec error (drops C++ source locations)."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.split(", ")[-1] if "SingleStreamDecoder" in text else text


def _samples_to_array(decoder: Any, path_for_errors: str | None) -> tuple[np.ndarray, int]:
    try:
        samples = decoder.get_all_samples()
    except (RuntimeError, ValueError) as err:
        raise AudioDecodeError(path_for_errors, _short_reason(err)) from err
    array = samples.data.cpu().numpy().astype(np.float32, copy=False)
    if array.ndim != 2 or array.shape[1] == 0:
        raise AudioDecodeError(path_for_errors, f"decoded no samples (shape {tuple(array.shape)})")
    return array, int(samples.sample_rate)


def load_audio(path: str | os.PathLike, *, target_sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file (wav/flac/mp3/ogg, anything FFmpeg reads) with torchcodec.

    Args:
        path: the audio file.
        target_sample_rate: resample to this rate in Hz (torchcodec's resampler; logged at
            INFO with both rates). ``None`` keeps the file's own rate.

    Returns:
        ``(array, sample_rate)``: float32 array shaped (channels, samples) in [-1, 1]
        and its sample rate in Hz.

    Raises:
        AudioDecodeError: the file is missing, unreadable, corrupt or empty.
    """
    path = Path(path)
    if target_sample_rate is not None and int(target_sample_rate) <= 0:
        raise ValueError(f"target_sample_rate must be a positive number of Hz, got {target_sample_rate}.")
    if not path.is_file():
        raise AudioDecodeError(path, "file not found" if not path.exists() else "not a regular file")
    native = _open_decoder(str(path), str(path))
    native_rate = native.metadata.sample_rate
    decoder = native
    if target_sample_rate is not None and native_rate != target_sample_rate:
        logger.info("Resampling '%s' from %s Hz to %d Hz.", path, native_rate, target_sample_rate)
        decoder = _open_decoder(str(path), str(path), sample_rate=int(target_sample_rate))
    return _samples_to_array(decoder, str(path))


def probe_audio(path: str | os.PathLike, *, probe_seconds: float = 0.5) -> tuple[int, int]:
    """Check that a file opens and its first ``probe_seconds`` decode; cheap build-time check.

    Returns:
        ``(sample_rate, num_channels)`` of the file.

    Raises:
        AudioDecodeError: the file is missing, unreadable, corrupt or has no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioDecodeError(path, "file not found" if not path.exists() else "not a regular file")
    decoder = _open_decoder(str(path), str(path))
    try:
        samples = decoder.get_samples_played_in_range(0.0, probe_seconds)
    except (RuntimeError, ValueError) as err:
        raise AudioDecodeError(path, _short_reason(err)) from err
    if samples.data.shape[-1] == 0:
        raise AudioDecodeError(path, "decoded no samples")
    return int(samples.sample_rate), int(samples.data.shape[0])


def decoded_to_array(value: Any) -> tuple[np.ndarray, int]:
    """Turn a value of a ``datasets`` ``Audio`` column into ``(array, sample_rate)``.

    Accepts:
        - a torchcodec ``AudioDecoder`` (what ``Audio()`` yields in datasets 5); all
          channels are kept (unlike the decoder's ``["array"]``, which is a mono mean);
        - a dict with ``"array"`` and ``"sampling_rate"``;
        - a dict with ``"bytes"`` and/or ``"path"`` (an ``Audio(decode=False)`` value);
        - a tuple ``(array, sample_rate)``.

    Returns:
        float32 array shaped (channels, samples) (1-D input becomes (1, samples)) and the
        sample rate in Hz.
    """
    AudioDecoder = _decoder_class()
    if isinstance(value, AudioDecoder):
        path = getattr(value.metadata, "path", None)
        return _samples_to_array(value, None if path is None else str(path))
    if isinstance(value, dict):
        if "array" in value:
            if value.get("sampling_rate") is None:
                raise ValueError("An audio dict with 'array' also needs 'sampling_rate' (Hz).")
            return _as_channels_first(value["array"]), int(value["sampling_rate"])
        if value.get("bytes") is not None:
            return _samples_to_array(_open_decoder(value["bytes"], value.get("path")), value.get("path"))
        if value.get("path") is not None:
            return load_audio(value["path"])
        raise ValueError(f"An audio dict needs 'array'+'sampling_rate', 'bytes' or 'path'; got keys {sorted(value)}.")
    if isinstance(value, tuple) and len(value) == 2:
        array, sample_rate = value
        return _as_channels_first(array), int(sample_rate)
    raise TypeError(
        f"Cannot read audio from a {type(value).__name__}; pass a torchcodec AudioDecoder, "
        "a dict with 'array' and 'sampling_rate' (or 'bytes'/'path'), or an (array, sample_rate) tuple."
    )


def _as_channels_first(array: Any) -> np.ndarray:
    """Array-like → float32 (channels, samples); 1-D becomes one channel."""
    if hasattr(array, "detach"):  # torch tensor
        array = array.detach().cpu().numpy()
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 1:
        return array[None, :]
    if array.ndim != 2:
        raise ValueError(f"Audio arrays must be (samples,) or (channels, samples); got shape {array.shape}.")
    if array.shape[0] > 16 and array.shape[0] > array.shape[1]:
        raise ValueError(
            f"Audio array of shape {array.shape} looks like (samples, channels); "
            "transpose it to (channels, samples)."
        )
    return array
