"""The quickstart recipe (``recipes/quickstart.yaml``): its trainings as stages of one schedule.

A recipe is a YAML mapping::

    defaults:     training config values every stage starts from (the layout of recipes/tiny.yaml)
    shared:       free-form; holds YAML anchors the stages refer to (not read on its own)
    stages:       name → {title, output, config}: config merged key by key over defaults;
                  a string "{other}" is the saved model directory of stage ``other``
    report:       the stages evaluated for Table 1, in row order
    final_model:  the stage whose model is copied to ``<output_dir>/model``

Every stage becomes a ``TrainConfig`` through ``training.config_from_dict``, the loader of
every training; a stage starts once the stages it names are done, so it must be listed after them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..training import TrainConfig, config_from_dict, merge_values

__all__ = ["DEFAULT_RECIPE", "QuickstartRecipe", "Stage", "load_recipe"]

#: The packaged ``recipes/quickstart.yaml``.
DEFAULT_RECIPE = "quickstart.yaml"
_TOP_LEVEL = ("defaults", "shared", "stages", "report", "final_model")
_STAGE_KEYS = ("title", "output", "config")
_REFERENCE = re.compile(r"^\{([A-Za-z0-9_]+)\}$")


@dataclass(frozen=True)
class Stage:
    """One training: ``values`` are its config (defaults merged in, references unresolved)."""

    name: str
    title: str
    output: str
    values: dict[str, Any]

    @property
    def after(self) -> tuple[str, ...]:
        """The stages whose models this one reads, in the order it names them."""
        return tuple(dict.fromkeys(_references(self.values)))

    def output_dir(self, run_dir: Path) -> Path:
        return run_dir / self.output

    def config(self, run_dir: Path, run_values: Mapping[str, Any], outputs: Mapping[str, str]) -> TrainConfig:
        """The stage's ``TrainConfig``: references resolved against ``outputs`` (stage → output
        folder), ``run_values`` (the quickstart's own, nested) merged over everything."""
        values = _resolve(self.values, {name: str(run_dir / out / "model") for name, out in outputs.items()})
        values = merge_values(values, {**run_values, "output_dir": str(self.output_dir(run_dir))})
        return config_from_dict(values, where=f"stage {self.name!r}")


@dataclass(frozen=True)
class QuickstartRecipe:
    stages: tuple[Stage, ...]
    report: tuple[str, ...]
    final_model: str

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def load_recipe(path: str | Path | None = None) -> QuickstartRecipe:
    """Read and check a quickstart recipe; ``None`` reads the packaged ``recipes/quickstart.yaml``."""
    if path is None:
        text = resources.files("spatial_clap_hf.recipes").joinpath(DEFAULT_RECIPE).read_text()
        where = f"recipes/{DEFAULT_RECIPE}"
    else:
        text, where = Path(path).read_text(), str(path)
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a YAML mapping at the top level.")
    _check_keys(data, _TOP_LEVEL, where, required=("stages", "report", "final_model"))
    defaults = data.get("defaults") or {}
    stages = []
    for name, spec in (data["stages"] or {}).items():
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: stage {name!r} must be a mapping with keys {_STAGE_KEYS}.")
        _check_keys(spec, _STAGE_KEYS, f"{where}: stage {name!r}", required=("output",))
        values = merge_values(defaults, spec.get("config") or {})
        stages.append(Stage(str(name), str(spec.get("title", name)), str(spec["output"]), values))
    recipe = QuickstartRecipe(tuple(stages), tuple(data["report"]), str(data["final_model"]))
    _check_recipe(recipe, where)
    return recipe


def _check_keys(data: Mapping, allowed: tuple[str, ...], where: str, required: tuple[str, ...] = ()) -> None:
    unknown = sorted(set(data) - set(allowed))
    missing = [key for key in required if key not in data]
    if unknown or missing:
        raise ValueError(f"{where}: unknown keys {unknown}, missing keys {missing}; allowed: {list(allowed)}.")


def _check_recipe(recipe: QuickstartRecipe, where: str) -> None:
    """The report and the final model name stages of the recipe (the order of the stages is
    checked by the scheduler, before anything runs)."""
    names = {stage.name for stage in recipe.stages}
    unknown = [name for name in (*recipe.report, recipe.final_model) if name not in names]
    if unknown:
        raise ValueError(f"{where}: report / final_model name stages {unknown} that the recipe does not have.")


def _references(value: Any) -> list[str]:
    if isinstance(value, Mapping):
        return [ref for item in value.values() for ref in _references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return [match.group(1)] if match else []


def _resolve(value: Any, models: Mapping[str, str]) -> Any:
    if isinstance(value, Mapping):
        return {key: _resolve(item, models) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, models) for item in value]
    match = _REFERENCE.match(value) if isinstance(value, str) else None
    return models[match.group(1)] if match else value
