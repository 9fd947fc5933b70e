"""Resolve a case's source label names to canonical hierarchical phrases (via the ontology)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..case import Case
from ..ontology import Ontology


@dataclass(frozen=True)
class LabelInfo:
    """What one source label value means, ready to be copied into annotations and categories."""

    source_label: str
    phrase: str
    label: str
    class_name: str | None  # None for a region-level term, as the ontology resolves it
    region: str
    level: str
    laterality: str | None
    parent: str | None
    hierarchy: tuple[str, ...]
    ct_window: str | None
    mapped: bool

    def category_fields(self) -> dict[str, Any]:
        return {
            "name": self.phrase,
            "supercategory": self.class_name,
            "label": self.label,
            "class": self.class_name,
            "region": self.region,
            "level": self.level,
            "laterality": self.laterality,
            "parent": self.parent,
            "hierarchy": list(self.hierarchy),
            "mapped": self.mapped,
        }


def resolve_case_labels(case: Case, onto: Ontology, mapping: dict[str, dict[str, str]]) -> list[dict[int, LabelInfo]]:
    """One ``{value: LabelInfo}`` per label map of ``case``.

    A user mapping (``{source: {source_label: phrase}}``, source ``"*"`` for all) is applied first;
    every other name goes through the ontology with the case's other label names as context, so a
    bare "cancer" next to "liver" becomes "liver tumor". Unknown names are kept (``mapped=False``).
    """
    context = tuple(n for lm in case.labels for n in lm.names.values())
    user = {**mapping.get("*", {}), **mapping.get(case.source, {})}
    out: list[dict[int, LabelInfo]] = []
    for lm in case.labels:
        infos: dict[int, LabelInfo] = {}
        for value, name in lm.names.items():
            r = onto.resolve(user.get(name, name), source=case.source, modality=case.modality, context=context)
            infos[int(value)] = LabelInfo(
                source_label=name,
                phrase=r.phrase,
                label=r.label,
                class_name=r.class_name,
                region=r.region or "unmapped",
                level=r.level,
                laterality=r.laterality,
                parent=r.parent,
                hierarchy=tuple(r.hierarchy),
                ct_window=r.ct_window_name,
                mapped=r.mapped,
            )
        out.append(infos)
    return out
