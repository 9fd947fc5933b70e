"""Validation of predictions and queries handed to the evaluator.

The prediction format is the COCO result format with a ``phrase`` instead of a category id
(docs/model_api.md, "Predictions for evaluation")::

    {"image_id": int, "phrase": str, "bbox": [x, y, w, h], "score": float,
     "segmentation": {"size": [H, W], "counts": str | bytes}   # optional, COCO RLE}

Every check raises :class:`PredictionError` naming the entry at fault (its index in the list and its
``image_id`` / ``phrase`` where readable) and why, so a broken prediction file is fixed in one go
rather than discovered deep inside pycocotools.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from pathlib import Path
from typing import Any

from ..errors import MedglipError

REQUIRED_KEYS = ("image_id", "phrase", "bbox", "score")


class PredictionError(MedglipError):
    """A prediction (or a query) handed to the evaluator is malformed or refers to an unknown image."""


class EvaluationError(MedglipError):
    """The evaluation itself cannot run (empty split, unreadable ground truth, ambiguous categories)."""


def _describe(index: int, pred: Any) -> str:
    if isinstance(pred, Mapping):
        return f"prediction #{index} (image_id={pred.get('image_id')!r}, phrase={pred.get('phrase')!r})"
    return f"prediction #{index}"


def _is_int(value: Any) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _check_rle(seg: Any, size: tuple[int, int], where: str) -> dict:
    if not isinstance(seg, Mapping) or "size" not in seg or "counts" not in seg:
        raise PredictionError(f"{where}: 'segmentation' must be a COCO RLE dict with 'size' and 'counts'")
    seg_size = list(seg["size"])
    if seg_size != list(size):
        raise PredictionError(f"{where}: segmentation size {seg_size} differs from the image's [H, W] {list(size)}")
    counts = seg["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    if not isinstance(counts, (str, list)):
        raise PredictionError(f"{where}: segmentation 'counts' must be a string (compressed RLE) or a list")
    return {"size": [int(size[0]), int(size[1])], "counts": counts}


def validate_predictions(
    predictions: Iterable[Mapping[str, Any]],
    image_sizes: Mapping[int, tuple[int, int]],
) -> list[dict]:
    """Check every prediction and return clean copies (plain ``int``/``float``/``str`` values).

    Args:
        predictions: the prediction dicts (see the module docstring).
        image_sizes: ``image_id -> (height, width)`` of the ground-truth split; a prediction on any
            other image id is an error (it would otherwise be silently dropped by pycocotools).

    Returns:
        A list of dicts with keys ``image_id``, ``phrase``, ``bbox`` (list of 4 floats), ``score`` and,
        when given, ``segmentation`` (RLE with ``counts`` as text).

    Raises:
        PredictionError: missing key, non-integer or unknown ``image_id``, empty phrase, a bbox that is
            not 4 finite numbers or has a negative width/height, a NaN/inf score, or a bad RLE.
    """
    if isinstance(predictions, (str, bytes, Mapping)):
        raise PredictionError("predictions must be a list of dicts, not a single string or dict")
    clean: list[dict] = []
    for index, pred in enumerate(predictions):
        where = _describe(index, pred)
        if not isinstance(pred, Mapping):
            raise PredictionError(f"{where}: expected a dict, got {type(pred).__name__}")
        missing = [k for k in REQUIRED_KEYS if k not in pred]
        if missing:
            raise PredictionError(f"{where}: missing key(s) {missing}")
        image_id = pred["image_id"]
        if not _is_int(image_id):
            raise PredictionError(f"{where}: image_id must be an integer, got {image_id!r}")
        if int(image_id) not in image_sizes:
            raise PredictionError(f"{where}: image_id {image_id} is not an image of this split")
        phrase = pred["phrase"]
        if not isinstance(phrase, str) or not phrase.strip():
            raise PredictionError(f"{where}: phrase must be a non-empty string, got {phrase!r}")
        bbox = pred["bbox"]
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(_is_finite(v) for v in bbox):
            raise PredictionError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        x, y, w, h = (float(v) for v in bbox)
        if w < 0 or h < 0:
            raise PredictionError(f"{where}: bbox has a negative width or height ([x, y, w, h] = {list(bbox)})")
        score = pred["score"]
        if not _is_finite(score):
            raise PredictionError(f"{where}: score must be a finite number, got {score!r}")
        item: dict[str, Any] = {
            "image_id": int(image_id),
            "phrase": phrase.strip(),
            "bbox": [x, y, w, h],
            "score": float(score),
        }
        if pred.get("segmentation") is not None:
            item["segmentation"] = _check_rle(pred["segmentation"], image_sizes[int(image_id)], where)
        clean.append(item)
    return clean


def validate_queries(
    queries: Mapping[Any, Iterable[str]] | None,
    image_sizes: Mapping[int, tuple[int, int]],
) -> dict[int, list[str]] | None:
    """Normalise ``image_id -> queried phrases`` (JSON string keys become ints); ``None`` stays ``None``.

    Raises:
        PredictionError: an image id that is not an integer or not in the split, or a phrase that is
            not a non-empty string.
    """
    if queries is None:
        return None
    if not isinstance(queries, Mapping):
        raise PredictionError(f"queries must be a dict image_id -> list of phrases, got {type(queries).__name__}")
    out: dict[int, list[str]] = {}
    for key, phrases in queries.items():
        try:
            image_id = int(key)
        except (TypeError, ValueError):
            raise PredictionError(f"queries: image id {key!r} is not an integer") from None
        if image_id not in image_sizes:
            raise PredictionError(f"queries: image id {image_id} is not an image of this split")
        if isinstance(phrases, str) or not isinstance(phrases, Iterable):
            raise PredictionError(f"queries[{image_id}]: expected a list of phrases, got {phrases!r}")
        clean = []
        for phrase in phrases:
            if not isinstance(phrase, str) or not phrase.strip():
                raise PredictionError(f"queries[{image_id}]: phrase must be a non-empty string, got {phrase!r}")
            clean.append(phrase.strip())
        out[image_id] = list(dict.fromkeys(clean))
    return out


def load_predictions(source: str | Path | Iterable[Mapping[str, Any]]) -> list:
    """Predictions from a JSON file (a list, or ``{"predictions": [...]}``) or an in-memory list."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise PredictionError(f"{path}: cannot read predictions ({exc})") from exc
        if isinstance(data, Mapping) and "predictions" in data:
            data = data["predictions"]
        if not isinstance(data, list):
            raise PredictionError(f"{path}: expected a JSON list of predictions")
        return data
    return list(source)
