"""Spatial CLAP metrics as an ``evaluate`` module, self-contained: it imports only evaluate, numpy and datasets.

It runs from this single file, so it can be published as a Hub metric Space (this file beside
the card ``model_cards/spatial_clap_metric.md`` as README.md) and loaded without the
``spatial_clap_hf`` package::

    import evaluate
    retrieval = evaluate.load("path/to/spatial_clap_metric.py")             # "retrieval" (default)
    zero_shot = evaluate.load("path/to/spatial_clap_metric.py", "zero_shot")
    probe_err = evaluate.load("path/to/spatial_clap_metric.py", "folded_azimuth_error")

(with the package: ``spatial_clap_hf.evaluation.METRIC_MODULE_PATH`` is this file's path).

Configurations:

* ``retrieval``: ``predictions`` audio embeddings (N, D), ``references`` the matched
  caption embeddings (N, D) → ``r1_a2t``, ``r5_a2t``, ``r10_a2t``, ``r1_t2a``, ``r5_t2a``,
  ``r10_t2a`` and ``mean_similarity`` (fractions / cosine).
* ``zero_shot``: ``predictions`` audio embeddings (N, D), ``references`` true candidate
  indices (N,), keyword ``candidate_embeds`` (K, D) shared by all clips (DoA prompts)
  or (N, K, D) per clip (assignment captions) → ``accuracy``.
* ``folded_azimuth_error``: ``predictions`` and ``references`` azimuths in degrees
  (N,) → ``mae_deg`` (mean absolute error of the folded azimuths asin(sin θ) ∈ [−90°, 90°];
  azimuth counter-clockwise from the front, +90° = left).

Every embedding is L2-normalised here; similarities are cosines computed in float64, once per
distinct embedding. Ties: among equal scores the lower index wins (a retrieval target ranks
behind every candidate scoring strictly higher and every equal one with a lower index; a
classifier picks the lowest index among its maxima), so a constant similarity matrix gives
R@k = k/N exactly. The numbers are those of ``spatial_clap_hf.evaluation.metrics``, the
package's torch implementation (a test compares the two on random and tied inputs).
"""

import datasets
import evaluate
import numpy as np

_CITATION = """\
@misc{seki2025spatialclap,
  title         = {Spatial-CLAP: Learning Spatially-Aware audio--text Embeddings for Multi-Source Conditions},
  author        = {Seki, Kentaro and Okamoto, Yuki and Yamaoka, Kouei and Saito, Yuki and Takamichi, Shinnosuke and Saruwatari, Hiroshi},
  year          = {2025},
  eprint        = {2509.14785},
  archivePrefix = {arXiv},
  primaryClass  = {cs.SD},
  url           = {https://arxiv.org/abs/2509.14785}
}
"""

_DESCRIPTION = (
    "Spatial CLAP evaluation: cross-modal retrieval, zero-shot direction/assignment accuracy, "
    "folded-azimuth error."
)

_KWARGS_DESCRIPTION = __doc__

_CONFIGS = ("retrieval", "zero_shot", "folded_azimuth_error")


# ----------------------------------------------------------------------------- the arithmetic


def _as_float64(x, name, ndims):
    array = np.asarray(x, dtype=np.float64)
    if array.ndim not in ndims:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndims))} dimensions, got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or Inf values; check the model outputs.")
    return array


def _l2_normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _cosine_matrix(audio, text):
    """(N_audio, N_text) cosines; each distinct row is normalised and multiplied once (exact ties)."""
    if audio.shape[1] != text.shape[1]:
        raise ValueError(f"Audio and text embeddings differ in size ({audio.shape[1]} vs {text.shape[1]}).")
    unique_a, index_a = np.unique(audio, axis=0, return_inverse=True)
    unique_t, index_t = np.unique(text, axis=0, return_inverse=True)
    return (_l2_normalize(unique_a) @ _l2_normalize(unique_t).T)[index_a.reshape(-1)][:, index_t.reshape(-1)]


def _target_ranks(scores):
    """0-based rank of each row's diagonal target (lower index wins ties)."""
    n = scores.shape[0]
    target = scores[np.arange(n), np.arange(n)][:, None]
    higher = (scores > target).sum(axis=1)
    equal_before = ((scores == target) & (np.arange(scores.shape[1])[None, :] < np.arange(n)[:, None])).sum(axis=1)
    return higher + equal_before


