"""Training of the grounding model on a ``medglip build`` output (single process or DDP via torchrun).

>>> from medglip.train import TrainConfig, train
>>> train("dataset/", "runs/tiny", TrainConfig(preset="tiny", max_steps=100))  # doctest: +SKIP
"""

from .augment import AugmentConfig
from .config import TrainConfig
from .data import GroundingDataset, LateralityFlipper, collate
from .loop import train
from .optim import lr_factor, param_groups, resolve_amp
from .progress import TrainProgress

__all__ = [
    "AugmentConfig",
    "GroundingDataset",
    "LateralityFlipper",
    "TrainConfig",
    "collate",
    "lr_factor",
    "param_groups",
    "resolve_amp",
    "train",
    "TrainProgress",
]
