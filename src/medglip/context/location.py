"""Where a box is, in words: patient side, image third, and which other finding's box holds it.

The rules themselves (patient side, thirds, containment and their thresholds) are
:mod:`medglip.core.rules`; this module turns them into words and applies them to findings. The
orientation a context reports:
- ``world``: the image carries ``pixel_to_world`` (a slice of a volume file): the radiological
  display is known from its geometry;
- ``radiological`` (CT / MR / XR without geometry): the display convention is assumed;
- ``none`` (US / ENDO / DERM / PATH): no patient side, only "image left / right".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.boxes import inside_fraction
from ..core.rules import (
    CONTAINMENT,
    MIDLINE_FRACTION,
    RADIOLOGICAL_MODALITIES,
    body_columns,
    has_patient_sides,
    patient_side,
)


def orientation_of(modality: str, has_world: bool) -> str:
    """``none`` outside CT / MR / XR; else ``world`` with geometry, ``radiological`` without."""
    if modality not in RADIOLOGICAL_MODALITIES:
        return "none"
    return "world" if has_world else "radiological"


def _positive_pair(values: Any) -> tuple[float, float] | None:
    try:
        a, b = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return (a, b) if all(np.isfinite(v) and v > 0 for v in (a, b)) else None


def resolve_spacing(pixel_spacing: Any, extra: dict[str, Any]) -> tuple[float, float] | None:
    """``(row_mm, col_mm)``: the caller's, else ``extra["pixel_spacing"]``, else from ``pixel_to_world``.

    ``pixel_to_world`` is 3×4 with columns 0 / 1 the world step of one column / one row, so
    ``col_mm = |M[:, 0]|`` and ``row_mm = |M[:, 1]|``. None when none of them is usable.
    """
    for cand in (pixel_spacing, extra.get("pixel_spacing")):
        if cand is not None and (pair := _positive_pair(cand)) is not None:
            return pair
    m = world_matrix(extra)
    if m is not None:
        return _positive_pair((np.linalg.norm(m[:, 1]), np.linalg.norm(m[:, 0])))
    return None


def world_matrix(extra: dict[str, Any]) -> np.ndarray | None:
    """``extra["pixel_to_world"]`` as a finite ``(3, 4)`` float array, else None."""
    m = extra.get("pixel_to_world")
    if m is None:
        return None
    try:
        m = np.asarray(m, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return m if m.shape == (3, 4) and np.all(np.isfinite(m)) else None


def side_of_box(
    cx: float, width: int, modality: str, plane: str, pixels: np.ndarray | None, world: np.ndarray | None = None
) -> str | None:
    """Patient side of a box centre column ``cx`` (:func:`medglip.core.rules.patient_side`), with the
    body's midline found in ``pixels`` when given, and the column direction of ``world`` (the
    ``pixel_to_world`` matrix) when known; None where the image shows no patient sides."""
    if not has_patient_sides(modality, plane):
        return None
    if world is not None and abs(world[0, 0]) < 1e-9:  # columns do not run left-right (sagittal)
        return None
    return patient_side(
        cx, width, body=None if pixels is None else body_columns(pixels), mirrored=world is not None and world[0, 0] < 0
    )


def horizontal_words(cx: float, width: int) -> str:
    """``image left`` / ``image right`` / ``image centre`` (for images without patient sides)."""
    if abs(cx - width / 2.0) <= MIDLINE_FRACTION * width:
        return "image centre"
    return "image right" if cx > width / 2.0 else "image left"


#: the dash of slice ranges in words ("slices 40–52")
DASH = "–"


def location_words(
    *,
    side: str | None,
    horizontal: str | None,
    vertical: str,
    plane: str,
    container: str | None,
    slices: str | None = None,
) -> str:
    """E.g. ``"patient's left, anterior part of the image, slices 40–52, within the brain"`` (``slices``:
    a volume finding's slice range in words).

    Axial slices say anterior / posterior for the upper / lower thirds (their top is anterior);
    2D images, coronal and sagittal slices and radiographs say upper / lower.
    """
    parts = []
    if side in ("left", "right"):
        parts.append(f"patient's {side}")
    elif side == "midline":
        parts.append("midline")
    elif horizontal:
        parts.append(horizontal)
    if vertical == "middle":
        parts.append("middle part of the image")
    elif plane == "axial":
        parts.append(f"{'anterior' if vertical == 'upper' else 'posterior'} part of the image")
    else:
        parts.append(f"{vertical} part of the image")
    if slices:
        parts.append(slices)
    words = ", ".join(parts)
    return f"{words}, within the {container}" if container else words


@dataclass(frozen=True)
class Extent:
    """A box for containment: per-axis ``lo`` / ``hi`` edges (2D pixels or 3D voxels) and its phrase."""

    phrase: str
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    ancestors: frozenset[str] = frozenset()  # ontology ancestor phrases / labels of this phrase

    @property
    def size(self) -> float:
        return float(np.prod(np.clip(np.subtract(self.hi, self.lo), 0, None)))


def find_containers(items: Sequence[Extent]) -> list[int | None]:
    """For each item, the index of the item whose box holds at least :data:`~medglip.core.rules.CONTAINMENT`
    of its box, else None.

    Only strictly larger boxes of another phrase qualify (no cycles, no tumour "in" a tumour);
    among them a phrase that is an ontology ancestor wins, then the smallest box.
    """
    out: list[int | None] = []
    for i, a in enumerate(items):
        best: tuple[bool, float, int] | None = None
        for j, b in enumerate(items):
            if j == i or b.phrase == a.phrase or b.size <= a.size or a.size <= 0:
                continue
            if inside_fraction(a.lo, a.hi, b.lo, b.hi) < CONTAINMENT:
                continue
            key = (b.phrase not in a.ancestors, b.size, j)
            if best is None or key < best:
                best = key
        out.append(None if best is None else best[2])
    return out
