"""LGG segmentation dataset (Buda et al. 2019; TCGA-LGG brain MR with FLAIR-abnormality masks).

Layout (the Kaggle release ``mateuszbuda/lgg-mri-segmentation``)::

    kaggle_3m/TCGA_CS_4941_19960909/TCGA_CS_4941_19960909_1.tif        (256 x 256 x 3, uint8)
    kaggle_3m/TCGA_CS_4941_19960909/TCGA_CS_4941_19960909_1_mask.tif   (256 x 256, 0 / 255)
    kaggle_3m/data.csv, kaggle_3m/README.md

One case per slice; the patient is the case folder (``TCGA_<inst>_<id>_<date>``), so splits keep a
patient's slices together. The three channels are MR sequences, not colour (0 pre-contrast,
1 FLAIR, 2 post-contrast; a missing sequence is a copy of FLAIR): the image is the FLAIR channel,
on which the mask was drawn and which every patient has, as a grey MR slice. One label,
``"FLAIR abnormality"`` (the lower-grade glioma as FLAIR shows it; ontology/data/sources.yaml maps
it for LGG sources). Most patients also have tumour-free slices: an empty mask is a slice with no
finding (``meta["no_finding"]``), built as a negative image. Modality MR; no pixel spacing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from ._paired import load_pair
from ._registry import Tier

NAME = "lgg"
TIER = Tier.FOLDER
#: what `detect` looks for
LOOKS_FOR = "kaggle_3m/TCGA_<inst>_<id>_<date>/<patient>_<n>.tif + <patient>_<n>_mask.tif (LGG, Buda et al.)"
LABEL = "FLAIR abnormality"
#: The sequences of the three TIFF channels (dataset README), and the one the case keeps.
CHANNELS: tuple[str, ...] = ("pre-contrast", "FLAIR", "post-contrast")
FLAIR = 1
_PATIENT = re.compile(r"^TCGA_[A-Z0-9]{2}_[A-Z0-9]{4}_\d{8}$")


def _slices(folder: Path) -> dict[int, Path]:
    """Slice number → image file of one patient folder (``<patient>_<n>.tif``, masks excluded)."""
    out = {}
    for p in C.files_in(folder, (".tif", ".tiff")):
        stem = C.split_ext(p.name)[0]
        n = stem[len(folder.name) + 1 :]
        if stem.startswith(folder.name + "_") and n.isdigit():
            out[int(n)] = p
    return out


def _base(root: Path) -> Path | None:
    """The folder holding the patient folders: ``root`` itself or ``root/kaggle_3m``."""
    for cand in (root, root / "kaggle_3m"):
        if not cand.is_dir():
            continue
        for d in sorted(cand.iterdir())[:20]:  # README.md and data.csv sort before the TCGA_ folders
            if d.is_dir() and _PATIENT.match(d.name) and any(p.name.endswith("_mask.tif") for p in d.iterdir()):
                return cand
    return None


def detect(root: Path) -> bool:
    """``TCGA_<inst>_<id>_<date>/`` patient folders holding ``*_mask.tif`` (here or in ``kaggle_3m/``)."""
    root = Path(root)
    return root.is_dir() and _base(root) is not None


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per slice image, slices in numeric order (``_2`` before ``_10``)."""
    root = Path(root)
    base = _base(root)
    if base is None:
        raise LayoutError(f"{root}: no kaggle_3m/TCGA_<inst>_<id>_<date>/ patient folders with *_mask.tif (LGG)")
    code = C.resolve_modality(modality, "MR", where=str(root))
    refs = []
    for d in sorted(p for p in base.iterdir() if p.is_dir() and _PATIENT.match(p.name)):
        for n, img in sorted(_slices(d).items()):
            meta = {"patient": d.name, "slice": n, "channel": CHANNELS[FLAIR]}
            opts = (
                ("channel", FLAIR),
                ("mask_names", (LABEL,)),
                ("may_be_empty", True),
                ("meta", json.dumps(meta, sort_keys=True)),
                ("threshold", 0),
            )  # 0 / 255 masks: > 0 is tumour
            refs.append(
                CaseRef(
                    case_id=f"{d.name}_{n}",
                    source=root.name,
                    layout=NAME,
                    image_paths=(img,),
                    label_paths=(d / f"{d.name}_{n}_mask.tif",),
                    modality=code,
                    options=opts,
                )
            )
    if not refs:
        raise LayoutError(f"{root}: the LGG patient folders hold no <patient>_<n>.tif slices")
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the slice's FLAIR channel and its abnormality mask (empty: a slice with no finding)."""
    return load_pair(ref)
