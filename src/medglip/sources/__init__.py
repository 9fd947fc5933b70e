"""Dataset layout adapters: one module per public layout, all yielding :class:`medglip.case.Case`.

Each module defines ``NAME``, ``TIER``, ``LOOKS_FOR`` (see :mod:`._registry`: the package finds every
public module, nothing else lists them), ``detect(root) -> bool`` (cheap: names and small JSON only),
``list_cases(root, *, modality=None) -> list[CaseRef]`` (no pixels; sorted by case id) and
``load_case(ref) -> Case`` (reads pixels; runs in a worker; the case is validated).

Errors: listing raises :class:`LayoutError` only when the dataset as a whole cannot be listed
(no dataset.json, invalid JSON, missing required keys, unknown modality). Per-case problems (a
missing image or label file, an unreadable file, a shape/geometry mismatch, a label value the dataset
does not name) are raised by ``load_case`` as :class:`ReadError`/:class:`CaseError` naming the file,
so a build can report them and carry on.

>>> refs = list_cases("Task09_Spleen")           # doctest: +SKIP
>>> case = load_case(refs[0])                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

from ..case import Case, CaseRef
from ..errors import LayoutError
from ._registry import Tier, discover

log = logging.getLogger(__name__)

#: Layout name → adapter module (every public module of this package), most specific tier first.
LAYOUTS: dict[str, ModuleType] = discover(__name__, __path__)


def detect_layout(root: str | Path) -> str:
    """Name of the layout of the dataset folder ``root`` (the most specific one that matches).

    Raises:
        LayoutError: ``root`` is not a folder, nothing matches (the message lists what was looked
            for), or two layouts of the same specificity match (pass ``layout=`` to choose).
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    matches = [name for name, mod in LAYOUTS.items() if mod.detect(root)]  # most specific tier first
    if matches:
        hits = [n for n in matches if LAYOUTS[n].TIER == LAYOUTS[matches[0]].TIER]
        if len(hits) > 1:
            raise LayoutError(
                f"{root}: ambiguous layout, matches {', '.join(hits)}; pass --layout NAME (layout= in Python) to choose"
            )
        if len(matches) > 1:
            log.info("%s: layouts %s match; using the most specific, %s", root, matches, hits[0])
        return hits[0]
    looked = "\n".join(f"  - {name}: {mod.LOOKS_FOR}" for name, mod in LAYOUTS.items())
    raise LayoutError(
        f"{root}: no known dataset layout found; pass --layout NAME (layout= in Python; `medglip "
        "catalog` names each data set's) or list the cases in a medglip_manifest.json "
        f"(docs/datasets.md#your-own-data-a-manifest); looked for:\n{looked}"
    )


def get_layout(name: str) -> ModuleType:
    """The adapter module called ``name`` (raises :class:`LayoutError` listing the known ones)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise LayoutError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}") from None


def list_cases(root: str | Path, layout: str = "auto", *, modality: str | None = None) -> list[CaseRef]:
    """List the cases of a dataset folder without reading pixels.

    Args:
        root: the dataset folder (e.g. ``Dataset003_Liver``, ``Task09_Spleen``, ``Kvasir-SEG``).
        layout: an adapter name from :data:`LAYOUTS`, or ``"auto"`` to detect it.
        modality: the imaging modality (any alias); overrides what the layout says. Required when
            the layout cannot tell (nnU-Net ``noNorm`` channels, COCO without ``modality``).
    """
    root = Path(root)
    name = detect_layout(root) if layout == "auto" else layout
    refs = get_layout(name).list_cases(root, modality=modality)
    log.info("%s: %d cases (%s layout)", root, len(refs), name)
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read one listed case with the adapter named by ``ref.layout``."""
    return get_layout(ref.layout).load_case(ref)


__all__ = ["LAYOUTS", "Tier", "detect_layout", "get_layout", "list_cases", "load_case"]
