"""Anything a user hands to the Grounder → 8-bit display images, and which modality they are.

The model is trained on the display images ``medglip build`` writes (docs/dataset_format.md): 8-bit
grey or RGB, CT windowed in Hounsfield units, everything else percentile-normalised. This module
applies the same mapping at inference time:

- ``uint8`` arrays and 8-bit pictures (PNG / JPEG / TIFF, PIL images) are used as they are;
- other arrays: CT (or, when the modality is unknown, anything that looks like Hounsfield units) is
  windowed — soft tissue unless another window is asked for — and everything else is mapped by
  the 0.5 / 99.5 percentiles of its non-background pixels, as the builder does;
- DICOM files: the Modality tag decides (CT is windowed); a single-slice DICOM is a 2D image in its
  stored rows × columns (as a viewer shows it), so boxes are in the file's pixel coordinates;
- a NIfTI / NRRD file holding ONE slice is cut in the builder's radiological display orientation
  (``DisplayImage.meta`` keeps ``pixel_to_voxel`` / ``pixel_to_world`` to map boxes back);
- NIfTI / NRRD / multi-slice DICOM volumes: :meth:`Grounder.ground` refuses them and says to use
  :meth:`Grounder.ground_volume` or to pass one slice.

Modality resolution (:func:`resolve_modality`): the caller's ``modality`` wins, then the file's
metadata (DICOM Modality), then the model's modality classifier.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

from ..build.config import ct_windows
from ..build.intensity import volume_percentiles, window_to_uint8
from ..case import Geometry
from ..errors import MedglipError
from ..modality import guess_modality, normalise_modality

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

log = logging.getLogger(__name__)

#: Percentiles used for non-CT, non-8-bit images (the builder's default).
PERCENTILES: tuple[float, float] = (0.5, 99.5)
#: CT window used unless the caller names another.
DEFAULT_CT_WINDOW = "soft_tissue"

#: What :meth:`Grounder.ground` accepts per image: an array, a PIL image, a path (or a DisplayImage).
ImageInput = Union[np.ndarray, "Image.Image", str, Path]


@dataclass
class DisplayImage:
    """One image ready for the model.

    Attributes:
        pixels: uint8 ``(H, W)`` or ``(H, W, 3)`` display image.
        modality: modality code found in the input's metadata (DICOM Modality), else None.
        intensity: how pixels were made (``{"mode": "identity" | "window" | "percentile", ...}``).
        source: a short description of the input (file path, ``"array"``, ``"PIL"``).
        meta: extras (file format, DICOM tags).
    """

    pixels: np.ndarray
    modality: str | None = None
    intensity: dict[str, Any] = field(default_factory=dict)
    source: str = "array"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.pixels.shape[0]), int(self.pixels.shape[1])


# ------------------------------------------------------------------------------ intensity
def ct_window(window: str | tuple[float, float] | None) -> tuple[float, float]:
    """A named CT window (:func:`medglip.build.config.ct_windows`) or an explicit ``(low, high)`` in HU."""
    if window is None:
        window = DEFAULT_CT_WINDOW
    if isinstance(window, str):
        named = ct_windows()
        if window not in named:
            raise MedglipError(f"unknown CT window {window!r}; expected one of {', '.join(named)} "
                               "or a (low, high) pair in HU")
        return named[window]
    lo, hi = (float(v) for v in window)
    if not lo < hi:
        raise MedglipError(f"CT window low must be below high, got {window!r}")
    return lo, hi


def looks_like_hu(array: np.ndarray) -> bool:
    """Heuristic for arrays of unknown modality: signed values reaching air (≤ −900) and ≤ 4000."""
    if array.size == 0 or not (np.issubdtype(array.dtype, np.signedinteger) or np.issubdtype(array.dtype, np.floating)):
        return False
    finite = array[np.isfinite(array)] if np.issubdtype(array.dtype, np.floating) else array
    if finite.size == 0:
        return False
    lo, hi = float(finite.min()), float(finite.max())
    return -3100.0 <= lo <= -900.0 and 0.0 < hi <= 4000.0


def to_uint8(array: np.ndarray, modality: str | None, *, window: str | tuple[float, float] | None = None,
             limits: tuple[float, float] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Map raw intensities to display uint8, returning the pixels and an ``intensity`` record.

    Args:
        array: raw values, any numeric dtype, any shape.
        modality: canonical code or None (then :func:`looks_like_hu` decides whether to window).
        window: CT window name or ``(low, high)`` HU; default soft tissue.
        limits: precomputed ``(low, high)`` for the percentile mode (a whole volume's).
    """
    a = np.asarray(array)
    if a.dtype == np.uint8:
        return a, {"mode": "identity", "low": 0.0, "high": 255.0}
    if a.dtype == bool:
        return a.astype(np.uint8) * 255, {"mode": "identity", "low": 0.0, "high": 1.0}
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise MedglipError(f"unsupported pixel type {a.dtype}: expected a numeric array")
    if modality == "CT" or (modality is None and looks_like_hu(a)):
        lo, hi = ct_window(window)
        return window_to_uint8(a, lo, hi), {"mode": "window", "low": lo, "high": hi,
                                            "window": window if isinstance(window, str) else (
                                                DEFAULT_CT_WINDOW if window is None else "custom")}
    lo, hi = limits if limits is not None else volume_percentiles(a, *PERCENTILES)
    if not hi > lo:  # constant image; ``+ 1`` alone is lost in rounding at huge magnitudes (1e308, -3e38 fill values)
        hi = lo + max(1.0, abs(lo) * 1e-6)
    return window_to_uint8(a, lo, hi), {"mode": "percentile", "low": float(lo), "high": float(hi),
                                        "percentiles": list(PERCENTILES)}


