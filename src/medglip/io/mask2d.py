"""2D mask pictures (PNG / JPEG / BMP / TIFF / GIF) → integer ``(H, W)`` label arrays.

Rule of :func:`read_mask_2d`, applied in this order:

1. Palette (``P``) images whose *used* palette indices are few (≤ ``max_labels``) keep the
   **indices** as label values (the VOC / many-dataset convention: index 0 background, 1.. classes),
   whatever colours the palette gives them.
2. Colour images (RGB/RGBA, or palette images with many indices): a pixel is foreground (1) when
   **any** channel is ``> threshold``.
3. Grey images: if the distinct values are few (≤ ``max_labels``) and **all** are at most
   ``max_labels`` (already small integer labels such as 0/1/2), the values are kept; otherwise the
   mask is binarised as ``value > threshold`` (0/255 masks, lossy JPEG masks such as Kvasir-SEG's,
   16-bit 0/65535 masks: the threshold is scaled to the dtype's range for uint16).

Alpha channels are ignored. The result is ``uint8`` (or ``int32`` when labels exceed 255).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ._base import check_file
from .raster import open_pil
from .read import read_image

log = logging.getLogger(__name__)


def read_mask_2d(path: str | Path, *, threshold: int = 127, max_labels: int = 32) -> np.ndarray:
    """Read a 2D mask picture as an integer ``(H, W)`` array (rule in the module docstring).

    Args:
        threshold: foreground when a value (any channel, for colour) is strictly above it. For
            uint16 images it is scaled by 257 (so 127 means about half range).
        max_labels: most distinct values/indices still treated as label values.

    Raises:
        ReadError: unreadable file or not a 2D image.
    """
    p = check_file(path)
    if p.suffix.lower() in (".png", ".gif", ".bmp"):
        pal = _palette_indices(p, max_labels)
        if pal is not None:
            return pal
    img = read_image(p, as_2d=True)
    arr = img.array
    if arr.ndim == 3:
        thr = _scaled(threshold, arr.dtype)
        return np.any(arr > thr, axis=-1).astype(np.uint8)
    values = np.unique(arr)
    if np.issubdtype(arr.dtype, np.floating) and not np.array_equal(values, np.round(values)):
        return (arr > (threshold / 255.0 if values.max() <= 1.0 else threshold)).astype(np.uint8)
    if len(values) <= max_labels and values.min() >= 0 and values.max() <= max_labels:
        return arr.astype(np.uint8)
    return (arr > _scaled(threshold, arr.dtype)).astype(np.uint8)


def _scaled(threshold: int, dtype: np.dtype) -> float:
    return threshold * 257 if dtype == np.uint16 else threshold


def _palette_indices(path: Path, max_labels: int) -> np.ndarray | None:
    """Palette index array when ``path`` is a palette image using few indices, else None."""
    im = open_pil(path)
    if im.mode != "P":
        return None
    idx = np.asarray(im)
    if len(np.unique(idx)) > max_labels:
        return None
    return idx.astype(np.uint8)
