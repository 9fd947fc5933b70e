"""The held-out protocol: settings and thresholds chosen by leave-one-patient-out on the training
patients only; held-out patients measured once, at the end, per patient.

- :func:`lopo` — for every training patient with a lesion (a case of the ``train`` split whose
  annotations include a ``lesion``-level phrase), train on all other training cases and evaluate
  on that patient (:func:`medglip.evaluate.evaluate`, every dataset phrase asked on every slice);
  pool the folds' scores to choose the score thresholds (:func:`choose_thresholds`); then train the
  final model on every training case and write the thresholds into its ``config.json``
  (``ModelConfig.finding_thresholds``), where ``ground``, volumes, VQA, reports and the service
  read them. Writes ``OUT/lopo.json`` / ``lopo.md`` and the final run ``OUT/final``.
- :func:`heldout_report` — the held-out patients (the ``test`` split), one at a time: Acc@0.5, mIoU,
  AP50, mask Dice, the absent-phrase false-positive rate, and VQA accuracy next to its ceiling.

A fold's dataset is an overlay folder (``annotations/train.json`` / ``test.json`` written anew,
``images`` linked), so the built dataset itself is never changed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .core.files import atomic_write_json, atomic_write_text, read_json
from .errors import MedglipError
from .evaluate.calibration import GRID, choose_thresholds, evaluate_run, set_thresholds  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def fold_name(source: str, case: str) -> str:
    """The folder name of a patient's fold (``folds/<name>``, ``heldout/<name>``)."""
    return f"{source}-{case}".replace("/", "_")


def lesion_patients(dataset_dir: Path, split: str = "train") -> list[tuple[str, str]]:
    """``(source, case_id)`` of the split's cases with at least one lesion annotation, sorted."""
    coco = _load(Path(dataset_dir) / "annotations" / f"{split}.json")
    case_of = {int(im["id"]): (str(im.get("source")), str(im.get("case_id"))) for im in coco["images"]}
    return sorted({case_of[int(a["image_id"])] for a in coco["annotations"] if a.get("level") == "lesion"})


def make_fold(dataset_dir: Path, held: tuple[str, str], out: Path, split: str = "train") -> Path:
    """An overlay dataset: ``train`` = the split without the ``held`` case, ``test`` = that case."""
    return _overlay(
        dataset_dir,
        out,
        split,
        {
            "train": lambda im: (str(im.get("source")), str(im.get("case_id"))) != held,
            "test": lambda im: (str(im.get("source")), str(im.get("case_id"))) == held,
        },
    )


def source_subset(dataset_dir: Path, source: str, out: Path, split: str = "test") -> Path:
    """An overlay dataset whose ``test`` split is the ``split`` images of one source."""
    return _overlay(dataset_dir, out, split, {"test": lambda im: str(im.get("source")) == source})


def _overlay(dataset_dir: Path, out: Path, split: str, keep: dict[str, Callable[[dict], bool]]) -> Path:
    """A dataset folder whose splits are the ``split`` images each ``keep`` predicate selects; the
    images are a link to the original's (nothing is copied)."""
    dataset_dir, out = Path(dataset_dir).resolve(), Path(out)
    coco = _load(dataset_dir / "annotations" / f"{split}.json")
    parts: dict[str, dict] = {}
    for name, wanted in keep.items():
        images = [im for im in coco["images"] if wanted(im)]
        ids = {int(im["id"]) for im in images}
        parts[name] = {
            **coco,
            "images": images,
            "annotations": [a for a in coco["annotations"] if int(a["image_id"]) in ids],
        }
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    for name, part in parts.items():
        atomic_write_json(out / "annotations" / f"{name}.json", part)
    link = out / "images"
    if not link.exists():
        os.symlink(dataset_dir / "images", link, target_is_directory=True)
    cfg = dataset_dir / "build_config.json"
    if cfg.is_file():
        atomic_write_text(out / "build_config.json", cfg.read_text(encoding="utf-8"))
    return out


def calibrate(
    run: str | Path, dataset_dir: str | Path, out: str | Path, *, split: str = "val", max_fpr: float | None = 0.1
) -> dict[str, Any]:
    """Per-phrase score thresholds of ``run`` chosen on a validation split (never the test patients) and
    written into ``run/config.json``; ``OUT/calibration.json`` keeps the metrics and pairs they came from."""
    run, out = Path(run), Path(out)
    metrics, present, absent = evaluate_run(run, Path(dataset_dir), split, out / "eval", phrases="case")
    thresholds = choose_thresholds(present, absent, max_fpr=max_fpr)
    set_thresholds(run, thresholds)
    summary = {
        "run": str(run),
        "dataset": str(dataset_dir),
        "split": split,
        "max_fpr": max_fpr,
        "thresholds": thresholds,
        "overall_before": metrics.get("overall"),
        "present_pairs": len(present),
        "absent_pairs": len(absent),
    }
    atomic_write_json(out / "calibration.json", summary, indent=1)
    return summary


