"""Read limits a caller sets around the readers for one piece of work: decoded bytes, float width, deadline.

A service reading untrusted uploads wraps its calls in :func:`read_policy`; every reader then

- refuses an image whose DECODED size (values x bytes per value, after conversion) is above
  ``max_bytes``, from its header, before allocating (:func:`check_bytes`, called by ``check_size``);
- calls ``charge(nbytes, path)`` with that size before allocating, so the caller can reserve the memory
  across concurrent requests (and refuse when there is none left);
- converts float64 (and wider) pixels to float32 WHILE reading when ``float32`` is set (slab by slab
  or tile by tile where the format allows), since the display mapping needs no more;
- stops with :class:`ReadTimeout` once ``deadline`` (``time.monotonic()``) has passed or ``cancelled()``
  says the caller gave up, checked between slabs, tiles, slices and DICOM elements (large NIfTI
  images are then read in slabs even when nothing is converted);
- bounds the number of DICOM elements it parses (``max_elements``), so a header followed by a gigabyte
  of zeros (millions of empty elements) is refused in milliseconds instead of parsed for half an hour;
- opens no file a header names (NRRD ``data file``, MetaImage ``ElementDataFile``) when ``data_files`` is
  ``"refuse"``, and otherwise only a regular file beside the header (:func:`data_file`): never an absolute
  path, a sub-folder, ``..`` or a link out of the header's folder (the default, for ``.mhd`` + ``.raw``);
- opens nothing outside ``root`` when it is set (:func:`check_confined`; symbolic links resolved): a
  service sets it to the request's own temporary folder.

The policy lives in a :mod:`contextvars` variable: it follows the code into threads started with a copy
of the caller's context (``contextvars.copy_context().run``) and is the permissive default elsewhere.

>>> with read_policy(ReadPolicy(max_bytes=512 * 2**20, float32=True)):   # doctest: +SKIP
...     img = read_image("upload.nii.gz")
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..errors import ReadError

#: DICOM elements parsed per file before the file is refused (real headers hold thousands; an enhanced
#: multi-frame file with per-frame functional groups for 3000 frames, about a hundred thousand).
MAX_DICOM_ELEMENTS = 500_000


@dataclass(frozen=True)
class ReadPolicy:
    """Limits of the reads made under :func:`read_policy` (None: no limit).

    Attributes:
        max_bytes: largest decoded image, in bytes after any conversion.
        float32: convert float64 / longdouble pixels to float32 while reading.
        deadline: ``time.monotonic()`` value after which readers stop (:class:`ReadTimeout`).
        charge: ``charge(nbytes, path)`` is called with the decoded size before allocating; it may
            raise (any :class:`~medglip.errors.MedglipError`) to refuse the read.
        max_elements: most DICOM elements parsed per file.
        cancelled: ``cancelled()`` true stops the read like a passed deadline (the caller gave up).
        data_files: ``"beside"``: a header may name a separate data file only as a plain file name in its
            own folder (``scan.mhd`` + ``scan.raw``); ``"refuse"``: no separate data file at all (uploads).
        root: every file a reader opens must lie inside this folder once links are resolved (None: anywhere).
    """

    max_bytes: int | None = None
    float32: bool = False
    deadline: float | None = None
    charge: Callable[[int, str], None] | None = None
    max_elements: int = MAX_DICOM_ELEMENTS
    cancelled: Callable[[], bool] | None = None
    data_files: Literal["beside", "refuse"] = "beside"
    root: Path | None = None

    def __post_init__(self) -> None:
        if self.data_files not in ("beside", "refuse"):
            raise ValueError(f"ReadPolicy.data_files must be 'beside' or 'refuse', not {self.data_files!r}")

    @property
    def interruptible(self) -> bool:
        """Whether a read may be stopped part-way (then large images are read in steps)."""
        return self.deadline is not None or self.cancelled is not None


class ReadTimeout(ReadError):
    """The deadline of a :class:`ReadPolicy` passed while the file was being read."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, "reading stopped: the time allowed for this read has passed (or its caller gave up)")


