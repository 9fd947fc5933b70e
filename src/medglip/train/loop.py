"""The training loop: ``train(dataset_dir, run_dir, config)``.

AdamW with parameter groups (a lower rate for the text encoder, no weight decay on norms and biases),
linear warm-up then cosine decay, gradient clipping, bf16/fp16 autocast where the device allows,
checkpoints every N steps written atomically and resumable to the same loss sequence, a CSV log of
every step's losses with a loss-curve PNG, and DDP when started by ``torchrun``.

Run folder written (by rank 0 only)::

    RUN/model.safetensors, config.json, text_encoder/ ...   the latest model (``load_checkpoint(RUN)``)
    RUN/train_config.json     TrainConfig + resolved values (steps, world size, amp, dataset)
    RUN/dataset_card.json     the training dataset's card; RUN/categories.json: its phrases/categories
    RUN/log.csv, RUN/loss.png per-step losses and their curves
    RUN/checkpoints/step-NNNNNNN/ + latest.json   resumable checkpoints (model + trainer state)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from .. import __version__
from ..core.files import atomic_write_bytes
from ..errors import MedglipError
from ..model import PRESETS, GroundingModel, build_prompts, load_checkpoint, save_checkpoint
from ..model.tasks import AuxiliaryTasks
from ..ontology import PhraseRelations
from .config import TrainConfig
from .curves import CsvLog, plot_losses
from .data import GroundingDataset, collate
from .distributed import DistInfo, all_reduce_mean, barrier, init_distributed, same_on_all_ranks, wrap_model
from .ema import make_ema, update_ema
from .optim import freeze_parts, lr_factor, param_groups, resolve_amp
from .progress import TrainProgress, clock, seconds_left
from .sampling import ModalityBatchSampler, image_weights
from .state import EMA_DIR, latest_checkpoint, load_state, publish, rng_state, set_rng_state, write_checkpoint

log = logging.getLogger(__name__)

#: ``on_step(step, metrics)`` is called on rank 0 after every optimizer step.
StepCallback = Callable[[int, dict[str, float]], None]


class NonFiniteLoss(MedglipError):
    """A training step's loss was NaN or infinite: training stopped without saving that state."""


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    nb = device.type == "cuda"
    out = dict(batch)
    out["images"] = batch["images"].to(device, non_blocking=nb)
    out["modality"] = batch["modality"]  # stays on the CPU: the model routes images to encoders there
    out["targets"] = [{k: v.to(device, non_blocking=nb) for k, v in t.items()} for t in batch["targets"]]
    return out


def _write_run_info(
    run_dir: Path, dataset_dir: Path, ds: GroundingDataset, config: TrainConfig, resolved: dict[str, Any]
) -> None:
    info = {"medglip_version": __version__, "config": dataclasses.asdict(config), **resolved}
    atomic_write_bytes(run_dir / "train_config.json", json.dumps(info, indent=2).encode())
    card = dataset_dir / "card.json"
    if card.is_file():
        shutil.copyfile(card, run_dir / "dataset_card.json")
    cats = {
        "dataset": str(dataset_dir.resolve()),
        "split": config.split,
        "phrases": list(ds.phrases),
        "phrases_by_modality": {m: list(p) for m, p in ds.phrases_by_modality.items()},
        "categories": ds.categories,
    }
    atomic_write_bytes(run_dir / "categories.json", json.dumps(cats, indent=1).encode())


def train(
    dataset_dir: str | Path,
    run_dir: str | Path,
    config: TrainConfig = TrainConfig(),
    *,
    resume: bool = False,
    on_step: StepCallback | None = None,
    progress: TrainProgress | bool | None = None,
) -> Path:
    """Train a grounding model on a ``medglip build`` output; returns ``run_dir``.

    Args:
        dataset_dir: the built dataset (``annotations/<split>.json``, ``images/``).
        run_dir: output folder (created). Must not hold a checkpoint unless ``resume``.
        config: the :class:`TrainConfig`.
        resume: continue from ``run_dir``'s latest checkpoint (same data order, RNG and schedule, so the
            losses continue as in an uninterrupted run); starts fresh when there is none.
        on_step: ``callback(step, metrics)`` on rank 0 after each step (metrics: loss, loss_*, lr,
            grad_norm, epoch).
        progress: a :class:`~medglip.train.progress.TrainProgress` told of every step on rank 0 (the CLI's
            progress bar); without one (None, or a bool as before) the loop only logs every
            ``log_every`` steps, with the elapsed and remaining time.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) each process trains on its shard of every epoch with DDP;
    only rank 0 writes. The process group is created and destroyed here unless the caller made one.
    """
    owned = not (dist.is_available() and dist.is_initialized())
    info = init_distributed(config.device)
    ok = False
    try:
        out = _train(Path(dataset_dir), Path(run_dir), config, info, resume=resume, on_step=on_step, progress=progress)
        ok = True
        return out
    finally:
        if owned and info.distributed and dist.is_initialized():
            if ok:
                barrier(info)
            dist.destroy_process_group()


