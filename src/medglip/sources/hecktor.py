"""HECKTOR 2022, head and neck tumour segmentation in PET/CT (Andrearczyk et al.).

Layout::

    hecktor2022_training/imagesTr/CHUM-001__CT.nii.gz   CHUM-001__PT.nii.gz
    hecktor2022_training/labelsTr/CHUM-001.nii.gz

Labels: 1 GTVp (primary tumour), 2 GTVn (lymph node metastases). The CT is the image (the labels
are on its grid; the PET, on its own coarser grid, is recorded in ``meta["pet"]``). The centre is
the id prefix (``CHUM``). Modality CT.
"""

from __future__ import annotations

from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "hecktor"
TIER = Tier.FOLDER
LOOKS_FOR = "imagesTr/<case>__CT.nii.gz + labelsTr/<case>.nii.gz (HECKTOR 2022)"  # what `detect` looks for
LABELS: dict[int, str] = {1: "GTVp", 2: "GTVn"}


def _base(root: Path) -> Path | None:
    for cand in (root, *sorted(d for d in root.iterdir() if d.is_dir())):
        if any(p.name.endswith("__CT.nii.gz") for p in C.files_in(cand / "imagesTr")):
            return cand
    return None


def detect(root: Path) -> bool:
    """``imagesTr/<case>__CT.nii.gz`` (+ ``__PT``) with ``labelsTr/<case>.nii.gz``."""
    root = Path(root)
    return root.is_dir() and _base(root) is not None


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``<case>__CT.nii.gz``."""
    root = Path(root)
    base = _base(root)
    if base is None:
        raise LayoutError(f"{root}: no imagesTr/<case>__CT.nii.gz files (HECKTOR 2022)")
    code = C.resolve_modality(modality, "CT", where=str(root))
    refs = []
    for p in C.files_in(base / "imagesTr", (".nii.gz",)):
        if not p.name.endswith("__CT.nii.gz"):
            continue
        cid = p.name[: -len("__CT.nii.gz")]
        lab = base / "labelsTr" / f"{cid}.nii.gz"
        meta = {"patient": cid, "centre": cid.split("-")[0], "pet": str(p.with_name(f"{cid}__PT.nii.gz"))}
        refs.append(
            CaseRef(
                case_id=cid,
                source=root.name,
                layout=NAME,
                image_paths=(p,),
                label_paths=(lab,) if lab.exists() else (),
                modality=code,
                split=None,
                options=V.options(LABELS, listed="HECKTOR 2022", meta=meta),
            )
        )
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the CT and its GTVp / GTVn label map."""
    return V.load_volume_pair(ref)
