"""The Spatial CLAP model family: configurations, front-ends, models, feature extractor, processor, pipeline.

These are exactly the files ``save_pretrained`` copies into a checkpoint for
``trust_remote_code`` loading; they import only torch, transformers, numpy, the standard
library and each other. ``pipeline_spatial_clap`` (the zero-shot spatial pipeline) is not
imported here: it pulls in ``transformers.pipelines``; ``spatial_clap_hf.inference`` imports it.
"""

from .configuration_seldnet import SeldNetConfig
from .configuration_spatial_clap import SPATIAL_ENCODERS, SpatialClapConfig
from .feature_extraction_spatial_clap import SpatialClapFeatureExtractor
from .modeling_seldnet import SeldNetForSoundEventLocalization, SeldNetModel
from .modeling_spatial_clap import MAX_LOGIT_SCALE, SpatialClapModel, contrastive_loss, load_stage1_spatial
from .processing_spatial_clap import SpatialClapProcessor

__all__ = [
    "MAX_LOGIT_SCALE",
    "SPATIAL_ENCODERS",
    "SeldNetConfig",
    "SeldNetForSoundEventLocalization",
    "SeldNetModel",
    "SpatialClapConfig",
    "SpatialClapFeatureExtractor",
    "SpatialClapModel",
    "SpatialClapProcessor",
    "contrastive_loss",
    "load_stage1_spatial",
]
