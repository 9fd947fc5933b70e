"""Deterministic mutation fuzzing of the file readers (medglip.io) and the Grounder's input path.

Real seed files (PNG 8/16-bit grey, 16-bit colour, palette; JPEG; TIFF 2D/3D; DICOM CT, MR, RLE,
JPEG, JPEG 2000, multi-frame; NIfTI .nii/.nii.gz; NRRD raw/gzip; MetaImage; the shipped brain1
NRRD's header) are mutated: truncated, byte-flipped, header fields set
to absurd values (with valid checksums where the format has them), renamed to the wrong extension,
emptied, replaced by folders. The property: :func:`medglip.io.read_image`,
:func:`to_display` (the Grounder's input path: read once, then model pixels), :func:`medglip.io.read_label`
and, for pictures, :func:`medglip.io.read_mask_2d` either return a sane result (positive shape holding
the pixel count the header declares, finite non-degenerate geometry, within the size limits) or raise
:class:`medglip.errors.MedglipError` (``ReadError``) naming the file; nothing else, and never hang
(each call is timed against a generous guard, :data:`HANG_S`).

The first half of the module is a small fuzzing kit (seed writers, mutators, the property check)
that ``benchmarks/bench_fuzz.py`` reuses for its long run; the tests below drive it with hypothesis
(``derandomize=True``: the same examples on every run).
"""

from __future__ import annotations

import copy
import gzip
import io
import math
import re
import shutil
import struct
import subprocess
import sys
import time
import traceback
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import medglip
from medglip.errors import MedglipError, ReadError
from medglip.core.pipeline import model_pixels
from medglip.infer.inputs import read_image_input
from medglip.io import read_image

BRAIN = Path(medglip.__file__).parent / "samples" / "pyradiomics" / "brain1_image.nrrd"

#: A call that takes longer than this is treated as a hang (a guard, not a timing test).
HANG_S = 20.0


# =============================================================================== seeds
def _dicom_path(name: str) -> str:
    import pydicom.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.data.get_testdata_file(name)


def _brain_header() -> bytes:
    """The shipped brain1 NRRD's header (up to and including the blank line) — no pixel data."""
    with open(BRAIN, "rb") as f:
        head = f.read(4096)
    return head[: head.index(b"\n\n") + 2]


#: More DICOM seeds from pydicom's test data: RLE, JPEG baseline, JPEG 2000, multi-frame grey and RGB.
EXTRA_DICOM = {"dicom_rle": "MR_small_RLE.dcm", "dicom_jpeg": "SC_rgb_jpeg_dcmtk.dcm",
               "dicom_j2k": "MR_small_jp2klossless.dcm", "dicom_mframe": "emri_small.dcm",
               "dicom_rgb2f": "SC_rgb_2frame.dcm"}


def write_seeds(folder: str | Path) -> dict[str, Path]:
    """Write the small, valid seed files into ``folder``; returns ``{seed name: path}``."""
    import nibabel as nib
    import SimpleITK as sitk
    import tifffile
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    seeds: dict[str, Path] = {}

    grey = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    grey[4:12, 6:20] = 200
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    seeds["png8"] = folder / "seed8.png"
    Image.fromarray(grey).save(seeds["png8"])
    seeds["png16"] = folder / "seed16.png"
    Image.fromarray(rng.integers(0, 65536, (24, 32)).astype(np.uint16)).save(seeds["png16"])
    seeds["png16rgb"] = folder / "seed16rgb.png"  # 16-bit colour: read through SimpleITK
    sitk.WriteImage(sitk.GetImageFromArray(rng.integers(0, 65536, (20, 18, 3)).astype(np.uint16), isVector=True),
                    str(seeds["png16rgb"]))
    seeds["pngpal"] = folder / "seedpal.png"
    pal = Image.fromarray(grey % 3).convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    pal.save(seeds["pngpal"])
    seeds["jpeg"] = folder / "seed.jpg"
    Image.fromarray(rgb).save(seeds["jpeg"], quality=90)
    seeds["tiff"] = folder / "seed.tif"
    tifffile.imwrite(seeds["tiff"], rng.integers(0, 4000, (24, 32)).astype(np.uint16),
                     resolution=(100.0, 100.0), resolutionunit="CENTIMETER")
    seeds["tiff3d"] = folder / "seed3d.tif"
    tifffile.imwrite(seeds["tiff3d"], rng.integers(0, 255, (5, 12, 10), dtype=np.uint8), photometric="minisblack")
    seeds["dicom_ct"] = folder / "ct.dcm"
    shutil.copy(_dicom_path("CT_small.dcm"), seeds["dicom_ct"])
    seeds["dicom_mr"] = folder / "mr.dcm"
    shutil.copy(_dicom_path("MR_small.dcm"), seeds["dicom_mr"])
    for name, src in EXTRA_DICOM.items():  # compressed transfer syntaxes and multi-frame files
        seeds[name] = folder / src
        shutil.copy(_dicom_path(src), seeds[name])
    vol = rng.integers(-1000, 1000, (12, 10, 6)).astype(np.int16)
    affine = np.diag([0.8, 0.9, 2.5, 1.0])
    affine[:3, 3] = [-10.0, 20.0, 5.0]
    seeds["nii"] = folder / "seed.nii"
    nib.save(nib.Nifti1Image(vol, affine), str(seeds["nii"]))
    seeds["niigz"] = folder / "seed.nii.gz"
    nib.save(nib.Nifti1Image(vol.astype(np.float32), affine), str(seeds["niigz"]))
    seeds["nii1slice"] = folder / "seed1.nii.gz"  # one slice: to_display takes it as 2D
    nib.save(nib.Nifti1Image(vol[:, :, :1], affine), str(seeds["nii1slice"]))
    simg = sitk.GetImageFromArray(np.transpose(vol, (2, 1, 0)).copy())
    simg.SetSpacing((0.5, 0.7, 2.0))
    simg.SetOrigin((1.0, -2.0, 3.0))
    seeds["nrrd"] = folder / "seed.nrrd"
    sitk.WriteImage(simg, str(seeds["nrrd"]))
    seeds["nrrdgz"] = folder / "seedgz.nrrd"
    sitk.WriteImage(simg, str(seeds["nrrdgz"]), True)
    seeds["mha"] = folder / "seed.mha"
    sitk.WriteImage(simg, str(seeds["mha"]))
    # the real brain1 header over a tiny body: header-only mutations of a real-world file
    seeds["brain_header"] = folder / "brain1_header.nrrd"
    seeds["brain_header"].write_bytes(_brain_header() + bytes(64))
    return seeds


# =============================================================================== mutators
#
# Every mutator is a pure function ``(data, ...explicit parameters) -> bytes`` so that hypothesis
# strategies and the benchmark's numpy RNG can drive the same code.

def truncate(data: bytes, frac: float) -> bytes:
    """Keep the first ``frac`` of the bytes (at least 1)."""
    return data[: max(1, min(len(data) - 1, int(len(data) * frac)))]


def flip_bytes(data: bytes, flips: list[tuple[float, int]], *, head: int | None = None) -> bytes:
    """XOR bytes at relative positions (within the first ``head`` bytes when given) with nonzero masks."""
    out = bytearray(data)
    span = min(len(out), head) if head else len(out)
    for frac, mask in flips:
        out[min(span - 1, int(frac * span))] ^= (mask % 255) + 1
    return bytes(out)


def splice(data: bytes, frac: float, length: int, insert: bytes) -> bytes:
    """Replace ``length`` bytes at relative position ``frac`` by ``insert``."""
    at = int(frac * len(data))
    return data[:at] + insert + data[at + length:]


# ---- NIfTI-1 header fields: name -> (offset, struct code)
NIFTI_FIELDS: dict[str, tuple[int, str]] = {
    "sizeof_hdr": (0, "i"), "dim0": (40, "h"), "dim1": (42, "h"), "dim2": (44, "h"), "dim3": (46, "h"),
    "dim4": (48, "h"), "dim5": (50, "h"), "datatype": (70, "h"), "bitpix": (72, "h"),
    "pixdim0": (76, "f"), "pixdim1": (80, "f"), "pixdim2": (84, "f"), "pixdim3": (88, "f"),
    "pixdim4": (92, "f"), "vox_offset": (108, "f"), "scl_slope": (112, "f"), "scl_inter": (116, "f"),
    "qform_code": (252, "h"), "sform_code": (254, "h"), "quatern_b": (256, "f"), "quatern_c": (260, "f"),
    "quatern_d": (264, "f"), "qoffset_x": (268, "f"), "srow_x0": (280, "f"), "srow_x3": (292, "f"),
    "srow_y1": (300, "f"), "srow_z2": (320, "f"), "srow_z3": (324, "f"),
}
NIFTI_INT_VALUES = [-32768, -1, 0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 32, 64, 128, 255, 256, 511, 512, 768, 1024,
                    1280, 1536, 1792, 2048, 2304, 3000, 16384, 32767]
