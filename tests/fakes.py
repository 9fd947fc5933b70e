"""Test doubles shared by the test modules (importable because conftest puts tests/ on sys.path)."""

from __future__ import annotations

import numpy as np


class BoxFillRefiner:
    """Fake mask refiner: each mask is its rounded box."""

    def refine(self, image, boxes):
        h, w = image.shape[:2]
        out = np.zeros((len(boxes), h, w), bool)
        for i, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
            out[i, y0:y1, x0:x1] = True
        return out


def tiny_grounder(folder):
    """A Grounder on a seeded tiny random checkpoint saved in ``folder``, with :class:`BoxFillRefiner`;
    no score floor and a calibrated threshold of 0, so that an untrained model still returns boxes."""
    import torch

    from medglip.infer import Grounder
    from medglip.model import GroundingModel, get_preset, save_checkpoint

    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny", score_threshold=0.0, finding_thresholds=(("*", 0.0),))).eval()
    return Grounder.from_pretrained(save_checkpoint(model, folder), refiner=BoxFillRefiner())
