"""``make_report``: ground phrases in an image or volume and write up what was found, and what was not."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..context import GroundedContext, context_from_result, context_from_volume
from ..errors import MedglipError
from .markdown import render_markdown
from .model import DEFAULT_OVERLAY, Report
from .sentences import report_sentences


def _phrases(grounder: Any, findings: Sequence[str] | str | None) -> list[str]:
    if findings is None:
        known = tuple(getattr(grounder, "known_phrases", None) or ())
        if not known:
            raise MedglipError("no findings to look for: pass findings=[...] (--findings on the command line); "
                               "this checkpoint lists no trained phrases (RUN/categories.json)")
        return list(known)
    items = [findings] if isinstance(findings, str) else list(findings)
    if not items or not all(isinstance(p, str) and p.strip() for p in items):
        raise MedglipError(f"findings must be a non-empty list of phrases, got {findings!r}")
    return items


def _read_volume(image: Any) -> Any | None:
    """The :class:`~medglip.infer.preprocess.Volume` of a path holding a volume (a folder, or a file
    with more than one slice), else None (a 2D input)."""
    from ..infer.preprocess import is_volume_input, load_volume

    return load_volume(image) if is_volume_input(image) else None


def _ground_volume(grounder: Any, image: Any, vol: Any, phrases: list[str], *, modality: str | None, masks: bool,
                   score_threshold: float) -> tuple[GroundedContext, np.ndarray]:
    from ..infer.volume import volume_slices

    res = grounder.ground_volume(image, phrases, modality=modality, masks=masks, score_threshold=score_threshold)
    ctx = context_from_volume(res, score_threshold=score_threshold)
    # the display slices the grounder saw (same plane, modality and window)
    _, slices, _ = volume_slices(vol, res.modality, plane=res.plane, window=getattr(grounder, "ct_window", None))
    return ctx, slices[ctx.volume["key_slice"]]


def _ground_2d(grounder: Any, image: Any, phrases: list[str], *, modality: str | None, masks: bool,
               score_threshold: float) -> tuple[GroundedContext, np.ndarray]:
    from ..infer.preprocess import check_modality, to_display

    res = grounder.ground(image, phrases, modality=modality, masks=masks, score_threshold=score_threshold)
    ctx = context_from_result(res, score_threshold=score_threshold)
    pixels = to_display(image, modality=check_modality(modality), window=getattr(grounder, "ct_window", None)).pixels
    return ctx, pixels


def make_report(grounder: Any, image: Any, findings: Sequence[str] | None = None, *, modality: str | None = None,
                masks: bool = False, score_threshold: float = 0.3, llm: Any = None) -> Report:
    """Ground ``findings`` in ``image`` and describe every finding and every phrase not found.

    Args:
        grounder: a :class:`~medglip.infer.Grounder` (or anything with ``ground`` / ``ground_volume``
            and, for ``findings=None``, ``known_phrases``).
        image: a 2D file (PNG / JPEG / TIFF / DICOM / one-slice NIfTI), a volume (NIfTI / NRRD / MHA /
            DICOM series folder, grounded slice by slice), or a 2D array / PIL image.
        findings: the phrases to look for; default the phrases the checkpoint was trained on.
        modality: modality code when known (default: file metadata, else the model's classifier).
        masks: also segment each box (needs the grounder's mask refiner); masks are tinted on the overlay.
        score_threshold: findings below it are reported as not identified.
        llm: an object with ``rewrite_report(markdown, context) -> str`` (e.g. ``medglip.vqa.ChatClient``);
            its text becomes ``Report.prose``.

    Raises:
        MedglipError: no phrases, an unreadable input, a bad threshold, ... (from the grounder too).
    """
    phrases = _phrases(grounder, findings)
    try:
        thr = float(score_threshold)
    except (TypeError, ValueError):
        raise MedglipError(f"score_threshold must be a number, got {score_threshold!r}") from None
    if not 0.0 <= thr <= 1.0:
        raise MedglipError(f"score_threshold must be in [0, 1], got {score_threshold!r}")
    vol = _read_volume(image)
    kw = dict(modality=modality, masks=masks, score_threshold=thr)
    if vol is not None:
        ctx, pixels = _ground_volume(grounder, image, vol, phrases, **kw)
    else:
        ctx, pixels = _ground_2d(grounder, image, phrases, **kw)
    found, missing = report_sentences(ctx)
    markdown = render_markdown(ctx, found, missing, overlay_name=DEFAULT_OVERLAY)
    report = Report(source=ctx.source, modality=ctx.modality, context=ctx, sentences=found + missing,
                    markdown=markdown, overlay=ctx.visual_prompt(pixels, masks=masks))
    if llm is not None:
        report.prose = llm.rewrite_report(markdown, ctx)
    return report
