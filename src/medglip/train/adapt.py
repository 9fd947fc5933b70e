"""``adapt(DATA, out=RUN)``: adapt the shipped model (or a run) to a small labelled set in minutes on a CPU.

Which parameters train (``method``):

- ``prompt``: a learned text-feature offset per adapted phrase (GLIP's prompt tuning; everything else
  fixed, so other phrases keep their answers exactly) — :mod:`medglip.model.phrase_offsets`;
- ``head``: the fusion, the grounding head and the mask head;
- ``lora``: low-rank adapters on the image encoders of the set's modalities (:mod:`medglip.train.lora`);
- ``encoder``: the image encoders of the set's modalities, whole (every other modality's answers stay
  exactly as they were: nothing they pass through changes);
- ``encoder-prompt``: ``encoder`` and ``prompt`` together: the set's own encoders learn its images and the
  adapted phrases their text-feature offsets (every other modality's answers stay exactly as they were,
  and so do the other phrases' text features);
- ``full``: everything the start model's recipe trained (all but the parts it froze: the text encoder);
  the parts every modality shares (the feature pyramid, fusion and heads) at :data:`SHARED_LR_SCALE` of
  the rate, so the other modalities' answers move little.

``auto`` is the one that wins on the measured curves at the default budget: :data:`DEFAULT_METHOD` when the
start model was trained on the set's modalities, :data:`NEW_MODALITY_METHOD` when it never saw one of them
(:func:`auto_method`).
What the start model knew is held back three ways (docs/benchmarks.md, "the realistic case"): rehearsal
of its own training patients every :data:`REPLAY_EVERY` steps (``replay``; from the shipped model, by
default, the training patients shipped with it), keeping a share of the trained change (``keep_share``,
WiSE-FT weight averaging) and a lower rate for the parts all modalities share (``shared_lr_scale``);
``norm_stats="keep"`` also keeps the start model's BatchNorm statistics (measured, not the default).
The data, prompts, augmentation and losses are ``medglip train``'s. The run folder (``OUT``) holds only
what changed, against the start model and its tensors' SHA-256 (:mod:`medglip.model.delta`), so every
command loads it with ``--checkpoint OUT``; the thresholds of the adapted phrases are calibrated
(:mod:`medglip.evaluate.calibration`) and the start model's other thresholds kept; the card
(``ADAPT_CARD.md``, ``adapt.json``) gives the cases, time and figures (:mod:`medglip.train.adapt_card`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..core.files import atomic_write_json
from ..dataset import build_complete
from ..errors import MedglipError
from ..model import GroundingModel, build_prompts, load_checkpoint, save_checkpoint
from ..model.delta import LowRank
from ..model.shipped import SHIPPED_NAME, SHIPPED_REHEARSAL, shipped_run, trained_on, trained_phrases
from ..model.tasks import AuxiliaryTasks
from ..ontology import PhraseRelations
from .adapt_card import Forgetting, forgetting, write_card
from .adapt_data import AdaptData, prepare
from .adapt_loop import LoopSettings, ProgressCallback, TrainedGroup, run_steps
from .config import TrainConfig
from .data import GroundingDataset
from .distributed import resolve_device
from .lora import LowRankDelta, add_lora, remove_lora
from .optim import freeze_parts

log = logging.getLogger(__name__)

METHODS = ("prompt", "head", "lora", "encoder", "encoder-prompt", "full")
#: what ``method="auto"`` runs when the start model was trained on every modality of the set: the measured
#: winner (docs/benchmarks.md, "the realistic case"): from a start that knows brain MR, 10 hippocampus
#: patients, 10 minutes with rehearsal: hippocampus 73.6 % Acc@0.5 against full fine-tuning's 64.2 %, and
#: 4.2 points forgotten against 10.6 (the other modalities' answers cannot move); rehearsing the eight
#: shipped LGG patients: 72.9 % (96 % of full training), 4.1 / 2.8 points forgotten (validation / test)
DEFAULT_METHOD = "encoder-prompt"
#: what ``auto`` runs when the set brings a modality the start model never trained on (its fusion and heads
#: never saw that modality's features): the winner on the CT-only start (5 patients, 3 minutes: full and the
#: head tie on Acc@0.5 and full forgets far less; LoRA and prompt tuning find much less)
NEW_MODALITY_METHOD = "full"
DEFAULT_BUDGET_MINUTES = 10.0
#: peak learning rate and weight decay per method (prompt: GLIP's prompt-tuning values)
METHOD_LR = {"prompt": 0.05, "head": 2e-4, "lora": 1e-3, "encoder": 1e-4, "encoder-prompt": 1e-4, "full": 1e-4}
METHOD_WEIGHT_DECAY = {
    "prompt": 0.25,
    "head": 0.05,
    "lora": 0.0,
    "encoder": 0.05,
    "encoder-prompt": 0.05,
    "full": 0.05,
}
#: the methods that learn text-feature offsets of the adapted phrases (:mod:`medglip.model.phrase_offsets`)
PROMPTED = ("prompt", "encoder-prompt")
#: ``full``: the rate of the parts every modality shares, as a share of the set's own encoders' rate
SHARED_LR_SCALE = 1.0
#: with a replay set (``replay=``), every n-th step rehearses a batch of it; measured from a start that
#: knows brain MR (hippocampus, 10 patients, 10 min): forgetting 40.3 -> 8.5 points, the new finding 73.2 -> 65.2 %
REPLAY_EVERY = 2
#: the share of the trained change kept: the adapted weights are moved back toward the start's by the rest
#: (WiSE-FT, Wortsman et al. 2022: weight averaging keeps more of what the start model knew); 1: all of it
KEEP_SHARE = 1.0  # 0.5 with rehearsal: 3.9 points forgotten but the new finding at 55.8 % (val 53.8 vs 64.2 %)
#: the image encoders' BatchNorm running statistics while adapting: "update" (as training does) or "keep" (the
#: start model's, fixed: a few cases of one finding do not redefine what the modality's images look like)
NORM_STATS = ("update", "keep")
DEFAULT_NORM_STATS = "update"
#: LoRA's rank and scale
LORA_RANK, LORA_ALPHA = 4, 4.0


class AdaptError(MedglipError):
    """``adapt`` cannot run with these arguments (method, budget, output folder, start model)."""


@dataclass(frozen=True)
class AdaptResult:
    """What :func:`adapt` made.

    Attributes:
        run: the run folder (``--checkpoint RUN``); method: the method that ran; steps, seconds: training.
        phrases: the adapted phrases; thresholds: their calibrated thresholds; calibration_split: where.
        cases: the training cases used; weights_bytes: the size of ``RUN/model.safetensors``.
        forgetting: the forgetting check (None unless ``reference`` was given or the start is the shipped model).
    """

    run: Path
    method: str
    steps: int
    seconds: float
    phrases: tuple[str, ...]
    thresholds: dict[str, float]
    calibration_split: str
    cases: tuple[str, ...]
    weights_bytes: int
    forgetting: Forgetting | None


def auto_method(start: Path, modalities: Sequence[str]) -> str:
    """What ``method="auto"`` runs from the run folder ``start`` for a set of these modalities:
    :data:`DEFAULT_METHOD` when the start model was trained on each of them, else :data:`NEW_MODALITY_METHOD`
    (also when its folder does not say what it was trained on)."""
    known = trained_on(start)
    return DEFAULT_METHOD if known and all(m in known for m in modalities) else NEW_MODALITY_METHOD


def _start(start: str | Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """The start model's folder and its reference in the run (:mod:`medglip.model.delta`)."""
    if str(start) == "shipped":
        folder = shipped_run()
        return folder, {"kind": "shipped", "name": SHIPPED_NAME, "path": str(folder.resolve())}
    folder = Path(start)
    if not (folder / "config.json").is_file():
        raise AdaptError(
            f"{folder}: not a run folder (no config.json); start from 'shipped' or a `medglip train` "
            "/ `medglip adapt` output"
        )
    full = folder.resolve()
    return folder, {"kind": "run", "path": str(full), "relative": os.path.relpath(full, out.resolve())}


