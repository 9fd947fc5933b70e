"""NIfTI-1/2 (``.nii``, ``.nii.gz``) via nibabel, converted from nibabel's RAS to the ITK LPS convention.

nibabel's affine maps voxel indices to RAS+ world; LPS is the same with x and y negated, so the
LPS affine is ``diag(-1, -1, 1, 1) @ affine``. Spacing is the column norms of that affine (equal to
the header zooms for a well-formed file), direction its normalised columns. The array is returned in
nibabel's index order ``(i, j, k[, ...])`` with ``scl_slope``/``scl_inter`` applied by nibabel.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from ..core.geometry import Geometry
from ..errors import ReadError
from ._base import ImageData, check_geometry, check_size, condense_error

log = logging.getLogger(__name__)

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Deflate (gzip/zlib) cannot expand data by more than about 1032:1.
MAX_DEFLATE_RATIO = 1032


def affine_to_geometry(affine: np.ndarray) -> Geometry:
    """Geometry (LPS) of a nibabel RAS ``4x4`` voxel→world affine."""
    lps = RAS_TO_LPS @ np.asarray(affine, dtype=np.float64)
    m = lps[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(m)):
        raise ValueError(f"degenerate affine {affine.tolist()}")
    direction = m / spacing[None, :]
    return Geometry(tuple(float(s) for s in spacing), tuple(float(o) for o in lps[:3, 3]),
                    tuple(float(d) for d in direction.ravel()))


def read_nifti(path: str | Path, *, max_pixels: int | None = None) -> ImageData:
    """Read a NIfTI file; 2D NIfTI becomes ``(i, j, 1)``, 4D keeps the 4th axis as channels."""
    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises ImageFileError, gzip/zlib/EOF errors, ...
        raise ReadError(path, f"not a readable NIfTI file ({condense_error(exc)})") from None
    shape = tuple(int(s) for s in img.shape)
    check_size(path, shape, spatial_ndim=3, max_pixels=max_pixels)
    if len(shape) > 4 and any(s != 1 for s in shape[4:]):
        raise ReadError(path, f"NIfTI with {len(shape)} dimensions {shape} is not supported")
    hdr = img.header
    # the image's header is a copy with vox_offset reset: the file's offset is the data proxy's
    offset = int(getattr(img.dataobj, "offset", hdr.get_data_offset()))
    need = offset + int(np.prod(shape, dtype=np.int64)) * hdr.get_data_dtype().itemsize
    have = path.stat().st_size
    if not str(path).lower().endswith(".gz"):
        if have < need:
            raise ReadError(path, f"file truncated: header declares {need:,} bytes, file has {have:,}")
    elif have * MAX_DEFLATE_RATIO < need:  # refuse before nibabel allocates the declared size
        raise ReadError(path, f"file truncated or corrupt: {have:,} compressed bytes cannot hold the "
                              f"{need:,} bytes the header declares")
    try:
        arr = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile) as exc:
        raise ReadError(path, f"cannot read NIfTI pixel data, file truncated? ({condense_error(exc)})") from None
    arr = np.asarray(arr)
    if arr.ndim > 4:
        arr = arr.reshape(arr.shape[:4])
    while arr.ndim < 3:
        arr = arr[..., None]
    try:
        geom = affine_to_geometry(img.affine)
    except ValueError as exc:
        raise ReadError(path, f"invalid NIfTI geometry: {exc}") from None
    check_geometry(path, geom)
    slope, inter = hdr.get_slope_inter()
    meta = {
        "format": "nifti",
        "dtype": str(hdr.get_data_dtype()),
        "qform_code": int(hdr["qform_code"]) if "qform_code" in hdr else None,
        "sform_code": int(hdr["sform_code"]) if "sform_code" in hdr else None,
        "scl_slope": None if slope is None else float(slope),
        "scl_inter": None if inter is None else float(inter),
    }
    return ImageData(arr, geom, None, True, meta, str(path))
