"""KiTS19 / KiTS21 / KiTS23, the Kidney Tumor Segmentation challenges (Heller et al.).

Layout (the ``neheller/kits23`` repository after ``kits23_download_data``; KiTS19 uses ``data/``)::

    dataset/case_00000/imaging.nii.gz
    dataset/case_00000/segmentation.nii.gz
    dataset/case_00000/instances/...            (per-annotator instances; not used)

Labels: 1 kidney, 2 tumor, 3 cyst (KiTS19 has 1 and 2 only). The root may be the ``dataset``/``data``
folder itself or the folder holding it. Modality CT; no declared split.
"""

from __future__ import annotations

from pathlib import Path

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import _common as C
from . import _volumes as V
from ._registry import Tier

NAME = "kits"
TIER = Tier.FOLDER
LOOKS_FOR = "case_XXXXX/imaging.nii.gz + segmentation.nii.gz (KiTS)"  # what `detect` looks for
LABELS: dict[int, str] = {1: "kidney", 2: "tumor", 3: "cyst"}


def _cases_dir(root: Path) -> Path | None:
    for cand in (root, root / "dataset", root / "data"):
        if cand.is_dir() and any(
            d.name.startswith("case_") and (d / "imaging.nii.gz").exists()
            for d in sorted(cand.iterdir())[:50]
            if d.is_dir()
        ):
            return cand
    return None


def detect(root: Path) -> bool:
    """``case_XXXXX/imaging.nii.gz`` folders (in the root or in ``dataset/`` / ``data/``)."""
    return _cases_dir(Path(root)) is not None


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``case_XXXXX`` folder; those without ``segmentation.nii.gz`` are unlabeled."""
    root = Path(root)
    cases = _cases_dir(root)
    if cases is None:
        raise LayoutError(f"{root}: no case_XXXXX/imaging.nii.gz folders (KiTS)")
    code = C.resolve_modality(modality, "CT", where=str(root))
    opts = V.options(LABELS, listed="KiTS")
    refs = []
    for d in sorted(p for p in cases.iterdir() if p.is_dir() and p.name.startswith("case_")):
        seg = d / "segmentation.nii.gz"
        refs.append(
            CaseRef(
                case_id=d.name,
                source=root.name,
                layout=NAME,
                image_paths=(d / "imaging.nii.gz",),
                label_paths=(seg,) if seg.exists() else (),
                modality=code,
                options=opts,
            )
        )
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read the CT and its kidney / tumor / cyst label map."""
    return V.load_volume_pair(ref)
