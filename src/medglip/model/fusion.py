"""Deep fusion: layers of bidirectional image ↔ text cross-attention (GLIP's X-MHA, simplified).

Every layer updates both sides from the same inputs: image tokens (all FPN levels flattened and
concatenated) attend to text tokens, text tokens attend to image tokens, each through
``scaled_dot_product_attention`` with pre-norm, a learnable per-channel layer scale (small at init,
so pretrained features pass through unchanged at first) and a residual connection.

The first layer's image side (the flattened tokens, their norm and projections) does not depend on
the prompt: :meth:`Fusion.prepare` computes it once per image, and every prompt chunk reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttention(nn.Module):
    """Multi-head attention of ``query`` tokens over ``context`` tokens.

    Forward:
        query: (B, Lq, d); context: (B, Lk, d); key_mask: (B, Lk) bool, True = attend, or None.
        returns: (B, Lq, d).
    """

    def __init__(self, *, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        query: torch.Tensor,
        context: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        *,
        q: torch.Tensor | None = None,
        kv: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``q`` (B, Lq, d) / ``kv`` (B, Lk, 2d): projections already made (``self.q(query)``,
        ``self.kv(context)``), e.g. an image side shared by several prompts."""
        b, lq, d = query.shape
        h = self.heads
        q = (self.q(query) if q is None else q).view(b, lq, h, d // h).transpose(1, 2)
        k, v = (self.kv(context) if kv is None else kv).view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(x.transpose(1, 2).reshape(b, lq, d))


class BiFusionLayer(nn.Module):
    """One bidirectional layer: ``img += γ_i · Attn(img → text)``, ``txt += γ_t · Attn(text → img)``."""

    def __init__(self, *, dim: int, heads: int, layer_scale: float) -> None:
        super().__init__()
        self.norm_img = nn.LayerNorm(dim)
        self.norm_txt = nn.LayerNorm(dim)
        self.img_from_txt = CrossAttention(dim=dim, heads=heads)
        self.txt_from_img = CrossAttention(dim=dim, heads=heads)
        self.gamma_img = nn.Parameter(torch.full((dim,), float(layer_scale)))
        self.gamma_txt = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def image_side(self, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """What the layer computes from ``img`` (B, L, d) alone: its norm, query and key/value projections."""
        ni = self.norm_img(img)
        return ni, self.img_from_txt.q(ni), self.txt_from_img.kv(ni)

    def forward(
        self,
        img: torch.Tensor,
        txt: torch.Tensor,
        txt_mask: torch.Tensor,
        *,
        image_side: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ni, q_img, kv_img = self.image_side(img) if image_side is None else image_side
        nt = self.norm_txt(txt)
        img_new = img + self.gamma_img * self.img_from_txt(ni, nt, txt_mask, q=q_img)
        txt_new = txt + self.gamma_txt * self.txt_from_img(nt, ni, None, kv=kv_img)
        return img_new, txt_new


@dataclass
class FusionInput:
    """The prompt-independent part of fusion for a batch of images (:meth:`Fusion.prepare`).

    Attributes:
        tokens: (B, ΣH_l·W_l, d) the FPN levels flattened and concatenated.
        shapes: the levels' (H_l, W_l).
        first: the first layer's :meth:`BiFusionLayer.image_side` of ``tokens``.
    """

    tokens: torch.Tensor
    shapes: list[tuple[int, int]]
    first: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class Fusion(nn.Module):
    """A stack of :class:`BiFusionLayer` over multi-level image features.

    Forward:
        features: list of L FloatTensor (B, d, H_l, W_l) (FPN levels).
        text: FloatTensor (B, T, d) projected token features.
        text_mask: BoolTensor (B, T), True for real tokens.
        returns: (fused features: list of L (B, d, H_l, W_l), fused text: (B, T, d)).
    """

    def __init__(self, *, dim: int, layers: int, heads: int, layer_scale: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(BiFusionLayer(dim=dim, heads=heads, layer_scale=layer_scale) for _ in range(layers))

    def prepare(self, features: list[torch.Tensor]) -> FusionInput:
        """The image side of the first layer, computed once per image (needs at least one layer)."""
        shapes = [(int(f.shape[-2]), int(f.shape[-1])) for f in features]
        tokens = torch.cat([f.flatten(2) for f in features], dim=2).transpose(1, 2).contiguous()  # (B, ΣHW, d)
        return FusionInput(tokens, shapes, cast(BiFusionLayer, self.layers[0]).image_side(tokens))

    def forward(
        self,
        features: list[torch.Tensor],
        text: torch.Tensor,
        text_mask: torch.Tensor,
        *,
        prepared: FusionInput | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """``prepared``: :meth:`prepare` of ``features`` (its batch may be 1 for B prompts on one image)."""
        if not self.layers:
            return features, text
        if prepared is None:
            prepared = self.prepare(features)
        b = text.shape[0]
        img, first = prepared.tokens.expand(b, -1, -1), tuple(t.expand(b, -1, -1) for t in prepared.first)
        for i, layer in enumerate(self.layers):
            img, text = layer(img, text, text_mask, image_side=first if i == 0 else None)
        out, start = [], 0
        for h, w in prepared.shapes:
            # (B, h·w, d) → (B, d, h, w) as a channels-last view: no copy, and the head's convolutions
            # read that layout directly
            out.append(img[:, start : start + h * w].unflatten(1, (h, w)).permute(0, 3, 1, 2))
            start += h * w
        return out, text