FLOAT_VALUES = [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e-30, 0.5, 352.0, 353.0, 1e9, 2.0**31, 1e30,
                3.4e38, -3.4e38]


def nifti_set(data: bytes, field: str, value: float) -> bytes:
    """Set a NIfTI-1 header field of an uncompressed or gzipped file (re-gzipped, so the stream stays valid)."""
    gz = data[:2] == b"\x1f\x8b"
    raw = bytearray(gzip.decompress(data) if gz else data)
    off, code = NIFTI_FIELDS[field]
    if code in "hi":
        lo, hi = (-(2**15), 2**15 - 1) if code == "h" else (-(2**31), 2**31 - 1)
        value = int(max(lo, min(hi, value))) if math.isfinite(value) else 0
    struct.pack_into("<" + code, raw, off, value)
    return gzip.compress(bytes(raw), mtime=0) if gz else bytes(raw)


# ---- PNG chunks (valid CRCs)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DIMS = [0, 1, 2, 3, 255, 256, 30000, 30001, 65535, 65536, 2**24, 2**31 - 1, 2**31, 2**32 - 1]


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos + 8 <= len(data):
        (n,) = struct.unpack(">I", data[pos: pos + 4])
        out.append((data[pos + 4: pos + 8], data[pos + 8: pos + 8 + n]))
        pos += 12 + n
    return out


def _png_join(chunks: list[tuple[bytes, bytes]]) -> bytes:
    parts = [PNG_SIGNATURE]
    for kind, body in chunks:
        parts.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    return b"".join(parts)


def png_ihdr(data: bytes, *, width: int | None = None, height: int | None = None, depth: int | None = None,
             colour: int | None = None, interlace: int | None = None) -> bytes:
    """Rewrite IHDR fields, recomputing the CRC so the decoder trusts the header."""
    chunks = _png_chunks(data)
    w, h, d, c, comp, filt, il = struct.unpack(">IIBBBBB", chunks[0][1])
    body = struct.pack(">IIBBBBB", (w if width is None else width) % 2**32, (h if height is None else height) % 2**32,
                       (d if depth is None else depth) % 256, (c if colour is None else colour) % 256, comp, filt,
                       (il if interlace is None else interlace) % 256)
    chunks[0] = (b"IHDR", body)
    return _png_join(chunks)


def png_idat(data: bytes, flips: list[tuple[float, int]], cut: float | None = None) -> bytes:
    """Corrupt (or cut) the IDAT payload but keep valid CRCs, so zlib/the filter decoder sees the damage."""
    chunks = [(k, flip_bytes(b, flips) if k == b"IDAT" and b else b) for k, b in _png_chunks(data)]
    if cut is not None:
        chunks = [(k, b[: int(len(b) * cut)] if k == b"IDAT" else b) for k, b in chunks]
    return _png_join(chunks)


# ---- JPEG SOF dimensions
def jpeg_sof(data: bytes, height: int, width: int, components: int | None = None) -> bytes:
    out = bytearray(data)
    m = re.search(rb"\xff[\xc0\xc1\xc2]", data)
    if m is None:
        return data
    at = m.start()
    struct.pack_into(">HH", out, at + 5, height % 65536, width % 65536)
    if components is not None:
        out[at + 9] = components % 256
    return bytes(out)


# ---- TIFF IFD entries (classic little-endian TIFF as tifffile writes)
TIFF_TAGS = {"ImageWidth": 256, "ImageLength": 257, "BitsPerSample": 258, "Compression": 259,
             "Photometric": 262, "StripOffsets": 273, "SamplesPerPixel": 277, "RowsPerStrip": 278,
             "StripByteCounts": 279, "XResolution": 282, "PlanarConfig": 284, "ResolutionUnit": 296,
             "SampleFormat": 339}
TIFF_VALUES = [0, 1, 2, 3, 5, 7, 8, 16, 32, 33, 64, 255, 30000, 65535, 2**20, 2**31 - 1, 2**32 - 1]


def tiff_tag(data: bytes, tag: str, value: int) -> bytes:
    """Set the (first) value of an IFD entry of the first page; unchanged when the tag is absent."""
    if data[:4] != b"II*\x00":
        return data
    out = bytearray(data)
    (ifd,) = struct.unpack_from("<I", data, 4)
    if ifd + 2 > len(data):
        return data
    (n,) = struct.unpack_from("<H", data, ifd)
    for e in range(n):
        at = ifd + 2 + 12 * e
        code, typ, count = struct.unpack_from("<HHI", data, at)
        if code == TIFF_TAGS[tag]:
            if typ == 3 and count <= 2:      # SHORT, inline
                struct.pack_into("<H", out, at + 8, value % 65536)
            elif typ == 4 and count == 1:    # LONG, inline
                struct.pack_into("<I", out, at + 8, value % 2**32)
            else:                            # offset to the values (or RATIONAL): point it somewhere
                struct.pack_into("<I", out, at + 8, value % 2**32)
            return bytes(out)
    return data


def tiff_description_shape(data: bytes, digits: str) -> bytes:
    """Replace the digits of tifffile's ``{"shape": [...]}`` description (same length, offsets intact)."""
    m = re.search(rb'"shape": \[([0-9, ]+)\]', data)
    if m is None:
        return data
    body = bytearray(m.group(1))
    j = 0
    for i, ch in enumerate(body):
        if chr(ch).isdigit():
            body[i] = ord(digits[j % len(digits)])
            j += 1
    return data[: m.start(1)] + bytes(body) + data[m.end(1):]


# ---- DICOM attributes (through pydicom, value validation off)
DICOM_VALUES: dict[str, list[Any]] = {
    "Rows": [0, 1, 2, 255, 4096, 30000, 65535],
    "Columns": [0, 1, 3, 255, 4096, 30000, 65535],
    "BitsAllocated": [0, 1, 7, 8, 12, 16, 24, 32, 33, 64, 65535],
    "BitsStored": [0, 1, 7, 8, 12, 15, 16, 17, 32, 64, 65535],
    "HighBit": [0, 7, 15, 16, 31, 63, 65535],
    "PixelRepresentation": [0, 1, 2, 65535],
    "SamplesPerPixel": [0, 1, 2, 3, 4, 65535],
    "PlanarConfiguration": [0, 1, 2],
    "NumberOfFrames": ["0", "-1", "1", "2", "1000", "999999999", "2147483648", "abc", "1.5", "", " "],
    "PhotometricInterpretation": ["MONOCHROME1", "MONOCHROME2", "RGB", "PALETTE COLOR", "YBR_FULL",
                                  "YBR_FULL_422", "YBR_RCT", "BOGUS", ""],
    "RescaleSlope": ["nan", "inf", "-inf", "0", "-1", "1e308", "1e-308", "abc", "0.5", ""],
    "RescaleIntercept": ["nan", "inf", "-1e308", "1e308", "abc", "-1024.5", "", "3e38"],
    "WindowCenter": ["nan", "abc", "40", "", "1e308"],
    "WindowWidth": ["0", "-1", "nan", "abc", "400", ""],
    "PixelSpacing": [["0", "0"], ["nan", "1"], ["-1", "1"], ["inf", "inf"], ["abc", "1"], ["1"], ["1", "1", "1"], []],
    "ImageOrientationPatient": [["0"] * 6, ["nan"] * 6, ["1", "0", "0"], ["1", "0", "0", "1", "0", "0"],
                                ["abc", "0", "0", "0", "1", "0"], ["inf", "0", "0", "0", "1", "0"], []],
    "ImagePositionPatient": [["nan", "0", "0"], ["1"], ["abc", "0", "0"], ["inf", "-inf", "0"], []],
    "SliceThickness": ["0", "-5", "nan", "abc", "1e308"],
    "Modality": ["SEG", "", "CT", "MR", "XA", "US", "RTDOSE", "BOGUS", "ct"],
    "TransferSyntaxUID": ["1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50",
                          "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.3.4", ""],
    "PixelData": ["delete", "half", "empty", "odd", "double"],
}


