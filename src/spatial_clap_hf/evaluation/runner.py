"""Embed the evaluation sets with saved models and compute the full Table-1 protocol.

The evaluation data is the spatialized dataset of ``make-eval-sets`` (``data.eval_sets``): a
local folder or a Hub dataset id, with one config per name of ``data.schema.EVAL_SET_NAMES``
(``doa``, ``doa_val``, ``assignment2``, ``assignment3``, ``retrieval``), each with one split.
Per model:

* retrieval (``retrieval`` set): R@1/5/10 audio→text and text→audio with the spatial
  (``caption``) captions, R@1 with the content-only (``caption_src``) captions;
  ``similarity_sp`` / ``similarity_src`` = mean cosine of each clip with its own
  spatial / content-only caption;
* zero-shot DoA (``doa``): argmax over the neutral prompts of ``neutral_prompts()``;
* assignment (``assignment2``, ``assignment3``): every row is a query; its candidates are the
  captions of the n! rows of its scene (same ``scene_id``: the same sources, every
  assignment of the directions), its own caption the right one; argmax over them;
* DoA probe: ridge probe fit on ``doa_val`` audio embeddings, scored on ``doa``.

Models run in eval mode under ``torch.inference_mode`` in batches on one device; the
same inputs give the same numbers.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np
import torch

from ..data.schema import EVAL_SET_NAMES
from ..data.spatialized import AudioClips, load_spatialized
from ..models.loading import audio_embeddings, load_model_and_processor, resolve_device, text_embeddings
from ..spatial.conventions import DEFAULT_PHRASES, PhraseSet, neutral_prompts
from .metrics import (
    assignment_accuracy,
    doa_classification_accuracy,
    mean_matched_similarity,
    retrieval_recalls,
)
from .plot import EmbeddingPanel, plot_embeddings_pca
from .probe import doa_probe_mae_deg
from .report import IDENTITY_KEYS, ROW_KEYS, make_report, write_report

__all__ = ["ModelEvaluation", "assignment_candidates", "evaluate_model", "load_eval_sets", "run_evaluation"]

logger = logging.getLogger(__name__)


@dataclass
class ModelEvaluation:
    """One model's report row (keys of ``report.ROW_KEYS``) and its PCA panel data."""

    row: dict[str, Any]
    panel: EmbeddingPanel


def load_eval_sets(eval_data: str | Path) -> dict[str, datasets.Dataset]:
    """Every set of ``EVAL_SET_NAMES`` from ``eval_data``: a folder written by ``make-eval-sets``
    or the Hub id of its upload (one config per set, each with one split)."""
    if Path(eval_data).is_dir() and not (Path(eval_data) / "spatialized.json").is_file():
        raise FileNotFoundError(
            f"{eval_data} holds no evaluation sets in the spatialized format; build them with "
            "`spatial-clap make-eval-sets`."
        )
    sets = {}
    for name in EVAL_SET_NAMES:
        try:
            sets[name] = load_spatialized(eval_data, name)
        except ValueError as err:
            raise FileNotFoundError(
                f"Evaluation set {name!r} is missing from {eval_data} ({err}); build the sets with "
                "`spatial-clap make-eval-sets`."
            ) from err
    return sets


def _column(dataset: datasets.Dataset, name: str) -> list:
    """All values of one column as a plain list (datasets 5 returns a lazy ``Column``)."""
    if name not in dataset.column_names:
        raise ValueError(f"Evaluation set lacks column {name!r}; rebuild it with `spatial-clap make-eval-sets`.")
    return list(dataset[name])


def _first_source(dataset: datasets.Dataset, name: str, key: str) -> list:
    """Column ``name`` (one value per source) of a single-source set, one value per row."""
    values = _column(dataset, name)
    if any(len(v) != 1 for v in values):
        raise ValueError(f"The {key} set must hold single-source rows; rebuild it with `spatial-clap make-eval-sets`.")
    return [v[0] for v in values]


def _warn_duplicates(captions: Sequence[str], column: str) -> None:
    dupes = sum(c - 1 for c in Counter(captions).values() if c > 1)
    if dupes:
        logger.warning(
            "retrieval.%s holds %d duplicate caption(s); their clips count as misses when another clip's "
            "identical caption ranks first (ground truth is the diagonal).",
            column,
            dupes,
        )


