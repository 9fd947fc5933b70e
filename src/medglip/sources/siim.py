"""SIIM-ACR Pneumothorax Segmentation (Kaggle 2019), chest radiographs in DICOM with RLE masks.

Layout::

    dicom-images-train/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm    (stage 1)
    train-rle.csv                    ImageId, EncodedPixels
    stage_2_images/<SOPInstanceUID>.dcm + stage_2_train.csv         (stage 2, same encoding)

``EncodedPixels`` is the competition's *relative* run-length code over the column-major pixel
order (each start counts from the end of the previous run: ``mask_functions.rle2mask`` then a
transpose); ``-1`` means no pneumothorax (a case with no finding). An image may have several rows
(one per pneumothorax region); they are merged into one label "pneumothorax". Images absent from
the CSV are unlabeled. Modality XR. Errors name the CSV and the ImageId.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef, LabelMap
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

NAME = "siim"
TIER = Tier.FOLDER
LOOKS_FOR = "train-rle.csv + dicom-images-train/**/*.dcm (SIIM-ACR pneumothorax)"  # what `detect` looks for
LABEL = "pneumothorax"
_CSVS = ("train-rle.csv", "stage_2_train.csv")
_IMAGE_DIRS = ("dicom-images-train", "stage_2_images", "dicom-images-test")


def _csv(root: Path) -> Path | None:
    return next((root / n for n in _CSVS if (root / n).is_file()), None)


def detect(root: Path) -> bool:
    """``train-rle.csv`` (or ``stage_2_train.csv``) beside a DICOM images folder."""
    root = Path(root)
    return _csv(root) is not None and any((root / d).is_dir() for d in _IMAGE_DIRS)


def read_rle_csv(path: Path) -> dict[str, list[str]]:
    """ImageId → its ``EncodedPixels`` strings (headers may carry a leading space)."""
    out: dict[str, list[str]] = {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            if header[:2] != ["ImageId", "EncodedPixels"]:
                raise LayoutError(f"{path}: expected the columns ImageId, EncodedPixels; got {header}")
            for row in reader:
                if len(row) >= 2:
                    out.setdefault(row[0].strip(), []).append(row[1].strip())
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LayoutError(f"{path}: cannot read the RLE CSV ({exc})") from None
    return out


def decode_relative_rle(code: str, height: int, width: int, *, where: str) -> np.ndarray:
    """The competition's relative, column-major RLE → boolean ``(height, width)`` mask."""
    try:
        nums = [int(x) for x in code.split()]
    except ValueError:
        raise CaseError(where, f"EncodedPixels is not a list of integers: {code[:40]!r}") from None
    if len(nums) % 2:
        raise CaseError(where, "EncodedPixels has an odd number of values (start/length pairs expected)")
    flat = np.zeros(height * width, dtype=bool)
    pos = 0
    for start, length in zip(nums[0::2], nums[1::2], strict=True):
        pos += start
        if start < 0 or length < 0 or pos + length > flat.size:
            raise CaseError(where, f"run {start} {length} runs past the {height}x{width} image")
        flat[pos : pos + length] = True
        pos += length
    return flat.reshape(width, height).T


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per DICOM file (its stem is the ImageId); its CSV rows travel in the ref."""
    root = Path(root)
    csv_path = _csv(root)
    if csv_path is None:
        raise LayoutError(f"{root}: no train-rle.csv / stage_2_train.csv (SIIM-ACR)")
    codes = read_rle_csv(csv_path)
    code = C.resolve_modality(modality, "XR", where=str(root))
    refs = []
    for d in _IMAGE_DIRS:
        split = "test" if d.endswith("test") else None
        for p in sorted((root / d).rglob("*.dcm")) if (root / d).is_dir() else []:
            rows = tuple(codes.get(p.stem, ()))
            labels = (csv_path,) if rows else ()
            refs.append(
                CaseRef(
                    case_id=p.stem,
                    source=root.name,
                    layout=NAME,
                    image_paths=(p,),
                    label_paths=labels,
                    modality=code,
                    split=split,
                    options=(("rle", rows),),
                )
            )
    if not refs:
        raise LayoutError(f"{root}: no DICOM files under {' / '.join(_IMAGE_DIRS)}")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the radiograph and decode its pneumothorax regions (``-1``: none)."""
    from ..io import read_image

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    image = read_image(ipath, as_2d=True)
    h, w = image.spatial_shape
    rows = [r for r in ref.option("rle", ()) if r and r != "-1"]
    where = f"{ref.label_paths[0] if ref.label_paths else 'RLE CSV'} (ImageId {ref.case_id})"
    mask = np.zeros((h, w), dtype=bool)
    for r in rows:
        mask |= decode_relative_rle(r, h, w, where=where)
    labels = [LabelMap(mask.astype(np.uint8), {1: LABEL})] if ref.label_paths else []
    meta = json.loads(json.dumps({k: v for k, v in image.meta.items() if k in ("format", "dtype")}))
    meta.update({"no_finding": bool(ref.label_paths) and not rows, "regions": len(rows), "patient": ref.case_id})
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or "XR",
            image=image.array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ipath),),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            spacing_known=image.spacing_known,
            meta=meta,
        )
    )
