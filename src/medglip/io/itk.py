"""NRRD / MetaImage (and any other SimpleITK-readable) files, geometry kept exactly."""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..core.geometry import Geometry
from ..errors import ReadError
from ._base import ImageData, check_geometry, check_size, condense_error
from .policy import working_dtype

log = logging.getLogger(__name__)


def sitk_to_imagedata(img: sitk.Image, path: str | Path, fmt: str) -> ImageData:
    """Convert a SimpleITK image to :class:`ImageData` (3D → ``(i, j, k[, C])``; 2D → ``(H, W[, C])``)."""
    dim = img.GetDimension()
    view = sitk.GetArrayViewFromImage(img)  # (k, j, i[, C]) / (j, i[, C]); copied once below
    ncomp = img.GetNumberOfComponentsPerPixel()
    spacing = tuple(float(s) for s in img.GetSpacing())
    origin = tuple(float(o) for o in img.GetOrigin())
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(dim, dim)
    if dim == 3 and ncomp == 1:
        # one memcpy; its transpose is the (i, j, k) array in Fortran order (as nibabel gives it):
        # a C-order transpose would cost a cache-hostile copy of the volume, and slices are views anyway
        arr = np.array(view).T
        geom = Geometry(spacing, origin, tuple(float(d) for d in direction.ravel()))
    elif dim == 3:
        arr = np.array(np.transpose(view, (2, 1, 0, 3)), order="C")
        geom = Geometry(spacing, origin, tuple(float(d) for d in direction.ravel()))
    elif dim == 2:
        arr = np.array(view, order="C")
        # array is already (rows, cols) = (y, x); world axes follow the array axes: swap x/y.
        perm = [1, 0]
        geom = Geometry((spacing[1], spacing[0]), (origin[1], origin[0]),
                        tuple(float(d) for d in direction[np.ix_(perm, perm)].ravel()))
    elif dim == 4:
        # (x, y, z, t): keep 3D geometry, the 4th axis becomes channels.
        if ncomp > 1:
            raise ReadError(path, "4D images with vector pixels are not supported")
        arr = np.array(np.transpose(view, (3, 2, 1, 0)), order="C")
        geom = Geometry(spacing[:3], origin[:3], tuple(float(d) for d in direction[:3, :3].ravel()))
    else:
        raise ReadError(path, f"unsupported image dimension {dim}")
    check_geometry(path, geom)
    meta = {
        "format": fmt,
        "dtype": str(arr.dtype),
        "components": ncomp,
    }
    return ImageData(arr, geom, None, True, meta, str(path))


#: Deflate (gzip/zlib) cannot expand data by more than about 1032:1.
MAX_DEFLATE_RATIO = 1032
_HEAD_BYTES = 1 << 16
#: How many bytes of pixel data one byte of the file can hold, per NRRD encoding (None: no bound).
_NRRD_EXPANSION = {"raw": 1, "hex": 1, "txt": 8, "text": 8, "ascii": 8, "gz": MAX_DEFLATE_RATIO,
                   "gzip": MAX_DEFLATE_RATIO}


