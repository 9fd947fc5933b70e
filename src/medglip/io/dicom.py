"""Single DICOM files (single- and multi-frame) via pydicom, with geometry and modality LUT.

What :func:`read_dicom_file` does:

- refuses the file before decoding pixels when ``Rows x Columns x frames x samples`` is too large;
- applies RescaleSlope/RescaleIntercept (top level or per frame), so CT comes out in HU; the result
  stays integer (int16/int32) when slope and intercept are integral, else float32;
- MONOCHROME1 is inverted to MONOCHROME2 (stored values ``v → min + max - v`` over the stored range,
  window centre adjusted accordingly); PALETTE COLOR is expanded to RGB; YBR is converted to RGB;
- dimensionality: cross-sectional modalities (CT, MR, PT, NM, RTDOSE, ...) with an
  ImageOrientationPatient are 3D ``(i, j, k)`` = ``(column, row, frame)`` on the LPS grid given by
  ImagePositionPatient / ImageOrientationPatient / PixelSpacing (per-frame functional groups for
  enhanced multi-frame files; frames sorted along the slice normal). Everything else (CR, DX, MG,
  US, XA, secondary capture, ...) single-frame is 2D ``(H, W[, 3])``; multi-frame non-volumetric
  files are stacked as ``(W, H, frames[, 3])`` with ``meta["frame_axis"] = "frames"``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from ..core.geometry import Geometry
from ..errors import MedglipError, ReadError
from ..modality import guess_modality
from ._base import ImageData, check_size, condense_error, geometry_2d
from .dicom_geometry import slice_geometry, spacing_2d
from .dicom_parse import parse_dicom
from .policy import ReadTimeout, working_dtype

log = logging.getLogger(__name__)

#: Modalities whose single slices are placed in 3D (cross-sectional imaging).
VOLUMETRIC_MODALITIES = {"CT", "MR", "PT", "NM", "RTDOSE", "ST", "OCT"}

META_TAGS = (
    "Modality",
    "BodyPartExamined",
    "PhotometricInterpretation",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "SOPClassUID",
    "SeriesDescription",
    "PatientPosition",
    "PatientOrientation",
    "ViewPosition",
    "ImageLaterality",
    "Laterality",
    "Manufacturer",
    "ImageType",
    "BitsStored",
    "PixelRepresentation",
    "SliceThickness",
    "SpacingBetweenSlices",
)


def to_json_value(value: Any) -> Any:
    """A JSON-serialisable copy of a pydicom element value."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return [to_json_value(v) for v in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def open_dicom(path: str | Path, *, headers_only: bool = False) -> Dataset:
    """Parse a DICOM file (:func:`medglip.io.dicom_parse.parse_dicom`: element lengths checked against
    the file size, top-level elements in order, a bounded element count); raises :class:`ReadError`.
    Large values (the pixel data) are deferred until used, so the header is checked before any pixels
    are read; ``headers_only`` stops before the pixel data."""
    try:
        return parse_dicom(path, headers_only=headers_only)
    except pydicom.errors.InvalidDicomError:
        try:  # DICOM without the 128-byte preamble
            ds = parse_dicom(path, headers_only=headers_only, force=True)
        except ReadTimeout:
            raise
        except ReadError as exc:  # the guards of parse_dicom stopped the forced parse: not DICOM at all
            raise ReadError(path, f"not a DICOM file ({exc.reason})") from None
        except MedglipError:
            raise
        except Exception as exc:
            raise ReadError(path, f"not a DICOM file ({condense_error(exc)})") from None
        if "SOPClassUID" not in ds and "Rows" not in ds:
            raise ReadError(path, "not a DICOM file (no DICM marker and no recognisable DICOM elements)") from None
        return ds
    except MedglipError:
        raise
    except Exception as exc:
        raise ReadError(path, f"cannot parse DICOM file, truncated or corrupt? ({condense_error(exc)})") from None


def _first(ds: Dataset, seq: str, sub: str) -> Dataset | None:
    """``ds.<seq>[0].<sub>[0]`` or None."""
    try:
        return getattr(getattr(ds, seq)[0], sub)[0]
    except (AttributeError, IndexError, TypeError):
        return None


def frame_attr(ds: Dataset, name: str, frame: int | None = None, group: str | None = None) -> Any:
    """Look ``name`` up at top level, then in the per-frame and shared functional groups."""
    if name in ds:
        return ds[name].value
    if group is None:
        return None
    if frame is not None:
        item = frame_item(ds, "PerFrameFunctionalGroupsSequence", frame, group)
        if item is not None and name in item:
            return item[name].value
    item = _first(ds, "SharedFunctionalGroupsSequence", group)
    if item is not None and name in item:
        return item[name].value
    return None


