"""What one request may make the model do, checked before any of it is queued: slices and model passes.

A file's bytes say little about the work it asks for: a 584-byte ``.nii.gz`` may declare 4 x 4 x 32 000
voxels, which the model would ground slice by slice (each slice costs a full forward pass at the
model's input size, however small the slice). :func:`check_work` bounds the work a request declares:

- slices: the display slices of a volume along the requested plane (a 2D image is one), at most
  ``max_slices`` (413 naming the file, its shape, the plane and the limit);
- model passes: slices x prompt chunks (the phrases are split into chunks that fit the text encoder;
  fusion and head run once per slice and chunk), at most ``max_model_passes`` (413 naming the count).

Voxels and decoded bytes are bounded when the upload is read (:mod:`.uploads`); the worker counts the
slices it actually grounds for a request and stops it past ``max_slices``
(:meth:`.budget.RequestScope.charge_slices`), and shares its time between clients (:mod:`.batcher`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import HTTPException

from ..core.orient import plan_slices
from ..infer.inputs import Volume
from ..model.prompt import chunk_phrases
from .config import ServiceConfig


def slice_count(item: Any, plane: str = "axial") -> int:
    """Display slices the Grounder would ground in ``item`` (a :class:`~medglip.infer.inputs.Volume`
    along ``plane``; anything else is one image)."""
    if not isinstance(item, Volume):
        return 1
    try:
        return int(plan_slices(item.geometry, item.array.shape, plane).n_slices)
    except ValueError:  # no plan for this grid: the Grounder says why; count the largest axis meanwhile
        return int(max(item.array.shape[:3]))


def chunk_count(phrases: Sequence[str], service: Any) -> int:
    """Prompt chunks ``phrases`` take with the model's tokenizer (1 without a tokenizer to ask)."""
    tokenizer = getattr(service, "tokenizer", None)
    if tokenizer is None or not phrases:
        return 1
    with service.tokenizer_lock:
        return max(1, len(chunk_phrases(list(phrases), tokenizer, int(service.grounder.config.max_text_len))))


def check_work(item: Any, phrases: Sequence[str], service: Any, *, filename: str, plane: str = "axial") -> int:
    """Refuse (413) a request whose declared work is above the service's bounds; returns its model passes.

    Args:
        item: what was read from the upload (an input image or a :class:`~medglip.infer.inputs.Volume`).
        phrases: what the model will look for.
        service: the :class:`~.service.Service` (its config, tokenizer and model config).
        filename: the upload's name, for the message.
        plane: the display plane a volume is grounded along.
    """
    config: ServiceConfig = service.config
    slices = slice_count(item, plane)
    name = f"file {filename!r}"
    if slices > config.max_slices:
        shape = tuple(int(s) for s in item.array.shape[:3])
        raise HTTPException(
            413,
            f"{name}: volume of shape {shape} has {slices:,} {plane} slices, above this server's "
            f"limit of {config.max_slices:,} slices per request (max_slices)",
        )
    chunks = chunk_count(phrases, service)
    passes = slices * chunks
    if passes > config.max_model_passes:
        raise HTTPException(
            413,
            f"{name}: {slices:,} slice(s) x {chunks} prompt chunk(s) for {len(phrases)} phrase(s) "
            f"= {passes:,} model passes, above this server's limit of {config.max_model_passes:,} "
            "per request (max_model_passes); send fewer phrases or a smaller volume",
        )
    return passes
