"""Inputs → display images and modality resolution (medglip.infer.preprocess)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medglip.errors import MedglipError
from medglip.infer.preprocess import (ct_window, load_volume, looks_like_hu, resolve_modality, to_display,
                                      to_uint8)

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medglip" / "samples" / "pyradiomics"


def _testdata(name: str) -> str:
    import pydicom.data  # pydicom-data is a test dependency: never skipped

    path = pydicom.data.get_testdata_file(name)
    assert path, f"pydicom test file {name} missing"
    return path


def test_uint8_arrays_and_pngs_are_used_as_they_are(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (30, 50), dtype=np.uint8)
    rgb = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    assert np.array_equal(to_display(grey).pixels, grey)
    assert np.array_equal(to_display(rgb).pixels, rgb)
    rgba = np.concatenate([rgb, np.full((30, 50, 1), 255, np.uint8)], axis=2)
    assert np.array_equal(to_display(rgba).pixels, rgb)
    Image.fromarray(grey).save(tmp_path / "g.png")
    Image.fromarray(rgb).save(tmp_path / "c.png")
    d = to_display(tmp_path / "g.png")
    assert np.array_equal(d.pixels, grey) and d.modality is None and d.intensity["mode"] == "identity"
    assert np.array_equal(to_display(str(tmp_path / "c.png")).pixels, rgb)
    assert np.array_equal(to_display(Image.fromarray(rgb)).pixels, rgb)
    assert np.array_equal(to_display(Image.fromarray(rgb).convert("P").convert("RGB")).pixels.shape, rgb.shape)


def test_hu_arrays_are_windowed_other_arrays_percentile_normalised():
    hu = np.full((20, 20), -1000, np.int16)
    hu[5:15, 5:15] = 40  # soft tissue
    hu[8:10, 8:10] = 1000  # bone
    assert looks_like_hu(hu)
    d = to_display(hu)
    lo, hi = ct_window("soft_tissue")
    assert d.intensity["mode"] == "window" and (d.intensity["low"], d.intensity["high"]) == (lo, hi)
    assert d.pixels[0, 0] == 0 and d.pixels[9, 9] == 255
    assert d.pixels[6, 6] == round((40 - lo) / (hi - lo) * 255)
    lung = to_display(hu, window="lung").pixels
    assert lung[6, 6] > 200 and lung[0, 0] > 0  # -1000 HU inside the lung window
    mr = np.linspace(0, 5000, 400, dtype=np.float32).reshape(20, 20)
    assert not looks_like_hu(mr)
    dm = to_display(mr)
    assert dm.intensity["mode"] == "percentile" and dm.pixels.min() == 0 and dm.pixels.max() == 255
    # a caller's modality overrides the heuristic
    assert to_display(hu, modality="MR").intensity["mode"] == "percentile"
    assert to_uint8(mr, "CT")[1]["mode"] == "window"


def test_ct_dicom_is_windowed_and_2d_with_its_modality():
    d = to_display(_testdata("CT_small.dcm"))
    assert d.modality == "CT" and d.pixels.shape == (128, 128) and d.pixels.dtype == np.uint8
    assert d.intensity["mode"] == "window" and d.intensity["window"] == "soft_tissue"
    assert 0 < d.pixels.mean() < 255


def test_ultrasound_dicom_keeps_its_colour_pixels():
    from medglip.io import read_image
    path = _testdata("US1_UNCR.dcm")
    d = to_display(path)
    assert d.modality == "US" and d.pixels.shape == (480, 640, 3)
    assert np.array_equal(d.pixels, read_image(path).array)


def test_volumes_given_to_ground_are_refused_with_advice(tmp_path):
    with pytest.raises(MedglipError, match="ground_volume"):
        to_display(SAMPLES / "brain1_image.nrrd")
    import nibabel as nib
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 4), np.int16), np.eye(4)), str(tmp_path / "v.nii.gz"))
    with pytest.raises(MedglipError, match="ground_volume"):
        to_display(tmp_path / "v.nii.gz")
    with pytest.raises(MedglipError, match="ground_volume"):
        to_display(np.zeros((8, 9, 10), np.float32))
    with pytest.raises(MedglipError, match="not found"):
        to_display(tmp_path / "missing.png")
    with pytest.raises(MedglipError, match="type"):
        to_display({"not": "an image"})


def test_a_one_slice_nifti_is_shown_in_radiological_display_orientation(tmp_path):
    import nibabel as nib
    arr = np.random.default_rng(0).random((8, 9, 1)).astype(np.float32) * 10
    arr[0, 0, 0] = 1000.0
    nib.save(nib.Nifti1Image(arr, np.eye(4)), str(tmp_path / "s.nii.gz"))
    d = to_display(tmp_path / "s.nii.gz", modality="MR")
    assert d.pixels.shape == (9, 8) and d.meta["plane"] == "axial"
    # identity RAS affine: +i points to the patient's right, +j anterior. Voxel (0, 0) is the most
    # left and most posterior one: the image's right column and bottom row.
    row, col = np.unravel_index(int(np.argmax(d.pixels)), d.pixels.shape)
    assert (row, col) == (8, 7)
    assert np.allclose(np.array(d.meta["pixel_to_voxel"]) @ np.array([col, row, 0, 1.0]), [0, 0, 0])


def test_modality_resolution_order():
    assert resolve_modality("mri", "CT", lambda: "XR") == ("MR", "caller")
    assert resolve_modality(None, "CT", lambda: "XR") == ("CT", "metadata")
    assert resolve_modality(None, "OT", lambda: "XR") == ("XR", "classifier")  # unknown DICOM value
    assert resolve_modality(None, None, lambda: "US") == ("US", "classifier")
    with pytest.raises(MedglipError, match="unknown modality 'banana'"):
        resolve_modality("banana", None, lambda: "XR")
    with pytest.raises(MedglipError, match="modality is unknown"):
        resolve_modality(None, None, None)


def test_load_volume_reads_files_and_wraps_arrays():
    v = load_volume(SAMPLES / "breast1_image.nrrd")
    assert v.array.shape == (45, 120, 21) and v.geometry.ndim == 3
    a = load_volume(np.zeros((4, 5, 6)))
    assert a.geometry.spacing == (1.0, 1.0, 1.0)
    with pytest.raises(MedglipError, match="3D"):
        load_volume(np.zeros((4, 5)))


def test_pixel_spacing_is_kept_for_dicom_and_one_slice_volumes_but_not_for_pictures(tmp_path):
    import nibabel as nib
    import pydicom
    path = _testdata("CT_small.dcm")
    ds = pydicom.dcmread(path)
    d = to_display(path)
    assert d.meta["pixel_spacing"] == pytest.approx([float(v) for v in ds.PixelSpacing])  # (row, col) mm
    affine = np.diag([0.7, 1.3, 5.0, 1.0])  # i: 0.7 mm, j: 1.3 mm; display rows run along j
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 1), np.float32), affine), str(tmp_path / "s.nii.gz"))
    d = to_display(tmp_path / "s.nii.gz", modality="MR")
    assert d.pixels.shape == (9, 8) and d.meta["pixel_spacing"] == pytest.approx([1.3, 0.7])
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "p.png")
    assert "pixel_spacing" not in to_display(tmp_path / "p.png").meta


def test_is_volume_input_tells_volumes_from_2d_inputs(tmp_path):
    import nibabel as nib
    from medglip.infer.preprocess import is_volume_input
    assert is_volume_input(SAMPLES / "brain1_image.nrrd")
    assert is_volume_input(_testdata("emri_small.dcm"))  # multi-frame MR DICOM
    assert not is_volume_input(_testdata("CT_small.dcm"))
    nib.save(nib.Nifti1Image(np.zeros((8, 9, 1), np.float32), np.eye(4)), str(tmp_path / "one.nii.gz"))
    assert not is_volume_input(tmp_path / "one.nii.gz")
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(tmp_path / "p.png")
    assert not is_volume_input(tmp_path / "p.png") and not is_volume_input(np.zeros((4, 4, 4)))
    assert is_volume_input(tmp_path)  # a folder: a DICOM series
    (tmp_path / "bad.nii.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(MedglipError, match="bad.nii.gz"):
        is_volume_input(tmp_path / "bad.nii.gz")
