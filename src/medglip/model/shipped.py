"""The model medglip ships: a compact checkpoint folder inside the package (``medglip/weights/``).

Its weights are stored against the registry packages' pretrained weights (:mod:`medglip.model.compact`),
verified by SHA-256 on load, with calibrated per-phrase thresholds in its ``config.json``, the phrases
and modalities it was trained on in ``categories.json``, and its model card ``MODEL_CARD.md``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.files import atomic_write_text
from ..errors import MedglipError

#: the folder of the shipped model (``medglip/weights/<name>``)
SHIPPED_NAME = "medglip-v1"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights" / SHIPPED_NAME
#: held-out patients of the shipped model's test split, shipped in their datasets' layouts (recipe.yaml
#: builds them): what the demo shows and what ``medglip adapt`` measures forgetting on by default
SHIPPED_HELDOUT = Path(__file__).resolve().parent.parent / "samples" / "heldout"
#: training patients of the shipped model, shipped in their datasets' layouts: what ``medglip adapt``
#: rehearses by default while adapting the shipped model (never the held-out ones above)
SHIPPED_REHEARSAL = Path(__file__).resolve().parent.parent / "samples" / "rehearsal"


class NoShippedModel(MedglipError):
    """This installation has no shipped model (a source checkout without its weights file)."""


def shipped_run() -> Path:
    """The shipped model's run folder.

    Raises:
        NoShippedModel: the folder or its weights are missing, with what to do instead.
    """
    if not (SHIPPED_DIR / "model.safetensors").is_file() or not (SHIPPED_DIR / "config.json").is_file():
        raise NoShippedModel(
            f"the shipped model is missing ({SHIPPED_DIR}): reinstall medglip, or pass "
            "--checkpoint RUN (a folder written by `medglip train`)"
        )
    return SHIPPED_DIR


def _categories(run_dir: str | Path) -> dict:
    """``RUN/categories.json`` as ``medglip train`` wrote it (empty for a bare checkpoint or a bad file)."""
    try:
        data = json.loads((Path(run_dir) / "categories.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def trained_phrases(run_dir: str | Path) -> tuple[str, ...]:
    """The phrases a run was trained on (``categories.json`` ``phrases``; none for bare checkpoints)."""
    phrases = _categories(run_dir).get("phrases")
    return tuple(p for p in phrases if isinstance(p, str) and p.strip()) if isinstance(phrases, list) else ()


def trained_on(run_dir: str | Path) -> dict[str, list[str]]:
    """``{modality: [phrase, ...]}`` a run was trained on (``categories.json`` ``phrases_by_modality``; empty when
    the run does not record it)."""
    by = _categories(run_dir).get("phrases_by_modality")
    if not isinstance(by, dict):
        return {}
    return {str(m): [str(p) for p in v if isinstance(p, str)] for m, v in by.items() if isinstance(v, list)}


#: the files of a run a packed model keeps beside its weights (what it was trained on, and how)
RUN_FILES = ("categories.json", "train_config.json", "dataset_card.json")


def pack_run(run_dir: str | Path, out: str | Path) -> Path:
    """Write the run's model to ``out`` as a compact checkpoint (:mod:`medglip.model.compact`) with its
    calibrated thresholds (in ``config.json``) and :data:`RUN_FILES`; a run's absolute dataset path
    is dropped from ``categories.json`` (it names a folder on the training machine)."""
    from .checkpoint import load_checkpoint, save_checkpoint

    run_dir, out = Path(run_dir), Path(out)
    model = load_checkpoint(run_dir)
    save_checkpoint(model, out, compact=True)
    for name in RUN_FILES:
        src = run_dir / name
        if not src.is_file():
            continue
        data = json.loads(src.read_text())
        if name == "categories.json" and isinstance(data, dict):
            data.pop("dataset", None)
        if name == "train_config.json" and isinstance(data, dict):
            data.pop("dataset", None)
        atomic_write_text(out / name, json.dumps(data, indent=1) + "\n")
    return out
