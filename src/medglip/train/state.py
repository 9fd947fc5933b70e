"""Resume state without pickles: nested state dicts split into safetensors (tensors) + JSON (the rest).

A checkpoint of a run is a folder ``RUN/checkpoints/step-NNNNNNN/`` holding the model (written by
``medglip.model.save_checkpoint``) and ``trainer_state.safetensors`` + ``trainer_state.json``
(optimizer, LR scheduler, grad scaler, step, epoch, RNG states). The folder is written under a
temporary name and renamed when complete, then ``RUN/checkpoints/latest.json`` is replaced
atomically: a crash at any moment leaves the previous checkpoint intact and pointed to.

``trainer_state.json`` records the SHA-256 of ``trainer_state.safetensors`` (``{"format": 2,
"sha256": {...}, "state": ...}``) and :func:`load_state` verifies it, as ``load_checkpoint`` verifies
the model's: resuming from a damaged checkpoint is a :class:`~medglip.model.checkpoint.CheckpointError`
naming the file, not a run of NaN losses. States written before (the bare skeleton) still load, with
a logged warning.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..core.files import atomic_write_bytes, atomic_write_file, swap_in_folder
from ..errors import MedglipError
from ..model.checkpoint import CheckpointError, file_sha256, verify_files

log = logging.getLogger(__name__)

STATE_TENSORS = "trainer_state.safetensors"
STATE_JSON = "trainer_state.json"
LATEST = "latest.json"
#: Sub-folder of a checkpoint holding the EMA weights (a model checkpoint of its own); published when present.
EMA_DIR = "ema"
_T = "__tensor__"
_D = "__dict__"
_TU = "__tuple__"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """A JSON-serialisable skeleton of ``obj``; its tensors go into ``tensors`` under generated keys.

    Dicts keep their key types (ints in optimizer states) and tuples stay tuples.
    """
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous()
        return {_T: key}
    if isinstance(obj, dict):
        return {_D: [[flatten(k, tensors, prefix), flatten(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {_TU: [flatten(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return [flatten(v, tensors, prefix) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint without pickling it")


def unflatten(skel: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(skel, dict):
        if _T in skel:
            return tensors[skel[_T]]
        if _D in skel:
            return {_key(unflatten(k, tensors)): unflatten(v, tensors) for k, v in skel[_D]}
        if _TU in skel:
            return tuple(unflatten(v, tensors) for v in skel[_TU])
        raise ValueError(f"unknown node in a checkpoint skeleton: {sorted(skel)}")
    if isinstance(skel, list):
        return [unflatten(v, tensors) for v in skel]
    return skel


def _key(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k


def save_state(state: dict[str, Any], folder: Path) -> None:
    """Write ``state`` (nested dicts/lists of tensors and plain values) into ``folder``, with the
    SHA-256 of its tensor file in the JSON."""
    tensors: dict[str, torch.Tensor] = {}
    skel = flatten(state, tensors)
    # safetensors refuses shared storage and needs at least a placeholder entry
    save_file({k: v.clone() for k, v in tensors.items()} or {"_empty": torch.zeros(0)}, str(folder / STATE_TENSORS))
    doc = {"format": 2, "sha256": {STATE_TENSORS: file_sha256(folder / STATE_TENSORS)}, "state": skel}
    (folder / STATE_JSON).write_text(json.dumps(doc, indent=1))


def load_state(folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a state written by :func:`save_state`, verifying its tensor file's SHA-256.

    Raises:
        CheckpointError: a missing, damaged or unreadable state file, named.
    """
    folder = Path(folder)
    path = folder / STATE_JSON
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} is missing or not readable JSON ({exc}): the checkpoint is damaged") from None
    if isinstance(doc, dict) and doc.get("format") == 2:
        verify_files(folder, doc.get("sha256") or {}, path)
        skel = doc.get("state")
    else:
        log.warning("trainer state %s records no SHA-256 (saved by an older medglip): it cannot be verified", folder)
        skel = doc
    try:
        tensors = load_file(str(folder / STATE_TENSORS), device=str(map_location))
        return unflatten(skel, tensors)
    except Exception as exc:  # safetensors errors, a skeleton naming tensors that are not there
        raise CheckpointError(
            f"{folder / STATE_TENSORS} cannot be loaded ({type(exc).__name__}: "
            f"{str(exc)[:200]}): the checkpoint is damaged"
        ) from None


def rng_state() -> dict[str, Any]:
    """The torch RNG states (CPU and every CUDA device)."""
    out: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = list(torch.cuda.get_rng_state_all())
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states from :func:`rng_state`."""
    torch.set_rng_state(state["cpu"].to(torch.uint8).cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda = [s.to(torch.uint8).cpu() for s in state["cuda"]]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


def write_checkpoint(run_dir: Path, step: int, save_model: Any, state: dict[str, Any], *, keep_last: int = 2) -> Path:
    """Write checkpoint ``step`` atomically and point ``latest.json`` at it; prune older ones.

    Args:
        run_dir: the run folder.
        step: the number of optimizer steps done.
        save_model: ``callable(folder)`` writing the model files into ``folder``.
        state: trainer state for :func:`save_state`.
        keep_last: how many step folders to keep (the newest).

    Returns the checkpoint folder.
    """
    ckpt_root = Path(run_dir) / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:07d}"
    for stale in ckpt_root.glob(".tmp-step-*"):  # left by a crash while saving (only rank 0 writes here)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = ckpt_root / f".tmp-step-{step:07d}-{os.getpid()}"
    tmp.mkdir()
    save_model(tmp)
    save_state(state, tmp)
    swap_in_folder(tmp, final)
    atomic_write_bytes(ckpt_root / LATEST, json.dumps({"step": step, "folder": final.name}).encode())
    steps = sorted(p for p in ckpt_root.glob("step-*") if p.is_dir())
    for old in steps[: max(0, len(steps) - keep_last)]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The folder ``latest.json`` points at (None when the run has no checkpoint)."""
    ptr = Path(run_dir) / "checkpoints" / LATEST
    if not ptr.is_file():
        return None
    folder = ptr.parent / json.loads(ptr.read_text())["folder"]
    if not (folder / STATE_JSON).is_file():
        raise MedglipError(f"{ptr} points to {folder}, which is not a complete checkpoint")
    return folder


def publish(folder: Path, run_dir: Path) -> None:
    """Copy a checkpoint's model files to the top of ``run_dir`` (what ``load_checkpoint(RUN)`` reads):
    its EMA weights (``folder/ema/``) when it has them, else its raw weights.

    Each file is replaced atomically; sub-folders (e.g. ``text_encoder/``) are swapped in by renames.
    """
    run_dir = Path(run_dir)
    if (folder / EMA_DIR).is_dir():
        folder = folder / EMA_DIR
    for src in sorted(folder.iterdir()):
        if src.name in (STATE_TENSORS, STATE_JSON, EMA_DIR):
            continue
        dst = run_dir / src.name
        if src.is_dir():
            tmp = run_dir / f".{src.name}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src, tmp)
            swap_in_folder(tmp, dst)
        else:
            atomic_write_file(dst, functools.partial(shutil.copyfile, src))
