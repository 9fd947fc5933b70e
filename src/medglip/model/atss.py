"""Anchors and ATSS assignment (Zhang et al., "Bridging the Gap Between Anchor-based and
Anchor-free Detection via Adaptive Training Sample Selection", CVPR 2020).

One square anchor per feature location, side ``anchor_scale × stride``, centred on the location.
For every ground-truth box: on each level take the ``topk`` anchors whose centres are nearest the
box centre; the IoU threshold is mean + std of those candidates' IoUs; candidates with IoU ≥ the
threshold whose centre lies inside the box are positive. An anchor claimed by several boxes goes to
the one it overlaps most. A box left without positives (too small to contain an anchor centre) gets
its best-overlapping candidate. No boxes → every anchor is background.
"""

from __future__ import annotations

import torch
from torchvision.ops import box_iou


def make_anchors(
    shapes: list[tuple[int, int]], strides: list[int], anchor_scale: float, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Anchors for feature maps of ``shapes`` (H_l, W_l) at ``strides``.

    Returns:
        centres: (A, 2) xy in input pixels, level-major then row-major (matches the head's order).
        boxes: (A, 4) xyxy square anchors.
        level_sizes: anchors per level.
    """
    centres, boxes, sizes = [], [], []
    for (h, w), s in zip(shapes, strides, strict=True):
        ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * s
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        c = torch.stack([cx.reshape(-1), cy.reshape(-1)], 1)
        half = anchor_scale * s / 2
        centres.append(c)
        boxes.append(torch.cat([c - half, c + half], 1))
        sizes.append(h * w)
    return torch.cat(centres), torch.cat(boxes), sizes


@torch.no_grad()
def atss_assign(anchors: torch.Tensor, level_sizes: list[int], gt_boxes: torch.Tensor, topk: int = 9) -> torch.Tensor:
    """Assign anchors to ground-truth boxes.

    Args:
        anchors: (A, 4) xyxy; level_sizes: anchors per level (sum = A).
        gt_boxes: (G, 4) xyxy, G may be 0.
        topk: candidates per level per box.

    Returns:
        LongTensor (A,): index of the assigned box, -1 for background.
    """
    num_anchors = anchors.shape[0]
    matched = torch.full((num_anchors,), -1, dtype=torch.long, device=anchors.device)
    if gt_boxes.numel() == 0:
        return matched
    gt_boxes = gt_boxes.to(anchors)
    ious = box_iou(anchors, gt_boxes)  # (A, G)
    a_ctr = (anchors[:, :2] + anchors[:, 2:]) / 2
    g_ctr = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    dist = torch.cdist(a_ctr, g_ctr)  # (A, G)
    candidates, start = [], 0
    for n in level_sizes:
        k = min(topk, n)
        _, idx = dist[start : start + n].topk(k, dim=0, largest=False)  # (k, G)
        candidates.append(idx + start)
        start += n
    cand = torch.cat(candidates, 0)  # (K, G)
    cand_iou = ious.gather(0, cand)  # (K, G)
    std = cand_iou.std(0) if cand_iou.shape[0] > 1 else torch.zeros_like(cand_iou[0])
    thr = cand_iou.mean(0) + std  # (G,)
    pos = cand_iou >= thr[None]
    # centre of the candidate anchor strictly inside the box
    cx, cy = a_ctr[cand, 0], a_ctr[cand, 1]  # (K, G)
    eps = 0.01
    inside = (
        (cx - gt_boxes[:, 0] > eps)
        & (cy - gt_boxes[:, 1] > eps)
        & (gt_boxes[:, 2] - cx > eps)
        & (gt_boxes[:, 3] - cy > eps)
    )
    pos &= inside
    # scatter into an (A, G) IoU table holding only positives, then pick the highest per anchor
    table = torch.full_like(ious, -1.0)
    g_idx = torch.arange(gt_boxes.shape[0], device=anchors.device).expand_as(cand)
    table[cand[pos], g_idx[pos]] = ious[cand[pos], g_idx[pos]]
    # a box too small to contain any candidate centre still gets its best-overlapping candidate
    empty = ~pos.any(0)
    if bool(empty.any()):
        g = torch.nonzero(empty).squeeze(1)
        k = cand_iou[:, g].argmax(0)
        a = cand[k, g]
        table[a, g] = ious[a, g].clamp(min=1e-6)
    best, arg = table.max(1)
    has = best >= 0
    matched[has] = arg[has]
    return matched


def centerness_target(centres: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """FCOS centerness of anchor ``centres`` (N, 2) inside their boxes (N, 4): (N,) in [0, 1]."""
    left = centres[:, 0] - boxes[:, 0]
    top = centres[:, 1] - boxes[:, 1]
    right = boxes[:, 2] - centres[:, 0]
    bottom = boxes[:, 3] - centres[:, 1]
    lr = torch.stack([left, right], 1).clamp(min=0)
    tb = torch.stack([top, bottom], 1).clamp(min=0)
    c = (lr.min(1).values / lr.max(1).values.clamp(min=1e-6)) * (tb.min(1).values / tb.max(1).values.clamp(min=1e-6))
    return c.sqrt()


def decode(centres: torch.Tensor, ltrb: torch.Tensor) -> torch.Tensor:
    """Boxes xyxy from anchor centres (..., 2) and distances (..., 4)."""
    return torch.cat([centres - ltrb[..., :2], centres + ltrb[..., 2:]], -1)