class _TextHeader:
    """The fields of a NRRD or MetaImage text header that decide where the pixel bytes are.

    ``fields``: ``(lower-case key, value)`` in file order; ``data_at``: byte offset of attached data;
    ``tail``: the lines after the data-file field (a ``LIST`` of files); ``complete``: the whole header
    was within the bytes read.
    """

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            head = f.read(_HEAD_BYTES)
        self.kind: str | None = None
        self.fields: list[tuple[str, str]] = []
        self.tail: list[str] = []
        self.data_at, self.complete = 0, True
        if head.startswith(b"NRRD"):
            self.kind, sep = "nrrd", ":"
            m = re.search(rb"\r?\n\r?\n", head)
            end = m.end() if m else len(head)  # a detached header (.nhdr) may end at EOF
            text = head[: m.start() if m else len(head)].decode("latin-1").splitlines()[1:]
            rest: list[str] = []
        elif path.suffix.lower() in (".mha", ".mhd"):
            self.kind, sep = "meta", "="
            m = re.search(rb"^[ \t]*ElementDataFile[ \t]*=[^\n]*(\n|$)", head, re.MULTILINE | re.IGNORECASE)
            end = m.end() if m else len(head)
            text = head[:end].decode("latin-1").splitlines()
            rest = head[end:].decode("latin-1").splitlines()
        else:
            return
        self.complete = m is not None or len(head) < _HEAD_BYTES
        self.data_at = end
        for i, line in enumerate(text):
            if line.startswith("#") or ":=" in line or sep not in line:
                continue
            key, value = (t.strip() for t in line.split(sep, 1))
            self.fields.append((key.lower(), value))
            if key.lower() in ("data file", "datafile", "elementdatafile"):
                self.tail = [ln.strip() for ln in text[i + 1:] + rest if ln.strip()]

    def get(self, *keys: str) -> str | None:
        return next((v for k, v in self.fields if k in keys), None)


def _data_files(path: Path, hdr: _TextHeader) -> list[Path] | None:
    """The detached data files a header names (None: the data follows the header in the same file)."""
    value = hdr.get("data file", "datafile", "elementdatafile")
    if value is None or value.upper() == "LOCAL":
        return None
    tokens = value.split()
    if tokens and tokens[0].upper() == "LIST":
        names = hdr.tail
    elif len(tokens) >= 4 and "%" in tokens[0]:  # "<printf format> <first> <last> <step> [<subdim>]"
        try:
            first, last, step = (int(t) for t in tokens[1:4])
            numbers = range(first, last + (1 if step > 0 else -1), step)  # ValueError for step 0
            if len(numbers) > 100_000:
                raise ReadError(path, f"data file pattern {value!r} names {len(numbers):,} files")
            names = [tokens[0] % i for i in numbers]
        except (TypeError, ValueError):
            raise ReadError(path, f"invalid data file pattern {value!r}") from None
    else:
        names = [value]
    return [Path(n) if os.path.isabs(n) else path.parent / n for n in names]


def detached_data_files(path: str | Path) -> list[Path] | None:
    """The separate data files a NRRD / MetaImage header names (``data file:`` / ``ElementDataFile``),
    or None when the pixels follow the header in the same file (or the file is no such header).
    Services reading uploads refuse the former: such a header can point at any file of the server."""
    p = Path(path)
    return _data_files(p, _TextHeader(p))


def check_header(path: Path) -> _TextHeader:
    """Checks of a NRRD / MetaImage header that must come before ITK parses it.

    - MetaImage ``NDims`` outside 1..10 crashes ITK (segmentation fault): refused;
    - a detached data file that is not a regular file (``/dev/stdin``, a FIFO, a device, a folder)
      would block or stream forever: refused.
    """
    hdr = _TextHeader(path)
    if hdr.kind == "meta":
        for key, value in hdr.fields:
            if key == "ndims":
                try:
                    n = float(value.split()[0])
                except (ValueError, IndexError):
                    n = math.nan
                if not (n.is_integer() and 1 <= n <= 10):
                    raise ReadError(path, f"MetaImage header: NDims = {value[:40]!r} is not a dimension count (1..10)")
    for f in _data_files(path, hdr) or []:
        try:
            mode = os.stat(f).st_mode
        except (OSError, ValueError):  # missing, or an impossible name (NUL bytes)
            continue  # missing: ITK says so
        if not stat.S_ISREG(mode):
            raise ReadError(path, f"the header's data file {f} is not a regular file")
    return hdr


