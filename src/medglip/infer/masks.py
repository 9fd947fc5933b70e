"""Where a :class:`~medglip.infer.grounder.Grounder`'s masks come from, and which boxes a result keeps.

- :data:`Masks`: the ``masks`` argument of ``ground`` / ``ground_volume`` / ``ground_file``, the ONE
  setting that chooses masks: False / ``"none"`` (none), True / ``"auto"`` (the checkpoint's own mask
  head when it has one, else LiteMedSAM), ``"head"`` (the mask head), ``"medsam"`` (LiteMedSAM given
  each box, or the stand-in the Grounder was given as ``refiner``).
- :func:`mask_option`: a CLI / protocol option → the ``masks`` argument.
- :func:`select_boxes` / :class:`KeepBoxes`: per phrase, the boxes a result keeps (threshold, top-k);
  the Grounder applies it per prompt chunk before the mask head runs, so that only kept boxes get a
  mask, and again on the whole result (the same boxes: each phrase is in exactly one chunk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..errors import MedglipError
from .detections import Detections

#: Where masks come from (see the module docstring).
Masks = bool | Literal["auto", "head", "medsam", "none"] | None

#: The error of ``masks="head"`` on a checkpoint without a mask head.
NO_HEAD = (
    "this checkpoint has no mask head (it was trained without one: medglip train --mask-weight > 0 "
    "adds it); use masks='medsam' (LiteMedSAM)"
)


def mask_option(value: Masks) -> Masks:
    """A mask option of the CLI / protocol (``none``, ``auto``, ``head``, ``medsam``, or a bool) → the
    ``masks`` argument of ``ground`` (False, ``"auto"``, ``"head"`` or ``"medsam"``).

    Raises:
        MedglipError: an unknown option.
    """
    key = value if isinstance(value, bool) or value is None else str(value).strip().lower()
    table: dict[Any, Masks] = {
        None: False,
        False: False,
        "none": False,
        True: "auto",
        "auto": "auto",
        "head": "head",
        "medsam": "medsam",
    }
    if key not in table:
        raise MedglipError(f"masks must be none, auto, head or medsam, not {value!r}")
    return table[key]


def select_boxes(
    threshold_for: Callable[[str], float],
    boxes: np.ndarray,
    scores: np.ndarray,
    pids: np.ndarray,
    phrases: tuple[str, ...],
    score_threshold: Any,
    top_k: int | None,
) -> list[np.ndarray]:
    """Per phrase, the indices of the boxes a result keeps, best first: boxes not clipped to nothing,
    scoring at least the phrase's threshold (``"calibrated"``: ``threshold_for(phrase)``; None: all),
    at most ``top_k``."""
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # clipped to nothing → dropped
    out = []
    for k, phrase in enumerate(phrases):
        thr = threshold_for(phrase) if score_threshold == "calibrated" else score_threshold
        keep = valid if thr is None else valid & (scores >= float(thr))
        sel = np.nonzero(keep & (pids == k))[0]
        sel = sel[np.argsort(-scores[sel], kind="stable")]
        if top_k is not None:
            sel = sel[: max(0, int(top_k))]
        out.append(sel)
    return out


@dataclass
class KeepBoxes:
    """:func:`select_boxes` of one call, applied to one prompt chunk's detections."""

    threshold_for: Callable[[str], float]
    phrases: tuple[str, ...]
    score_threshold: Any
    top_k: int | None

    def indices(self, dets: Detections) -> np.ndarray:
        """Sorted indices of the kept detections (boxes in original pixels, phrase indices global)."""
        sel = select_boxes(
            self.threshold_for, dets.boxes, dets.scores, dets.phrase_ids, self.phrases, self.score_threshold, self.top_k
        )
        return np.sort(np.concatenate(sel)) if sel else np.zeros(0, np.int64)
