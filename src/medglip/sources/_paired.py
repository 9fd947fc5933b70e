"""Loading of 2D image + binary mask file pairs, shared by the Kvasir, ISIC and BUSI adapters.

The adapters put the per-mask label names into ``ref.options["mask_names"]`` (one per label path,
in order) and optional extras (``threshold``, ``gray``, ``channel``, ``meta``, ``may_be_empty``);
this module reads the pixels.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..case import Case, CaseRef
from ..errors import CaseError
from . import _common as C

log = logging.getLogger(__name__)


def load_pair(ref: CaseRef) -> Case:
    """Read a 2D image and its binary mask files; mask ``n`` (1-based) becomes label value ``n``.

    Masks are thresholded (``threshold`` option, default 127: JPEG masks are lossy). Several masks
    that overlap are layered into several label maps. A mask file whose name is ``None`` (e.g. BUSI
    ``normal``) must be empty; any foreground raises :class:`CaseError`. ``channel`` keeps one
    channel of a multi-channel image (LGG's FLAIR). With ``may_be_empty`` (a source whose images may
    show no finding, e.g. LGG's tumour-free slices) a case whose masks are all empty gets
    ``meta["no_finding"]`` and is built as a negative image; without it an empty mask stays an error.
    """
    from ..io import read_image, read_mask_2d

    ipath = C.require_file(Path(ref.image_paths[0]), "image file")
    image = read_image(ipath)
    if image.geometry.ndim != 2:
        raise CaseError(str(ipath), f"expected a 2D image, got spatial shape {image.spatial_shape}")
    array = C.collapse_gray(image.array) if ref.option("gray", False) else image.array
    channel = ref.option("channel")
    if channel is not None:
        if array.ndim != 3 or not 0 <= int(channel) < array.shape[-1]:
            raise CaseError(str(ipath), f"expected an image with a channel {channel}, got shape {array.shape}")
        array = np.ascontiguousarray(array[..., int(channel)])
    names = list(ref.option("mask_names", ()))
    threshold = int(ref.option("threshold", 127))

    def masks():
        for value, (mpath, name) in enumerate(zip(ref.label_paths, names, strict=False), start=1):
            mpath = C.require_file(Path(mpath), "mask file")
            mask = read_mask_2d(mpath, threshold=threshold)
            if mask.shape != image.spatial_shape:
                raise CaseError(
                    f"{ipath} / {mpath}", f"mask shape {mask.shape} does not match image shape {image.spatial_shape}"
                )
            if name is None:
                if np.any(mask):
                    raise CaseError(
                        str(mpath),
                        f"unknown label value 1 in {mpath}: this class has no "
                        "labelled finding, but the mask is not empty",
                    )
                continue
            yield value, name, mask != 0

    labels = C.layer_masks(masks(), image.spatial_shape, dtype=np.uint8)
    meta = dict(image.meta) if isinstance(image.meta, dict) else {}
    extra = ref.option("meta")
    if extra:
        meta.update(json.loads(extra))
    if ref.option("may_be_empty", False) and not any(lm.array.any() for lm in labels):
        meta["no_finding"] = True  # the source says an image may show nothing: a negative, not a broken mask
    return C.validated(
        Case(
            case_id=ref.case_id,
            source=ref.source,
            layout=ref.layout,
            modality=ref.modality or "",
            image=array,
            geometry=image.geometry,
            labels=labels,
            image_path=(str(ipath),),
            label_path=tuple(str(p) for p in ref.label_paths),
            split=ref.split,
            spacing_known=image.spacing_known,
            meta=_jsonable(meta),
        )
    )


def _jsonable(meta: dict) -> dict:
    """Keep only the JSON-serialisable entries of ``meta`` (``Case.meta`` must be)."""
    out = {}
    for k, v in meta.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[str(k)] = v
    return out
