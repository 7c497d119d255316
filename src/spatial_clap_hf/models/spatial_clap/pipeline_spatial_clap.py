"""The ``zero-shot-spatial-audio-classification`` pipeline: zero-shot labels and "where is X?" for multichannel audio.

transformers' own ``zero-shot-audio-classification`` pipeline accepts only mono 1-D audio.
This one takes multichannel clips ``(channels, samples)``, scores them against captions
and returns the softmax over the captions of the model's scaled audio-text similarities
(``logits_per_audio``). It travels with every checkpoint: config.json's ``custom_pipelines``
names it, so where this package is not installed::

    from transformers import pipeline
    classifier = pipeline("zero-shot-spatial-audio-classification", model="user/spatial-clap", trust_remote_code=True)
    classifier("scene.wav", candidate_labels=["A dog barks on the left side.", "A dog barks in front."])
    classifier("scene.wav", where="a dog barking")       # probability of each direction sector
    classifier(["a.wav", "b.wav"], candidate_labels=[...], batch_size=8)

Inputs follow transformers' audio pipelines: a file path (WAV is read here; other formats
through the ``ffmpeg`` program), encoded ``bytes``, an array ``(channels, samples)`` (or
``(samples,)``) with ``sampling_rate=``, ``{"raw" or "array": ..., "sampling_rate": ...}``,
``(array, sampling_rate)``, ``{"path"}`` / ``{"bytes"}`` dicts or a torchcodec
``AudioDecoder`` (what a ``datasets`` ``Audio`` column yields), or a list of them. Other
sample rates are resampled by the feature extractor (with a warning).

Mono checkpoints (``config.spatial_encoder == "none"``) see only the channel mean, so they
also accept 1-D audio and any channel count; spatial ones need exactly the channels their
spatial encoder was built for.

Direction conventions (docs/design.md): azimuth in degrees, counter-clockwise from the front
(+90° = left); a stereo pair folds front and back onto [−90°, 90°], cut into equal sectors
described, from the left, by ``DIRECTION_PHRASES``.

This file is part of the self-contained model family: it imports only torch, numpy,
transformers, the standard library and its sibling model files.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.pipelines.base import Pipeline
from transformers.utils import logging

from .configuration_spatial_clap import PIPELINE_TASK

logger = logging.get_logger(__name__)

#: The pipeline task name.
TASK = PIPELINE_TASK

#: The spatial phrases of the direction sectors, left (+90°) to right (−90°): those of the training captions
#: (``spatial_clap_hf.spatial.conventions.DEFAULT_PHRASES``; checkpoint code cannot import the package, and a
#: test keeps the two equal).
DIRECTION_PHRASES: tuple[str, ...] = (
    "on the left side",
    "in the front-left",
    "in front",
    "in the front-right",
    "on the right side",
)

_CHANNEL_NAMES = {1: "mono", 2: "stereo"}


# ------------------------------------------------------------------------------------ directions


def direction_captions(description: str, phrases: Sequence[str] = DIRECTION_PHRASES) -> list[dict[str, Any]]:
    """One caption per direction sector, left to right, for a sound ``description``.

    The folded half-plane [−90°, 90°] is cut into ``len(phrases)`` equal sectors; sector k is
    centred at ``90 − (k + 0.5) · 180 / K`` degrees. The caption is the description as a
    sentence followed by the sector's phrase, as in training ("a dog barking" → "A dog barking
    on the left side.").

    Returns:
        ``[{"direction": phrase, "azimuth_deg": sector centre in degrees, "caption": str}]``.
    """
    if not isinstance(description, str) or not description.strip(" .!?\t\n"):
        raise ValueError("Describe the sound to look for, e.g. 'a dog barking'; the description is empty.")
    phrases = tuple(phrases)
    if len(phrases) < 2 or any(not isinstance(p, str) or not p.strip() for p in phrases):
        raise ValueError(f"direction_phrases needs at least 2 non-empty phrases (left to right), got {phrases!r}.")
    body = description.strip().rstrip(" .!?")
    body = body[0].upper() + body[1:]
    width = 180.0 / len(phrases)
    return [
        {"direction": phrase, "azimuth_deg": 90.0 - (k + 0.5) * width, "caption": f"{body} {phrase}."}
        for k, phrase in enumerate(phrases)
    ]


# ---------------------------------------------------------------------------------- audio input


class AudioDecodeError(ValueError):
    """An audio file (or encoded audio) could not be decoded; the message names it, the reason and the fix."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(
            f"Could not decode the {source}: {reason}. Check that it is a complete audio file, or re-encode it "
            "(WAV is read directly; other formats need the `ffmpeg` program), or pass an array with sampling_rate=<Hz>."
        )


