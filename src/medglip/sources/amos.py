"""AMOS 2022, Abdominal Multi-Organ Segmentation (Ji et al., NeurIPS Datasets and Benchmarks 2022).

Layout of ``amos22.zip`` (zenodo 7262581)::

    amos22/dataset.json          MSD style: "labels" {"0": "background", "1": "spleen", ...},
                                 "training" / "validation" [{"image", "label"}], "test" [...]
    amos22/imagesTr/amos_0001.nii.gz   labelsTr/amos_0001.nii.gz
    amos22/imagesVa/amos_0008.nii.gz   labelsVa/amos_0008.nii.gz
    amos22/imagesTs/amos_0002.nii.gz   (no labels)
    labeled_data_meta_0000_0599.csv    (optional, beside dataset.json: amos_id, Patient's Sex, ...)

The 15 labels as ``dataset.json`` writes them: 1 spleen, 2 right kidney, 3 left kidney, 4 gall
bladder, 5 esophagus, 6 liver, 7 stomach, 8 arota (sic), 9 postcava, 10 pancreas, 11 right adrenal
gland, 12 left adrenal gland, 13 duodenum, 14 bladder, 15 prostate/uterus. Cases numbered above
500 are MR, the others CT (the AMOS convention). When the meta CSV gives the patient's sex, label 15
is named "prostate" (M) or "uterus" (F) for that case. Splits: training → train, validation → val,
test → test (unlabeled).
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "amos"
TIER = Tier.NAMED_DATASET_JSON
LOOKS_FOR = "dataset.json naming AMOS or imagesTr/amos_*.nii.gz (AMOS 2022)"  # what `detect` looks for
MR_FROM = 501  #: AMOS case numbers from here on are MR scans
_NUM = re.compile(r"amos_(\d+)")


def detect(root: Path) -> bool:
    """A ``dataset.json`` naming AMOS, or ``imagesTr/amos_*.nii.gz``."""
    root = Path(root)
    meta = C.peek_dataset_json(root)
    if meta is not None and "amos" in str(meta.get("name", "")).lower():
        return True
    return any(p.name.startswith("amos_") for p in C.files_in(root / "imagesTr"))


def _sexes(root: Path) -> dict[int, str]:
    """AMOS case number → ``M``/``F`` from ``labeled_data_meta_*.csv`` (empty when absent)."""
    out: dict[int, str] = {}
    for path in sorted(root.glob("labeled_data_meta*.csv")) + sorted(root.parent.glob("labeled_data_meta*.csv")):
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                for row in csv.DictReader(f):
                    sex = str(row.get("Patient's Sex") or "").strip().upper()[:1]
                    if sex in ("M", "F") and str(row.get("amos_id", "")).strip().isdigit():
                        out[int(row["amos_id"])] = sex
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            log.warning("%s: cannot read AMOS meta CSV (%s); label 15 stays 'prostate/uterus'", path, exc)
        break
    return out


def _entries(root: Path, meta: dict) -> list[tuple[Path, Path | None, str]]:
    out = []
    for key, split in (("training", "train"), ("validation", "val"), ("test", "test")):
        for e in meta.get(key) or []:
            img = e.get("image") if isinstance(e, dict) else e
            lab = e.get("label") if isinstance(e, dict) else None
            if not img or Path(img).name.startswith("._"):
                continue
            out.append((root / img, root / lab if lab else None, split))
    if out:
        return out
    for tag, split in (("Tr", "train"), ("Va", "val"), ("Ts", "test")):
        for p in C.files_in(root / f"images{tag}", C.VOLUME_EXTS):
            lab = root / f"labels{tag}" / p.name
            out.append((p, lab if split != "test" or lab.exists() else None, split))
    return out


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """Cases of ``dataset.json`` (else of the images folders), CT or MR by case number."""
    root = Path(root)
    path = root / "dataset.json"
    meta = C.load_json(path, what="AMOS dataset.json") if path.exists() else {"labels": {}}
    try:
        table = {int(k): str(v) for k, v in (meta.get("labels") or {}).items() if int(k) != 0}
    except (AttributeError, ValueError):
        raise LayoutError(f"{path}: 'labels' must map integer strings to names") from None
    if not table:
        raise LayoutError(f"{path}: AMOS dataset.json with its 'labels' is needed to name the label values")
    sexes = _sexes(root)
    refs = []
    for img, lab, split in _entries(root, meta):
        cid = C.split_ext(img.name)[0]
        m = _NUM.search(cid)
        num = int(m.group(1)) if m else 0
        code = C.resolve_modality(modality, "MR" if num >= MR_FROM else "CT", where=str(img))
        names = dict(table)
        if 15 in names and num in sexes:
            names[15] = "prostate" if sexes[num] == "M" else "uterus"
        opts = V.options(names, listed=f"{path.name}", meta={"patient": cid})
        refs.append(
            CaseRef(
                case_id=cid,
                source=root.name,
                layout=NAME,
                image_paths=(img,),
                label_paths=(lab,) if lab else (),
                modality=code,
                split=split,
                options=opts,
            )
        )
    if not refs:
        raise LayoutError(f"{root}: no AMOS cases in dataset.json nor in imagesTr/imagesVa/imagesTs")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the CT or MR volume and its 15-organ label map."""
    return V.load_volume_pair(ref)
