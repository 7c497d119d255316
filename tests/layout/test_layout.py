"""The package's layout rules: the model family is self-contained, dependencies point one way,
and every package ships."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "spatial_clap_hf"
FAMILY = PACKAGE / "models" / "spatial_clap"

#: Subpackage → the subpackages it may import (itself always). The root package (``import
#: spatial_clap_hf``, which registers the Auto classes) may be imported by any.
ALLOWED = {
    "utils": set(),
    "models": {"utils"},
    "hub": {"models", "utils"},
    "spatial": {"utils"},
    "data": {"models", "spatial", "utils"},  # models: the family's resampler
    "training": {"models", "hub", "spatial", "data", "utils"},
    "evaluation": {"models", "spatial", "data", "utils"},
    "inference": {"models", "spatial", "data", "utils"},
    "quickstart": {"models", "hub", "spatial", "data", "utils", "training", "evaluation", "recipes"},
    "cli": {"models", "hub", "spatial", "data", "utils", "training", "evaluation", "inference", "quickstart"},
}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in ``path``, relative ones resolved."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if module[-1] == "__init__":
        module = module[:-1]
        package = list(module)
    else:
        package = list(module[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module
            found.append((name, node.lineno))
    return found


def _subpackage(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "spatial_clap_hf" and len(parts) > 1 else None


def test_the_model_family_imports_only_torch_transformers_numpy_and_itself():
    allowed = {"torch", "transformers", "numpy", "__future__"}
    bad = []
    for path in sorted(FAMILY.glob("*.py")):
        for name, line in _imports(path):
            top = name.split(".")[0]
            if name.startswith("spatial_clap_hf.models.spatial_clap.") or top in allowed:
                continue
            if top in sys.stdlib_module_names:
                continue
            bad.append(f"{path.name}:{line} imports {name}")
    assert not bad, bad


@pytest.mark.parametrize("subpackage", sorted(ALLOWED))
def test_dependencies_point_one_way(subpackage):
    bad = []
    for path in sorted((PACKAGE / subpackage).rglob("*.py")):
        for name, line in _imports(path):
            target = _subpackage(name)
            if target is None or target == subpackage or target in ALLOWED[subpackage]:
                continue
            bad.append(f"{path.relative_to(PACKAGE)}:{line} imports {name}")
    assert not bad, bad


def test_the_package_root_holds_only_its_init_and_subpackages():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert modules == ["__init__.py"]


def test_every_package_is_listed_for_the_wheel():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(PACKAGE.parent).parts) for p in PACKAGE.rglob("__init__.py")}
    found |= {"spatial_clap_hf.recipes", "spatial_clap_hf.model_cards"}
    assert listed == found