def dicom_set(data: bytes, keyword: str, value: Any) -> bytes:
    """Set one attribute (or damage PixelData) of a DICOM file and write it back."""
    import pydicom
    from pydicom import config

    with warnings.catch_warnings(), config.disable_value_validation():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        if keyword == "TransferSyntaxUID":
            ds.file_meta.TransferSyntaxUID = value
        elif keyword == "PixelData":
            px = ds.PixelData
            if value == "delete":
                del ds.PixelData
            else:
                ds.PixelData = {"half": px[: len(px) // 2], "empty": b"", "odd": px[:-1] + b"",
                                "double": px + px}[value]
        elif value == []:
            if keyword in ds:
                delattr(ds, keyword)
        elif isinstance(value, int):
            setattr(ds, keyword, value)
        else:  # text VRs: write the raw bytes, so invalid strings ("abc" as IS/DS) reach the reader
            from pydicom.datadict import dictionary_VR, tag_for_keyword
            from pydicom.dataelem import RawDataElement
            from pydicom.tag import Tag

            raw = "\\".join(value if isinstance(value, list) else [value]).encode("latin-1")
            raw += b" " * (len(raw) % 2)
            tag = Tag(tag_for_keyword(keyword))
            implicit, little = ds.original_encoding
            ds[tag] = RawDataElement(tag, None if implicit else dictionary_VR(tag), len(raw), raw, 0,
                                     implicit, little)
        buf = io.BytesIO()
        try:
            ds.save_as(buf, enforce_file_format=False)
        except Exception:  # pydicom refuses some combinations (e.g. an unknown transfer syntax)
            return data
    return buf.getvalue()


# ---- NRRD / MetaImage text headers
NRRD_VALUES: dict[str, list[str]] = {
    "sizes": ["4000000000 1 1", "2147483647 2147483647 2147483647", "65536 65536 65536", "100000 100000 1",
              "0 10 6", "-1 10 6", "12 10", "12 10 6 7", "a b c", "99999999999999999999 1 1", "12 10 6000"],
    "type": ["bogus", "block", "complex", "", "unsigned long long", "double", "uchar", "int64"],
    "encoding": ["bogus", "bzip2", "hex", "ascii", "gzip", "raw", ""],
    "dimension": ["0", "1", "2", "4", "17", "-1", "abc", "99999999999"],
    "endian": ["middle", "big", ""],
    "space directions": ["(nan,0,0) (0,1,0) (0,0,1)", "(0,0,0) (0,0,0) (0,0,0)", "(1,0,0) (1,0,0) (1,0,0)",
                         "none (1,0,0) (0,1,0)", "(1,0) (0,1)", "(inf,0,0) (0,1,0) (0,0,1)",
                         "(1e308,0,0) (0,1e308,0) (0,0,1e308)", "(-1,0,0) (0,-1,0) (0,0,-1)"],
    "space origin": ["(nan,nan,nan)", "(1e308,0,0)", "(1,2)", "bogus"],
    "space": ["bogus", "right-anterior-superior", "3D-right-handed-time"],
    "kinds": ["bogus bogus bogus", "RGB-color domain domain", "domain"],
    "byte skip": ["-1", "99999999", "5"],
    "line skip": ["99999999", "-5", "3"],
    "data file": ["nonexistent.raw", ".", "/dev/null", "LIST"],
}
MHA_VALUES: dict[str, list[str]] = {
    "DimSize": ["4000000000 1 1", "2147483647 2147483647 2147483647", "65536 65536 65536", "0 10 6",
                "-1 10 6", "12 10", "a b c", "12 10 6000"],
    "ElementType": ["MET_BOGUS", "MET_DOUBLE", "MET_UCHAR", "MET_OTHER", "", "MET_LONG_LONG_ARRAY"],
    "NDims": ["0", "1", "2", "4", "17", "-1", "abc"],
    "ElementSpacing": ["nan nan nan", "0 0 0", "-1 -1 -1", "inf 1 1", "1e308 1e308 1e308", "1", "a b c"],
    "TransformMatrix": ["0 0 0 0 0 0 0 0 0", "nan 0 0 0 1 0 0 0 1", "1 0 0 1 0 0 0 0 1", "1"],
    "Offset": ["nan nan nan", "1e308 0 0", "1"],
    "CompressedData": ["True", "False", "maybe"],
    "CompressedDataSize": ["1", "0", "99999999999", "-1"],
    "BinaryDataByteOrderMSB": ["True", "maybe"],
    "ElementNumberOfChannels": ["0", "3", "4", "100000", "-1"],
    "HeaderSize": ["-1", "0", "99999999", "5"],
    "ElementDataFile": ["nonexistent.raw", "LIST", "img%03d.raw 0 10 1", "/dev/null"],
}


def text_header_set(data: bytes, key: str, value: str | None, *, sep: str) -> bytes:
    """Set (or, with ``value=None``, delete) ``key<sep>value`` in a NRRD/MetaImage text header; the
    key is added to the header when it is missing. Pixel bytes are kept."""
    if data.startswith(b"NRRD"):
        end = data.find(b"\n\n")
        end = len(data) if end < 0 else end
        head, body = data[:end].decode("latin-1").split("\n"), data[end:]
    else:  # MetaImage: header ends with the ElementDataFile line
        m = re.search(rb"ElementDataFile ?=[^\n]*\n", data)
        end = m.end() if m else len(data)
        head, body = data[:end].decode("latin-1").rstrip("\n").split("\n"), b"\n" + data[end:]
    pat = re.compile(rf"^{re.escape(key)}\s*{re.escape(sep.strip())}", re.IGNORECASE)
    idx = [i for i, ln in enumerate(head) if pat.match(ln)]
    line = None if value is None else f"{key}{sep}{value}"
    if idx:
        if line is None:
            del head[idx[0]]
        else:
            head[idx[0]] = line
    elif line is not None:
        # before MetaImage's ElementDataFile (which must stay last), else at the end
        pos = next((i for i, ln in enumerate(head) if ln.startswith("ElementDataFile")), len(head))
        head.insert(pos, line)
    return "\n".join(head).encode("latin-1") + body


def gzip_damage(data: bytes, how: str, frac: float) -> bytes:
    """Damage a gzip stream: cut it, flip a byte inside the deflate data, break the CRC/size trailer,
    append garbage, or append a second (truncated) member."""
    if how == "cut":
        return data[: max(10, int(len(data) * frac))]
    if how == "deflate":
        return flip_bytes(data[:10], []) + flip_bytes(data[10:-8], [(frac, 0x5A)]) + data[-8:]
    if how == "trailer":
        return data[:-8] + struct.pack("<II", 0xDEADBEEF, int(frac * 2**32) % 2**32)
    if how == "garbage":
        return data + bytes(range(256))[: int(frac * 255) + 1]
    if how == "member":
        return data + data[: int(len(data) * frac)]
    raise ValueError(how)


# =============================================================================== mutation plans
@dataclass
class Mutant:
    """One fuzz input: which seed, what was done, the bytes and the file suffix to write them under."""

    seed: str
    what: str
    data: bytes | None   # None: a folder (``folder`` says what goes in it)
    suffix: str
    folder: list[tuple[str, bytes]] | None = None


def seed_suffix(path: Path) -> str:
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix


SUFFIXES = [".png", ".jpg", ".tif", ".dcm", ".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".nhdr", "", ".bin", ".bmp"]

#: Which structured mutations apply to which seeds.
_STRUCTURED: dict[str, list[str]] = {
    "png8": ["png_ihdr", "png_idat"], "png16": ["png_ihdr", "png_idat"], "png16rgb": ["png_ihdr", "png_idat"],
    "pngpal": ["png_ihdr", "png_idat"], "jpeg": ["jpeg_sof"], "tiff": ["tiff_tag"],
    "tiff3d": ["tiff_tag", "tiff_shape"], "dicom_ct": ["dicom"], "dicom_mr": ["dicom"],
    **{name: ["dicom"] for name in EXTRA_DICOM},
    "nii": ["nifti"], "niigz": ["nifti", "gzip"], "nii1slice": ["nifti", "gzip"],
    "nrrd": ["nrrd"], "nrrdgz": ["nrrd", "nrrd_gzip"], "mha": ["mha"], "brain_header": ["nrrd"],
}


def random_mutant(seeds: dict[str, bytes], rng: np.random.Generator) -> Mutant:
    """Draw one mutated input (the benchmark's generator; the tests draw with hypothesis instead)."""
    names = sorted(seeds)
    name = names[int(rng.integers(len(names)))]
    data = seeds[name]
    suffix = SEED_SUFFIX[name]
    families = ["truncate", "flip", "flip_head", "splice", "structured", "structured", "structured",
                "structured", "double", "wrong_ext", "special"]
    fam = families[int(rng.integers(len(families)))]

    def structured(d: bytes) -> tuple[bytes, str]:
        try:
            return _structured(d)
        except Exception:  # e.g. a second mutation of an already unparseable file: keep the bytes
            return d, "(mutation not applicable)"

    def _structured(d: bytes) -> tuple[bytes, str]:
        kinds = _STRUCTURED[name]
        kind = kinds[int(rng.integers(len(kinds)))]
        def pick(seq):
            return seq[int(rng.integers(len(seq)))]

        if kind == "nifti":
            field = pick(sorted(NIFTI_FIELDS))
            val = pick(FLOAT_VALUES if NIFTI_FIELDS[field][1] == "f" else NIFTI_INT_VALUES)
            return nifti_set(d, field, val), f"nifti {field}={val}"
        if kind == "gzip":
            how = pick(["cut", "deflate", "trailer", "garbage", "member"])
            f = float(rng.random())
            return gzip_damage(d, how, f), f"gzip {how} {f:.3f}"
        if kind == "png_ihdr":
            key = pick(["width", "height", "both", "depth", "colour", "interlace"])
            if key == "both":
                v = pick(PNG_DIMS)
                return png_ihdr(d, width=v, height=pick(PNG_DIMS)), f"png IHDR w,h={v},..."
            v = pick(PNG_DIMS) if key in ("width", "height") else pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 16, 255])
            return png_ihdr(d, **{key: v}), f"png IHDR {key}={v}"
        if kind == "png_idat":
            flips = [(float(rng.random()), int(rng.integers(256))) for _ in range(int(rng.integers(1, 4)))]
            cut = float(rng.random()) if rng.random() < 0.3 else None
            return png_idat(d, flips, cut), f"png IDAT flips={len(flips)} cut={cut}"
        if kind == "jpeg_sof":
            h, w = pick([0, 1, 7, 30000, 30001, 65535]), pick([0, 1, 9, 30000, 30001, 65535])
            c = pick([None, None, 0, 1, 2, 4, 255])
            return jpeg_sof(d, h, w, c), f"jpeg SOF {h}x{w} comps={c}"
        if kind == "tiff_tag":
            tag, v = pick(sorted(TIFF_TAGS)), pick(TIFF_VALUES)
            return tiff_tag(d, tag, v), f"tiff {tag}={v}"
        if kind == "tiff_shape":
            digits = "".join(str(int(x)) for x in rng.integers(0, 10, 6))
            return tiff_description_shape(d, digits), f"tiff shape digits {digits}"
        if kind == "dicom":
            kw = pick(sorted(DICOM_VALUES))
            v = pick(DICOM_VALUES[kw])
            return dicom_set(d, kw, v), f"dicom {kw}={v!r}"
        if kind in ("nrrd", "mha"):
            table, sep = (NRRD_VALUES, ": ") if kind == "nrrd" else (MHA_VALUES, " = ")
            key = pick(sorted(table))
            v = None if rng.random() < 0.1 else pick(table[key])
            return text_header_set(d, key, v, sep=sep), f"{kind} {key}={v!r}"
        if kind == "nrrd_gzip":
            end = d.index(b"\n\n") + 2
            how = pick(["cut", "deflate", "trailer", "garbage", "member"])
            f = float(rng.random())
            return d[:end] + gzip_damage(d[end:], how, f), f"nrrd gzip body {how} {f:.3f}"
        raise AssertionError(kind)

    if fam == "truncate":
        f = float(rng.random())
        return Mutant(name, f"truncate {f:.3f}", truncate(data, f), suffix)
    if fam in ("flip", "flip_head"):
        flips = [(float(rng.random()), int(rng.integers(256))) for _ in range(int(rng.integers(1, 9)))]
        head = 512 if fam == "flip_head" else None
        return Mutant(name, f"{fam} x{len(flips)}", flip_bytes(data, flips, head=head), suffix)
    if fam == "splice":
        f, n = float(rng.random()), int(rng.integers(0, 64))
        ins = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
        return Mutant(name, f"splice @{f:.3f} -{n} +{len(ins)}", splice(data, f, n, ins), suffix)
    if fam == "structured":
        d, what = structured(data)
        return Mutant(name, what, d, suffix)
    if fam == "double":
        d, w1 = structured(data)
        d, w2 = structured(d)
        if rng.random() < 0.5:
            f = 0.5 + 0.5 * float(rng.random())
            return Mutant(name, f"{w1}; {w2}; truncate {f:.3f}", truncate(d, f), suffix)
        return Mutant(name, f"{w1}; {w2}", d, suffix)
    if fam == "wrong_ext":
        ext = SUFFIXES[int(rng.integers(len(SUFFIXES)))]
        return Mutant(name, f"as {ext or '(no extension)'}", data, ext)
    # special inputs
    kind = ["empty", "zeros", "random", "dir_empty", "dir_garbage", "dir_series", "dir_series"][int(rng.integers(7))]
    if kind == "empty":
        return Mutant(name, "empty file", b"", suffix)
    if kind == "zeros":
        return Mutant(name, "zeros", bytes(int(rng.integers(1, 4096))), suffix)
    if kind == "random":
        return Mutant(name, "random bytes", rng.integers(0, 256, int(rng.integers(1, 4096)), dtype=np.uint8).tobytes(),
                      suffix)
    if kind == "dir_empty":
        return Mutant("dir", "empty folder", None, "", [])
    if kind == "dir_garbage":
        return Mutant("dir", "folder of garbage", None, "",
                      [("a.dcm", b"\0" * 200), ("b", b"DICM" * 50), ("c.txt", b"hello")])
    return Mutant("dicom_series", "series with a damaged slice", None, "", dicom_series_files(seeds["dicom_ct"], rng))


