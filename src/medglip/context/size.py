"""A finding's size and position in millimetres, from ONE named source.

The rule (it lives here only): a finding's size comes from its **mask** when the grounding has one
that is not empty, else from its **box**; ``size_source`` says which. Every surface (report, VQA,
service, page, CLI) reads the size the findings carry, so no two of them measure the same object two ways.

- 2D: ``(width, height)`` of the mask's bounding pixels (pixel edges), else of the box; mm through
  the pixel spacing ``(row_mm, col_mm)``.
- Volumes: the LPS ``x / y / z`` extent of the mask's voxels, else of the voxels the linked slice
  boxes cover, edges included (voxel centres' extent + one voxel along each world axis).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..core.geometry import Geometry

SizeSource = Literal["mask", "box"]
Box = tuple[float, float, float, float]


def size_2d(
    box: Box, mask: np.ndarray | None, spacing: tuple[float, float] | None
) -> tuple[tuple[float, float], tuple[float, float] | None, SizeSource]:
    """``(size_px, size_mm or None, source)`` of a 2D finding: the mask's extent, else the box's."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    source: SizeSource = "box"
    if mask is not None and mask.any():
        rows, cols = np.nonzero(np.any(mask, axis=1))[0], np.nonzero(np.any(mask, axis=0))[0]
        w, h, source = float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1), "mask"
    size_px = (float(w), float(h))
    size_mm = None if spacing is None else (float(w) * spacing[1], float(h) * spacing[0])
    return size_px, size_mm, source


def voxel_steps_mm(geometry: Geometry) -> np.ndarray:
    """The LPS extent of one voxel along each world axis (``|direction| @ spacing``)."""
    return np.abs(geometry.direction_matrix) @ np.asarray(geometry.spacing, dtype=np.float64)


def extent_of_voxels(lo: np.ndarray, hi: np.ndarray, geometry: Geometry) -> tuple[float, float, float]:
    """LPS extent of the voxel-index box ``lo..hi`` (inclusive voxel centres), edges included."""
    corners = np.array(
        [[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1]) for c in (lo[2], hi[2])], dtype=np.float64
    )
    world = geometry.index_to_world(corners)
    ext = world.max(0) - world.min(0) + voxel_steps_mm(geometry)
    return float(ext[0]), float(ext[1]), float(ext[2])


def size_3d(
    world_box: np.ndarray, mask_lo: np.ndarray | None, mask_hi: np.ndarray | None, geometry: Geometry
) -> tuple[tuple[float, float, float], SizeSource]:
    """``(extent_mm, source)`` of a volume finding: its mask voxels' extent (``mask_lo`` / ``mask_hi``:
    first / last voxel index of the mask, None without a mask or for an empty one), else its box's
    (``world_box``: min / max LPS of the covered voxel centres)."""
    if mask_lo is not None and mask_hi is not None:
        return extent_of_voxels(np.asarray(mask_lo), np.asarray(mask_hi), geometry), "mask"
    wb = np.asarray(world_box, dtype=np.float64).reshape(2, 3)
    ext = (wb[1] - wb[0]) + voxel_steps_mm(geometry)
    return (float(ext[0]), float(ext[1]), float(ext[2])), "box"


def centre_mm_2d(box: Box, world: np.ndarray | None) -> tuple[float, float, float] | None:
    """LPS mm of a 2D box's centre through ``pixel_to_world`` (3 × 4, pixel-centre indices), else None."""
    if world is None:
        return None
    x0, y0, x1, y1 = box
    p = world @ np.array([(x0 + x1) / 2.0 - 0.5, (y0 + y1) / 2.0 - 0.5, 0.0, 1.0])
    return float(p[0]), float(p[1]), float(p[2])
