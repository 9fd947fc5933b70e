"""Evaluate a built split: run a grounder over it (:func:`predict_dataset`) and score it (:func:`evaluate`)."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..core.rules import FINDING_THRESHOLD
from ..infer.api import GrounderLike
from ..infer.masks import Masks
from ..infer.results import GroundingResult
from .metrics import compute_metrics
from .predictions import EvaluationError, PredictionError, load_predictions
from .report import write_report

log = logging.getLogger(__name__)

PhraseSet = Literal["case", "modality", "all"]


def read_split(dataset_dir: str | Path, split: str) -> dict:
    """The COCO dict ``dataset_dir/annotations/<split>.json``.

    Raises:
        EvaluationError: the file is missing or is not JSON.
    """
    path = Path(dataset_dir) / "annotations" / f"{split}.json"
    if not path.is_file():
        raise EvaluationError(f"{path}: no such split file (is {dataset_dir} a dataset built by `medglip build`?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EvaluationError(f"{path}: not valid JSON ({exc})") from exc


def evaluate(
    dataset_dir: str | Path,
    predictions: Sequence[Mapping[str, Any]] | str | Path,
    *,
    split: str = "test",
    queries: Mapping[Any, Sequence[str]] | None = None,
    out: str | Path | None = None,
    score_threshold: float = FINDING_THRESHOLD,
) -> dict[str, Any]:
    """Score predictions on one split of a built dataset, optionally writing the report.

    Args:
        dataset_dir: output folder of ``medglip build``.
        predictions: prediction dicts (docs/model_api.md) or a JSON file of them.
        split: which ``annotations/<split>.json`` to evaluate against.
        queries: ``image_id -> phrases asked on that image`` (as returned by :func:`predict_dataset`);
            needed for the absent-phrase false-positive rate.
        out: folder for ``metrics.json``, ``metrics.md`` and ``pr_curve.png`` (``None``: write nothing).
        score_threshold: see :func:`medglip.evaluate.metrics.compute_metrics`.

    Returns:
        The metrics dict of :func:`~medglip.evaluate.metrics.compute_metrics` plus ``dataset`` and ``split``.
    """
    coco = read_split(dataset_dir, split)
    metrics: dict[str, Any] = {"dataset": str(dataset_dir), "split": split}
    metrics.update(
        compute_metrics(coco, load_predictions(predictions), queries=queries, score_threshold=score_threshold)
    )
    o = metrics["overall"]
    log.info(
        "%s/%s: AP %s AP50 %s Acc@0.5 %s mIoU %s Dice %s absent-FP %s",
        dataset_dir,
        split,
        o["AP"],
        o["AP50"],
        o["acc50"],
        o["miou"],
        o["dice"],
        o["absent_fp_rate"],
    )
    if out is not None:
        write_report(metrics, out, title=f"Grounding evaluation: {Path(dataset_dir).name} / {split}")
    return metrics


def plan_queries(
    coco: Mapping[str, Any],
    *,
    phrases: PhraseSet = "case",
    negatives: bool | int = True,
    seed: int = 0,
) -> dict[int, list[str]]:
    """The phrases to ask on each image: its GT phrases, then absent ones.

    Args:
        coco: the split's COCO dict.
        phrases: where absent candidates come from — ``"case"``: phrases annotated anywhere in the
            same case (``source``, ``case_id``), e.g. the tumour of other slices; ``"modality"``: phrases
            annotated on any image of the same modality in the split; ``"all"``: every category. In
            every mode an image's own ``absent`` phrases (known absent: a tumour-free slice's tumour,
            a healthy template's findings) are candidates too.
        negatives: ``True``: all absent candidates; ``False``/``0``: none (pure grounding); an int n:
            at most n per image, drawn with ``seed``.

    Returns:
        ``image_id -> phrases`` (GT phrases sorted, then absent ones sorted); images with nothing to
        ask are left out.
    """
    if phrases not in ("case", "modality", "all"):
        raise EvaluationError(f"phrases must be 'case', 'modality' or 'all', got {phrases!r}")
    cat_name = {int(c["id"]): str(c["name"]).strip() for c in coco["categories"]}
    on_image: dict[int, set[str]] = defaultdict(set)
    for ann in coco["annotations"]:
        on_image[int(ann["image_id"])].add(cat_name[int(ann["category_id"])])

    def key(img: Mapping[str, Any]) -> Any:
        if phrases == "case":
            return (img.get("source"), img.get("case_id"))
        return img.get("modality") if phrases == "modality" else None

    pool: dict[Any, set[str]] = defaultdict(set)
    for img in coco["images"]:
        pool[key(img)] |= on_image[int(img["id"])]
    rng = np.random.default_rng(seed)
    limit = None if negatives is True else int(negatives)
    plan: dict[int, list[str]] = {}
    for img in sorted(coco["images"], key=lambda i: int(i["id"])):
        iid = int(img["id"])
        present = sorted(on_image[iid])
        candidates = set(cat_name.values()) if phrases == "all" else set(pool[key(img)])
        candidates |= {str(p).strip() for p in img.get("absent") or ()}  # a negative image's own absent phrase
        absent = sorted(candidates - on_image[iid])
        if limit is not None and len(absent) > limit:
            absent = sorted(rng.choice(absent, size=limit, replace=False).tolist())
        if present or absent:
            plan[iid] = present + absent
    return plan


def predict_dataset(
    grounder: GrounderLike,
    dataset_dir: str | Path,
    *,
    split: str = "test",
    phrases: PhraseSet = "case",
    negatives: bool | int = True,
    masks: Masks = False,
    max_per_phrase: int | None = 100,
    seed: int = 0,
) -> tuple[list[dict], dict[int, list[str]]]:
    """Ground the planned phrases (:func:`plan_queries`) on every image of a split.

    Images asking the same phrases in the same modality are grounded together
    (``grounder.ground([paths], phrases, ...)``, a list in, a list of
    :class:`~medglip.infer.results.GroundingResult` out; boxes xyxy in original pixels) and
    converted with :meth:`GroundingResult.to_predictions`.

    Args:
        grounder: a :class:`~medglip.infer.api.GrounderLike` (``medglip.infer.Grounder``); only its
            list-in, list-out ``ground`` is used.
        dataset_dir: output folder of ``medglip build``.
        split: which split to run on.
        phrases, negatives, seed: see :func:`plan_queries`.
        masks: ask the grounder for masks (RLE ``segmentation`` in the predictions → Dice, mask AP):
            True (its default source), ``"head"`` (the checkpoint's mask head) or ``"medsam"``.
        max_per_phrase: keep the best this many boxes per (image, phrase) (``None``: all).

    Returns:
        ``(predictions, queries)`` ready for :func:`evaluate`.

    Raises:
        PredictionError: the grounder returned something else than one GroundingResult per image.
    """
    dataset_dir = Path(dataset_dir)
    coco = read_split(dataset_dir, split)
    plan = plan_queries(coco, phrases=phrases, negatives=negatives, seed=seed)
    images = {int(img["id"]): img for img in coco["images"]}
    groups: dict[tuple[str | None, tuple[str, ...]], list[int]] = defaultdict(list)
    for iid, names in plan.items():
        groups[(images[iid].get("modality"), tuple(names))].append(iid)
    predictions: list[dict] = []
    done = 0
    for (modality, asked), ids in groups.items():
        paths = [str(dataset_dir / "images" / images[i]["file_name"]) for i in ids]
        # top_k bounds the boxes per phrase, and so the mask refinements on a slow CPU
        results = grounder.ground(
            paths, list(asked), modality=modality, masks=masks, top_k=max_per_phrase, score_threshold=None
        )  # the whole ranking: AP needs low scores too
        if (
            not isinstance(results, list)
            or len(results) != len(ids)
            or not all(isinstance(r, GroundingResult) for r in results)
        ):
            raise PredictionError(
                f"the grounder must return one GroundingResult per image of a list, got "
                f"{type(results).__name__} for {len(ids)} images"
            )
        for iid, res in zip(ids, results, strict=True):
            predictions += res.to_predictions(iid, max_per_phrase=max_per_phrase)
        done += len(ids)
        log.info("grounded %d/%d images of %s/%s", done, len(plan), dataset_dir.name, split)
    predictions.sort(key=lambda p: (p["image_id"], plan[p["image_id"]].index(p["phrase"]), -p["score"]))
    return predictions, plan
