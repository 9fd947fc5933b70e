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

from .case import safe_name
from .core.boxes import xywh_to_xyxy
from .core.draw import BACKGROUND, Mark, auto_scale, render
from .core.masks import decode_segmentation
from .core.pipeline import picture
from .errors import MedglipError, ReadError

log = logging.getLogger(__name__)

TILE_SIZE = 384  # square tiles of overview.png


def render_image(
    dataset_dir: Path | None,
    image_record: dict,
    annotations: list[dict],
    categories: dict[int, dict],
    *,
    draw_masks: bool = True,
    draw_boxes: bool = True,
    draw_labels: bool = True,
    scale: float | None = None,
    image: Image.Image | None = None,
) -> Image.Image:
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
        image = Image.fromarray(
            picture(pixels, image_record.get("intensity"), window=image_record.get("display_window"))
        )
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
        marks.append(
            Mark(
                box=xyxy,
                colour=ann["category_id"],
                label=str(ann.get("phrase") or cat.get("name") or ann["category_id"]),
                note=str(ann.get("level") or cat.get("level") or ""),
                mask=mask,
            )
        )
    r = image_record
    s = float(scale) if scale is not None else float(auto_scale(w0, h0))
    plane, index = r.get("slice_plane"), r.get("slice_index")
    where = f"{plane} {index}" if index is not None else str(plane or "2d")
    line1 = f"{r.get('source', '?')} | {r.get('case_id', '?')}"
    line2 = f"{where} | {r.get('modality', '?')} | {w0}x{h0} px" + (f" x{s:g}" if s != 1 else "")
    if r.get("negative") or not annotations:
        line2 += " | no finding" if r.get("negative") else " | no annotations"
    return render(
        image,
        marks,
        plane=plane,
        footer=(line1, line2),
        scale=s,
        draw_masks=draw_masks,
        draw_boxes=draw_boxes,
        draw_labels=draw_labels,
    )


def _output_name(image: dict) -> str:
    """`<source>_<case_id>_<plane><index>.png` (2D sources: `<source>_<case_id>.png`), sanitised."""
    stem = f"{image.get('source', 'image')}_{image.get('case_id', image['id'])}"
    if image.get("slice_index") is not None and image.get("slice_plane") not in (None, "2d"):
        stem += f"_{image['slice_plane']}{image['slice_index']}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") + ".png"


