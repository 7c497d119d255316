"""The ``zero-shot-spatial-audio-classification`` pipeline: stereo-aware zero-shot labels.

transformers' own ``zero-shot-audio-classification`` pipeline accepts only mono 1-D audio.
This one takes multichannel clips ``(channels, samples)`` with their sample rate, scores
them against captions built from ``candidate_labels`` and returns
``[{"label", "score"}]`` best first, the scores being the softmax over the labels of the
model's scaled audio-text similarities (``logits_per_audio``).

``register_pipeline()`` adds the task to transformers' ``PIPELINE_REGISTRY`` (done on
``import spatial_clap_hf``), after which::

    from transformers import pipeline
    classifier = pipeline("zero-shot-spatial-audio-classification", model="path/to/checkpoint")
    classifier("scene.wav", candidate_labels=["A dog barks on the left side.", "A dog barks in front."])

Mono checkpoints (``config.spatial_encoder == "none"``) see only the channel mean, so they
also accept 1-D audio and any channel count, as the stock pipeline does; spatial ones need
exactly the channels their spatial encoder was built for.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import numpy as np
import torch
from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.base import Pipeline

__all__ = [
    "TASK",
    "SpatialZeroShotAudioClassificationPipeline",
    "check_channels",
    "fit_channels",
    "input_channels",
    "load_classifier",
    "read_audio_input",
    "register_pipeline",
]

logger = logging.getLogger(__name__)

#: The pipeline task name.
TASK = "zero-shot-spatial-audio-classification"

_CHANNEL_NAMES = {1: "mono", 2: "stereo"}


def _describe_channels(n: int) -> str:
    return f"{n} ({_CHANNEL_NAMES[n]})" if n in _CHANNEL_NAMES else str(n)


def read_audio_input(audio: Any, sampling_rate: int | None = None) -> tuple[np.ndarray, int, str]:
    """Read any accepted audio input without changing its channels or rate.

    Accepted: a file path (``str`` / ``os.PathLike``; any format FFmpeg reads, any rate),
    encoded ``bytes``, a dict ``{"array" (or "raw"), "sampling_rate"}`` or ``{"path"}`` /
    ``{"bytes"}``, a tuple ``(array, sampling_rate)``, a torchcodec ``AudioDecoder`` (what a
    ``datasets`` ``Audio`` column yields), or a bare numpy array / torch tensor together with
    ``sampling_rate``.

    Returns:
        ``(array, sample_rate, source)``: float32 array shaped ``(channels, samples)``, or
        ``(samples,)`` when a 1-D array was given; its rate in Hz; a short description of the
        input for error messages (the file path where there is one).

    Raises:
        AudioDecodeError: a file or encoded input could not be decoded.
        ValueError / TypeError: the input lacks a sample rate or has an unusable shape or type.
    """
    from ..data.audio_io import decoded_to_array, load_audio

    if isinstance(audio, (str, os.PathLike)):
        if sampling_rate is not None:
            raise ValueError(
                f"sampling_rate={sampling_rate} was given with the file '{audio}'; files carry their own rate, "
                "drop sampling_rate (it is for arrays only)."
            )
        array, rate = load_audio(audio)
        return array, rate, f"audio file '{audio}'"
    if isinstance(audio, bytes):
        array, rate = decoded_to_array({"bytes": audio, "path": None})
        return array, rate, "encoded audio bytes"
    raw, rate = _split_rate(audio, sampling_rate)
    if raw is None:  # a decoder or a {"path"/"bytes"} dict: decoded_to_array reads it
        array, rate = decoded_to_array(audio)
        source = audio.get("path") if isinstance(audio, dict) else None
        return array, rate, f"audio file '{source}'" if source else "audio input"
    if isinstance(raw, torch.Tensor):
        raw = raw.detach().cpu().numpy()
    raw = np.asarray(raw, dtype=np.float32)
    array, rate = decoded_to_array((raw, rate))  # validates (channels, samples) layout
    return (array[0] if raw.ndim == 1 else array), rate, "audio array"


def _same_rate(rate: int, sampling_rate: int | None) -> None:
    if sampling_rate is not None and int(sampling_rate) != rate:
        raise ValueError(
            f"The audio comes with sampling_rate={rate} Hz but sampling_rate={sampling_rate} was also passed; "
            "give the rate once."
        )


def _split_rate(audio: Any, sampling_rate: int | None) -> tuple[Any, int | None]:
    """``(raw array or None, rate)`` of the non-file inputs of ``read_audio_input``."""
    if isinstance(audio, dict) and ("array" in audio or "raw" in audio):
        rate = audio.get("sampling_rate")
        if rate is None:
            raise ValueError("An audio dict with 'array' also needs 'sampling_rate' (Hz).")
        _same_rate(int(rate), sampling_rate)
        return audio["array"] if "array" in audio else audio["raw"], int(rate)
    if isinstance(audio, tuple) and len(audio) == 2:
        _same_rate(int(audio[1]), sampling_rate)
        return audio[0], int(audio[1])
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise ValueError(
                "An audio array needs its sample rate: pass sampling_rate=<Hz> (or {'array': ..., "
                "'sampling_rate': ...} / (array, rate)); other rates than the model's are resampled."
            )
        return audio, int(sampling_rate)
    if isinstance(audio, dict) or type(audio).__name__ == "AudioDecoder":
        return None, None
    raise TypeError(
        f"Cannot read audio from a {type(audio).__name__}; pass a file path, bytes, a dict with 'array' and "
        "'sampling_rate', an (array, sampling_rate) tuple, or an array with sampling_rate=<Hz>."
    )


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
            "candidate_labels is required: pass a non-empty list of labels or captions, e.g. "
            "candidate_labels=['A dog barks on the left side.', 'A dog barks on the right side.']."
        )
    for index, label in enumerate(candidate_labels):
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"candidate_labels[{index}] is {label!r}; every label must be a non-empty string.")
    return list(candidate_labels)


class SpatialZeroShotAudioClassificationPipeline(Pipeline):
    """Zero-shot classification of (multichannel) audio with a Spatial CLAP checkpoint.

    Call with one input (see ``read_audio_input``) or a list of them, and::

        candidate_labels (list[str]): the labels; each becomes ``hypothesis_template.format(label)``.
        hypothesis_template (str, default "{}"): caption template; "{}" uses the labels as captions.
        sampling_rate (int, optional): rate in Hz of a bare array input.
        top_k (int, optional): keep only the ``top_k`` best labels.

    Returns ``[{"label": str, "score": float}]`` sorted best first; the scores are the softmax
    over the labels of ``exp(logit_scale) * cos(audio, caption)`` and sum to 1.
    Clips longer than the model's ``max_length_s`` are cut to their start (with a warning);
    other sample rates are resampled by the processor (with a warning).
    """

    _load_processor = True
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    _PREPROCESS_KEYS = ("candidate_labels", "hypothesis_template", "sampling_rate")

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
        (the processor resamples). Raises ``AudioDecodeError`` / ``ValueError`` naming the
        input (the file where there is one) and the fix.
        """
        array, rate, source = read_audio_input(audio, sampling_rate)
        clip = fit_channels(array, spatial=self.is_spatial, num_channels=self.num_channels, source=source)
        if clip.shape[-1] == 0:
            raise ValueError(f"The {source} holds no samples; pass real audio.")
        max_s = float(self.feature_extractor.max_length_s)
        if clip.shape[-1] > max_s * rate:
            logger.warning(
                "The %s is %.2f s long; the model sees only its first %.2f s.", source, clip.shape[-1] / rate, max_s
            )
        return clip, rate

    # ------------------------------------------------------------- pipeline steps
    def _sanitize_parameters(self, **kwargs: Any) -> tuple[dict, dict, dict]:
        preprocess = {key: kwargs.pop(key) for key in self._PREPROCESS_KEYS if key in kwargs}
        postprocess = {}
        if "top_k" in kwargs:
            top_k = kwargs.pop("top_k")
            if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
                raise ValueError(f"top_k must be a positive integer or None, got {top_k!r}.")
            postprocess["top_k"] = top_k
        if kwargs:
            raise TypeError(
                f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}; it takes candidate_labels, "
                "hypothesis_template, sampling_rate and top_k."
            )
        return preprocess, {}, postprocess

    def preprocess(
        self,
        audio: Any,
        candidate_labels: Sequence[str] | None = None,
        hypothesis_template: str = "{}",
        sampling_rate: int | None = None,
    ) -> dict[str, Any]:
        labels = _check_labels(candidate_labels)
        if "{}" not in hypothesis_template:
            raise ValueError(f"hypothesis_template must contain '{{}}' for the label, got {hypothesis_template!r}.")
        clip, rate = self.load_clip(audio, sampling_rate)
        captions = [hypothesis_template.format(label) for label in labels]
        inputs = self.processor(text=captions, audio=[clip], sampling_rate=rate, return_tensors="pt", padding=True)
        model_inputs = dict(inputs)
        if self.dtype is not None:
            model_inputs["input_values"] = model_inputs["input_values"].to(self.dtype)
        return {"model_inputs": model_inputs, "candidate_labels": labels}

    def _forward(self, inputs: dict[str, Any]) -> dict[str, Any]:
        outputs = self.model(**inputs["model_inputs"], return_dict=True)
        return {"logits": outputs.logits_per_audio, "candidate_labels": inputs["candidate_labels"]}

    def postprocess(self, model_outputs: dict[str, Any], top_k: int | None = None) -> list[dict[str, Any]]:
        labels = model_outputs["candidate_labels"]
        scores = model_outputs["logits"][0].float().softmax(dim=-1).tolist()
        ranked = sorted(zip(labels, scores), key=lambda pair: -pair[1])
        return [{"label": label, "score": score} for label, score in ranked[:top_k]]


