"""Build a hierarchical grounding dataset from segmentation datasets (see docs/dataset_format.md)."""

from .config import BuildConfig
from .merge import MergeResult
from .recipe import Recipe, RecipeSource, SplitPolicy, load_recipe, parse_recipe
from .recipe_build import RecipeBuildResult, build_recipe, merge
from .runner import BuildResult, Shard, build

__all__ = ["BuildConfig", "BuildResult", "MergeResult", "Shard", "build", "merge",
           "Recipe", "RecipeSource", "SplitPolicy", "load_recipe", "parse_recipe", "RecipeBuildResult", "build_recipe"]
