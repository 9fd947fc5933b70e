"""Tests of the dataset layout adapters (medglip.sources) on fixtures in the real layouts."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from layouts import (make_busi, make_coco, make_isic2018, make_kvasir, make_manifest, make_msd, make_nnunetv2,
                     make_totalsegmentator, save_png)
from PIL import Image

from medglip import sources as S
from medglip.errors import CaseError, LayoutError, ReadError

SAMPLES = Path(S.__file__).resolve().parent.parent / "samples" / "pyradiomics"


def world_x(case, value: int, lm: int = 0) -> float:
    """LPS x (mm) of the centroid of ``value`` in label map ``lm`` (> 0: patient's left)."""
    idx = np.argwhere(case.labels[lm].array == value).mean(0)
    return float(case.geometry.index_to_world(idx)[0])


def by_id(refs):
    return {r.case_id: r for r in refs}


@pytest.mark.parametrize("maker, kwargs, layout", [
    (make_nnunetv2, {}, "nnunetv2"), (make_nnunetv2, {"two_d": True}, "nnunetv2"), (make_msd, {}, "msd"),
    (make_msd, {"multimodal": True}, "msd"), (make_totalsegmentator, {}, "totalsegmentator"),
    (make_kvasir, {}, "kvasir"), (make_isic2018, {}, "isic2018"), (make_busi, {}, "busi"), (make_coco, {}, "coco"),
    (make_manifest, {}, "manifest"),
])
def test_detect_layout(tmp_path, maker, kwargs, layout):
    assert S.detect_layout(maker(tmp_path, **kwargs)) == layout


def test_detect_real_samples_and_load():
    assert S.detect_layout(SAMPLES) == "manifest"
    refs = S.list_cases(SAMPLES)
    assert [r.case_id for r in refs] == ["brain1", "brain2", "breast1"]
    assert [r.split for r in refs] == [None, "test", None]
    brain = S.load_case(refs[0])
    assert brain.modality == "MR" and brain.image.shape == (256, 256, 25)
    assert brain.labels[0].names == {1: "brain tumor"} and brain.labels[0].array.any()
    assert S.load_case(refs[2]).labels[0].names == {1: "breast lesion"}


def test_detect_nothing_lists_what_was_looked_for(tmp_path):
    (tmp_path / "random.txt").write_text("x")
    with pytest.raises(LayoutError, match="looked for") as err:
        S.detect_layout(tmp_path)
    assert "imagesTr" in str(err.value) and "kavsir_bboxes.json" in str(err.value)


def test_detect_prefers_specific_and_reports_ambiguity(tmp_path):
    coco = make_coco(tmp_path)
    shutil.copy(make_manifest(tmp_path / "m") / "medglip_manifest.json", coco / "medglip_manifest.json")
    assert S.detect_layout(coco) == "manifest"
    busi = make_busi(tmp_path)
    (busi / "Original").mkdir()
    (busi / "Ground Truth").mkdir()
    with pytest.raises(LayoutError, match="ambiguous.*busi.*kvasir"):
        S.detect_layout(busi)
    assert S.list_cases(busi, layout="busi")
    with pytest.raises(LayoutError, match="unknown layout"):
        S.list_cases(busi, layout="nope")


def test_nnunetv2_listing_and_laterality(tmp_path):
    refs = S.list_cases(make_nnunetv2(tmp_path))
    assert [(r.case_id, r.split, r.modality) for r in refs] == [
        ("case_000", "train", "CT"), ("case_001", "train", "CT"), ("case_002", "train", "CT"),
        ("case_003", "test", "CT")]
    assert refs[-1].label_paths == () and refs[0].source == "Dataset501_Fixture"
    assert pickle.loads(pickle.dumps(refs[0])) == refs[0] and hash(refs[0])
    for ref in refs[:2]:  # case_000: LPS identity; case_001: RAS-like direction
        case = S.load_case(ref)
        assert case.image.shape == (32, 32, 8) and case.channel_names == ()
        assert case.labels[0].names == {1: "liver", 2: "spleen"}
        assert world_x(case, 2) > 5 > -5 > world_x(case, 1)  # spleen on the patient's left, liver right
    assert S.load_case(refs[-1]).labels == []
    assert S.list_cases(refs[0].image_paths[0].parent.parent, modality="mri")[0].modality == "MR"


def test_nnunetv2_multichannel_and_regions(tmp_path):
    refs = S.list_cases(make_nnunetv2(tmp_path, channels=("T2", "ADC"), regions=True))
    assert refs[0].modality == "MR" and len(refs[0].image_paths) == 2
    case = S.load_case(refs[0])
    assert case.image.shape == (32, 32, 8, 2) and case.channel_names == ("T2", "ADC")
    assert np.array_equal(case.image[..., 1], case.image[..., 0] + 100)
    assert [lm.names for lm in case.labels] == [{1: "whole organ"}, {1: "spleen core"}]
    assert case.labels[0].array.sum() > case.labels[1].array.sum() > 0
    assert case.meta["regions"] == {"whole organ": [1, 2], "spleen core": [2]}


def test_nnunetv2_ignore_label_and_explicit_file_list(tmp_path):
    import nibabel as nib
    root = make_nnunetv2(tmp_path, with_test=False)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"]["ignore"] = 3
    meta["dataset"] = {"c0": {"images": ["imagesTr/case_000_0000.nii.gz"], "label": "labelsTr/case_000.nii.gz"}}
    (root / "dataset.json").write_text(json.dumps(meta))
    img = nib.load(root / "labelsTr" / "case_000.nii.gz")
    data = np.asarray(img.dataobj).copy()
    data[:2] = 3
    nib.save(nib.Nifti1Image(data, img.affine), root / "labelsTr" / "case_000.nii.gz")
    refs = S.list_cases(root)
    assert [r.case_id for r in refs] == ["c0"]
    case = S.load_case(refs[0])
    assert case.labels[0].names == {1: "liver", 2: "spleen"} and case.meta["ignore_value"] == 3


def test_nnunetv2_2d_rgb_needs_modality(tmp_path):
    root = make_nnunetv2(tmp_path, two_d=True)
    with pytest.raises(LayoutError, match="modality="):
        S.list_cases(root)
    case = S.load_case(S.list_cases(root, modality="endoscopy")[0])
    assert case.modality == "ENDO" and case.image.shape == (64, 64, 3) and case.channel_names == ("R", "G", "B")
    assert case.labels[0].array.shape == (64, 64) and case.labels[0].names == {1: "polyp"}


def test_nnunetv2_bad_dataset_json(tmp_path):
    root = make_nnunetv2(tmp_path)
    (root / "dataset.json").write_text("{not json")
    with pytest.raises(LayoutError, match="dataset.json.*not valid JSON"):
        S.list_cases(root, layout="nnunetv2")
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}))
    with pytest.raises(LayoutError, match="missing required key.*labels"):
        S.list_cases(root)


