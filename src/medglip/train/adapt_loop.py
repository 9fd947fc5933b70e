"""The optimisation loop of ``medglip adapt``: a few hundred steps at most, bounded by a time budget.

The data, prompts, augmentation and losses are those of ``medglip train`` (:class:`GroundingDataset`,
:class:`ModalityBatchSampler`, the model's own losses); what differs is that only the given parameters
train, that the run stops at ``max_steps`` or when the budget is spent (whichever comes first), and
that the learning-rate schedule follows the spent share of that bound (warm-up, then cosine), so a
budget-bound run still ends at its lowest rate.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from ..errors import MedglipError
from ..model import GroundingModel
from .curves import CsvLog, plot_losses
from .data import GroundingDataset, collate
from .sampling import ModalityBatchSampler

log = logging.getLogger(__name__)

#: the cosine ends at this share of the peak rate
MIN_LR_RATIO = 0.01


@dataclass(frozen=True)
class AdaptProgress:
    """What a progress callback gets after each step.

    Attributes:
        step: steps done; total: the expected number of steps (``max_steps``, or what the budget allows
            at the pace so far); elapsed_s: training seconds so far; remaining_s: the estimate of what is
            left; loss: this step's total loss.
    """

    step: int
    total: int
    elapsed_s: float
    remaining_s: float
    loss: float


ProgressCallback = Callable[[AdaptProgress], None]


@dataclass(frozen=True)
class TrainedGroup:
    """Parameters that train at ``lr_scale`` times the peak rate (the rest of the model stays fixed)."""

    params: tuple[torch.nn.Parameter, ...]
    lr_scale: float = 1.0


@dataclass(frozen=True)
class LoopSettings:
    """How the loop runs (keyword-only).

    Attributes:
        lr, weight_decay: AdamW's peak rate and decay (no decay on 1-D parameters: biases, norms).
        batch_size: images per step (one modality per batch).
        max_steps: stop after this many steps (None: only the budget stops it).
        budget_s: stop once this many seconds of training are spent.
        warmup_steps: linear warm-up of the rate.
        grad_clip: clip the gradient norm of the trained parameters (None: no clipping).
        seed: data order and augmentation.
        device: where the model computes.
        replay_every: with a replay set, every n-th step is one of its batches (0: none).
    """

    lr: float
    weight_decay: float
    batch_size: int
    max_steps: int | None
    budget_s: float
    warmup_steps: int = 5
    grad_clip: float | None = 1.0
    seed: int = 0
    device: str = "cpu"
    replay_every: int = 0


@dataclass(frozen=True)
class LoopResult:
    """Steps done, training seconds, whether the budget (not ``max_steps``) stopped it, first / last loss."""

    steps: int
    seconds: float
    budget_bound: bool
    first_loss: float | None
    last_loss: float | None


def _groups(model: GroundingModel, groups: Sequence[TrainedGroup], lr: float, weight_decay: float) -> list[dict]:
    """AdamW's parameter groups: per trained group, its rate; decay only on weights (not biases, norms)."""
    names = {id(p): n for n, p in model.named_parameters()}
    out = []
    for group in groups:
        params = [p for p in group.params if p.requires_grad]
        decay = [p for p in params if p.ndim > 1 and not names.get(id(p), "").endswith(".bias")]
        rest = [p for p in params if all(p is not q for q in decay)]
        rate = lr * group.lr_scale
        out += [
            g
            for g in (
                {"params": decay, "weight_decay": weight_decay, "lr": rate},
                {"params": rest, "weight_decay": 0.0, "lr": rate},
            )
            if g["params"]
        ]
    return out


def _batch_to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = dict(batch)
    out["images"] = batch["images"].to(device)
    out["targets"] = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
    return out  # the modality stays on the CPU: the model routes images to encoders there


