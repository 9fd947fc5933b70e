"""3D grounding results → :class:`GroundedContext`: one finding per linked object, extents in LPS mm."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..core.orient import plan_slices
from ..core.rules import vertical_third
from ..infer.volume import VolumeGroundingResult, VolumeObject
from ..ontology import Ontology, load_ontology
from .finding import Finding, as_box
from .from_image import PhraseInfo, check_threshold, mask_areas, phrase_info
from .grounded import GroundedContext
from .location import DASH, Extent, find_containers, location_words, side_of_box
from .size import size_3d


def _mask_bounds(result: VolumeGroundingResult, index: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """First / last voxel index of object ``index``'s 3D mask; (None, None) without slice masks or
    for an empty mask."""
    obj = result.objects[index]
    if not obj.slice_boxes or any(b.mask is None for b in obj.slice_boxes):
        return None, None
    om = result.object_mask(index)
    if om.voxels == 0:
        return None, None
    where = np.argwhere(om.mask)
    lo = np.asarray(om.lo)
    return lo + where.min(0), lo + where.max(0)


def context_from_volume(
    result: VolumeGroundingResult,
    *,
    score_threshold: float | None = None,
    max_per_phrase: int | None = None,
    source: str = "prediction",
    ontology: Ontology | None = None,
    phrases: Sequence[str] | None = None,
) -> GroundedContext:
    """Findings of a :class:`VolumeGroundingResult`: one per object (score = the object's mean score).

    Each finding's ``box`` is its best slice box (``key_slice``), ``slices`` its slice range,
    ``size_mm`` (= ``extent_mm``) the LPS extent of its mask's voxels, else of its boxes' voxels
    (``size_source``, :mod:`.size`), ``location_mm`` the centre of its world box, and ``side`` the
    side of its key-slice box (:func:`medglip.core.rules.patient_side`, against the body's midline on
    that slice when the result can draw it). Containment is tested on the objects' voxel boxes.
    ``score_threshold`` / ``max_per_phrase``: as in :func:`~.from_image.context_from_result` (by
    default every object the grounder kept); ``phrases``: only these of the result's phrases.
    """
    thr, shown, k = check_threshold(score_threshold, max_per_phrase, result.thresholds)
    onto = ontology or load_ontology()
    geom = result.geometry
    shape = tuple(int(s) for s in result.shape)
    plan = plan_slices(geom, shape, result.plane)
    image_size = tuple(result.slice_results[0].image_size) if result.slice_results else plan.display_shape
    h = int(image_size[0])
    spacing = plan.pixel_spacing(geom)

    asked: list[str] = []
    absent: list[str] = []
    picked: list[tuple[VolumeObject, PhraseInfo]] = []
    index = {id(o): i for i, o in enumerate(result.objects)}
    for phrase in result.phrases:
        if phrase in asked or (phrases is not None and phrase not in phrases):
            continue
        asked.append(phrase)
        objs = [o for o in result.objects if o.phrase == phrase and o.score >= thr and o.slice_boxes]
        objs = sorted(objs, key=lambda o: -o.score)[:k]
        if not objs:
            absent.append(phrase)
            continue
        info = phrase_info(phrase, onto)
        picked += [(o, info) for o in objs]

    extents = []
    for o, info in picked:
        vb = np.asarray(o.voxel_box, dtype=np.float64).reshape(2, 3)
        extents.append(Extent(o.phrase, tuple(vb[0]), tuple(vb[1] + 1.0), info.ancestors))
    holders = find_containers(extents)

    findings = []
    for n, ((o, info), holder) in enumerate(zip(picked, holders, strict=True), start=1):
        key = max(o.slice_boxes, key=lambda s: s.score)  # first of equal bests
        box = as_box(key.box)
        wb = np.asarray(o.world_box, dtype=np.float64).reshape(2, 3)
        side = side_of_box(
            (box[0] + box[2]) / 2.0,
            int(image_size[1]),
            result.modality,
            result.plane,
            _slice_pixels(result, key.slice_index),
        )
        size_mm, size_source = size_3d(wb, *_mask_bounds(result, index[id(o)]), geom)
        a, b = int(o.slices[0]), int(o.slices[1])
        span = f"slice {a}" if a == b else f"slices {a}{DASH}{b}"
        vertical = vertical_third((box[1] + box[3]) / 2.0, h)
        container = None if holder is None else picked[holder][0].phrase
        mask = None if key.mask is None else np.asarray(key.mask, dtype=bool)
        area_px, area_mm2 = mask_areas(mask, spacing)
        findings.append(
            Finding(
                number=n,
                phrase=o.phrase,
                label=info.label,
                level=info.level,
                hierarchy=info.hierarchy,
                laterality=info.laterality,
                score=float(o.score),
                box=box,
                size_px=(box[2] - box[0], box[3] - box[1]),
                size_mm=size_mm,
                size_source=size_source,
                location_mm=_xyz(wb.mean(0)),
                mask_area_px=area_px,
                mask_area_mm2=area_mm2,
                side=side,
                vertical=vertical,
                location=location_words(
                    side=side, horizontal=None, vertical=vertical, plane=result.plane, container=container, slices=span
                ),
                parent=container if container is not None else info.parent,
                parent_number=None if holder is None else holder + 1,
                source=source,
                slices=(int(o.slices[0]), int(o.slices[1])),
                key_slice=int(key.slice_index),
                extent_mm=size_mm,
                world_box_mm=(_xyz(wb[0]), _xyz(wb[1])),
                mask=mask,
            )
        )

    best = max(findings, key=lambda f: f.score, default=None)
    key_slice = best.key_slice if best is not None and best.key_slice is not None else plan.n_slices // 2
    volume = {
        "shape": list(shape),
        "n_slices": int(plan.n_slices),
        "key_slice": int(key_slice),
        "slice_axis": int(result.slice_axis),
    }
    return GroundedContext(
        source=str(result.source),
        modality=result.modality,
        image_size=(int(image_size[0]), int(image_size[1])),
        plane=result.plane,
        pixel_spacing=spacing,
        orientation="world",
        asked=tuple(asked),
        findings=findings,
        absent=tuple(absent),
        score_threshold=shown,
        volume=volume,
        ontology=onto,
    )


def _xyz(values: np.ndarray) -> tuple[float, float, float]:
    x, y, z = (float(v) for v in values)
    return x, y, z


def _slice_pixels(result: VolumeGroundingResult, index: int) -> np.ndarray | None:
    """The model pixels of a display slice, when the result still holds its volume."""
    if result.volume is None or result.plan is None or result.input_config is None:
        return None
    return result.slice_pixels(index)[0]
