"""Small helpers shared by the subpackages (no model, physics or training code)."""

from .dataset_io import quiet_datasets, save_dataset_atomically, write_json_atomically

__all__ = ["quiet_datasets", "save_dataset_atomically", "write_json_atomically"]
