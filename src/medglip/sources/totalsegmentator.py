"""TotalSegmentator: ``<root>/<case>/ct.nii.gz`` + ``<root>/<case>/segmentations/<structure>.nii.gz``.

One binary file per structure (117 in v2, e.g. ``kidney_left.nii.gz``), plus an optional
``<root>/meta.csv`` (semicolon-separated, UTF-8 with BOM: ``image_id;age;gender;institute;
study_type;split;...``) whose ``split`` column (train/val/test) is used when present. The MR release
uses ``mri.nii.gz`` instead of ``ct.nii.gz`` (modality MR).

The binary masks are merged greedily into as few ``uint16`` label maps as possible (a structure goes
into the first map where it overlaps nothing; usually one map). Values number the structures in
sorted file-stem order (1 = first stem), the same in every map and case; names are the file stems
exactly. Empty structure files are kept in the first map's names.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "totalsegmentator"
TIER = Tier.FOLDER
LOOKS_FOR = "<case>/ct.nii.gz + <case>/segmentations/ (TotalSegmentator)"  # what `detect` looks for
_IMAGES = {"ct.nii.gz": "CT", "mri.nii.gz": "MR"}


def _case_dirs(root: Path, limit: int | None = None) -> list[Path]:
    out = []
    for d in sorted(p for p in Path(root).iterdir() if p.is_dir() and not C.is_junk(p.name)):
        if (d / "segmentations").is_dir() and any((d / n).exists() for n in _IMAGES):
            out.append(d)
            if limit and len(out) >= limit:
                break
    return out


def detect(root: Path) -> bool:
    """At least one sub-folder with ``ct.nii.gz`` (or ``mri.nii.gz``) and ``segmentations/``."""
    root = Path(root)
    return root.is_dir() and not (root / "dataset.json").exists() and bool(_case_dirs(root, limit=1))


def _read_meta(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise LayoutError(f"{path}: cannot read meta.csv ({exc})") from None
    if rows and "image_id" not in rows[0]:
        raise LayoutError(f"{path}: meta.csv has no 'image_id' column (columns: {list(rows[0])})")
    return {r["image_id"].strip(): {k: (v or "").strip() for k, v in r.items() if k} for r in rows}


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per sub-folder; structures are the union of stems over all cases (sorted)."""
    root = Path(root)
    dirs = _case_dirs(root)
    if not dirs:
        raise LayoutError(f"{root}: no <case>/ct.nii.gz + <case>/segmentations/ folders (TotalSegmentator)")
    meta = _read_meta(root / "meta.csv")
    structures = sorted(
        {C.split_ext(p.name)[0] for d in dirs for p in C.files_in(d / "segmentations", (".nii.gz", ".nii"))}
    )
    refs = []
    for d in dirs:
        image_name = next(n for n in _IMAGES if (d / n).exists())
        code = C.resolve_modality(modality, _IMAGES[image_name], where=str(d))
        row = meta.get(d.name, {})
        segs = tuple(C.files_in(d / "segmentations", (".nii.gz", ".nii")))
        opts = (("row", tuple(sorted(row.items()))), ("structures", tuple(structures)))
        refs.append(
            CaseRef(
                case_id=d.name,
                source=root.name,
                layout=NAME,
                image_paths=(d / image_name,),
                label_paths=segs,
                modality=code,
                split=row.get("split") or None,
                options=opts,
            )
        )
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the CT and merge the per-structure binary masks into layered label maps."""
    from ..io import read_image, read_label

    image = read_image(C.require_file(Path(ref.image_paths[0]), "image file"))
    structures = list(ref.option("structures", ()))
    values = {name: i + 1 for i, name in enumerate(structures)}

    def masks():
        for p in ref.label_paths:
            name = C.split_ext(Path(p).name)[0]
            arr = read_label(p, reference=image).array
            bad = [v for v in C.present_values(arr) if v != 1]
            if bad:
                raise CaseError(str(p), f"structure mask has value(s) {bad[:5]}; expected a binary (0/1) mask")
            if name not in values:  # loaded outside the listing that named it
                values[name] = len(values) + 1
            yield values[name], name, arr != 0

    labels = C.layer_masks(masks(), image.spatial_shape, dtype=np.uint16)
    if len(labels) > 1:
        log.info("%s: overlapping structures, %d label maps", ref.case_id, len(labels))
    row = dict(ref.option("row", ()))
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or "CT",
            image=image.array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ref.image_paths[0]),),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            spacing_known=image.spacing_known,
            meta={"meta_csv": row} if row else {},
        )
    )
