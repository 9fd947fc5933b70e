"""Write the metrics of :func:`medglip.evaluate.metrics.compute_metrics` as JSON, Markdown and a PR PNG."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.files import atomic_write_text
from .prcurve import draw_pr_curves

log = logging.getLogger(__name__)

#: (column title, metric key, format) of the Markdown tables.
COLUMNS = (
    ("images", "n_images", "d"),
    ("GT boxes", "n_gt_boxes", "d"),
    ("pairs", "n_pairs", "d"),
    ("AP", "AP", "p"),
    ("AP50", "AP50", "p"),
    ("AP75", "AP75", "p"),
    ("Acc@0.5", "acc50", "p"),
    ("mIoU", "miou", "p"),
    ("Dice", "dice", "p"),
    ("absent FP rate", "absent_fp_rate", "p"),
    ("absent pairs", "n_absent", "d"),
)
SIZE_COLUMNS = (("APs", "APs", "p"), ("APm", "APm", "p"), ("APl", "APl", "p"), ("AR100", "AR100", "p"))
MASK_COLUMNS = (("mask AP", "mask_AP", "p"), ("mask AP50", "mask_AP50", "p"), ("mask AP75", "mask_AP75", "p"))


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "–"
    return f"{int(value)}" if fmt == "d" else f"{100.0 * float(value):.1f}"


def _table(first: str, rows: Mapping[str, Mapping[str, Any]], columns: tuple) -> list[str]:
    head = [first] + [c[0] for c in columns]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * len(columns) + "|"]
    for name, row in rows.items():
        lines.append("| " + " | ".join([name] + [_cell(row.get(key), fmt) for _, key, fmt in columns]) + " |")
    return lines


def metrics_markdown(metrics: Mapping[str, Any], *, title: str = "Grounding evaluation") -> str:
    """Markdown tables (overall, by modality, by level, by phrase) of a metrics dict; values in %."""
    thr = metrics["score_threshold"]
    lines = [f"# {title}", ""]
    if metrics.get("split"):
        lines.append(
            f"Split `{metrics['split']}` of `{metrics.get('dataset', '')}`: "
            f"{metrics['n_images']} images, {metrics['n_predictions']} predictions."
        )
    else:
        lines.append(f"{metrics['n_images']} images, {metrics['n_predictions']} predictions.")
    lines += [
        "",
        "Values in %. AP/AP50/AP75: COCO box AP (pycocotools COCOeval, ≤100 detections per image and phrase). "
        "Acc@0.5 / mIoU: the top-scoring box per (image, phrase) with GT, hit when IoU ≥ 0.5 with any GT box "
        "of that phrase; no prediction = IoU 0. "
        f"Dice: union of the top-1 mask and the masks scoring ≥ {thr} vs the union of GT masks. "
        f"Absent FP rate: queried phrases without GT on the image whose top score ≥ {thr}. "
        "'–': nothing to measure.",
        "",
    ]
    if metrics.get("n_unknown_phrase_predictions"):
        lines += [
            f"{metrics['n_unknown_phrase_predictions']} predictions name phrases that are not categories "
            "of this split (not in AP; counted as absent phrases when queried).",
            "",
        ]
    if not metrics.get("queries_given"):
        lines += ["No queries were given: the absent-phrase false-positive rate is not measured.", ""]
    columns = COLUMNS + SIZE_COLUMNS + (MASK_COLUMNS if metrics.get("masks_evaluated") else ())
    lines += ["## Overall", ""] + _table("", {"all": metrics["overall"]}, columns) + [""]
    for key, head in (("by_modality", "modality"), ("by_level", "level"), ("by_phrase", "phrase")):
        rows = metrics.get(key) or {}
        if rows:
            lines += (
                [f"## By {head}", ""]
                + _table(
                    head,
                    rows,
                    columns
                    if key != "by_phrase"
                    else COLUMNS + (MASK_COLUMNS if metrics.get("masks_evaluated") else ()),
                )
                + [""]
            )
    return "\n".join(lines)


def write_report(metrics: Mapping[str, Any], out: str | Path, *, title: str = "Grounding evaluation") -> dict:
    """Write ``metrics.json``, ``metrics.md`` and ``pr_curve.png`` (IoU 0.5: overall + one per level).

    Returns:
        ``{"json": Path, "markdown": Path, "pr_curve": Path}``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "metrics.json", "markdown": out / "metrics.md", "pr_curve": out / "pr_curve.png"}
    atomic_write_text(paths["json"], json.dumps(dict(metrics), indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    atomic_write_text(paths["markdown"], metrics_markdown(metrics, title=title) + "\n")
    pr = metrics["pr"]
    curves = {"overall": pr["overall"]}
    curves.update({f"level: {k}": v for k, v in pr["by_level"].items()})
    draw_pr_curves(paths["pr_curve"], pr["recall"], curves)
    log.info("wrote %s, %s, %s", *paths.values())
    return paths
