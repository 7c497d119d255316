"""Datasets: source corpora (AudioCaps, embedded synthetic corpus), evaluation sets, collators.

May use ``spatial_clap_hf.spatial``; imports no model, training or evaluation code.
"""

from .schema import EVAL_SET_NAMES, SOURCE_FEATURES, assignment_features, doa_features, retrieval_features
