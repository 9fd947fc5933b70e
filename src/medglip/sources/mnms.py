"""M&Ms, the Multi-Centre, Multi-Vendor & Multi-Disease Cardiac Segmentation challenge (Campello et al. 2021).

Layout of the OpenDataset::

    OpenDataset/211230_M&Ms_Dataset_information_diagnosis_opendataset.csv   External code, ..., ED, ES
    OpenDataset/Training/Labeled/A0S9V9/A0S9V9_sa.nii.gz       4D short-axis cine (x, y, z, t)
    OpenDataset/Training/Labeled/A0S9V9/A0S9V9_sa_gt.nii.gz    4D labels, only ED and ES annotated
    OpenDataset/Validation/<code>/...    OpenDataset/Testing/<code>/...

Labels: 1 LV, 2 MYO, 3 RV (note: the reverse of ACDC's numbering). Two cases per patient,
``<code>_ED`` and ``<code>_ES``, at the frames the CSV gives (0-based); without the CSV the first and
second annotated frames are taken (``meta["phase_from"] = "annotated frames"``). Both cases share
``meta["patient"]``. Splits: Training → train, Validation → val, Testing → test. Modality MR.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef, LabelMap
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "mnms"
TIER = Tier.FOLDER
LOOKS_FOR = "Training/Labeled/<code>/<code>_sa_gt.nii.gz (M&Ms)"  # what `detect` looks for
LABELS: dict[int, str] = {1: "LV", 2: "MYO", 3: "RV"}
_SPLITS = (("Training", "train"), ("Validation", "val"), ("Testing", "test"))


def _base(root: Path) -> Path:
    return root / "OpenDataset" if (root / "OpenDataset").is_dir() else root


def _patient_dirs(base: Path) -> list[tuple[Path, str]]:
    out = []
    for sub, split in _SPLITS:
        folder = base / sub
        for d in [folder / "Labeled"] if (folder / "Labeled").is_dir() else [folder]:
            if d.is_dir():
                out += [(p, split) for p in sorted(d.iterdir()) if (p / f"{p.name}_sa_gt.nii.gz").exists()]
    return out


def detect(root: Path) -> bool:
    """``[OpenDataset/]Training/[Labeled/]<code>/<code>_sa_gt.nii.gz``."""
    return bool(_patient_dirs(_base(Path(root))))


def _phases(base: Path) -> dict[str, dict[str, int]]:
    """External code → ``{"ED": frame, "ES": frame}`` from the dataset information CSV."""
    for path in sorted(base.glob("*.csv")):
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                rows = list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise LayoutError(f"{path}: cannot read the M&Ms information CSV ({exc})") from None
        if rows and {"External code", "ED", "ES"} <= set(rows[0]):
            return {
                r["External code"].strip(): {k: int(r[k]) for k in ("ED", "ES") if str(r[k]).strip().isdigit()}
                for r in rows
            }
    return {}


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """Two cases (ED, ES) per annotated patient."""
    root = Path(root)
    base = _base(root)
    dirs = _patient_dirs(base)
    if not dirs:
        raise LayoutError(f"{root}: no Training/Labeled/<code>/<code>_sa_gt.nii.gz files (M&Ms)")
    code = C.resolve_modality(modality, "MR", where=str(root))
    phases = _phases(base)
    refs = []
    for d, split in dirs:
        frames = phases.get(d.name, {})
        for order, phase in enumerate(("ED", "ES")):
            meta = {"patient": d.name, "phase": phase, "phase_from": "csv" if phase in frames else "annotated frames"}
            opts = (
                ("frame", frames.get(phase)),
                ("labels", tuple(LABELS.items())),
                ("meta", json.dumps(meta)),
                ("order", order),
            )
            refs.append(
                CaseRef(
                    case_id=f"{d.name}_{phase}",
                    source=root.name,
                    layout=NAME,
                    image_paths=(d / f"{d.name}_sa.nii.gz",),
                    label_paths=(d / f"{d.name}_sa_gt.nii.gz",),
                    modality=code,
                    split=split,
                    options=opts,
                )
            )
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read one frame of the 4D cine and the same frame of the 4D labels."""
    from ..io import read_image
    from ..io.read import check_same_grid, integer_labels

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    lpath = C.require_file(Path(ref.label_paths[0]), "label file")
    image, label = read_image(ipath), read_image(lpath)
    check_same_grid(label, image)
    n_img = image.array.shape[3] if image.array.ndim == 4 else 1
    lab4 = label.array if label.array.ndim == 4 else label.array[..., None]
    frame = ref.option("frame")
    if frame is None:
        annotated = [t for t in range(lab4.shape[3]) if np.any(lab4[..., t])]
        if len(annotated) <= ref.option("order", 0):
            raise CaseError(
                str(lpath),
                f"{len(annotated)} annotated frame(s); cannot tell the ED and ES frames "
                "(put the M&Ms information CSV beside the Training folder)",
            )
        frame = annotated[ref.option("order", 0)]
    if not 0 <= frame < min(n_img, lab4.shape[3]):
        raise CaseError(
            f"{ipath} / {lpath}", f"frame {frame} out of range ({n_img} image / {lab4.shape[3]} label frames)"
        )
    lab = integer_labels(lab4[..., frame], str(lpath), 3)
    names = dict(ref.option("labels", ()))
    C.check_label_values(lab, names, path=lpath, listed="M&Ms lists 1 LV, 2 MYO, 3 RV")
    arr = image.array[..., frame] if image.array.ndim == 4 else image.array
    meta = {**json.loads(ref.option("meta", "{}")), "frame": int(frame)}
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or "MR",
            image=np.ascontiguousarray(arr),
            geometry=image.geometry,
            labels=[LabelMap(lab, names)],
            image_path=(str(ipath),),
            label_path=(str(lpath),),
            split=ref.split,
            spacing_known=image.spacing_known,
            meta=meta,
        )
    )
