"""Optimisation pieces of the trainer: AdamW parameter groups, the LR schedule, mixed precision."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import MedglipError
from ..model import GroundingModel
from .config import TrainConfig


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """Multiplier of the peak rate at ``step`` (0-based): linear warm-up, then cosine to ``min_ratio``."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def resolve_amp(amp: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, use a GradScaler) for the ``amp`` setting on ``device``."""
    if amp == "none" or (amp == "auto" and device.type != "cuda"):
        return None, False
    if amp == "auto":
        return (torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (torch.float16, True)
    if amp == "fp16":
        if device.type != "cuda":
            raise MedglipError("amp fp16 needs CUDA (use bf16 or none on CPU)")
        return torch.float16, True
    return torch.bfloat16, False


def freeze_parts(model: GroundingModel, parts: tuple[str, ...]) -> int:
    """Keep ``parts`` (names in :data:`~medglip.train.config.FREEZABLE`) as they are: no gradients (so
    no optimizer state, and no backward through them) and eval mode (BatchNorm statistics, dropout).
    Call after ``model.train()``. Returns the number of frozen parameters."""
    modules = {"image_backbones": model.image_encoder.backbones, "text_encoder": model.text_encoder}
    n = 0
    for part in parts:
        module = modules[part]
        module.requires_grad_(False).eval()
        n += sum(p.numel() for p in module.parameters())
    return n


def param_groups(model: GroundingModel, config: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: {image/fusion/head, text encoder} × {decayed, not decayed (biases, norms, 1-D)}."""
    factor = config.text_lr_factor
    if factor is None:
        factor = float(model.config.text_lr_factor)
    text_ids = {id(p) for p in model.text_encoder.parameters()}
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name.endswith(".bias") or "norm" in name.lower()
        groups.setdefault((id(p) in text_ids, no_decay), []).append(p)
    out = []
    for (is_text, no_decay), params in sorted(groups.items()):
        out.append(
            {
                "params": params,
                "name": f"{'text' if is_text else 'main'}{'_no_decay' if no_decay else ''}",
                "lr": config.lr * (factor if is_text else 1.0),
                "weight_decay": 0.0 if no_decay else config.weight_decay,
            }
        )
    return out