def dicom_series_files(ct: bytes, rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """Three slices of one CT series (positions 0, 2.5, 5 mm along z), one of them damaged."""
    import pydicom
    from pydicom.uid import generate_uid

    uid = generate_uid(entropy_srcs=["medglip-fuzz-series"])
    files = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = pydicom.dcmread(io.BytesIO(ct))
        for k in range(3):
            ds = copy.deepcopy(base)
            ds.SeriesInstanceUID = uid
            ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"medglip-fuzz-{k}"])
            ds.ImagePositionPatient = ["0", "0", f"{2.5 * k}"]
            ds.InstanceNumber = k + 1
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=False)
            files.append((f"s{k}.dcm", buf.getvalue()))
    bad = int(rng.integers(3))
    d = files[bad][1]
    how = int(rng.integers(4))
    if how == 0:
        d = truncate(d, float(rng.random()))
    elif how == 1:
        d = flip_bytes(d, [(float(rng.random()), int(rng.integers(256))) for _ in range(4)])
    else:
        kw = ["Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient", "BitsAllocated",
              "PixelSpacing", "NumberOfFrames", "SeriesInstanceUID", "PixelData"][int(rng.integers(9))]
        vals = DICOM_VALUES.get(kw, ["1.2.3"])
        d = dicom_set(d, kw, vals[int(rng.integers(len(vals)))])
    files[bad] = (files[bad][0], d)
    return files


SEED_SUFFIX: dict[str, str] = {
    "png8": ".png", "png16": ".png", "png16rgb": ".png", "pngpal": ".png", "jpeg": ".jpg", "tiff": ".tif",
    "tiff3d": ".tif", "dicom_ct": ".dcm", "dicom_mr": ".dcm", **{name: ".dcm" for name in EXTRA_DICOM}, "nii": ".nii", "niigz": ".nii.gz",
    "nii1slice": ".nii.gz", "nrrd": ".nrrd", "nrrdgz": ".nrrd", "mha": ".mha", "brain_header": ".nrrd",
}


def write_mutant(m: Mutant, folder: Path, stem: str) -> Path:
    """Write a mutant as ``folder/<stem>_<seed><suffix>`` (or a folder of that name)."""
    path = folder / f"{stem}_{m.seed}{m.suffix}"
    if m.data is None:
        path.mkdir(parents=True)
        for name, data in m.folder or []:
            (path / name).write_bytes(data)
    else:
        path.write_bytes(m.data)
    return path


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# =============================================================================== the property
class Crash(AssertionError):
    """A reader broke the contract: another exception type, an unnamed file, an insane image, a hang."""


