"""VQA accuracy of a grounder on a built split, next to the ceiling reached from the ground truth.

Each image is grounded once with every phrase its questions need; every question is then answered
twice with the same code: from the predicted context and from the ground-truth context
(:func:`~medglip.context.result_from_annotations`, scores 1.0). Both contexts get the image record's
geometry (``pixel_spacing``, ``plane``, ``pixel_to_world``), since the prediction is on that very
image: sides, thirds and sizes are then measured the same way for both.

The ceiling is 100 % for every kind when the answering code agrees with the dataset's numbers
(:mod:`.generate` derives counts, thirds and sizes from the raw annotations, not from the context).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..context import context_from_result, result_from_annotations
from ..context.from_annotations import record_extra
from ..infer.api import GrounderLike
from ..infer.grounder import calibrated_threshold
from ..ontology import Ontology, load_ontology
from .answer import answer_question
from .ask import MAX_COUNT
from .generate import QAItem, generate_questions, load_split, size_ok
from .parse import parse_question
from .question import QUESTION_KINDS, Answer

log = logging.getLogger(__name__)

_THIRDS = {
    "upper part": "upper",
    "anterior part": "upper",
    "middle part": "middle",
    "lower part": "lower",
    "posterior part": "lower",
}


def third_of(location: Any) -> str | None:
    """The vertical third a location sentence names ("patient's left, anterior part of the image" → upper)."""
    for words, third in _THIRDS.items():
        if isinstance(location, str) and words in location:
            return third
    return None


def is_correct(item: QAItem, answer: Answer) -> bool:
    """Whether ``answer`` matches the item's ground truth (sizes: ±20 % or ±3 mm, in mm only)."""
    if item.kind == "size":
        return answer.unit == "mm" and size_ok(answer.value, float(item.answer))
    if item.kind == "location":
        return third_of(answer.value) == item.answer
    if item.kind in ("presence", "count"):  # bool vs int: True must not pass for a count of 1
        return type(answer.value) is type(item.answer) and answer.value == item.answer
    return answer.value == item.answer


