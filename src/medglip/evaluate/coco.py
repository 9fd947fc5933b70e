"""COCO AP with pycocotools' ``COCOeval``, quietly, restricted to a group of images or categories."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .groundtruth import GroundTruth

log = logging.getLogger(__name__)

#: names of ``COCOeval.stats`` entries (maxDets 100 unless named), in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
#: the recall grid of ``COCOeval`` (101 points).
RECALL_GRID = np.linspace(0.0, 1.0, 101)


@dataclass(frozen=True)
class CocoResult:
    """One COCOeval run.

    Attributes:
        stats: ``STAT_NAMES -> value``; ``None`` where COCOeval has nothing to measure (-1: no GT box
            in that area range / group).
        precision50: ``(101,)`` precision at IoU 0.5 on :data:`RECALL_GRID`, averaged over the run's
            categories that have GT boxes (all areas, 100 detections), or ``None`` when none has.
        precision50_per_category: ``category id -> (101,)`` precision at IoU 0.5 for categories with GT.
    """

    stats: dict[str, float | None]
    precision50: np.ndarray | None
    precision50_per_category: dict[int, np.ndarray]


def build_coco(images: list[dict], categories: list[dict], annotations: list[dict]) -> COCO:
    """A ``pycocotools.coco.COCO`` from in-memory lists, without its stdout chatter."""
    coco = COCO()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def gt_coco(gt: GroundTruth) -> COCO:
    """The ground truth as a COCO object (annotations copied: COCOeval writes into them)."""
    anns = []
    for ann in gt.coco["annotations"]:
        a = dict(ann)
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = float(a["bbox"][2] * a["bbox"][3])
        anns.append(a)
    return build_coco(list(gt.coco["images"]), list(gt.coco["categories"]), anns)


def dt_coco(gt: GroundTruth, predictions: Sequence[dict], *, segm: bool = False) -> COCO:
    """Detections as a COCO object: ``phrase`` → ``category_id``; phrases unknown to the GT are left out.

    With ``segm=True`` only predictions that carry a ``segmentation`` are kept (mask AP).
    """
    anns: list[dict] = []
    for pred in predictions:
        cid = gt.category_by_phrase.get(pred["phrase"])
        if cid is None or (segm and "segmentation" not in pred):
            continue
        x, y, w, h = pred["bbox"]
        ann = {
            "id": len(anns) + 1,
            "image_id": pred["image_id"],
            "category_id": cid,
            "bbox": [x, y, w, h],
            "score": pred["score"],
            "area": float(w * h),
            "iscrowd": 0,
        }
        if segm:
            ann["segmentation"] = pred["segmentation"]
        anns.append(ann)
    return build_coco(list(gt.coco["images"]), list(gt.coco["categories"]), anns)


class CocoEvaluation:
    """``COCOeval.evaluate()`` run once over the whole split; groups are then scored by COCOeval's own
    ``accumulate()`` / ``summarize()`` on the matching slice of its per-(category, area, image) results.

    ``COCOeval`` scores each (image, category) on its own, so the slice gives exactly what a fresh
    COCOeval restricted to the group's images/categories would give, without re-matching every box
    for every group (the evaluate step is what costs time on a large split).
    """

    def __init__(self, gt: COCO, dt: COCO, *, iou_type: str = "bbox") -> None:
        self.gt = gt
        self.iou_type = iou_type
        self.ev = COCOeval(gt, dt, iouType=iou_type)
        self.evaluated = bool(self.ev.params.imgIds and self.ev.params.catIds and gt.getAnnIds())
        if self.evaluated:
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                self.ev.evaluate()
            log.debug("COCOeval (%s) evaluate:\n%s", iou_type, buf.getvalue())

    def result(self, *, img_ids: Sequence[int] | None = None, cat_ids: Sequence[int] | None = None) -> CocoResult:
        """Accumulate and summarize over a subset of images and/or categories.

        Args:
            img_ids: restrict to these images (e.g. one modality); ``None``: all images of the split.
            cat_ids: restrict to these categories (e.g. one hierarchy level); ``None``: all categories.

        Returns:
            A :class:`CocoResult`. An empty ``img_ids``/``cat_ids`` or a group without GT boxes gives
            all-``None`` stats (never NaN, never -1).
        """
        empty = CocoResult(dict.fromkeys(STAT_NAMES), None, {})
        if not self.evaluated:
            return empty
        pe = self.ev._paramsEval  # the parameters evaluate() ran with; evalImgs is laid out by them
        keep_i = set(pe.imgIds if img_ids is None else (int(i) for i in img_ids))
        keep_c = set(pe.catIds if cat_ids is None else (int(c) for c in cat_ids))
        iidx = [n for n, i in enumerate(pe.imgIds) if i in keep_i]
        kidx = [n for n, c in enumerate(pe.catIds) if c in keep_c]
        if not iidx or not kidx:
            return empty
        sub_imgs, sub_cats = [pe.imgIds[n] for n in iidx], [pe.catIds[n] for n in kidx]
        if not self.gt.getAnnIds(imgIds=sub_imgs, catIds=sub_cats):
            return empty
        n_area, n_img = len(pe.areaRng), len(pe.imgIds)
        sub = copy.copy(self.ev)
        sub.evalImgs = [
            self.ev.evalImgs[k * n_area * n_img + a * n_img + i] for k in kidx for a in range(n_area) for i in iidx
        ]
        sub._paramsEval = copy.deepcopy(pe)
        sub._paramsEval.imgIds, sub._paramsEval.catIds = sub_imgs, sub_cats
        sub.params = copy.deepcopy(sub._paramsEval)
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            sub.accumulate()
            sub.summarize()
        log.debug("COCOeval (%s) summary:\n%s", self.iou_type, buf.getvalue())
        stats = {name: (float(v) if v > -1 else None) for name, v in zip(STAT_NAMES, sub.stats, strict=True)}
        # precision: [T, R, K, A, M]; IoU 0.5 is T index 0, area "all" A index 0, maxDets 100 is M index -1
        prec = sub.eval["precision"][0, :, :, 0, -1]
        per_cat = {int(c): prec[:, k].copy() for k, c in enumerate(sub_cats) if prec[0, k] > -1}
        mean = np.mean(np.stack(list(per_cat.values()), axis=1), axis=1) if per_cat else None
        return CocoResult(stats, mean, per_cat)
