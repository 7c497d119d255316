"""spatial_clap_hf: Spatial CLAP (what and where) as a Hugging Face model family."""

__version__ = "0.1.0"