def _recipe(folder: Path) -> dict[str, Any]:
    """The TrainConfig fields the start run was trained with (empty for a bare checkpoint)."""
    try:
        doc = json.loads((folder / "train_config.json").read_text())
    except (OSError, ValueError):
        return {}
    cfg = doc.get("config") if isinstance(doc, dict) else None
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return {k: v for k, v in cfg.items() if k in known} if isinstance(cfg, dict) else {}


def _train_config(recipe: dict[str, Any], model: GroundingModel, **changes: Any) -> TrainConfig:
    keep = {
        k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
        for k, v in recipe.items()
        if k not in ("max_steps", "epochs", "preset", "model_overrides", "init_from")
    }
    cfg = TrainConfig(**{**keep, **changes})
    return dataclasses.replace(
        cfg,
        mask_weight=cfg.mask_weight if model.mask_head is not None else 0.0,
        mlm_weight=cfg.mlm_weight if model.mlm_head is not None else 0.0,
    )


def _own_encoder_keys(model: GroundingModel, data: AdaptData) -> list[str]:
    """The keys of the image encoders the set's modalities pass through."""
    return sorted({model.config.encoder_for(model.config.modalities.index(m)) for m in data.modalities})


def _own_encoders(model: GroundingModel, data: AdaptData) -> list[torch.nn.Module]:
    """The image encoders the set's modalities pass through."""
    return [model.image_encoder.backbones[k] for k in _own_encoder_keys(model, data)]


