"""3D masks of grounded volume objects, and one label map per volume.

An object's 3D mask is the union of its slice masks: each :class:`~medglip.infer.volume.SliceBox`
of the object carries the refiner's ``(H, W)`` mask on display slice ``k`` (``ground_volume(...,
masks=True)``: LiteMedSAM prompted with that slice's box). Each slice mask is clipped to its slice
box (the object is what its boxes hold; a refiner's stray pixels elsewhere on the slice belong to
no object), then mapped back to voxels through the :class:`~medglip.core.orient.SlicePlan`
(``pixel_to_voxel``: the plan's permutation and flips, no resampling), so the mask lies exactly on
the input's grid. Slices an object bridges without a box (a one-slice gap) stay empty.

Masks are stored as crops (:class:`ObjectMask`: a bool block and its first voxel), so memory grows
with the objects, not with the number of objects times the volume.

The label map (:func:`label_map`) is ONE ``uint16`` array on the input grid, label ``n`` for object
``n`` (1-based, in the order given). Where objects overlap, **the higher score wins** (equal scores:
the lower number); per-object masks stay exact (DICOM-SEG keeps one segment per object, overlaps
allowed). Volumes above a voxel budget (:data:`MAX_LABEL_VOXELS`) are refused before allocating.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.orient import SlicePlan
from ..errors import MedglipError

#: Default voxel budget of a label map: 2**28 voxels (512 MiB as uint16, e.g. 512 × 512 × 1024).
MAX_LABEL_VOXELS: int = 2**28
#: Labels a uint16 label map can hold.
MAX_LABELS: int = 65535


@dataclass(frozen=True)
class ObjectMask:
    """A 3D bool mask stored as a crop of the input grid.

    Attributes:
        lo: ``(i, j, k)`` of the crop's first voxel.
        mask: ``(a, b, c)`` bool crop (``(0, 0, 0)`` for an empty mask).
    """

    lo: tuple[int, int, int]
    mask: np.ndarray

    @property
    def voxels(self) -> int:
        """Number of voxels in the mask."""
        return int(np.count_nonzero(self.mask))

    @property
    def hi(self) -> tuple[int, int, int]:
        """``(i, j, k)`` one past the crop's last voxel."""
        i, j, k = (int(a + n) for a, n in zip(self.lo, self.mask.shape, strict=True))
        return i, j, k

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        """The crop's index into the full grid."""
        (i0, j0, k0), (i1, j1, k1) = self.lo, self.hi
        return slice(i0, i1), slice(j0, j1), slice(k0, k1)

    def dense(self, shape: Sequence[int]) -> np.ndarray:
        """The mask on the full ``(i, j, k)`` grid of ``shape`` (allocates one bool volume)."""
        out = np.zeros(tuple(int(s) for s in shape[:3]), bool)
        if self.mask.size:
            out[self.slices] = self.mask
        return out

    def centroid(self) -> np.ndarray | None:
        """``(3,)`` mean voxel index ``(i, j, k)`` of the mask, None when empty."""
        idx = np.argwhere(self.mask)
        return None if not len(idx) else idx.mean(0) + np.asarray(self.lo, np.float64)

    def voxel_box(self) -> np.ndarray | None:
        """``(2, 3)`` min / max voxel index (inclusive) of the mask, None when empty."""
        idx = np.argwhere(self.mask)
        if not len(idx):
            return None
        return np.stack([idx.min(0), idx.max(0)]) + np.asarray(self.lo)[None]


def box_pixels(mask: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """``mask`` (``(H, W)`` bool) with everything outside the pixel-edge box ``xyxy`` cleared (a copy)."""
    h, w = mask.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0]))), max(0, int(np.floor(box[1])))
    x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
    out = np.zeros((h, w), bool)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = np.asarray(mask[y0:y1, x0:x1], bool)
    return out


