"""NIfTI-1/2 (``.nii``, ``.nii.gz``) via nibabel, converted from nibabel's RAS to the ITK LPS convention.

nibabel's affine maps voxel indices to RAS+ world; LPS is the same with x and y negated, so the
LPS affine is ``diag(-1, -1, 1, 1) @ affine``. Spacing is the column norms of that affine (equal to
the header zooms for a well-formed file), direction its normalised columns. The array is returned in
nibabel's index order ``(i, j, k[, ...])`` with ``scl_slope``/``scl_inter`` applied by nibabel.

Only single-file NIfTI is read (``n+1`` / ``n+2`` magic), from the file given alone: a ``.hdr`` / ``.img``
pair or an Analyze 7.5 header, whose pixels are in another file, is refused.
"""

from __future__ import annotations

import gzip
import logging
import struct
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import nibabel as nib
import numpy as np

from ..core.geometry import Geometry
from ..errors import ReadError
from ._base import ImageData, check_geometry, check_size, condense_error
from .policy import check_confined, check_deadline, current_policy, working_dtype

_gzip: ModuleType
_inflate_error: type[Exception]
try:  # ISA-L inflates a .nii.gz about twice as fast as zlib (what makes NIfTI as quick as NRRD)
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _inflate_error  # type: ignore[assignment]  # its stub: an instance
except ImportError:  # pragma: no cover - isal has wheels for the usual platforms
    _gzip, _inflate_error = gzip, zlib.error

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
    return Geometry(
        tuple(float(s) for s in spacing),
        tuple(float(o) for o in lps[:3, 3]),
        tuple(float(d) for d in direction.ravel()),
    )


def _natural_dtype(hdr: nib.nifti1.Nifti1Header) -> np.dtype:
    """The dtype nibabel returns for this header's data: the stored one, or a float one when the
    header asks for scaling (``scl_slope`` / ``scl_inter``)."""
    stored = hdr.get_data_dtype()
    slope, inter = hdr.get_slope_inter()
    if (slope is None or slope == 1.0) and (inter is None or inter == 0.0):
        return np.dtype(stored)
    return np.dtype(np.float64 if stored.itemsize >= 4 or stored.kind == "f" else np.float32)


#: Stored bytes converted per step of :func:`_read_in_slabs`.
SLAB_BYTES = 32 << 20