def assignment_candidates(scene_ids: Sequence[str], captions: Sequence[str], name: str) -> tuple[list[list[str]], list[int]]:
    """Candidates and labels of an assignment set: for each row, the captions of the rows of its
    scene in row order, and the position of its own caption among them."""
    rows_of: dict[str, list[int]] = {}
    for i, scene in enumerate(scene_ids):
        rows_of.setdefault(scene, []).append(i)
    sizes = {len(r) for r in rows_of.values()}
    if len(sizes) != 1 or sizes.pop() < 2:
        raise ValueError(
            f"Set {name!r} must hold every assignment of each mixture (the same number of rows, at least 2, per "
            "scene_id); rebuild it with `spatial-clap make-eval-sets`."
        )
    table = [[captions[j] for j in rows_of[scene]] for scene in scene_ids]
    labels = [rows_of[scene].index(i) for i, scene in enumerate(scene_ids)]
    return table, labels


def _row_identity(model: Any, name: str) -> dict[str, Any]:
    spatial = getattr(model.config, "spatial_encoder", None)
    if spatial is None or not hasattr(model.config, "scl"):
        raise ValueError(f"Model {name!r}: config lacks spatial_encoder/scl; is this a Spatial CLAP checkpoint?")
    return {
        "model": name,
        "spatial_encoder": str(spatial),
        "scl": bool(model.config.scl),
        "contrastive_steps": getattr(model.config, "contrastive_steps", None),
        "started_from": getattr(model.config, "started_from", None),
    }


