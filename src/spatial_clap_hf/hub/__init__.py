"""Model cards and Hub uploads for saved Spatial CLAP directories."""

from .cards import (
    CARD_TAGS,
    CARD_TEMPLATE,
    EVAL_METRICS,
    METRIC_CARD,
    hub_ids,
    push_to_hub,
    render_model_card,
    write_model_card,
)

__all__ = [
    "CARD_TAGS",
    "CARD_TEMPLATE",
    "EVAL_METRICS",
    "METRIC_CARD",
    "hub_ids",
    "push_to_hub",
    "render_model_card",
    "write_model_card",
]