# WAVE format codes: integer PCM, IEEE float, and the extensible header whose sub-format holds the code.
_WAVE_PCM, _WAVE_FLOAT, _WAVE_EXTENSIBLE = 1, 3, 0xFFFE
# Streamed WAVs (FFmpeg writing to a pipe) cannot seek back to fill in the sizes: they say 0xFFFFFFFF.
_UNKNOWN_SIZE = 0xFFFFFFFF


class _UnsupportedWav(Exception):
    """A valid WAV whose sample encoding is not integer PCM or float (FFmpeg may still read it)."""


def _pcm_to_float(raw: bytes, code: int, channels: int, bits: int, block_align: int) -> np.ndarray:
    """Interleaved WAV samples → float32 ``(channels, frames)`` in [-1, 1] (FFmpeg's integer scaling)."""
    frames = len(raw) // block_align if block_align else 0
    raw = raw[: frames * block_align]
    if code == _WAVE_FLOAT and bits in (32, 64):
        data = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    elif code == _WAVE_PCM and bits == 8:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif code == _WAVE_PCM and bits in (16, 32):
        data = np.frombuffer(raw, dtype="<i2" if bits == 16 else "<i4").astype(np.float64) / 2.0 ** (bits - 1)
    elif code == _WAVE_PCM and bits == 24:
        triples = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        values = triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)
        data = np.where(values >= 1 << 23, values - (1 << 24), values).astype(np.float64) / 2.0**23
    else:
        raise _UnsupportedWav(f"format code {code}, {bits} bits")
    return np.ascontiguousarray(data.astype(np.float32).reshape(frames, channels).T)


def _parse_wav(data: bytes, source: str, streamed: bool = False) -> tuple[np.ndarray, int]:
    """Decode a RIFF/WAVE byte string → ``(float32 (channels, samples), rate in Hz)``.

    ``streamed``: sizes may be unknown (0xFFFFFFFF); the data chunk then runs to the end.
    Raises ``AudioDecodeError`` for broken files and ``_UnsupportedWav`` for other encodings.
    """
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise AudioDecodeError(source, "not a RIFF/WAVE file")
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise AudioDecodeError(source, "its fmt chunk is truncated")
            code, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
            if code == _WAVE_EXTENSIBLE and size >= 26:
                code = struct.unpack_from("<H", data, body + 24)[0]
            if channels < 1 or rate < 1:
                raise AudioDecodeError(source, f"its header declares {channels} channels at {rate} Hz")
            fmt = (code, channels, rate, bits, block_align)
        elif chunk == b"data":
            if fmt is None:
                raise AudioDecodeError(source, "its data chunk comes before the fmt chunk")
            end = len(data) if (streamed and size in (0, _UNKNOWN_SIZE)) or data[:4] == b"RF64" else body + size
            code, channels, rate, bits, block_align = fmt
            return _pcm_to_float(data[body : min(end, len(data))], code, channels, bits, block_align), rate
        pos = body + size + (size & 1)  # chunks are padded to an even size
    raise AudioDecodeError(source, "it has no audio data chunk" if fmt else "it has no fmt chunk")


