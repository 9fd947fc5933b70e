"""Standard codes of grounded phrases, for DICOM-SEG segments and SR findings.

:func:`coding_for` turns a phrase into a :class:`Coding` with these rules (every code comes from the
ontology's data, ``code: {scheme, value, meaning}`` per term, SNOMED CT as DICOM publishes it):

1. **term**: the phrase's term has a code → that code is the segmented property type / finding
   ("liver" → SCT 10200004 Liver); the side is a modifier ("left kidney" → Kidney + Left).
2. **kind**: a lesion without its own code is coded as its kind (its own, else its nearest lesion
   ancestor's: "liver tumor" → SCT 108369006 Tumor), located by its nearest coded anatomical ancestor
   ("in the Liver") — DICOM's post-coordinated way of saying "liver tumor".
3. **local**: anything else gets a code of the local scheme :data:`LOCAL_SCHEME` (value: the
   ontology term id, or the phrase for a phrase the ontology does not know; meaning: the phrase)
   and a :attr:`Coding.note` saying so; the SEG / SR carry the scheme's description.

Categories (DICOM CID 7150): lesions are Morphologically Abnormal Structures, regions / organs /
substructures Anatomical Structures; a phrase the ontology does not know is a local "Finding".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .model import Code, Term
from .ontology import Ontology

#: The local coding scheme (DICOM PS3.16 8.2: private schemes start with "99").
LOCAL_SCHEME = "99MEDGLIP"
LOCAL_SCHEME_NAME = "medglip local codes (ontology term ids and free-text phrases)"

ANATOMICAL_STRUCTURE = Code("SCT", "91723000", "Anatomical Structure")
ABNORMAL_STRUCTURE = Code("SCT", "49755003", "Morphologically Abnormal Structure")
LOCAL_FINDING = Code(LOCAL_SCHEME, "finding", "Grounded finding")
LATERALITY: dict[str, Code] = {
    "left": Code("SCT", "7771000", "Left"),
    "right": Code("SCT", "24028007", "Right"),
    "bilateral": Code("SCT", "51440002", "Bilateral"),
}


@dataclass(frozen=True)
class Coding:
    """How one phrase is coded.

    Attributes:
        phrase: the phrase coded.
        category: segmented property category / finding category (CID 7150).
        type: segmented property type / finding type.
        anatomy: where it is (a lesion's organ, a local term's coded ancestor), or None.
        laterality: side modifier (of ``type`` for anatomy, of ``anatomy`` for lesions), or None.
        how: ``"term"``, ``"kind"`` or ``"local"`` (module docstring).
        note: why a local or generic code was used; None for ``"term"``.
        hierarchy: the ontology hierarchy of the phrase (region → ... → phrase).
        level: the ontology level (``region``, ``organ``, ``substructure``, ``lesion``, ``unknown``).
    """

    phrase: str
    category: Code
    type: Code
    anatomy: Code | None
    laterality: Code | None
    how: str
    note: str | None
    hierarchy: tuple[str, ...]
    level: str

    @property
    def is_local(self) -> bool:
        return self.type.scheme == LOCAL_SCHEME

    def to_json(self) -> dict[str, Any]:
        return {
            "category": self.category.to_json(),
            "type": self.type.to_json(),
            "anatomy": None if self.anatomy is None else self.anatomy.to_json(),
            "laterality": None if self.laterality is None else self.laterality.to_json(),
            "how": self.how,
            "note": self.note,
        }


def _located(onto: Ontology, term: Term) -> Code | None:
    """The code of the nearest ancestor (the term excluded) that is anatomy and has a code."""
    for a in onto.ancestors(term)[1:]:
        if a.level != "lesion" and a.code is not None:
            return a.code
    return None


def _kind_code(onto: Ontology, term: Term) -> Code | None:
    """The code of the generic term of the lesion's kind (its own, else its nearest lesion ancestor's)."""
    for a in onto.ancestors(term):
        if a.level != "lesion":
            break
        for kind in a.kinds:
            g = onto.generic_term(kind)
            if g is not None and g.code is not None:
                return g.code
    return None


def coding_for(onto: Ontology, phrase: str) -> Coding:
    """The :class:`Coding` of ``phrase`` (rules in the module docstring); never raises for a phrase."""
    res = onto.resolve(phrase)
    side = LATERALITY.get(res.laterality or "")
    if not res.mapped or res.term_id is None:
        note = f"'{phrase}' is not in medglip's ontology: coded in the local scheme {LOCAL_SCHEME} (no standard code)"
        return Coding(
            phrase,
            LOCAL_FINDING,
            Code(LOCAL_SCHEME, _local_value(phrase), _meaning(phrase)),
            None,
            side,
            "local",
            note,
            res.hierarchy,
            res.level,
        )
    term = onto.term(res.term_id)
    lesion = term.level == "lesion"
    category = ABNORMAL_STRUCTURE if lesion else ANATOMICAL_STRUCTURE
    where = _located(onto, term)
    if term.code is not None:
        return Coding(
            phrase, category, term.code, where if lesion else None, side, "term", None, res.hierarchy, res.level
        )
    kind = _kind_code(onto, term) if lesion else None
    if kind is not None:
        note = f"no standard code for '{term.name}': coded as its kind ({kind.meaning})" + (
            f" in the {where.meaning}" if where is not None else ""
        )
        return Coding(phrase, category, kind, where, side, "kind", note, res.hierarchy, res.level)
    note = f"no standard code for '{term.name}' in medglip's ontology: coded in the local scheme {LOCAL_SCHEME}" + (
        f", located in the {where.meaning}" if where is not None else ""
    )
    return Coding(
        phrase,
        category,
        Code(LOCAL_SCHEME, term.id[:64], _meaning(term.name)),
        where,
        side,
        "local",
        note,
        res.hierarchy,
        res.level,
    )


def _meaning(text: str) -> str:
    """A code meaning (DICOM LO: at most 64 characters, no backslash)."""
    return text.replace("\\", "/")[:64] or "finding"


def _local_value(phrase: str) -> str:
    """A local code value: the phrase's words joined by underscores, at most 64 characters (values
    longer than 16 go to DICOM's LongCodeValue)."""
    return ("_".join(phrase.lower().split()) or "finding").replace("\\", "/")[:64]
