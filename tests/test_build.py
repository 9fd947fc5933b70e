"""End-to-end builds: every layout, real samples, orientation, faults, resume after SIGKILL, shards."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

import layouts
import medglip
from medglip.dataset import BuildConfig, Shard, build, merge
from medglip.core.masks import decode_segmentation
from medglip.errors import MedglipError

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


def _decode_rle(rle: dict) -> np.ndarray:
    h, w = rle["size"]
    return decode_segmentation(rle, h, w)


def _coco(out: Path, split: str) -> dict:
    return json.loads((out / "annotations" / f"{split}.json").read_text())


def _all(out: Path) -> tuple[list[dict], list[dict], list[dict]]:
    imgs, anns, cats = [], [], []
    for s in ("train", "val", "test"):
        d = _coco(out, s)
        imgs += d["images"]
        anns += d["annotations"]
        cats = d["categories"]
    return imgs, anns, cats


def _check_dataset(out: Path) -> tuple[list[dict], list[dict]]:
    """Invariants every built dataset must satisfy."""
    imgs, anns, cats = _all(out)
    assert imgs, "no image written"
    by_id = {i["id"]: i for i in imgs}
    assert len(by_id) == len(imgs)
    cat_by_id = {c["id"]: c for c in cats}
    for im in imgs:
        for k in ("file_name", "width", "height", "modality", "source", "case_id", "slice_axis", "slice_index",
                  "pixel_spacing", "split", "negative", "intensity"):
            assert k in im, k
        with Image.open(out / "images" / im["file_name"]) as pic:
            assert pic.size == (im["width"], im["height"])
    for a in anns:
        im = by_id[a["image_id"]]
        x, y, w, h = a["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= im["width"] and y + h <= im["height"]
        m = _decode_rle(a["segmentation"])
        assert m.shape == (im["height"], im["width"]) and m.sum() == a["area"]
        ys, xs = np.nonzero(m)
        assert [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1] == a["bbox"]
        assert cat_by_id[a["category_id"]]["name"] == a["phrase"]
        assert a["hierarchy"][-1] == a["phrase"]
        assert not im["negative"]
    # cases never straddle splits
    split_of = {}
    for im in imgs:
        assert split_of.setdefault((im["source"], im["case_id"]), im["split"]) == im["split"]
    # ODVG lines mirror the COCO images, regions mirror annotations
    for s in ("train", "val", "test"):
        lines = (out / "annotations" / f"{s}.odvg.jsonl").read_text().splitlines()
        d = _coco(out, s)
        assert len(lines) == len(d["images"])
        assert sum(len(json.loads(line)["grounding"]["regions"]) for line in lines) == len(d["annotations"])
    card = json.loads((out / "card.json").read_text())
    assert sum(v["annotations"] for v in card["splits"].values()) == len(anns)
    assert (out / "card.md").read_text().startswith("# Dataset card")
    assert json.loads((out / "build_config.json").read_text())["fingerprint"]
    return imgs, anns


@pytest.mark.parametrize("maker,expected", [
    ("make_nnunetv2", {"liver", "spleen"}),
    ("make_msd", None),
    ("make_totalsegmentator", {"left kidney", "right kidney", "liver", "spleen"}),
    ("make_kvasir", {"polyp"}),
    ("make_isic2018", None),
    ("make_busi", None),
    ("make_coco", None),
    ("make_manifest", None),
])
def test_every_layout_builds(tmp_path, maker, expected):
    src = getattr(layouts, maker)(tmp_path / "src")
    out = tmp_path / "out"
    res = build(BuildConfig(source=str(src)), out)
    assert not res.failed, res.failed
    assert res.merged is not None
    imgs, anns = _check_dataset(out)
    phrases = {a["phrase"] for a in anns}
    assert anns and all(a["mapped"] for a in anns), phrases
    if expected:
        assert expected <= phrases


def test_laterality_follows_the_patient_side(tmp_path):
    """kidney_left lies on the patient's left = the image's right, whatever the file's direction matrix."""
    src = layouts.make_totalsegmentator(tmp_path / "src")
    out = tmp_path / "out"
    build(BuildConfig(source=str(src), negative_ratio=0), out)
    imgs, anns, _ = _all(out)
    width = {i["id"]: i["width"] for i in imgs}
    kid = [a for a in anns if a["label"] == "kidney"]
    assert {a["phrase"] for a in kid} == {"left kidney", "right kidney"}
    for a in kid:
        cx = a["bbox"][0] + a["bbox"][2] / 2
        assert (cx > width[a["image_id"]] / 2) == (a["phrase"] == "left kidney")
        assert a["laterality"] == a["phrase"].split()[0]
    report = json.loads((out / "build_report.json").read_text())
    assert not any("kidney" in w for ws in report["warnings"].values() for w in ws)


