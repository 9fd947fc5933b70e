"""Reorient a 3D voxel grid into 2D display slices, without resampling.

Slices are written in the radiological display convention every PACS viewer uses (LPS world):
- axial: rows run anterior → posterior, columns run patient right → left (patient's left on the
  image's right), slices along superior/inferior;
- coronal: rows run superior → inferior, columns patient right → left;
- sagittal: rows run superior → inferior, columns anterior → posterior.
Only axis permutations and flips are used (the nearest ones for oblique grids), so every pixel is a
source voxel and maps back exactly to voxel ``(i, j, k)`` and world (mm) coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .geometry import Geometry

PLANES = ("axial", "coronal", "sagittal")

# plane → ((world axis, direction) of increasing row, (world axis, direction) of increasing column,
# world axis of the slice normal).  World axes: 0 = x (+ = patient left), 1 = y (+ = posterior),
# 2 = z (+ = superior).
_DISPLAY: dict[str, tuple[tuple[int, int], tuple[int, int], int]] = {
    "axial": ((1, +1), (0, +1), 2),
    "coronal": ((2, -1), (0, +1), 1),
    "sagittal": ((2, -1), (1, +1), 0),
}


@dataclass(frozen=True)
class SlicePlan:
    """How to cut display slices out of an ``(i, j, k)`` array.

    Attributes:
        plane: ``axial`` / ``coronal`` / ``sagittal``.
        slice_axis: array axis stepped through (the ``slice_axis`` of image records).
        row_axis, col_axis: array axes that become display rows and columns.
        row_flip, col_flip: whether display index ``r`` reads array index ``n - 1 - r``.
        shape: spatial shape of the source array.
    """

    plane: str
    slice_axis: int
    row_axis: int
    col_axis: int
    row_flip: bool
    col_flip: bool
    shape: tuple[int, int, int]

    @property
    def n_slices(self) -> int:
        return self.shape[self.slice_axis]

    @property
    def display_shape(self) -> tuple[int, int]:
        """``(height, width)`` of every slice."""
        return self.shape[self.row_axis], self.shape[self.col_axis]

    def view(self, array: np.ndarray, index: int) -> np.ndarray:
        """Display slice ``index`` of ``array`` as a VIEW: ``(i, j, k[, C])`` → ``(H, W[, C])``.

        Basic indexing, a transpose and negative strides only: nothing is copied, whatever the
        memory order of ``array`` (a Fortran-ordered NIfTI array included).
        """
        if not 0 <= index < array.shape[self.slice_axis]:
            raise IndexError(f"slice {index} out of range 0..{array.shape[self.slice_axis] - 1}")
        sl = array[(slice(None),) * self.slice_axis + (index,)]
        # after removing slice_axis, the remaining spatial axes keep their relative order
        rest = [a for a in range(3) if a != self.slice_axis]
        order = [rest.index(self.row_axis), rest.index(self.col_axis)] + list(range(2, sl.ndim))
        sl = sl.transpose(order)
        if self.row_flip:
            sl = sl[::-1]
        if self.col_flip:
            sl = sl[:, ::-1]
        return sl

    def take(self, array: np.ndarray, index: int) -> np.ndarray:
        """Display slice ``index`` of ``array`` as a C-contiguous copy of that slice only."""
        return np.ascontiguousarray(self.view(array, index))

    def varying(self, array: np.ndarray) -> np.ndarray:
        """``(n_slices,)`` bool: which slices of ``array`` (``(i, j, k[, C])``) hold more than one value
        (blank padding slices do not). One pass over the volume, no slice copied."""
        axes = tuple(a for a in range(array.ndim) if a != self.slice_axis)
        return array.max(axis=axes) > array.min(axis=axes)

    def pixel_to_voxel(self, index: int) -> np.ndarray:
        """``3 x 4`` matrix mapping ``(x, y, dz, 1)`` (column, row, slice step) to voxel ``(i, j, k)``."""
        m = np.zeros((3, 4))
        h, w = self.display_shape
        m[self.col_axis, 0] = -1.0 if self.col_flip else 1.0
        m[self.col_axis, 3] = (w - 1) if self.col_flip else 0.0
        m[self.row_axis, 1] = -1.0 if self.row_flip else 1.0
        m[self.row_axis, 3] = (h - 1) if self.row_flip else 0.0
        m[self.slice_axis, 2] = 1.0
        m[self.slice_axis, 3] = float(index)
        return m

    def pixel_to_world(self, index: int, geometry: Geometry) -> np.ndarray:
        """``3 x 4`` matrix mapping ``(x, y, dz, 1)`` to LPS world millimetres."""
        a = geometry.affine  # 4 x 4 voxel → world
        m = self.pixel_to_voxel(index)
        out = np.empty((3, 4))
        out[:, :3] = a[:3, :3] @ m[:, :3]
        out[:, 3] = a[:3, :3] @ m[:, 3] + a[:3, 3]
        return out

    def pixel_spacing(self, geometry: Geometry) -> tuple[float, float]:
        """Row and column spacing in mm."""
        return float(geometry.spacing[self.row_axis]), float(geometry.spacing[self.col_axis])


def axis_codes(geometry: Geometry) -> list[tuple[int, int]]:
    """For each array axis, the nearest world axis and its sign, as a permutation.

    Raises ValueError for a degenerate direction matrix.
    """
    d = geometry.direction_matrix
    if abs(np.linalg.det(d)) < 1e-6:
        raise ValueError(f"degenerate direction matrix {d.tolist()}")
    codes: list[tuple[int, int]] = [(-1, 0)] * 3
    used: set[int] = set()
    # assign the most decisive array axes first, so oblique grids still give a permutation
    for a in sorted(range(3), key=lambda a: -np.max(np.abs(d[:, a]))):
        for w in np.argsort(-np.abs(d[:, a])):
            if int(w) not in used:
                codes[a] = (int(w), 1 if d[w, a] >= 0 else -1)
                used.add(int(w))
                break
    return codes


def plan_slices(geometry: Geometry, shape: tuple[int, ...], plane: str = "axial") -> SlicePlan:
    """Work out the permutation and flips that display ``plane`` slices in radiological convention."""
    if plane not in _DISPLAY:
        raise ValueError(f"unknown slice plane {plane!r}; expected one of {', '.join(PLANES)}")
    if geometry.ndim != 3 or len(shape) < 3:
        raise ValueError(f"plan_slices needs a 3D grid, got geometry of {geometry.ndim} axes and shape {shape}")
    codes = axis_codes(geometry)
    by_world = {w: (a, s) for a, (w, s) in enumerate(codes)}
    (row_w, row_dir), (col_w, col_dir), slice_w = _DISPLAY[plane]
    row_axis, row_sign = by_world[row_w]
    col_axis, col_sign = by_world[col_w]
    slice_axis, _ = by_world[slice_w]
    return SlicePlan(
        plane=plane,
        slice_axis=slice_axis,
        row_axis=row_axis,
        col_axis=col_axis,
        row_flip=row_sign != row_dir,
        col_flip=col_sign != col_dir,
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
    )