def _train(
    dataset_dir: Path,
    run_dir: Path,
    config: TrainConfig,
    info: DistInfo,
    *,
    resume: bool,
    on_step: StepCallback | None,
    progress: TrainProgress | bool | None,
) -> Path:
    device = info.device
    ckpt = latest_checkpoint(run_dir) if resume else None
    if not resume and latest_checkpoint(run_dir) is not None:
        raise MedglipError(f"{run_dir} already holds a checkpoint: pass resume=True (--resume) or another folder")
    torch.manual_seed(config.seed)
    if ckpt is not None:
        model = _resume_guard(run_dir, ckpt, load_checkpoint, ckpt)
        log.info("resuming from %s", ckpt)
    elif config.init_from:
        model = load_checkpoint(config.init_from)
        log.info("starting from the weights of %s", config.init_from)
    else:
        if config.preset not in PRESETS:
            raise MedglipError(f"unknown preset {config.preset!r}; choose from {sorted(PRESETS)}")
        parts = {"mask_head": config.mask_weight > 0, "mlm_head": config.mlm_weight > 0}
        model = GroundingModel(PRESETS[config.preset].replace(**{**parts, **dict(config.model_overrides)}))
    aux = {"mask_head": config.mask_weight, "mlm_head": config.mlm_weight}
    if ckpt is None:  # a loss that is on needs its head (a checkpoint fine-tuned may lack it: it is added)
        model = model.with_parts(**{part: True for part, w in aux.items() if w > 0})
    for part, w in aux.items():
        if w > 0 and not getattr(model.config, part):  # resuming: the run's own model decides
            log.warning("the run in %s has no %s: its loss is off while resuming", run_dir, part.replace("_", " "))
            aux[part] = 0.0
    mcfg = model.config
    model.to(device).train()
    if config.freeze:
        log.info("frozen: %s (%d parameters)", ", ".join(config.freeze), freeze_parts(model, config.freeze))

    builder = partial(build_prompts, tokenizer=model.tokenizer, max_len=mcfg.max_text_len)
    ds = GroundingDataset(
        dataset_dir,
        config.split,
        image_size=int(mcfg.image_size),
        prompt_builder=builder,
        modalities=tuple(mcfg.modalities),
        train=True,
        negatives_per_image=config.negatives_per_image,
        negative_vocabulary=config.negative_vocabulary,
        augment=config.augment_config(),
        seed=config.seed,
        input_config=mcfg.input_config,
        with_masks=aux["mask_head"] > 0,
    )
    for option, asked, have in (
        ("source_weights", config.source_weights, {im.get("source", "") for im in ds.images}),
        ("modality_weights", config.modality_weights, {im["modality"] for im in ds.images}),
    ):
        unknown = sorted({name for name, _ in asked} - have)
        if unknown:
            raise MedglipError(
                f"{option}: {unknown} not in the training split of {dataset_dir} (it has {sorted(have)})"
            )
    model.tasks = AuxiliaryTasks(
        contrastive_weight=config.contrastive_weight,
        contrastive_temperature=config.contrastive_temperature,
        mlm_weight=aux["mlm_head"],
        mlm_probability=config.mlm_probability,
        mask_weight=aux["mask_head"],
        mask_box_jitter=config.mask_box_jitter,
        relations=PhraseRelations(ds.ontology),
    )
    weights = image_weights(
        [im.get("source", "") for im in ds.images],
        [im["modality"] for im in ds.images],
        source_weights={**ds.source_weights, **dict(config.source_weights)},
        modality_weights=dict(config.modality_weights),
    )
    sampler = ModalityBatchSampler(
        modalities=[im["modality"] for im in ds.images],
        weights=weights,
        batch_size=config.batch_size,
        rank=info.rank,
        world_size=info.world_size,
        seed=config.seed,
    )
    steps_per_epoch = sampler.steps_per_epoch()
    total = config.max_steps or (config.epochs * steps_per_epoch if config.epochs else 1000)

    ddp_model = wrap_model(model, info)
    ema = make_ema(model, config.ema_decay) if config.ema_decay else None
    optimizer = torch.optim.AdamW(param_groups(model, config), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    schedule = partial(lr_factor, warmup_steps=config.warmup_steps, total_steps=total, min_ratio=config.min_lr_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s))
    amp_dtype, use_scaler = resolve_amp(config.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    step = 0
    if ckpt is not None:
        state = _resume_guard(run_dir, ckpt, load_state, ckpt)
        was = tuple(state.get("train_config", {}).get("freeze", ()))
        if was != tuple(config.freeze):  # the optimizer's state holds exactly the parameters that were trained
            raise MedglipError(
                f"{ckpt} was trained with freeze={list(was)}, this run asks for "
                f"{list(config.freeze)}: resume with the same --freeze, or start a new run "
                f"with --init-from {run_dir}"
            )
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None and (ckpt / EMA_DIR).is_dir():  # before the RNG is restored: loading draws from it
            ema.module.load_state_dict(load_checkpoint(ckpt / EMA_DIR).state_dict())
            ema.n_averaged.fill_(int(state.get("ema_updates", state["step"])))
        set_rng_state(state["rng"])
        step = int(state["step"])
        # the schedule may be longer now; the scheduler holds one base lr per group
        for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
            group["lr"] = base * schedule(step)
    if not same_on_all_ranks(step, info):
        raise MedglipError(
            f"rank {info.rank} resumes at step {step} but another rank does not: resuming a "
            f"multi-node run needs {run_dir} on a filesystem every node sees"
        )
    resolved = {
        "max_steps": total,
        "steps_per_epoch": steps_per_epoch,
        "world_size": info.world_size,
        "global_batch_size": config.batch_size * info.world_size,
        "device": str(device),
        "amp": str(amp_dtype).replace("torch.", "") if amp_dtype else "none",
        "grad_scaler": use_scaler,
        "dataset": str(dataset_dir.resolve()),
        "preset": mcfg.name,
        "resumed_from_step": step if ckpt is not None else None,
        "model_config": mcfg.to_dict(),
    }
    csv_log: CsvLog | None = None
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_run_info(run_dir, dataset_dir, ds, config, resolved)
        csv_log = CsvLog(run_dir / "log.csv", resume_step=step if ckpt is not None else None)
        log.info(
            "training %s steps (%d per epoch, %d image(s) per step per process, %d process(es)), amp %s, on %s",
            total,
            steps_per_epoch,
            config.batch_size,
            info.world_size,
            resolved["amp"],
            device,
        )

    def save(at: int) -> None:
        if not info.is_main:
            return
        st = {
            "step": at,
            "epoch": at // steps_per_epoch,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rng_state(),
            "train_config": dataclasses.asdict(config),
        }
        if ema is not None:
            st["ema_updates"] = int(ema.n_averaged)

        def save_models(folder: Path) -> None:
            save_checkpoint(model, folder)  # the raw weights: resuming continues from them
            if ema is not None:
                save_checkpoint(ema.module, folder / EMA_DIR)  # the averaged weights: the published model

        folder = write_checkpoint(run_dir, at, save_models, st, keep_last=config.keep_last)
        publish(folder, run_dir)
        log.info("checkpoint %s", folder)

    if config.num_workers > 0:  # tokenizing in forked workers: keep the Rust tokenizer single-threaded
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    hook = progress if info.is_main and isinstance(progress, TrainProgress) else None
    # a hook shows every step: the periodic line then only goes to the debug log
    step_level = logging.DEBUG if hook is not None else logging.INFO
    last_saved = step if ckpt is not None else -1
    t0, first_step = time.perf_counter(), step
    if hook is not None:
        hook.start(total=total, done=step)
    try:
        while step < total:
            epoch, skip = divmod(step, steps_per_epoch)
            ds.set_epoch(epoch)
            sampler.set_epoch(epoch, skip)
            loader = DataLoader(
                ds,
                batch_sampler=sampler,
                collate_fn=collate,
                num_workers=config.num_workers,
                pin_memory=device.type == "cuda",  # its own generator: the global RNG is untouched
                generator=torch.Generator().manual_seed(config.seed + epoch),
            )
            for batch in loader:
                metrics = _step(ddp_model, model, batch, optimizer, scheduler, scaler, amp_dtype, config, info)
                if ema is not None:
                    update_ema(ema, model)
                step += 1
                if not math.isfinite(metrics["loss"]):  # the same on every rank (all-reduced)
                    kept = "no checkpoint had been written yet"
                    if last_saved > 0:
                        kept = (
                            f"the last good checkpoint, {run_dir / 'checkpoints' / f'step-{last_saved:07d}'}, "
                            f"is kept (and is what {run_dir} holds)"
                        )
                    raise NonFiniteLoss(
                        f"step {step}: the loss is {metrics['loss']} (not a finite number); training "
                        f"stopped without saving this state; {kept}. Lower --lr, check the data, or "
                        "resume from the kept checkpoint with --resume"
                    )
                metrics.update(step=step, epoch=epoch)
                if info.is_main:
                    assert csv_log is not None
                    csv_log.append(metrics)
                    if hook is not None:
                        hook.step(step, dict(metrics))
                    if step % config.log_every == 0 or step == total:
                        elapsed = time.perf_counter() - t0
                        log.log(
                            step_level,
                            "step %d/%d loss %.4f lr %.2e, %s elapsed, %s left (%.2f step/s)",
                            step,
                            total,
                            metrics["loss"],
                            metrics["lr"],
                            clock(elapsed),
                            clock(seconds_left(step, total, first_step, elapsed)),
                            (step - first_step) / max(1e-9, elapsed),
                        )
                        plot_losses(csv_log.rows, run_dir / "loss.png")
                    if on_step is not None:
                        on_step(step, dict(metrics))
                if step % config.checkpoint_every == 0 or step == total:
                    save(step)
                    last_saved = step
                if step >= total:
                    break
    finally:
        if hook is not None:
            hook.close()
    if info.is_main:
        if last_saved != step:
            save(step)
        assert csv_log is not None
        plot_losses(csv_log.rows, run_dir / "loss.png")
    return run_dir


def _resume_guard(run_dir: Path, ckpt: Path, fn: Callable[[Path], Any], arg: Path) -> Any:
    """``fn(arg)``; a damaged checkpoint's error says that resuming is refused and what else there is."""
    from ..model.checkpoint import CheckpointError

    try:
        return fn(arg)
    except CheckpointError as exc:
        others = sorted(p.name for p in (run_dir / "checkpoints").glob("step-*") if p.is_dir() and p != ckpt)
        hint = (
            (
                f"; earlier checkpoints: {', '.join(others)} (move the damaged {ckpt.name} away and point "
                f"checkpoints/latest.json at one of them to resume from it)"
            )
            if others
            else ""
        )
        raise CheckpointError(f"cannot resume from {ckpt}: {exc}{hint}") from None


def _config_dict(cfg: Any) -> Any:
    if hasattr(cfg, "to_dict"):
        return json.loads(json.dumps(cfg.to_dict(), default=str))
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):  # an instance, not a dataclass itself
        return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
    return str(cfg)


