"""Read policies (issue 14): decoded-byte limits before allocating, float64 → float32 while reading,
deadlines, and DICOM parsing that cannot be made to loop over a gigabyte of empty elements."""

from __future__ import annotations

import io
import struct
import time

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
import tifffile
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import attacks
from medglip.errors import ReadError
from medglip.io import read_image
from medglip.io.policy import ReadPolicy, ReadTimeout, read_policy

RNG = np.random.default_rng(0)


def _write(kind, path, arr):
    if kind == "nii":
        nib.save(nib.Nifti1Image(arr, np.eye(4)), str(path))
    elif kind == "tif":
        tifffile.imwrite(path, arr, tile=(32, 32), compression="zlib", photometric="minisblack")
    else:
        sitk.WriteImage(sitk.GetImageFromArray(arr), str(path))
    return path


@pytest.mark.parametrize("kind,name,shape", [("nii", "v.nii.gz", (40, 30, 9)), ("nii", "v.nii", (20, 10, 3, 2)),
                                             ("tif", "a.tif", (70, 50)), ("tif", "s.tif", (4, 33, 40)),
                                             ("nrrd", "v.nrrd", (5, 20, 30))])
def test_float64_is_float32_when_read_under_the_policy(tmp_path, kind, name, shape):
    arr = RNG.normal(size=shape) * 1e3
    path = _write(kind, tmp_path / name, arr)
    plain = read_image(path)
    with read_policy(ReadPolicy(float32=True)):
        small = read_image(path)
    assert plain.array.dtype == np.float64 and small.array.dtype == np.float32
    assert np.array_equal(plain.array.astype(np.float32), small.array) and small.geometry == plain.geometry


def test_decoded_bytes_are_checked_and_charged_before_allocating(tmp_path):
    path = attacks.float64_nifti_gz(tmp_path / "big.nii.gz", (400, 400, 200))  # 256 MB as float64, 128 MB as float32
    charged = []
    with read_policy(ReadPolicy(max_bytes=100 << 20, float32=True, charge=lambda n, p: charged.append(n))):
        with pytest.raises(ReadError, match=r"image too large: it decodes to 128,000,000 bytes .* limit of 104,857,600"):
            read_image(path)
    assert charged == []  # refused before any charge
    with read_policy(ReadPolicy(max_bytes=200 << 20, float32=True, charge=lambda n, p: charged.append(n))):
        img = read_image(path)
    assert img.array.dtype == np.float32 and charged == [128_000_000]


def test_a_charge_that_refuses_stops_the_read(tmp_path):
    path = _write("tif", tmp_path / "a.tif", RNG.random((64, 64)))

    class Busy(ReadError):
        pass

    def refuse(n, p):
        raise Busy(p, f"no room for {n} bytes")

    with read_policy(ReadPolicy(charge=refuse)), pytest.raises(Busy, match="no room for 32768 bytes"):
        read_image(path)


def test_a_passed_deadline_stops_the_read(tmp_path):
    path = _write("nii", tmp_path / "v.nii.gz", RNG.random((10, 10, 10)))
    with read_policy(ReadPolicy(deadline=time.monotonic() - 1)), pytest.raises(ReadTimeout, match="time allowed"):
        read_image(path)


def test_a_dicom_header_followed_by_zeros_is_refused_at_once(tmp_path):
    for pixels in (True, False):
        path = tmp_path / f"z{pixels}.dcm"
        path.write_bytes(attacks.dicom_header(pixels=pixels) + bytes(64 << 20))
        t0 = time.perf_counter()
        with pytest.raises(ReadError, match=r"\(0000,0000\) at byte .* out of order"):
            read_image(path)
        assert time.perf_counter() - t0 < 5.0  # parsing the 8 M empty elements took minutes


def test_a_dicom_element_longer_than_the_file_is_refused(tmp_path):
    data = bytearray(attacks.dicom_header(pixels=True))
    at = data.index(struct.pack("<HH", 0x7FE0, 0x0010))  # PixelData: OW, 4-byte length at +8
    data[at + 8: at + 12] = struct.pack("<I", 1 << 30)
    (tmp_path / "long.dcm").write_bytes(bytes(data))
    with pytest.raises(ReadError, match=r"\(7FE0,0010\) at byte .* declares 1,073,741,824 bytes"):
        read_image(tmp_path / "long.dcm")


def _dicom_with_endless_item(content: bytes) -> bytes:
    """A small valid header, then an undefined-length sequence whose undefined-length item holds ``content``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.Modality = "OT"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    seq = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    return buf.getvalue() + seq + content


def test_element_floods_inside_a_sequence_are_bounded(tmp_path):
    path = tmp_path / "zeros.dcm"
    path.write_bytes(_dicom_with_endless_item(bytes(4 << 20)))  # 512 k empty elements inside one item
    t0 = time.perf_counter()
    with pytest.raises(ReadError, match="a run of zeros at byte"):
        read_image(path)
    assert time.perf_counter() - t0 < 1.0
    path = tmp_path / "flood.dcm"
    element = struct.pack("<HH2sHI", 0x0008, 0x0000, b"UL", 4, 0)  # the same tiny element, 100 k times
    path.write_bytes(_dicom_with_endless_item(element * 100_000))
    with read_policy(ReadPolicy(max_elements=20_000)), pytest.raises(ReadError, match="more than 20,000 DICOM elements"):
        read_image(path)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "rtdose.dcm", "SC_rgb.dcm"])
def test_guarded_dicom_parsing_reads_real_files_as_before(name):
    path = get_testdata_file(name)
    img = read_image(path)
    ds = pydicom.dcmread(path)
    assert img.array.size == ds.pixel_array.size
    if name == "CT_small.dcm":  # integral rescale done in integers: same values as in float64
        want = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert img.array.dtype == np.int16 and np.array_equal(img.array[:, :, 0].T, want)


def test_a_16bit_rgb_png_is_limited_by_its_pixels_not_its_values(tmp_path):
    path = attacks.png16_rgb(tmp_path / "rgb16.png", 300, 200)  # 60,000 pixels, 180,000 values
    img = read_image(path, max_pixels=60_000)
    assert img.array.shape == (200, 300, 3) and img.array.dtype == np.uint16
    with pytest.raises(ReadError, match="image too large"):
        read_image(path, max_pixels=59_999)
