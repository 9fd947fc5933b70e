"""One input pipeline: a model trained on a built CT dataset sees the same pixels, and finds the same
box with the same score, whether a slice comes as the built PNG, inside the raw volume (NRRD, NIfTI,
DICOM series), or alone (a one-slice NIfTI, a DICOM file) — through the Grounder, the CLI, VQA,
reports and the HTTP service.

The case is a synthetic chest CT (air, body, two lungs, noise) with one soft-tissue lesion in the
patient's LEFT lung on one slice; a tiny model is trained on its build for a few seconds.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from medglip.dataset import BuildConfig, build
from medglip.core.boxes import box_iou
from medglip.infer import Grounder

SHAPE = (96, 80, 12)  # i: +x (towards the patient's left), j: +y (posterior), k: +z
SPACING = (0.8, 0.8, 5.0)
ORIGIN = (-38.0, -32.0, 100.0)
K = 6  # the lesion's slice
PHRASE = "lung tumor"


def _volume() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    i, j = np.meshgrid(np.arange(SHAPE[0]), np.arange(SHAPE[1]), indexing="ij")
    body = ((i - 48) / 44.0) ** 2 + ((j - 40) / 34.0) ** 2 <= 1
    lungs = (((i - 28) / 14.0) ** 2 + ((j - 40) / 22.0) ** 2 <= 1) | (((i - 68) / 14.0) ** 2 + ((j - 40) / 22.0) ** 2 <= 1)
    lesion = ((i - 70) / 7.0) ** 2 + ((j - 36) / 7.0) ** 2 <= 1  # high i: the patient's left lung
    vol = np.full(SHAPE, -1000, np.int16)
    lab = np.zeros(SHAPE, np.uint8)
    for k in range(SHAPE[2]):
        s = np.where(body, 40.0, -1000.0)
        s[lungs] = -820
        if k == K:
            s[lesion] = 30
            lab[..., k][lesion] = 1
        vol[..., k] = np.clip(np.round(s + rng.normal(0, 15, s.shape)), -1024, 3071).astype(np.int16)
    return vol, lab


def _sitk(arr: np.ndarray) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(arr.transpose(2, 1, 0)))
    img.SetSpacing(SPACING)
    img.SetOrigin(ORIGIN)
    return img


def _dicom_slice(arr2d: np.ndarray, k: int, series_uid: str, path: Path) -> None:
    """One CT DICOM slice (HU = stored − 1024), rows along +y, columns along +x (display order)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID = CTImageStorage, ExplicitVRLittleEndian
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = "CT", series_uid, "1.2.826.0.1.3680043.8.498.1"
    ds.PatientID, ds.PatientName, ds.InstanceNumber = "synthetic", "Synthetic^Chest", k + 1
    ds.ImagePositionPatient = [ORIGIN[0], ORIGIN[1], ORIGIN[2] + SPACING[2] * k]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [SPACING[1], SPACING[0]]  # row spacing (along y), column spacing (along x)
    ds.SliceThickness = SPACING[2]
    ds.Rows, ds.Columns = arr2d.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = (arr2d.astype(np.int32) + 1024).astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> dict:
    """The case as NRRD (built and trained on), NIfTI, a DICOM series, and slice K alone."""
    import nibabel as nib
    from pydicom.uid import generate_uid

    root = tmp_path_factory.mktemp("ct")
    vol, lab = _volume()
    src = root / "src"
    src.mkdir()
    sitk.WriteImage(_sitk(vol), str(src / "chest_image.nrrd"), True)
    sitk.WriteImage(_sitk(lab), str(src / "chest_label.nrrd"), True)
    (src / "medglip_manifest.json").write_text(json.dumps({"medglip_manifest": 1, "name": "synthetic", "cases": [
        {"id": "chest", "image": "chest_image.nrrd", "label": "chest_label.nrrd", "modality": "CT",
         "labels": {"1": PHRASE}}]}))
    sitk.WriteImage(_sitk(vol), str(root / "chest.nii.gz"))
    series = root / "series"
    series.mkdir()
    uid = generate_uid()
    for k in range(SHAPE[2]):
        _dicom_slice(vol[:, :, k].T, k, uid, series / f"IM{k:03d}.dcm")
    one = _sitk(vol[:, :, K:K + 1])
    one.SetOrigin((ORIGIN[0], ORIGIN[1], ORIGIN[2] + SPACING[2] * K))
    sitk.WriteImage(one, str(root / "slice.nii.gz"))
    _dicom_slice(vol[:, :, K].T, K, generate_uid(), root / "slice.dcm")
    assert nib.load(str(root / "chest.nii.gz")).shape == SHAPE
    return {"root": root, "src": src, "nrrd": src / "chest_image.nrrd", "nifti": root / "chest.nii.gz",
            "series": series, "slice_nifti": root / "slice.nii.gz", "slice_dicom": root / "slice.dcm",
            "gt_box": _gt_box(lab[:, :, K].T)}