def lopo(
    dataset_dir: str | Path, out: str | Path, config: Any, *, final: bool = True, masks: bool | str = False
) -> dict[str, Any]:
    """Leave-one-patient-out on the training patients, thresholds, and the final model (module docstring).

    Args:
        dataset_dir: a built dataset (its ``train`` split holds the training patients).
        out: output folder (``folds/<case>/``, ``lopo.json``, ``lopo.md``, ``final/``).
        config: the :class:`medglip.train.TrainConfig` of every fold and of the final model.
        final: also train the final model on all training cases.
        masks: also the folds' mask Dice, from this source (:func:`evaluate_run`).
    """
    dataset_dir, out = Path(dataset_dir), Path(out)
    patients = lesion_patients(dataset_dir)
    if len(patients) < 2:
        raise MedglipError(
            f"{dataset_dir}: leave-one-patient-out needs at least two training patients with a lesion, found {patients}"
        )
    folds, present, absent = [], [], []
    for source, case in patients:
        name = fold_name(source, case)
        fdir = out / "folds" / name
        data = make_fold(dataset_dir, (source, case), fdir / "data")
        run = fdir / "run"
        _fit(data, run, config)
        metrics, pos, neg = evaluate_run(run, data, "test", fdir / "eval", masks=masks)
        present += pos
        absent += neg
        folds.append(
            {
                "patient": f"{source}/{case}",
                "overall": metrics["overall"],
                "present": [list(p) for p in pos],
                "absent": [list(a) for a in neg],
            }
        )
        log.info(
            "fold %s: Acc@0.5 %s absent-FP %s",
            name,
            metrics["overall"].get("acc50"),
            metrics["overall"].get("absent_fp_rate"),
        )
    thresholds = choose_thresholds(present, absent)
    summary = {
        "dataset": str(dataset_dir),
        "train_config": dataclasses.asdict(config),
        "folds": folds,
        "thresholds": thresholds,
        "mean": mean_metrics([f["overall"] for f in folds]),
    }
    if final:
        run = out / "final"
        _fit(dataset_dir, run, config)
        set_thresholds(run, thresholds)
        summary["final_run"] = str(run)
    atomic_write_json(out / "lopo.json", summary, indent=1)
    atomic_write_text(out / "lopo.md", lopo_markdown(summary))
    return summary


def _fit(dataset_dir: Path, run: Path, config: Any) -> None:
    """Train ``run``, or resume it from its latest checkpoint after a crash (a finished run resumes at its
    last step and trains nothing): the protocol's folds take hours on a CPU."""
    from .train import train
    from .train.state import latest_checkpoint

    train(dataset_dir, run, config, resume=latest_checkpoint(run) is not None)


_KEYS = ("acc50", "miou", "AP50", "dice", "absent_fp_rate")


def mean_metrics(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """The mean of each reported metric over folds (or patients); None where no row has it."""
    out: dict[str, float | None] = {}
    for k in _KEYS:
        vals = [float(r[k]) for r in rows if r.get(k) is not None]
        out[k] = round(float(np.mean(vals)), 4) if vals else None
    return out


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f} %"


