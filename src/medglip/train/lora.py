"""Low-rank adapters (LoRA) on the weights of ``nn.Linear`` / ``nn.Conv2d`` layers, for ``medglip adapt``.

Each adapted weight ``W`` (out, in[, kh, kw]) becomes ``W + (alpha / r) · B @ A`` through a torch
parametrization (so the layer's own forward, a timm ``Conv2dSame`` included, is unchanged): ``A`` (r, n)
starts small and random, ``B`` (out, r) at zero, so training starts from the model as it was. ``W``
itself never changes; :func:`remove_lora` puts it back bit for bit and returns the factors, which an
adapted run stores (:mod:`medglip.model.delta`, which adds ``B @ A`` on load). Grouped (depthwise)
convolutions are left alone: their weights are already tiny.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..model.delta import LowRank, low_rank_delta


class LowRankDelta(nn.Module):
    """The parametrization ``W ↦ W + scale · B @ A`` (reshaped to W's shape)."""

    def __init__(self, weight: torch.Tensor, *, rank: int, alpha: float) -> None:
        super().__init__()
        out, n = weight.shape[0], weight[0].numel()
        r = max(1, min(rank, out, n))
        self.scale = float(alpha) / r
        self.lora_a = nn.Parameter(torch.empty(r, n, dtype=weight.dtype, device=weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.lora_b = nn.Parameter(torch.zeros(out, r, dtype=weight.dtype, device=weight.device))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + low_rank_delta(self.lora_a, self.lora_b * self.scale, weight.shape).to(weight.dtype)


def adaptable(module: nn.Module) -> bool:
    """Whether ``module`` gets an adapter: a Linear, or a Conv2d that is not grouped."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


def add_lora(root: nn.Module, *, rank: int = 4, alpha: float = 4.0, prefix: str = "") -> dict[str, LowRankDelta]:
    """Adapters on every adaptable layer under ``root`` (their weights frozen); returns ``{weight name
    (``prefix`` + the layer's name + ``.weight``): adapter}``."""
    found: dict[str, LowRankDelta] = {}
    for name, module in list(root.named_modules()):
        if adaptable(module) and not parametrize.is_parametrized(module, "weight"):
            module.weight.requires_grad_(False)
            delta = LowRankDelta(module.weight.detach(), rank=rank, alpha=alpha)
            parametrize.register_parametrization(module, "weight", delta)
            found[f"{prefix}{name}.weight" if name else f"{prefix}weight"] = delta
    return found


def remove_lora(root: nn.Module, adapters: dict[str, LowRankDelta], *, prefix: str = "") -> LowRank:
    """Take the adapters off (each weight back to its original value, exactly) and return their factors
    ``{weight name: (A, scale · B)}`` (the change of that weight being ``B' @ A``)."""
    factors: LowRank = {}
    for name, module in list(root.named_modules()):
        if not parametrize.is_parametrized(module, "weight"):
            continue
        key = f"{prefix}{name}.weight" if name else f"{prefix}weight"
        delta = adapters.get(key)
        if delta is None:
            continue
        factors[key] = (delta.lora_a.detach().clone(), (delta.lora_b * delta.scale).detach().clone())
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
    return factors
