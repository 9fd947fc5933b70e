"""All evaluation metrics of a split, overall and by modality / hierarchy level / phrase.

Metrics of a group (keys of each group dict):

- ``AP``, ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``, ``AR100``: box COCO metrics from pycocotools'
  ``COCOeval`` (max 100 detections per image and phrase). A group by modality restricts COCOeval to
  the group's images, a group by level (or phrase) to the group's categories. ``None`` where COCOeval
  has nothing to measure (no GT box in the group, or in that COCO area range: APs/APm/APl are only
  meaningful when there are small/medium/large GT boxes).
- ``mask_AP``, ``mask_AP50``, ``mask_AP75``: the same with ``iouType="segm"``, only when predictions carry
  masks (``None`` otherwise).
- ``acc50``, ``miou``, ``dice``, ``absent_fp_rate``: see :mod:`medglip.evaluate.grounding`.
- counts: ``n_images``, ``n_gt_boxes``, ``n_predictions``, ``n_pairs`` (present pairs), ``n_hits``,
  ``n_absent`` (absent queried pairs), ``n_absent_fp``.

Phrases map to categories by the GT category ``name``. A predicted phrase that IS a category but has
no GT box on its image is a false positive in that category's AP (COCOeval scores every image).
A predicted phrase that is NOT a category of the split cannot enter COCO AP (AP is averaged over
categories and such a phrase has none, pycocotools would drop it): it is counted in
``n_unknown_phrase_predictions`` with a warning and, when it was queried, as an absent pair (level
``"unknown"``) in the absent-phrase false-positive rate — that is where a box for a phrase that is not
there is measured.

All values are plain floats/ints/``None``: never NaN, so the dict is valid JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from .coco import RECALL_GRID, CocoEvaluation, CocoResult, dt_coco, gt_coco
from .grounding import AbsentPair, PresentPair, group_predictions, score_absent_pairs, score_present_pairs
from .groundtruth import GroundTruth
from .predictions import EvaluationError, validate_predictions, validate_queries

log = logging.getLogger(__name__)

BOX_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100")
MASK_STATS = ("AP", "AP50", "AP75")


# The pair filters of the groups (``keep(image_id, phrase)`` with the group's key bound by partial).
def _of_modality(gt: GroundTruth, modality: str, image_id: int, phrase: str) -> bool:
    return gt.image_modality[image_id] == modality


def _of_level(gt: GroundTruth, level: str, image_id: int, phrase: str) -> bool:
    return gt.level_of(phrase) == level


def _of_phrase(wanted: str, image_id: int, phrase: str) -> bool:
    return phrase == wanted


def _mean(values: Sequence[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _curve(result: CocoResult) -> list[float] | None:
    return None if result.precision50 is None else [round(float(v), 6) for v in result.precision50]


class _Evaluator:
    """Holds the validated inputs and computes one group's metrics on demand."""

    def __init__(
        self, gt: GroundTruth, predictions: list[dict], queries: dict[int, list[str]] | None, score_threshold: float
    ) -> None:
        self.gt = gt
        self.predictions = predictions
        self.with_masks = any("segmentation" in p for p in predictions)
        self.mask_ap = self.with_masks and all(a.get("segmentation") for a in gt.coco["annotations"])
        if self.with_masks and not self.mask_ap:
            log.warning("some GT annotations have no segmentation: mask AP is not computed")
        coco_gt = gt_coco(gt)
        self.box = CocoEvaluation(coco_gt, dt_coco(gt, predictions))
        self.segm = (
            CocoEvaluation(coco_gt, dt_coco(gt, predictions, segm=True), iou_type="segm") if self.mask_ap else None
        )
        by_pair = group_predictions(predictions)
        self.present = score_present_pairs(gt, by_pair, score_threshold=score_threshold, with_masks=self.with_masks)
        self.absent = score_absent_pairs(gt, by_pair, queries, score_threshold=score_threshold)

    def group(
        self,
        *,
        img_ids: Sequence[int] | None,
        cat_ids: Sequence[int] | None,
        keep: Callable[[int, str], bool],
    ) -> tuple[dict[str, Any], list[float] | None]:
        """Metrics of the pairs/predictions for which ``keep(image_id, phrase)`` holds, with COCOeval
        restricted to ``img_ids`` / ``cat_ids``; returns ``(metrics, PR curve at IoU 0.5)``."""
        box = self.box.result(img_ids=img_ids, cat_ids=cat_ids)
        out: dict[str, Any] = {k: box.stats[k] for k in BOX_STATS}
        segm = self.segm.result(img_ids=img_ids, cat_ids=cat_ids) if self.segm is not None else None
        out.update({f"mask_{k}": segm.stats[k] if segm is not None else None for k in MASK_STATS})
        present: list[PresentPair] = [p for p in self.present if keep(p.image_id, p.phrase)]
        absent: list[AbsentPair] = [a for a in self.absent if keep(a.image_id, a.phrase)]
        hits = sum(p.hit for p in present)
        n_fp = sum(a.false_positive for a in absent)
        out.update(
            {
                "acc50": hits / len(present) if present else None,
                "miou": _mean([p.iou for p in present]),
                "dice": _mean([p.dice for p in present if p.dice is not None]) if self.with_masks else None,
                "absent_fp_rate": n_fp / len(absent) if absent else None,
                "n_images": len({p.image_id for p in present} | {a.image_id for a in absent})
                if img_ids is None
                else len(img_ids),
                "n_gt_boxes": sum(len(v) for (i, ph), v in self.gt.boxes.items() if keep(i, ph)),
                "n_predictions": sum(1 for p in self.predictions if keep(p["image_id"], p["phrase"])),
                "n_pairs": len(present),
                "n_hits": int(hits),
                "n_absent": len(absent),
                "n_absent_fp": int(n_fp),
            }
        )
        return out, _curve(box)