def _stream(dataset: GroundingDataset, batch_size: int, seed: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(epoch, batch) without end: one modality per batch, a new order and augmentation each epoch."""
    sampler = ModalityBatchSampler(
        modalities=[im["modality"] for im in dataset.images], weights=None, batch_size=batch_size, seed=seed
    )
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        sampler.set_epoch(epoch)
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=0,
            generator=torch.Generator().manual_seed(seed + epoch),
        )
        for batch in loader:
            yield epoch, batch
        epoch += 1


def run_steps(
    model: GroundingModel,
    groups: Sequence[TrainedGroup],
    dataset: GroundingDataset,
    settings: LoopSettings,
    *,
    replay: GroundingDataset | None = None,
    log_path: Path | None = None,
    on_step: ProgressCallback | None = None,
) -> LoopResult:
    """Train the ``groups`` of ``model`` (already in the right train / eval modes) on ``dataset``; with
    ``replay``, every ``settings.replay_every``-th step is a batch of it instead (rehearsal of what the
    model knew, so it forgets less).

    Raises:
        MedglipError: no parameter to train, or a loss that is not a finite number.
    """
    s = settings
    param_groups = _groups(model, [g for g in groups if g.lr_scale > 0], s.lr, s.weight_decay)
    if not param_groups:
        raise MedglipError("adapt: the chosen method leaves no parameter to train")
    params = [p for g in param_groups for p in g["params"]]
    optimizer = torch.optim.AdamW(param_groups, lr=s.lr, betas=(0.9, 0.999), eps=1e-8)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    batches = _stream(dataset, s.batch_size, s.seed)
    rehearsal = _stream(replay, s.batch_size, s.seed + 1) if replay is not None and s.replay_every else None
    csv_log = CsvLog(log_path) if log_path is not None else None
    step, skipped, first, last, t0 = 0, 0, None, None, time.perf_counter()
    budget_bound = False
    while True:
        replayed = rehearsal is not None and step % s.replay_every == s.replay_every - 1
        epoch, batch = next(rehearsal if replayed and rehearsal is not None else batches)
        elapsed = time.perf_counter() - t0
        spent = max(step / s.max_steps if s.max_steps else 0.0, elapsed / s.budget_s)
        if step < s.warmup_steps:
            factor = (step + 1) / s.warmup_steps
        else:
            factor = MIN_LR_RATIO + (1.0 - MIN_LR_RATIO) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, spent)))
        for g, base in zip(optimizer.param_groups, base_lrs, strict=True):
            g["lr"] = base * factor
        batch = _batch_to(batch, torch.device(s.device))
        optimizer.zero_grad(set_to_none=True)
        losses = model(batch["images"], batch["modality"], batch["prompts"], batch["targets"])
        loss = sum(v.float() for v in losses.values())
        if not math.isfinite(float(loss.detach())):
            raise MedglipError(
                f"adapt: step {step + 1}: the loss is {float(loss.detach())}; lower the learning rate (lr=)"
            )
        if not loss.requires_grad:  # nothing of this batch reaches the trained parameters (prompt
            skipped += 1  # tuning: no tuned phrase among its prompts); it cannot teach them
            if skipped > 10 * (step + 1) or time.perf_counter() - t0 > s.budget_s:
                raise MedglipError(
                    "adapt: the batches never reach the trained parameters (prompt tuning: "
                    "no adapted phrase is among the training prompts)"
                )
            if replayed:
                step += 1  # a rehearsal batch that cannot teach: count it, or the loop would replay forever
            continue
        loss.backward()
        grads = [p for p in params if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(grads, s.grad_clip) if (s.grad_clip and grads) else torch.zeros(())
        optimizer.step()
        step += 1
        last = float(loss.detach())
        first = last if first is None else first
        elapsed = time.perf_counter() - t0
        if csv_log is not None:
            csv_log.append(
                {
                    "step": step,
                    "epoch": epoch,
                    "replay": int(replayed),
                    "loss": last,
                    "lr": optimizer.param_groups[0]["lr"],
                    "grad_norm": float(norm),
                    **{k: float(v.detach()) for k, v in losses.items()},
                }
            )
        pace = elapsed / step
        by_budget = step + int(max(0.0, s.budget_s - elapsed) / pace)
        total = max(step, min(s.max_steps, by_budget) if s.max_steps else by_budget)
        remaining = (total - step) * pace
        if on_step is not None:
            on_step(AdaptProgress(step=step, total=total, elapsed_s=elapsed, remaining_s=remaining, loss=last))
        if s.max_steps and step >= s.max_steps:
            break
        if elapsed + pace > s.budget_s:  # the next step would overrun the budget
            budget_bound = True
            break
    seconds = time.perf_counter() - t0
    if log_path is not None and csv_log is not None and csv_log.rows:
        plot_losses(csv_log.rows, log_path.parent / "loss.png")
    log.info(
        "adapt: %d steps in %.0f s (%s), loss %.4f -> %.4f",
        step,
        seconds,
        "budget spent" if budget_bound else "max_steps reached",
        first or math.nan,
        last or math.nan,
    )
    return LoopResult(steps=step, seconds=seconds, budget_bound=budget_bound, first_loss=first, last_loss=last)
