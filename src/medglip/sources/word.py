"""WORD, Whole abdominal ORgan Dataset (Luo et al., Medical Image Analysis 2022; HiLab-git/WORD).

Layout of ``WORD-V0.1.0``::

    imagesTr/word_0001.nii.gz  labelsTr/word_0001.nii.gz     (100 training cases)
    imagesVal/...              labelsVal/...                 (20 validation cases)
    imagesTs/...               labelsTs/...                  (30 test cases; labels released later)

The 16 organs, named as the WORD release lists them: 1 Liver, 2 Spleen, 3 Kidney (L), 4 Kidney (R),
5 Stomach, 6 Gallbladder, 7 Esophagus, 8 Pancreas, 9 Duodenum, 10 Colon, 11 Intestine (the small
bowel), 12 Adrenal, 13 Rectum, 14 Bladder, 15 Head of Femur (L), 16 Head of Femur (R). Splits come
from the folders (Tr → train, Val → val, Ts → test). Modality CT.
"""

from __future__ import annotations

from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "word"
TIER = Tier.NAMED_DATASET_JSON
LOOKS_FOR = "imagesTr/word_*.nii.gz + imagesVal/ + labelsVal/ (WORD)"  # what `detect` looks for
LABELS: dict[int, str] = {
    1: "Liver",
    2: "Spleen",
    3: "Kidney (L)",
    4: "Kidney (R)",
    5: "Stomach",
    6: "Gallbladder",
    7: "Esophagus",
    8: "Pancreas",
    9: "Duodenum",
    10: "Colon",
    11: "Intestine",
    12: "Adrenal",
    13: "Rectum",
    14: "Bladder",
    15: "Head of Femur (L)",
    16: "Head of Femur (R)",
}
_SPLITS = (("train", "Tr"), ("val", "Val"), ("test", "Ts"))


def detect(root: Path) -> bool:
    """``imagesVal/`` + ``labelsVal/`` beside ``imagesTr/`` holding ``word_*.nii.gz``."""
    root = Path(root)
    return (
        (root / "imagesVal").is_dir()
        and (root / "labelsVal").is_dir()
        and any(p.name.startswith("word_") for p in C.files_in(root / "imagesTr"))
    )


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per image of ``imagesTr``/``imagesVal``/``imagesTs`` (a missing label fails on load)."""
    root = Path(root)
    code = C.resolve_modality(modality, "CT", where=str(root))
    opts = V.options(LABELS, listed="WORD")
    refs = []
    for split, tag in _SPLITS:
        for p in C.files_in(root / f"images{tag}", C.VOLUME_EXTS):
            lab = root / f"labels{tag}" / p.name
            labels = (lab,) if lab.exists() or split != "test" else ()
            refs.append(
                CaseRef(
                    case_id=C.split_ext(p.name)[0],
                    source=root.name,
                    layout=NAME,
                    image_paths=(p,),
                    label_paths=labels,
                    modality=code,
                    split=split,
                    options=opts,
                )
            )
    if not refs:
        raise LayoutError(f"{root}: no imagesTr/imagesVal/imagesTs word_*.nii.gz files (WORD)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the CT and its 16-organ label map."""
    return V.load_volume_pair(ref)
