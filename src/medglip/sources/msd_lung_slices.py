"""MSD Task06 lung tumour as 2D JPEG slices (sarah-antillia's Lung-Tumor ImageMask dataset).

Layout::

    images/<case>_<z>.jpg     512 x 512 8-bit grey CT slice
    masks/<case>_<z>.jpg      the same name: the tumour mask (lossy JPEG: > 127 is tumour)

``<case>`` is 10000 + the rank of the volume in the sorted ``Task06_Lung/labelsTr`` list (10001 =
lung_001), ``<z>`` its axial slice index; one case per slice, the patient is ``<case>`` (so splits
keep a volume's slices together). One label, ``"lung tumour"`` (MSD's label 1, "cancer": non-small-cell
lung cancer). Only slices with tumour were exported (no negatives); no split is declared; no spacing.
Augmented copies that the generator can write (``hflipped_``, ``rotated_``, ... prefixes) are not
patient slices (a mirrored chest swaps the patient's sides) and are skipped.

CT form: the generator wrote the float HU slice with ``cv2.imwrite`` unchanged, which saturates it to
0..255: a picture of the window :data:`WINDOW` ``(0, 255)`` HU, pixel = HU. Everything below 0 HU
(air, aerated lung, fat, and ground-glass or sub-solid tumour) is 0, which is unknowable. Most of it
(75-80 % of each slice's pixels) is air and aerated lung, so a 0 pixel is taken as air (``below_hu``
-1000): the slices then look like HU chest CT in all three input channels (air and lung dark, the
body bright), where the window's end (0 HU) would turn air and lung into a flat soft-tissue grey. The
price: fat and sub-solid tumour become air too, and tissue near 0 HU is speckled with air by noise.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from ..case import Case, CaseRef
from ..core.intensity import CTForm
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

log = logging.getLogger(__name__)

NAME = "msd_lung_slices"
TIER = Tier.FOLDER
LOOKS_FOR = "images/1NNNN_<z>.jpg + masks/1NNNN_<z>.jpg (MSD Task06 lung tumour JPEG slices)"  # what `detect` looks for
LABEL = "lung tumour"
#: Pixel value = HU, saturated to 0..255; a 0 pixel is taken as air (see the module docstring).
WINDOW: tuple[float, float] = (0.0, 255.0)
CT_FORM = CTForm.windowed(WINDOW, below_hu=-1000.0)
_SLICE = re.compile(r"^(1\d{4})_(\d+)$")


def _slices(folder: Path) -> dict[str, Path]:
    """``<case>_<z>`` stem → JPEG file (other names skipped)."""
    return {p.stem: p for p in C.files_in(folder, (".jpg", ".jpeg")) if _SLICE.match(p.stem)}


def detect(root: Path) -> bool:
    """``images/`` + ``masks/`` holding ``1NNNN_<z>.jpg`` files of the same names."""
    root = Path(root)
    if not ((root / "images").is_dir() and (root / "masks").is_dir()):
        return False
    return bool(set(_slices(root / "images")) & set(_slices(root / "masks")))


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``images/<case>_<z>.jpg``, by case then slice number; unpaired files fail on load."""
    root = Path(root)
    if not (root / "images").is_dir():
        raise LayoutError(f"{root}: no images/ + masks/ with <case>_<z>.jpg slices (MSD Task06 lung slices)")
    images, masks = _slices(root / "images"), _slices(root / "masks")
    skipped = [p.name for p in C.files_in(root / "images", (".jpg", ".jpeg")) if p.stem not in images]
    if skipped:
        log.warning(
            "%s: %d images are not <case>_<z>.jpg patient slices (augmented copies?) and are skipped, e.g. %s",
            root,
            len(skipped),
            skipped[0],
        )
    code = C.resolve_modality(modality, "CT", where=str(root))
    refs = []
    # every stem matched _SLICE (<case>_<z>): one underscore
    for stem in sorted(set(images) | set(masks), key=lambda s: tuple(int(x) for x in s.split("_"))):
        case, z = stem.split("_")
        meta = json.dumps({"patient": case, "slice": int(z)}, sort_keys=True)
        opts = (("gray", True), ("mask_names", (LABEL,)), ("meta", meta), ("threshold", 127))
        refs.append(
            CaseRef(
                case_id=stem,
                source=root.name,
                layout=NAME,
                image_paths=(images.get(stem, root / "images" / f"{stem}.jpg"),),
                label_paths=(masks.get(stem, root / "masks" / f"{stem}.jpg"),),
                modality=code,
                split=None,
                options=opts,
            )
        )
    if not refs:
        raise LayoutError(f"{root}: images/ holds no <case>_<z>.jpg slices (MSD Task06 lung slices)")
    return refs


def load_case(ref: CaseRef) -> Case:
    """The slice and its thresholded tumour mask, as a picture of :data:`WINDOW`."""
    case = load_pair(ref)
    case.ct_form = CT_FORM
    case.spacing_known = False
    return case
