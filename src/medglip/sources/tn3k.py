"""TN3K thyroid nodule ultrasound (Gong et al., ISBI 2021 / Computers in Biology and Medicine 2023).

Layout::

    trainval-image/0000.jpg   trainval-mask/0000.jpg     (2879 images)
    test-image/0000.jpg       test-mask/0000.jpg         (614 images)

One label, "thyroid nodule" (masks are JPEG, thresholded at 127). Splits: trainval → train,
test → test. Modality US; the grey images stored as RGB are reduced to one channel.
"""

from __future__ import annotations

from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

NAME = "tn3k"
TIER = Tier.FOLDER
LOOKS_FOR = "trainval-image/ + trainval-mask/ (TN3K)"  # what `detect` looks for
LABEL = "thyroid nodule"
_SPLITS = (("trainval", "train"), ("test", "test"))


def detect(root: Path) -> bool:
    """``trainval-image/`` + ``trainval-mask/`` (or ``test-image/`` + ``test-mask/``)."""
    root = Path(root)
    return any((root / f"{s}-image").is_dir() and (root / f"{s}-mask").is_dir() for s, _ in _SPLITS)


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per image; case ids carry the folder (``trainval_0000``) since numbers restart."""
    root = Path(root)
    code = C.resolve_modality(modality, "US", where=str(root))
    refs = []
    for folder, split in _SPLITS:
        for p in C.files_in(root / f"{folder}-image", C.IMAGE_2D_EXTS):
            mask = next(
                (
                    q
                    for q in (
                        root / f"{folder}-mask" / p.name,
                        *(root / f"{folder}-mask" / (p.stem + e) for e in (".png", ".jpg")),
                    )
                    if q.exists()
                ),
                root / f"{folder}-mask" / p.name,
            )
            opts = (("gray", True), ("mask_names", (LABEL,)), ("threshold", 127))
            refs.append(
                CaseRef(
                    case_id=f"{folder}_{p.stem}",
                    source=root.name,
                    layout=NAME,
                    image_paths=(p,),
                    label_paths=(mask,),
                    modality=code,
                    split=split,
                    options=opts,
                )
            )
    if not refs:
        raise LayoutError(f"{root}: no trainval-image/ or test-image/ pictures (TN3K)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the ultrasound image and its nodule mask."""
    return load_pair(ref)
