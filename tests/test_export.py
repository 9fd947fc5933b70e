"""Results clinical tools open (issue 13): 3D masks, NIfTI label maps, DICOM-SEG and SR, 2D label images.

The input is the shipped brain1 MR volume, as its NRRD, as NIfTI and as a real DICOM MR series written
from it. Volumes are grounded by an oracle (tests/fakes.py ``OracleVolumes``): the real slice linking,
3D masks and exports run on boxes and masks that are the ground-truth lesion ("brain tumor", score 0.9)
and a larger box overlapping it ("brain", 0.5), so every voxel can be checked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

import medglip
from medglip.errors import MedglipError, ReadError
from medglip.export import ExportOptions, export_image, export_volume, parse_outputs
from medglip.io import read_image

from dicom_series import write_series
from fakes import tiny_grounder, truth_on_grid

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
PHRASES = ["brain tumor", "brain", "liver"]
DCIODVFY = shutil.which("dciodvfy")


@pytest.fixture(scope="module")
def brain(brain1, tmp_path_factory, one_torch_thread) -> dict:
    root = tmp_path_factory.mktemp("brain")
    sitk.WriteImage(sitk.ReadImage(str(SAMPLES / "brain1_image.nrrd")), str(root / "brain1.nii.gz"))
    inputs = {"series": brain1["series"], "nifti": root / "brain1.nii.gz", "nrrd": SAMPLES / "brain1_image.nrrd"}
    g = brain1["grounder"]
    return {"root": root, "truth": brain1["truth"], "grounder": g, "inputs": inputs,
            "results": {name: g.ground_volume(path, PHRASES, masks=True) for name, path in inputs.items()}}


@pytest.fixture(scope="module")
def series_export(brain) -> dict:
    out = brain["root"] / "out_series"
    bundle = export_volume(brain["results"]["series"])
    return {"bundle": bundle, "paths": bundle.write(out), "out": out}


def _reference_image(path: Path) -> sitk.Image:
    """The input as SimpleITK reads it (its own DICOM series reader for a folder)."""
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
        return reader.Execute()
    return sitk.ReadImage(str(path))


@pytest.mark.parametrize("kind", ["series", "nifti", "nrrd"])
def test_the_label_map_lies_on_the_inputs_grid_and_holds_the_objects(brain, kind, tmp_path):
    res = brain["results"][kind]
    assert [o.phrase for o in res.objects].count("brain") == 1 and "liver" not in {o.phrase for o in res.objects}
    bundle = export_volume(res)
    paths = bundle.write(tmp_path)
    assert set(paths) == ({"labels.nii.gz", "labels.json", "seg.dcm", "sr.dcm"} if kind == "series"
                          else {"labels.nii.gz", "labels.json"})
    ref = _reference_image(brain["inputs"][kind])
    lab = sitk.ReadImage(str(paths["labels.nii.gz"]))
    assert lab.GetSize() == ref.GetSize() and lab.GetPixelID() == sitk.sitkUInt16
    assert np.allclose(lab.GetSpacing(), ref.GetSpacing(), atol=1e-5)
    assert np.allclose(lab.GetOrigin(), ref.GetOrigin(), atol=1e-4)
    assert np.allclose(lab.GetDirection(), ref.GetDirection(), atol=1e-6)
    nii = nib.load(str(paths["labels.nii.gz"]))
    if kind == "nifti":  # the input's own header: the same affine, bit for bit
        assert np.array_equal(nii.affine, nib.load(str(brain["inputs"][kind])).affine)
    assert nii.header.get_intent()[0] == "label"
    labels = np.asarray(nii.dataobj)
    assert np.array_equal(sitk.GetArrayFromImage(lab).transpose(2, 1, 0), labels)  # both readers agree

    side = json.loads(paths["labels.json"].read_text())
    assert side["shape"] == list(labels.shape) and [e["label"] for e in side["labels"]] == list(range(1, len(res.objects) + 1))
    truth = truth_on_grid(brain["truth"], res.geometry, res.shape) > 0
    spacing = np.prod(res.geometry.spacing)
    tumour = [e for e in side["labels"] if e["phrase"] == "brain tumor"]
    assert np.array_equal(np.isin(labels, [e["label"] for e in tumour]), truth)  # the lesion, voxel for voxel
    for e in side["labels"]:
        obj = res.objects[e["object"]]
        mask = res.object_mask(e["object"]).dense(res.shape)
        shown = labels == e["label"]
        assert e["voxels"] == mask.sum() and e["voxels_in_label_map"] == shown.sum()
        assert not np.any(shown & ~mask)  # a label is never outside its object's mask
        assert abs(e["volume_mm3"] - e["voxels"] * spacing) < 1e-2
        ks = np.nonzero(mask.any(axis=(0, 1)))[0]  # axial slices run along k here
        assert obj.slices[0] <= ks.min() and ks.max() <= obj.slices[1]
        vb = np.asarray(obj.voxel_box)  # the mask lies inside the object's voxel box
        idx = np.argwhere(mask)
        assert np.all(idx.min(0) >= np.floor(vb[0]) - 1e-6) and np.all(idx.max(0) <= np.ceil(vb[1]) + 1e-6)
        assert np.allclose(res.geometry.index_to_world(np.asarray(e["centre_voxel"])), e["centre_world_mm"], atol=0.01)
        assert e["color"] and e["codes"]["type"]["scheme"] == "SCT" and e["hierarchy"][-1] == e["phrase"]
    brain_entry = next(e for e in side["labels"] if e["phrase"] == "brain")  # overlapped: the tumour wins
    assert 0 < brain_entry["voxels_in_label_map"] < brain_entry["voxels"]
    assert brain_entry["codes"]["type"]["meaning"] == "Brain" and tumour[0]["codes"]["anatomy"]["meaning"] == "Brain"
    assert side["overlap_rule"].startswith("one label per voxel")


def test_seg_and_sr_reference_the_series_and_round_trip(brain, series_export):
    import highdicom as hd
    import pydicom

    res, paths = brain["results"]["series"], series_export["paths"]
    side = json.loads(paths["labels.json"].read_text())
    src = [pydicom.dcmread(str(f), stop_before_pixels=True) for f in sorted(brain["inputs"]["series"].iterdir())]
    by_uid = {str(d.SOPInstanceUID): d for d in src}
    seg = hd.seg.segread(str(paths["seg.dcm"]))
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
    for name in ("StudyInstanceUID", "PatientID", "PatientName", "FrameOfReferenceUID"):
        assert str(seg.get(name)) == str(src[0].get(name)), name
    ref = seg.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == src[0].SeriesInstanceUID
    assert {r.ReferencedSOPInstanceUID for r in ref.ReferencedInstanceSequence} <= set(by_uid)
    assert seg.get_segment_numbers() == [e["segment"] for e in side["labels"]]
    k_of = {uid: i for i, uid in enumerate(str(h.SOPInstanceUID) for h in res.volume.dicom_headers)}
    for e in side["labels"]:
        d = seg.get_segment_description(e["segment"])
        assert d.segment_label == f"{e['label']}: {e['phrase']}" and d.tracking_uid == e["tracking_uid"]
        assert d.segmented_property_type.value == e["codes"]["type"]["value"]
        mask = res.object_mask(e["object"]).dense(res.shape)
        uids = [u for u in k_of if mask[:, :, k_of[u]].any()]
        got = seg.get_pixels_by_source_instance(uids, segment_numbers=[e["segment"]])[..., 0]
        want = np.stack([mask[:, :, k_of[u]].T for u in uids])
        assert np.array_equal(got > 0, want), e["phrase"]  # every segment exact, overlaps included

    sr = hd.sr.srread(str(paths["sr.dcm"]))
    assert isinstance(sr, hd.sr.Comprehensive3DSR) and sr.ConceptNameCodeSequence[0].CodeValue == "126000"
    evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                for r in s.ReferencedSeriesSequence for i in r.ReferencedSOPSequence}
    assert str(seg.SOPInstanceUID) in evidence and set(by_uid) <= evidence
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(side["labels"])
    for g, e in zip(groups, side["labels"]):
        assert g.tracking_uid == e["tracking_uid"] and g.finding_type.value == e["codes"]["type"]["value"]
        assert g.referenced_segment.referenced_sop_instance_uid == str(seg.SOPInstanceUID)
        assert g.referenced_segment.referenced_segment_numbers == [e["segment"]]
        ms = {m.name.meaning: m.value for m in g.get_measurements()}
        assert abs(ms["Volume"] - e["volume_mm3"]) < 1e-2 and abs(ms["Grounding score"] - e["score"]) < 1e-5
        assert np.allclose([ms["Width"], ms["Depth"], ms["Height"]], e["extent_mm"], atol=1e-3)
        assert g.finding_sites[0].value.meaning == "Brain"
    assert any(i.CodingSchemeDesignator == "99MEDGLIP" for i in sr.CodingSchemeIdentificationSequence)


def test_a_dicom_validator_finds_no_error_in_seg_and_sr(series_export):
    if DCIODVFY is None:
        pytest.fail("dciodvfy is missing: install Debian's dicom3tools (bash scripts/install_dicom3tools.sh)")
    for name in ("seg.dcm", "sr.dcm"):
        r = subprocess.run([DCIODVFY, str(series_export["paths"][name])], capture_output=True, text=True, timeout=120)
        lines = (r.stdout + r.stderr).splitlines()
        assert lines and not [ln for ln in lines if ln.startswith("Error")], f"{name}:\n" + "\n".join(lines)


def test_a_failure_midway_leaves_the_output_folder_as_it_was(brain, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "labels.json").write_text("old")
    (out / "keep.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    import medglip.export.dicom as exd

    def broken(*a, **k):  # the SR fails after the label map and the SEG were made
        raise MedglipError("injected failure while writing the SR")

    monkeypatch.setattr(exd, "dicom_sr", broken)
    with pytest.raises(MedglipError, match="injected"):
        export_volume(brain["results"]["series"]).write(out)
    monkeypatch.undo()
    bundle = export_volume(brain["results"]["series"])
    calls = {"n": 0}
    real_fsync = os.fsync

    def fsync(fd):  # the disk fills up while the third file is written
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(MedglipError, match="No space left"):
        bundle.write(out)
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no new file, no temporary file
    bundle.write(out)
    assert {p.name for p in out.iterdir()} == {"keep.txt", "labels.json", "labels.nii.gz", "seg.dcm", "sr.dcm"}


def test_bad_inputs_get_clear_errors(brain, tmp_path):
    img = read_image(SAMPLES / "brain1_image.nrrd")
    small = img.array[:, :, 10:16]  # six slices through the lesion
    g = brain["grounder"]
    # slices not evenly spaced: grounding works, a NIfTI grid cannot hold them, the SEG can
    pos = [img.geometry.index_to_world(np.array([0.0, 0.0, 10 + k + (1.5 if k >= 3 else 0.0)])) for k in range(6)]
    write_series(small, img.geometry, tmp_path / "gap", positions=pos)
    res = g.ground_volume(tmp_path / "gap", PHRASES, masks=True)
    with pytest.raises(MedglipError, match=r"gap: the slices are not evenly spaced \(6\.5–16\.25 mm"):
        export_volume(res)
    assert set(export_volume(res, options=ExportOptions(outputs=("seg", "sr"))).files) >= {"seg.dcm", "sr.dcm"}
    # slices of different orientations: not one volume
    write_series(small, img.geometry, tmp_path / "tilted")
    import pydicom
    f = sorted((tmp_path / "tilted").iterdir())[2]
    ds = pydicom.dcmread(str(f))
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0.8, 0.6]
    ds.save_as(str(f))
    with pytest.raises(ReadError, match="tilted.*different ImageOrientationPatient"):
        g.ground_volume(tmp_path / "tilted", PHRASES, masks=True)
    # too large to mask: refused before anything is allocated or written
    out = tmp_path / "none"
    with pytest.raises(MedglipError, match=r"1,638,400 voxels \(256 × 256 × 25\) is above the label-map budget of 1,000,000"):
        export_volume(brain["results"]["nrrd"], options=ExportOptions(max_voxels=1_000_000)).write(out)
    assert not out.exists()
    # outputs the input cannot give, unknown outputs, results without masks
    with pytest.raises(MedglipError, match="'seg' needs DICOM input"):
        export_volume(brain["results"]["nrrd"], options=ExportOptions(outputs=("seg",)))
    with pytest.raises(MedglipError, match="unknown output.*'mesh'"):
        parse_outputs("nifti,mesh")
    with pytest.raises(MedglipError, match=r"brain1_image.nrrd: object 1 \(brain tumor\): slice 11 has a box but no mask; ground the volume with masks=True"):
        export_volume(g.ground_volume(SAMPLES / "brain1_image.nrrd", PHRASES))


def test_2d_dicom_gives_a_png_label_image_json_and_a_seg(brain, tmp_path):
    import highdicom as hd
    from PIL import Image

    g = tiny_grounder(tmp_path / "run2d")
    slice_file = sorted(brain["inputs"]["series"].iterdir())[12]
    res = g.ground_one(slice_file, ["brain tumor", "brain"], masks=True, top_k=3)
    bundle = export_image(res)
    paths = bundle.write(tmp_path / "out")
    assert set(paths) == {"masks.png", "labels.json", "seg.dcm"}
    labels = np.asarray(Image.open(paths["masks.png"]))
    side = json.loads(paths["labels.json"].read_text())
    assert labels.shape == res.image_size and len(side["labels"]) == sum(len(x) for x in res.groundings) == 6
    for e in side["labels"]:
        x0, y0, x1, y1 = np.round(e["box"]).astype(int)
        shown = labels == e["label"]
        assert shown.sum() == e["pixels_in_label_image"] and not shown[:y0].any() and not shown[y1:].any()
        assert not shown[:, :x0].any() and not shown[:, x1:].any()  # every label inside its own box
    seg = hd.seg.segread(str(paths["seg.dcm"]))
    src = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    assert src == str(res.dicom_headers[0].SOPInstanceUID)
    for e in side["labels"]:
        got = seg.get_pixels_by_source_instance([src], segment_numbers=[e["segment"]])[0, ..., 0] > 0
        x0, y0, x1, y1 = np.round(e["box"]).astype(int)
        assert got.sum() == e["pixels"] and got[y0:y1, x0:x1].all()  # a box-fill mask, whole in the SEG
    if DCIODVFY:
        r = subprocess.run([DCIODVFY, str(paths["seg.dcm"])], capture_output=True, text=True, timeout=120)
        assert not [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("Error")], r.stderr
    with pytest.raises(MedglipError, match="'seg' needs DICOM input"):
        export_image(g.ground_one(res.raw, ["brain"], masks=True), options=ExportOptions(outputs=("png", "seg")))


def test_a_multi_frame_source_with_sloppy_decimals_gives_a_valid_seg(brain, tmp_path):
    import highdicom as hd
    import pydicom
    from pydicom.uid import generate_uid

    series = [pydicom.dcmread(str(p)) for p in sorted(brain["inputs"]["series"].iterdir())]
    mf = hd.legacy.LegacyConvertedEnhancedMRImage(series, series_instance_uid=generate_uid(), series_number=7,
                                                  sop_instance_uid=generate_uid(), instance_number=1)
    with pydicom.config.disable_value_validation():  # as some tools write them
        mf.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = ["0.7812499999999999"] * 2
        mf.save_as(str(tmp_path / "enhanced.dcm"))
    res = brain["grounder"].ground_volume(tmp_path / "enhanced.dcm", PHRASES, masks=True)
    order = res.volume.meta["frame_order"]  # slice k is frame order[k] of the file
    bundle = export_volume(res)
    paths = bundle.write(tmp_path / "out")
    seg = hd.seg.segread(str(paths["seg.dcm"]))
    for e in json.loads(paths["labels.json"].read_text())["labels"]:
        mask = res.object_mask(e["object"]).dense(res.shape)
        ks = [k for k in range(res.shape[2]) if mask[:, :, k].any()]
        got = seg.get_pixels_by_source_frame(str(mf.SOPInstanceUID), [order[k] + 1 for k in ks],
                                             segment_numbers=[e["segment"]])[..., 0] > 0
        assert np.array_equal(got, np.stack([mask[:, :, k].T for k in ks])), e["phrase"]
    if DCIODVFY:
        for name in ("seg.dcm", "sr.dcm"):
            r = subprocess.run([DCIODVFY, str(paths[name])], capture_output=True, text=True, timeout=120)
            assert not [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("Error")], r.stdout + r.stderr
