"""NumPy ``.npy`` arrays (one 2D slice per file, as pylidc-based preprocessing writes them), read safely.

``np.load`` alone would allocate whatever shape a header declares, and with ``allow_pickle=True`` run
code an object array's pickle names. :func:`read_npy` instead

- parses the header itself (format versions 1.0 / 2.0 / 3.0, header size bounded) and refuses object,
  structured, complex, string and other non-numeric dtypes before touching the data (nothing is ever
  unpickled);
- checks the declared shape (dimensions, the pixel limit of :func:`~medglip.io.check_size`, the
  :class:`~medglip.io.policy.ReadPolicy`'s decoded-byte limit and memory charge) before allocating;
- refuses a file shorter than its header's shape needs (truncated) and one with bytes after the data;
- reads the data in slabs, converting float64 to float32 while reading when the policy asks, and
  stops between slabs at the policy's deadline.

Every failure is a :class:`~medglip.errors.ReadError` naming the file. ``.npy`` is no format of
:func:`~medglip.io.read_image` (a service's uploads never reach this reader); source adapters call it.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ReadError
from ._base import ImageData, check_file, check_size, condense_error, file_size, geometry_2d
from .policy import check_deadline, working_dtype

#: dtype kinds an image or mask array may have: bool, signed / unsigned integers, floats.
NUMERIC_KINDS = "biuf"
#: Largest header accepted (NumPy's own default; real headers are about a hundred bytes).
MAX_HEADER_BYTES = 10_000
#: Values read per slab (a deadline is checked between slabs).
SLAB_VALUES = 1 << 22


def read_npy(
    path: str | Path, *, kinds: str = NUMERIC_KINDS, max_pixels: int | None = None, what: str = "array"
) -> ImageData:
    """Read a ``.npy`` file holding one 2D numeric array ``(H, W)`` (rows, then columns).

    Args:
        kinds: the dtype kinds accepted (``"f"``: floats only, ``"b"``: bool only, ...).
        max_pixels: refuse arrays of more values (default: :func:`~medglip.io.check_size`'s 2D limit).
        what: names the array in errors (``"image"``, ``"mask"``).

    Returns:
        :class:`ImageData` with an identity 2D geometry of unknown spacing (``spacing_known=False``)
        and ``meta`` ``{"format": "npy", "dtype": <stored dtype>}``.

    Raises:
        ReadError: not a ``.npy`` file, a dtype outside ``kinds`` (object arrays included), another
            number of dimensions, too large an array, a truncated file, or trailing bytes.
    """
    p = check_file(path)
    try:
        with open(p, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)
            else:
                raise ReadError(p, f"unsupported .npy format version {version[0]}.{version[1]}")
            offset = f.tell()
            dtype = np.dtype(dtype)
            _check_dtype(p, dtype, kinds, what)
            if len(shape) != 2:
                raise ReadError(p, f"the {what} has shape {tuple(shape)}: expected a 2D array")
            check_size(p, shape, spatial_ndim=2, max_pixels=max_pixels, itemsize=working_dtype(dtype).itemsize)
            count = math.prod(int(s) for s in shape)
            need = offset + count * dtype.itemsize
            have = file_size(p)
            if have < need:
                raise ReadError(
                    p,
                    f"file truncated: its header declares {tuple(shape)} {dtype} values "
                    f"({need:,} bytes with the header), the file has {have:,} bytes",
                )
            if have > need:
                raise ReadError(p, f"{have - need:,} bytes after the {tuple(shape)} {dtype} array: not one .npy array")
            flat = _read_values(f, p, dtype, count)
    except ReadError:
        raise
    except (ValueError, OSError, SyntaxError, TypeError, EOFError) as exc:  # a bad magic string or header
        raise ReadError(p, f"not a readable NumPy .npy file ({condense_error(exc)})") from None
    array = flat.reshape(shape, order="F" if fortran else "C")
    return ImageData(
        np.ascontiguousarray(array), geometry_2d(), None, False, {"format": "npy", "dtype": dtype.str}, str(p)
    )


def _check_dtype(p: Path, dtype: np.dtype, kinds: str, what: str) -> None:
    """Refuse object (pickled), structured, sub-array and non-``kinds`` dtypes, naming the dtype."""
    if dtype.hasobject:
        raise ReadError(
            p, f"the {what} holds Python objects (dtype {dtype}, stored as a pickle): refused, never unpickled"
        )
    if dtype.fields is not None or dtype.subdtype is not None:
        raise ReadError(p, f"the {what} has a structured dtype {dtype}: expected plain numbers")
    if dtype.kind not in kinds:
        names = {"b": "bool", "i": "signed integers", "u": "unsigned integers", "f": "floats"}
        want = ", ".join(names[k] for k in kinds if k in names)
        raise ReadError(p, f"the {what} has dtype {dtype}: expected {want}")


def _read_values(f, p: Path, dtype: np.dtype, count: int) -> np.ndarray:
    """``count`` values of ``dtype`` from the open file, in slabs, as the policy's working dtype."""
    out = np.empty(count, dtype=working_dtype(dtype).newbyteorder("="))
    for start in range(0, count, SLAB_VALUES):
        check_deadline(p)
        n = min(SLAB_VALUES, count - start)
        data = f.read(n * dtype.itemsize)
        if len(data) != n * dtype.itemsize:  # the file shrank while being read
            raise ReadError(p, "file truncated while reading its data")
        out[start : start + n] = np.frombuffer(data, dtype=dtype, count=n)
    return out
