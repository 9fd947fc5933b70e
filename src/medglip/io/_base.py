"""Shared pieces of the readers: :class:`ImageData`, size limits and error condensing.

Conventions (binding, see :mod:`medglip.case`): 3D arrays are ``(i, j, k[, C])`` in file index order,
2D arrays are ``(H, W[, C])``; geometry is ITK/LPS millimetres. For 2D images the two world axes follow
the array axes (``(y, x)``: down the rows, then along a row), so a plain picture has an identity
direction and zero origin.
"""

from __future__ import annotations

import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.geometry import Geometry
from ..errors import ReadError
from .policy import check_bytes, check_confined

log = logging.getLogger(__name__)

#: Refuse 3D images whose declared voxel count (x channels) exceeds this, before allocating.
MAX_VOXELS: int = 2**31
#: Refuse 2D images whose declared pixel count exceeds this (30000 x 30000), before allocating.
MAX_PIXELS_2D: int = 30000 * 30000


def set_read_limits(*, max_voxels: int | None = None, max_pixels_2d: int | None = None) -> None:
    """Change the default size limits (:data:`MAX_VOXELS`, :data:`MAX_PIXELS_2D`) process-wide."""
    global MAX_VOXELS, MAX_PIXELS_2D
    if max_voxels is not None:
        MAX_VOXELS = int(max_voxels)
    if max_pixels_2d is not None:
        MAX_PIXELS_2D = int(max_pixels_2d)


@dataclass
class ImageData:
    """An image array with its physical geometry.

    Attributes:
        array: 3D ``(i, j, k)`` / ``(i, j, k, C)`` in file index order, or 2D ``(H, W)`` / ``(H, W, C)``.
        geometry: spatial geometry (LPS mm); ``geometry.ndim`` is the number of spatial axes.
        modality: canonical modality code when the file says so (DICOM Modality), else None.
        spacing_known: False when the file carries no physical spacing (PNG/JPEG, ...).
        meta: JSON-serialisable extras (file format, original dtype, DICOM tags, ...).
        path: the file or folder read.
        dicom_headers: for DICOM input, the source datasets without their pixel data, one per slice
            in ``k`` order for a series (one for a single or multi-frame file): what a DICOM-SEG or
            SR written about this image references (Patient, Study, Series, Frame of Reference and
            SOP Instance UIDs). Not JSON; empty for other formats.
    """

    array: np.ndarray
    geometry: Geometry
    modality: str | None = None
    spacing_known: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    dicom_headers: tuple[Any, ...] = field(default=(), repr=False, compare=False)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[: self.geometry.ndim])

    @property
    def is_2d(self) -> bool:
        return self.geometry.ndim == 2


def check_size(
    path: str | Path,
    shape: tuple[int, ...],
    *,
    spatial_ndim: int,
    max_pixels: int | None = None,
    itemsize: int | None = None,
) -> None:
    """Raise :class:`ReadError` when a declared shape is larger than allowed (call before allocating).

    ``shape`` may include channel axes; they count towards the total. ``max_pixels`` overrides the
    module defaults :data:`MAX_VOXELS` (3D) / :data:`MAX_PIXELS_2D` (2D). ``itemsize``: bytes per value
    of the array the reader will return (after any conversion); given, the decoded size is also checked
    against the current :class:`~medglip.io.policy.ReadPolicy` (``max_bytes``, ``charge``).
    """
    limit = max_pixels if max_pixels is not None else (MAX_PIXELS_2D if spatial_ndim == 2 else MAX_VOXELS)
    if any(int(s) < 0 for s in shape):
        raise ReadError(path, f"header declares a negative dimension {tuple(shape)}")
    total = int(np.prod([int(s) for s in shape], dtype=object)) if shape else 0
    if total > limit:
        raise ReadError(
            path,
            f"image too large: header declares shape {tuple(int(s) for s in shape)} = {total:,} values, "
            f"above the limit of {limit:,} (pass max_pixels= to raise it)",
        )
    if total == 0:
        raise ReadError(path, f"header declares an empty image of shape {tuple(int(s) for s in shape)}")
    if itemsize is not None:
        check_bytes(path, shape, itemsize)


