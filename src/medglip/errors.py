"""Exceptions that name the thing at fault (a file, a label, an option) and why."""

from __future__ import annotations

from pathlib import Path


class MedglipError(Exception):
    """Base class of every error medglip raises on purpose."""


class ReadError(MedglipError):
    """A file could not be read (missing, corrupt, truncated, unsupported)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class LayoutError(MedglipError):
    """A dataset folder does not match the layout asked for (or no layout could be detected)."""


class CaseError(MedglipError):
    """A case is inconsistent (image/label shape or geometry mismatch, unknown label value, ...)."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class CatalogError(MedglipError):
    """The dataset catalogue is malformed, or names a data set it does not hold."""


class RecipeError(MedglipError):
    """A build recipe is malformed (the message names the file, the source and the field)."""
