"""Model and dataset card templates shipped with the package as ``spatial_clap_hf.model_cards``."""
