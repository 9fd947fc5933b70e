"""Tests of medglip.io: geometry, pixel formats, DICOM (file/series/SEG), pictures, bad input."""

from __future__ import annotations

import copy
import struct
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import tifffile
from PIL import Image
from pydicom.uid import generate_uid

import medglip
from medglip.errors import CaseError, ReadError
from medglip.io import (ImageData, read_dicom_seg, read_dicom_series, read_image, read_label, read_mask_2d,
                        write_png)
from medglip.io._base import condense_error

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
BRAIN = SAMPLES / "brain1_image.nrrd"
BRAIN_LABEL = SAMPLES / "brain1_label.nrrd"
BREAST = SAMPLES / "breast1_image.nrrd"
BREAST_LABEL = SAMPLES / "breast1_label.nrrd"


def dcm(name: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.data.get_testdata_file(name)


def raw_dicom(name: str) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(dcm(name))


# --------------------------------------------------------------------------- NRRD / NIfTI geometry

def test_nrrd_geometry_matches_simpleitk():
    img = read_image(BRAIN)
    ref = sitk.ReadImage(str(BRAIN))
    assert img.array.shape == ref.GetSize() == (256, 256, 25)
    assert img.geometry.direction[4] == -1.0  # brain1 has -1 on the y axis
    for idx in [(0, 0, 0), (10, 200, 3), (255, 255, 24), (17, 3, 12)]:
        np.testing.assert_allclose(img.geometry.index_to_world(np.array(idx)),
                                   ref.TransformIndexToPhysicalPoint(idx), atol=1e-6)
        assert img.array[idx] == sitk.GetArrayFromImage(ref)[idx[::-1]]
    assert img.spacing_known and img.modality is None and img.meta["format"] == "nrrd"


def test_nrrd_volume_owns_its_voxels_in_fortran_order_without_a_transposed_copy():
    img = read_image(BRAIN)
    arr = img.array
    assert arr.flags.f_contiguous and arr.flags.owndata is False and arr.base.flags.owndata
    np.testing.assert_array_equal(arr, sitk.GetArrayFromImage(sitk.ReadImage(str(BRAIN))).T)
    arr[0, 0, 0] += 1  # writable, and not SimpleITK's buffer
    assert arr[0, 0, 0] == sitk.GetArrayFromImage(sitk.ReadImage(str(BRAIN)))[0, 0, 0] + 1


def test_nifti_ras_affine_agrees_with_lps_geometry(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(-1000, 1000, size=(7, 6, 5), dtype=np.int16)
    rot = np.array([[0.0, -1.0, 0.0], [0.8, 0.0, 0.6], [-0.6, 0.0, 0.8]])  # oblique, orthonormal
    affine = np.eye(4)
    affine[:3, :3] = rot * np.array([0.7, 1.3, 2.5])
    affine[:3, 3] = [12.0, -40.5, 7.25]
    path = tmp_path / "oblique.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    img = read_image(path)
    np.testing.assert_array_equal(img.array, data)
    np.testing.assert_allclose(img.geometry.affine, np.diag([-1, -1, 1, 1]) @ affine, atol=1e-5)
    np.testing.assert_allclose(img.geometry.spacing, [0.7, 1.3, 2.5], atol=1e-5)
    # the same file through SimpleITK (ITK's own NIfTI → LPS conversion)
    ref = sitk.ReadImage(str(path))
    for idx in [(0, 0, 0), (6, 5, 4), (3, 1, 2)]:
        np.testing.assert_allclose(img.geometry.index_to_world(np.array(idx)),
                                   ref.TransformIndexToPhysicalPoint(idx), atol=1e-4)


@pytest.mark.parametrize("klass", [nib.Nifti1Image, nib.Nifti2Image])
def test_nii_gz_inflated_by_isal_reads_as_nibabel_does(tmp_path, klass):
    import gzip

    from medglip.io import nifti

    assert nifti._gzip is not gzip  # isal is a dependency: the fast path is the one users get
    rng = np.random.default_rng(1)
    data = rng.integers(-1024, 3000, (17, 13, 9)).astype(np.int16)
    affine = np.array([[-0.7, 0, 0, 10], [0, 0.8, 0.1, -5], [0, 0, 2.5, 3], [0, 0, 0, 1]])
    path = tmp_path / "v.nii.gz"
    nib.save(klass(data, affine), str(path))
    img = read_image(path)
    np.testing.assert_array_equal(img.array, data)
    ref = nifti.affine_to_geometry(nib.load(str(path)).affine)
    assert img.geometry == ref and img.meta["format"] == "nifti"


def test_nrrd_to_nifti_roundtrip_keeps_geometry(tmp_path):
    sitk.WriteImage(sitk.ReadImage(str(BRAIN)), str(tmp_path / "b.nii.gz"))
    a, b = read_image(BRAIN), read_image(tmp_path / "b.nii.gz")
    assert a.geometry.same_grid(b.geometry)
    np.testing.assert_array_equal(a.array, b.array)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16", "uint32", "int32", "int64",
                                   "float32", "float64"])
