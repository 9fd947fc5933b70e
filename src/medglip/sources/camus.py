"""CAMUS, Cardiac Acquisitions for Multi-structure Ultrasound Segmentation (Leclerc et al., IEEE TMI 2019).

Layouts (the 2019 MetaImage release and the 2023 NIfTI release)::

    training/patient0001/patient0001_2CH_ED.mhd     patient0001_2CH_ED_gt.mhd   (+ .raw)
    database_nifti/patient0001/patient0001_4CH_ES.nii.gz   patient0001_4CH_ES_gt.nii.gz

Labels: 1 LV endocardium (the left-ventricle cavity), 2 LV epicardium (the myocardium between the
two contours), 3 left atrium. One 2D case per annotated view and phase (``patient0001_2CH_ED``);
views of one patient share ``meta["patient"]``. Folders named ``training``/``testing`` give splits.
Modality US.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "camus"
TIER = Tier.FOLDER
LOOKS_FOR = "patientNNNN/patientNNNN_2CH_ED_gt.mhd|.nii.gz (CAMUS)"  # what `detect` looks for
LABELS: dict[int, str] = {1: "LV endocardium", 2: "LV epicardium", 3: "left atrium"}
_GT = re.compile(r"^(?P<patient>patient\d+)_(?P<view>[24]CH)_(?P<phase>ED|ES)_gt$")


def _patient_dirs(root: Path) -> list[tuple[Path, str | None]]:
    out = []
    for base in (root, root / "database_nifti", root / "training", root / "testing"):
        if base.is_dir():
            split = {"training": "train", "testing": "test"}.get(base.name)
            out += [(d, split) for d in sorted(base.iterdir()) if d.is_dir() and d.name.startswith("patient")]
    return out


def detect(root: Path) -> bool:
    """``patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}_gt.{mhd,nii.gz}`` files."""
    root = Path(root)
    return root.is_dir() and any(
        _GT.match(C.split_ext(p.name)[0]) for d, _ in _patient_dirs(root)[:3] for p in C.files_in(d)
    )


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ground-truth file; the image is the same name without ``_gt``."""
    root = Path(root)
    code = C.resolve_modality(modality, "US", where=str(root))
    refs = []
    for d, split in _patient_dirs(root):
        for p in C.files_in(d, (".mhd", ".nii.gz", ".nii")):
            stem, ext = C.split_ext(p.name)
            m = _GT.match(stem)
            if not m:
                continue
            meta = {"patient": m["patient"], "view": m["view"], "phase": m["phase"]}
            refs.append(
                CaseRef(
                    case_id=stem[: -len("_gt")],
                    source=root.name,
                    layout=NAME,
                    image_paths=(d / f"{stem[:-3]}{ext}",),
                    label_paths=(p,),
                    modality=code,
                    split=split,
                    options=V.options(LABELS, listed="CAMUS", meta=meta, as_2d=True),
                )
            )
    if not refs:
        raise LayoutError(f"{root}: no patientNNNN_{{2CH,4CH}}_{{ED,ES}}_gt files (CAMUS)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the echocardiographic frame (2D) and its LV / myocardium / LA label map."""
    return V.load_volume_pair(ref)
