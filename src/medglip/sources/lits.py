"""LiTS (Liver Tumor Segmentation, Bilic et al. 2023) and CT-ORG (Rister et al. 2020), which reuses it.

Layouts::

    LiTS:    Training Batch 1/volume-0.nii   Training Batch 1/segmentation-0.nii   (also flat)
    CT-ORG:  OrganSegmentations/volume-0.nii.gz   OrganSegmentations/labels-0.nii.gz

Labels: LiTS 1 liver, 2 tumor; CT-ORG 1 liver, 2 bladder, 3 lungs, 4 kidneys, 5 bone, 6 brain.
The release is told by the label file names (``segmentation-N`` or ``labels-N``). Case ids are
``volume-N``; volumes without a label file are unlabeled. Modality CT.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "lits"
TIER = Tier.FOLDER
LOOKS_FOR = "volume-N.nii + segmentation-N.nii (LiTS) or labels-N.nii.gz (CT-ORG)"  # what `detect` looks for
LITS_LABELS: dict[int, str] = {1: "liver", 2: "tumor"}
CTORG_LABELS: dict[int, str] = {1: "liver", 2: "bladder", 3: "lungs", 4: "kidneys", 5: "bone", 6: "brain"}
_VOLUME = re.compile(r"^volume-(?P<n>\d+)$")
_LABEL = re.compile(r"^(?P<kind>segmentation|labels)-(?P<n>\d+)$")


def _volume_files(root: Path) -> list[Path]:
    folders = [root] + sorted(d for d in root.iterdir() if d.is_dir() and not C.is_junk(d.name))
    return [p for d in folders for p in C.files_in(d, (".nii", ".nii.gz")) if _VOLUME.match(C.split_ext(p.name)[0])]


def detect(root: Path) -> bool:
    """``volume-N.nii[.gz]`` with ``segmentation-N`` (LiTS) or ``labels-N`` (CT-ORG) files."""
    root = Path(root)
    if not root.is_dir():
        return False
    return any(
        (p.parent / p.name.replace("volume-", kind + "-", 1)).exists()
        for p in _volume_files(root)[:20]
        for kind in ("segmentation", "labels")
    )


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``volume-N``, labelled by the ``segmentation-N`` / ``labels-N`` beside it."""
    root = Path(root)
    vols = _volume_files(root)
    if not vols:
        raise LayoutError(f"{root}: no volume-N.nii files (LiTS / CT-ORG)")
    code = C.resolve_modality(modality, "CT", where=str(root))
    refs = []
    for p in vols:
        lab = next(
            (
                p.parent / p.name.replace("volume-", k + "-", 1)
                for k in ("segmentation", "labels")
                if (p.parent / p.name.replace("volume-", k + "-", 1)).exists()
            ),
            None,
        )
        table, release = (
            (CTORG_LABELS, "CT-ORG") if lab is not None and lab.name.startswith("labels-") else (LITS_LABELS, "LiTS")
        )
        cid = C.split_ext(p.name)[0]
        refs.append(
            CaseRef(
                case_id=cid,
                source=root.name,
                layout=NAME,
                image_paths=(p,),
                label_paths=(lab,) if lab else (),
                modality=code,
                split=None,
                options=V.options(table, listed=release),
            )
        )
    ids = [r.case_id for r in refs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise LayoutError(f"{root}: case ids found twice (in two batch folders?): {dup[:5]}")
    return sorted(refs, key=lambda r: int(r.case_id.removeprefix("volume-")))  # ids are volume-N (_VOLUME)


def load_case(ref: CaseRef) -> Case:
    """Read the CT and its label map."""
    return V.load_volume_pair(ref)
