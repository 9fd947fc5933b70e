"""Spatial rules and the thresholds of findings, each defined once.

Patient side: images are in the radiological display convention (axial and coronal slices, and
radiographs, show the patient's LEFT on the image's RIGHT; see :mod:`medglip.core.orient`), so the
side of a point is which side of the body's midline its column lies on. The midline is the centre
of the columns holding body (pixels brighter than :data:`BODY_LEVEL` in the picture) or, without
pixels, the image centre; within :data:`MIDLINE_FRACTION` of that width from it, a point is on the
midline. Sagittal slices have no side (their columns run anterior → posterior), nor do modalities
outside :data:`RADIOLOGICAL_MODALITIES` (ultrasound, endoscopy, dermoscopy, pathology).
"""

from __future__ import annotations

import numpy as np

#: Modalities shown in the radiological convention (patient's left on the image's right).
RADIOLOGICAL_MODALITIES: tuple[str, ...] = ("CT", "MR", "XR")
#: Half-width of the midline band, as a fraction of the body's (or image's) width.
MIDLINE_FRACTION = 0.05
#: Picture level (0..255, mean of the channels) above which a pixel counts as body, not background.
BODY_LEVEL = 25
#: Fraction of a finding's box (area, or volume for 3D objects) that must lie inside another
#: finding's box for the finding to lie within it (context "within the liver", VQA "in the liver").
CONTAINMENT = 0.5
#: Default score at or above which a box is a finding (context, VQA, reports, absent-phrase FPs).
FINDING_THRESHOLD = 0.3
#: IoU a box needs with a track's last box to extend it onto the next slice (volume grounding).
LINK_IOU = 0.3


def body_columns(pixels: np.ndarray) -> tuple[int, int] | None:
    """First and last column holding body in a uint8 picture ``(H, W[, C])``, or None if none does."""
    gray = pixels if pixels.ndim == 2 else pixels.mean(axis=-1)
    cols = np.nonzero((gray > BODY_LEVEL).any(axis=0))[0]
    return None if cols.size == 0 else (int(cols[0]), int(cols[-1]))


def has_patient_sides(modality: str, plane: str) -> bool:
    """Whether images of ``modality`` cut in ``plane`` (``2d`` for pictures) show patient sides."""
    return modality in RADIOLOGICAL_MODALITIES and plane != "sagittal"


def patient_side(x: float, width: int, *, body: tuple[int, int] | None = None, mirrored: bool = False) -> str:
    """``left`` / ``right`` / ``midline``: the patient side of column ``x`` (see the module docstring).

    Args:
        x: column (pixel-edge coordinates, e.g. a box centre).
        width: the image width.
        body: :func:`body_columns` of the picture, when known.
        mirrored: the image's geometry says its columns run towards the patient's RIGHT (not the
            display convention; only hand-made geometries do this).
    """
    lo, hi = (0.0, float(width)) if body is None else (float(body[0]), float(body[1]) + 1.0)
    mid = (lo + hi) / 2.0
    if abs(x - mid) <= MIDLINE_FRACTION * (hi - lo):
        return "midline"
    return "left" if (x > mid) != mirrored else "right"


def vertical_third(y: float, height: int) -> str:
    """``upper`` / ``middle`` / ``lower`` third of the image height holding row ``y``."""
    if y < height / 3.0:
        return "upper"
    return "lower" if y > 2.0 * height / 3.0 else "middle"