def contact_sheet(tiles: list[Image.Image], *, tile: int = TILE_SIZE) -> Image.Image:
    """A grid of ``tiles``, each fitted (aspect kept) into an equal ``tile`` square (``overview.png``, and
    ``medglip ground --overlay`` of a volume)."""
    cols = math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new("RGB", (cols * tile, rows * tile), BACKGROUND)
    inner = tile - 8
    for k, t in enumerate(tiles):
        f = min(inner / t.width, inner / t.height)
        t = t.resize((max(1, round(t.width * f)), max(1, round(t.height * f))), Image.Resampling.LANCZOS)
        x = (k % cols) * tile + (tile - t.width) // 2
        y = (k // cols) * tile + (tile - t.height) // 2
        sheet.paste(t, (x, y))
    return sheet


def load_split(dataset_dir: Path, split: str) -> dict:
    """The COCO dict of ``OUT/annotations/<split>.json``; MedglipError listing the splits if absent."""
    ann_dir = Path(dataset_dir) / "annotations"
    path = ann_dir / f"{split}.json"
    if not path.is_file():
        found = sorted(p.stem for p in ann_dir.glob("*.json")) if ann_dir.is_dir() else []
        raise MedglipError(
            f"split {split!r} not found in {ann_dir}; available splits: {', '.join(found) if found else 'none'}"
        )
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ReadError(path, f"not a readable COCO json: {exc}") from exc


#: the splits a build writes, in the order ``--case`` searches them
SPLITS = ("train", "val", "test")


def case_names(image: dict) -> set[str]:
    """Every name an image's case goes by: its id, ``source/id``, and its key in ``cases.json`` (file-system safe
    ``source/id``, the folder of its images)."""
    source, cid = str(image.get("source", "")), str(image.get("case_id", ""))
    names = {cid, f"{source}/{cid}", f"{safe_name(source)}/{safe_name(cid)}"}
    parts = Path(str(image.get("file_name", ""))).parts
    if len(parts) >= 3:
        names.add("/".join(parts[:2]))
    return names


def _case_splits(dataset_dir: Path, asked: list[str], split: str | None) -> list[str]:
    """The splits holding the cases ``asked`` (``split`` itself when given); an unknown case, or one in another
    split than ``split``, is an error listing the valid ids (as ``cases.json`` writes them) and their splits."""
    found: dict[str, list[str]] = {}  # a name of a case → the splits of its images
    keys: dict[str, str] = {}  # key → its split
    for sp in SPLITS:
        if not (Path(dataset_dir) / "annotations" / f"{sp}.json").is_file():
            continue
        for im in load_split(dataset_dir, sp).get("images", []):
            for name in case_names(im):
                found.setdefault(name, []).append(sp)
            keys.setdefault(f"{safe_name(str(im.get('source', '')))}/{safe_name(str(im.get('case_id', '')))}", sp)
    unknown = [c for c in asked if c not in found]
    if unknown:
        listed = [f"{k} ({sp})" for k, sp in sorted(keys.items())]
        more = f", … ({len(listed) - 30} more)" if len(listed) > 30 else ""
        raise MedglipError(
            f"unknown case id(s) in {dataset_dir}: {', '.join(unknown)}; its cases (as cases.json "
            f"names them; the case id alone works too): {', '.join(listed[:30]) or 'none'}{more}"
        )
    if split is not None:
        elsewhere = [f"{c} is in split {sorted(set(found[c]))[0]!r}" for c in asked if split not in found[c]]
        if elsewhere:
            raise MedglipError(
                f"not in split {split!r}: {'; '.join(elsewhere)} (ask for that split, or leave the "
                "split out to search every split)"
            )
        return [split]
    return [sp for sp in SPLITS if any(sp in found[c] for c in asked)]


def _select(
    coco: dict,
    split: str,
    *,
    image_ids: list[int] | None,
    case_ids: list[str] | None,
    wanted: set[str] | None,
    positives_only: bool,
) -> tuple[list[tuple[dict, list[dict]]], set[str]]:
    """The images of one split that pass the filters, each with the annotations to draw, and the phrases the
    split knows (to name an unknown one)."""
    images = {int(im["id"]): im for im in coco.get("images", [])}
    categories = {int(c["id"]): c for c in coco.get("categories", [])}
    by_image: dict[int, list[dict]] = {}
    for ann in coco.get("annotations", []):
        by_image.setdefault(int(ann["image_id"]), []).append(ann)

    def phrase_of(a: dict) -> str:
        return str(a.get("phrase") or categories.get(a["category_id"], {}).get("name"))

    known = {str(c.get("name")) for c in categories.values()} | {phrase_of(a) for v in by_image.values() for a in v}
    selected = sorted(images)
    if image_ids is not None:
        missing = [i for i in image_ids if int(i) not in images]
        if missing:
            raise MedglipError(f"unknown image id(s) in split {split!r}: {', '.join(map(str, missing))}")
        selected = sorted({int(i) for i in image_ids})
    if case_ids is not None:
        selected = [i for i in selected if case_names(images[i]) & set(case_ids)]
    if wanted is not None:
        by_image = {i: [a for a in anns if phrase_of(a) in wanted] for i, anns in by_image.items()}
        selected = [i for i in selected if by_image.get(i)]
    if image_ids is None and positives_only:
        selected = [i for i in selected if by_image.get(i) and not images[i].get("negative")]
    return [(images[i], by_image.get(i, [])) for i in selected], known


def show(
    dataset_dir: Path,
    out_dir: Path | None = None,
    *,
    split: str | None = "train",
    image_ids: list[int] | None = None,
    case_ids: list[str] | None = None,
    phrases: list[str] | None = None,
    n: int = 8,
    positives_only: bool = True,
    grid: bool = True,
    seed: int = 0,
) -> list[Path]:
    """Render images of a built dataset to PNG files (plus ``overview.png`` when `grid`).

    Selection: images of `split` filtered by `case_ids` (any name :func:`case_names` gives a case:
    ``brain2``, ``pyradiomics/brain2`` as in ``cases.json``) and `phrases` (images containing any of the
    phrases; only those phrases are drawn) and, when `positives_only`, by having annotations; then,
    sorted by id, a sample of `n` drawn with `seed` (n ≤ 0: all). Explicit `image_ids` are rendered
    all, whatever `n` and `positives_only`. ``split=None``: the splits that hold `case_ids` (train without
    them). Unknown ids, case ids or phrases raise MedglipError naming them (and the valid case ids).

    Args:
        out_dir: the folder for the PNGs; None: ``<dataset_dir>/show``.

    Returns:
        The paths written: one PNG per image (in split, then image id order), then ``overview.png``.
    """
    dataset_dir = Path(dataset_dir)
    out_dir = Path(out_dir) if out_dir is not None else dataset_dir / "show"
    splits = _case_splits(dataset_dir, list(case_ids), split) if case_ids is not None else [split or "train"]
    wanted = set(phrases) if phrases is not None else None
    chosen: list[tuple[str, dict, list[dict], dict[int, dict]]] = []
    known: set[str] = set()
    for sp in splits:
        coco = load_split(dataset_dir, sp)
        categories = {int(c["id"]): c for c in coco.get("categories", [])}
        picked, names = _select(
            coco, sp, image_ids=image_ids, case_ids=case_ids, wanted=wanted, positives_only=positives_only
        )
        known |= names
        chosen += [(sp, im, anns, categories) for im, anns in picked]
    missing = sorted(wanted - known) if wanted is not None else []
    if missing:
        raise MedglipError(f"unknown phrase(s) in split {'/'.join(splits)!r}: {', '.join(missing)}")
    if image_ids is None and 0 < n < len(chosen):
        keep = sorted(random.Random(seed).sample(range(len(chosen)), n))
        chosen = [chosen[k] for k in keep]
    if not chosen:
        raise MedglipError(
            f"no image of split {'/'.join(splits)!r} matches the selection "
            f"(case_ids={case_ids}, phrases={phrases}, positives_only={positives_only})"
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rendered: list[Image.Image] = []
    used: set[str] = set()
    for _split, image, anns, categories in chosen:
        im = render_image(dataset_dir, image, anns, categories)
        name = _output_name(image)
        if name in used or name == "overview.png":
            name = f"{name[:-4]}_{image['id']}.png"
        used.add(name)
        path = out_dir / name
        im.save(path)
        written.append(path)
        rendered.append(im)
        log.debug("wrote %s", path)
    if grid:
        path = out_dir / "overview.png"
        contact_sheet(rendered).save(path)
        written.append(path)
    log.info("rendered %d image(s) of split %s to %s", len(chosen), "/".join(splits), out_dir)
    return written