def test_real_samples_match_sitk_lps_orientation(tmp_path):
    """Images and boxes of the real MR cases equal SimpleITK's own LPS reorientation of the files."""
    out = tmp_path / "out"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), out)
    imgs, anns = _check_dataset(out)
    assert {a["phrase"] for a in anns} == {"brain tumor", "breast lesion"}
    assert {a["level"] for a in anns} == {"lesion"}
    for case in ("brain1", "brain2", "breast1"):
        lab = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(SAMPLES / f"{case}_label.nrrd")), "LPS"))
        img = sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(SAMPLES / f"{case}_image.nrrd")), "LPS"))
        case_imgs = [i for i in imgs if i["case_id"] == case]
        positives = {int(k) for k in np.nonzero(lab.reshape(lab.shape[0], -1).any(1))[0]}
        assert {i["slice_index"] for i in case_imgs if not i["negative"]} <= positives
        for im in case_imgs:
            k = im["slice_index"]  # axial slices of these files are the k axis, which is LPS-aligned
            pix = np.asarray(Image.open(out / "images" / im["file_name"]))
            # same picture up to the intensity mapping: correlation ~ 1
            assert np.corrcoef(pix.ravel().astype(float), img[k].ravel().astype(float))[0, 1] > 0.98
            truth = lab[k] > 0
            got = np.zeros_like(truth)
            for a in anns:
                if a["image_id"] == im["id"]:
                    got |= _decode_rle(a["segmentation"])
            assert (got == truth).mean() > 0.999  # identical up to dropped specks
            # pixel_to_world agrees with SimpleITK's physical points
            ref = sitk.ReadImage(str(SAMPLES / f"{case}_image.nrrd"))
            vox = np.array(im["pixel_to_voxel"]) @ np.array([5, 7, 0, 1.0])
            world = np.array(im["pixel_to_world"]) @ np.array([5, 7, 0, 1.0])
            assert np.allclose(world, ref.TransformContinuousIndexToPhysicalPoint(vox.tolist()), atol=1e-3)


