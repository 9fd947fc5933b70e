"""The lesion data sets' adapters (LGG, MSD Task04 without dataset.json, PH2 diagnoses, ISIC 2017
diagnoses) on fixtures in their own layouts, the negative-image path of a tumour-free 2D slice
(build → training negatives → evaluation's absent pairs), and how their labels resolve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from layouts_lesions import (LGG_POST, LGG_PRE, LGG_SLICES, PH2_CASES, make_isic2017, make_lgg, make_msd_hippocampus,
                             make_ph2)
from PIL import Image

from medglip import sources as S
from medglip.dataset.config import BuildConfig
from medglip.dataset.process import CaseBuilder
from medglip.errors import CaseError
from medglip.ontology import coding_for, load_ontology

LGG_PHRASE = "lower-grade glioma"


def by_id(refs):
    return {r.case_id: r for r in refs}


@pytest.mark.parametrize("maker, layout", [
    (make_lgg, "lgg"), (make_msd_hippocampus, "msd_hippocampus"), (make_ph2, "ph2"), (make_isic2017, "isic2018")])
def test_detect_layout(tmp_path, maker, layout):
    assert S.detect_layout(maker(tmp_path)) == layout


# ------------------------------------------------------------------------------------------- LGG
def test_lgg_lists_slices_by_patient_in_numeric_order(tmp_path):
    root = make_lgg(tmp_path)
    refs = S.list_cases(root)
    assert [r.case_id for r in refs] == [f"{p}_{n}" for p, slices in LGG_SLICES.items() for n in sorted(slices)]
    assert refs[2].case_id.endswith("_10")  # _10 after _2, not between _1 and _2
    assert {(r.layout, r.modality, r.split) for r in refs} == {("lgg", "MR", None)}
    assert S.list_cases(root / "kaggle_3m")[0].case_id == refs[0].case_id  # the kaggle_3m folder itself too
    for r in refs:
        patient = r.case_id.rsplit("_", 1)[0]
        assert json.loads(r.option("meta"))["patient"] == patient


def test_lgg_loads_the_flair_channel_and_its_mask(tmp_path):
    refs = by_id(S.list_cases(make_lgg(tmp_path)))
    case = S.load_case(refs["TCGA_CS_4941_19960909_10"])
    assert case.image.shape == (32, 32) and case.image.dtype == np.uint8
    assert LGG_PRE not in np.unique(case.image) and LGG_POST not in np.unique(case.image)  # FLAIR, not a colour mix
    assert case.meta["patient"] == "TCGA_CS_4941_19960909" and case.meta["slice"] == 10
    assert case.labels[0].names == {1: "FLAIR abnormality"}
    r, c, radius = LGG_SLICES["TCGA_CS_4941_19960909"][10]
    rr, cc = np.mgrid[:32, :32]
    assert np.array_equal(case.labels[0].array == 1, (rr - r) ** 2 + (cc - c) ** 2 <= radius**2)  # 255 → label 1
    assert (case.image[case.labels[0].array == 1] == 200).all()
    assert not case.meta.get("no_finding") and not case.spacing_known
    free = S.load_case(refs["TCGA_CS_4941_19960909_1"])
    assert free.meta["no_finding"] is True
    assert free.labels[0].names == {1: "FLAIR abnormality"} and not free.labels[0].array.any()


def _builder(tmp_path: Path) -> CaseBuilder:
    return CaseBuilder(config=BuildConfig(source="x"), out_dir=tmp_path / "out", ontology=load_ontology())


def test_a_tumour_free_lgg_slice_builds_as_a_negative_image_with_its_absent_phrase(tmp_path):
    refs = by_id(S.list_cases(make_lgg(tmp_path)))
    build = _builder(tmp_path)
    rec = build(S.load_case(refs["TCGA_DU_7013_19860523_5"]), "lgg/free")
    [img] = rec["images"]
    assert img["negative"] and img["annotations"] == [] and img["absent"] == [LGG_PHRASE]
    assert rec["patient"] == "TCGA_DU_7013_19860523"
    assert [(lab["name"], lab["voxels"]) for lab in rec["labels"]] == [(LGG_PHRASE, 0)]
    assert (tmp_path / "out" / "images" / img["file_name"]).is_file()
    rec = build(S.load_case(refs["TCGA_DU_7013_19860523_3"]), "lgg/tumour")
    [img] = rec["images"]
    assert not img["negative"] and "absent" not in img
    assert [(a["phrase"], a["level"]) for a in img["annotations"]] == [(LGG_PHRASE, "lesion")]
    assert img["annotations"][0]["hierarchy"][-3:] == ["brain tumor", "glioma", LGG_PHRASE]


def test_an_empty_mask_of_a_layout_that_allows_no_negatives_still_fails(tmp_path):
    root = make_ph2(tmp_path)
    mask = root / "PH2 Dataset images" / "IMD020" / "IMD020_lesion" / "IMD020_lesion.bmp"
    Image.new("1", Image.open(mask).size).save(mask)
    case = S.load_case(by_id(S.list_cases(root))["IMD020"])
    assert not case.meta.get("no_finding")
    with pytest.raises(CaseError, match="empty mask"):
        _builder(tmp_path)(case, "ph2/IMD020")
    # a tumour-free LGG slice whose mask is not empty after all is a positive, not a negative
    lgg = make_lgg(tmp_path / "lgg")
    m = lgg / "kaggle_3m" / "TCGA_CS_4941_19960909" / "TCGA_CS_4941_19960909_1_mask.tif"
    import tifffile

    arr = tifffile.imread(m)
    arr[2:5, 2:5] = 255
    tifffile.imwrite(m, arr)
    case = S.load_case(by_id(S.list_cases(lgg))["TCGA_CS_4941_19960909_1"])
    assert not case.meta.get("no_finding") and case.labels[0].array.sum() == 9


def test_negative_slices_reach_training_and_evaluation_as_absent_phrases(tmp_path):
    from medglip.dataset import build
    from medglip.evaluate import plan_queries
    from medglip.evaluate.metrics import compute_metrics
    from medglip.modality import MODALITIES
    from medglip.train.data import GroundingDataset

    out = tmp_path / "out"
    res = build(BuildConfig(source=str(make_lgg(tmp_path)), split_ratios=(1.0, 0.0, 0.0)), out)
    assert not res.failed
    coco = json.loads((out / "annotations" / "train.json").read_text())
    negatives = [im for im in coco["images"] if im["negative"]]
    assert {im["case_id"] for im in negatives} == {"TCGA_CS_4941_19960909_1", "TCGA_DU_7013_19860523_5"}
    assert all(im["absent"] == [LGG_PHRASE] for im in negatives)
    assert len(coco["images"]) == 5 and {c["name"] for c in coco["categories"]} == {LGG_PHRASE}
    odvg = [json.loads(line) for line in (out / "annotations" / "train.odvg.jsonl").read_text().splitlines()]
    assert {o["grounding"]["caption"] for o in odvg if not o["grounding"]["regions"]} == {LGG_PHRASE + "."}

    # training: the negative image's prompt holds its absent phrase, and its case shows the head
    ds = GroundingDataset(out, "train", image_size=64, prompt_builder=lambda p: [], modalities=MODALITIES)
    neg = next(im for im in ds.images if im["negative"])
    own, _ = ds.known_absent(neg, set())
    assert own == [LGG_PHRASE]
    assert ds.case_regions[(neg["source"], neg["case_id"])] == {"head and neck"}

    # evaluation: the absent phrase is asked on the negative images, and a box there is a false positive
    plan = plan_queries(coco)
    neg_ids = [im["id"] for im in negatives]
    assert all(plan[i] == [LGG_PHRASE] for i in neg_ids)
    fp = [{"image_id": neg_ids[0], "phrase": LGG_PHRASE, "bbox": [1, 1, 8, 8], "score": 0.9}]
    metrics = compute_metrics(coco, fp, queries=plan, score_threshold=0.5)
    assert metrics["overall"]["n_absent"] == 2 and metrics["overall"]["n_absent_fp"] == 1
    assert metrics["overall"]["absent_fp_rate"] == 0.5


# ------------------------------------------------------------------------------ MSD hippocampus
def test_msd_hippocampus_without_dataset_json(tmp_path):
    root = make_msd_hippocampus(tmp_path)
    refs = S.list_cases(root)
    assert [(r.case_id, r.split, r.modality, r.layout) for r in refs] == [
        ("hippocampus_001", "train", "MR", "msd_hippocampus"), ("hippocampus_003", "train", "MR", "msd_hippocampus")]
    for ref in refs:
        case = S.load_case(ref)
        lab = case.labels[0]
        assert lab.names == {1: "Anterior", 2: "Posterior"} and np.issubdtype(lab.array.dtype, np.integer)
        assert (lab.array == 1).sum() == (lab.array == 2).sum() == 3 * 6 * 6
        assert case.meta["patient"] == ref.case_id and case.image.shape == (12, 14, 10)
    # a label value MSD does not name fails that case, naming the file
    import nibabel as nib

    p = root / "labelsTr" / "hippocampus_001.nii.gz"
    im = nib.load(p)
    arr = np.asarray(im.dataobj).copy()
    arr[0, 0, 0] = 3
    nib.save(nib.Nifti1Image(arr, im.affine), p)
    with pytest.raises(CaseError, match="hippocampus_001.nii.gz.*unknown label value 3"):
        S.load_case(refs[0])
    # with MSD's dataset.json the msd adapter (a more specific tier) reads it
    (root / "dataset.json").write_text(json.dumps({"modality": {"0": "MRI"}, "labels": {
        "0": "background", "1": "Anterior", "2": "Posterior"}, "training": [], "test": []}))
    assert S.detect_layout(root) == "msd"


# ------------------------------------------------------------------------------------------ PH2
@pytest.mark.parametrize("tables", [("tab",), ("pipe",), ("xlsx",), ("tab", "xlsx")])
def test_ph2_names_each_lesion_by_its_diagnosis(tmp_path, tables):
    refs = S.list_cases(make_ph2(tmp_path, tables=tables))
    want = {0: "common nevus", 1: "atypical nevus", 2: "melanoma"}
    assert {r.case_id: r.option("mask_names") for r in refs} == {
        case: (want[code],) for case, (code, _) in PH2_CASES.items()}  # IMD003 is in the tables, not on disk
    case = S.load_case(by_id(refs)["IMD063"])
    assert case.labels[0].names == {1: "melanoma"} and case.meta["diagnosis"] == "melanoma"
    r, c, radius = PH2_CASES["IMD063"][1]
    rr, cc = np.mgrid[:64, :64]
    assert np.array_equal(case.labels[0].array == 1, (rr - r) ** 2 + (cc - c) ** 2 <= radius**2)  # 1-bit mask


def test_ph2_without_tables_keeps_lesion_and_reads_24_bit_masks(tmp_path):
    root = make_ph2(tmp_path, tables=())
    mask = root / "PH2 Dataset images" / "IMD002" / "IMD002_lesion" / "IMD002_lesion.bmp"
    Image.open(mask).convert("RGB").save(mask)  # other mirrors: 24-bit 0 / 255
    refs = by_id(S.list_cases(root))
    assert {r.option("mask_names") for r in refs.values()} == {("lesion",)}
    case = S.load_case(refs["IMD002"])
    assert case.labels[0].names == {1: "lesion"} and "diagnosis" not in case.meta
    r, c, radius = PH2_CASES["IMD002"][1]
    assert case.labels[0].array.sum() == int(((np.mgrid[:64, :64][0] - r) ** 2 + (np.mgrid[:64, :64][1] - c) ** 2
                                              <= radius**2).sum())


# ------------------------------------------------------------------------------------- ISIC 2017
def test_isic2017_names_each_lesion_by_its_part3_diagnosis(tmp_path):
    root = make_isic2017(tmp_path)
    refs = by_id(S.list_cases(root))
    assert {k: (r.split, r.option("mask_names")) for k, r in refs.items()} == {
        "ISIC_0000000": ("train", ("skin lesion",)),  # no Part 3 CSV for Training here
        "ISIC_0012434": ("val", ("melanoma",)), "ISIC_0013793": ("val", ("nevus",)),
        "ISIC_0014608": ("val", ("seborrheic keratosis",))}
    case = S.load_case(refs["ISIC_0014608"])
    assert case.labels[0].names == {1: "seborrheic keratosis"} and case.meta["diagnosis"] == "seborrheic keratosis"
    assert case.labels[0].array.sum() > 100 and case.modality == "DERM" and case.source == "ISIC2017"
    csv = root / "ISIC-2017_Validation_Part3_GroundTruth.csv"
    csv.write_text(csv.read_text().replace("ISIC_0013793,0.0,0.0", "ISIC_0013793,1.0,1.0"))
    refs = by_id(S.list_cases(root))
    with pytest.raises(CaseError, match="ISIC_0013793 has melanoma='1.0', seborrheic_keratosis='1.0'"):
        S.load_case(refs["ISIC_0013793"])
    assert S.load_case(refs["ISIC_0012434"]).labels[0].names == {1: "melanoma"}  # only that case fails


# -------------------------------------------------------------------------------------- ontology
@pytest.mark.parametrize("source, modality, name, phrase, ancestors", [
    ("lgg-mri", "MR", "FLAIR abnormality", LGG_PHRASE, ("brain", "brain tumor", "glioma")),
    ("kaggle_3m", "MR", "FLAIR abnormality", LGG_PHRASE, ("brain", "brain tumor", "glioma")),
    ("lgg_mri", "MR", "FLAIR abnormality", LGG_PHRASE, ("brain tumor", "glioma")),
    (None, "MR", "low grade glioma", LGG_PHRASE, ("brain tumor", "glioma")),
    (None, "MR", "glioma", "glioma", ("brain", "brain tumor")),
    ("msd-hippocampus", "MR", "Anterior", "anterior hippocampus", ("brain", "hippocampus")),
    ("msd_hippocampus", "MR", "Posterior", "posterior hippocampus", ("brain", "hippocampus")),
    ("ph2-dermoscopy", "DERM", "common nevus", "common nevus", ("skin lesion", "nevus")),
    ("ph2", "DERM", "atypical nevus", "atypical nevus", ("skin lesion", "nevus")),
    ("ph2-dermoscopy", "DERM", "melanoma", "melanoma", ("skin lesion",)),
    ("ph2-dermoscopy", "DERM", "lesion", "skin lesion", ("skin",)),
    ("ISIC2017", "DERM", "nevus", "nevus", ("skin lesion",)),
    ("ISIC2017", "DERM", "seborrheic keratosis", "seborrheic keratosis", ("skin lesion",)),
    (None, "DERM", "dysplastic nevus", "atypical nevus", ("nevus",)),
])
def test_new_labels_resolve_to_their_terms(source, modality, name, phrase, ancestors):
    r = load_ontology().resolve(name, source=source, modality=modality, context=(name,))
    assert r.mapped and r.phrase == phrase and r.hierarchy[-1] == phrase
    assert r.level == ("substructure" if "hippocampus" in phrase else "lesion")
    assert set(ancestors) <= set(r.hierarchy[:-1]), r.hierarchy


def test_flair_abnormality_is_a_glioma_only_in_lgg_sources_and_gliomas_are_coded_as_brain_tumours():
    onto = load_ontology()
    assert onto.resolve("FLAIR abnormality", source="MS lesions", modality="MR").phrase != LGG_PHRASE
    assert onto.resolve("glioma").parent == "brain tumor" and onto.resolve("lower-grade glioma").parent == "glioma"
    c = coding_for(onto, LGG_PHRASE)
    assert (c.how, c.type.meaning, c.anatomy.meaning) == ("kind", "Tumor", "Brain")
    # no SNOMED code the DICOM dictionary confirms: a lesion in the skin, a local code in the hippocampus
    c = coding_for(onto, "atypical nevus")
    assert (c.how, c.type.meaning, c.anatomy.meaning) == ("kind", "Lesion", "Skin")
    c = coding_for(onto, "anterior hippocampus")
    assert (c.how, c.type.scheme, c.anatomy.meaning) == ("local", "99MEDGLIP", "Hippocampus")


def test_catalogue_scan_identifies_the_lesion_folders_by_their_names_or_contents(tmp_path):
    from medglip.catalog.scan import scan

    data = tmp_path / "data"
    for maker in (make_lgg, make_msd_hippocampus, make_ph2, make_isic2017):
        maker(data)
    hits = {h.path.name: (h.layout, h.entry.id if h.entry else None) for h in scan(data)}
    assert hits == {"lgg-mri": ("lgg", "lgg_mri"), "msd-hippocampus": ("msd_hippocampus", "msd_hippocampus"),
                    "ph2-dermoscopy": ("ph2", "ph2"), "isic-dermoscopy": ("isic2018", "isic2017")}