def evaluate_vqa(
    grounder: GrounderLike,
    dataset_dir: str | Path,
    *,
    split: str = "test",
    score_threshold: float | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    ontology: Ontology | None = None,
) -> dict[str, Any]:
    """Accuracy per question kind, from predictions and from the ground truth (the ceiling).

    Args:
        grounder: a :class:`~medglip.infer.api.GrounderLike` (``medglip.infer.Grounder``); its
            ``ground_one`` grounds each image.
        dataset_dir: output folder of ``medglip build``.
        split: the split to ask about.
        score_threshold: boxes below it are not findings (the ground truth scores 1.0); None: the
            checkpoint's calibrated threshold of each phrase (``grounder.threshold_for``).
        seed: for the absent phrases of :func:`generate_questions`.
        out: folder for ``vqa_metrics.json`` and ``vqa_metrics.md``; None writes nothing.
        ontology: the ontology questions are linked with (default: the shipped one).

    Returns:
        ``{"dataset", "split", "score_threshold", "n_questions", "by_kind": {kind: {"n",
        "accuracy_predicted", "accuracy_ground_truth"}}, "overall": {...}, "items": [...]}``.
    """
    onto = ontology or load_ontology()
    dataset_dir = Path(dataset_dir)
    items = generate_questions(dataset_dir, split=split, seed=seed, ontology=onto)
    coco, by_image, cats = load_split(dataset_dir, split)
    records = {int(r["id"]): r for r in coco["images"]}
    per_image: dict[int, list[QAItem]] = defaultdict(list)
    for it in items:
        per_image[it.image_id].append(it)

    rows: list[dict[str, Any]] = []
    for iid, its in per_image.items():
        rec = records[iid]
        questions = [parse_question(it.question, ontology=onto, modality=rec.get("modality")) for it in its]
        phrases = list(dict.fromkeys(p for q in questions for p in q.phrases))
        thr = calibrated_threshold(grounder, phrases) if score_threshold is None else float(score_threshold)
        result = grounder.ground_one(
            str(dataset_dir / "images" / rec["file_name"]),
            phrases,
            modality=rec.get("modality"),
            top_k=MAX_COUNT,
            score_threshold="calibrated" if score_threshold is None else thr,
        )
        result.extra = {**(result.extra or {}), **record_extra(rec)}
        pred = context_from_result(result, score_threshold=thr, max_per_phrase=MAX_COUNT, ontology=onto)
        gt_res = result_from_annotations(rec, by_image[iid], cats, phrases=phrases, pixels=result.pixels)
        gt = context_from_result(
            gt_res, score_threshold=thr, max_per_phrase=MAX_COUNT, source="ground truth", ontology=onto
        )
        for it, q in zip(its, questions, strict=True):
            a_pred, a_gt = answer_question(q, pred), answer_question(q, gt)
            rows.append(
                {
                    **it.to_json(),
                    "predicted": a_pred.value,
                    "predicted_text": a_pred.text,
                    "correct_predicted": is_correct(it, a_pred),
                    "ground_truth": a_gt.value,
                    "correct_ground_truth": is_correct(it, a_gt),
                }
            )
    used = calibrated_threshold(grounder, ["*"]) if score_threshold is None else float(score_threshold)
    metrics: dict[str, Any] = {
        "dataset": str(dataset_dir),
        "split": split,
        "score_threshold": used,
        "calibrated": score_threshold is None,
        "n_questions": len(rows),
        "by_kind": _by_kind(rows),
        "overall": _summary(rows),
        "items": rows,
    }
    o = metrics["overall"]
    log.info(
        "VQA %s/%s: %d questions, accuracy %s (ground-truth ceiling %s)",
        dataset_dir.name,
        split,
        len(rows),
        o["accuracy_predicted"],
        o["accuracy_ground_truth"],
    )
    if out is not None:
        write_vqa_metrics(metrics, out)
    return metrics


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)

    def acc(key: str) -> float | None:
        return round(sum(r[key] for r in rows) / n, 4) if n else None

    return {
        "n": n,
        "accuracy_predicted": acc("correct_predicted"),
        "accuracy_ground_truth": acc("correct_ground_truth"),
    }


def _by_kind(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[r["kind"]].append(r)
    return {k: _summary(groups[k]) for k in QUESTION_KINDS if k in groups}


def vqa_markdown(metrics: dict[str, Any]) -> str:
    """The metrics as a markdown table (per kind, then overall)."""

    def pct(v: Any) -> str:
        return "–" if v is None else f"{100 * v:.1f} %"

    lines = [
        f"# VQA evaluation: {Path(metrics['dataset']).name} / {metrics['split']}",
        "",
        f"{metrics['n_questions']} questions generated from the ground truth; boxes scoring at least "
        f"{metrics['score_threshold']:.2f} count as findings. The ceiling answers the same questions from "
        "the ground-truth boxes with the same code.",
        "",
        "| kind | questions | accuracy (predicted) | ceiling (ground truth) |",
        "|---|---:|---:|---:|",
    ]
    for kind, m in {**metrics["by_kind"], "overall": metrics["overall"]}.items():
        lines.append(f"| {kind} | {m['n']} | {pct(m['accuracy_predicted'])} | {pct(m['accuracy_ground_truth'])} |")
    return "\n".join(lines) + "\n"


def write_vqa_metrics(metrics: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write ``vqa_metrics.json`` and ``vqa_metrics.md`` into ``out`` (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "vqa_metrics.json", "md": out / "vqa_metrics.md"}
    paths["json"].write_text(json.dumps(metrics, indent=1, default=str), encoding="utf-8")
    paths["md"].write_text(vqa_markdown(metrics), encoding="utf-8")
    return paths
