"""TIFF (``.tif``, ``.tiff``) via tifffile: 2D grey/colour, 16-bit, float, and 3D stacks.

The first series of the file is read. Axes are interpreted from tifffile's axes string:
``YX`` → 2D ``(H, W)``; ``YXS`` → ``(H, W, S)``; ``CYX``/``SYX`` with at most 4 channels →
``(H, W, C)``; ``ZYX`` (or ``I``/``Q``/``T`` as the stack axis) → 3D ``(i, j, k) = (X, Y, Z)``, with a
trailing samples axis kept as channels. Spacing comes from the resolution tags when the unit is
centimetre (or ImageJ metadata gives a length unit); otherwise unit spacing and
``spacing_known=False``. The z spacing of a stack comes from ImageJ's ``spacing`` when present.

Only the file given is read: the series kinds of tifffile that open other files of the folder (an OME-TIFF
whose XML names other files, Micro-Manager ``_MMStack`` and NDTiff sets) are read as this one file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from ..core.geometry import Geometry
from ..errors import ReadError
from ._base import ImageData, check_size, condense_error, geometry_2d
from .policy import check_confined, check_deadline, working_dtype

log = logging.getLogger(__name__)

_UNIT_MM = {"micron": 1e-3, "um": 1e-3, "µm": 1e-3, "\\u00B5m": 1e-3, "mm": 1.0, "cm": 10.0, "nm": 1e-6}


def _resolution_mm(page: tifffile.TiffPage | tifffile.TiffFrame | None, ij: dict | None) -> tuple[float, float] | None:
    """(row, column) pixel size in mm from resolution tags, or None when unknown/not physical."""
    if not isinstance(page, tifffile.TiffPage):  # a frame (or a missing page) carries no tags of its own
        return None
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    try:
        xr = tags["XResolution"].value
        yr = tags["YResolution"].value
        xres = xr[0] / xr[1] if isinstance(xr, tuple) else float(xr)
        yres = yr[0] / yr[1] if isinstance(yr, tuple) else float(yr)
        unit = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    except (ZeroDivisionError, TypeError, ValueError, IndexError, OverflowError):  # malformed tags: no spacing
        return None
    if xres <= 0 or yres <= 0:
        return None
    if unit == 3:  # centimetre
        return 10.0 / yres, 10.0 / xres
    if ij and str(ij.get("unit", "")).lower() in _UNIT_MM:  # ImageJ stores pixels per unit
        f = _UNIT_MM[str(ij["unit"]).lower()]
        return f / yres, f / xres
    return None  # inch (usually a meaningless 72 dpi default) or none


def _read_converted(series: tifffile.TiffPageSeries, shape: tuple[int, ...], dtype: np.dtype, path: Path) -> np.ndarray:
    """The series converted to ``dtype`` while it is decoded: page by page, and a single page tile by
    tile (strip by strip), so at most one page of a stack, or one tile, exists at the stored width."""
    pages = [p for p in series.pages if p is not None]
    if len(pages) != 1:
        out = np.empty(shape, dtype)
        flat = out.reshape((len(pages), -1))
        for i, page in enumerate(pages):
            check_deadline(path)
            flat[i] = page.asarray().reshape(-1)
        return out
    page = pages[0]
    keyframe = page.keyframe
    if keyframe is None:
        raise ReadError(path, "TIFF frame without the page that describes it")
    with page.parent.filehandle.lock:
        keyframe.init_decode()
    result = np.empty(keyframe.shaped, dtype)

    def put(decoded: tuple) -> None:  # as TiffPage.asarray copies decoded segments, converting on the way
        check_deadline(path)
        segment, (s, d, h, w, _), seg_shape = decoded
        region = result[s, d : d + seg_shape[0], h : h + seg_shape[1], w : w + seg_shape[2]]
        if segment is None:
            region[...] = keyframe.nodata
        else:
            region[...] = segment[: keyframe.imagedepth - d, : keyframe.imagelength - h, : keyframe.imagewidth - w]

    for _ in page.segments(func=put, sort=True, maxworkers=1, _fullsize=False):
        pass
    return result.reshape(shape)


def read_tiff(path: str | Path, *, max_pixels: int | None = None) -> ImageData:
    """Read a TIFF file as 2D or 3D :class:`ImageData` (see module docstring)."""
    path = check_confined(path)
    try:
        # multi-file series off: an OME-XML <UUID FileName="..."> would open any TIFF the server can read
        tif = tifffile.TiffFile(str(path), _multifile=False, is_mmstack=False, is_ndtiff=False)
    except Exception as exc:
        raise ReadError(path, f"not a readable TIFF file ({condense_error(exc)})") from None
    with tif:
        try:
            series = tif.series[0]
            axes, shape = series.axes, tuple(series.shape)
            page = series.pages[0] if series.pages else tif.pages[0]
            ij = tif.imagej_metadata
        except Exception as exc:
            raise ReadError(path, f"cannot parse TIFF structure ({condense_error(exc)})") from None
        depth_axes = [i for i, a in enumerate(axes) if a in "ZIQT"]
        spatial = 3 if depth_axes and shape[depth_axes[0]] > 1 else 2
        out_dtype = working_dtype(series.dtype)
        check_size(path, shape, spatial_ndim=spatial, max_pixels=max_pixels, itemsize=out_dtype.itemsize)
        try:
            arr = series.asarray() if out_dtype == series.dtype else _read_converted(series, shape, out_dtype, path)
        except ReadError:
            raise
        except Exception as exc:
            raise ReadError(
                path, f"cannot read TIFF pixel data, file truncated or corrupt? ({condense_error(exc)})"
            ) from None
        if arr.size != int(np.prod(shape, dtype=np.int64)):  # e.g. an unsupported BitsPerSample decodes to nothing
            raise ReadError(path, f"TIFF pixel data ({arr.size:,} values) does not match the declared shape {shape}")
        res = _resolution_mm(page, ij)
    # drop singleton axes other than Y/X
    keep = [i for i, a in enumerate(axes) if a in "YX" or shape[i] != 1]
    arr = arr.reshape([shape[i] for i in keep])
    axes = "".join(axes[i] for i in keep)
    for stack_axis in "IQT":
        axes = axes.replace(stack_axis, "Z")
    for ch in "CS":
        if ch in axes and axes.index(ch) < axes.index("Y") and arr.shape[axes.index(ch)] <= 4:
            arr = np.moveaxis(arr, axes.index(ch), -1)
            axes = axes.replace(ch, "") + ch
    axes = axes.replace("C", "S")
    meta: dict[str, Any] = {"format": "tiff", "dtype": str(series.dtype), "axes": series.axes}
    if arr.dtype != series.dtype:
        meta["converted_to"] = str(arr.dtype)
    spacing_known = res is not None
    if axes in ("YX", "YXS"):
        if arr.dtype.byteorder not in ("=", "|"):
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return ImageData(np.ascontiguousarray(arr), geometry_2d(res), None, spacing_known, meta, str(path))
    if axes in ("ZYX", "ZYXS"):
        arr = np.transpose(arr, (2, 1, 0, 3) if axes == "ZYXS" else (2, 1, 0))
        z = float(ij["spacing"]) if ij and "spacing" in ij and float(ij["spacing"]) > 0 else None
        if ij and z is not None and res is not None:  # (z is known only from ij)
            z *= _UNIT_MM.get(str(ij.get("unit", "")).lower(), 1.0)
        row, col = res if res is not None else (1.0, 1.0)
        geom = Geometry.identity(3, (col, row, z if z is not None else 1.0))
        meta["z_spacing_known"] = z is not None
        return ImageData(np.ascontiguousarray(arr), geom, None, spacing_known, meta, str(path))
    raise ReadError(path, f"unsupported TIFF layout: axes {series.axes!r} with shape {shape}")
