"""Fixture writers for the catalogue: one tiny data set per entry, in its real layout with its real names.

``write(entry, root, sides)`` writes the data set of ``entry`` (a :class:`medglip.catalog.CatalogEntry`)
under ``root`` and returns its folder. Label values and names come from the entry; ``sides`` says
where each structure goes: ``"left"`` on the patient's left (LPS +x; on 2D radiographs the image's
right), ``"right"`` on the patient's right, None anywhere. 3D volumes are 40 x 40 x 4 voxels with a
body ellipse and one small cylinder per label; 2D images are 64 x 64 (or smaller) with discs.
This module holds the 3D (NIfTI / MetaImage) layouts; :mod:`catalog_layouts_2d` the 2D and DICOM ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from layouts import DIRECTIONS, ellipsoid, lps_affine, save_nifti
from layouts_lesions import make_msd_hippocampus

SHAPE = (40, 40, 4)
SPACING = (1.5, 1.5, 3.0)
_X = {"right": (-16.0, -10.5, -5.0), "left": (5.0, 10.5, 16.0)}
_Y = (-13.0, -4.5, 4.5, 13.0)
Labels = list[tuple[int, str]]


def numbered(entry) -> Labels:
    """The entry's ``(value, name)`` pairs; list-form labels are numbered 1, 2, ..."""
    return [(v if v is not None else i + 1, n) for i, (v, n) in enumerate(entry.labels)]


def volume(labels: Labels, sides: dict, *, direction: int = 0, seed: int = 0, mr: bool = False):
    """``(affine, image, label)``: a body ellipse and one cylinder per label value on its side."""
    aff = lps_affine(DIRECTIONS[direction], SPACING, SHAPE)
    free = {s: [(x, y) for x in xs for y in _Y] for s, xs in _X.items()}
    lab = np.zeros(SHAPE, np.uint8)
    for value, name in labels:
        side = sides.get(name) or ("right" if len(free["right"]) >= len(free["left"]) else "left")
        x, y = free[side].pop(0)
        lab[ellipsoid(aff, (x, y, 0.0), (2.6, 2.6, 100.0), shape=SHAPE)] = value
    rng = np.random.default_rng(seed)
    img = np.full(SHAPE, -1000.0)
    body = ellipsoid(aff, (0, 0, 0), (27, 25, 100), shape=SHAPE)
    img[body] = rng.uniform(-50, 150, int(body.sum()))
    img[lab > 0] = 200
    return aff, (img + 1000).astype(np.float32) if mr else img.astype(np.int16), lab


def _pairs(entry, root: Path, sides: dict, image: Path, label: Path, *, mr: bool = False, direction: int = 0,
           labels: Labels | None = None, seed: int = 0) -> None:
    aff, img, lab = volume(labels or numbered(entry), sides, direction=direction, mr=mr, seed=seed)
    save_nifti(image, img, aff)
    save_nifti(label, lab, aff)


def totalsegmentator(entry, root, sides, names=()):
    ds = root / "Totalsegmentator_dataset"
    labels = [(i + 1, n) for i, n in enumerate(names)]
    aff, img, lab = volume(labels, sides, direction=1)
    save_nifti(ds / "s0001" / "ct.nii.gz", img, aff)
    for value, name in labels:
        save_nifti(ds / "s0001" / "segmentations" / f"{name}.nii.gz", (lab == value).astype(np.uint8), aff)
    (ds / "meta.csv").write_text("image_id;age;gender;institute;study_type;split\ns0001;60;m;A;ct;train\n",
                                 encoding="utf-8-sig")
    return ds


def amos(entry, root, sides):
    ds = root / "amos22"
    cases = [("amos_0001", "Tr", "training", False), ("amos_0507", "Va", "validation", True)]
    meta = {"name": "AMOS", "modality": {"0": "CT"}, "labels": {"0": "background", **{str(v): n for v, n in entry.labels}},
            "training": [], "validation": [], "test": []}
    for i, (cid, tag, key, mr) in enumerate(cases):
        _pairs(entry, root, sides, ds / f"images{tag}" / f"{cid}.nii.gz", ds / f"labels{tag}" / f"{cid}.nii.gz",
               mr=mr, direction=i, seed=i)
        meta[key].append({"image": f"./images{tag}/{cid}.nii.gz", "label": f"./labels{tag}/{cid}.nii.gz"})
    (ds / "dataset.json").write_text(json.dumps(meta, indent=1))
    return ds