def object_mask(slice_boxes: Sequence[Any], plan: SlicePlan, *, what: str = "object") -> ObjectMask:
    """The 3D mask of one object from its slice boxes (each with ``slice_index``, ``box``, ``mask``).

    Raises:
        MedglipError: a slice box without a mask (ground with ``masks=True``), or a mask of the
            wrong size, naming ``what`` and the slice.
    """
    h, w = plan.display_shape
    points = []
    for sb in slice_boxes:
        if sb.mask is None:
            raise MedglipError(
                f"{what}: slice {sb.slice_index} has a box but no mask; ground the volume with "
                "masks=True (--masks) to make 3D masks"
            )
        if sb.mask.shape[:2] != (h, w):
            raise MedglipError(
                f"{what}: the mask of slice {sb.slice_index} is {sb.mask.shape[:2]}, the slices are {(h, w)}"
            )
        rows, cols = np.nonzero(box_pixels(sb.mask, sb.box))
        if not len(rows):
            continue
        pix = np.stack([cols, rows, np.zeros_like(rows), np.ones_like(rows)]).astype(np.float64)
        points.append(np.rint(plan.pixel_to_voxel(int(sb.slice_index)) @ pix).astype(np.int64))
    if not points:
        return ObjectMask((0, 0, 0), np.zeros((0, 0, 0), bool))
    idx = np.concatenate(points, axis=1)  # (3, n)
    lo, hi = idx.min(1), idx.max(1) + 1
    crop = np.zeros(tuple(int(v) for v in hi - lo), bool)
    crop[tuple(idx - lo[:, None])] = True
    i, j, k = (int(v) for v in lo)
    return ObjectMask((i, j, k), crop)


def check_voxel_budget(shape: Sequence[int], max_voxels: int | None, what: str) -> None:
    """Refuse a label map of ``shape`` above ``max_voxels`` (None: :data:`MAX_LABEL_VOXELS`)."""
    limit = MAX_LABEL_VOXELS if max_voxels is None else int(max_voxels)
    n = int(np.prod([int(s) for s in shape[:3]], dtype=np.int64))
    if n > limit:
        dims = " × ".join(str(int(s)) for s in shape[:3])
        raise MedglipError(
            f"{what}: {n:,} voxels ({dims}) is above the label-map budget of {limit:,} voxels "
            f"({limit * 2 / 2**20:,.0f} MiB as uint16); crop the volume or raise max_voxels"
        )


def paint_order(scores: Sequence[float]) -> list[int]:
    """Indices in painting order: the last painted wins, so ascending score, ties by descending index
    (the higher score wins; equal scores: the lower number)."""
    return sorted(range(len(scores)), key=lambda i: (float(scores[i]), -i))


def label_map(
    shape: Sequence[int],
    masks: Sequence[ObjectMask],
    scores: Sequence[float],
    *,
    max_voxels: int | None = None,
    what: str = "volume",
) -> np.ndarray:
    """One ``uint16`` ``(i, j, k)`` label map: label ``n`` = ``masks[n - 1]``; overlaps: higher score wins.

    Raises:
        MedglipError: more than :data:`MAX_LABELS` objects, or ``shape`` above the voxel budget.
    """
    if len(masks) != len(scores):
        raise ValueError(f"{len(masks)} masks but {len(scores)} scores")
    if len(masks) > MAX_LABELS:
        raise MedglipError(f"{what}: {len(masks)} objects, more than a uint16 label map holds ({MAX_LABELS})")
    check_voxel_budget(shape, max_voxels, what)
    out = np.zeros(tuple(int(s) for s in shape[:3]), np.uint16)
    for i in paint_order(scores):
        m = masks[i]
        if m.mask.size:
            out[m.slices][m.mask] = i + 1
    return out


def label_image(masks: Sequence[np.ndarray], scores: Sequence[float], size: tuple[int, int]) -> np.ndarray:
    """The 2D label image ``(H, W)`` (uint8 up to 255 labels, else uint16) of ``(H, W)`` bool masks,
    with the same overlap rule as :func:`label_map`."""
    if len(masks) > MAX_LABELS:
        raise MedglipError(f"{len(masks)} masks, more than a 16-bit label image holds ({MAX_LABELS})")
    out = np.zeros(size, np.uint8 if len(masks) <= 255 else np.uint16)
    for i in paint_order(scores):
        out[np.asarray(masks[i], bool)] = i + 1
    return out
