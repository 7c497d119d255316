"""Models: the Spatial CLAP family (``models/spatial_clap/``, the files a checkpoint carries),
its presets, caption tokenizers, and loading a saved model with its processor."""

from .presets import create_model, get_config, list_presets, register_preset
from .spatial_clap import *  # noqa: F401,F403  (the family's public classes)
from .spatial_clap import __all__ as _family
from .tokenization import train_caption_tokenizer

__all__ = [*_family, "create_model", "get_config", "list_presets", "register_preset", "train_caption_tokenizer"]