def check_image(img: Any, path: Path) -> None:
    """A 'sane' :class:`ImageData`: positive finite shape consistent with its geometry and the limits."""
    from medglip.io import ImageData
    from medglip.io import _base

    if not isinstance(img, ImageData):
        raise Crash(f"read_image returned {type(img).__name__}")
    arr = img.array
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biufcV":  # complex / NIfTI RGB24 records pass
        raise Crash(f"array is {type(arr).__name__} {getattr(arr, 'dtype', '?')}")
    if arr.ndim not in (2, 3, 4) or any(int(s) < 1 for s in arr.shape):
        raise Crash(f"bad array shape {arr.shape}")
    if arr.size != int(np.prod(arr.shape, dtype=object)):
        raise Crash(f"array size {arr.size} != prod{arr.shape}")
    nd = img.geometry.ndim
    if nd not in (2, 3) or arr.ndim not in (nd, nd + 1):
        raise Crash(f"array {arr.shape} does not fit a {nd}D geometry")
    # the limits count pixels for pictures (PIL checks H x W) and values (x channels) for volumes
    count = int(np.prod(arr.shape[:2])) if nd == 2 else arr.size
    limit = _base.MAX_PIXELS_2D if nd == 2 else _base.MAX_VOXELS
    if count > limit:
        raise Crash(f"image of {count} values above the {limit} limit")
    declared = declared_pixels(path)
    if declared is not None and int(np.prod(img.spatial_shape)) != declared:
        raise Crash(f"spatial shape {img.spatial_shape} does not hold the {declared} pixels the header declares")
    g = img.geometry
    if not all(math.isfinite(s) and s > 0 for s in g.spacing):
        raise Crash(f"bad spacing {g.spacing}")
    if not (all(math.isfinite(v) for v in g.origin + g.direction) and abs(np.linalg.det(g.direction_matrix)) >= 1e-6):
        raise Crash(f"non-finite or degenerate geometry: origin {g.origin}, direction {g.direction}")


def declared_pixels(path: Path) -> int | None:
    """The pixel / voxel count (channels excluded) the file's header declares, read with the format's
    own library independently of medglip's reader; None when unknown (folders, TIFF, unparseable)."""
    from medglip.io import sniff_format

    try:
        fmt = sniff_format(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if fmt == "nifti":
                import nibabel as nib

                return int(np.prod(nib.load(str(path)).shape[:3]))
            if fmt == "itk":
                import SimpleITK as sitk

                reader = sitk.ImageFileReader()
                reader.SetFileName(str(path))
                reader.ReadImageInformation()
                return int(np.prod(reader.GetSize()[:3]))
            if fmt == "raster":
                from PIL import Image

                with Image.open(path) as im:
                    return im.size[0] * im.size[1]
            if fmt == "dicom":
                import pydicom

                ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
                return int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames", 1) or 1)
    except Exception:  # a header the library cannot parse: no oracle (the reader must have refused it)
        return None
    return None


def to_display(source: Any) -> np.ndarray:
    """The Grounder's input path for a 2D input: read once, then the model pixels (volumes are refused)."""
    item = read_image_input(source)
    return model_pixels(item.raw, item.modality, what=item.source)[0]


def check_display(p: Any) -> None:
    if not isinstance(p, np.ndarray):
        raise Crash(f"to_display returned {type(p).__name__}")
    if p.dtype != np.uint8 or p.ndim not in (2, 3) or min(p.shape[:2]) < 1 or (p.ndim == 3 and p.shape[2] != 3):
        raise Crash(f"bad display pixels {p.dtype} {p.shape}")


def call(fn: Callable[[Path], Any], path: Path, check: Callable[[Any], None] | None = None) -> tuple[str, float]:
    """Run ``fn(path)``; returns ``("ok" | "rejected", seconds)`` or raises :class:`Crash` saying why.

    ``rejected`` means a :class:`MedglipError` whose message names the file.
    """
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(path)
    except MedglipError as exc:
        dt = time.perf_counter() - t0
        if path.name not in str(exc):
            raise Crash(f"{type(exc).__name__} does not name the file: {exc}") from exc
        outcome = "rejected"
    except Exception as exc:
        raise Crash(f"{type(exc).__name__} escaped: {exc}") from exc
    else:
        dt = time.perf_counter() - t0
        if check is not None:
            check(out)
        outcome = "ok"
    if dt > HANG_S:
        raise Crash(f"took {dt:.1f} s (hang guard {HANG_S} s)")
    return outcome, dt


def check_file(path: Path) -> dict[str, tuple[str, float]]:
    """The whole property for one input: read_image, to_display, read_label and (pictures) read_mask_2d."""
    out = {name: call(fn, path, check(path)) for name, (fn, check) in CHECKS.items()
           if name != "read_mask_2d" or path.suffix.lower() in MASK_SUFFIXES}
    return out


def _check_label(path: Path) -> Callable[[Any], None]:
    def check(img: Any) -> None:
        check_image(img, path)
        if img.array.dtype.kind not in "iu" or img.array.ndim != img.geometry.ndim:
            raise Crash(f"read_label returned {img.array.dtype} {img.array.shape}")
    return check


def _read_mask_2d(path: Path) -> np.ndarray:
    from medglip.io import read_mask_2d

    return read_mask_2d(path)


def _read_label(path: Path) -> Any:
    from medglip.io import read_label

    return read_label(path)


#: function name -> (function of a path, path -> check of its result)
CHECKS: dict[str, tuple[Callable[[Path], Any], Callable[[Path], Callable[[Any], None]]]] = {
    "read_image": (read_image, lambda path: lambda img: check_image(img, path)),
    "to_display": (to_display, lambda path: check_display),
    "read_label": (_read_label, _check_label),
    "read_mask_2d": (_read_mask_2d, lambda path: _check_mask),
}
MASK_SUFFIXES = (".png", ".jpg", ".bmp", ".tif", ".gif")


def _check_mask(mask: Any) -> None:
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype.kind not in "iu" or min(mask.shape) < 1:
        raise Crash(f"bad mask {type(mask).__name__} {getattr(mask, 'shape', '')}")


def format_crash(exc: BaseException) -> str:
    cause = exc.__cause__
    tb = "".join(traceback.format_exception(cause)) if cause is not None else ""
    return f"{exc}\n{tb}"


# =============================================================================== the tests


def fuzz_settings(n: int) -> settings:
    """Deterministic (derandomized, no example database), no per-example deadline."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """The seed bytes, a scratch folder and a counter for unique mutant names."""
    import itertools

    seeds = write_seeds(tmp_path_factory.mktemp("seeds"))
    return {"seeds": {k: p.read_bytes() for k, p in seeds.items()}, "paths": seeds,
            "dir": tmp_path_factory.mktemp("mutants"), "count": itertools.count()}


def run_property(kit: dict, m: Mutant) -> dict[str, tuple[str, float]]:
    """Write the mutant, check the property on it (pytest failure with the traceback when broken)."""
    path = write_mutant(m, kit["dir"], f"fz{next(kit['count']):05d}")
    try:
        return check_file(path)
    except Crash as exc:
        pytest.fail(f"{m.seed}: {m.what} ({path.name}): {format_crash(exc)}", pytrace=False)
    finally:
        remove(path)


def mutant(kit: dict, seed: str, what: str, data: bytes, suffix: str | None = None) -> Mutant:
    return Mutant(seed, what, data, SEED_SUFFIX[seed] if suffix is None else suffix)


SEED_NAMES = sorted(SEED_SUFFIX)
DICOM_SEEDS = ["dicom_ct", "dicom_mr", *EXTRA_DICOM]
PNG_SEEDS = ["png8", "png16", "png16rgb", "pngpal"]


def test_seeds_are_valid_and_read_cleanly(kit):
    for name in SEED_NAMES:
        path = kit["paths"][name]
        if name == "brain_header":  # brain1's real header over 64 bytes: only its header mutations matter
            with pytest.raises(ReadError, match="truncated"):
                read_image(path)
            continue
        check_image(read_image(path), path)
        outcome, _ = call(to_display, path, check_display)
        volume = name in ("nii", "niigz", "nrrd", "nrrdgz", "mha", "tiff3d", "dicom_mframe", "dicom_rgb2f")
        assert outcome == ("rejected" if volume else "ok"), name


# ------------------------------------------------------------------------------- generic mutations
@fuzz_settings(250)
@given(seed=st.sampled_from(SEED_NAMES), frac=st.floats(0.0, 1.0))
def test_truncated_files(kit, seed, frac):
    run_property(kit, mutant(kit, seed, f"truncate {frac}", truncate(kit["seeds"][seed], frac)))


@fuzz_settings(400)
@given(seed=st.sampled_from(SEED_NAMES), head=st.sampled_from([None, 64, 512]),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8))
def test_byte_flips(kit, seed, head, flips):
    run_property(kit, mutant(kit, seed, f"flips {flips} head={head}", flip_bytes(kit["seeds"][seed], flips, head=head)))


@fuzz_settings(80)
@given(seed=st.sampled_from(SEED_NAMES), frac=st.floats(0.0, 1.0), cut=st.integers(0, 64), insert=st.binary(max_size=64))
def test_spliced_bytes(kit, seed, frac, cut, insert):
    run_property(kit, mutant(kit, seed, f"splice {frac} -{cut} +{insert!r}", splice(kit["seeds"][seed], frac, cut, insert)))


def test_wrong_extension_for_content(kit):
    """Every seed's bytes under every other extension (and none)."""
    for seed in SEED_NAMES:
        for ext in SUFFIXES:
            if ext != SEED_SUFFIX[seed]:
                run_property(kit, mutant(kit, seed, f"as {ext!r}", kit["seeds"][seed], ext))


def test_empty_zero_and_random_files_and_folders(kit):
    rng = np.random.default_rng(0)
    for ext in SUFFIXES:
        for what, data in [("empty", b""), ("zeros", bytes(1000)), ("random", rng.bytes(700)), ("one byte", b"\x89")]:
            outcomes = run_property(kit, Mutant("special", what, data, ext))
            assert outcomes["read_image"][0] == "rejected", (ext, what)
    for what, files in [("empty folder", []), ("folder of garbage", [("a.dcm", bytes(200)), ("b", b"DICM" * 50),
                                                                      ("c.txt", b"hello"), (".hidden.dcm", b"x")])]:
        outcomes = run_property(kit, Mutant("dir", what, None, "", files))
        assert outcomes["read_image"][0] == "rejected"


@fuzz_settings(400)
@given(seed=st.integers(0, 2**32 - 1))
def test_random_mutants_as_in_the_benchmark(kit, seed):
    """The benchmark's generator (all families, double mutations, damaged series) on 400 seeds."""
    run_property(kit, random_mutant(kit["seeds"], np.random.default_rng(seed)))


# ------------------------------------------------------------------------------- header fields
@fuzz_settings(250)
@given(seed=st.sampled_from(["nii", "niigz", "nii1slice"]), field=st.sampled_from(sorted(NIFTI_FIELDS)),
       data=st.data())
def test_nifti_header_fields(kit, seed, field, data):
    floaty = NIFTI_FIELDS[field][1] == "f"
    value = data.draw(st.sampled_from(FLOAT_VALUES) | st.floats(allow_nan=True, allow_infinity=True, width=32)
                      if floaty else st.sampled_from(NIFTI_INT_VALUES) | st.integers(-(2**15), 2**15 - 1))
    run_property(kit, mutant(kit, seed, f"nifti {field}={value}", nifti_set(kit["seeds"][seed], field, value)))


@fuzz_settings(60)
@given(seed=st.sampled_from(["niigz", "nii1slice"]), how=st.sampled_from(["cut", "deflate", "trailer", "garbage",
                                                                          "member"]),
       frac=st.floats(0.0, 1.0, exclude_max=True))
def test_gzip_stream_damage(kit, seed, how, frac):
    run_property(kit, mutant(kit, seed, f"gzip {how} {frac}", gzip_damage(kit["seeds"][seed], how, frac)))


@fuzz_settings(100)
@given(seed=st.sampled_from(PNG_SEEDS), width=st.sampled_from(PNG_DIMS) | st.none(),
       height=st.sampled_from(PNG_DIMS) | st.none(), depth=st.sampled_from([None, 0, 1, 2, 4, 8, 16, 255]),
       colour=st.sampled_from([None, 0, 1, 2, 3, 4, 5, 6, 7]), interlace=st.sampled_from([None, 0, 1, 2]))
def test_png_ihdr_fields_with_valid_crc(kit, seed, width, height, depth, colour, interlace):
    data = png_ihdr(kit["seeds"][seed], width=width, height=height, depth=depth, colour=colour, interlace=interlace)
    run_property(kit, mutant(kit, seed, f"IHDR {width}x{height} d={depth} c={colour} i={interlace}", data))


@fuzz_settings(50)
@given(seed=st.sampled_from(PNG_SEEDS), cut=st.none() | st.floats(0.0, 1.0),
       flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)), max_size=4))
