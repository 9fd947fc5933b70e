"""medglip.context on hand-made grounding results (known boxes), a linked volume and built ground truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from medglip.dataset import BuildConfig, build
from medglip.core.geometry import Geometry
from medglip.core.orient import plan_slices
from medglip.context import (
    Finding, GroundedContext, context_from_result, context_from_volume, result_from_annotations,
)
from medglip.errors import MedglipError
from medglip.infer.inputs import Volume
from medglip.infer.results import GroundingResult, PhraseGrounding
from medglip.infer.volume import SliceBox, VolumeGroundingResult, VolumeObject, ground_volume
from medglip.core.draw import category_color

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medglip" / "samples" / "pyradiomics"


def _result(boxes: dict[str, list[tuple[list[float], float]]], size=(100, 200), modality="MR", extra=None,
            masks: dict[str, np.ndarray] | None = None) -> GroundingResult:
    gs = []
    for phrase, items in boxes.items():
        gs.append(PhraseGrounding(phrase, np.array([b for b, _ in items], np.float32).reshape(-1, 4),
                                  np.array([s for _, s in items], np.float32), (masks or {}).get(phrase)))
    return GroundingResult(tuple(boxes), gs, size, modality, extra=dict(extra or {}))


def _one(box, size=(100, 200), modality="MR", extra=None, phrase="brain tumor", **kw):
    return context_from_result(_result({phrase: [(box, 0.9)]}, size, modality, extra), **kw).findings[0]


# ------------------------------------------------------------------ numbering, thresholds, absent
def test_findings_are_numbered_in_phrase_order_then_score_with_threshold_cap_and_absent():
    res = _result({
        "brain tumor": [([0, 0, 10, 10], 0.5), ([20, 0, 30, 10], 0.9), ([40, 0, 50, 10], 0.2),
                        ([60, 0, 70, 10], 0.4), ([80, 0, 90, 10], 0.35)],
        "liver tumor": [([0, 50, 10, 60], 0.1)],
        "brain": [([0, 0, 200, 100], 0.7)],
    })
    ctx = context_from_result(res, score_threshold=0.3, max_per_phrase=3)
    assert isinstance(ctx, GroundedContext) and ctx.asked == ("brain tumor", "liver tumor", "brain")
    assert [f.number for f in ctx.findings] == [1, 2, 3, 4]
    assert [(f.phrase, f.score) for f in ctx.findings] == [
        ("brain tumor", pytest.approx(0.9)), ("brain tumor", pytest.approx(0.5)), ("brain tumor", pytest.approx(0.4)),
        ("brain", pytest.approx(0.7))]
    assert ctx.findings[0].box == (20.0, 0.0, 30.0, 10.0)
    assert ctx.absent == ("liver tumor",) and ctx.score_threshold == 0.3
    assert [f.number for f in ctx.for_phrase("Brain  tumor")] == [1, 2, 3]
    assert context_from_result(res, score_threshold=0.95).absent == ("brain tumor", "liver tumor", "brain")
    assert len(context_from_result(res, score_threshold=0.0, max_per_phrase=10).for_phrase("brain tumor")) == 5
    with pytest.raises(MedglipError, match="score_threshold"):
        context_from_result(res, score_threshold=1.5)


def test_ontology_info_per_phrase_and_unmapped_phrases():
    ctx = context_from_result(_result({"left kidney": [([0, 0, 10, 10], 0.9)], "zorblax": [([50, 50, 55, 55], 0.9)]}))
    kid, odd = ctx.findings
    assert (kid.label, kid.level, kid.laterality) == ("kidney", "organ", "left")
    assert kid.hierarchy == ("abdomen", "left kidney")
    assert (odd.label, odd.level, odd.hierarchy, odd.parent) == ("zorblax", "unknown", (), None)
    # same label and side through a synonym; a side-less phrase does not match a sided finding
    assert ctx.for_phrase("left renal") == [kid] and ctx.for_phrase("right kidney") == []
    assert ctx.for_phrase("kidney") == []


# ------------------------------------------------------------------ sizes
def test_sizes_in_mm_from_the_argument_the_extra_and_pixel_to_world():
    box = [10, 20, 40, 30]  # 30 px wide, 10 px high
    mask = np.zeros((1, 100, 200), bool)
    mask[0, 20:30, 10:14] = True  # 40 pixels
    res = _result({"brain tumor": [(box, 0.9)]}, extra={"pixel_spacing": [0.7, 0.9]}, masks={"brain tumor": mask})
    f = context_from_result(res, pixel_spacing=(0.5, 2.0)).findings[0]  # the argument wins: (row, col)
    # one source: the mask (4 columns x 10 rows) when there is one, not the box
    assert f.size_source == "mask" and f.size_px == (4.0, 10.0) and f.size_mm == pytest.approx((8.0, 5.0))
    assert f.mask_area_px == 40 and f.mask_area_mm2 == pytest.approx(40 * 0.5 * 2.0)
    f = context_from_result(res).findings[0]
    assert f.size_mm == pytest.approx((4 * 0.9, 10 * 0.7)) and f.longest_mm == pytest.approx(7.0)
    no_mask = context_from_result(_result({"brain tumor": [(box, 0.9)]}, extra={"pixel_spacing": [0.7, 0.9]}))
    f = no_mask.findings[0]
    assert f.size_source == "box" and f.size_mm == pytest.approx((30 * 0.9, 10 * 0.7))
    assert f.id == "F1" and f.to_json()["id"] == "F1" and f.to_json()["size_source"] == "box"
    # column step (0.3, 0.4, 0) → 0.5 mm per column; row step (0, 0, 1.5) → 1.5 mm per row
    m = [[0.3, 0.0, 0.0, 5.0], [0.4, 0.0, 0.0, -3.0], [0.0, 1.5, 0.0, 7.0]]
    ctx = context_from_result(_result({"brain tumor": [(box, 0.9)]}, extra={"pixel_to_world": m}))
    assert ctx.pixel_spacing == pytest.approx((1.5, 0.5)) and ctx.findings[0].size_mm == pytest.approx((15.0, 15.0))
    # location in mm: the box centre (pixel 24.5, 24.5) through pixel_to_world
    assert ctx.findings[0].location_mm == pytest.approx((0.3 * 24.5 + 5.0, 0.4 * 24.5 - 3.0, 1.5 * 24.5 + 7.0))
    bare = context_from_result(_result({"brain tumor": [(box, 0.9)]}, masks={"brain tumor": mask}))
    assert bare.pixel_spacing is None and bare.findings[0].size_mm is None
    assert bare.findings[0].mask_area_mm2 is None and bare.findings[0].longest_mm is None


# ------------------------------------------------------------------ sides and vertical thirds
def test_patient_side_radiological_world_and_none():
    right_half, left_half, centre = [150, 40, 170, 60], [20, 40, 40, 60], [95, 40, 105, 60]
    # MR without geometry: the image's right half is the patient's LEFT
    f = _one(right_half)
    assert f.side == "left" and f.location.startswith("patient's left")
    assert _one(left_half).side == "right" and _one(centre).side == "midline"
    ctx = context_from_result(_result({"x": [(right_half, 0.9)]}))
    assert ctx.orientation == "radiological"
    # world geometry: +x (patient left) grows with the column → same answer; x flipped → the opposite
    along = [[0.8, 0.0, 0.0, -80.0], [0.0, 0.8, 0.0, -40.0], [0.0, 0.0, 0.0, 12.0]]
    flipped = [[-0.8, 0.0, 0.0, 80.0], [0.0, 0.8, 0.0, -40.0], [0.0, 0.0, 0.0, 12.0]]
    assert _one(right_half, extra={"pixel_to_world": along}).side == "left"
    assert _one(right_half, extra={"pixel_to_world": flipped}).side == "right"
    assert _one(centre, extra={"pixel_to_world": flipped}).side == "midline"
    w = context_from_result(_result({"x": [(right_half, 0.9)]}, extra={"pixel_to_world": flipped}))
    assert w.orientation == "world"
    # ultrasound: no patient side, image words instead
    f = _one(right_half, modality="US")
    assert f.side is None and "image right" in f.location and "patient" not in f.location
    assert context_from_result(_result({"x": [(right_half, 0.9)]}, modality="US")).orientation == "none"


def test_vertical_thirds_and_axial_words():
    top, mid, bottom = [10, 5, 30, 25], [10, 40, 30, 60], [10, 75, 30, 95]  # image height 100
    assert [_one(b).vertical for b in (top, mid, bottom)] == ["upper", "middle", "lower"]
    assert "upper part of the image" in _one(top).location
    axial = {"plane": "axial"}
    assert "anterior part of the image" in _one(top, extra=axial).location
    assert "posterior part of the image" in _one(bottom, extra=axial).location
    assert "lower part of the image" in _one(bottom, extra={"plane": "coronal"}).location


# ------------------------------------------------------------------ containment
def test_containment_prefers_ontology_ancestors_then_the_smallest_box():
    res = _result({
        "brain": [([10, 10, 190, 95], 0.9)],
        "liver": [([100, 10, 160, 60], 0.8)],  # holds the tumour too, smaller, but not an ancestor
        "brain tumor": [([120, 20, 150, 50], 0.7), ([20, 70, 40, 90], 0.6), ([175, 0, 200, 20], 0.5)],
    })
    ctx = context_from_result(res)
    brain, liver, t1, t2, t3 = ctx.findings
    assert (t1.parent, t1.parent_number) == ("brain", brain.number)
    assert t1.location.endswith(", within the brain")
    assert (t2.parent, t2.parent_number) == ("brain", 1)
    # t3 lies mostly outside every box: ontology parent, no containing finding, no "within"
    assert (t3.parent, t3.parent_number) == ("brain", None) and "within" not in t3.location
    assert (brain.parent, brain.parent_number) == ("head and neck", None)
    # liver inside brain box but neither is the other's ancestor: smallest containing box wins
    assert (liver.parent, liver.parent_number) == ("brain", 1)
    # without an ancestor among the containers, the smallest containing box is taken
    res2 = _result({"liver": [([100, 10, 160, 60], 0.8)], "spleen": [([10, 10, 190, 95], 0.9)],
                    "zorblax": [([120, 20, 150, 50], 0.7)]})
    z = context_from_result(res2).findings[-1]
    assert (z.parent, z.parent_number) == ("liver", 1)


# ------------------------------------------------------------------ text blocks
def test_qwen_llava_and_plain_text_blocks():
    h, w = 97, 150
    box = [37.3, 12.6, 101.9, 88.2]
    res = _result({"brain tumor": [(box, 0.8123)], "liver tumor": []}, size=(h, w),
                  extra={"pixel_spacing": [0.5, 0.5]})
    ctx = context_from_result(res)
    q = [round(box[0] / w * 1000), round(box[1] / h * 1000), round(box[2] / w * 1000), round(box[3] / h * 1000)]
    qwen = ctx.text_block("qwen")
    assert f"<ref>brain tumor</ref><box>({q[0]},{q[1]}),({q[2]},{q[3]})</box>" in qwen
    assert "score 0.81" in qwen and "32 x 38 mm" in qwen and "[1]" in qwen
    llava = ctx.text_block("llava")
    fr = [box[0] / w, box[1] / h, box[2] / w, box[3] / h]
    assert f"brain tumor: [{fr[0]:.3f}, {fr[1]:.3f}, {fr[2]:.3f}, {fr[3]:.3f}]" in llava
    plain = ctx.text_block("plain")
    assert "37.3, 12.6, 101.9, 88.2" in plain
    for text in (qwen, llava, plain):
        lines = text.splitlines()
        assert "MR" in lines[0] and "150 x 97" in lines[0]
        assert lines[-1] == "Not found: liver tumor"
        assert "patient's" in text
    # boxes reaching the border map to exactly 0 and 1000
    edge = context_from_result(_result({"x": [([0, 0, w, h], 0.9)]}, size=(h, w)))
    assert "<box>(0,0),(1000,1000)</box>" in edge.text_block("qwen")
    assert "[0.000, 0.000, 1.000, 1.000]" in edge.text_block("llava")
    with pytest.raises(MedglipError, match="style"):
        ctx.text_block("gpt")


# ------------------------------------------------------------------ pictures
def test_visual_prompt_draws_coloured_boxes_numbers_and_mask_tints():
    h, w = 128, 160
    masks = np.zeros((1, h, w), bool)
    masks[0, 70:90, 100:130] = True
    res = _result({"brain tumor": [([20, 20, 60, 50], 0.9)], "liver": [([100, 70, 130, 90], 0.8)]}, size=(h, w),
                  masks={"liver": masks, "brain tumor": np.zeros((1, h, w), bool)})
    ctx = context_from_result(res)
    grey = np.full((h, w), 90, np.uint8)
    img = ctx.visual_prompt(grey)
    assert img.mode == "RGB" and img.size == (w, h)
    a = np.asarray(img)
    c1 = tuple(a[35, 20])  # left edge of box 1, halfway down
    assert c1 == tuple(a[35, 59]) == tuple(a[49, 40]) and len(set(c1)) > 1  # same colour on 3 edges, not grey
    assert c1 == category_color(1)
    c2 = tuple(a[80, 100])
    assert c2 == tuple(a[80, 129]) and c2 != c1
    assert tuple(a[5, 150]) == (90, 90, 90)  # untouched far from the boxes
    tinted = a[80, 115]
    assert not np.array_equal(tinted, [90, 90, 90])
    assert np.all(np.minimum(90, category_color(2)) <= tinted) and np.all(tinted <= np.maximum(90, category_color(2)))
    assert tuple(np.asarray(ctx.visual_prompt(grey, masks=False))[80, 115]) == (90, 90, 90)
    # colour input stays colour; a wrong size is refused
    assert ctx.visual_prompt(np.dstack([grey] * 3)).size == (w, h)
    with pytest.raises(MedglipError, match="size"):
        ctx.visual_prompt(np.zeros((10, 10), np.uint8))


def test_crops_pad_grow_to_min_size_and_clip():
    h, w = 100, 200
    boxes = [([50, 40, 70, 50], 0.9), ([0, 0, 10, 10], 0.8), ([10, 10, 110, 60], 0.7)]
    ctx = context_from_result(_result({"x": boxes}, size=(h, w)), score_threshold=0.0)
    pix = np.arange(h * w, dtype=np.uint32).reshape(h, w).astype(np.uint8)
    out = ctx.crops(pix, pad=0.15, min_size=32)
    assert [f.number for f, _ in out] == [1, 2, 3]

    def expected(box):
        dims = []
        for lo, hi, limit in ((box[0], box[2], w), (box[1], box[3], h)):
            lo, hi = lo - 0.15 * (hi - lo), hi + 0.15 * (hi - lo)
            if hi - lo < 32:
                mid = (lo + hi) / 2
                lo, hi = mid - 16, mid + 16
            dims.append(min(limit, math.ceil(hi)) - max(0, math.floor(lo)))
        return tuple(dims)

    assert [im.size for _, im in out] == [expected(b) for b, _ in boxes]
    assert out[0][1].size == (32, 32) and out[1][1].size == (21, 21)
    # the crop holds the image's own pixels
    assert np.array_equal(np.asarray(out[1][1]), pix[:21, :21])


def test_to_json_round_trips_without_masks():
    masks = np.ones((1, 100, 200), bool)
    ctx = context_from_result(_result({"brain tumor": [([10.123, 20.456, 40.789, 30.1], 0.87654)], "liver": []},
                                      masks={"brain tumor": masks, "liver": np.zeros((0, 100, 200), bool)},
                                      extra={"pixel_spacing": [0.5, 0.5]}))
    js = ctx.to_json()
    assert json.loads(json.dumps(js)) == js
    f = js["findings"][0]
    assert "mask" not in f and f["mask_area_px"] == 20000 and f["box"] == [10.12, 20.46, 40.79, 30.1]
    assert js["absent"] == ["liver"] and js["volume"] is None
    # masks take no part in equality
    a = ctx.findings[0]
    assert a == Finding(**{**{k: getattr(a, k) for k in a.__dataclass_fields__}, "mask": None})


# ------------------------------------------------------------------ volumes
# array axis 0 → patient right (−x), axis 1 → posterior (+y), axis 2 → inferior (−z)
GEOM = Geometry(spacing=(0.5, 0.8, 2.0), origin=(10.0, -20.0, 30.0),
                direction=(-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
SHAPE = (20, 16, 10)


def _bright_box_detector(vol):
    """Fake slice detector: the box of the bright voxels of each axial display slice, scored 0.5 + 0.1 k."""
    plan = plan_slices(GEOM, vol.shape, "axial")

    def detect(ks, phrases):
        out = []
        for k in ks:
            s = plan.view(vol, k)
            ys, xs = np.nonzero(s > 200)
            found = [([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], 0.5 + 0.1 * k)] if ys.size else []
            out.append(_result({phrases[0]: found, phrases[1]: []}, s.shape))
        return out
    return detect


def test_context_from_a_linked_volume_has_slices_extent_and_world_side():
    vol = 100 + 10 * np.random.default_rng(0).random(SHAPE)  # noisy background (percentile normalised)
    vol[11:16, 5:11, 3:7] = 1000.0  # voxels i 11..15, j 5..10, k 3..6
    res = ground_volume(_bright_box_detector(vol), Volume(vol, GEOM), ["brain tumor", "liver"], modality="MR",
                        batch_size=SHAPE[2])
    ctx = context_from_volume(res, score_threshold=0.3)
    assert ctx.absent == ("liver",) and len(ctx.findings) == 1 and ctx.orientation == "world"
    f = ctx.findings[0]
    assert f.slices == (3, 6) and f.key_slice == 6  # the best slice score is on slice 6
    assert f.score == pytest.approx(np.mean([0.8, 0.9, 1.0, 1.1]))
    # 5 × 6 × 4 voxels of 0.5 × 0.8 × 2 mm
    assert f.extent_mm == pytest.approx((2.5, 4.8, 8.0)) and f.longest_mm == pytest.approx(8.0)
    assert f.size_mm == f.extent_mm and f.size_source == "box" and f.world_box_mm is not None  # one size: the boxes here
    assert f.location_mm == pytest.approx(tuple(np.mean(f.world_box_mm, axis=0))) and "slices 3–6" in f.location
    # x = 10 − 0.5 i: object centre x = 3.5, volume centre (i = 9.5) x = 5.25 → patient's right
    assert f.side == "right"
    assert ctx.image_size == (16, 20) and ctx.pixel_spacing == pytest.approx((0.8, 0.5))
    assert ctx.volume == {"shape": [20, 16, 10], "n_slices": 10, "key_slice": 6, "slice_axis": 2}
    js = ctx.to_json()
    assert json.loads(json.dumps(js)) == js and js["findings"][0]["slices"] == [3, 6]
    assert "slices 3–6" in ctx.text_block("plain")


def test_volume_visual_prompt_draws_only_findings_on_the_slice():
    geom, shape = Geometry.identity(3), (120, 100, 10)  # axial display: 100 rows × 120 columns

    def obj(phrase, score, slices, box):
        sb = [SliceBox(k, np.array(box, np.float32), score) for k in range(slices[0], slices[1] + 1)]
        vox = np.array([[box[0], box[1], slices[0]], [box[2] - 1, box[3] - 1, slices[1]]], float)
        return VolumeObject(phrase, score, score, slices, vox, geom.index_to_world(vox), sb)

    objects = [obj("liver", 0.9, (2, 4), [10, 40, 40, 70]), obj("spleen", 0.8, (7, 8), [70, 40, 100, 70])]
    res = VolumeGroundingResult(("liver", "spleen"), objects, "axial", 2, shape, geom, "CT")
    ctx = context_from_volume(res)
    assert ctx.volume["key_slice"] == 2 and ctx.image_size == (100, 120)
    pix = np.zeros((100, 120), np.uint8)
    a = np.asarray(ctx.visual_prompt(pix))  # slice 2: the liver only
    assert tuple(a[55, 10]) == category_color(1) and tuple(a[55, 70]) == (0, 0, 0)
    b = np.asarray(ctx.visual_prompt(pix, slice_index=7))
    assert tuple(b[55, 70]) == category_color(2) and tuple(b[55, 10]) == (0, 0, 0)
    assert [f.number for f, _ in ctx.crops(pix, slice_index=7)] == [2]


# ------------------------------------------------------------------ ground truth of a built dataset
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds")
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1.0, 0.0, 0.0), negative_ratio=0.5), out)
    return json.loads((out / "annotations" / "test.json").read_text())


def test_result_from_annotations_gives_ground_truth_findings_in_mm(built):
    cats = {c["id"]: c for c in built["categories"]}
    images = [im for im in built["images"] if im["case_id"] == "brain2" and not im["negative"]]
    assert images
    rec = images[0]
    anns = [a for a in built["annotations"] if a["image_id"] == rec["id"]]
    res = result_from_annotations(rec, anns, cats, phrases=["brain tumor", "breast lesion"])
    assert res.source == rec["file_name"] and res.modality == rec["modality"]
    assert res.image_size == (rec["height"], rec["width"]) and res.extra["plane"] == rec["slice_plane"]
    assert res["breast lesion"].boxes.shape == (0, 4) and np.all(res["brain tumor"].scores == 1.0)
    ctx = context_from_result(res, source="ground truth", max_per_phrase=10)
    assert ctx.absent == ("breast lesion",) and ctx.orientation == "world"
    f = ctx.findings[0]
    ann = anns[0]
    x, y, bw, bh = ann["bbox"]
    row_mm, col_mm = rec["pixel_spacing"]
    assert f.box == pytest.approx((x, y, x + bw, y + bh))
    assert f.size_mm == pytest.approx((bw * col_mm, bh * row_mm))
    assert f.mask_area_px == ann["area"] and f.mask_area_mm2 == pytest.approx(ann["area"] * row_mm * col_mm)
    assert f.source == "ground truth" and f.score == 1.0
    assert f.side == ann["laterality"]  # the builder's own side of this tumour
    # phrases default to the annotations' own, in order
    assert result_from_annotations(rec, anns, cats).phrases == ("brain tumor",)
    # no phrase on the annotation → the category name; no segmentation → no masks
    bare = [{"category_id": a["category_id"], "bbox": a["bbox"]} for a in anns]
    r2 = result_from_annotations({**rec, "pixel_spacing": None, "pixel_to_world": None}, bare, cats)
    assert r2.phrases == (cats[anns[0]["category_id"]]["name"],) and r2[0].masks is None
    assert context_from_result(r2).pixel_spacing is None