def test_nnunetv2_per_case_errors_name_the_file(tmp_path):
    root = make_nnunetv2(tmp_path)
    (root / "labelsTr" / "case_001.nii.gz").unlink()
    shutil.copy(root / "labelsTr" / "case_000.nii.gz", root / "labelsTr" / "orphan.nii.gz")
    refs = by_id(S.list_cases(root))
    with pytest.raises(ReadError, match="labelsTr/case_001.nii.gz: label file not found"):
        S.load_case(refs["case_001"])
    with pytest.raises(ReadError, match="imagesTr/orphan_0000.nii.gz: image file not found"):
        S.load_case(refs["orphan"])
    import nibabel as nib
    img = nib.load(root / "labelsTr" / "case_000.nii.gz")
    data = np.asarray(img.dataobj).copy()
    data[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(data, img.affine), root / "labelsTr" / "case_000.nii.gz")
    with pytest.raises(CaseError, match=r"unknown label value 7 in .*case_000.nii.gz; dataset.json lists 0,1,2"):
        S.load_case(refs["case_000"])
    nib.save(nib.Nifti1Image(data[:, :, :4], img.affine), root / "labelsTr" / "case_002.nii.gz")
    with pytest.raises(CaseError, match="case_002.nii.gz.*case_002_0000.nii.gz"):
        S.load_case(refs["case_002"])


def test_msd_4d_multimodal(tmp_path):
    refs = S.list_cases(make_msd(tmp_path, multimodal=True))
    assert [r.split for r in refs] == ["train", "train", "train", "test"] and refs[0].modality == "MR"
    case = S.load_case(refs[0])
    assert case.image.shape == (32, 32, 8, 4) and case.channel_names == ("FLAIR", "T1w", "t1gd", "T2w")
    assert case.labels[0].names == {1: "edema", 2: "non-enhancing tumor", 3: "enhancing tumour"}
    assert set(np.unique(case.labels[0].array)) == {0, 1, 3}
    assert world_x(case, 1) > 5  # spleen on the patient's left with an i/j-swapped direction


