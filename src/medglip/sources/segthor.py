"""SegTHOR, Segmentation of THoracic Organs at Risk in CT (Lambert et al. 2020).

Layout::

    train/Patient_01/Patient_01.nii.gz     train/Patient_01/GT.nii.gz
    test/Patient_41.nii.gz                 (no labels)

Labels: 1 esophagus, 2 heart, 3 trachea, 4 aorta. The root may be ``train/`` itself or the folder
holding ``train/`` and ``test/``. Modality CT; training cases split ``train``, test ``test``.
"""

from __future__ import annotations

from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "segthor"
TIER = Tier.FOLDER
LOOKS_FOR = "Patient_XX/Patient_XX.nii.gz + GT.nii.gz (SegTHOR)"  # what `detect` looks for
LABELS: dict[int, str] = {1: "esophagus", 2: "heart", 3: "trachea", 4: "aorta"}


def _patient_dirs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        d for d in folder.iterdir() if d.is_dir() and d.name.startswith("Patient_") and (d / "GT.nii.gz").exists()
    )


def detect(root: Path) -> bool:
    """``Patient_XX/GT.nii.gz`` folders (in the root or in ``train/``)."""
    root = Path(root)
    return bool(_patient_dirs(root) or _patient_dirs(root / "train"))


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """Training patients (image + ``GT.nii.gz``) and unlabeled ``test/Patient_XX.nii.gz``."""
    root = Path(root)
    train = root if _patient_dirs(root) else root / "train"
    code = C.resolve_modality(modality, "CT", where=str(root))
    opts = V.options(LABELS, listed="SegTHOR")
    refs = [
        CaseRef(
            case_id=d.name,
            source=root.name,
            layout=NAME,
            image_paths=(d / f"{d.name}.nii.gz",),
            label_paths=(d / "GT.nii.gz",),
            modality=code,
            split="train",
            options=opts,
        )
        for d in _patient_dirs(train)
    ]
    for p in C.files_in(root / "test", (".nii.gz",)):
        if p.name.startswith("Patient_"):
            refs.append(
                CaseRef(
                    case_id=C.split_ext(p.name)[0],
                    source=root.name,
                    layout=NAME,
                    image_paths=(p,),
                    label_paths=(),
                    modality=code,
                    split="test",
                    options=opts,
                )
            )
    if not refs:
        raise LayoutError(f"{root}: no Patient_XX/GT.nii.gz folders (SegTHOR)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the CT and its organ-at-risk label map."""
    return V.load_volume_pair(ref)
