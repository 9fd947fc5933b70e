"""Phrase-grounding scores per (image, phrase) pair: top-box IoU / Acc@0.5, mask Dice, absent-phrase FPs.

Definitions (the same for every group of the breakdown):

- **Present pair**: an (image, phrase) with at least one GT box of that phrase on that image. Every
  present pair of the split counts, whether or not it was queried (not querying it is a miss).
- **Top box**: the highest-scoring prediction of the pair (ties: the first given), whatever its score.
  Its IoU is the best IoU with ANY GT box of the phrase on the image (the standard rule for
  multi-instance phrase grounding, e.g. Flickr30k-Entities "any box" protocol); no prediction → IoU 0.
  **Acc@0.5** = fraction of present pairs with IoU ≥ 0.5; **mIoU** = mean of these IoUs.
  IoU is the box IoU of :func:`medglip.core.boxes.box_iou` (continuous pixel edges, as COCOeval's).
- **Dice**: predicted mask = union of the masks of the top-1 prediction and of every other prediction of
  the pair with score ≥ ``score_threshold`` (top-1 always, so Dice and Acc judge the same best guess;
  the extra ones cover multi-instance findings); GT mask = union of the pair's GT masks. No prediction
  → Dice 0; predictions without a ``segmentation`` add nothing. Dice is only computed when at least one
  prediction carries a ``segmentation`` (else ``None``: the model was not asked for masks).
- **Absent pair**: an (image, phrase) in ``queries`` whose phrase has no GT box on that image (also
  phrases that are not categories of the split at all). It is a **false positive** when the top
  prediction's score ≥ ``score_threshold``. Without ``queries`` there are no absent pairs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.boxes import box_iou, xywh_to_xyxy
from ..core.masks import decode_segmentation, dice
from .groundtruth import GroundTruth


@dataclass(frozen=True)
class PresentPair:
    """Score of one present (image, phrase) pair; ``dice`` is ``None`` when masks are not evaluated."""

    image_id: int
    phrase: str
    iou: float
    hit: bool
    dice: float | None


@dataclass(frozen=True)
class AbsentPair:
    """One queried (image, phrase) with no GT box; ``top_score`` is ``None`` when nothing was predicted."""

    image_id: int
    phrase: str
    top_score: float | None
    false_positive: bool


def group_predictions(predictions: Sequence[dict]) -> dict[tuple[int, str], list[dict]]:
    """``(image_id, phrase) -> predictions`` sorted by descending score (stable)."""
    groups: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for pred in predictions:
        groups[(pred["image_id"], pred["phrase"])].append(pred)
    return {k: sorted(v, key=lambda p: -p["score"]) for k, v in groups.items()}


def _pred_mask(preds: list[dict], score_threshold: float, h: int, w: int) -> np.ndarray:
    out = np.zeros((h, w), dtype=bool)
    for rank, pred in enumerate(preds):
        if rank > 0 and pred["score"] < score_threshold:
            break  # sorted by score: nothing further passes
        mask = decode_segmentation(pred.get("segmentation"), h, w)
        if mask is not None:
            out |= mask
    return out


def score_present_pairs(
    gt: GroundTruth,
    by_pair: Mapping[tuple[int, str], list[dict]],
    *,
    score_threshold: float,
    with_masks: bool,
    iou_threshold: float = 0.5,
) -> list[PresentPair]:
    """Score every present pair of ``gt`` (see the module docstring)."""
    out = []
    for (image_id, phrase), anns in sorted(gt.boxes.items()):
        preds = by_pair.get((image_id, phrase), [])
        iou = (
            float(box_iou(xywh_to_xyxy([preds[0]["bbox"]]), xywh_to_xyxy([a["bbox"] for a in anns])).max())
            if preds
            else 0.0
        )
        d = None
        if with_masks:
            if preds:
                h, w = gt.image_sizes[image_id]
                d = dice(_pred_mask(preds, score_threshold, h, w), gt.gt_mask(image_id, phrase))
            else:
                d = 0.0
        out.append(PresentPair(image_id, phrase, iou, iou >= iou_threshold, d))
    return out


def score_absent_pairs(
    gt: GroundTruth,
    by_pair: Mapping[tuple[int, str], list[dict]],
    queries: Mapping[int, Sequence[str]] | None,
    *,
    score_threshold: float,
) -> list[AbsentPair]:
    """Score every queried pair whose phrase has no GT box on its image (see the module docstring)."""
    if not queries:
        return []
    out = []
    for image_id in sorted(queries):
        for phrase in queries[image_id]:
            if (image_id, phrase) in gt.boxes:
                continue
            preds = by_pair.get((image_id, phrase), [])
            top = preds[0]["score"] if preds else None
            out.append(AbsentPair(image_id, phrase, top, top is not None and top >= score_threshold))
    return out
