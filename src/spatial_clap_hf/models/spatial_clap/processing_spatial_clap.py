"""Processor of Spatial CLAP: one call for captions (tokenizer) and multichannel audio (feature extractor).

This file is part of the self-contained model family: it imports only torch, numpy,
transformers and its sibling model files.
"""

from __future__ import annotations

from typing import Any

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin


class SpatialClapProcessor(ProcessorMixin):
    r"""Wraps a [`SpatialClapFeatureExtractor`] and a tokenizer.

    ``processor(text=[...], audio=[...], sampling_rate=16000, return_tensors="pt", padding=True)``
    returns ``input_ids`` and ``attention_mask`` (text) and ``input_values`` and
    ``audio_attention_mask`` (audio), ready for ``SpatialClapModel(**inputs)``.
    """

    def __init__(self, feature_extractor, tokenizer):
        super().__init__(feature_extractor, tokenizer)

    @staticmethod
    def _check_text(text: Any) -> list[str]:
        if isinstance(text, str):
            text = [text]
        if not isinstance(text, (list, tuple)) or not all(isinstance(t, str) for t in text):
            raise ValueError("text must be a caption string or a list of caption strings.")
        if len(text) == 0:
            raise ValueError("text is an empty list; pass at least one caption.")
        for index, caption in enumerate(text):
            if not caption.strip():
                raise ValueError(f"Caption {index} is empty or whitespace only; every caption needs words.")
        return list(text)

    def __call__(
        self,
        text: str | list[str] | None = None,
        audio: Any = None,
        sampling_rate: int | None = None,
        return_tensors: str | None = "pt",
        padding: bool | str = True,
        truncation: bool = True,
        max_length: int | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Tokenize ``text`` and/or prepare ``audio``.

        Args:
            text: caption or captions (non-empty).
            audio: clip(s) ``(channels, samples)`` for the feature extractor.
            sampling_rate: rate of ``audio`` in Hz (required with audio).
            return_tensors: ``"pt"``, ``"np"`` or ``None``.
            padding, truncation, max_length: passed to the tokenizer.
            kwargs: passed to the feature extractor (e.g. ``truncation`` mode via ``audio_truncation``).
        """
        if text is None and audio is None:
            raise ValueError("SpatialClapProcessor needs text, audio or both.")
        data: dict[str, Any] = {}
        if text is not None:
            captions = self._check_text(text)
            encoded = self.tokenizer(
                captions,
                padding=padding,
                truncation=truncation,
                max_length=max_length,
                return_tensors=return_tensors,
            )
            data.update(encoded)
        if audio is not None:
            fe_kwargs = {}
            if "audio_truncation" in kwargs:
                fe_kwargs["truncation"] = kwargs.pop("audio_truncation")
            if "audio_padding" in kwargs:
                fe_kwargs["padding"] = kwargs.pop("audio_padding")
            features = self.feature_extractor(
                audio, sampling_rate=sampling_rate, return_tensors=return_tensors, **fe_kwargs
            )
            data["input_values"] = features["input_values"]
            data["audio_attention_mask"] = features["attention_mask"]
        if kwargs:
            raise TypeError(f"SpatialClapProcessor got unexpected keyword arguments {sorted(kwargs)}.")
        return BatchFeature(data, tensor_type=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "input_values", "audio_attention_mask"]


__all__ = ["SpatialClapProcessor"]
