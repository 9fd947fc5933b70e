"""ground_volume's slicing, linking and voxel / world mapping, with a fake per-slice detector."""

from __future__ import annotations

import numpy as np
import pytest

from medglip.core.geometry import Geometry
from medglip.core.orient import plan_slices
from medglip.infer.inputs import Volume
from medglip.infer.results import GroundingResult, PhraseGrounding
from medglip.infer.volume import box_iou, ground_volume, link_boxes

# array axis 0 → patient right (−x), axis 1 → posterior (+y), axis 2 → inferior (−z)
GEOM = Geometry(spacing=(0.5, 0.8, 2.0), origin=(10.0, -20.0, 30.0),
                direction=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
SHAPE = (20, 16, 10)


def _result(phrase_boxes: dict[str, list[tuple[list[float], float]]], size) -> GroundingResult:
    gs = [PhraseGrounding(p, np.array([b for b, _ in v], np.float32).reshape(-1, 4),
                          np.array([s for _, s in v], np.float32)) for p, v in phrase_boxes.items()]
    return GroundingResult(tuple(phrase_boxes), gs, size, "MR")


def _blob_detector(vol, scores_by_slice):
    """Fake detector: the box of the bright raw values (> 200) of each axial display slice, with a given score."""
    plan = plan_slices(GEOM, vol.shape, "axial")
    seen, asked = [], []

    def detect(ks, phrases):
        asked.append(ks)
        out = []
        for k in ks:
            s = plan.view(vol, k)
            seen.append(s)
            ys, xs = np.nonzero(s > 200)
            found = [([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], scores_by_slice[k])] if ys.size else []
            out.append(_result({phrases[0]: found}, s.shape))
        return out
    return detect, seen, asked


def test_ground_volume_links_a_block_into_voxel_and_world_boxes():
    rng = np.random.default_rng(0)
    vol = 100 + 10 * rng.random(SHAPE)
    vol[11:16, 5:11, 3:7] = 1000.0  # i 11..15, j 5..10, k 3..6
    scores = {k: 0.5 + 0.1 * (k - 3) for k in range(10)}
    detect, seen, asked = _blob_detector(vol, scores)
    res = ground_volume(detect, Volume(vol, GEOM, None), ["brain tumor"], modality="MR", batch_size=3)
    assert [list(ks) for ks in asked] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]  # every slice once, in order
    assert len(seen) == 10 and seen[0].shape == (16, 20)
    assert all(np.shares_memory(s, vol) for s in seen)  # slices are views: the volume is never copied  # axial display: rows = j (A→P), cols = R→L
    # display column x reads voxel i = 19 - x (patient left on the image's right)
    ys, xs = np.nonzero(seen[4] > 200)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (4, 8, 5, 10)
    assert len(res.objects) == 1
    obj = res.objects[0]
    assert obj.phrase == "brain tumor" and obj.slices == (3, 6) and len(obj.slice_boxes) == 4
    assert obj.score == pytest.approx(np.mean([0.5, 0.6, 0.7, 0.8]))
    assert obj.max_score == pytest.approx(0.8)
    assert np.allclose(obj.voxel_box, [[11, 5, 3], [15, 10, 6]])
    # world = origin + D @ (spacing * index): x = 10 - 0.5 i, y = -20 + 0.8 j, z = 30 - 2 k
    assert np.allclose(obj.world_box, [[10 - 0.5 * 15, -20 + 0.8 * 5, 30 - 2 * 6],
                                       [10 - 0.5 * 11, -20 + 0.8 * 10, 30 - 2 * 3]])
    assert np.allclose(GEOM.index_to_world(np.array([15, 10, 3])), [2.5, -12.0, 24.0])
    js = res.to_json()
    assert js["objects"][0]["voxel_box"] == [[11.0, 5.0, 3.0], [15.0, 10.0, 6.0]]
    assert res.for_phrase("brain tumor") == [obj]


def test_linking_bridges_one_missing_slice_but_not_two():
    box = [10.0, 10.0, 20.0, 20.0]
    far = [40.0, 40.0, 50.0, 50.0]
    per_slice = [
        (0, np.array([box]), np.array([0.9])),
        (2, np.array([box, far]), np.array([0.8, 0.3])),  # gap of one slice: linked
        (5, np.array([box]), np.array([0.7])),  # gap of two slices: a new object
    ]
    tracks = link_boxes(per_slice)
    assert [[s.slice_index for s in t] for t in tracks] == [[0, 2], [2], [5]]


def test_linking_needs_iou_and_matches_each_track_once():
    a = [0.0, 0.0, 10.0, 10.0]
    shifted = [6.0, 0.0, 16.0, 10.0]  # IoU with a = 40 / 160 = 0.25 < 0.3
    near = [1.0, 0.0, 11.0, 10.0]
    assert box_iou(np.array([a]), np.array([shifted]))[0, 0] == pytest.approx(0.25)
    tracks = link_boxes([(0, np.array([a]), np.array([0.9])),
                         (1, np.array([shifted, near]), np.array([0.9, 0.5]))])
    # the best-overlapping box extends the track; the other one starts its own object
    assert [[tuple(s.box) for s in t] for t in tracks] == [[tuple(a), tuple(near)], [tuple(shifted)]]


def test_objects_per_phrase_sorted_by_score_and_empty_phrases_give_none():
    size = (16, 20)
    results = []
    for k in range(10):
        boxes = {"lesion": [], "liver": []}
        if k in (1, 2):
            boxes["lesion"].append(([1, 1, 5, 5], 0.2))
        if k in (6, 7):
            boxes["lesion"].append(([10, 10, 15, 15], 0.9))
        results.append(_result(boxes, size))
    res = ground_volume(lambda ks, phrases: results, Volume(np.zeros(SHAPE, np.float32), GEOM), ["lesion", "liver"],
                        modality="MR", batch_size=10)
    assert [o.slices for o in res.for_phrase("lesion")] == [(6, 7), (1, 2)]
    assert res.for_phrase("liver") == []