def _setup(
    model: GroundingModel,
    method: str,
    data: AdaptData,
    freeze: tuple[str, ...],
    shared_lr_scale: float,
    norm_stats: str = DEFAULT_NORM_STATS,
) -> tuple[GroundingModel, list[TrainedGroup], dict[str, LowRankDelta]]:
    """The model to train (``prompt`` adds offsets), its trained parameter groups and LoRA adapters; the
    modes set (frozen parts in eval mode, so their normalisation statistics stay as they are; with
    ``norm_stats="keep"`` every BatchNorm too, its weights still trained)."""
    if method in PROMPTED:
        model = model.with_tuned_phrases(list(data.phrases))
    model.requires_grad_(False).eval()
    adapters: dict[str, LowRankDelta] = {}
    if method == "prompt":
        tuned = model.phrase_offsets
        assert tuned is not None  # with_tuned_phrases added them
        tuned.offsets.requires_grad_(True)
        groups = [TrainedGroup(params=(tuned.offsets,))]
    elif method == "head":
        parts = [m for m in (model.fusion, model.head, model.mask_head) if m is not None]
        for m in parts:
            m.requires_grad_(True).train()
        groups = [TrainedGroup(params=tuple(p for m in parts for p in m.parameters()))]
    elif method == "lora":
        for key in _own_encoder_keys(model, data):
            adapters.update(
                add_lora(
                    model.image_encoder.backbones[key],
                    rank=LORA_RANK,
                    alpha=LORA_ALPHA,
                    prefix=f"image_encoder.backbones.{key}.",
                )
            )
        groups = [TrainedGroup(params=tuple(p for d in adapters.values() for p in (d.lora_a, d.lora_b)))]
    elif method in ("encoder", "encoder-prompt"):
        own = _own_encoders(model, data)
        for encoder in own:
            encoder.requires_grad_(True).train()
        groups = [TrainedGroup(params=tuple(p for e in own for p in e.parameters()))]
        if method == "encoder-prompt":
            tuned = model.phrase_offsets
            assert tuned is not None  # with_tuned_phrases added them
            tuned.offsets.requires_grad_(True)
            # the offsets at prompt tuning's own rate, the encoders at theirs
            groups.append(TrainedGroup(params=(tuned.offsets,), lr_scale=METHOD_LR["prompt"] / METHOD_LR[method]))
    else:
        model.requires_grad_(True).train()
        freeze_parts(model, tuple(f for f in freeze if f in ("image_backbones", "text_encoder")))
        own_ids = {id(p) for m in _own_encoders(model, data) for p in m.parameters()}
        for backbone in model.image_encoder.backbones.values():
            if all(id(p) not in own_ids for p in backbone.parameters()):
                backbone.requires_grad_(False).eval()  # no image of its modality: nothing to learn there
        trained = [p for p in model.parameters() if p.requires_grad]
        groups = [
            TrainedGroup(params=tuple(p for p in trained if id(p) in own_ids)),
            TrainedGroup(params=tuple(p for p in trained if id(p) not in own_ids), lr_scale=shared_lr_scale),
        ]
    if norm_stats == "keep":
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                module.eval()  # normalises with the start model's running statistics and leaves them as they are
    model.training = True  # the model computes its losses; the frozen parts below it stay in eval mode
    return model, groups, adapters


