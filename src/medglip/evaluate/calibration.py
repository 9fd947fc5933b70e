"""Score thresholds chosen on held-out scores: the one rule ``medglip calibrate``, the held-out protocol
(:mod:`medglip.protocol`) and ``medglip adapt`` use, and the writing of them into a run's ``config.json``.

A present pair (an image and a phrase it shows) counts as found when its top box hits (IoU ≥ 0.5) and
scores at least the threshold; an absent pair (a phrase asked on an image that does not show it) is a
false positive when its top score reaches the threshold.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.files import atomic_write_text, read_json
from ..core.rules import FINDING_THRESHOLD

if TYPE_CHECKING:
    from .run import PhraseSet

#: Candidate thresholds of :func:`choose_thresholds`.
GRID = tuple(round(t, 2) for t in np.arange(0.05, 0.96, 0.01))


def choose_thresholds(
    present: Sequence[tuple[str, float, bool]],
    absent: Sequence[tuple[str, float]],
    *,
    min_pairs: int = 5,
    max_fpr: float | None = None,
) -> dict[str, float]:
    """Score thresholds from pooled held-out scores, maximising Youden's J (TPR − FPR), or, with
    ``max_fpr``, the TPR among the thresholds whose absent-phrase false-positive rate is at most ``max_fpr``.

    Args:
        present: ``(phrase, top score, hit)`` of every present pair (hit: top box IoU ≥ 0.5); a
            present pair counts as found when ``hit`` and its score reaches the threshold.
        absent: ``(phrase, top score)`` of every queried absent pair (score 0 when nothing came).
        min_pairs: a phrase gets its own threshold only with this many present AND absent pairs.
        max_fpr: the false-positive budget (e.g. 0.1); None: Youden's J.

    Returns:
        ``{"*": t, phrase: t, ...}`` (ties: the highest threshold, fewest false positives).
    """

    def best(pos: list[tuple[float, bool]], neg: list[float]) -> float:
        if not pos or not neg:
            return FINDING_THRESHOLD
        scores = []
        for t in GRID:
            tpr = sum(hit and s >= t for s, hit in pos) / len(pos)
            fpr = sum(s >= t for s in neg) / len(neg)
            if max_fpr is None:
                scores.append((tpr - fpr, t))
            elif fpr <= max_fpr:
                scores.append((tpr, t))
        return max(scores)[1] if scores else float(GRID[-1])

    out = {"*": best([(s, h) for _, s, h in present], [s for _, s in absent])}
    for phrase in sorted({p for p, _, _ in present}):
        pos = [(s, h) for p, s, h in present if p == phrase]
        neg = [s for p, s in absent if p == phrase]
        if len(pos) >= min_pairs and len(neg) >= min_pairs:
            out[phrase] = best(pos, neg)
    return out


def pair_scores(coco: dict, preds: list[dict], queries: dict[int, list[str]]) -> tuple[list, list]:
    """``present`` / ``absent`` pair scores of one evaluated split (see :func:`choose_thresholds`)."""
    from ..core.boxes import box_iou, xywh_to_xyxy

    name = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    gt: dict[tuple[int, str], list] = defaultdict(list)
    for a in coco["annotations"]:
        gt[(int(a["image_id"]), name[int(a["category_id"])])].append(a["bbox"])
    top: dict[tuple[int, str], dict] = {}
    for p in preds:
        key = (int(p["image_id"]), p["phrase"])
        if key not in top or p["score"] > top[key]["score"]:
            top[key] = p
    present, absent = [], []
    for iid, asked in queries.items():
        for phrase in asked:
            best = top.get((int(iid), phrase))
            score = 0.0 if best is None else float(best["score"])
            if (int(iid), phrase) in gt:
                hit = (
                    best is not None
                    and float(box_iou(xywh_to_xyxy([best["bbox"]]), xywh_to_xyxy(gt[(int(iid), phrase)])).max()) >= 0.5
                )
                present.append((phrase, score, hit))
            else:
                absent.append((phrase, score))
    return present, absent


def evaluate_run(
    run: Path, dataset_dir: Path, split: str, out: Path, *, masks: bool | str = False, phrases: PhraseSet = "all"
) -> tuple[dict[str, Any], list, list]:
    """Evaluate ``run`` on a split; ``phrases``: which absent phrases are asked on each image
    (:func:`medglip.evaluate.plan_queries`: ``all`` every dataset phrase, ``case`` those of the same
    patient and the image's known-absent ones); ``masks``: none, ``head`` (the checkpoint's mask head),
    ``medsam`` (LiteMedSAM) or ``auto`` → mask Dice."""
    from ..infer import Grounder, mask_option
    from .run import evaluate, predict_dataset, read_split

    asked = mask_option(masks)  # the one setting that chooses masks; LiteMedSAM is built only if asked
    g = Grounder.from_pretrained(run)
    preds, queries = predict_dataset(g, dataset_dir, split=split, phrases=phrases, masks=asked, max_per_phrase=5)
    metrics = evaluate(dataset_dir, preds, split=split, queries=queries, out=out, score_threshold=g.threshold_for("*"))
    present, absent = pair_scores(read_split(dataset_dir, split), preds, queries)
    return metrics, present, absent


def set_thresholds(run: Path, thresholds: dict[str, float]) -> None:
    """Write calibrated thresholds into ``run/config.json`` (the model the run publishes); the rest
    of the file (the weights' SHA-256 included) is kept, the settings are sealed again (their SHA-256,
    :mod:`medglip.model.run_checks`), and the result is validated."""
    from ..model.checkpoint import read_config
    from ..model.run_checks import seal

    read_config(run)  # a valid checkpoint config to start from
    path = Path(run) / "config.json"
    doc = read_json(path)
    doc["finding_thresholds"] = [[str(p), round(float(t), 4)] for p, t in sorted(thresholds.items())]
    atomic_write_text(path, json.dumps(seal(doc), indent=2) + "\n")
    read_config(run)  # still valid
