"""Fixture writers for the lesion data sets' own layouts: LGG (kaggle_3m TIFFs), MSD Task04 Hippocampus
without dataset.json, PH2 (1-bit BMP masks + diagnosis tables) and ISIC 2017 (Part 1 masks + Part 3 CSV).

Each ``make_X(root) -> Path`` writes a few tiny cases with the real folder and file naming (and the
traps the real copies have: deflate + predictor TIFFs, 0/255 masks, CRLF tables, "1.0" floats,
float label volumes, truncated legend lines) and returns the data set folder. Never reads real data.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from layouts import DIRECTIONS, blob_image, lps_affine, save_nifti, save_png
from PIL import Image

#: LGG fixture: patient → {slice number: tumour disc (row, col, radius) or None for a tumour-free slice}.
LGG_SLICES: dict[str, dict[int, tuple[int, int, int] | None]] = {
    "TCGA_CS_4941_19960909": {1: None, 2: (12, 10, 4), 10: (14, 12, 5)},
    "TCGA_DU_7013_19860523": {3: (20, 20, 3), 5: None},
}
LGG_SIZE = 32
#: The constant value of the pre-contrast and post-contrast channels (FLAIR is the varying one).
LGG_PRE, LGG_POST = 11, 222


def make_lgg(root: Path) -> Path:
    """``lgg-mri/kaggle_3m/<patient>/<patient>_<n>.tif`` (H, W, 3: pre-contrast, FLAIR, post-contrast)
    + ``<patient>_<n>_mask.tif`` (0 / 255), written as the real copy is (deflate + horizontal predictor),
    with ``data.csv`` and ``README.md`` beside the patient folders. Returns ``lgg-mri``."""
    import tifffile

    ds = Path(root) / "lgg-mri"
    base = ds / "kaggle_3m"
    rr, cc = np.mgrid[:LGG_SIZE, :LGG_SIZE]
    rows = ["Patient,RNASeqCluster,death01"]
    for p, (patient, slices) in enumerate(LGG_SLICES.items()):
        (base / patient).mkdir(parents=True)
        rows.append(f"{patient.rsplit('_', 1)[0]},{p + 1},")
        for n, disc in slices.items():
            flair = np.random.default_rng(n).integers(20, 90, (LGG_SIZE, LGG_SIZE)).astype(np.uint8)
            mask = np.zeros((LGG_SIZE, LGG_SIZE), np.uint8)
            if disc is not None:
                r, c, radius = disc
                mask[(rr - r) ** 2 + (cc - c) ** 2 <= radius**2] = 255
                flair[mask > 0] = 200
            image = np.stack([np.full_like(flair, LGG_PRE), flair, np.full_like(flair, LGG_POST)], axis=-1)
            for arr, name, photometric in ((image, f"{patient}_{n}.tif", "rgb"),
                                           (mask, f"{patient}_{n}_mask.tif", "minisblack")):
                tifffile.imwrite(base / patient / name, arr, photometric=photometric, compression="zlib",
                                 predictor=True)
    (base / "data.csv").write_text("\n".join(rows) + "\n")
    (base / "README.md").write_text("# LGG Segmentation Dataset\n")
    return ds


def make_msd_hippocampus(root: Path) -> Path:
    """``msd-hippocampus/{imagesTr,labelsTr}/hippocampus_NNN.nii.gz`` and no dataset.json: case 001 a
    uint8 image, 003 a float32 image whose label is stored as float32 (as hippocampus_243 is)."""
    ds = Path(root) / "msd-hippocampus"
    shape = (12, 14, 10)
    aff = lps_affine(DIRECTIONS[1], (1.0, 1.0, 1.0), shape)
    for cid, img_dtype, lab_dtype in (("hippocampus_001", np.uint8, np.uint8),
                                     ("hippocampus_003", np.float32, np.float32)):
        lab = np.zeros(shape, lab_dtype)
        lab[3:6, 4:10, 2:8] = 1   # anterior (head)
        lab[6:9, 4:10, 2:8] = 2   # posterior (body / tail)
        img = np.where(lab > 0, 120, 40).astype(img_dtype)
        save_nifti(ds / "imagesTr" / f"{cid}.nii.gz", img, aff)
        save_nifti(ds / "labelsTr" / f"{cid}.nii.gz", lab, aff)
    return ds


#: PH2 fixture: case → (clinical diagnosis code, lesion disc). IMD003 is listed by the tables only.
PH2_CASES: dict[str, tuple[int, tuple[int, int, int]]] = {
    "IMD002": (1, (30, 32, 12)), "IMD020": (0, (32, 30, 9)), "IMD063": (2, (33, 33, 20)),
}


def _ph2_txt(style: str) -> str:
    rows = dict(PH2_CASES, IMD003=(0, (0, 0, 0)))
    if style == "tab":  # the reduced copy: tab-separated, CRLF, a legend truncated to "gends f"
        body = [f"{case}\t{code}\t0" for case, (code, _) in sorted(rows.items())]
        return "\r\n".join(["Name\tClinical Diagnosis\tAsymmetry", *body, "\t\t", "gends f\t\t", "0 - Co\t\t",
                            "2 - Me\t\t"]) + "\r\n"
    # the original archive's table: '||'-separated, the histological diagnosis (often empty) first
    body = [f"|| {case} ||  {'Melanoma' if code == 2 else ''}  ||  {code}  ||  0 |  T  |  A ||  3 ||"
            for case, (code, _) in sorted(rows.items())]
    header = "|| Name || Histological Diagnosis || Clinical Diagnosis || Asymmetry | Pigment Network || Colors ||"
    return "\n".join([header, *body, "", "Legends:", "0 - Common Nevus"]) + "\n"


def _ph2_xlsx(path: Path) -> None:
    """A minimal PH2_dataset.xlsx as the original lays it out: legend rows first, then a header row
    with Common Nevus / Atypical Nevus / Melanoma columns (C, D, E) holding an "X" (shared strings)."""
    strings = ["Legends", "Image Name", "Histological Diagnosis", "Common Nevus", "Atypical Nevus", "Melanoma", "X"]
    rows = [[("F", 0)], [("A", 1), ("B", 2), ("C", 3), ("D", 4), ("E", 5)]]
    for case, (code, _) in sorted(dict(PH2_CASES, IMD003=(0, ())).items()):
        strings.append(case)
        rows.append([("A", len(strings) - 1), ("CDE"[code], 6)])
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    sst = f'<sst {ns}>' + "".join(f"<si><t>{s}</t></si>" for s in strings) + "</sst>"
    data = "".join(f'<row r="{i}">' + "".join(f'<c r="{col}{i}" t="s"><v>{v}</v></c>' for col, v in row) + "</row>"
                   for i, row in enumerate(rows, start=1))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("xl/sharedStrings.xml", sst)
        z.writestr("xl/worksheets/sheet1.xml", f"<worksheet {ns}><sheetData>{data}</sheetData></worksheet>")


def make_ph2(root: Path, *, tables: tuple[str, ...] = ("tab", "xlsx")) -> Path:
    """``ph2-dermoscopy/PH2 Dataset images/IMDnnn/{IMDnnn_Dermoscopic_Image/IMDnnn.bmp,
    IMDnnn_lesion/IMDnnn_lesion.bmp}`` (24-bit images, 1-bit masks) and the diagnosis tables named in
    ``tables``: ``"tab"`` / ``"pipe"`` (PH2_dataset.txt) and ``"xlsx"`` (PH2_dataset.xlsx)."""
    ds = Path(root) / "ph2-dermoscopy"
    for i, (case, (_, disc)) in enumerate(PH2_CASES.items()):
        d = ds / "PH2 Dataset images" / case
        img, masks = blob_image(i, [disc])
        save_png(d / f"{case}_Dermoscopic_Image" / f"{case}.bmp", img, "BMP")
        (d / f"{case}_lesion").mkdir(parents=True)
        Image.fromarray(masks[0]).convert("1").save(d / f"{case}_lesion" / f"{case}_lesion.bmp")
    for style in tables:
        if style == "xlsx":
            _ph2_xlsx(ds / "PH2_dataset.xlsx")
        else:
            (ds / "PH2_dataset.txt").write_bytes(_ph2_txt(style).encode())
    return ds


#: ISIC 2017 validation fixture: image id → (melanoma, seborrheic_keratosis) as the CSV writes them.
ISIC2017_CASES: dict[str, tuple[str, str]] = {
    "ISIC_0012434": ("1.0", "0.0"), "ISIC_0013793": ("0.0", "0.0"), "ISIC_0014608": ("0.0", "1.0"),
}


def make_isic2017(root: Path, *, training: bool = True) -> Path:
    """``ISIC-2017_Validation_Data/ISIC_x.jpg`` + ``ISIC-2017_Validation_Part1_GroundTruth/
    ISIC_x_segmentation.png`` (0 / 255) + ``ISIC-2017_Validation_Part3_GroundTruth.csv`` (CRLF, "1.0");
    with ``training`` also one Training image and mask without a Part 3 CSV."""
    ds = Path(root) / "isic-dermoscopy"
    splits = [("Validation", list(ISIC2017_CASES))] + ([("Training", ["ISIC_0000000"])] if training else [])
    for split, ids in splits:
        for i, cid in enumerate(ids):
            img, masks = blob_image(i + 7, [(32, 30, 8 + 2 * i)])
            save_png(ds / f"ISIC-2017_{split}_Data" / f"{cid}.jpg", img, "JPEG")
            save_png(ds / f"ISIC-2017_{split}_Part1_GroundTruth" / f"{cid}_segmentation.png",
                     masks[0].astype(np.uint8) * 255)
    rows = ["image_id,melanoma,seborrheic_keratosis"] + [f"{c},{m},{s}" for c, (m, s) in ISIC2017_CASES.items()]
    (ds / "ISIC-2017_Validation_Part3_GroundTruth.csv").write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return ds
