"""LIDC-IDRI lung nodules as 2D slices made by the pylidc preprocessing of jaeho3690/LIDC-IDRI-Preprocessing.

Layout (its ``data/`` folder)::

    Image/LIDC-IDRI-PPPP/PPPP_NInnn_slicesss.npy    float64 (512, 512): the standardised slice
    Mask/LIDC-IDRI-PPPP/PPPP_MAnnn_slicesss.npy     bool (512, 512): the nodule (pylidc consensus at 50 %)
    Clean/Image/LIDC-IDRI-PPPP/[LIDC-IDRI-PPPP/]PPPP_CN001_slicesss.npy   slices of nodule-free patients
    Clean/Mask/.../PPPP_CM001_slicesss.npy          their all-zero float masks
    Meta/meta_info.csv                              malignancy per slice (not read: it lists other files)

``nnn`` is the nodule's index in the patient, ``sss`` the slice's index within the nodule's bounding
box (not the CT slice number). One case per slice; the patient is the ``LIDC-IDRI-PPPP`` folder (a
nodule's slices are near-duplicates: splits must keep them together); one label, ``"lung nodule"``;
``Clean`` slices are negative images (``meta["no_finding"]``). Arrays are (row, column) as pylidc
returns them; there is no spacing, affine or UID, and no split. Files are read with
:func:`medglip.io.read_npy` (no pickles, header checked before allocating).

CT form: the source z-scored each HU slice by its own mean and standard deviation, replaced its
extreme values by the mean, median- and diffusion-filtered it and multiplied it by a dilated k-means
lung mask, so outside the lungs is exactly 0 and the mean / std are lost. :func:`standardised_form`
recovers a per-slice affine ``HU ≈ offset + scale × value`` from two tissues the mask always holds:
the aerated lung (the main mode of the in-mask values) is :data:`LUNG_HU` and the chest-wall / mediastinal
soft tissue kept by the mask's 10-pixel dilation (the second mode, above it) is :data:`WALL_HU`;
0 (outside) is air, -1000 HU. Calibration: the source's ``segment_lung`` steps (without its anisotropic
diffusion) run on the real HU slices of pyradiomics ``lung1`` put those two modes at a median -884 and
+32 HU (10 slices); with the anchors rounded to -880 / +30 the affine recovers the mean of 13 of its
slices within 31 HU (most within 8) and their standard deviation within 7 % (most within 2 %), a median
in-mask error of 2..20 HU (these are the slices the anchors came from: an in-sample check). A slice
without a second mode gets :data:`FALLBACK_SCALE`.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef, LabelMap
from ..core.intensity import CTForm
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "lidc_pylidc"
TIER = Tier.FOLDER
#: what `detect` looks for
LOOKS_FOR = "Image/LIDC-IDRI-PPPP/PPPP_NInnn_slicesss.npy + Mask/ (LIDC-IDRI, pylidc preprocessing)"
LABEL = "lung nodule"
#: HU of the in-mask aerated-lung mode and of the chest-wall soft-tissue mode (see the module docstring).
LUNG_HU, WALL_HU = -880.0, 30.0
#: HU per standardised unit when a slice shows no second tissue mode: the middle of the scales found in
#: the slices of LIDC-IDRI-0004 and -0008 (811..1163; they differ by how much padding each scan has).
FALLBACK_SCALE = 1000.0
_PATIENT = re.compile(r"^LIDC-IDRI-\d{4}$")
_IMAGE = re.compile(r"^(\d{4})_(NI|CN)(\d{3})_slice(\d{3})$")


def _clean_dirs(root: Path) -> tuple[Path, Path] | None:
    for name in ("Clean", "_Clean"):
        if (root / name / "Image").is_dir():
            return root / name / "Image", root / name / "Mask"
    return None


def detect(root: Path) -> bool:
    """``Image/LIDC-IDRI-PPPP/`` and ``Mask/`` (pylidc preprocessing output)."""
    root = Path(root)
    if not ((root / "Image").is_dir() and (root / "Mask").is_dir()):
        return False
    return any(p.is_dir() and _PATIENT.match(p.name) for p in (root / "Image").iterdir())


def _images(base: Path) -> list[Path]:
    """``PPPP_(NI|CN)nnn_slicesss.npy`` files below the patient folders of ``base`` (the source nests the
    Clean ones one patient folder deeper)."""
    return sorted(p for p in base.rglob("*.npy") if _IMAGE.match(p.stem) and not C.is_junk(p.name))


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per image file, by patient, nodule and slice; a missing mask fails on load."""
    root = Path(root)
    if not detect(root):
        raise LayoutError(f"{root}: no Image/LIDC-IDRI-PPPP/ + Mask/ folders (LIDC-IDRI pylidc preprocessing)")
    code = C.resolve_modality(modality, "CT", where=str(root))
    clean_dirs = _clean_dirs(root)
    bases = [(root / "Image", root / "Mask")] + ([clean_dirs] if clean_dirs else [])
    refs = []
    for image_dir, mask_dir in bases:
        for img in _images(image_dir):
            match = _IMAGE.match(img.stem)
            assert match is not None  # _images keeps only these names
            pid, kind, nodule, sl = match.groups()
            mask_name = img.name.replace(f"_{kind}", "_MA" if kind == "NI" else "_CM", 1)
            mask = mask_dir / img.parent.relative_to(image_dir) / mask_name
            clean = kind == "CN"
            opts = (("clean", clean), ("nodule", int(nodule)), ("patient", f"LIDC-IDRI-{pid}"), ("slice", int(sl)))
            refs.append(
                CaseRef(
                    case_id=img.stem,
                    source=root.name,
                    layout=NAME,
                    image_paths=(img,),
                    label_paths=(mask,),
                    modality=code,
                    options=opts,
                )
            )
    if not refs:
        raise LayoutError(f"{root}: Image/ holds no PPPP_NInnn_slicesss.npy files (LIDC-IDRI pylidc preprocessing)")
    return sorted(refs, key=lambda r: (r.option("patient"), r.option("clean"), r.case_id))


