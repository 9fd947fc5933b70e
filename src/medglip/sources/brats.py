"""BraTS brain tumour segmentation, the 2020/2021 and 2023 (GLI, MEN, MET, PED, SSA) releases.

Layouts (one folder per case, four MR sequences and the segmentation)::

    BraTS2021_Training_Data/BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2,seg}.nii.gz
    MICCAI_BraTS2020_TrainingData/BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii
    ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t2f,t1n,t1c,t2w,seg}.nii.gz

Labels: 2020/2021 1 NCR (2020: NCR/NET), 2 ED, 4 ET; 2023 1 NETC, 2 SNFH, 3 ET. The four sequences
become channels in the order FLAIR, T1, T1 contrast, T2 (``channel_names`` records them). 2023 case
ids end with a time point (``-000``): the patient is the id without it. Modality MR.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "brats"
TIER = Tier.FOLDER
LOOKS_FOR = "BraTS*/<case>_flair|-t2f.nii.gz ... + seg (BraTS)"  # what `detect` looks for
LABELS_2021: dict[int, str] = {1: "NCR", 2: "ED", 4: "ET"}
LABELS_2020: dict[int, str] = {1: "NCR/NET", 2: "ED", 4: "ET"}
LABELS_2023: dict[int, str] = {1: "NETC", 2: "SNFH", 3: "ET"}
_SEQ_OLD = ("flair", "t1", "t1ce", "t2")
_SEQ_2023 = ("t2f", "t1n", "t1c", "t2w")
_CASE_2023 = re.compile(r"^(?P<patient>BraTS-[A-Z]+-\d+)-\d+$")


def _case_files(d: Path) -> dict[str, Path]:
    """Suffix (``flair``, ``t2f``, ``seg``, ...) → file of a case folder."""
    out = {}
    for p in C.files_in(d, (".nii.gz", ".nii")):
        stem = C.split_ext(p.name)[0]
        if stem.startswith(d.name) and len(stem) > len(d.name) + 1:
            out[stem[len(d.name) + 1 :].lower()] = p
    return out


def _case_dirs(root: Path, limit: int | None = None) -> list[Path]:
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower().startswith("brats")):
        files = _case_files(d)
        if "seg" in files or set(_SEQ_OLD) <= set(files) or set(_SEQ_2023) <= set(files):
            out.append(d)
            if limit and len(out) >= limit:
                break
    return out


def detect(root: Path) -> bool:
    """Case folders ``BraTS*`` holding ``<case>_flair``/``<case>-t2f`` ... and ``seg`` NIfTI files."""
    root = Path(root)
    return root.is_dir() and bool(_case_dirs(root, limit=1))


def _release(name: str) -> tuple[dict[int, str], tuple[str, ...], str]:
    if name.startswith("BraTS-"):
        return LABELS_2023, _SEQ_2023, "BraTS 2023"
    if name.startswith("BraTS20_"):
        return LABELS_2020, _SEQ_OLD, "BraTS 2020"
    return LABELS_2021, _SEQ_OLD, "BraTS 2021"


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per case folder: the four sequences as channels, ``seg`` as the label."""
    root = Path(root)
    dirs = _case_dirs(root)
    if not dirs:
        raise LayoutError(f"{root}: no BraTS case folders (<case>/<case>_flair.nii.gz ... <case>_seg.nii.gz)")
    code = C.resolve_modality(modality, "MR", where=str(root))
    refs = []
    for d in dirs:
        files = _case_files(d)
        table, seqs, release = _release(d.name)
        m = _CASE_2023.match(d.name)
        opts = V.options(
            table,
            listed=release,
            channel_names=tuple(s.upper() for s in seqs),
            meta={"patient": m["patient"] if m else d.name},
        )
        images = tuple(files.get(s, d / f"{d.name}_{s}.nii.gz") for s in seqs)
        labels = (files["seg"],) if "seg" in files else ()
        refs.append(
            CaseRef(
                case_id=d.name,
                source=root.name,
                layout=NAME,
                image_paths=images,
                label_paths=labels,
                modality=code,
                options=opts,
            )
        )
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the four sequences (stacked as channels) and the tumour sub-region label map."""
    return V.load_volume_pair(ref)