def _categories(start: Path, out: Path, data: AdaptData, ds: GroundingDataset) -> None:
    """``RUN/categories.json``: the start model's phrases and the set's (the Grounder's known phrases)."""
    phrases = list(dict.fromkeys([*trained_phrases(start), *ds.phrases]))
    by_mod = {m: list(v) for m, v in trained_on(start).items()}
    for m, v in ds.phrases_by_modality.items():
        by_mod[m] = list(dict.fromkeys([*by_mod.get(m, []), *v]))
    atomic_write_json(
        out / "categories.json",
        {
            "split": "train",
            "phrases": phrases,
            "phrases_by_modality": by_mod,
            "categories": ds.categories,
            "adapted_phrases": list(data.phrases),
        },
        indent=1,
    )


def _calibrate(out: Path, data: AdaptData, start_thresholds: dict[str, float]) -> dict[str, Any]:
    """Thresholds of the adapted phrases chosen on the calibration split; the start model's others kept."""
    from ..evaluate.calibration import choose_thresholds, evaluate_run, set_thresholds

    _, present, absent = evaluate_run(out, data.dataset, data.calibration_split, out / "calibration", phrases="case")
    mine = set(data.phrases)
    present = [p for p in present if p[0] in mine]
    absent = [a for a in absent if a[0] in mine]
    chosen = choose_thresholds(present, absent)
    new = {p: float(chosen.get(p, chosen["*"])) for p in data.phrases}
    set_thresholds(out, {**start_thresholds, **new})
    return {
        "split": data.calibration_split,
        "present_pairs": len(present),
        "absent_pairs": len(absent),
        "thresholds": new,
    }


def keep_share_of_change(model: GroundingModel, base: GroundingModel, low_rank: LowRank, share: float) -> LowRank:
    """Keep ``share`` of what training changed: every tensor ``start + share · (adapted − start)`` (a tensor
    the start model lacks, a prompt offset, from zero), LoRA's changes scaled by ``share``."""
    if share == 1.0:
        return low_rank
    start = base.state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue  # counters (BatchNorm's batches seen)
            origin = start.get(name)
            tensor.copy_(tensor * share if origin is None else origin + share * (tensor - origin))
    return {key: (a, b * share) for key, (a, b) in low_rank.items()}


def _forgetting_on_shipped_samples(out: Path, start_dir: Path) -> Forgetting:
    """Forgetting on the held-out sample patients shipped with the model (its own test patients), built
    into a temporary folder: a user without the shipped test data still learns what the run gave up."""
    import tempfile

    from ..model.shipped import SHIPPED_HELDOUT

    with tempfile.TemporaryDirectory(prefix="medglip-adapt-reference-") as tmp:
        reference = build_complete(SHIPPED_HELDOUT / "recipe.yaml", Path(tmp) / "reference")
        measured = forgetting(out, reference, base=start_dir)
    return dataclasses.replace(measured, dataset=str(SHIPPED_HELDOUT / "recipe.yaml"))  # not the temporary folder


