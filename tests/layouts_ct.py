"""Fixture writers for the CT slice layouts that arrive as pictures or standardised arrays (see tests/layouts.py).

Each ``make_X(root) -> Path`` writes tiny cases with the real folder and file naming and value
conventions, made from one synthetic chest slice in Hounsfield units (:func:`chest`), so tests can
compare what the adapters and the input pipeline recover with the HU the fixture started from:

- COVID (Inf-Net layout): the slice windowed to the adapter's window, JPEG images, 0/255 PNG masks,
  palette PNG multi-class masks (1 GGO, 2 consolidation), the source's train / test folders;
- MSD Task06 lung slices: the HU slice saved without a window (clipped to 0..255) as JPEG, JPEG masks;
- LIDC (pylidc preprocessing): the slice z-scored by its own mean / std and multiplied by a dilated lung
  mask, float64 ``.npy``; bool masks; a Clean patient with float zero masks one folder deeper.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

#: HU of the fixture's tissues: the same anchors the LIDC adapter assumes, so its estimate can be checked.
AIR, LUNG, WALL, NODULE = -1000.0, -880.0, 30.0, 30.0


def chest(size: int = 64, *, seed: int = 0, nodule: tuple[int, int, int] = (24, 20, 4)) -> dict[str, np.ndarray]:
    """A synthetic axial chest slice: ``hu`` (float64; air outside an elliptic body of soft tissue, two
    lungs, a round nodule at ``(row, col, radius)``, a few HU of texture), ``lungs`` (bool) and
    ``nodule`` (bool). Texture keeps the tissue histograms smooth, as real slices are."""
    rng = np.random.default_rng(seed)
    rr, cc = np.mgrid[:size, :size].astype(float) / size
    hu = np.full((size, size), AIR)
    body = ((rr - 0.5) / 0.45) ** 2 + ((cc - 0.5) / 0.48) ** 2 <= 1
    lungs = np.zeros((size, size), bool)
    for c0 in (0.3, 0.7):
        lungs |= ((rr - 0.48) / 0.3) ** 2 + ((cc - c0) / 0.16) ** 2 <= 1
    hu[body] = WALL
    hu[lungs] = LUNG
    r, c, rad = nodule
    ys, xs = np.mgrid[:size, :size]
    mask = (ys - r) ** 2 + (xs - c) ** 2 <= rad ** 2
    hu[mask] = NODULE
    hu += np.where(body, rng.normal(0, 12, hu.shape), 0)
    return {"hu": hu, "lungs": lungs, "nodule": mask & lungs}


def window_picture(hu: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return np.clip(np.rint((hu - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def _save(path: Path, array: np.ndarray, fmt: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=fmt, **kw)
    return path


def _palette(classes: np.ndarray) -> Image.Image:
    im = Image.fromarray(classes.astype(np.uint8), mode="P")
    im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (256 * 3 - 9))  # 1 dark red, 2 dark green
    return im


#: split → {slice number: (GGO present, consolidation present, has a multi-class GT)}
COVID_SLICES: dict[str, dict[int, tuple[bool, bool, bool]]] = {
    "train": {0: (True, True, True), 2: (True, False, True), 10: (True, True, False)},
    "test": {3: (True, True, True)},
}


def make_covid_infnet(root: Path, window: tuple[float, float] = (-1070.0, 250.0)) -> Path:
    """``COVID-SemiSeg/{TrainingSet,TestingSet}/...`` (Inf-Net's Dataset folder) with Edge / Prior /
    Pseudo-label folders the adapter must ignore. Slice 10 has no multi-class GT; slice 2 no
    consolidation. Images differ in size (the real slices are cropped)."""
    ds = Path(root) / "COVID-SemiSeg"
    folders = {"train": ("TrainingSet/LungInfection-Train/Doctor-label", "TrainingSet/MultiClassInfection-Train"),
               "test": ("TestingSet/LungInfection-Test", "TestingSet/MultiClassInfection-Test")}
    for split, slices in COVID_SLICES.items():
        binary, multi = folders[split]
        for n, (ggo, cons, has_multi) in slices.items():
            size = 48 + 4 * n
            c = chest(size, seed=n, nodule=(size // 3, size // 3, 4))
            pic = window_picture(c["hu"], window)
            _save(ds / binary / "Imgs" / f"{n}.jpg", pic, "JPEG", quality=95)
            classes = np.zeros(pic.shape, np.uint8)
            rr, cc = np.mgrid[:size, :size]
            if ggo:
                classes[(rr - size // 2) ** 2 + (cc - size // 4) ** 2 <= 25] = 1
            if cons:
                classes[(rr - size // 2) ** 2 + (cc - 3 * size // 4) ** 2 <= 16] = 2
            _save(ds / binary / "GT" / f"{n}.png", ((classes > 0) * 255).astype(np.uint8))
            if split == "train":
                _save(ds / binary / "Edge" / f"{n}.png", np.zeros_like(pic))
            for sub in (("GT", "Prior") if split == "train" else ("GT",)) if has_multi else ():
                (ds / multi / sub).mkdir(parents=True, exist_ok=True)
                _palette(classes).save(ds / multi / sub / f"{n}.png")
    _save(ds / "TrainingSet/LungInfection-Train/Pseudo-label/Imgs/5000.jpg", np.zeros((8, 8), np.uint8), "JPEG")
    return ds


#: case → slice numbers (10001 twice: two slices of one patient)
MSD_SLICES: dict[str, tuple[int, ...]] = {"10001": (231, 234), "10005": (454,)}


def make_msd_lung_slices(root: Path) -> Path:
    """``Lung-Tumor/{images,masks}/<case>_<z>.jpg``: the HU slice clipped to 0..255 (no window), lossy
    masks; plus an augmented ``hflipped_`` copy the adapter must skip."""
    ds = Path(root) / "Lung-Tumor"
    for case, zs in MSD_SLICES.items():
        for z in zs:
            c = chest(64, seed=z, nodule=(20 + z % 7, 18, 5))
            pic = np.clip(np.rint(c["hu"]), 0, 255).astype(np.uint8)  # cv2.imwrite of float HU: saturates
            _save(ds / "images" / f"{case}_{z}.jpg", pic, "JPEG", quality=95)
            _save(ds / "masks" / f"{case}_{z}.jpg", (c["nodule"] * 255).astype(np.uint8), "JPEG", quality=75)
    _save(ds / "images" / "hflipped_10001_231.jpg", np.zeros((64, 64), np.uint8), "JPEG")
    _save(ds / "masks" / "hflipped_10001_231.jpg", np.zeros((64, 64), np.uint8), "JPEG")
    return ds


def standardise(hu: np.ndarray, lungs: np.ndarray, dilation: int = 3) -> np.ndarray:
    """The pylidc preprocessing's ``segment_lung`` in short: z-score by the slice's own mean / std, then
    multiply by the lung mask dilated by ``dilation`` pixels (it keeps a rim of chest wall)."""
    z = (hu - hu.mean()) / hu.std()
    mask = ndimage.binary_dilation(lungs, iterations=dilation)
    return np.where(mask, z, 0.0)


#: patient → nodule index → slice numbers within the nodule
LIDC_NODULES: dict[str, dict[int, tuple[int, ...]]] = {"0004": {0: (0, 1)}, "0008": {0: (0,), 1: (1,)}}


def make_lidc(root: Path) -> Path:
    """``lidc-data/{Image,Mask}/LIDC-IDRI-PPPP/PPPP_(NI|MA)nnn_slicesss.npy`` (float64 images, bool
    masks), ``Clean/{Image,Mask}/LIDC-IDRI-0009/LIDC-IDRI-0009/0009_C(N|M)001_slice000.npy`` (float zero
    mask, nested one patient folder deeper as the source writes them) and ``Meta/meta_info.csv``."""
    ds = Path(root) / "lidc-data"
    for pid, nodules in LIDC_NODULES.items():
        for nn, slices in nodules.items():
            for s in slices:
                c = chest(64, seed=int(pid) + s, nodule=(22 + 4 * nn, 18 + 24 * nn, 3))
                for kind, array in (("Image", standardise(c["hu"], c["lungs"])), ("Mask", c["nodule"])):
                    d = ds / kind / f"LIDC-IDRI-{pid}"
                    d.mkdir(parents=True, exist_ok=True)
                    np.save(d / f"{pid}_{'NI' if kind == 'Image' else 'MA'}{nn:03d}_slice{s:03d}.npy", array)
    c = chest(64, seed=9)
    for kind, array, tag in (("Image", standardise(c["hu"], c["lungs"]), "CN"), ("Mask", np.zeros((64, 64)), "CM")):
        d = ds / "Clean" / kind / "LIDC-IDRI-0009" / "LIDC-IDRI-0009"
        d.mkdir(parents=True, exist_ok=True)
        np.save(d / f"0009_{tag}001_slice000.npy", array)
    (ds / "Meta").mkdir()
    (ds / "Meta" / "meta_info.csv").write_text(
        "patient_id,nodule_no,slice_no,original_image,mask_image,malignancy,is_cancer,is_clean\n"
        "0004,0,000,LIDC-IDRI-0004/0004_NI000_slice000,LIDC-IDRI-0004/0004_MA000_slice000,1,False,False\n")
    return ds
