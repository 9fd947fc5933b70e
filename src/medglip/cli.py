"""The ``medglip`` command: one sub-command per pipeline stage, each a thin wrapper over the Python API."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .errors import MedglipError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Medical image grounding (Med-GLIP): build datasets, show them, and more.")
console = Console(stderr=True)
_WINDOW = typer.Option(None, "--window", help="CT window of the picture (overlay): soft_tissue (default), lung, bone, "
                       "mediastinum, liver, brain or LOW,HIGH in HU. The model's input does not depend on it.")
_MASKS = typer.Option("none", "--masks", help="Masks per box: head (the checkpoint's own mask head), medsam (LiteMedSAM "
                      "given each box), auto (head when the checkpoint has one, else LiteMedSAM) or none.")
# the defaults of TrainConfig (tests/test_glipv2.py checks that they agree)
_CONTRAST = typer.Option(0.0, help="Weight of GLIPv2's inter-image region–word contrastive loss (0: off).")
_MLM = typer.Option(0.0, help="Weight of masked language modelling on the prompts (0: off; > 0 adds an MLM head).")
_MASK_W = typer.Option(1.0, help="Weight of the mask head's loss on the dataset's masks (0: no mask head).")
_FREEZE = typer.Option([], "--freeze", help="Keep a model part as it starts: image_backbones (the pretrained image "
                       "encoders, GLIP's few-shot setting) or text_encoder; repeatable.")
_CONTEXT = typer.Option(0, min=0, help="2.5D input: slices k-N, k, k+N of a volume as the three channels (0: off); the dataset must be built with the same --context-slices.")


def _mask_option(value: str):
    from .infer import mask_option

    return mask_option(value)


_CHECKPOINT = typer.Option(None, "--checkpoint", help="A run folder (medglip train output); default: the model "
                           "medglip ships.")


def _run_dir(checkpoint: Optional[Path]) -> Path:
    """``--checkpoint``, or the shipped model's folder when it is not given."""
    from .model.shipped import shipped_run

    return checkpoint if checkpoint is not None else shipped_run()


def _setup_logging(verbose: bool) -> None:
    try:  # the CLI shows its own progress; transformers' per-load bars are noise here
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False, show_time=False)], force=True)


def _fail(msg: str, code: int = 2) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(msg)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _print_rows(header: tuple[str, ...], rows: list[tuple[str, ...]], table: Table) -> None:
    """``table`` on a terminal; full rows as tab-separated values (a header line first) when stdout is a
    pipe or a file, where a table would be cut to 80 columns ("Tota…"), as git and kubectl do."""
    if _stdout_is_terminal():
        Console().print(table)
        return
    for row in (header, *rows):
        typer.echo("\t".join(" ".join(str(cell).split()) for cell in row))


def _load_mapping(path: Optional[Path]) -> dict[str, dict[str, str]]:
    if path is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        _fail(f"{path}: cannot read label mapping: {exc}")
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        _fail(f"{path}: label mapping must be {{source: {{source_label: phrase}}}} (use '*' for every source)")
    return data


