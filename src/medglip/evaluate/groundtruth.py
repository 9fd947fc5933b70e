"""An index over the ground-truth COCO dict of one built split (docs/dataset_format.md)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.masks import decode_segmentation
from .predictions import EvaluationError

UNKNOWN = "unknown"
LEVELS = ("region", "organ", "substructure", "lesion", UNKNOWN)


@dataclass
class GroundTruth:
    """Typed look-ups over a COCO ground-truth dict.

    Attributes:
        coco: the COCO dict as given (``images``, ``annotations``, ``categories``).
        image_sizes: ``image_id -> (height, width)``.
        image_modality: ``image_id -> modality`` (``"unknown"`` when the image record has none).
        category_by_phrase: ``phrase (category name) -> category id``.
        phrase_level: ``phrase -> hierarchy level`` of its category (``"unknown"`` when absent).
        boxes: ``(image_id, phrase) -> list of GT annotations`` (only pairs with at least one box).
    """

    coco: Mapping[str, Any]
    image_sizes: dict[int, tuple[int, int]] = field(default_factory=dict)
    image_modality: dict[int, str] = field(default_factory=dict)
    category_by_phrase: dict[str, int] = field(default_factory=dict)
    phrase_by_category: dict[int, str] = field(default_factory=dict)
    phrase_level: dict[str, str] = field(default_factory=dict)
    boxes: dict[tuple[int, str], list[dict]] = field(default_factory=dict)

    @classmethod
    def from_coco(cls, coco: Mapping[str, Any]) -> GroundTruth:
        """Index ``coco``.

        Raises:
            EvaluationError: missing top-level keys, two categories with the same name (phrases must
                map to exactly one category), or an annotation on an unknown image/category.
        """
        for key in ("images", "annotations", "categories"):
            if key not in coco:
                raise EvaluationError(f"ground truth has no '{key}' list (is it a COCO file of `medglip build`?)")
        gt = cls(coco=coco)
        for img in coco["images"]:
            iid = int(img["id"])
            gt.image_sizes[iid] = (int(img["height"]), int(img["width"]))
            gt.image_modality[iid] = str(img.get("modality") or UNKNOWN)
        for cat in coco["categories"]:
            name = str(cat["name"]).strip()
            if name in gt.category_by_phrase:
                raise EvaluationError(f"ground truth has two categories named {name!r}; phrases must be unique")
            gt.category_by_phrase[name] = int(cat["id"])
            gt.phrase_by_category[int(cat["id"])] = name
            level = cat.get("level")
            gt.phrase_level[name] = level if level in LEVELS else UNKNOWN
        pairs: dict[tuple[int, str], list[dict]] = defaultdict(list)
        for ann in coco["annotations"]:
            iid, cid = int(ann["image_id"]), int(ann["category_id"])
            if iid not in gt.image_sizes:
                raise EvaluationError(f"ground-truth annotation {ann.get('id')} is on unknown image {iid}")
            if cid not in gt.phrase_by_category:
                raise EvaluationError(f"ground-truth annotation {ann.get('id')} has unknown category {cid}")
            pairs[(iid, gt.phrase_by_category[cid])].append(ann)
        gt.boxes = dict(pairs)
        return gt

    def level_of(self, phrase: str) -> str:
        """Hierarchy level of a phrase; ``"unknown"`` for phrases that are not GT categories."""
        return self.phrase_level.get(phrase, UNKNOWN)

    def images_of_modality(self, modality: str) -> list[int]:
        """Ids of the split's images of one modality (with or without annotations)."""
        return sorted(i for i, m in self.image_modality.items() if m == modality)

    def categories_of_level(self, level: str) -> list[int]:
        """Category ids whose phrase has hierarchy level ``level``."""
        return sorted(c for p, c in self.category_by_phrase.items() if self.level_of(p) == level)

    def gt_mask(self, image_id: int, phrase: str) -> np.ndarray:
        """Union of the GT masks of ``phrase`` on ``image_id`` as a bool ``(H, W)`` array.

        Annotations without a segmentation contribute their filled box.
        """
        h, w = self.image_sizes[image_id]
        out = np.zeros((h, w), dtype=bool)
        for ann in self.boxes.get((image_id, phrase), []):
            out |= annotation_mask(ann, h, w)
        return out


def annotation_mask(ann: Mapping[str, Any], h: int, w: int) -> np.ndarray:
    """Bool ``(h, w)`` mask of a COCO annotation: RLE (text or bytes counts), polygons, or its box."""
    mask = decode_segmentation(ann.get("segmentation"), h, w)
    if mask is not None:
        return mask
    out = np.zeros((h, w), dtype=bool)
    x, y, bw, bh = ann["bbox"]
    x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
    x1, y1 = min(int(round(x + bw)), w), min(int(round(y + bh)), h)
    out[y0:y1, x0:x1] = True
    return out
