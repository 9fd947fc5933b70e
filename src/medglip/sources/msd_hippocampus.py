"""MSD Task04 Hippocampus without its ``dataset.json`` (copies that kept only the NIfTI folders).

Layout::

    imagesTr/hippocampus_001.nii.gz     (a crop around one hippocampus, MR, ~35 x 50 x 35 voxels)
    labelsTr/hippocampus_001.nii.gz     (0 background, 1 anterior, 2 posterior hippocampus)
    imagesTs/hippocampus_002.nii.gz     (optional, unlabelled)

The :mod:`~medglip.sources.msd` adapter reads labels and modality from ``dataset.json``; here they
are built in, as MSD's ``dataset.json`` for Task04 gives them: modality MRI, labels ``{1: "Anterior",
2: "Posterior"}`` (ontology/data/sources.yaml resolves them for hippocampus sources). Images and
labels are paired by identical file name; some labels are stored as float (cast when integral).
One patient per volume (MSD): the patient is the case id. The crop's side (left or right) is not
recorded, so phrases carry none.
"""

from __future__ import annotations

from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "msd_hippocampus"
TIER = Tier.FOLDER
#: what `detect` looks for
LOOKS_FOR = "imagesTr/hippocampus_*.nii.gz + labelsTr/ without dataset.json (MSD Task04 Hippocampus)"
#: MSD Task04's own label table and modality (its dataset.json).
LABELS: dict[int, str] = {1: "Anterior", 2: "Posterior"}
MODALITY = "MR"
PREFIX = "hippocampus_"


def _volumes(folder: Path) -> dict[str, Path]:
    """Case id → ``hippocampus_*`` NIfTI file of ``folder``."""
    return {C.split_ext(p.name)[0]: p for p in C.files_in(folder, (".nii.gz", ".nii")) if p.name.startswith(PREFIX)}


def detect(root: Path) -> bool:
    """``imagesTr/hippocampus_*.nii.gz`` beside a ``labelsTr/`` folder (with or without dataset.json:
    the ``msd`` adapter, a more specific tier, reads the folders that have one)."""
    root = Path(root)
    images = root / "imagesTr"
    if not images.is_dir() or not (root / "labelsTr").is_dir():
        return False
    return any(p.name.startswith(PREFIX) and p.name.endswith((".nii.gz", ".nii")) for p in images.iterdir())


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``imagesTr`` / ``labelsTr`` pair (split ``train``), and per ``imagesTs`` image (``test``)."""
    root = Path(root)
    images, labels = _volumes(root / "imagesTr"), _volumes(root / "labelsTr")
    tests = _volumes(root / "imagesTs")
    if not images and not labels and not tests:
        raise LayoutError(f"{root}: no imagesTr/hippocampus_*.nii.gz (MSD Task04 Hippocampus)")
    code = C.resolve_modality(modality, MODALITY, where=str(root))
    refs = []
    for cid in sorted(set(images) | set(labels)):
        ext = C.split_ext((images.get(cid) or labels[cid]).name)[1]
        opts = V.options(LABELS, listed="MSD Task04 (dataset.json)", meta={"patient": cid})
        refs.append(
            CaseRef(
                case_id=cid,
                source=root.name,
                layout=NAME,
                image_paths=(images.get(cid) or root / "imagesTr" / f"{cid}{ext}",),
                label_paths=(labels.get(cid) or root / "labelsTr" / f"{cid}{ext}",),
                modality=code,
                split="train",
                options=opts,
            )
        )
    for cid, path in sorted(tests.items()):
        opts = V.options(LABELS, listed="MSD Task04 (dataset.json)", meta={"patient": cid})
        refs.append(
            CaseRef(
                case_id=cid,
                source=root.name,
                layout=NAME,
                image_paths=(path,),
                label_paths=(),
                modality=code,
                split="test",
                options=opts,
            )
        )
    return sorted(refs, key=lambda r: (r.case_id, r.split or ""))


def load_case(ref: CaseRef) -> Case:
    """Read the MR crop and its anterior / posterior hippocampus label map."""
    return V.load_volume_pair(ref)