@pytest.mark.parametrize("ext", [".nii.gz", ".nrrd", ".mha", ".tif"])
def test_pixel_types_come_through_intact(tmp_path, dtype, ext):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    vals = [info.min, info.max, 0, 1] if info else [-1.5e30, 3.25, 0.0, 1e-7]
    data = np.resize(np.array(vals, dtype=dtype), (4, 3, 5)).copy()
    path = tmp_path / f"x{ext}"
    if ext == ".nii.gz":
        nib.save(nib.Nifti1Image(data, np.eye(4), dtype=data.dtype), str(path))
    elif ext == ".tif":
        tifffile.imwrite(path, np.transpose(data, (2, 1, 0)), photometric="minisblack")  # (Z, Y, X)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(np.transpose(data, (2, 1, 0))), str(path))
    img = read_image(path)
    assert img.array.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(img.array, data)


# --------------------------------------------------------------------------- labels

def test_read_label_with_reference_and_mismatches(tmp_path):
    image = read_image(BRAIN)
    label = read_label(BRAIN_LABEL, image)
    assert label.array.shape == image.array.shape and np.issubdtype(label.array.dtype, np.integer)
    assert set(np.unique(label.array)) == {0, 1}
    ref = sitk.ReadImage(str(BRAIN_LABEL))
    shifted = sitk.Image(ref)
    shifted.SetOrigin(tuple(o + 5.0 for o in ref.GetOrigin()))
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nrrd"))
    with pytest.raises(CaseError, match="origin") as exc:
        read_label(tmp_path / "shifted.nrrd", image)
    assert "shifted.nrrd" in str(exc.value) and "brain1_image.nrrd" in str(exc.value)
    respaced = sitk.Image(ref)
    respaced.SetSpacing((1.0, 1.0, 6.5))
    sitk.WriteImage(respaced, str(tmp_path / "respaced.nrrd"))
    with pytest.raises(CaseError, match="spacing"):
        read_label(tmp_path / "respaced.nrrd", image)
    with pytest.raises(CaseError, match=r"shape \(45, 120, 21\)"):
        read_label(BREAST_LABEL, image)
    assert read_label(BREAST_LABEL, read_image(BREAST)).array.sum() > 0


def test_read_label_float_values(tmp_path):
    ok = np.zeros((4, 4, 2), np.float32)
    ok[1, 1, 1] = 3.0
    nib.save(nib.Nifti1Image(ok, np.eye(4)), str(tmp_path / "ok.nii"))
    lab = read_label(tmp_path / "ok.nii")
    assert lab.array.dtype == np.uint8 and lab.array[1, 1, 1] == 3
    bad = ok.copy()
    bad[0, 0, 0] = 0.5
    nib.save(nib.Nifti1Image(bad, np.eye(4)), str(tmp_path / "bad.nii"))
    with pytest.raises(ReadError, match="non-integral") as exc:
        read_label(tmp_path / "bad.nii")
    assert "bad.nii" in str(exc.value)


