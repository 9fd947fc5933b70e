"""Map raw intensities to 8-bit display pixels, recording how to get the raw values back."""

from __future__ import annotations

from typing import Any

import numpy as np


def window_to_uint8(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Linear map of ``[low, high]`` to ``[0, 255]`` with clipping; shape preserved."""
    x = (array.astype(np.float32) - np.float32(low)) * np.float32(255.0 / (high - low))
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def volume_percentiles(array: np.ndarray, lo: float, hi: float, *, max_samples: int = 2_000_000) -> tuple[float, float]:
    """Percentiles of the non-background voxels of a volume (a strided sample for big volumes).

    Background is taken as the minimum value when it fills more than a third of the volume (MR
    and ultrasound pad with zeros), so that empty air does not pull the window down.
    """
    flat = array.reshape(-1)
    if flat.size > max_samples:
        flat = flat[:: int(np.ceil(flat.size / max_samples))]
    flat = flat[np.isfinite(flat)] if np.issubdtype(flat.dtype, np.floating) else flat
    if flat.size == 0:
        return 0.0, 1.0
    vmin = flat.min()
    if np.count_nonzero(flat == vmin) > flat.size / 3:
        rest = flat[flat != vmin]
        if rest.size:
            flat = rest
    p_lo, p_hi = np.percentile(flat, [lo, hi])
    if not p_hi > p_lo:  # constant image: keep it displayable
        p_hi = p_lo + 1.0
    return float(p_lo), float(p_hi)


def intensity_record(mode: str, low: float, high: float, raw: np.ndarray, **extra: Any) -> dict[str, Any]:
    """The ``intensity`` field of an image record: ``raw = low + pixel / 255 * (high - low)``."""
    finite = raw[np.isfinite(raw)] if np.issubdtype(raw.dtype, np.floating) else raw
    rec: dict[str, Any] = {"mode": mode, "low": float(low), "high": float(high)}
    if finite.size:
        rec["raw_min"] = float(finite.min())
        rec["raw_max"] = float(finite.max())
    rec.update(extra)
    return rec
