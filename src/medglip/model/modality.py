"""A small modality classifier: which of CT / MR / XR / US / ENDO / DERM / PATH is this image?

Used when neither the caller nor DICOM metadata gives the modality. A three-layer CNN on a 64 px
downsample of the preprocessed image (≈25 k parameters, well under a millisecond per image),
independent of the image encoders so it works in both ``per_modality`` and ``shared`` modes.
Trained jointly with a cross-entropy term (``loss_modality``) on the modality the batch carries.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn


class ModalityClassifier(nn.Module):
    """Forward: images (B, 3, S, S) preprocessed → logits (B, num_modalities)."""

    def __init__(self, *, num_modalities: int, input_size: int = 64, width: int = 16) -> None:
        super().__init__()
        self.input_size = input_size
        chans = [3, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for cin, cout in pairwise(chans):
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.GroupNorm(4, cout), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(chans[-1], num_modalities)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(
            images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True
        )
        x = self.features(x)
        return self.fc(x.mean((2, 3)))


def modality_loss(logits: torch.Tensor, modality: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over images whose modality is known (``modality >= 0``); 0 when none is."""
    known = modality >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known].float(), modality[known])
