"""The main job: the quickstart recipe's trainings, then the Table-1 evaluation."""

from .recipe import QuickstartRecipe, Stage, load_recipe
from .run import QuickstartSettings, run_quickstart

__all__ = ["QuickstartRecipe", "QuickstartSettings", "Stage", "load_recipe", "run_quickstart"]