def test_png_idat_damage_with_valid_crc(kit, seed, cut, flips):
    run_property(kit, mutant(kit, seed, f"IDAT flips={flips} cut={cut}", png_idat(kit["seeds"][seed], flips, cut)))


@fuzz_settings(40)
@given(height=st.sampled_from([0, 1, 7, 24, 25, 30000, 30001, 65535]), width=st.sampled_from([0, 1, 9, 32, 30000, 65535]),
       components=st.sampled_from([None, 0, 1, 2, 4, 255]))
def test_jpeg_sof_dimensions(kit, height, width, components):
    data = jpeg_sof(kit["seeds"]["jpeg"], height, width, components)
    run_property(kit, mutant(kit, "jpeg", f"SOF {height}x{width} comps={components}", data))


@fuzz_settings(80)
@given(seed=st.sampled_from(["tiff", "tiff3d"]), tag=st.sampled_from(sorted(TIFF_TAGS)),
       value=st.sampled_from(TIFF_VALUES) | st.integers(0, 2**32 - 1))
def test_tiff_tags(kit, seed, tag, value):
    run_property(kit, mutant(kit, seed, f"tiff {tag}={value}", tiff_tag(kit["seeds"][seed], tag, value)))


@fuzz_settings(20)
@given(digits=st.text("0123456789", min_size=1, max_size=6))
def test_tiff_shape_description(kit, digits):
    data = tiff_description_shape(kit["seeds"]["tiff3d"], digits)
    run_property(kit, mutant(kit, "tiff3d", f"shape digits {digits}", data))


@fuzz_settings(250)
@given(seed=st.sampled_from(DICOM_SEEDS), keyword=st.sampled_from(sorted(DICOM_VALUES)), data=st.data())
def test_dicom_attributes(kit, seed, keyword, data):
    value = data.draw(st.sampled_from(DICOM_VALUES[keyword]))
    run_property(kit, mutant(kit, seed, f"dicom {keyword}={value!r}", dicom_set(kit["seeds"][seed], keyword, value)))


@fuzz_settings(30)
@given(seed=st.integers(0, 2**32 - 1))
def test_dicom_series_with_a_damaged_slice(kit, seed):
    files = dicom_series_files(kit["seeds"]["dicom_ct"], np.random.default_rng(seed))
    run_property(kit, Mutant("dicom_series", "a damaged slice", None, "", files))


@fuzz_settings(110)
@given(seed=st.sampled_from(["nrrd", "nrrdgz", "brain_header"]), key=st.sampled_from(sorted(NRRD_VALUES)),
       data=st.data())
def test_nrrd_header_fields(kit, seed, key, data):
    value = data.draw(st.sampled_from(NRRD_VALUES[key]) | st.none())
    run_property(kit, mutant(kit, seed, f"nrrd {key}={value!r}",
                             text_header_set(kit["seeds"][seed], key, value, sep=": ")))


@fuzz_settings(30)
@given(how=st.sampled_from(["cut", "deflate", "trailer", "garbage", "member"]), frac=st.floats(0.0, 1.0, exclude_max=True))
def test_nrrd_gzip_body_damage(kit, how, frac):
    d = kit["seeds"]["nrrdgz"]
    end = d.index(b"\n\n") + 2
    run_property(kit, mutant(kit, "nrrdgz", f"gzip body {how} {frac}", d[:end] + gzip_damage(d[end:], how, frac)))


@fuzz_settings(80)
@given(key=st.sampled_from(sorted(MHA_VALUES)), data=st.data())
def test_metaimage_header_fields(kit, key, data):
    value = data.draw(st.sampled_from(MHA_VALUES[key]) | st.none())
    run_property(kit, mutant(kit, "mha", f"mha {key}={value!r}",
                             text_header_set(kit["seeds"]["mha"], key, value, sep=" = ")))


# =============================================================================== regressions
# One test per bug the fuzzing found (each failed, crashed or hung before its fix).

def _write(kit: dict, name: str, data: bytes) -> Path:
    path = kit["dir"] / name
    path.write_bytes(data)
    return path


def _read_error(path: Path, match: str, fn: Callable[[Path], Any] = read_image) -> ReadError:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ReadError, match=match) as exc:
            fn(path)
    assert path.name in str(exc.value)
    return exc.value


