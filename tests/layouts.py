"""Fixture writers: tiny datasets in the real published layouts (for tests of sources and build).

Each ``make_X(root) -> Path`` writes a few cases under ``root`` with the real folder and file naming
and returns the dataset folder. Volumes are small (32 x 32 x 8) with ellipsoid "organs"; structures
named left/right lie on the patient's left/right (LPS ``+x`` is the patient's left) whatever the
direction matrix, which is non-identity for some cases. 2D images are 64 x 64 with blobs.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from PIL import Image

SHAPE = (32, 32, 8)
SPACING = (1.5, 1.5, 4.0)
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def lps_affine(direction: np.ndarray, spacing=SPACING, shape=SHAPE) -> np.ndarray:
    """4x4 voxel → LPS affine whose volume centre is at world (0, 0, 0)."""
    m = np.asarray(direction, float) @ np.diag(spacing)
    a = np.eye(4)
    a[:3, :3] = m
    a[:3, 3] = -m @ ((np.asarray(shape) - 1) / 2.0)
    return a


#: Direction matrices (columns = world direction of i, j, k): LPS identity, RAS-like (i → right,
#: j → anterior, as many NIfTI files are) and one with i/j swapped.
DIRECTIONS = (np.eye(3), np.diag([-1.0, -1.0, 1.0]), np.array([[0, 1, 0], [1, 0, 0], [0, 0, 1.0]]))


def save_nifti(path: Path, array: np.ndarray, affine_lps: np.ndarray) -> Path:
    """Write ``array`` (i, j, k[, C]) with an LPS affine as NIfTI (converted to NIfTI's RAS)."""
    ras = affine_lps.copy()
    ras[:3] = np.diag([-1.0, -1.0, 1.0, 1.0])[:3, :3] @ affine_lps[:3]
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(array), ras), str(path))
    return path


def ellipsoid(affine_lps: np.ndarray, centre_mm, radii_mm, shape=SHAPE) -> np.ndarray:
    """Boolean mask of an axis-aligned (world) ellipsoid given in LPS millimetres."""
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).astype(float)
    world = idx @ affine_lps[:3, :3].T + affine_lps[:3, 3]
    d = (world - np.asarray(centre_mm)) / np.asarray(radii_mm)
    return (d**2).sum(-1) <= 1.0


#: name → (LPS centre mm, radii mm). Patient's left is +x (LPS).
ORGANS = {
    "liver": ((-8.0, 6.0, 0.0), (8.0, 8.0, 10.0)),
    "spleen": ((14.0, 6.0, 0.0), (5.0, 6.0, 8.0)),
    "kidney_left": ((12.0, -12.0, 0.0), (4.0, 4.0, 8.0)),
    "kidney_right": ((-12.0, -12.0, 0.0), (4.0, 4.0, 8.0)),
}


def ct_volume(affine_lps: np.ndarray, organs: dict[str, np.ndarray], seed: int = 0) -> np.ndarray:
    """int16 'CT': air outside a body ellipse, soft tissue inside, organs brighter."""
    rng = np.random.default_rng(seed)
    vol = np.full(SHAPE, -1000, np.int16)
    vol[ellipsoid(affine_lps, (0, 0, 0), (22, 20, 100))] = 0
    for i, mask in enumerate(organs.values()):
        vol[mask] = 40 + 10 * i
    return (vol + rng.integers(-5, 5, SHAPE)).astype(np.int16)


def _organ_masks(affine: np.ndarray, names) -> dict[str, np.ndarray]:
    return {n: ellipsoid(affine, *ORGANS[n]) for n in names}


def blob_image(seed: int, centres: list[tuple[int, int, int]], size: int = 64) -> tuple[np.ndarray, list[np.ndarray]]:
    """RGB image with one disc per ``(row, col, radius)`` and the discs' boolean masks."""
    rng = np.random.default_rng(seed)
    img = rng.integers(40, 80, (size, size, 3), dtype=np.uint8)
    rr, cc = np.mgrid[:size, :size]
    masks = []
    for r, c, rad in centres:
        m = (rr - r) ** 2 + (cc - c) ** 2 <= rad**2
        img[m] = (200, 120, 90)
        masks.append(m)
    return img, masks


def save_png(path: Path, array: np.ndarray, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array)).save(path, format=fmt)
    return path


def _rgb_mask(mask: np.ndarray) -> np.ndarray:
    return np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=-1)


