"""Helpers shared by the layout adapters: modality resolution, label checks, mask layering, files.

Not a public API: each adapter module (``nnunetv2``, ``msd``, ...) is the unit users read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..case import Case, LabelMap, label_counts
from ..errors import CaseError, LayoutError
from ..modality import guess_modality, normalise_modality

log = logging.getLogger(__name__)

#: Extensions of image files the adapters consider (lower case, with the dot).
IMAGE_2D_EXTS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
VOLUME_EXTS: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def is_junk(name: str) -> bool:
    """True for macOS resource forks (``._x``), hidden files and OS droppings (``Thumbs.db``)."""
    return name.startswith(".") or name in ("Thumbs.db", "desktop.ini", "__MACOSX")


def split_ext(name: str) -> tuple[str, str]:
    """``"a_0000.nii.gz"`` → ``("a_0000", ".nii.gz")``; handles double extensions."""
    low = name.lower()
    for ext in (".nii.gz", ".seg.nrrd"):
        if low.endswith(ext):
            return name[: -len(ext)], name[-len(ext) :]
    p = Path(name)
    return p.stem, p.suffix


def files_in(folder: Path, exts: Iterable[str] | None = None) -> list[Path]:
    """Sorted regular files in ``folder`` (not recursive), junk skipped, optionally by extension."""
    if not folder.is_dir():
        return []
    want = tuple(e.lower() for e in exts) if exts is not None else None
    out = []
    for p in folder.iterdir():
        if is_junk(p.name) or not p.is_file():
            continue
        if want is None or p.name.lower().endswith(want):
            out.append(p)
    return sorted(out)


def load_json(path: Path, *, what: str = "JSON file") -> Any:
    """Parse ``path`` or raise :class:`LayoutError` naming it."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except FileNotFoundError:
        raise LayoutError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LayoutError(f"{path}: {what} is not valid JSON ({exc})") from None


def peek_dataset_json(root: Path) -> dict | None:
    """``root/dataset.json`` as a dict for layout detection, or None (missing, huge, not a JSON object)."""
    path = Path(root) / "dataset.json"
    if not path.is_file() or path.stat().st_size > 10_000_000:
        return None
    try:
        meta = load_json(path)
    except LayoutError:
        return None
    return meta if isinstance(meta, dict) else None


def resolve_modality(user: str | None, known: str | None, *, where: str, hint: str = "") -> str:
    """The canonical modality: the user's choice wins, else what the layout says, else an error.

    Raises:
        LayoutError: neither is given (or the layout's value is not a modality), naming ``where``.
    """
    if user:
        return normalise_modality(user)
    if known:
        code = guess_modality(known)
        if code:
            return code
    detail = f" ({hint})" if hint else ""
    raise LayoutError(f"{where}: cannot tell the imaging modality{detail}; pass modality= (e.g. 'CT', 'MR', 'US')")


def split_from_name(name: str) -> str | None:
    """``"instances_train2017"`` → ``"train"``; ``"Validation"`` → ``"val"``; None when no hint."""
    low = name.lower()
    for token, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if re.search(rf"(^|[^a-z]){token}", low):
            return split
    return None


def present_values(array: np.ndarray) -> list[int]:
    """Sorted non-zero integer values in ``array`` (counted via :func:`~medglip.case.label_counts`
    when they are non-negative and below 65536)."""
    if array.size == 0:
        return []
    if array.dtype == bool:
        return [1] if array.any() else []
    lo, hi = int(array.min()), int(array.max())
    if lo >= 0 and hi < 1 << 16:  # float label maps count by their integer part, as they always did
        ints = array if np.issubdtype(array.dtype, np.integer) else array.astype(np.intp)
        return [int(v) for v in np.flatnonzero(label_counts(ints)) if v != 0]
    return [int(v) for v in np.unique(array) if v != 0]


def check_label_values(array: np.ndarray, allowed: Iterable[int], *, path: str | Path, listed: str) -> None:
    """Raise :class:`CaseError` for a value in ``array`` that the dataset's label list lacks.

    Args:
        allowed: non-zero values the dataset names.
        path: the label file (named in the error).
        listed: how the dataset lists its labels, e.g. ``"dataset.json lists 0,1,2"``.
    """
    allowed_set = {int(v) for v in allowed}
    unknown = [v for v in present_values(array) if v not in allowed_set]
    if unknown:
        vals = ", ".join(str(v) for v in unknown[:10])
        word = "value" if len(unknown) == 1 else "values"
        raise CaseError(str(path), f"unknown label {word} {vals} in {path}; {listed}")


