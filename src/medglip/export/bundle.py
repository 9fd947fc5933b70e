"""An export made in memory (:class:`ExportBundle`), written all at once or not at all."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.files import atomic_write_many
from ..errors import MedglipError


@dataclass
class ExportBundle:
    """The files of one export, as bytes, and the label sidecar they describe.

    Attributes:
        files: file name → content (``labels.nii.gz``, ``labels.json``, ``seg.dcm``, ``sr.dcm``,
            ``masks.png``, ``volume.nii.gz``; see :data:`medglip.export.options.FILES`).
        labels: the sidecar (``labels.json``) as a dict: one entry per label with its phrase, score,
            ontology hierarchy, codes, size, volume and centre.
        notes: what users should know (local codes, objects without a mask, outputs skipped).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add_json(self, name: str = "labels.json") -> None:
        """Put the sidecar into :attr:`files` (after every other file, so it lists them)."""
        self.labels["files"] = sorted({*self.files, name})
        self.labels["notes"] = list(self.notes)
        self.files[name] = (json.dumps(self.labels, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode()

    def write(self, out_dir: str | Path, *, extra: dict[str, bytes] | None = None) -> dict[str, Path]:
        """Write every file (and ``extra`` ones, e.g. a report's) into ``out_dir`` in one step: all
        are written to temporary names first and renamed only when all are complete, so a failure
        leaves the folder as it was. Returns file name → path."""
        out = Path(out_dir)
        files = {**self.files, **(extra or {})}
        bad = [n for n in files if not n or "/" in n or "\\" in n or n in (".", "..")]
        if bad:
            raise MedglipError(f"bad output file name(s) {bad}")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MedglipError(f"cannot create the output folder {out}: {exc}") from None
        paths = {name: out / name for name in files}
        try:
            atomic_write_many({paths[n]: data for n, data in files.items()})
        except OSError as exc:
            raise MedglipError(f"cannot write the outputs into {out}: {exc}") from None
        return paths
