"""GlaS, Gland Segmentation in colon histology (Sirinukunwattana et al., MedIA 2017), the Warwick-QU set.

Layout of ``Warwick QU Dataset (Released 2016_07_08)``::

    train_1.bmp  train_1_anno.bmp        testA_1.bmp  testA_1_anno.bmp        testB_1.bmp ...
    Grade.csv                            name, Patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)

The ``_anno.bmp`` files are instance maps (0 background, one value per gland). Glands are named by
the image's GlaS grade: "benign gland" or "malignant gland" (just "gland" when Grade.csv is absent).
``Grade.csv``'s Patient ID goes into ``meta["patient"]`` so a patient's images stay in one split.
Splits: train → train, testA / testB → test. Modality PATH.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef, LabelMap
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "glas"
TIER = Tier.FOLDER
LOOKS_FOR = "train_N.bmp + train_N_anno.bmp + Grade.csv (GlaS)"  # what `detect` looks for
_IMAGE = re.compile(r"^(?P<split>train|testA|testB)_\d+$")


def _grades(root: Path) -> dict[str, dict[str, str]]:
    """Image name → ``{"patient", "grade"}`` from ``Grade.csv`` (empty when absent)."""
    path = root / "Grade.csv"
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LayoutError(f"{path}: cannot read Grade.csv ({exc})") from None
    head = [h.strip().lower() for h in rows[0]] if rows else []
    if len(head) < 3 or head[0] != "name":
        raise LayoutError(f"{path}: expected the columns name, Patient ID, grade (GlaS), ...; got {rows[:1]}")
    return {r[0].strip(): {"patient": r[1].strip(), "grade": r[2].strip().lower()} for r in rows[1:] if len(r) >= 3}


def detect(root: Path) -> bool:
    """``train_N.bmp`` / ``testA_N.bmp`` with their ``_anno.bmp`` instance maps."""
    root = Path(root)
    return any(_IMAGE.match(p.stem) and (root / f"{p.stem}_anno.bmp").exists() for p in C.files_in(root, (".bmp",)))


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per image with its annotation; the gland name comes from Grade.csv."""
    root = Path(root)
    grades = _grades(root)
    code = C.resolve_modality(modality, "PATH", where=str(root))
    refs = []
    for p in C.files_in(root, (".bmp",)):
        m = _IMAGE.match(p.stem)
        if not m:
            continue
        info = grades.get(p.stem, {})
        name = f"{info['grade']} gland" if info.get("grade") in ("benign", "malignant") else "gland"
        anno = root / f"{p.stem}_anno.bmp"
        meta = {"patient": f"patient {info['patient']}" if info.get("patient") else p.stem, "grade": info.get("grade")}
        opts = (("gland", name), ("meta", json.dumps(meta)))
        refs.append(
            CaseRef(
                case_id=p.stem,
                source=root.name,
                layout=NAME,
                image_paths=(p,),
                label_paths=(anno,),
                modality=code,
                split="train" if m["split"] == "train" else "test",
                options=opts,
            )
        )
    if not refs:
        raise LayoutError(f"{root}: no train_N.bmp / testA_N.bmp images (GlaS)")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the H&E image and its gland instance map (palette indices or grey values)."""
    from ..io import read_image
    from ..io.raster import open_pil

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    apath = C.require_file(Path(ref.label_paths[0]), "annotation file")
    image = read_image(ipath)
    with open_pil(apath) as pic:
        lab = np.asarray(pic if pic.mode in ("P", "L", "I", "I;16") else pic.convert("L")).astype(np.int32)
    if lab.shape != image.spatial_shape[:2]:
        raise CaseError(f"{ipath} / {apath}", f"annotation shape {lab.shape} != image shape {image.spatial_shape[:2]}")
    name = ref.option("gland", "gland")
    labels = [LabelMap(lab.astype(np.uint16), {v: name for v in C.present_values(lab)}, instances=True)]
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or "PATH",
            image=image.array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ipath),),
            label_path=(str(apath),),
            split=ref.split,
            spacing_known=image.spacing_known,
            meta=json.loads(ref.option("meta", "{}")),
        )
    )