# --------------------------------------------------------------------------- pictures

def _pil(tmp_path: Path, name: str, im: Image.Image, **kw) -> Path:
    path = tmp_path / name
    im.save(path, **kw)
    return path


def test_png_jpeg_bmp_modes(tmp_path):
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    u16 = rng.integers(0, 65536, (5, 7)).astype(np.uint16)
    img = read_image(_pil(tmp_path, "g.png", Image.fromarray(grey)))
    assert img.array.shape == (5, 7) and img.geometry.ndim == 2 and not img.spacing_known
    np.testing.assert_array_equal(img.array, grey)
    np.testing.assert_array_equal(read_image(_pil(tmp_path, "c.png", Image.fromarray(rgb))).array, rgb)
    np.testing.assert_array_equal(read_image(_pil(tmp_path, "c.bmp", Image.fromarray(rgb))).array, rgb)
    a16 = read_image(_pil(tmp_path, "w.png", Image.fromarray(u16)))
    assert a16.array.dtype == np.uint16
    np.testing.assert_array_equal(a16.array, u16)
    rgba = np.dstack([rgb, np.full((5, 7), 128, np.uint8)])
    out = read_image(_pil(tmp_path, "a.png", Image.fromarray(rgba)))
    np.testing.assert_array_equal(out.array, rgb)
    assert out.meta["dropped_alpha"]
    la = read_image(_pil(tmp_path, "la.png", Image.fromarray(np.dstack([grey, grey]), mode="LA")))
    np.testing.assert_array_equal(la.array, grey)
    pal = Image.fromarray(grey % 4).convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    prgb = read_image(_pil(tmp_path, "p.png", pal)).array
    assert prgb.shape == (5, 7, 3) and (prgb[grey % 4 == 1] == [255, 0, 0]).all()
    jpg = read_image(_pil(tmp_path, "c.jpg", Image.fromarray(rgb), quality=95))
    assert jpg.array.shape == (5, 7, 3) and jpg.array.dtype == np.uint8
    assert read_image(tmp_path / "g.png", as_2d=False).array.shape == (7, 5, 1)


def test_tiff_2d_rgb_float_and_stack(tmp_path):
    rng = np.random.default_rng(2)
    f32 = rng.normal(size=(6, 9)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f32)
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif").array, f32)
    rgb = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "c.tiff", rgb, photometric="rgb")
    np.testing.assert_array_equal(read_image(tmp_path / "c.tiff").array, rgb)
    tifffile.imwrite(tmp_path / "r.tif", f32, resolution=(1000.0, 500.0), resolutionunit="CENTIMETER")
    r = read_image(tmp_path / "r.tif")
    assert r.spacing_known and r.geometry.spacing == pytest.approx((0.02, 0.01))
    stack = rng.integers(0, 4000, (4, 6, 9), dtype=np.uint16)  # (Z, Y, X)
    tifffile.imwrite(tmp_path / "s.tif", stack, photometric="minisblack")
    s = read_image(tmp_path / "s.tif")
    assert s.array.shape == (9, 6, 4) and s.geometry.spacing == (1.0, 1.0, 1.0)
    assert s.array[8, 5, 3] == stack[3, 5, 8]


def test_write_png_atomic_roundtrip(tmp_path):
    for arr in [np.arange(12, dtype=np.uint8).reshape(3, 4), np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000,
                np.arange(36, dtype=np.uint8).reshape(3, 4, 3)]:
        write_png(tmp_path / "sub" / "o.png", arr)
        back = read_image(tmp_path / "sub" / "o.png").array
        assert back.dtype == arr.dtype
        np.testing.assert_array_equal(back, arr)
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["o.png"]
    with pytest.raises(ValueError):
        write_png(tmp_path / "x.png", np.zeros((3, 4), np.float32))
    assert not (tmp_path / "x.png").exists()


