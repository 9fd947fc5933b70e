"""COCO instance segmentation: ``annotations/instances_<split>.json`` + an images folder.

Any ``*.json`` in ``annotations/`` or the root holding ``images``/``annotations``/``categories`` is
read. Image files are looked up (first image decides, for the whole JSON) in ``<split>/``,
``images/<split>/``, ``images/``, the JSON's folder and the root, where ``<split>`` is the JSON
stem without ``instances_`` (``train2017``). The split is taken from the JSON name (train/val/test).

Segmentations may be polygons, uncompressed RLE (``counts`` a list) or compressed RLE (``counts`` a
string); ``pycocotools.mask`` decodes them. Each annotation becomes one label value (1, 2, ... in
annotation order) of a ``LabelMap(instances=True)`` named by its category; overlapping instances
are layered into further maps. ``case.meta`` records ``annotation_ids`` (value → COCO id) and
``crowd_values`` (values of ``iscrowd=1`` annotations). Case ids are file stems (made unique with
``_<image id>`` on collision). The modality comes from ``modality=``, the image record's
``modality`` field, or ``info.modality``; otherwise listing raises :class:`LayoutError`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..case import Case, CaseRef
from ..core.masks import decode_segmentation
from ..errors import CaseError, LayoutError, MedglipError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "coco"
TIER = Tier.GENERIC_JSON
LOOKS_FOR = "annotations/instances_<split>.json or a COCO *.json"  # what `detect` looks for
_KEYS = ("images", "annotations", "categories")


def _candidate_jsons(root: Path) -> list[Path]:
    return [
        p
        for d in (root / "annotations", root)
        for p in C.files_in(d, (".json",))
        if p.name not in ("dataset.json", "medglip_manifest.json", "manifest.json", "kavsir_bboxes.json")
    ]


def _is_coco(path: Path) -> bool:
    if path.name.startswith("instances_"):
        return True
    if path.stat().st_size > 50_000_000:
        return False
    try:
        data = C.load_json(path)
    except LayoutError:
        return False
    return isinstance(data, dict) and all(k in data for k in _KEYS)


def detect(root: Path) -> bool:
    """An ``instances_*.json`` or a JSON with ``images``, ``annotations`` and ``categories``."""
    root = Path(root)
    return root.is_dir() and any(_is_coco(p) for p in _candidate_jsons(root))


def _image_dir(root: Path, jpath: Path, first: str) -> Path:
    tag = jpath.stem.removeprefix("instances_")
    for d in (root / tag, root / "images" / tag, root / "images", jpath.parent, root):
        if (d / first).exists():
            return d
    return root / "images"


def _modality(user: str | None, record: dict, info: Any, jpath: Path) -> str:
    known = record.get("modality") or (info.get("modality") if isinstance(info, dict) else None)
    return C.resolve_modality(user, known, where=str(jpath), hint="no 'modality' in the image records or in 'info'")


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per image record that has a file name; its annotations travel in the ref."""
    root = Path(root)
    jsons = [p for p in _candidate_jsons(root) if _is_coco(p)]
    if not jsons:
        raise LayoutError(f"{root}: no annotations/instances_<split>.json or COCO *.json")
    refs: list[CaseRef] = []
    for jpath in jsons:
        data = C.load_json(jpath, what="COCO annotation file")
        if not isinstance(data, dict) or any(k not in data for k in _KEYS):
            missing = [k for k in _KEYS if not isinstance(data, dict) or k not in data]
            raise LayoutError(f"{jpath}: missing COCO key(s) {', '.join(missing)}")
        cats = {int(c["id"]): str(c["name"]) for c in data["categories"]}
        per_image: dict[int, list[dict]] = {}
        for ann in data["annotations"]:
            per_image.setdefault(int(ann["image_id"]), []).append(
                {k: ann[k] for k in ("id", "category_id", "segmentation", "iscrowd") if k in ann}
            )
        images = [im for im in data["images"] if im.get("file_name")]
        if not images:
            continue
        img_dir = _image_dir(root, jpath, images[0]["file_name"])
        split = C.split_from_name(jpath.stem)
        for im in images:
            code = _modality(modality, im, data.get("info"), jpath)
            anns = per_image.get(int(im["id"]), [])
            used = sorted({int(a["category_id"]) for a in anns})
            opts = (
                ("annotations", json.dumps(anns)),
                ("categories", tuple((c, cats.get(c, f"category_{c}")) for c in used)),
                ("image_id", int(im["id"])),
                ("size", (im.get("height"), im.get("width"))),
            )
            refs.append(
                CaseRef(
                    case_id=Path(im["file_name"]).stem,
                    source=root.name,
                    layout=NAME,
                    image_paths=(img_dir / im["file_name"],),
                    label_paths=(jpath,),
                    modality=code,
                    split=split,
                    options=opts,
                )
            )
    counts: dict[str, int] = {}
    for r in refs:
        counts[r.case_id] = counts.get(r.case_id, 0) + 1
    refs = [
        r if counts[r.case_id] == 1 else dataclasses.replace(r, case_id=f"{r.case_id}_{r.option('image_id')}")
        for r in refs
    ]
    return sorted(refs, key=lambda r: r.case_id)


def _decode(seg: Any, h: int, w: int, where: str) -> np.ndarray:
    """The mask of a COCO segmentation (:func:`medglip.core.masks.decode_segmentation`)."""
    try:
        mask = decode_segmentation(seg, h, w)
    except MedglipError as exc:
        raise CaseError(where, f"cannot decode segmentation: {exc}") from None
    return np.zeros((h, w), dtype=bool) if mask is None else mask


def load_case(ref: CaseRef) -> Case:
    """Read the image and rasterise its instance annotations into layered instance label maps."""
    from ..io import read_image

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    image = read_image(ipath)
    h, w = image.spatial_shape[:2]
    declared = tuple(ref.option("size", (None, None)))
    if None not in declared and tuple(int(x) for x in declared) != (h, w):
        raise CaseError(
            f"{ipath} / {ref.label_paths[0]}",
            f"image is {h}x{w} but the annotation file declares {declared[0]}x{declared[1]}",
        )
    cats = dict(ref.option("categories", ()))
    anns = json.loads(ref.option("annotations", "[]"))
    ids, crowd = {}, []

    def masks():
        for value, ann in enumerate(anns, start=1):
            where = f"{ref.label_paths[0]} (annotation {ann.get('id')})"
            ids[value] = ann.get("id")
            if ann.get("iscrowd"):
                crowd.append(value)
            yield value, cats[int(ann["category_id"])], _decode(ann.get("segmentation"), h, w, where)

    labels = C.layer_masks(masks(), (h, w), dtype=np.uint16, instances=True)
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or "",
            image=image.array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ipath),),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            spacing_known=image.spacing_known,
            meta={
                "coco_image_id": ref.option("image_id"),
                "annotation_ids": {str(k): v for k, v in ids.items()},
                "crowd_values": crowd,
                "no_finding": not anns,
            },
        )
    )
