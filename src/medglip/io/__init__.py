"""Readers that keep geometry: NIfTI, NRRD/MetaImage, DICOM (file, series, SEG), PNG/JPEG/BMP, TIFF;
.npy arrays (:func:`read_npy`, for source adapters).

Everything returns arrays in medglip's conventions (see :mod:`medglip.case`): 3D ``(i, j, k[, C])``
in file index order, 2D ``(H, W[, C])``; geometry in ITK/LPS millimetres. Every failure to read a
file is a :class:`medglip.errors.ReadError` naming the file and the reason.
"""

from ._base import ImageData, check_size, set_read_limits
from .dicom import read_dicom_file
from .dicom_seg import SegLabelMaps, read_dicom_seg
from .dicom_series import list_dicom_series, read_dicom_series
from .itk import read_itk
from .mask2d import read_mask_2d
from .nifti import read_nifti
from .npy import read_npy
from .raster import read_raster, write_png
from .read import read_image, read_label, sniff_format
from .tiff import read_tiff

__all__ = [
    "ImageData",
    "check_size",
    "set_read_limits",
    "read_image",
    "read_label",
    "read_mask_2d",
    "read_dicom_series",
    "list_dicom_series",
    "read_dicom_seg",
    "SegLabelMaps",
    "read_dicom_file",
    "read_nifti",
    "read_npy",
    "read_itk",
    "read_raster",
    "read_tiff",
    "write_png",
    "sniff_format",
]
