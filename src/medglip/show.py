"""Render images of a built grounding dataset with their masks, boxes and phrases (`medglip show`).

The dataset layout is described in docs/dataset_format.md; the drawing itself is
:func:`medglip.core.draw.render` (the same drawer as grounding overlays): masks as semi-transparent
fills plus an outline, boxes on the pixel edges of the COCO box, phrases above the boxes, a footer
naming the source, case, slice and modality, and side markers on radiological slices.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
from pathlib import Path

import numpy as np
from PIL import Image

from .core.boxes import xywh_to_xyxy
from .core.draw import BACKGROUND, Mark, auto_scale, render
from .core.masks import decode_segmentation
from .core.pipeline import picture
from .errors import MedglipError, ReadError

log = logging.getLogger(__name__)

TILE_SIZE = 384  # square tiles of overview.png


def render_image(dataset_dir: Path | None, image_record: dict, annotations: list[dict],
                 categories: dict[int, dict], *, draw_masks: bool = True, draw_boxes: bool = True,
                 draw_labels: bool = True, scale: float | None = None,
                 image: Image.Image | None = None) -> Image.Image:
    """Draw one dataset image with its annotations (:func:`medglip.core.draw.render`).

    Args:
        dataset_dir: the built dataset (``OUT``); the image is read from ``OUT/images/<file_name>``.
        image_record: the COCO image record (with medglip's extra fields); a CT image (three
            windows as channels) is shown in its ``display_window``.
        annotations: the annotations to draw (any of them may lack ``segmentation``).
        categories: category records by id (for names and colours).
        draw_masks, draw_boxes, draw_labels: which layers to draw.
        scale: upscaling factor; None picks :func:`~medglip.core.draw.auto_scale`.
        image: the picture itself, when it is not a dataset file.

    Returns:
        An RGB image: the picture with its overlays on top, a footer band (source, case, slice,
        modality) below.
    """
    if image is None:
        if dataset_dir is None:
            raise MedglipError(f"image {image_record.get('id')}: no picture given and no dataset folder to read it")
        path = Path(dataset_dir) / "images" / image_record["file_name"]
        try:
            with Image.open(path) as im:
                pixels = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
        except (OSError, ValueError) as exc:
            raise ReadError(path, f"cannot read image {image_record.get('id')}: {exc}") from exc
        image = Image.fromarray(picture(pixels, image_record.get("intensity"),
                                        window=image_record.get("display_window")))
    w0, h0 = image.size
    marks = []
    for ann in annotations:
        cat = categories.get(ann["category_id"], {})
        try:
            mask = decode_segmentation(ann.get("segmentation"), h0, w0) if draw_masks else None
        except MedglipError as exc:
            log.warning("annotation %s: %s; its mask is not drawn", ann.get("id"), exc)
            mask = None
        box = xywh_to_xyxy([ann["bbox"]])[0] if ann.get("bbox") else None
        xyxy = None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        marks.append(Mark(box=xyxy, colour=ann["category_id"],
                          label=str(ann.get("phrase") or cat.get("name") or ann["category_id"]),
                          note=str(ann.get("level") or cat.get("level") or ""), mask=mask))
    r = image_record
    s = float(scale) if scale is not None else float(auto_scale(w0, h0))
    plane, index = r.get("slice_plane"), r.get("slice_index")
    where = f"{plane} {index}" if index is not None else str(plane or "2d")
    line1 = f"{r.get('source', '?')} | {r.get('case_id', '?')}"
    line2 = f"{where} | {r.get('modality', '?')} | {w0}x{h0} px" + (f" x{s:g}" if s != 1 else "")
    if r.get("negative") or not annotations:
        line2 += " | no finding" if r.get("negative") else " | no annotations"
    return render(image, marks, plane=plane, footer=(line1, line2), scale=s, draw_masks=draw_masks,
                  draw_boxes=draw_boxes, draw_labels=draw_labels)


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
        t = tile.resize((max(1, round(tile.width * f)), max(1, round(tile.height * f))), Image.Resampling.LANCZOS)
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