# ------------------------------------------------------------------------------ 2D inputs
def _colour_or_grey(a: np.ndarray, what: str) -> np.ndarray:
    """Normalise the channel layout of a 2D image: (H,W), (H,W,1) → (H,W); RGBA → RGB; else error."""
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[2] == 1:
        return a[..., 0]
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return a[..., :3]
    if a.ndim == 3 and a.shape[0] in (3, 4) and a.shape[2] > 4:
        return np.moveaxis(a[:3], 0, -1)  # channels-first colour picture
    if a.ndim == 3:
        raise MedglipError(
            f"{what} of shape {a.shape} looks like a 3D volume: use Grounder.ground_volume(array, phrases, "
            "geometry=...) or pass one 2D slice")
    raise MedglipError(f"{what} has shape {a.shape}: expected a 2D image (H, W) or (H, W, 3)")


def from_array(array: np.ndarray, *, modality: str | None = None,
               window: str | tuple[float, float] | None = None, source: str = "array") -> DisplayImage:
    """A numpy array (2D grey or colour) → :class:`DisplayImage`."""
    a = _colour_or_grey(np.asarray(array), source)
    if a.size == 0 or min(a.shape[:2]) < 1:
        raise MedglipError(f"{source} is empty (shape {a.shape})")
    if a.ndim == 3 and a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating) and np.nanmin(a) >= 0 and np.nanmax(a) <= 1:
            pix = np.clip(np.rint(np.nan_to_num(a) * 255), 0, 255).astype(np.uint8)
            return DisplayImage(pix, None, {"mode": "scale", "low": 0.0, "high": 1.0}, source)
        pix, rec = to_uint8(a, None, limits=volume_percentiles(a, *PERCENTILES))
        return DisplayImage(pix, None, rec, source)
    pix, rec = to_uint8(a, modality, window=window)
    return DisplayImage(np.ascontiguousarray(pix), None, rec, source)


def from_pil(image: Any, *, modality: str | None = None, window: str | tuple[float, float] | None = None) -> DisplayImage:
    """A PIL image → :class:`DisplayImage` (palette / alpha / CMYK converted to RGB, 16-bit normalised)."""
    mode = image.mode
    if mode in ("L", "RGB"):
        arr = np.asarray(image)
    elif mode in ("1",):
        arr = np.asarray(image.convert("L"))
    elif mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        arr = np.asarray(image)
    elif mode == "LA":
        arr = np.asarray(image.convert("L"))
    else:
        arr = np.asarray(image.convert("RGB"))
    return from_array(arr, modality=modality, window=window, source="PIL")


