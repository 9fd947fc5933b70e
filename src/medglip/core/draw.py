"""The one drawer of boxes, masks and labels on images: dataset ground truth (``medglip show``),
grounding results (overlays) and the numbered visual prompts of grounded contexts use it.

Pictures are upscaled with nearest-neighbour interpolation by an integer factor (so that the short
side is at least ``MIN_SHORT_SIDE`` pixels), masks are drawn as semi-transparent fills plus an
outline, boxes as rectangles on the pixel edges, labels above the boxes, and a footer band below the
image says what it is. Radiological slices get side markers (the patient's left on the image's right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ..errors import MedglipError

MIN_SHORT_SIDE = 384  # default: upscale until the short side is at least this many pixels
MAX_LONG_SIDE = 4096  # ... unless the long side would exceed this
MASK_ALPHA = 0.4  # opacity of mask fills
FONT_SIZE = 14  # phrase text; the level is drawn at SMALL_FONT_SIZE
SMALL_FONT_SIZE = 10
LINE_HEIGHT = FONT_SIZE + 4
FOOTER_HEIGHT = 2 * LINE_HEIGHT + 6  # two lines of text below every rendered image
BACKGROUND = (24, 24, 24)
MARKER_COLOR = (255, 230, 0)
# A fixed qualitative palette (Tableau 10 + extras); a category's colour is PALETTE[id % len].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (255, 215, 0),
    (0, 128, 128),
    (230, 25, 75),
    (60, 180, 75),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 190),
    (170, 110, 40),
)
# Side markers per slice plane: (top, bottom, left, right) of the image, in the radiological display
# convention of docs/dataset_format.md (the patient's left on the image's right).
SIDE_MARKERS: dict[str, tuple[str, str, str, str]] = {
    "axial": ("A", "P", "R", "L"),
    "coronal": ("S", "I", "R", "L"),
    "sagittal": ("S", "I", "A", "P"),
}

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive pixel coordinates


def category_color(category_id: int) -> tuple[int, int, int]:
    """The stable RGB colour of a category (the same in every image and every run)."""
    return PALETTE[int(category_id) % len(PALETTE)]


def draw_marker(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, anchor: str) -> None:
    """Draw one side marker ("L", "A", ...) in yellow with a black outline at `xy` (PIL text anchor)."""
    draw.text(xy, text, font=font(FONT_SIZE), anchor=anchor, fill=MARKER_COLOR, stroke_width=2, stroke_fill=(0, 0, 0))


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def auto_scale(width: int, height: int) -> int:
    """Integer upscaling factor making the short side ≥ MIN_SHORT_SIDE (long side ≤ MAX_LONG_SIDE)."""
    short, long = min(width, height), max(width, height)
    if short >= MIN_SHORT_SIDE:
        return 1
    return max(1, min(math.ceil(MIN_SHORT_SIDE / short), MAX_LONG_SIDE // long))


def box_rect(bbox: list[float], scale: float) -> Rect:
    """Inclusive pixel rectangle of a COCO box `[x, y, w, h]` (covering columns x..x+w-1) after scaling."""
    x, y, w, h = bbox
    x0, y0 = round(x * scale), round(y * scale)
    return x0, y0, max(x0, round((x + w) * scale) - 1), max(y0, round((y + h) * scale) - 1)


def fit_text(text: str, fnt: ImageFont.FreeTypeFont | ImageFont.ImageFont, max_width: float) -> str:
    """`text`, shortened with an ellipsis until it is at most `max_width` pixels wide."""
    if fnt.getlength(text) <= max_width:
        return text
    while text and fnt.getlength(text + "...") > max_width:
        text = text[:-1]
    return text + "..."


def _overlaps(a: Rect, b: Rect) -> bool:
    return not (a[2] < b[0] or b[2] < a[0] or a[3] < b[1] or b[3] < a[1])


def _place_label(size: tuple[int, int], box: Rect, canvas: tuple[int, int], taken: list[Rect]) -> Rect:
    """Label rectangle above the box, else below it, else inside its top; kept inside the image and,
    where possible, off the labels already placed (`taken`)."""
    w, h = size
    W, H = canvas
    x = min(max(0, box[0]), max(0, W - w))
    fits: list[Rect] = []
    clamped: list[Rect] = []
    for y in (box[1] - h, box[3] + 1, box[1]):
        r = (x, min(max(0, y), max(0, H - h)), x + w - 1, min(max(0, y), max(0, H - h)) + h - 1)
        (fits if r[1] == y else clamped).append(r)
    free = [r for r in fits + clamped if not any(_overlaps(r, t) for t in taken)]
    return free[0] if free else (fits + clamped)[0]


def ink(c: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white text, whichever reads better on the colour ``c``."""
    return (0, 0, 0) if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 150 else (255, 255, 255)


def tint(rgb: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], alpha: float) -> None:
    """Blend ``colour`` into the float ``(H, W, 3)`` array ``rgb`` where ``mask`` is set (in place)."""
    rgb[mask] = rgb[mask] * (1 - alpha) + np.asarray(colour, np.float32) * alpha