def _in_subprocess(code: str, *, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (a regression there used to kill or hang the process).

    Its stdin is a pipe left open and never written, as under a service manager: reading
    ``/dev/stdin`` blocks instead of meeting end-of-file.
    """
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"hung: no result within {timeout:.0f} s")
    finally:
        proc.stdin.close()
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.read(), proc.stderr.read())


_READ_IN_CHILD = """
from medglip.errors import ReadError
from medglip.io import read_image
try:
    read_image({path!r})
except ReadError as exc:
    print("ReadError:", exc)
else:
    print("read")
"""


def test_regression_metaimage_ndims_out_of_range_is_refused_not_a_segfault(kit):
    """ITK's MetaImage reader indexed out of range with NDims < 1 or huge: SIGSEGV, the process died."""
    paths = []
    for ndims in ["-1", "-100", "100", "1e3", "4294967295", "99999999999"]:
        for ext in (".mha", ".mhd"):
            paths.append(_write(kit, f"ndims{ndims}{ext}", text_header_set(kit["seeds"]["mha"], "NDims", ndims,
                                                                           sep=" = ")))
    child = ("from medglip.errors import ReadError\nfrom medglip.io import read_image\n"
             f"for p in {[str(p) for p in paths]!r}:\n"
             "    try:\n        read_image(p)\n        print('read', p, flush=True)\n"
             "    except ReadError as exc:\n        print('ReadError', exc, flush=True)\n")
    done = _in_subprocess(child)
    assert done.returncode == 0, f"reader process died (status {done.returncode}) after:\n{done.stdout}"
    lines = done.stdout.splitlines()
    assert len(lines) == len(paths)
    for path, line in zip(paths, lines):
        assert line.startswith("ReadError") and path.name in line and "NDims" in line, line


@pytest.mark.parametrize("kind", ["nrrd", "mha"])
def test_regression_detached_data_file_that_is_not_a_regular_file_is_refused_not_a_hang(kit, kind):
    """``data file: /dev/stdin`` (or a FIFO, a device) made ITK block forever reading it."""
    if kind == "nrrd":
        head = kit["seeds"]["nrrd"][: kit["seeds"]["nrrd"].index(b"\n\n") + 2]
        data = text_header_set(head, "data file", "/dev/stdin", sep=": ")
    else:
        data = text_header_set(kit["seeds"]["mha"], "ElementDataFile", "/dev/stdin", sep=" = ")
    path = _write(kit, f"stdin.{kind}", data)
    done = _in_subprocess(_READ_IN_CHILD.format(path=str(path)), timeout=30)
    assert "ReadError" in done.stdout and "not a regular file" in done.stdout, done.stdout + done.stderr[-500:]
    _read_error(path, "not a regular file")
    zero = _write(kit, f"zero.{kind}", data.replace(b"/dev/stdin", b"/dev/zero"))
    _read_error(zero, "not a regular file")  # /dev/zero used to read as an image of zeros


@pytest.mark.parametrize("keyword, value, match", [
    ("NumberOfFrames", "abc", "invalid DICOM attribute values"),           # ValueError escaped
    ("RescaleSlope", "abc", "invalid DICOM attribute values"),             # ValueError escaped
    ("SliceThickness", "abc", "invalid DICOM attribute values"),           # ValueError escaped
    ("ImagePositionPatient", ["1"], "invalid DICOM attribute values|ImagePositionPatient"),  # TypeError
    ("ImagePositionPatient", ["abc", "0", "0"], "invalid DICOM attribute values"),
    ("ImageOrientationPatient", ["1", "0", "0"], "ImageOrientationPatient needs 6 values"),  # ValueError
    ("ImageOrientationPatient", ["1", "0", "0", "1", "0", "0"], "degenerate direction"),     # accepted before
    ("ImageOrientationPatient", ["nan"] * 6, "non-finite"),
    ("PhotometricInterpretation", "PALETTE COLOR", "invalid DICOM attribute values|cannot decode"),  # ValueError
    ("TransferSyntaxUID", "1.2.3.4", "cannot decode|invalid DICOM"),      # ValueError from is_compressed
    ("RescaleSlope", "nan", "not a finite number"),                       # all-NaN image before
    ("RescaleIntercept", "inf", "not a finite number"),
])
def test_regression_malformed_dicom_values_raise_read_error(kit, keyword, value, match):
    data = dicom_set(kit["seeds"]["dicom_mr"], keyword, value)
    path = _write(kit, f"bad_{keyword}.dcm", data)
    _read_error(path, match)
    call(to_display, path, check_display)  # and the Grounder's input path: no other exception type


def test_regression_dicom_non_finite_pixel_spacing_means_unknown_spacing(kit):
    """PixelSpacing 'inf' reached Geometry(): ValueError 'spacing must be positive and finite'."""
    for seed in ("dicom_mr", "dicom_jpeg"):
        path = _write(kit, f"inf_spacing_{seed}.dcm", dicom_set(kit["seeds"][seed], "PixelSpacing", ["inf", "inf"]))
        img = read_image(path)
        assert not img.spacing_known and all(math.isfinite(v) for v in img.geometry.spacing)


def test_regression_dicom_frame_count_disagreeing_with_the_decoder(kit):
    """NumberOfFrames '1.5': pydicom decoded 2 frames, the reader took 1 → a 4D array with 2D geometry."""
    path = _write(kit, "frames.dcm", dicom_set(kit["seeds"]["dicom_rgb2f"], "NumberOfFrames", "1.5"))
    _read_error(path, r"decoded pixel data has shape \(1, 2, 100, 100, 3\), the header declares \(1, 100, 100, 3\)")


def test_regression_dicom_series_slice_errors_name_the_folder(kit):
    """Series: a NaN position (Geometry ValueError), an 'abc' position (ValueError), a slice decoding
    to another shape (np.stack ValueError) escaped as other exception types."""
    rgb = [("SamplesPerPixel", 3), ("PlanarConfiguration", 0), ("PhotometricInterpretation", "RGB"),
           ("BitsAllocated", 8), ("BitsStored", 8), ("HighBit", 7), ("PixelData", "double")]
    cases = [([("ImagePositionPatient", ["nan", "0", "0"])], "non-finite"),
             ([("ImagePositionPatient", ["abc", "0", "0"])], "invalid DICOM attribute values"),
             (rgb, r"decode to different shapes: \[\(128, 128\), \(128, 128, 3\)\]")]  # an RGB slice among grey ones
    for i, (changes, match) in enumerate(cases):
        folder = kit["dir"] / f"series{i}"
        folder.mkdir()
        for k in range(3):
            data = _undamaged_slice(kit, k)
            for keyword, value in changes if k == 1 else []:
                data = dicom_set(data, keyword, value)
            (folder / f"s{k}.dcm").write_bytes(data)
        _read_error(folder, match)
        call(to_display, folder, check_display)


def _undamaged_slice(kit: dict, k: int) -> bytes:
    """Slice ``k`` of the 3-slice CT series :func:`dicom_series_files` builds (positions 0, 2.5, 5 mm)."""
    import pydicom
    from pydicom.uid import generate_uid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(io.BytesIO(kit["seeds"]["dicom_ct"]))
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["medglip-regression-series"])
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"medglip-regression-{k}"])
    ds.ImagePositionPatient = ["0", "0", f"{2.5 * k}"]
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def test_regression_nifti_data_offset_is_the_files(kit):
    """The truncation check used the image header's copy (vox_offset reset to 0): a huge vox_offset
    got past it and numpy's memmap raised OverflowError."""
    for value in (1e30, 3.4e38, 2.0**31, 1e9):
        path = _write(kit, "offset.nii", nifti_set(kit["seeds"]["nii"], "vox_offset", value))
        _read_error(path, "file truncated")


