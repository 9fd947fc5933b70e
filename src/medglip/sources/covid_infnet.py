"""MedSeg COVID-19 CT segmentation slices in the Inf-Net ("COVID-SemiSeg") layout (Fan et al., IEEE TMI 2020).

Layout (the ``Dataset/`` folder of github.com/DengPingFan/Inf-Net, the source's own train / test split)::

    TrainingSet/LungInfection-Train/Doctor-label/Imgs/<n>.jpg     already-windowed 8-bit CT slice
    TrainingSet/LungInfection-Train/Doctor-label/GT/<n>.png       0 / 255: lung infection (any type)
    TrainingSet/MultiClassInfection-Train/GT/<n>.png              palette indices 1 GGO, 2 consolidation
    TestingSet/LungInfection-Test/{Imgs,GT}/<n>.(jpg|png)
    TestingSet/MultiClassInfection-Test/GT/<n>.png                (+ GT-1, GT-2: one class each, unused)

One case per slice; images and masks pair by numeric stem (``17.jpg`` ↔ ``17.png``); the split is the
folder's (``train`` / ``test``). Labels: ``"lung infection"`` (the binary GT, value 1) in one label map
and, where the multi-class GT exists, ``"ground glass opacity"`` (1) and ``"consolidation"`` (2) in a
second one (the binary GT is their union, so both maps hold the same pixels). A slice whose multi-class
GT lacks a class declares that finding absent (``meta["absent"]``: the radiologist labelled every
infected pixel as one class or the other). Edge, Prior, GT-1 / GT-2 and the unlabelled Pseudo-label
images are not read; ``MultiClassInfection-*/Imgs`` duplicates the LungInfection images byte for byte.

- **No patient ids**: MedSeg's slices come from more than 40 patients and nothing here says which
  slice is whose, so ``meta["patient"]`` is absent and the source's declared split is the only
  safe one (slices of one patient may lie in both of its parts, as in every published result on it).
- **Already windowed**: the JPGs are lossy 8-bit CT pictures of a lung-like window, cropped, of
  varying size, without HU or spacing. Their :class:`~medglip.core.intensity.CTForm` is a picture of
  :data:`WINDOW`, estimated from the slices themselves (below), so the input pipeline maps them to
  approximate HU and through the same windows as HU volumes.

:data:`WINDOW` ``(-1070, 250)`` HU (W1320 L-410): over the 82 slices here the median aerated-lung
histogram mode lies at pixel 43 and the soft-tissue mode at 215; mapping those to -850 and +40 HU (the
typical values) gives the window. The SIRM source images were saved with varying windows (the lung
mode lies at pixel 26..88 between the 10th and 90th percentile of slices), so HU are approximate
(about ±150 HU).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef, LabelMap
from ..core.intensity import CTForm
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "covid_infnet"
TIER = Tier.FOLDER
LOOKS_FOR = (
    "TrainingSet/LungInfection-Train/Doctor-label/{Imgs,GT} + TestingSet/LungInfection-Test (MedSeg "
    "COVID-19 CT, Inf-Net layout)"
)  # what `detect` looks for
#: The HU window the slices are pictures of (estimated; see the module docstring).
WINDOW: tuple[float, float] = (-1070.0, 250.0)
CT_FORM = CTForm.windowed(WINDOW)
INFECTION = "lung infection"
#: Multi-class GT palette index → label name.
CLASSES: dict[int, str] = {1: "ground glass opacity", 2: "consolidation"}
#: split → (image folder, binary GT folder, multi-class GT folder), relative to the dataset root.
_FOLDERS: dict[str, tuple[str, str, str]] = {
    "train": (
        "TrainingSet/LungInfection-Train/Doctor-label/Imgs",
        "TrainingSet/LungInfection-Train/Doctor-label/GT",
        "TrainingSet/MultiClassInfection-Train/GT",
    ),
    "test": (
        "TestingSet/LungInfection-Test/Imgs",
        "TestingSet/LungInfection-Test/GT",
        "TestingSet/MultiClassInfection-Test/GT",
    ),
}


def detect(root: Path) -> bool:
    """``TrainingSet/LungInfection-Train/`` or ``TestingSet/LungInfection-Test/`` (Inf-Net's Dataset folder)."""
    root = Path(root)
    return (root / "TrainingSet" / "LungInfection-Train").is_dir() or (
        root / "TestingSet" / "LungInfection-Test"
    ).is_dir()


def _by_number(folder: Path, exts: tuple[str, ...]) -> dict[int, Path]:
    """Numeric stem → file (other names are not slices of this layout and are skipped)."""
    return {int(p.stem): p for p in C.files_in(folder, exts) if p.stem.isdigit()}


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per slice image of each split, in numeric order; an image without its GT fails on load."""
    root = Path(root)
    if not detect(root):
        raise LayoutError(
            f"{root}: no TrainingSet/LungInfection-Train or TestingSet/LungInfection-Test (Inf-Net COVID)"
        )
    code = C.resolve_modality(modality, "CT", where=str(root))
    refs = []
    for split, (imgs, gts, multi) in _FOLDERS.items():
        images = _by_number(root / imgs, (".jpg", ".jpeg", ".png"))
        masks = _by_number(root / gts, (".png",))
        classes = _by_number(root / multi, (".png",))
        for n in sorted(set(images) | set(masks)):
            image = images.get(n, root / imgs / f"{n}.jpg")
            labels = (masks.get(n, root / gts / f"{n}.png"),) + ((classes[n],) if n in classes else ())
            meta = json.dumps({"slice": n})
            refs.append(
                CaseRef(
                    case_id=str(n),
                    source=root.name,
                    layout=NAME,
                    image_paths=(image,),
                    label_paths=labels,
                    modality=code,
                    split=split,
                    options=(("meta", meta),),
                )
            )
    if not refs:
        raise LayoutError(f"{root}: the Inf-Net COVID folders hold no <n>.jpg slices")
    return refs


def load_case(ref: CaseRef) -> Case:
    """The slice (grey, 8-bit) with its infection map and, where present, its GGO / consolidation map."""
    from ..io import read_image, read_mask_2d

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    image = read_image(ipath, as_2d=True)
    array = C.collapse_gray(image.array)
    if array.ndim != 2:
        raise CaseError(str(ipath), f"expected a grey CT slice, got shape {array.shape}")
    masks = []
    for mpath in ref.label_paths:
        mask = read_mask_2d(C.require_file(Path(mpath), "mask file"), threshold=127)
        if mask.shape != array.shape:
            raise CaseError(f"{ipath} / {mpath}", f"mask shape {mask.shape} does not match image shape {array.shape}")
        masks.append(mask)
    infection = (masks[0] != 0).astype(np.uint8)  # 0 / 255 (or 0 / 1 when already binarised)
    labels = [LabelMap(infection, {1: INFECTION})]
    meta = json.loads(ref.option("meta") or "{}")
    if len(masks) > 1:
        C.check_label_values(
            masks[1],
            CLASSES,
            path=ref.label_paths[1],
            listed="the multi-class GT holds 1 ground glass opacity, 2 consolidation",
        )
        labels.append(LabelMap(masks[1].astype(np.uint8), dict(CLASSES)))
        absent = [name for value, name in CLASSES.items() if not (masks[1] == value).any()]
        if absent and infection.any():
            meta["absent"] = absent  # every infected pixel has its class: the other class is not there
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=ref.layout,
            modality=ref.modality or "CT",
            image=array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ipath),),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            spacing_known=False,
            meta=meta,
            ct_form=CT_FORM,
        )
    )
