"""Masks → instance boxes (one per connected component) with COCO RLE masks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..core.masks import encode_rle

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity in 2D


@dataclass(frozen=True)
class Instance:
    """One connected region of one label value on one 2D slice.

    Attributes:
        value: label value in the source map.
        bbox: COCO ``[x, y, w, h]`` on pixel edges (covers columns ``x .. x + w - 1``).
        area: number of mask pixels.
        rle: COCO RLE ``{"size": [h, w], "counts": str}``.
        centroid: ``(x, y)`` pixel centroid.
    """

    value: int
    bbox: tuple[int, int, int, int]
    area: int
    rle: dict
    centroid: tuple[float, float]


def _make(value: int, mask: np.ndarray, sl: tuple[slice, ...]) -> Instance:
    ys, xs = np.nonzero(mask[sl])
    y0, x0 = sl[0].start, sl[1].start
    return Instance(
        value=value,
        bbox=(int(x0), int(y0), int(sl[1].stop - x0), int(sl[0].stop - y0)),
        area=int(ys.size),
        rle=encode_rle(mask),
        centroid=(float(xs.mean() + x0), float(ys.mean() + y0)),
    )


def instances_from_slice(
    label2d: np.ndarray,
    *,
    names: dict[int, str],
    per_value: bool = False,
    min_pixels: int = 1,
    min_area_mm2: float = 0.0,
    pixel_area_mm2: float | None = None,
) -> tuple[list[Instance], list[int]]:
    """All instances on one label slice.

    Args:
        label2d: integer ``(H, W)`` label slice.
        names: the values that count (others besides 0 are returned as unknown).
        per_value: one instance per value (COCO instance maps) instead of one per component.
        min_pixels, min_area_mm2: components below either threshold are dropped as noise
            (the mm² test only when ``pixel_area_mm2`` is known).

    Returns:
        ``(instances, unknown_values)`` where ``unknown_values`` are values present but not in ``names``.
    """
    if not label2d.any():  # most slices of a volume: skip the sort of np.unique
        return [], []
    values = np.unique(label2d)
    values = values[values != 0]
    out: list[Instance] = []
    unknown = [int(v) for v in values if int(v) not in names]
    for v in values:
        v = int(v)
        if v not in names:
            continue
        mask = label2d == v
        if per_value:
            comps = [(mask, ndimage.find_objects(mask.astype(np.uint8))[0])]
        else:
            lab, n = ndimage.label(mask, structure=_EIGHT)
            comps = [(lab == i + 1, sl) for i, sl in enumerate(ndimage.find_objects(lab)) if sl is not None]
        for comp, sl in comps:
            area = int(np.count_nonzero(comp[sl]))
            if area < min_pixels:
                continue
            if pixel_area_mm2 is not None and area * pixel_area_mm2 < min_area_mm2:
                continue
            out.append(_make(v, comp, sl))
    return out, unknown