def retrieval_recalls(audio_embeds, text_embeds, ks=(1, 5, 10)):
    """Recall@k of audio→text and text→audio retrieval, row i of each matching (fractions in [0, 1])."""
    sims = _cosine_matrix(_as_float64(audio_embeds, "predictions", (2,)), _as_float64(text_embeds, "references", (2,)))
    if sims.shape[0] != sims.shape[1]:
        raise ValueError(
            f"Retrieval needs one caption per clip; got {sims.shape[0]} clips and {sims.shape[1]} captions."
        )
    a2t, t2a = _target_ranks(sims), _target_ranks(sims.T)
    out = {}
    for k in ks:
        out[f"r{k}_a2t"] = float((a2t < k).mean())
        out[f"r{k}_t2a"] = float((t2a < k).mean())
    return out


def mean_matched_similarity(audio_embeds, text_embeds):
    """Mean cosine similarity of matched pairs (row i with row i), in [-1, 1]."""
    a = _as_float64(audio_embeds, "predictions", (2,))
    t = _as_float64(text_embeds, "references", (2,))
    if a.shape != t.shape:
        raise ValueError(f"Matched pairs need equal shapes, got {a.shape} and {t.shape}.")
    return float((_l2_normalize(a) * _l2_normalize(t)).sum(axis=1).mean())


def zero_shot_accuracy(audio_embeds, candidate_embeds, labels):
    """Fraction of clips whose most similar candidate (lowest index on ties) is the labelled one.

    ``candidate_embeds`` (K, D) for all clips or (N, K, D) per clip; ``labels`` (N,) indices.
    """
    a = _as_float64(audio_embeds, "predictions", (2,))
    c = _as_float64(candidate_embeds, "candidate_embeds", (2, 3))
    if c.shape[-1] != a.shape[1]:
        raise ValueError(f"Audio and candidate embeddings differ in size ({a.shape[1]} vs {c.shape[-1]}).")
    if c.ndim == 2:
        scores = _cosine_matrix(a, c)
    else:
        if c.shape[0] != a.shape[0]:
            raise ValueError(f"Per-clip candidates need one row per clip: {a.shape[0]} clips, {c.shape[0]} rows.")
        scores = (_l2_normalize(a)[:, None, :] * _l2_normalize(c)).sum(axis=-1)
    predicted = np.argmax(scores == scores.max(axis=1, keepdims=True), axis=1)  # first maximum
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if labels.shape[0] != a.shape[0] or ((labels < 0) | (labels >= c.shape[-2])).any():
        raise ValueError(f"references must be {a.shape[0]} candidate indices in [0, {c.shape[-2]}).")
    return float((predicted == labels).mean())


def fold_azimuth(azimuth_deg):
    """Fold azimuths (degrees, any range) onto [−90°, 90°] as asin(sin θ): front/back mirrors coincide."""
    return np.degrees(np.arcsin(np.clip(np.sin(np.radians(azimuth_deg)), -1.0, 1.0)))


def mean_absolute_folded_error_deg(predicted_deg, true_deg):
    """Mean absolute error in degrees between folded azimuths."""
    p = fold_azimuth(np.asarray(predicted_deg, dtype=np.float64))
    t = fold_azimuth(np.asarray(true_deg, dtype=np.float64))
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(f"Predicted and true azimuths must both be 1-D of equal length, got {p.shape} and {t.shape}.")
    return float(np.abs(p - t).mean())


# ------------------------------------------------------------------------------- the module


def _features(config_name):
    embedding = datasets.List(datasets.Value("float32"))
    if config_name == "retrieval":
        return datasets.Features({"predictions": embedding, "references": embedding})
    if config_name == "zero_shot":
        return datasets.Features({"predictions": embedding, "references": datasets.Value("int64")})
    return datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")})


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpatialClapMetric(evaluate.Metric):
    """Table-1 metrics of Spatial CLAP (Seki et al., 2025)."""

    def _info(self):
        name = self.config_name if self.config_name != "default" else "retrieval"
        if name not in _CONFIGS:
            raise ValueError(f"Unknown configuration {self.config_name!r}; choose one of {list(_CONFIGS)}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_features(name),
            reference_urls=["https://arxiv.org/abs/2509.14785"],
        )

    def _compute(self, predictions, references, candidate_embeds=None):
        name = self.config_name if self.config_name != "default" else "retrieval"
        if name == "retrieval":
            out = retrieval_recalls(predictions, references, ks=(1, 5, 10))
            out["mean_similarity"] = mean_matched_similarity(predictions, references)
            return out
        if name == "zero_shot":
            if candidate_embeds is None:
                raise ValueError("The zero_shot configuration needs candidate_embeds=(K, D) or (N, K, D).")
            return {"accuracy": zero_shot_accuracy(predictions, candidate_embeds, references)}
        return {"mae_deg": mean_absolute_folded_error_deg(predictions, references)}
