"""The model medglip ships: a compact checkpoint folder inside the package (``medglip/weights/``).

Its weights are stored against the registry packages' pretrained weights (:mod:`medglip.model.compact`),
verified by SHA-256 on load, with calibrated per-phrase thresholds in its ``config.json``, the phrases
and modalities it was trained on in ``categories.json``, and its model card ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MedglipError

#: the folder of the shipped model (``medglip/weights/<name>``)
SHIPPED_NAME = "medglip-v1"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights" / SHIPPED_NAME


class NoShippedModel(MedglipError):
    """This installation has no shipped model (a source checkout without its weights file)."""


def shipped_run() -> Path:
    """The shipped model's run folder.

    Raises:
        NoShippedModel: the folder or its weights are missing, with what to do instead.
    """
    if not (SHIPPED_DIR / "model.safetensors").is_file() or not (SHIPPED_DIR / "config.json").is_file():
        raise NoShippedModel(f"the shipped model is missing ({SHIPPED_DIR}): reinstall medglip, or pass "
                             "--checkpoint RUN (a folder written by `medglip train`)")
    return SHIPPED_DIR


def trained_on(run_dir: str | Path) -> dict[str, list[str]]:
    """``{modality: [phrase, ...]}`` a run was trained on (``categories.json`` ``phrases_by_modality``; empty when
    the run does not record it)."""
    try:
        data = json.loads((Path(run_dir) / "categories.json").read_text())
    except (OSError, ValueError):
        return {}
    by = data.get("phrases_by_modality") if isinstance(data, dict) else None
    if not isinstance(by, dict):
        return {}
    return {str(m): [str(p) for p in v if isinstance(p, str)] for m, v in by.items() if isinstance(v, list)}