def as_rgb(pixels: np.ndarray | Image.Image) -> Image.Image:
    """An RGB PIL image of a uint8 ``(H, W)`` / ``(H, W, 3)`` array (or of any PIL image)."""
    if isinstance(pixels, Image.Image):
        return pixels.convert("RGB")
    a = np.asarray(pixels)
    if a.dtype != np.uint8:
        raise MedglipError(f"pictures are drawn on uint8 pixels, got {a.dtype}")
    return Image.fromarray(np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else np.ascontiguousarray(a[..., :3]))


@dataclass(frozen=True)
class Mark:
    """One thing to draw on a picture.

    Attributes:
        box: ``(x0, y0, x1, y1)`` pixel edges of the unscaled picture, or None (a mask only).
        colour: the key of its colour (:func:`category_color`).
        label: text drawn above the box (a phrase, a phrase and score, a number).
        note: smaller text after the label (e.g. the hierarchy level).
        mask: ``(H, W)`` bool mask of the unscaled picture, or None.
    """

    box: tuple[float, float, float, float] | None
    colour: int
    label: str = ""
    note: str = ""
    mask: np.ndarray | None = None


def render(
    picture: np.ndarray | Image.Image,
    marks: list[Mark],
    *,
    plane: str | None = None,
    footer: tuple[str, ...] = (),
    scale: float | None = None,
    draw_masks: bool = True,
    draw_boxes: bool = True,
    draw_labels: bool = True,
) -> Image.Image:
    """Draw ``marks`` on ``picture``.

    Args:
        picture: uint8 ``(H, W[, 3])`` pixels or a PIL image.
        marks: what to draw (masks first, then boxes, then labels placed off each other).
        plane: ``axial`` / ``coronal`` / ``sagittal`` add side markers (radiological convention).
        footer: lines of text in a band below the picture (none: no band).
        scale: upscaling factor; None picks :func:`auto_scale` (integer, NEAREST interpolation).
        draw_masks, draw_boxes, draw_labels: which layers to draw.

    Returns:
        An RGB image of ``round(W * scale) × round(H * scale)`` (+ ``FOOTER_HEIGHT`` with a footer).
    """
    base = as_rgb(picture)
    w0, h0 = base.size
    s = float(scale) if scale is not None else float(auto_scale(w0, h0))
    if s <= 0:
        raise MedglipError(f"scale must be positive, got {scale}")
    W, H = max(1, round(w0 * s)), max(1, round(h0 * s))
    img = base.resize((W, H), Image.Resampling.NEAREST) if (W, H) != (w0, h0) else base
    big, small = font(FONT_SIZE), font(SMALL_FONT_SIZE)
    line_w = max(2, round(s / 3)) if s >= 1 else 1

    if draw_masks and any(m.mask is not None for m in marks):
        arr = np.asarray(img, dtype=np.float32).copy()
        outlines = []
        for m in marks:
            if m.mask is None:
                continue
            if m.mask.shape != (h0, w0):
                raise MedglipError(f"a mask of shape {m.mask.shape} does not match the picture {(h0, w0)}")
            mimg = Image.fromarray(m.mask.astype(np.uint8) * 255).resize((W, H), Image.Resampling.NEAREST)
            ms = np.asarray(mimg) > 0
            tint(arr, ms, category_color(m.colour), MASK_ALPHA)
            eroded = np.asarray(mimg.filter(ImageFilter.MinFilter(2 * line_w + 1))) > 0
            outlines.append((ms & ~eroded, category_color(m.colour)))
        for edge, c in outlines:
            arr[edge] = c
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))

    canvas = Image.new("RGB", (W, H + (FOOTER_HEIGHT if footer else 0)), BACKGROUND)
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    boxes = [
        (m, box_rect([m.box[0], m.box[1], m.box[2] - m.box[0], m.box[3] - m.box[1]], s))
        for m in marks
        if m.box is not None
    ]
    if draw_boxes:
        for m, r in boxes:
            draw.rectangle(r, outline=category_color(m.colour), width=line_w)
    if draw_labels:
        taken: list[Rect] = []
        for m, r in boxes:
            if not m.label:
                continue
            text, note = fit_text(m.label, big, W - 8), m.note
            pw, lw = big.getlength(text), (small.getlength(note) if note else 0)
            if pw + 6 + lw + 6 > W:
                note, lw = "", 0
            size = (math.ceil(pw + (lw + 4 if note else 0)) + 6, LINE_HEIGHT)
            lab = _place_label(size, r, (W, H), taken)
            taken.append(lab)
            c = category_color(m.colour)
            draw.rectangle(lab, fill=c)
            draw.text((lab[0] + 3, lab[1] + 2), text, font=big, fill=ink(c))
            if note:
                draw.text((lab[0] + 3 + pw + 4, lab[1] + 6), note, font=small, fill=ink(c))

    markers = SIDE_MARKERS.get(str(plane))
    if markers:
        top, bottom, left, right = markers
        for xy, text, anchor in (
            ((W // 2, 3), top, "mt"),
            ((W // 2, H - 3), bottom, "mb"),
            ((4, H // 2), left, "lm"),
            ((W - 4, H // 2), right, "rm"),
        ):
            draw_marker(draw, xy, text, anchor)
    for i, line in enumerate(footer[:2]):
        draw.text((4, H + 3 + i * LINE_HEIGHT), fit_text(line, big, W - 8), font=big, fill=(230, 230, 230))
    return canvas
