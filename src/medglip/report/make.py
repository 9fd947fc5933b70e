"""``make_report``: ground phrases in an image or volume and write up what was found, and what was not."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..context import GroundedContext, context_from
from ..errors import MedglipError
from ..export import ExportOptions, export_result, image_objects
from ..infer.grounder import calibrated_threshold
from ..infer.volume import VolumeGroundingResult
from ..ontology import Ontology
from .markdown import render_markdown
from .model import DEFAULT_OVERLAY, Report
from .sentences import report_sentences


def _phrases(grounder: Any, findings: Sequence[str] | str | None) -> list[str]:
    if findings is None:
        known = tuple(grounder.known_phrases)
        if not known:
            raise MedglipError("no findings to look for: pass findings=[...] (--findings on the command line); "
                               "this checkpoint lists no trained phrases (RUN/categories.json)")
        return list(known)
    items = [findings] if isinstance(findings, str) else list(findings)
    if not items or not all(isinstance(p, str) and p.strip() for p in items):
        raise MedglipError(f"findings must be a non-empty list of phrases, got {findings!r}")
    return items


def make_report(grounder: Any, image: Any, findings: Sequence[str] | None = None, *, modality: str | None = None,
                masks: bool | str = False, score_threshold: float | None = None, llm: Any = None,
                ontology: Ontology | None = None, window: Any = None,
                exports: ExportOptions | None = None) -> Report:
    """Ground ``findings`` in ``image`` and describe every finding and every phrase not found.

    Args:
        grounder: a :class:`~medglip.infer.Grounder` (anything with its ``ground_file`` and, for
            ``findings=None``, ``known_phrases``).
        image: a 2D file (PNG / JPEG / TIFF / DICOM / one-slice NIfTI), a volume (NIfTI / NRRD / MHA /
            DICOM series folder, grounded slice by slice), or a 2D array / PIL image.
        findings: the phrases to look for; default the phrases the checkpoint was trained on.
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
    phrases = _phrases(grounder, findings)
    if score_threshold is None:
        thr, asked = calibrated_threshold(grounder, phrases), "calibrated"
    else:
        try:
            thr = asked = float(score_threshold)
        except (TypeError, ValueError):
            raise MedglipError(f"score_threshold must be a number, got {score_threshold!r}") from None
        if not 0.0 <= thr <= 1.0:
            raise MedglipError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
    result = grounder.ground_file(image, phrases, modality=modality, masks=masks, score_threshold=asked)
    ctx = context_from(result, score_threshold=thr, ontology=ontology)
    if isinstance(result, VolumeGroundingResult):
        pixels = result.picture(ctx.volume["key_slice"], window)  # the slice the findings' boxes are on
    else:
        pixels = result.picture(window)
    found, missing = report_sentences(ctx)
    markdown = render_markdown(ctx, found, missing, overlay_name=DEFAULT_OVERLAY)
    report = Report(source=ctx.source, modality=ctx.modality, context=ctx, sentences=found + missing,
                    markdown=markdown, overlay=ctx.visual_prompt(pixels, masks=bool(masks)))
    if exports is not None:
        if not masks:
            raise MedglipError("exporting the findings' masks needs masks=True (--masks)")
        report.exports = export_result(result, indices=finding_indices(ctx, result), options=exports,
                                       ontology=ctx.ontology)
    if llm is not None:
        report.prose = llm.rewrite_report(markdown, ctx)
    return report


def finding_indices(ctx: GroundedContext, result: Any) -> list[int]:
    """For each finding (in number order), the index of its object in ``result.objects`` (volumes) or
    in :func:`medglip.export.image_objects` (2D images)."""
    if isinstance(result, VolumeGroundingResult):
        keys = [(o.phrase, tuple(int(v) for v in o.slices), float(o.score)) for o in result.objects]
        wanted = [(f.phrase, tuple(f.slices or ()), float(f.score)) for f in ctx.findings]
        close = lambda a, b: a[0] == b[0] and a[1] == b[1] and abs(a[2] - b[2]) < 1e-9  # noqa: E731
    else:
        keys = [(result.groundings[p].phrase, tuple(float(v) for v in result.groundings[p].boxes[i]),
                 float(result.groundings[p].scores[i])) for p, i in image_objects(result)]
        wanted = [(f.phrase, tuple(float(v) for v in f.box), float(f.score)) for f in ctx.findings]
        close = lambda a, b: a[0] == b[0] and np.allclose(a[1], b[1]) and abs(a[2] - b[2]) < 1e-5  # noqa: E731
    out: list[int] = []
    for w in wanted:
        hit = next((i for i, k in enumerate(keys) if i not in out and close(w, k)), None)
        if hit is None:
            raise MedglipError(f"finding {w[0]!r} (score {w[2]:.3f}) matches no grounded object")  # pragma: no cover
        out.append(hit)
    return out
