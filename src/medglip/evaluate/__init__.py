"""Evaluation of phrase grounding on a built split: COCO AP (pycocotools), Acc@0.5, mIoU, mask Dice and
the absent-phrase false-positive rate, overall and by modality / hierarchy level / phrase.

    preds, queries = predict_dataset(grounder, "DATASET", split="test")
    metrics = evaluate("DATASET", preds, split="test", queries=queries, out="eval/")
"""

from .metrics import compute_metrics
from .predictions import EvaluationError, PredictionError, validate_predictions
from .report import metrics_markdown, write_report
from .run import evaluate, plan_queries, predict_dataset, read_split

__all__ = [
    "compute_metrics",
    "evaluate",
    "predict_dataset",
    "plan_queries",
    "read_split",
    "write_report",
    "metrics_markdown",
    "validate_predictions",
    "EvaluationError",
    "PredictionError",
]
