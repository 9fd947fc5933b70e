"""DICOM series in a folder: group by SeriesInstanceUID, sort along the slice normal, stack.

Slices are sorted by ImagePositionPatient projected on the normal ``row × column`` of
ImageOrientationPatient (file names and InstanceNumber are ignored when positions exist), so the
``k`` axis points along the normal and the spacing is the median distance between neighbouring
slices (non-uniform spacing is logged and recorded in ``meta["spacing_steps"]``). Without positions
slices are ordered by InstanceNumber and get unit spacing along ``k``. ``meta["sop_instance_uids"]``
and ``meta["files"]`` list the slices in ``k`` order (used to place DICOM-SEG frames), and
``ImageData.dicom_headers`` holds their headers (no pixel data) in the same order, for the DICOM-SEG
and SR that medglip writes about the series.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..core.geometry import Geometry
from ..errors import ReadError
from ..modality import guess_modality
from ._base import ImageData, check_file
from .dicom import check_dicom_size, dicom_errors, dicom_pixels, open_dicom, read_dicom_file
from .dicom_geometry import slice_geometry
from .policy import check_confined, check_deadline

log = logging.getLogger(__name__)


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM" or (path.suffix.lower() in (".dcm", ".dicom", ".ima") and len(head) > 8)


def list_dicom_series(folder: str | Path, *, recursive: bool = False) -> dict[str, list[tuple[Path, Any]]]:
    """SeriesInstanceUID → ``[(file, header dataset), ...]`` for the DICOM files in ``folder``.

    Files that are not DICOM (or unreadable) are skipped with a debug log; DICOMDIR is skipped.
    """
    folder = Path(folder)
    files = sorted(folder.rglob("*") if recursive else folder.iterdir())
    series: dict[str, list[tuple[Path, Any]]] = {}
    for f in files:
        if f.name.upper() == "DICOMDIR" or f.name.startswith("."):
            continue  # a DICOMDIR only references files; the series is read from the files themselves
        check_confined(f)  # a link out of the folder a service confines reads to is refused, not followed
        if not f.is_file() or not _is_dicom(f):
            continue
        try:
            ds = open_dicom(f, headers_only=True)
            with dicom_errors(f):
                uid = str(ds.get("SeriesInstanceUID", "") or "(no SeriesInstanceUID)")
        except ReadError as exc:
            log.debug("skipping %s: %s", f, exc.reason)
            continue
        series.setdefault(uid, []).append((f, ds))
    return series


def _describe(uid: str, items: list[tuple[Path, Any]]) -> str:
    ds = items[0][1]
    desc = str(ds.get("SeriesDescription", "") or "")
    return f"{uid} ({ds.get('Modality', '?')}, {len(items)} files{', ' + repr(desc) if desc else ''})"


def read_dicom_series(
    folder: str | Path, *, series_uid: str | None = None, max_pixels: int | None = None, recursive: bool = False
) -> ImageData:
    """Read one DICOM series from ``folder`` as a 3D ``(i, j, k[, 3])`` :class:`ImageData`.

    Args:
        series_uid: which series to read when the folder holds several (else :class:`ReadError`
            listing them).
        recursive: also look in sub-folders.

    Raises:
        ReadError: no DICOM files, several series and no ``series_uid``, inconsistent slices
            (size/orientation), duplicate positions, undecodable or too large data.
    """
    folder = check_file(folder)
    if not folder.is_dir():
        raise ReadError(folder, "not a folder")
    series = list_dicom_series(folder, recursive=recursive)
    if not series:
        raise ReadError(folder, "no DICOM files found in folder")
    with dicom_errors(folder):  # malformed values in the headers / slices
        if series_uid is not None:
            if series_uid not in series:
                raise ReadError(
                    folder,
                    f"series {series_uid} not found; the folder holds: "
                    + "; ".join(_describe(u, v) for u, v in series.items()),
                )
            items = series[series_uid]
        elif len(series) > 1:
            raise ReadError(
                folder,
                f"{len(series)} DICOM series in one folder, pass series_uid= one of: "
                + "; ".join(_describe(u, v) for u, v in series.items()),
            )
        else:
            items = next(iter(series.values()))
        if len(items) == 1:
            return read_dicom_file(items[0][0], max_pixels=max_pixels)
        return _stack(folder, items, max_pixels)


def _fill(folder: Path, paths: list[Path]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Decode the slices one by one straight into the ``(cols, rows, k[, s])`` volume (no list of
    slices and no stacked copy: one volume and one slice in memory)."""
    vol: np.ndarray | None = None
    metas: list[dict[str, Any]] = []
    for k, path in enumerate(paths):
        check_deadline(folder)
        arr, m = dicom_pixels(open_dicom(path), path)
        plane = np.swapaxes(arr[0], 0, 1)  # (rows, cols[, s]) -> (cols, rows[, s])
        if vol is None:
            vol = np.empty(plane.shape[:2] + (len(paths),) + plane.shape[2:], arr.dtype)
        elif plane.shape != vol.shape[:2] + vol.shape[3:]:
            shapes = sorted({arr[0].shape, np.swapaxes(vol[:, :, 0], 0, 1).shape})
            raise ReadError(folder, f"slices of one series decode to different shapes: {shapes} (e.g. {path.name})")
        dtype = np.result_type(vol.dtype, arr.dtype)
        if dtype != vol.dtype:  # e.g. one slice rescaled to float: widen what is there
            vol = vol.astype(dtype)
        vol[:, :, k] = plane
        metas.append(m)
    assert vol is not None
    return vol, metas


