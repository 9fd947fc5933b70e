"""Box primitives (numpy in, numpy out): xywh ↔ xyxy, IoU (torchvision.ops), and the inside fraction.

Boxes are on pixel edges: a box covering columns 3..7 is ``x0 = 3, x1 = 8`` (COCO ``[x, y, w, h]``
= ``[3, y, 5, h]``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.ops import box_iou as _tv_box_iou


def xywh_to_xyxy(boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """``(N, 4)`` COCO ``[x, y, w, h]`` → ``[x0, y0, x1, y1]`` (float64)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """``(N, 4)`` ``[x0, y0, x1, y1]`` → COCO ``[x, y, w, h]`` (negative sizes clipped to 0)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], np.clip(b[:, 2:] - b[:, :2], 0, None)], axis=1)


def box_iou(a: Sequence[Sequence[float]] | np.ndarray, b: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """IoU matrix ``(N, M)`` of xyxy boxes (``torchvision.ops.box_iou``; 0 where both are empty)."""
    ta = torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(-1, 4))
    tb = torch.as_tensor(np.asarray(b, dtype=np.float64).reshape(-1, 4))
    if ta.shape[0] == 0 or tb.shape[0] == 0:
        return np.zeros((ta.shape[0], tb.shape[0]))
    return torch.nan_to_num(_tv_box_iou(ta, tb), nan=0.0).numpy()


def inside_fraction(
    lo: Sequence[float], hi: Sequence[float], holder_lo: Sequence[float], holder_hi: Sequence[float]
) -> float:
    """Fraction of the box ``lo..hi`` (any number of axes: 2D pixels, 3D voxels) inside the box
    ``holder_lo..holder_hi``; 0 for an empty box."""
    b_lo, b_hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    size = float(np.prod(np.clip(b_hi - b_lo, 0, None)))
    if size <= 0:
        return 0.0
    h_lo, h_hi = np.asarray(holder_lo, np.float64), np.asarray(holder_hi, np.float64)
    inter = np.clip(np.minimum(b_hi, h_hi) - np.maximum(b_lo, h_lo), 0, None)
    return float(np.prod(inter)) / size
