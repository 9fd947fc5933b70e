"""Inputs read once (medglip.infer.inputs) and turned into model pixels (medglip.core.pipeline)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medglip.core.intensity import CT_WINDOWS, looks_like_hu, window_to_uint8
from medglip.core.pipeline import InputConfig, model_pixels, picture
from medglip.errors import MedglipError
from medglip.infer.inputs import InputImage, Volume, read_image_input, read_input, read_volume_input, resolve_modality

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medglip" / "samples" / "pyradiomics"


def _testdata(name: str) -> str:
    import pydicom.data  # pydicom-data is a test dependency: never skipped

    path = pydicom.data.get_testdata_file(name)
    assert path, f"pydicom test file {name} missing"
    return path


def _pixels(x, modality=None):
    item = read_image_input(x)
    return model_pixels(item.raw, modality or item.modality)


def test_uint8_arrays_and_pngs_are_used_as_they_are(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 50), dtype=np.uint8)
    rgb = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    assert np.array_equal(_pixels(grey)[0], grey)
    assert np.array_equal(_pixels(rgb)[0], rgb)
    rgba = np.concatenate([rgb, np.full((30, 50, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(_pixels(rgba)[0], rgb)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(rgb).save(tmp_path / "c.png")
    item = read_image_input(tmp_path / "g.png")
    pix, rec = model_pixels(item.raw, item.modality)
    assert np.array_equal(pix, grey) and item.modality is None and rec["mode"] == "identity"
    assert np.array_equal(_pixels(str(tmp_path / "c.png"))[0], rgb)
    assert np.array_equal(_pixels(Image.fromarray(rgb))[0], rgb)
    assert _pixels(Image.fromarray(rgb).convert("P").convert("RGB"))[0].shape == rgb.shape


def test_ct_is_three_windows_as_channels_other_arrays_percentile_normalised():
    hu = np.full((20, 20), -1000, np.int16)
    hu[5:15, 5:15] = 40  # soft tissue
    hu[8:10, 8:10] = 1000  # bone
    assert looks_like_hu(hu)
    pix, rec = model_pixels(hu, None)  # HU-like values of unknown modality: CT
    assert rec["mode"] == "ct_windows" and pix.shape == (20, 20, 3)
    for c, name in enumerate(("lung", "soft_tissue", "bone")):
        assert np.array_equal(pix[..., c], window_to_uint8(hu, *CT_WINDOWS[name]))
    lo, hi = CT_WINDOWS["soft_tissue"]
    assert pix[6, 6, 1] == round((40 - lo) / (hi - lo) * 255)
    assert pix[0, 0, 0] > 0 and pix[0, 0, 1] == 0  # -1000 HU: inside the lung window, below soft tissue
    # pictures: one window in grey, soft tissue unless asked (a window that is no channel needs raw values)
    assert np.array_equal(picture(pix, rec), pix[..., 1])
    assert np.array_equal(picture(pix, rec, window="lung"), pix[..., 0])
    assert np.array_equal(picture(pix, rec, window="brain", raw=hu), window_to_uint8(hu, *CT_WINDOWS["brain"]))
    with pytest.raises(MedglipError, match="brain"):
        picture(pix, rec, window="brain")
    mr = np.linspace(0, 5000, 400, dtype=np.float32).reshape(20, 20)
    assert not looks_like_hu(mr)
    pm, rm = model_pixels(mr, None)
    assert rm["mode"] == "percentile" and pm.min() == 0 and pm.max() == 255 and pm.ndim == 2
    assert np.array_equal(picture(pm, rm), pm)
    # the caller's modality overrides the heuristic
    assert model_pixels(hu, "MR")[1]["mode"] == "percentile"
    assert model_pixels(mr, "CT")[1]["mode"] == "ct_windows"
    # the windows are the config's: a model made with others gets other pixels
    custom = InputConfig(ct_windows=((-100.0, 100.0),) * 3)
    assert np.array_equal(model_pixels(hu, "CT", custom)[0][..., 2], window_to_uint8(hu, -100, 100))


def test_percentiles_are_per_image_so_a_slice_alone_equals_the_slice_in_its_volume():
    rng = np.random.default_rng(1)
    vol = rng.normal(500, 100, (16, 16, 6)).astype(np.float32)
    vol[..., 5] *= 3  # a slice much brighter than the others
    k = 2
    alone = model_pixels(np.ascontiguousarray(vol[:, :, k]), "MR")[0]
    within = model_pixels(vol[:, :, k], "MR")[0]  # a strided view, as volume grounding cuts it
    assert np.array_equal(alone, within)


def test_ct_dicom_is_windowed_and_2d_with_its_modality():
    item = read_image_input(_testdata("CT_small.dcm"))
    pix, rec = model_pixels(item.raw, item.modality)
    assert item.modality == "CT" and pix.shape == (128, 128, 3) and pix.dtype == np.uint8
    assert rec["mode"] == "ct_windows"
    assert 0 < pix.mean() < 255


def test_ultrasound_dicom_keeps_its_colour_pixels():
    from medglip.io import read_image
    path = _testdata("US1_UNCR.dcm")
    item = read_image_input(path)
    pix, _ = model_pixels(item.raw, item.modality)
    assert item.modality == "US" and pix.shape == (480, 640, 3)
    assert np.array_equal(pix, read_image(path).array)


def test_volumes_given_as_2d_are_refused_with_advice(tmp_path):
    with pytest.raises(MedglipError, match="ground_volume"):
        read_image_input(SAMPLES / "brain1_image.nrrd")
    import nibabel as nib
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 4), np.int16), np.eye(4)), str(tmp_path / "v.nii.gz"))
    with pytest.raises(MedglipError, match="ground_volume"):
        read_image_input(tmp_path / "v.nii.gz")
    with pytest.raises(MedglipError, match="ground_volume"):
        read_image_input(np.zeros((8, 9, 10), np.float32))
    with pytest.raises(MedglipError, match="missing.png"):
        read_image_input(tmp_path / "missing.png")
    with pytest.raises(MedglipError, match="type"):
        read_input({"not": "an image"})
    with pytest.raises(MedglipError, match="3D"):
        read_volume_input(np.zeros((4, 5), np.float32))
    with pytest.raises(MedglipError, match="2D image"):
        read_volume_input(_testdata("CT_small.dcm"))


def test_a_one_slice_nifti_is_shown_in_radiological_display_orientation(tmp_path):
    import nibabel as nib
    arr = np.random.default_rng(0).random((8, 9, 1)).astype(np.float32) * 10
    arr[0, 0, 0] = 1000.0
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "s.nii.gz"))
    item = read_image_input(tmp_path / "s.nii.gz")
    pix, _ = model_pixels(item.raw, "MR")
    assert pix.shape == (9, 8) and item.meta["plane"] == "axial"
    # identity RAS affine: +i points to the patient's right, +j anterior. Voxel (0, 0) is the most
    # left and most posterior one: the image's right column and bottom row.
    row, col = np.unravel_index(int(np.argmax(pix)), pix.shape)
    assert (row, col) == (8, 7)
    assert np.allclose(np.array(item.meta["pixel_to_voxel"]) @ np.array([col, row, 0, 1.0]), [0, 0, 0])


def test_modality_resolution_order():
    assert resolve_modality("mri", "CT", lambda: "XR") == ("MR", "caller")
    assert resolve_modality(None, "CT", lambda: "XR") == ("CT", "metadata")
    assert resolve_modality(None, "OT", lambda: "XR") == ("XR", "classifier")  # unknown DICOM value
    assert resolve_modality(None, None, lambda: "US") == ("US", "classifier")
    with pytest.raises(MedglipError, match="unknown modality 'banana'"):
        resolve_modality("banana", None, lambda: "XR")
    with pytest.raises(MedglipError, match="modality is unknown"):
        resolve_modality(None, None, None)


def test_read_input_reads_volumes_and_wraps_arrays():
    v = read_volume_input(SAMPLES / "breast1_image.nrrd")
    assert isinstance(v, Volume) and v.array.shape == (45, 120, 21) and v.geometry.ndim == 3
    a = read_volume_input(np.zeros((4, 5, 6)))
    assert isinstance(a, Volume) and a.geometry.spacing == (1.0, 1.0, 1.0)
    assert isinstance(read_input(np.zeros((5, 6, 7))), Volume)
    assert isinstance(read_input(np.zeros((5, 6, 3))), InputImage)
    assert read_input(a) is a  # already read: handed back as it is
    assert isinstance(read_input(np.zeros((4, 5))), InputImage)


def test_pixel_spacing_is_kept_for_dicom_and_one_slice_volumes_but_not_for_pictures(tmp_path):
    import nibabel as nib
    import pydicom
    path = _testdata("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert read_image_input(path).meta["pixel_spacing"] == pytest.approx([float(v) for v in ds.PixelSpacing])
    affine = np.diag([0.7, 1.3, 5.0, 1.0])  # i: 0.7 mm, j: 1.3 mm; display rows run along j
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 1), np.float32), affine), str(tmp_path / "s.nii.gz"))
    item = read_image_input(tmp_path / "s.nii.gz")
    assert item.raw.shape == (9, 8) and item.meta["pixel_spacing"] == pytest.approx([1.3, 0.7])
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "p.png")
    assert "pixel_spacing" not in read_image_input(tmp_path / "p.png").meta


def test_read_input_tells_volumes_from_2d_inputs(tmp_path):
    import nibabel as nib
    assert isinstance(read_input(SAMPLES / "brain1_image.nrrd"), Volume)
    assert isinstance(read_input(_testdata("emri_small.dcm")), Volume)  # multi-frame MR DICOM
    assert isinstance(read_input(_testdata("CT_small.dcm")), InputImage)
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 1), np.float32), np.eye(4)), str(tmp_path / "one.nii.gz"))
    assert isinstance(read_input(tmp_path / "one.nii.gz"), InputImage)
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "p.png")
    assert isinstance(read_input(tmp_path / "p.png"), InputImage)
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(MedglipError, match="bad.nii.gz"):
        read_input(tmp_path / "bad.nii.gz")
