"""JSRT chest radiographs (Shiraishi et al. 2000) with the SCR masks (van Ginneken et al. 2006).

Layout::

    All247images/JPCLN001.IMG            2048 x 2048, 12-bit, big-endian uint16, no header,
                                         0.175 mm pixels, stored inverted (high values are dark)
    scratch/fold1/masks/left lung/JPCLN001.gif      SCR masks at 1024 x 1024 (0.35 mm), one
    scratch/fold1/masks/right lung/...              folder per structure; fold2/ holds the
    scratch/fold1/masks/heart/...                   other half of the images (any folder named
    scratch/fold1/masks/left clavicle/...           ``masks`` holding these sub-folders is found)
    scratch/fold1/masks/right clavicle/...

Label names are the SCR folder names (the patient's sides: on these PA radiographs the patient's left
is on the image's right). The image is brought to the masks' grid by averaging blocks (2 x 2) and
inverted to the usual display (bone bright); ``meta`` records ``{"inverted": true, "block": 2}``.
Images without SCR masks are unlabeled. Modality XR.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef
from ..core.geometry import Geometry
from ..errors import CaseError, LayoutError, ReadError
from . import _common as C
from ._registry import Tier

NAME = "jsrt"
TIER = Tier.FOLDER
LOOKS_FOR = "All247images/*.IMG + SCR masks/<structure>/*.gif (JSRT + SCR)"  # what `detect` looks for
STRUCTURES: tuple[str, ...] = ("heart", "left clavicle", "left lung", "right clavicle", "right lung")
PIXEL_MM = 0.175  #: JSRT pixel size at 2048 x 2048
_MAX_SIDE = 8192


def _images_dir(root: Path) -> Path | None:
    for cand in (root / "All247images", root):
        if any(p.suffix.upper() == ".IMG" for p in C.files_in(cand)):
            return cand
    return None


def _mask_dirs(root: Path) -> list[Path]:
    """Folders holding the SCR structure sub-folders (``.../masks``), searched three levels deep."""
    found = []
    for depth in ("*", "*/*", "*/*/*"):
        found += [p.parent for p in root.glob(f"{depth}/left lung") if p.is_dir()]
    return sorted(set(found))


def detect(root: Path) -> bool:
    """``*.IMG`` radiographs (``All247images/``) and SCR ``masks/left lung/`` folders."""
    root = Path(root)
    return root.is_dir() and _images_dir(root) is not None and bool(_mask_dirs(root))


def list_cases(root: Path, *, modality: str | None = None) -> list[CaseRef]:
    """One case per ``.IMG``; its SCR masks (any subset of the five structures) are its labels."""
    root = Path(root)
    img_dir = _images_dir(root)
    if img_dir is None:
        raise LayoutError(f"{root}: no All247images/*.IMG files (JSRT)")
    code = C.resolve_modality(modality, "XR", where=str(root))
    masks: dict[str, list[tuple[str, Path]]] = {}
    for mdir in _mask_dirs(root):
        for name in STRUCTURES:
            for p in C.files_in(mdir / name, (".gif", ".png")):
                masks.setdefault(p.stem, []).append((name, p))
    refs = []
    for p in C.files_in(img_dir):
        if p.suffix.upper() != ".IMG":
            continue
        found = sorted(masks.get(p.stem, []), key=lambda nm: STRUCTURES.index(nm[0]))
        opts = (("mask_names", tuple(n for n, _ in found)),)
        refs.append(
            CaseRef(
                case_id=p.stem,
                source=root.name,
                layout=NAME,
                image_paths=(p,),
                label_paths=tuple(q for _, q in found),
                modality=code,
                options=opts,
            )
        )
    return refs


def read_img(path: Path) -> np.ndarray:
    """A JSRT ``.IMG`` file as a square big-endian uint16 array (the side from the file size)."""
    size = path.stat().st_size
    side = math.isqrt(size // 2)
    if size == 0 or side * side * 2 != size or side > _MAX_SIDE:
        raise ReadError(path, f"{size} bytes is not a square 16-bit JSRT image (2048 x 2048 is 8388608 bytes)")
    return np.fromfile(path, dtype=">u2").reshape(side, side).astype(np.uint16)


def read_gif_mask(path: Path) -> np.ndarray:
    """An SCR mask (GIF, white on black) as a boolean array, by grey level (palette order varies)."""
    from ..io.raster import open_pil

    with open_pil(path) as pic:
        return np.asarray(pic.convert("L")) > 127


def load_case(ref: CaseRef) -> Case:
    """Read the radiograph, reduce it to the masks' grid, invert it, and layer the SCR masks."""
    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    raw = read_img(ipath)
    masks = [
        (n, read_gif_mask(C.require_file(Path(p), "mask file")))
        for n, p in zip(ref.option("mask_names", ()), ref.label_paths, strict=True)
    ]
    block = 1
    if masks:
        mshape = masks[0][1].shape
        block = raw.shape[0] // mshape[0] if mshape[0] else 0
        if block < 1 or mshape != (raw.shape[0] // block, raw.shape[1] // block) or raw.shape[0] % block:
            raise CaseError(
                f"{ipath} / {ref.label_paths[0]}",
                f"mask shape {mshape} is not the image shape {raw.shape} divided by a whole factor",
            )
        for n, m in masks:
            if m.shape != mshape:
                raise CaseError(str(ref.label_paths[0]), f"the SCR masks of one image differ in shape ({n}: {m.shape})")
    h, w = raw.shape[0] // block, raw.shape[1] // block
    img = raw.reshape(h, block, w, block).mean(axis=(1, 3))
    img = np.clip(4095.0 - img, 0, 4095).astype(np.uint16)
    labels = C.layer_masks(((i + 1, n, m != 0) for i, (n, m) in enumerate(masks)), (h, w), dtype=np.uint8)
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=NAME,
            modality=ref.modality or "XR",
            image=img,
            geometry=Geometry.identity(2, (PIXEL_MM * block, PIXEL_MM * block)),
            labels=labels,
            image_path=(str(ipath),),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            meta={"inverted": True, "block": block, "patient": ref.case_id},
        )
    )