def _gt_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


@pytest.fixture(scope="module")
def trained(case) -> dict:
    """Build the NRRD case (CT as the three input windows) and train the tiny model on it."""
    import torch

    from medglip.train import TrainConfig, train

    out = case["root"] / "ds"
    res = build(BuildConfig(source=str(case["src"]), negative_ratio=1.0, split_ratios=(1, 0, 0)), out)
    assert not res.failed
    coco = json.loads((out / "annotations" / "train.json").read_text())
    png = next(out / "images" / im["file_name"] for im in coco["images"] if im["slice_index"] == K)
    torch.manual_seed(0)
    run = case["root"] / "run"
    train(out, run, TrainConfig(preset="tiny", max_steps=120, batch_size=4, lr=1e-3, warmup_steps=10,
                                checkpoint_every=1000, device="cpu", seed=0, flip_prob=0.0))
    return {"run": run, "png": png, "grounder": Grounder.from_pretrained(run, refiner=None)}


def _top(result) -> tuple[np.ndarray, float]:
    g = result[PHRASE]
    assert len(g), f"no {PHRASE} box on {result.source}"
    return g.boxes[0].astype(np.float64), float(g.scores[0])


def _same(a: tuple[np.ndarray, float], b: tuple[np.ndarray, float], what: str) -> None:
    iou = box_iou(a[0][None], b[0][None])[0, 0]
    assert iou > 0.99 and abs(a[1] - b[1]) <= 0.02, f"{what}: box {b[0]} score {b[1]:.3f} vs {a[0]} {a[1]:.3f}"


def test_the_lesion_is_found_with_the_same_box_and_score_in_the_built_slice_and_the_raw_volumes(case, trained):
    g = trained["grounder"]
    on_png = g.ground_one(trained["png"], [PHRASE], modality="CT")
    assert on_png.extra["intensity"]["mode"] == "identity"  # the PNG already holds the model pixels
    top = _top(on_png)
    assert box_iou(top[0][None], case["gt_box"][None])[0, 0] >= 0.5 and top[1] >= 0.3, \
        f"the trained model missed the lesion: {top}, truth {case['gt_box']}"
    for name in ("nrrd", "nifti", "series"):
        vol = g.ground_volume(case[name], [PHRASE], modality=None if name == "series" else "CT")
        assert vol.modality == "CT"
        assert vol.slice_results[K].extra["intensity"]["mode"] == "ct_windows"
        _same(top, _top(vol.slice_results[K]), f"{name} slice {K}")
        pixels, _ = vol.slice_pixels(K)
        from PIL import Image
        assert np.array_equal(pixels, np.asarray(Image.open(trained["png"])))  # bit for bit the built PNG
    for name in ("slice_nifti", "slice_dicom"):
        _same(top, _top(g.ground_one(case[name], [PHRASE], modality=None if name == "slice_dicom" else "CT")), name)


def _no_slices(location: str) -> str:
    """A volume finding's location without its slice range (", slice 6" / ", slices 4–7")."""
    return re.sub(r", slices? \d+(?:–\d+)?", "", location)