def test_regression_gzipped_nifti_declaring_a_huge_shape_is_refused_before_allocating(kit):
    """nibabel allocates the declared size (bytearray) before finding the stream short: a 60-byte
    .nii.gz declaring 16384 x 16384 x 6 float32 (6 GiB, under the voxel limit) allocated 6 GiB."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((16384, 16384, 6))
    hdr.set_data_dtype(np.float32)
    path = _write(kit, "bomb.nii.gz", gzip.compress(hdr.binaryblock + bytes(4) + bytes(1000)))
    _read_error(path, "compressed bytes cannot hold the 6,442,450,944 bytes")


def test_regression_tiff_pixel_data_not_matching_the_shape(kit):
    """BitsPerSample 33: tifffile decoded nothing and the reshape raised ValueError."""
    for bits in (33, 30000):
        path = _write(kit, "bits.tif", tiff_tag(kit["seeds"]["tiff"], "BitsPerSample", bits))
        _read_error(path, "does not match the declared shape|cannot read TIFF")


def test_regression_tiff_malformed_resolution_tag_means_unknown_spacing(kit):
    """YResolution with count 0 (value ``()``): IndexError escaped."""
    data = bytearray(kit["seeds"]["tiff"])
    (ifd,) = struct.unpack_from("<I", data, 4)
    (n,) = struct.unpack_from("<H", data, ifd)
    for e in range(n):
        if struct.unpack_from("<H", data, ifd + 2 + 12 * e)[0] == 283:  # YResolution
            struct.pack_into("<I", data, ifd + 2 + 12 * e + 4, 0)
    img = read_image(_write(kit, "res.tif", bytes(data)))
    assert not img.spacing_known and img.array.shape == (24, 32)


@pytest.mark.parametrize("seed", PNG_SEEDS)
def test_regression_png_shorter_than_its_header_is_refused(kit, seed):
    """Pillow fills rows missing from a (complete) zlib stream with zeros: an IHDR height raised
    from 24 to 25 / 48 read as a clean image, and 16777216 rows allocated 1.6 GB."""
    for height in (25, 48, 16777216):
        path = _write(kit, f"tall_{seed}.png", png_ihdr(kit["seeds"][seed], height=height))
        _read_error(path, "PNG pixel data truncated or corrupt")
        if seed != "png16rgb":
            _read_error(path, "PNG pixel data truncated or corrupt", _read_mask_2d)


def test_png_check_accepts_interlaced_and_low_bit_depth_pictures(tmp_path):
    """The scanline arithmetic of the PNG check (Adam7 passes, 1/2/4-bit rows) on valid files."""
    from PIL import Image

    from medglip.io.raster import _ADAM7

    rng = np.random.default_rng(3)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    for shape in [(1, 1), (3, 5), (13, 9), (40, 33)]:
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        raw = b"".join(b"\0" + row.tobytes() for x0, y0, dx, dy in _ADAM7 for row in a[y0::dy, x0::dx]
                       if a[y0::dy, x0::dx].size)
        png = (PNG_SIGNATURE + chunk(b"IHDR", struct.pack(">IIBBBBB", shape[1], shape[0], 8, 0, 0, 0, 1))
               + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
        (tmp_path / "il.png").write_bytes(png)
        np.testing.assert_array_equal(read_image(tmp_path / "il.png").array, a)
    for bits in (1, 2, 4):
        im = Image.fromarray(rng.integers(0, 2**bits, (7, 13), dtype=np.uint8)).convert("P")
        im.save(tmp_path / f"b{bits}.png", bits=bits)
        assert read_image(tmp_path / f"b{bits}.png").array.shape[:2] == (7, 13)
    Image.fromarray(rng.integers(0, 2, (7, 13)).astype(bool)).save(tmp_path / "mono.png")
    assert read_image(tmp_path / "mono.png").array.shape == (7, 13)


def test_regression_jpeg_and_gif_declaring_more_pixels_than_their_data_can_hold(kit, tmp_path):
    """libjpeg / Pillow's GIF decoder fill missing data and succeed: a 1.4 kB JPEG declaring
    30000 x 30000 took 53 s and 3.5 GB through read_image; a GIF 21 s and 8.7 GB."""
    from PIL import Image

    path = _write(kit, "huge.jpg", jpeg_sof(kit["seeds"]["jpeg"], 30000, 30000))
    t0 = time.perf_counter()
    _read_error(path, "bytes cannot hold the 30000 x 30000 image")
    assert time.perf_counter() - t0 < HANG_S
    Image.fromarray(np.zeros((24, 32), np.uint8)).convert("P").save(tmp_path / "s.gif")
    gif = bytearray((tmp_path / "s.gif").read_bytes())
    struct.pack_into("<HH", gif, 6, 30000, 30000)
    at = gif.index(b",", 13)
    struct.pack_into("<HH", gif, at + 5, 30000, 30000)
    (tmp_path / "huge.gif").write_bytes(bytes(gif))
    _read_error(tmp_path / "huge.gif", "bytes cannot hold")
    # the bound is the theoretical one (1 bit per 8x8 block): extreme but real JPEGs still read
    Image.new("L", (3000, 3000), 128).save(tmp_path / "flat.jpg", quality=1, optimize=True, progressive=True)
    assert read_image(tmp_path / "flat.jpg").array.shape == (3000, 3000)


@pytest.mark.parametrize("seed, key, sep", [("nrrd", "sizes", ": "), ("nrrdgz", "sizes", ": "),
                                            ("mha", "DimSize", " = ")])
def test_regression_itk_header_declaring_more_data_than_the_file_holds_is_refused_before_allocating(
        kit, seed, key, sep):
    """ITK allocated the declared size (2 GB for 1000^3 shorts) before finding the data short."""
    path = _write(kit, f"big_{seed}.{SEED_SUFFIX[seed]}", text_header_set(kit["seeds"][seed], key, "1000 1000 1000",
                                                                          sep=sep))
    t0 = time.perf_counter()
    _read_error(path, "declares 2,000,000,000 bytes of pixel data")
    assert time.perf_counter() - t0 < 1.0


def test_regression_compressed_metaimage_with_corrupt_data_is_refused(kit, tmp_path):
    """ITK ignores zlib errors in MetaImage data ("Uncompress failed" on stderr) and returns garbage."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.random.default_rng(0).integers(0, 1000, (6, 10, 12)).astype(np.int16))
    sitk.WriteImage(img, str(tmp_path / "c.mha"), True)
    good = (tmp_path / "c.mha").read_bytes()
    np.testing.assert_array_equal(read_image(tmp_path / "c.mha").array, sitk.GetArrayFromImage(img).T)
    start = good.index(b"ElementDataFile = LOCAL\n") + 24
    for pos in (start + 5, (start + len(good)) // 2, len(good) - 3):
        bad = bytearray(good)
        bad[pos] ^= 0x5A
        _read_error(_write(kit, "flip.mha", bytes(bad)), "compressed pixel data")
    raw_as_compressed = text_header_set(kit["seeds"]["mha"], "CompressedData", "True", sep=" = ")
    _read_error(_write(kit, "rawz.mha", raw_as_compressed), "compressed pixel data")


@pytest.mark.parametrize("fill", [-3.4e38, 1e308, -1.7e308, 3e38])
def test_regression_constant_image_of_huge_values_displays(fill):
    """model_pixels: ``hi = lo + 1`` is lost in rounding at |lo| >= 2**53: ZeroDivisionError (seen with a
    DICOM RescaleIntercept 1e308; -3.4e38 is a common float 'no data' fill)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pix, rec = model_pixels(np.full((8, 8), fill, np.float64), None)
        assert pix.dtype == np.uint8 and rec["high"] > rec["low"]
        disp = to_display(np.full((8, 8), fill, np.float32 if abs(fill) < 3.4e38 else np.float64))
    assert disp.shape == (8, 8)


def test_regression_to_display_names_the_file_for_unsupported_pixel_types(tmp_path):
    """A one-slice complex NRRD: the pixel mapping's MedglipError did not name the file."""
    import SimpleITK as sitk

    a = (np.arange(12).reshape(1, 3, 4) * (1 + 1j)).astype(np.complex64)
    sitk.WriteImage(sitk.GetImageFromArray(a), str(tmp_path / "cx.nrrd"))
    with pytest.raises(MedglipError, match="unsupported pixel type") as exc:
        to_display(tmp_path / "cx.nrrd")
    assert "cx.nrrd" in str(exc.value)


def test_regression_degenerate_or_non_finite_geometry_is_refused(kit, tmp_path):
    """A NIfTI whose affine has two parallel columns read fine and then failed in ground_volume
    (ValueError 'degenerate direction matrix' → HTTP 500); NaN origins read as NaN world boxes."""
    import nibabel as nib

    img = nib.Nifti1Image(np.zeros((4, 5, 6), np.int16), None)
    img.header.set_sform(np.array([[1.0, 0, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1]]), code=1)
    img.header.set_qform(None, code=0)
    nib.save(img, str(tmp_path / "deg.nii"))
    _read_error(tmp_path / "deg.nii", "degenerate direction matrix")
    for field, value in [("srow_x3", math.nan), ("srow_z3", math.inf)]:  # the sform's translation
        _read_error(_write(kit, "origin.nii", nifti_set(kit["seeds"]["nii"], field, value)), "non-finite")
    for key, value, sep, seed in [("TransformMatrix", "1 0 0 0 1e-36 1 0 0 1", " = ", "mha"),
                                  ("space directions", "(0.5,0,0) (0,1e-36,0.7) (0,0,2)", ": ", "nrrd")]:
        path = _write(kit, f"geom{SEED_SUFFIX[seed]}", text_header_set(kit["seeds"][seed], key, value, sep=sep))
        _read_error(path, "degenerate direction matrix")
