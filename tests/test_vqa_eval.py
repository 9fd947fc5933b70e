"""generate_questions / evaluate_vqa on the shipped samples (brain2 is the held-out test split): question
answers checked against the raw annotations, ceilings, fake grounders that return the ground truth or
nothing, a tiny random checkpoint end to end, and ask() on the real sample volume."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medglip.dataset import BuildConfig, build
from medglip.context import result_from_annotations
from medglip.demo import SAMPLES
from medglip.infer import Grounder
from medglip.infer.results import GroundingResult, PhraseGrounding
from medglip.model import GroundingModel, get_preset, save_checkpoint
from medglip.vqa import QAItem, ask, evaluate_vqa, generate_questions

CLOSED = ("presence", "laterality", "location", "count", "size")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("vqa") / "dataset"
    cfg = BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1.0, 0.0, 0.0), negative_ratio=0.5)
    result = build(cfg, out)
    assert not result.failed
    return out


@pytest.fixture(scope="module")
def coco(dataset):
    return json.loads((dataset / "annotations" / "test.json").read_text())


def anns_of(coco, image_id, phrase=None):
    return [a for a in coco["annotations"] if a["image_id"] == image_id and (phrase is None or a["phrase"] == phrase)]


def test_questions_match_the_raw_annotations(dataset, coco):
    items = generate_questions(dataset, split="test")
    assert items and all(isinstance(i, QAItem) for i in items)
    kinds = Counter(i.kind for i in items)
    assert all(kinds[k] > 0 for k in CLOSED), kinds
    images = {r["id"]: r for r in coco["images"]}
    assert {i.image_id for i in items} == set(images)  # negative images get (absent) questions too
    assert all(images[i.image_id]["case_id"] == "brain2" for i in items)
    for it in items:
        rec, anns = images[it.image_id], anns_of(coco, it.image_id, it.phrase)
        assert it.file_name == rec["file_name"]
        if it.kind == "presence":
            assert it.answer is bool(anns)
        elif it.kind == "count":
            assert it.answer == len(anns)
        elif it.kind == "size":
            (a,) = anns
            row_mm, col_mm = rec["pixel_spacing"]
            assert it.answer == pytest.approx(max(a["bbox"][2] * col_mm, a["bbox"][3] * row_mm), abs=0.01)
        elif it.kind == "location":
            cy = anns[0]["bbox"][1] + anns[0]["bbox"][3] / 2
            assert it.answer == ("upper" if cy < rec["height"] / 3 else "lower" if cy > 2 * rec["height"] / 3
                                 else "middle")
        elif it.kind == "laterality":
            # axial display slices: the patient's left is on the image's right
            cx = anns[0]["bbox"][0] + anns[0]["bbox"][2] / 2
            assert it.answer == ("left" if cx > rec["width"] / 2 else "right")
    # absent phrases are asked on every image, and on negative images only those
    for rec in coco["images"]:
        mine = [i for i in items if i.image_id == rec["id"]]
        assert any(i.answer is False for i in mine)
        if rec["negative"]:
            assert all(i.kind == "presence" and i.answer is False for i in mine)
    assert generate_questions(dataset, split="test") == items  # deterministic


class TruthGrounder:
    """Returns the ground-truth boxes (score 0.9) of the image asked about; or nothing at all."""

    def __init__(self, dataset: Path, coco: dict, *, empty: bool = False):
        self.dataset, self.coco, self.empty = dataset, coco, empty
        self.records = {r["file_name"]: r for r in coco["images"]}
        self.calls = 0

    def threshold_for(self, phrase):
        return 0.3

    def ground(self, images, phrases, **kwargs):  # list in, list out, as the Grounder
        return [self.ground_one(image, phrases, **kwargs) for image in images]

    def ground_one(self, image, phrases, *, modality=None, masks=False, score_threshold=None, top_k=None):
        self.calls += 1
        rec = self.records[Path(image).relative_to(self.dataset / "images").as_posix()]
        if self.empty:
            g = [PhraseGrounding(p, np.zeros((0, 4), np.float32), np.zeros(0, np.float32)) for p in phrases]
            return GroundingResult(tuple(phrases), g, (rec["height"], rec["width"]), modality)
        cats = {c["id"]: c for c in self.coco["categories"]}
        res = result_from_annotations(rec, anns_of(self.coco, rec["id"]), cats, phrases=phrases)
        for g in res.groundings:
            g.scores = g.scores * 0.9
            g.masks = None
        res.extra = {}  # a grounder knows nothing of the record's geometry
        return res


def test_truth_grounder_reaches_the_ceiling(dataset, coco, tmp_path):
    g = TruthGrounder(dataset, coco)
    before = sorted(p.name for p in dataset.rglob("*"))
    m = evaluate_vqa(g, dataset, split="test")
    assert sorted(p.name for p in dataset.rglob("*")) == before  # out=None writes nothing
    assert g.calls == len(coco["images"])  # each image grounded once
    assert m["n_questions"] == len(m["items"]) == len(generate_questions(dataset))
    for kind in CLOSED:
        k = m["by_kind"][kind]
        assert k["n"] > 0 and k["accuracy_predicted"] == k["accuracy_ground_truth"] == 1.0, (kind, k)
    assert m["overall"]["accuracy_predicted"] == 1.0
    written = evaluate_vqa(g, dataset, split="test", out=tmp_path)
    assert json.loads((tmp_path / "vqa_metrics.json").read_text())["n_questions"] == written["n_questions"]
    assert "| presence |" in (tmp_path / "vqa_metrics.md").read_text()


def test_empty_grounder_gets_only_the_absent_questions_right(dataset, coco):
    m = evaluate_vqa(TruthGrounder(dataset, coco, empty=True), dataset, split="test")
    for row in m["items"]:
        assert row["correct_ground_truth"] is True
        expected = row["kind"] == "presence" and row["answer"] is False
        assert row["correct_predicted"] is expected, row
    assert m["by_kind"]["count"]["accuracy_predicted"] == 0.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, one_torch_thread):
    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny", score_threshold=0.0)).eval()
    run = save_checkpoint(model, tmp_path_factory.mktemp("run"))
    return Grounder.from_pretrained(run)


def test_tiny_checkpoint_end_to_end(dataset, tiny):
    m = evaluate_vqa(tiny, dataset, split="test", score_threshold=0.0)
    assert set(m) >= {"n_questions", "by_kind", "overall", "items"}
    assert set(m["by_kind"]) == set(CLOSED)
    for k in [*m["by_kind"].values(), m["overall"]]:
        assert 0.0 <= k["accuracy_predicted"] <= 1.0 and k["accuracy_ground_truth"] == 1.0
    json.dumps(m)


def test_ask_on_the_sample_volume_and_a_built_slice(dataset, coco, tiny):
    vol = ask(tiny, SAMPLES / "brain2_image.nrrd", "How large is the brain tumor?", modality="MR", score_threshold=0.0)
    assert vol.context.volume is not None and vol.context.volume["n_slices"] > 1
    assert vol.answer.kind == "size" and vol.answer.unit == "mm"  # volumes always have spacing
    best = vol.context.finding(vol.answer.evidence[0])
    assert vol.answer.value == pytest.approx(max(best.extent_mm), abs=0.01)
    rec = next(r for r in coco["images"] if not r["negative"])
    flat = ask(tiny, dataset / "images" / rec["file_name"], "Which side is the brain tumor on?", modality="MR",
               score_threshold=0.0)
    assert flat.context.volume is None and flat.context.image_size == (rec["height"], rec["width"])
    assert flat.answer.value in ("left", "right", "midline", "bilateral")
    assert json.loads(json.dumps(flat.to_json()))["question"]["kind"] == "laterality"


def test_absent_questions_skip_phrases_implied_by_present_ones(tmp_path):
    names = ["left kidney", "kidney", "right kidney", "liver tumor", "tumor", "lesion", "liver", "spleen"]
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(names)]
    img = {"id": 1, "file_name": "x/a.png", "width": 100, "height": 100, "modality": "CT", "source": "x",
           "case_id": "a", "pixel_spacing": [1.0, 1.0], "slice_plane": "axial", "negative": False}
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "phrase": "left kidney", "bbox": [60, 50, 20, 30]},
            {"id": 2, "image_id": 1, "category_id": 4, "phrase": "liver tumor", "bbox": [10, 10, 10, 10]}]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "test.json").write_text(json.dumps({"images": [img], "annotations": anns,
                                                                    "categories": cats}))
    (tmp_path / "images" / "x").mkdir(parents=True)
    Image.fromarray(np.full((100, 100), 90, np.uint8)).save(tmp_path / "images" / "x" / "a.png")
    for seed in range(5):
        absent = {i.phrase for i in generate_questions(tmp_path, seed=seed) if i.answer is False}
        # "kidney", "liver", "tumor", "lesion" are there in effect; the right kidney and the spleen may be absent
        assert absent and absent <= {"right kidney", "spleen"}
