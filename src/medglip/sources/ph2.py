"""PH2 dermoscopy (Mendonça et al., IEEE EMBC 2013).

Layout::

    PH2Dataset/PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp
    PH2Dataset/PH2 Dataset images/IMD002/IMD002_lesion/IMD002_lesion.bmp
    PH2Dataset/PH2 Dataset images/IMD002/IMD002_roi/...          (colour regions; not used)

One label, "lesion" (the folder suffix; a skin lesion in this source). Modality DERM; no split.
"""

from __future__ import annotations

from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair

NAME = "ph2"
LABEL = "lesion"


def _images_dir(root: Path) -> Path | None:
    for cand in (root / "PH2 Dataset images", root / "PH2Dataset" / "PH2 Dataset images", root):
        if cand.is_dir() and any((d / f"{d.name}_Dermoscopic_Image").is_dir() for d in sorted(cand.iterdir())[:5]
                                 if d.is_dir()):
            return cand
    return None


def detect(root: Path) -> bool:
    """``IMDnnn/IMDnnn_Dermoscopic_Image/`` case folders (PH2)."""
    root = Path(root)
    return root.is_dir() and _images_dir(root) is not None


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``IMDnnn`` folder; ``IMDnnn_lesion/IMDnnn_lesion.bmp`` is its mask."""
    root = Path(root)
    base = _images_dir(root)
    if base is None:
        raise LayoutError(f"{root}: no 'PH2 Dataset images/IMDnnn/IMDnnn_Dermoscopic_Image' folders (PH2)")
    code = C.resolve_modality(modality, "DERM", where=str(root))
    refs = []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and (p / f"{p.name}_Dermoscopic_Image").is_dir()):
        img = next(iter(C.files_in(d / f"{d.name}_Dermoscopic_Image", C.IMAGE_2D_EXTS)),
                   d / f"{d.name}_Dermoscopic_Image" / f"{d.name}.bmp")
        mask = d / f"{d.name}_lesion" / f"{d.name}_lesion.bmp"
        opts = (("mask_names", (LABEL,)), ("threshold", 127))
        refs.append(CaseRef(d.name, root.name, NAME, (img,), (mask,), code, None, opts))
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the dermoscopic image and its lesion mask."""
    return load_pair(ref)