def register_pipeline() -> None:
    """Register ``TASK`` with transformers' ``PIPELINE_REGISTRY`` (idempotent).

    After this, ``transformers.pipeline(TASK, model=DIR)`` builds the pipeline from a saved
    checkpoint (model via ``AutoModel``, processor via ``AutoProcessor``).
    """
    current = PIPELINE_REGISTRY.supported_tasks.get(TASK)
    if current is not None and current.get("impl") is SpatialZeroShotAudioClassificationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(
        TASK,
        pipeline_class=SpatialZeroShotAudioClassificationPipeline,
        pt_model=AutoModel,
        type="multimodal",
    )


def load_classifier(
    model: str | os.PathLike, device: str | torch.device = "auto"
) -> SpatialZeroShotAudioClassificationPipeline:
    """Build the pipeline from a saved checkpoint directory or Hub id on ``device``.

    ``device="auto"`` picks CUDA when available, else the CPU.
    """
    import spatial_clap_hf  # noqa: F401  (registers the Auto classes)
    from transformers import pipeline

    from ..models.loading import resolve_device

    register_pipeline()
    path = str(model)
    if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{path} holds no config.json; pass a directory written by save_pretrained.")
    looks_local = os.path.isabs(path) or path.startswith((".", "~")) or path.count("/") != 1
    if not os.path.exists(path) and looks_local:
        raise FileNotFoundError(f"Model directory {path} does not exist; pass a save_pretrained directory or a Hub id.")
    return pipeline(TASK, model=path, device=resolve_device(device))
