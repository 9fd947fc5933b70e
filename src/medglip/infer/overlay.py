"""Draw a grounding result on its image (boxes, masks, phrase + score), reusing the dataset renderer."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from ..build.instances import encode_rle
from ..show import render_image
from .results import GroundingResult


def draw_result(pixels: np.ndarray, result: GroundingResult, *, max_per_phrase: int = 3) -> Image.Image:
    """An RGB picture of ``pixels`` (uint8 ``(H, W[, 3])``) with the top boxes of every phrase."""
    anns: list[dict[str, Any]] = []
    cats: dict[int, dict] = {}
    for pid, g in enumerate(result.groundings, start=1):
        cats[pid] = {"id": pid, "name": g.phrase}
        for k in range(min(len(g), max_per_phrase)):
            x0, y0, x1, y1 = (float(v) for v in g.boxes[k])
            ann = {"id": len(anns) + 1, "category_id": pid, "phrase": f"{g.phrase} {g.scores[k]:.2f}",
                   "bbox": [x0, y0, x1 - x0, y1 - y0]}
            if g.masks is not None:
                ann["segmentation"] = encode_rle(g.masks[k])
            anns.append(ann)
    h, w = pixels.shape[:2]
    record = {"id": 0, "file_name": str(result.source), "width": w, "height": h, "source": str(result.source),
              "case_id": "", "modality": result.modality, "slice_plane": "2d"}
    return render_image(None, record, anns, cats, image=Image.fromarray(pixels))
