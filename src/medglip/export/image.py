"""A 2D image's grounding as files: the masks as one PNG label image with the JSON sidecar, and a
DICOM-SEG on the source image when it was a DICOM file.

Labels are numbered over the result's boxes in phrase order, best first within a phrase (the order
of ``GroundingResult.groundings``); each mask is clipped to its box, and where masks overlap the
higher score wins in the label image (the SEG keeps every mask whole, one segment each).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import MedglipError
from ..infer.masks3d import box_pixels, label_image
from ..infer.results import GroundingResult
from ..io.raster import png_bytes
from ..ontology import Ontology, load_ontology
from .bundle import ExportBundle
from .describe import coding_notes, image_stats, labelled, sidecar
from .dicom import check_sources, seg_and_sr
from .options import FILES, IMAGE_OUTPUTS, ExportOptions


def image_objects(result: GroundingResult) -> list[tuple[int, int]]:
    """``(phrase index, box index)`` of every box of the result, in label order."""
    return [(p, i) for p, g in enumerate(result.groundings) for i in range(len(g))]


def export_image(
    result: GroundingResult,
    *,
    indices: Sequence[int] | None = None,
    options: ExportOptions = ExportOptions(),
    ontology: Ontology | None = None,
) -> ExportBundle:
    """The files of a 2D grounding (in memory; :meth:`ExportBundle.write` writes them at once).

    Args:
        result: grounded with ``masks=True``.
        indices: which boxes to export (indices into :func:`image_objects`), in label order; default all.

    Raises:
        MedglipError: boxes without masks, an output the input cannot give, a DICOM source a SEG
            cannot reference, naming the input.
    """
    what = str(result.source)
    headers = tuple(result.dicom_headers)
    outputs = options.wanted(IMAGE_OUTPUTS, dicom=bool(headers), what=what)
    objs = image_objects(result)
    idx = list(range(len(objs))) if indices is None else [int(i) for i in indices]
    h, w = (int(v) for v in result.image_size)
    spacing = result.extra.get("pixel_spacing")
    spacing = None if spacing is None else (float(spacing[0]), float(spacing[1]))
    onto = ontology or load_ontology()
    masks, items = [], []
    for n, i in enumerate(idx, start=1):
        p, b = objs[i]
        g = result.groundings[p]
        if g.masks is None:
            raise MedglipError(f"{what}: the boxes of {g.phrase!r} have no masks; ground with masks=True (--masks)")
        m = box_pixels(np.asarray(g.masks[b], bool), g.boxes[b])
        masks.append(m)
        stats = image_stats(m, g.boxes[b], spacing)
        stats.update({"phrase_index": p, "rank": b})
        items.append(labelled(n, g.phrase, float(g.scores[b]), onto, stats))
    labels = label_image(masks, [it.score for it in items], (h, w))
    bundle = ExportBundle(notes=coding_notes(items))
    for it in items:
        it.entry["pixels_in_label_image"] = int(np.count_nonzero(labels == it.label))
        it.entry["segment"] = None
        if it.empty:
            bundle.notes.append(f"label {it.label} ({it.phrase}): its mask is empty; it has no DICOM segment")
    if "png" in outputs:
        bundle.files[FILES["png"]] = png_bytes(labels)
    if "seg" in outputs:
        check_sources(headers, what)
        src = headers[0]
        if (int(src.get("Rows", 0) or 0), int(src.get("Columns", 0) or 0)) != (h, w):
            raise MedglipError(
                f"{what}: the image is {h} × {w} but the DICOM source is "
                f"{src.get('Rows')} × {src.get('Columns')}; a DICOM-SEG cannot be placed on it"
            )
        dcm, numbers = seg_and_sr(
            headers,
            lambda numbers: (list(headers), _frame(labels, masks, numbers)),
            items,
            modality=result.modality,
            options=options,
            want_sr=False,
            what=what,
        )
        if not dcm:
            bundle.notes.append("no box has a mask pixel: no DICOM-SEG written")
        bundle.files.update(dcm)
        for it in items:
            it.entry["segment"] = numbers.get(it.label)
    bundle.labels = sidecar(
        "image",
        items,
        source=what,
        modality=result.modality,
        image_size=[h, w],
        pixel_spacing=None if spacing is None else list(spacing),
        dtype=str(labels.dtype),
        label_file=FILES["png"] if "png" in outputs else None,
    )
    bundle.add_json(FILES["json"])
    return bundle


def _frame(labels: np.ndarray, masks: list[np.ndarray], numbers: dict[int, int]) -> Any:
    """``(1, H, W)`` segment numbers without overlaps, else ``(1, H, W, S)`` bool."""
    used = [(lab, m) for lab, m in enumerate(masks, start=1) if lab in numbers]
    if sum(int(m.sum()) for _, m in used) == int(np.count_nonzero(labels)):
        lut = np.zeros(len(masks) + 1, np.uint16)
        for lab, seg in numbers.items():
            lut[lab] = seg
        return lut[labels][None]
    return np.stack([m for _, m in used], axis=-1)[None]