def layer_masks(
    masks: Iterable[tuple[int, str, np.ndarray]],
    shape: tuple[int, ...],
    *,
    dtype: Any = np.uint16,
    instances: bool = False,
) -> list[LabelMap]:
    """Merge (value, name, boolean mask) triples into as few integer label maps as possible.

    Greedy layering: each mask goes into the first map where it overlaps no earlier label (a new
    map is opened otherwise). A value keeps its number whichever map holds it. Empty masks are
    listed in the first map's names (the source has the label, this case just lacks it).
    """
    layers: list[np.ndarray] = []
    names: list[dict[int, str]] = []
    empty: dict[int, str] = {}
    for value, name, mask in masks:
        idx = np.flatnonzero(np.asarray(mask, dtype=bool).ravel())
        if idx.size == 0:
            empty[int(value)] = name
            continue
        for layer, nm in zip(layers, names, strict=True):
            flat = layer.reshape(-1)
            if not flat[idx].any():
                flat[idx] = value
                nm[int(value)] = name
                break
        else:
            layer = np.zeros(shape, dtype=dtype)
            layer.reshape(-1)[idx] = value
            layers.append(layer)
            names.append({int(value): name})
    if not layers:
        layers.append(np.zeros(shape, dtype=dtype))
        names.append({})
    names[0].update(empty)
    return [
        LabelMap(layer, dict(sorted(nm.items())), instances=instances) for layer, nm in zip(layers, names, strict=True)
    ]


def collapse_gray(array: np.ndarray) -> np.ndarray:
    """An ``(H, W, 3|4)`` image whose colour channels are equal becomes ``(H, W)``."""
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        rgb = array[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            return np.ascontiguousarray(rgb[..., 0])
    return array


def stack_channels(images: list[Any], paths: list[Path]) -> np.ndarray:
    """Stack per-channel :class:`medglip.io.ImageData` into one ``(..., C)`` array.

    A single image is returned as is (a packed RGB file keeps its channel axis). Raises
    :class:`CaseError` naming both files when the channels' grids differ.
    """
    first = images[0]
    if len(images) == 1:
        return first.array
    parts = []
    for img, path in zip(images, paths, strict=True):
        if img.spatial_shape != first.spatial_shape or not img.geometry.same_grid(first.geometry):
            raise CaseError(
                f"{paths[0]} / {path}",
                f"channel grids differ: shape {first.spatial_shape} vs {img.spatial_shape} "
                f"(spacing {first.geometry.spacing} vs {img.geometry.spacing})",
            )
        arr = img.array
        parts.append(arr[..., None] if arr.ndim == img.geometry.ndim else arr)
    dtype = np.result_type(*[p.dtype for p in parts])
    return np.concatenate([p.astype(dtype, copy=False) for p in parts], axis=-1)


def volume_case(
    ref: Any,
    *,
    layout: str,
    images: list[Any],
    paths: list[Path],
    array: np.ndarray,
    labels: list[LabelMap],
    channel_names: tuple[str, ...],
    meta: dict | None = None,
) -> Case:
    """The validated :class:`Case` of a volume read from ``paths`` (its first image gives the geometry)."""
    return validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=layout,
            modality=ref.modality or "",
            image=array,
            geometry=images[0].geometry,
            labels=labels,
            channel_names=channel_names,
            image_path=tuple(str(p) for p in paths),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            spacing_known=images[0].spacing_known,
            meta={} if meta is None else meta,
        )
    )


def validated(case: Any) -> Any:
    """Run ``case.validate()``, turning its ``ValueError`` into :class:`CaseError`; return the case."""
    try:
        case.validate()
    except ValueError as exc:
        raise CaseError(case.case_id, str(exc)) from None
    return case


def require_file(path: Path, what: str) -> Path:
    """Raise :class:`medglip.errors.ReadError` when ``path`` does not exist (``what``: "label file")."""
    from ..errors import ReadError

    if not path.exists():
        raise ReadError(path, f"{what} not found")
    return path