def adapt(
    data: str | Path,
    *,
    out: str | Path,
    phrases: Sequence[str] | None = None,
    start: str | Path = "shipped",
    method: str = "auto",
    budget_minutes: float = DEFAULT_BUDGET_MINUTES,
    max_steps: int | None = None,
    modality: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    lr: float | None = None,
    batch_size: int = 4,
    shared_lr_scale: float = SHARED_LR_SCALE,
    replay: str | Path | None = "auto",
    replay_every: int = REPLAY_EVERY,
    keep_share: float = KEEP_SHARE,
    norm_stats: str = DEFAULT_NORM_STATS,
    reference: str | Path | None = None,
    progress: ProgressCallback | None = None,
) -> AdaptResult:
    """Adapt ``start`` to the labelled set ``data`` and write the run folder ``out`` (module docstring).

    Args:
        data: a built dataset, or any layout / manifest ``medglip build`` takes (built into ``out/data``).
        out: the run folder (new, or without a model in it).
        phrases: the phrases to adapt (default: every phrase the training cases mark).
        start: ``"shipped"`` or a run folder.
        method: ``auto`` (:func:`auto_method`), ``prompt``, ``head``, ``lora``, ``encoder``, ``encoder-prompt``
            or ``full``.
        budget_minutes: the training time; max_steps: also stop after this many steps.
        modality: the modality of the data (needed when the data does not say it).
        device, seed: where to compute; data order and augmentation.
        lr: the peak learning rate (default: :data:`METHOD_LR`); batch_size: images per step.
        shared_lr_scale: ``full`` only: the rate of the parts all modalities share, as a share of ``lr``
            (0: they stay fixed).
        replay: a built dataset of what the start model was trained on (never its test patients): every
            ``replay_every``-th step rehearses a batch of its ``train`` split, so the model forgets less;
            ``"auto"``: the training patients shipped with the shipped model (``medglip/samples/rehearsal``)
            when starting from it, else none; ``None`` or ``"none"``: no rehearsal.
        keep_share: the share of the trained change kept (:data:`KEEP_SHARE`; below 1 the weights move back
            toward the start model's, so it forgets less).
        norm_stats: ``update`` the image encoders' BatchNorm running statistics as training does, or ``keep``
            the start model's (:data:`DEFAULT_NORM_STATS`).
        reference: a built dataset whose ``test`` split (the start model's test patients) measures forgetting
            (default for the shipped start: its held-out sample patients, ``medglip/samples/heldout``).
        progress: ``callback(AdaptProgress)`` after every step (step, total, elapsed, remaining estimate, loss).

    Raises:
        AdaptError: an unknown method, a budget that is not positive, an output folder holding a model, a
            start that is not a run.
        medglip.train.adapt_data.AdaptDataError: no labelled case, a phrase the cases never mark, a modality
            the data does not say.
    """
    t_all = time.perf_counter()
    if method != "auto" and method not in METHODS:
        raise AdaptError(f"unknown adaptation method {method!r}; choose auto or one of {', '.join(METHODS)}")
    if not budget_minutes or budget_minutes <= 0:
        raise AdaptError(f"the budget must be a positive number of minutes, got {budget_minutes!r}")
    if not 0.0 < keep_share <= 1.0:
        raise AdaptError(f"keep_share must lie in (0, 1], got {keep_share!r}")
    if norm_stats not in NORM_STATS:
        raise AdaptError(f"norm_stats must be one of {', '.join(NORM_STATS)}, got {norm_stats!r}")
    if not 0.0 <= shared_lr_scale <= 1.0:
        raise AdaptError(f"shared_lr_scale must lie in [0, 1], got {shared_lr_scale!r}")
    if max_steps is not None and max_steps < 1:
        raise AdaptError(f"max_steps must be at least 1, got {max_steps}")
    if replay in ("auto", "none"):
        replay = (SHIPPED_REHEARSAL / "recipe.yaml") if replay == "auto" and start == "shipped" else None
    elif replay is not None and not (Path(replay) / "annotations" / "train.json").is_file():
        raise AdaptError(f"replay {replay}: not a built dataset (no annotations/train.json); build it first")
    if replay is not None and replay_every < 2:
        raise AdaptError(
            f"replay_every must be at least 2 (every step a rehearsal would never adapt), got {replay_every}"
        )
    out = Path(out)
    if (out / "model.safetensors").exists():
        raise AdaptError(f"{out} already holds a model: adapt into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    start_dir, start_ref = _start(start, out)
    base = load_checkpoint(start_dir)
    start_thresholds = dict(base.config.finding_thresholds)
    t0 = time.perf_counter()
    adapt_data = prepare(
        data, out, modality=modality, model_modalities=base.config.modalities, phrases=phrases, seed=seed
    )
    t_data = time.perf_counter() - t0
    resolved = auto_method(start_dir, adapt_data.modalities) if method == "auto" else method

    recipe = _recipe(start_dir)
    freeze = tuple(recipe.get("freeze") or ("text_encoder",))
    model, groups, adapters = _setup(copy.deepcopy(base), resolved, adapt_data, freeze, shared_lr_scale, norm_stats)
    cfg = _train_config(
        recipe,
        model,
        lr=lr or METHOD_LR[resolved],
        batch_size=max(1, min(batch_size, adapt_data.train_images)),
        seed=seed,
        device=device,
        ema_decay=None,
        init_from=str(start_dir),
        freeze=freeze if resolved == "full" else (),
        weight_decay=METHOD_WEIGHT_DECAY[resolved],
        max_steps=max_steps,
        # prompt tuning learns the named phrases' offsets: a phrase asked by a coarser term
        # would train nothing
        **({"coarse_phrase_prob": 0.0} if resolved in PROMPTED else {}),
    )
    dev = resolve_device(device, 0)
    model.to(dev)
    prompts = partial(build_prompts, tokenizer=model.tokenizer, max_len=model.config.max_text_len)
    # the adaptation set and the rehearsal set are read alike: medglip train's prompts and augmentation
    training_split = partial(
        GroundingDataset,
        split="train",
        image_size=int(model.config.image_size),
        prompt_builder=prompts,
        modalities=tuple(model.config.modalities),
        train=True,
        negatives_per_image=cfg.negatives_per_image,
        negative_vocabulary=cfg.negative_vocabulary,
        augment=cfg.augment_config(),
        input_config=model.config.input_config,
        with_masks=cfg.mask_weight > 0,
    )
    ds = training_split(adapt_data.dataset, seed=seed)
    rehearsal = (
        None
        if replay is None
        else training_split(
            build_complete(replay, out / "rehearsal") if Path(replay).name == "recipe.yaml" else Path(replay),
            seed=seed + 1,
        )
    )
    if rehearsal is not None and not len(rehearsal):
        raise AdaptError(f"replay {replay}: its train split holds no image")
    model.tasks = AuxiliaryTasks(
        contrastive_weight=cfg.contrastive_weight,
        contrastive_temperature=cfg.contrastive_temperature,
        mlm_weight=cfg.mlm_weight,
        mlm_probability=cfg.mlm_probability,
        mask_weight=cfg.mask_weight,
        mask_box_jitter=cfg.mask_box_jitter,
        relations=PhraseRelations(ds.ontology),
    )
    torch.manual_seed(seed)
    loop = run_steps(
        model,
        groups,
        ds,
        LoopSettings(
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            batch_size=cfg.batch_size,
            max_steps=max_steps,
            budget_s=60.0 * float(budget_minutes),
            grad_clip=cfg.grad_clip,
            seed=seed,
            device=str(dev),
            replay_every=replay_every if rehearsal is not None else 0,
        ),
        replay=rehearsal,
        log_path=out / "log.csv",
        on_step=progress,
    )

    if (out / "rehearsal").is_dir() and replay is not None and Path(replay).name == "recipe.yaml":
        shutil.rmtree(out / "rehearsal")  # built from the shipped samples above: nothing of the run
    low_rank = remove_lora(model, adapters)  # the encoder's own weights back exactly; the change kept as factors
    model = model.cpu().eval()
    low_rank = keep_share_of_change(model, base, low_rank, keep_share)
    save_checkpoint(model, out, base=(base, start_ref), low_rank=low_rank)
    record = json.loads((out / "config.json").read_text())["adapted_from"]
    start_ref = {**start_ref, "sha256": record["base_sha256"]}
    trained = sum(p.numel() for g in groups if g.lr_scale > 0 for p in g.params)
    del base, model
    _categories(start_dir, out, adapt_data, ds)
    atomic_write_json(
        out / "train_config.json",
        {
            "medglip_version": __version__,
            "config": dataclasses.asdict(cfg),
            "adapt": {
                "method": resolved,
                "method_asked": method,
                "budget_minutes": budget_minutes,
                "max_steps": max_steps,
                "steps": loop.steps,
                "phrases": list(adapt_data.phrases),
                "start": start_ref,
                "dataset": str(adapt_data.dataset),
                "lora": {"rank": LORA_RANK, "alpha": LORA_ALPHA} if resolved == "lora" else None,
                "shared_lr_scale": shared_lr_scale if resolved == "full" else None,
                "keep_share": keep_share,
                "norm_stats": norm_stats,
                "replay": None if replay is None else {"dataset": str(replay), "every": replay_every},
            },
        },
        indent=1,
    )
    card = adapt_data.dataset / "card.json"
    if card.is_file():
        shutil.copyfile(card, out / "dataset_card.json")

    t0 = time.perf_counter()
    calibration = _calibrate(out, adapt_data, start_thresholds)
    t_cal = time.perf_counter() - t0
    forgot: Forgetting | None
    if reference is None and start == "shipped":  # its held-out sample patients, shipped with it
        forgot = _forgetting_on_shipped_samples(out, start_dir)
    else:
        forgot = forgetting(out, reference, base=start_dir) if reference is not None else None
    weights = (out / "model.safetensors").stat().st_size
    info = {
        "medglip_version": __version__,
        "method": resolved,
        "method_asked": method,
        "start": start_ref,
        "phrases": list(adapt_data.phrases),
        "cases": list(adapt_data.cases),
        "val_cases": list(adapt_data.val_cases),
        "patients": list(adapt_data.patients),
        "modalities": list(adapt_data.modalities),
        "train_images": adapt_data.train_images,
        "train_boxes": adapt_data.train_boxes,
        "dataset": str(adapt_data.dataset),
        "built": adapt_data.built,
        "replay": None if replay is None else {"dataset": str(replay), "every": replay_every},
        "keep_share": keep_share,
        "norm_stats": norm_stats,
        "steps": loop.steps,
        "budget_minutes": budget_minutes,
        "budget_bound": loop.budget_bound,
        "first_loss": None if loop.first_loss is None else round(loop.first_loss, 4),
        "last_loss": None if loop.last_loss is None else round(loop.last_loss, 4),
        "trained_parameters": trained,
        "stored_tensors": record["stored_tensors"],
        "low_rank_tensors": record["low_rank_tensors"],
        "weights_bytes": weights,
        "calibration": calibration,
        "times_s": {
            "data": round(t_data, 1),
            "train": round(loop.seconds, 1),
            "calibrate": round(t_cal, 1),
            "total": round(time.perf_counter() - t_all, 1),
        },
    }
    write_card(out, info, forgot)
    return AdaptResult(
        run=out,
        method=resolved,
        steps=loop.steps,
        seconds=loop.seconds,
        phrases=adapt_data.phrases,
        thresholds=calibration["thresholds"],
        calibration_split=adapt_data.calibration_split,
        cases=adapt_data.cases,
        weights_bytes=weights,
        forgetting=forgot,
    )
