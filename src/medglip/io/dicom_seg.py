"""DICOM Segmentation objects (DICOM-SEG) → integer label maps on a voxel grid.

:func:`read_dicom_seg` **always returns a list of** ``(array, names)`` **pairs** (a
:class:`SegLabelMaps`, whose ``.geometry`` is the grid's :class:`~medglip.case.Geometry`): value =
SegmentNumber, ``names[value]`` = SegmentLabel, or the segmented property type's CodeMeaning when
SegmentLabel is missing. Non-overlapping segments share one map; a segment overlapping those already
placed goes into the first map where it does not overlap (a new map when none), so the list has more
than one entry only when segments overlap.

Frames are parsed with pydicom (BINARY, FRACTIONAL thresholded at half the maximum, and LABELMAP
segmentation types). The grid is the reference image's when ``reference`` is given (frames placed
by ReferencedSOPInstanceUID when the reference lists its ``sop_instance_uids``, else by
ImagePositionPatient), otherwise it is built from the SEG's own per-frame positions sorted along
the slice normal (slices with no frame stay empty). Arrays follow the ``(i, j, k)`` convention.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..case import LabelMap
from ..core.geometry import Geometry
from ..errors import CaseError, ReadError
from ._base import ImageData, check_file, check_size
from .dicom import frame_attr, frame_item, open_dicom, to_json_value

log = logging.getLogger(__name__)

SEG_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}


class SegLabelMaps(list):
    """A list of ``(label array, {segment number: name})`` pairs plus the grid's ``geometry``.

    Iterate it as ``for array, names in read_dicom_seg(...)``; ``as_label_maps()`` gives
    :class:`~medglip.case.LabelMap` objects.
    """

    def __init__(self, pairs: list[tuple[np.ndarray, dict[int, str]]], geometry: Geometry) -> None:
        super().__init__(pairs)
        self.geometry = geometry

    def as_label_maps(self) -> list[LabelMap]:
        return [LabelMap(array, dict(names)) for array, names in self]


def segment_names(ds: Any) -> dict[int, str]:
    """SegmentNumber → SegmentLabel (or the property type's CodeMeaning, or ``"segment N"``)."""
    names: dict[int, str] = {}
    for item in ds.get("SegmentSequence", []):
        num = int(item.SegmentNumber)
        label = str(item.get("SegmentLabel", "") or "").strip()
        if not label:
            try:
                label = str(item.SegmentedPropertyTypeCodeSequence[0].CodeMeaning).strip()
            except (AttributeError, IndexError):
                label = ""
        names[num] = label or f"segment {num}"
    return names


def read_dicom_seg(
    path: str | Path, reference: ImageData | None = None, *, max_pixels: int | None = None
) -> SegLabelMaps:
    """Read a DICOM-SEG file into label maps (see the module docstring for the rules).

    Args:
        reference: the segmented image (typically from :func:`read_dicom_series`); the label maps are
            then on its grid and have its spatial shape.

    Returns:
        a list of ``(array, names)`` pairs (one unless segments overlap) with ``.geometry``;
        arrays are ``(i, j, k)`` uint8 (uint16 beyond 255 segments) on that geometry's grid.

    Raises:
        ReadError: not a SEG, unreadable/truncated, or frames without usable positions.
        CaseError: frames that do not fall on the reference grid (names both files).
    """
    path = check_file(path)
    ds = open_dicom(path)
    if str(ds.get("SOPClassUID", "")) not in SEG_SOP_CLASSES and str(ds.get("Modality", "")).upper() != "SEG":
        raise ReadError(path, f"not a DICOM-SEG file (Modality {ds.get('Modality', '?')})")
    nframes = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    check_size(path, (nframes, rows, cols), spatial_ndim=3, max_pixels=max_pixels)
    try:
        pixels = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise ReadError(
            path, f"cannot decode SEG pixel data, truncated or corrupt? ({type(exc).__name__}: {exc})"
        ) from None
    pixels = pixels.reshape(nframes, rows, cols)
    seg_type = str(ds.get("SegmentationType", "BINARY")).upper()
    if seg_type == "FRACTIONAL":
        pixels = pixels > float(ds.get("MaximumFractionalValue", 255)) / 2
    names = segment_names(ds)
    frame_seg: list[int | None] = []
    for f in range(nframes):
        item = frame_item(ds, "PerFrameFunctionalGroupsSequence", f, "SegmentIdentificationSequence")
        if item is None:
            item = frame_item(ds, "SharedFunctionalGroupsSequence", 0, "SegmentIdentificationSequence")
        frame_seg.append(int(item.ReferencedSegmentNumber) if item is not None else None)
    if seg_type != "LABELMAP" and any(s is None for s in frame_seg):
        raise ReadError(path, "SEG frames lack SegmentIdentificationSequence")
    geom, kidx = _frame_slices(ds, path, reference, nframes, rows, cols)
    shape = (cols, rows, int(kidx.max()) + 1) if reference is None else reference.spatial_shape
    maps = _paint(pixels, frame_seg, kidx, shape, names, seg_type)
    log.debug("%s: %d segments in %d label map(s)", path, len(names), len(maps))
    return SegLabelMaps([(lm.array, lm.names) for lm in maps], geom)


def _frame_slices(
    ds: Any, path: Path, reference: ImageData | None, nframes: int, rows: int, cols: int
) -> tuple[Geometry, np.ndarray]:
    """Geometry of the output grid and the slice index ``k`` of every frame."""
    iop = frame_attr(ds, "ImageOrientationPatient", 0, "PlaneOrientationSequence")
    ipps = [frame_attr(ds, "ImagePositionPatient", f, "PlanePositionSequence") for f in range(nframes)]
    if reference is not None:
        return reference.geometry, _on_reference(ds, path, reference, nframes, rows, cols, ipps)
    if iop is None or any(p is None for p in ipps):
        raise ReadError(
            path,
            "SEG frames have no ImagePositionPatient/ImageOrientationPatient; "
            "pass reference= (the segmented image) to place them",
        )
    row_dir = np.asarray([float(v) for v in iop[:3]])
    col_dir = np.asarray([float(v) for v in iop[3:6]])
    normal = np.cross(row_dir, col_dir)
    pos = np.asarray([[float(v) for v in p] for p in ipps])
    proj = pos @ normal
    uniq = np.unique(np.round(proj, 3))
    spacing = frame_attr(ds, "SpacingBetweenSlices", 0, "PixelMeasuresSequence")
    if spacing is not None and float(spacing) > 0:
        step = float(spacing)
    elif len(uniq) > 1:
        step = float(np.min(np.diff(uniq)))
    else:
        thick = frame_attr(ds, "SliceThickness", 0, "PixelMeasuresSequence")
        step = float(thick) if thick is not None and float(thick) > 0 else 1.0
    kf = (proj - proj.min()) / step
    kidx = np.round(kf).astype(int)
    if np.max(np.abs(kf - kidx), initial=0) > 0.05:
        raise ReadError(path, f"SEG frame positions are not on a regular grid with slice spacing {step:g} mm")
    origin = pos[int(np.argmin(proj))]
    inplane = (pos - origin) - np.outer(proj - proj.min(), normal)
    if np.max(np.abs(inplane), initial=0) > 1e-2:
        raise ReadError(path, "SEG frames are shifted in-plane relative to each other; pass reference=")
    ps = frame_attr(ds, "PixelSpacing", 0, "PixelMeasuresSequence")
    ps = [float(v) for v in ps] if ps is not None else [1.0, 1.0]
    direction = np.stack([row_dir, col_dir, normal], axis=1)
    geom = Geometry((ps[1], ps[0], step), tuple(float(v) for v in origin), tuple(float(v) for v in direction.ravel()))
    return geom, kidx


def _on_reference(
    ds: Any, path: Path, reference: ImageData, nframes: int, rows: int, cols: int, ipps: list[Any]
) -> np.ndarray:
    what = f"SEG {path} vs image {reference.path}"
    shape = reference.spatial_shape
    if reference.geometry.ndim != 3:
        raise CaseError(what, "a 2D reference is not supported for DICOM-SEG; read the image as 3D (as_2d=False)")
    if (shape[0], shape[1]) != (cols, rows):
        raise CaseError(
            what, f"SEG frames are {cols}x{rows} (columns x rows) but the image slices are {shape[0]}x{shape[1]}"
        )
    uids = reference.meta.get("sop_instance_uids") or []
    by_uid = {u: k for k, u in enumerate(uids) if u}
    inv = np.linalg.inv(reference.geometry.affine)
    kidx = np.empty(nframes, dtype=int)
    for f in range(nframes):
        k = None
        src = frame_item(ds, "PerFrameFunctionalGroupsSequence", f, "DerivationImageSequence")
        try:
            uid = str(src.SourceImageSequence[0].ReferencedSOPInstanceUID) if src is not None else None
        except (AttributeError, IndexError):
            uid = None
        if uid in by_uid:
            k = by_uid[uid]
        elif ipps[f] is not None:
            idx = inv[:3, :3] @ np.asarray([float(v) for v in ipps[f]]) + inv[:3, 3]
            if np.max(np.abs(idx - np.round(idx))) > 0.1 or abs(idx[0]) > 0.1 or abs(idx[1]) > 0.1:
                raise CaseError(
                    what,
                    f"frame {f + 1} at {to_json_value(list(ipps[f]))} is not on the image grid "
                    f"(voxel index {np.round(idx, 2).tolist()})",
                )
            k = int(round(idx[2]))
        if k is None or not 0 <= k < shape[2]:
            raise CaseError(
                what, f"frame {f + 1} cannot be placed: source image {uid} not in the image and no usable position"
            )
        kidx[f] = k
    return kidx


def _paint(
    pixels: np.ndarray,
    frame_seg: list[int | None],
    kidx: np.ndarray,
    shape: tuple[int, ...],
    names: dict[int, str],
    seg_type: str,
) -> list[LabelMap]:
    """Paint frames into as few non-overlapping label maps as possible."""
    numbers = sorted(set(names) | {s for s in frame_seg if s is not None})
    dtype = np.uint8 if (max(numbers, default=0) <= 255 and seg_type != "LABELMAP") else np.uint16
    if seg_type == "LABELMAP":
        arr = np.zeros(shape, dtype=np.uint16)
        for f, k in enumerate(kidx):
            arr[:, :, k] = pixels[f].T
        dt = np.uint8 if arr.max(initial=0) <= 255 else np.uint16
        return [LabelMap(arr.astype(dt), {n: names.get(n, f"segment {n}") for n in numbers})]
    layers: list[LabelMap] = []
    for num in numbers:
        frames = [f for f, s in enumerate(frame_seg) if s == num]
        target = None
        for lm in layers:
            if all(not np.any(lm.array[:, :, kidx[f]][pixels[f].T.astype(bool)]) for f in frames):
                target = lm
                break
        if target is None:
            target = LabelMap(np.zeros(shape, dtype=dtype), {})
            layers.append(target)
        for f in frames:
            sl = target.array[:, :, kidx[f]]
            sl[pixels[f].T.astype(bool)] = num
        target.names[num] = names.get(num, f"segment {num}")
    return layers or [LabelMap(np.zeros(shape, dtype=dtype), {})]
