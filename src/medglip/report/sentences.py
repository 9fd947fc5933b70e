"""One plain-English sentence per finding and per phrase not found, from a :class:`GroundedContext`.

2D:      "Brain tumor (F1, score 0.82): patient's left, anterior part of the image, within the
          brain; 34 × 28 mm, from its mask (mask area 610 mm²)."
volumes: "Brain tumor, 1 of 2 (F1, score 0.82): patient's left, anterior part of the image, slices
          40–52, within the brain; 13 slices, 34 × 28 × 39 mm (LPS x × y × z), from its box."
absent:  "No liver tumor identified."
Every finding of the context gets its sentence ("k of n" counts them all), cited by its id; the
size is the finding's one size (its mask's, else its box's: :mod:`medglip.context.size`).
A phrase naming a side ("left kidney") found on the other side adds "found on the patient's right,
opposite to the side named".
"""

from __future__ import annotations

from ..context import Finding, GroundedContext
from ..context.location import DASH
from ..context.render import format_number, format_size

__all__ = ["DASH", "TIMES", "absent_sentence", "finding_sentence", "report_sentences", "side_mismatch"]

TIMES = " × "


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def side_mismatch(f: Finding) -> str | None:
    """The clause for a phrase naming one side whose box lies on the other, else None."""
    if f.laterality in ("left", "right") and f.side in ("left", "right") and f.side != f.laterality:
        return f"found on the patient's {f.side}, opposite to the side named"
    return None


def _mask_clause(f: Finding) -> str:
    if f.mask_area_px is None:
        return ""
    area = f"{format_number(f.mask_area_mm2)} mm²" if f.mask_area_mm2 is not None else f"{f.mask_area_px} px"
    where = f" on slice {f.key_slice}" if f.key_slice is not None else ""
    return f" (mask area {area}{where})"


def finding_sentence(f: Finding, *, index: int = 1, count: int = 1) -> str:
    """The sentence of one finding; ``index`` / ``count`` number it among its phrase's findings."""
    head = _capitalised(f.phrase) + (f", {index} of {count}" if count > 1 else "")
    parts = [f.location]  # side, part of the image, slice range (volumes), containing structure
    if (clause := side_mismatch(f)) is not None:
        parts.append(clause)
    source = f", from its {f.size_source}"
    if f.slices is not None:
        n = f.slices[1] - f.slices[0] + 1
        parts.append(
            f"{n} slice{'s' if n != 1 else ''}, {format_size(f, TIMES)} (LPS x{TIMES}y{TIMES}z)"
            f"{source}{_mask_clause(f)}"
        )
    else:
        parts.append(f"{format_size(f, TIMES)}{source}{_mask_clause(f)}")
    return f"{head} ({f.id}, score {f.score:.2f}): {'; '.join(p for p in parts if p)}."


def absent_sentence(phrase: str) -> str:
    return f"No {phrase} identified."


def report_sentences(ctx: GroundedContext) -> tuple[list[str], list[str]]:
    """``(finding sentences, absent sentences)``, each in the order the phrases were asked."""
    found, missing = [], []
    for phrase in ctx.asked:
        fs = [f for f in ctx.findings if f.phrase == phrase]
        found += [finding_sentence(f, index=i, count=len(fs)) for i, f in enumerate(fs, start=1)]
        if phrase in ctx.absent:
            missing.append(absent_sentence(phrase))
    return found, missing
