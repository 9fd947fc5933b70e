"""The entry points :func:`read_image` and :func:`read_label`: dispatch on extension or content."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import CaseError, ReadError
from ._base import ImageData, apply_as_2d, check_file

log = logging.getLogger(__name__)

_ITK_EXT = {".nrrd", ".nhdr", ".mha", ".mhd"}
_RASTER_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
_TIFF_EXT = {".tif", ".tiff"}
_DICOM_EXT = {".dcm", ".dicom", ".ima"}

_MAGIC = [  # DICM first: a DICOM preamble may itself hold a TIFF header (dual-personality files)
    (128, b"DICM", "dicom"),
    (0, b"\x89PNG\r\n\x1a\n", "raster"),
    (0, b"\xff\xd8\xff", "raster"),
    (0, b"BM", "raster"),
    (0, b"II*\x00", "tiff"),
    (0, b"MM\x00*", "tiff"),
    (0, b"II+\x00", "tiff"),
    (0, b"MM\x00+", "tiff"),
    (344, b"n+1\x00", "nifti"),
    (344, b"n+2\x00", "nifti"),
    (0, b"NRRD", "itk"),
]


def sniff_format(path: str | Path) -> str | None:
    """Guess a file's format from its extension, else from its first bytes; None when unknown.

    Returns one of ``"nifti"``, ``"itk"``, ``"raster"``, ``"tiff"``, ``"dicom"``, ``"dicom-series"``.
    """
    p = Path(path)
    if p.is_dir():
        return "dicom-series"
    name = p.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return "nifti"
    suffix = p.suffix.lower()
    if suffix in _ITK_EXT:
        return "itk"
    if suffix in _RASTER_EXT:
        return "raster"
    if suffix in _TIFF_EXT:
        return "tiff"
    if suffix in _DICOM_EXT:
        return "dicom"
    try:
        with open(p, "rb") as f:
            head = f.read(352)
    except OSError:
        return None
    for offset, magic, fmt in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if suffix == "" and _looks_like_raw_dicom(head):
        return "dicom"
    return None


def _looks_like_raw_dicom(head: bytes) -> bool:
    """DICOM without preamble (old ACR-NEMA style): starts with a group 0008 element."""
    return len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x00\x08") and head[2:4] != b"\x00\x00"


def read_image(
    path: str | Path, *, as_2d: bool | None = None, max_pixels: int | None = None, series_uid: str | None = None
) -> ImageData:
    """Read a medical image file or DICOM folder into :class:`ImageData`, keeping its geometry.

    Args:
        path: ``.nii``/``.nii.gz`` (nibabel), ``.nrrd``/``.nhdr``/``.mha``/``.mhd`` (SimpleITK),
            ``.dcm`` or extension-less DICOM (pydicom), a folder (DICOM series),
            ``.png``/``.jpg``/``.jpeg``/``.bmp`` (Pillow) or ``.tif``/``.tiff`` (tifffile).
        as_2d: None keeps the file's own dimensionality (pictures, radiographs and ultrasound are 2D;
            volumes and cross-sectional DICOM slices are 3D). True squeezes a 3D image with one
            singleton axis to 2D ``(H, W)`` (``(i, j, 1)`` → ``(j, i)``); False promotes 2D to
            ``(W, H, 1)``.
        max_pixels: refuse images declaring more values (pixels x channels) than this; default
            ``2**31`` for 3D and ``30000*30000`` for 2D (change with :func:`set_read_limits`),
            checked from the header before pixels are allocated.
        series_uid: for a folder holding several DICOM series, the SeriesInstanceUID to read.

    Raises:
        ReadError: missing/empty/truncated/corrupt/unsupported file or too large an image.
    """
    p = check_file(path)
    fmt = sniff_format(p)
    if fmt == "nifti":
        from .nifti import read_nifti

        img = read_nifti(p, max_pixels=max_pixels)
    elif fmt == "itk":
        from .itk import read_itk

        img = read_itk(p, max_pixels=max_pixels)
    elif fmt == "raster":
        from .raster import read_raster

        img = read_raster(p, max_pixels=max_pixels)
    elif fmt == "tiff":
        from .tiff import read_tiff

        img = read_tiff(p, max_pixels=max_pixels)
    elif fmt == "dicom":
        from .dicom import read_dicom_file

        img = read_dicom_file(p, max_pixels=max_pixels)
    elif fmt == "dicom-series":
        from .dicom_series import read_dicom_series

        img = read_dicom_series(p, series_uid=series_uid, max_pixels=max_pixels)
    else:
        raise ReadError(
            p,
            f"unsupported file type {''.join(p.suffixes) or '(no extension)'}: expected NIfTI, "
            "NRRD, MetaImage, DICOM (file or folder), PNG, JPEG, BMP or TIFF",
        )
    return apply_as_2d(img, as_2d)


def read_label(
    path: str | Path, reference: ImageData | None = None, *, as_2d: bool | None = None, max_pixels: int | None = None
) -> ImageData:
    """Read a label image: like :func:`read_image` but the array must be integer-valued.

    Float arrays whose values are all integral are cast to the smallest fitting integer type
    (uint8/int16/int32/int64); bool becomes uint8. Multi-channel labels are refused.

    Args:
        reference: the image the label belongs to; when given, the spatial shape and geometry must
            match (:meth:`Geometry.same_grid`). If ``as_2d`` is None the label is brought to the
            reference's dimensionality when that only means squeezing/adding a singleton axis.

    Raises:
        ReadError: unreadable file, or non-integral / non-finite / multi-channel values.
        CaseError: shape or geometry differs from ``reference`` (names both files).
    """
    if as_2d is None and reference is not None:
        as_2d = reference.geometry.ndim == 2
    lab = read_image(path, as_2d=as_2d, max_pixels=max_pixels)
    lab.array = integer_labels(lab.array, lab.path, lab.geometry.ndim)
    if reference is not None:
        check_same_grid(lab, reference)
    return lab


def integer_labels(arr: np.ndarray, path: str, spatial_ndim: int) -> np.ndarray:
    """Return ``arr`` as an integer array or raise :class:`ReadError` saying why it is not one."""
    if arr.ndim != spatial_ndim:
        raise ReadError(
            path, f"label image must have one channel, got shape {arr.shape} for {spatial_ndim} spatial axes"
        )
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer):
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise ReadError(path, f"label image has unsupported pixel type {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ReadError(path, "label image contains NaN or infinite values")
    if arr.size and not np.array_equal(arr, np.round(arr)):
        bad = arr[arr != np.round(arr)]
        raise ReadError(
            path,
            f"label image has non-integral values (e.g. {float(bad.flat[0])!r}; "
            f"{bad.size} of {arr.size} voxels): not a label map, or resampled with "
            "linear interpolation?",
        )
    lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
    for dt in (np.uint8, np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return arr.astype(dt)
    raise ReadError(path, f"label values out of integer range ({lo}..{hi})")


def check_same_grid(label: ImageData, reference: ImageData) -> None:
    """Raise :class:`CaseError` naming both files when ``label`` is not on ``reference``'s grid."""
    what = f"label {label.path} vs image {reference.path}"
    if label.spatial_shape != reference.spatial_shape:
        raise CaseError(what, f"shape {label.spatial_shape} != image shape {reference.spatial_shape}")
    g, r = label.geometry, reference.geometry
    if g.same_grid(r):
        return
    if not np.allclose(g.spacing, r.spacing, atol=1e-3, rtol=1e-4):
        reason = f"spacing {_fmt(g.spacing)} != image spacing {_fmt(r.spacing)}"
    elif not np.allclose(g.direction, r.direction, atol=1e-3):
        reason = f"direction {_fmt(g.direction)} != image direction {_fmt(r.direction)}"
    else:
        reason = f"origin {_fmt(g.origin)} != image origin {_fmt(r.origin)}"
    raise CaseError(what, reason)


def _fmt(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
