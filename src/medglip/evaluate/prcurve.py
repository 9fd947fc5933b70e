"""Precision–recall curves drawn with Pillow (no matplotlib needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from ..core.draw import font
from ..core.files import atomic_write_file

#: line colours, first for "overall" (black), then one per further curve.
COLOURS = (
    (0, 0, 0),
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
)


def draw_pr_curves(
    path: str | Path,
    recall: Sequence[float],
    curves: Mapping[str, Sequence[float] | None],
    *,
    title: str = "Precision-recall at IoU 0.5 (legend: AP50 %)",
    size: tuple[int, int] = (720, 560),
) -> Path:
    """Draw one line per curve (``name -> precision on the recall grid``) on common axes and save a PNG.

    The legend gives each curve's AP (mean precision over the grid, in %); ``None`` curves (nothing to
    measure) are not drawn and read "n/a" in the legend.

    Args:
        path: output PNG.
        recall: the recall grid (x values, 0..1).
        curves: ``name -> precision values`` (0..1) aligned with ``recall``; the first is drawn thicker.
        title: drawn above the plot.
        size: image size ``(width, height)`` in pixels.

    Returns:
        The written path.
    """
    path = Path(path)
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    big, small = font(16), font(13)
    left, right, top, bottom = 70, w - 190, 45, h - 60
    d.text((left + 90, 12), title, fill="black", font=big)
    for i in range(11):  # grid + ticks
        t = i / 10
        x = left + t * (right - left)
        y = bottom - t * (bottom - top)
        d.line([(x, top), (x, bottom)], fill=(225, 225, 225))
        d.line([(left, y), (right, y)], fill=(225, 225, 225))
        d.text((x - 9, bottom + 6), f"{t:.1f}", fill="black", font=small)
        d.text((left - 32, y - 7), f"{t:.1f}", fill="black", font=small)
    d.rectangle([left, top, right, bottom], outline="black")
    d.text(((left + right) // 2 - 20, bottom + 28), "recall", fill="black", font=big)
    d.text((8, top - 30), "precision", fill="black", font=big)
    legend_y = top
    items = list(curves.items())
    for k in [*range(1, len(items)), 0]:  # the first ("overall") is drawn last, on top
        name, prec = items[k]
        colour = COLOURS[k % len(COLOURS)]
        if prec is not None and len(prec) == len(recall):
            pts = [
                (left + float(r) * (right - left), bottom - min(max(float(p), 0.0), 1.0) * (bottom - top))
                for r, p in zip(recall, prec, strict=True)
            ]
            d.line(pts, fill=colour, width=4 if k == 0 else 2)
    for k, (name, prec) in enumerate(items):
        colour = COLOURS[k % len(COLOURS)]
        ap = f" {100 * sum(prec) / len(prec):.1f}" if prec is not None and len(prec) else " n/a"
        d.line([(right + 12, legend_y + 8), (right + 36, legend_y + 8)], fill=colour, width=4 if k == 0 else 2)
        d.text((right + 42, legend_y), name[:18] + ap, fill="black", font=small)
        legend_y += 20
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_file(Path(path), lambda tmp: img.save(tmp, format="PNG"))
    return path
