"""Typed records of the label ontology: regions, classes, terms, and the result of resolving a name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..core.intensity import DEFAULT_DISPLAY_WINDOW
from ..errors import MedglipError

#: Hierarchy levels, from the root down. A term's parent is never at a deeper level than the term.
LEVELS: tuple[str, ...] = ("region", "organ", "substructure", "lesion")

#: Level reported for a name that could not be mapped.
UNKNOWN_LEVEL = "unknown"

#: Class reported for a name that could not be mapped.
UNMAPPED_CLASS = "unmapped"

#: CT window used for unmapped names.
DEFAULT_CT_WINDOW = DEFAULT_DISPLAY_WINDOW  # for terms that name none

Side = Literal["left", "right"]
Laterality = Literal["left", "right", "bilateral"]


class OntologyError(MedglipError):
    """The ontology data is inconsistent (unknown parent, cycle, duplicate synonym, ...)."""


class UnknownTermError(OntologyError, KeyError):
    """A phrase or id names no term of the ontology."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no ontology term named {name!r}")

    def __str__(self) -> str:  # KeyError would quote the message again
        return self.args[0]


@dataclass(frozen=True)
class Code:
    """A coded concept (DICOM code sequence item): coding scheme designator, code value, code meaning.

    The ontology stores SNOMED CT codes (``SCT``) as the DICOM standard's context groups publish them
    (pydicom / highdicom carry those tables); DICOM-SEG segments and SR findings are coded with them.
    """

    scheme: str
    value: str
    meaning: str

    def to_json(self) -> dict[str, str]:
        return {"scheme": self.scheme, "value": self.value, "meaning": self.meaning}


@dataclass(frozen=True)
class Region:
    """One of the body regions (the roots of the hierarchy).

    Attributes:
        id: identifier, e.g. ``"head_and_neck"``.
        name: the region's phrase, e.g. ``"head and neck"`` (also a term of level ``region``).
        ct_window: name of the default CT window of the region's terms.
        synonyms: other names of the region.
        code: its standard code (SNOMED CT), if the ontology gives one.
    """

    id: str
    name: str
    ct_window: str
    synonyms: tuple[str, ...] = ()
    code: Code | None = None


@dataclass(frozen=True)
class OntologyClass:
    """A coarse class (Med-GLIP style regrouping of fine labels); each lies in exactly one region."""

    name: str
    region: str
    ct_window: str


@dataclass(frozen=True)
class Term:
    """A fine label.

    Attributes:
        id: stable identifier (snake case of the name unless given).
        name: canonical lower-case phrase without laterality, e.g. ``"gluteus maximus"``.
        level: one of :data:`LEVELS`.
        class_name: the coarse class (None only for region-level terms).
        region: id of the body region.
        parent: id of the term this one is part of (None only for regions).
        lateral: True when the structure comes as left and right ("kidney").
        side: fixed side of a term whose name includes it ("right upper lobe"), else None.
        mirror: id of the opposite-side term of a fixed-side term, if it exists.
        synonyms: other names (as written in the data), the name itself excluded.
        base_names: names without the side of a fixed-side term ("upper lobe").
        ct_window: preferred CT window name.
        kinds: what context words this term specialises ("tumor" for "kidney tumor").
        generic: True for the fallback term of its kinds ("tumor" for a bare "cancer").
        code: its standard code (SNOMED CT, as published in DICOM's context groups), if any.
    """

    id: str
    name: str
    level: str
    class_name: str | None
    region: str
    parent: str | None
    lateral: bool = False
    side: Side | None = None
    mirror: str | None = None
    synonyms: tuple[str, ...] = ()
    base_names: tuple[str, ...] = ()
    ct_window: str = DEFAULT_CT_WINDOW
    kinds: tuple[str, ...] = ()
    generic: bool = False
    code: Code | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "level": self.level,
            "class": self.class_name,
            "region": self.region,
            "parent": self.parent,
            "lateral": self.lateral,
            "ct_window": self.ct_window,
        }
        for key, value in (
            ("side", self.side),
            ("mirror", self.mirror),
            ("synonyms", list(self.synonyms)),
            ("base_names", list(self.base_names)),
            ("kinds", list(self.kinds)),
        ):
            if value:
                out[key] = value
        if self.generic:
            out["generic"] = True
        if self.code is not None:
            out["code"] = self.code.to_json()
        return out


@dataclass(frozen=True)
class Resolution:
    """What a source label name means in the ontology.

    Attributes:
        source_name: the name exactly as the source wrote it.
        phrase: the grounding phrase, laterality included ("left gluteus maximus"); for an unmapped
            name, the normalised text ("weird_label_3" -> "weird label 3").
        label: the fine label without laterality ("gluteus maximus").
        mapped: False when the name is unknown (then ``class_name`` is ``"unmapped"`` and ``level``
            ``"unknown"``); unknown names are kept, never dropped.
        term_id: id of the matched term (None when unmapped).
        class_name: coarse class (None for a region-level term).
        region: the body region's name (None when unmapped).
        level: the term's level, or ``"unknown"``.
        laterality: ``"left"``, ``"right"``, ``"bilateral"`` or None.
        parent: the parent's phrase, carrying the laterality when the parent is lateral too.
        hierarchy: phrases from the region down to ``phrase`` (ancestors included).
        ct_window_name: the preferred CT window's name; ``ct_window`` its ``(low, high)`` HU.
        via: how the name was resolved: ``"user"``, ``"source"``, ``"context"``, ``"modality"``,
            ``"direct"``, ``"generic"`` or ``"unmapped"``.
        source: the source (data set) name passed to the resolver, if any.
    """

    source_name: str
    phrase: str
    label: str
    mapped: bool
    term_id: str | None
    class_name: str | None
    region: str | None
    level: str
    laterality: Laterality | None
    parent: str | None
    hierarchy: tuple[str, ...]
    ct_window_name: str
    ct_window: tuple[float, float]
    via: str
    source: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "source_name": self.source_name,
            "phrase": self.phrase,
            "label": self.label,
            "mapped": self.mapped,
            "term_id": self.term_id,
            "class": self.class_name,
            "region": self.region,
            "level": self.level,
            "laterality": self.laterality,
            "parent": self.parent,
            "hierarchy": list(self.hierarchy),
            "ct_window_name": self.ct_window_name,
            "ct_window": list(self.ct_window),
            "via": self.via,
            "source": self.source,
        }
