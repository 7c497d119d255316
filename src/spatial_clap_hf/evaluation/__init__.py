"""Evaluation with the paper's full protocol: metrics, linear DoA probe, Table-1 report, PCA figure.

Uses the model (through the transformers Auto classes), ``data`` and ``spatial``;
imports nothing from ``training``.
"""

from pathlib import Path

from .metrics import (
    assignment_accuracy,
    cosine_similarity_matrix,
    doa_classification_accuracy,
    folded_azimuth_error_deg,
    l2_normalize,
    mean_absolute_folded_error_deg,
    mean_matched_similarity,
    pick_best_candidate,
    recall_at_k,
    retrieval_recalls,
    target_ranks,
    zero_shot_accuracy,
)
from .plot import EmbeddingPanel, pca_2d, plot_embeddings_pca
from .probe import RidgeDoaProbe, doa_probe_mae_deg
from .report import chance_row, make_report, render_markdown, validate_report, write_report
from .runner import ModelEvaluation, evaluate_model, load_eval_sets, run_evaluation
from .seld import binding_accuracy, labels_by_source_id, seld_scene_metrics

#: File path of the local ``evaluate`` module: ``evaluate.load(METRIC_MODULE_PATH, config)``.
METRIC_MODULE_PATH = str(Path(__file__).with_name("spatial_clap_metric.py"))
