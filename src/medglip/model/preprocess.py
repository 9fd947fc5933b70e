"""Image preprocessing shared by training and inference (docs/model_api.md).

``prepare_image``: grey → 3 channels; letterbox-resize so the long side is ``size`` (aspect kept),
pad bottom/right with black (0) to ``size × size``, then normalise with ImageNet mean/std.
``boxes_to_original`` maps boxes back: divide by ``scale``, clip to the original size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def prepare_image(img: np.ndarray, size: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Preprocess a uint8 image.

    Args:
        img: uint8 array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (alpha dropped).
        size: output side S.

    Returns:
        (FloatTensor (3, S, S), {"scale": float, "orig_size": (H, W)}).
    """
    a = np.asarray(img)
    if a.dtype != np.uint8:
        raise TypeError(f"prepare_image expects uint8 pixels, got {a.dtype} (window/scale to 0..255 first)")
    if a.ndim == 3 and a.shape[2] in (1, 3, 4):
        a = a[..., :3] if a.shape[2] >= 3 else a[..., 0]
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected (H, W) or (H, W, 3) image, got shape {np.asarray(img).shape}")
    h, w = a.shape[:2]
    if h == 0 or w == 0:
        raise ValueError("empty image")
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    x = torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float().div_(255.0)
    if (nh, nw) != (h, w):
        x = F.interpolate(x[None], size=(nh, nw), mode="bilinear", align_corners=False,
                          antialias=scale < 1).squeeze(0).clamp_(0, 1)
    out = torch.zeros(3, size, size)
    out[:, :nh, :nw] = x
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (out - mean) / std, {"scale": scale, "orig_size": (h, w)}


def boxes_to_original(boxes: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """xyxy boxes in input pixels → original pixels (divide by scale, clip to the original size)."""
    h, w = meta["orig_size"]
    out = boxes.float() / float(meta["scale"])
    out[..., 0::2] = out[..., 0::2].clamp(0, w)
    out[..., 1::2] = out[..., 1::2].clamp(0, h)
    return out