def btcv(entry, root, sides):
    raw = root / "BTCV" / "Abdomen" / "RawData"
    _pairs(entry, root, sides, raw / "Training" / "img" / "img0001.nii.gz", raw / "Training" / "label" / "label0001.nii.gz",
           direction=1)
    return root / "BTCV"


def word(entry, root, sides):
    ds = root / "WORD-V0.1.0"
    for tag, n in (("Tr", 1), ("Val", 101)):
        _pairs(entry, root, sides, ds / f"images{tag}" / f"word_{n:04d}.nii.gz", ds / f"labels{tag}" / f"word_{n:04d}.nii.gz",
               direction=n % 2)
    return ds


def flare22(entry, root, sides):
    ds = root / "FLARE22Train"
    _pairs(entry, root, sides, ds / "images" / "FLARE22_Tr_0001_0000.nii.gz", ds / "labels" / "FLARE22_Tr_0001.nii.gz")
    return ds


def abdomenct1k(entry, root, sides):
    ds = root / "AbdomenCT-1K"
    _pairs(entry, root, sides, ds / "Image" / "Case_00001_0000.nii.gz", ds / "Mask" / "Case_00001.nii.gz", direction=2)
    return ds


def kits(entry, root, sides):
    ds = root / entry.id
    sub = "dataset" if entry.id == "kits23" else "data"
    case = ds / sub / "case_00000"
    _pairs(entry, root, sides, case / "imaging.nii.gz", case / "segmentation.nii.gz", direction=1)
    return ds


def lits(entry, root, sides):
    if entry.id == "lits":
        folder = root / "LiTS" / "Training Batch 1"
        _pairs(entry, root, sides, folder / "volume-0.nii", folder / "segmentation-0.nii")
        return root / "LiTS"
    folder = root / "CT-ORG" / "OrganSegmentations"
    _pairs(entry, root, sides, folder / "volume-0.nii.gz", folder / "labels-0.nii.gz", direction=1)
    return root / "CT-ORG"


