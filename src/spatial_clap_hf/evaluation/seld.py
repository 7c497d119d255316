"""Does a pretrained SELDnet bind classes to directions? Its per-class outputs on multi-source scenes.

Stage 2 can only bind "what" to "where" if the spatial encoder does: in a scene of n sources
its per-class DoA outputs for the classes present must point at *their own* sources. On an
assignment set (a spatialized dataset, ``data.schema.spatial_features``: ``audio``,
``azimuth_deg`` and ``source_ids`` per row; every assignment row is a scene of its own here)
and the sources' class labels:

* ``binding_accuracy``: share of scenes where the true assignment of the sources' classes to
  the true folded azimuths has the lowest total error of all n! assignments, with each class's
  DoA output averaged over the frames (chance 1/n!);
* ``sed_recall``: share of the present classes among the n most active SED outputs
  (clip mean of the frame probabilities).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import datasets
import numpy as np
import torch

from ..data.spatialized import AudioClips
from ..spatial.conventions import fold_azimuth
from ..spatial.spatializer import permutations_of

__all__ = ["binding_accuracy", "labels_by_source_id", "seld_scene_metrics"]


def binding_accuracy(predicted_deg: np.ndarray, true_deg: np.ndarray) -> float:
    """Share of scenes whose true assignment has the lowest total folded-angle error.

    ``predicted_deg[s, i]``: the DoA output (degrees) for the class of source i of scene s;
    ``true_deg[s, i]``: that source's azimuth (degrees; folded here). Shapes ``(scenes, n)``.
    Ties count as wrong.
    """
    predicted, true = np.asarray(predicted_deg, dtype=np.float64), fold_azimuth(np.asarray(true_deg, dtype=np.float64))
    if predicted.shape != true.shape or predicted.ndim != 2 or predicted.shape[1] < 2:
        raise ValueError(
            f"predicted_deg and true_deg must both be (scenes, n >= 2), got {predicted.shape} and {true.shape}."
        )
    perms = permutations_of(predicted.shape[1])  # perms[0] is the identity
    errors = np.stack([np.abs(predicted - true[:, list(p)]).sum(axis=1) for p in perms], axis=1)
    return float(np.mean(errors[:, 0] < errors[:, 1:].min(axis=1)))


def seld_scene_metrics(
    model: torch.nn.Module,
    dataset: datasets.Dataset,
    source_labels: Mapping[str, str],
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> dict[str, float]:
    """``binding_accuracy`` and ``sed_recall`` of a ``SeldNetForSoundEventLocalization`` (per-class
    DoA) on an assignment set; ``source_labels`` maps each ``source_ids`` entry to its class label
    (the name in ``model.config.label2id``)."""
    if getattr(model.config, "doa_mode", None) != "per_class":
        raise ValueError("seld_scene_metrics needs a SELD-pretrained model (doa_mode='per_class').")
    label2id = dict(model.config.label2id or {})
    clips = AudioClips(dataset)
    predicted, recalls = [], []
    model.eval().to(device)
    for start in range(0, len(dataset), batch_size):
        waves = torch.as_tensor(np.stack(clips[start : start + batch_size]), dtype=torch.float32)
        with torch.inference_mode():
            out = model(input_values=waves.to(device))
        doa = out.doa_deg.float().mean(dim=1).cpu().numpy()  # (B, K)
        sed = torch.sigmoid(out.sed_logits.float()).mean(dim=1).cpu().numpy()
        for b, ids in enumerate(dataset[start : start + batch_size]["source_ids"]):
            classes = [_class_id(label2id, source_labels, i) for i in ids]
            predicted.append(doa[b, classes])
            recalls.append(len(set(np.argsort(-sed[b])[: len(classes)]) & set(classes)) / len(classes))
    true = np.asarray(list(dataset["azimuth_deg"]), dtype=np.float64)
    return {"binding_accuracy": binding_accuracy(np.stack(predicted), true), "sed_recall": float(np.mean(recalls))}


def _class_id(label2id: Mapping[str, int], source_labels: Mapping[str, str], source_id: str) -> int:
    if source_id not in source_labels:
        raise ValueError(f"No class label for source {source_id!r}; pass the labels of every source in the set.")
    label = source_labels[source_id]
    if label not in label2id:
        raise ValueError(f"Class {label!r} of source {source_id!r} is not one of the model's classes.")
    return int(label2id[label])


def labels_by_source_id(ids: Sequence[str], labels: Sequence[Sequence[str]]) -> dict[str, str]:
    """``{id: first label}`` from a corpus split's ``id`` and ``labels`` columns."""
    return {i: l[0] for i, l in zip(ids, labels) if len(l) > 0}
