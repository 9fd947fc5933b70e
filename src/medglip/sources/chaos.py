"""CHAOS, Combined (CT-MR) Healthy Abdominal Organ Segmentation (Kavur et al., MedIA 2021).

Layout of ``CHAOS_Train_Sets.zip``::

    Train_Sets/CT/<patient>/DICOM_anon/i0000,0000b.dcm ...   Train_Sets/CT/<patient>/Ground/liver_GT_000.png ...
    Train_Sets/MR/<patient>/T1DUAL/DICOM_anon/InPhase/IMG-0004-00002.dcm ...
    Train_Sets/MR/<patient>/T1DUAL/DICOM_anon/OutPhase/IMG-0004-00001.dcm ...
    Train_Sets/MR/<patient>/T1DUAL/Ground/IMG-0004-00001.png ...
    Train_Sets/MR/<patient>/T2SPIR/DICOM_anon/IMG-0002-00001.dcm ...   T2SPIR/Ground/IMG-0002-00001.png ...

Ground truth is one PNG per DICOM slice, the n-th PNG (sorted by name) belonging to the n-th DICOM
file (sorted by name), as the challenge's own evaluation pairs them. The slices are stacked by
ImagePositionPatient, each PNG on its slice (the DICOM files carry distinct series UIDs, so they
are read one by one). CT ground truth is the liver (PNG 255). MR ground truth uses grey values
(ranges as in the challenge's tools): liver 63 (55-70), right kidney 126 (110-135), left kidney 189
(175-200), spleen 252 (240-255); any other value raises :class:`CaseError` naming the PNG.

Cases: ``CT_<p>``, ``MR_<p>_T1DUAL_InPhase``, ``MR_<p>_T1DUAL_OutPhase`` (same ground truth) and
``MR_<p>_T2SPIR``; the MR cases of a patient share ``meta["patient"]`` (CT and MR patients are
different people). Case modality CT or MR.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef, LabelMap
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

NAME = "chaos"
TIER = Tier.FOLDER
LOOKS_FOR = "CT/<patient>/DICOM_anon + Ground/*.png, MR/<patient>/T1DUAL|T2SPIR/... (CHAOS)"  # what `detect` looks for
CT_LABELS: dict[int, str] = {255: "liver"}
MR_LABELS: dict[int, str] = {63: "liver", 126: "right kidney", 189: "left kidney", 252: "spleen"}
_MR_RANGES = ((55, 70, 63), (110, 135, 126), (175, 200, 189), (240, 255, 252))


def _base(root: Path) -> Path:
    for cand in (root, root / "Train_Sets", root / "CHAOS_Train_Sets" / "Train_Sets"):
        if (cand / "CT").is_dir() or (cand / "MR").is_dir():
            return cand
    return root


def detect(root: Path) -> bool:
    """``CT/<patient>/DICOM_anon`` or ``MR/<patient>/T2SPIR/DICOM_anon`` folders (CHAOS)."""
    base = _base(Path(root))
    for mod, sub in (("CT", "DICOM_anon"), ("MR", "T2SPIR/DICOM_anon")):
        folder = base / mod
        if folder.is_dir() and any((d / sub).is_dir() for d in sorted(folder.iterdir())[:5] if d.is_dir()):
            return True
    return False


def _series(base: Path) -> list[tuple[str, str, Path, Path, str]]:
    """``(case id, modality, DICOM folder, Ground folder, patient)`` of every series."""
    out = []
    for d in sorted((base / "CT").iterdir()) if (base / "CT").is_dir() else []:
        if (d / "DICOM_anon").is_dir():
            out.append((f"CT_{d.name}", "CT", d / "DICOM_anon", d / "Ground", f"CT_{d.name}"))
    for d in sorted((base / "MR").iterdir()) if (base / "MR").is_dir() else []:
        for phase in ("InPhase", "OutPhase"):
            if (d / "T1DUAL" / "DICOM_anon" / phase).is_dir():
                out.append(
                    (
                        f"MR_{d.name}_T1DUAL_{phase}",
                        "MR",
                        d / "T1DUAL" / "DICOM_anon" / phase,
                        d / "T1DUAL" / "Ground",
                        f"MR_{d.name}",
                    )
                )
        if (d / "T2SPIR" / "DICOM_anon").is_dir():
            out.append(
                (f"MR_{d.name}_T2SPIR", "MR", d / "T2SPIR" / "DICOM_anon", d / "T2SPIR" / "Ground", f"MR_{d.name}")
            )
    return out


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per CT series and per MR sequence (T1 in-phase, T1 out-phase, T2 SPIR)."""
    root = Path(root)
    series = _series(_base(root))
    if not series:
        raise LayoutError(f"{root}: no CT/<patient>/DICOM_anon or MR/<patient>/... folders (CHAOS)")
    refs = []
    for cid, mod, dicom_dir, ground, patient in series:
        code = C.resolve_modality(modality, mod, where=str(dicom_dir))
        files = tuple(p for p in C.files_in(dicom_dir) if p.suffix.lower() == ".dcm")
        pngs = tuple(C.files_in(ground, (".png",)))
        opts = (
            ("ground", pngs),
            ("meta", json.dumps({"patient": patient, "sequence": cid.split("_", 2)[-1]})),
            ("mr", mod == "MR"),
        )
        refs.append(
            CaseRef(
                case_id=cid,
                source=root.name,
                layout=NAME,
                image_paths=files,
                label_paths=(ground,) if pngs else (),
                modality=code,
                options=opts,
            )
        )
    return refs


