"""``ground --overlay`` on a volume: a contact sheet of the slices that hold findings, each drawn with
:func:`medglip.core.draw.render` (boxes, masks, ``F<n> phrase score``) and laid out as ``medglip show``'s
overview."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..core.draw import Mark, render
from ..show import contact_sheet

#: at most this many slices on one sheet: each finding's best slice first, then evenly spaced others
MAX_SLICES = 16


def montage_slices(objects: list[Any], *, max_slices: int = MAX_SLICES) -> list[int]:
    """The display slices to draw, ascending: every slice holding a finding's box, or, when there are more
    than ``max_slices``, each finding's best-scoring slice then evenly spaced others."""
    held = sorted({b.slice_index for o in objects for b in o.slice_boxes})
    if len(held) <= max_slices:
        return held
    chosen: list[int] = []
    for o in objects:
        best = max(o.slice_boxes, key=lambda b: b.score).slice_index
        if best not in chosen and len(chosen) < max_slices:
            chosen.append(best)
    rest = [k for k in held if k not in chosen]
    want = max_slices - len(chosen)
    if want > 0 and rest:
        chosen += [rest[int(i)] for i in np.unique(np.linspace(0, len(rest) - 1, want).round().astype(int))]
    return sorted(chosen)


def _box(box: Any) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return x0, y0, x1, y1


def draw_volume_result(
    result: Any, *, window: Any = None, max_slices: int = MAX_SLICES
) -> tuple[Image.Image, list[int]]:
    """``(sheet, slices)``: the slices of a :class:`~medglip.infer.VolumeGroundingResult` that hold findings,
    drawn and laid out in a grid (no finding: the middle slice, so the file always shows the volume)."""
    slices = montage_slices(result.objects, max_slices=max_slices)
    n_slices = result.slice_plan().n_slices
    tiles = []
    for k in slices or [n_slices // 2]:
        marks = [
            Mark(
                box=_box(b.box),
                colour=result.phrases.index(o.phrase) + 1 if o.phrase in result.phrases else n,
                label=f"F{n} {o.phrase} {b.score:.2f}",
                mask=b.mask,
            )
            for n, o in enumerate(result.objects, start=1)
            for b in o.slice_boxes
            if b.slice_index == k
        ]
        what = f"{len(marks)} finding(s)" if marks else "no finding above the score threshold"
        footer = (str(result.source), f"{result.plane} slice {k} of {n_slices} | {result.modality} | {what}")
        tiles.append(render(result.picture(k, window=window), marks, plane=result.plane, footer=footer))
    return contact_sheet(tiles), slices
