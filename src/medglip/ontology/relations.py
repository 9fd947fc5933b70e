"""How two grounding phrases relate in the ontology: the same phrase, related, or unrelated.

Used where phrases of different images are compared (the inter-image region–word contrastive loss
of :mod:`medglip.model.contrast`): a region of phrase ``a`` is a *positive* for phrase ``b`` when
they are the same phrase, *neither* positive nor negative when they are related, and a *negative*
otherwise. Related (:meth:`PhraseRelations.relation` ``"related"``):

- synonyms and spellings of one term ("liver tumor" / "hepatic tumor"),
- one term an ancestor of the other in the part-of hierarchy ("liver" / "liver tumor",
  "abdomen" / "left kidney"),

in both cases only when the sides are compatible: equal, or one of them without a side (or
``bilateral``). "left kidney" and "right kidney" are therefore unrelated (negatives of each
other), as are "left lung" and "right upper lobe", while "kidney" and "left kidney tumor" are
related. A phrase the ontology does not know is related only to itself.

>>> from medglip.ontology import PhraseRelations, load_ontology
>>> rel = PhraseRelations(load_ontology())
>>> rel.relation("liver tumor", "liver"), rel.relation("left kidney", "right kidney")
('related', 'unrelated')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .normalise import name_key
from .ontology import Ontology

Relation = Literal["same", "related", "unrelated"]


@dataclass(frozen=True)
class _Phrase:
    key: str  # normalised text: equal keys are the same phrase
    term: str | None  # ontology term id (None: unknown phrase)
    side: str | None  # left / right / bilateral / None
    lineage: frozenset[str]  # the term and its ancestors' ids


def _sides_compatible(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b or "bilateral" in (a, b)


class PhraseRelations:
    """Relations between phrases from an :class:`Ontology` (resolutions cached per phrase).

    Args:
        ontology: the ontology the phrases are resolved with (``load_ontology()``).
    """

    def __init__(self, ontology: Ontology) -> None:
        self.ontology = ontology
        self._cache: dict[str, _Phrase] = {}

    def __deepcopy__(self, memo: dict) -> PhraseRelations:
        return self  # a read-only view of the ontology: copies of a model (EMA) share it

    def _info(self, phrase: str) -> _Phrase:
        hit = self._cache.get(phrase)
        if hit is None:
            r = self.ontology.resolve(phrase)
            key = name_key(phrase) or phrase.strip().lower()
            if r.mapped and r.term_id is not None:
                lineage = frozenset(t.id for t in self.ontology.ancestors(r.term_id))
                hit = _Phrase(key, r.term_id, r.laterality, lineage)
            else:
                hit = _Phrase(key, None, None, frozenset())
            self._cache[phrase] = hit
        return hit

    def relation(self, a: str, b: str) -> Relation:
        """``"same"`` (the same phrase, as written or normalised), ``"related"`` (see the module
        docstring) or ``"unrelated"``."""
        pa, pb = self._info(a), self._info(b)
        if pa.key == pb.key:
            return "same"
        if pa.term is None or pb.term is None or not _sides_compatible(pa.side, pb.side):
            return "unrelated"
        if pa.term == pb.term or pa.term in pb.lineage or pb.term in pa.lineage:
            return "related"
        return "unrelated"

    def table(self, rows: list[str], cols: list[str]) -> list[list[Relation]]:
        """``relation(rows[i], cols[j])`` for every pair (each distinct pair computed once)."""
        memo: dict[tuple[str, str], Relation] = {}
        out = []
        for a in rows:
            line = []
            for b in cols:
                k = (a, b)
                if k not in memo:
                    memo[k] = self.relation(a, b)
                line.append(memo[k])
            out.append(line)
        return out
