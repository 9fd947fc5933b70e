"""ISIC 2018 Task 1 (dermoscopy lesion segmentation).

Layout (as downloaded from the ISIC challenge site)::

    ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg        (+ ATTRIBUTION.txt, LICENSE.txt)
    ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png
    ISIC2018_Task1-2_Validation_Input/ ...   ISIC2018_Task1_Validation_GroundTruth/ ...
    ISIC2018_Task1-2_Test_Input/ ...         ISIC2018_Task1_Test_GroundTruth/ ...

The split comes from the folder name (Training → ``train``, Validation → ``val``, Test → ``test``).
An input folder without its GroundTruth folder gives unlabeled cases. ISIC 2017 names
(``ISIC-2017_Training_Data``, ``ISIC-2017_Training_Part1_GroundTruth``) are accepted too; only
``.jpg`` inputs are images (2017's ``_superpixels.png`` are skipped). Label ``"skin lesion"``; DERM.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair

log = logging.getLogger(__name__)

NAME = "isic2018"
LABEL = "skin lesion"
_INPUT = re.compile(r"^(?P<year>ISIC-?\d{4})_(?:Task1(?:-2)?_)?(?P<split>Training|Validation|Test)_(?:Input|Data)$")
_TRUTH = re.compile(r"^(?P<year>ISIC-?\d{4})_(?:Task1_)?(?P<split>Training|Validation|Test)_(?:Part1_)?GroundTruth$")
_SPLITS = {"Training": "train", "Validation": "val", "Test": "test"}


def _scan(root: Path) -> tuple[dict[str, Path], dict[str, Path], str]:
    """``({split: input folder}, {split: ground-truth folder}, year)`` of the ISIC folders in ``root``."""
    inputs, truths, year = {}, {}, "ISIC2018"
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        for pattern, out in ((_INPUT, inputs), (_TRUTH, truths)):
            m = pattern.match(d.name)
            if m:
                out[_SPLITS[m["split"]]] = d
                year = m["year"].replace("-", "")
    return inputs, truths, year


def detect(root: Path) -> bool:
    """Any ``ISIC2018_Task1-2_<Split>_Input`` / ``ISIC2018_Task1_<Split>_GroundTruth`` folder."""
    root = Path(root)
    if not root.is_dir():
        return False
    inputs, truths, _ = _scan(root)
    return bool(inputs or truths)


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per input ``.jpg`` (or per orphan ``_segmentation.png``), split from the folder."""
    root = Path(root)
    inputs, truths, year = _scan(root)
    if not inputs and not truths:
        raise LayoutError(f"{root}: no ISIC2018_Task1-2_<Training|Validation|Test>_Input folders")
    code = C.resolve_modality(modality, "DERM", where=str(root))
    refs = []
    for split in sorted(set(inputs) | set(truths)):
        in_dir = inputs.get(split)
        gt_dir = truths.get(split)
        images = {p.stem: p for p in C.files_in(in_dir, (".jpg", ".jpeg"))} if in_dir else {}
        masks = {}
        if gt_dir:
            for p in C.files_in(gt_dir, (".png",)):
                if p.stem.endswith("_segmentation"):
                    masks[p.stem[: -len("_segmentation")]] = p
        in_dir = in_dir or root / gt_dir.name.replace("GroundTruth", "Input")
        for cid in sorted(set(images) | set(masks)):
            ipath = images.get(cid) or in_dir / f"{cid}.jpg"
            labels = (masks.get(cid) or gt_dir / f"{cid}_segmentation.png",) if gt_dir else ()
            opts = (("mask_names", (LABEL,) * len(labels)), ("threshold", 127))
            refs.append(CaseRef(cid, year, NAME, (ipath,), labels, code, split, opts))
    return sorted(refs, key=lambda r: (r.case_id, r.split or ""))


def load_case(ref: CaseRef) -> Case:
    """Read the dermoscopic RGB image and its lesion mask."""
    return load_pair(ref)
