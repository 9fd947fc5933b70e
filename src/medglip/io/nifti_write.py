"""Write a volume (a label map) as NIfTI-1 on a given grid: the inverse of :func:`medglip.io.read_nifti`.

The LPS geometry becomes nibabel's RAS affine (``diag(-1, -1, 1, 1) @ geometry.affine``), stored
as both the sform and the qform with code 1 (scanner), millimetre units; the array keeps medglip's
``(i, j, k)`` index order, so voxel ``(i, j, k)`` of the file is voxel ``(i, j, k)`` of the input.
nibabel and SimpleITK read the same spacing, origin and direction back (NIfTI stores them as
float32). Bytes are returned, not written: callers write them atomically with the rest of an output.
"""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np

from ..core.geometry import Geometry
from .nifti import RAS_TO_LPS

#: NIfTI intent code of a label map (``NIFTI_INTENT_LABEL``).
INTENT_LABEL = 1002


def geometry_to_affine(geometry: Geometry) -> np.ndarray:
    """nibabel's ``4 x 4`` RAS voxel → world affine of an LPS :class:`Geometry` (3D)."""
    if geometry.ndim != 3:
        raise ValueError(f"a NIfTI volume needs a 3D geometry, got {geometry.ndim} axes")
    return RAS_TO_LPS @ geometry.affine  # diag(-1, -1, 1, 1) is its own inverse


def nifti_bytes(
    array: np.ndarray,
    geometry: Geometry,
    *,
    label: bool = True,
    compress: bool = True,
    level: int = 6,
    description: str = "medglip",
) -> bytes:
    """A NIfTI-1 file (``.nii.gz`` when ``compress``, else ``.nii``) of ``array`` on ``geometry``.

    Args:
        array: ``(i, j, k)`` values (a label map: uint8 / uint16), any numeric dtype.
        geometry: the LPS grid the values lie on (the input's).
        label: mark the file as a label map (intent ``label``) so viewers use a lookup table.
        compress: gzip the file (``mtime`` 0, so equal inputs give equal bytes).
        level: gzip compression level.
        description: the header's ``descrip`` (at most 79 characters are kept).
    """
    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"nifti_bytes: expected an (i, j, k) array, got shape {arr.shape}")
    affine = geometry_to_affine(geometry)
    img = nib.Nifti1Image(arr, affine)
    hdr = img.header
    hdr.set_sform(affine, code=1)
    hdr.set_qform(affine, code=1)
    hdr.set_xyzt_units("mm", "sec")
    if label:
        hdr.set_intent(INTENT_LABEL)
        hdr["cal_min"], hdr["cal_max"] = 0, float(arr.max()) if arr.size else 0.0
    hdr["descrip"] = description.encode("ascii", "replace")[:79]
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=level, mtime=0) if compress else raw