def _relative_origin(row: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """``row`` with ``started_from`` relative to ``output_dir`` where it is a directory inside it (a
    report then reads the same wherever its folder was written)."""
    origin = row["started_from"]
    if origin is None or not Path(origin).is_absolute():
        return row
    try:
        return {**row, "started_from": Path(origin).resolve().relative_to(output_dir.resolve()).as_posix()}
    except ValueError:
        return row


@dataclass
class _Embedder:
    """Binds a model, its processor and batching settings for the evaluation sets."""

    model: Any
    processor: Any
    sets: dict[str, datasets.Dataset]
    name: str
    batch_size: int
    device: str | torch.device

    def audio(self, key: str) -> torch.Tensor:
        return audio_embeddings(
            self.model,
            self.processor,
            AudioClips(self.sets[key]),
            batch_size=self.batch_size,
            device=self.device,
            desc=f"{self.name}/{key}",
        )

    def texts(self, texts: Sequence[str], key: str) -> torch.Tensor:
        return text_embeddings(
            self.model,
            self.processor,
            texts,
            batch_size=self.batch_size,
            device=self.device,
            desc=f"{self.name}/{key} texts",
        )


def _retrieval_metrics(e: _Embedder) -> dict[str, float]:
    ret = e.sets["retrieval"]
    sp, src = _column(ret, "caption"), _column(ret, "caption_src")
    _warn_duplicates(sp, "caption")
    _warn_duplicates(src, "caption_src")
    audio, text = e.audio("retrieval"), e.texts(sp + src, "retrieval")
    t_sp, t_src = text[: len(sp)], text[len(sp) :]
    r_sp, r_src = retrieval_recalls(audio, t_sp), retrieval_recalls(audio, t_src, ks=(1,))
    out = {f"{key}_sp_src": value for key, value in r_sp.items()}
    out.update({f"{key}_src": value for key, value in r_src.items()})
    out["similarity_sp"] = mean_matched_similarity(audio, t_sp)
    out["similarity_src"] = mean_matched_similarity(audio, t_src)
    return out


def _assignment_accuracy(e: _Embedder, key: str) -> float:
    cands, labels = assignment_candidates(_column(e.sets[key], "scene_id"), _column(e.sets[key], "caption"), key)
    flat = e.texts([c for row in cands for c in row], key)
    return assignment_accuracy(e.audio(key), flat.reshape(len(cands), len(cands[0]), -1), labels)


def _doa_metrics(e: _Embedder, phrases: PhraseSet) -> tuple[dict[str, float], EmbeddingPanel]:
    doa = e.sets["doa"]
    prompts = neutral_prompts(phrases)
    classes = np.asarray(_first_source(doa, "doa_class", "doa"), dtype=np.int64)
    if classes.min(initial=0) < 0 or classes.max(initial=0) >= len(prompts):
        raise ValueError(f"doa.doa_class must lie in [0, {len(prompts)}) for {len(prompts)} DoA prompts.")
    audio = e.audio("doa")
    text = e.texts(prompts + _column(doa, "caption"), "doa")
    t_prompts, t_captions = text[: len(prompts)], text[len(prompts) :]
    val = e.audio("doa_val")
    metrics = {
        "doa_accuracy": doa_classification_accuracy(audio, t_prompts, classes),
        "doa_probe_mae_deg": doa_probe_mae_deg(
            val,
            _first_source(e.sets["doa_val"], "folded_azimuth_deg", "doa_val"),
            audio,
            _first_source(doa, "folded_azimuth_deg", "doa"),
        ),
    }
    return metrics, EmbeddingPanel(e.name, audio, classes, t_captions, classes, t_prompts)


def evaluate_model(
    model: Any,
    processor: Any,
    eval_sets: dict[str, datasets.Dataset],
    *,
    name: str,
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    phrases: PhraseSet = DEFAULT_PHRASES,
) -> ModelEvaluation:
    """Compute one report row (keys of ``report.ROW_KEYS``) and the PCA panel of ``doa``."""
    model.eval()
    identity = _row_identity(model, name)
    e = _Embedder(model, processor, eval_sets, name, batch_size, device)
    metrics = _retrieval_metrics(e)
    doa_metrics, panel = _doa_metrics(e, phrases)
    metrics.update(doa_metrics)
    metrics["assignment_accuracy"] = _assignment_accuracy(e, "assignment2")
    metrics["assignment3_accuracy"] = _assignment_accuracy(e, "assignment3")
    row = {**identity, **{key: metrics[key] for key in ROW_KEYS[len(IDENTITY_KEYS):]}}
    return ModelEvaluation(row=row, panel=panel)


def _model_names(model_dirs: Sequence[str | Path], names: Sequence[str] | None) -> list[str]:
    if names is not None:
        if len(names) != len(model_dirs):
            raise ValueError(f"Got {len(model_dirs)} models but {len(names)} names; give one name per model.")
        return [str(n) for n in names]
    base = [Path(d).resolve().name or str(d) for d in model_dirs]
    counts = Counter(base)
    return [f"{b}_{i}" if counts[b] > 1 else b for i, b in enumerate(base)]


def run_evaluation(
    model_dirs: Sequence[str | Path],
    eval_dir: str | Path,
    output_dir: str | Path,
    *,
    names: Sequence[str] | None = None,
    batch_size: int = 16,
    device: str | torch.device = "auto",
) -> dict:
    """Evaluate every saved model on the sets of ``eval_dir`` (a ``make-eval-sets`` folder or its Hub
    id); write ``report.json``, ``report.md`` and ``embeddings_pca.png`` into ``output_dir``;
    return the report dict (``n_assignment``/``n_assignment3``: rows, i.e. scenes × n!)."""
    if not model_dirs:
        raise ValueError("run_evaluation needs at least one model directory.")
    labels = _model_names(model_dirs, names)
    sets = load_eval_sets(eval_dir)
    dev = resolve_device(device)
    results = []
    for model_dir, label in zip(model_dirs, labels):
        logger.info("Evaluating %s (%s) on %s", label, model_dir, dev)
        model, processor = load_model_and_processor(model_dir, dev)
        results.append(evaluate_model(model, processor, sets, name=label, batch_size=batch_size, device=dev))
        del model
    out = Path(output_dir)
    report = make_report(
        [_relative_origin(r.row, out) for r in results],
        n_retrieval=len(sets["retrieval"]),
        n_doa=len(sets["doa"]),
        n_assignment=len(sets["assignment2"]),
        n_assignment3=len(sets["assignment3"]),
    )
    write_report(report, out)
    plot_embeddings_pca([r.panel for r in results], out / "embeddings_pca.png")
    return report
