"""``GET /v1/model``: what the loaded model knows, for clients choosing phrases (the web page suggests them).

Answer::

    {"preset": "default", "image_size": 512, "modalities": ["CT", "MR", ...], "mask_head": true, "masks": "head",
     "trained_phrases": ["anterior hippocampus", ...],
     "phrases_by_modality": {"MR": ["anterior hippocampus", ...], "CT": [...]},
     "ct_windows": {"lung": [-1350.0, 150.0], ...}, "default_ct_window": "soft_tissue"}

``masks``: where ``masks=true`` takes masks from (``head`` / ``medsam``), null when this server gives none.
``phrases_by_modality`` holds only the modalities the model was trained on (``RUN/categories.json``); a
model that records no per-modality list answers ``{}`` there and its ``trained_phrases`` only; a bare
checkpoint answers both empty. ``ct_windows`` are the HU windows medglip names
(:data:`~medglip.core.intensity.CT_WINDOWS`: the page's window presets for CT). Under ``/v1`` it needs an
API key when the server has keys (``/healthz``, which is public, only counts the phrases).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from ..core.intensity import CT_WINDOWS, DEFAULT_DISPLAY_WINDOW
from ..core.text import phrase_key
from ..errors import MedglipError

router = APIRouter(prefix="/v1")


def phrases_by_modality(known: tuple[str, ...], trained_on: dict[str, frozenset[str]]) -> dict[str, list[str]]:
    """``{modality: [phrase, ...]}`` in the order of ``known`` (the Grounder keeps ``trained_on`` as phrase
    keys; the phrases are shown as the model's ``categories.json`` spells them)."""
    return {m: [p for p in known if phrase_key(p) in keys] for m, keys in trained_on.items()}


@router.get("/model", summary="The loaded model: modalities and the phrases it was trained on")
async def model(request: Request) -> dict[str, Any]:
    svc = request.app.state.service
    grounder = svc.grounder
    known = tuple(getattr(grounder, "known_phrases", ()) or ())
    by = phrases_by_modality(known, dict(getattr(grounder, "trained_on", {}) or {}))
    info = svc.model_info()
    try:
        masks = grounder.mask_source(True)
    except (MedglipError, AttributeError):
        masks = None
    return {
        "preset": info["preset"],
        "image_size": info["image_size"],
        "modalities": info["modalities"],
        "mask_head": bool(getattr(grounder, "has_mask_head", False)),
        "masks": masks,
        "trained_phrases": list(known),
        "phrases_by_modality": {m: ps for m, ps in by.items() if ps},
        "ct_windows": {name: list(w) for name, w in CT_WINDOWS.items()},
        "default_ct_window": DEFAULT_DISPLAY_WINDOW,
    }
