"""Mask primitives: COCO RLE encoding, the one decoder of COCO segmentations, Dice (pycocotools)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..errors import MedglipError


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of a boolean ``(H, W)`` mask, with ``counts`` as text (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask).astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def decode_segmentation(segmentation: Any, height: int, width: int) -> np.ndarray | None:
    """Bool ``(height, width)`` mask of a COCO segmentation, or None when there is none.

    Accepts compressed RLE (``counts`` as text or bytes), uncompressed RLE (``counts`` a list) and
    polygons (a list of flat coordinate lists; polygons of fewer than 3 points enclose nothing).

    Raises:
        MedglipError: a malformed segmentation, or one whose size is not ``(height, width)``.
    """
    if segmentation is None or (isinstance(segmentation, (list, tuple, dict)) and not segmentation):
        return None
    try:
        if isinstance(segmentation, (list, tuple)):
            polygons = [list(p) for p in segmentation if len(p) >= 6]  # fewer than 3 points enclose nothing
            if not polygons:
                return np.zeros((height, width), dtype=bool)
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        elif isinstance(segmentation, Mapping) and isinstance(segmentation.get("counts"), list):
            rle = mask_utils.frPyObjects(dict(segmentation), height, width)
        elif isinstance(segmentation, Mapping):
            counts = segmentation["counts"]
            rle = {
                "size": [int(v) for v in segmentation["size"]],
                "counts": counts.encode("ascii") if isinstance(counts, str) else counts,
            }
        else:
            raise TypeError(f"a {type(segmentation).__name__}")
        mask = mask_utils.decode(rle).astype(bool)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise MedglipError(f"malformed COCO segmentation ({exc})") from None
    if mask.shape != (height, width):
        raise MedglipError(f"segmentation of size {list(mask.shape)} does not match the image [{height}, {width}]")
    return mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice ``2|A∩B| / (|A|+|B|)`` of two bool masks; 1.0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    denom = int(a.sum()) + int(b.sum())
    return 1.0 if denom == 0 else 2.0 * float(np.logical_and(a, b).sum()) / denom
