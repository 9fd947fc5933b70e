"""Deep fusion: layers of bidirectional image ↔ text cross-attention (GLIP's X-MHA, simplified).

Every layer updates both sides from the same inputs: image tokens (all FPN levels flattened and
concatenated) attend to text tokens, text tokens attend to image tokens, each through
``scaled_dot_product_attention`` with pre-norm, a learnable per-channel layer scale (small at init,
so pretrained features pass through unchanged at first) and a residual connection.
"""

from __future__ import annotations

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

    def forward(self, query: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, lq, d = query.shape
        h = self.heads
        q = self.q(query).view(b, lq, h, d // h).transpose(1, 2)
        k, v = self.kv(context).view(b, -1, 2, h, d // h).permute(2, 0, 3, 1, 4)
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

    def forward(self, img: torch.Tensor, txt: torch.Tensor, txt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ni, nt = self.norm_img(img), self.norm_txt(txt)
        img_new = img + self.gamma_img * self.img_from_txt(ni, nt, txt_mask)
        txt_new = txt + self.gamma_txt * self.txt_from_img(nt, ni, None)
        return img_new, txt_new


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
        self.layers = nn.ModuleList(BiFusionLayer(dim=dim, heads=heads, layer_scale=layer_scale)
                                    for _ in range(layers))

    def forward(self, features: list[torch.Tensor], text: torch.Tensor, text_mask: torch.Tensor
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
        if not self.layers:
            return features, text
        shapes = [f.shape[-2:] for f in features]
        img = torch.cat([f.flatten(2) for f in features], dim=2).transpose(1, 2)  # (B, ΣHW, d)
        for layer in self.layers:
            img, text = layer(img, text, text_mask)
        out, start = [], 0
        for (h, w) in shapes:
            out.append(img[:, start:start + h * w].transpose(1, 2).reshape(img.shape[0], -1, h, w))
            start += h * w
        return out, text
