"""What each exported label is: phrase, score, colour, codes, size, volume and centre (the sidecar).

One :class:`Labelled` per exported object (label ``n`` = the ``n``-th object exported), made from
the object's exact mask (before any overlap rule), and the sidecar JSON ``labels.json`` around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.uid import generate_uid

from ..core.draw import category_color
from ..core.geometry import Geometry
from ..ontology import Ontology
from ..ontology.coding import LOCAL_SCHEME, LOCAL_SCHEME_NAME, Coding, coding_for

#: Words of the overlap rule, in the sidecar and the docs.
OVERLAP_RULE = (
    "one label per voxel: where objects overlap the higher score wins (equal scores: the lower "
    "label); each object's own mask is exact in the DICOM-SEG (one segment per object)"
)


@dataclass
class Labelled:
    """One exported object.

    Attributes:
        label: its value in the label map / image (1-based).
        phrase, score: what was grounded and how sure the model was.
        coding: its codes (:func:`medglip.ontology.coding_for`).
        color: display colour ``(r, g, b)``, the same in every output.
        tracking_uid: one UID naming the finding in the SEG and the SR.
        entry: its sidecar entry (JSON-ready).
        empty: True when its mask has no voxel (then it has no SEG segment / SR finding).
    """

    label: int
    phrase: str
    score: float
    coding: Coding
    color: tuple[int, int, int]
    tracking_uid: str
    entry: dict[str, Any]
    empty: bool

    @property
    def tracking_id(self) -> str:
        return f"finding {self.label}: {self.phrase}"[:64]


def _round(values: Any, nd: int = 3) -> list[float]:
    return [round(float(v), nd) for v in np.asarray(values, dtype=np.float64).ravel()]


def labelled(label: int, phrase: str, score: float, onto: Ontology, stats: dict[str, Any]) -> Labelled:
    """A :class:`Labelled` with its coding, colour and a new tracking UID; ``stats`` joins its entry."""
    coding = coding_for(onto, phrase)
    color = category_color(label - 1)
    uid = generate_uid()
    entry = {
        "label": label,
        "phrase": phrase,
        "score": round(float(score), 5),
        "color": list(color),
        "level": coding.level,
        "hierarchy": list(coding.hierarchy),
        "codes": coding.to_json(),
        "tracking_id": f"finding {label}: {phrase}"[:64],
        "tracking_uid": uid,
        **stats,
    }
    return Labelled(
        label,
        phrase,
        float(score),
        coding,
        color,
        uid,
        entry,
        empty=not stats.get("voxels", 0) and not stats.get("pixels", 0),
    )


def volume_stats(mask: Any, geometry: Geometry) -> dict[str, Any]:
    """Voxels, volume (mm³), LPS extent (mm, voxel edges), centre (voxel and LPS mm) and voxel box of
    a :class:`~medglip.infer.masks3d.ObjectMask`."""
    n = mask.voxels
    out: dict[str, Any] = {"voxels": n, "volume_mm3": round(n * float(np.prod(geometry.spacing)), 3)}
    box = mask.voxel_box()
    if box is None:
        out.update({"extent_mm": None, "centre_voxel": None, "centre_world_mm": None, "voxel_box": None})
        return out
    lo, hi = box[0] - 0.5, box[1] + 0.5  # voxel edges
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    world = geometry.index_to_world(corners)
    centre = mask.centroid()
    out.update(
        {
            "extent_mm": _round(world.max(0) - world.min(0)),
            "centre_voxel": _round(centre),
            "centre_world_mm": _round(geometry.index_to_world(centre)),
            "voxel_box": box.astype(int).tolist(),
        }
    )
    return out


def image_stats(mask: np.ndarray, box: Any, spacing: tuple[float, float] | None) -> dict[str, Any]:
    """Pixels, area (mm² when the spacing is known), centre and box of a 2D mask."""
    n = int(np.count_nonzero(mask))
    out: dict[str, Any] = {
        "pixels": n,
        "box": _round(box, 2),
        "area_mm2": None if spacing is None else round(n * spacing[0] * spacing[1], 3),
    }
    if n:
        rows, cols = np.nonzero(mask)
        out["centre_pixel"] = [round(float(cols.mean()), 3), round(float(rows.mean()), 3)]  # (x, y)
    return out


def sidecar(kind: str, items: list[Labelled], **head: Any) -> dict[str, Any]:
    """The ``labels.json`` dict: ``head`` (source, shape, geometry, ...), the overlap rule, the local
    coding scheme when a code uses it, and one entry per label."""
    out: dict[str, Any] = {"medglip_labels": 1, "kind": kind, **head, "background": 0, "overlap_rule": OVERLAP_RULE}
    if any(it.coding.type.scheme == LOCAL_SCHEME or it.coding.category.scheme == LOCAL_SCHEME for it in items):
        out["coding_schemes"] = {LOCAL_SCHEME: LOCAL_SCHEME_NAME}
    out["labels"] = [it.entry for it in items]
    return out


def local_schemes(items: list[Labelled]) -> dict[str, str]:
    """``{designator: name}`` of the local scheme when an exported code uses it."""
    used = any(
        it.coding.type.scheme == LOCAL_SCHEME or it.coding.category.scheme == LOCAL_SCHEME
        for it in items
        if not it.empty
    )
    return {LOCAL_SCHEME: LOCAL_SCHEME_NAME} if used else {}


def coding_notes(items: list[Labelled]) -> list[str]:
    """One note per label coded locally or by its kind."""
    return [f"label {it.label} ({it.phrase}): {it.coding.note}" for it in items if it.coding.note]