def _stack(folder: Path, items: list[tuple[Path, Any]], max_pixels: int | None) -> ImageData:
    first = items[0][1]
    check_dicom_size(first, folder, max_pixels, nfiles=len(items))
    shapes = {
        (int(ds.get("Rows", 0)), int(ds.get("Columns", 0)), int(ds.get("NumberOfFrames", 1) or 1)) for _, ds in items
    }
    if len(shapes) > 1:
        raise ReadError(folder, f"slices of one series differ in size/frames: {sorted(shapes)}")
    if next(iter(shapes))[2] != 1:
        raise ReadError(folder, "series of multi-frame files is not supported; read the files one by one")
    iops = [ds.get("ImageOrientationPatient") for _, ds in items]
    ipps = [ds.get("ImagePositionPatient") for _, ds in items]
    meta_extra: dict[str, Any] = {}
    if all(o is not None for o in iops) and all(p is not None for p in ipps):
        ref = np.asarray([float(v) for v in iops[0]])
        bad = [
            str(f)
            for (f, _), o in zip(items, iops, strict=True)
            if not np.allclose([float(v) for v in o], ref, atol=1e-3)
        ]
        if bad:
            raise ReadError(folder, f"slices have different ImageOrientationPatient (e.g. {bad[0]}); not one volume")
        order, geom, info = slice_geometry(
            iops[0],
            ipps,
            first.get("PixelSpacing"),
            first.get("SpacingBetweenSlices") or first.get("SliceThickness"),
            folder,
        )
        meta_extra.update(info)
        spacing_known = not info.get("pixel_spacing_missing", False)
    else:
        log.warning(
            "%s: slices lack ImagePositionPatient/ImageOrientationPatient; ordering by InstanceNumber "
            "with unit slice spacing",
            folder,
        )
        order = np.argsort([int(ds.get("InstanceNumber", 0) or 0) for _, ds in items], kind="stable")
        ps = first.get("PixelSpacing")
        try:
            row, col = float(ps[0]), float(ps[1])
            spacing_known = row > 0 and col > 0
        except (TypeError, ValueError, IndexError):
            spacing_known = False
        row, col = (row, col) if spacing_known else (1.0, 1.0)
        geom = Geometry.identity(3, (col, row, 1.0))
        meta_extra["positions_missing"] = True
    vol, metas = _fill(folder, [items[idx][0] for idx in order])
    meta = dict(metas[0])
    meta.update(meta_extra)
    meta["format"] = "dicom-series"
    meta["sop_instance_uids"] = [m.get("sop_instance_uids", [""])[0] for m in metas]
    meta["files"] = [str(items[i][0]) for i in order]
    rescales = {(m.get("rescale_applied") or {}).get("slope", 1.0) for m in metas}
    if len(rescales) > 1:
        meta["rescale_varies"] = True
    modality_tag = str(first.get("Modality", "") or "")
    modality = guess_modality(modality_tag) if modality_tag else None
    return ImageData(
        np.ascontiguousarray(vol), geom, modality, spacing_known, meta, str(folder), tuple(items[i][1] for i in order)
    )  # the headers (no pixel data), in k order
