"""An upload as a Grounder input, read once in a request thread (the model worker only runs the model)."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from ..errors import MedglipError
from ..infer.inputs import InputImage, Volume, input_from_image
from .uploads import Upload, check_image, reader_message


def read_upload(upload: Upload, service: Any, *, expect: str = "any") -> InputImage | Volume:
    """Check the upload (limits, dimensionality) and return it as the Grounder's input, named by the
    upload's file name. ``expect``: ``2d``, ``volume`` or ``any`` (see :func:`.uploads.check_image`).

    Raises:
        HTTPException: 413 too large, 422 unreadable / of the wrong dimensionality.
    """
    info = check_image(upload, service.config, expect=expect)
    try:
        item = input_from_image(info.image, upload.path)
    except MedglipError as exc:
        raise HTTPException(422, reader_message(exc, upload)) from None
    item.source = upload.filename
    return item
