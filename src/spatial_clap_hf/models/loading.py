"""Loading a saved Spatial CLAP model with its processor, and embedding audio and text.

Shared by training, evaluation and inference: models run in eval mode under
``torch.inference_mode`` in batches on one device, so the same inputs give the same numbers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = [
    "audio_embeddings",
    "embedding_tensor",
    "load_model_and_processor",
    "resolve_device",
    "text_embeddings",
]

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model_and_processor(model_dir: str | Path, device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """Load a saved Spatial CLAP model (eval mode, on ``device``) and its processor."""
    import spatial_clap_hf  # noqa: F401  (registers the Auto classes)
    from transformers import AutoModel, AutoProcessor

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} holds no config.json; pass a directory written by save_pretrained.")
    model = AutoModel.from_pretrained(str(path)).to(resolve_device(device)).eval()
    processor = AutoProcessor.from_pretrained(str(path))
    return model, processor


def embedding_tensor(output: Any) -> torch.Tensor:
    """The projected embedding (B, D) of a ``get_audio_features`` / ``get_text_features`` result.

    Accepts a model-output object whose ``pooler_output`` holds the embedding (as
    transformers' ClapModel returns in 5.x) or a plain tensor.
    """
    if isinstance(output, torch.Tensor):
        emb = output
    elif getattr(output, "pooler_output", None) is not None:
        emb = output.pooler_output
    else:
        raise TypeError(f"Expected a tensor or a model output with pooler_output, got {type(output).__name__}.")
    if emb.ndim != 2:
        raise ValueError(f"Embeddings must be (batch, dim), got shape {tuple(emb.shape)}.")
    return emb


def _model_sample_rate(model: Any) -> int:
    rate = getattr(model.config, "sample_rate", None)
    if rate is None:
        raise ValueError("The model config has no sample_rate; is this a Spatial CLAP checkpoint?")
    return int(rate)


def _set_sample_rate(dataset: "datasets.Dataset", name: str) -> int:
    rates = set(int(r) for r in dataset.unique("sampling_rate"))
    if len(rates) != 1:
        raise ValueError(f"Evaluation set {name!r} mixes sample rates {sorted(rates)}; rebuild it at one rate.")
    return rates.pop()


class _WaveformColumn:
    """Clips of a dataset with ``waveform`` (C, T) and ``sampling_rate`` columns, as ``audio_embeddings`` reads them."""

    def __init__(self, dataset: "datasets.Dataset", name: str):
        self.sampling_rate = _set_sample_rate(dataset, name)
        self._view = dataset.with_format("numpy", columns=["waveform"])

    def __len__(self) -> int:
        return len(self._view)

    def __getitem__(self, index: slice) -> list[np.ndarray]:
        return [np.asarray(w, dtype=np.float32) for w in self._view[index]["waveform"]]


def audio_embeddings(
    model: Any,
    processor: Any,
    dataset: Any,
    *,
    batch_size: int,
    device: str | torch.device,
    desc: str = "audio",
) -> torch.Tensor:
    """Audio embeddings (N, D) float32 on the CPU of N clips, (C, T) each.

    ``dataset``: a ``datasets.Dataset`` with ``waveform`` (C, T) and ``sampling_rate`` columns, or
    any clip source with ``sampling_rate`` (Hz), ``len()`` and slices that give lists of float32
    (C, T) arrays (``data.spatialized.AudioClips`` over a spatialized dataset). The clips'
    rate is passed to the processor, which resamples (and says so) when it differs from the
    model's rate.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if len(dataset) == 0:
        raise ValueError(f"Evaluation set {desc!r} is empty; rebuild it with more clips.")
    clips = _WaveformColumn(dataset, desc) if hasattr(dataset, "column_names") else dataset
    rate, model_rate = int(clips.sampling_rate), _model_sample_rate(model)
    if rate != model_rate:
        logger.warning(
            "Set %r is at %d Hz, the model expects %d Hz; the processor resamples it.", desc, rate, model_rate
        )
    dev = resolve_device(device)
    chunks = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(clips), batch_size), desc=f"embed {desc}", unit="batch"):
            batch = clips[start : start + batch_size]
            inputs = processor(audio=batch, sampling_rate=rate, return_tensors="pt")
            mask = inputs.get("audio_attention_mask")
            out = model.get_audio_features(
                input_values=inputs["input_values"].to(dev),
                attention_mask=None if mask is None else mask.to(dev),
            )
            chunks.append(embedding_tensor(out).float().cpu())
    return torch.cat(chunks)


def text_embeddings(
    model: Any,
    processor: Any,
    texts: Sequence[str],
    *,
    batch_size: int,
    device: str | torch.device,
    desc: str = "texts",
) -> torch.Tensor:
    """Text embeddings (len(texts), D) float32 on the CPU; each distinct text is embedded once."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    unique = list(dict.fromkeys(texts))
    if not unique:
        raise ValueError(f"No texts to embed for {desc!r}.")
    dev = resolve_device(device)
    chunks = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(unique), batch_size), desc=f"embed {desc}", unit="batch"):
            inputs = processor(text=unique[start : start + batch_size], return_tensors="pt", padding=True)
            out = model.get_text_features(
                input_ids=inputs["input_ids"].to(dev), attention_mask=inputs["attention_mask"].to(dev)
            )
            chunks.append(embedding_tensor(out).float().cpu())
    table = torch.cat(chunks)
    index = {text: i for i, text in enumerate(unique)}
    return table[torch.tensor([index[t] for t in texts], dtype=torch.long)]
