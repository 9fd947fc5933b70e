"""An exponential moving average of the model's weights (``torch.optim.swa_utils.AveragedModel``).

The decay at the ``n``-th update is ``min(decay, (1 + n) / (10 + n))``: short runs (hundreds of
steps on a CPU) are not dominated by the random initial weights. Buffers (BatchNorm statistics)
and frozen parameters are copied from the model, not averaged; a parameter equal to its average
(one that never trained) stays exactly as it is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.optim.swa_utils import AveragedModel


def _ema_fn(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | int], torch.Tensor]:
    def fn(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
        if torch.equal(averaged, current):
            # a weight that has not moved (the encoder of a modality absent from the data) stays exact:
            # x·d + x·(1 − d) drifts from x by rounding, and a compact checkpoint would store it
            return averaged
        k = float(n)
        d = min(decay, (1.0 + k) / (10.0 + k))
        return averaged * d + current * (1.0 - d)

    return fn


def make_ema(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An averaged copy of ``model`` (eval mode, no gradients); call :func:`update_ema` after each step."""
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
    ema = AveragedModel(model, avg_fn=_ema_fn(decay), use_buffers=False)
    ema.eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def update_ema(ema: AveragedModel, model: torch.nn.Module) -> None:
    ema.update_parameters(model)
    for mine, theirs in zip(ema.module.buffers(), model.buffers(), strict=True):
        mine.copy_(theirs)
    for mine, theirs in zip(ema.module.parameters(), model.parameters(), strict=True):
        if not theirs.requires_grad:  # frozen: x·d + x·(1 − d) is not exactly x in floating point
            mine.copy_(theirs)
