"""The GLIP/ATSS dense head: region-word alignment logits, box regression and centerness.

Per FPN level (shared weights across levels): a classification tower and a box tower of
``convs`` × (3×3 conv, GroupNorm, ReLU). The classification tower's features are scored against
every token. Two alignments (``ModelConfig.alignment``):

- ``glip`` (GLIP's dot-product token head): tokens are L2-normalised, halved and projected,
  ``logit[a, t] = <region[a], W·(token[t] / 2)> / exp(log_scale) + <token[t], bias_lang> + bias0``,
  with a learned ``log_scale`` (0 at start) — the scale of the logits is learned, not fixed;
- ``scaled`` (medglip 0.1): both sides projected, ``<P·region[a], Q·token[t]> / sqrt(d) + bias0 +
  token_bias(token[t])``.

``bias0`` starts at ``-log((1 - p) / p)`` (prior p = 0.01), so training starts at "nothing here".
The box tower predicts ``ltrb`` distances ``exp(scale_l · x) · anchor_size / 2`` (a per-level
learnable ``scale_l``; zero output = the level's square anchor) and a centerness logit. Box
regression is phrase-agnostic (as in ATSS / FCOS); with ``ModelConfig.box_features = "image"`` it
reads the FPN features before fusion, so it runs once per image however many prompt chunks the
phrases need (:meth:`boxes`), and only the alignment runs per chunk (:meth:`align`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _tower(channels: int, convs: int, groups: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(convs):
        layers += [nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(groups, channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class GroundingHead(nn.Module):
    """Dense grounding head.

    Args (keyword-only): channels d, convs (tower depth), groups (GroupNorm), levels, prior_prob,
        anchor_scale (anchor side = anchor_scale × stride), alignment (``glip`` / ``scaled``).

    Forward:
        features: list of L FloatTensor (B, d, H_l, W_l).
        text: FloatTensor (B, T, d) token features (after fusion).
        text_mask: BoolTensor (B, T).
        strides: list of L ints.
        returns dict:
            "logits": (B, A, T) region-token alignment logits, A = Σ H_l·W_l (level-major, row-major);
                padded tokens are set to -1e4 (never positive).
            "ltrb": (B, A, 4) non-negative distances (input pixels) from the anchor centre.
            "centerness": (B, A) logits.
    """

    def __init__(
        self,
        *,
        channels: int,
        convs: int,
        groups: int,
        levels: int,
        prior_prob: float = 0.01,
        anchor_scale: float = 8.0,
        alignment: str = "glip",
    ) -> None:
        super().__init__()
        if alignment not in ("glip", "scaled"):
            raise ValueError(f"alignment must be 'glip' or 'scaled', not {alignment!r}")
        self.alignment = alignment
        self.anchor_scale = anchor_scale
        self.cls_tower = _tower(channels, convs, groups)
        self.box_tower = _tower(channels, convs, groups)
        self.token = nn.Linear(channels, channels)
        if alignment == "glip":
            self.log_scale = nn.Parameter(torch.zeros(()))
            self.bias_lang = nn.Parameter(torch.zeros(channels))
        else:
            self.region = nn.Conv2d(channels, channels, 1)
            self.token_bias = nn.Linear(channels, 1)
        self.bias0 = nn.Parameter(torch.tensor(-math.log((1 - prior_prob) / prior_prob)))
        self.box = nn.Conv2d(channels, 4, 3, padding=1)
        self.ctr = nn.Conv2d(channels, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(levels))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if alignment == "scaled":
            nn.init.zeros_(self.token_bias.weight)
            nn.init.zeros_(self.token_bias.bias)

    def _tokens(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | float]:
        """Projected tokens (B, T, d), their bias (B, T) and the divisor of the dot products."""
        if self.alignment == "glip":
            unit = F.normalize(text, p=2, dim=-1)
            return self.token(unit / 2.0), unit @ self.bias_lang + self.bias0, self.log_scale.exp()
        return self.token(text), self.token_bias(text).squeeze(-1) + self.bias0, math.sqrt(text.shape[-1])

    def align(
        self, features: list[torch.Tensor], text: torch.Tensor, text_mask: torch.Tensor, *, embeddings: bool = False
    ):
        """Region-token alignment logits ``(B, A, T)`` of (fused) features and tokens; padded tokens -1e4.

        With ``embeddings=True`` returns ``(logits, regions (B, A, d), tokens (B, T, d))``: the region
        features and projected tokens whose dot products the logits are (the inter-image contrastive
        loss compares them across images)."""
        tok, tok_bias, divisor = self._tokens(text)  # (B, T, d), (B, T)
        logits, regions = [], []
        for f in features:
            c = self.cls_tower(f)
            r = (c if self.alignment == "glip" else self.region(c)).flatten(2).transpose(1, 2)  # (B, HW, d)
            logits.append(torch.einsum("bad,btd->bat", r, tok) / divisor + tok_bias[:, None, :])
            regions.append(r)
        out = torch.cat(logits, 1).clamp(-5e4, 5e4)  # GLIP clamps too: a runaway dot product stays finite
        out = out.masked_fill(~text_mask[:, None, :], -1e4)
        return (out, torch.cat(regions, 1), tok) if embeddings else out

    def boxes(self, features: list[torch.Tensor], strides: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(ltrb (B, A, 4), centerness logits (B, A))`` of the box tower on ``features``."""
        ltrb, ctr = [], []
        for level, (f, stride) in enumerate(zip(features, strides, strict=True)):
            b = self.box_tower(f)
            x = (self.scales[level] * self.box(b).float()).clamp(max=8.0)  # fp32: exp overflows fp16
            ltrb.append((x.exp() * (self.anchor_scale * stride / 2)).flatten(2).transpose(1, 2))
            ctr.append(self.ctr(b).flatten(1))
        return torch.cat(ltrb, 1), torch.cat(ctr, 1)

    def forward(
        self,
        features: list[torch.Tensor],
        text: torch.Tensor,
        text_mask: torch.Tensor,
        strides: list[int],
        boxes: tuple[torch.Tensor, torch.Tensor] | None = None,
        *,
        embeddings: bool = False,
    ) -> dict[str, torch.Tensor]:
        """All outputs; ``boxes`` (from :meth:`boxes` on other features) skips the box tower;
        ``embeddings`` adds "regions" (B, A, d) and "tokens" (B, T, d) (see :meth:`align`)."""
        ltrb, ctr = boxes if boxes is not None else self.boxes(features, strides)
        if embeddings:
            logits, regions, tokens = self.align(features, text, text_mask, embeddings=True)
            return {"logits": logits, "ltrb": ltrb, "centerness": ctr, "regions": regions, "tokens": tokens}
        return {"logits": self.align(features, text, text_mask), "ltrb": ltrb, "centerness": ctr}
