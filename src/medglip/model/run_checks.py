"""Checks of a checkpoint folder before its model is built: the settings' seal, and no file outside it.

The weights' SHA-256 (``config.json`` ``"sha256"``) says the weight file is the one that was saved; the
seal says the same of the settings. ``"settings_sha256"`` is the SHA-256 of every other entry of
``config.json`` (the weights' hashes included) as canonical JSON (keys sorted, no spaces, ASCII), so a
changed value (a hand edit, a damaged file) is noticed on load even when it is a valid one; a value
that is not valid is refused by :class:`~medglip.model.config.ModelConfig` naming its field. Code that
changes a checkpoint's settings on purpose (calibrated thresholds) reseals them with :func:`seal`.

A checkpoint is loaded from its own folder only: :func:`outside_run` finds a file the loader would
open that lies elsewhere once links are resolved (a ``model.safetensors`` linked to another file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

#: the key of ``config.json`` that holds the SHA-256 of its other entries
SETTINGS_HASH = "settings_sha256"


def settings_sha256(doc: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of ``doc`` without its :data:`SETTINGS_HASH` entry, as canonical JSON."""
    rest = {k: v for k, v in doc.items() if k != SETTINGS_HASH}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def seal(doc: dict[str, Any]) -> dict[str, Any]:
    """Record the SHA-256 of ``doc``'s settings in it (in place; returned for chaining)."""
    doc[SETTINGS_HASH] = settings_sha256(doc)
    return doc


def unseal(doc: dict[str, Any]) -> Literal["ok", "missing", "changed"]:
    """Remove the seal from ``doc`` (in place) and say whether the rest matches it."""
    want = doc.get(SETTINGS_HASH)
    if want is None:
        return "missing"
    try:
        got = settings_sha256(doc)
    except ValueError:  # NaN / infinity in a value: not what was sealed
        got = ""
    doc.pop(SETTINGS_HASH)
    return "ok" if isinstance(want, str) and got == want else "changed"


def outside_run(folder: str | Path, names: tuple[str, ...]) -> Path | None:
    """The first of ``folder / name`` (and, for a sub-folder, the files in it) that resolves outside
    ``folder``; None when all lie inside."""
    root = Path(folder).resolve()
    for name in names:
        path = Path(folder) / name
        for p in [path, *(sorted(path.iterdir()) if path.is_dir() else [])]:
            if not p.resolve().is_relative_to(root):
                return p
    return None
