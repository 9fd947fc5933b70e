"""Adapted runs stored as a delta: only the tensors adaptation changed, against the model it started from.

An adapted run folder (``medglip adapt``) holds::

    RUN/model.safetensors   what changed: ``<tensor>::diff``, the change of a floating tensor of the base
                            (float16: a change keeps its own relative precision, however small);
                            ``<tensor>``, the value of a tensor the base lacks (a tuned phrase's offset) or
                            of an integer buffer; low-rank factors ``<tensor>::lora_a`` (r, n) /
                            ``<tensor>::lora_b`` (m, r) whose product, reshaped, is added to that tensor
    RUN/config.json         the adapted ModelConfig, "sha256" of the weights, and "adapted_from": {...}

``adapted_from`` records ``format``, ``base`` (``{"kind": "shipped", "name": ..., "path": <absolute>}``
or ``{"kind": "run", "path": <absolute>, "relative": <from RUN>}``), ``base_sha256`` (the SHA-256 of every tensor of
the base model, :func:`state_sha256`) and counts. Loading loads the base (itself any checkpoint, a compact or
adapted one included), checks that hash, then lays the stored tensors over it — so a moved, replaced
or retrained base is refused by name instead of giving a silently different model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .compact import tensors_sha256
from .config import ModelConfig
from .grounding import GroundingModel

log = logging.getLogger(__name__)

#: the key of ``config.json`` that marks an adapted (delta) run
DELTA = "adapted_from"
FORMAT = 1
#: suffixes of a tensor's change and of its two low-rank factors in the weights file
DIFF, LORA_A, LORA_B = "::diff", "::lora_a", "::lora_b"

LowRank = dict[str, tuple[torch.Tensor, torch.Tensor]]


class DeltaMismatch(ValueError):
    """The base model of an adapted run is missing or is not the one it was adapted from, or the
    stored tensors do not fit it."""


def state_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of every tensor of ``model`` (name, dtype, shape, bytes; in name order)."""
    state = {k: v.detach() for k, v in model.state_dict().items()}
    return tensors_sha256(state, sorted(state))