def test_read_mask_2d_rules(tmp_path):
    m = np.zeros((40, 40), np.uint8)
    m[10:30, 5:25] = 255
    Image.fromarray(m).save(tmp_path / "m.jpg", quality=60)  # lossy like Kvasir-SEG masks
    assert len(np.unique(np.asarray(Image.open(tmp_path / "m.jpg")))) > 2
    out = read_mask_2d(tmp_path / "m.jpg")
    assert out.shape == (40, 40) and np.issubdtype(out.dtype, np.integer)
    assert np.mean(out == (m > 0)) > 0.98 and set(np.unique(out)) == {0, 1}
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[0:5, 0:5, 2] = 200
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_mask_2d(tmp_path / "rgb.png").sum() == 25
    lab = np.zeros((40, 40), np.uint8)
    lab[:5], lab[5:9] = 1, 2
    Image.fromarray(lab).save(tmp_path / "lab.png")
    np.testing.assert_array_equal(read_mask_2d(tmp_path / "lab.png"), lab)
    pal = Image.fromarray(lab, mode="L").convert("P")
    pal.putpalette([0, 0, 0, 255, 255, 255, 128, 0, 0] + [0] * 759)
    pal.save(tmp_path / "pal.png")
    np.testing.assert_array_equal(read_mask_2d(tmp_path / "pal.png"), lab)


# --------------------------------------------------------------------------- DICOM files

def test_dicom_ct_hu_and_geometry():
    ds = raw_dicom("CT_small.dcm")
    img = read_image(dcm("CT_small.dcm"))
    assert img.modality == "CT" and img.geometry.ndim == 3 and img.array.shape == (128, 128, 1)
    hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
    np.testing.assert_array_equal(img.array[:, :, 0].T, hu)
    assert img.array.dtype == np.int16
    np.testing.assert_allclose(img.geometry.origin, [float(v) for v in ds.ImagePositionPatient])
    np.testing.assert_allclose(img.geometry.spacing[:2], [float(v) for v in ds.PixelSpacing][::-1])
    # voxel (i=col, j=row) → IPP + col*colspacing*rowdir + row*rowspacing*coldir
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    want = (np.array([float(v) for v in ds.ImagePositionPatient]) + 5 * float(ds.PixelSpacing[1]) * iop[:3]
            + 9 * float(ds.PixelSpacing[0]) * iop[3:])
    np.testing.assert_allclose(img.geometry.index_to_world(np.array([5, 9, 0])), want, atol=1e-6)
    flat = read_image(dcm("CT_small.dcm"), as_2d=True)
    np.testing.assert_array_equal(flat.array, hu)
    assert flat.geometry.spacing == pytest.approx([float(v) for v in ds.PixelSpacing])
    assert flat.meta["geometry_3d"]["origin"] == pytest.approx(list(img.geometry.origin))


