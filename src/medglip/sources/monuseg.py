"""MoNuSeg, Multi-organ Nucleus Segmentation (Kumar et al., IEEE TMI 2017 / 2020), H&E tiles.

Layout::

    MoNuSeg 2018 Training Data/Tissue Images/TCGA-18-5592-01Z-00-DX1.tif    1000 x 1000 RGB
    MoNuSeg 2018 Training Data/Annotations/TCGA-18-5592-01Z-00-DX1.xml     Aperio ImageScope XML
    MoNuSegTestData/TCGA-2Z-A9J9-01A-01-TS1.tif + .xml                       (test: side by side)

Each ``<Region>`` of the XML is one nucleus outline (``<Vertices><Vertex X=".." Y=".."/>``); it is
filled into an instance label map (later regions win where outlines overlap) named "nucleus".
Splits: the training folder → train, the test folder → test. Modality PATH. A malformed XML or a
region with fewer than three vertices raises :class:`CaseError` naming the file and the region.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef, LabelMap
from ..errors import CaseError, LayoutError
from . import _common as C
from ._registry import Tier

NAME = "monuseg"
TIER = Tier.FOLDER
LOOKS_FOR = "Tissue Images/*.tif + Annotations/*.xml (MoNuSeg)"  # what `detect` looks for
LABEL = "nucleus"
_IMAGE_EXTS = (".tif", ".tiff", ".png")


def _pairs(root: Path) -> list[tuple[Path, Path, str | None]]:
    """``(image, xml, split)`` for every tissue image with an annotation file."""
    out = []
    folders = [root] + sorted(d for d in root.iterdir() if d.is_dir())
    for d in folders:
        split = "test" if "test" in d.name.lower() else "train" if "train" in d.name.lower() else None
        img_dir, xml_dir = (d / "Tissue Images", d / "Annotations") if (d / "Tissue Images").is_dir() else (d, d)
        xmls = {p.stem: p for p in C.files_in(xml_dir, (".xml",))}
        out += [(p, xmls[p.stem], split) for p in C.files_in(img_dir, _IMAGE_EXTS) if p.stem in xmls]
    return out


def detect(root: Path) -> bool:
    """Tissue images with same-named ImageScope ``.xml`` annotations (``Tissue Images/`` + ``Annotations/``)."""
    root = Path(root)
    return root.is_dir() and bool(_pairs(root))


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per annotated tile; ids are the TCGA tile names."""
    root = Path(root)
    pairs = _pairs(root)
    if not pairs:
        raise LayoutError(f"{root}: no 'Tissue Images/*.tif' + 'Annotations/*.xml' pairs (MoNuSeg)")
    code = C.resolve_modality(modality, "PATH", where=str(root))
    return sorted(
        (
            CaseRef(
                case_id=img.stem,
                source=root.name,
                layout=NAME,
                image_paths=(img,),
                label_paths=(xml,),
                modality=code,
                split=split,
            )
            for img, xml, split in pairs
        ),
        key=lambda r: r.case_id,
    )


def read_regions(path: Path) -> list[np.ndarray]:
    """The polygons (``(N, 2)`` x, y) of an ImageScope XML, in file order."""
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as exc:
        raise CaseError(str(path), f"cannot parse the annotation XML ({exc})") from None
    polys = []
    for region in tree.getroot().iter("Region"):
        try:
            pts = [(float(v.get("X", "")), float(v.get("Y", ""))) for v in region.iter("Vertex")]
        except (TypeError, ValueError):
            raise CaseError(str(path), f"region {region.get('Id')}: a vertex lacks numeric X/Y") from None
        if len(pts) < 3:
            raise CaseError(str(path), f"region {region.get('Id')}: {len(pts)} vertices, a nucleus outline needs 3")
        polys.append(np.asarray(pts))
    return polys


def load_case(ref: CaseRef) -> Case:
    """Read the H&E tile and fill its nucleus outlines into an instance label map."""
    from PIL import Image, ImageDraw

    from ..io import read_image

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    xpath = C.require_file(Path(ref.label_paths[0]), "annotation file")
    image = read_image(ipath)
    h, w = image.spatial_shape[:2]
    canvas = Image.new("I", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    polys = read_regions(xpath)
    for value, poly in enumerate(polys, start=1):
        draw.polygon([tuple(p) for p in poly], fill=value, outline=value)
    lab = np.asarray(canvas, dtype=np.int32)
    present = C.present_values(lab)
    dtype = np.uint16 if len(polys) < 65536 else np.int32
    labels = [LabelMap(lab.astype(dtype), {v: LABEL for v in present}, instances=True)]
    array = image.array[..., :3] if image.array.ndim == 3 and image.array.shape[2] == 4 else image.array
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or "PATH",
            image=array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ipath),),
            label_path=(str(xpath),),
            split=ref.split,
            spacing_known=image.spacing_known,
            meta={"regions": len(polys), "regions_hidden": len(polys) - len(present), "patient": ref.case_id[:12]},
        )
    )