_POLICY: ContextVar[ReadPolicy] = ContextVar("medglip_read_policy", default=ReadPolicy())


def current_policy() -> ReadPolicy:
    """The policy in force in this context (the permissive default outside :func:`read_policy`)."""
    return _POLICY.get()


@contextmanager
def read_policy(policy: ReadPolicy) -> Iterator[ReadPolicy]:
    """Apply ``policy`` to the reads made inside the ``with`` block (in this context)."""
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def check_deadline(path: str | Path) -> None:
    """Raise :class:`ReadTimeout` when the policy's deadline has passed or its caller gave up."""
    policy = _POLICY.get()
    if (policy.deadline is not None and time.monotonic() > policy.deadline) or (
        policy.cancelled is not None and policy.cancelled()
    ):
        raise ReadTimeout(path)


def working_dtype(dtype: np.dtype | type) -> np.dtype:
    """The dtype a reader returns for pixels stored as ``dtype`` under the current policy."""
    dt = np.dtype(dtype)
    if _POLICY.get().float32 and dt.kind == "f" and dt.itemsize > 4:
        return np.dtype(np.float32)
    return dt


def check_bytes(path: str | Path, shape: tuple[int, ...], itemsize: int) -> int:
    """Refuse (``ReadError`` starting "image too large") a decoded size above the policy's ``max_bytes``,
    then ``charge`` it; returns the size in bytes. Call before allocating."""
    policy = _POLICY.get()
    check_deadline(path)
    values = int(np.prod([int(s) for s in shape], dtype=object)) if shape else 0
    nbytes = values * int(itemsize)
    if policy.max_bytes is not None and nbytes > policy.max_bytes:
        raise ReadError(
            path,
            f"image too large: it decodes to {nbytes:,} bytes (shape {tuple(int(s) for s in shape)}, "
            f"{itemsize} bytes per value), above the limit of {policy.max_bytes:,} bytes per image",
        )
    if policy.charge is not None:
        policy.charge(nbytes, str(path))
    return nbytes


def check_confined(path: str | Path) -> Path:
    """Refuse (``ReadError``) a file outside the policy's ``root`` (links resolved); returns the path."""
    p = Path(path)
    root = _POLICY.get().root
    if root is not None:
        try:
            inside = p.resolve().is_relative_to(Path(root).resolve())
        except (OSError, RuntimeError, ValueError):  # a link loop, an impossible name
            inside = False
        if not inside:
            raise ReadError(p, "outside the folder this read is confined to: not opened")
    return p


def data_file(header: str | Path, name: str) -> Path:
    """The file a header's data-file field ``name`` may make a reader open (see ``ReadPolicy.data_files``).

    Raises:
        ReadError: under ``data_files="refuse"`` always (naming the field's value); otherwise when ``name``
            is not a plain file name in the header's own folder, or names something that is not a regular
            file (``/dev/stdin``, a FIFO: ITK would block reading it).
    """
    header = Path(header)
    shown = repr(name[:80] + ("..." if len(name) > 80 else ""))
    if _POLICY.get().data_files == "refuse":
        raise ReadError(
            header,
            f"the header names a separate data file ({shown}); only self-contained files "
            "are read here (the pixel data in the same file as the header)",
        )
    target = Path(name) if os.path.isabs(name) else header.parent / name
    try:
        mode = os.stat(target).st_mode
    except (OSError, ValueError):  # missing, or an impossible name (NUL bytes): judged by its name below
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise ReadError(header, f"the header's data file {target} is not a regular file")
    plain = name[2:] if name.startswith("./") else name
    if not plain or plain in (".", "..") or "/" in plain or "\\" in plain or "\0" in plain:
        raise ReadError(
            header,
            f"the header names a data file outside its own folder ({shown}); a separate "
            "data file must be a plain file name beside the header",
        )
    target = header.parent / plain
    if mode is not None:
        try:
            beside = target.resolve().parent == header.resolve().parent
        except (OSError, RuntimeError):
            beside = False
        if not beside:
            raise ReadError(header, f"the header's data file {shown} is a link out of the header's folder")
    return check_confined(target)