@pytest.mark.parametrize("drop_training", [False, True])
def test_msd_skips_macos_junk(tmp_path, drop_training):
    root = make_msd(tmp_path)
    assert (root / "imagesTr" / "._spleen_0.nii.gz").exists()
    if drop_training:  # no case list in dataset.json: folders are scanned
        meta = json.loads((root / "dataset.json").read_text())
        del meta["training"], meta["test"]
        (root / "dataset.json").write_text(json.dumps(meta))
    refs = S.list_cases(root)
    assert [r.case_id for r in refs] == ["spleen_0", "spleen_1", "spleen_2", "spleen_3"]
    assert all(not p.name.startswith("._") for r in refs for p in r.image_paths + r.label_paths)
    assert S.load_case(refs[0]).labels[0].names == {1: "spleen"}


def test_msd_missing_modality_key(tmp_path):
    root = make_msd(tmp_path)
    meta = json.loads((root / "dataset.json").read_text())
    del meta["modality"]
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(LayoutError, match=r"dataset.json: missing required key\(s\) modality"):
        S.list_cases(root, layout="msd")


def test_totalsegmentator_layering_and_splits(tmp_path):
    root = make_totalsegmentator(tmp_path)
    refs = S.list_cases(root)
    assert [(r.case_id, r.split, r.modality) for r in refs] == [("s0000", "train", "CT"), ("s0001", "val", "CT"),
                                                                ("s0002", "test", "CT")]
    case = S.load_case(refs[1])
    assert len(case.labels) == 2 and all(lm.array.dtype == np.uint16 for lm in case.labels)
    names = {v: n for lm in case.labels for v, n in lm.names.items()}
    assert sorted(names.values()) == ["brain", "kidney_cyst_left", "kidney_left", "kidney_right", "liver", "spleen"]
    value = {n: v for v, n in names.items()}
    assert not any((lm.array == value["brain"]).any() for lm in case.labels)  # empty structure kept in names
    where = {n: next(i for i, lm in enumerate(case.labels) if v in lm.names) for n, v in value.items()}
    assert where["kidney_cyst_left"] != where["kidney_left"] and where["liver"] == where["spleen"]
    cyst = case.labels[where["kidney_cyst_left"]].array == value["kidney_cyst_left"]
    kidney = case.labels[where["kidney_left"]].array == value["kidney_left"]
    assert cyst.any() and (kidney[cyst]).all()
    assert world_x(case, value["kidney_left"], where["kidney_left"]) > 5
    assert world_x(case, value["kidney_right"], where["kidney_right"]) < -5
    assert case.meta["meta_csv"]["institute"] == "A"


def test_totalsegmentator_non_binary_mask(tmp_path):
    import nibabel as nib
    root = make_totalsegmentator(tmp_path, n_cases=1)
    path = root / "s0000" / "segmentations" / "liver.nii.gz"
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 3, img.affine), path)
    with pytest.raises(CaseError, match="liver.nii.gz.*binary"):
        S.load_case(S.list_cases(root)[0])


def test_kvasir_and_cvc_clinicdb(tmp_path):
    refs = S.list_cases(make_kvasir(tmp_path))
    assert len(refs) == 3 and {r.modality for r in refs} == {"ENDO"} and refs[0].source == "Kvasir-SEG"
    case = S.load_case(refs[0])
    assert case.image.shape == (64, 64, 3) and case.labels[0].names == {1: "polyp"}
    area = int((case.labels[0].array == 1).sum())
    assert abs(area - np.pi * 10**2) < 25  # lossy JPEG mask thresholded back to the disc
    assert case.meta["source_bboxes"]["bbox"][0]["label"] == "polyp"
    cvc = tmp_path / "CVC-ClinicDB"
    img = np.zeros((48, 40, 3), np.uint8)
    mask = np.zeros((48, 40), np.uint8)
    mask[10:20, 5:15] = 255
    for n in (1, 2):
        save_png(cvc / "Original" / f"{n}.tif", img, "TIFF")
        save_png(cvc / "Ground Truth" / f"{n}.tif", mask, "TIFF")
    assert S.detect_layout(cvc) == "kvasir"
    case = S.load_case(S.list_cases(cvc)[1])
    assert case.case_id == "2" and case.labels[0].array.sum() == 100


def test_isic2018_splits_and_unlabeled_test(tmp_path):
    refs = S.list_cases(make_isic2018(tmp_path))
    assert [(r.case_id, r.split) for r in refs] == [("ISIC_0000000", "train"), ("ISIC_0000001", "train"),
                                                    ("ISIC_0000002", "train"), ("ISIC_0000003", "val"),
                                                    ("ISIC_0000004", "test")]
    assert refs[0].modality == "DERM" and refs[0].source == "ISIC2018" and refs[-1].label_paths == ()
    case = S.load_case(refs[3])
    assert case.labels[0].names == {1: "skin lesion"} and case.labels[0].array.sum() > 500