def _read_in_slabs(img: nib.Nifti1Image, shape: tuple[int, ...], dtype: np.dtype, path: Path) -> np.ndarray:
    """The image converted to ``dtype`` while it is read, one slab of the LAST axis at a time (the
    file's slowest axis, so a .nii.gz is inflated front to back once): only one stored slab is ever
    held at the stored width, and the read policy's deadline is checked between slabs."""
    out = np.empty(shape, dtype)
    per_index = int(np.prod(shape[:-1], dtype=np.int64)) * max(8, img.header.get_data_dtype().itemsize)
    step = max(1, SLAB_BYTES // max(1, per_index))
    for k0 in range(0, shape[-1], step):
        check_deadline(path)
        k1 = min(shape[-1], k0 + step)
        out[..., k0:k1] = img.dataobj[..., k0:k1]
    return out


#: bytes of the header :func:`_single_file_class` looks at (NIfTI-2's 540 and its 4 extension flag bytes)
_PEEK = 544


def _single_file_class(path: Path, head: bytes) -> type[nib.Nifti1Image]:
    """The nibabel class of a SINGLE-FILE NIfTI header (``n+1`` / ``n+2``). A ``ni1`` / ``ni2`` header or an
    Analyze 7.5 one keeps its pixels in another file (``.img``): refused, so nothing but ``path`` is read."""
    sizes = {struct.unpack(o + "i", head[:4])[0] for o in "<>"} if len(head) >= 348 else set()
    if 348 in sizes:
        klass, magic, single, pair = nib.Nifti1Image, head[344:348], b"n+1\x00", b"ni1\x00"
    elif 540 in sizes and len(head) >= 540:
        klass, magic, single, pair = nib.Nifti2Image, head[4:8], b"n+2\x00", b"ni2\x00"
    else:
        raise ReadError(path, "not a readable NIfTI file (no NIfTI-1 / NIfTI-2 header)")
    if magic == pair:
        raise ReadError(
            path,
            "a NIfTI header whose pixels are in a separate .img file (a .hdr/.img pair): the "
            "other file is not read; convert the pair to a single .nii / .nii.gz",
        )
    if magic != single:
        raise ReadError(
            path,
            "not a readable NIfTI file: no single-file NIfTI magic (an Analyze 7.5 header, whose "
            "pixels are in a separate .img file, is not read)",
        )
    return klass


def _load(path: Path) -> tuple[Any, Any]:
    """``(nibabel image, file to close or None)`` of the single-file NIfTI ``path``, built from ``path``
    alone (never ``nib.load``, which picks a class by file name and reads the ``.img`` of a ``.hdr``); a
    ``.nii.gz`` is inflated by ISA-L (``isal``) when it is installed."""
    gz = path.name.lower().endswith(".gz")
    f = (_gzip.open if gz else open)(path, "rb")
    try:
        klass = _single_file_class(path, f.read(_PEEK))
        if gz and _gzip is not gzip:
            f.seek(0)
            holder = nib.FileHolder(filename=str(path), fileobj=f)
            return klass.from_file_map({"image": holder, "header": holder}), f
    except BaseException:
        f.close()
        raise
    f.close()
    holder = nib.FileHolder(filename=str(path))
    return klass.from_file_map({"image": holder, "header": holder}), None


def read_nifti(path: str | Path, *, max_pixels: int | None = None) -> ImageData:
    """Read a NIfTI file; 2D NIfTI becomes ``(i, j, 1)``, 4D keeps the 4th axis as channels."""
    path = check_confined(path)
    try:
        img, opened = _load(path)
    except ReadError:
        raise
    except EOFError as exc:  # the compressed stream ends inside the header
        raise ReadError(path, f"not a readable NIfTI file, file truncated? ({condense_error(exc)})") from None
    except Exception as exc:  # nibabel raises ImageFileError, gzip/zlib/EOF errors, ...
        raise ReadError(path, f"not a readable NIfTI file ({condense_error(exc)})") from None
    try:
        return _read_loaded(path, img, max_pixels)
    finally:
        if opened is not None:
            opened.close()


def _read_loaded(path: Path, img: Any, max_pixels: int | None) -> ImageData:
    shape = tuple(int(s) for s in img.shape)
    hdr = img.header
    natural = _natural_dtype(hdr)
    out_dtype = working_dtype(natural)
    check_size(path, shape, spatial_ndim=3, max_pixels=max_pixels, itemsize=out_dtype.itemsize)
    if len(shape) > 4 and any(s != 1 for s in shape[4:]):
        raise ReadError(path, f"NIfTI with {len(shape)} dimensions {shape} is not supported")
    # the image's header is a copy with vox_offset reset: the file's offset is the data proxy's
    offset = int(getattr(img.dataobj, "offset", hdr.get_data_offset()))
    need = offset + int(np.prod(shape, dtype=np.int64)) * hdr.get_data_dtype().itemsize
    have = path.stat().st_size
    if not str(path).lower().endswith(".gz"):
        if have < need:
            raise ReadError(path, f"file truncated: header declares {need:,} bytes, file has {have:,}")
    elif have * MAX_DEFLATE_RATIO < need:  # refuse before nibabel allocates the declared size
        raise ReadError(
            path,
            f"file truncated or corrupt: {have:,} compressed bytes cannot hold the {need:,} bytes the header declares",
        )
    try:
        big = int(np.prod(shape, dtype=np.int64)) * natural.itemsize > 2 * SLAB_BYTES
        if len(shape) in (3, 4) and (out_dtype != natural or (big and current_policy().interruptible)):
            arr = _read_in_slabs(img, shape, out_dtype, path)
        else:
            arr = np.asarray(np.asanyarray(img.dataobj))
            if arr.dtype != out_dtype and arr.dtype.kind == "f" and out_dtype.kind == "f":
                arr = arr.astype(out_dtype)
    except (OSError, EOFError, ValueError, zlib.error, _inflate_error, gzip.BadGzipFile) as exc:
        raise ReadError(path, f"cannot read NIfTI pixel data, file truncated? ({condense_error(exc)})") from None
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
    if arr.dtype != natural:
        meta["converted_to"] = str(arr.dtype)
    return ImageData(arr, geom, None, True, meta, str(path))
