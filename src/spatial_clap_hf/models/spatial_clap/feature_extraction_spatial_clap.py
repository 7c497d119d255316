"""Feature extractor of Spatial CLAP: validated, resampled, fixed-length multichannel waveforms.

The model computes its own features on device (see ``frontend_spatial_clap``); this class
only prepares raw waveforms: checks them, resamples to the model rate, and repeat-pads or
cuts them to ``max_length_s`` as CLAP does.

This file is part of the self-contained model family: it imports only torch, numpy,
transformers and its sibling model files (resampling is the front-end's ``SincResampler``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging

from .frontend_spatial_clap import SincResampler

logger = logging.get_logger(__name__)

PADDING_MODES = ("repeatpad", "repeat", "pad")
TRUNCATION_MODES = ("start", "random")


class SpatialClapFeatureExtractor(SequenceFeatureExtractor):
    r"""Prepare multichannel waveforms for [`SpatialClapModel`].

    Args:
        num_channels (`int`, defaults to 2): channels the model expects.
        sampling_rate (`int`, defaults to 16000): the model's rate in Hz.
        max_length_s (`float`, defaults to 10.0): output clip length in seconds.
        padding (`str`, defaults to `"repeatpad"`): for shorter clips, as ``ClapFeatureExtractor``:
            ``"repeatpad"`` (repeat the whole clip as often as it fits, then zero-pad), ``"repeat"``
            (repeat and cut), ``"pad"`` (zero-pad).
        truncation (`str`, defaults to `"start"`): for longer clips: ``"start"`` keeps the first
            ``max_length_s`` (deterministic); ``"random"`` takes a random crop (seeded with ``seed``).
        seed (`int`, *optional*): seed of the random crop generator.
        padding_value (`float`, defaults to 0.0): value of zero-padding.

    Calling it returns a ``BatchFeature`` with ``input_values`` ``(batch, channels, samples)`` float32
    and ``attention_mask`` ``(batch, samples)`` int: 1 on the clip's own samples, 0 on repeats and
    zero-padding.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        num_channels: int = 2,
        sampling_rate: int = 16000,
        max_length_s: float = 10.0,
        padding: str = "repeatpad",
        truncation: str = "start",
        seed: int | None = None,
        padding_value: float = 0.0,
        return_attention_mask: bool = True,
        **kwargs,
    ):
        if padding not in PADDING_MODES:
            raise ValueError(f"padding={padding!r} is not supported; use one of {PADDING_MODES}.")
        if truncation not in TRUNCATION_MODES:
            raise ValueError(f"truncation={truncation!r} is not supported; use one of {TRUNCATION_MODES}.")
        if num_channels < 1 or max_length_s <= 0:
            raise ValueError(f"Need num_channels >= 1 and max_length_s > 0, got {num_channels} and {max_length_s}.")
        kwargs.pop("feature_size", None)  # saved configs carry it; it always equals num_channels
        super().__init__(
            feature_size=num_channels,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.num_channels = num_channels
        self.max_length_s = max_length_s
        self.padding = padding
        self.truncation = truncation
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    @classmethod
    def from_model_config(cls, config: Any, **kwargs) -> "SpatialClapFeatureExtractor":
        """Build for a ``SpatialClapConfig``: its ``sample_rate``, ``max_length_s`` and channel count.

        Models without spatial encoder take any channel count; they get ``num_channels=2`` (stereo)
        unless ``kwargs`` say otherwise.
        """
        spatial = getattr(config, "spatial_config", None)
        defaults = {
            "num_channels": spatial.num_channels if spatial is not None else 2,
            "sampling_rate": config.sample_rate,
            "max_length_s": config.max_length_s,
        }
        return cls(**{**defaults, **kwargs})

    @property
    def max_length_samples(self) -> int:
        """Output clip length in samples at ``sampling_rate``."""
        return int(round(self.max_length_s * self.sampling_rate))

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output.pop("_rng", None)
        return output

    # ------------------------------------------------------------- validation
    def _as_clips(self, audio: Any) -> list[np.ndarray]:
        """Split the input into float32 clips ``(channels, samples)``."""
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        if isinstance(audio, np.ndarray):
            if audio.ndim == 3:
                return [np.asarray(clip, dtype=np.float32) for clip in audio]
            return [self._one_clip(audio, 0)]
        if isinstance(audio, Sequence) and not isinstance(audio, (str, bytes)) and len(audio) > 0:
            if all(isinstance(a, (np.ndarray, torch.Tensor)) for a in audio):
                return [self._one_clip(a, i) for i, a in enumerate(audio)]
        raise TypeError(
            "audio must be one clip (channels, samples), a batch (batch, channels, samples) or a non-empty list of clips, "
            f"as numpy arrays or torch tensors; got {type(audio).__name__}."
        )

    def _one_clip(self, clip: Any, index: int) -> np.ndarray:
        if isinstance(clip, torch.Tensor):
            clip = clip.detach().cpu().numpy()
        clip = np.asarray(clip)
        if clip.ndim == 1:
            if self.num_channels != 1:
                raise ValueError(
                    f"Clip {index} is a 1-D array (mono), but the model expects {self.num_channels} channels; "
                    f"pass (channels, samples) with {self.num_channels} channels."
                )
            clip = clip[None]
        if clip.ndim != 2:
            raise ValueError(f"Clip {index} must be (channels, samples), got shape {clip.shape}.")
        return clip.astype(np.float32, copy=False)

    def _check(self, clip: np.ndarray, index: int) -> None:
        channels, samples = clip.shape
        if channels != self.num_channels:
            hint = " (it looks like (samples, channels): transpose it)" if samples == self.num_channels else ""
            raise ValueError(
                f"Clip {index} has {channels} channel(s) but the model expects {self.num_channels}{hint}; "
                f"pass (channels, samples) with {self.num_channels} channels."
            )
        if samples == 0:
            raise ValueError(f"Clip {index} is empty (0 samples); drop it or pass real audio.")
        if not np.isfinite(clip).all():
            raise ValueError(f"Clip {index} contains NaN or Inf samples; clean the audio before feature extraction.")
        if not clip.any():
            logger.warning(
                f"Clip {index} is silent (every sample is 0): its embedding describes no sound, and its label and "
                "direction scores carry no information."
            )

    # ------------------------------------------------------------ resampling
    def _resample(self, clip: np.ndarray, sampling_rate: int) -> np.ndarray:
        if sampling_rate == self.sampling_rate:
            return clip
        logger.warning_once(
            f"Resampling audio from {sampling_rate} Hz to the model's {self.sampling_rate} Hz "
            "(windowed-sinc interpolation)."
        )
        return SincResampler(int(sampling_rate), int(self.sampling_rate))(torch.from_numpy(clip)).numpy()

    # ------------------------------------------------------- length handling
    def _fit_length(self, clip: np.ndarray, truncation: str, padding: str) -> tuple[np.ndarray, np.ndarray]:
        """Cut or pad ``(channels, samples)`` to ``max_length_samples``; also return the mask of original samples."""
        target = self.max_length_samples
        samples = clip.shape[1]
        mask = np.zeros(target, dtype=np.int64)
        if samples >= target:
            if samples > target:
                logger.warning_once(
                    f"Audio of {samples / self.sampling_rate:.2f} s is longer than this model's max_length_s="
                    f"{self.max_length_s} s; it is cut to {self.max_length_s} s (truncation={truncation!r})."
                )
            start = 0 if truncation == "start" else int(self._rng.integers(0, samples - target + 1))
            mask[:] = 1
            return clip[:, start : start + target], mask
        mask[:samples] = 1
        if padding == "repeat":
            reps = target // samples + 1
            return np.tile(clip, (1, reps))[:, :target], mask
        if padding == "repeatpad":
            clip = np.tile(clip, (1, target // samples))
        out = np.full((clip.shape[0], target), self.padding_value, dtype=np.float32)
        out[:, : clip.shape[1]] = clip
        return out, mask

    def __call__(
        self,
        audio: Any,
        sampling_rate: int | None = None,
        return_tensors: str | None = "pt",
        truncation: str | None = None,
        padding: str | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Prepare one clip ``(channels, samples)``, a batch ``(batch, channels, samples)`` or a list of clips.

        Args:
            audio: numpy arrays or torch tensors, float, in ``(channels, samples)`` layout.
            sampling_rate: rate of ``audio`` in Hz (required); resampled to ``self.sampling_rate`` if it
                differs, with a logged warning.
            return_tensors: ``"pt"``, ``"np"`` or ``None`` (lists).
            truncation, padding: override the instance's modes for this call.
        """
        if sampling_rate is None:
            raise ValueError(
                f"{type(self).__name__} needs sampling_rate: this model expects {self.sampling_rate} Hz audio; pass "
                f"sampling_rate=<rate of your audio in Hz> (other rates are resampled)."
            )
        truncation = truncation or self.truncation
        padding = padding if isinstance(padding, str) else self.padding
        if truncation not in TRUNCATION_MODES or padding not in PADDING_MODES:
            raise ValueError(
                f"truncation must be one of {TRUNCATION_MODES} and padding one of {PADDING_MODES}, got "
                f"{truncation!r} and {padding!r}."
            )
        clips = self._as_clips(audio)
        values, masks = [], []
        for index, clip in enumerate(clips):
            self._check(clip, index)
            clip = self._resample(clip, int(sampling_rate))
            fitted, mask = self._fit_length(clip, truncation, padding)
            values.append(fitted.astype(np.float32))
            masks.append(mask)
        data = {"input_values": np.stack(values), "attention_mask": np.stack(masks)}
        return BatchFeature(data, tensor_type=return_tensors)


__all__ = ["SpatialClapFeatureExtractor"]
