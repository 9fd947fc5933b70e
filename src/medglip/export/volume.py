"""A volume's grounding as files clinical tools open: a NIfTI label map on the input's grid with its
JSON sidecar, and for DICOM input a DICOM-SEG and a TID 1500 SR referencing the source series.

>>> vol = grounder.ground_volume("series/", ["brain tumor"], masks=True)        # doctest: +SKIP
>>> export_volume(vol).write("out/")   # labels.nii.gz, labels.json, seg.dcm, sr.dcm   doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import MedglipError
from ..infer.masks3d import ObjectMask, check_voxel_budget
from ..infer.volume import VolumeGroundingResult
from ..io.nifti_write import nifti_bytes
from ..ontology import Ontology, load_ontology
from .bundle import ExportBundle
from .describe import coding_notes, labelled, sidecar, volume_stats
from .dicom import check_sources, seg_and_sr
from .options import FILES, VOLUME_OUTPUTS, ExportOptions


def export_volume(
    result: VolumeGroundingResult,
    *,
    indices: Sequence[int] | None = None,
    options: ExportOptions = ExportOptions(),
    ontology: Ontology | None = None,
) -> ExportBundle:
    """The files of a volume grounding (in memory; :meth:`ExportBundle.write` writes them at once).

    Args:
        result: grounded with ``masks=True`` (every slice box carries its mask).
        indices: which of ``result.objects`` to export, in label order (default all): label ``n`` is
            ``result.objects[indices[n - 1]]``.
        options: outputs and limits (:class:`ExportOptions`).
        ontology: for the codes and hierarchies (default: the shipped one).

    Raises:
        MedglipError: objects without masks, a volume above the voxel budget, an output the input
            cannot give (``seg`` of a NIfTI), a DICOM series the outputs cannot be placed on
            (unevenly spaced slices for a NIfTI label map, no Frame of Reference for a SEG), each
            naming the input.
    """
    what = str(result.source)
    vol = result.volume
    meta = vol.meta if vol is not None else {}
    headers = tuple(vol.dicom_headers) if vol is not None else ()
    dicom = bool(headers) and meta.get("frame_axis") != "frames"
    outputs = options.wanted(VOLUME_OUTPUTS, dicom=dicom, what=what)
    idx = list(range(len(result.objects))) if indices is None else [int(i) for i in indices]
    check_voxel_budget(result.shape, options.max_voxels, what)
    if "nifti" in outputs and meta.get("spacing_uniform") is False:
        steps = meta.get("spacing_steps") or []
        raise MedglipError(
            f"{what}: the slices are not evenly spaced ({min(steps):g}–{max(steps):g} mm between "
            "them), so no NIfTI grid holds them exactly; ask for the DICOM-SEG (outputs seg, sr), "
            "which places every frame on its own slice"
            if steps
            else f"{what}: the slices are not evenly spaced; ask for the DICOM-SEG instead"
        )
    if dicom and ("seg" in outputs):
        check_sources(headers, what)
        _check_grid(headers, meta, result.shape, what)
    labels, masks = result.label_map(idx, max_voxels=options.max_voxels)
    onto = ontology or load_ontology()
    items = []
    for n, (i, m) in enumerate(zip(idx, masks, strict=True), start=1):
        obj = result.objects[i]
        stats = volume_stats(m, result.geometry)
        stats.update(
            {
                "object": i,
                "max_score": round(float(obj.max_score), 5),
                "slices": list(obj.slices),
                "world_box_mm": np.round(obj.world_box, 3).tolist(),
                "voxels_in_label_map": int(np.count_nonzero(labels[m.slices] == n)) if m.mask.size else 0,
            }
        )
        items.append(labelled(n, obj.phrase, obj.score, onto, stats))
    bundle = ExportBundle(notes=coding_notes(items))
    for it in items:
        if it.empty:
            bundle.notes.append(f"label {it.label} ({it.phrase}): its mask is empty; it has no DICOM segment")
        it.entry["segment"] = None
    if "nifti" in outputs:
        bundle.files[FILES["nifti"]] = nifti_bytes(
            labels, result.geometry, level=options.compress_level, description="medglip label map"
        )
    if "volume" in outputs:
        bundle.files[FILES["volume"]] = volume_nifti(result, level=min(options.compress_level, 1))
    if "seg" in outputs:
        dcm, numbers = seg_and_sr(
            headers,
            _frames(labels, masks, headers, meta, options, what),
            items,
            modality=result.modality,
            options=options,
            want_sr="sr" in outputs,
            what=what,
        )
        if not dcm:
            bundle.notes.append("no object has a mask voxel: no DICOM-SEG / SR written")
        bundle.files.update(dcm)
        for it in items:
            it.entry["segment"] = numbers.get(it.label)
    del labels
    bundle.labels = sidecar(
        "volume",
        items,
        source=what,
        modality=result.modality,
        shape=list(result.shape),
        geometry=result.geometry.to_json(),
        plane=result.plane,
        dtype="uint16",
        label_file=FILES["nifti"] if "nifti" in outputs else None,
    )
    bundle.add_json(FILES["json"])
    return bundle


def _check_grid(headers: Sequence[Any], meta: dict[str, Any], shape: Sequence[int], what: str) -> None:
    """The volume must be the source's grid: ``(columns, rows, slices)`` of its images."""
    h = headers[0]
    rows, cols = int(h.get("Rows", 0) or 0), int(h.get("Columns", 0) or 0)
    frames = len(headers) if len(headers) > 1 else int(h.get("NumberOfFrames", 1) or 1)
    if (cols, rows, frames) != tuple(int(s) for s in shape[:3]):
        raise MedglipError(
            f"{what}: the volume {tuple(shape[:3])} is not the DICOM source's grid "
            f"(columns, rows, frames) = {(cols, rows, frames)}; a DICOM-SEG cannot be placed on it"
        )


