"""BTCV, Multi-Atlas Labeling Beyond the Cranial Vault, Abdomen (Landman et al., MICCAI 2015; Synapse).

Layout of ``RawData.zip`` (also accepted one level up, under ``Abdomen/``)::

    RawData/Training/img/img0001.nii.gz      RawData/Training/label/label0001.nii.gz
    RawData/Testing/img/img0061.nii.gz       (no labels)

The 13 organs (values as the Synapse page lists them): 1 spleen, 2 right kidney, 3 left kidney,
4 gallbladder, 5 esophagus, 6 liver, 7 stomach, 8 aorta, 9 inferior vena cava, 10 portal vein and
splenic vein, 11 pancreas, 12 right adrenal gland, 13 left adrenal gland. Modality CT; case ids are
the image stems (``img0001``); Testing cases are listed with split ``test`` and no label.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "btcv"
TIER = Tier.FOLDER
LOOKS_FOR = "RawData/Training/img/imgNNNN.nii.gz + label/ (BTCV)"  # what `detect` looks for
LABELS: dict[int, str] = {
    1: "spleen",
    2: "right kidney",
    3: "left kidney",
    4: "gallbladder",
    5: "esophagus",
    6: "liver",
    7: "stomach",
    8: "aorta",
    9: "inferior vena cava",
    10: "portal vein and splenic vein",
    11: "pancreas",
    12: "right adrenal gland",
    13: "left adrenal gland",
}
_IMG = re.compile(r"^img(?P<n>\d+)$")


def _raw_data(root: Path) -> Path | None:
    for cand in (root, root / "RawData", root / "Abdomen" / "RawData"):
        if (cand / "Training" / "img").is_dir():
            return cand
    return None


def detect(root: Path) -> bool:
    """``[RawData/]Training/img/img*.nii.gz`` (BTCV Abdomen)."""
    raw = _raw_data(Path(root))
    return raw is not None and any(_IMG.match(C.split_ext(p.name)[0]) for p in C.files_in(raw / "Training" / "img"))


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """Training cases (``imgNNNN`` + ``labelNNNN``) and unlabeled Testing cases."""
    root = Path(root)
    raw = _raw_data(root)
    if raw is None:
        raise LayoutError(f"{root}: no RawData/Training/img folder (BTCV)")
    code = C.resolve_modality(modality, "CT", where=str(root))
    opts = V.options(LABELS, listed="BTCV")
    refs = []
    for split, sub in (("train", "Training"), ("test", "Testing")):
        for p in C.files_in(raw / sub / "img", C.VOLUME_EXTS):
            m = _IMG.match(C.split_ext(p.name)[0])
            if not m:
                continue
            lab = raw / sub / "label" / p.name.replace("img", "label", 1)
            labels = (lab,) if split == "train" or lab.exists() else ()
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
        raise LayoutError(f"{raw / 'Training' / 'img'}: no imgNNNN.nii.gz files (BTCV)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the CT and its 13-organ label map."""
    return V.load_volume_pair(ref)
