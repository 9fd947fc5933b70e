"""NRRD / MetaImage (and any other SimpleITK-readable) files, geometry kept exactly."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..case import Geometry
from ..errors import ReadError
from ._base import ImageData, check_size, condense_error

log = logging.getLogger(__name__)


def sitk_to_imagedata(img: sitk.Image, path: str | Path, fmt: str) -> ImageData:
    """Convert a SimpleITK image to :class:`ImageData` (3D → ``(i, j, k[, C])``; 2D → ``(H, W[, C])``)."""
    dim = img.GetDimension()
    arr = sitk.GetArrayFromImage(img)  # (k, j, i[, C]) / (j, i[, C])
    ncomp = img.GetNumberOfComponentsPerPixel()
    spacing = tuple(float(s) for s in img.GetSpacing())
    origin = tuple(float(o) for o in img.GetOrigin())
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)
    if dim == 3:
        arr = np.transpose(arr, (2, 1, 0, 3) if ncomp > 1 else (2, 1, 0))
        geom = Geometry(spacing, origin, tuple(float(d) for d in direction.ravel()))
    elif dim == 2:
        # array is already (rows, cols) = (y, x); world axes follow the array axes: swap x/y.
        perm = [1, 0]
        geom = Geometry((spacing[1], spacing[0]), (origin[1], origin[0]),
                        tuple(float(d) for d in direction[np.ix_(perm, perm)].ravel()))
    elif dim == 4:
        # (x, y, z, t): keep 3D geometry, the 4th axis becomes channels.
        if ncomp > 1:
            raise ReadError(path, "4D images with vector pixels are not supported")
        arr = np.transpose(arr, (3, 2, 1, 0))
        geom = Geometry(spacing[:3], origin[:3], tuple(float(d) for d in direction[:3, :3].ravel()))
    else:
        raise ReadError(path, f"unsupported image dimension {dim}")
    meta = {
        "format": fmt,
        "dtype": str(arr.dtype),
        "components": ncomp,
    }
    return ImageData(np.ascontiguousarray(arr), geom, None, True, meta, str(path))


def read_itk(path: str | Path, *, fmt: str | None = None, max_pixels: int | None = None) -> ImageData:
    """Read a file SimpleITK understands (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``, ...).

    The header is read first and the declared size checked before pixels are allocated.
    """
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ReadError(path, f"cannot read {fmt} header ({condense_error(exc)})") from None
    size = tuple(reader.GetSize())
    ncomp = reader.GetNumberOfComponents()
    check_size(path, size + ((ncomp,) if ncomp > 1 else ()), spatial_ndim=min(len(size), 3), max_pixels=max_pixels)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise ReadError(path, f"cannot read {fmt} pixel data, file truncated or corrupt? ({condense_error(exc)})") from None
    out = sitk_to_imagedata(img, path, fmt)
    keys = [k for k in reader.GetMetaDataKeys() if k.lower() in ("modality", "dicom_0008_0060")]
    if keys:
        out.meta["Modality"] = reader.GetMetaData(keys[0]).strip()
    return out
