"""Grounding losses: token-level sigmoid focal loss, GIoU and centerness BCE (GLIP / ATSS).

An anchor assigned (by ATSS) to a box of phrase p has positive targets on exactly p's tokens and
negative targets on every other real token of the prompt; unassigned anchors are negative on all
tokens. Phrases without boxes (negative phrases) therefore only ever see negative targets, which is
what teaches the model to return nothing for an absent finding. The focal and centerness terms are
summed and divided by the number of positive anchors in the batch (at least 1); the GIoU term is
weighted by each anchor's centerness target (GLIP / ATSS), anchors near a box's edge counting less.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from .atss import atss_assign, centerness_target, decode


def assign(
    anchors: torch.Tensor, level_sizes: list[int], targets: list[dict[str, torch.Tensor]], topk: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """ATSS assignment per image: ``(positive anchor indices (n,), index of each one's box (n,))``."""
    out = []
    for tgt in targets:
        boxes = tgt["boxes"].to(anchors.device, torch.float32).reshape(-1, 4)
        matched = atss_assign(anchors, level_sizes, boxes, topk)
        pos = torch.nonzero(matched >= 0).squeeze(1)
        out.append((pos, matched[pos]))
    return out


def grounding_losses(
    *,
    logits: torch.Tensor,
    ltrb: torch.Tensor,
    centerness: torch.Tensor,
    centres: torch.Tensor,
    anchors: torch.Tensor,
    level_sizes: list[int],
    targets: list[dict[str, torch.Tensor]],
    phrase_token_masks: list[torch.Tensor],
    text_mask: torch.Tensor,
    topk: int,
    alpha: float,
    gamma: float,
    giou_weighting: str = "centerness",
    assignments: list[tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, torch.Tensor]:
    """Compute the three detection losses.

    Args:
        logits: (B, A, T) alignment logits; ltrb: (B, A, 4); centerness: (B, A) logits.
        centres: (A, 2) anchor centres; anchors: (A, 4) anchor boxes; level_sizes: anchors per level.
        targets: per image {"boxes": (N, 4) xyxy, "phrase_ids": (N,)}.
        phrase_token_masks: per image (P_b, T_b) bool (T_b <= T).
        text_mask: (B, T) bool, real tokens.
        giou_weighting: ``centerness`` weights each positive anchor's GIoU loss by its centerness
            target and normalises by their sum (ATSS / GLIP); ``none``: one weight per anchor.
        assignments: :func:`assign`'s output when the caller already has it.

    Returns:
        {"loss_cls", "loss_box", "loss_ctr"}: scalar tensors (finite also with zero boxes).
    """
    b, a, t = logits.shape
    cls_target = torch.zeros(b, a, t, device=logits.device, dtype=torch.float32)
    pos_pred, pos_gt, pos_ctr, pos_centres = [], [], [], []
    if assignments is None:
        assignments = assign(anchors, level_sizes, targets, topk)
    for i, (tgt, (pos, gt_idx)) in enumerate(zip(targets, assignments, strict=True)):
        boxes = tgt["boxes"].to(anchors.device, torch.float32).reshape(-1, 4)
        if pos.numel() == 0:
            continue
        phrase = tgt["phrase_ids"].to(anchors.device).long()[gt_idx]
        ptm = phrase_token_masks[i].to(logits.device)
        cls_target[i, pos, : ptm.shape[1]] = ptm[phrase].float()
        pos_pred.append(decode(centres[pos], ltrb[i, pos].float()))
        pos_gt.append(boxes[gt_idx])
        pos_ctr.append(centerness[i, pos].float())
        pos_centres.append(centres[pos])
    num_pos = max(sum(p.shape[0] for p in pos_pred), 1)

    focal = sigmoid_focal_loss(logits.float(), cls_target, alpha=alpha, gamma=gamma, reduction="none")
    loss_cls = (focal * text_mask[:, None, :].float()).sum() / num_pos

    if pos_pred:
        pred, gt = torch.cat(pos_pred), torch.cat(pos_gt)
        ctr_t = centerness_target(torch.cat(pos_centres), gt)
        giou = generalized_box_iou_loss(pred, gt, reduction="none")
        if giou_weighting == "centerness":
            loss_box = (giou * ctr_t).sum() / ctr_t.sum().clamp(min=1e-6)
        else:
            loss_box = giou.sum() / num_pos
        loss_ctr = F.binary_cross_entropy_with_logits(torch.cat(pos_ctr), ctr_t, reduction="sum") / num_pos
    else:  # keep the graph connected (DDP) with exact zeros
        loss_box = ltrb.sum() * 0.0
        loss_ctr = centerness.sum() * 0.0
    return {"loss_cls": loss_cls, "loss_box": loss_box, "loss_ctr": loss_ctr}
