"""Limits and batching settings of the HTTP service (docs/grounded_api.md, ``medglip.serve``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MedglipError


@dataclass(frozen=True)
class ServiceConfig:
    """What one :func:`medglip.serve.create_app` service accepts and how it batches.

    Attributes:
        max_upload_bytes: largest accepted upload (the file part of a request), in bytes.
        max_pixels: largest 2D image, ``H * W`` pixels (checked from the header before decoding).
        max_voxels: largest volume, ``i * j * k`` voxels.
        max_phrases: most phrases / findings per request.
        max_phrase_chars: longest phrase, in characters.
        max_question_chars: longest VQA question, in characters.
        max_batch: most images the worker grounds in one batched call.
        batch_wait_ms: how long the worker waits for more same-prompt requests after the first.
        max_queue: requests waiting for the worker; beyond that the service answers 503.
    """

    max_upload_bytes: int = 64 * 2**20
    max_pixels: int = 40_000_000
    max_voxels: int = 300_000_000
    max_phrases: int = 32
    max_phrase_chars: int = 200
    max_question_chars: int = 1000
    max_batch: int = 8
    batch_wait_ms: float = 10.0
    max_queue: int = 256

    def __post_init__(self) -> None:
        for name in ("max_upload_bytes", "max_pixels", "max_voxels", "max_phrases", "max_phrase_chars",
                     "max_question_chars", "max_batch", "max_queue"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise MedglipError(f"ServiceConfig.{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.batch_wait_ms, (int, float)) and 0 <= self.batch_wait_ms <= 10_000):
            raise MedglipError(f"ServiceConfig.batch_wait_ms must be in [0, 10000] ms, got {self.batch_wait_ms!r}")
