"""Candidate containers of a target, for containment questions ("Which organ contains the tumor?").

The answer can only name a structure that was grounded, so the question grounds the target plus a
bounded list of structures that may hold it (at most :data:`MAX_CANDIDATES`, so the prompt stays
short and the grounding fast). The rule, from the ontology:

1. The target's own ancestors below the body region, nearest first ("enhancing tumor" → tumor core,
   brain tumor, brain). A lateral ancestor is asked as its two sides ("kidney stone" → left kidney,
   right kidney), or as the one side the question names.
2. A generic finding with no organ of its own ("tumor", "cyst", "nodule": the ontology's
   ``generic`` terms) → the parents of the organ-specific terms of the same kind (``Term.kinds``:
   "liver tumor" → liver), taken round-robin over the body regions (so the head, the thorax, the
   abdomen, ... each get a candidate before any region gets a second one), in ontology order.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..ontology import Ontology, Term, UnknownTermError

#: Most phrases a containment question grounds besides its target.
MAX_CANDIDATES = 7


def container_candidates(
    onto: Ontology, target: str, *, side: str | None = None, limit: int = MAX_CANDIDATES
) -> tuple[str, ...]:
    """Up to ``limit`` phrases of structures that may contain ``target`` (see the module docstring)."""
    try:
        term = onto.term(target)
    except UnknownTermError:
        return ()
    out: list[str] = []
    for phrase in _ancestor_phrases(onto, term, side):
        if phrase not in out and phrase != target:
            out.append(phrase)
    if term.generic or not out:
        for parent in _kind_parents(onto, term):
            for phrase in _sided(parent, side):
                if phrase not in out and phrase != target:
                    out.append(phrase)
    return tuple(out[:limit])


def _sided(term: Term, side: str | None) -> list[str]:
    if not term.lateral or term.side is not None:
        return [term.name]
    if side in ("left", "right"):
        return [f"{side} {term.name}"]
    return [f"left {term.name}", f"right {term.name}"]


def _ancestor_phrases(onto: Ontology, term: Term, side: str | None) -> Iterator[str]:
    for a in onto.ancestors(term)[1:]:
        if a.level == "region":
            return
        yield from _sided(a, side)


def _kind_parents(onto: Ontology, term: Term) -> list[Term]:
    """Round-robin over regions of the parents of the specific terms sharing ``term``'s kinds."""
    kinds = set(term.kinds)
    if not kinds:
        return []
    per_region: dict[str, list[Term]] = {r.id: [] for r in onto.regions}
    for t in onto.fine_terms:
        if t.generic or not kinds & set(t.kinds):
            continue
        parent = onto.parent(t)
        # a parent that is itself a finding ("liver metastasis" under "liver tumor") or a whole
        # region ("head and neck tumor") names no organ to point at
        if parent is None or parent.level in ("region", "lesion") or parent in per_region[parent.region]:
            continue
        per_region[parent.region].append(parent)
    out: list[Term] = []
    depth = 0
    while any(len(v) > depth for v in per_region.values()):
        out += [v[depth] for v in per_region.values() if len(v) > depth]
        depth += 1
    return out
