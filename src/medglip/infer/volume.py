"""Volumes: ground slice by slice in display orientation, link slice boxes into 3D objects.

Slices are views cut with :func:`medglip.core.orient.plan_slices` (radiological display convention,
the orientation the model was trained on); the Grounder turns each into model pixels with the same
pipeline as the builder (:mod:`medglip.core.pipeline`).

Linking (per phrase, independently): slices are visited in order; the boxes of slice ``k`` are
matched greedily — highest IoU first — to the objects whose last box lies on slice ``k - 1`` or
``k - 2`` (a gap of one slice is bridged), when the IoU with that last box is at least
``link_iou`` (:data:`medglip.core.rules.LINK_IOU`). A box that matches nothing starts a new object; an
object is matched at most once per slice. An object's **score is the mean of its slice scores** (a long,
consistently found object ranks above a single-slice flicker of the same peak score); ``max_score``
keeps the best one.

Coordinates of an object:
- ``slices``: first and last display-slice index (= index along the array's ``slice_axis``);
- ``voxel_box``: ``(2, 3)`` min / max voxel index ``(i, j, k)`` of the source array covered by the
  union of its slice boxes — voxel centres, inclusive (a box with pixel edges ``x0..x1`` covers the
  pixel centres ``x0 .. x1 - 1``), mapped with ``SlicePlan.pixel_to_voxel``;
- ``world_box``: ``(2, 3)`` min / max LPS millimetres of the eight corners of that voxel-centre box
  (``SlicePlan.pixel_to_world``), i.e. the axis-aligned LPS box of the voxel centres.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.boxes import box_iou
from ..core.geometry import Geometry
from ..core.orient import SlicePlan, plan_slices
from ..core.pipeline import InputConfig, picture, slice_pixels
from ..core.rules import LINK_IOU
from ..errors import MedglipError
from .inputs import Volume
from .masks3d import ObjectMask, check_voxel_budget, label_map, object_mask
from .results import GroundingResult

log = logging.getLogger(__name__)

#: Detector used by :func:`ground_volume`: display slice indices + phrases → one result per slice.
#: Indices, not pixels: the detector cuts its own views (the 2.5D input reads the neighbours too;
#: the Grounder's makes the model pixels of each with the input pipeline).
SliceDetector = Callable[[range, Sequence[str]], list[GroundingResult]]

#: Called by :func:`ground_volume` after each slice batch with the number of slices just grounded, in the
#: caller's context. A service sets it to count a request's slices and to lend the model
#: to other clients' work between batches (``medglip.serve.batcher``); it may raise to stop the volume.
BETWEEN_BATCHES: ContextVar[Callable[[int], None] | None] = ContextVar("medglip_between_slice_batches", default=None)


@dataclass
class SliceBox:
    """One 2D detection on one display slice (pixel-edge xyxy)."""

    slice_index: int
    box: np.ndarray
    score: float
    mask: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "slice": int(self.slice_index),
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 5),
        }


@dataclass
class VolumeObject:
    """A phrase's 3D finding: linked slice boxes and their extent in voxel and world coordinates.

    Attributes:
        phrase: the phrase.
        score: mean of the slice scores.
        max_score: best slice score.
        slices: ``(first, last)`` display-slice index (= index along ``slice_axis``).
        voxel_box: ``(2, 3)`` float, min / max ``(i, j, k)`` voxel index (voxel centres, inclusive).
        world_box: ``(2, 3)`` float, min / max LPS mm of the voxel-centre box's corners.
        slice_boxes: the linked 2D boxes, one per slice found (gaps possible).
    """

    phrase: str
    score: float
    max_score: float
    slices: tuple[int, int]
    voxel_box: np.ndarray
    world_box: np.ndarray
    slice_boxes: list[SliceBox]

    @property
    def n_slices(self) -> int:
        return self.slices[1] - self.slices[0] + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "phrase": self.phrase,
            "score": round(self.score, 5),
            "max_score": round(self.max_score, 5),
            "slices": list(self.slices),
            "voxel_box": np.round(self.voxel_box, 3).tolist(),
            "world_box_mm": np.round(self.world_box, 3).tolist(),
            "slice_boxes": [b.to_json() for b in self.slice_boxes],
        }


@dataclass
class VolumeGroundingResult:
    """Grounding of phrases in a volume.

    Attributes:
        phrases: phrases asked, in order.
        objects: all 3D objects, sorted by phrase order then descending score.
        plane: slicing plane; ``slice_axis``: array axis stepped through.
        shape: spatial shape ``(i, j, k)`` of the source array.
        geometry: its LPS geometry.
        modality: modality code used; ``modality_source``: caller / metadata / classifier.
        slice_results: per-slice 2D results (index = slice index).
        untrained: one line per phrase or modality the model was never trained on (as for 2D results).
        thresholds: the score threshold applied to each phrase's slice boxes (as for 2D results).
    """

    phrases: tuple[str, ...]
    objects: list[VolumeObject]
    plane: str
    slice_axis: int
    shape: tuple[int, int, int]
    geometry: Geometry
    modality: str = ""
    modality_source: str = ""
    source: str = "array"
    slice_results: list[GroundingResult] = field(default_factory=list, repr=False)
    volume: Volume | None = field(default=None, repr=False, compare=False)
    plan: SlicePlan | None = field(default=None, repr=False, compare=False)
    input_config: InputConfig | None = field(default=None, repr=False, compare=False)
    untrained: tuple[str, ...] = ()
    thresholds: dict[str, float | None] = field(default_factory=dict)

    def slice_pixels(self, index: int) -> tuple[np.ndarray, dict[str, Any]]:
        """The model pixels of display slice ``index`` and their intensity record (what the model saw)."""
        if self.volume is None or self.plan is None or self.input_config is None:
            from ..errors import MedglipError

            raise MedglipError(f"the volume result of {self.source} carries no volume to draw")
        return slice_pixels(
            self.volume.array,
            self.plan,
            int(index),
            self.modality,
            self.input_config,
            what=f"{self.source}[{index}]",
            form=self.volume.ct_form,
        )

    def picture(self, index: int | None = None, window: Any = None) -> np.ndarray:
        """Display slice ``index`` (default: the middle one) as people see it (CT in one window)."""
        k = (self.plan.n_slices // 2 if self.plan is not None else 0) if index is None else int(index)
        pixels, intensity = self.slice_pixels(k)
        raw = self.plan.view(self.volume.array, k) if self.plan is not None and self.volume is not None else None
        return picture(pixels, intensity, window=window, raw=raw)

    def for_phrase(self, phrase: str) -> list[VolumeObject]:
        """Objects of ``phrase``, best first."""
        return [o for o in self.objects if o.phrase == phrase]

    def slice_plan(self) -> SlicePlan:
        """How the display slices were cut from the ``(i, j, k)`` grid."""
        if self.plan is not None:
            return self.plan
        try:
            return plan_slices(self.geometry, self.shape, self.plane)
        except ValueError as exc:
            raise MedglipError(f"{self.source}: {exc}") from None

    def object_mask(self, index: int) -> ObjectMask:
        """The 3D mask (a crop of the ``(i, j, k)`` grid) of ``objects[index]``, from its slice masks
        (:mod:`medglip.infer.masks3d`); needs ``masks=True`` grounding."""
        obj = self.objects[index]
        return object_mask(obj.slice_boxes, self.slice_plan(), what=f"{self.source}: object {index + 1} ({obj.phrase})")

    def label_map(
        self, indices: Sequence[int] | None = None, *, max_voxels: int | None = None
    ) -> tuple[np.ndarray, list[ObjectMask]]:
        """``(labels, masks)``: the ``uint16`` ``(i, j, k)`` label map on the input grid (label ``n`` =
        ``objects[indices[n - 1]]``, all objects by default; overlaps: the higher score wins) and the
        exact per-object masks. Refused above ``max_voxels`` (:data:`~medglip.infer.masks3d.MAX_LABEL_VOXELS`)."""
        idx = list(range(len(self.objects))) if indices is None else [int(i) for i in indices]
        check_voxel_budget(self.shape, max_voxels, self.source)
        masks = [self.object_mask(i) for i in idx]
        return label_map(
            self.shape, masks, [self.objects[i].score for i in idx], max_voxels=max_voxels, what=self.source
        ), masks

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "phrases": list(self.phrases),
            "plane": self.plane,
            "slice_axis": self.slice_axis,
            "shape": list(self.shape),
            "geometry": self.geometry.to_json(),
            "modality": self.modality,
            "modality_source": self.modality_source,
            "objects": [o.to_json() for o in self.objects],
            "untrained": list(self.untrained),
            "thresholds": dict(self.thresholds),
        }


# ---------------------------------------------------------------------------------- linking
def link_boxes(
    per_slice: Sequence[tuple[int, np.ndarray, np.ndarray]], *, link_iou: float = LINK_IOU, max_gap: int = 1
) -> list[list[SliceBox]]:
    """Greedy linking of one phrase's slice boxes into tracks.

    Args:
        per_slice: ``(slice_index, boxes (K, 4), scores (K,))`` in increasing slice order.
        link_iou: minimum IoU with a track's last box.
        max_gap: slices a track may skip (1: a box on ``k`` may extend a track ending on ``k - 2``).

    Returns:
        Tracks (lists of :class:`SliceBox` in slice order), in order of creation.
    """
    tracks: list[list[SliceBox]] = []
    open_ids: list[int] = []
    for k, boxes, scores in per_slice:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        open_ids = [t for t in open_ids if k - tracks[t][-1].slice_index <= max_gap + 1]
        taken_box: set[int] = set()
        taken_track: set[int] = set()
        if open_ids and len(boxes):
            last = np.stack([tracks[t][-1].box for t in open_ids])
            iou = box_iou(boxes, last)
            pairs = [
                (iou[b, t], b, t) for b in range(len(boxes)) for t in range(len(open_ids)) if iou[b, t] >= link_iou
            ]
            for _, b, t in sorted(pairs, key=lambda p: (-p[0], p[1], p[2])):
                if b in taken_box or t in taken_track:
                    continue
                taken_box.add(b)
                taken_track.add(t)
                tracks[open_ids[t]].append(SliceBox(int(k), boxes[b].copy(), float(scores[b])))
        for b in range(len(boxes)):
            if b not in taken_box:
                tracks.append([SliceBox(int(k), boxes[b].copy(), float(scores[b]))])
                open_ids.append(len(tracks) - 1)
    return tracks


def track_extent(track: Sequence[SliceBox], plan: SlicePlan, geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """``(voxel_box, world_box)``, each ``(2, 3)`` min / max, of a track (see the module docstring)."""
    b = np.stack([s.box for s in track]).astype(np.float64)
    x0, y0 = b[:, 0].min(), b[:, 1].min()
    x1, y1 = max(b[:, 2].max() - 1.0, x0), max(b[:, 3].max() - 1.0, y0)  # pixel-edge → last centre
    k0, k1 = min(s.slice_index for s in track), max(s.slice_index for s in track)
    corners = np.array([[x, y, 0.0, 1.0] for x in (x0, x1) for y in (y0, y1)])
    vox, world = [], []
    for k in (k0, k1):
        vox.append(corners @ plan.pixel_to_voxel(k).T)
        world.append(corners @ plan.pixel_to_world(k, geometry).T)
    vox_pts, world_pts = np.concatenate(vox), np.concatenate(world)
    return (np.stack([vox_pts.min(0), vox_pts.max(0)]), np.stack([world_pts.min(0), world_pts.max(0)]))


def link_volume(
    slice_results: Sequence[GroundingResult],
    phrases: Sequence[str],
    plan: SlicePlan,
    geometry: Geometry,
    *,
    link_iou: float = LINK_IOU,
    max_gap: int = 1,
) -> list[VolumeObject]:
    """3D objects from per-slice results (``slice_results[k]`` is slice ``k``), phrase by phrase."""
    objects: list[VolumeObject] = []
    for p_idx, phrase in enumerate(phrases):
        per_slice = []
        for k, res in enumerate(slice_results):
            g = res[p_idx]
            if len(g):
                per_slice.append((k, g.boxes, g.scores))
        found = []
        for track in link_boxes(per_slice, link_iou=link_iou, max_gap=max_gap):
            scores = np.array([s.score for s in track])
            for s in track:  # attach masks when the slice results carry them
                g = slice_results[s.slice_index][p_idx]
                if g.masks is not None:
                    hit = np.nonzero(np.all(np.isclose(g.boxes, s.box[None]), axis=1))[0]
                    s.mask = g.masks[hit[0]] if hit.size else None
            vbox, wbox = track_extent(track, plan, geometry)
            found.append(
                VolumeObject(
                    phrase=phrase,
                    score=float(scores.mean()),
                    max_score=float(scores.max()),
                    slices=(track[0].slice_index, track[-1].slice_index),
                    voxel_box=vbox,
                    world_box=wbox,
                    slice_boxes=list(track),
                )
            )
        objects += sorted(found, key=lambda o: -o.score)
    return objects


def ground_volume(
    detect: SliceDetector,
    volume: Volume,
    phrases: Sequence[str],
    *,
    modality: str,
    modality_source: str = "caller",
    plane: str = "axial",
    batch_size: int = 8,
    link_iou: float = LINK_IOU,
    max_gap: int = 1,
    input_config: InputConfig | None = None,
) -> VolumeGroundingResult:
    """Run ``detect`` on every display slice of ``volume`` (``batch_size`` consecutive slice indices
    per call, in order) and link the boxes into 3D objects."""
    try:
        plan = plan_slices(volume.geometry, volume.array.shape, plane)
    except ValueError as exc:
        raise MedglipError(f"{volume.source}: {exc}") from None
    log.info("grounding %d %s slices of %s", plan.n_slices, plane, volume.source)
    results: list[GroundingResult] = []
    between = BETWEEN_BATCHES.get()
    for s in range(0, plan.n_slices, max(1, batch_size)):
        ks = range(s, min(plan.n_slices, s + max(1, batch_size)))
        got = detect(ks, phrases)
        if len(got) != len(ks):
            raise RuntimeError(f"slice detector returned {len(got)} results for {len(ks)} slices")
        results += got
        if between is not None:
            between(len(ks))
    names = tuple(g.phrase for g in results[0]) if results else tuple(phrases)
    objects = link_volume(results, names, plan, volume.geometry, link_iou=link_iou, max_gap=max_gap)
    ni, nj, nk = (int(n) for n in volume.array.shape[:3])
    return VolumeGroundingResult(
        phrases=names,
        objects=objects,
        plane=plane,
        slice_axis=plan.slice_axis,
        shape=(ni, nj, nk),
        geometry=volume.geometry,
        modality=modality,
        modality_source=modality_source,
        source=volume.source,
        slice_results=results,
        volume=volume,
        plan=plan,
        input_config=input_config,
    )
