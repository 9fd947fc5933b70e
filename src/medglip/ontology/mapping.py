"""Per-source label mappings: which data sets a mapping applies to, and user overrides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .model import Laterality, OntologyError
from .normalise import contains_words, name_key, singular_variants, source_keys, split_laterality

#: Pattern of a user mapping that applies to every source (and to names given without a source).
ANY_SOURCE = "*"


@dataclass(frozen=True)
class SourceMapping:
    """Names that mean something specific in the sources matching one of ``match``.

    Attributes:
        match: source name patterns (see :func:`medglip.ontology.normalise.source_keys`); ``"*"``
            matches every source.
        names: source label name → canonical term name (optionally with a side).
    """

    match: tuple[str, ...]
    names: Mapping[str, str]
    _keys: dict[str, str] = field(init=False, repr=False, compare=False)
    _patterns: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_keys", {name_key(k): str(v) for k, v in self.names.items()})
        pats = tuple(ANY_SOURCE if p == ANY_SOURCE else (source_keys(p) or [name_key(p)])[0] for p in self.match)
        object.__setattr__(self, "_patterns", pats)

    def match_length(self, source: str | None) -> int:
        """Words in the longest pattern matching ``source`` (0 for ``"*"``), or -1 when none matches."""
        best = -1
        keys = source_keys(source) if source else []
        for p in self._patterns:
            if p == ANY_SOURCE:
                best = max(best, 0)
            elif any(contains_words(k, p) for k in keys):
                best = max(best, len(p.split()))
        return best

    @property
    def keys(self) -> Mapping[str, str]:
        """Normalised name key → canonical name."""
        return self._keys


def mapping_table(mappings: list[SourceMapping], source: str | None) -> dict[str, str]:
    """Merge the mappings that apply to ``source``; a longer matching pattern wins per name."""
    ranked = sorted(((m.match_length(source), i, m) for i, m in enumerate(mappings)), key=lambda x: (-x[0], x[1]))
    table: dict[str, str] = {}
    for length, _, m in ranked:
        if length < 0:
            break
        for k, v in m.keys.items():
            table.setdefault(k, v)
    return table


def lookup_table(table: Mapping[str, str], keys: list[str]) -> tuple[str, Laterality | None] | None:
    """Find a name (its key candidates) in a mapping table: ``(canonical, side)`` or None.

    A side written in the name but not in the table's key is returned separately ("Tumor_L").
    """
    if not table:
        return None
    for key in keys:
        for k in [key, *singular_variants(key)]:
            if k in table:
                return table[k], None
    for key in keys:
        base, side = split_laterality(key)
        if side is not None:
            for k in [base, *singular_variants(base)]:
                if k in table:
                    return table[k], side
    return None


def parse_user_mappings(mappings: Mapping[str, Mapping[str, str]] | str | Path) -> list[SourceMapping]:
    """Read user overrides: ``{source pattern: {name: canonical}}``, or a YAML file holding that
    mapping or a ``sources:`` list in the data format."""
    data: Any = mappings
    if isinstance(mappings, (str, Path)):
        path = Path(mappings)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise OntologyError(f"{path}: cannot read label mapping YAML: {e}") from e
    if not isinstance(data, Mapping):
        raise OntologyError(
            f"label mappings must be a mapping of source -> {{name: canonical}}, got {type(data).__name__}"
        )
    if "sources" in data and isinstance(data["sources"], list):
        return [
            SourceMapping(tuple(str(p) for p in s.get("match", [])), dict(s.get("names") or {}))
            for s in data["sources"]
        ]
    out = []
    for pattern, names in data.items():
        if not isinstance(names, Mapping):
            raise OntologyError(f"label mapping for source {pattern!r} must be a mapping name -> canonical")
        out.append(SourceMapping((str(pattern),), {str(k): str(v) for k, v in names.items()}))
    return out
