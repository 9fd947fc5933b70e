"""Checkpoints: ``RUN/model.safetensors`` + ``RUN/config.json`` + ``RUN/text_encoder/``.

``text_encoder/`` holds the text encoder's transformers config and tokenizer files, so loading
needs neither the hub nor the weights packages; all weights (text encoder included) live in
``model.safetensors``. Loading reads only JSON and safetensors — nothing is unpickled.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from ..core.files import atomic_write_file, atomic_write_text
from .config import ModelConfig
from .grounding import GroundingModel
from .text import text_encoder_from_folder

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TEXT_DIR = "text_encoder"


def _unwrap(model: torch.nn.Module) -> GroundingModel:
    m = getattr(model, "module", model)  # DDP
    m = getattr(m, "_orig_mod", m)       # torch.compile
    if not isinstance(m, GroundingModel):
        raise TypeError(f"expected a GroundingModel, got {type(m).__name__}")
    return m


def save_checkpoint(model: torch.nn.Module, directory: str | Path) -> Path:
    """Write ``model`` (a GroundingModel, possibly DDP/compile-wrapped) to ``directory``."""
    m = _unwrap(model)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_file(out / WEIGHTS, lambda tmp: save_model(m, str(tmp), metadata={"format": "pt",
                                                                                    "medglip": "GroundingModel"}))
    atomic_write_text(out / CONFIG, m.config.to_json() + "\n")
    text_dir = out / TEXT_DIR
    text_dir.mkdir(exist_ok=True)
    m.text_encoder.config.save_pretrained(text_dir)
    m.tokenizer.save_pretrained(text_dir)
    log.info("saved checkpoint to %s", out)
    return out


def load_checkpoint(directory: str | Path, *, device: str | torch.device = "cpu", strict: bool = True
                    ) -> GroundingModel:
    """Rebuild the model from ``directory`` (written by :func:`save_checkpoint`), in eval mode."""
    d = Path(directory)
    for name in (WEIGHTS, CONFIG, TEXT_DIR):
        if not (d / name).exists():
            raise FileNotFoundError(f"{d / name} is missing: not a medglip checkpoint folder")
    config = ModelConfig.from_json(d / CONFIG)
    text_encoder, tokenizer = text_encoder_from_folder(d / TEXT_DIR)
    model = GroundingModel(config, text_encoder=text_encoder, tokenizer=tokenizer, load_weights=False)
    missing, unexpected = load_model(model, str(d / WEIGHTS), strict=strict, device=str(device))
    if missing or unexpected:
        log.warning("checkpoint %s: missing %s, unexpected %s", d, missing, unexpected)
    return model.to(device).eval()
