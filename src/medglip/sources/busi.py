"""BUSI, the Breast Ultrasound Images dataset (Al-Dhabyani et al. 2020).

Layout: ``Dataset_BUSI_with_GT/{benign,malignant,normal}/benign (1).png`` with its mask
``benign (1)_mask.png`` and, for images with several lesions, ``benign (1)_mask_1.png``,
``_mask_2.png`` ... Masks are RGB PNGs (0/255). Each mask file becomes its own label value (1, 2, ...
in the order ``_mask``, ``_mask_1``, ...) with the same name: ``"benign breast lesion"`` or
``"malignant breast lesion"``. ``normal`` images have all-zero masks: they are kept as cases with no
finding (negatives; a non-empty ``normal`` mask raises :class:`CaseError`). The grey images stored
as RGB are reduced to one channel. Case ids are the image stems (``"benign (1)"``); modality US.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "busi"
TIER = Tier.FOLDER
LOOKS_FOR = "benign/ malignant/ normal/ with *_mask.png (BUSI)"  # what `detect` looks for
CLASSES: dict[str, str | None] = {
    "benign": "benign breast lesion",
    "malignant": "malignant breast lesion",
    "normal": None,
}
_MASK = re.compile(r"^(?P<image>.+)_mask(?:_(?P<n>\d+))?$")


def detect(root: Path) -> bool:
    """At least two of ``benign/``, ``malignant/``, ``normal/`` holding ``*_mask.png`` files."""
    root = Path(root)
    hits = 0
    for cls in CLASSES:
        d = root / cls
        if d.is_dir() and any(p.name.endswith("_mask.png") for p in d.iterdir()):
            hits += 1
    return hits >= 2


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per image; its masks sorted as ``_mask``, ``_mask_1``, ``_mask_2``, ..."""
    root = Path(root)
    code = C.resolve_modality(modality, "US", where=str(root))
    refs = []
    for cls, label in CLASSES.items():
        folder = root / cls
        if not folder.is_dir():
            continue
        images: dict[str, Path] = {}
        masks: dict[str, list[tuple[int, Path]]] = {}
        for p in C.files_in(folder, C.IMAGE_2D_EXTS):
            m = _MASK.match(p.stem)
            if m:
                masks.setdefault(m["image"], []).append((int(m["n"]) if m["n"] else 0, p))
            else:
                images[p.stem] = p
        for cid in sorted(set(images) | set(masks)):
            ipath = images.get(cid) or folder / f"{cid}.png"
            mpaths = tuple(p for _, p in sorted(masks.get(cid, [(0, folder / f"{cid}_mask.png")])))
            meta = json.dumps({"busi_class": cls, "no_finding": cls == "normal"})
            opts = (("gray", True), ("mask_names", (label,) * len(mpaths)), ("meta", meta), ("threshold", 127))
            refs.append(
                CaseRef(
                    case_id=cid,
                    source=root.name,
                    layout=NAME,
                    image_paths=(ipath,),
                    label_paths=mpaths,
                    modality=code,
                    options=opts,
                )
            )
    if not refs:
        raise LayoutError(f"{root}: no benign/ malignant/ normal/ folders with images (BUSI)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the ultrasound image (grey) and its lesion masks (each its own label value)."""
    return load_pair(ref)
