"""Tests of medglip.evaluate: COCO AP, Acc@0.5, mIoU, Dice, absent-phrase FPs, breakdowns, report."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from medglip.errors import MedglipError
from medglip.evaluate import (EvaluationError, PredictionError, compute_metrics, evaluate, plan_queries,
                              predict_dataset)

H = W = 64
CATS = [
    {"id": 1, "name": "liver", "level": "organ"},
    {"id": 2, "name": "liver tumor", "level": "lesion"},
    {"id": 3, "name": "brain tumor", "level": "lesion"},
    {"id": 4, "name": "spleen", "level": "organ"},  # no annotation in the split
]


def rle_box(x: int, y: int, w: int, h: int) -> dict:
    m = np.zeros((H, W), dtype=np.uint8)
    m[y:y + h, x:x + w] = 1
    r = mask_utils.encode(np.asfortranarray(m))
    return {"size": [H, W], "counts": r["counts"].decode("ascii")}


def make_gt() -> dict:
    """4 images: 1-2 CT (case ct1) with liver + liver tumor, 3 MR with brain tumor (case mr1), 4 MR negative."""
    images = [
        {"id": 1, "file_name": "ct1/a.png", "width": W, "height": H, "modality": "CT", "source": "s", "case_id": "ct1"},
        {"id": 2, "file_name": "ct1/b.png", "width": W, "height": H, "modality": "CT", "source": "s", "case_id": "ct1"},
        {"id": 3, "file_name": "mr1/a.png", "width": W, "height": H, "modality": "MR", "source": "s", "case_id": "mr1"},
        {"id": 4, "file_name": "mr1/b.png", "width": W, "height": H, "modality": "MR", "source": "s", "case_id": "mr1",
         "negative": True},
    ]
    boxes = [  # (image, category, x, y, w, h)
        (1, 1, 10, 10, 20, 20), (1, 2, 40, 40, 10, 10),
        (2, 1, 12, 12, 20, 20),
        (3, 3, 5, 5, 10, 10), (3, 3, 40, 30, 16, 16),  # two instances of one phrase
    ]
    anns = []
    for k, (iid, cid, x, y, w, h) in enumerate(boxes, 1):
        anns.append({"id": k, "image_id": iid, "category_id": cid, "bbox": [x, y, w, h], "area": w * h,
                     "iscrowd": 0, "segmentation": rle_box(x, y, w, h),
                     "phrase": CATS[cid - 1]["name"], "level": CATS[cid - 1]["level"]})
    return {"images": images, "annotations": anns, "categories": copy.deepcopy(CATS)}


def perfect(gt: dict, score: float = 0.9, masks: bool = True) -> list[dict]:
    name = {c["id"]: c["name"] for c in gt["categories"]}
    out = []
    for a in gt["annotations"]:
        p = {"image_id": a["image_id"], "phrase": name[a["category_id"]], "bbox": list(a["bbox"]), "score": score}
        if masks:
            p["segmentation"] = dict(a["segmentation"])
        out.append(p)
    return out


def assert_json_clean(metrics: dict) -> None:
    json.dumps(metrics, allow_nan=False)  # raises on NaN / inf


def test_perfect_predictions_score_one():
    gt = make_gt()
    m = compute_metrics(gt, perfect(gt))
    o = m["overall"]
    for key in ("AP", "AP50", "AP75", "acc50", "miou", "dice", "mask_AP"):
        assert o[key] == pytest.approx(1.0), key
    assert o["n_pairs"] == 4 and o["n_gt_boxes"] == 5 and o["n_hits"] == 4
    assert o["absent_fp_rate"] is None and m["queries_given"] is False
    assert_json_clean(m)


def test_shifted_box_gives_hand_computed_iou():
    gt = make_gt()
    gt["annotations"] = [gt["annotations"][0]]  # one GT box [10, 10, 20, 20]
    pred = {"image_id": 1, "phrase": "liver", "bbox": [15, 10, 20, 20], "score": 0.8}
    o = compute_metrics(gt, [pred])["overall"]
    # intersection 15*20 = 300, union 400 + 400 - 300 = 500
    assert o["miou"] == pytest.approx(0.6) and o["acc50"] == 1.0
    assert o["AP50"] == pytest.approx(1.0) and o["AP75"] == pytest.approx(0.0)
    pred["bbox"] = [20, 10, 20, 20]  # intersection 200, union 600 → IoU 1/3, a miss
    o = compute_metrics(gt, [pred])["overall"]
    assert o["miou"] == pytest.approx(1 / 3) and o["acc50"] == 0.0


def test_top_box_is_the_highest_score_and_any_gt_instance_counts():
    gt = make_gt()
    name3 = [p for p in perfect(gt, masks=False) if p["image_id"] == 3]
    good_second = {**name3[1], "score": 0.95}  # matches the 2nd GT instance, ranked first
    wrong = {"image_id": 3, "phrase": "brain tumor", "bbox": [0, 50, 5, 5], "score": 0.5}
    m = compute_metrics(gt, [wrong, good_second])
    assert m["by_phrase"]["brain tumor"]["acc50"] == 1.0
    assert m["by_phrase"]["brain tumor"]["miou"] == pytest.approx(1.0)
    m = compute_metrics(gt, [{**wrong, "score": 0.99}, good_second])  # now the wrong box is on top
    assert m["by_phrase"]["brain tumor"]["acc50"] == 0.0
    assert m["by_phrase"]["brain tumor"]["miou"] == pytest.approx(0.0)


def test_missed_phrase_lowers_acc_and_miou_by_one_pair():
    gt = make_gt()
    preds = [p for p in perfect(gt) if not (p["image_id"] == 1 and p["phrase"] == "liver tumor")]
    o = compute_metrics(gt, preds)["overall"]
    assert o["acc50"] == pytest.approx(3 / 4) and o["miou"] == pytest.approx(3 / 4)
    assert o["dice"] == pytest.approx(3 / 4) and o["n_hits"] == 3


def test_coco_ap_matches_hand_value():
    gt = make_gt()
    gt["annotations"] = [gt["annotations"][0]]
    tp = {"image_id": 1, "phrase": "liver", "bbox": [10, 10, 20, 20], "score": 0.5}
    fp = {"image_id": 2, "phrase": "liver", "bbox": [10, 10, 20, 20], "score": 0.9}  # no liver GT on image 2
    o = compute_metrics(gt, [fp, tp])["overall"]
    assert o["AP50"] == pytest.approx(0.5)  # precision 1/2 at the only recall level 1.0
    assert o["acc50"] == 1.0  # grounding looks only at image 1's top box


def test_dice_of_half_overlapping_mask():
    gt = make_gt()
    gt["annotations"] = [gt["annotations"][0]]  # 20×20 mask at (10, 10)
    pred = {"image_id": 1, "phrase": "liver", "bbox": [10, 10, 20, 20], "score": 0.9,
            "segmentation": rle_box(20, 10, 20, 20)}  # overlap 10×20 = 200 → Dice 2·200 / 800
    assert compute_metrics(gt, [pred])["overall"]["dice"] == pytest.approx(0.5)
    # a 2nd mask above the threshold joins the union; below the threshold it does not
    extra = {**pred, "score": 0.4, "segmentation": rle_box(10, 10, 10, 20)}
    assert compute_metrics(gt, [pred, extra])["overall"]["dice"] == pytest.approx(2 * 400 / 1000)
    assert compute_metrics(gt, [pred, {**extra, "score": 0.1}])["overall"]["dice"] == pytest.approx(0.5)


def test_absent_phrase_false_positive_rate_counts_exactly():
    gt = make_gt()
    queries = {1: ["liver", "liver tumor", "brain tumor"],  # brain tumor absent
               2: ["liver", "liver tumor"],                 # liver tumor absent
               3: ["brain tumor", "liver"],                 # liver absent
               4: ["brain tumor"]}                          # absent (negative image)
    preds = perfect(gt) + [
        {"image_id": 1, "phrase": "brain tumor", "bbox": [0, 0, 5, 5], "score": 0.5},   # FP
        {"image_id": 2, "phrase": "liver tumor", "bbox": [0, 0, 5, 5], "score": 0.2},   # below threshold
        {"image_id": 2, "phrase": "liver tumor", "bbox": [9, 0, 5, 5], "score": 0.1},
        {"image_id": 4, "phrase": "brain tumor", "bbox": [0, 0, 5, 5], "score": 0.3},   # = threshold → FP
        # image 3 "liver": no prediction at all → not a FP
    ]
    m = compute_metrics(gt, preds, queries=queries)
    o = m["overall"]
    assert (o["n_absent"], o["n_absent_fp"]) == (4, 2) and o["absent_fp_rate"] == pytest.approx(0.5)
    assert m["by_modality"]["CT"]["n_absent"] == 2 and m["by_modality"]["CT"]["n_absent_fp"] == 1
    assert m["by_modality"]["MR"]["n_absent"] == 2 and m["by_modality"]["MR"]["n_absent_fp"] == 1
    assert m["by_level"]["lesion"]["n_absent"] == 3 and m["by_level"]["organ"]["n_absent"] == 1
    m = compute_metrics(gt, preds, queries={str(k): v for k, v in queries.items()}, score_threshold=0.6)
    assert m["overall"]["absent_fp_rate"] == 0.0  # JSON-style string keys work too


def test_breakdown_by_modality_and_level_separates_groups():
    gt = make_gt()
    preds = [p for p in perfect(gt) if p["image_id"] in (1, 2)]  # CT perfect, MR missed
    preds.append({"image_id": 3, "phrase": "brain tumor", "bbox": [30, 0, 5, 5], "score": 0.9})  # MR wrong
    m = compute_metrics(gt, preds)
    ct, mr = m["by_modality"]["CT"], m["by_modality"]["MR"]
    assert ct["AP"] == pytest.approx(1.0) and ct["acc50"] == 1.0 and ct["n_pairs"] == 3 and ct["n_images"] == 2
    assert mr["AP"] == pytest.approx(0.0) and mr["acc50"] == 0.0 and mr["n_pairs"] == 1 and mr["n_images"] == 2
    assert m["overall"]["acc50"] == pytest.approx(3 / 4)
    organ, lesion = m["by_level"]["organ"], m["by_level"]["lesion"]
    assert organ["AP"] == pytest.approx(1.0) and organ["n_pairs"] == 2 and organ["n_gt_boxes"] == 2
    # lesion: liver tumor perfect (AP 1), brain tumor missed (AP 0) → mean over the 2 categories
    assert lesion["AP"] == pytest.approx(0.5) and lesion["acc50"] == pytest.approx(0.5)
    assert set(m["by_level"]) == {"organ", "lesion"}
    assert m["by_phrase"]["liver tumor"]["AP"] == pytest.approx(1.0)
    assert m["by_phrase"]["brain tumor"]["AP"] == pytest.approx(0.0)
    # an organ false positive lowers organ AP only
    fp = {"image_id": 3, "phrase": "liver", "bbox": [0, 0, 9, 9], "score": 0.99}
    m2 = compute_metrics(gt, preds + [fp])
    assert m2["by_level"]["organ"]["AP"] < 1.0
    assert m2["by_level"]["lesion"]["AP"] == pytest.approx(0.5)
    assert m2["by_modality"]["CT"]["AP"] == pytest.approx(1.0)  # the FP is on an MR image


def test_unknown_phrases_stay_out_of_ap_but_count_as_absent_fps():
    gt = make_gt()
    stray = {"image_id": 1, "phrase": "gallbladder", "bbox": [0, 0, 9, 9], "score": 0.99}
    base = compute_metrics(gt, perfect(gt))
    m = compute_metrics(gt, perfect(gt) + [stray], queries={1: ["liver", "liver tumor", "gallbladder"]})
    assert m["overall"]["AP"] == base["overall"]["AP"] == pytest.approx(1.0)
    assert m["n_unknown_phrase_predictions"] == 1
    assert m["overall"]["n_absent_fp"] == 1 and m["by_level"]["unknown"]["n_absent_fp"] == 1
    assert m["by_phrase"]["gallbladder"]["AP"] is None


def test_empty_predictions_give_zero_not_a_crash():
    gt = make_gt()
    m = compute_metrics(gt, [], queries={4: ["brain tumor"]})
    o = m["overall"]
    assert o["AP"] == 0.0 and o["AP50"] == 0.0 and o["acc50"] == 0.0 and o["miou"] == 0.0
    assert o["dice"] is None  # no prediction carries masks: Dice is not measured
    assert o["absent_fp_rate"] == 0.0
    assert_json_clean(m)


def test_empty_ground_truth():
    gt = make_gt()
    with pytest.raises(EvaluationError, match="no images"):
        compute_metrics({**gt, "images": [], "annotations": []}, [])
    negatives_only = {**gt, "annotations": []}
    preds = [{"image_id": 4, "phrase": "brain tumor", "bbox": [0, 0, 5, 5], "score": 0.7}]
    m = compute_metrics(negatives_only, preds, queries={4: ["brain tumor"], 3: ["brain tumor"]})
    o = m["overall"]
    assert o["AP"] is None and o["acc50"] is None and o["miou"] is None and o["n_pairs"] == 0
    assert o["absent_fp_rate"] == pytest.approx(0.5)
    assert_json_clean(m)


@pytest.mark.parametrize("bad, needle", [
    ({"image_id": 1, "bbox": [0, 0, 5, 5], "score": 0.5}, "missing key"),
    ({"image_id": 1, "phrase": "liver", "bbox": [0, 0, -5, 5], "score": 0.5}, "negative width"),
    ({"image_id": 1, "phrase": "liver", "bbox": [0, 0, 5, 5], "score": float("nan")}, "score"),
    ({"image_id": 99, "phrase": "liver", "bbox": [0, 0, 5, 5], "score": 0.5}, "image_id 99"),
    ({"image_id": 1, "phrase": "liver", "bbox": [0, 0, 5], "score": 0.5}, "bbox"),
    ({"image_id": 1, "phrase": "liver", "bbox": [0, 0, 5, 5], "score": 0.5,
      "segmentation": {"size": [8, 8], "counts": "0"}}, "segmentation size"),
])
def test_malformed_predictions_name_the_entry(bad, needle):
    gt = make_gt()
    preds = perfect(gt)[:2] + [bad]
    with pytest.raises(MedglipError) as info:
        compute_metrics(gt, preds)
    assert isinstance(info.value, PredictionError)
    assert "prediction #2" in str(info.value) and needle in str(info.value)


def test_bad_queries_are_rejected():
    gt = make_gt()
    with pytest.raises(PredictionError, match="image id 42"):
        compute_metrics(gt, [], queries={42: ["liver"]})


def write_dataset(root: Path, gt: dict) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "test.json").write_text(json.dumps(gt))
    for img in gt["images"]:
        p = root / "images" / img["file_name"]
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (img["width"], img["height"])).save(p)
    return root


def test_evaluate_writes_report_with_nontrivial_pr_curve(tmp_path):
    gt = make_gt()
    ds = write_dataset(tmp_path / "ds", gt)
    preds = perfect(gt, masks=False)
    preds[1] = {**preds[1], "bbox": [0, 0, 4, 4]}  # one liver tumor miss → a PR curve below 1
    pred_file = tmp_path / "preds.json"
    pred_file.write_text(json.dumps(preds))
    m = evaluate(ds, pred_file, split="test", queries={4: ["brain tumor"]}, out=tmp_path / "eval")
    assert m["split"] == "test" and m["overall"]["acc50"] == pytest.approx(3 / 4)
    on_disk = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert on_disk["overall"]["AP"] == pytest.approx(m["overall"]["AP"])
    md = (tmp_path / "eval" / "metrics.md").read_text()
    assert "## By modality" in md and "| CT |" in md and "## By level" in md and "| lesion |" in md
    assert len(m["pr"]["overall"]) == 101 and set(m["pr"]["by_level"]) == {"organ", "lesion"}
    # COCO AP50 is the mean of the IoU-0.5 curve (spleen, without GT, must not drag it down)
    assert np.mean(m["pr"]["overall"]) == pytest.approx(m["overall"]["AP50"], abs=1e-5)
    assert 0.0 < m["overall"]["AP50"] < 1.0
    assert np.mean(m["pr"]["by_level"]["lesion"]) == pytest.approx(m["by_level"]["lesion"]["AP50"], abs=1e-5)
    png = np.asarray(Image.open(tmp_path / "eval" / "pr_curve.png").convert("RGB"))
    assert png.shape[0] >= 300 and png.shape[1] >= 300
    colours = {tuple(c) for c in png.reshape(-1, 3)[::7]}
    assert len(colours) > 10  # curves, grid, text — not a blank canvas
    assert (png.reshape(-1, 3) == (31, 119, 180)).all(axis=1).sum() > 200  # the first level's line


def test_evaluate_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(EvaluationError, match="no such split"):
        evaluate(tmp_path, [], split="val")


class FakeGrounder:
    """Returns the GT boxes (xyxy) for present phrases and one low-score box for absent ones, as the
    Grounder does: a list of images in, a list of GroundingResult out."""

    def __init__(self, gt: dict, dataset: Path) -> None:
        self.by_file = {str(dataset / "images" / i["file_name"]): i["id"] for i in gt["images"]}
        name = {c["id"]: c["name"] for c in gt["categories"]}
        self.boxes: dict = {}
        for a in gt["annotations"]:
            x, y, w, h = a["bbox"]
            self.boxes.setdefault((a["image_id"], name[a["category_id"]]), []).append([x, y, x + w, y + h])
        self.calls: list = []

    def ground(self, images, phrases, *, modality=None, masks=False, top_k=None, score_threshold=None):
        from medglip.infer.results import GroundingResult, PhraseGrounding

        assert isinstance(images, list)
        out = []
        for image in images:
            iid = self.by_file[image]
            self.calls.append((iid, list(phrases), modality, masks))
            per = []
            for ph in phrases:
                b = np.array(self.boxes.get((iid, ph), [[0, 0, 3, 3]]), dtype=np.float32)
                s = np.full(len(b), 0.9 if (iid, ph) in self.boxes else 0.05, dtype=np.float32)
                m = np.zeros((len(b), H, W), dtype=bool) if masks else None
                if masks:
                    for k, (x0, y0, x1, y1) in enumerate(b.astype(int)):
                        m[k, y0:y1, x0:x1] = True
                per.append(PhraseGrounding(ph, b, s, m))
            out.append(GroundingResult(tuple(phrases), per, (H, W), modality or ""))
        return out


def test_predict_dataset_refuses_untyped_grounder_results(tmp_path):
    gt = make_gt()
    ds = write_dataset(tmp_path / "ds", gt)

    class DictGrounder(FakeGrounder):
        def ground(self, images, phrases, **kw):
            return [{"liver": None} for _ in images]

    with pytest.raises(PredictionError, match="one GroundingResult per image"):
        predict_dataset(DictGrounder(gt, ds), ds, split="test")


def test_predict_dataset_with_a_fake_grounder_round_trips(tmp_path):
    gt = make_gt()
    ds = write_dataset(tmp_path / "ds", gt)
    g = FakeGrounder(gt, ds)
    preds, queries = predict_dataset(g, ds, split="test", phrases="case", masks=True)
    assert queries == {1: ["liver", "liver tumor"], 2: ["liver", "liver tumor"],
                       3: ["brain tumor"], 4: ["brain tumor"]}
    assert [c[2] for c in g.calls] == ["CT", "CT", "MR", "MR"] and all(c[3] for c in g.calls)
    assert all(set(p) >= {"image_id", "phrase", "bbox", "score", "segmentation"} for p in preds)
    m = evaluate(ds, preds, split="test", queries=queries)
    o = m["overall"]
    assert o["AP"] == pytest.approx(1.0) and o["acc50"] == 1.0 and o["dice"] == pytest.approx(1.0)
    assert o["n_absent"] == 2 and o["absent_fp_rate"] == 0.0  # liver tumor on 2, brain tumor on 4
    assert not any(math.isnan(v) for v in o.values() if isinstance(v, float))


def test_plan_queries_options():
    gt = make_gt()
    assert plan_queries(gt, negatives=False) == {1: ["liver", "liver tumor"], 2: ["liver"], 3: ["brain tumor"]}
    assert plan_queries(gt, phrases="modality")[4] == ["brain tumor"]
    everything = plan_queries(gt, phrases="all")
    assert everything[3] == ["brain tumor", "liver", "liver tumor", "spleen"]
    capped = plan_queries(gt, phrases="all", negatives=1)
    assert capped[3][0] == "brain tumor" and len(capped[3]) == 2 and len(capped[4]) == 1
    with pytest.raises(EvaluationError):
        plan_queries(gt, phrases="everything")  # type: ignore[arg-type]


def test_group_slices_equal_a_fresh_restricted_cocoeval():
    """CocoEvaluation evaluates once and slices; it must agree with COCOeval run on the group alone."""
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    from medglip.evaluate.coco import STAT_NAMES, CocoEvaluation, dt_coco, gt_coco
    from medglip.evaluate.groundtruth import GroundTruth

    gt = GroundTruth.from_coco(make_gt())
    rng = np.random.default_rng(3)
    preds = []
    for (iid, phrase), anns in gt.boxes.items():
        for a in anns:
            for _ in range(3):
                x, y, w, h = a["bbox"]
                preds.append({"image_id": iid, "phrase": phrase, "score": float(rng.random()),
                              "bbox": [x + float(rng.integers(-6, 7)), y + float(rng.integers(-6, 7)), w, h]})
    preds.append({"image_id": 4, "phrase": "brain tumor", "bbox": [1, 1, 8, 8], "score": 0.7})
    cg, cd = gt_coco(gt), dt_coco(gt, preds)
    sliced = CocoEvaluation(cg, cd)
    for img_ids, cat_ids in [(None, None), ([1, 2], None), ([3, 4], None), (None, [1, 4]), (None, [2, 3]),
                             ([3, 4], [3])]:
        fresh = COCOeval(gt_coco(gt), dt_coco(gt, preds), iouType="bbox")
        if img_ids is not None:
            fresh.params.imgIds = img_ids
        if cat_ids is not None:
            fresh.params.catIds = cat_ids
        with contextlib.redirect_stdout(io.StringIO()):
            fresh.evaluate()
            fresh.accumulate()
            fresh.summarize()
        got = sliced.result(img_ids=img_ids, cat_ids=cat_ids).stats
        want = {n: (float(v) if v > -1 else None) for n, v in zip(STAT_NAMES, fresh.stats)}
        assert got == pytest.approx(want), (img_ids, cat_ids)
    assert 0.0 < sliced.result().stats["AP"] < 1.0  # a non-trivial case