def _step(
    ddp_model: torch.nn.Module,
    model: torch.nn.Module,
    batch: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    amp_dtype: torch.dtype | None,
    config: TrainConfig,
    info: DistInfo,
) -> dict[str, float]:
    """One optimizer step; returns the (rank-averaged) losses, lr and gradient norm."""
    device = info.device
    batch = _to_device(batch, device)
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        losses = ddp_model(batch["images"], batch["modality"], batch["prompts"], batch["targets"])
    loss = sum(v.float() for v in losses.values())
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if config.grad_clip:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
    else:
        grad_norm = (
            torch.linalg.vector_norm(torch.stack([p.grad.detach().float().norm() for p in params]))
            if params
            else torch.zeros((), device=device)
        )
    lr = optimizer.param_groups[0]["lr"]
    main_lrs = [g["lr"] for g in optimizer.param_groups if str(g.get("name", "")).startswith("main")]
    if scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    elif torch.isfinite(grad_norm):
        optimizer.step()
    else:
        log.warning("non-finite gradient norm; step skipped")
    scheduler.step()
    names = sorted(losses)
    vec = torch.stack([loss.detach()] + [losses[n].detach().float() for n in names] + [grad_norm.detach().float()])
    means = all_reduce_mean(vec, info).cpu().tolist()
    out = {
        "loss": means[0],
        **{n: v for n, v in zip(names, means[1:-1], strict=True)},
        "grad_norm": means[-1],
        "lr": float(main_lrs[0] if main_lrs else lr),
    }
    return out