def make_nnunetv2(root: Path, *, n_cases: int = 3, channels: tuple[str, ...] = ("CT",), with_test: bool = True,
                  regions: bool = False, two_d: bool = False) -> Path:
    """``Dataset501_Fixture/`` with ``imagesTr/<case>_000X.nii.gz``, ``labelsTr``, ``imagesTs``.

    ``two_d=True`` writes an RGB PNG dataset (channel_names R, G, B; one packed file per case).
    ``regions=True`` writes region-based labels (BraTS style) instead of plain ones.
    """
    ds = Path(root) / ("Dataset502_Fixture2D" if two_d else "Dataset501_Fixture")
    ending = ".png" if two_d else ".nii.gz"
    if two_d:
        channels = ("R", "G", "B")
        labels: dict = {"background": 0, "polyp": 1}
    elif regions:
        labels = {"background": 0, "whole organ": [1, 2], "spleen core": [2]}
    else:
        labels = {"background": 0, "liver": 1, "spleen": 2}
    for n in range(n_cases + (1 if with_test else 0)):
        cid, folder = (f"case_{n:03d}", "imagesTr") if n < n_cases else (f"case_{n:03d}", "imagesTs")
        if two_d:
            img, masks = blob_image(n, [(20 + 5 * n, 30, 8)])
            save_png(ds / folder / f"{cid}_0000.png", img)
            if folder == "imagesTr":
                save_png(ds / "labelsTr" / f"{cid}.png", masks[0].astype(np.uint8))
            continue
        aff = lps_affine(DIRECTIONS[n % 2])
        organs = _organ_masks(aff, ["liver", "spleen"])
        ct = ct_volume(aff, organs, seed=n)
        for c in range(len(channels)):
            save_nifti(ds / folder / f"{cid}_{c:04d}.nii.gz", ct + 100 * c, aff)
        if folder == "imagesTr":
            lab = np.zeros(SHAPE, np.uint8)
            lab[organs["liver"]] = 1
            lab[organs["spleen"]] = 2
            save_nifti(ds / "labelsTr" / f"{cid}.nii.gz", lab, aff)
    meta = {"channel_names": {str(i): c for i, c in enumerate(channels)}, "labels": labels,
            "numTraining": n_cases, "file_ending": ending, "name": "Fixture"}
    if regions:
        meta["regions_class_order"] = [1, 2]
    (ds / "dataset.json").write_text(json.dumps(meta, indent=1))
    return ds


