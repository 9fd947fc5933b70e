"""Where the layout adapters are found: every public module of :mod:`medglip.sources` is one.

An adapter module declares ``NAME`` (its layout name, the module's own name), ``TIER`` (a
:class:`Tier`), ``LOOKS_FOR`` (what ``detect`` looks for, shown when nothing matches) and the functions
``detect``, ``list_cases`` and ``load_case``. Adding a layout is adding its module: nothing else names it.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from enum import IntEnum
from types import ModuleType

from ..errors import LayoutError


class Tier(IntEnum):
    """How specific an adapter's detection is: when several adapters detect a folder, the most
    specific tier wins, and two matches in the same tier are ambiguous."""

    MANIFEST = 0  # an explicit medglip manifest
    NAMED_DATASET_JSON = 1  # a named data set that also ships an MSD-style dataset.json (AMOS, WORD)
    DATASET_JSON = 2  # a generic dataset.json layout (nnU-Net v2, MSD)
    FOLDER = 3  # a folder-structure layout
    GENERIC_JSON = 4  # any COCO JSON


_FUNCTIONS = ("detect", "list_cases", "load_case")


def check_adapter(module: ModuleType) -> ModuleType:
    """``module`` if it declares what an adapter must (raises :class:`LayoutError` naming what it lacks)."""
    where = module.__name__
    name = getattr(module, "NAME", None)
    if not isinstance(name, str) or name != where.rsplit(".", 1)[-1]:
        raise LayoutError(f"adapter {where}: NAME must be its module's name, got {name!r}")
    if not isinstance(getattr(module, "TIER", None), Tier):
        raise LayoutError(
            f"adapter {where}: TIER must be a medglip.sources._registry.Tier, got {getattr(module, 'TIER', None)!r}"
        )
    if not isinstance(getattr(module, "LOOKS_FOR", None), str):
        raise LayoutError(f"adapter {where}: LOOKS_FOR must say what its detect() looks for")
    missing = [f for f in _FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise LayoutError(f"adapter {where}: missing function(s) {', '.join(missing)}")
    return module


def registry(modules: Iterable[ModuleType]) -> dict[str, ModuleType]:
    """Layout name → adapter, checked, most specific tier first (by name within a tier)."""
    checked = [check_adapter(m) for m in modules]
    return {m.NAME: m for m in sorted(checked, key=lambda m: (m.TIER, m.NAME))}


def discover(package: str, path: Iterable[str]) -> dict[str, ModuleType]:
    """The adapters of the package ``package`` (its ``__path__``): each of its modules whose name does
    not start with ``_``."""
    return registry(
        importlib.import_module(f"{package}.{info.name}")
        for info in pkgutil.iter_modules(path)
        if not info.name.startswith("_")
    )
