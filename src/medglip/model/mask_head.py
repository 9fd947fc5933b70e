"""A Mask R-CNN-style mask head on the fused FPN features (GLIPv2's instance-segmentation head).

For each box (ground-truth boxes in training, detected boxes at inference) the fused FPN features
are pooled with ``torchvision.ops.MultiScaleRoIAlign`` (14 × 14 by default, the level chosen by the
box size as in Mask R-CNN, from the ``mask_levels`` finest levels), passed through ``convs`` × (3×3
conv, GroupNorm, ReLU), upsampled ×2 by a transposed conv to ``M × M`` (28) and turned into one mask
logit per pixel. Because the finest fused level has stride 8, a 12-pixel lesion covers 1.5 feature
cells; with ``image_skip`` the 28 × 28 features are concatenated with the input pixels of the box
(RoIAlign of the image itself) and refined by two small convs, so mask edges follow the image.

**Phrase-agnostic** (one mask per box, not one per phrase): the box already says which structure is
meant, Mask R-CNN's class-agnostic masks are within 0.6 AP of class-specific ones (He et al. 2017,
Table 2c), a phrase never seen in training still gets a mask, and the fused features the head reads
already carry the prompt (fusion is image↔text cross-attention).

MultiScaleRoIAlign uses ``aligned=False`` RoIAlign (no half-pixel offset); boxes are shifted by half
a feature cell of their level before pooling, which gives ``aligned=True`` sampling: a box's
features and its mask target (RoIAlign of the mask, ``aligned=True``) cover the same pixels.

Masks are pasted back with :func:`paste_masks` (pixel-edge box convention, bilinear) and
thresholded at 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import MultiScaleRoIAlign, roi_align


def _rois(boxes: list[torch.Tensor]) -> torch.Tensor:
    """``(K, 5)`` (batch index, x0, y0, x1, y1) from per-image boxes."""
    parts = [
        torch.cat([torch.full((len(b), 1), float(i), device=b.device, dtype=b.dtype), b], 1)
        for i, b in enumerate(boxes)
    ]
    return torch.cat(parts) if parts else torch.zeros(0, 5)


class MaskHead(nn.Module):
    """Box → mask logits from FPN features.

    Args (keyword-only):
        channels: d, the FPN / fusion width.
        levels: how many of the finest FPN levels the boxes are pooled from (Mask R-CNN: P2–P5).
        roi_size: RoIAlign output side R; the mask side is ``M = 2 R``.
        convs: 3×3 conv layers before the upsampling.
        groups: GroupNorm groups.
        image_skip: refine the ``M × M`` features with the box's input pixels.
        skip_channels: width of the image-skip refinement.

    Forward ``head(features, boxes, image_hw, images=None)``:
        features: list of >= ``levels`` FloatTensor (B, d, H_l, W_l), finest first.
        boxes: list of B FloatTensor (K_b, 4) xyxy in input pixels.
        image_hw: ``(S, S)``, the input side.
        images: FloatTensor (B, 3, S, S) the input (required with ``image_skip``).
        returns FloatTensor (K, M, M) mask logits, K = Σ K_b, in the order of ``boxes``.
    """

    def __init__(
        self,
        *,
        channels: int,
        levels: int = 3,
        roi_size: int = 14,
        convs: int = 4,
        groups: int = 16,
        image_skip: bool = True,
        skip_channels: int = 16,
    ) -> None:
        super().__init__()
        self.levels = int(levels)
        self.roi_size = int(roi_size)
        self.image_skip = bool(image_skip)
        self.pooler = MultiScaleRoIAlign([str(i) for i in range(self.levels)], self.roi_size, sampling_ratio=2)
        layers: list[nn.Module] = []
        for _ in range(convs):
            layers += [
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.GroupNorm(groups, channels),
                nn.ReLU(inplace=True),
            ]
        self.tower = nn.Sequential(*layers)
        self.up = nn.ConvTranspose2d(channels, channels, 2, stride=2)
        if self.image_skip:
            self.refine = nn.Sequential(
                nn.Conv2d(channels + 3, skip_channels, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(skip_channels, skip_channels, 3, padding=1),
                nn.ReLU(inplace=True),
            )
            self.logits = nn.Conv2d(skip_channels, 1, 1)
        else:
            self.logits = nn.Conv2d(channels, 1, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.normal_(self.logits.weight, std=0.01)  # start at p = 0.5 everywhere (BCE ln 2), not at large logits

    @property
    def resolution(self) -> int:
        """M, the side of the predicted masks."""
        return 2 * self.roi_size

    def _aligned(
        self, feats: dict[str, torch.Tensor], boxes: list[torch.Tensor], shapes: list[tuple[int, int]]
    ) -> list[torch.Tensor]:
        """Boxes shifted by half a feature cell of the level each is pooled from (see the docstring)."""
        if self.pooler.scales is None or self.pooler.map_levels is None:  # let the pooler infer its scales once
            self.pooler(feats, [b[:0] for b in boxes], shapes)
        scales = torch.tensor(self.pooler.scales, dtype=torch.float32)
        out = []
        for b in boxes:
            if len(b) == 0:
                out.append(b)
                continue
            lvl = self.pooler.map_levels([b]).long().cpu()
            out.append(b - (0.5 / scales[lvl]).to(b.device, b.dtype)[:, None])
        return out

    def forward(
        self,
        features: list[torch.Tensor],
        boxes: list[torch.Tensor],
        image_hw: tuple[int, int],
        images: torch.Tensor | None = None,
    ) -> torch.Tensor:
        m = self.resolution
        if sum(len(b) for b in boxes) == 0:
            return features[0].new_zeros(0, m, m)
        if len(features) < self.levels:
            raise ValueError(f"the mask head pools from {self.levels} levels, got {len(features)}")
        feats = {str(i): f for i, f in enumerate(features[: self.levels])}
        shapes = [(int(image_hw[0]), int(image_hw[1]))] * len(boxes)
        boxes = [b.float() for b in boxes]
        x = self.pooler(feats, self._aligned(feats, boxes, shapes), shapes)  # (K, d, R, R)
        x = F.relu(self.up(self.tower(x)))  # (K, d, M, M)
        if self.image_skip:
            if images is None:
                raise ValueError("this mask head refines with the input pixels: pass images")
            pix = roi_align(
                images.float(),
                _rois(boxes).to(images.device),
                (m, m),
                spatial_scale=1.0,
                sampling_ratio=2,
                aligned=True,
            )  # (K, 3, M, M)
            x = self.refine(torch.cat([x, pix.to(x.dtype)], 1))
        return self.logits(x)[:, 0]


def mask_targets(masks: list[torch.Tensor], boxes: list[torch.Tensor], resolution: int) -> torch.Tensor:
    """Ground-truth masks cropped to boxes and resized to ``M × M`` (RoIAlign ``aligned=True``, ≥ 0.5).

    Args:
        masks: per image BoolTensor (N_b, H, W); boxes: per image FloatTensor (N_b, 4) xyxy, the
            box of each mask (the RoI it is predicted in).

    Returns:
        FloatTensor (N, M, M) of 0 / 1.
    """
    out = []
    for mk, b in zip(masks, boxes, strict=True):
        if len(b) == 0:
            continue
        b = b.float()
        rois = torch.cat([torch.arange(len(b), device=b.device, dtype=b.dtype)[:, None], b], 1)  # k-th box, k-th mask
        out.append(
            roi_align(
                mk[:, None].to(b.device, torch.float32),
                rois,
                (resolution, resolution),
                spatial_scale=1.0,
                sampling_ratio=2,
                aligned=True,
            )[:, 0]
            >= 0.5
        )
    if not out:
        return torch.zeros(0, resolution, resolution)
    return torch.cat(out).float()


def mask_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel binary cross-entropy of mask logits (K, M, M) against 0/1 targets (K, M, M)."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits.float(), targets.to(logits.device).float())


def paste_masks(
    probs: torch.Tensor, boxes: torch.Tensor, image_hw: tuple[int, int], *, threshold: float = 0.5
) -> torch.Tensor:
    """Paste ``M × M`` mask probabilities into an image.

    Args:
        probs: FloatTensor (K, M, M) probabilities over each box.
        boxes: FloatTensor (K, 4) xyxy in the target image's pixels, pixel edges (a box over columns
            3..7 is x0 = 3, x1 = 8); may extend beyond the image.
        image_hw: ``(H, W)`` of the target image.

    Returns:
        BoolTensor (K, H, W): pixels whose bilinearly sampled probability is >= ``threshold``.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    out = torch.zeros(len(probs), h, w, dtype=torch.bool)
    for k, (p, b) in enumerate(zip(probs.float().cpu(), boxes.float().cpu(), strict=True)):
        x0, y0, x1, y1 = (float(v) for v in b)
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            continue
        xa, xb = max(0, int(x0)), min(w, int(-(-x1 // 1)))
        ya, yb = max(0, int(y0)), min(h, int(-(-y1 // 1)))
        if xb <= xa or yb <= ya:
            continue
        gx = (torch.arange(xa, xb, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
        gy = (torch.arange(ya, yb, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
        grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1)[None]  # (1, h', w', 2)
        v = F.grid_sample(p[None, None], grid, mode="bilinear", padding_mode="border", align_corners=False)
        inside = (grid.abs() <= 1).all(-1)[0]  # pixel centres in the box
        out[k, ya:yb, xa:xb] = (v[0, 0] >= threshold) & inside
    return out
