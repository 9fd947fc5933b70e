"""ISIC 2018 Task 1 (dermoscopy lesion segmentation).

Layout (as downloaded from the ISIC challenge site)::

    ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg        (+ ATTRIBUTION.txt, LICENSE.txt)
    ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png
    ISIC2018_Task1-2_Validation_Input/ ...   ISIC2018_Task1_Validation_GroundTruth/ ...
    ISIC2018_Task1-2_Test_Input/ ...         ISIC2018_Task1_Test_GroundTruth/ ...

The split comes from the folder name (Training → ``train``, Validation → ``val``, Test → ``test``).
An input folder without its GroundTruth folder gives unlabeled cases. ISIC 2017 names are accepted
too; only ``.jpg`` inputs are images (2017's ``_superpixels.png`` are skipped)::

    ISIC-2017_Validation_Data/ISIC_0012434.jpg
    ISIC-2017_Validation_Part1_GroundTruth/ISIC_0012434_segmentation.png
    ISIC-2017_Validation_Part3_GroundTruth.csv    (image_id, melanoma, seborrheic_keratosis: 1.0 / 0.0)

Label ``"skin lesion"``; with a split's 2017 Part 3 CSV the lesion is named by its diagnosis:
``"melanoma"``, ``"seborrheic keratosis"`` or, when neither column is 1, ``"nevus"`` (the challenge's
third class). ISIC names no patients: each image is its own group when splitting. Modality DERM.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import CaseError, LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "isic2018"
TIER = Tier.FOLDER
LOOKS_FOR = (
    "ISIC2018_Task1-2_<Split>_Input + ISIC2018_Task1_<Split>_GroundTruth, or ISIC-2017_<Split>_Data + "
    "ISIC-2017_<Split>_Part1_GroundTruth (+ _Part3_GroundTruth.csv diagnoses)"
)  # what `detect` looks for
LABEL = "skin lesion"
_INPUT = re.compile(r"^(?P<year>ISIC-?\d{4})_(?:Task1(?:-2)?_)?(?P<split>Training|Validation|Test)_(?:Input|Data)$")
_TRUTH = re.compile(r"^(?P<year>ISIC-?\d{4})_(?:Task1_)?(?P<split>Training|Validation|Test)_(?:Part1_)?GroundTruth$")
_PART3 = re.compile(r"^ISIC-?2017_(?P<split>Training|Validation|Test)_Part3_GroundTruth\.csv$", re.IGNORECASE)
_SPLITS = {"Training": "train", "Validation": "val", "Test": "test"}
#: ISIC 2017 Part 3 columns (1 = yes) → diagnosis; a lesion with neither is a nevus.
PART3_CLASSES: dict[str, str] = {"melanoma": "melanoma", "seborrheic_keratosis": "seborrheic keratosis"}
NEVUS = "nevus"


def _scan(root: Path) -> tuple[dict[str, Path], dict[str, Path], str]:
    """``({split: input folder}, {split: ground-truth folder}, year)`` of the ISIC folders in ``root``."""
    inputs: dict[str, Path] = {}
    truths: dict[str, Path] = {}
    year = "ISIC2018"
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        for pattern, out in ((_INPUT, inputs), (_TRUTH, truths)):
            m = pattern.match(d.name)
            if m:
                out[_SPLITS[m["split"]]] = d
                year = m["year"].replace("-", "")
    return inputs, truths, year


def _diagnoses(path: Path) -> dict[str, tuple[str | None, str | None]]:
    """Image id → ``(diagnosis, problem)`` from an ISIC 2017 Part 3 CSV; a row whose flags are not
    0/1 or are both 1 has no diagnosis and names its problem (raised when that case is loaded)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LayoutError(f"{path}: cannot read the ISIC 2017 Part 3 diagnoses ({exc})") from None
    out: dict[str, tuple[str | None, str | None]] = {}
    for row in rows:
        cid = (row.get("image_id") or "").strip()
        if not cid:
            continue
        flags = {}
        for col in PART3_CLASSES:
            try:
                flags[col] = float(row.get(col) or "nan")  # the file writes "1.0" / "0.0"
            except ValueError:
                flags[col] = float("nan")
        if any(v not in (0.0, 1.0) for v in flags.values()) or sum(flags.values()) > 1:
            out[cid] = (
                None,
                f"{path.name}: {cid} has melanoma={row.get('melanoma')!r}, "
                f"seborrheic_keratosis={row.get('seborrheic_keratosis')!r} (expected one 1.0 at most)",
            )
            continue
        out[cid] = (next((PART3_CLASSES[c] for c, v in flags.items() if v == 1.0), NEVUS), None)
    return out


def _part3(root: Path) -> dict[str, Path]:
    """``{split: ISIC-2017_<Split>_Part3_GroundTruth.csv}`` of ``root``."""
    out = {}
    for p in C.files_in(root, (".csv",)):
        m = _PART3.match(p.name)
        if m:
            out[_SPLITS[m["split"].capitalize()]] = p
    return out


def detect(root: Path) -> bool:
    """Any ``ISIC2018_Task1-2_<Split>_Input`` / ``ISIC2018_Task1_<Split>_GroundTruth`` folder."""
    root = Path(root)
    if not root.is_dir():
        return False
    inputs, truths, _ = _scan(root)
    return bool(inputs or truths)


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per input ``.jpg`` (or per orphan ``_segmentation.png``), split from the folder."""
    root = Path(root)
    inputs, truths, year = _scan(root)
    if not inputs and not truths:
        raise LayoutError(f"{root}: no ISIC2018_Task1-2_<Training|Validation|Test>_Input folders")
    code = C.resolve_modality(modality, "DERM", where=str(root))
    tables = {split: _diagnoses(path) for split, path in _part3(root).items()}
    refs = []
    for split in sorted(set(inputs) | set(truths)):
        in_dir = inputs.get(split)
        gt_dir = truths.get(split)
        table = tables.get(split, {})
        images = {p.stem: p for p in C.files_in(in_dir, (".jpg", ".jpeg"))} if in_dir else {}
        masks = {}
        if gt_dir:
            for p in C.files_in(gt_dir, (".png",)):
                if p.stem.endswith("_segmentation"):
                    masks[p.stem[: -len("_segmentation")]] = p
        if in_dir is None:
            assert gt_dir is not None  # the split came from the inputs or the ground truths
            in_dir = root / gt_dir.name.replace("GroundTruth", "Input")
        for cid in sorted(set(images) | set(masks)):
            ipath = images.get(cid) or in_dir / f"{cid}.jpg"
            labels = (masks.get(cid) or gt_dir / f"{cid}_segmentation.png",) if gt_dir else ()
            diagnosis, problem = table.get(cid, (None, None))
            opts = (
                ("mask_names", (diagnosis or LABEL,) * len(labels)),
                ("threshold", 127),
                ("meta", json.dumps({"diagnosis": diagnosis} if diagnosis else {})),
                ("problem", problem),
            )
            refs.append(
                CaseRef(
                    case_id=cid,
                    source=year,
                    layout=NAME,
                    image_paths=(ipath,),
                    label_paths=labels,
                    modality=code,
                    split=split,
                    options=opts,
                )
            )
    return sorted(refs, key=lambda r: (r.case_id, r.split or ""))


def load_case(ref: CaseRef) -> Case:
    """Read the dermoscopic RGB image and its lesion mask."""
    if ref.option("problem"):  # a diagnosis row the Part 3 CSV gets wrong: this case, not the listing, fails
        raise CaseError(ref.case_id, ref.option("problem"))
    return load_pair(ref)
