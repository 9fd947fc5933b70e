"""The :class:`Ontology`: terms and their indexes, name resolution, laterality flips, phrase search."""

from __future__ import annotations

import copy
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

from ..modality import guess_modality
from .mapping import SourceMapping, lookup_table, mapping_table, parse_user_mappings
from .model import (
    DEFAULT_CT_WINDOW,
    UNKNOWN_LEVEL,
    UNMAPPED_CLASS,
    Laterality,
    OntologyClass,
    OntologyError,
    Region,
    Resolution,
    Term,
    UnknownTermError,
)
from .normalise import SPELLING, display_text, flip_text, key_candidates, name_key, singular_variants, split_laterality

Hit = tuple[Term, "Laterality | None"]

# free-text phrase finding (find_phrases)
_WORD = re.compile(r"[A-Za-z0-9]+")
_SIDE: dict[str, Laterality] = {"left": "left", "right": "right", "bilateral": "bilateral"}
#: A one-word match of at most this many characters counts only when written in capitals ("ET",
#: "PE"), unless it is the term's own name or an ordinary word.
_ABBREVIATION_LEN = 3
_SHORT_WORDS = {"hip", "eye", "gut", "ear", "jaw", "arm", "leg", "toe", "rib"}


class Ontology:
    """Regions, classes and fine labels, with name resolution for source label names.

    Build it with :func:`medglip.ontology.load_ontology`; the constructor takes already checked
    records (see :mod:`medglip.ontology.loader`).
    """

    def __init__(
        self,
        *,
        windows: Mapping[str, tuple[float, float]],
        regions: Sequence[Region],
        classes: Sequence[OntologyClass],
        terms: Sequence[Term],
        context_words: Mapping[str, tuple[str, ...]],
        kind_fallbacks: Mapping[str, tuple[str, ...]],
        modality_names: Mapping[str, Mapping[str, str]],
        sources: Sequence[SourceMapping],
    ) -> None:
        self._windows = dict(windows)
        self._regions = {r.id: r for r in regions}
        self._classes = {c.name: c for c in classes}
        self._terms = {t.id: t for t in terms}
        self._sources = list(sources)
        self._user_sources: list[SourceMapping] = []
        self._fallbacks = dict(kind_fallbacks)
        self._modality = {m.upper(): {name_key(k): v for k, v in names.items()} for m, names in modality_names.items()}
        self._kind_of = {name_key(w): kind for kind, words in context_words.items() for w in words}
        self._build_indexes()
        self._table_cache: dict[str | None, tuple[dict[str, str], dict[str, str]]] = {}
        self._unmapped: Counter[tuple[str | None, str]] = Counter()
        self._lock = threading.Lock()
        self._check_targets(self._sources, "source mapping")
        for mod, names in self._modality.items():
            for target in names.values():
                self._require(target, f"modality name ({mod})")

    # ------------------------------------------------------------------ indexes
    def _build_indexes(self) -> None:
        self._plain: dict[str, str] = {}
        self._sided: dict[tuple[str, str], str] = {}
        self._children: dict[str, list[str]] = {}
        self._generic: dict[str, str] = {}
        specific: dict[tuple[str, str], tuple[int, str | None]] = {}
        for t in self._terms.values():
            for n in (t.name, *t.synonyms):
                self._index(self._plain, name_key(n), t, n)
            for n in t.base_names:
                self._index(self._sided, (name_key(n), t.side or ""), t, n)
            if t.parent:
                self._children.setdefault(t.parent, []).append(t.id)
            for kind in t.kinds:
                if t.generic:
                    self._generic[kind] = t.id
                    continue
                for depth, a in enumerate(self.ancestors(t)):
                    if a.level == "region":
                        break
                    best = specific.get((a.id, kind))
                    if best is None or depth < best[0]:
                        specific[(a.id, kind)] = (depth, t.id)
                    elif depth == best[0] and best[1] != t.id:
                        specific[(a.id, kind)] = (depth, None)  # ambiguous at this depth
        self._specific = {k: v[1] for k, v in specific.items() if v[1] is not None}
        self._max_words = max(len(k.split()) for k in self._plain)

    @staticmethod
    def _index(index: dict[Any, str], key: Any, term: Term, written: str) -> None:
        if not key or (isinstance(key, tuple) and not key[0]):
            raise OntologyError(f"term {term.id!r}: name or synonym {written!r} has no letters or digits")
        other = index.setdefault(key, term.id)
        if other != term.id:
            raise OntologyError(f"name {written!r} (key {key!r}) is used by both {other!r} and {term.id!r}")

    def _check_targets(self, mappings: Iterable[SourceMapping], what: str) -> None:
        for m in mappings:
            for name, target in m.names.items():
                self._require(target, f"{what} {list(m.match)} for {name!r}")

    def _require(self, target: str, what: str) -> None:
        if self._lookup_raw(target) is None:
            raise OntologyError(f"{what}: target {target!r} is not a term of the ontology")

    # ------------------------------------------------------------------ browsing
    @property
    def terms(self) -> tuple[Term, ...]:
        """All terms, the six region-level terms included."""
        return tuple(self._terms.values())

    @property
    def fine_terms(self) -> tuple[Term, ...]:
        """The fine labels: every term below the region level."""
        return tuple(t for t in self._terms.values() if t.level != "region")

    @property
    def classes(self) -> tuple[OntologyClass, ...]:
        return tuple(self._classes.values())

    @property
    def regions(self) -> tuple[Region, ...]:
        return tuple(self._regions.values())

    @property
    def ct_windows(self) -> dict[str, tuple[float, float]]:
        """CT window name → ``(low, high)`` HU."""
        return dict(self._windows)

    @property
    def source_mappings(self) -> tuple[SourceMapping, ...]:
        """User overrides first, then the shipped per-source mappings."""
        return tuple(self._user_sources + self._sources)

    def term(self, name: str | Term) -> Term:
        """The term with this id, name, synonym or phrase ("left kidney" gives ``kidney``).

        Raises:
            UnknownTermError: when nothing matches.
        """
        if isinstance(name, Term):
            return name
        if name in self._terms:
            return self._terms[name]
        hit = self._lookup_raw(name)
        if hit is None:
            raise UnknownTermError(str(name))
        return hit[0]

    def parent(self, term: str | Term) -> Term | None:
        t = self.term(term)
        return None if t.parent is None else self._terms[t.parent]

    def ancestors(self, term: str | Term) -> list[Term]:
        """The term itself, then its parent, ... up to its region."""
        t: Term | None = self.term(term)
        out = []
        while t is not None:
            out.append(t)
            t = None if t.parent is None else self._terms[t.parent]
        return out

    def children(self, term: str | Term) -> tuple[Term, ...]:
        return tuple(self._terms[c] for c in self._children.get(self.term(term).id, ()))

    def synonyms(self, term: str | Term) -> tuple[str, ...]:
        """The name and every synonym of a term, as written in the data."""
        t = self.term(term)
        return (t.name, *t.synonyms, *(n for n in t.base_names if n not in t.synonyms))

    def region_of(self, term: str | Term) -> Region:
        return self._regions[self.term(term).region]

    def generic_term(self, kind: str) -> Term | None:
        """The generic term of a context-word kind ("tumor" for kind ``tumor``), if the data has one."""
        tid = self._generic.get(kind)
        return None if tid is None else self._terms[tid]

    # ------------------------------------------------------------------ lookup
    def _lookup(self, key: str, side: Laterality | None = None) -> Hit | None:
        """Find a key (no side words in it when ``side`` is given)."""
        if side is None:
            for k in (key, *singular_variants(key)):
                if k in self._plain:
                    t = self._terms[self._plain[k]]
                    return t, t.side
            key, side = split_laterality(key)
            if side is None:
                return None
        for k in (key, *singular_variants(key)):
            if (k, side) in self._sided:
                return self._terms[self._sided[(k, side)]], side
        for k in (key, *singular_variants(key)):
            if k in self._plain:
                t = self._terms[self._plain[k]]
                return t, t.side or side
        return None

    def _lookup_raw(self, raw: str) -> Hit | None:
        for key in key_candidates(raw):
            hit = self._lookup(key)
            if hit is not None:
                return hit
        return None

    def _tables(self, source: str | None) -> tuple[dict[str, str], dict[str, str]]:
        if source not in self._table_cache:
            self._table_cache[source] = (
                mapping_table(self._user_sources, source),
                mapping_table(self._sources, source),
            )
        return self._table_cache[source]

    def _static(self, raw: str, source: str | None) -> tuple[Hit, str] | None:
        """Resolve without context words: user and source mappings, then the name itself."""
        keys = key_candidates(raw)
        for via, table in zip(("user", "source"), self._tables(source), strict=True):
            found = lookup_table(table, keys)
            if found is not None:
                target, side = found
                hit = self._lookup_raw(target)
                if hit is not None:
                    return (hit[0], hit[1] or side), via
        hit = self._lookup_raw(raw)
        return None if hit is None else (hit, "direct")

    def _context_kind(self, raw: str) -> tuple[str, Laterality | None] | None:
        for key in key_candidates(raw):
            base, side = split_laterality(key)
            for k in (base, *singular_variants(base)):
                if k in self._kind_of:
                    return self._kind_of[k], side
        return None

    def _from_context(self, kind: str, context: Iterable[str], source: str | None) -> Hit | None:
        """The organ-specific term of ``kind`` for the organs named in ``context``, if unambiguous."""
        found: dict[str, set[Laterality | None]] = {}
        for name in context:
            res = self._static(name, source)
            if res is None or res[0][0].generic:
                continue
            (term, side), _ = res
            match = None
            for k in (kind, *self._fallbacks.get(kind, ())):
                for a in self.ancestors(term):
                    if a.level == "region":
                        break
                    match = self._specific.get((a.id, k))
                    if match:
                        break
                if match:
                    break
            if match:
                found.setdefault(match, set()).add(side if side in ("left", "right") else None)
        if len(found) != 1:
            return None
        ((tid, sides),) = found.items()
        term = self._terms[tid]
        return term, (next(iter(sides)) if term.lateral and len(sides) == 1 else None)

    # ------------------------------------------------------------------ resolution
    def resolve(
        self, name: str, *, source: str | None = None, modality: str | None = None, context: Iterable[str] = ()
    ) -> Resolution:
        """What a source label name means.

        Args:
            name: the label name as the source writes it ("gluteus_maximus_left", "Tumour").
            source: the data set ("Task03_Liver", "Dataset003_Liver", "TotalSegmentator", ...);
                selects per-source mappings.
            modality: modality code or alias; selects modality defaults ("lesion" in dermoscopy).
            context: the other label names of the same case; a bare "tumor" next to "kidney" is a
                kidney tumor.

        Returns:
            A :class:`Resolution`. Unknown names come back with ``mapped=False`` (and are counted
            in :attr:`unmapped`); this never raises for a name.

        Order: user overrides, source mappings, organ context (for context words such as
        "cancer"), modality defaults, the name itself, the generic term of a context word.
        """
        name = str(name)
        static = self._static(name, source)
        if static is not None and static[1] != "direct":
            (term, side), via = static
            return self._make(name, term, side, via, source)
        ctx = self._context_kind(name)
        if ctx is not None:
            kind, side = ctx
            hit = self._from_context(kind, context, source)
            if hit is not None:
                return self._make(name, hit[0], side or hit[1], "context", source)
        mod = guess_modality(modality) if modality else None
        found = lookup_table(self._modality.get(mod, {}), key_candidates(name)) if mod else None
        if found is not None:
            hit = self._lookup_raw(found[0])
            if hit is not None:
                return self._make(name, hit[0], hit[1] or found[1], "modality", source)
        if ctx is not None and ctx[0] in self._generic:
            return self._make(name, self._terms[self._generic[ctx[0]]], ctx[1], "generic", source)
        if static is not None:
            (term, side), via = static
            return self._make(name, term, side, via, source)
        return self._unknown(name, source)

    @overload
    def resolve_labels(
        self, names: Mapping[int, str], *, source: str | None = ..., modality: str | None = ...
    ) -> dict[int, Resolution]: ...
    @overload
    def resolve_labels(
        self, names: Sequence[str], *, source: str | None = ..., modality: str | None = ...
    ) -> list[Resolution]: ...

    def resolve_labels(
        self, names: Mapping[int, str] | Sequence[str], *, source: str | None = None, modality: str | None = None
    ) -> dict[int, Resolution] | list[Resolution]:
        """Resolve all label names of one case, each with the others as context."""
        if isinstance(names, Mapping):
            ctx = tuple(names.values())
            return {k: self.resolve(v, source=source, modality=modality, context=ctx) for k, v in names.items()}
        ctx = tuple(names)
        return [self.resolve(v, source=source, modality=modality, context=ctx) for v in names]

    def _side_phrase(self, term: Term, side: Laterality | None) -> str:
        if term.side is None and side is not None:
            return f"{side} {term.name}"
        return term.name

    def _make(self, raw: str, term: Term, side: Laterality | None, via: str, source: str | None) -> Resolution:
        side = term.side or side
        phrase = self._side_phrase(term, side)
        chain = self.ancestors(term)[1:]
        lineage = [self._side_phrase(a, side if a.lateral else None) for a in chain]
        low, high = self._windows[term.ct_window]
        return Resolution(
            source_name=raw,
            phrase=phrase,
            label=term.name,
            mapped=True,
            term_id=term.id,
            class_name=term.class_name,
            region=self._regions[term.region].name,
            level=term.level,
            laterality=side,
            parent=lineage[0] if lineage else None,
            hierarchy=tuple(reversed(lineage)) + (phrase,),
            ct_window_name=term.ct_window,
            ct_window=(low, high),
            via=via,
            source=source,
        )

    def _unknown(self, raw: str, source: str | None) -> Resolution:
        with self._lock:
            self._unmapped[(source, raw)] += 1
        text = display_text(raw)
        side = None
        for key in key_candidates(raw):
            side = split_laterality(key)[1] or side
        low, high = self._windows.get(DEFAULT_CT_WINDOW, (-160.0, 240.0))
        return Resolution(
            source_name=raw,
            phrase=text,
            label=text,
            mapped=False,
            term_id=None,
            class_name=UNMAPPED_CLASS,
            region=None,
            level=UNKNOWN_LEVEL,
            laterality=side,
            parent=None,
            hierarchy=(text,),
            ct_window_name=DEFAULT_CT_WINDOW,
            ct_window=(low, high),
            via="unmapped",
            source=source,
        )

    # ------------------------------------------------------------------ unmapped names
    @property
    def unmapped(self) -> dict[tuple[str | None, str], int]:
        """``(source, name) → count`` of every name resolved so far that no term matched."""
        with self._lock:
            return dict(self._unmapped)

    def unmapped_report(self) -> list[dict[str, Any]]:
        """The unmapped names as rows ``{source, name, phrase, count}``, most frequent first."""
        rows = [{"source": s, "name": n, "phrase": display_text(n), "count": c} for (s, n), c in self.unmapped.items()]
        return sorted(rows, key=lambda r: (-r["count"], str(r["source"]), r["name"]))

    def clear_unmapped(self) -> None:
        with self._lock:
            self._unmapped.clear()

    # ------------------------------------------------------------------ overrides, flips, text
    def with_mappings(self, mappings: Mapping[str, Mapping[str, str]] | str | Path) -> Ontology:
        """A copy whose user overrides (``{source pattern: {name: canonical}}`` or a YAML file) come
        before every shipped mapping; ``"*"`` as pattern applies to every source."""
        extra = parse_user_mappings(mappings)
        self._check_targets(extra, "user mapping")
        other = copy.copy(self)
        other._user_sources = extra + self._user_sources
        other._table_cache = {}
        other._unmapped = Counter()
        other._lock = threading.Lock()
        return other

    def flip_laterality(self, phrase: str, *, strict: bool = False) -> str:
        """The phrase after a horizontal image flip: left and right swapped ("left kidney" → "right kidney").

        Args:
            strict: raise :class:`OntologyError` when the phrase names a term but the flipped
                phrase names none (e.g. "right middle lobe": the left lung has no middle lobe).
        """
        flipped = flip_text(phrase)
        if strict and flipped != phrase and not self.can_flip(phrase):
            raise OntologyError(f"{phrase!r} has no mirror-image term ({flipped!r} is not in the ontology)")
        return flipped

    def can_flip(self, phrase: str) -> bool:
        """False when ``phrase`` is a known term whose left/right-swapped phrase is not."""
        flipped = flip_text(phrase)
        return flipped == phrase or self._lookup_raw(phrase) is None or self._lookup_raw(flipped) is not None

    def find_phrases(self, text: str) -> list[tuple[tuple[int, int], Resolution]]:
        """Ontology phrases in free text, longest match first: ``[((start, end), resolution), ...]``.

        "left"/"right"/"bilateral" before a lateral term become its laterality. Abbreviations of up
        to three letters ("ET", "PE") only match when written in capitals.

        Example: "Is there a tumor in the left lung?" gives the spans of "tumor" (phrase
        "tumor") and "left lung" (phrase "left lung", laterality left).
        """
        words = [(m.start(), m.end(), SPELLING.get(m.group().lower(), m.group().lower())) for m in _WORD.finditer(text)]
        out: list[tuple[tuple[int, int], Resolution]] = []
        i, n = 0, len(words)
        while i < n:
            best: tuple[int, Resolution] | None = None
            side = _SIDE.get(words[i][2])
            starts: list[tuple[int, Laterality | None]] = [(i, None)] + ([(i + 1, side)] if side else [])
            for start, sd in starts:
                for end in range(min(n, start + self._max_words), start, -1):
                    if best is not None and end <= best[0]:
                        break
                    key = " ".join(w[2] for w in words[start:end])
                    hit = self._lookup(key, sd) if sd else self._lookup_as_written(key)
                    if hit is None:
                        continue
                    term, hit_side = hit
                    core = text[words[start][0] : words[end - 1][1]]
                    if (
                        end - start == 1
                        and len(core) <= _ABBREVIATION_LEN
                        and not core.isupper()
                        and key != term.name.lower()
                        and key not in _SHORT_WORDS
                    ):
                        continue
                    span_text = text[words[i][0] : words[end - 1][1]]
                    best = (end, self._make(span_text, term, hit_side, "direct", None))
                    break
            if best is None:
                i += 1
                continue
            end, res = best
            out.append(((words[i][0], words[end - 1][1]), res))
            i = end
        return out

    def _lookup_as_written(self, key: str) -> tuple[Term, Laterality | None] | None:
        """Look a key up as written (side words are handled by the caller, not stripped here)."""
        for k in (key, *singular_variants(key)):
            tid = self._plain.get(k)
            if tid is not None:
                t = self._terms[tid]
                return t, t.side
        return None

    def to_json(self) -> dict[str, Any]:
        """The whole ontology as JSON-serialisable data (for dataset cards and provenance)."""
        return {
            "ct_windows": {k: list(v) for k, v in self._windows.items()},
            "regions": [
                {"id": r.id, "name": r.name, "ct_window": r.ct_window, "synonyms": list(r.synonyms)}
                for r in self._regions.values()
            ],
            "classes": [{"name": c.name, "region": c.region, "ct_window": c.ct_window} for c in self._classes.values()],
            "terms": [t.to_json() for t in self._terms.values() if t.level != "region"],
            "sources": [{"match": list(m.match), "names": dict(m.names)} for m in self.source_mappings],
        }

    def __repr__(self) -> str:
        return (
            f"Ontology({len(self._regions)} regions, {len(self._classes)} classes, "
            f"{len(self._terms) - len(self._regions)} fine labels)"
        )
