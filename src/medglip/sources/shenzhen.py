"""Shenzhen chest X-ray set (Jaeger et al. 2014; NLM) with the lung masks of Stirenko et al. 2018.

Layout::

    ChinaSet_AllFiles/CXR_png/CHNCXR_0001_0.png        (_0 normal, _1 tuberculosis)
    ChinaSet_AllFiles/ClinicalReadings/CHNCXR_0001_0.txt
    mask/CHNCXR_0001_0_mask.png                        the lung masks (566 of the 662 images),
                                                       in the root or in ``ChinaSet_AllFiles/``

Each mask holds both lungs in one label, named "lung". Radiographs without a mask are unlabeled.
Modality XR; ``meta["tuberculosis"]`` from the suffix.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

NAME = "shenzhen"
TIER = Tier.FOLDER
LOOKS_FOR = "CXR_png/CHNCXR_*.png + mask/<id>_mask.png (Shenzhen)"  # what `detect` looks for
LABEL = "lung"


def _base(root: Path) -> Path:
    return root / "ChinaSet_AllFiles" if (root / "ChinaSet_AllFiles").is_dir() else root


def _mask_dir(root: Path) -> Path | None:
    for cand in (root / "mask", root / "masks", _base(root) / "mask", _base(root) / "masks"):
        if cand.is_dir():
            return cand
    return None


def detect(root: Path) -> bool:
    """``CXR_png/CHNCXR_*.png`` and a ``mask/`` folder of ``*_mask.png`` files."""
    root = Path(root)
    return _mask_dir(root) is not None and any(p.name.startswith("CHNCXR") for p in C.files_in(_base(root) / "CXR_png"))


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per radiograph; ``<id>_mask.png`` is its lung mask when present."""
    root = Path(root)
    images = C.files_in(_base(root) / "CXR_png", (".png",))
    if not images:
        raise LayoutError(f"{root}: no ChinaSet_AllFiles/CXR_png/*.png radiographs (Shenzhen)")
    mdir = _mask_dir(root)
    code = C.resolve_modality(modality, "XR", where=str(root))
    refs = []
    for p in images:
        mask = mdir / f"{p.stem}_mask.png" if mdir else None
        labels = (mask,) if mask is not None and mask.exists() else ()
        meta = {"tuberculosis": p.stem.endswith("_1"), "patient": p.stem}
        opts = (("gray", True), ("mask_names", (LABEL,) * len(labels)), ("meta", json.dumps(meta)), ("threshold", 127))
        refs.append(
            CaseRef(
                case_id=p.stem,
                source=root.name,
                layout=NAME,
                image_paths=(p,),
                label_paths=labels,
                modality=code,
                options=opts,
            )
        )
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the radiograph and its lung mask."""
    return load_pair(ref)