def test_dicom_cr_monochrome1_us_rgb_and_mr():
    ds = raw_dicom("RG1_UNCR.dcm")
    cr = read_image(dcm("RG1_UNCR.dcm"))
    assert cr.modality == "XR" and cr.array.shape == (ds.Rows, ds.Columns) and cr.meta["inverted_monochrome1"]
    np.testing.assert_array_equal(cr.array, (2**ds.BitsStored - 1) - ds.pixel_array)
    assert not cr.spacing_known  # its PixelSpacing is 0\0
    us = read_image(dcm("US1_UNCR.dcm"))
    assert us.modality == "US" and us.array.shape == (480, 640, 3) and us.geometry.ndim == 2
    mr_ds = raw_dicom("MR2_UNCR.dcm")
    mr = read_image(dcm("MR2_UNCR.dcm"), as_2d=True)
    assert mr.modality == "MR" and mr.array.dtype == np.float32
    np.testing.assert_allclose(mr.array, mr_ds.pixel_array * float(mr_ds.RescaleSlope)
                               + float(mr_ds.RescaleIntercept), rtol=1e-6)
    ybr = read_image(dcm("SC_ybr_full_uncompressed.dcm"))
    rgb = read_image(dcm("SC_rgb.dcm"))
    assert ybr.meta["converted_from"] == "YBR_FULL" and ybr.array.shape == rgb.array.shape == (100, 100, 3)
    assert np.abs(ybr.array.astype(int) - rgb.array).max() <= 8  # same picture, YBR rounding
    frames = read_image(dcm("SC_rgb_2frame.dcm"))
    assert frames.array.shape == (100, 100, 2, 3) and frames.meta["frame_axis"] == "frames"
    pal = read_image(dcm("OBXXXX1A.dcm"))
    assert pal.array.shape == (600, 800, 3) and pal.array.dtype == np.uint8 and pal.spacing_known


def test_dicom_enhanced_multiframe():
    ds = raw_dicom("eCT_Supplemental.dcm")
    img = read_image(dcm("eCT_Supplemental.dcm"))
    assert img.array.shape == (ds.Columns, ds.Rows, 2) and img.modality == "CT"
    iop = [float(v) for v in ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient]
    normal = np.cross(iop[:3], iop[3:])  # (0, 0, -1) here: slices are ordered by decreasing z
    pos = [[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
           for f in ds.PerFrameFunctionalGroupsSequence]
    first = min(pos, key=lambda p: float(np.dot(p, normal)))
    np.testing.assert_allclose(img.geometry.origin, first)
    np.testing.assert_allclose(img.geometry.direction_matrix[:, 2], normal)
    assert img.geometry.spacing[2] == pytest.approx(10.0)
    assert img.array.min() >= -1024


def _ct_slice(path: Path, pixels: np.ndarray, ipp, iop, series_uid: str, instance: int) -> str:
    ds = copy.deepcopy(raw_dicom("CT_small.dcm"))
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.astype(np.int16).tobytes()
    ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in iop]
    ds.PixelSpacing = ["0.5", "0.75"]
    ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.InstanceNumber = instance
    ds.save_as(path, enforce_file_format=True)
    return ds.SOPInstanceUID


def test_dicom_series_order_spacing_direction(tmp_path):
    row, col = np.array([0.0, 0.8, 0.6]), np.array([0.0, -0.6, 0.8])
    iop = list(row) + list(col)
    normal = np.cross(row, col)
    origin = np.array([10.0, -20.0, 30.0])
    uid = generate_uid()
    order = [3, 0, 4, 1, 2]  # shuffled file names and instance numbers
    for n, k in enumerate(order):
        px = np.full((6, 4), 1000 + 10 * k, np.int16)
        px[0, 0] = k
        _ct_slice(tmp_path / f"img{n:02d}", px, origin + 2.5 * k * normal, iop, uid, instance=10 - n)
    (tmp_path / "notes.txt").write_text("not dicom")
    vol = read_image(tmp_path)
    assert vol.array.shape == (4, 6, 5) and vol.modality == "CT"
    np.testing.assert_array_equal(vol.array[1, 1, :], [-24 + 10 * k for k in range(5)])  # HU, sorted
    np.testing.assert_array_equal(vol.array[0, 0, :], np.arange(5) - 1024)
    np.testing.assert_allclose(vol.geometry.spacing, [0.75, 0.5, 2.5], atol=1e-6)
    np.testing.assert_allclose(vol.geometry.direction_matrix, np.stack([row, col, normal], 1), atol=1e-6)
    np.testing.assert_allclose(vol.geometry.origin, origin, atol=1e-5)
    assert len(vol.meta["sop_instance_uids"]) == 5
    other = generate_uid()
    _ct_slice(tmp_path / "zz_other", np.zeros((6, 4), np.int16), origin, iop, other, 1)
    with pytest.raises(ReadError, match="2 DICOM series") as exc:
        read_dicom_series(tmp_path)
    assert uid in str(exc.value) and other in str(exc.value)
    assert read_dicom_series(tmp_path, series_uid=uid).array.shape == (4, 6, 5)
    assert read_image(tmp_path, series_uid=other).array.shape == (4, 6, 1)


