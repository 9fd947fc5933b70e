"""The one structure every source adapter yields: an image with its geometry and its label maps.

Array conventions (used everywhere in medglip):
- 3D images are numpy arrays in the file's voxel index order ``(i, j, k)`` (nibabel's order, the
  transpose of ``SimpleITK.GetArrayFromImage``), optionally with a trailing channel axis ``(i, j, k, C)``.
  ``slice_axis``/``slice_index`` in built datasets refer to this order.
- 2D images are ``(H, W)`` or ``(H, W, C)`` (rows, columns[, channels]) as PIL gives them.
- Geometry follows ITK/DICOM: world coordinates are LPS millimetres; ``direction`` columns are the
  world directions of the array axes; ``world = origin + direction @ (spacing * index)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .core.geometry import Geometry
from .core.intensity import CTForm


def label_counts(array: np.ndarray) -> np.ndarray:
    """Voxels per value ``0..max`` of a non-negative integer (or bool) label array: ``(max + 1,)`` int64.

    Label maps are mostly background, so only the non-zero voxels are counted (a bincount of every
    voxel of a 512×512×48 int16 label costs ~20× more). Raises ValueError for negative values.
    """
    if array.dtype == bool:
        array = array.view(np.uint8)
    if not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"label values must be integers, not {array.dtype}")
    flat = array.ravel(order="K")  # a view in memory order (Fortran-ordered volumes too)
    fg = flat[flat != 0]
    if fg.size and fg.min() < 0:
        raise ValueError(f"negative label value {int(fg.min())}")
    counts = np.bincount(fg.astype(np.intp, copy=False), minlength=1).astype(np.int64, copy=False)
    counts[0] = array.size - fg.size
    return counts


@dataclass
class LabelMap:
    """An integer label array on the image grid and what its values mean in the source.

    Args:
        array: integer array with the image's spatial shape.
        names: label value → the *source's* label name (``0`` is background and is never listed).
        instances: True when every value is one object instance (COCO), so a value yields one box
            even if it is split into several connected components.
    """

    array: np.ndarray
    names: dict[int, str]
    instances: bool = False


@dataclass
class Case:
    """One source image with its labels, ready for slicing.

    Attributes:
        case_id: identifier unique within the source (used for splits and file names).
        source: dataset name, e.g. ``"Task09_Spleen"`` or ``"kvasir-seg"``.
        layout: the adapter that read it (``"nnunetv2"``, ``"msd"``, ...).
        modality: canonical modality code (``CT``, ``MR``, ``XR``, ``US``, ``ENDO``, ``DERM``, ``PATH``).
        image: 3D ``(i, j, k[, C])`` or 2D ``(H, W[, C])`` array (see module docstring).
        geometry: spatial geometry (``ndim`` = number of spatial axes); 2D sources without
            spacing get unit spacing and ``spacing_known=False``.
        labels: label maps on the same grid (several when masks overlap).
        channel_names: names of the channels when ``image`` has a channel axis.
        image_path: the file(s) the image came from, for provenance and error messages.
        split: split the source itself declares (``"train"``/``"test"``), or None.
        meta: free-form provenance (DICOM tags, source columns, ...), JSON-serialisable.
        ct_form: for CT, how the image's values relate to Hounsfield units as the source made them
            (an already-windowed picture with its window, a standardised array with its affine);
            None: the input pipeline's default (HU; an 8-bit picture of the default picture window,
            see :func:`medglip.core.pipeline.ct_form_of`).
    """

    case_id: str
    source: str
    layout: str
    modality: str
    image: np.ndarray
    geometry: Geometry
    labels: list[LabelMap] = field(default_factory=list)
    channel_names: tuple[str, ...] = ()
    image_path: tuple[str, ...] = ()
    label_path: tuple[str, ...] = ()
    split: str | None = None
    spacing_known: bool = True
    meta: dict[str, Any] = field(default_factory=dict)
    ct_form: CTForm | None = None

    @property
    def spatial_ndim(self) -> int:
        return self.geometry.ndim

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape[: self.spatial_ndim])

    def validate(self) -> None:
        """Raise ``ValueError`` naming the file when labels do not fit the image."""
        if self.image.ndim not in (self.spatial_ndim, self.spatial_ndim + 1):
            raise ValueError(f"{self.image_path}: image has {self.image.ndim} dims for {self.spatial_ndim}D geometry")
        for lm in self.labels:
            if lm.array.shape != self.spatial_shape:
                raise ValueError(
                    f"{self.label_path or self.image_path}: label shape {lm.array.shape} "
                    f"does not match image shape {self.spatial_shape}"
                )
            if not np.issubdtype(lm.array.dtype, np.integer) and lm.array.dtype != bool:
                raise ValueError(f"{self.label_path}: label array must be integer, got {lm.array.dtype}")


@dataclass(frozen=True, kw_only=True)
class CaseRef:
    """A cheap, picklable handle on a case: listed without reading pixels, loaded in a worker.

    ``layout`` names the adapter module in :mod:`medglip.sources` whose ``load_case(ref)`` reads it.
    ``options`` holds adapter-specific settings as sorted ``(key, value)`` pairs (hashable).
    """

    case_id: str
    source: str
    layout: str
    image_paths: tuple[Path, ...]
    label_paths: tuple[Path, ...] = ()
    modality: str | None = None
    split: str | None = None
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)

    @property
    def key(self) -> str:
        """Unique, filesystem-safe key ``<source>/<case_id>`` used for outputs."""
        return f"{safe_name(self.source)}/{safe_name(self.case_id)}"


def safe_name(name: str) -> str:
    """Make ``name`` safe as one path component (keeps letters, digits, ``-_.``)."""
    out = "".join(c if (c.isalnum() or c in "-_.") else "_" for c in name.strip())
    out = out.strip(".") or "_"
    return out[:120]
