"""Answer closed questions from a :class:`~medglip.context.GroundedContext` alone, citing its boxes.

Each kind reads the target's findings (``context.for_phrase``; already above the context's score
threshold, best first), restricted to the question's container / side (:mod:`.scope`):

- presence: any finding left → ``True`` (``bilateral``: one on each side);
- laterality: the patient sides of the findings → ``left`` / ``right`` / ``midline`` / ``bilateral``
  (findings on both sides); None when absent or when the image has no patient orientation;
- location: the best finding's ``location`` words;
- count: the number of findings;
- size: the best finding's longest dimension in mm (``Finding.longest_mm``), else in px (``unit``);
- containment: the phrase of the finding holding the best target finding (its ``parent_number``,
  else the smallest other finding covering half of its box), else the ontology parent (noted);
- comparison: the larger of the two targets' best findings by longest mm, or by box area in px when
  either has no spacing; ``value`` is the larger phrase (None when one is missing or they tie).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from .cues import SMALLER
from .question import Answer, Question
from .scope import is_inside, scope

if TYPE_CHECKING:
    from ..context import Finding, GroundedContext

_YES_NO = re.compile(r"^\s*(is|are|does|do|was|were)\b", re.IGNORECASE)


def boxes(findings: list[Finding]) -> str:
    nums = [f.id for f in findings]
    return f"box {nums[0]}" if len(nums) == 1 else "boxes " + ", ".join(nums)


def _cite(f: Finding) -> str:
    slices = f", slices {f.slices[0]}-{f.slices[1]}" if f.slices is not None else ""
    return f"box {f.id}, score {f.score:.2f}{slices}"


def _none(phrase: str, where: str = "") -> str:
    return f"No {phrase} identified{where}"


def _with_notes(text: str, notes: list[str]) -> str:
    return text + "".join(f" (Note: {n}.)" for n in notes)


def answer_question(question: Question, context: GroundedContext) -> Answer:
    """Answer ``question`` from ``context`` (see the module docstring); ``open`` → ``via="unanswered"``."""
    if question.kind == "open" or not question.targets:
        return Answer(
            "This is an open question: answering it needs a language model (an LLM endpoint); "
            "the grounding alone answers presence, side, location, count, size, containment and "
            "comparison questions.",
            None,
            question.kind,
            [],
            "unanswered",
        )
    handler = _HANDLERS.get(question.kind)
    if handler is None:
        from ..errors import MedglipError

        raise MedglipError(f"unknown question kind {question.kind!r}")
    ans = handler(question, context)
    asked = {" ".join(p.lower().split()) for p in context.asked}
    missing = [t for t in question.targets if " ".join(t.lower().split()) not in asked and not context.for_phrase(t)]
    if missing:  # answered from a context that never looked for the target
        note = f"{' and '.join(missing)} {'was' if len(missing) == 1 else 'were'} not among the grounded phrases"
        ans.notes.append(note)
        ans.text += f" (Note: {note}.)"
    return ans


def _presence(q: Question, ctx: GroundedContext) -> Answer:
    target = q.targets[0]
    all_f = ctx.for_phrase(target)
    s = scope(q, ctx, all_f)
    found = s.kept
    sides = {f.side for f in found}
    ok = bool(found) and (q.side != "bilateral" or {"left", "right"} <= sides or None in sides)
    evidence = sorted({f.number for f in found + s.containers})
    if ok:
        best = found[0]
        many = (
            f"{len(found)} {target} findings ({boxes(found)}; best {_cite(best)})"
            if len(found) > 1
            else f"{target} found ({_cite(best)})"
        )
        # the location words may say it already ("patient's left", "within the left lung")
        said = s.where.strip().removeprefix("on the ").removeprefix("in the ")
        where = "" if said and said in best.location else s.where
        text = f"Yes: {many}{where}, {best.location}."
    else:
        text = _none(target, s.where) + "."
        others = [f for f in all_f if f not in found]
        if found:  # bilateral asked, one side only
            text = f"No: {target} found on one side only ({boxes(found)}, patient's {found[0].side})."
        elif others:
            text += f" A {target} was found elsewhere ({boxes(others)}: {others[0].location})."
            evidence = sorted(set(evidence) | {f.number for f in others})
        elif target in ctx.absent:
            text += f" (No box scored at least {ctx.score_threshold:.2f}.)"
    return Answer(_with_notes(text, s.notes), ok, "presence", evidence, "grounding", notes=s.notes)


def side_of(findings: list[Finding]) -> str | None:
    """``left`` / ``right`` / ``bilateral`` / ``midline`` of a set of findings (None: sides unknown)."""
    sides = {f.side for f in findings if f.side is not None}
    lateral = sides & {"left", "right"}
    if len(lateral) == 2:
        return "bilateral"
    if lateral:
        return lateral.pop()
    return "midline" if "midline" in sides else None


def _laterality(q: Question, ctx: GroundedContext) -> Answer:
    target = q.targets[0]
    s = scope(replace(q, side=None), ctx, ctx.for_phrase(target))  # the side is the answer, not a filter
    found = s.kept
    if not found:
        return Answer(
            _with_notes(_none(target, s.where) + ".", s.notes),
            None,
            "laterality",
            [f.number for f in s.containers],
            "grounding",
            notes=s.notes,
        )
    value = side_of(found)
    ev = sorted(f.number for f in found)
    if value is None:
        note = f"the patient side is not known on {ctx.modality or 'this'} images ({ctx.orientation} orientation)"
        return Answer(
            f"{target} found ({boxes(found)}, {found[0].location}), but {note}.",
            None,
            "laterality",
            ev,
            "grounding",
            notes=[note],
        )
    words = {
        "left": "on the patient's left",
        "right": "on the patient's right",
        "midline": "in the midline",
        "bilateral": "on both sides",
    }[value]
    text = f"The {target} is {words} ({boxes(found)})."
    if q.side in ("left", "right", "bilateral"):
        yes = value == q.side or (value == "bilateral" and q.side in ("left", "right"))
        text = ("Yes: " if yes else "No: ") + text[0].lower() + text[1:]
    return Answer(_with_notes(text, s.notes), value, "laterality", ev, "grounding", notes=s.notes)


def _location(q: Question, ctx: GroundedContext) -> Answer:
    target = q.targets[0]
    s = scope(q, ctx, ctx.for_phrase(target))
    if not s.kept:
        return Answer(
            _with_notes(_none(target, s.where) + ".", s.notes), None, "location", [], "grounding", notes=s.notes
        )
    best = s.kept[0]
    parts = [f"box {f.id}: {f.location}" for f in s.kept]
    text = (
        f"The {target} is at the {best.location} ({_cite(best)})."
        if len(s.kept) == 1
        else f"{len(s.kept)} {target} findings: " + "; ".join(parts) + "."
    )
    return Answer(
        _with_notes(text, s.notes), best.location, "location", [f.number for f in s.kept], "grounding", notes=s.notes
    )


def _count(q: Question, ctx: GroundedContext) -> Answer:
    target = q.targets[0]
    s = scope(q, ctx, ctx.for_phrase(target))
    n = len(s.kept)
    text = (
        f"{n} {target} finding{'s' if n != 1 else ''}{s.where} ({boxes(s.kept)}, score ≥ {ctx.score_threshold:.2f})."
        if n
        else _none(target, s.where) + " (0)."
    )
    return Answer(_with_notes(text, s.notes), n, "count", [f.number for f in s.kept], "grounding", notes=s.notes)


def dims(f: Finding) -> tuple[str, float, str]:
    """``("42 x 37 mm", longest, unit)`` of a finding: mm when known, else px."""
    if f.extent_mm is not None:
        return " x ".join(f"{v:.0f}" for v in f.extent_mm) + " mm", float(max(f.extent_mm)), "mm"
    if f.size_mm is not None:
        return " x ".join(f"{v:.0f}" for v in f.size_mm) + " mm", float(max(f.size_mm)), "mm"
    return " x ".join(f"{v:.0f}" for v in f.size_px) + " px", float(max(f.size_px)), "px"


def _size(q: Question, ctx: GroundedContext) -> Answer:
    target = q.targets[0]
    s = scope(q, ctx, ctx.for_phrase(target))
    if not s.kept:
        return Answer(_with_notes(_none(target, s.where) + ".", s.notes), None, "size", [], "grounding", notes=s.notes)
    best = s.kept[0]
    words, longest, unit = dims(best)
    notes = list(s.notes)
    if unit == "px":
        notes.append("the pixel spacing is unknown, so the size is in pixels")
    text = f"The {target} ({_cite(best)}) measures {words} (longest {longest:.0f} {unit}; {best.size_source} extent)."
    return Answer(_with_notes(text, notes), round(longest, 2), "size", [best.number], "grounding", unit, notes)


def _containment(q: Question, ctx: GroundedContext) -> Answer:
    target = q.targets[0]
    s = scope(q, ctx, ctx.for_phrase(target))
    if not s.kept:
        return Answer(
            _with_notes(_none(target, s.where) + ".", s.notes), None, "containment", [], "grounding", notes=s.notes
        )
    best = s.kept[0]
    holder = None
    if best.parent_number is not None:
        holder = ctx.finding(best.parent_number)
    else:
        covering = [
            f
            for f in ctx.findings
            if f.phrase != best.phrase and f.number != best.number and is_inside(best, f) and f.on_slice(best.key_slice)
        ]
        holder = min(covering, key=lambda f: f.size_px[0] * f.size_px[1], default=None)
    if holder is not None:
        text = f"The {target} ({_cite(best)}) lies within the {holder.phrase} (box {holder.id})."
        return Answer(text, holder.phrase, "containment", [best.number, holder.number], "grounding")
    note = f"no grounded structure holds box {best.id}" + (
        f"; the ontology places a {best.label} in the {best.parent}" if best.parent else ""
    )
    return Answer(
        f"The {target} was found ({_cite(best)}), but {note}.",
        best.parent,
        "containment",
        [best.number],
        "grounding",
        notes=[note],
    )


def _measure(f: Finding, by_area: bool) -> float:
    mm = f.longest_mm
    if by_area or mm is None:  # by_area is False only when both findings have a size in mm
        return float(f.size_px[0] * f.size_px[1])
    return mm


def _comparison(q: Question, ctx: GroundedContext) -> Answer:
    a, b = q.targets[:2]
    fa, fb = ctx.for_phrase(a), ctx.for_phrase(b)
    missing = [p for p, f in ((a, fa), (b, fb)) if not f]
    if missing:
        present = [f[0] for f in (fa, fb) if f]
        text = (
            "Cannot compare: "
            + " and ".join(_none(p) for p in missing)
            + ("." if not present else f" ({present[0].phrase} is {boxes(present)}).")
        )
        return Answer(text, None, "comparison", [f.number for f in present], "grounding")
    x, y = fa[0], fb[0]
    by_area = x.longest_mm is None or y.longest_mm is None
    mx, my = _measure(x, by_area), _measure(y, by_area)
    unit = "px²" if by_area else "mm"
    what = "box area" if by_area else "longest"
    notes = ["the pixel spacing is unknown, so box areas in pixels are compared"] if by_area else []
    cite = f"{a} (box {x.id}, {what} {mx:.0f} {unit}) vs {b} (box {y.id}, {what} {my:.0f} {unit})"
    if mx == my:
        return Answer(
            _with_notes(f"Same size: {cite}.", notes),
            None,
            "comparison",
            [x.number, y.number],
            "grounding",
            notes=notes,
        )
    larger, smaller = (a, b) if mx > my else (b, a)
    text = (
        f"The {smaller} is smaller than the {larger}"
        if SMALLER.search(q.text)
        else f"The {larger} is larger than the {smaller}"
    )
    if _YES_NO.search(q.text):  # "Is A larger than B?": A is the subject
        asked_larger = not SMALLER.search(q.text)
        text = ("Yes: " if (larger == a) == asked_larger else "No: ") + text[0].lower() + text[1:]
    return Answer(
        _with_notes(f"{text}: {cite}.", notes),
        larger,
        "comparison",
        [x.number, y.number],
        "grounding",
        None if by_area else "mm",
        notes,
    )


_HANDLERS = {
    "presence": _presence,
    "laterality": _laterality,
    "location": _location,
    "count": _count,
    "size": _size,
    "containment": _containment,
    "comparison": _comparison,
}