def test_isic2018_missing_mask_names_file(tmp_path):
    root = make_isic2018(tmp_path)
    (root / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000001_segmentation.png").unlink()
    ref = by_id(S.list_cases(root))["ISIC_0000001"]
    with pytest.raises(ReadError, match="ISIC_0000001_segmentation.png: mask file not found"):
        S.load_case(ref)


def test_busi_multimask_and_normal(tmp_path):
    root = make_busi(tmp_path)
    refs = by_id(S.list_cases(root))
    assert list(refs) == ["benign (1)", "benign (2)", "malignant (1)", "normal (1)"]
    assert refs["benign (2)"].modality == "US" and len(refs["benign (2)"].label_paths) == 2
    two = S.load_case(refs["benign (2)"])
    assert two.image.shape == (64, 64)  # grey stored as RGB → one channel
    assert two.labels[0].names == {1: "benign breast lesion", 2: "benign breast lesion"}
    assert set(np.unique(two.labels[0].array)) == {0, 1, 2}
    assert S.load_case(refs["malignant (1)"]).labels[0].names == {1: "malignant breast lesion"}
    normal = S.load_case(refs["normal (1)"])
    assert normal.labels[0].names == {} and not normal.labels[0].array.any()
    mask = np.zeros((64, 64, 3), np.uint8)
    mask[5:9, 5:9] = 255
    Image.fromarray(mask).save(root / "normal" / "normal (1)_mask.png")
    with pytest.raises(CaseError, match=r"normal \(1\)_mask.png"):
        S.load_case(refs["normal (1)"])


def test_coco_polygons_rle_and_layering(tmp_path):
    refs = S.list_cases(make_coco(tmp_path))
    assert [(r.case_id, r.split, r.modality) for r in refs] == [
        ("000000000001", "train", "PATH"), ("000000000002", "train", "PATH"), ("000000000003", "train", "PATH"),
        ("000000000004", "val", "PATH")]
    one = S.load_case(refs[0])
    assert len(one.labels) == 2 and all(lm.instances for lm in one.labels)  # overlapping polygons layered
    names = {v: n for lm in one.labels for v, n in lm.names.items()}
    assert names == {1: "nucleus", 2: "nucleus", 3: "gland"} and one.meta["crowd_values"] == [3]
    assert (one.labels[0].array == 3).sum() == 200  # uncompressed RLE
    two = S.load_case(refs[1])
    assert two.labels[0].names == {1: "gland"} and (two.labels[0].array[40:56, 8:24] == 1).all()
    assert two.labels[0].array.sum() == 256  # compressed RLE
    assert S.load_case(refs[2]).labels[0].names == {}


def test_coco_needs_modality_and_image(tmp_path):
    root = make_coco(tmp_path, modality=None)
    with pytest.raises(LayoutError, match="instances_train2017.json.*modality="):
        S.list_cases(root)
    refs = S.list_cases(root, modality="histopathology")
    assert refs[0].modality == "PATH"
    (root / "train2017" / "000000000002.jpg").unlink()
    with pytest.raises(ReadError, match="000000000002.jpg: image file not found"):
        S.load_case(refs[1])


def test_manifest_fixture_and_errors(tmp_path):
    root = make_manifest(tmp_path)
    refs = by_id(S.list_cases(root))
    assert [(r.case_id, r.modality, r.split) for r in refs.values()] == [
        ("ct1", "CT", "train"), ("mr1", "MR", "test"), ("mr2", "MR", None)]
    mr1 = S.load_case(refs["mr1"])
    assert [lm.names for lm in mr1.labels] == [{1: "left kidney"}, {1: "renal cyst"}]
    assert world_x(mr1, 1) > 5 and mr1.meta["license"] == "CC0"
    assert S.load_case(refs["mr2"]).labels == [] and refs["mr1"].source == "fixture"
    data = json.loads((root / "medglip_manifest.json").read_text())
    data["cases"][0]["labels"] = {"1": "liver"}
    (root / "medglip_manifest.json").write_text(json.dumps(data))
    with pytest.raises(CaseError, match="unknown label value 2 in .*ct1_seg.nii.gz; the manifest lists 0,1"):
        S.load_case(by_id(S.list_cases(root))["ct1"])
    data["cases"].append({"image": "ct1.nii.gz"})
    (root / "medglip_manifest.json").write_text(json.dumps(data))
    with pytest.raises(LayoutError, match="medglip_manifest.json case #3.*'id' and 'image'"):
        S.list_cases(root)
