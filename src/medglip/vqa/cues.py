"""Question-type cue words: which kind of question a text asks, and the side words outside phrases.

The anatomy and findings come from the ontology (:meth:`Ontology.find_phrases`); only the small
vocabulary of *how* a question asks lives here. Kinds are tried in the order of :data:`_CUES`:
the more specific cues first, so "How many nodules are visible?" is a count (not a presence) and
"Which is larger, ..." a comparison (not a containment).
"""

from __future__ import annotations

import re

_ANY = r"[^?.!]*"

_CUES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "comparison",
        (
            rf"\b(larger|bigger|smaller|greater|longer|wider)\b{_ANY}\bthan\b",
            rf"\bwhich\b{_ANY}\b(larger|bigger|smaller|largest|biggest|smallest)\b",
            r"\b(vs\.?|versus)\b",
            r"\bcompar(e|ed|ing|ison)\b",
        ),
    ),
    ("count", (r"\bhow many\b", r"\bnumber of\b", r"\bcount\b")),
    (
        "size",
        (
            r"\bhow (big|large|long|wide)\b",
            r"\bwhat size\b",
            r"\bsize\b",
            r"\bdiameter\b",
            r"\bmeasure(s|ment|ments)?\b",
            r"\bdimensions?\b",
            r"\bextent\b",
        ),
    ),
    (
        "laterality",
        (
            r"\b(which|what) side\b",
            r"\bleft or right\b",
            r"\bright or left\b",
            r"\bwhich hemisphere\b",
            r"\blaterality\b",
            r"\b(unilateral or bilateral|bilateral or unilateral)\b",
        ),
    ),
    (
        "containment",
        (
            r"\b(which|what) (organ|structure|anatomical structure|anatomy|body part|part of the body)\b",
            r"\bin (which|what)\b",
            r"\bwithin (which|what)\b",
            rf"\b(which|what)\b{_ANY}\bcontain(s|ing)?\b",
            r"\bpart of (which|what)\b",
        ),
    ),
    ("location", (r"\bwhere\b", r"\blocat(e|ed|ion)\b", r"\b(which|what) part of the image\b")),
    (
        "presence",
        (
            r"^\s*(is|are) there\b",
            r"\bany\b",
            r"^\s*(does|do|did)\b"
            + _ANY
            + r"\b(show|shows|demonstrate|demonstrates|contain|contains|have|has|reveal|reveals|depict|depicts)\b",
            r"\b(present|visible|seen|identified|identifiable|detected|detectable|evident|noted|observed|"
            r"apparent|appreciable|exist|exists)\b",
            r"\bevidence of\b",
            r"^\s*(can|could) you (see|find|identify|detect|spot)\b",
            rf"^\s*(is|are) (the|a|an)\b{_ANY}\b(in|within|inside)\b",  # "Is the tumor in the right kidney?"
        ),
    ),
)

_COMPILED = tuple((kind, tuple(re.compile(p, re.IGNORECASE) for p in pats)) for kind, pats in _CUES)

#: "Is the tumor on the left?": a yes/no question about a thing (not "is there") with a side word.
_ABOUT_THING = re.compile(r"^\s*(is|are|was|were)\s+(the|this|that|these|those|it|they)\b", re.IGNORECASE)

#: Side words outside the ontology phrases ("on the right", "left-sided", "both sides", "both kidneys").
_SIDE_WORD = re.compile(r"\b(left|right|bilateral|bilaterally|both sides|both)\b", re.IGNORECASE)

#: "smaller" questions: a comparison whose answer names the smaller one in its text.
SMALLER = re.compile(r"\b(smaller|smallest|shorter|narrower)\b", re.IGNORECASE)


def question_kind(text: str, free_sides: list[str]) -> str:
    """The kind of question ``text`` asks (one of ``QUESTION_KINDS``).

    Args:
        text: the question.
        free_sides: side words found outside the ontology phrases (see :func:`free_sides`); a
            yes/no question about a thing with one of them ("Is the tumor on the left?") asks for
            the laterality.
    """
    for kind, patterns in _COMPILED:
        if kind == "presence" and free_sides and _ABOUT_THING.search(text):
            return "laterality"
        if any(p.search(text) for p in patterns):
            return kind
    if free_sides and _ABOUT_THING.search(text):
        return "laterality"
    return "open"


def free_sides(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """Side words (``left`` / ``right`` / ``bilateral``) outside ``spans``, in text order.

    "left or right" and "right or left" ask for a side instead of naming one: they give nothing.
    """
    masked = list(text)
    for s, e in spans:
        masked[s:e] = " " * (e - s)
    plain = re.sub(r"\b(left or right|right or left)\b", " ", "".join(masked), flags=re.IGNORECASE)
    out = []
    for m in _SIDE_WORD.finditer(plain):
        word = m.group(1).lower()
        out.append("bilateral" if word in ("bilaterally", "both sides", "both") else word)
    return out
