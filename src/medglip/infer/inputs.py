"""What a user hands to the Grounder, read once: a 2D :class:`InputImage` or a 3D :class:`Volume`.

:func:`read_input` accepts paths (PNG / JPEG / TIFF / DICOM file / NIfTI / NRRD / MetaImage / a
DICOM series folder), numpy arrays, PIL images, and already-read inputs, and keeps the raw values
with their geometry; the model's input pipeline (:mod:`medglip.core.pipeline`) makes the pixels.

- a single-slice DICOM is a 2D image in its stored rows × columns (as a viewer shows it), so boxes
  are in the file's pixel coordinates;
- a NIfTI / NRRD file holding ONE slice is cut in the radiological display orientation the builder
  uses (``meta`` keeps ``plane``, ``pixel_to_voxel`` / ``pixel_to_world`` to map boxes back);
- anything with more than one slice is a :class:`Volume`.

Modality resolution (:func:`resolve_modality`): the caller's ``modality`` wins, then the file's
metadata (DICOM Modality), then the model's modality classifier.

CT forms: an 8-bit grey CT picture (PNG / JPEG / ``uint8``) is taken as a picture of a CT window, the
one the caller names (``ct_window=``, kept as the input's ``ct_form``) or else
:data:`~medglip.core.intensity.DEFAULT_PICTURE_WINDOW` (lung); every other CT input is Hounsfield units.
The pipeline maps either to HU and through the model's windows (:func:`medglip.core.pipeline.ct_form_of`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.geometry import Geometry
from ..core.intensity import CTForm
from ..core.orient import PLANES, plan_slices
from ..core.pipeline import image_channels
from ..errors import MedglipError
from ..modality import guess_modality, normalise_modality

log = logging.getLogger(__name__)

#: reader metadata a :class:`Volume` keeps (what writing outputs on its grid needs)
_VOLUME_META = ("format", "spacing_uniform", "spacing_steps", "frame_order", "positions_missing", "frame_axis")

#: The kinds of 2D input :meth:`Grounder.ground` takes per image (or an :class:`InputImage`).
ImageLike = np.ndarray | str | Path | Any


@dataclass
class InputImage:
    """One 2D input, raw.

    Attributes:
        raw: ``(H, W)`` or ``(H, W, 3)`` values as read (any numeric dtype; colour pictures uint8).
        modality: the modality the file's metadata names (DICOM Modality), else None.
        source: a short description of the input (file path, ``"array"``, ``"PIL"``).
        meta: extras: ``format``, DICOM tags, ``pixel_spacing`` ``(row_mm, col_mm)`` when known and,
            for a slice of a volume file, ``plane``, ``pixel_to_voxel`` and ``pixel_to_world``.
        dicom_headers: for a DICOM file, its header without pixel data (what a DICOM-SEG written
            about this image references); empty otherwise.
        ct_form: if it is CT, how its values relate to HU (an 8-bit picture of the window the caller
            named); None: the pipeline's default for its dtype.
    """

    raw: np.ndarray
    modality: str | None = None
    source: str = "array"
    meta: dict[str, Any] = field(default_factory=dict)
    dicom_headers: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    ct_form: CTForm | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.raw.shape[0]), int(self.raw.shape[1])


@dataclass
class Volume:
    """A 3D image to ground slice by slice.

    Attributes:
        array: ``(i, j, k)`` raw values (channel 0 of a multi-channel volume).
        geometry: LPS geometry of the grid.
        modality: the file's modality (DICOM) or None.
        source: path or ``"array"``.
        meta: what the reader recorded that outputs need: ``format``, and for DICOM
            ``spacing_uniform`` / ``spacing_steps`` (slices not evenly spaced), ``frame_order``
            (multi-frame files: file frame of each ``k``).
        dicom_headers: the DICOM source datasets without pixel data (one per slice in ``k`` order for
            a series, one for a multi-frame file), referenced by the DICOM-SEG and SR medglip writes.
        ct_form: as for :class:`InputImage` (an 8-bit volume of pictures of a named window).
    """

    array: np.ndarray
    geometry: Geometry
    modality: str | None = None
    source: str = "array"
    meta: dict[str, Any] = field(default_factory=dict)
    dicom_headers: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    ct_form: CTForm | None = None


# ------------------------------------------------------------------------------ reading
def read_input(
    image: Any, *, geometry: Geometry | None = None, expect: str | None = None, ct_window: Any = None
) -> InputImage | Volume:
    """Read ``image`` once into an :class:`InputImage` (2D) or a :class:`Volume` (more than one slice).

    Args:
        image: a path, a numpy array (2D; or 3D ``(i, j, k)`` — a volume), a PIL image, or an
            :class:`InputImage` / :class:`Volume` (returned as they are, but for ``ct_window``).
        geometry: the geometry of a 3D array (default: 1 mm identity, axial along ``k``, with a
            warning); for a volume file it replaces the file's.
        expect: for numpy arrays, ``"2d"`` or ``"volume"`` settles how a 3D array is taken; None:
            ``(H, W, 3|4)`` and channels-first colour are images, other 3D arrays volumes.
        ct_window: the HU window an 8-bit CT picture shows (a window name such as ``"soft_tissue"``,
            ``"low,high"`` or a pair); None: :data:`~medglip.core.intensity.DEFAULT_PICTURE_WINDOW`.
            Only for 8-bit inputs (other CT values are HU).

    Raises:
        MedglipError: unreadable or unsupported files (a :class:`~medglip.errors.ReadError` naming
            the file), empty arrays, unsupported types, a ``ct_window`` for an input that is not 8-bit.
    """
    item = _read_input(image, geometry, expect)
    if ct_window is None:
        return item
    values = item.array if isinstance(item, Volume) else item.raw
    if values.dtype != np.uint8:
        raise MedglipError(
            f"{item.source}: ct_window= describes an 8-bit CT picture, but this input holds "
            f"{values.dtype} values (taken as Hounsfield units): leave ct_window out"
        )
    return dataclasses.replace(item, ct_form=CTForm.windowed(ct_window))


def _read_input(image: Any, geometry: Geometry | None, expect: str | None) -> InputImage | Volume:
    if isinstance(image, (InputImage, Volume)):
        return image
    if isinstance(image, (str, Path)):
        return _read_path(Path(image), geometry)
    if isinstance(image, np.ndarray) or (
        hasattr(image, "__array__") and not _is_pil(image) and not isinstance(image, (list, tuple))
    ):
        arr = np.asarray(image)
        image_like = arr.ndim == 2 or (
            arr.ndim == 3 and (arr.shape[2] in (1, 3, 4) or (arr.shape[0] in (3, 4) and arr.shape[2] > 4))
        )
        if expect == "volume" or (expect is None and not image_like):
            return _array_volume(arr, geometry)
        return InputImage(arr, None, "array")
    if _is_pil(image):
        return InputImage(_pil_array(image), None, "PIL")
    raise MedglipError(
        f"cannot ground an input of type {type(image).__name__}: expected a numpy array, a PIL image or a file path"
    )


def read_image_input(image: Any, *, ct_window: Any = None) -> InputImage:
    """:func:`read_input` for what must be 2D; a volume raises a :class:`MedglipError` saying what to do."""
    item = read_input(image, expect="2d", ct_window=ct_window)
    if isinstance(item, Volume):
        shape = tuple(item.array.shape)
        raise MedglipError(
            f"{item.source}: a 3D image of shape {shape}; Grounder.ground takes 2D images: use "
            f"Grounder.ground_volume(...) to ground it slice by slice, or pass one slice"
        )
    image_channels(item.raw, item.source)  # a 3D array that is no picture: refused with advice
    return item


def read_volume_input(image: Any, geometry: Geometry | None = None, *, ct_window: Any = None) -> Volume:
    """:func:`read_input` for what must be a volume; a 2D input raises a :class:`MedglipError`."""
    item = read_input(image, geometry=geometry, expect="volume", ct_window=ct_window)
    if isinstance(item, InputImage):
        raise MedglipError(f"{item.source}: a 2D image of shape {item.raw.shape}; use Grounder.ground for 2D images")
    return item


def _is_pil(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Image.Image)


def _pil_array(image: Any) -> np.ndarray:
    """A PIL image's values: grey / RGB / 16-bit / float as they are; palette, alpha, CMYK → RGB."""
    if image.mode in ("L", "RGB", "I", "I;16", "I;16B", "I;16L", "F"):
        return np.asarray(image)
    if image.mode in ("1", "LA"):
        return np.asarray(image.convert("L"))
    return np.asarray(image.convert("RGB"))


