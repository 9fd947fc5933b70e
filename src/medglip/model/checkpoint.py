"""Checkpoints: ``RUN/model.safetensors`` + ``RUN/config.json`` + ``RUN/text_encoder/``.

``text_encoder/`` holds the text encoder's transformers config and tokenizer files, so loading
needs neither the hub nor the weights packages; all weights (text encoder included) live in
``model.safetensors``. Loading reads only JSON and safetensors — nothing is unpickled.

Integrity: :func:`save_checkpoint` records the SHA-256 of every weight file in ``config.json``
(``"sha256": {"model.safetensors": "<hex>"}``, next to the ModelConfig fields) and
:func:`load_checkpoint` verifies it before building the model: a damaged or replaced file is a
:class:`CheckpointError` naming it, never a silently wrong model. Checkpoints saved before hashes
were recorded still load, with a logged warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from ..core.files import atomic_write_file, atomic_write_text
from ..errors import MedglipError
from .compact import COMPACT, CompactMismatch, compact_state, rebuild
from .config import ModelConfig
from .delta import DELTA, DeltaMismatch, LowRank, delta_state, rebuild_delta
from .grounding import GroundingModel
from .run_checks import outside_run, seal, unseal
from .text import text_encoder_from_folder

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
TEXT_DIR = "text_encoder"
#: the key of ``config.json`` that holds ``{file name: SHA-256 hex}`` of the weight files
HASHES = "sha256"


class CheckpointError(MedglipError):
    """A checkpoint file is missing, unreadable, or does not match the SHA-256 recorded when it was saved."""


class CheckpointMissing(CheckpointError, FileNotFoundError):
    """A file a checkpoint needs does not exist."""


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_files(folder: str | Path, recorded: dict[str, str], where: str | Path) -> None:
    """Check each ``{file name: SHA-256}`` of ``recorded`` against the files in ``folder``.

    Raises:
        CheckpointError: naming the first file that is missing or differs, and ``where`` the hash was recorded.
    """
    folder = Path(folder)
    for name, want in sorted(recorded.items()):
        path = folder / name
        if not path.is_file():
            raise CheckpointMissing(f"{path} is missing (its SHA-256 is recorded in {where})")
        got = file_sha256(path)
        if got != want:
            raise CheckpointError(
                f"{path} is damaged or was replaced: its SHA-256 is {got[:16]}…, not the "
                f"{str(want)[:16]}… recorded in {where} when it was saved; restore the file (or use "
                "another checkpoint)"
            )


def _unwrap(model: torch.nn.Module) -> GroundingModel:
    m = getattr(model, "module", model)  # DDP
    m = getattr(m, "_orig_mod", m)  # torch.compile
    if not isinstance(m, GroundingModel):
        raise TypeError(f"expected a GroundingModel, got {type(m).__name__}")
    return m


def save_checkpoint(
    model: torch.nn.Module,
    directory: str | Path,
    *,
    compact: bool = False,
    base: tuple[GroundingModel, dict[str, Any]] | None = None,
    low_rank: LowRank | None = None,
) -> Path:
    """Write ``model`` (a GroundingModel, possibly DDP/compile-wrapped) to ``directory``, with the
    SHA-256 of its weight file in ``config.json``. ``compact``: only the tensors that differ from the
    packages' pretrained weights, in float16 (:mod:`medglip.model.compact`; e.g. the model medglip ships).
    ``base``: ``(start model, its reference)``: only the tensors that differ from the start model, and
    the ``low_rank`` changes ``{tensor: (A, B)}`` (:mod:`medglip.model.delta`; ``medglip adapt``)."""
    m = _unwrap(model)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads(m.config.to_json())
    if compact and base is not None:
        raise ValueError("a checkpoint is stored against the packages' weights (compact) or a base model, not both")
    if base is not None:
        stored, record = delta_state(m, base[0], base[1], low_rank=low_rank)
        atomic_write_file(
            out / WEIGHTS,
            lambda tmp: save_file(stored, str(tmp), metadata={"format": "pt", "medglip": "GroundingModel-delta"}),
        )
        config[DELTA] = record
    elif low_rank:
        raise ValueError("low-rank changes are stored against a base model: pass base=")
    elif compact:
        stored, record = compact_state(m)
        atomic_write_file(
            out / WEIGHTS,
            lambda tmp: save_file(stored, str(tmp), metadata={"format": "pt", "medglip": "GroundingModel-compact"}),
        )
        config[COMPACT] = record
    else:
        atomic_write_file(
            out / WEIGHTS, lambda tmp: save_model(m, str(tmp), metadata={"format": "pt", "medglip": "GroundingModel"})
        )
    config[HASHES] = {WEIGHTS: file_sha256(out / WEIGHTS)}
    atomic_write_text(out / CONFIG, json.dumps(seal(config), indent=2) + "\n")
    text_dir = out / TEXT_DIR
    text_dir.mkdir(exist_ok=True)
    text_config: Any = m.text_encoder.config  # a transformers PretrainedConfig (the module is typed nn.Module)
    text_config.save_pretrained(text_dir)
    m.tokenizer.save_pretrained(text_dir)
    log.info("saved checkpoint to %s", out)
    return out


def read_config(directory: str | Path) -> tuple[ModelConfig, dict[str, str]]:
    """The ModelConfig of a checkpoint folder and the SHA-256 of its weight files (empty for old ones)."""
    path = Path(directory) / CONFIG
    try:
        data: Any = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointMissing(f"{path} is missing: not a medglip checkpoint folder") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not readable JSON ({exc}): the checkpoint is damaged") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a model config (a JSON object): the checkpoint is damaged")
    sealed = unseal(data)  # checked after the values, so that a bad value is named
    hashes = data.pop(HASHES, None) or {}
    data.pop(COMPACT, None)  # read by load_checkpoint
    data.pop(DELTA, None)  # read by load_checkpoint
    if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
        raise CheckpointError(f"{path}: its {HASHES!r} entry is not {{file: SHA-256}}: the checkpoint is damaged")
    try:
        config = ModelConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a valid model config ({exc})") from None
    if sealed == "changed":
        raise CheckpointError(
            f"{path}: its settings were changed after the checkpoint was saved (they no longer match "
            "the SHA-256 recorded in it); restore the file, or use another checkpoint"
        )
    if sealed == "missing":
        log.warning(
            "%s records no SHA-256 of its settings (saved by an older medglip): a change to them cannot be "
            "noticed; save the checkpoint again to record one",
            path,
        )
    return config, hashes


def load_checkpoint(
    directory: str | Path, *, device: str | torch.device = "cpu", strict: bool = True
) -> GroundingModel:
    """Rebuild the model from ``directory`` (written by :func:`save_checkpoint`), in eval mode.

    Raises:
        CheckpointError: a file is missing (also a ``FileNotFoundError``), damaged (SHA-256 mismatch),
            truncated or not a checkpoint file; the message names the file.
    """
    d = Path(directory)
    for name in (WEIGHTS, CONFIG, TEXT_DIR):
        if not (d / name).exists():
            raise CheckpointMissing(f"{d / name} is missing: not a medglip checkpoint folder")
    stray = outside_run(d, (WEIGHTS, CONFIG, TEXT_DIR))
    if stray is not None:
        raise CheckpointError(
            f"{stray} is a link out of the checkpoint folder {d}: a checkpoint is loaded from its own folder only"
        )
    config, hashes = read_config(d)
    if hashes:
        verify_files(d, hashes, d / CONFIG)
    else:
        log.warning(
            "checkpoint %s records no SHA-256 of %s (saved by an older medglip): its weights cannot be "
            "verified; save it again to record one",
            d,
            WEIGHTS,
        )
    doc = json.loads((d / CONFIG).read_text())
    if doc.get(DELTA) is not None:
        return _load_delta(d, config, doc[DELTA], bool(hashes)).to(device)
    record = doc.get(COMPACT)
    if record is not None:
        if not hashes:
            raise CheckpointError(f"{d / CONFIG}: a compact checkpoint must record the SHA-256 of {WEIGHTS}")
        try:
            stored = load_file(str(d / WEIGHTS))
            return rebuild(config, stored, record).to(device)
        except CompactMismatch as exc:
            raise CheckpointError(f"{d / CONFIG}: compact checkpoint refused: {exc}") from None
        except Exception as exc:  # safetensors: SafetensorError (truncated, bad header)
            raise CheckpointError(
                f"{d / WEIGHTS} cannot be loaded ({type(exc).__name__}): truncated or not a checkpoint file"
            ) from None
    text_encoder, tokenizer = text_encoder_from_folder(d / TEXT_DIR)
    model = GroundingModel(config, text_encoder=text_encoder, tokenizer=tokenizer, load_weights=False)
    try:
        missing, unexpected = load_model(model, str(d / WEIGHTS), strict=strict, device=str(device))
    except Exception as exc:  # safetensors: SafetensorError (truncated, bad header), RuntimeError (shapes)
        raise CheckpointError(
            f"{d / WEIGHTS} cannot be loaded, truncated or not this model's weights? "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None
    if missing or unexpected:
        log.warning("checkpoint %s: missing %s, unexpected %s", d, missing, unexpected)
    return model.to(device).eval()


def _load_delta(d: Path, config: ModelConfig, record: Any, hashed: bool) -> GroundingModel:
    """The model of an adapted run (:mod:`medglip.model.delta`): its base, checked, with the changes laid over it."""
    if not hashed:
        raise CheckpointError(f"{d / CONFIG}: an adapted run must record the SHA-256 of {WEIGHTS}")
    try:
        stored = load_file(str(d / WEIGHTS))
    except Exception as exc:  # safetensors: SafetensorError (truncated, bad header)
        raise CheckpointError(
            f"{d / WEIGHTS} cannot be loaded ({type(exc).__name__}): truncated or not a checkpoint file"
        ) from None
    try:
        return rebuild_delta(config, stored, record, d, load=load_checkpoint)
    except DeltaMismatch as exc:
        raise CheckpointError(f"{d / CONFIG}: adapted run refused: {exc}") from None
    except CheckpointError as exc:
        raise CheckpointError(f"{d}: its base model cannot be loaded: {exc}") from None
