"""Bar charts of the dataset card, drawn with Pillow (matplotlib is not a dependency)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from ..core.files import atomic_write_bytes

_BAR = (31, 119, 180)
_ROW = 22


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def bar_chart(path: str | Path, counts: Mapping[str, int], *, title: str, max_bars: int = 40, width: int = 760) -> Path:
    """Draw one horizontal bar per ``name -> count`` (largest first, at most ``max_bars``; the rest
    summed into one "other" bar) with the count written after each bar; save as PNG atomically.

    Returns:
        The written path.
    """
    import io

    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > max_bars:
        rest = sum(v for _, v in items[max_bars - 1 :])
        items = items[: max_bars - 1] + [(f"other ({len(counts) - max_bars + 1})", rest)]
    font, small = _font(15), _font(12)
    label_w = min(280, 12 + max((int(small.getlength(k)) for k, _ in items), default=40))
    top, left, right = 40, label_w + 10, width - 90
    height = top + _ROW * max(1, len(items)) + 20
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), title, fill="black", font=font)
    peak = max((v for _, v in items), default=0) or 1
    for i, (name, value) in enumerate(items):
        y = top + i * _ROW
        shown = name
        if small.getlength(name) > label_w - 12:  # cut to about the characters that fit the label column
            shown = name[: max(4, int(len(name) * (label_w - 12) / small.getlength(name)) - 1)] + "…"
        d.text((8, y + 4), shown, fill="black", font=small)
        x1 = left + (right - left) * value / peak
        d.rectangle([left, y + 3, max(left + 1, x1), y + _ROW - 3], fill=_BAR)
        d.text((x1 + 6, y + 4), f"{value:,}", fill="black", font=small)
    d.line([(left, top - 2), (left, height - 18)], fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path
