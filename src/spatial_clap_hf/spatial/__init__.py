"""Physics and conventions: directions, microphone arrays, room impulse responses, spatialization.

Imports no model, data or training code.
"""

from .conventions import (
    DEFAULT_PHRASES,
    PhraseSet,
    compose_caption,
    doa_class,
    doa_class_center_deg,
    fold_azimuth,
    neutral_prompts,
    num_doa_classes,
)
