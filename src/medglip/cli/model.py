"""Model commands: train, adapt, lopo, calibrate, pack, eval, heldout, source-report, vqa-eval."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from rich.table import Table

from .app import command, console
from .options import (
    CHECKPOINT,
    CONTEXT,
    CONTRAST,
    FREEZE,
    MASK_W,
    MLM,
    PRESET,
    load_grounder,
    phrase_option,
    run_dir,
    train_config,
)
from .output import print_rows
from .progress import adapt_progress, train_progress

_SOURCE_WEIGHT = typer.Option(
    [], "--source-weight", help="SOURCE=W: a source's sampling weight (overrides the recipe's); repeatable."
)
_MODALITY_WEIGHT = typer.Option(
    [], "--modality-weight", help="MODALITY=W multiplies its images' sampling weights; repeatable."
)


@command()
def train(
    dataset: Path = typer.Argument(..., help="Built dataset folder (medglip build output)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoint, logs, loss curve."),
    preset: str = PRESET,
    max_steps: int | None = typer.Option(None, help="Optimizer steps (default 1000 unless --epochs)."),
    epochs: int | None = typer.Option(None, help="Passes over the training split."),
    batch_size: int = typer.Option(8, help="Images per process per step."),
    lr: float = typer.Option(1e-4, help="Peak learning rate (text encoder: lr × text-lr-factor)."),
    image_size: int | None = typer.Option(None, help="Input size (long side); default: the preset's."),
    context_slices: int = CONTEXT,
    init_from: Path | None = typer.Option(None, help="Fine-tune from this run's weights."),
    checkpoint_every: int = typer.Option(500, help="Resumable checkpoint every N steps."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1 (under torchrun the local rank picks)."),
    amp: str = typer.Option("auto", help="auto (bf16/fp16 on CUDA, none on CPU), bf16, fp16, none."),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in --out."),
    num_workers: int = typer.Option(0, help="DataLoader workers per process."),
    source_weight: list[str] = _SOURCE_WEIGHT,
    modality_weight: list[str] = _MODALITY_WEIGHT,
    copy_paste: float | None = typer.Option(None, help="Lesion copy-paste probability (default 0.5)."),
    elastic: float = typer.Option(0.0, help="Elastic deformation probability (image, masks and boxes together)."),
    coarse_phrases: float = typer.Option(
        0.0,
        help="Probability that a lesion is asked by a coarser lesion term "
        "of the ontology ('lower-grade glioma' as 'brain tumor').",
    ),
    contrastive_weight: float = CONTRAST,
    mlm_weight: float = MLM,
    mask_weight: float = MASK_W,
    freeze: list[str] = FREEZE,
) -> None:
    """Train (or fine-tune) the grounding model; a progress bar with elapsed and remaining time on a terminal.
    Multi-GPU / multi-node: torchrun ... -m medglip train ...

    Example: medglip train out/pyradiomics --out runs/pyr --image-size 256 --max-steps 600"""
    from ..train import train as run_train

    more = {"copy_paste_prob": copy_paste} if copy_paste is not None else {}
    cfg = train_config(
        preset=preset,
        image_size=image_size,
        context_slices=context_slices,
        source_weight=source_weight,
        modality_weight=modality_weight,
        freeze=freeze,
        max_steps=max_steps,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        device=device,
        seed=seed,
        init_from=str(init_from) if init_from else None,
        checkpoint_every=checkpoint_every,
        amp=amp,
        num_workers=num_workers,
        elastic_prob=elastic,
        coarse_phrase_prob=coarse_phrases,
        contrastive_weight=contrastive_weight,
        mlm_weight=mlm_weight,
        mask_weight=mask_weight,
        **more,
    )
    run = run_train(dataset, out, cfg, resume=resume, progress=train_progress())
    console.print(
        f"[green]trained[/]: {run} (loss curve {run / 'loss.png'}; the dataset's card: {run / 'dataset_card.json'})",
        highlight=False,
    )


@command()
def adapt(
    data: Path = typer.Argument(
        ..., help="A built dataset, or a folder `medglip build` takes (then built into RUN/data)."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="The run folder (new): what changed against the start model, its "
        "thresholds and card (ADAPT_CARD.md); every command loads it with --checkpoint RUN.",
    ),
    phrase: list[str] | None = phrase_option(
        "A phrase to adapt; repeatable (default: every phrase the training cases mark)."
    ),
    start: str = typer.Option(
        "shipped", "--from", help="The start model: shipped, or a run folder (medglip train or adapt output)."
    ),
    method: str = typer.Option("auto", help="What trains: {adapt_methods}."),
    budget_minutes: float | None = typer.Option(None, help="Training time in minutes (default {adapt_budget})."),
    max_steps: int | None = typer.Option(None, min=1, help="Also stop after this many steps."),
    shared_lr_scale: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="full only: the rate of the parts all modalities share, as a share of the rate (default {adapt_shared}).",
    ),
    replay: str = typer.Option(
        "auto",
        help="What to rehearse so the model forgets less: a built dataset of what the start model was "
        "trained on (never its test patients); auto: the training patients shipped with the shipped model "
        "when adapting it; none.",
    ),
    replay_every: int | None = typer.Option(
        None, min=2, help="With --replay: every n-th step rehearses one of its batches (default {adapt_replay_every})."
    ),
    keep_share: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="The share of the trained change kept; the rest goes back to the start model, so it forgets "
        "less (default {adapt_keep_share}).",
    ),
    norm_stats: str | None = typer.Option(
        None,
        help="The image encoders' BatchNorm statistics: update (as training does) or keep (the start "
        "model's) (default {adapt_norm_stats}).",
    ),
    modality: str | None = typer.Option(None, help="The data's modality ({modalities}) when the data does not say it."),
    reference: Path | None = typer.Option(
        None, help="A built dataset whose test split (the start model's test patients) measures forgetting."
    ),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1."),
    seed: int = typer.Option(0, help="Seed of the data order and augmentation."),
) -> None:
    """Adapt the shipped model (or a run) to a small labelled set in minutes: a progress bar with the time left
    of the budget, then the method, steps, time, run folder and each adapted phrase's calibrated threshold.

    Example: medglip adapt src/medglip/samples/pyradiomics --out runs/adapted -p "brain tumor" --budget-minutes 5"""
    from ..train.adapt import DEFAULT_BUDGET_MINUTES, DEFAULT_NORM_STATS, KEEP_SHARE, REPLAY_EVERY, SHARED_LR_SCALE
    from ..train.adapt import adapt as run_adapt

    budget = DEFAULT_BUDGET_MINUTES if budget_minutes is None else budget_minutes
    with adapt_progress() as progress:
        result = run_adapt(
            data,
            out=out,
            phrases=phrase or None,
            start=start,
            method=method,
            max_steps=max_steps,
            shared_lr_scale=SHARED_LR_SCALE if shared_lr_scale is None else shared_lr_scale,
            replay=replay,
            replay_every=REPLAY_EVERY if replay_every is None else replay_every,
            keep_share=KEEP_SHARE if keep_share is None else keep_share,
            norm_stats=DEFAULT_NORM_STATS if norm_stats is None else norm_stats,
            modality=modality,
            device=device,
            seed=seed,
            reference=reference,
            progress=progress,
            budget_minutes=budget,
        )
    console.print(
        f"[green]adapted[/] {', '.join(result.phrases)}: method {result.method}, {result.steps} step(s) in "
        f"{result.seconds:.1f} s; run folder {result.run} (load it with --checkpoint {result.run}; its card: "
        f"{result.run / 'ADAPT_CARD.md'})",
        highlight=False,
        soft_wrap=True,
    )
    print_rows(("phrase", "threshold"), [(p, f"{t:.2f}") for p, t in result.thresholds.items()])
    console.print(f"thresholds chosen on the {result.calibration_split} split", highlight=False)
    if result.forgetting is not None:
        from ..train.adapt_card import forgetting_text

        plain = forgetting_text(result.forgetting).replace("**", "").replace("`", "")  # the card's words, unmarked
        console.print(f"forgetting: {plain}", highlight=False, markup=False)


@command()
def lopo(
    dataset: Path = typer.Argument(..., help="Built dataset; its train split holds the training patients."),
    out: Path = typer.Option(..., "--out", help="Folder: folds/, lopo.json, lopo.md, final/ (the final run)."),
    preset: str = PRESET,
    max_steps: int | None = typer.Option(600),
    batch_size: int = typer.Option(4),
    lr: float = typer.Option(3e-4),
    image_size: int | None = typer.Option(256),
    context_slices: int = CONTEXT,
    warmup_steps: int = typer.Option(100, help="Linear learning-rate warm-up steps."),
    copy_paste: float = typer.Option(0.5, help="Lesion copy-paste probability."),
    source_weight: list[str] = typer.Option([], "--source-weight", help="SOURCE=W sampling weight; repeatable."),
    modality_weight: list[str] = typer.Option([], "--modality-weight", help="MODALITY=W; repeatable."),
    elastic: float = typer.Option(0.0, help="Elastic deformation probability (image, masks and boxes together)."),
    device: str = typer.Option("auto"),
    seed: int = typer.Option(0),
    final: bool = typer.Option(True, help="Also train the final model on every training case."),
    contrastive_weight: float = CONTRAST,
    mlm_weight: float = MLM,
    mask_weight: float = MASK_W,
    freeze: list[str] = FREEZE,
    masks: str = typer.Option("none", help="Also the folds' mask Dice: head, medsam, auto or none."),
) -> None:
    """Leave-one-patient-out on the training patients: per-fold metrics, calibrated score thresholds, and
    the final model with them in its config (lung2 / brain2 stay held out: `medglip heldout` measures them).

    Example: medglip lopo data/ds-all --out runs/heldout --max-steps 400 --image-size 256 --warmup-steps 40 --mask-weight 0"""  # noqa: E501  (the example is one line: help shows it, tests/test_docs.py runs it)
    from ..protocol import lopo as run_lopo

    cfg = train_config(
        preset=preset,
        image_size=image_size,
        context_slices=context_slices,
        source_weight=source_weight,
        modality_weight=modality_weight,
        freeze=freeze,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        device=device,
        seed=seed,
        copy_paste_prob=copy_paste,
        warmup_steps=warmup_steps,
        elastic_prob=elastic,
        contrastive_weight=contrastive_weight,
        mlm_weight=mlm_weight,
        mask_weight=mask_weight,
    )
    summary = run_lopo(dataset, out, cfg, final=final, masks=masks)
    console.print((out / "lopo.md").read_text())
    console.print(f"thresholds {summary['thresholds']}; final run: {summary.get('final_run', '-')}")


@command()
def calibrate(
    run: Path = typer.Argument(..., help="A run folder (medglip train output); its config.json gets the thresholds."),
    dataset: Path = typer.Argument(..., help="The built dataset it trained on; its validation split is scored."),
    out: Path = typer.Option(Path("calibration"), help="Folder for calibration.json and the validation metrics."),
    split: str = typer.Option("val", help="The split thresholds are chosen on (never the test patients)."),
    max_fpr: float = typer.Option(0.1, help="Absent-phrase false-positive budget per phrase (1: Youden's J)."),
) -> None:
    """Per-phrase score thresholds chosen on validation patients, written into the run's config.json.

    Example: medglip calibrate runs/v1 data/v1 --out runs/v1-calibration"""
    from ..protocol import calibrate as run_calibrate

    summary = run_calibrate(run, dataset, out, split=split, max_fpr=None if max_fpr >= 1 else max_fpr)
    console.print(", ".join(f"{p} {t:.2f}" for p, t in summary["thresholds"].items()))


@command()
def pack(
    run: Path = typer.Argument(..., help="A run folder (medglip train output, calibrated)."),
    out: Path = typer.Argument(..., help="Folder for the compact model (e.g. src/medglip/weights/medglip-v1)."),
) -> None:
    """Store a run compactly: only the tensors training changed, in float16, against the packages' weights.

    Example: medglip pack runs/v1 src/medglip/weights/medglip-v1"""
    from ..model.shipped import pack_run

    written = pack_run(run, out)
    size = sum(f.stat().st_size for f in written.rglob("*") if f.is_file())
    console.print(f"[green]packed[/]: {written} ({size / 1e6:.1f} MB)")


@command(name="eval")
def eval_(
    dataset: Path = typer.Argument(..., help="Built dataset folder."),
    checkpoint: Path | None = CHECKPOINT,
    split: str = typer.Option("test"),
    json_out: Path = typer.Option(
        Path("metrics.json"), "--json", help="Metrics JSON (Markdown and PR curve beside it)."
    ),
    masks: str = typer.Option(
        "none",
        help="Also masks (mask AP, Dice): head (the checkpoint's mask head), medsam "
        "(LiteMedSAM given each box), auto, none.",
    ),
    phrases: str = typer.Option("case", help="Absent phrases queried per image: case, modality, all."),
    score_threshold: float | None = typer.Option(
        None,
        help="Score above which an absent phrase counts as a false "
        "positive (default: the checkpoint's calibrated threshold).",
    ),
    max_per_phrase: int = typer.Option(100, help="Boxes kept per (image, phrase) (and refined into masks)."),
    device: str = typer.Option("cpu"),
) -> None:
    """COCO AP/AP50/AP75, Acc@0.5, mIoU, Dice and absent-phrase FP rate, by modality and hierarchy level.

    Example: medglip eval medglip-demo/dataset --json eval/metrics.json --masks head"""
    from ..evaluate import evaluate, predict_dataset
    from ..evaluate.run import PhraseSet

    g, masks_how = load_grounder(checkpoint, device=device, masks=masks)
    # predict_dataset checks the value itself (an error naming it)
    preds, queries = predict_dataset(
        g, dataset, split=split, phrases=cast(PhraseSet, phrases), masks=masks_how, max_per_phrase=max_per_phrase
    )
    out_dir = json_out.parent if str(json_out.parent) else Path(".")
    metrics = evaluate(
        dataset,
        preds,
        split=split,
        queries=queries,
        out=out_dir,
        score_threshold=g.threshold_for("*") if score_threshold is None else score_threshold,
    )
    if json_out.name != "metrics.json":
        (out_dir / "metrics.json").replace(json_out)
    o = metrics["overall"]
    console.print(
        " ".join(
            f"{k}={o[k]:.3f}" if isinstance(o.get(k), float) else f"{k}={o.get(k)}"
            for k in ("AP", "AP50", "AP75", "acc50", "miou", "dice", "absent_fp_rate")
        )
    )
    console.print(f"metrics: {json_out} (+ metrics.md, pr_curve.png)")


@command()
def heldout(
    dataset: Path = typer.Argument(..., help="Built dataset; its test split holds the held-out patients."),
    checkpoint: Path | None = CHECKPOINT,
    out: Path = typer.Option(Path("heldout"), help="Folder for heldout.json / heldout.md and per-patient files."),
    split: str = typer.Option("test"),
    masks: str = typer.Option(
        "none", help="Also masks (mask Dice): head (the checkpoint's mask head), medsam (LiteMedSAM), auto or none."
    ),
) -> None:
    """Per held-out patient: Acc@0.5, mIoU, AP50, mask Dice, absent-phrase FP rate and VQA vs its ceiling.

    Example: medglip heldout data/ds-all --checkpoint runs/heldout/final --masks medsam"""
    from ..protocol import heldout_report

    heldout_report(run_dir(checkpoint), dataset, out, split=split, masks=masks)
    console.print((out / "heldout.md").read_text())


@command(name="source-report")
def source_report_cmd(
    dataset: Path = typer.Argument(..., help="A recipe dataset; its test split holds each source's test patients."),
    checkpoint: Path | None = CHECKPOINT,
    out: Path = typer.Option(Path("sources"), help="Folder for sources.json / sources.md and per-source files."),
    split: str = typer.Option("test"),
    masks: str = typer.Option("auto", help="Masks for mask Dice: head, medsam, auto or none."),
) -> None:
    """Per source: Acc@0.5, mIoU, AP50, mask Dice, absent-phrase FP rate and VQA vs its ceiling.

    Example: medglip source-report runs/data-v1 --checkpoint runs/run-v1 --out runs/test-v1"""
    from ..protocol import source_report

    source_report(run_dir(checkpoint), dataset, out, split=split, masks=masks)
    console.print((out / "sources.md").read_text())


@command(name="vqa-eval")
def vqa_eval(
    dataset: Path = typer.Argument(..., help="Built dataset folder."),
    checkpoint: Path | None = CHECKPOINT,
    split: str = typer.Option("test"),
    out: Path = typer.Option(Path("vqa-eval"), help="Folder for vqa_metrics.json / vqa_metrics.md."),
    score_threshold: float | None = typer.Option(None, help="Default: the checkpoint's calibrated thresholds."),
    device: str = typer.Option("cpu"),
) -> None:
    """VQA accuracy on questions generated from a dataset's ground truth: predicted grounding vs the ceiling.

    Example: medglip vqa-eval medglip-demo/dataset --out vqa-eval"""
    from ..vqa import evaluate_vqa

    g, _ = load_grounder(checkpoint, device=device)
    metrics = evaluate_vqa(g, dataset, split=split, score_threshold=score_threshold, out=out)
    table = Table("kind", "questions", "accuracy (predicted)", "ceiling (ground-truth boxes)")
    for kind, m in sorted(metrics["by_kind"].items()):
        table.add_row(kind, str(m["n"]), f"{m['accuracy_predicted']:.1%}", f"{m['accuracy_ground_truth']:.1%}")
    o = metrics["overall"]
    table.add_row(
        "all", str(metrics["n_questions"]), f"{o['accuracy_predicted']:.1%}", f"{o['accuracy_ground_truth']:.1%}"
    )
    console.print(table)
    console.print(f"metrics: {out / 'vqa_metrics.json'} (+ vqa_metrics.md)")
