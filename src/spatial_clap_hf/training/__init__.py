"""Training both stages on Accelerate: SELDnet pretraining and contrastive Spatial CLAP training.

Uses the model family, ``data`` and ``spatial``; imports nothing from ``evaluation``.
"""

from .config import (
    BatchConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    config_from_dict,
    load_config,
    merge_values,
)
from .losses import ContrastiveLoss, gather_with_grad
from .loop import TrainResult, latest_checkpoint, train

__all__ = [
    "BatchConfig",
    "ContrastiveLoss",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "config_from_dict",
    "gather_with_grad",
    "latest_checkpoint",
    "load_config",
    "merge_values",
    "train",
]
