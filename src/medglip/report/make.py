"""``make_report``: ground phrases in an image or volume and write up what was found, and what was not."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..context import GroundedContext, context_from
from ..errors import MedglipError
from ..export import ExportOptions, export_result, image_objects
from ..infer.api import GrounderLike
from ..infer.inputs import read_input
from ..infer.masks import Masks
from ..infer.volume import VolumeGroundingResult
from ..ontology import Ontology, load_ontology
from .markdown import render_markdown
from .model import DEFAULT_OVERLAY, Report
from .sentences import report_sentences


def _phrases(grounder: GrounderLike, findings: Sequence[str] | str | None, modality: str | None) -> list[str]:
    if findings is None:
        known = tuple(grounder.phrases_for(modality)) if modality is not None else tuple(grounder.known_phrases)
        if not known:
            what = (
                f"no trained phrases of {modality} images"
                if modality is not None and grounder.known_phrases
                else "no trained phrases (RUN/categories.json)"
            )
            raise MedglipError(
                f"no findings to look for: pass findings=[...] (--findings on the command line); "
                f"this checkpoint lists {what}"
            )
        return list(known)
    items = [findings] if isinstance(findings, str) else list(findings)
    if not items or not all(isinstance(p, str) and p.strip() for p in items):
        raise MedglipError(f"findings must be a non-empty list of phrases, got {findings!r}")
    return items


def organ_of(phrase: str, onto: Ontology) -> str | None:
    """The organ (else the region) an ontology phrase belongs to: ``brain`` for "glioma", ``breast``
    for "breast lesion"; None for an unmapped phrase."""
    res = onto.resolve(phrase)
    if not res.mapped or not res.hierarchy:
        return None
    return res.hierarchy[1] if len(res.hierarchy) > 2 else res.hierarchy[0]


def region_phrases(ctx: GroundedContext, phrases: Sequence[str]) -> list[str]:
    """Of a report's default phrases, those of the image's region: the organ of the best finding
    (phrases the ontology cannot place are kept); all of them when nothing was found."""
    onto = ctx.ontology or load_ontology()
    best = max(ctx.findings, key=lambda f: f.score, default=None)
    organ = None if best is None else organ_of(best.phrase, onto)
    if organ is None:
        return list(phrases)
    return [p for p in phrases if organ_of(p, onto) in (organ, None)]


def make_report(
    grounder: GrounderLike,
    image: Any,
    findings: Sequence[str] | None = None,
    *,
    modality: str | None = None,
    masks: Masks = False,
    score_threshold: float | None = None,
    llm: Any = None,
    ontology: Ontology | None = None,
    window: Any = None,
    exports: ExportOptions | None = None,
) -> Report:
    """Ground ``findings`` in ``image`` and describe every finding and every phrase not found.

    Args:
        grounder: a :class:`~medglip.infer.api.GrounderLike` (``ground_file``; for ``findings=None``
            also ``modality_of`` and ``phrases_for``).
        image: a 2D file (PNG / JPEG / TIFF / DICOM / one-slice NIfTI), a volume (NIfTI / NRRD / MHA /
            DICOM series folder, grounded slice by slice), or a 2D array / PIL image.
        findings: the phrases to look for; default: the phrases the checkpoint was trained on in the
            image's modality, then only those of the image's region (the organ of the best finding,
            :func:`region_phrases`), so a brain MR is not reported free of breast lesions.
        modality: modality code when known (default: file metadata, else the model's classifier).
        masks: also segment each box: True (the grounder's default source), ``"head"`` (the
            checkpoint's mask head) or ``"medsam"`` (LiteMedSAM); masks are tinted on the overlay.
        score_threshold: findings below it are reported as not identified; None: the checkpoint's
            calibrated threshold of each phrase.
        llm: an object with ``rewrite_report(markdown, context) -> str`` (e.g. ``medglip.vqa.ChatClient``);
            its text becomes ``Report.prose``.
        ontology: the ontology findings are described with (default: the shipped one).
        window: the CT window of the overlay picture (default soft tissue).
        exports: also make the findings' masks as files viewers open (:mod:`medglip.export`: NIfTI
            label map / PNG label image + JSON, DICOM-SEG and SR for DICOM input), label ``n`` being
            finding ``n``; needs ``masks=True``. :func:`write_report` writes them beside the report.

    Raises:
        MedglipError: no phrases, an unreadable input, a bad threshold, ... (from the grounder too).
    """
    item = read_input(image)
    code = grounder.modality_of(item, modality) if findings is None else None  # what the phrases suit
    phrases = _phrases(grounder, findings, code)
    if score_threshold is None:
        asked: Any = "calibrated"
    else:
        try:
            thr = asked = float(score_threshold)
        except (TypeError, ValueError):
            raise MedglipError(f"score_threshold must be a number, got {score_threshold!r}") from None
        if not 0.0 <= thr <= 1.0:
            raise MedglipError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
    result = grounder.ground_file(item, phrases, modality=modality, masks=masks, score_threshold=asked)
    ctx = context_from(result, ontology=ontology)  # the findings every surface shows
    if findings is None:
        ctx = context_from(result, ontology=ontology, phrases=region_phrases(ctx, phrases))
    if isinstance(result, VolumeGroundingResult):
        assert ctx.volume is not None  # the context of a volume result describes the volume
        pixels = result.picture(ctx.volume["key_slice"], window)  # the slice the findings' boxes are on
    else:
        pixels = result.picture(window)
    found, missing = report_sentences(ctx)
    markdown = render_markdown(ctx, found, missing, overlay_name=DEFAULT_OVERLAY)
    report = Report(
        source=ctx.source,
        modality=ctx.modality,
        context=ctx,
        sentences=found + missing,
        markdown=markdown,
        overlay=ctx.visual_prompt(pixels, masks=bool(masks)),
    )
    if exports is not None:
        if not masks:
            raise MedglipError("exporting the findings' masks needs masks=True (--masks)")
        report.exports = export_result(
            result, indices=finding_indices(ctx, result), options=exports, ontology=ctx.ontology
        )
    if llm is not None:
        report.prose = llm.rewrite_report(markdown, ctx)
    return report


#: how a finding and a grounded object are matched: phrase, slice range (volumes) or box (2D), score
_ObjectKey = tuple[str, tuple[float, ...], float]


def _same_slices(a: _ObjectKey, b: _ObjectKey) -> bool:
    return a[0] == b[0] and a[1] == b[1] and abs(a[2] - b[2]) < 1e-9


def _same_box(a: _ObjectKey, b: _ObjectKey) -> bool:
    return a[0] == b[0] and bool(np.allclose(a[1], b[1])) and abs(a[2] - b[2]) < 1e-5


def finding_indices(ctx: GroundedContext, result: Any) -> list[int]:
    """For each finding (in number order), the index of its object in ``result.objects`` (volumes) or
    in :func:`medglip.export.image_objects` (2D images)."""
    keys: list[_ObjectKey]
    wanted: list[_ObjectKey]
    if isinstance(result, VolumeGroundingResult):
        keys = [(o.phrase, tuple(int(v) for v in o.slices), float(o.score)) for o in result.objects]
        wanted = [(f.phrase, tuple(f.slices or ()), float(f.score)) for f in ctx.findings]
        close = _same_slices
    else:
        keys = [
            (
                result.groundings[p].phrase,
                tuple(float(v) for v in result.groundings[p].boxes[i]),
                float(result.groundings[p].scores[i]),
            )
            for p, i in image_objects(result)
        ]
        wanted = [(f.phrase, tuple(float(v) for v in f.box), float(f.score)) for f in ctx.findings]
        close = _same_box
    out: list[int] = []
    for w in wanted:
        hit = next((i for i, k in enumerate(keys) if i not in out and close(w, k)), None)
        if hit is None:
            raise MedglipError(f"finding {w[0]!r} (score {w[2]:.3f}) matches no grounded object")  # pragma: no cover
        out.append(hit)
    return out
