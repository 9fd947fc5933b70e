"""Where a box is, in words: patient side, image third, and which other finding's box holds it.

Sides follow docs/grounded_api.md:
- ``world`` orientation (the image carries ``pixel_to_world``, LPS): the world x of the box centre
  against the world x of the image centre (+x is the patient's LEFT);
- ``radiological`` (CT / MR / XR without geometry): the display convention is assumed, so a box
  centre on the image's right half is on the patient's left;
- ``none`` (US / ENDO / DERM / PATH): no patient side, only "image left / right".
A centre within the central 10 % of the width (of its world x extent, for ``world``) is ``midline``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

#: modalities shown in the radiological convention (patient's left on the image's right)
RADIOLOGICAL_MODALITIES = ("CT", "MR", "XR")
#: half-width of the midline band, as a fraction of the image (or volume) width
MIDLINE_HALF_WIDTH = 0.05
#: fraction of a finding's box (area or volume) another box must cover to contain it
CONTAINMENT = 0.8


def orientation_of(modality: str, has_world: bool) -> str:
    """``world`` with geometry, ``radiological`` for CT / MR / XR without, else ``none``."""
    if has_world:
        return "world"
    return "radiological" if modality in RADIOLOGICAL_MODALITIES else "none"


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


def side_from_dx(dx: float, x_extent: float) -> str | None:
    """Patient side of a point ``dx`` mm (LPS x, + = left) from the centre of something ``x_extent`` mm wide."""
    if x_extent <= 1e-6:  # e.g. a sagittal slice: every pixel has the same world x
        return None
    if abs(dx) <= MIDLINE_HALF_WIDTH * x_extent:
        return "midline"
    return "left" if dx > 0 else "right"


def image_side(cx: float, cy: float, image_size: tuple[int, int], orientation: str,
               m: np.ndarray | None, plane: str) -> str | None:
    """Patient side of the pixel ``(cx, cy)`` of a 2D image (see the module docstring)."""
    h, w = image_size
    if orientation == "world" and m is not None:
        x_of = lambda c, r: float(m[0] @ np.array([c, r, 0.0, 1.0]))  # noqa: E731
        x_extent = abs(m[0, 0]) * w + abs(m[0, 1]) * h
        return side_from_dx(x_of(cx, cy) - x_of(w / 2.0, h / 2.0), x_extent)
    if orientation == "radiological" and plane != "sagittal":  # sagittal columns run anterior → posterior
        return side_from_dx(cx - w / 2.0, float(w))  # image right (+) = patient left
    return None


def horizontal_words(cx: float, width: int) -> str:
    """``image left`` / ``image right`` / ``image centre`` (for images without patient sides)."""
    if abs(cx - width / 2.0) <= MIDLINE_HALF_WIDTH * width:
        return "image centre"
    return "image right" if cx > width / 2.0 else "image left"


def vertical_third(cy: float, height: int) -> str:
    """``upper`` / ``middle`` / ``lower`` third of the image height holding ``cy``."""
    if cy < height / 3.0:
        return "upper"
    return "lower" if cy > 2.0 * height / 3.0 else "middle"


def location_words(*, side: str | None, horizontal: str | None, vertical: str, plane: str,
                   container: str | None) -> str:
    """E.g. ``"patient's left, anterior part of the image, within the brain"``.

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
    """For each item, the index of the item whose box covers ≥ 80 % of its box, else None.

    Only strictly larger boxes of another phrase qualify (no cycles, no tumour "in" a tumour);
    among them a phrase that is an ontology ancestor wins, then the smallest box.
    """
    out: list[int | None] = []
    for i, a in enumerate(items):
        best: tuple[bool, float, int] | None = None
        for j, b in enumerate(items):
            if j == i or b.phrase == a.phrase or b.size <= a.size or a.size <= 0:
                continue
            inter = np.prod(np.clip(np.minimum(a.hi, b.hi) - np.maximum(a.lo, b.lo), 0, None))
            if inter < CONTAINMENT * a.size:
                continue
            key = (b.phrase not in a.ancestors, b.size, j)
            if best is None or key < best:
                best = key
        out.append(None if best is None else best[2])
    return out
