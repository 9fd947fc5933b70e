"""Parse a free-text question into a :class:`Question`: its kind, ontology targets, container and side.

Rules (ontology first; the cue words of :mod:`.cues` only give the kind):

- Phrases are the ontology's longest matches (:meth:`Ontology.find_phrases`: names, synonyms,
  plurals, "left"/"right" prefixes). "liver lesion" is the ontology's "liver tumor".
- The **container** is an anatomical phrase (not a finding) written after "in / within / inside /
  of / into" or, failing that, the anatomical phrase of a question that also names a finding
  ("Does the liver show a lesion?" → liver). Comparisons have none.
- A generic finding ("tumor", "lesion", "mass") is made organ-specific by the container ("a tumor
  in the left lung" → "lung tumor") and by the modality ("lesion" in dermoscopy → "skin lesion"),
  with :meth:`Ontology.resolve` and its ``context`` / ``modality``.
- Findings are grounded without a side ("left kidney tumor" → "kidney tumor", side left), since
  their side is measured on the image (``Finding.side``); sided anatomy keeps it ("left kidney").
- **side**: a side word outside the phrases ("on the right"), else the container's side, else the
  side a finding was named with ("left kidney tumor"); sided anatomy keeps its side in the phrase
  only ("left kidney": side None).
- Comparisons need two targets; one lateral structure with "left/right" or "which ... is larger"
  ("Which kidney is larger?", "Is the left kidney larger than the right?") means its two sides.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import MedglipError
from ..ontology import Ontology, Resolution, UnknownTermError, load_ontology
from .candidates import MAX_CANDIDATES, container_candidates
from .cues import free_sides, question_kind
from .question import Question

_CONTAINER_PREP = re.compile(
    r"\b(in|within|inside|of|into|throughout)\s+(the\s+|a\s+|an\s+|this\s+|that\s+|"
    r"his\s+|her\s+|their\s+|patient'?s\s+)?$",
    re.IGNORECASE,
)
_WHICH = re.compile(r"\b(which|what)\s+$", re.IGNORECASE)
_ANATOMY = ("region", "organ", "substructure")

#: Longest question accepted (characters): a question, not a document.
MAX_QUESTION_CHARS = 2000


def parse_question(text: str, *, ontology: Ontology | None = None, modality: str | None = None) -> Question:
    """Parse ``text`` (see the module docstring for the rules).

    Args:
        text: the question, e.g. "Is there a tumor in the left lung?".
        ontology: the ontology (default: :func:`medglip.ontology.load_ontology`).
        modality: the image's modality when known (an addition: makes "lesion" a skin lesion in
            dermoscopy, as the dataset builder does).

    Raises:
        MedglipError: an empty question, or a closed-kind question naming no ontology structure or
            finding (the message quotes the question).
    """
    if not isinstance(text, str):
        raise MedglipError(f"a question must be a string, got {type(text).__name__}")
    text = " ".join(text.split())
    if not text:
        raise MedglipError("empty question: ask e.g. 'Is there a tumor in the left lung?'")
    if len(text) > MAX_QUESTION_CHARS:
        raise MedglipError(f"question of {len(text)} characters is too long (at most {MAX_QUESTION_CHARS})")
    onto = ontology or load_ontology()
    found = onto.find_phrases(text)
    sides = free_sides(text, [span for span, _ in found])
    kind = question_kind(text, sides)
    if not found:
        if kind == "open":
            return Question(text, "open", (), ())
        raise MedglipError(
            f"no anatomical structure or finding recognised in {text!r}: name one the ontology "
            "knows (e.g. 'liver', 'left kidney', 'brain tumor'; `medglip resolve NAME` checks a name)"
        )
    if kind == "comparison":
        return _comparison(text, found, sides, onto)
    asked = _asked_for(text, found)
    if asked is not None:  # "Which kidney has the stone?": the structure is the answer, not a container
        found = [f for f in found if f[1] is not asked]
        kind = "laterality" if _lateral(onto, asked) else "containment"
    container_i = _container_index(text, found)
    container = found[container_i][1] if container_i is not None else None
    rest = [r for i, (_, r) in enumerate(found) if i != container_i]
    if not rest:  # only anatomy: the container is itself the subject ("Is the liver visible?")
        assert container is not None  # found is never empty here, so an empty rest means it held the container
        rest, container = [container], None
    pick = next((r for r in rest if r.level == "lesion"), rest[0])
    target = _specific(onto, pick, container or asked, modality)  # "which lung ... nodule" → lung nodule
    side = _side(sides, container, target)
    target_phrase = target.label if target.level == "lesion" and target.laterality else target.phrase
    extras = tuple(r.phrase for r in rest if r is not pick)
    if kind == "containment":
        cands = container_candidates(onto, target.label, side=side if side in ("left", "right") else None)
        cands = (asked.phrase, *cands) if asked is not None else cands
        phrases = _unique((target_phrase, *((container.phrase,) if container else ()), *cands))
        phrases = phrases[: 1 + MAX_CANDIDATES]
    else:
        phrases = _unique((target_phrase, *((container.phrase,) if container else ()), *extras))
    return Question(text, kind, phrases, (target_phrase,), container.phrase if container else None, side)


def _unique(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def _asked_for(text: str, found: list[tuple[tuple[int, int], Resolution]]) -> Resolution | None:
    """The anatomy a "which ..." question asks for ("which hemisphere", "which kidney"), when another
    phrase (the target) is named too."""
    if len(found) < 2:
        return None
    for (start, _), res in found:
        if res.level in _ANATOMY and _WHICH.search(text[:start]):
            return res
    return None


def _container_index(text: str, found: list[tuple[tuple[int, int], Resolution]]) -> int | None:
    """Index of the container among the found phrases (see the module docstring), else None."""
    if len(found) < 2:
        return None
    anatomy = [i for i, (_, r) in enumerate(found) if r.level in _ANATOMY]
    for i in anatomy:
        if _CONTAINER_PREP.search(text[: found[i][0][0]]):
            return i
    if anatomy and any(r.level not in _ANATOMY for _, r in found):
        return anatomy[-1]
    return None


def _specific(onto: Ontology, res: Resolution, container: Resolution | None, modality: str | None) -> Resolution:
    """The organ- / modality-specific term for a generic finding ("tumor" in the liver → liver tumor)."""
    try:
        generic = res.term_id is not None and onto.term(res.term_id).generic
    except UnknownTermError:
        generic = False
    if not generic:
        return res
    context = (container.phrase,) if container is not None else ()
    better = onto.resolve(res.label, context=context, modality=modality)
    if not better.mapped or better.via not in ("context", "modality"):
        return res
    if better.laterality is None and res.laterality is not None:  # "left tumor": keep the written side
        return onto.resolve(f"{res.laterality} {better.label}")
    return better


def _side(sides: list[str], container: Resolution | None, target: Resolution) -> str | None:
    if sides:
        return "bilateral" if "bilateral" in sides or {"left", "right"} <= set(sides) else sides[0]
    if container is not None and container.laterality:
        return container.laterality
    # a finding is grounded without its side, so the side becomes a check; sided anatomy ("left
    # atrium", near the midline) keeps its side in the phrase and is trusted to the grounder
    return target.laterality if target.level == "lesion" else None


def _comparison(
    text: str, found: list[tuple[tuple[int, int], Resolution]], sides: list[str], onto: Ontology
) -> Question:
    """Two targets: the first two phrases, or the two sides of one lateral structure."""
    phrases = list(_unique(tuple(r.phrase for _, r in found)))
    if len(phrases) == 1:
        res = found[0][1]
        lateral = _lateral(onto, res)
        if lateral and res.laterality in ("left", "right"):
            other = onto.flip_laterality(res.phrase)
            if other != res.phrase and (not sides or other.split()[0] in sides):
                phrases.append(other)
        elif lateral and res.laterality is None:
            phrases = [f"left {res.label}", f"right {res.label}"]
    if len(phrases) < 2:
        raise MedglipError(
            f"a comparison needs two structures or findings, found only {phrases[0]!r} in {text!r}: "
            "ask e.g. 'Is the liver tumor larger than the left kidney?'"
        )
    targets = tuple(phrases[:2])
    return Question(text, "comparison", targets, targets, None, None)


def _lateral(onto: Ontology, res: Resolution) -> bool:
    try:
        return res.term_id is not None and onto.term(res.term_id).lateral
    except UnknownTermError:
        return False


def question_from_json(data: dict[str, Any]) -> Question:
    """The inverse of :meth:`Question.to_json` (for services and stored evaluations)."""
    return Question(
        str(data["text"]),
        str(data["kind"]),
        tuple(data.get("phrases", ())),
        tuple(data.get("targets", ())),
        data.get("container"),
        data.get("side"),
    )