def check_geometry(path: str | Path, geometry: Geometry) -> Geometry:
    """Raise :class:`ReadError` for non-finite origin / direction values or a degenerate (singular)
    direction matrix (two array axes along one world direction), which nothing downstream can slice."""
    d = geometry.direction_matrix
    if not (np.all(np.isfinite(d)) and all(math.isfinite(o) for o in geometry.origin)):
        raise ReadError(
            path, f"header geometry holds non-finite values (origin {geometry.origin}, direction {geometry.direction})"
        )
    if abs(np.linalg.det(d)) < 1e-6:
        raise ReadError(
            path,
            f"degenerate direction matrix {np.round(d, 6).tolist()}: two image axes point along "
            "the same world direction",
        )
    return geometry


def check_file(path: str | Path) -> Path:
    """Raise :class:`ReadError` for a missing, non-regular or empty file, or one outside the read policy's
    ``root``; return it as a Path."""
    p = check_confined(path)
    if not p.exists():
        raise ReadError(p, "file not found")
    if p.is_file() and p.stat().st_size == 0:
        raise ReadError(p, "file is empty (0 bytes)")
    if not (p.is_file() or p.is_dir()):
        raise ReadError(p, "not a regular file")
    return p


_SITK_NOISE = re.compile(r"(/[^\s:]+\.(cxx|h|hxx|txx):\d+:?)|(itk::ERROR:?)|(sitk::ERROR:?)|(ITK ERROR:?)")


def condense_error(exc: BaseException, limit: int = 240) -> str:
    """A one-line, human-sized description of a library exception (SimpleITK's are very long)."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    # SimpleITK: keep the most specific line (the last "Exception ..."/"...: message" one).
    cleaned = []
    for ln in lines:
        ln = _SITK_NOISE.sub("", ln).strip(" :")
        if ln and not ln.lower().startswith(("exception thrown in", "in /", "description:")):
            cleaned.append(ln)
        elif ln.lower().startswith("description:"):
            cleaned.append(ln.split(":", 1)[1].strip())
    msg = cleaned[-1] if cleaned else (lines[-1] if lines else type(exc).__name__)
    msg = re.sub(r"\s+", " ", msg)
    if len(msg) > limit:
        msg = msg[: limit - 3] + "..."
    return f"{type(exc).__name__}: {msg}"


def geometry_2d(spacing: tuple[float, float] | None = None) -> Geometry:
    """Identity 2D geometry (world axes = array axes), unit spacing when ``spacing`` is None."""
    return Geometry.identity(2, tuple(float(s) for s in spacing) if spacing else None)


def to_2d(img: ImageData) -> ImageData:
    """Turn a 3D image with one singleton spatial axis into a 2D ``(H, W[, C])`` image.

    The two remaining index axes ``(a, b)`` (``a < b``) become ``(H, W) = (b, a)``, so a single
    DICOM/NIfTI slice ``(i, j, 1)`` becomes ``(rows, columns)`` as a viewer shows it. The 2D
    geometry keeps the in-plane spacing; the full 3D geometry is kept in ``meta["geometry_3d"]``.
    """
    if img.geometry.ndim == 2:
        return img
    shape = img.spatial_shape
    singles = [a for a, s in enumerate(shape) if s == 1]
    if not singles:
        raise ReadError(img.path, f"cannot read as 2D: 3D image of shape {shape} has no singleton axis")
    ax = singles[-1]
    arr = np.squeeze(img.array, axis=ax)
    keep = [a for a in range(3) if a != ax]
    arr = np.swapaxes(arr, 0, 1)
    sp = img.geometry.spacing
    meta = dict(img.meta, geometry_3d=img.geometry.to_json(), squeezed_axis=ax)
    return ImageData(
        np.ascontiguousarray(arr),
        geometry_2d((sp[keep[1]], sp[keep[0]])),
        img.modality,
        img.spacing_known,
        meta,
        img.path,
        img.dicom_headers,
    )


def to_3d(img: ImageData) -> ImageData:
    """Turn a 2D ``(H, W[, C])`` image into a 3D ``(W, H, 1[, C])`` one (inverse of :func:`to_2d`)."""
    if img.geometry.ndim == 3:
        return img
    arr = np.swapaxes(img.array, 0, 1)[:, :, None, ...]
    sp = img.geometry.spacing
    geom = Geometry.identity(3, (sp[1], sp[0], 1.0))
    return ImageData(
        np.ascontiguousarray(arr), geom, img.modality, img.spacing_known, dict(img.meta), img.path, img.dicom_headers
    )


def apply_as_2d(img: ImageData, as_2d: bool | None) -> ImageData:
    """Honour ``read_image(..., as_2d=...)``: None keeps the file's natural dimensionality."""
    if as_2d is None:
        return img
    return to_2d(img) if as_2d else to_3d(img)


def file_size(path: str | Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return -1
