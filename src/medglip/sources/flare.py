"""FLARE22 and AbdomenCT-1K: nnU-Net style file names in two folders, without a ``dataset.json``.

Layouts::

    FLARE22Train/images/FLARE22_Tr_0001_0000.nii.gz    FLARE22Train/labels/FLARE22_Tr_0001.nii.gz
    AbdomenCT-1K/Image/Case_00001_0000.nii.gz          AbdomenCT-1K/Mask/Case_00001.nii.gz

(folder pairs ``images``/``labels``, ``Image``/``Mask``, ``Images``/``Masks`` are recognised).

Labels: FLARE22 (cases ``FLARE22_*``), 13 organs: 1 liver, 2 right kidney, 3 spleen, 4 pancreas,
5 aorta, 6 inferior vena cava, 7 right adrenal gland, 8 left adrenal gland, 9 gallbladder,
10 esophagus, 11 stomach, 12 duodenum, 13 left kidney. AbdomenCT-1K (and FLARE21, its subset):
1 liver, 2 kidney, 3 spleen, 4 pancreas. Modality CT; no declared split.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "flare"
TIER = Tier.FOLDER
#: what `detect` looks for
LOOKS_FOR = "images/ + labels/ (FLARE22) or Image/ + Mask/ (AbdomenCT-1K) with <case>_0000.nii.gz"
FLARE22_LABELS: dict[int, str] = {
    1: "liver",
    2: "right kidney",
    3: "spleen",
    4: "pancreas",
    5: "aorta",
    6: "inferior vena cava",
    7: "right adrenal gland",
    8: "left adrenal gland",
    9: "gallbladder",
    10: "esophagus",
    11: "stomach",
    12: "duodenum",
    13: "left kidney",
}
ABDOMENCT1K_LABELS: dict[int, str] = {1: "liver", 2: "kidney", 3: "spleen", 4: "pancreas"}
_PAIRS = (("images", "labels"), ("Image", "Mask"), ("Images", "Masks"))
_CHANNEL = re.compile(r"^(?P<case>.+)_0000$")


def _folders(root: Path) -> tuple[Path, Path] | None:
    for img, lab in _PAIRS:
        if (root / img).is_dir() and (root / lab).is_dir():
            return root / img, root / lab
    return None


def detect(root: Path) -> bool:
    """An images/labels (or Image/Mask) folder pair with ``<case>_0000.nii.gz`` images, no dataset.json."""
    root = Path(root)
    found = _folders(root)
    if found is None or (root / "dataset.json").exists():
        return False
    return any(_CHANNEL.match(C.split_ext(p.name)[0]) for p in C.files_in(found[0], (".nii.gz", ".nii")))


def labels_for(case_id: str) -> tuple[dict[int, str], str]:
    """The label table of a case and the release it belongs to."""
    if case_id.upper().startswith("FLARE22"):
        return FLARE22_LABELS, "FLARE22"
    return ABDOMENCT1K_LABELS, "AbdomenCT-1K"


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``<case>_0000.nii.gz`` image; the label is ``<case>.nii.gz`` in the label folder."""
    root = Path(root)
    found = _folders(root)
    if found is None:
        raise LayoutError(f"{root}: no images/ + labels/ (FLARE22) or Image/ + Mask/ (AbdomenCT-1K) folders")
    img_dir, lab_dir = found
    code = C.resolve_modality(modality, "CT", where=str(root))
    refs = []
    for p in C.files_in(img_dir, (".nii.gz", ".nii")):
        stem, ext = C.split_ext(p.name)
        m = _CHANNEL.match(stem)
        if not m:
            continue
        cid = m["case"]
        table, release = labels_for(cid)
        lab = lab_dir / f"{cid}{ext}"
        refs.append(
            CaseRef(
                case_id=cid,
                source=root.name,
                layout=NAME,
                image_paths=(p,),
                label_paths=(lab,),
                modality=code,
                options=V.options(table, listed=release),
            )
        )
    if not refs:
        raise LayoutError(f"{img_dir}: no <case>_0000.nii.gz images")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the CT and its organ label map."""
    return V.load_volume_pair(ref)
