"""Grounding with a trained model: :class:`Grounder` (2D images, volumes, masks).

Exports are imported lazily, so ``medglip.infer.inputs`` and ``.volume`` load without the model;
``from medglip.infer import Grounder`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Grounder": ".grounder",
    "GrounderLike": ".api",
    "Detections": ".detections",
    "GroundingResult": ".results",
    "PhraseGrounding": ".results",
    "VolumeGroundingResult": ".volume",
    "VolumeObject": ".volume",
    "SliceBox": ".volume",
    "MedSAMRefiner": ".medsam",
    "InputImage": ".inputs",
    "Volume": ".inputs",
    "read_input": ".inputs",
    "resolve_modality": ".inputs",
    "mask_option": ".masks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