def _ffmpeg_decode(path: str | None, payload: bytes | None, source: str) -> tuple[np.ndarray, int]:
    """Decode anything FFmpeg reads, keeping every channel and the native rate."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise AudioDecodeError(
            source, "it is not a WAV file, and other formats are decoded by the `ffmpeg` program, which is not "
            "installed (Debian/Ubuntu: apt-get install ffmpeg)"
        )
    command = [ffmpeg, "-nostdin", "-v", "error", "-i", path if path is not None else "pipe:0"]
    command += ["-vn", "-f", "wav", "-acodec", "pcm_f32le", "pipe:1"]
    result = subprocess.run(command, input=payload, capture_output=True, check=False)
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        raise AudioDecodeError(source, lines[-1] if lines else f"ffmpeg exited with status {result.returncode}")
    return _parse_wav(result.stdout, source, streamed=True)


def decode_audio(path: str | os.PathLike | None = None, payload: bytes | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file (``path``) or encoded bytes (``payload``), keeping its channels and rate.

    WAV (integer PCM or float) is parsed here; other formats and WAV encodings go through the
    ``ffmpeg`` program. Returns float32 ``(channels, samples)`` in [-1, 1] and the rate in Hz.

    Raises:
        AudioDecodeError: the file is missing, unreadable or not audio (the message names it).
    """
    source = f"audio file '{path}'" if path is not None else "encoded audio bytes"
    if path is not None:
        if not os.path.isfile(path):
            raise AudioDecodeError(source, "file not found" if not os.path.exists(path) else "not a regular file")
        with open(path, "rb") as handle:
            payload = handle.read()
    if payload is None or len(payload) == 0:
        raise AudioDecodeError(source, "it is empty (0 bytes)")
    if payload[:4] in (b"RIFF", b"RF64") and payload[8:12] == b"WAVE":
        try:
            return _parse_wav(payload, source)
        except _UnsupportedWav:  # e.g. mu-law or ADPCM WAV: FFmpeg reads those
            pass
    return _ffmpeg_decode(None if path is None else str(path), None if path is not None else payload, source)


def _same_rate(rate: int, sampling_rate: int | None) -> None:
    if sampling_rate is not None and int(sampling_rate) != rate:
        raise ValueError(
            f"The audio comes with sampling_rate={rate} Hz but sampling_rate={sampling_rate} was also passed; "
            "give the rate once."
        )


def _positive_rate(rate: Any, source: str) -> int:
    try:
        value = int(rate)
    except (TypeError, ValueError):
        value = 0
    if value <= 0 or value != rate:
        raise ValueError(f"The {source} has sampling_rate={rate!r}; pass the rate in Hz as a positive integer.")
    return value


