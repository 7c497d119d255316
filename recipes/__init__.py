"""Recipes shipped with the package as ``spatial_clap_hf.recipes`` (YAML presets and accelerate
configs): ``importlib.resources.files("spatial_clap_hf.recipes") / "quickstart.yaml"``."""
