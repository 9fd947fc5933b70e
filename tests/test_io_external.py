"""No input file makes a reader open another file (issue: an upload made the service return /etc/passwd).

Every case here read another file before the fix: a NRRD / MetaImage header padded past the 64 KiB the
old check looked at, or written in a way its parser read differently from ITK's (a ':' separator, a line
without separator that makes MetaIO swallow the next line's key, a lowercase key, a lone '\\r'); a
``.hdr`` whose pixels are in the ``.img`` beside it; an OME-TIFF naming a TIFF in another folder; a
picture of a format the readers do not claim to read; a link out of the folder reads are confined to.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image

from medglip.errors import ReadError
from medglip.io import read_dicom_series, read_image
from medglip.io.itk import MAX_HEADER_BYTES
from medglip.io.policy import ReadPolicy, read_policy

SECRET = bytes(range(64))  # a 4 x 4 x 4 uint8 "volume" elsewhere on the disk
NRRD = "NRRD0004\ntype: uint8\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
MHA = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"


@pytest.fixture()
def secret(tmp_path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "secret.raw").write_bytes(SECRET)
    return folder / "secret.raw"


def _write(folder: Path, name: str, text: str, tail: bytes = bytes(64)) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(text.encode("latin-1") + tail)
    return path


def _never_reads(path: Path, *, match: str | None = None) -> ReadError:
    """``path`` is refused with a ReadError naming it (reading it must never give the secret's bytes)."""
    try:
        img = read_image(path)
    except ReadError as exc:
        assert path.name in str(exc)
        if match is not None:
            assert match in exc.reason, exc.reason
        return exc
    assert bytes(np.asarray(img.array).ravel(order="F")[:64].astype(np.uint8)) != SECRET, "read the other file"
    pytest.fail(f"{path.name} was read; expected a refusal")


# ------------------------------------------------------------------------------------- the probe
@pytest.mark.parametrize("kind", ["nrrd", "mha"])
def test_a_header_padded_past_64_kib_cannot_name_another_file(tmp_path, secret, kind):
    if kind == "nrrd":
        text = NRRD + "# padding\n" * 8000 + f"data file: {secret}\n\n"  # 80 KB of comments
    else:
        text = MHA + "Comment = padding\n" * 5000 + f"ElementDataFile = {secret}\n"
    path = _write(tmp_path / "up", f"evil.{kind}", text)
    assert path.stat().st_size > 64 * 1024
    _never_reads(path, match="outside its own folder")
    with read_policy(ReadPolicy(data_files="refuse")):  # what the service reads uploads under
        _never_reads(path, match="separate data file")


def test_a_header_that_does_not_end_within_the_bytes_read_is_refused(tmp_path, secret):
    path = _write(tmp_path / "up", "long.nrrd", NRRD + "# x\n" * (MAX_HEADER_BYTES // 4 + 10) + f"data file: {secret}\n\n")
    _never_reads(path, match="does not end within")
    path = _write(tmp_path / "up", "long.mha", MHA + "Comment = x\n" * (MAX_HEADER_BYTES // 12 + 10)
                  + f"ElementDataFile = {secret}\n")
    _never_reads(path, match="does not end")


# ------------------------------------------------------------------- headers ITK parses differently
VARIANTS = {  # each made ITK read the other file, and the old check let it through (or would, padded)
    "meta_colon.mha": MHA + "ElementDataFile: {s}\n",
    "meta_tab.mha": MHA + "ElementDataFile\t=\t{s}\n",
    "meta_leading_space.mha": MHA + "   ElementDataFile = {s}\n",
    "meta_line_without_separator.mha": MHA + "Foo\nElementDataFile = LOCAL\nElementDataFile = {s}\n",
    "meta_numbers_over_two_lines.mha": MHA.replace("DimSize = 4 4 4", "DimSize = 4 4\n4") + "ElementDataFile = {s}\n",
    "meta_lowercase_first.mha": MHA + "elementdatafile = LOCAL\nElementDataFile = {s}\n",
    "meta_cr_in_a_value.mha": MHA + "Comment = x\rElementDataFile = LOCAL\nElementDataFile = {s}\n",
    "meta_in_a_comment.mha": MHA + "Comment = x ElementDataFile = LOCAL\nElementDataFile = {s}\n",
    "nrrd_cr_lines.nrrd": NRRD.replace("\n", "\r") + "data file: {s}\r\r",
    "nrrd_upper.nrrd": NRRD + "DATA FILE: {s}\n\n",
    "nrrd_datafile.nrrd": NRRD + "datafile: {s}\n\n",
    "nrrd_keyvalue_trick.nrrd": NRRD + "data file: {s}:=x\n\n",
    "nrrd_detached.nhdr": NRRD + "data file: {s}\n",
    "nrrd_list.nhdr": NRRD + "data file: LIST\n{s}\n",
    "nrrd_list_after_blank.nhdr": NRRD + "data file: LIST\nok.raw\n\n{s}\n",
    "nrrd_pattern.nhdr": NRRD + "data file: {d}/sec%03d.raw 0 0 1\n",
    "meta_list.mha": MHA + "ElementDataFile = LIST\n{s}\n",
    "meta_relative_up.mha": MHA + "ElementDataFile = ../elsewhere/secret.raw\n",
    "meta_subfolder.mhd": MHA + "ElementDataFile = sub/secret.raw\n",
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_no_spelling_of_a_header_makes_itk_read_another_file(tmp_path, secret, name):
    (secret.parent / "sec000.raw").write_bytes(SECRET)
    up = tmp_path / "up"
    (up / "sub").mkdir(parents=True)
    (up / "sub" / "secret.raw").write_bytes(SECRET)
    (up / "ok.raw").write_bytes(bytes(64))
    text = VARIANTS[name].format(s=secret, d=secret.parent)
    path = _write(up, name, text, b"" if name.endswith(".nhdr") else bytes(64))
    _never_reads(path)
    with read_policy(ReadPolicy(data_files="refuse")):
        _never_reads(path)


def test_a_data_file_beside_its_header_is_read_unless_the_policy_refuses_it(tmp_path, secret):
    data = np.arange(64, dtype=np.uint8) * 3
    (tmp_path / "scan.raw").write_bytes(data.tobytes())
    mhd = _write(tmp_path, "scan.mhd", MHA + "ElementDataFile = scan.raw\n", b"")
    nhdr = _write(tmp_path, "scan.nhdr", NRRD + "data file: ./scan.raw\n", b"")
    for path in (mhd, nhdr):  # the .mhd + .raw of PROMISE12 or CAMUS
        np.testing.assert_array_equal(read_image(path).array.ravel(order="F"), data)
        with read_policy(ReadPolicy(data_files="refuse")):
            _never_reads(path, match="separate data file")
    os.symlink(secret, tmp_path / "link.raw")  # a plain name, but a link out of the folder
    _never_reads(_write(tmp_path, "link.mhd", MHA + "ElementDataFile = link.raw\n", b""), match="link out")


# ---------------------------------------------------------------------------------- other formats
def test_a_nifti_header_whose_pixels_are_in_another_file_is_refused(tmp_path):
    pair = tmp_path / "pair.hdr"
    nib.save(nib.Nifti1Pair(np.full((4, 4, 4), 7, np.uint8), np.eye(4)), str(pair))
    assert (tmp_path / "pair.img").exists()
    header = bytearray(pair.read_bytes())
    _never_reads(_write(tmp_path, "pair_as.nii", header.decode("latin-1"), b""), match=".hdr/.img pair")
    header[344:348] = b"n+1\x00"  # single-file magic: nibabel's load(".hdr") read the .img beside it
    pair.write_bytes(bytes(header))
    try:  # read as the single file it claims to be (its header bytes as pixels), never the .img's 7s
        assert not np.all(read_image(pair).array == 7)
    except ReadError as exc:
        assert "pair.hdr" in str(exc)
    header[344:348] = b"\x00\x00\x00\x00"  # Analyze 7.5
    _never_reads(_write(tmp_path, "analyze.nii", bytes(header).decode("latin-1"), bytes(64)), match="Analyze")


def test_an_ome_tiff_naming_a_tiff_in_another_folder_reads_only_itself(tmp_path):
    (tmp_path / "up").mkdir()
    (tmp_path / "other").mkdir()
    u_a, u_b = (f"urn:uuid:{uuid.uuid4()}" for _ in range(2))
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
           f'UUID="{{own}}"><Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="8" '
           f'SizeY="8" SizeZ="2" SizeC="1" SizeT="1"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
           f'<TiffData FirstZ="0" IFD="0" PlaneCount="1"><UUID FileName="a.tif">{u_a}</UUID></TiffData>'
           f'<TiffData FirstZ="1" IFD="0" PlaneCount="1"><UUID FileName="../other/b.tif">{u_b}</UUID></TiffData>'
           f'</Pixels></Image></OME>')
    tifffile.imwrite(tmp_path / "other" / "b.tif", np.full((8, 8), 77, np.uint8), description=xml.format(own=u_b),
                     metadata=None)
    tifffile.imwrite(tmp_path / "up" / "a.tif", np.zeros((8, 8), np.uint8), description=xml.format(own=u_a),
                     metadata=None)
    img = read_image(tmp_path / "up" / "a.tif")
    assert img.array.shape == (8, 8) and img.array.max() == 0  # b.tif's 77s are not in it


def test_a_picture_is_decoded_only_by_the_formats_the_readers_claim(tmp_path):
    fake = tmp_path / "x.png"
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(fake, format="PPM")  # Pillow would open it by content
    _never_reads(fake, match="not a readable image")
    real = tmp_path / "y.png"
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(real, format="PNG")
    assert read_image(real).array.max() == 9


# ------------------------------------------------------------------------------------- confinement
def test_reads_confined_to_a_folder_open_nothing_outside_it(tmp_path, secret):
    import pydicom
    from pydicom.data import get_testdata_file

    inside, outside = tmp_path / "request", tmp_path / "other"
    inside.mkdir()
    outside.mkdir()
    ct = Path(get_testdata_file("CT_small.dcm"))
    (outside / "b.dcm").write_bytes(ct.read_bytes())
    series = inside / "series"
    series.mkdir()
    (series / "a.dcm").write_bytes(ct.read_bytes())
    os.symlink(outside / "b.dcm", series / "b.dcm")  # a link in the folder to a file of another request
    png = outside / "p.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(png)
    os.symlink(png, inside / "p.png")
    assert pydicom.dcmread(series / "b.dcm").Rows == 128
    with read_policy(ReadPolicy(root=inside)):
        with pytest.raises(ReadError, match="outside the folder"):
            read_dicom_series(series)
        with pytest.raises(ReadError, match="outside the folder"):
            read_image(inside / "p.png")
        with pytest.raises(ReadError, match="outside the folder"):
            read_image(png)
    assert read_image(inside / "p.png").array.shape == (4, 4)  # unconfined, a link is followed as before
