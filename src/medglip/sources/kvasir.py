"""Kvasir-SEG (endoscopy polyps) and CVC-ClinicDB style paired folders.

- Kvasir-SEG: ``Kvasir-SEG/images/<id>.jpg`` + ``Kvasir-SEG/masks/<id>.jpg`` (masks are lossy JPEG,
  thresholded at 127) and optional ``kavsir_bboxes.json`` (``{id: {"height", "width", "bbox":
  [{"label", "xmin", "ymin", "xmax", "ymax"}]}}``, copied into ``case.meta["source_bboxes"]``).
- CVC-ClinicDB: ``Original/<n>.tif|png`` + ``Ground Truth/<n>.tif|png``.

Every case has one label, ``"polyp"``; modality ENDO; no split (the sources declare none).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "kvasir"
TIER = Tier.FOLDER
#: what `detect` looks for
LOOKS_FOR = "images/ + masks/ with kavsir_bboxes.json (Kvasir-SEG) or Original/ + Ground Truth/ (CVC-ClinicDB)"
LABEL = "polyp"
_PAIRS = (("images", "masks"), ("Original", "Ground Truth"))


def _folders(root: Path) -> tuple[Path, Path] | None:
    for img, msk in _PAIRS:
        if (root / img).is_dir() and (root / msk).is_dir():
            return root / img, root / msk
    return None


def detect(root: Path) -> bool:
    """``images/`` + ``masks/`` with ``kavsir_bboxes.json`` or "Kvasir-SEG" in the folder name, or
    ``Original/`` + ``Ground Truth/`` (CVC-ClinicDB)."""
    root = Path(root)
    found = _folders(root)
    if found is None:
        return False
    if found[0].name == "Original":
        return True
    name = root.name.lower().replace("_", "-")
    return (root / "kavsir_bboxes.json").is_file() or "kvasir-seg" in name


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """Pair images and masks by file stem; unpaired files become cases that fail on load."""
    root = Path(root)
    found = _folders(root)
    if found is None:
        raise LayoutError(f"{root}: no images/ + masks/ (Kvasir-SEG) or Original/ + Ground Truth/ (CVC-ClinicDB)")
    img_dir, msk_dir = found
    images = {p.stem: p for p in C.files_in(img_dir, C.IMAGE_2D_EXTS)}
    masks = {p.stem: p for p in C.files_in(msk_dir, C.IMAGE_2D_EXTS)}
    if not images and not masks:
        raise LayoutError(f"{img_dir}: no image files")
    code = C.resolve_modality(modality, "ENDO", where=str(root))
    bboxes = {}
    if (root / "kavsir_bboxes.json").is_file():
        try:
            bboxes = C.load_json(root / "kavsir_bboxes.json")
        except LayoutError as exc:
            log.warning("%s; bounding boxes ignored", exc)
    source = root.parent.name if root.name.upper() in ("PNG", "TIF") else root.name
    refs = []
    for cid in sorted(set(images) | set(masks)):
        ipath = images.get(cid) or img_dir / masks[cid].name
        mpath = masks.get(cid) or msk_dir / images[cid].name
        opts: list[tuple[str, object]] = [("mask_names", (LABEL,)), ("threshold", 127)]
        if isinstance(bboxes, dict) and cid in bboxes:
            opts.append(("meta", json.dumps({"source_bboxes": bboxes[cid]})))
        refs.append(
            CaseRef(
                case_id=cid,
                source=source,
                layout=NAME,
                image_paths=(ipath,),
                label_paths=(mpath,),
                modality=code,
                options=tuple(sorted(opts)),
            )
        )
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the RGB frame and its thresholded polyp mask."""
    return load_pair(ref)
