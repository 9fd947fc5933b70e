"""Ground truth of a built-dataset image as a :class:`GroundingResult`, so that evaluation (e.g. the
VQA ceiling) goes through exactly the code that handles predictions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.boxes import xywh_to_xyxy
from ..core.masks import decode_segmentation
from ..errors import MedglipError
from ..infer.results import GroundingResult, PhraseGrounding


def _phrase(ann: dict, categories: dict[int, dict]) -> str:
    if ann.get("phrase"):
        return str(ann["phrase"])
    cat = categories.get(int(ann.get("category_id", -1)))
    if cat is None or not cat.get("name"):
        raise MedglipError(f"annotation {ann.get('id')}: no phrase and unknown category {ann.get('category_id')!r}")
    return str(cat["name"])


def _mask(ann: dict, height: int, width: int) -> np.ndarray:
    mask = decode_segmentation(ann["segmentation"], height, width)
    if mask is None:  # only annotations with a segmentation come here
        raise MedglipError(f"annotation {ann.get('id')}: an empty segmentation")
    return mask


def record_extra(image_record: dict) -> dict[str, Any]:
    """The geometry of a built image record as a grounding result's ``extra``: ``pixel_spacing``,
    ``plane`` and ``pixel_to_world`` where the record has them."""
    extra: dict[str, Any] = {}
    if image_record.get("pixel_spacing") is not None:
        extra["pixel_spacing"] = [float(v) for v in image_record["pixel_spacing"]]
    if image_record.get("slice_plane"):
        extra["plane"] = str(image_record["slice_plane"])
    if image_record.get("pixel_to_world") is not None:
        extra["pixel_to_world"] = image_record["pixel_to_world"]
    return extra


def result_from_annotations(
    image_record: dict,
    annotations: list[dict],
    categories: dict[int, dict],
    phrases: Sequence[str] | None = None,
    *,
    pixels: np.ndarray | None = None,
) -> GroundingResult:
    """The ground truth of one image (docs/dataset_format.md) as a :class:`GroundingResult`.

    Args:
        image_record: the COCO image record (``width``, ``height``, ``modality``, ``file_name``,
            ``pixel_spacing``, ``slice_plane``, ``pixel_to_world``).
        annotations: that image's annotations (``bbox`` xywh, optional ``phrase`` / ``segmentation``).
        categories: category records by id (the phrase of an annotation without ``phrase``).
        phrases: the phrases to report, in this order (those without annotations get no boxes);
            default: the annotations' phrases in order of first appearance.
        pixels: the image's pixels (the dataset's PNG), so sides are measured as on predictions.

    Returns:
        Boxes xyxy, scores 1.0, masks ``(K, H, W)`` bool when EVERY annotation has a segmentation
        (else None for all phrases); ``extra`` with ``pixel_spacing``, ``plane``, ``pixel_to_world``
        when the record has them; ``source`` = ``file_name``; ``modality_source`` = ``"metadata"``.
    """
    try:
        h, w = int(image_record["height"]), int(image_record["width"])
    except (KeyError, TypeError, ValueError):
        raise MedglipError(f"image record {image_record.get('id')!r} lacks a valid height / width") from None
    by_phrase: dict[str, list[dict]] = {}
    for ann in annotations:
        by_phrase.setdefault(_phrase(ann, categories), []).append(ann)
    names = tuple(by_phrase) if phrases is None else tuple(str(p) for p in phrases)
    with_masks = bool(annotations) and all(a.get("segmentation") for a in annotations)

    groundings = []
    for name in names:
        anns = by_phrase.get(name, [])
        boxes = xywh_to_xyxy([a["bbox"] for a in anns]).astype(np.float32)
        masks = None
        if with_masks:
            masks = np.stack([_mask(a, h, w) for a in anns]) if anns else np.zeros((0, h, w), bool)
        groundings.append(PhraseGrounding(name, boxes, np.ones(len(anns), np.float32), masks))

    extra = record_extra(image_record)
    if image_record.get("intensity") is not None:
        extra["intensity"] = image_record["intensity"]
    if pixels is not None and tuple(np.asarray(pixels).shape[:2]) != (h, w):
        raise MedglipError(
            f"pixels of shape {np.asarray(pixels).shape} do not match image record "
            f"{image_record.get('id')!r} ({h}, {w})"
        )
    return GroundingResult(
        names,
        groundings,
        (h, w),
        str(image_record.get("modality") or ""),
        "metadata",
        str(image_record.get("file_name", "array")),
        extra,
        pixels=pixels,
    )