def lopo_markdown(summary: dict[str, Any], *, title: str = "Leave-one-patient-out on the training patients") -> str:
    lines = [
        f"# {title}",
        "",
        "| held-out training patient | Acc@0.5 | mIoU | AP50 | mask Dice | absent-phrase FP rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for f in summary["folds"] + [{"patient": "**mean**", "overall": summary["mean"]}]:
        o = f["overall"]
        lines.append(f"| {f['patient']} | " + " | ".join(_pct(o.get(k)) for k in _KEYS) + " |")
    lines += [
        "",
        "Thresholds chosen (Youden's J on the pooled folds): "
        + ", ".join(f"{p} {t:.2f}" for p, t in summary["thresholds"].items()),
        "",
    ]
    return "\n".join(lines)


def heldout_report(
    run: str | Path, dataset_dir: str | Path, out: str | Path, *, split: str = "test", masks: bool | str = False
) -> dict[str, Any]:
    """Per held-out patient (a case of ``split``): grounding metrics and VQA accuracy next to its
    ceiling, with the run's calibrated thresholds. Writes ``OUT/heldout.json`` / ``heldout.md``."""
    from .infer import Grounder
    from .vqa import evaluate_vqa

    run, dataset_dir, out = Path(run), Path(dataset_dir), Path(out)
    coco = _load(dataset_dir / "annotations" / f"{split}.json")
    cases = sorted({(str(im.get("source")), str(im.get("case_id"))) for im in coco["images"]})
    g = Grounder.from_pretrained(run, refiner=None)
    rows = []
    for source, case in cases:
        name = fold_name(source, case)
        data = make_fold(dataset_dir, (source, case), out / name / "data", split=split)
        metrics, _, _ = evaluate_run(run, data, "test", out / name / "eval", masks=masks)
        vqa = evaluate_vqa(g, data, split="test", out=out / name / "vqa")
        rows.append(
            {
                "patient": f"{source}/{case}",
                "overall": metrics["overall"],
                "vqa": vqa["overall"],
                "vqa_by_kind": vqa["by_kind"],
            }
        )
    report = {
        "run": str(run),
        "dataset": str(dataset_dir),
        "split": split,
        "patients": rows,
        "thresholds": dict(read_json(run / "config.json").get("finding_thresholds") or []),
    }
    atomic_write_json(out / "heldout.json", report, indent=1)
    lines = [
        "| held-out patient | Acc@0.5 | mIoU | AP50 | mask Dice | absent-phrase FP | VQA (ceiling) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['patient']} | {_metric_cells(r)} |" for r in rows]
    atomic_write_text(out / "heldout.md", "\n".join(lines) + "\n")
    return report


def source_report(
    run: str | Path, dataset_dir: str | Path, out: str | Path, *, split: str = "test", masks: bool | str = "auto"
) -> dict[str, Any]:
    """Per source of a recipe dataset, on its ``split`` patients: Acc@0.5, mIoU, AP50, mask Dice,
    absent-phrase FP rate (absent phrases of the same patient and known-absent ones) and VQA next to
    its ceiling, with the run's calibrated thresholds. Writes ``OUT/sources.json`` / ``sources.md``."""
    from .infer import Grounder
    from .vqa import evaluate_vqa

    run, dataset_dir, out = Path(run), Path(dataset_dir), Path(out)
    coco = _load(dataset_dir / "annotations" / f"{split}.json")
    sources = sorted({str(im.get("source")) for im in coco["images"]})
    g = Grounder.from_pretrained(run, refiner=None)
    rows = []
    for source in sources:
        data = source_subset(dataset_dir, source, out / source / "data", split=split)
        metrics, _, _ = evaluate_run(run, data, "test", out / source / "eval", masks=masks, phrases="case")
        vqa = evaluate_vqa(g, data, split="test", out=out / source / "vqa")
        sub = _load(data / "annotations" / "test.json")
        cases = {(im.get("source"), im.get("case_id")) for im in sub["images"]}
        rows.append(
            {
                "source": source,
                "patients": len({patient_of(dataset_dir, *c) for c in cases}),
                "images": len(sub["images"]),
                "overall": metrics["overall"],
                "vqa": vqa["overall"],
            }
        )
    report = {
        "run": str(run),
        "dataset": str(dataset_dir),
        "split": split,
        "sources": rows,
        "thresholds": dict(read_json(run / "config.json").get("finding_thresholds") or []),
    }
    atomic_write_json(out / "sources.json", report, indent=1)
    lines = [
        "| source | patients | images | Acc@0.5 | mIoU | AP50 | mask Dice | absent-phrase FP | VQA (ceiling) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['source']} | {r['patients']} | {r['images']} | {_metric_cells(r)} |" for r in rows]
    atomic_write_text(out / "sources.md", "\n".join(lines) + "\n")
    return report


def _metric_cells(row: dict[str, Any]) -> str:
    """A report row's Markdown cells: the grounding metrics of ``_KEYS``, then VQA (its ceiling)."""
    o, v = row["overall"], row["vqa"]
    return (
        " | ".join(_pct(o.get(k)) for k in _KEYS)
        + f" | {_pct(v.get('accuracy_predicted'))} ({_pct(v.get('accuracy_ground_truth'))})"
    )


def patient_of(dataset_dir: Path, source: Any, case: Any) -> str:
    """The patient of a dataset case, ``source/patient`` (its record's ``patient``, else the case itself)."""
    try:
        patient = _load(dataset_dir / "records" / source / f"{case}.json").get("patient")
    except (OSError, ValueError):
        patient = None
    return f"{source}/{patient or case}"