def _frames(
    labels: np.ndarray,
    masks: Sequence[ObjectMask],
    headers: Sequence[Any],
    meta: dict[str, Any],
    options: ExportOptions,
    what: str,
) -> Callable[[dict[int, int]], tuple[list[Any], np.ndarray]]:
    """``numbers (label → segment) → (sources, pixel array)`` of the SEG: ``(F, rows, cols)`` segment
    numbers when no two objects overlap, else ``(F, rows, cols, S)`` bool; frame ``f`` lies on
    ``sources[f]`` (a series: the slices from the first to the last that hold a mask voxel; a
    multi-frame file: all its frames, in the file's order)."""

    def make(numbers: dict[int, int]) -> tuple[list[Any], np.ndarray]:
        used = [(lab, m) for lab, m in enumerate(masks, start=1) if lab in numbers]
        if len(headers) > 1:
            k0, k1 = min(m.lo[2] for _, m in used), max(m.hi[2] for _, m in used)
            ks, sources = list(range(k0, k1)), list(headers[k0:k1])
        else:
            order = meta.get("frame_order") or list(range(labels.shape[2]))
            ks, sources = [int(k) for k in np.argsort(order)], list(headers)  # file frame f holds slice ks[f]
        rows, cols = labels.shape[1], labels.shape[0]
        if sum(m.voxels for _, m in used) == int(np.count_nonzero(labels)):  # no overlap: one label frame
            lut = np.zeros(len(masks) + 1, np.uint16)
            for lab, seg in numbers.items():
                lut[lab] = seg
            return sources, np.stack([lut[labels[:, :, k].T] for k in ks])
        check_voxel_budget((len(ks) * rows, cols, len(used)), options.max_voxels, f"{what} (overlapping segments)")
        out = np.zeros((len(ks), rows, cols, len(used)), bool)
        frame_of = {k: f for f, k in enumerate(ks)}
        for s, (_, m) in enumerate(used):
            for dk in range(m.mask.shape[2]):
                f = frame_of.get(m.lo[2] + dk)
                if f is not None:
                    out[f, m.lo[1] : m.hi[1], m.lo[0] : m.hi[0], s] = m.mask[:, :, dk].T
        return sources, out

    return make


def volume_nifti(result: VolumeGroundingResult, *, level: int = 1) -> bytes:
    """The input volume as NIfTI (``.nii.gz``) on its grid (float64 stored as float32), for viewers."""
    if result.volume is None:
        raise MedglipError(f"{result.source}: the result carries no volume to export")
    arr = result.volume.array
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    elif arr.dtype == bool:
        arr = arr.astype(np.uint8)
    return nifti_bytes(arr, result.geometry, label=False, level=level, description="medglip input volume")
