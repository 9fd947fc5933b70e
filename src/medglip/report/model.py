"""``Report``: the sentences, markdown and overlay of one grounded image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..context import GroundedContext
from ..export import ExportBundle
from .html import render_html
from .sentences import report_sentences

#: file name the markdown refers to for the overlay (``write_report`` renames it with its stem)
DEFAULT_OVERLAY = "report_overlay.png"


@dataclass
class Report:
    """A grounding report.

    Attributes:
        source: the input (path, ``array``, ...).
        modality: modality code used.
        context: the grounded findings.
        sentences: one per finding, then one per phrase not found ("No liver tumor identified.").
        markdown: the report as markdown (refers to the overlay as ``report_overlay.png``).
        overlay: the numbered visual prompt (the 2D image or the volume's key slice), or None.
        prose: a language model's rewrite of ``markdown``, when one was asked for.
        exports: the findings' masks as files (label ``n`` = finding ``n``), when asked for.
    """

    source: str
    modality: str
    context: GroundedContext
    sentences: list[str]
    markdown: str
    overlay: Image.Image | None = None
    prose: str | None = None
    exports: ExportBundle | None = None

    @property
    def html(self) -> str:
        """The report as an escaped HTML fragment (:func:`.html.render_html`; the overlay not included)."""
        found, missing = report_sentences(self.context)
        return render_html(self.context, found, missing, prose=self.prose)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types; the overlay is described by its size (``write_report`` writes the PNG)."""
        return {
            "source": str(self.source),
            "modality": self.modality,
            "sentences": list(self.sentences),
            "context": self.context.to_json(),
            "markdown": self.markdown,
            "prose": self.prose,
            "overlay": None if self.overlay is None else {"width": self.overlay.width, "height": self.overlay.height},
            "exports": None
            if self.exports is None
            else {"files": sorted(self.exports.files), "notes": list(self.exports.notes)},
        }
