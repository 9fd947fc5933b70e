"""Draw a grounding result on the image it was made from (boxes, masks, phrase + score)."""

from __future__ import annotations

from typing import Any

from PIL import Image

from ..core.draw import Mark, render
from .results import GroundingResult


def draw_result(result: GroundingResult, *, max_per_phrase: int = 3, window: Any = None) -> Image.Image:
    """An RGB picture of ``result``'s image (:meth:`GroundingResult.picture`, CT in ``window``) with
    the top ``max_per_phrase`` boxes of every phrase, its masks, and a footer naming the input."""
    marks = []
    for pid, g in enumerate(result.groundings, start=1):
        for k in range(min(len(g), max_per_phrase)):
            x0, y0, x1, y1 = (float(v) for v in g.boxes[k])
            marks.append(
                Mark(
                    box=(x0, y0, x1, y1),
                    colour=pid,
                    label=f"{g.phrase} {g.scores[k]:.2f}",
                    mask=None if g.masks is None else g.masks[k],
                )
            )
    h, w = result.image_size
    footer = (str(result.source), f"{result.extra.get('plane', '2d')} | {result.modality} | {w}x{h} px")
    return render(result.picture(window), marks, plane=result.extra.get("plane"), footer=footer)