def check_data_size(path: Path, hdr: _TextHeader, need: int) -> None:
    """Refuse a header declaring more pixel bytes than its data can hold, before ITK allocates them;
    inflate a compressed MetaImage's data to check it (ITK ignores zlib errors and returns garbage)."""
    if hdr.kind is None or not hdr.complete:
        return
    files = _data_files(path, hdr)
    if hdr.kind == "nrrd":
        expansion = _NRRD_EXPANSION.get((hdr.get("encoding") or "").lower())
        compressed = expansion == MAX_DEFLATE_RATIO
    else:
        compressed = (hdr.get("compresseddata") or "").lower() == "true"
        expansion = MAX_DEFLATE_RATIO if compressed else 1
    if files is None:
        files, offset = [path], hdr.data_at
    else:
        offset = 0
    try:
        have = sum(os.stat(f).st_size for f in files) - offset
    except (OSError, ValueError):
        return  # a missing data file: ITK says so
    if expansion is not None and need > max(0, have) * expansion:
        raise ReadError(path, f"file truncated or corrupt: the header declares {need:,} bytes of pixel data, the "
                              f"{'file holds' if offset else 'data file(s) hold'} {max(0, have):,}"
                              f"{' compressed bytes' if compressed else ''}")
    if hdr.kind == "meta" and compressed and len(files) == 1:
        _check_zlib_stream(path, files[0], offset, need)


def _check_zlib_stream(path: Path, data: Path, offset: int, need: int) -> None:
    inflater, got = zlib.decompressobj(47), 0  # zlib or gzip wrapper
    try:
        with open(data, "rb") as f:
            f.seek(offset)
            while not inflater.eof:
                buf = f.read(1 << 20)
                if not buf:
                    break
                while buf and not inflater.eof:
                    got += len(inflater.decompress(buf, 1 << 20))
                    buf = inflater.unconsumed_tail
    except zlib.error as exc:
        raise ReadError(path, f"compressed pixel data is corrupt ({condense_error(exc)})") from None
    if not inflater.eof or got < need:
        raise ReadError(path, f"compressed pixel data truncated or corrupt: it inflates to {got:,} of the "
                              f"{need:,} bytes the header declares")


def _component_bytes(reader: sitk.ImageFileReader) -> int:
    """Bytes per pixel component (a complex pixel counts as 2 components) of the image a reader will read."""
    m = re.search(r"(\d+)-bit", sitk.GetPixelIDValueAsString(reader.GetPixelID()))
    return int(m.group(1)) // 8 if m else 1


def _is_float(reader: sitk.ImageFileReader) -> bool:
    return "float" in sitk.GetPixelIDValueAsString(reader.GetPixelID()).lower()


def read_itk(path: str | Path, *, fmt: str | None = None, max_pixels: int | None = None) -> ImageData:
    """Read a file SimpleITK understands (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``, ...).

    The header is read first and the declared size checked before pixels are allocated.
    """
    path = Path(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    hdr = check_header(path)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ReadError(path, f"cannot read {fmt} header ({condense_error(exc)})") from None
    size = tuple(reader.GetSize())
    ncomp = reader.GetNumberOfComponents()
    stored = _component_bytes(reader)
    itemsize = stored
    if stored == 8 and _is_float(reader) and working_dtype(np.float64) == np.float32:
        # ITK converts while reading (no float64 copy reaches numpy)
        reader.SetOutputPixelType(sitk.sitkVectorFloat32 if ncomp > 1 else sitk.sitkFloat32)
        itemsize = 4
    check_size(path, size + ((ncomp,) if ncomp > 1 else ()), spatial_ndim=min(len(size), 3), max_pixels=max_pixels,
               itemsize=itemsize)
    check_data_size(path, hdr, int(np.prod(size, dtype=np.int64)) * ncomp * stored)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise ReadError(path, f"cannot read {fmt} pixel data, file truncated or corrupt? ({condense_error(exc)})") from None
    out = sitk_to_imagedata(img, path, fmt)
    keys = [k for k in reader.GetMetaDataKeys() if k.lower() in ("modality", "dicom_0008_0060")]
    if keys:
        out.meta["Modality"] = reader.GetMetaData(keys[0]).strip()
    return out
