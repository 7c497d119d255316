"""spatial_clap_hf: Spatial CLAP (what and where) as a Hugging Face model family.

Importing the package registers the model family with the transformers Auto classes
(``AutoConfig``, ``AutoModel``, ``AutoModelForAudioFrameClassification``,
``AutoFeatureExtractor``, ``AutoProcessor``) and the ``zero-shot-spatial-audio-classification``
pipeline with transformers' ``PIPELINE_REGISTRY``, and marks the classes for
``register_for_auto_class``, so ``save_pretrained`` writes an ``auto_map`` and copies the
model files (the pipeline's included, named in config.json's ``custom_pipelines``): saved
checkpoints also load, and run as a pipeline, with ``trust_remote_code=True`` where this
package is not installed.
"""

__version__ = "0.1.0"

from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForAudioFrameClassification,
    AutoProcessor,
)

from .models import (
    SeldNetConfig,
    SeldNetForSoundEventLocalization,
    SeldNetModel,
    SpatialClapConfig,
    SpatialClapFeatureExtractor,
    SpatialClapModel,
    SpatialClapProcessor,
    contrastive_loss,
    create_model,
    get_config,
    list_presets,
    train_caption_tokenizer,
)

__all__ = [
    "SeldNetConfig",
    "SeldNetForSoundEventLocalization",
    "SeldNetModel",
    "SpatialClapConfig",
    "SpatialClapFeatureExtractor",
    "SpatialClapModel",
    "SpatialClapProcessor",
    "__version__",
    "contrastive_loss",
    "create_model",
    "get_config",
    "list_presets",
    "train_caption_tokenizer",
]


def _register_auto_classes() -> None:
    """Register with the Auto classes (idempotent: skipped when already registered)."""
    registrations = (
        lambda: AutoConfig.register(SeldNetConfig.model_type, SeldNetConfig),
        lambda: AutoConfig.register(SpatialClapConfig.model_type, SpatialClapConfig),
        lambda: AutoModel.register(SeldNetConfig, SeldNetModel),
        lambda: AutoModel.register(SpatialClapConfig, SpatialClapModel),
        lambda: AutoModelForAudioFrameClassification.register(SeldNetConfig, SeldNetForSoundEventLocalization),
        lambda: AutoFeatureExtractor.register(SpatialClapConfig, SpatialClapFeatureExtractor),
        lambda: AutoProcessor.register(SpatialClapConfig, SpatialClapProcessor),
    )
    for register in registrations:
        try:
            register()
        except ValueError as err:  # already registered (e.g. module reloaded)
            if "already" not in str(err):
                raise

    SeldNetConfig.register_for_auto_class()
    SpatialClapConfig.register_for_auto_class()
    SeldNetModel.register_for_auto_class("AutoModel")
    SeldNetForSoundEventLocalization.register_for_auto_class("AutoModelForAudioFrameClassification")
    SpatialClapModel.register_for_auto_class("AutoModel")
    SpatialClapFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
    SpatialClapProcessor.register_for_auto_class("AutoProcessor")


_register_auto_classes()

from .inference import register_pipeline  # noqa: E402  (needs the Auto classes registered above)

register_pipeline()
