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
  of zeros (millions of empty elements) is refused in milliseconds instead of parsed for half an hour.

The policy lives in a :mod:`contextvars` variable: it follows the code into threads started with a copy
of the caller's context (``contextvars.copy_context().run``) and is the permissive default elsewhere.

>>> with read_policy(ReadPolicy(max_bytes=512 * 2**20, float32=True)):   # doctest: +SKIP
...     img = read_image("upload.nii.gz")
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

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
    """

    max_bytes: int | None = None
    float32: bool = False
    deadline: float | None = None
    charge: Callable[[int, str], None] | None = None
    max_elements: int = MAX_DICOM_ELEMENTS
    cancelled: Callable[[], bool] | None = None

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
    if (policy.deadline is not None and time.monotonic() > policy.deadline) or \
            (policy.cancelled is not None and policy.cancelled()):
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
        raise ReadError(path, f"image too large: it decodes to {nbytes:,} bytes (shape {tuple(int(s) for s in shape)}, "
                              f"{itemsize} bytes per value), above the limit of {policy.max_bytes:,} bytes per image")
    if policy.charge is not None:
        policy.charge(nbytes, str(path))
    return nbytes