def frame_item(ds: Dataset, seq: str, index: int, sub: str) -> Dataset | None:
    try:
        return getattr(getattr(ds, seq)[index], sub)[0]
    except (AttributeError, IndexError, TypeError):
        return None


def _decode(ds: Dataset, path: str | Path) -> np.ndarray:
    """Decoded pixels ``(frames, rows, cols[, samples])``; colour converted to RGB."""
    try:
        arr = ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        hint = ""
        if ts is not None and getattr(ts, "is_compressed", False):
            hint = f" (compressed transfer syntax {ts.name}: install a decoder such as pylibjpeg)"
        raise ReadError(
            path, f"cannot decode DICOM pixel data{hint or ', file truncated or corrupt?'} ({condense_error(exc)})"
        ) from None
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pi == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        if arr.dtype == np.uint16 and int(ds.get("BitsAllocated", 8)) == 8:
            arr = (arr >> 8).astype(np.uint8)  # 16-bit palette entries for 8-bit pixels
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if pi == "PALETTE COLOR":
        samples = 3
    if nframes == 1:
        arr = arr[None]
    if samples == 1 and arr.ndim == 4:
        arr = arr[..., 0]
    arr = np.asarray(arr)
    expect = (nframes, int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if arr.shape != expect:  # e.g. NumberOfFrames "1.5": pydicom decodes 2 frames, the header says 1
        raise ReadError(
            path,
            f"decoded pixel data has shape {arr.shape}, the header declares {expect} "
            "(NumberOfFrames, Rows, Columns[, SamplesPerPixel])",
        )
    if arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _invert_monochrome1(arr: np.ndarray, ds: Dataset) -> tuple[np.ndarray, float]:
    """Invert stored values over the stored range; returns ``(array, min + max)``."""
    bits = int(ds.get("BitsStored", 8 * arr.dtype.itemsize))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        total = -1.0  # -2**(b-1) + 2**(b-1) - 1
    else:
        total = float(2**bits - 1)
    return (np.asarray(total, dtype=np.float64) - arr).astype(arr.dtype), total


def _rescale(arr: np.ndarray, slopes: list[float], intercepts: list[float]) -> np.ndarray:
    """Apply per-frame slope/intercept to ``(frames, ...)``; keep integers when possible."""
    if all(s == 1.0 for s in slopes) and all(b == 0.0 for b in intercepts):
        return arr
    integral = all(float(s).is_integer() and float(b).is_integer() for s, b in zip(slopes, intercepts, strict=True))
    if integral and np.issubdtype(arr.dtype, np.integer):
        dtypes = _integral_rescale_dtypes(arr, slopes, intercepts)
        if dtypes is not None:  # exact in integers: no float64 copy of the volume
            work_dt, final_dt = dtypes
            out = arr.astype(work_dt)
            for f, (s, b) in enumerate(zip(slopes, intercepts, strict=True)):
                out[f] *= int(s)
                out[f] += int(b)
            return out.astype(final_dt, copy=False)
    work = arr.astype(np.float64 if integral else np.float32)
    for f, (s, b) in enumerate(zip(slopes, intercepts, strict=True)):
        work[f] = work[f] * s + b
    if integral:
        lo, hi = float(work.min()), float(work.max())
        for dt in (np.int16, np.int32):
            if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max:
                return work.astype(dt)
        return work
    return work


def _integral_rescale_dtypes(arr: np.ndarray, slopes: list[float], intercepts: list[float]) -> Any:
    """``(work, result)`` integer dtypes of an integral rescale: the result int16 when every rescaled
    value fits it, else int32 (as a float computation would give); the work dtype also holds the stored
    values and the products. None when int32 cannot hold them (then the float path is taken)."""
    inter: list[int] = []
    final: list[int] = []
    for f, (s, b) in enumerate(zip(slopes, intercepts, strict=True)):
        if arr[f].size == 0:
            continue
        lo, hi = int(arr[f].min()), int(arr[f].max())
        inter += [lo, hi, lo * int(s), hi * int(s)]
        final += [lo * int(s) + int(b), hi * int(s) + int(b)]

    def fits(dt: Any, values: list[int]) -> bool:
        return not values or (np.iinfo(dt).min <= min(values) and max(values) <= np.iinfo(dt).max)

    result = np.int16 if fits(np.int16, final) else np.int32 if fits(np.int32, final) else None
    if result is None:
        return None
    work = result if fits(result, inter) else np.int32 if fits(np.int32, inter) else None
    return None if work is None else (work, result)


@contextmanager
def dicom_errors(path: str | Path) -> Iterator[None]:
    """Turn what malformed attribute values raise while they are used into a :class:`ReadError`.

    pydicom converts values lazily, so ``"abc"`` in an IS/DS element, a wrong value multiplicity or an
    unknown VR only fail (ValueError, TypeError, NotImplementedError, ...) when the reader touches them.
    """
    try:
        yield
    except MedglipError:
        raise
    except Exception as exc:
        raise ReadError(path, f"invalid DICOM attribute values ({condense_error(exc)})") from None


def read_dicom_file(path: str | Path, *, max_pixels: int | None = None) -> ImageData:
    """Read one DICOM file as 2D or 3D :class:`ImageData` (rules in the module docstring)."""
    path = Path(path)
    ds = open_dicom(path)
    with dicom_errors(path):
        check_dicom_size(ds, path, max_pixels)
        arr, meta = dicom_pixels(ds, path)
        modality_tag = str(ds.get("Modality", "") or "").upper()
        modality = guess_modality(modality_tag) if modality_tag else None
        img = _place(ds, arr, path, modality, meta)
        img.dicom_headers = (header_only(ds),)
    return img


#: PixelData, FloatPixelData, DoubleFloatPixelData
_PIXEL_TAGS = frozenset((0x7FE00010, 0x7FE00008, 0x7FE00009))


def header_only(ds: Dataset) -> Dataset:
    """A shallow copy of ``ds`` (with its ``file_meta``) without the pixel data: what DICOM-SEG and SR
    writers need to reference the image, at the cost of its header only. Elements are copied as read
    (raw values stay unconverted until a writer uses them)."""
    out = Dataset()
    for tag in ds.keys():
        if int(tag) not in _PIXEL_TAGS:
            out[tag] = ds.get_item(tag)
    if getattr(ds, "file_meta", None) is not None:
        out.file_meta = ds.file_meta
    return out


def check_dicom_size(ds: Dataset, path: str | Path, max_pixels: int | None, nfiles: int = 1) -> None:
    """Refuse SEG files, files without pixels, and too large images (from the header only)."""
    if str(ds.get("Modality", "") or "").upper() == "SEG":
        raise ReadError(path, "this is a DICOM-SEG segmentation: read it with medglip.io.read_dicom_seg")
    if "Rows" not in ds or "Columns" not in ds:
        raise ReadError(path, f"DICOM file has no image (SOP class {ds.get('SOPClassUID', '?')})")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    nframes = int(ds.get("NumberOfFrames", 1) or 1) * nfiles
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
        samples = 3
    check_size(
        path,
        (nframes, rows, cols, samples),
        spatial_ndim=3 if nframes > 1 else 2,
        max_pixels=max_pixels,
        itemsize=decoded_itemsize(ds),
    )


def decoded_itemsize(ds: Dataset) -> int:
    """Bytes per value of the array :func:`dicom_pixels` returns for ``ds`` (from the header only):
    the stored width, at least 4 bytes when a rescale may make it float32 / int32."""
    if "DoubleFloatPixelData" in ds:
        return working_dtype(np.float64).itemsize
    if "FloatPixelData" in ds:
        return 4
    bits = int(ds.get("BitsAllocated", 8) or 8)
    size = 1 if bits <= 8 else 2 if bits <= 16 else 4
    rescaled = any(
        t in ds
        for t in (
            "RescaleSlope",
            "RescaleIntercept",
            "PerFrameFunctionalGroupsSequence",
            "SharedFunctionalGroupsSequence",
        )
    )
    colour = (
        int(ds.get("SamplesPerPixel", 1) or 1) > 1
        or str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR"
    )
    return size if colour or not rescaled else max(size, 4)


def dicom_pixels(ds: Dataset, path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Decoded ``(frames, rows, cols[, 3])`` pixels after MONOCHROME1 inversion and rescale, + meta."""
    if not any(t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ReadError(path, f"DICOM file has no pixel data (SOP class {ds.get('SOPClassUID', '?')})")
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    arr = _decode(ds, path)
    meta: dict[str, Any] = {"format": "dicom", "dtype": str(arr.dtype)}
    for tag in META_TAGS:
        if tag in ds and ds[tag].value not in (None, ""):
            meta[tag] = to_json_value(ds[tag].value)
    if hasattr(ds, "file_meta") and "TransferSyntaxUID" in ds.file_meta:
        meta["TransferSyntaxUID"] = str(ds.file_meta.TransferSyntaxUID)
    if "SOPInstanceUID" in ds:
        meta["sop_instance_uids"] = [str(ds.SOPInstanceUID)]
    pi = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    colour = arr.ndim == 4
    if colour and pi.startswith("YBR"):
        meta["converted_from"] = pi  # pydicom converts YBR to RGB when decoding
    wc = frame_attr(ds, "WindowCenter", 0, "FrameVOILUTSequence")
    ww = frame_attr(ds, "WindowWidth", 0, "FrameVOILUTSequence")
    slopes, inters = [], []
    for f in range(nframes):
        s = frame_attr(ds, "RescaleSlope", f, "PixelValueTransformationSequence")
        b = frame_attr(ds, "RescaleIntercept", f, "PixelValueTransformationSequence")
        slopes.append(float(s) if s not in (None, "") else 1.0)
        inters.append(float(b) if b not in (None, "") else 0.0)
    if not all(math.isfinite(v) for v in slopes + inters):
        raise ReadError(path, "RescaleSlope / RescaleIntercept is not a finite number")
    if pi == "MONOCHROME1" and not colour:
        arr, total = _invert_monochrome1(arr, ds)
        meta["inverted_monochrome1"] = True
        if wc is not None:
            wcs = [float(v) for v in (wc if isinstance(wc, (list, pydicom.multival.MultiValue)) else [wc])]
            wc = [slopes[0] * total - c + 2 * inters[0] for c in wcs]
    if not colour:
        arr = _rescale(arr, slopes, inters)
    if (slopes[0], inters[0]) != (1.0, 0.0):
        meta["rescale_applied"] = {"slope": slopes[0], "intercept": inters[0]}
    if wc is not None and ww is not None:
        meta["WindowCenter"] = to_json_value(wc)
        meta["WindowWidth"] = to_json_value(ww)
    return arr, meta


def _place(ds: Dataset, arr: np.ndarray, path: Path, modality: str | None, meta: dict) -> ImageData:
    """Give ``(frames, rows, cols[, 3])`` pixels their 2D or 3D geometry."""
    nframes = arr.shape[0]
    modality_tag = str(ds.get("Modality", "") or "").upper()
    iop = frame_attr(ds, "ImageOrientationPatient", 0, "PlaneOrientationSequence")
    spacing = frame_attr(ds, "PixelSpacing", 0, "PixelMeasuresSequence")
    positions = []
    if nframes > 1 and "PerFrameFunctionalGroupsSequence" in ds:
        positions = [frame_attr(ds, "ImagePositionPatient", f, "PlanePositionSequence") for f in range(nframes)]
    elif "ImagePositionPatient" in ds and nframes == 1:
        positions = [ds.ImagePositionPatient]
    elif nframes > 1 and "ImagePositionPatient" in ds and "GridFrameOffsetVector" in ds:
        base = np.asarray([float(v) for v in ds.ImagePositionPatient])
        normal = np.cross([float(v) for v in iop[:3]], [float(v) for v in iop[3:6]]) if iop else np.zeros(3)
        positions = [list(base + float(o) * normal) for o in ds.GridFrameOffsetVector]
    volumetric = modality_tag in VOLUMETRIC_MODALITIES or "PerFrameFunctionalGroupsSequence" in ds
    if volumetric and iop is not None and len(positions) == nframes and all(p is not None for p in positions):
        step = frame_attr(ds, "SpacingBetweenSlices", 0, "PixelMeasuresSequence") or frame_attr(
            ds, "SliceThickness", 0, "PixelMeasuresSequence"
        )
        order, geom, info = slice_geometry(iop, positions, spacing, step, path)
        meta.update(info)
        if nframes > 1:
            meta["frame_order"] = [int(i) for i in order]  # k -> frame index in the file (0-based)
        arr = arr[order]
        vol = np.moveaxis(arr, (0, 1, 2), (2, 1, 0))  # (f, r, c[, s]) -> (c, r, f[, s])
        known = not info.get("pixel_spacing_missing", False)
        return ImageData(np.ascontiguousarray(vol), geom, modality, known, meta, str(path))
    ps, source = spacing_2d(ds, spacing)
    if source:
        meta["spacing_source"] = source
    if nframes == 1:
        return ImageData(np.ascontiguousarray(arr[0]), geometry_2d(ps), modality, ps is not None, meta, str(path))
    meta["frame_axis"] = "frames"
    vol = np.moveaxis(arr, (0, 1, 2), (2, 1, 0))
    row, col = ps if ps is not None else (1.0, 1.0)
    geom = Geometry.identity(3, (col, row, 1.0))
    return ImageData(np.ascontiguousarray(vol), geom, modality, ps is not None, meta, str(path))
