"""Geometry helpers for DICOM: slice ordering along the normal, and 2D pixel spacing."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from ..core.geometry import Geometry
from ..errors import ReadError
from ._base import check_geometry

log = logging.getLogger(__name__)


def slice_geometry(
    iop: Any, positions: list[Any], pixel_spacing: Any, default_step: float | None, path: str | Path
) -> tuple[np.ndarray, Geometry, dict[str, Any]]:
    """Order slices along the normal and build the ``(column, row, slice)`` geometry.

    Args:
        iop: ImageOrientationPatient (row direction cosines, then column direction cosines).
        positions: ImagePositionPatient per slice (same order as the data).
        pixel_spacing: PixelSpacing ``(row spacing, column spacing)``.
        default_step: slice spacing to use when there is a single slice.

    Returns:
        ``(order, geometry, info)``: ``order`` sorts the slices by position along the normal;
        ``info`` holds ``spacing_uniform`` and ``spacing_steps`` when spacing varies.
    """
    row_dir = np.asarray([float(v) for v in iop[:3]])
    col_dir = np.asarray([float(v) for v in iop[3:6]])
    if len(row_dir) != 3 or len(col_dir) != 3:
        raise ReadError(path, f"ImageOrientationPatient needs 6 values, got {len(row_dir) + len(col_dir)}")
    normal = np.cross(row_dir, col_dir)
    pos = np.asarray([[float(v) for v in p] for p in positions], dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ReadError(path, "ImagePositionPatient needs 3 values")
    if not (np.all(np.isfinite(pos)) and np.all(np.isfinite(normal))):
        raise ReadError(path, "ImagePositionPatient / ImageOrientationPatient hold non-finite values")
    proj = pos @ normal
    order = np.argsort(proj, kind="stable")
    proj_sorted = proj[order]
    info: dict[str, Any] = {"spacing_uniform": True}
    if len(pos) > 1:
        steps = np.diff(proj_sorted)
        if np.any(steps < 1e-4):
            raise ReadError(
                path,
                f"{int(np.sum(steps < 1e-4)) + 1} slices share a position along the normal "
                "(several echoes/phases/acquisitions in one series?); pick one first",
            )
        step = float(np.median(steps))
        if np.ptp(steps) > max(0.01, 0.01 * step):
            info["spacing_uniform"] = False
            info["spacing_steps"] = [round(float(s), 4) for s in steps]
            log.warning(
                "%s: non-uniform slice spacing (%.3g..%.3g mm); using the median %.3g mm",
                path,
                steps.min(),
                steps.max(),
                step,
            )
    else:
        step = float(default_step) if default_step and 0 < float(default_step) < math.inf else 1.0
    try:
        ps = [float(v) for v in pixel_spacing] if pixel_spacing is not None else [1.0, 1.0]
    except (TypeError, ValueError):
        ps = [1.0, 1.0]
    if len(ps) != 2 or min(ps) <= 0 or not all(math.isfinite(v) for v in ps):
        ps = [1.0, 1.0]
        info["pixel_spacing_missing"] = True
    direction = np.stack([row_dir, col_dir, normal], axis=1)
    geom = Geometry(
        (ps[1], ps[0], step), tuple(float(v) for v in pos[order[0]]), tuple(float(v) for v in direction.ravel())
    )
    return order, check_geometry(path, geom), info


def spacing_2d(ds: Dataset, pixel_spacing: Any) -> tuple[tuple[float, float] | None, str | None]:
    """(row, column) spacing in mm of a 2D image and where it came from, or ``(None, None)``."""
    for name, value in (("PixelSpacing", pixel_spacing), ("ImagerPixelSpacing", ds.get("ImagerPixelSpacing"))):
        try:
            ps = [float(v) for v in value]
        except (TypeError, ValueError):
            continue
        if len(ps) == 2 and min(ps) > 0 and all(math.isfinite(v) for v in ps):
            return (ps[0], ps[1]), name
    try:
        region = ds.SequenceOfUltrasoundRegions[0]
        if int(region.PhysicalUnitsXDirection) == 3 and int(region.PhysicalUnitsYDirection) == 3:  # cm
            dx, dy = float(region.PhysicalDeltaX) * 10, float(region.PhysicalDeltaY) * 10
            if 0 < dx < math.inf and 0 < dy < math.inf:
                return (dy, dx), "SequenceOfUltrasoundRegions"
    except (AttributeError, IndexError, TypeError, ValueError):
        pass
    return None, None
