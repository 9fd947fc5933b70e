"""Pixels of an upload for the model and for pictures: the 2D display image, a volume's key slice."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import HTTPException

from ..errors import MedglipError
from ..infer.preprocess import DisplayImage, to_display
from .uploads import Upload, check_image, reader_message


def display_image(upload: Upload, service: Any, modality: str | None) -> DisplayImage:
    """Check the upload (size, 2D) and make the display image the Grounder would make from it.

    The same :func:`medglip.infer.preprocess.to_display` call as ``Grounder.ground(path, ...)``, done in
    a request thread so that the worker only runs the model; ``source`` is the upload's file name.

    Raises:
        HTTPException: 413 too large, 422 unreadable / a volume.
    """
    check_image(upload, service.config, expect="2d")
    try:
        display = to_display(str(upload.path), modality=modality, window=getattr(service.grounder, "ct_window", None))
    except MedglipError as exc:
        raise HTTPException(422, reader_message(exc, upload)) from None
    except Exception as exc:  # the readers passed it, the display mapping did not: still the file's fault
        raise HTTPException(422, reader_message(MedglipError(f"cannot make a display image ({type(exc).__name__}: "
                                                             f"{exc})"), upload)) from None
    display.source = upload.filename
    return display


def prompt_pixels(upload: Upload, service: Any, context: Any, is_volume: bool,
                  modality: str | None) -> tuple[np.ndarray, int | None]:
    """The display pixels a context's boxes refer to: the image (made as ``ask`` makes it, with the
    caller's ``modality``), or a volume's key slice (and its index)."""
    window = getattr(service.grounder, "ct_window", None)
    if not is_volume:
        return to_display(str(upload.path), modality=modality, window=window).pixels, None
    from ..infer.preprocess import load_volume
    from ..infer.volume import volume_slices

    vol = load_volume(str(upload.path))
    plane = context.plane if context.plane in ("axial", "coronal", "sagittal") else "axial"
    _, slices, _ = volume_slices(vol, context.modality, plane=plane, window=window)
    key = (context.volume or {}).get("key_slice")
    index = int(key) if key is not None and 0 <= int(key) < len(slices) else len(slices) // 2
    return slices[index], index
