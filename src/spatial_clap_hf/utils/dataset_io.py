"""Saving datasets and JSON so that a path exists only once it is complete.

Long jobs (RIR banks, evaluation sets, spatialized data) write through these helpers: an
interrupted job never leaves a half-written folder that a later run would take as finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:  # pragma: no cover
    import datasets

__all__ = ["quiet_datasets", "save_dataset_atomically", "write_json_atomically"]


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Silence datasets' own progress bars (long jobs show one bar of their own)."""
    import datasets

    was_enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()


def save_dataset_atomically(dataset: "datasets.Dataset", path: str | os.PathLike) -> None:
    """``save_to_disk`` into a temporary sibling folder, then rename it to ``path``.

    ``path`` therefore exists only once complete; an existing ``path`` is replaced.
    """
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    with quiet_datasets():
        dataset.save_to_disk(str(tmp))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def write_json_atomically(data: dict, path: Path) -> None:
    tmp = path.with_name(f".tmp-{path.name}-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, path)