def test_dicom_without_extension_and_preamble(tmp_path):
    data = Path(dcm("CT_small.dcm")).read_bytes()
    (tmp_path / "IM0001").write_bytes(data)
    assert read_image(tmp_path / "IM0001").array.shape == (128, 128, 1)


# --------------------------------------------------------------------------- DICOM-SEG

def test_dicom_seg_liver_matches_highdicom():
    import highdicom as hd

    maps = read_dicom_seg(dcm("liver.dcm"))
    geom = maps.geometry
    ((array, names),) = maps  # a list of (array, names) pairs: one map, no overlap
    assert names == {1: "Liver"}
    maps = maps.as_label_maps()
    assert maps[0].array.shape == (512, 512, 3) and maps[0].array.dtype == np.uint8
    assert geom.spacing == pytest.approx((0.810547, 0.810547, 1.0))
    assert geom.origin == pytest.approx((-235.2, -226.8, -128.69))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vol = hd.seg.segread(dcm("liver.dcm")).get_volume(combine_segments=True)
    ours = np.transpose(maps[0].array, (2, 1, 0))  # (k, rows, cols)
    if vol.affine[2, 0] < 0:  # highdicom stacks slices the other way along z
        ours = ours[::-1]
    np.testing.assert_array_equal(ours, vol.array)
    with pytest.raises(ReadError, match="read_dicom_seg"):
        read_image(dcm("liver.dcm"))


def test_dicom_seg_on_reference_grid(tmp_path):
    seg = raw_dicom("liver.dcm")
    refs = [str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
            for f in seg.PerFrameFunctionalGroupsSequence]
    iop = [1, 0, 0, 0, 1, 0]
    uid = generate_uid()
    for k in range(5):  # reference CT: z = -130.69 .. -126.69, the SEG covers k = 2, 3, 4
        path = tmp_path / f"ct{k}.dcm"
        ds_uid = _ct_slice(path, np.zeros((512, 512), np.int16), (-235.2, -226.8, -130.69 + k), iop, uid, k)
        assert ds_uid
    ref = read_image(tmp_path)
    # placed by position: the reference's SOP UIDs differ from the SEG's sources
    maps = read_dicom_seg(dcm("liver.dcm"), reference=ref).as_label_maps()
    geom = ref.geometry
    own = read_dicom_seg(dcm("liver.dcm")).as_label_maps()
    assert read_dicom_seg(dcm("liver.dcm"), reference=ref).geometry is ref.geometry
    assert maps[0].array.shape == (512, 512, 5)
    np.testing.assert_array_equal(maps[0].array[:, :, 2:], own[0].array)
    assert not maps[0].array[:, :, :2].any()
    ref.meta["sop_instance_uids"] = ["x", refs[0], "y", "z", "w"]  # UID wins over position
    ((shifted, _),) = read_dicom_seg(dcm("liver.dcm"), reference=ref)
    np.testing.assert_array_equal(shifted[:, :, 1], own[0].array[:, :, 0])
    small = ImageData(np.zeros((10, 10, 3)), geom, path="small.nrrd")
    with pytest.raises(CaseError, match="small.nrrd"):
        read_dicom_seg(dcm("liver.dcm"), reference=small)


# --------------------------------------------------------------------------- bad input

