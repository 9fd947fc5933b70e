"""Hostile uploads of issue 14, written small (a few MB at most) however large they decode.

Shared by ``tests/test_serve_security.py`` (small sizes) and ``benchmarks/bench_attacks.py`` (the sizes
of the issue). Every builder streams its zeros through a compressor, so making a file that decodes to
gigabytes needs neither the memory nor the disk space of the decoded data.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

ZEROS = bytes(1 << 20)


def dicom_header(*, pixels: bool = False, patient: str = "Doe^Jane") -> bytes:
    """pydicom's CT_small as bytes, its PixelData removed unless ``pixels``; PatientName set to ``patient``."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = patient
    if not pixels:
        del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def zip_of_dicom_with_zeros(path: Path, zeros: int, *, pixels: bool = True) -> Path:
    """A zip holding ONE DICOM file: a real header followed by ``zeros`` bytes of zeros (issue 14, attack 1)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("series/slice0.dcm", "w", force_zip64=zeros > 2**31) as member:
            member.write(dicom_header(pixels=pixels))
            _write_zeros(member, zeros)
    return path


def zip_bomb(path: Path, members: int, each: int) -> Path:
    """``members`` DICOM-looking files of ``each`` bytes (a preamble, ``DICM``, then zeros) in one zip."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i in range(members):
            with zf.open(f"bomb{i}.dcm", "w", force_zip64=each > 2**31) as member:
                member.write(bytes(128) + b"DICM")
                _write_zeros(member, each - 132)
    return path


def _write_zeros(out, n: int) -> None:
    while n > 0:
        k = min(n, len(ZEROS))
        out.write(ZEROS[:k])
        n -= k


def float64_tiff(path: Path, shape: tuple[int, ...]) -> Path:
    """A zlib-compressed, tiled float64 TIFF of ``shape`` ``(H, W)`` or ``(H, W, S)``, all zeros."""
    import tifffile

    tile = (256, 256)
    h, w = shape[:2]
    n_tiles = -(-h // tile[0]) * -(-w // tile[1])
    block = np.zeros(tile + tuple(shape[2:]), np.float64)
    tifffile.imwrite(path, (block for _ in range(n_tiles)), shape=shape, dtype=np.float64, tile=tile,
                     compression="zlib", photometric="minisblack",
                     planarconfig="contig" if len(shape) == 3 else None, metadata=None)
    return path


def float64_nifti_gz(path: Path, shape: tuple[int, int, int]) -> Path:
    """A ``.nii.gz`` of ``shape`` float64 voxels, all zeros (gzip of a header and a stream of zeros)."""
    import nibabel as nib

    hdr = nib.Nifti1Header()
    hdr.set_data_dtype(np.float64)
    hdr.set_data_shape(shape)
    hdr.set_qform(np.diag([1.0, 1.0, 1.0, 1.0]), code=1)
    hdr["vox_offset"] = 352
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(hdr.binaryblock + b"\x00" * 4)
        _write_zeros(f, int(np.prod(shape)) * 8)
    return path


def png16_rgb(path: Path, width: int, height: int) -> Path:
    """A 16-bit RGB PNG of ``width x height`` black pixels (written scanline by scanline)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    line = bytes(1 + width * 6)
    idat = bytearray()
    for _ in range(height):
        idat += comp.compress(line)
    idat += comp.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", bytes(idat)) + chunk(b"IEND", b""))
    return path


def nifti_volume(path: Path, shape: tuple[int, int, int]) -> Path:
    """A legitimate int16 ``.nii.gz`` of ``shape`` (a smooth pattern: compresses well, grounds slowly when
    large), for deadline and disconnect tests."""
    import nibabel as nib

    i, j, k = np.indices(shape, sparse=True)
    arr = ((i // 8 + j // 8 + k // 4) % 64 * 6).astype(np.int16)
    nib.save(nib.Nifti1Image(arr, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    return path


def corrupt_file(path: Path, *, offset: int, size: int, seed: int = 0) -> Path:
    """Overwrite ``size`` bytes of ``path`` at ``offset`` with random bytes (a damaged disk block)."""
    data = np.random.default_rng(seed).bytes(size)
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return path