def from_path(path: str | Path, *, modality: str | None = None,
              window: str | tuple[float, float] | None = None) -> DisplayImage:
    """A picture or 2D medical file → :class:`DisplayImage`; volumes are refused.

    The file's own modality (DICOM Modality) is used for the intensity mapping unless the caller
    gives one, and is returned in :attr:`DisplayImage.modality`.
    """
    from ..io import read_image, sniff_format
    from ..io._base import to_2d

    p = Path(path)
    fmt = sniff_format(p) if p.exists() else None
    img = read_image(p)  # raises ReadError (a MedglipError) for missing / unsupported files
    extra: dict[str, Any] = {}
    if img.geometry.ndim == 3:
        singles = [a for a, n in enumerate(img.spatial_shape) if n == 1]
        if len(singles) == 1 and fmt == "dicom":
            img = to_2d(img)  # one DICOM slice (CT/MR are read as (i, j, 1)) → its rows × columns
        elif len(singles) == 1:
            pixels, extra = _single_slice(img.array, img.geometry, singles[0])
            img.array = pixels
        else:
            raise MedglipError(
                f"{p}: a 3D image of shape {img.spatial_shape} ({fmt or 'volume'}); Grounder.ground takes 2D "
                f"images: use Grounder.ground_volume({p.name!r}, phrases) to ground it slice by slice, or pass "
                "one slice as an array")
    if img.geometry.ndim == 2 and img.spacing_known:
        extra["pixel_spacing"] = [round(float(v), 6) for v in img.geometry.spacing]  # (row_mm, col_mm)
    elif "pixel_to_world" in extra:
        m = np.asarray(extra["pixel_to_world"], dtype=np.float64)
        extra["pixel_spacing"] = [round(float(np.linalg.norm(m[:, 1])), 6), round(float(np.linalg.norm(m[:, 0])), 6)]
    file_modality = img.modality
    use = modality or file_modality
    arr = _colour_or_grey(img.array, str(p))
    try:
        if arr.ndim == 3 and arr.dtype != np.uint8:
            pix, rec = to_uint8(arr, None, limits=volume_percentiles(arr, *PERCENTILES))
        else:
            pix, rec = to_uint8(arr, use, window=window)
    except MedglipError as exc:  # e.g. a complex / structured (NIfTI RGB24) pixel type: name the file
        raise MedglipError(f"{p}: {exc}") from None
    meta = {k: v for k, v in img.meta.items() if k in ("format", "Modality", "BodyPartExamined", "dtype")}
    meta.update(extra)
    return DisplayImage(np.ascontiguousarray(pix), file_modality, rec, str(p), meta)


