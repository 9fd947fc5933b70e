"""PNG / JPEG / BMP pictures via Pillow, and an atomic PNG writer.

Mode handling of :func:`read_raster` (arrays are ``(H, W)`` or ``(H, W, 3)``):

- ``L`` → uint8; ``I;16*`` → uint16 (16-bit PNG kept); ``I`` → int32; ``F`` → float32;
  ``1`` → uint8 0/255; ``RGB`` → ``(H, W, 3)`` uint8;
- ``LA`` → ``L`` and ``RGBA`` → ``RGB`` (alpha dropped, recorded in ``meta["dropped_alpha"]``);
- ``P`` (palette) → ``L`` when every palette entry is grey, else ``RGB``;
  ``CMYK`` / ``YCbCr`` / ``LAB`` / ``HSV`` → ``RGB``;
- 16-bit-per-channel colour PNGs, which Pillow reduces to 8 bits, are read with SimpleITK instead
  and come back as ``(H, W, 3|4)`` uint16 (alpha dropped as above).

Pictures carry no physical spacing: unit spacing, ``spacing_known=False``.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import threading
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.files import atomic_write_bytes
from ..errors import ReadError
from ._base import ImageData, check_size, condense_error, geometry_2d
from .policy import check_confined

log = logging.getLogger(__name__)

_PIL_LOCK = threading.Lock()
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: the only Pillow decoders a picture may reach (Pillow would otherwise pick any of its ~40 formats by
#: content: EPS runs Ghostscript, others are rarely exercised code); Pillow's JPEG opener also gives MPOs
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF")


def open_pil(path: str | Path, *, max_pixels: int | None = None) -> Image.Image:
    """Open a picture lazily, check its declared size against our limit, then decode it fully.

    Pillow's own decompression-bomb guard is replaced by :func:`check_size` (so the limit is
    configurable and the error is a :class:`ReadError`); only the decoders of :data:`PIL_FORMATS` are used.
    """
    path = check_confined(path)
    with _PIL_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(str(path), formats=PIL_FORMATS)
        except Exception as exc:  # UnidentifiedImageError, OSError, SyntaxError, ...
            raise ReadError(path, f"not a readable image ({condense_error(exc)})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    w, h = im.size
    check_size(path, (h, w), spatial_ndim=2, max_pixels=max_pixels, itemsize=_pixel_bytes(im, path))
    if im.format == "PNG":
        check_png_data(path)
    else:
        check_plausible_size(path, im.format, w, h)
    try:
        im.load()
    except Exception as exc:
        raise ReadError(
            path, f"cannot decode {im.format or 'image'} data, file truncated or corrupt? ({condense_error(exc)})"
        ) from None
    return im


def _pixel_bytes(im: Image.Image, path: Path) -> int:
    """Bytes per pixel of the array :func:`read_raster` returns (a 16-bit colour PNG: 3 x 16 bits)."""
    if im.format == "PNG" and _png_16bit_colour(path):
        return 6
    mode = im.mode
    if mode.startswith("I;16"):
        return 2
    if mode in ("I", "F"):
        return 4
    if mode in ("1", "L", "LA", "La"):
        return 1
    return 3  # RGB and everything converted to it (P, RGBA, CMYK, YCbCr, ...)


#: Most pixels one byte of a file can decode to: a Huffman-coded JPEG spends at least one bit per
#: 8x8 block, a GIF LZW code (at most 12 bits) stands for at most 4096 pixels.
_MAX_PIXELS_PER_BYTE = {"JPEG": 512, "MPO": 512, "GIF": 3000}


def check_plausible_size(path: str | Path, fmt: str | None, w: int, h: int) -> None:
    """Refuse a JPEG / GIF whose declared size its data cannot possibly hold (a corrupt header).

    libjpeg and Pillow's GIF decoder fill what the data lacks (grey, zeros) and report success, so a
    1 kB file declaring 30000 x 30000 pixels would be allocated and "decoded" at full size.
    """
    ratio = _MAX_PIXELS_PER_BYTE.get(fmt or "")
    size = os.path.getsize(path)
    if ratio is None or size * ratio >= w * h or (fmt in ("JPEG", "MPO") and _jpeg_arithmetic(path)):
        return
    raise ReadError(
        path, f"{fmt} file truncated or corrupt: {size:,} bytes cannot hold the {w} x {h} image its header declares"
    )


def _jpeg_arithmetic(path: str | Path) -> bool:
    """Whether a JPEG's frame is arithmetic-coded (no bits-per-block bound), walking its segments."""
    with open(path, "rb") as f:
        data = f.read(1 << 24)
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
        elif marker in (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return True
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return False
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return False


_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_scanline_bytes(w: int, h: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes of filtered scanlines (a filter byte per row) that IHDR says the IDAT stream inflates to."""
    bits = _PNG_CHANNELS.get(colour, 1) * depth
    passes = _ADAM7 if interlace == 1 else ((0, 0, 1, 1),)
    total = 0
    for x0, y0, dx, dy in passes:
        cols, rows = max(0, -(-(w - x0) // dx)), max(0, -(-(h - y0) // dy))
        if cols and rows:
            total += rows * (1 + (cols * bits + 7) // 8)
    return total


def check_png_data(path: str | Path) -> None:
    """Refuse a PNG whose IDAT stream is not valid zlib or inflates to fewer bytes than IHDR declares.

    When a complete zlib stream holds fewer rows than IHDR declares (an enlarged IHDR, a broken
    writer), Pillow fills the missing rows with zeros and reports success, after allocating the
    declared size. The stream is inflated in pieces and thrown away, stopping as soon as the declared
    size is reached.
    """
    need, got, inflater, in_idat = None, 0, zlib.decompressobj(), False
    try:
        with open(path, "rb") as f:
            if f.read(8) != _PNG_MAGIC:
                return
            while True:
                head = f.read(8)
                if len(head) < 8:
                    break
                n, kind = struct.unpack(">I4s", head)
                if kind == b"IHDR" and need is None and n >= 13:
                    ihdr = f.read(13)
                    if len(ihdr) < 13:
                        return  # Pillow's own parsing reports it
                    w, h, depth, colour = struct.unpack(">IIBB", ihdr[:10])
                    need = _png_scanline_bytes(w, h, depth, colour, ihdr[12])
                    f.seek(n - 13 + 4, 1)
                elif kind == b"IDAT" and need is not None:
                    in_idat, left = True, n
                    while left > 0:
                        buf = f.read(min(left, 1 << 20))
                        if not buf:
                            break
                        left -= len(buf)
                        while buf and not inflater.eof:
                            got += len(inflater.decompress(buf, 1 << 20))
                            buf = inflater.unconsumed_tail
                        if got >= need:
                            return
                    f.seek(4, 1)
                elif in_idat:  # IDAT chunks are consecutive: the stream has ended
                    break
                else:
                    f.seek(n + 4, 1)
    except zlib.error as exc:
        raise ReadError(path, f"PNG pixel data is corrupt ({condense_error(exc)})") from None
    if need is not None and got < need:
        raise ReadError(
            path,
            f"PNG pixel data truncated or corrupt: it inflates to {got:,} of the {need:,} bytes the header declares",
        )


def _png_16bit_colour(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(26)
    return head[:8] == _PNG_MAGIC and len(head) >= 26 and head[24] == 16 and head[25] in (2, 6)


def pil_to_array(im: Image.Image, meta: dict) -> np.ndarray:
    """Convert a decoded Pillow image to a numpy array following the module's mode rules."""
    mode = im.mode
    if mode == "P":
        pal = np.asarray(im.getpalette() or [], dtype=np.uint8).reshape(-1, 3)
        used = np.unique(np.asarray(im))
        pal = pal[used[used < len(pal)]]
        grey = pal.size == 0 or bool(np.all((pal[:, 0] == pal[:, 1]) & (pal[:, 1] == pal[:, 2])))
        if "transparency" in im.info:
            meta["dropped_alpha"] = True
        im = im.convert("L" if grey else "RGB")
        meta["converted_from"] = "P"
    elif mode in ("LA", "La"):
        meta["dropped_alpha"] = True
        im = im.convert("L")
    elif mode in ("RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        if mode.startswith("RGB") and mode != "RGBX":
            meta["dropped_alpha"] = True
        im = im.convert("RGB")
        meta["converted_from"] = mode
    elif mode == "1":
        im = im.convert("L")
    elif mode == "PA":
        meta["dropped_alpha"] = True
        im = im.convert("RGB")
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        arr = arr.astype(np.uint16)
    elif arr.dtype.byteorder not in ("=", "|"):
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return np.array(arr, copy=True)


def read_raster(path: str | Path, *, max_pixels: int | None = None) -> ImageData:
    """Read a PNG / JPEG / BMP / GIF picture as a 2D :class:`ImageData` (see module docstring)."""
    path = Path(path)
    im = open_pil(path, max_pixels=max_pixels)
    meta: dict = {"format": (im.format or path.suffix.lstrip(".")).lower(), "mode": im.mode}
    if im.format == "PNG" and _png_16bit_colour(path):
        from .itk import read_itk

        im.close()  # Pillow's 8-bit reduction is not used: free it before ITK decodes the 16 bits
        # the pixel count was checked by open_pil; read_itk counts values (3 or 4 per pixel)
        data = read_itk(
            path, fmt="png", max_pixels=None if max_pixels is None else 4 * max_pixels, image_io="PNGImageIO"
        )
        arr = data.array
        if arr.ndim == 3 and arr.shape[-1] in (2, 4):
            arr = arr[..., :-1]
            meta["dropped_alpha"] = True
        arr = arr[..., 0] if arr.ndim == 3 and arr.shape[-1] == 1 else arr
    else:
        arr = pil_to_array(im, meta)
    meta["dtype"] = str(arr.dtype)
    return ImageData(arr, geometry_2d(), None, False, meta, str(path))


def png_bytes(array: np.ndarray, *, compress_level: int = 6) -> bytes:
    """A uint8/uint16 ``(H, W)`` or uint8 ``(H, W, 3|4)`` array as PNG bytes (bool as 0/255);
    ``compress_level`` is zlib's 0–9 (Pillow's default 6; 1 writes about 3× faster, ~20 % larger).

    Raises:
        ValueError: another dtype or shape.
    """
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    ok = (arr.ndim == 2 and arr.dtype in (np.uint8, np.uint16)) or (
        arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.dtype == np.uint8
    )
    if not ok:
        raise ValueError(f"write_png: expected uint8/uint16 (H, W) or uint8 (H, W, 3|4), got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def write_png(path: str | Path, array: np.ndarray, *, compress_level: int = 6) -> Path:
    """Write a uint8/uint16 ``(H, W)`` or uint8 ``(H, W, 3|4)`` array as PNG, atomically.

    Written with :func:`medglip.core.files.atomic_write_bytes`, so readers never see a half-written
    file. Bool arrays are written as 0/255.
    """
    path = Path(path)
    atomic_write_bytes(path, png_bytes(array, compress_level=compress_level))
    return path
