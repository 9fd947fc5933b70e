"""What :meth:`Grounder.ground` returns: per image, per phrase, boxes / scores / masks, and the pixels."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.masks import encode_rle
from ..core.pipeline import picture
from ..core.text import clean_phrase


@dataclass
class PhraseGrounding:
    """The detections of one phrase on one image, best first.

    Attributes:
        phrase: the phrase as asked (whitespace-normalised).
        boxes: ``(K, 4)`` float32 xyxy in the ORIGINAL image's pixel coordinates (pixel edges:
            a box covering columns 3..7 is ``x0 = 3, x1 = 8``), clipped to the image.
        scores: ``(K,)`` float32 in ``[0, 1]``, descending.
        masks: ``(K, H, W)`` bool when masks were asked for, else None.
    """

    phrase: str
    boxes: np.ndarray
    scores: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def top_box(self) -> np.ndarray | None:
        """The highest-scoring box ``(4,)`` or None when nothing was found."""
        return self.boxes[0] if len(self) else None

    def to_json(self, *, masks_as_rle: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phrase": self.phrase,
            "boxes": [[round(float(v), 2) for v in b] for b in self.boxes],
            "scores": [round(float(s), 5) for s in self.scores],
        }
        if self.masks is not None and masks_as_rle:
            out["masks"] = [encode_rle(m) for m in self.masks]
        return out


@dataclass
class GroundingResult:
    """Grounding of several phrases on one image.

    Attributes:
        phrases: the phrases, in the order asked.
        groundings: one :class:`PhraseGrounding` per phrase, same order.
        image_size: ``(H, W)`` of the original image.
        modality: the modality code the model used.
        modality_source: ``caller`` / ``metadata`` / ``classifier``.
        source: the input (a path, ``array``, ``PIL``).
        extra: how the pixels were made (``intensity``), ``pixel_spacing`` when known and, for a
            one-slice NIfTI / NRRD, its display ``plane`` and the ``pixel_to_voxel`` /
            ``pixel_to_world`` 3×4 matrices.
        pixels: the model pixels the model saw (:func:`medglip.core.pipeline.model_pixels`), uint8
            ``(H, W)`` or ``(H, W, 3)`` — draw with :meth:`picture`; None for results not made from
            an image (e.g. ground truth).
        raw: the raw values of the input (for pictures in windows that are not input channels).
        dicom_headers: a DICOM input's header (no pixel data), what a DICOM-SEG of the masks references.
        untrained: one line per phrase or modality of this call the model was never trained on
            (:meth:`medglip.infer.Grounder.untrained`): its boxes are not as trustworthy as the rest.
        thresholds: the score threshold the Grounder applied to each phrase (None: none); empty for
            results not made by a Grounder (e.g. ground truth).
    """

    phrases: tuple[str, ...]
    groundings: list[PhraseGrounding]
    image_size: tuple[int, int]
    modality: str
    modality_source: str = "caller"
    source: str = "array"
    extra: dict[str, Any] = field(default_factory=dict)
    pixels: np.ndarray | None = field(default=None, repr=False, compare=False)
    raw: np.ndarray | None = field(default=None, repr=False, compare=False)
    dicom_headers: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    untrained: tuple[str, ...] = ()
    thresholds: dict[str, float | None] = field(default_factory=dict)

    def picture(self, window: Any = None) -> np.ndarray:
        """The image as people see it: CT in one window (soft tissue unless ``window`` names another),
        other modalities as the model saw them (:func:`medglip.core.pipeline.picture`).

        Raises:
            MedglipError: the result carries no pixels, or the window cannot be made.
        """
        if self.pixels is None:
            from ..errors import MedglipError

            raise MedglipError(f"the grounding result of {self.source} carries no pixels to draw")
        return picture(self.pixels, self.extra.get("intensity"), window=window, raw=self.raw)

    def __getitem__(self, key: str | int) -> PhraseGrounding:
        """``res["liver"]`` or ``res[0]``."""
        if isinstance(key, int):
            return self.groundings[key]
        for g in self.groundings:
            if g.phrase == key:
                return g
        norm = clean_phrase(key)
        for g in self.groundings:
            if g.phrase == norm:
                return g
        raise KeyError(f"phrase {key!r} not in this result (phrases: {list(self.phrases)})")

    def __iter__(self) -> Iterator[PhraseGrounding]:
        return iter(self.groundings)

    def __len__(self) -> int:
        return len(self.groundings)

    def to_json(self, *, masks_as_rle: bool = True) -> dict[str, Any]:
        """A JSON-ready dict (masks as COCO RLE with text counts)."""
        return {
            "source": self.source,
            "image_size": list(self.image_size),
            "modality": self.modality,
            "modality_source": self.modality_source,
            "phrases": [g.to_json(masks_as_rle=masks_as_rle) for g in self.groundings],
            "untrained": list(self.untrained),
            "thresholds": dict(self.thresholds),
            **self.extra,
        }

    def dumps(self, **kw: Any) -> str:
        return json.dumps(self.to_json(), **kw)

    def to_predictions(self, image_id: int, *, max_per_phrase: int | None = None) -> list[dict[str, Any]]:
        """COCO result records with ``phrase`` (docs/model_api.md "Predictions for evaluation"),
        at most ``max_per_phrase`` per phrase (best first; None: all)."""
        out = []
        for g in self.groundings:
            for i in range(min(len(g), len(g) if max_per_phrase is None else max(0, int(max_per_phrase)))):
                x0, y0, x1, y1 = (float(v) for v in g.boxes[i])
                rec: dict[str, Any] = {
                    "image_id": int(image_id),
                    "phrase": g.phrase,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(g.scores[i]),
                }
                if g.masks is not None:
                    rec["segmentation"] = encode_rle(g.masks[i])
                out.append(rec)
        return out
