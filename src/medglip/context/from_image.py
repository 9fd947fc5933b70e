"""2D grounding results → :class:`GroundedContext` (numbered findings with sizes, sides, containers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.rules import vertical_third
from ..errors import MedglipError
from ..infer.results import GroundingResult
from ..ontology import Ontology, load_ontology
from .finding import Finding, as_box
from .grounded import GroundedContext
from .location import (
    Extent,
    find_containers,
    horizontal_words,
    location_words,
    orientation_of,
    resolve_spacing,
    side_of_box,
    world_matrix,
)
from .size import centre_mm_2d, size_2d

PLANES = ("2d", "axial", "coronal", "sagittal")


@dataclass(frozen=True)
class PhraseInfo:
    """What the ontology says about an asked phrase (unmapped: label = phrase, level unknown)."""

    label: str
    level: str
    hierarchy: tuple[str, ...]
    laterality: str | None
    parent: str | None
    ancestors: frozenset[str]  # ancestor phrases and labels, for preferring ontological containers


def phrase_info(phrase: str, onto: Any) -> PhraseInfo:
    """``onto.resolve(phrase)`` condensed; an unmapped phrase keeps its own text and no hierarchy."""
    res = onto.resolve(phrase)
    if not res.mapped:
        return PhraseInfo(phrase, "unknown", (), res.laterality, None, frozenset())
    names = set(res.hierarchy[:-1])
    if res.term_id is not None:
        names |= {t.name for t in onto.ancestors(res.term_id)[1:]}
    return PhraseInfo(res.label, res.level, tuple(res.hierarchy), res.laterality, res.parent, frozenset(names))


def check_threshold(
    score_threshold: float | None, max_per_phrase: int | None, applied: dict[str, float | None] | None = None
) -> tuple[float, float, int | None]:
    """``(filter, shown, cap)``: the threshold findings are filtered with (None given: 0, i.e. every
    box the grounder kept), the one a context reports (None given: the lowest the grounder applied,
    ``applied``), and the cap per phrase (None: none).

    The findings model keeps, by default, exactly what the grounder kept: every surface then shows the
    same objects after the same threshold and filtering."""
    if score_threshold is None:
        used = [float(v) for v in (applied or {}).values() if v is not None]
        score_threshold, shown = 0.0, min(used, default=0.0)
    else:
        shown = None
    if max_per_phrase is None:
        thr, _ = _checked(score_threshold, 1)
        return thr, thr if shown is None else shown, None
    thr, k = _checked(score_threshold, max_per_phrase)
    return thr, thr if shown is None else shown, k


def _checked(score_threshold: Any, max_per_phrase: Any) -> tuple[float, int]:
    try:
        thr, k = float(score_threshold), int(max_per_phrase)
    except (TypeError, ValueError):
        raise MedglipError(
            f"score_threshold / max_per_phrase must be numbers, got {score_threshold!r}, {max_per_phrase!r}"
        ) from None
    if not 0.0 <= thr <= 1.0:
        raise MedglipError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
    if k < 1:
        raise MedglipError(f"max_per_phrase must be at least 1, got {max_per_phrase!r}")
    return thr, k


def top_indices(scores: np.ndarray, threshold: float, k: int | None) -> list[int]:
    """Indices of the at most ``k`` (None: all) best scores ≥ ``threshold``, best first (ties: original order)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-s, kind="stable")
    return [int(i) for i in order if s[i] >= threshold][:k]


def mask_areas(mask: np.ndarray | None, spacing: tuple[float, float] | None) -> tuple[int | None, float | None]:
    """``(pixels, mm²)`` of a mask (None, None without one; mm² None without spacing)."""
    if mask is None:
        return None, None
    px = int(np.count_nonzero(mask))
    return px, (None if spacing is None else px * spacing[0] * spacing[1])


def display_plane(extra: dict[str, Any]) -> str:
    plane = str(extra.get("plane") or "2d")
    return plane if plane in PLANES else "2d"  # e.g. "file": a degenerate one-slice volume


