"""A :class:`GroundedContext` as text for a language model, as a numbered visual prompt, as crops.

Text styles (every one starts with a header line and ends with "Not found: ..." when phrases are absent):
- ``qwen``: ``[1] <ref>left kidney</ref><box>(x0,y0),(x1,y1)</box> score 0.91, 42 x 37 mm, ...`` with
  integer coordinates ``round(x / W * 1000)`` / ``round(y / H * 1000)`` clipped to 0..1000 (Qwen-VL);
- ``llava``: ``[1] left kidney: [0.123, 0.456, 0.321, 0.654] score 0.91, ...`` with fractions of the
  width / height, 3 decimals (LLaVA-Med);
- ``plain``: ``[1] left kidney: box (x0, y0, x1, y1) px, score 0.91, ...``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageDraw

from ..core.draw import as_rgb, category_color, font, ink, tint
from ..core.pipeline import model_pixels, picture
from ..errors import MedglipError
from .finding import Finding


class Context(Protocol):
    """What the renderers read of a :class:`~medglip.context.GroundedContext`."""

    source: str
    modality: str
    image_size: tuple[int, int]
    plane: str
    pixel_spacing: tuple[float, float] | None
    orientation: str
    findings: list[Finding]
    absent: tuple[str, ...]
    score_threshold: float
    volume: dict | None


STYLES = ("qwen", "llava", "plain")
MASK_ALPHA = 0.35  # opacity of mask tints on the visual prompt

_ORIENTATION_NOTE = {
    "world": "sides are the patient's, from the image geometry",
    "radiological": (
        "sides are the patient's, assuming the radiological convention (patient's left on the image's right)"
    ),
    "none": "no patient sides for this modality (image left / right only)",
}


# ---------------------------------------------------------------------------------- words
def format_number(v: float) -> str:
    """``42`` for sizes of 10 and more, ``4.2`` below (``9`` rather than ``9.0``)."""
    return f"{v:.0f}" if abs(v) >= 10 else f"{v:.1f}".rstrip("0").rstrip(".")


def format_size(f: Finding, times: str = " x ") -> str:
    """``"42 x 37 mm"`` (2D with spacing), ``"42 x 37 x 30 mm"`` (volumes, LPS extent) or ``"42 x 37 px"``:
    the finding's one size (its mask's, else its box's)."""
    if f.size_mm is not None:
        return times.join(format_number(v) for v in f.size_mm) + " mm"
    return times.join(format_number(v) for v in f.size_px) + " px"


def format_slices(f: Finding, dash: str = "-") -> str | None:
    if f.slices is None:
        return None
    a, b = f.slices
    return f"slice {a}" if a == b else f"slices {a}{dash}{b}"


def qwen_box(box: tuple[float, ...], image_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Qwen-VL box: ``round(x / W * 1000)``, ``round(y / H * 1000)``, clipped to 0..1000."""
    h, w = image_size
    x0, y0, x1, y1 = box
    q = [int(min(1000, max(0, round(v / d * 1000)))) for v, d in ((x0, w), (y0, h), (x1, w), (y1, h))]
    return q[0], q[1], q[2], q[3]


def llava_box(box: tuple[float, ...], image_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """LLaVA-Med box: fractions of the width / height in 0..1, 3 decimals."""
    h, w = image_size
    x0, y0, x1, y1 = box
    f = [round(min(1.0, max(0.0, v / d)), 3) for v, d in ((x0, w), (y0, h), (x1, w), (y1, h))]
    return f[0], f[1], f[2], f[3]


def _details(f: Finding) -> str:
    """``score 0.91, 42 x 37 mm, patient's left, ..., slices 40–52, within the liver (finding 2); key slice 45``."""
    text = f"score {f.score:.2f}, {format_size(f)}, {f.location}"
    if f.parent_number is not None:
        text += f" (finding {f.parent_number})"
    if f.slices is not None:
        text += f"; key slice {f.key_slice}"
    return text


def _header(ctx: Context, style: str) -> str:
    h, w = ctx.image_size
    if ctx.volume is not None:
        shape = " x ".join(str(s) for s in ctx.volume.get("shape", ()))
        what = (
            f"{ctx.modality} volume ({shape} voxels), {ctx.volume.get('n_slices')} {ctx.plane} slices of "
            f"{w} x {h} px (width x height); boxes are on each finding's key slice"
        )
    else:
        what = f"{ctx.modality} image, {w} x {h} px (width x height), plane {ctx.plane}"
    spacing = (
        "pixel spacing unknown"
        if ctx.pixel_spacing is None
        else f"pixel spacing {ctx.pixel_spacing[0]:.3g} x {ctx.pixel_spacing[1]:.3g} mm (row x column)"
    )
    boxes = {
        "qwen": "boxes (x0,y0),(x1,y1) scaled to 0-1000",
        "llava": "boxes [x0, y0, x1, y1] as fractions of the width and height",
        "plain": "boxes (x0, y0, x1, y1) in pixels",
    }[style]
    return (
        f"{what}; {spacing}; {_ORIENTATION_NOTE.get(ctx.orientation, ctx.orientation)}; {boxes}; "
        f"findings scoring at least {ctx.score_threshold:.2f}:"
    )


def text_block(ctx: Context, style: str = "qwen") -> str:
    """The context as text lines (see the module docstring)."""
    if style not in STYLES:
        raise MedglipError(f"unknown text style {style!r}; expected one of {', '.join(STYLES)}")
    lines = [_header(ctx, style)]
    for f in ctx.findings:
        if style == "qwen":
            x0, y0, x1, y1 = qwen_box(f.box, ctx.image_size)
            head = f"<ref>{f.phrase}</ref><box>({x0},{y0}),({x1},{y1})</box>"
        elif style == "llava":
            head = f"{f.phrase}: [{', '.join(f'{v:.3f}' for v in llava_box(f.box, ctx.image_size))}]"
        else:
            head = f"{f.phrase}: box ({', '.join(f'{v:.1f}' for v in f.box)}) px,"
        lines.append(f"[{f.number}] {head} {_details(f)}")
    if not ctx.findings:
        lines.append("No findings.")
    if ctx.absent:
        lines.append(f"Not found: {', '.join(ctx.absent)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- pictures
def _check_pixels(ctx: Context, pixels: Any) -> np.ndarray:
    """uint8 ``(H, W)`` / ``(H, W, 3)`` of the context's image size (other dtypes are normalised)."""
    if isinstance(pixels, Image.Image):
        pixels = np.asarray(pixels.convert("RGB") if pixels.mode not in ("L", "RGB") else pixels)
    a = np.asarray(pixels)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]  # drop alpha
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] != 3):
        raise MedglipError(f"pixels of shape {a.shape}: expected an (H, W) or (H, W, 3) image")
    if tuple(a.shape[:2]) != tuple(ctx.image_size):
        raise MedglipError(f"pixels of size {a.shape[:2]} do not match the grounded image size {ctx.image_size} (H, W)")
    if a.dtype != np.uint8:  # raw values: the input pipeline's pixels, shown as a picture (CT: one window)
        a = picture(*model_pixels(a, ctx.modality if ctx.modality else None))
    return a