_MSD = {  # catalogue id → (folder, file prefix, dataset.json modality)
    "msd_task01_brain_tumour": ("Task01_BrainTumour", "BRATS", {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"}),
    "msd_task02_heart": ("Task02_Heart", "la", {"0": "MRI"}),
    "msd_task03_liver": ("Task03_Liver", "liver", {"0": "CT"}),
    "msd_task04_hippocampus": ("Task04_Hippocampus", "hippocampus", {"0": "MRI"}),
    "msd_task05_prostate": ("Task05_Prostate", "prostate", {"0": "T2", "1": "ADC"}),
    "msd_task06_lung": ("Task06_Lung", "lung", {"0": "CT"}),
    "msd_task07_pancreas": ("Task07_Pancreas", "pancreas", {"0": "CT"}),
    "msd_task08_hepatic_vessel": ("Task08_HepaticVessel", "hepaticvessel", {"0": "CT"}),
    "msd_task09_spleen": ("Task09_Spleen", "spleen", {"0": "CT"}),
    "msd_task10_colon": ("Task10_Colon", "colon", {"0": "CT"}),
}


def msd(entry, root, sides):
    folder, prefix, modality = _MSD[entry.id]
    ds = root / folder
    mr = modality["0"] != "CT"
    aff, img, lab = volume(numbered(entry), sides, direction=1, mr=mr)
    if len(modality) > 1:
        img = np.stack([img + 10 * c for c in range(len(modality))], axis=-1)
    save_nifti(ds / "imagesTr" / f"{prefix}_001.nii.gz", img, aff)
    save_nifti(ds / "labelsTr" / f"{prefix}_001.nii.gz", lab, aff)
    meta = {"name": folder.split("_", 1)[1], "modality": modality,
            "labels": {"0": "background", **{str(v): n for v, n in entry.labels}}, "numTraining": 1,
            "training": [{"image": f"./imagesTr/{prefix}_001.nii.gz", "label": f"./labelsTr/{prefix}_001.nii.gz"}],
            "test": []}
    (ds / "dataset.json").write_text(json.dumps(meta, indent=4))
    return ds


def segthor(entry, root, sides):
    p = root / "SegTHOR" / "train" / "Patient_01"
    _pairs(entry, root, sides, p / "Patient_01.nii.gz", p / "GT.nii.gz", direction=1)
    return root / "SegTHOR"


def hecktor(entry, root, sides):
    ds = root / "hecktor2022"
    aff, img, lab = volume(numbered(entry), sides)
    save_nifti(ds / "imagesTr" / "CHUM-001__CT.nii.gz", img, aff)
    save_nifti(ds / "imagesTr" / "CHUM-001__PT.nii.gz", np.abs(img).astype(np.float32), aff)
    save_nifti(ds / "labelsTr" / "CHUM-001.nii.gz", lab, aff)
    return ds


def brats(entry, root, sides):
    if entry.id == "brats2021":
        ds, cid, sep, seqs = root / "BraTS2021_Training_Data", "BraTS2021_00000", "_", ("flair", "t1", "t1ce", "t2")
    else:
        ds, cid, sep, seqs = (root / "ASNR-MICCAI-BraTS2023-GLI-Challenge-TrainingData", "BraTS-GLI-00000-000", "-",
                              ("t2f", "t1n", "t1c", "t2w"))
    aff, img, lab = volume(numbered(entry), sides, mr=True, direction=1)
    for i, s in enumerate(seqs):
        save_nifti(ds / cid / f"{cid}{sep}{s}.nii.gz", img + 5 * i, aff)
    save_nifti(ds / cid / f"{cid}{sep}seg.nii.gz", lab, aff)
    return ds


def acdc(entry, root, sides):
    p = root / "ACDC" / "database" / "training" / "patient001"
    for frame in (1, 12):
        _pairs(entry, root, sides, p / f"patient001_frame{frame:02d}.nii.gz", p / f"patient001_frame{frame:02d}_gt.nii.gz",
               mr=True, seed=frame)
    p.joinpath("Info.cfg").write_text("ED: 1\nES: 12\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n")
    return root / "ACDC"


def mnms(entry, root, sides):
    base = root / "MnMs" / "OpenDataset"
    p = base / "Training" / "Labeled" / "A0S9V9"
    aff, img, lab = volume(numbered(entry), sides, mr=True)
    frames = 3
    img4 = np.stack([img + t for t in range(frames)], axis=-1)
    lab4 = np.stack([lab if t in (0, 2) else np.zeros_like(lab) for t in range(frames)], axis=-1)
    save_nifti(p / "A0S9V9_sa.nii.gz", img4, aff)
    save_nifti(p / "A0S9V9_sa_gt.nii.gz", lab4, aff)
    (base / "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv").write_text(
        "External code,VendorName,Vendor,Centre,ED,ES\nA0S9V9,Siemens,A,1,0,2\n")
    return root / "MnMs"


def promise12(entry, root, sides):
    import SimpleITK as sitk

    d = root / "PROMISE12" / "TrainingData_Part1"
    d.mkdir(parents=True)
    aff, img, lab = volume(numbered(entry), sides, mr=True, direction=1)
    for arr, name in ((img, "Case00.mhd"), (lab, "Case00_segmentation.mhd")):
        im = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
        im.SetSpacing(SPACING)
        im.SetOrigin(tuple(aff[:3, 3]))
        im.SetDirection(tuple((aff[:3, :3] / np.asarray(SPACING)).ravel()))
        sitk.WriteImage(im, str(d / name))
    return root / "PROMISE12"


WRITERS_3D = {
    "amos22": amos, "btcv": btcv, "word": word, "flare22": flare22, "abdomenct1k": abdomenct1k, "kits23": kits,
    "kits19": kits, "lits": lits, "ct_org": lits, **dict.fromkeys(_MSD, msd), "segthor": segthor,
    "hecktor2022": hecktor, "brats2021": brats, "brats2023_gli": brats, "acdc": acdc, "mnms": mnms,
    "promise12": promise12, "msd_hippocampus": lambda e, root, s: make_msd_hippocampus(root),
}


def write(entry, root: Path, sides: dict, *, names: tuple[str, ...] = ()) -> Path:
    """Write the fixture of ``entry`` under ``root``; ``names`` picks TotalSegmentator's structures."""
    from catalog_layouts_2d import WRITERS_2D

    if entry.id == "totalsegmentator":
        return totalsegmentator(entry, root, sides, names)
    writer = WRITERS_3D.get(entry.id) or WRITERS_2D[entry.id]
    return writer(entry, root, sides)
