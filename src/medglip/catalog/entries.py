"""Typed access to ``catalog/datasets.yaml`` (checked when loaded; errors name the file and entry)."""

from __future__ import annotations

import fnmatch
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import CatalogError
from ..modality import UnknownModalityError, normalise_modality

_REQUIRED = ("id", "name", "modalities", "regions", "layout", "labels", "licence", "url", "citation")
_OPTIONAL = ("folders", "notes")


@dataclass(frozen=True, kw_only=True)
class CatalogEntry:
    """One public data set.

    Attributes:
        id: short id, also the source id of the data set in recipes (``"amos22"``).
        name: the data set's full name.
        modalities: canonical modality codes.
        regions: ontology body regions it covers (``"abdomen"``, ``"thorax"``, ...).
        layout: the :mod:`medglip.sources` adapter that reads its published layout.
        labels: ``(value, name)`` pairs as its label files number them; ``value`` is None for
            layouts with one mask file per structure (TotalSegmentator, JSRT, ...).
        licence: the licence or the terms of use.
        url: where to get it.
        citation: the paper to cite.
        folders: folder-name patterns (``fnmatch``, case-insensitive) that identify it on disk.
        notes: anything a user should know when building it.
    """

    id: str
    name: str
    modalities: tuple[str, ...]
    regions: tuple[str, ...]
    layout: str
    labels: tuple[tuple[int | None, str], ...]
    licence: str
    url: str
    citation: str
    folders: tuple[str, ...] = ()
    notes: str = ""

    @property
    def label_names(self) -> tuple[str, ...]:
        """The label names, in the catalogue's order."""
        return tuple(n for _, n in self.labels)

    def matches_folder(self, name: str) -> bool:
        """True when a folder called ``name`` looks like this data set (one of :attr:`folders`)."""
        low = name.lower()
        return any(fnmatch.fnmatch(low, p.lower()) for p in self.folders)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "modalities": list(self.modalities),
            "regions": list(self.regions),
            "layout": self.layout,
            "labels": [{"value": v, "name": n} for v, n in self.labels],
            "licence": self.licence,
            "url": self.url,
            "citation": self.citation,
            "folders": list(self.folders),
            "notes": self.notes,
        }


def default_path() -> Path:
    """The catalogue shipped with medglip."""
    return Path(str(resources.files("medglip.catalog") / "datasets.yaml"))


def _labels(spec: Any, where: str) -> tuple[tuple[int | None, str], ...]:
    if isinstance(spec, list) and spec and all(isinstance(n, str) for n in spec):
        return tuple((None, n) for n in spec)
    if isinstance(spec, dict) and spec:
        try:
            return tuple(sorted((int(k), str(v)) for k, v in spec.items()))
        except (TypeError, ValueError):
            pass
    raise CatalogError(f"{where}: 'labels' must be a non-empty {{value: name}} mapping or list of names, got {spec!r}")


def _entry(raw: Any, where: str) -> CatalogEntry:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected a mapping, got {raw!r}")
    where = f"{where} ({raw.get('id', '?')})"
    missing = [k for k in _REQUIRED if not raw.get(k)]
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        raise CatalogError(
            f"{where}: missing field(s) {missing}" if missing else f"{where}: unknown field(s) {unknown}"
        )
    try:
        mods = tuple(normalise_modality(m) for m in raw["modalities"])
    except UnknownModalityError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    as_tuple = lambda v: tuple(str(x) for x in (v if isinstance(v, list) else [v]))  # noqa: E731
    return CatalogEntry(
        id=str(raw["id"]),
        name=str(raw["name"]),
        modalities=mods,
        regions=as_tuple(raw["regions"]),
        layout=str(raw["layout"]),
        labels=_labels(raw["labels"], where),
        licence=str(raw["licence"]),
        url=str(raw["url"]),
        citation=str(raw["citation"]),
        folders=as_tuple(raw.get("folders") or []),
        notes=str(raw.get("notes") or ""),
    )


def read_catalog(path: str | Path) -> tuple[CatalogEntry, ...]:
    """Read and check a catalogue file (unique ids, known layouts, valid modalities and labels)."""
    from ..sources import LAYOUTS

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: cannot read the catalogue ({exc})") from None
    items = doc.get("datasets") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise CatalogError(f"{path}: expected a top-level 'datasets' list")
    entries = tuple(_entry(raw, f"{path} entry #{i}") for i, raw in enumerate(items))
    seen: set[str] = set()
    for e in entries:
        if e.id in seen:
            raise CatalogError(f"{path}: id {e.id!r} is used twice")
        seen.add(e.id)
        if e.layout not in LAYOUTS:
            raise CatalogError(f"{path} ({e.id}): unknown layout {e.layout!r}; known: {', '.join(LAYOUTS)}")
    return entries


@functools.lru_cache(maxsize=1)
def _shipped() -> tuple[CatalogEntry, ...]:
    return read_catalog(default_path())


def load_catalog(path: str | Path | None = None) -> tuple[CatalogEntry, ...]:
    """The catalogue entries (the shipped file unless ``path`` is given), in file order."""
    return _shipped() if path is None else read_catalog(path)


def get_entry(entry_id: str, catalog: tuple[CatalogEntry, ...] | None = None) -> CatalogEntry:
    """The entry with this id (raises :class:`CatalogError` listing the known ids)."""
    entries = catalog if catalog is not None else load_catalog()
    for e in entries:
        if e.id == entry_id:
            return e
    raise CatalogError(f"no data set {entry_id!r} in the catalogue; known: {', '.join(e.id for e in entries)}")