def test_bad_cases_are_reported_and_the_rest_is_built(tmp_path):
    src = layouts.make_nnunetv2(tmp_path / "src", n_cases=5, with_test=False)
    (src / "imagesTr" / "case_001_0000.nii.gz").write_bytes(b"\x1f\x8b garbage")            # corrupt
    lab = src / "labelsTr" / "case_002.nii.gz"
    data = lab.read_bytes()
    lab.write_bytes(data[: len(data) // 2])                                                      # truncated
    import nibabel as nib

    bad = nib.load(src / "labelsTr" / "case_003.nii.gz")
    arr = np.asarray(bad.dataobj).copy()
    arr[0, 0, 0] = 7                                                                             # unknown value
    nib.save(nib.Nifti1Image(arr, bad.affine), src / "labelsTr" / "case_003.nii.gz")
    empty = nib.load(src / "labelsTr" / "case_004.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(empty.shape, np.uint8), empty.affine), src / "labelsTr" / "case_004.nii.gz")
    out = tmp_path / "out"
    res = build(BuildConfig(source=str(src)), out)
    assert sorted(k.split("/")[-1] for k in res.failed) == ["case_001", "case_002", "case_003", "case_004"]
    report = json.loads((out / "build_report.json").read_text())
    reasons = {f["key"].split("/")[-1]: f["reason"] for f in report["failures"]}
    assert "case_001_0000.nii.gz" in reasons["case_001"]
    assert "case_002.nii.gz" in reasons["case_002"]
    assert "unknown label value" in reasons["case_003"] and "7" in reasons["case_003"]
    assert "empty mask" in reasons["case_004"]
    imgs, _ = _check_dataset(out)
    assert {i["case_id"] for i in imgs} == {"case_000"}
    # the CLI exits non-zero on failures and names them
    r = subprocess.run([sys.executable, "-m", "medglip", "build", str(src), str(tmp_path / "out2")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "case_003" in r.stdout + r.stderr


def test_shape_mismatch_names_both_files(tmp_path):
    src = layouts.make_nnunetv2(tmp_path / "src", n_cases=2, with_test=False)
    import nibabel as nib

    im = nib.load(src / "labelsTr" / "case_001.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 3), np.uint8), im.affine), src / "labelsTr" / "case_001.nii.gz")
    res = build(BuildConfig(source=str(src)), tmp_path / "out")
    (reason,) = res.failed.values()
    assert "case_001.nii.gz" in reason and "case_001_0000.nii.gz" in reason


def _tree_digest(out: Path) -> dict[str, str]:
    """Hashes of every output file that defines the dataset (records/ are internal, logs excluded)."""
    keep = {}
    for p in sorted(out.rglob("*")):
        rel = p.relative_to(out).as_posix()
        if p.is_file() and not rel.startswith(("records/", "failures/")):
            keep[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return keep


def _many_cases(tmp_path: Path, n: int = 10) -> Path:
    src = layouts.make_nnunetv2(tmp_path / "src", n_cases=n, with_test=False)
    return src


def test_resume_after_sigkill_gives_identical_output(tmp_path):
    src = _many_cases(tmp_path, n=16)
    ref_out = tmp_path / "ref"
    build(BuildConfig(source=str(src)), ref_out)
    ref = _tree_digest(ref_out)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "medglip", "build", str(src), str(out)]
    partial = []
    for target in (1, 5, 11):  # kill once that many cases are done, while others are being written
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            if len(list((out / "records").rglob("*.json"))) >= target if (out / "records").exists() else False:
                break
            time.sleep(0.005)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait()
            partial.append(len(list((out / "records").rglob("*.json"))))
        assert not (out / "card.json").exists() or not partial or partial[-1] == 16
    assert any(0 < n < 16 for n in partial), f"never interrupted mid-build: {partial}"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "already done" in r.stderr and _tree_digest(out) == ref
    assert not list(out.rglob("*.tmp"))


def test_workers_and_shards_give_the_same_dataset(tmp_path):
    src = _many_cases(tmp_path, n=4)
    one = tmp_path / "one"
    build(BuildConfig(source=str(src)), one)
    two = tmp_path / "two"
    build(BuildConfig(source=str(src)), two, workers=2)
    assert _tree_digest(two) == _tree_digest(one)
    sharded = tmp_path / "sharded"
    r0 = build(BuildConfig(source=str(src)), sharded, shard=Shard.parse("0/2"))
    assert r0.merged is None and r0.pending == 2 and not (sharded / "card.json").exists()
    with pytest.raises(MedglipError, match="not built yet"):
        merge(sharded)
    r1 = build(BuildConfig(source=str(src)), sharded, shard=Shard.parse("1/2"))
    assert r1.merged is not None
    assert _tree_digest(sharded) == _tree_digest(one)


def test_changed_settings_refuse_to_mix_into_an_old_build(tmp_path):
    src = layouts.make_kvasir(tmp_path / "src")
    out = tmp_path / "out"
    build(BuildConfig(source=str(src)), out)
    with pytest.raises(MedglipError, match="other settings"):
        build(BuildConfig(source=str(src), min_pixels=50), out)
    with pytest.raises(MedglipError, match="K/N"):
        Shard.parse("3")
    with pytest.raises(MedglipError, match="0 <= K < N"):
        Shard.parse("2/2")


def test_negatives_are_sampled_and_ct_stored_as_the_input_windows(tmp_path):
    """CT images are the model's pixels: the three input windows as RGB channels (raw HU recoverable)."""
    from medglip.core.intensity import window_to_uint8
    from medglip.core.orient import plan_slices
    from medglip.io import read_image

    src = layouts.make_totalsegmentator(tmp_path / "src", n_cases=1)
    out = tmp_path / "out"
    build(BuildConfig(source=str(src), plane="coronal", negative_ratio=1.0), out)
    imgs, _, _ = _all(out)
    assert {i["slice_plane"] for i in imgs} == {"coronal"}
    assert any(i["negative"] for i in imgs)
    windows = [[-1350.0, 150.0], [-160.0, 240.0], [-450.0, 1050.0]]
    assert all(i["intensity"]["mode"] == "ct_windows" and i["intensity"]["windows"] == windows for i in imgs)
    assert {i["display_window"] for i in imgs} == {"soft_tissue"}  # kidneys and spleen: pictures only
    ct = read_image(next(src.glob("*/ct.nii.gz")))
    plan = plan_slices(ct.geometry, ct.array.shape, "coronal")
    im = imgs[0]
    pix = np.asarray(Image.open(out / "images" / im["file_name"]))
    raw = plan.take(ct.array, im["slice_index"])
    assert pix.shape == raw.shape + (3,)
    for c, (lo, hi) in enumerate(windows):
        assert np.array_equal(pix[..., c], window_to_uint8(raw, lo, hi))
    out2 = tmp_path / "out2"
    build(BuildConfig(source=str(src), ct_windows=((-1000.0, 1000.0),) * 3, display_window="bone",
                      negative_ratio=0), out2)
    imgs2, _, _ = _all(out2)
    assert all(not i["negative"] for i in imgs2)
    assert {tuple(map(tuple, i["intensity"]["windows"])) for i in imgs2} == {((-1000.0, 1000.0),) * 3}
    assert {i["display_window"] for i in imgs2} == {"bone"}


def test_cli_build_and_show_on_real_samples(tmp_path):
    out = tmp_path / "ds"
    r = subprocess.run([sys.executable, "-m", "medglip", "build", str(SAMPLES), str(out), "--split", "1,0,0"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "medglip", "show", str(out), "--out", str(tmp_path / "pics"), "--n", "3"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pngs = sorted((tmp_path / "pics").glob("*.png"))
    assert len(pngs) == 4 and any(p.name == "overview.png" for p in pngs)
    r = subprocess.run([sys.executable, "-m", "medglip", "build", str(tmp_path / "nope"), str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "nope" in r.stderr


def test_manifest_with_dicom_series_and_real_dicom_seg(tmp_path):
    """A CT series folder + the real DICOM-SEG "Liver" of pydicom-data, placed on the series grid."""
    import copy

    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    seg_path = get_testdata_file("liver.dcm")
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series = tmp_path / "src" / "ct"
    series.mkdir(parents=True)
    uid = generate_uid()
    for k in range(5):  # z = -130.69 .. -126.69: the SEG's three frames are k = 2, 3, 4
        ds = copy.deepcopy(template)
        ds.Rows = ds.Columns = 512
        ds.PixelData = np.full((512, 512), 1024 + 60, np.int16).tobytes()  # 60 HU everywhere
        ds.ImagePositionPatient = ["-235.2", "-226.8", f"{-130.69 + k:.2f}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["0.810547", "0.810547"]
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        ds.SeriesInstanceUID, ds.SOPInstanceUID = uid, generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = k + 1
        ds.save_as(series / f"IM{k:04d}", enforce_file_format=True)
    (tmp_path / "src" / "medglip_manifest.json").write_text(json.dumps({
        "medglip_manifest": 1, "name": "dicomseg",
        "cases": [{"id": "liver1", "image": "ct", "label": seg_path, "modality": "CT"}]}))
    out = tmp_path / "out"
    res = build(BuildConfig(source=str(tmp_path / "src"), negative_ratio=1.0), out)
    assert not res.failed, res.failed
    imgs, anns = _check_dataset(out)
    assert {a["phrase"] for a in anns} == {"liver"} and {a["source_label"] for a in anns} == {"Liver"}
    pos = sorted({i["slice_index"] for i in imgs if not i["negative"]})
    assert pos == [2, 3, 4]
    assert all(i["intensity"]["mode"] == "ct_windows" and i["display_window"] == "liver" for i in imgs)
    # the liver lies on the patient's right, i.e. the image's left half
    assert all(a["bbox"][0] + a["bbox"][2] / 2 < 256 for a in anns)