def context_from_result(
    result: GroundingResult,
    *,
    pixel_spacing: Any = None,
    score_threshold: float | None = None,
    max_per_phrase: int | None = None,
    source: str = "prediction",
    ontology: Ontology | None = None,
    phrases: Sequence[str] | None = None,
) -> GroundedContext:
    """Findings of a 2D :class:`GroundingResult`.

    Args:
        result: the grounding (boxes ``(K, 4)`` xyxy pixel edges, scores ``(K,)``, masks ``(K, H, W)``).
        pixel_spacing: ``(row_mm, col_mm)``; default ``result.extra["pixel_spacing"]``, else derived
            from ``result.extra["pixel_to_world"]``, else sizes in pixels only.
        score_threshold: boxes below it are dropped; phrases left with none are ``absent``. None
            (default): none dropped, the findings are exactly the boxes the grounder kept (the
            context reports the lowest threshold it applied, ``result.thresholds``).
        max_per_phrase: boxes kept per phrase (best first); None (default): all.
        source: ``"prediction"`` or ``"ground truth"`` (stored on every finding).
        ontology: an :class:`~medglip.ontology.Ontology`; default :func:`load_ontology`. The context
            keeps it (its later phrase look-ups use it too).
        phrases: only these of the result's phrases (default: all).

    Sides are measured against the body's midline in ``result.pixels`` when the result has them
    (:func:`medglip.core.rules.patient_side`), else against the image centre.
    """
    thr, shown, k = check_threshold(score_threshold, max_per_phrase, result.thresholds)
    onto = ontology or load_ontology()
    extra = dict(result.extra or {})
    h, w = (int(v) for v in result.image_size)
    spacing = resolve_spacing(pixel_spacing, extra)
    m = world_matrix(extra)
    orientation = orientation_of(result.modality, m is not None)
    plane = display_plane(extra)
    pixels = result.pixels if result.pixels is not None and tuple(result.pixels.shape[:2]) == (h, w) else None

    asked: list[str] = []
    picked: list[tuple[str, PhraseInfo, tuple[float, float, float, float], float, np.ndarray | None]] = []
    absent: list[str] = []
    for g in result.groundings:
        if g.phrase in asked or (phrases is not None and g.phrase not in phrases):
            continue
        asked.append(g.phrase)
        idx = top_indices(g.scores, thr, k)
        if not idx:
            absent.append(g.phrase)
            continue
        info = phrase_info(g.phrase, onto)
        for i in idx:
            box = as_box(g.boxes[i])
            mask = None
            if g.masks is not None and i < len(g.masks) and g.masks[i].shape == (h, w):
                mask = np.asarray(g.masks[i], dtype=bool)
            picked.append((g.phrase, info, box, round(float(g.scores[i]), 6), mask))

    holders = find_containers([Extent(p, box[:2], box[2:], info.ancestors) for p, info, box, _, _ in picked])
    findings = []
    for n, ((phrase, info, box, score, mask), holder) in enumerate(zip(picked, holders, strict=True), start=1):
        x0, y0, x1, y1 = box
        cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        size_px, size_mm, size_source = size_2d(box, mask, spacing)
        side = side_of_box(cx, w, result.modality, plane, pixels, m)
        vertical = vertical_third(cy, h)
        container = None if holder is None else picked[holder][0]
        area_px, area_mm2 = mask_areas(mask, spacing)
        findings.append(
            Finding(
                number=n,
                phrase=phrase,
                label=info.label,
                level=info.level,
                hierarchy=info.hierarchy,
                laterality=info.laterality,
                score=score,
                box=box,
                size_px=size_px,
                size_mm=size_mm,
                size_source=size_source,
                location_mm=centre_mm_2d(box, m),
                mask_area_px=area_px,
                mask_area_mm2=area_mm2,
                side=side,
                vertical=vertical,
                location=location_words(
                    side=side,
                    horizontal=horizontal_words(cx, w) if orientation == "none" else None,
                    vertical=vertical,
                    plane=plane,
                    container=container,
                ),
                parent=container if container is not None else info.parent,
                parent_number=None if holder is None else holder + 1,
                source=source,
                mask=mask,
            )
        )
    return GroundedContext(
        source=str(result.source),
        modality=result.modality,
        image_size=(h, w),
        plane=plane,
        pixel_spacing=spacing,
        orientation=orientation,
        asked=tuple(asked),
        findings=findings,
        absent=tuple(absent),
        score_threshold=shown,
        volume=None,
        ontology=onto,
    )
