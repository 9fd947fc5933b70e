"""``GroundedContext``: every finding of one image (or volume), ready to be read, drawn or prompted."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from ..core.rules import FINDING_THRESHOLD
from ..core.text import phrase_key
from ..ontology import Ontology, load_ontology
from .finding import Finding
from .render import crops, text_block, visual_prompt


def _plain(value: Any) -> Any:
    """numpy scalars / tuples inside ``value`` → Python ints, floats, lists."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class GroundedContext:
    """The grounding of some phrases on one image, as numbered :class:`Finding` s.

    Attributes:
        source: the input (path, ``array``, ...).
        modality: modality code.
        image_size: ``(H, W)`` of the image, or of the display slices of a volume.
        plane: ``2d`` / ``axial`` / ``coronal`` / ``sagittal``.
        pixel_spacing: ``(row_mm, col_mm)`` or None.
        orientation: ``world`` (sides from geometry), ``radiological`` (convention assumed) or
            ``none`` (no patient sides: US / ENDO / DERM / PATH).
        asked: the phrases grounded, in order.
        findings: numbered ``1..N`` in phrase order, then by descending score.
        absent: asked phrases with no finding at or above ``score_threshold``.
        score_threshold: the threshold used.
        volume: ``{"shape": [i, j, k], "n_slices": n, "key_slice": k, "slice_axis": a}`` for volumes,
            else None. ``key_slice`` is the best finding's key slice (the middle slice without findings).
        ontology: the ontology the findings were described with (phrase look-ups use it too);
            None: the shipped one.
    """

    source: str
    modality: str
    image_size: tuple[int, int]
    plane: str
    pixel_spacing: tuple[float, float] | None
    orientation: str
    asked: tuple[str, ...]
    findings: list[Finding]
    absent: tuple[str, ...]
    score_threshold: float = FINDING_THRESHOLD
    volume: dict | None = None
    ontology: Ontology | None = field(default=None, repr=False, compare=False)
    #: what the model was never trained on among this call's phrases and modality (one line each)
    untrained: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    # ------------------------------------------------------------------ lookup
    def finding(self, number: int) -> Finding:
        """The finding numbered ``number`` (KeyError when there is none)."""
        for f in self.findings:
            if f.number == number:
                return f
        raise KeyError(f"no finding numbered {number} (numbers 1..{len(self.findings)})")

    def for_phrase(self, phrase: str) -> list[Finding]:
        """Findings of exactly ``phrase`` (case and spacing ignored), best first; if there are none,
        those whose ontology label AND laterality equal the phrase's ("renal tumor" finds "kidney
        tumor" findings). A side-less phrase does not match sided findings ("kidney" ≠ "left kidney")."""
        key = phrase_key(phrase)
        exact = [f for f in self.findings if phrase_key(f.phrase) == key]
        if exact or not key:
            return exact
        res = (self.ontology or load_ontology()).resolve(key)
        return [
            f for f in self.findings if phrase_key(f.label) == phrase_key(res.label) and f.laterality == res.laterality
        ]

    @property
    def is_volume(self) -> bool:
        return self.volume is not None

    # ------------------------------------------------------------------ output
    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (see :meth:`Finding.to_json`); masks are not included."""
        return {
            "source": str(self.source),
            "modality": self.modality,
            "image_size": list(self.image_size),
            "plane": self.plane,
            "pixel_spacing": None if self.pixel_spacing is None else [round(float(v), 4) for v in self.pixel_spacing],
            "orientation": self.orientation,
            "asked": list(self.asked),
            "findings": [f.to_json() for f in self.findings],
            "absent": list(self.absent),
            "score_threshold": round(float(self.score_threshold), 4),
            "volume": _plain(self.volume),
            "untrained": list(self.untrained),
        }

    def text_block(self, style: str = "qwen") -> str:
        """The findings as text for a language model: ``qwen`` (``<ref>``/``<box>`` 0..1000 ints),
        ``llava`` (``[x0, y0, x1, y1]`` fractions) or ``plain`` (pixels and mm); see :mod:`.render`."""
        return text_block(self, style)

    def visual_prompt(self, pixels: np.ndarray, *, masks: bool = True, slice_index: int | None = None) -> Image.Image:
        """RGB copy of ``pixels`` (``(H, W)`` / ``(H, W, 3)``) with every finding's box and number.

        ``slice_index`` (an addition; volumes only) says which display slice ``pixels`` is; default
        ``volume["key_slice"]``. Only findings whose slices include it are drawn.
        """
        return visual_prompt(self, pixels, masks=masks, slice_index=slice_index)

    def crops(
        self, pixels: np.ndarray, *, pad: float = 0.15, min_size: int = 32, slice_index: int | None = None
    ) -> list[tuple[Finding, Image.Image]]:
        """Each finding's box padded by ``pad`` × its size per side, at least ``min_size`` px, clipped."""
        return crops(self, pixels, pad=pad, min_size=min_size, slice_index=slice_index)