@app.command()
def build(
    source: Path = typer.Argument(..., help="Dataset root (nnU-Net v2 raw, MSD task, TotalSegmentator, Kvasir-SEG, ISIC 2018, BUSI, COCO, manifest)."),
    out: Path = typer.Argument(..., help="Output folder of the grounding dataset."),
    layout: str = typer.Option("auto", help="Source layout: auto, nnunetv2, msd, totalsegmentator, kvasir, isic2018, busi, coco, manifest."),
    modality: Optional[str] = typer.Option(None, help="Force a modality (CT, MR, XR, US, ENDO, DERM, PATH) on every case."),
    plane: str = typer.Option("axial", help="Slicing plane of 3D volumes: axial, coronal, sagittal."),
    ct_windows: str = typer.Option("lung,soft_tissue,bone", help="The three CT windows stacked as the input channels of CT images (names or LOW:HIGH in HU); a model trains only on data built with its own."),
    context_slices: int = typer.Option(0, min=0, help="2.5D input: write each grey volume slice k with slices k-N and k+N as its first and last channels (0: off); a model trains only on data built with its own."),
    display_window: str = typer.Option("auto", "--display-window", "--ct-window", help="CT window `medglip show` draws: auto (by the labelled structures), lung, mediastinum, soft_tissue, liver, brain, bone, or LOW,HIGH in HU. Pictures only."),
    channels: str = typer.Option("first", help="Multi-channel volumes: 'first' channel or 'all' channels."),
    min_area: float = typer.Option(4.0, help="Drop mask components smaller than this many mm²."),
    min_pixels: int = typer.Option(4, help="Drop mask components with fewer pixels."),
    negative_ratio: float = typer.Option(0.2, help="Slices without findings sampled per slice with findings."),
    split: str = typer.Option("0.8,0.1,0.1", help="train,val,test fractions of cases."),
    test_case: list[str] = typer.Option([], help="Case id (or source/case_id) forced into the test split; repeatable."),
    seed: int = typer.Option(0, help="Seed of the case split and of negative sampling."),
    label_map: Optional[Path] = typer.Option(None, help="YAML/JSON {source: {source_label: phrase}} applied before the ontology."),
    include_unlabeled: bool = typer.Option(False, help="Also slice cases that have no label file."),
    workers: int = typer.Option(1, min=1, help="Worker processes (cases in parallel)."),
    shard: Optional[str] = typer.Option(None, help="Only build shard K/N of the cases (K 0-based); merge when all are done."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build a hierarchical grounding dataset (COCO + ODVG + masks + card). Re-run the same command to resume.

    Example: medglip build src/medglip/samples/pyradiomics out/pyradiomics --negative-ratio 0.5 --split 1,0,0"""
    from .dataset import BuildConfig, Shard
    from .dataset import build as run_build

    _setup_logging(verbose)
    try:
        ratios = tuple(float(x) for x in split.split(","))
        if len(ratios) != 3:
            raise ValueError
    except ValueError:
        _fail(f"--split must be three comma-separated fractions like 0.8,0.1,0.1, got {split!r}")
    try:
        from .dataset.config import mapping_to_tuple
        from .modality import normalise_modality

        from .core.pipeline import InputConfig

        windows = InputConfig.from_window_names(tuple(w.strip().replace(":", ",") for w in ct_windows.split(",")))
        config = BuildConfig(
            source=str(source), layout=layout, modality=normalise_modality(modality) if modality else None,
            plane=plane, ct_windows=windows.ct_windows, context_slices=context_slices, display_window=display_window, channels=channels, min_area_mm2=min_area, min_pixels=min_pixels,
            negative_ratio=negative_ratio, split_ratios=ratios, test_cases=tuple(test_case), seed=seed,
            label_mapping=mapping_to_tuple(_load_mapping(label_map)), include_unlabeled=include_unlabeled)
        shard_obj = Shard.parse(shard) if shard else None
    except (ValueError, MedglipError) as exc:
        _fail(str(exc))
    if not source.exists():
        _fail(f"{source}: no such dataset folder")
    columns = (TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("cases", total=None, last="")

        def on_start(n: int) -> None:
            progress.update(task, total=n)

        def on_progress(key: str, err: Optional[str]) -> None:
            progress.update(task, advance=1, last=f"[red]failed {key}" if err else key)

        try:
            result = run_build(config, out, workers=workers, shard=shard_obj, on_progress=on_progress, on_start=on_start)
        except MedglipError as exc:
            _fail(str(exc))
    console.print(f"built {len(result.done)} case(s), {len(result.skipped)} already done, "
                  f"{len(result.failed)} failed, of {result.n_cases}")
    if result.merged:
        m = result.merged
        console.print(f"[green]dataset ready[/] in {out}: images {m.images}, annotations {m.annotations}, cases {m.cases}")
        if m.unmapped:
            console.print(f"[yellow]labels not in the ontology (kept as written):[/] {', '.join(m.unmapped)}")
    elif result.pending:
        console.print(f"{result.pending} case(s) of other shards remain: run `medglip merge {out}` when all shards finished")
    if result.failed or (result.merged and result.merged.failures):
        console.print(f"[red]failures[/] (see {out / 'build_report.json'}):")
        for key, reason in sorted(result.failed.items()):
            console.print(f"  {key}: {reason}")
        raise typer.Exit(1)


@app.command()
def merge(out: Path = typer.Argument(..., help="A build output folder whose shards have all finished.")) -> None:
    """Merge the per-case records of a (sharded) build into annotations, card and report (once every
    `--shard K/N` of `medglip build` or `medglip build-recipe` has finished).

    Example: medglip merge out/heldout"""
    from .dataset import merge as run_merge

    _setup_logging(False)
    if not (out / "build_config.json").exists():
        _fail(f"{out}: not a medglip build folder (no build_config.json)")
    try:
        m = run_merge(out)
    except MedglipError as exc:
        _fail(str(exc))
    console.print(f"[green]merged[/] {out}: images {m.images}, annotations {m.annotations}")
    if m.failures:
        raise typer.Exit(1)


@app.command()
def show(
    dataset: Path = typer.Argument(..., help="A built dataset folder."),
    out: Path = typer.Option(Path("show"), help="Folder for the PNGs."),
    split: str = typer.Option("train"),
    n: int = typer.Option(8, help="How many images (seeded sample)."),
    case: list[str] = typer.Option([], help="Only these case ids; repeatable."),
    phrase: list[str] = typer.Option([], help="Only images with these phrases; repeatable."),
    image_id: list[int] = typer.Option([], help="These image ids; repeatable."),
    negatives: bool = typer.Option(False, help="Include images without findings."),
    seed: int = typer.Option(0),
) -> None:
    """Draw images of a built dataset with their boxes, masks and phrases to PNG.

    Example: medglip show medglip-demo/dataset --split test --n 12 --out pics"""
    from .show import show as run_show

    try:
        paths = run_show(dataset, out, split=split, image_ids=image_id or None, case_ids=case or None,
                         phrases=phrase or None, n=n, positives_only=not negatives, seed=seed)
    except MedglipError as exc:
        _fail(str(exc))
    for p in paths:
        console.print(str(p))


@app.command()
def resolve(
    name: list[str] = typer.Argument(..., help="Source label names, e.g. kidney_left GTVp 'enhancing tumor'."),
    source: Optional[str] = typer.Option(None, help="Source dataset name (for per-source meanings)."),
    context: list[str] = typer.Option([], help="Other label names of the same case."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show how label names map onto the ontology (phrase, hierarchy, level, laterality).

    Example: medglip resolve gluteus_maximus_left Kidney_R GTVp "enhancing tumor" --source BraTS2021"""
    from .ontology import load_ontology

    onto = load_ontology()
    rows = []
    for nm in name:
        r = onto.resolve(nm, source=source, context=tuple(context) or tuple(name))
        rows.append({"name": nm, "phrase": r.phrase, "class": r.class_name, "region": r.region, "level": r.level,
                     "laterality": r.laterality, "hierarchy": list(r.hierarchy), "mapped": r.mapped})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    header = ("source name", "phrase", "level", "class", "region", "hierarchy")
    table = Table(*header)
    for r in rows:
        table.add_row(r["name"], r["phrase"] if r["mapped"] else f"[yellow]{r['phrase']} (unmapped)",
                      r["level"], r["class"], r["region"], " › ".join(r["hierarchy"]))
    _print_rows(header, [(r["name"], r["phrase"] if r["mapped"] else f"{r['phrase']} (unmapped)", r["level"],
                          r["class"], r["region"], " › ".join(r["hierarchy"])) for r in rows], table)


@app.command()
def train(
    dataset: Path = typer.Argument(..., help="Built dataset folder (medglip build output)."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoint, logs, loss curve."),
    preset: str = typer.Option("default", help="Model preset: tiny, default, default-medsam (LiteMedSAM's TinyViT "
                               "image encoders, 256 px), glip-t, glip-t-hub."),
    max_steps: Optional[int] = typer.Option(None, help="Optimizer steps (default 1000 unless --epochs)."),
    epochs: Optional[int] = typer.Option(None, help="Passes over the training split."),
    batch_size: int = typer.Option(8, help="Images per process per step."),
    lr: float = typer.Option(1e-4, help="Peak learning rate (text encoder: lr × text-lr-factor)."),
    image_size: Optional[int] = typer.Option(None, help="Input size (long side); default: the preset's."),
    context_slices: int = _CONTEXT,
    init_from: Optional[Path] = typer.Option(None, help="Fine-tune from this run's weights."),
    checkpoint_every: int = typer.Option(500, help="Resumable checkpoint every N steps."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1 (under torchrun the local rank picks)."),
    amp: str = typer.Option("auto", help="auto (bf16/fp16 on CUDA, none on CPU), bf16, fp16, none."),
    seed: int = typer.Option(0),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in --out."),
    num_workers: int = typer.Option(0, help="DataLoader workers per process."),
    source_weight: list[str] = typer.Option(
        [], "--source-weight", help="SOURCE=W: a source's sampling weight (overrides the recipe's); repeatable."),
    modality_weight: list[str] = typer.Option(
        [], "--modality-weight", help="MODALITY=W multiplies its images' sampling weights; repeatable."),
    copy_paste: Optional[float] = typer.Option(None, help="Lesion copy-paste probability (default 0.5)."),
    elastic: float = typer.Option(0.0, help="Elastic deformation probability (image, masks and boxes together)."),
    coarse_phrases: float = typer.Option(0.0, help="Probability that a lesion is asked by a coarser lesion term "
                                         "of the ontology ('lower-grade glioma' as 'brain tumor')."),
    contrastive_weight: float = _CONTRAST, mlm_weight: float = _MLM, mask_weight: float = _MASK_W,
    freeze: list[str] = _FREEZE,
) -> None:
    """Train (or fine-tune) the grounding model. Multi-GPU / multi-node: torchrun ... -m medglip train ...

    Example: medglip train out/pyradiomics --out runs/pyr --image-size 256 --max-steps 600"""
    from .train import TrainConfig
    from .train import train as run_train

    _setup_logging(False)
    overrides = _model_overrides(image_size, context_slices)
    try:
        more = {"copy_paste_prob": copy_paste} if copy_paste is not None else {}
        cfg = TrainConfig(preset=preset, max_steps=max_steps, epochs=epochs, batch_size=batch_size, lr=lr,
                          model_overrides=overrides, init_from=str(init_from) if init_from else None,
                          checkpoint_every=checkpoint_every, device=device, amp=amp, seed=seed,
                          num_workers=num_workers, source_weights=_weights(source_weight, "--source-weight"),
                          modality_weights=_weights(modality_weight, "--modality-weight"), elastic_prob=elastic,
                          coarse_phrase_prob=coarse_phrases, **more,
                          contrastive_weight=contrastive_weight, mlm_weight=mlm_weight,
                          mask_weight=mask_weight, freeze=tuple(freeze))
        run = run_train(dataset, out, cfg, resume=resume)
    except (MedglipError, ValueError) as exc:
        _fail(str(exc))
    console.print(f"[green]trained[/]: {run} (loss curve {run / 'loss.png'})")


@app.command()
def ground(
    image: Path = typer.Argument(..., help="PNG/JPEG/TIFF, DICOM, or a NIfTI/NRRD volume / DICOM series folder "
                                           "(then 3D grounding)."),
    phrase: list[str] = typer.Option(..., "--phrase", "-p", help="Phrase to ground; repeatable."),
    checkpoint: Optional[Path] = _CHECKPOINT,
    modality: Optional[str] = typer.Option(None, help="CT, MR, XR, US, ENDO, DERM, PATH (default: DICOM tag or classifier)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the result as JSON."),
    overlay: Optional[Path] = typer.Option(None, help="Write a PNG with the boxes (2D inputs)."),
    masks: str = _MASKS,
    out: Optional[Path] = typer.Option(
        None, "--out", help="Write the masks as files viewers open (implies --masks auto): volumes labels.nii.gz + "
                            "labels.json (+ seg.dcm, sr.dcm for DICOM), 2D images masks.png + labels.json (+ seg.dcm)."),
    outputs: Optional[str] = typer.Option(
        None, help="With --out: which of nifti, seg, sr, png, volume (comma separated; default: all the input allows, "
                   "without volume)."),
    max_voxels: Optional[int] = typer.Option(None, help="With --out: refuse label maps above this many voxels "
                                                        "(default 268,435,456)."),
    score_threshold: Optional[float] = typer.Option(None, help="Default: the checkpoint's calibrated threshold of each phrase."),
    top_k: Optional[int] = typer.Option(None, help="Boxes kept per phrase (2D images)."),
    window: Optional[str] = _WINDOW,
    device: str = typer.Option("cpu"),
) -> None:
    """Find the regions named by phrases in an image (or a volume); --out writes NIfTI / DICOM-SEG / SR masks.

    Example: medglip ground src/medglip/samples/pyradiomics/brain2_image.nrrd -p "brain tumor" --modality MR --out brain2-masks"""
    from .infer import Grounder, VolumeGroundingResult

    _setup_logging(False)
    if not image.exists():
        _fail(f"{image}: no such file")
    try:
        checkpoint = _run_dir(checkpoint)
        options = _export_options(outputs, max_voxels, checkpoint) if out is not None else None
        refiner, masks = _mask_option("auto" if out is not None and masks.strip().lower() == "none" else masks)
        g = Grounder.from_pretrained(checkpoint, device=device, refiner=refiner)
        res = g.ground_file(image, phrase, modality=modality, masks=masks,
                            score_threshold="calibrated" if score_threshold is None else score_threshold,
                            top_k=top_k)
        payload = res.to_json()
        for note in res.untrained:
            console.print(f"[yellow]untrained[/]: {note}")
        if isinstance(res, VolumeGroundingResult):
            for obj in res.objects:
                console.print(f"{obj.phrase}: score {obj.score:.2f}, slices {obj.slices[0]}–{obj.slices[1]}, "
                              f"voxel box {obj.voxel_box.tolist()}, world box (mm) {np.round(obj.world_box, 1).tolist()}")
        else:
            for gr in res.groundings:
                best = f"{gr.scores[0]:.2f} at {np.round(gr.boxes[0], 1).tolist()}" if len(gr) else "no box"
                console.print(f"{gr.phrase}: {best}")
            if overlay:
                from .infer.overlay import draw_result

                draw_result(res, window=window).save(overlay)
                console.print(f"overlay: {overlay}")
        if out is not None:
            from .export import export_result

            bundle = export_result(res, options=options)
            paths = bundle.write(out)
            payload["files"] = {name: str(p) for name, p in paths.items()}
            for note in bundle.notes:
                console.print(f"[yellow]note[/]: {note}")
            console.print(f"[green]wrote[/] {', '.join(str(p) for p in paths.values())}")
    except MedglipError as exc:
        _fail(str(exc))
    if json_out:
        json_out.write_text(json.dumps(payload, indent=1))
    else:
        typer.echo(json.dumps(payload))


def _export_options(outputs: Optional[str], max_voxels: Optional[int], checkpoint: Path):
    """The :class:`~medglip.export.ExportOptions` of ``--outputs`` / ``--max-voxels`` (the checkpoint is
    recorded as the algorithm's parameter in DICOM outputs)."""
    from .export import ExportOptions, parse_outputs

    return ExportOptions(outputs=parse_outputs(outputs), max_voxels=max_voxels,
                         algorithm_parameters=(("checkpoint", checkpoint.name),))


@app.command(name="eval")
def eval_(
    dataset: Path = typer.Argument(..., help="Built dataset folder."),
    checkpoint: Optional[Path] = _CHECKPOINT,
    split: str = typer.Option("test"),
    json_out: Path = typer.Option(Path("metrics.json"), "--json", help="Metrics JSON (Markdown and PR curve beside it)."),
    masks: str = typer.Option("none", help="Also masks (mask AP, Dice): head (the checkpoint's mask head), medsam "
                                           "(LiteMedSAM given each box), auto, none."),
    phrases: str = typer.Option("case", help="Absent phrases queried per image: case, modality, all."),
    score_threshold: Optional[float] = typer.Option(None, help="Score above which an absent phrase counts as a false positive (default: the checkpoint's calibrated threshold)."),
    max_per_phrase: int = typer.Option(100, help="Boxes kept per (image, phrase) (and refined into masks)."),
    device: str = typer.Option("cpu"),
) -> None:
    """COCO AP/AP50/AP75, Acc@0.5, mIoU, Dice and absent-phrase FP rate, by modality and hierarchy level.

    Example: medglip eval medglip-demo/dataset --json eval/metrics.json --masks head"""
    from .evaluate import evaluate, predict_dataset
    from .infer import Grounder

    _setup_logging(False)
    try:
        refiner, masks = _mask_option(masks)
        g = Grounder.from_pretrained(_run_dir(checkpoint), device=device, refiner=refiner)
        preds, queries = predict_dataset(g, dataset, split=split, phrases=phrases, masks=masks,
                                         max_per_phrase=max_per_phrase)
        out_dir = json_out.parent if str(json_out.parent) else Path(".")
        metrics = evaluate(dataset, preds, split=split, queries=queries, out=out_dir,
                           score_threshold=g.threshold_for("*") if score_threshold is None else score_threshold)
    except MedglipError as exc:
        _fail(str(exc))
    if json_out.name != "metrics.json":
        (out_dir / "metrics.json").replace(json_out)
    o = metrics["overall"]
    console.print(" ".join(f"{k}={o[k]:.3f}" if isinstance(o.get(k), float) else f"{k}={o.get(k)}"
                           for k in ("AP", "AP50", "AP75", "acc50", "miou", "dice", "absent_fp_rate")))
    console.print(f"metrics: {json_out} (+ metrics.md, pr_curve.png)")


@app.command()
def demo(out: Path = typer.Option(Path("medglip-demo"), help="Output folder."),
         train: bool = typer.Option(False, "--train", help="Train a small model on the pyradiomics samples instead "
                                    "(build, draw, train, ground, evaluate, VQA, report; about 5 min)."),
         workers: int = typer.Option(1, min=1),
         steps: int = typer.Option(200, min=1, help="Training steps of the --train model."),
         image_size: int = typer.Option(256, help="Model input size of the --train model."),
         build_only: bool = typer.Option(False, help="With --train: only build and draw the dataset.")) -> None:
    """The main job on real data medglip ships: the shipped model grounds held-out patients, ground truth beside
    predictions, metrics, VQA and a findings report (about a minute on 2 CPU cores).

    Example: medglip demo --out medglip-demo"""
    from .demo import run_demo

    _setup_logging(False)
    try:
        run_demo(out, train=train, workers=workers, steps=steps, image_size=image_size, train_model=not build_only,
                 console=console)
    except MedglipError as exc:
        _fail(str(exc))


def _llm_client(endpoint: Optional[str], model: Optional[str], key: Optional[str]):
    """The OpenAI-compatible client from flags (falling back to MEDGLIP_LLM_* variables), or None."""
    from .vqa import ChatClient

    if endpoint:
        if not model:
            _fail("--llm-endpoint needs --llm-model (or MEDGLIP_LLM_MODEL): the model name the server serves")
        return ChatClient(endpoint=endpoint, model=model, api_key=key)
    return ChatClient.from_env()


_LLM_ENDPOINT = typer.Option(None, "--llm-endpoint", envvar="MEDGLIP_LLM_ENDPOINT",
                             help="OpenAI-compatible API base URL, e.g. http://localhost:8000/v1 (a local medical VLM server).")
_LLM_MODEL = typer.Option(None, "--llm-model", envvar="MEDGLIP_LLM_MODEL", help="Model name for the chat API.")
_LLM_KEY = typer.Option(None, "--llm-key", envvar="MEDGLIP_LLM_API_KEY", help="API key (sent as a bearer token).")


@app.command()
def vqa(
    image: Path = typer.Argument(..., help="PNG/JPEG/TIFF, DICOM, or a NIfTI/NRRD volume / DICOM series folder."),
    question: str = typer.Argument(..., help='e.g. "Is there a tumor in the left lung?"'),
    checkpoint: Optional[Path] = _CHECKPOINT,
    modality: Optional[str] = typer.Option(None, help="CT, MR, XR, US, ENDO, DERM, PATH (default: DICOM tag or classifier)."),
    masks: str = _MASKS,
    score_threshold: Optional[float] = typer.Option(None, help="Boxes scoring below this are not findings (default: the checkpoint's calibrated thresholds)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write question, answer and grounded context as JSON."),
    visual_prompt: Optional[Path] = typer.Option(None, help="Write the numbered-box image the answer cites (PNG)."),
    llm_endpoint: Optional[str] = _LLM_ENDPOINT, llm_model: Optional[str] = _LLM_MODEL,
    llm_key: Optional[str] = _LLM_KEY,
    device: str = typer.Option("cpu"),
) -> None:
    """Answer a question about an image from grounding (closed questions) or through a VLM (open ones).

    Example: medglip vqa src/medglip/samples/pyradiomics/brain2_image.nrrd "Is there a brain tumor?" --modality MR"""
    from .infer import Grounder
    from .vqa import ask

    _setup_logging(False)
    if not image.exists():
        _fail(f"{image}: no such file or folder")
    try:
        llm = _llm_client(llm_endpoint, llm_model, llm_key)
        refiner, masks = _mask_option(masks)
        g = Grounder.from_pretrained(_run_dir(checkpoint), device=device, refiner=refiner)
        res = ask(g, image, question, modality=modality, llm=llm, score_threshold=score_threshold, masks=masks)
        if visual_prompt is not None:
            res.visual_prompt(masks=bool(masks)).save(visual_prompt)
    except MedglipError as exc:
        _fail(str(exc))
    typer.echo(res.answer.text)
    for note in res.context.untrained:
        console.print(f"[yellow]untrained[/]: {note}")
    console.print(f"[dim]{res.question.kind} question; grounded {list(res.question.phrases)}; "
                  f"evidence: {', '.join(f'box {n}' for n in res.answer.evidence) or 'none'} (via {res.answer.via})[/]")
    console.print(res.context.text_block("plain"), markup=False)
    if json_out:
        json_out.write_text(json.dumps(res.to_json(), indent=1))


@app.command()
def report(
    image: Path = typer.Argument(..., help="PNG/JPEG/TIFF, DICOM, or a NIfTI/NRRD volume / DICOM series folder."),
    findings: Optional[list[str]] = typer.Option(
        None, "--findings", "-f",
        help="Structure or finding to look for; repeatable (default: the checkpoint's training phrases)."),
    checkpoint: Optional[Path] = _CHECKPOINT,
    out: Path = typer.Option(Path("report"), help="Output folder: report.md, report.json, report_overlay.png (and "
                                                  "with --masks the findings' masks: labels.nii.gz / masks.png, "
                                                  "labels.json, seg.dcm, sr.dcm)."),
    modality: Optional[str] = typer.Option(None, help="CT, MR, XR, US, ENDO, DERM, PATH."),
    masks: str = typer.Option("none", "--masks", help="Masks per finding: head, medsam, auto or none (mask areas in "
                              "mm²); any but none also writes them beside the report as files viewers open "
                              "(label n = finding n)."),
    outputs: Optional[str] = typer.Option(None, help="With --masks: which of nifti, seg, sr, png, volume (default: "
                                                     "all the input allows, without volume)."),
    score_threshold: Optional[float] = typer.Option(None, help="Boxes scoring below this are not findings (default: the checkpoint's calibrated thresholds)."),
    prose: bool = typer.Option(False, help="Also rewrite the findings into prose with the chat API (--llm-*)."),
    window: Optional[str] = _WINDOW,
    llm_endpoint: Optional[str] = _LLM_ENDPOINT, llm_model: Optional[str] = _LLM_MODEL,
    llm_key: Optional[str] = _LLM_KEY,
    device: str = typer.Option("cpu"),
) -> None:
    """A structured findings report (Markdown + JSON + overlay) from grounding an image or a volume.

    Example: medglip report src/medglip/samples/pyradiomics/brain2_image.nrrd -f "brain tumor" --modality MR --out brain2-report"""
    from .infer import Grounder
    from .report import make_report, write_report

    _setup_logging(False)
    if not image.exists():
        _fail(f"{image}: no such file or folder")
    try:
        llm = _llm_client(llm_endpoint, llm_model, llm_key) if prose else None
        if prose and llm is None:
            from .vqa import LLMNotConfigured
            raise LLMNotConfigured("--prose needs a chat API: pass --llm-endpoint URL --llm-model NAME "
                                   "(or set MEDGLIP_LLM_ENDPOINT and MEDGLIP_LLM_MODEL)")
        refiner, masks = _mask_option(masks)
        checkpoint = _run_dir(checkpoint)
        g = Grounder.from_pretrained(checkpoint, device=device, refiner=refiner)
        rep = make_report(g, image, findings or None, modality=modality, masks=masks,
                          score_threshold=score_threshold, llm=llm, window=window,
                          exports=_export_options(outputs, None, checkpoint) if masks else None)
        paths = write_report(rep, out)
    except MedglipError as exc:
        _fail(str(exc))
    typer.echo(rep.markdown)
    for note in (rep.exports.notes if rep.exports is not None else []):
        console.print(f"[yellow]note[/]: {note}")
    console.print(f"[green]report[/]: {', '.join(str(p) for p in paths.values())}")


@app.command()
def serve(
    checkpoint: Optional[Path] = _CHECKPOINT,
    host: str = typer.Option("127.0.0.1", help="Interface to listen on; keep 127.0.0.1 behind a TLS reverse proxy."),
    port: int = typer.Option(8000),
    masks: bool = typer.Option(True, help="Let requests ask for LiteMedSAM masks (loaded on first use); masks=head "
                                          "(the checkpoint's mask head) works either way."),
    max_upload_mb: float = typer.Option(64.0, help="Largest upload accepted (MiB)."),
    max_batch: int = typer.Option(8, min=1, help="Images grounded together in one forward pass."),
    batch_wait_ms: float = typer.Option(10.0, min=0, help="How long the worker waits to fill a batch."),
    max_queue: int = typer.Option(256, min=1, help="Jobs waiting for the model before requests get 503."),
    max_client_queue: int = typer.Option(64, min=1, help="Jobs ONE client (API key, else address) may have waiting; "
                                                         "beyond it that client gets 503, the others still get in."),
    max_slices: int = typer.Option(2048, min=1, help="Volume slices one request may ground (413 above it, before any "
                                                     "work; a few-hundred-byte file may declare 32000)."),
    max_model_passes: int = typer.Option(8192, min=1, help="Slices (or images) x prompt chunks one request may put "
                                                           "through the model (413 above it)."),
    torch_threads: int = typer.Option(0, min=0, help="Intra-op torch threads (0: torch's default)."),
    log_level: str = typer.Option("info", help="Server log level: debug, info, warning, error."),
    max_request_mb: float = typer.Option(512.0, help="Largest decoded image of one request (MiB; float64 read as float32)."),
    max_inflight_mb: float = typer.Option(1024.0, help="Decoded MiB of all requests in flight; above it 503."),
    request_timeout: float = typer.Option(120.0, help="Deadline of every request, seconds (504)."),
    body_timeout: float = typer.Option(15.0, help="Longest pause in a request body, seconds (408)."),
    header_timeout: float = typer.Option(10.0, help="Seconds a client has to send its request headers."),
    keep_alive: int = typer.Option(5, help="Idle keep-alive seconds."),
    limit_concurrency: int = typer.Option(64, help="Connections at once; more get 503."),
    io_workers: int = typer.Option(4, help="Threads that unpack, parse and decode uploads."),
    api_keys_file: Optional[Path] = typer.Option(None, help="API keys, one 'name key' per line (else MEDGLIP_API_KEYS=name:key,...)."),
    rate_limit: int = typer.Option(0, help="Requests per minute per API key (per client address without keys); 0: none."),
    rate_burst: int = typer.Option(20, min=1, help="Requests a key may send at once before its per-minute rate applies."),
    cors_origin: list[str] = typer.Option([], help="Web origin whose pages may call the service; repeatable."),
    docs: bool = typer.Option(False, help="Serve /docs (Swagger UI, which the browser fetches from a CDN)."),
    audit_log: Optional[Path] = typer.Option(None, help="Append the audit log (JSON lines) to this file."),
    forwarded_allow_ips: Optional[str] = typer.Option(None, help="The TLS proxy's address(es) whose X-Forwarded-* headers are trusted."),
    llm_endpoint: Optional[str] = _LLM_ENDPOINT, llm_model: Optional[str] = _LLM_MODEL,
    llm_key: Optional[str] = _LLM_KEY,
    device: str = typer.Option("cpu"),
) -> None:
    """The HTTP service and its web page at / (docs/security.md: keys, limits, TLS proxy, what an upload can do).

    Example: medglip serve --host 127.0.0.1 --port 8000"""
    from .serve import AccessConfig, ServerSettings, ServiceConfig, load_api_keys, serve as run_server

    _setup_logging(False)
    logging.getLogger().setLevel(log_level.upper())
    if torch_threads > 0:
        import torch

        torch.set_num_threads(torch_threads)
    mib = 2**20
    try:
        llm = _llm_client(llm_endpoint, llm_model, llm_key)
        config = ServiceConfig(max_upload_bytes=int(max_upload_mb * mib), max_batch=max_batch,
                               batch_wait_ms=batch_wait_ms, max_queue=max_queue, max_client_queue=max_client_queue,
                               max_slices=max_slices, max_model_passes=max_model_passes,
                               max_request_bytes=int(max_request_mb * mib), max_inflight_bytes=int(max_inflight_mb * mib),
                               request_timeout_s=request_timeout, body_timeout_s=body_timeout, io_workers=io_workers)
        access = AccessConfig(api_keys=load_api_keys(api_keys_file), rate_per_minute=rate_limit, rate_burst=rate_burst,
                              cors_origins=tuple(cors_origin), docs=docs, audit_log=str(audit_log) if audit_log else None)
        settings = ServerSettings(timeout_keep_alive=keep_alive, header_timeout_s=header_timeout,
                                  limit_concurrency=limit_concurrency, forwarded_allow_ips=forwarded_allow_ips)
        run_server(_run_dir(checkpoint), host=host, port=port, config=config, llm=llm, device=device, masks=masks, access=access,
                   server=settings, log_level=log_level)
    except MedglipError as exc:
        _fail(str(exc))


def _weights(values: list[str], option: str) -> tuple[tuple[str, float], ...]:
    """``["a=2", "b=0.5"]`` → ``(("a", 2.0), ("b", 0.5))``; a malformed item is an error naming it."""
    out = []
    for item in values:
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = float("nan")
        if not sep or not name.strip() or not weight >= 0 or weight == float("inf"):
            raise ValueError(f"{option} {item!r}: expected NAME=WEIGHT with a finite weight >= 0")
        out.append((name.strip(), weight))
    return tuple(out)


def _model_overrides(image_size: Optional[int], context_slices: int) -> tuple[tuple[str, object], ...]:
    """The ModelConfig fields the training commands set."""
    return ((("image_size", image_size),) if image_size else ()) + (
        (("context_slices", context_slices),) if context_slices else ())


def _train_config(preset: str, max_steps: Optional[int], batch_size: int, lr: float, image_size: Optional[int],
                  device: str, seed: int, context_slices: int = 0, **more: object):
    from .train import TrainConfig

    return TrainConfig(preset=preset, max_steps=max_steps, batch_size=batch_size, lr=lr,
                       model_overrides=_model_overrides(image_size, context_slices), device=device, seed=seed, **more)


@app.command()
def lopo(
    dataset: Path = typer.Argument(..., help="Built dataset; its train split holds the training patients."),
    out: Path = typer.Option(..., "--out", help="Folder: folds/, lopo.json, lopo.md, final/ (the final run)."),
    preset: str = typer.Option("default", help="Model preset (as for train)."),
    max_steps: Optional[int] = typer.Option(600),
    batch_size: int = typer.Option(4), lr: float = typer.Option(3e-4), image_size: Optional[int] = typer.Option(256),
    context_slices: int = _CONTEXT,
    warmup_steps: int = typer.Option(100, help="Linear learning-rate warm-up steps."),
    copy_paste: float = typer.Option(0.5, help="Lesion copy-paste probability."),
    source_weight: list[str] = typer.Option([], "--source-weight", help="SOURCE=W sampling weight; repeatable."),
    modality_weight: list[str] = typer.Option([], "--modality-weight", help="MODALITY=W; repeatable."),
    elastic: float = typer.Option(0.0, help="Elastic deformation probability (image, masks and boxes together)."),
    device: str = typer.Option("auto"), seed: int = typer.Option(0),
    final: bool = typer.Option(True, help="Also train the final model on every training case."),
    contrastive_weight: float = _CONTRAST, mlm_weight: float = _MLM, mask_weight: float = _MASK_W,
    freeze: list[str] = _FREEZE,
    masks: str = typer.Option("none", help="Also the folds' mask Dice: head, medsam, auto or none."),
) -> None:
    """Leave-one-patient-out on the training patients: per-fold metrics, calibrated score thresholds, and
    the final model with them in its config (lung2 / brain2 stay held out: `medglip heldout` measures them).

    Example: medglip lopo data/ds-all --out runs/heldout --max-steps 400 --image-size 256 --warmup-steps 40 --mask-weight 0"""
    from .protocol import lopo as run_lopo

    _setup_logging(False)
    try:
        cfg = _train_config(preset, max_steps, batch_size, lr, image_size, device, seed, context_slices,
                            copy_paste_prob=copy_paste,
                            warmup_steps=warmup_steps, source_weights=_weights(source_weight, "--source-weight"),
                            modality_weights=_weights(modality_weight, "--modality-weight"),
                            elastic_prob=elastic, contrastive_weight=contrastive_weight,
                            mlm_weight=mlm_weight, mask_weight=mask_weight, freeze=tuple(freeze))
        summary = run_lopo(dataset, out, cfg, final=final, masks=masks)
    except (MedglipError, ValueError) as exc:
        _fail(str(exc))
    console.print((out / "lopo.md").read_text())
    console.print(f"thresholds {summary['thresholds']}; final run: {summary.get('final_run', '-')}")


@app.command()
def heldout(
    dataset: Path = typer.Argument(..., help="Built dataset; its test split holds the held-out patients."),
    checkpoint: Optional[Path] = _CHECKPOINT,
    out: Path = typer.Option(Path("heldout"), help="Folder for heldout.json / heldout.md and per-patient files."),
    split: str = typer.Option("test"),
    masks: str = typer.Option("none", help="Also masks (mask Dice): head (the checkpoint's mask head), medsam "
                                           "(LiteMedSAM), auto or none."),
) -> None:
    """Per held-out patient: Acc@0.5, mIoU, AP50, mask Dice, absent-phrase FP rate and VQA vs its ceiling.

    Example: medglip heldout data/ds-all --checkpoint runs/heldout/final --masks medsam"""
    from .protocol import heldout_report

    _setup_logging(False)
    try:
        heldout_report(_run_dir(checkpoint), dataset, out, split=split, masks=masks)
    except MedglipError as exc:
        _fail(str(exc))
    console.print((out / "heldout.md").read_text())


@app.command()
def calibrate(
    run: Path = typer.Argument(..., help="A run folder (medglip train output); its config.json gets the thresholds."),
    dataset: Path = typer.Argument(..., help="The built dataset it trained on; its validation split is scored."),
    out: Path = typer.Option(Path("calibration"), help="Folder for calibration.json and the validation metrics."),
    split: str = typer.Option("val", help="The split thresholds are chosen on (never the test patients)."),
    max_fpr: float = typer.Option(0.1, help="Absent-phrase false-positive budget per phrase (1: Youden's J)."),
) -> None:
    """Per-phrase score thresholds chosen on validation patients, written into the run's config.json.

    Example: medglip calibrate runs/v1 data/v1 --out runs/v1-calibration"""
    from .protocol import calibrate as run_calibrate

    _setup_logging(False)
    try:
        summary = run_calibrate(run, dataset, out, split=split, max_fpr=None if max_fpr >= 1 else max_fpr)
    except MedglipError as exc:
        _fail(str(exc))
    console.print(", ".join(f"{p} {t:.2f}" for p, t in summary["thresholds"].items()))


@app.command()
def pack(
    run: Path = typer.Argument(..., help="A run folder (medglip train output, calibrated)."),
    out: Path = typer.Argument(..., help="Folder for the compact model (e.g. src/medglip/weights/medglip-v1)."),
) -> None:
    """Store a run compactly: only the tensors training changed, in float16, against the packages' weights.

    Example: medglip pack runs/v1 src/medglip/weights/medglip-v1"""
    from .model.shipped import pack_run

    _setup_logging(False)
    try:
        written = pack_run(run, out)
    except MedglipError as exc:
        _fail(str(exc))
    size = sum(f.stat().st_size for f in written.rglob("*") if f.is_file())
    console.print(f"[green]packed[/]: {written} ({size / 1e6:.1f} MB)")


@app.command(name="source-report")
def source_report_cmd(
    dataset: Path = typer.Argument(..., help="A recipe dataset; its test split holds each source's test patients."),
    checkpoint: Optional[Path] = _CHECKPOINT,
    out: Path = typer.Option(Path("sources"), help="Folder for sources.json / sources.md and per-source files."),
    split: str = typer.Option("test"),
    masks: str = typer.Option("auto", help="Masks for mask Dice: head, medsam, auto or none."),
) -> None:
    """Per source: Acc@0.5, mIoU, AP50, mask Dice, absent-phrase FP rate and VQA vs its ceiling.

    Example: medglip source-report runs/data-v1 --checkpoint runs/run-v1 --out runs/test-v1"""
    from .protocol import source_report

    _setup_logging(False)
    try:
        source_report(_run_dir(checkpoint), dataset, out, split=split, masks=masks)
    except MedglipError as exc:
        _fail(str(exc))
    console.print((out / "sources.md").read_text())


@app.command(name="vqa-eval")
def vqa_eval(
    dataset: Path = typer.Argument(..., help="Built dataset folder."),
    checkpoint: Optional[Path] = _CHECKPOINT,
    split: str = typer.Option("test"),
    out: Path = typer.Option(Path("vqa-eval"), help="Folder for vqa_metrics.json / vqa_metrics.md."),
    score_threshold: Optional[float] = typer.Option(None, help="Default: the checkpoint's calibrated thresholds."),
    device: str = typer.Option("cpu"),
) -> None:
    """VQA accuracy on questions generated from a dataset's ground truth: predicted grounding vs the ceiling.

    Example: medglip vqa-eval medglip-demo/dataset --out vqa-eval"""
    from .infer import Grounder
    from .vqa import evaluate_vqa

    _setup_logging(False)
    try:
        g = Grounder.from_pretrained(_run_dir(checkpoint), device=device, refiner=None)
        metrics = evaluate_vqa(g, dataset, split=split, score_threshold=score_threshold, out=out)
    except MedglipError as exc:
        _fail(str(exc))
    table = Table("kind", "questions", "accuracy (predicted)", "ceiling (ground-truth boxes)")
    for kind, m in sorted(metrics["by_kind"].items()):
        table.add_row(kind, str(m["n"]), f"{m['accuracy_predicted']:.1%}", f"{m['accuracy_ground_truth']:.1%}")
    o = metrics["overall"]
    table.add_row("all", str(metrics["n_questions"]), f"{o['accuracy_predicted']:.1%}", f"{o['accuracy_ground_truth']:.1%}")
    console.print(table)
    console.print(f"metrics: {out / 'vqa_metrics.json'} (+ vqa_metrics.md)")


@app.command(name="build-recipe")
def build_recipe_cmd(
    recipe: Path = typer.Argument(..., help="Recipe YAML listing the sources (see docs/dataset_format.md)."),
    out: Path = typer.Argument(..., help="Output folder of the one grounding dataset."),
    workers: int = typer.Option(1, min=1, help="Worker processes (cases of all sources in parallel)."),
    shard: Optional[str] = typer.Option(None, help="Only build shard K/N of the recipe's cases; merge when all are done."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build several sources into one dataset. Re-run to resume; add a source and re-run to build just it.

    Example: medglip build-recipe src/medglip/samples/heldout/recipe.yaml out/heldout"""
    from .dataset import Shard, build_recipe, load_recipe

    _setup_logging(verbose)
    try:
        plan = load_recipe(recipe)
        shard_obj = Shard.parse(shard) if shard else None
    except MedglipError as exc:
        _fail(str(exc))
    columns = (TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[last]}"))
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("cases", total=None, last="")
        try:
            res = build_recipe(plan, out, workers=workers, shard=shard_obj,
                               on_start=lambda n: progress.update(task, total=n),
                               on_progress=lambda key, err: progress.update(
                                   task, advance=1, last=f"[red]failed {key}" if err else key))
        except MedglipError as exc:
            _fail(str(exc))
    built = ", ".join(f"{k} {v}" for k, v in sorted(res.built_by_source.items())) or "none"
    console.print(f"built {len(res.done)} case(s) ({built}), {len(res.skipped)} already done, "
                  f"{len(res.failed)} failed, of {res.n_cases} in {len(plan.sources)} source(s)")
    if res.merged:
        m = res.merged
        console.print(f"[green]dataset ready[/] in {out}: images {m.images}, annotations {m.annotations}, cases {m.cases}")
    elif res.pending:
        console.print(f"{res.pending} case(s) of other shards remain: run `medglip merge {out}` when all shards finished")
    for sid, reason in sorted(res.failed_sources.items()):
        console.print(f"[red]source not built[/] {sid}: {reason}")
    for key, reason in sorted(res.failed.items()):
        console.print(f"[red]failed[/] {key}: {reason}")
    if res.failed or res.failed_sources or (res.merged and res.merged.failures):
        raise typer.Exit(1)


@app.command()
def catalog(
    modality: list[str] = typer.Option([], help="Only data sets of this modality (CT, MR, XR, US, ENDO, DERM, PATH); repeatable."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON."),
    scan: Optional[Path] = typer.Option(None, help="Find the catalogue's data sets in this folder (and 2 levels below)."),
    recipe_out: Optional[Path] = typer.Option(None, help="With --scan: write a starter recipe for what was found."),
) -> None:
    """List the public data sets medglip knows (layout, real labels, licence, where to get them), or find them on disk.
    On a terminal a table; in a pipe or a file, full rows as tab-separated values with a header line.

    Example: medglip catalog --modality MR"""
    from .catalog import load_catalog
    from .catalog import scan as find
    from .modality import normalise_modality

    if recipe_out and not scan:
        _fail("--recipe-out needs --scan DIR (the folder holding your data sets)")
    try:
        wanted = {normalise_modality(m) for m in modality}
        entries = [e for e in load_catalog() if not wanted or wanted & set(e.modalities)]
        hits = find(scan) if scan else []
    except MedglipError as exc:
        _fail(str(exc))
    if scan:
        rows = [{"path": str(h.path), "layout": h.layout, "dataset": h.entry.id if h.entry else None} for h in hits]
        if as_json:
            typer.echo(json.dumps(rows, indent=1))
        else:
            header = ("folder", "layout", "catalogue data set")
            table = Table(*header)
            for r in rows:
                table.add_row(r["path"], r["layout"], r["dataset"] or "[yellow]not in the catalogue")
            _print_rows(header, [(r["path"], r["layout"], r["dataset"] or "not in the catalogue") for r in rows], table)
        if recipe_out:
            from .dataset.recipe import starter_recipe

            try:
                text = starter_recipe(hits, name=scan.resolve().name).to_yaml()
            except MedglipError as exc:
                _fail(str(exc))
            recipe_out.write_text(text, encoding="utf-8")
            console.print(f"[green]wrote[/] {recipe_out} ({len(hits)} source(s)); build it with "
                          f"`medglip build-recipe {recipe_out} OUT`")
        return
    if as_json:
        typer.echo(json.dumps([e.to_json() for e in entries], indent=1, ensure_ascii=False))
        return
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("name")
    table.add_column("modalities")
    table.add_column("layout", no_wrap=True)
    table.add_column("labels")
    table.add_column("licence", max_width=32)
    for e in entries:
        names = ", ".join(e.label_names[:4]) + (f", … ({len(e.labels)})" if len(e.labels) > 4 else "")
        table.add_row(e.id, e.name, " ".join(e.modalities), e.layout, names, e.licence)
    # in a pipe or a file: every label, every word of the licence
    _print_rows(("id", "name", "modalities", "layout", "labels", "licence"),
                [(e.id, e.name, " ".join(e.modalities), e.layout, ", ".join(e.label_names), e.licence)
                 for e in entries], table)
    console.print(f"{len(entries)} data set(s); `medglip catalog --json` gives urls and citations")


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; re-run the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
