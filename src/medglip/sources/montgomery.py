"""Montgomery County chest X-ray set (Jaeger et al., Quant Imaging Med Surg 2014; NLM).

Layout of ``NLM-MontgomeryCXRSet.zip``::

    MontgomerySet/CXR_png/MCUCXR_0001_0.png              (_0 normal, _1 tuberculosis)
    MontgomerySet/ManualMask/leftMask/MCUCXR_0001_0.png  the patient's left lung (image right)
    MontgomerySet/ManualMask/rightMask/MCUCXR_0001_0.png the patient's right lung
    MontgomerySet/ClinicalReadings/MCUCXR_0001_0.txt

Label names are the mask folder names (``leftMask``, ``rightMask``); the ontology maps them to
"left lung" / "right lung" for this source. Modality XR; ``meta["tuberculosis"]`` from the suffix.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

NAME = "montgomery"
TIER = Tier.FOLDER
LOOKS_FOR = "CXR_png/MCUCXR_*.png + ManualMask/leftMask|rightMask (Montgomery)"  # what `detect` looks for
MASKS: tuple[str, ...] = ("leftMask", "rightMask")


def _base(root: Path) -> Path:
    return root / "MontgomerySet" if (root / "MontgomerySet").is_dir() else root


def detect(root: Path) -> bool:
    """``CXR_png/MCUCXR_*.png`` with ``ManualMask/leftMask`` (Montgomery)."""
    base = _base(Path(root))
    return (base / "ManualMask" / "leftMask").is_dir() and any(
        p.name.startswith("MCUCXR") for p in C.files_in(base / "CXR_png")
    )


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per radiograph; its left and right lung masks (those present) are its labels."""
    root = Path(root)
    base = _base(root)
    images = C.files_in(base / "CXR_png", (".png",))
    if not images:
        raise LayoutError(f"{base}: no CXR_png/*.png radiographs (Montgomery)")
    code = C.resolve_modality(modality, "XR", where=str(root))
    refs = []
    for p in images:
        found = [(m, base / "ManualMask" / m / p.name) for m in MASKS if (base / "ManualMask" / m / p.name).exists()]
        meta = {"tuberculosis": p.stem.endswith("_1"), "patient": p.stem}
        opts = (
            ("gray", True),
            ("mask_names", tuple(m for m, _ in found)),
            ("meta", json.dumps(meta)),
            ("threshold", 127),
        )
        refs.append(
            CaseRef(
                case_id=p.stem,
                source=root.name,
                layout=NAME,
                image_paths=(p,),
                label_paths=tuple(q for _, q in found),
                modality=code,
                options=opts,
            )
        )
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the radiograph and its two lung masks."""
    return load_pair(ref)
