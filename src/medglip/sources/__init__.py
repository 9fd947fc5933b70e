"""Dataset layout adapters: one module per public layout, all yielding :class:`medglip.case.Case`.

Each module defines ``NAME``, ``detect(root) -> bool`` (cheap: names and small JSON only),
``list_cases(root, *, modality=None) -> list[CaseRef]`` (no pixels; sorted by case id) and
``load_case(ref) -> Case`` (reads pixels; runs in a worker; the case is validated).

Errors: listing raises :class:`LayoutError` only when the dataset as a whole cannot be listed
(no dataset.json, invalid JSON, missing required keys, unknown modality). Per-case problems (a
missing image or label file, an unreadable file, a shape/geometry mismatch, a label value the dataset
does not name) are raised by ``load_case`` as :class:`ReadError`/:class:`CaseError` naming the file,
so a build can report them and carry on.

>>> refs = list_cases("Task09_Spleen")           # doctest: +SKIP
>>> case = load_case(refs[0])                    # doctest: +SKIP
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

from ..case import Case, CaseRef
from ..errors import LayoutError
from . import (acdc, amos, brats, btcv, busi, camus, chaos, coco, flare, glas, hecktor, isic2018, jsrt, kits, kvasir,
               lits, manifest, mnms, montgomery, monuseg, msd, nnunetv2, ph2, promise12, segthor, shenzhen, siim,
               tn3k, totalsegmentator, word)
from . import lgg, msd_hippocampus
from . import covid_infnet, lidc_pylidc, msd_lung_slices

log = logging.getLogger(__name__)

#: Layout name → adapter module.
LAYOUTS: dict[str, ModuleType] = {m.NAME: m for m in (
    manifest, nnunetv2, msd, totalsegmentator, isic2018, busi, kvasir, coco,
    amos, word, btcv, flare, kits, lits, segthor, chaos, brats, acdc, mnms, promise12, hecktor,
    jsrt, montgomery, shenzhen, siim, camus, tn3k, ph2, monuseg, glas, lgg, msd_hippocampus,
    covid_infnet, msd_lung_slices, lidc_pylidc)}

#: Detection tiers, most specific first: an explicit medglip manifest beats a named data set that
#: also ships an MSD-style dataset.json (AMOS, WORD), which beats a generic dataset.json layout,
#: which beats a folder-structure layout, which beats a generic COCO JSON. Two matches in the
#: same tier are ambiguous.
TIERS: tuple[tuple[str, ...], ...] = (
    ("manifest",), ("amos", "word"), ("nnunetv2", "msd"),
    ("totalsegmentator", "isic2018", "busi", "kvasir", "btcv", "flare", "kits", "lits", "segthor", "chaos",
     "brats", "acdc", "mnms", "promise12", "hecktor", "jsrt", "montgomery", "shenzhen", "siim", "camus", "tn3k",
     "ph2", "monuseg", "glas", "lgg", "msd_hippocampus", "covid_infnet", "msd_lung_slices", "lidc_pylidc"),
    ("coco",))

_LOOKED_FOR = {
    "manifest": "medglip_manifest.json (or manifest.json with 'medglip_manifest')",
    "nnunetv2": "dataset.json with channel_names/file_ending + imagesTr/labelsTr (nnU-Net v2)",
    "msd": "dataset.json with modality/training (Medical Segmentation Decathlon)",
    "totalsegmentator": "<case>/ct.nii.gz + <case>/segmentations/ (TotalSegmentator)",
    "isic2018": "ISIC2018_Task1-2_<Split>_Input + ISIC2018_Task1_<Split>_GroundTruth, or ISIC-2017_<Split>_Data + "
                "ISIC-2017_<Split>_Part1_GroundTruth (+ _Part3_GroundTruth.csv diagnoses)",
    "busi": "benign/ malignant/ normal/ with *_mask.png (BUSI)",
    "kvasir": "images/ + masks/ with kavsir_bboxes.json (Kvasir-SEG) or Original/ + Ground Truth/ (CVC-ClinicDB)",
    "amos": "dataset.json naming AMOS or imagesTr/amos_*.nii.gz (AMOS 2022)",
    "word": "imagesTr/word_*.nii.gz + imagesVal/ + labelsVal/ (WORD)",
    "btcv": "RawData/Training/img/imgNNNN.nii.gz + label/ (BTCV)",
    "flare": "images/ + labels/ (FLARE22) or Image/ + Mask/ (AbdomenCT-1K) with <case>_0000.nii.gz",
    "kits": "case_XXXXX/imaging.nii.gz + segmentation.nii.gz (KiTS)",
    "lits": "volume-N.nii + segmentation-N.nii (LiTS) or labels-N.nii.gz (CT-ORG)",
    "segthor": "Patient_XX/Patient_XX.nii.gz + GT.nii.gz (SegTHOR)",
    "chaos": "CT/<patient>/DICOM_anon + Ground/*.png, MR/<patient>/T1DUAL|T2SPIR/... (CHAOS)",
    "brats": "BraTS*/<case>_flair|-t2f.nii.gz ... + seg (BraTS)",
    "acdc": "patientXXX/patientXXX_frameNN_gt.nii.gz + Info.cfg (ACDC)",
    "mnms": "Training/Labeled/<code>/<code>_sa_gt.nii.gz (M&Ms)",
    "promise12": "CaseNN.mhd + CaseNN_segmentation.mhd (PROMISE12)",
    "hecktor": "imagesTr/<case>__CT.nii.gz + labelsTr/<case>.nii.gz (HECKTOR 2022)",
    "jsrt": "All247images/*.IMG + SCR masks/<structure>/*.gif (JSRT + SCR)",
    "montgomery": "CXR_png/MCUCXR_*.png + ManualMask/leftMask|rightMask (Montgomery)",
    "shenzhen": "CXR_png/CHNCXR_*.png + mask/<id>_mask.png (Shenzhen)",
    "siim": "train-rle.csv + dicom-images-train/**/*.dcm (SIIM-ACR pneumothorax)",
    "camus": "patientNNNN/patientNNNN_2CH_ED_gt.mhd|.nii.gz (CAMUS)",
    "tn3k": "trainval-image/ + trainval-mask/ (TN3K)",
    "ph2": "IMDnnn/IMDnnn_Dermoscopic_Image + IMDnnn_lesion (+ PH2_dataset.txt diagnoses) (PH2)",
    "lgg": "kaggle_3m/TCGA_<inst>_<id>_<date>/<patient>_<n>.tif + <patient>_<n>_mask.tif (LGG, Buda et al.)",
    "msd_hippocampus": "imagesTr/hippocampus_*.nii.gz + labelsTr/ without dataset.json (MSD Task04 Hippocampus)",
    "covid_infnet": "TrainingSet/LungInfection-Train/Doctor-label/{Imgs,GT} + TestingSet/LungInfection-Test "
                    "(MedSeg COVID-19 CT, Inf-Net layout)",
    "msd_lung_slices": "images/1NNNN_<z>.jpg + masks/1NNNN_<z>.jpg (MSD Task06 lung tumour JPEG slices)",
    "lidc_pylidc": "Image/LIDC-IDRI-PPPP/PPPP_NInnn_slicesss.npy + Mask/ (LIDC-IDRI, pylidc preprocessing)",
    "monuseg": "Tissue Images/*.tif + Annotations/*.xml (MoNuSeg)",
    "glas": "train_N.bmp + train_N_anno.bmp + Grade.csv (GlaS)",
    "coco": "annotations/instances_<split>.json or a COCO *.json",
}


def detect_layout(root: str | Path) -> str:
    """Name of the layout of the dataset folder ``root`` (the most specific one that matches).

    Raises:
        LayoutError: ``root`` is not a folder, nothing matches (the message lists what was looked
            for), or two layouts of the same specificity match (pass ``layout=`` to choose).
    """
    root = Path(root)
    if not root.is_dir():
        raise LayoutError(f"{root}: not a folder")
    matches = [name for name, mod in LAYOUTS.items() if mod.detect(root)]
    for tier in TIERS:
        hits = [n for n in tier if n in matches]
        if len(hits) == 1:
            if len(matches) > 1:
                log.info("%s: layouts %s match; using the most specific, %s", root, matches, hits[0])
            return hits[0]
        if len(hits) > 1:
            raise LayoutError(f"{root}: ambiguous layout, matches {', '.join(hits)}; pass --layout NAME "
                              "(layout= in Python) to choose")
    looked = "\n".join(f"  - {name}: {what}" for name, what in _LOOKED_FOR.items())
    raise LayoutError(f"{root}: no known dataset layout found; pass --layout NAME (layout= in Python; `medglip "
                      "catalog` names each data set's) or list the cases in a medglip_manifest.json "
                      f"(docs/datasets.md#your-own-data-a-manifest); looked for:\n{looked}")


def get_layout(name: str) -> ModuleType:
    """The adapter module called ``name`` (raises :class:`LayoutError` listing the known ones)."""
    try:
        return LAYOUTS[name]
    except KeyError:
        raise LayoutError(f"unknown layout {name!r}; known layouts: {', '.join(LAYOUTS)}") from None


def list_cases(root: str | Path, layout: str = "auto", *, modality: str | None = None) -> list[CaseRef]:
    """List the cases of a dataset folder without reading pixels.

    Args:
        root: the dataset folder (e.g. ``Dataset003_Liver``, ``Task09_Spleen``, ``Kvasir-SEG``).
        layout: an adapter name from :data:`LAYOUTS`, or ``"auto"`` to detect it.
        modality: the imaging modality (any alias); overrides what the layout says. Required when
            the layout cannot tell (nnU-Net ``noNorm`` channels, COCO without ``modality``).
    """
    root = Path(root)
    name = detect_layout(root) if layout == "auto" else layout
    refs = get_layout(name).list_cases(root, modality=modality)
    log.info("%s: %d cases (%s layout)", root, len(refs), name)
    return refs


def load_case(ref: CaseRef) -> Case:
    """Read one listed case with the adapter named by ``ref.layout``."""
    return get_layout(ref.layout).load_case(ref)


__all__ = ["LAYOUTS", "TIERS", "detect_layout", "get_layout", "list_cases", "load_case"]