def read_audio_input(audio: Any, sampling_rate: int | None = None) -> tuple[np.ndarray, int, str]:
    """Read any accepted audio input without changing its channels or rate.

    Accepted: a file path (``str`` / ``os.PathLike``), encoded ``bytes``, a dict
    ``{"array" (or "raw"), "sampling_rate"}`` or ``{"path"}`` / ``{"bytes"}``, a tuple
    ``(array, sampling_rate)``, a torchcodec ``AudioDecoder`` (anything with
    ``get_all_samples()``), or a bare numpy array / torch tensor with ``sampling_rate``.

    Returns:
        ``(array, rate, source)``: float32 array ``(channels, samples)``, or ``(samples,)`` when
        a 1-D array was given; its rate in Hz; a description of the input for messages (the
        file path where there is one).

    Raises:
        AudioDecodeError: a file or encoded input could not be decoded.
        ValueError / TypeError: the input lacks a sample rate or has an unusable shape or type.
    """
    if isinstance(audio, (str, os.PathLike)):
        if sampling_rate is not None:
            raise ValueError(
                f"sampling_rate={sampling_rate} was given with the file '{audio}'; files carry their own rate, "
                "drop sampling_rate (it is for arrays only)."
            )
        array, rate = decode_audio(path=audio)
        return array, rate, f"audio file '{audio}'"
    if isinstance(audio, (bytes, bytearray)):
        array, rate = decode_audio(payload=bytes(audio))
        return array, rate, "encoded audio bytes"
    if hasattr(audio, "get_all_samples"):  # torchcodec AudioDecoder, duck-typed: no torchcodec import here
        path = getattr(getattr(audio, "metadata", None), "path", None)
        source = f"audio file '{path}'" if path else "audio decoder"
        try:
            samples = audio.get_all_samples()
        except (RuntimeError, ValueError) as err:
            reason = str(err).strip().splitlines()[-1] if str(err).strip() else "no samples"
            raise AudioDecodeError(source, reason) from err
        return samples.data.detach().cpu().numpy().astype(np.float32), int(samples.sample_rate), source
    if isinstance(audio, dict):
        if "array" in audio or "raw" in audio:
            rate = audio.get("sampling_rate")
            if rate is None:
                raise ValueError(
                    "An audio dict with 'array' (or 'raw') also needs 'sampling_rate' (Hz), e.g. "
                    "{'array': stereo, 'sampling_rate': 16000}."
                )
            rate = _positive_rate(rate, "audio dict")
            _same_rate(rate, sampling_rate)
            raw, source = audio["array"] if "array" in audio else audio["raw"], "audio array"
        elif audio.get("bytes") is not None or audio.get("path") is not None:
            if audio.get("bytes") is not None:
                array, rate = decode_audio(payload=audio["bytes"])
            else:
                array, rate = decode_audio(path=audio["path"])
            return array, rate, f"audio file '{audio['path']}'" if audio.get("path") else "encoded audio bytes"
        else:
            raise ValueError(
                f"An audio dict needs 'array' (or 'raw') and 'sampling_rate', 'path' or 'bytes'; got keys {sorted(audio)}."
            )
    elif isinstance(audio, tuple) and len(audio) == 2:
        raw, rate = audio[0], _positive_rate(audio[1], "audio tuple")
        _same_rate(rate, sampling_rate)
        source = "audio array"
    elif isinstance(audio, (np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise ValueError(
                "An audio array needs its sample rate: pass sampling_rate=<Hz> (or {'array': ..., "
                "'sampling_rate': ...}); rates other than the model's are resampled."
            )
        raw, rate, source = audio, _positive_rate(sampling_rate, "audio array"), "audio array"
    else:
        raise TypeError(
            f"Cannot read audio from a {type(audio).__name__}; pass a file path, bytes, a dict with 'array' and "
            "'sampling_rate', an (array, sampling_rate) tuple, or an array with sampling_rate=<Hz>."
        )
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().cpu().numpy()
    array = np.asarray(raw, dtype=np.float32)
    if array.ndim not in (1, 2):
        raise ValueError(f"The {source} must be (samples,) or (channels, samples), got shape {array.shape}.")
    return array, rate, source


def _describe_channels(n: int) -> str:
    return f"{n} ({_CHANNEL_NAMES[n]})" if n in _CHANNEL_NAMES else str(n)


def input_channels(config: Any, feature_extractor: Any) -> tuple[bool, int]:
    """``(spatial, num_channels)`` of a Spatial CLAP model: whether it has a spatial encoder, and the
    channel count of the waveforms its processor takes (the spatial encoder's for spatial models)."""
    spatial = config.spatial_encoder != "none"
    return spatial, int(config.spatial_config.num_channels if spatial else feature_extractor.num_channels)


def check_channels(shape: Sequence[int], *, spatial: bool, num_channels: int, source: str = "audio input") -> None:
    """Check that audio of ``shape`` (``(samples,)`` or ``(channels, samples)``) suits the model.

    Spatial models need exactly ``num_channels`` channels (a 1-D array is an error);
    mono models (``spatial=False``) take anything.

    Raises:
        ValueError: naming ``source``, the problem and the fix.
    """
    if not spatial:
        return
    if len(shape) == 1:
        raise ValueError(
            f"The {source} is 1-D (mono), but this spatial model locates sounds from "
            f"{_describe_channels(num_channels)} channels: pass a (channels, samples) array with {num_channels} "
            "channels (channel 0 = left, channel 1 = right), or use a mono checkpoint (spatial_encoder='none') "
            "for content-only classification."
        )
    channels = int(shape[0])
    if channels != num_channels:
        transposed = len(shape) == 2 and shape[1] == num_channels
        hint = " It looks like (samples, channels): transpose it." if transposed else ""
        raise ValueError(
            f"The {source} has {_describe_channels(channels)} channel(s), but this spatial model needs "
            f"{_describe_channels(num_channels)} channels (channel 0 = left, channel 1 = right): pass a "
            f"{num_channels}-channel recording, or use a mono checkpoint (spatial_encoder='none') for "
            f"content-only classification.{hint}"
        )


def fit_channels(array: np.ndarray, *, spatial: bool, num_channels: int, source: str = "audio input") -> np.ndarray:
    """Bring ``(samples,)`` or ``(channels, samples)`` audio to the ``(num_channels, samples)`` the processor takes.

    Spatial models: checked by ``check_channels`` and returned unchanged. Mono models see
    only the channel mean, so the mean (of any number of channels, or the 1-D signal) is
    repeated on ``num_channels`` rows: the model's input is exactly that mean.
    """
    check_channels(array.shape, spatial=spatial, num_channels=num_channels, source=source)
    if spatial:
        return np.ascontiguousarray(array, dtype=np.float32)
    mono = array if array.ndim == 1 else array.mean(axis=0)
    return np.ascontiguousarray(np.broadcast_to(mono.astype(np.float32), (num_channels, mono.shape[-1])))


def _check_labels(candidate_labels: Any) -> list[str]:
    if isinstance(candidate_labels, str):
        candidate_labels = [candidate_labels]
    if not isinstance(candidate_labels, (list, tuple)) or len(candidate_labels) == 0:
        raise ValueError(
            "candidate_labels is required (or where='a sound' to locate): pass a non-empty list of labels or "
            "captions, e.g. candidate_labels=['A dog barks on the left side.', 'A dog barks on the right side.']."
        )
    for index, label in enumerate(candidate_labels):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"candidate_labels[{index}] is {label!r}; every label must be a non-empty string.")
    return list(candidate_labels)


# --------------------------------------------------------------------------------------- pipeline


class SpatialZeroShotAudioClassificationPipeline(Pipeline):
    """Zero-shot classification of (multichannel) audio with a Spatial CLAP checkpoint.

    Call with one input (see ``read_audio_input``) or a list of them, and either::

        candidate_labels (list[str]): the labels; each becomes ``hypothesis_template.format(label)``.
        hypothesis_template (str, default "{}"): caption template; "{}" uses the labels as captions.

    → ``[{"label": str, "score": float}]`` sorted best first; or::

        where (str): a sound description, e.g. "a dog barking", scored in each direction sector.
        direction_phrases (list[str], optional): the sectors' phrases, left to right (default
            ``DIRECTION_PHRASES``, the five of training).

    → ``[{"direction": phrase, "azimuth_deg": sector centre in degrees, "score": float}]`` in sector
    order (left to right). Both take::

        sampling_rate (int, optional): rate in Hz of a bare array input.
        top_k (int, optional): keep the ``top_k`` best labels, or the ``top_k`` most likely
            directions (still in sector order).
        batch_size (int, optional): clips per forward pass; the same scores as one at a time.

    The scores are the softmax over the captions of ``exp(logit_scale) * cos(audio, caption)``
    and sum to 1 (before ``top_k``). Clips longer than the model's ``max_length_s`` are cut to
    their start (with a warning); other sample rates are resampled (with a warning).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    _PREPROCESS_KEYS = ("candidate_labels", "hypothesis_template", "sampling_rate", "where", "direction_phrases")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if getattr(self.model.config, "model_type", None) != "spatial_clap":
            raise ValueError(
                f"The {TASK} pipeline needs a Spatial CLAP checkpoint (model_type 'spatial_clap'), got "
                f"{type(self.model).__name__}; for CLAP checkpoints use 'zero-shot-audio-classification'."
            )
        if self.processor is None or self.feature_extractor is None or self.tokenizer is None:
            raise ValueError(
                f"The {TASK} pipeline needs the checkpoint's SpatialClapProcessor; save it next to the model "
                "(processor.save_pretrained(dir)) or pass processor=..."
            )
        self.model.eval()

    # ----------------------------------------------------------------- model facts
    @property
    def is_spatial(self) -> bool:
        """Whether the model has a spatial encoder (``config.spatial_encoder != "none"``)."""
        return input_channels(self.model.config, self.feature_extractor)[0]

    @property
    def num_channels(self) -> int:
        """Channels of the waveforms given to the processor."""
        return input_channels(self.model.config, self.feature_extractor)[1]

    @property
    def sampling_rate(self) -> int:
        """The model's sample rate in Hz."""
        return int(self.feature_extractor.sampling_rate)

    def load_clip(self, audio: Any, sampling_rate: int | None = None) -> tuple[np.ndarray, int]:
        """Read and check one input for this model.

        Returns ``(clip, rate)``: float32 ``(num_channels, samples)`` at its own rate in Hz
        (the feature extractor resamples). Raises ``AudioDecodeError`` / ``ValueError`` naming
        the input (the file where there is one) and the fix.
        """
        array, rate, source = read_audio_input(audio, sampling_rate)
        if array.shape[-1] == 0:
            raise ValueError(f"The {source} holds no samples (zero length); pass real audio.")
        clip = fit_channels(array, spatial=self.is_spatial, num_channels=self.num_channels, source=source)
        if not np.isfinite(clip).all():
            raise ValueError(f"The {source} contains NaN or Inf samples; clean the audio (e.g. np.nan_to_num) first.")
        max_s = float(self.feature_extractor.max_length_s)
        if clip.shape[-1] > max_s * rate:
            logger.warning(
                f"The {source} is {clip.shape[-1] / rate:.2f} s long; the model sees only its first {max_s:.2f} s."
            )
        return clip, rate

    # ------------------------------------------------------------- pipeline steps
    def _sanitize_parameters(self, **kwargs: Any) -> tuple[dict, dict, dict]:
        preprocess = {key: kwargs.pop(key) for key in self._PREPROCESS_KEYS if key in kwargs}
        if preprocess.get("where") is not None and preprocess.get("candidate_labels") is not None:
            raise ValueError("Pass either candidate_labels (labels to rank) or where (a sound to locate), not both.")
        postprocess = {}
        if "top_k" in kwargs:
            top_k = kwargs.pop("top_k")
            if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
                raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}.")
            postprocess["top_k"] = top_k
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}; it takes candidate_labels, "
                "hypothesis_template, where, direction_phrases, sampling_rate and top_k."
            )
        return preprocess, {}, postprocess

    def preprocess(
        self,
        audio: Any,
        candidate_labels: Sequence[str] | None = None,
        hypothesis_template: str = "{}",
        sampling_rate: int | None = None,
        where: str | None = None,
        direction_phrases: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        directions = None
        if where is not None:
            phrases = DIRECTION_PHRASES if direction_phrases is None else direction_phrases
            directions = direction_captions(where, phrases)
            labels = captions = [d["caption"] for d in directions]
        else:
            if direction_phrases is not None:
                raise ValueError("direction_phrases goes with where='a sound to locate'; candidate_labels take none.")
            labels = _check_labels(candidate_labels)
            if "{}" not in hypothesis_template:
                raise ValueError(f"hypothesis_template must contain '{{}}' for the label, got {hypothesis_template!r}.")
            captions = [hypothesis_template.format(label) for label in labels]
        clip, rate = self.load_clip(audio, sampling_rate)
        audio_inputs = self.feature_extractor(clip, sampling_rate=rate, return_tensors="pt")
        text_inputs = self.processor(text=captions, return_tensors="pt", padding=True)
        input_values = audio_inputs["input_values"]
        if self.dtype is not None:
            input_values = input_values.to(self.dtype)
        # Tensors of one clip each ((1, channels, samples), (1, samples)), which transformers' collate stacks
        # into a batch; the captions are the same for every clip of a call, so they ride along in a list
        # (kept as a list by the collate) and are encoded once per batch.
        return {
            "input_values": input_values,
            "audio_attention_mask": audio_inputs["attention_mask"],
            "text_inputs": [text_inputs],
            "candidate_labels": labels,
            "directions": directions,
        }

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        text_inputs = model_inputs["text_inputs"][0]
        if isinstance(text_inputs, list):  # batched: one [text_inputs] per clip, all alike
            text_inputs = text_inputs[0]
        outputs = self.model(
            input_ids=text_inputs["input_ids"],
            attention_mask=text_inputs["attention_mask"],
            input_values=model_inputs["input_values"],
            audio_attention_mask=model_inputs["audio_attention_mask"],
            return_dict=True,
        )
        return {
            "logits": outputs.logits_per_audio,
            "candidate_labels": model_inputs["candidate_labels"],
            "directions": model_inputs["directions"],
        }

    def postprocess(self, model_outputs: dict[str, Any], top_k: int | None = None) -> list[dict[str, Any]]:
        scores = model_outputs["logits"][0].float().softmax(dim=-1).tolist()
        directions = model_outputs["directions"]
        if directions is not None:
            keep = sorted(range(len(scores)), key=lambda i: -scores[i])[:top_k]
            rows = [directions[i] for i in sorted(keep)]
            return [
                {"direction": row["direction"], "azimuth_deg": row["azimuth_deg"], "score": scores[i]}
                for row, i in zip(rows, sorted(keep))
            ]
        ranked = sorted(zip(model_outputs["candidate_labels"], scores), key=lambda pair: -pair[1])
        return [{"label": label, "score": score} for label, score in ranked[:top_k]]


__all__ = [
    "DIRECTION_PHRASES",
    "TASK",
    "AudioDecodeError",
    "SpatialZeroShotAudioClassificationPipeline",
    "check_channels",
    "decode_audio",
    "direction_captions",
    "fit_channels",
    "input_channels",
    "read_audio_input",
]