def compute_metrics(
    coco: Mapping[str, Any],
    predictions: Sequence[Mapping[str, Any]],
    *,
    queries: Mapping[Any, Sequence[str]] | None = None,
    score_threshold: float = 0.3,
) -> dict[str, Any]:
    """Evaluate grounding predictions against the GT COCO dict of a built split.

    Args:
        coco: the split's COCO dict (``annotations/<split>.json`` of ``medglip build``).
        predictions: ``{"image_id", "phrase", "bbox" [x, y, w, h], "score", "segmentation"?}`` dicts.
        queries: ``image_id -> phrases that were asked on that image``; needed for the absent-phrase
            false-positive rate (``None``: that rate is ``None``).
        score_threshold: score from which a top prediction of an absent phrase is a false positive,
            and from which non-top predictions join the predicted mask for Dice.

    Returns:
        ``{"overall": {...}, "by_modality": {m: {...}}, "by_level": {l: {...}}, "by_phrase": {p: {...}},
        "pr": {"iou": 0.5, "recall": [...101], "overall": [...], "by_level": {...},
        "by_modality": {...}}, "score_threshold", "n_images", "n_predictions",
        "n_unknown_phrase_predictions", "masks_evaluated", "queries_given"}``; group dicts are
        described in the module docstring.

    Raises:
        EvaluationError: the split has no images, or its categories are ambiguous.
        PredictionError: a malformed prediction or query (naming it).
    """
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise EvaluationError(f"score_threshold must be in [0, 1], got {score_threshold}")
    gt = GroundTruth.from_coco(coco)
    if not gt.image_sizes:
        raise EvaluationError("the ground-truth split has no images: nothing to evaluate")
    preds = validate_predictions(predictions, gt.image_sizes)
    qs = validate_queries(queries, gt.image_sizes)
    unknown = sum(1 for p in preds if p["phrase"] not in gt.category_by_phrase)
    if unknown:
        log.warning(
            "%d prediction(s) have phrases that are not categories of this split: they are left out "
            "of COCO AP and count only as absent-phrase predictions",
            unknown,
        )
    ev = _Evaluator(gt, preds, qs, float(score_threshold))

    overall, curve = ev.group(img_ids=None, cat_ids=None, keep=lambda i, p: True)
    overall["n_images"] = len(gt.image_sizes)
    pr: dict[str, Any] = {
        "iou": 0.5,
        "recall": [round(float(r), 2) for r in RECALL_GRID],
        "overall": curve,
        "by_level": {},
        "by_modality": {},
    }
    by_modality: dict[str, Any] = {}
    for modality in sorted(set(gt.image_modality.values())):
        img_ids = gt.images_of_modality(modality)
        by_modality[modality], pr["by_modality"][modality] = ev.group(
            img_ids=img_ids, cat_ids=None, keep=partial(_of_modality, gt, modality)
        )
    levels = {gt.level_of(ph) for (_, ph) in gt.boxes} | {gt.level_of(a.phrase) for a in ev.absent}
    by_level: dict[str, Any] = {}
    for level in sorted(levels):
        by_level[level], pr["by_level"][level] = ev.group(
            img_ids=None, cat_ids=gt.categories_of_level(level), keep=partial(_of_level, gt, level)
        )
    phrases = {ph for (_, ph) in gt.boxes} | {a.phrase for a in ev.absent}
    by_phrase: dict[str, Any] = {}
    for phrase in sorted(phrases):
        cid = gt.category_by_phrase.get(phrase)
        by_phrase[phrase], _ = ev.group(
            img_ids=None, cat_ids=[cid] if cid is not None else [], keep=partial(_of_phrase, phrase)
        )
        by_phrase[phrase]["level"] = gt.level_of(phrase)
    return {
        "score_threshold": float(score_threshold),
        "n_images": len(gt.image_sizes),
        "n_predictions": len(preds),
        "n_unknown_phrase_predictions": unknown,
        "masks_evaluated": ev.with_masks,
        "queries_given": qs is not None,
        "overall": overall,
        "by_modality": by_modality,
        "by_level": by_level,
        "by_phrase": by_phrase,
        "pr": pr,
    }
