"""Build a hierarchical grounding dataset from segmentation datasets (see docs/dataset_format.md).

One driver, :func:`build`, takes a single source (a :class:`BuildConfig`) or a :class:`Recipe`;
one :func:`merge` finishes a (sharded) build of either. The package was called ``medglip.build``
before (that name still imports, with a DeprecationWarning, for one release).
"""

from .config import BuildConfig
from .merging import MergeResult, merge
from .plan import source_refs
from .recipe import Recipe, RecipeSource, SplitPolicy, load_recipe, parse_recipe
from .runner import BuildResult, DiskFull, RecipeBuildResult, Shard, build, build_complete, build_recipe

__all__ = [
    "BuildConfig",
    "BuildResult",
    "DiskFull",
    "MergeResult",
    "Shard",
    "build",
    "build_complete",
    "merge",
    "Recipe",
    "RecipeSource",
    "SplitPolicy",
    "load_recipe",
    "parse_recipe",
    "RecipeBuildResult",
    "build_recipe",
    "source_refs",
]