def _truncate(src: Path, dst: Path) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def test_bad_inputs_raise_read_error(tmp_path):
    nib.save(nib.Nifti1Image(np.arange(4000, dtype=np.int16).reshape(20, 20, 10), np.eye(4)), str(tmp_path / "v.nii"))
    nib.save(nib.Nifti1Image(np.arange(4000, dtype=np.int16).reshape(20, 20, 10), np.eye(4)), str(tmp_path / "v.nii.gz"))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(tmp_path / "p.png")
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    cases = {
        tmp_path / "missing.nrrd": "not found",
        tmp_path / "empty.nii.gz": "empty",
        _truncate(tmp_path / "v.nii", tmp_path / "t.nii"): "truncated",
        _truncate(tmp_path / "v.nii.gz", tmp_path / "t.nii.gz"): "truncated",
        _truncate(BRAIN, tmp_path / "t.nrrd"): "truncated",
        _truncate(tmp_path / "p.png", tmp_path / "t.png"): "truncated",
        _truncate(Path(dcm("CT_small.dcm")), tmp_path / "t.dcm"): "truncated",
    }
    for ext in (".nii", ".nii.gz", ".nrrd", ".mha", ".dcm", ".png", ".jpg", ".tif"):
        p = tmp_path / f"garbage{ext}"
        p.write_bytes(bytes(range(256)) * 8)
        cases[p] = "not a (readable|DICOM)|cannot read .* header"
    (tmp_path / "x.xyz").write_bytes(b"hello")
    cases[tmp_path / "x.xyz"] = "unsupported file type"
    for path, reason in cases.items():
        with pytest.raises(ReadError, match=reason) as exc:
            read_image(path)
        assert str(path) in str(exc.value)
        assert len(str(exc.value)) < 400 + len(str(path)), str(exc.value)


def _png_header_only(path: Path, width: int, height: int) -> None:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND")))


def test_huge_images_refused_before_allocation(tmp_path):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape((5000, 5000, 5000))
    hdr.set_data_dtype(np.int16)
    (tmp_path / "huge.nii").write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    with pytest.raises(ReadError, match="too large"):
        read_image(tmp_path / "huge.nii")
    _png_header_only(tmp_path / "huge.png", 40000, 40000)
    with pytest.raises(ReadError, match="too large"):
        read_image(tmp_path / "huge.png")
    (tmp_path / "huge.nrrd").write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 4000 4000 4000\n"
                                         b"encoding: raw\nendian: little\n\n" + b"\0" * 100)
    with pytest.raises(ReadError, match="too large"):
        read_image(tmp_path / "huge.nrrd")
    with pytest.raises(ReadError, match="too large"):
        read_image(BRAIN, max_pixels=1000)
    ds = copy.deepcopy(raw_dicom("CT_small.dcm"))
    ds.NumberOfFrames = 60000
    ds.Rows, ds.Columns = 6000, 6000
    ds.save_as(tmp_path / "huge.dcm")
    with pytest.raises(ReadError, match="too large"):
        read_image(tmp_path / "huge.dcm")


def test_condense_simpleitk_error():
    with pytest.raises(RuntimeError) as exc:
        sitk.ReadImage("/nonexistent/really.nrrd")
    msg = condense_error(exc.value)
    assert len(msg) < 260 and "\n" not in msg


def test_png_compress_level_changes_the_bytes_not_the_pixels():
    import io as _io

    from PIL import Image

    from medglip.io.raster import png_bytes

    rng = np.random.default_rng(0)
    arr = (np.add.outer(np.arange(256), np.arange(256)) // 3 % 256).astype(np.uint8)
    arr = np.stack([arr, arr[::-1], (arr + rng.integers(0, 4, arr.shape)).astype(np.uint8)], -1)
    fast, small = png_bytes(arr, compress_level=1), png_bytes(arr, compress_level=9)
    assert fast != small and len(fast) > len(small)
    for b in (fast, small):
        assert np.array_equal(np.asarray(Image.open(_io.BytesIO(b))), arr)
