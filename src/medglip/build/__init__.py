"""Build a hierarchical grounding dataset from segmentation datasets (see docs/dataset_format.md)."""

from .config import BuildConfig
from .merge import MergeResult, merge
from .runner import BuildResult, Shard, build

__all__ = ["BuildConfig", "BuildResult", "MergeResult", "Shard", "build", "merge"]
