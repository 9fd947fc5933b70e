"""Render images of a built grounding dataset with their masks, boxes and phrases (`medglip show`).

The dataset layout is described in docs/dataset_format.md. Each rendered image is upscaled with
nearest-neighbour interpolation by an integer factor (so that its short side is at least
``MIN_SHORT_SIDE`` pixels), masks are drawn as semi-transparent fills plus an outline, boxes as
rectangles on the pixel edges of the COCO box, phrases as labels above the boxes, and a footer
band below the image names the source, case, slice and modality. Radiological slices get side
markers (the patient's left is on the image's right).
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from pycocotools import mask as mask_utils

from .errors import MedglipError, ReadError

log = logging.getLogger(__name__)

MIN_SHORT_SIDE = 384  # default: upscale until the short side is at least this many pixels
MAX_LONG_SIDE = 4096  # ... unless the long side would exceed this
MASK_ALPHA = 0.4  # opacity of mask fills
FONT_SIZE = 14  # phrase text; the level is drawn at SMALL_FONT_SIZE
SMALL_FONT_SIZE = 10
LINE_HEIGHT = FONT_SIZE + 4
FOOTER_HEIGHT = 2 * LINE_HEIGHT + 6  # two lines of text below every rendered image
TILE_SIZE = 384  # square tiles of overview.png
BACKGROUND = (24, 24, 24)
MARKER_COLOR = (255, 230, 0)
# A fixed qualitative palette (Tableau 10 + extras); a category's colour is PALETTE[id % len].
PALETTE: tuple[tuple[int, int, int], ...] = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (188, 189, 34), (23, 190, 207), (255, 215, 0),
    (0, 128, 128), (230, 25, 75), (60, 180, 75), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190), (170, 110, 40),
)
# Side markers per slice plane: (top, bottom, left, right) of the image, in the radiological display
# convention of docs/dataset_format.md (the patient's left on the image's right).
SIDE_MARKERS: dict[str, tuple[str, str, str, str]] = {
    "axial": ("A", "P", "R", "L"), "coronal": ("S", "I", "R", "L"), "sagittal": ("S", "I", "A", "P"),
}

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1, inclusive pixel coordinates


def category_color(category_id: int) -> tuple[int, int, int]:
    """The stable RGB colour of a category (the same in every image and every run)."""
    return PALETTE[int(category_id) % len(PALETTE)]


def draw_marker(draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, anchor: str) -> None:
    """Draw one side marker ("L", "A", ...) in yellow with a black outline at `xy` (PIL text anchor)."""
    draw.text(xy, text, font=_font(FONT_SIZE), anchor=anchor, fill=MARKER_COLOR, stroke_width=2,
              stroke_fill=(0, 0, 0))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
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


def _decode(segmentation: object, height: int, width: int) -> np.ndarray | None:
    """Binary mask (H, W) from COCO RLE (string or list counts) or polygons; None if absent."""
    if not segmentation:
        return None
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = mask_utils.frPyObjects(segmentation, height, width)  # uncompressed RLE
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def _fit_text(text: str, font: ImageFont.ImageFont, max_width: float) -> str:
    """`text`, shortened with an ellipsis until it is at most `max_width` pixels wide."""
    if font.getlength(text) <= max_width:
        return text
    while text and font.getlength(text + "...") > max_width:
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
    fits, clamped = [], []
    for y in (box[1] - h, box[3] + 1, box[1]):
        r = (x, min(max(0, y), max(0, H - h)), x + w - 1, min(max(0, y), max(0, H - h)) + h - 1)
        (fits if r[1] == y else clamped).append(r)
    free = [r for r in fits + clamped if not any(_overlaps(r, t) for t in taken)]
    return free[0] if free else (fits + clamped)[0]


def render_image(dataset_dir: Path, image_record: dict, annotations: list[dict],
                 categories: dict[int, dict], *, draw_masks: bool = True, draw_boxes: bool = True,
                 draw_labels: bool = True, scale: float | None = None,
                 image: Image.Image | None = None) -> Image.Image:
    """Draw one dataset image with its annotations.

    Args:
        dataset_dir: the built dataset (``OUT``); the image is read from ``OUT/images/<file_name>``.
        image_record: the COCO image record (with medglip's extra fields).
        annotations: the annotations to draw (any of them may lack ``segmentation``).
        categories: category records by id (for names and colours).
        draw_masks, draw_boxes, draw_labels: which layers to draw.
        scale: upscaling factor; None picks :func:`auto_scale` (integer, NEAREST interpolation).
        image: the picture itself, when it is not a dataset file (e.g. a grounding result's input).

    Returns:
        An RGB image of ``round(width * scale) × round(height * scale) + FOOTER_HEIGHT`` pixels: the
        image with its overlays on top, the footer band (source, case, slice, modality) below.
    """
    if image is not None:
        base = image.convert("RGB")
    else:
        path = Path(dataset_dir) / "images" / image_record["file_name"]
        try:
            with Image.open(path) as im:
                base = im.convert("RGB")
        except (OSError, ValueError) as exc:
            raise ReadError(path, f"cannot read image {image_record.get('id')}: {exc}") from exc
    w0, h0 = base.size
    s = float(scale) if scale is not None else float(auto_scale(w0, h0))
    if s <= 0:
        raise MedglipError(f"scale must be positive, got {scale}")
    W, H = max(1, round(w0 * s)), max(1, round(h0 * s))
    img = base.resize((W, H), Image.NEAREST) if (W, H) != (w0, h0) else base
    font, small = _font(FONT_SIZE), _font(SMALL_FONT_SIZE)
    line_w = max(2, round(s / 3)) if s >= 1 else 1

    def colour(ann: dict) -> tuple[int, int, int]:
        return category_color(ann["category_id"])

    if draw_masks:
        arr = np.asarray(img, dtype=np.float32).copy()
        outlines = []
        for ann in annotations:
            m = _decode(ann.get("segmentation"), h0, w0)
            if m is None:
                continue
            if m.shape != (h0, w0):
                log.warning("annotation %s: mask %s does not match image %s, not drawn",
                            ann.get("id"), m.shape, (h0, w0))
                continue
            mimg = Image.fromarray(m.astype(np.uint8) * 255).resize((W, H), Image.NEAREST)
            ms = np.asarray(mimg) > 0
            arr[ms] = arr[ms] * (1 - MASK_ALPHA) + np.asarray(colour(ann), np.float32) * MASK_ALPHA
            eroded = np.asarray(mimg.filter(ImageFilter.MinFilter(2 * line_w + 1))) > 0
            outlines.append((ms & ~eroded, colour(ann)))
        for edge, c in outlines:
            arr[edge] = c
        img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8))

    canvas = Image.new("RGB", (W, H + FOOTER_HEIGHT), BACKGROUND)
    canvas.paste(img, (0, 0))
    draw = ImageDraw.Draw(canvas)
    boxes = [(ann, box_rect(ann["bbox"], s)) for ann in annotations if ann.get("bbox")]
    if draw_boxes:
        for ann, r in boxes:
            draw.rectangle(r, outline=colour(ann), width=line_w)
    if draw_labels:
        taken: list[Rect] = []
        for ann, r in boxes:
            cat = categories.get(ann["category_id"], {})
            phrase = str(ann.get("phrase") or cat.get("name") or ann["category_id"])
            level = str(ann.get("level") or cat.get("level") or "")
            phrase = _fit_text(phrase, font, W - 8)
            pw, lw = font.getlength(phrase), (small.getlength(level) if level else 0)
            if pw + 6 + lw + 6 > W:
                level, lw = "", 0
            size = (math.ceil(pw + (lw + 4 if level else 0)) + 6, LINE_HEIGHT)
            lab = _place_label(size, r, (W, H), taken)
            taken.append(lab)
            c = colour(ann)
            draw.rectangle(lab, fill=c)
            ink = (0, 0, 0) if 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 150 else (255, 255, 255)
            draw.text((lab[0] + 3, lab[1] + 2), phrase, font=font, fill=ink)
            if level:
                draw.text((lab[0] + 3 + pw + 4, lab[1] + 6), level, font=small, fill=ink)

    markers = SIDE_MARKERS.get(str(image_record.get("slice_plane")))
    if markers:
        top, bottom, left, right = markers
        for xy, text, anchor in (((W // 2, 3), top, "mt"), ((W // 2, H - 3), bottom, "mb"),
                                 ((4, H // 2), left, "lm"), ((W - 4, H // 2), right, "rm")):
            draw_marker(draw, xy, text, anchor)

    r = image_record
    plane, index = r.get("slice_plane"), r.get("slice_index")
    where = f"{plane} {index}" if index is not None else str(plane or "2d")
    line1 = f"{r.get('source', '?')} | {r.get('case_id', '?')}"
    line2 = f"{where} | {r.get('modality', '?')} | {w0}x{h0} px" + (f" x{s:g}" if s != 1 else "")
    if r.get("negative") or not annotations:
        line2 += " | no finding" if r.get("negative") else " | no annotations"
    for i, line in enumerate((line1, line2)):
        draw.text((4, H + 3 + i * LINE_HEIGHT), _fit_text(line, font, W - 8), font=font,
                  fill=(230, 230, 230))
    return canvas


def _output_name(image: dict) -> str:
    """`<source>_<case_id>_<plane><index>.png` (2D sources: `<source>_<case_id>.png`), sanitised."""
    stem = f"{image.get('source', 'image')}_{image.get('case_id', image['id'])}"
    if image.get("slice_index") is not None and image.get("slice_plane") not in (None, "2d"):
        stem += f"_{image['slice_plane']}{image['slice_index']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") + ".png"


def _overview(tiles: list[Image.Image]) -> Image.Image:
    """Contact sheet: each rendering fitted (aspect kept) into an equal TILE_SIZE square."""
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new("RGB", (cols * TILE_SIZE, rows * TILE_SIZE), BACKGROUND)
    inner = TILE_SIZE - 8
    for k, tile in enumerate(tiles):
        f = min(inner / tile.width, inner / tile.height)
        t = tile.resize((max(1, round(tile.width * f)), max(1, round(tile.height * f))), Image.LANCZOS)
        x = (k % cols) * TILE_SIZE + (TILE_SIZE - t.width) // 2
        y = (k // cols) * TILE_SIZE + (TILE_SIZE - t.height) // 2
        sheet.paste(t, (x, y))
    return sheet


def load_split(dataset_dir: Path, split: str) -> dict:
    """The COCO dict of ``OUT/annotations/<split>.json``; MedglipError listing the splits if absent."""
    ann_dir = Path(dataset_dir) / "annotations"
    path = ann_dir / f"{split}.json"
    if not path.is_file():
        found = sorted(p.stem for p in ann_dir.glob("*.json")) if ann_dir.is_dir() else []
        raise MedglipError(f"split {split!r} not found in {ann_dir}; available splits: "
                           f"{', '.join(found) if found else 'none'}")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReadError(path, f"not a readable COCO json: {exc}") from exc


def show(dataset_dir: Path, out_dir: Path, *, split: str = "train", image_ids: list[int] | None = None,
         case_ids: list[str] | None = None, phrases: list[str] | None = None, n: int = 8,
         positives_only: bool = True, grid: bool = True, seed: int = 0) -> list[Path]:
    """Render images of one split to PNG files (plus ``overview.png`` when `grid`).

    Selection: images of `split` filtered by `case_ids` and `phrases` (images containing any of the
    phrases; only those phrases are drawn) and, when `positives_only`, by having annotations; then,
    sorted by id, a sample of `n` drawn with `seed` (n ≤ 0: all). Explicit `image_ids` are rendered
    all, whatever `n` and `positives_only`. Unknown ids, case ids or phrases raise MedglipError.

    Returns:
        The paths written: one PNG per image (in image id order), then ``overview.png``.
    """
    coco = load_split(dataset_dir, split)
    images = {int(im["id"]): im for im in coco.get("images", [])}
    categories = {int(c["id"]): c for c in coco.get("categories", [])}
    by_image: dict[int, list[dict]] = {}
    for ann in coco.get("annotations", []):
        by_image.setdefault(int(ann["image_id"]), []).append(ann)

    def unknown(kind: str, asked: list, known: set) -> None:
        missing = [x for x in asked if x not in known]
        if missing:
            raise MedglipError(f"unknown {kind} in split {split!r}: {', '.join(map(str, missing))}")

    selected = sorted(images)
    if image_ids is not None:
        unknown("image id(s)", [int(i) for i in image_ids], set(images))
        selected = sorted({int(i) for i in image_ids})
    if case_ids is not None:
        unknown("case id(s)", list(case_ids), {str(im.get("case_id")) for im in images.values()})
        selected = [i for i in selected if str(images[i].get("case_id")) in set(case_ids)]
    wanted: set[str] | None = None
    if phrases is not None:
        def phrase_of(a: dict) -> str:
            return str(a.get("phrase") or categories.get(a["category_id"], {}).get("name"))
        known = {str(c.get("name")) for c in categories.values()}
        known |= {phrase_of(a) for anns in by_image.values() for a in anns}
        unknown("phrase(s)", list(phrases), known)
        wanted = set(phrases)
        for i, anns in by_image.items():
            by_image[i] = [a for a in anns if phrase_of(a) in wanted]
        selected = [i for i in selected if by_image.get(i)]
    if image_ids is None:
        if positives_only:
            selected = [i for i in selected if by_image.get(i) and not images[i].get("negative")]
        if 0 < n < len(selected):
            selected = sorted(random.Random(seed).sample(selected, n))
    if not selected:
        raise MedglipError(f"no image of split {split!r} matches the selection "
                           f"(case_ids={case_ids}, phrases={phrases}, positives_only={positives_only})")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rendered: list[Image.Image] = []
    used: set[str] = set()
    for i in selected:
        im = render_image(dataset_dir, images[i], by_image.get(i, []), categories)
        name = _output_name(images[i])
        if name in used or name == "overview.png":
            name = f"{name[:-4]}_{i}.png"
        used.add(name)
        path = out_dir / name
        im.save(path)
        written.append(path)
        rendered.append(im)
        log.debug("wrote %s", path)
    if grid:
        path = out_dir / "overview.png"
        _overview(rendered).save(path)
        written.append(path)
    log.info("rendered %d image(s) of split %r to %s", len(selected), split, out_dir)
    return written