def test_vqa_and_reports_give_the_same_findings_for_a_slice_alone_and_in_its_volume(case, trained):
    from medglip.report import make_report
    from medglip.vqa import ask

    g = trained["grounder"]
    for one, volume in (("slice_nifti", "nifti"), ("slice_dicom", "series")):
        q = "Is there a tumor in the left lung?"
        a2, a3 = ask(g, case[one], q, modality="CT"), ask(g, case[volume], q, modality="CT")
        f2, f3 = a2.context.findings, a3.context.findings
        assert a2.answer.value is True and a3.answer.value is True, (a2.answer.text, a3.answer.text)
        # the volume may hold findings on other slices, which slice K alone cannot show: compare those whose
        # key slice is K (a finding linked across slices 0-11 may pass through K with its best box elsewhere)
        f3 = [f for f in f3 if f.key_slice == K]
        assert len(f2) == len(f3) >= 1 and [f.phrase for f in f2] == [f.phrase for f in f3], \
            ([(f.phrase, round(f.score, 3)) for f in f2], [(f.phrase, round(f.score, 3), f.slices) for f in f3])
        tumour = [f for f in f3 if f.phrase == PHRASE]
        assert tumour and tumour[0].slices == (K, K) and tumour[0].key_slice == K
        for a, b in zip(f2, f3):
            # a volume finding's location also names its slices (the slice alone has none to name)
            assert b.location.endswith(f"slice {K}") or f", slice {K}," in b.location, b.location
            assert a.side == b.side and a.location == _no_slices(b.location) and a.parent == b.parent
            _same((np.array(a.box), a.score), (np.array(b.box), b.score), f"VQA {one} vs {volume}: {a.phrase}")
        assert [f for f in f2 if f.phrase == PHRASE][0].side == "left"  # the lesion is in the patient's left lung
        r2 = make_report(g, case[one], [PHRASE], modality="CT")
        r3 = make_report(g, case[volume], [PHRASE], modality="CT")
        on_k = [f for f in r3.context.findings if f.key_slice == K]
        assert [f.location for f in r2.context.findings] == [_no_slices(f.location) for f in on_k]
        first = [_no_slices(re.sub(r"\d+ of \d+", "", r.sentences[0].split(";")[0])) for r in (r2, r3)]  # the volume: more
        assert first[0] == first[1]  # findings on other slices (the count), and it adds its slices
        assert r2.overlay.size == r3.overlay.size


def test_the_cli_and_the_service_agree_on_the_slice_and_its_volume(case, trained):
    from fastapi.testclient import TestClient

    from medglip.serve import create_app

    def cli(image: Path) -> dict:
        out = case["root"] / f"{image.name}.json"
        r = subprocess.run([sys.executable, "-m", "medglip", "ground", str(image), "-p", PHRASE, "--checkpoint",
                            str(trained["run"]), "--modality", "CT", "--json", str(out)], capture_output=True,
                           text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads(out.read_text())

    one, vol = cli(case["slice_nifti"]), cli(case["nifti"])
    box2d = (np.array(one["phrases"][0]["boxes"][0]), one["phrases"][0]["scores"][0])
    obj = vol["objects"][0]
    assert obj["slices"] == [K, K]
    key = obj["slice_boxes"][0]
    _same(box2d, (np.array(key["box"]), key["score"]), "CLI one-slice NIfTI vs volume")

    with TestClient(create_app(trained["grounder"])) as c:
        r2 = c.post("/v1/ground", data={"phrases": PHRASE, "modality": "CT"},
                    files={"file": ("slice.dcm", case["slice_dicom"].read_bytes())})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for f in sorted(case["series"].iterdir()):
                z.write(f, f.name)
        r3 = c.post("/v1/ground-volume", data={"phrases": PHRASE, "modality": "CT"},
                    files={"file": ("series.zip", buf.getvalue())})
    assert r2.status_code == 200 and r3.status_code == 200, (r2.text, r3.text)
    served2d = r2.json()["phrases"][0]
    served3d = r3.json()["objects"][0]["slice_boxes"][0]
    _same(box2d, (np.array(served2d["boxes"][0]), served2d["scores"][0]), "service /v1/ground")
    _same(box2d, (np.array(served3d["box"]), served3d["score"]), "service /v1/ground-volume")