def make_msd(root: Path, *, n_cases: int = 3, multimodal: bool = False, junk: bool = True) -> Path:
    """``Task09_Spleen/`` (CT) or ``Task01_BrainTumour/`` (4D FLAIR/T1w/t1gd/T2w) in MSD naming,
    with one ``imagesTs`` case and macOS ``._`` junk files when ``junk``."""
    name, prefix = ("Task01_BrainTumour", "BRATS") if multimodal else ("Task09_Spleen", "spleen")
    ds = Path(root) / name
    modality = {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"} if multimodal else {"0": "CT"}
    labels = {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"} \
        if multimodal else {"0": "background", "1": "spleen"}
    training, test = [], []
    for n in range(n_cases + 1):
        cid = f"{prefix}_{n:03d}" if multimodal else f"{prefix}_{n}"
        aff = lps_affine(DIRECTIONS[2 if n == 0 else 1])
        organs = _organ_masks(aff, ["spleen", "liver"])
        img = ct_volume(aff, organs, seed=n)
        if multimodal:
            img = np.stack([img + 50 * c for c in range(4)], axis=-1).astype(np.float32)
        folder = "imagesTr" if n < n_cases else "imagesTs"
        save_nifti(ds / folder / f"{cid}.nii.gz", img, aff)
        if n == n_cases:
            test.append(f"./imagesTs/{cid}.nii.gz")
            continue
        lab = np.zeros(SHAPE, np.uint8)
        lab[organs["spleen"]] = 1
        if multimodal:
            lab[organs["liver"]] = 3
        save_nifti(ds / "labelsTr" / f"{cid}.nii.gz", lab, aff)
        training.append({"image": f"./imagesTr/{cid}.nii.gz", "label": f"./labelsTr/{cid}.nii.gz"})
        if junk:  # AppleDouble resource forks shipped in the real tarballs
            for sub in ("imagesTr", "labelsTr"):
                (ds / sub / f"._{cid}.nii.gz").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    meta = {"name": name.split("_", 1)[1], "description": "fixture", "tensorImageSize": "4D" if multimodal else "3D",
            "modality": modality, "labels": labels, "numTraining": n_cases, "numTest": 1,
            "training": training, "test": test}
    (ds / "dataset.json").write_text(json.dumps(meta, indent=4))
    return ds


TOTALSEG_STRUCTURES = ("brain", "kidney_cyst_left", "kidney_left", "kidney_right", "liver", "spleen")


def make_totalsegmentator(root: Path, *, n_cases: int = 3) -> Path:
    """``Totalsegmentator_dataset/s000N/{ct.nii.gz, segmentations/<structure>.nii.gz}`` + ``meta.csv``.

    ``kidney_cyst_left`` lies inside ``kidney_left`` (overlap → a second label map); ``brain`` is empty.
    """
    ds = Path(root) / "Totalsegmentator_dataset"
    splits = ("train", "val", "test")
    rows = ["image_id;age;gender;institute;study_type;split;manufacturer;scanner_model;kvp;pathology;"
            "pathology_location"]
    for n in range(n_cases):
        cid = f"s{n:04d}"
        aff = lps_affine(DIRECTIONS[n % 2])
        organs = _organ_masks(aff, ["liver", "spleen", "kidney_left", "kidney_right"])
        organs["kidney_cyst_left"] = ellipsoid(aff, (12.0, -12.0, 0.0), (2.0, 2.0, 4.0))
        organs["brain"] = np.zeros(SHAPE, bool)
        save_nifti(ds / cid / "ct.nii.gz", ct_volume(aff, organs, seed=n), aff)
        for s in TOTALSEG_STRUCTURES:
            save_nifti(ds / cid / "segmentations" / f"{s}.nii.gz", organs[s].astype(np.uint8), aff)
        rows.append(f"{cid};{60 + n};{'mf'[n % 2]};A;ct abdomen;{splits[n % 3]};Siemens;X;120;no_pathology;")
    (ds / "meta.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    return ds


def make_kvasir(root: Path, *, n_cases: int = 3) -> Path:
    """``Kvasir-SEG/{images,masks}/<id>.jpg`` (lossy JPEG masks) + ``kavsir_bboxes.json``."""
    ds = Path(root) / "Kvasir-SEG"
    boxes = {}
    for n in range(n_cases):
        cid = f"cju{n}qkwl35piu0993l0dewei{n}"
        img, masks = blob_image(n, [(30, 25 + 5 * n, 10)])
        save_png(ds / "images" / f"{cid}.jpg", img, "JPEG")
        save_png(ds / "masks" / f"{cid}.jpg", _rgb_mask(masks[0]), "JPEG")
        ys, xs = np.nonzero(masks[0])
        boxes[cid] = {"height": 64, "width": 64, "bbox": [
            {"label": "polyp", "xmin": int(xs.min()), "ymin": int(ys.min()),
             "xmax": int(xs.max()), "ymax": int(ys.max())}]}
    (ds / "kavsir_bboxes.json").write_text(json.dumps(boxes))
    return ds


def make_isic2018(root: Path, *, n_train: int = 3, n_val: int = 1, n_test: int = 1) -> Path:
    """``ISIC2018_Task1-2_<Split>_Input/ISIC_XXXXXXX.jpg`` + ``ISIC2018_Task1_<Split>_GroundTruth/
    ISIC_XXXXXXX_segmentation.png`` for Training and Validation; Test has inputs only."""
    ds = Path(root) / "ISIC2018"
    n = 0
    for split, count in (("Training", n_train), ("Validation", n_val), ("Test", n_test)):
        inp = ds / f"ISIC2018_Task1-2_{split}_Input"
        inp.mkdir(parents=True, exist_ok=True)
        for name in ("ATTRIBUTION.txt", "LICENSE.txt"):
            (inp / name).write_text("CC-BY-NC\n")
        for _ in range(count):
            img, masks = blob_image(n, [(32, 32, 14 + n)])
            save_png(inp / f"ISIC_{n:07d}.jpg", img, "JPEG")
            if split != "Test":
                save_png(ds / f"ISIC2018_Task1_{split}_GroundTruth" / f"ISIC_{n:07d}_segmentation.png",
                         masks[0].astype(np.uint8) * 255)
            n += 1
    return ds


def make_busi(root: Path) -> Path:
    """``Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (n).png`` with RGB ``_mask.png`` files;
    ``benign (2)`` has two lesions (``_mask.png`` + ``_mask_1.png``), ``normal (1)`` an empty mask."""
    ds = Path(root) / "Dataset_BUSI_with_GT"
    spec = {("benign", 1): [(20, 20, 6)], ("benign", 2): [(20, 20, 6), (44, 40, 8)],
            ("malignant", 1): [(32, 32, 10)], ("normal", 1): []}
    for (cls, n), blobs in spec.items():
        img, masks = blob_image(n, blobs)
        grey = np.repeat(img.mean(-1, keepdims=True).astype(np.uint8), 3, axis=-1)
        save_png(ds / cls / f"{cls} ({n}).png", grey)
        for i, m in enumerate(masks or [np.zeros((64, 64), bool)]):
            save_png(ds / cls / f"{cls} ({n})_mask{'' if i == 0 else f'_{i}'}.png", _rgb_mask(m))
    return ds


def make_coco(root: Path, *, modality: str | None = "PATH") -> Path:
    """``annotations/instances_{train,val}2017.json`` + ``{train,val}2017/<id>.jpg``.

    Train image 1: two overlapping polygons (nucleus) + an uncompressed-RLE crowd region; image 2:
    a compressed-RLE instance; image 3: no annotations. ``modality`` goes into ``info``.
    """
    from pycocotools import mask as mask_utils

    ds = Path(root) / "coco_fixture"
    cats = [{"id": 1, "name": "nucleus", "supercategory": "cell"},
            {"id": 7, "name": "gland", "supercategory": "tissue"}]
    sq = lambda x, y, s: [float(v) for v in (x, y, x + s, y, x + s, y + s, x, y + s)]  # noqa: E731
    disc = np.zeros((64, 64), np.uint8, order="F")
    disc[40:56, 8:24] = 1
    rle = mask_utils.encode(np.asfortranarray(disc))
    crowd = np.zeros(64 * 64, np.uint8)
    crowd[100:300] = 1  # column-major runs
    runs = [100, 200, 64 * 64 - 300]
    for split, ids in (("train2017", (1, 2, 3)), ("val2017", (4,))):
        images, anns = [], []
        for i in ids:
            fname = f"{i:012d}.jpg"
            save_png(ds / split / fname, blob_image(i, [(20, 20, 6)])[0], "JPEG")
            images.append({"id": i, "file_name": fname, "height": 64, "width": 64})
        if split == "train2017":
            anns = [
                {"id": 10, "image_id": 1, "category_id": 1, "segmentation": [sq(10, 10, 20)], "iscrowd": 0},
                {"id": 11, "image_id": 1, "category_id": 1, "segmentation": [sq(20, 20, 20)], "iscrowd": 0},
                {"id": 12, "image_id": 1, "category_id": 7, "segmentation": {"counts": runs, "size": [64, 64]},
                 "iscrowd": 1},
                {"id": 13, "image_id": 2, "category_id": 7,
                 "segmentation": {"counts": rle["counts"].decode(), "size": [64, 64]}, "iscrowd": 0},
            ]
        else:
            anns = [{"id": 20, "image_id": 4, "category_id": 1, "segmentation": [sq(5, 5, 10)], "iscrowd": 0}]
        info = {"description": "fixture", **({"modality": modality} if modality else {})}
        data = {"info": info, "images": images, "annotations": anns, "categories": cats}
        (ds / "annotations").mkdir(parents=True, exist_ok=True)
        (ds / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))
    return ds


def make_manifest(root: Path) -> Path:
    """``manifest_fixture/medglip_manifest.json``: one CT case with one label file, one MR case with
    two label files (two label maps, overlapping structures), one unlabeled case."""
    ds = Path(root) / "manifest_fixture"
    aff = lps_affine(DIRECTIONS[1])
    organs = _organ_masks(aff, ["liver", "spleen", "kidney_left"])
    save_nifti(ds / "ct1.nii.gz", ct_volume(aff, organs), aff)
    save_nifti(ds / "ct1_seg.nii.gz", (organs["liver"] + 2 * organs["spleen"]).astype(np.uint8), aff)
    save_nifti(ds / "mr1.nii.gz", ct_volume(aff, organs, seed=3) + 1000, aff)
    save_nifti(ds / "mr1_organs.nii.gz", organs["kidney_left"].astype(np.uint8), aff)
    save_nifti(ds / "mr1_lesion.nii.gz", ellipsoid(aff, (12.0, -12.0, 0.0), (2, 2, 4)).astype(np.uint8), aff)
    cases = [
        {"id": "ct1", "image": "ct1.nii.gz", "label": "ct1_seg.nii.gz", "labels": {"1": "liver", "2": "spleen"},
         "split": "train"},
        {"id": "mr1", "image": "mr1.nii.gz", "label": ["mr1_organs.nii.gz", "mr1_lesion.nii.gz"], "modality": "MRI",
         "labels": [{"1": "left kidney"}, {"1": "renal cyst"}], "split": "test"},
        {"id": "mr2", "image": "mr1.nii.gz", "modality": "MR"},
    ]
    manifest = {"medglip_manifest": 1, "name": "fixture", "modality": "CT", "license": "CC0", "cases": cases}
    (ds / "medglip_manifest.json").write_text(json.dumps(manifest, indent=1))
    return ds


__all__ = ["make_nnunetv2", "make_msd", "make_totalsegmentator", "make_kvasir", "make_isic2018", "make_busi",
           "make_coco", "make_manifest", "ellipsoid", "lps_affine", "save_nifti", "DIRECTIONS", "ORGANS"]
