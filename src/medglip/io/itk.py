"""NRRD / MetaImage files (and 16-bit colour PNGs) through SimpleITK, geometry kept exactly.

A text header may name other files that hold the pixels (NRRD ``data file``, MetaImage
``ElementDataFile``): :func:`check_header` parses it as ITK does, refuses anything it cannot parse the
same way, and lets ITK open another file only as the read policy allows (:func:`medglip.io.policy.data_file`).
"""

from __future__ import annotations

import logging
import math
import os
import re
import zlib
from pathlib import Path
from typing import NoReturn

import numpy as np
import SimpleITK as sitk

from ..core.geometry import Geometry
from ..errors import ReadError
from ._base import ImageData, check_geometry, check_size, condense_error
from .policy import check_confined, data_file, working_dtype

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
        geom = Geometry(
            (spacing[1], spacing[0]),
            (origin[1], origin[0]),
            tuple(float(d) for d in direction[np.ix_(perm, perm)].ravel()),
        )
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
#: A NRRD / MetaImage text header must end within this many bytes (real ones take a few hundred); past
#: it the file is refused, since what the library would parse beyond cannot be checked.
MAX_HEADER_BYTES = 1 << 20
#: How many bytes of pixel data one byte of the file can hold, per NRRD encoding (None: no bound).
_NRRD_EXPANSION = {
    "raw": 1,
    "hex": 1,
    "txt": 8,
    "text": 8,
    "ascii": 8,
    "gz": MAX_DEFLATE_RATIO,
    "gzip": MAX_DEFLATE_RATIO,
}
#: the ITK image IO that reads each kind of header (pinned: ITK never picks another reader by content)
_IMAGE_IO = {"nrrd": "NrrdImageIO", "meta": "MetaImageIO"}
#: teem (NRRD) ends a line at "\r\n", "\n" or a lone "\r"
_NRRD_EOL = re.compile(rb"\r\n|\r|\n")
#: a mention of a data file, however spelled ("data file", "DataFile", "ElementDataFile", "data_file")
_DATA_FILE_WORD = re.compile(r"data[\s_]*file", re.IGNORECASE)
#: what MetaIO accepts for "the data follow the header"
_META_LOCAL = ("LOCAL", "Local", "local")


