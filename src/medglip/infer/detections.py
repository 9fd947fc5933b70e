"""``Detections``: the boxes of one image for one call, as they travel inside the Grounder.

One typed bundle instead of positional tuples: boxes in the ORIGINAL image's pixels, their scores,
the index of each box's phrase in the call's phrase list, and (from the mask head) their masks.
Selecting boxes returns a new bundle; nothing is edited in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import MedglipError


@dataclass(frozen=True)
class Detections:
    """Detections of one image (one prompt chunk, or the whole call once concatenated).

    Attributes:
        boxes: ``(K, 4)`` float32 xyxy in the original image's pixels (pixel edges).
        scores: ``(K,)`` float32.
        phrase_ids: ``(K,)`` int64, indices into the call's phrases (not the chunk's).
        masks: ``(K, H, W)`` bool of the mask head in original pixels, or None (no masks asked,
            or masks made later from the kept boxes, e.g. by LiteMedSAM).
    """

    boxes: np.ndarray
    scores: np.ndarray
    phrase_ids: np.ndarray
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "boxes", np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4))
        object.__setattr__(self, "scores", np.asarray(self.scores, dtype=np.float32).reshape(-1))
        object.__setattr__(self, "phrase_ids", np.asarray(self.phrase_ids, dtype=np.int64).reshape(-1))
        n = len(self.boxes)
        if len(self.scores) != n or len(self.phrase_ids) != n or (self.masks is not None and len(self.masks) != n):
            raise MedglipError(
                f"detections disagree in length: {n} boxes, {len(self.scores)} scores, "
                f"{len(self.phrase_ids)} phrase ids, "
                f"{'no' if self.masks is None else len(self.masks)} masks"
            )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def take(self, indices: np.ndarray) -> Detections:
        """The detections at ``indices`` (in that order)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Detections(
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            phrase_ids=self.phrase_ids[idx],
            masks=None if self.masks is None else self.masks[idx],
        )

    def with_masks(self, masks: np.ndarray) -> Detections:
        """The same detections with ``masks`` ``(K, H, W)``."""
        return Detections(
            boxes=self.boxes, scores=self.scores, phrase_ids=self.phrase_ids, masks=np.asarray(masks, dtype=bool)
        )

    @staticmethod
    def concat(parts: Sequence[Detections], image_size: tuple[int, int]) -> Detections:
        """The detections of several prompt chunks of one image; masks only when every part has them
        (an empty call gives ``(0, H, W)`` masks when ``image_size`` is known and none otherwise)."""
        if not parts:
            return Detections(boxes=np.zeros((0, 4)), scores=np.zeros(0), phrase_ids=np.zeros(0))
        with_masks = all(p.masks is not None for p in parts)
        h, w = image_size
        return Detections(
            boxes=np.concatenate([p.boxes for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            phrase_ids=np.concatenate([p.phrase_ids for p in parts]),
            masks=(
                np.concatenate([np.asarray(p.masks, bool).reshape(-1, h, w) for p in parts]) if with_masks else None
            ),
        )