def _mr_values(png: np.ndarray, path: Path) -> np.ndarray:
    out = np.zeros(png.shape, np.uint8)
    for lo, hi, value in _MR_RANGES:
        out[(png >= lo) & (png <= hi)] = value
    stray = (png != 0) & (out == 0)
    if stray.any():
        raise CaseError(
            str(path),
            f"grey value {int(png[stray][0])} is none of CHAOS's MR labels "
            "(liver 63, right kidney 126, left kidney 189, spleen 252)",
        )
    return out


def load_case(ref: CaseRef) -> Case:
    """Read the DICOM slices one by one, stack them along the slice normal, and place each PNG."""
    from ..io.dicom import dicom_errors, dicom_pixels, open_dicom
    from ..io.dicom_geometry import slice_geometry
    from ..io.raster import open_pil

    files = [C.require_file(Path(p), "DICOM file") for p in ref.image_paths]
    if not files:
        raise CaseError(ref.case_id, "no DICOM files")
    headers = [open_dicom(p, headers_only=True) for p in files]
    with dicom_errors(files[0]):
        order, geom, _ = slice_geometry(
            headers[0].ImageOrientationPatient,
            [h.ImagePositionPatient for h in headers],
            headers[0].get("PixelSpacing"),
            headers[0].get("SliceThickness"),
            files[0].parent,
        )
    slices = [dicom_pixels(open_dicom(files[i]), files[i])[0][0] for i in order]
    vol = np.moveaxis(np.stack(slices, axis=0), (0, 1, 2), (2, 1, 0))
    labels: list[LabelMap] = []
    pngs = [Path(p) for p in ref.option("ground", ())]
    if ref.label_paths:
        if len(pngs) != len(files):
            raise CaseError(
                f"{files[0].parent} / {ref.label_paths[0]}",
                f"{len(files)} DICOM slices but {len(pngs)} ground-truth PNGs",
            )
        lab = np.zeros(vol.shape[:3], np.uint8)
        for k, i in enumerate(order):
            with open_pil(pngs[i]) as pic:
                png = np.asarray(pic.convert("L"))
            if png.shape != slices[k].shape[:2]:
                raise CaseError(str(pngs[i]), f"PNG shape {png.shape} != DICOM slice shape {slices[k].shape[:2]}")
            lab[:, :, k] = (_mr_values(png, pngs[i]) if ref.option("mr") else np.where(png >= 128, 255, 0)).T
        labels.append(LabelMap(lab, dict(MR_LABELS if ref.option("mr") else CT_LABELS)))
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or "",
            image=np.ascontiguousarray(vol),
            geometry=geom,
            labels=labels,
            image_path=tuple(str(f) for f in files),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            meta=json.loads(ref.option("meta", "{}")),
        )
    )