def low_rank_delta(a: torch.Tensor, b: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """``b @ a`` reshaped to ``shape`` (a conv weight (out, in, kh, kw) from (out, r) @ (r, in·kh·kw))."""
    return (b.float() @ a.float()).reshape(shape)


def _half(name: str, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    t = t.detach().cpu()
    if t.is_floating_point():
        t16 = t.to(dtype)
        if not torch.isfinite(t16).all() and torch.isfinite(t).all():
            raise ValueError(f"tensor {name} overflows {dtype}")
        t = t16
    return t.contiguous()


def delta_state(
    model: GroundingModel,
    base: GroundingModel,
    base_ref: dict[str, Any],
    *,
    low_rank: LowRank | None = None,
    dtype: torch.dtype = torch.float16,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """What ``model`` changed of ``base`` (module docstring: changes of floating tensors as ``dtype``, new
    tensors and integer buffers as they are), the low-rank factors ``low_rank`` (``{tensor name: (A (r, n),
    B (m, r))}``, the change of that tensor being ``B @ A``) and the ``adapted_from`` record (``base_ref`` is
    its ``base``). A change that ``dtype`` rounds to zero everywhere is not stored."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    base_state = {k: v.detach().cpu() for k, v in base.state_dict().items()}
    stored: dict[str, torch.Tensor] = {}
    for name, t in sorted(state.items()):
        b = base_state.get(name)
        if b is not None and b.shape == t.shape and b.dtype == t.dtype and torch.equal(t, b):
            continue
        if b is not None and b.shape == t.shape and b.dtype == t.dtype and t.is_floating_point():
            diff = _half(name, t.float() - b.float(), dtype)
            if bool(diff.any()):
                stored[name + DIFF] = diff
        else:
            stored[name] = _half(name, t, dtype)
    for name, (a, b) in sorted((low_rank or {}).items()):
        if name not in state:
            raise ValueError(f"low-rank factors for {name}, which the model does not have")
        if a.ndim != 2 or b.ndim != 2 or b.shape[1] != a.shape[0] or b.shape[0] * a.shape[1] != state[name].numel():
            raise ValueError(f"low-rank factors of {name} do not give its shape {tuple(state[name].shape)}")
        stored[name + LORA_A] = _half(name, a, dtype)
        stored[name + LORA_B] = _half(name, b, dtype)
    record = {
        "format": FORMAT,
        "dtype": str(dtype).removeprefix("torch."),
        "base": dict(base_ref),
        "base_sha256": state_sha256(base),
        "stored_tensors": len(stored) - 2 * len(low_rank or {}),
        "low_rank_tensors": len(low_rank or {}),
    }
    log.info(
        "delta: %d tensors (%.2f M values) stored against the base",
        len(stored),
        sum(t.numel() for t in stored.values()) / 1e6,
    )
    return stored, record


def base_dir(record: Any, run_dir: Path) -> Path:
    """The folder of an adapted run's base model.

    Raises:
        DeltaMismatch: a malformed record, or a base that is not where it was (nor at the same
            place relative to the run).
    """
    if (
        not isinstance(record, dict)
        or record.get("format") != FORMAT
        or not isinstance(record.get("base"), dict)
        or not isinstance(record.get("base_sha256"), str)
    ):
        raise DeltaMismatch(f"its {DELTA!r} entry is not a format-{FORMAT} record")
    base = record["base"]
    if base.get("kind") not in ("shipped", "run") or not isinstance(base.get("path"), str):
        raise DeltaMismatch(f"its base {base!r} is neither the shipped model nor a run folder")
    candidates = [Path(base["path"])]
    name = base.get("name")
    if base["kind"] == "shipped" and isinstance(name, str) and name and Path(name).name == name:
        # the installed package's copy (medglip.model.shipped keeps it there; not imported: it imports the loader)
        candidates.append(Path(__file__).resolve().parents[1] / "weights" / name)
    if base["kind"] == "run" and isinstance(base.get("relative"), str):
        candidates.append(Path(run_dir) / base["relative"])
    for c in candidates:
        if (c / "config.json").is_file():
            if c.resolve() == Path(run_dir).resolve():
                raise DeltaMismatch("its base is the run itself")
            return c
    if base["kind"] == "shipped":
        raise DeltaMismatch(
            f"the shipped model it was adapted from ({base.get('name')}) is missing: install the "
            "medglip version it came with"
        )
    raise DeltaMismatch(
        f"the run it was adapted from is missing ({base['path']}): put that run back there "
        "(or beside it at the same relative path)"
    )


def rebuild_delta(
    config: ModelConfig,
    stored: dict[str, torch.Tensor],
    record: Any,
    run_dir: Path,
    *,
    load: Callable[[Path], GroundingModel],
) -> GroundingModel:
    """The model of an adapted run: its base (``load(base folder)``), checked against the recorded
    SHA-256, with the stored tensors and low-rank changes laid over it (eval mode, CPU).

    Raises:
        DeltaMismatch: see :func:`base_dir`; a base whose tensors differ from those recorded; a stored
            tensor the model lacks or of another shape.
    """
    where = base_dir(record, run_dir)
    base = load(where)
    got = state_sha256(base)
    if got != record["base_sha256"]:
        raise DeltaMismatch(
            f"the base model {where} is not the one this run was adapted from (its tensors' SHA-256 "
            f"is {got[:16]}…, the run records {record['base_sha256'][:16]}…)"
        )
    model = GroundingModel(
        config,
        text_encoder=base.text_encoder,
        tokenizer=base.tokenizer,
        backbones=dict(base.image_encoder.backbones),
        load_weights=False,
    )
    target = model.state_dict()
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    plain = {k: v for k, v in stored.items() if not k.endswith((DIFF, LORA_A, LORA_B))}
    diffs = {k[: -len(DIFF)]: v for k, v in stored.items() if k.endswith(DIFF)}
    if unexpected or set(missing) - set(plain):
        raise DeltaMismatch(
            f"the adapted model does not fit its base: {sorted(unexpected)[:3]} {sorted(set(missing) - set(plain))[:3]}"
        )
    unknown = sorted((set(plain) | set(diffs)) - set(target))
    if unknown:
        raise DeltaMismatch(f"it stores tensors this model does not have: {unknown[:5]}")
    with torch.no_grad():
        for name, t in [*plain.items(), *diffs.items()]:
            if t.shape != target[name].shape:
                raise DeltaMismatch(f"tensor {name} has shape {tuple(t.shape)}, the model {tuple(target[name].shape)}")
        for name, t in plain.items():
            target[name].copy_(t.to(target[name].dtype))  # state_dict tensors share the model's storage
        for name, d in diffs.items():
            target[name].add_(d.to(target[name].dtype))
        for key in sorted(k for k in stored if k.endswith(LORA_A)):
            name = key[: -len(LORA_A)]
            b = stored.get(name + LORA_B)
            if name not in target or b is None:
                raise DeltaMismatch(f"low-rank factors of {name} that the model lacks (or without their pair)")
            target[name].add_(low_rank_delta(stored[key], b, target[name].shape).to(target[name].dtype))
    return model.eval()
