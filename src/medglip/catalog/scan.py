"""Find the catalogue's data sets in a folder tree (for a starter recipe)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import LayoutError
from .entries import CatalogEntry, load_catalog

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ScanHit:
    """A folder holding a data set.

    Attributes:
        path: the data set's root folder.
        layout: the layout detected there.
        entry: the catalogue entry it was identified as, or None (a known layout, but not a
            catalogue data set, or several entries share the layout and the folder name tells none).
    """

    path: Path
    layout: str
    entry: CatalogEntry | None


def identify(path: Path, layout: str, catalog: tuple[CatalogEntry, ...]) -> CatalogEntry | None:
    """The catalogue entry of a folder whose layout is ``layout``: by layout, then by folder name,
    then by the names of what the folder holds (a copy called ``isic-dermoscopy`` holding
    ``ISIC-2017_Validation_Data/`` is ISIC 2017, not ISIC 2018, which shares its layout)."""
    same = [e for e in catalog if e.layout == layout]
    named = [e for e in same if e.matches_folder(path.name)]
    if len(named) == 1:
        return named[0]
    if len(same) == 1 and not named:
        return same[0]
    if not named and len(same) > 1 and path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
        held = [e for e in same if any(e.matches_folder(name) for name in inside)]
        if len(held) == 1:
            return held[0]
    return None


def scan(root: str | Path, *, depth: int = 2, catalog: tuple[CatalogEntry, ...] | None = None) -> list[ScanHit]:
    """Data sets under ``root`` (``root`` itself and folders up to ``depth`` levels below it).

    A folder whose layout is detected and whose name matches its catalogue entry is a hit and is
    not searched further; other detected folders are searched for better-named data sets below
    them (adapters also accept a folder one level above a data set) and are hits only when none
    is found. Folders are visited in sorted order; hidden folders are skipped.
    """
    from ..sources import detect_layout

    catalog = catalog if catalog is not None else load_catalog()

    def visit(folder: Path, level: int) -> list[ScanHit]:
        try:
            layout = detect_layout(folder)
        except LayoutError:
            layout = None
        hit = ScanHit(path=folder, layout=layout, entry=identify(folder, layout, catalog)) if layout else None
        if hit is not None and (level >= depth or (hit.entry is not None and hit.entry.matches_folder(folder.name))):
            return [hit]  # a data set named as the catalogue knows it: not searched further
        found = []
        if level < depth:  # adapters accept a dataset one level up: look for better-named ones below
            for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
                found += visit(sub, level + 1)
        return found or ([hit] if hit else [])

    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    hits = visit(root, 0)
    log.info("%s: %d data set(s) found", root, len(hits))
    return hits
