"""ACDC, the Automated Cardiac Diagnosis Challenge (Bernard et al., IEEE TMI 2018), cine MR.

Layout::

    database/training/patient001/Info.cfg                      ED: 1 / ES: 12 / Group: DCM / ...
    database/training/patient001/patient001_4d.nii.gz          (the whole cine; not used)
    database/training/patient001/patient001_frame01.nii.gz     patient001_frame01_gt.nii.gz
    database/training/patient001/patient001_frame12.nii.gz     patient001_frame12_gt.nii.gz
    database/testing/patient101/...

Labels: 1 RV, 2 MYO, 3 LV. One case per annotated frame (``patient001_frame01``); both frames of a
patient share ``meta["patient"]`` so they never straddle splits; ``meta["phase"]`` is ED or ES
(from ``Info.cfg``). Splits: training → train, testing → test. Modality MR.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "acdc"
TIER = Tier.FOLDER
LOOKS_FOR = "patientXXX/patientXXX_frameNN_gt.nii.gz + Info.cfg (ACDC)"  # what `detect` looks for
LABELS: dict[int, str] = {1: "RV", 2: "MYO", 3: "LV"}
_GT = re.compile(r"^(?P<patient>patient\d+)_frame(?P<frame>\d+)_gt$")


def _info(path: Path) -> dict[str, str]:
    """``Info.cfg`` as a dict (``{"ED": "1", "ES": "12", "Group": "DCM", ...}``); empty when absent."""
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def _splits(root: Path) -> list[tuple[Path, str | None]]:
    for base in (root, root / "database"):
        found: list[tuple[Path, str | None]] = [
            (base / sub, split) for sub, split in (("training", "train"), ("testing", "test")) if (base / sub).is_dir()
        ]
        if found:
            return found
    return [(root, None)]


def _patients(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and d.name.startswith("patient")) if folder.is_dir() else []


def detect(root: Path) -> bool:
    """``patientXXX/patientXXX_frameNN_gt.nii.gz`` (in the root, ``training/`` or ``database/training/``)."""
    root = Path(root)
    for folder, _ in _splits(root):
        for d in _patients(folder)[:3]:
            if any(_GT.match(C.split_ext(p.name)[0]) for p in C.files_in(d)):
                return True
    return False


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``*_frameNN_gt`` file; frames without ground truth are not listed."""
    root = Path(root)
    code = C.resolve_modality(modality, "MR", where=str(root))
    refs = []
    for folder, split in _splits(root):
        for d in _patients(folder):
            info = _info(d / "Info.cfg")
            phases = {int(v): k for k, v in info.items() if k in ("ED", "ES") and v.isdigit()}
            for p in C.files_in(d):
                stem, ext = C.split_ext(p.name)
                m = _GT.match(stem)
                if not m:
                    continue
                frame = int(m["frame"])
                meta = {"patient": m["patient"], "frame": frame, "phase": phases.get(frame), "group": info.get("Group")}
                image = d / f"{m['patient']}_frame{m['frame']}{ext}"
                refs.append(
                    CaseRef(
                        case_id=stem[: -len("_gt")],
                        source=root.name,
                        layout=NAME,
                        image_paths=(image,),
                        label_paths=(p,),
                        modality=code,
                        split=split,
                        options=V.options(LABELS, listed="ACDC", meta=meta),
                    )
                )
    if not refs:
        raise LayoutError(f"{root}: no patientXXX/patientXXX_frameNN_gt.nii.gz files (ACDC)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the short-axis frame and its RV / MYO / LV label map."""
    return V.load_volume_pair(ref)
