"""The ``medglip`` command: one sub-command per pipeline stage, each a thin wrapper over the Python API.

- :mod:`.app`: the application, its one error handler and logging set-up, registry-filled help;
- :mod:`.data`: build (build-recipe its hidden alias), merge, show, resolve, catalog;
- :mod:`.model`: train, lopo, calibrate, pack, eval, heldout, source-report, vqa-eval;
- :mod:`.use`: ground, vqa, report, serve, demo;
- :mod:`.options` (shared options and steps), :mod:`.output` (tables, JSON), :mod:`.findings` (the
  grounding table), :mod:`.montage` (a volume's overlay), :mod:`.progress` (bars).
"""

from . import data, model, use  # noqa: F401  (registers the sub-commands)
from .app import app, console, main

__all__ = ["app", "console", "main"]
