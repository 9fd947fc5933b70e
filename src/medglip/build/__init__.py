"""Build a hierarchical grounding dataset from segmentation datasets (see docs/dataset_format.md)."""

from .config import BuildConfig, ct_windows
from .merge import MergeResult, merge
from .runner import BuildResult, Shard, build

__all__ = ["BuildConfig", "BuildResult", "ct_windows", "MergeResult", "Shard", "build", "merge"]
