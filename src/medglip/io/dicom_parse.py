"""Parse a DICOM file with pydicom, guarded against headers built to make the parser loop for hours.

pydicom walks a file element by element. A real header is followed by gigabytes of zeros, and each
8 zero bytes are one more empty element ``(0000,0000)``: a 1 GiB tail is 134 million elements, half an
hour of parsing for a 1 MB zip. :func:`parse_dicom` calls pydicom's own ``read_partial`` (what
``dcmread`` calls) with

- a ``stop_when`` check on every top-level element, before its value is read: its length must fit in
  what is left of the file, and tags must not descend (a tag below the previous one means the parser
  is reading garbage, such as a run of zeros): either is a :class:`ReadError` naming the byte offset;
- a file object that watches the reads pydicom makes (inside sequences and the command group too,
  where ``stop_when`` is not consulted): it stops at a run of all-zero element headers (no DICOM file
  has two in a row) and at :data:`~medglip.io.policy.MAX_DICOM_ELEMENTS` elements, and checks the
  :class:`~medglip.io.policy.ReadPolicy` deadline every few thousand reads;
- ``defer_size`` so that large values (the pixel data) are not read while parsing.

pydicom opens no other file for a dataset: references to other files (a DICOMDIR's ReferencedFileID, a
Pixel Data Provider URL) are never followed, and a deferred value is read by re-opening this same file
(through :class:`GuardedFile`, which also keeps every open inside the read policy's ``root``).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from pydicom.dataset import FileDataset
from pydicom.filereader import read_partial
from pydicom.tag import BaseTag

from ..errors import ReadError
from .policy import check_confined, check_deadline, current_policy

#: values larger than this are read only when used (the pixel data), not while parsing
DEFER_SIZE = 2 << 20
_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)
_UNDEFINED = 0xFFFFFFFF
#: all-zero element headers in a row before a file is refused (a valid file has none)
ZERO_HEADERS = 64


class GuardedFile(io.RawIOBase):
    """A read-only file that counts ``read`` calls (about two per DICOM element) and stops past ``limit``.

    Constructed as ``GuardedFile(path, "rb")`` too, which is how pydicom re-opens a file to read a
    deferred value (then with the default limit).
    """

    def __init__(self, path: str | Path, mode: str = "rb", *, limit: int | None = None) -> None:
        super().__init__()
        if mode != "rb":
            raise ValueError("GuardedFile is read-only")
        self.name = str(check_confined(path))
        self._f = open(self.name, "rb")  # noqa: SIM115 - closed in close()
        self.limit = 2 * (limit or current_policy().max_elements)
        self.reads = 0
        self.zero_headers = 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > self.limit:
            raise ReadError(
                self.name,
                f"more than {self.limit // 2:,} DICOM elements: not a DICOM header "
                "(a run of empty elements after the data?)",
            )
        if self.reads % 4096 == 0:
            check_deadline(self.name)
        data = self._f.read(size)
        if 0 < len(data) <= 12 and not any(data):  # an element header of zeros: tag (0000,0000), length 0
            self.zero_headers += 1
            if self.zero_headers > ZERO_HEADERS:
                raise ReadError(
                    self.name,
                    f"a run of zeros at byte {self._f.tell():,} where DICOM elements should "
                    "be: the file is corrupt (or zeros follow the data)",
                )
        elif len(data) <= 12:
            self.zero_headers = 0
        return data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()


class _TopLevelCheck:
    """pydicom's ``stop_when``: called with each top-level element's tag, VR and length before its value
    is read (the file positioned at the value)."""

    def __init__(self, fp: GuardedFile, size: int, headers_only: bool) -> None:
        self.fp, self.size, self.headers_only = fp, size, headers_only
        self.last = -1
        self.repeats = 0

    def __call__(self, tag: BaseTag, vr: str | None, length: int) -> bool:
        if self.headers_only and int(tag) in _PIXEL_TAGS:
            return True
        pos = self.fp.tell()
        # a tag may be seen twice in a row (pydicom's VR heuristic peeks at the first element), not more
        self.repeats = self.repeats + 1 if int(tag) == self.last else 0
        if int(tag) < self.last or self.repeats > 1:
            raise ReadError(
                self.fp.name,
                f"DICOM element {_fmt(tag)} at byte {pos:,} follows {_fmt(self.last)}: "
                "elements out of order, the file is corrupt (or data follows the header)",
            )
        self.last = int(tag)
        if length != _UNDEFINED and length > self.size - pos:
            raise ReadError(
                self.fp.name,
                f"DICOM element {_fmt(tag)} at byte {pos:,} declares {length:,} bytes, "
                f"but only {max(0, self.size - pos):,} remain: truncated or corrupt",
            )
        return False


def _fmt(tag: Any) -> str:
    t = int(tag)
    return f"({t >> 16:04X},{t & 0xFFFF:04X})"


def parse_dicom(path: str | Path, *, headers_only: bool = False, force: bool = False) -> FileDataset:
    """``pydicom.dcmread(path, defer_size="2 MB", stop_before_pixels=headers_only, force=force)`` with the
    guards of the module docstring. Raises :class:`ReadError` for a guarded failure; pydicom's own
    exceptions (``InvalidDicomError`` ...) pass through."""
    size = os.path.getsize(path)
    fp = GuardedFile(path)
    try:
        check = _TopLevelCheck(fp, size, headers_only)
        return read_partial(fp, stop_when=check, defer_size=DEFER_SIZE, force=force)  # type: ignore[arg-type]
    finally:
        fp.close()  # deferred values are read by re-opening the file by name