class _TextHeader:
    """The fields of a NRRD or MetaImage text header that decide where the pixel bytes are, parsed the
    way the library that reads the file parses them (so that what is checked is what it reads).

    ``kind``: ``"nrrd"``, ``"meta"`` or None (neither); ``fields``: ``(lower-case key, value)`` in file
    order; ``data_spec``: the data-file field's value (None: the data follow the header in this file);
    ``data_at``: byte offset where the header ends; ``tail``: the lines after the data-file field (a
    ``LIST`` of files).

    Raises:
        ReadError: a header that does not end within :data:`MAX_HEADER_BYTES`, or that mentions a data
            file anywhere but in the one field the library reads it from (a comment-swallowing value, a
            key without separator, a second spelling): such a header could make the library read a file
            the check did not see.
    """

    def __init__(self, path: Path) -> None:
        with open(path, "rb") as f:
            head = f.read(MAX_HEADER_BYTES + 1)
        self.path = path
        self.whole = len(head) <= MAX_HEADER_BYTES  # the whole file was read
        self.kind: str | None = None
        self.fields: list[tuple[str, str]] = []
        self.tail: list[str] = []
        self.data_spec: str | None = None
        self.data_at = 0
        if head.startswith(b"NRRD"):
            self.kind = "nrrd"
            self._parse_nrrd(head)
        elif path.suffix.lower() in (".mha", ".mhd"):
            self.kind = "meta"
            self._parse_meta(head)

    def _refuse(self, why: str) -> NoReturn:
        raise ReadError(self.path, why)

    def _parse_nrrd(self, head: bytes) -> None:
        # teem: lines end at \r\n, \n or \r; the header at the first empty line (a detached .nhdr at EOF);
        # "#" first is a comment; "key:=value" a key/value pair; "field: value" a field
        lines: list[tuple[str, int]] = []  # (line, offset just past its end of line)
        pos, end = 0, None
        for m in _NRRD_EOL.finditer(head):
            raw = head[pos : m.start()]
            pos = m.end()
            if not raw:
                end = pos
                break
            lines.append((raw.decode("latin-1"), pos))
        if end is None:
            if not self.whole:
                self._refuse(f"NRRD header does not end within the first {MAX_HEADER_BYTES:,} bytes")
            if pos < len(head):
                lines.append((head[pos:].decode("latin-1"), len(head)))
            end = len(head)
        self.data_at = end
        for i, (line, line_end) in enumerate(lines[1:], start=2):
            if line.startswith("#"):
                continue
            key, sep, value = line.partition(":")
            if _DATA_FILE_WORD.search(line):
                if value.startswith("=") or key.strip().lower() not in ("data file", "datafile"):
                    self._refuse(f"NRRD header line {i} mentions a data file outside the 'data file:' field")
                if self.data_spec is not None:
                    self._refuse("NRRD header has two 'data file:' fields")
                self.data_spec = value.strip()
                if self.data_spec.split()[:1] == ["LIST"]:
                    # the file names run to the end of the file, blank lines included
                    if not self.whole:
                        self._refuse(f"NRRD LIST header longer than {MAX_HEADER_BYTES:,} bytes")
                    names = _NRRD_EOL.split(head[line_end:])
                    self.tail = [t.decode("latin-1").strip() for t in names if t.strip()]
                continue
            if sep and not value.startswith("="):
                self.fields.append((key.strip().lower(), value.strip()))

    def _parse_meta(self, head: bytes) -> None:
        # MetaIO: a key runs to "=" or ":", a value to "\n"; the first key spelled exactly
        # "ElementDataFile" ends the header. The first mention of the word, in any spelling and anywhere,
        # must be that key at the start of a line, and every line before it a "key = value" line: then
        # MetaIO cannot end the header anywhere else (a line without separator makes it read the next
        # line's key as a value; a "\r" does not end a value).
        m = re.search(rb"elementdatafile", head, re.IGNORECASE)
        if m is None:
            self._refuse(
                f"MetaImage header does not end (no ElementDataFile line) within the first {MAX_HEADER_BYTES:,} bytes"
                if not self.whole
                else "not a readable MetaImage file (no ElementDataFile line ends a header)"
            )
        start = head.rfind(b"\n", 0, m.start()) + 1
        eol = head.find(b"\n", m.end())
        if eol < 0 and not self.whole:
            self._refuse(f"MetaImage header does not end within the first {MAX_HEADER_BYTES:,} bytes")
        eol = len(head) if eol < 0 else eol
        after = head[m.end() : eol].lstrip(b" \t")
        if head[start : m.start()].strip(b" \t") or m.group() != b"ElementDataFile" or after[:1] not in (b"=", b":"):
            self._refuse("MetaImage header: ElementDataFile must begin a line, spelled so, followed by '='")
        text = head[:start].decode("latin-1").split("\n")
        for i, line in enumerate(text):
            bare = line.strip(" \t\r\v\f")
            if not bare:
                continue
            cut = min((j for j in (line.find("="), line.find(":")) if j >= 0), default=-1)
            if cut < 0 or not line[:cut].strip(" \t\r\v\f"):
                self._refuse(f"MetaImage header line {i + 1} is not 'key = value'")
            if _DATA_FILE_WORD.search(line):
                self._refuse(f"MetaImage header line {i + 1} mentions a data file before the ElementDataFile line")
            self.fields.append((line[:cut].strip().lower(), line[cut + 1 :].strip()))
        value = after[1:].decode("latin-1").strip(" \t\r\v\f")
        self.fields.append(("elementdatafile", value))
        self.data_at = min(len(head), eol + 1)
        if value not in _META_LOCAL:
            self.data_spec = value
            if value.split()[:1] == ["LIST"]:
                if not self.whole:
                    self._refuse(f"MetaImage LIST header longer than {MAX_HEADER_BYTES:,} bytes")
                self.tail = [t.strip() for t in head[eol + 1 :].decode("latin-1").splitlines() if t.strip()]

    def get(self, *keys: str) -> str | None:
        return next((v for k, v in self.fields if k in keys), None)


def _data_names(path: Path, hdr: _TextHeader) -> list[str] | None:
    """The file names a header's data-file field names (None: the data follow the header in this file)."""
    value = hdr.data_spec
    if value is None:
        return None
    tokens = value.split()
    if tokens and tokens[0] == "LIST":
        return hdr.tail
    if len(tokens) >= 4 and "%" in tokens[0]:  # "<printf format> <first> <last> <step> [<subdim>]"
        try:
            first, last, step = (int(t) for t in tokens[1:4])
            numbers = range(first, last + (1 if step > 0 else -1), step)  # ValueError for step 0
            if len(numbers) > 100_000:
                raise ReadError(path, f"data file pattern {value!r} names {len(numbers):,} files")
            return [tokens[0] % i for i in numbers]
        except (TypeError, ValueError):
            raise ReadError(path, f"invalid data file pattern {value!r}") from None
    return [value]