def _single_slice(array: np.ndarray, geometry: Geometry, axis: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The display slice of a one-slice NIfTI / NRRD volume, in the radiological convention the
    builder uses (so the model sees what it was trained on); ``meta`` has the plane and the
    ``pixel_to_voxel`` / ``pixel_to_world`` matrices that map boxes back."""
    from ..build.orient import plan_slices

    for plane in ("axial", "coronal", "sagittal"):
        try:
            plan = plan_slices(geometry, array.shape, plane)
        except ValueError:
            break
        if plan.slice_axis == axis:
            return plan.take(array, 0), {"plane": plane,
                                         "pixel_to_voxel": plan.pixel_to_voxel(0).round(6).tolist(),
                                         "pixel_to_world": plan.pixel_to_world(0, geometry).round(6).tolist()}
    arr = np.swapaxes(np.squeeze(array, axis=axis), 0, 1)  # degenerate direction: file order
    return np.ascontiguousarray(arr), {"plane": "file"}


def to_display(image: Any, *, modality: str | None = None,
               window: str | tuple[float, float] | None = None) -> DisplayImage:
    """Dispatch on the input type: numpy array, PIL image, :class:`DisplayImage` or path.

    Args:
        image: the input.
        modality: canonical modality code when the caller knows it (steers CT windowing).
        window: CT window (name in :func:`ct_windows` or ``(low, high)`` HU); soft tissue by default.

    Raises:
        MedglipError: unsupported type, 3D input, unreadable file.
    """
    if isinstance(image, DisplayImage):
        return image
    if isinstance(image, (str, Path)):
        return from_path(image, modality=modality, window=window)
    if isinstance(image, np.ndarray):
        return from_array(image, modality=modality, window=window)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        Image = None
    if Image is not None and isinstance(image, Image.Image):
        return from_pil(image, modality=modality, window=window)
    if hasattr(image, "__array__") and not isinstance(image, (list, tuple)):
        return from_array(np.asarray(image), modality=modality, window=window)
    raise MedglipError(f"cannot ground an input of type {type(image).__name__}: expected a numpy array, "
                       "a PIL image or a file path")


# ------------------------------------------------------------------------------ modality
def check_modality(name: str | None) -> str | None:
    """Canonical code of a caller-given modality (None stays None); unknown names raise MedglipError."""
    return None if name is None else normalise_modality(name)


def resolve_modality(caller: str | None, metadata: str | None,
                     classify: Callable[[], str] | None = None) -> tuple[str, str]:
    """The modality to use and where it came from: ``caller`` > ``metadata`` > ``classify()``.

    Returns:
        ``(code, source)`` with ``source`` in ``"caller"``, ``"metadata"``, ``"classifier"``.

    Raises:
        MedglipError: an unknown caller modality, or nothing to decide with.
    """
    if caller is not None:
        return normalise_modality(caller), "caller"
    if metadata is not None:
        code = guess_modality(metadata)
        if code is not None:
            return code, "metadata"
        log.warning("ignoring unrecognised modality %r from the image metadata", metadata)
    if classify is None:
        raise MedglipError("the modality is unknown: pass modality=... (e.g. 'CT', 'MR')")
    return classify(), "classifier"


# ------------------------------------------------------------------------------ volumes
@dataclass
class Volume:
    """A 3D image to ground slice by slice.

    Attributes:
        array: ``(i, j, k)`` raw values (channel 0 of a multi-channel volume).
        geometry: LPS geometry of the grid.
        modality: the file's modality (DICOM) or None.
        source: path or ``"array"``.
    """

    array: np.ndarray
    geometry: Geometry
    modality: str | None = None
    source: str = "array"


def load_volume(path_or_array: Any, geometry: Geometry | None = None) -> Volume:
    """Read a volume file (NIfTI, NRRD, MetaImage, DICOM series folder / multi-frame) or wrap an array.

    An array is taken in medglip's ``(i, j, k)`` order; without ``geometry`` an identity grid (1 mm,
    axial slices along ``k``) is assumed and a warning logged.
    """
    if isinstance(path_or_array, (str, Path)):
        from ..io import read_image
        img = read_image(path_or_array)
        if img.geometry.ndim != 3:
            raise MedglipError(f"{path_or_array}: a 2D image of shape {img.array.shape}; use Grounder.ground "
                               "for 2D images")
        arr = img.array if img.array.ndim == 3 else img.array[..., 0]
        if geometry is not None:
            log.info("using the geometry given by the caller instead of the file's")
        return Volume(arr, geometry or img.geometry, img.modality, str(path_or_array))
    arr = np.asarray(path_or_array)
    if arr.ndim == 4:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise MedglipError(f"ground_volume needs a 3D (i, j, k) array, got shape {arr.shape}")
    if geometry is None:
        log.warning("ground_volume: no geometry given for a %s array; assuming 1 mm identity (axial along k)",
                    arr.shape)
        geometry = Geometry.identity(3)
    if geometry.ndim != 3:
        raise MedglipError(f"ground_volume: geometry has {geometry.ndim} axes, expected 3")
    return Volume(arr, geometry, None, "array")


def is_volume_input(image: Any) -> bool:
    """True for what :meth:`Grounder.ground_volume` takes rather than :meth:`Grounder.ground`: a folder
    (DICOM series), or a NIfTI / NRRD / MetaImage / multi-frame DICOM file with more than one slice.

    Headers only where the format allows (volumes can be large); an unreadable file raises the
    reader's :class:`~medglip.errors.ReadError`.
    """
    if not isinstance(image, (str, Path)):
        return False  # arrays, PIL images: 2D (3D arrays go to ground_volume explicitly)
    from ..io import read_image, sniff_format

    p = Path(image)
    if p.is_dir():
        return True
    fmt = sniff_format(p) if p.is_file() else None
    if fmt in ("nifti", "itk"):
        try:
            import SimpleITK as sitk

            reader = sitk.ImageFileReader()
            reader.SetFileName(str(p))
            reader.ReadImageInformation()
            size = reader.GetSize()
            return len(size) >= 3 and all(int(s) > 1 for s in size[:3])
        except RuntimeError:
            pass  # SimpleITK refuses some valid files; medglip's own reader decides below
    if fmt not in ("nifti", "itk", "dicom"):
        return False
    shape = read_image(p).spatial_shape
    return len(shape) == 3 and all(n > 1 for n in shape)
