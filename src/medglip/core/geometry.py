"""Physical placement of voxel grids: ITK/DICOM convention, world coordinates in LPS millimetres.

Array conventions (used everywhere in medglip):
- 3D images are numpy arrays in the file's voxel index order ``(i, j, k)`` (nibabel's order, the
  transpose of ``SimpleITK.GetArrayFromImage``), optionally with a trailing channel axis ``(i, j, k, C)``.
- 2D images are ``(H, W)`` or ``(H, W, C)`` (rows, columns[, channels]) as PIL gives them.
- ``direction`` columns are the world directions of the array axes;
  ``world = origin + direction @ (spacing * index)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """Physical placement of a voxel grid (ITK convention, LPS mm).

    Args:
        spacing: millimetres per voxel along each array axis, e.g. ``(0.78, 0.78, 6.5)``.
        origin: world position (LPS mm) of the centre of voxel ``(0, 0, 0)``.
        direction: row-major ``ndim x ndim`` matrix whose *columns* are the unit world directions of
            the array axes.
    """

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.spacing)
        if len(self.origin) != n or len(self.direction) != n * n:
            raise ValueError(
                f"inconsistent geometry: spacing has {n} axes, origin {len(self.origin)}, "
                f"direction {len(self.direction)} entries (expected {n * n})"
            )
        if any(not np.isfinite(s) or s <= 0 for s in self.spacing):
            raise ValueError(f"spacing must be positive and finite, got {self.spacing}")

    @property
    def ndim(self) -> int:
        return len(self.spacing)

    @property
    def direction_matrix(self) -> np.ndarray:
        n = self.ndim
        return np.asarray(self.direction, dtype=np.float64).reshape(n, n)

    @property
    def affine(self) -> np.ndarray:
        """``(ndim+1, ndim+1)`` voxel index → LPS world (mm) matrix."""
        n = self.ndim
        a = np.eye(n + 1)
        a[:n, :n] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        a[:n, n] = self.origin
        return a

    def index_to_world(self, index: np.ndarray) -> np.ndarray:
        """Map ``(..., ndim)`` voxel indices (may be fractional) to LPS mm."""
        index = np.asarray(index, dtype=np.float64)
        a = self.affine
        return index @ a[:-1, :-1].T + a[:-1, -1]

    def same_grid(self, other: Geometry, *, atol: float = 1e-3) -> bool:
        """True when both describe the same voxel grid up to ``atol`` (mm / cosine)."""
        return (
            self.ndim == other.ndim
            and np.allclose(self.spacing, other.spacing, atol=atol, rtol=1e-4)
            and np.allclose(self.origin, other.origin, atol=max(atol, 1e-3 * max(self.spacing)))
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    @staticmethod
    def identity(ndim: int, spacing: tuple[float, ...] | None = None) -> Geometry:
        spacing = tuple(float(s) for s in (spacing or (1.0,) * ndim))
        return Geometry(spacing=spacing, origin=(0.0,) * ndim, direction=tuple(np.eye(ndim).ravel()))

    def to_json(self) -> dict[str, list[float]]:
        return {"spacing": list(self.spacing), "origin": list(self.origin), "direction": list(self.direction)}