def _tissue_modes(values: np.ndarray, bins: int = 256) -> tuple[float, float | None]:
    """The main mode of ``values`` and a second one at least a third of their range away (None when the
    histogram has no second peak: no dip of 20 % between them, or under 5 % of the main peak's height)."""
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    if not hi > lo:
        return lo, None
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    h = np.convolve(hist.astype(float), np.ones(7) / 7, mode="same")  # 7-bin moving average
    centres = (edges[:-1] + edges[1:]) / 2
    i1 = int(np.argmax(h))
    far = np.abs(np.arange(bins) - i1) > bins // 3
    if not far.any():
        return float(centres[i1]), None
    i2 = int(np.argmax(np.where(far, h, -1.0)))
    between = h[min(i1, i2) : max(i1, i2) + 1]
    if h[i2] < 0.05 * h[i1] or between.min() > 0.8 * h[i2]:
        return float(centres[i1]), None
    return float(centres[i1]), float(centres[i2])


def standardised_form(values: np.ndarray) -> CTForm:
    """The :class:`CTForm` of one standardised, lung-masked slice (module docstring): its lower tissue
    mode is :data:`LUNG_HU`, its upper one :data:`WALL_HU`, 0 is air."""
    inside = values[(values != 0) & np.isfinite(values)]
    if inside.size < 100:  # no lung in this slice: it is all outside
        return CTForm.standardised(LUNG_HU, FALLBACK_SCALE, background=0.0)
    a, b = _tissue_modes(inside)
    if b is None:  # one tissue only: the aerated lung dominates every lung mask
        return CTForm.standardised(LUNG_HU - FALLBACK_SCALE * a, FALLBACK_SCALE, background=0.0)
    z_lung, z_wall = min(a, b), max(a, b)
    scale = (WALL_HU - LUNG_HU) / (z_wall - z_lung)
    return CTForm.standardised(LUNG_HU - scale * z_lung, scale, background=0.0)


def load_case(ref: CaseRef) -> Case:
    """The standardised slice (float), its nodule mask and the slice's :class:`CTForm`."""
    from ..io import read_npy

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    mpath = C.require_file(Path(ref.label_paths[0]), "mask file")
    image = read_npy(ipath, kinds="f", what="image")
    mask = read_npy(mpath, kinds="biuf", what="mask").array  # bool; the Clean masks are float zeros
    if mask.shape != image.array.shape:
        raise CaseError(f"{ipath} / {mpath}", f"mask shape {mask.shape} does not match image shape {image.array.shape}")
    if mask.dtype != bool:
        C.check_label_values(mask, (1,), path=mpath, listed="a pylidc nodule mask holds 0 and 1")
    labels = [LabelMap(mask.astype(np.uint8), {1: LABEL})]
    meta = {"patient": ref.option("patient"), "nodule": ref.option("nodule"), "slice": ref.option("slice")}
    if ref.option("clean"):
        if mask.any():
            raise CaseError(str(mpath), "a Clean (nodule-free patient) mask marks a nodule")
        meta["no_finding"] = True
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=ref.layout,
            modality=ref.modality or "CT",
            image=image.array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ipath),),
            label_path=(str(mpath),),
            split=None,
            spacing_known=False,
            meta=meta,
            ct_form=standardised_form(image.array),
        )
    )