def _array_volume(arr: np.ndarray, geometry: Geometry | None) -> Volume:
    if arr.ndim == 4:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise MedglipError(f"a volume needs a 3D (i, j, k) array, got shape {arr.shape}")
    if geometry is None:
        log.warning("no geometry given for a %s array; assuming 1 mm identity (axial along k)", arr.shape)
        geometry = Geometry.identity(3)
    if geometry.ndim != 3:
        raise MedglipError(f"geometry has {geometry.ndim} axes, expected 3")
    return Volume(arr, geometry, None, "array")


def _read_path(p: Path, geometry: Geometry | None) -> InputImage | Volume:
    from ..io import read_image

    if not p.exists():
        raise MedglipError(f"{p}: no such file or folder")
    return input_from_image(read_image(p), p, geometry)  # ReadError (a MedglipError) for bad files


def input_from_image(img: Any, path: str | Path, geometry: Geometry | None = None) -> InputImage | Volume:
    """An :class:`~medglip.io.ImageData` already read from ``path`` as a Grounder input (no re-reading)."""
    from ..io import sniff_format
    from ..io._base import to_2d

    p = Path(path)
    fmt = sniff_format(p) if p.is_file() else ("dicom" if p.is_dir() else None)
    meta = {k: v for k, v in img.meta.items() if k in ("format", "Modality", "BodyPartExamined", "dtype")}
    if img.geometry.ndim == 3:
        singles = [a for a, n in enumerate(img.spatial_shape) if n == 1]
        if len(singles) != 1:
            arr = img.array if img.array.ndim == 3 else img.array[..., 0]
            if geometry is not None:
                log.info("using the geometry given by the caller instead of the file's")
            vmeta = {k: v for k, v in img.meta.items() if k in _VOLUME_META}
            return Volume(arr, geometry or img.geometry, img.modality, str(p), vmeta, img.dicom_headers)
        if fmt == "dicom":
            img = to_2d(img)  # one DICOM slice (CT/MR are read as (i, j, 1)) → its rows × columns
        else:
            pixels, extra = _single_slice(img.array, img.geometry, singles[0])
            meta.update(extra)
            if "pixel_to_world" in extra:
                m = np.asarray(extra["pixel_to_world"], dtype=np.float64)
                meta["pixel_spacing"] = [
                    round(float(np.linalg.norm(m[:, 1])), 6),
                    round(float(np.linalg.norm(m[:, 0])), 6),
                ]
            return InputImage(pixels, img.modality, str(p), meta)
    if img.spacing_known:
        meta["pixel_spacing"] = [round(float(v), 6) for v in img.geometry.spacing[:2]]  # (row_mm, col_mm)
    return InputImage(img.array, img.modality, str(p), meta, img.dicom_headers if fmt == "dicom" else ())


def _single_slice(array: np.ndarray, geometry: Geometry, axis: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The display slice of a one-slice volume file in the builder's radiological orientation (so the
    model sees what it was trained on), with the plane and the matrices that map boxes back."""
    for plane in PLANES:
        try:
            plan = plan_slices(geometry, array.shape, plane)
        except ValueError:
            break
        if plan.slice_axis == axis:
            return plan.take(array, 0), {
                "plane": plane,
                "pixel_to_voxel": plan.pixel_to_voxel(0).round(6).tolist(),
                "pixel_to_world": plan.pixel_to_world(0, geometry).round(6).tolist(),
            }
    arr = np.swapaxes(np.squeeze(array, axis=axis), 0, 1)  # degenerate direction: file order
    return np.ascontiguousarray(arr), {"plane": "file"}


# ------------------------------------------------------------------------------ modality
def check_modality(name: str | None) -> str | None:
    """Canonical code of a caller-given modality (None stays None); unknown names raise MedglipError."""
    return None if name is None else normalise_modality(name)


def resolve_modality(
    caller: str | None, metadata: str | None, classify: Callable[[], str] | None = None
) -> tuple[str, str]:
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
