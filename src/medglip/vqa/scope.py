"""Which findings of a target a question is about: restricted to its container and / or patient side.

Rules (docs/grounded_api.md, medglip.vqa):
- a container of one side ("left lung") whose box lies on the patient's other side is not used
  (a wrong detection), and a finding on the other side never counts as inside it;
- with a container that WAS found, a finding counts when it lies in one of the container's
  findings: its ``parent_number`` points at it, or at least :data:`medglip.core.rules.CONTAINMENT`
  of its box lies inside the container's box (2D boxes; for volumes the key-slice boxes). A side asked
  besides a container of no (or another) side ("a tumor on the left of the brain") is checked too;
- with a container that was NOT found, only the side is checked (the container's side when the
  question names none), and a note says so;
- with a side only, a finding counts when its ``side`` equals it; ``bilateral`` keeps the findings
  on either side (the caller checks both are there). Findings of unknown side (no patient
  orientation: US / ENDO / DERM / PATH) are kept, with a note that the side could not be checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..context import Finding, GroundedContext
from ..core.boxes import inside_fraction
from ..core.rules import CONTAINMENT
from ..ontology import load_ontology
from .question import Question

_OPPOSITE = {"left": "right", "right": "left"}


@dataclass
class Scope:
    """The findings kept, the container findings used, and caveats to report."""

    kept: list[Finding]
    containers: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    where: str = ""  # " in the left lung", " on the patient's left", ...


def is_inside(f: Finding, holder: Finding) -> bool:
    """``f`` lies in ``holder`` (its container by the context, or ≥ :data:`CONTAINMENT` of its box)."""
    if f.number == holder.number:
        return False
    if f.parent_number == holder.number:
        return True
    if f.slices is not None and holder.slices is not None:  # volumes: they must share slices
        if f.slices[1] < holder.slices[0] or holder.slices[1] < f.slices[0]:
            return False
    return inside_fraction(f.box[:2], f.box[2:], holder.box[:2], holder.box[2:]) >= CONTAINMENT


def _container_side(question: Question, container: list[Finding], context: GroundedContext) -> str | None:
    if container:
        return container[0].laterality
    onto = context.ontology or load_ontology()
    return onto.resolve(question.container).laterality if question.container else None


def by_side(findings: list[Finding], side: str | None, notes: list[str], modality: str) -> list[Finding]:
    """Findings on ``side`` (see the module docstring); ``bilateral`` keeps left and right ones."""
    if side not in ("left", "right", "bilateral"):
        return list(findings)
    wanted = ("left", "right") if side == "bilateral" else (side,)
    unknown = [f for f in findings if f.side is None]
    if unknown:
        notes.append(f"the patient side is not known on {modality or 'this'} images, so the side was not checked")
    return [f for f in findings if f.side in wanted or f.side is None]


def scope(question: Question, context: GroundedContext, findings: list[Finding]) -> Scope:
    """Restrict ``findings`` (of the target) to the question's container and side."""
    notes: list[str] = []
    side = question.side
    if question.container:
        holders = context.for_phrase(question.container)
        c_side = _container_side(question, holders, context)
        other = _OPPOSITE.get(c_side or "")
        if other:  # a "left lung" box on the patient's right is a wrong detection, not a container
            wrong = [h for h in holders if h.side == other]
            if wrong:
                nums = ", ".join(f"box {h.id}" for h in wrong)
                notes.append(f"{nums} for the {question.container} lies on the patient's {other}, so it was not used")
            holders = [h for h in holders if h.side != other]
        if holders:
            # inside a sided container, a finding seen on the other side contradicts it
            kept = [f for f in findings if any(is_inside(f, h) for h in holders) and not (other and f.side == other)]
            if side and side != c_side:
                kept = by_side(kept, side, notes, context.modality)
            where = f" in the {question.container}" + (
                f" on the patient's {side}" if side and side != c_side and side != "bilateral" else ""
            )
            return Scope(kept, holders, notes, where)
        side = side or c_side
        if side in ("left", "right"):
            notes.append(f"the {question.container} was not found, so only the patient side ({side}) was checked")
        else:
            notes.append(f"the {question.container} was not found, so the finding could not be checked to lie in it")
        kept = by_side(findings, side, notes, context.modality)
        return Scope(kept, [], notes, f" on the patient's {side}" if side in ("left", "right") else "")
    kept = by_side(findings, side, notes, context.modality)
    where = {"left": " on the patient's left", "right": " on the patient's right", "bilateral": " on both sides"}.get(
        side or "", ""
    )
    return Scope(kept, [], notes, where)
