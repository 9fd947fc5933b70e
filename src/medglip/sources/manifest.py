"""The generic medglip manifest: a JSON file that lists cases of any other layout.

``medglip_manifest.json`` (or ``manifest.json`` with a ``"medglip_manifest": 1`` key)::

    {"medglip_manifest": 1, "name": "pyradiomics", "modality": "CT", "license": "BSD-3-Clause",
     "cases": [{"id": "brain1", "image": "brain1_image.nrrd", "label": "brain1_label.nrrd",
                "modality": "MR", "labels": {"1": "brain tumor"}, "split": null}]}

- Paths are relative to the manifest's folder. ``image`` may be a file or a DICOM series folder.
- ``label`` is a file, a list of files (one :class:`LabelMap` each) or null/absent (unlabeled).
  A DICOM file as label is read as DICOM-SEG (its segment labels name the values).
- ``labels`` maps values (as strings) to source names: one object for every label file, or a list
  with one object per file; a top-level ``labels`` is the default for all cases.
- ``modality``: ``modality=`` argument > case > manifest top level > ``"CT"``.
- ``name`` (default: the folder name) is the source; ``license`` goes into ``case.meta``.
- ``absent`` (case or top level): findings KNOWN to be absent from the case, e.g. ``["brain tumor"]``
  for a healthy template; they go into ``case.meta["absent"]`` and every image record, so the
  trainer may use them as negative phrases (partial labels say nothing about the rest).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..case import Case, CaseRef, LabelMap
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "manifest"
TIER = Tier.MANIFEST
LOOKS_FOR = "medglip_manifest.json (or manifest.json with 'medglip_manifest')"  # what `detect` looks for
FILE_NAMES = ("medglip_manifest.json", "manifest.json")


def find_manifest(root: Path) -> Path | None:
    """The manifest file in ``root`` (``manifest.json`` only with its ``medglip_manifest`` key)."""
    root = Path(root)
    if (root / FILE_NAMES[0]).is_file():
        return root / FILE_NAMES[0]
    other = root / FILE_NAMES[1]
    if other.is_file() and other.stat().st_size < 50_000_000:
        try:
            data = C.load_json(other)
        except LayoutError:
            return None
        if isinstance(data, dict) and data.get("medglip_manifest"):
            return other
    return None


def detect(root: Path) -> bool:
    """``medglip_manifest.json``, or ``manifest.json`` with ``"medglip_manifest": 1``."""
    return find_manifest(Path(root)) is not None


def _names(spec: Any, where: str) -> tuple[tuple[int, str], ...]:
    if not isinstance(spec, dict):
        raise LayoutError(f"{where}: 'labels' must map values to names, got {spec!r}")
    try:
        return tuple(sorted((int(k), str(v)) for k, v in spec.items() if int(k) != 0))
    except ValueError:
        raise LayoutError(f"{where}: 'labels' keys must be integers, got {list(spec)}") from None


def _case_ref(entry: Any, i: int, data: dict, mpath: Path, source: str, modality: str | None) -> CaseRef:
    where = f"{mpath} case #{i}"
    if not isinstance(entry, dict) or not entry.get("id") or not entry.get("image"):
        raise LayoutError(f"{where}: each case needs 'id' and 'image', got {entry!r}")
    where = f"{mpath} case {entry['id']!r}"
    base = mpath.parent
    label = entry.get("label")
    label_files = [] if label is None else [label] if isinstance(label, str) else list(label)
    spec = entry.get("labels", data.get("labels"))
    specs = spec if isinstance(spec, list) else [spec] * len(label_files)
    if label_files and spec is not None and len(specs) != len(label_files):
        raise LayoutError(f"{where}: {len(specs)} 'labels' objects for {len(label_files)} label files")
    names = tuple(None if s is None else _names(s, where) for s in specs)
    code = C.resolve_modality(modality, entry.get("modality") or data.get("modality") or "CT", where=where)
    absent = entry.get("absent", data.get("absent")) or []
    if not isinstance(absent, list) or not all(isinstance(a, str) and a.strip() for a in absent):
        raise LayoutError(f"{where}: 'absent' must be a list of phrases, got {absent!r}")
    opts = (("labels", names), ("license", data.get("license")), ("absent", tuple(absent)))
    return CaseRef(
        case_id=str(entry["id"]),
        source=source,
        layout=NAME,
        image_paths=(base / entry["image"],),
        label_paths=tuple(base / f for f in label_files),
        modality=code,
        split=entry.get("split"),
        options=opts,
    )


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One ref per manifest entry; entries need ``id`` and ``image`` (else :class:`LayoutError`)."""
    root = Path(root)
    mpath = find_manifest(root)
    if mpath is None:
        raise LayoutError(f"{root}: no {FILE_NAMES[0]} (or {FILE_NAMES[1]} with a 'medglip_manifest' key)")
    data = C.load_json(mpath, what="medglip manifest")
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise LayoutError(f"{mpath}: expected an object with a 'cases' list")
    source = str(data.get("name") or root.name)
    refs = [_case_ref(e, i, data, mpath, source, modality) for i, e in enumerate(data["cases"])]
    ids = [r.case_id for r in refs]
    dup = sorted({x for x in ids if ids.count(x) > 1})
    if dup:
        raise LayoutError(f"{mpath}: duplicate case id(s) {dup}")
    return sorted(refs, key=lambda r: r.case_id)


def load_case(ref: CaseRef) -> Case:
    """Read the image (file or DICOM series) and each label file (or DICOM-SEG) as a label map."""
    from ..io import read_dicom_seg, read_image, read_label, sniff_format

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    image = read_image(ipath)
    specs = list(ref.option("labels", ())) or [None] * len(ref.label_paths)
    labels: list[LabelMap] = []
    # not strict: a manifest's 'labels' list without label files reads no label
    for lpath, spec in zip(ref.label_paths, specs, strict=False):
        lpath = C.require_file(Path(lpath), "label file")
        if sniff_format(lpath) == "dicom":
            for array, seg_names in read_dicom_seg(lpath, image):
                labels.append(LabelMap(array, {int(k): str(v) for k, v in dict(seg_names).items()}))
            continue
        if spec is None:
            raise CaseError(str(lpath), "the manifest gives no 'labels' (value → name) for this label file")
        names = dict(spec)
        lab = read_label(lpath, reference=image).array
        C.check_label_values(
            lab, names, path=lpath, listed="the manifest lists " + ",".join(str(v) for v in [0, *sorted(names)])
        )
        labels.append(LabelMap(lab, names))
    meta: dict[str, Any] = {"license": ref.option("license")} if ref.option("license") else {}
    if ref.option("absent"):
        meta["absent"] = list(ref.option("absent"))
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or image.modality or "",
            image=image.array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ipath),),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            spacing_known=image.spacing_known,
            meta=json.loads(json.dumps(meta)),
        )
    )
