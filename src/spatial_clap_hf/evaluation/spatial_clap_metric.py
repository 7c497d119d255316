"""Spatial CLAP metrics as a local ``evaluate`` module (a thin layer over ``metrics.py``).

Load it offline from its file path::

    import evaluate
    from spatial_clap_hf.evaluation import METRIC_MODULE_PATH
    retrieval = evaluate.load(METRIC_MODULE_PATH)                   # "retrieval" (default)
    zero_shot = evaluate.load(METRIC_MODULE_PATH, "zero_shot")
    probe_err = evaluate.load(METRIC_MODULE_PATH, "folded_azimuth_error")

Configurations:

* ``retrieval``: ``predictions`` audio embeddings (N, D), ``references`` the matched
  caption embeddings (N, D) → ``r1_a2t``, ``r5_a2t``, ``r10_a2t``, ``r1_t2a``, ``r5_t2a``,
  ``r10_t2a`` and ``mean_similarity`` (fractions / cosine).
* ``zero_shot``: ``predictions`` audio embeddings (N, D), ``references`` true candidate
  indices (N,), keyword ``candidate_embeds`` (K, D) shared by all clips (DoA prompts)
  or (N, K, D) per clip (assignment captions) → ``accuracy``.
* ``folded_azimuth_error``: ``predictions`` and ``references`` azimuths in degrees
  (N,) → ``mae_deg`` (mean absolute folded-azimuth error).

Ties: among equal scores the lower index wins (see ``metrics.py``).
"""

import datasets
import evaluate
import numpy as np

from spatial_clap_hf.evaluation.metrics import (
    mean_absolute_folded_error_deg,
    mean_matched_similarity,
    retrieval_recalls,
    zero_shot_accuracy,
)

_CITATION = ""

_DESCRIPTION = (
    "Spatial CLAP evaluation: cross-modal retrieval, zero-shot direction/assignment accuracy, "
    "folded-azimuth error."
)

_KWARGS_DESCRIPTION = __doc__

_CONFIGS = ("retrieval", "zero_shot", "folded_azimuth_error")


def _features(config_name):
    embedding = datasets.List(datasets.Value("float32"))
    if config_name == "retrieval":
        return datasets.Features({"predictions": embedding, "references": embedding})
    if config_name == "zero_shot":
        return datasets.Features({"predictions": embedding, "references": datasets.Value("int64")})
    return datasets.Features({"predictions": datasets.Value("float64"), "references": datasets.Value("float64")})


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SpatialClapMetric(evaluate.Metric):
    """Table-1 metrics of Spatial CLAP, computed by ``spatial_clap_hf.evaluation.metrics``."""

    def _info(self):
        name = self.config_name if self.config_name != "default" else "retrieval"
        if name not in _CONFIGS:
            raise ValueError(f"Unknown configuration {self.config_name!r}; choose one of {list(_CONFIGS)}.")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_features(name),
        )

    def _compute(self, predictions, references, candidate_embeds=None):
        name = self.config_name if self.config_name != "default" else "retrieval"
        if name == "retrieval":
            audio, text = np.asarray(predictions, dtype=np.float64), np.asarray(references, dtype=np.float64)
            out = retrieval_recalls(audio, text, ks=(1, 5, 10))
            out["mean_similarity"] = mean_matched_similarity(audio, text)
            return out
        if name == "zero_shot":
            if candidate_embeds is None:
                raise ValueError("The zero_shot configuration needs candidate_embeds=(K, D) or (N, K, D).")
            audio = np.asarray(predictions, dtype=np.float64)
            candidates = np.asarray(candidate_embeds, dtype=np.float64)
            return {"accuracy": zero_shot_accuracy(audio, candidates, np.asarray(references))}
        return {"mae_deg": mean_absolute_folded_error_deg(np.asarray(predictions), np.asarray(references))}
