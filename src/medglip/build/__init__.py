"""Deprecated alias of :mod:`medglip.dataset` (the package's name until the build drivers became one).

``medglip.build`` and its submodules (``medglip.build.config``, ``.runner``, ``.merge``, ...) still
import, with a DeprecationWarning, for one release; ``medglip.build.merge`` is now
``medglip.dataset.merging``, and ``medglip.build.recipe_build``'s public names (``build_recipe``,
``RecipeBuildResult``, ``merge``, ``source_refs``) are all in ``medglip.dataset`` itself.
"""

import importlib
import sys
import warnings

from ..dataset import *  # noqa: F401,F403  (the public API under its old name)
from ..dataset import __all__  # noqa: F401

warnings.warn(
    "medglip.build is renamed medglip.dataset; import from medglip.dataset (the old name goes in the next release)",
    DeprecationWarning,
    stacklevel=2,
)

#: Old submodule name → the module that holds its code now.
_MOVED = {
    "card": "card",
    "cardplot": "cardplot",
    "config": "config",
    "instances": "instances",
    "labels": "labels",
    "merge": "merging",
    "process": "process",
    "recipe": "recipe",
    "runner": "runner",
}

for _old, _new in _MOVED.items():
    sys.modules[f"{__name__}.{_old}"] = importlib.import_module(f"medglip.dataset.{_new}")
    if _old != "merge":  # as before the rename, ``medglip.build.merge`` is the function
        globals()[_old] = sys.modules[f"{__name__}.{_old}"]
sys.modules[f"{__name__}.recipe_build"] = recipe_build = importlib.import_module("medglip.dataset")  # its names
