"""Find ontology phrases in free text (questions, reports) by longest match over names and synonyms."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from .model import Laterality, Resolution, Term
from .normalise import SPELLING, singular_variants

if TYPE_CHECKING:
    from .ontology import Ontology

_WORD = re.compile(r"[A-Za-z0-9]+")
_SIDE: dict[str, Laterality] = {"left": "left", "right": "right", "bilateral": "bilateral"}
#: A one-word match of at most this many characters counts only when written in capitals ("ET",
#: "PE"), unless it is the term's own name or an ordinary word.
_ABBREVIATION_LEN = 3
_SHORT_WORDS = {"hip", "eye", "gut", "ear", "jaw", "arm", "leg", "toe", "rib"}


def find_phrases(onto: "Ontology", text: str) -> list[tuple[tuple[int, int], Resolution]]:
    """See :meth:`Ontology.find_phrases`."""
    words = [(m.start(), m.end(), SPELLING.get(m.group().lower(), m.group().lower())) for m in _WORD.finditer(text)]
    out: list[tuple[tuple[int, int], Resolution]] = []
    i, n = 0, len(words)
    while i < n:
        best: tuple[int, Resolution] | None = None
        side = _SIDE.get(words[i][2])
        starts: list[tuple[int, Laterality | None]] = [(i, None)] + ([(i + 1, side)] if side else [])
        for start, sd in starts:
            for end in range(min(n, start + onto._max_words), start, -1):
                if best is not None and end <= best[0]:
                    break
                key = " ".join(w[2] for w in words[start:end])
                hit = onto._lookup(key, sd) if sd else _lookup_no_side(onto, key)
                if hit is None:
                    continue
                term, hit_side = hit
                core = text[words[start][0]:words[end - 1][1]]
                if end - start == 1 and len(core) <= _ABBREVIATION_LEN and not core.isupper() \
                        and key != term.name.lower() and key not in _SHORT_WORDS:
                    continue
                span_text = text[words[i][0]:words[end - 1][1]]
                best = (end, onto._make(span_text, term, hit_side, "direct", None))
                break
        if best is None:
            i += 1
            continue
        end, res = best
        out.append(((words[i][0], words[end - 1][1]), res))
        i = end
    return out


def _lookup_no_side(onto: "Ontology", key: str) -> tuple[Term, Laterality | None] | None:
    """Look a key up as written (side words are handled by the caller, not stripped here)."""
    for k in (key, *singular_variants(key)):
        tid = onto._plain.get(k)
        if tid is not None:
            t = onto._terms[tid]
            return t, t.side
    return None