def _data_files(path: Path, hdr: _TextHeader) -> list[Path] | None:
    """The separate data files of a header, each allowed by the read policy (:func:`~.policy.data_file`),
    or None when the data follow the header in the same file."""
    names = _data_names(path, hdr)
    if names is None:
        return None
    if not names:
        raise ReadError(path, "the header's data file LIST names no file")
    return [data_file(path, n) for n in names]


def detached_data_files(path: str | Path) -> list[Path] | None:
    """The separate data files a NRRD / MetaImage header names (``data file:`` / ``ElementDataFile``),
    or None when the pixels follow the header in the same file (or the file is no such header).

    Raises:
        ReadError: a header the readers refuse (see :func:`check_header`), or a data file the current
            read policy does not allow.
    """
    p = Path(path)
    return _data_files(p, _TextHeader(p))


def check_header(path: Path) -> _TextHeader:
    """Checks of a NRRD / MetaImage header that must come before ITK parses it.

    - the header must end within :data:`MAX_HEADER_BYTES` and be parsed here as ITK parses it (see
      :class:`_TextHeader`); anything ambiguous is refused;
    - a separate data file only as the read policy allows (:func:`~.policy.data_file`: none for uploads,
      a regular file beside the header otherwise; never ``/dev/stdin``, a FIFO, a device or a folder);
    - MetaImage ``NDims`` outside 1..10 crashes ITK (segmentation fault): refused.
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
    _data_files(path, hdr)
    return hdr


def check_data_size(path: Path, hdr: _TextHeader, need: int) -> None:
    """Refuse a header declaring more pixel bytes than its data can hold, before ITK allocates them;
    inflate a compressed MetaImage's data to check it (ITK ignores zlib errors and returns garbage)."""
    if hdr.kind is None:
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
        raise ReadError(
            path,
            f"file truncated or corrupt: the header declares {need:,} bytes of pixel data, the "
            f"{'file holds' if offset else 'data file(s) hold'} {max(0, have):,}"
            f"{' compressed bytes' if compressed else ''}",
        )
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
        raise ReadError(
            path,
            f"compressed pixel data truncated or corrupt: it inflates to {got:,} of the "
            f"{need:,} bytes the header declares",
        )


def _component_bytes(reader: sitk.ImageFileReader) -> int:
    """Bytes per pixel component (a complex pixel counts as 2 components) of the image a reader will read."""
    m = re.search(r"(\d+)-bit", sitk.GetPixelIDValueAsString(reader.GetPixelID()))
    return int(m.group(1)) // 8 if m else 1


def _is_float(reader: sitk.ImageFileReader) -> bool:
    return "float" in sitk.GetPixelIDValueAsString(reader.GetPixelID()).lower()


def read_itk(
    path: str | Path, *, fmt: str | None = None, max_pixels: int | None = None, image_io: str | None = None
) -> ImageData:
    """Read a NRRD (``.nrrd``, ``.nhdr``) or MetaImage (``.mha``, ``.mhd``) file with SimpleITK.

    The header is read first (:func:`check_header`: where the pixels are, as the read policy allows) and
    the declared size checked before pixels are allocated. ITK reads the file with the image IO of the
    header that was checked, never one it picks by content; ``image_io`` names it for other formats
    (``"PNGImageIO"`` for a 16-bit colour PNG).
    """
    path = check_confined(path)
    fmt = fmt or path.suffix.lstrip(".").lower()
    hdr = check_header(path)
    image_io = image_io or _IMAGE_IO.get(hdr.kind or "")
    if image_io is None:
        raise ReadError(
            path, f"not a readable NRRD or MetaImage file (a .{fmt} file must start with a NRRD or MetaImage header)"
        )
    reader = sitk.ImageFileReader()
    reader.SetImageIO(image_io)
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
    check_size(
        path,
        size + ((ncomp,) if ncomp > 1 else ()),
        spatial_ndim=min(len(size), 3),
        max_pixels=max_pixels,
        itemsize=itemsize,
    )
    check_data_size(path, hdr, int(np.prod(size, dtype=np.int64)) * ncomp * stored)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise ReadError(
            path, f"cannot read {fmt} pixel data, file truncated or corrupt? ({condense_error(exc)})"
        ) from None
    out = sitk_to_imagedata(img, path, fmt)
    keys = [k for k in reader.GetMetaDataKeys() if k.lower() in ("modality", "dicom_0008_0060")]
    if keys:
        out.meta["Modality"] = reader.GetMetaData(keys[0]).strip()
    return out
