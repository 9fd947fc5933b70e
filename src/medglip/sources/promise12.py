"""PROMISE12, prostate MR segmentation (Litjens et al., Medical Image Analysis 2014).

Layout::

    TrainingData_Part1/Case00.mhd  Case00.raw  Case00_segmentation.mhd  Case00_segmentation.raw
    TrainingData_Part2/...   TrainingData_Part3/...
    TestData/Case00.mhd ...            (no segmentations)

Label: 1 prostate. Modality MR (T2-weighted). Training cases split ``train``; the root may also be
one ``TrainingData_PartN`` folder.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "promise12"
TIER = Tier.FOLDER
LOOKS_FOR = "CaseNN.mhd + CaseNN_segmentation.mhd (PROMISE12)"  # what `detect` looks for
LABELS: dict[int, str] = {1: "prostate"}
_CASE = re.compile(r"^Case\d+$")


def _folders(root: Path) -> list[tuple[Path, str | None]]:
    subs: list[tuple[Path, str | None]] = [
        (d, "test" if d.name.startswith("Test") else "train")
        for d in sorted(root.iterdir())
        if d.is_dir() and (d.name.startswith("TrainingData") or d.name.startswith("TestData"))
    ]
    return subs or [(root, None)]


def detect(root: Path) -> bool:
    """``CaseNN.mhd`` + ``CaseNN_segmentation.mhd`` (in the root or in ``TrainingData_PartN/``)."""
    root = Path(root)
    suffix = "_segmentation.mhd"
    return root.is_dir() and any(
        p.name.endswith(suffix) and _CASE.match(p.name[: -len(suffix)])
        for d, _ in _folders(root)
        for p in C.files_in(d, (".mhd",))
    )


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``CaseNN.mhd``; case ids are prefixed by the test folder for test cases."""
    root = Path(root)
    code = C.resolve_modality(modality, "MR", where=str(root))
    opts = V.options(LABELS, listed="PROMISE12")
    refs = []
    for d, split in _folders(root):
        for p in C.files_in(d, (".mhd",)):
            stem = p.name[: -len(".mhd")]
            if not _CASE.match(stem):
                continue
            seg = d / f"{stem}_segmentation.mhd"
            cid = stem if split != "test" else f"Test{stem}"
            refs.append(
                CaseRef(
                    case_id=cid,
                    source=root.name,
                    layout=NAME,
                    image_paths=(p,),
                    label_paths=(seg,) if seg.exists() else (),
                    modality=code,
                    split=split,
                    options=opts,
                )
            )
    if not refs:
        raise LayoutError(f"{root}: no CaseNN.mhd files (PROMISE12)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the T2 volume and its prostate mask."""
    return V.load_volume_pair(ref)