def _shown(ctx: Context, slice_index: int | None) -> tuple[list[Finding], int | None]:
    k = slice_index if slice_index is not None else (ctx.volume or {}).get("key_slice")
    return [f for f in ctx.findings if f.on_slice(k)], k


def visual_prompt(ctx: Context, pixels: Any, *, masks: bool = True, slice_index: int | None = None) -> Image.Image:
    """RGB copy (same size) with each shown finding's mask tinted, box outlined and number labelled.

    The colour of finding ``n`` is ``category_color(n)``; line width and font grow with the image
    (about 2-3 px and 26 px on a 512 px image) so the numbers stay legible.
    """
    a = _check_pixels(ctx, pixels)
    shown, k = _shown(ctx, slice_index)
    rgb = np.asarray(as_rgb(a))
    h, w = rgb.shape[:2]
    if masks:
        out = rgb.astype(np.float32)
        for f in shown:
            if f.mask is not None and f.mask.shape == (h, w) and (f.key_slice is None or f.key_slice == k):
                tint(out, f.mask, category_color(f.number), MASK_ALPHA)
        rgb = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    img = Image.fromarray(rgb, "RGB")
    draw = ImageDraw.Draw(img)
    side = min(h, w)
    line = max(2, round(side / 200))
    fnt = font(max(12, round(side / 20)))
    for f in shown:
        x0, y0, x1, y1 = f.box
        r = (
            max(0, round(x0)),
            max(0, round(y0)),
            min(w - 1, max(round(x0), round(x1) - 1)),
            min(h - 1, max(round(y0), round(y1) - 1)),
        )
        draw.rectangle(r, outline=category_color(f.number), width=line)
    for f in shown:  # labels after all boxes, so no box is drawn over a number
        c = category_color(f.number)
        text = str(f.number)
        tb = draw.textbbox((0, 0), text, font=fnt)
        lw, lh = tb[2] - tb[0] + 2 * line + 2, tb[3] - tb[1] + 2 * line + 2
        lx = min(max(0, round(f.box[0])), max(0, w - lw))
        ly = round(f.box[1]) - lh if round(f.box[1]) - lh >= 0 else round(f.box[1])  # above, else inside the top
        ly = min(max(0, ly), max(0, h - lh))
        draw.rectangle((lx, ly, lx + lw - 1, ly + lh - 1), fill=c)
        draw.text((lx + line + 1 - tb[0], ly + line + 1 - tb[1]), text, font=fnt, fill=ink(c))
    return img


def crops(
    ctx: Context, pixels: Any, *, pad: float = 0.15, min_size: int = 32, slice_index: int | None = None
) -> list[tuple[Finding, Image.Image]]:
    """Each shown finding's box, padded by ``pad`` × its width / height on each side and grown
    around its centre to at least ``min_size`` px per side, clipped to the image."""
    a = _check_pixels(ctx, pixels)
    if pad < 0 or min_size < 1:
        raise MedglipError(f"crops need pad >= 0 and min_size >= 1, got pad={pad}, min_size={min_size}")
    h, w = a.shape[:2]
    shown, _ = _shown(ctx, slice_index)
    out = []
    for f in shown:
        x0, y0, x1, y1 = f.box
        bounds = []
        for lo, hi, limit in ((x0, x1, w), (y0, y1, h)):
            size = hi - lo
            lo, hi = lo - pad * size, hi + pad * size
            if hi - lo < min_size:
                mid = (lo + hi) / 2.0
                lo, hi = mid - min_size / 2.0, mid + min_size / 2.0
            lo_i = min(max(0, math.floor(lo)), limit - 1)
            bounds.append((lo_i, min(max(math.ceil(hi), lo_i + 1), limit)))  # never empty
        (cx0, cx1), (cy0, cy1) = bounds
        out.append((f, Image.fromarray(np.ascontiguousarray(a[cy0:cy1, cx0:cx1]))))
    return out
