"""answer_question on hand-made contexts: each kind's value and evidence, absent targets, side and
container restrictions, comparisons with and without pixel spacing, a volume."""

from __future__ import annotations

import numpy as np
import pytest

from medglip.core.geometry import Geometry
from medglip.context import context_from_result, context_from_volume
from medglip.infer.results import GroundingResult, PhraseGrounding
from medglip.infer.volume import SliceBox, VolumeGroundingResult, VolumeObject
from medglip.vqa import Answer, answer_question, parse_question

H = W = 200
SPACING = (0.5, 0.5)  # (row_mm, col_mm)
# CT without geometry: radiological convention, so the image's RIGHT half is the patient's LEFT.
BOXES = {
    "lung tumor": ([[140, 40, 170, 60]], [0.9]),          # patient's left, upper third
    "left lung": ([[110, 10, 190, 150]], [0.95]),
    "right lung": ([[10, 10, 90, 150]], [0.95]),
    "left kidney": ([[120, 160, 150, 200]], [0.8]),      # 30 x 40 px = 15 x 20 mm, area 1200 px²
    "right kidney": ([[40, 160, 78, 194]], [0.8]),       # 38 x 34 px = 19 x 17 mm, area 1292 px²
    "pleural effusion": ([[160, 100, 190, 140]], [0.7]),  # patient's left
    "kidney stone": ([[125, 170, 130, 175], [130, 180, 136, 186], [60, 170, 64, 174]], [0.7, 0.6, 0.2]),
    "liver tumor": ([], []),
}


def grounding(boxes: dict, size=(H, W), modality="CT") -> GroundingResult:
    gs = [PhraseGrounding(p, np.array(b, np.float32).reshape(-1, 4), np.array(s, np.float32))
          for p, (b, s) in boxes.items()]
    return GroundingResult(tuple(boxes), gs, size, modality)


@pytest.fixture(scope="module")
def ctx():
    return context_from_result(grounding(BOXES), pixel_spacing=SPACING, score_threshold=0.3)


@pytest.fixture(scope="module")
def ctx_px():  # the same boxes without pixel spacing
    return context_from_result(grounding(BOXES), score_threshold=0.3)


def ask(text: str, context) -> Answer:
    a = answer_question(parse_question(text), context)
    assert a.kind == parse_question(text).kind and a.via == "grounding"
    return a


def num(context, phrase: str, i: int = 0) -> int:
    return context.for_phrase(phrase)[i].number


def test_presence_in_a_container(ctx):
    a = ask("Is there a tumor in the left lung?", ctx)
    assert a.value is True and a.text.startswith("Yes")
    assert {num(ctx, "lung tumor"), num(ctx, "left lung")} <= set(a.evidence)
    assert f"box F{num(ctx, 'lung tumor')}" in a.text
    b = ask("Is there a tumor in the right lung?", ctx)
    assert b.value is False and b.text.startswith("No lung tumor identified in the right lung")
    # the tumour found elsewhere is cited
    assert num(ctx, "lung tumor") in b.evidence and f"box F{num(ctx, 'lung tumor')}" in b.text


def test_presence_restricted_to_a_side(ctx):
    assert ask("Is there a pleural effusion on the right?", ctx).value is False
    assert ask("Is there a pleural effusion on the left?", ctx).value is True
    assert ask("Is there bilateral pleural effusion?", ctx).value is False


def test_missing_container_falls_back_to_the_side_and_says_so():
    c = context_from_result(grounding({"lung tumor": BOXES["lung tumor"], "left lung": ([], []),
                                       "right lung": ([], [])}), pixel_spacing=SPACING)
    left = ask("Is there a tumor in the left lung?", c)
    assert left.value is True and any("not found" in n and "side" in n for n in left.notes)
    assert "not found" in left.text
    assert ask("Is there a tumor in the right lung?", c).value is False


def test_one_containment_rule_for_the_context_and_vqa():
    # the tumour box is half inside the lung box: within it, for the context's parent and for VQA alike
    c = context_from_result(grounding({"lung tumor": ([[100, 40, 140, 60]], [0.9]),
                                       "left lung": ([[120, 10, 190, 150]], [0.9])}), pixel_spacing=SPACING)
    assert c.for_phrase("lung tumor")[0].parent_number == num(c, "left lung")
    assert ask("Is there a tumor in the left lung?", c).value is True
    c2 = context_from_result(grounding({"lung tumor": ([[100, 40, 140, 60]], [0.9]),
                                        "left lung": ([[125, 10, 190, 150]], [0.9])}), pixel_spacing=SPACING)
    assert c2.for_phrase("lung tumor")[0].parent_number is None  # 15 / 40 of the width inside
    assert ask("Is there a tumor in the left lung?", c2).value is False


def test_a_sided_container_found_on_the_other_side_is_not_used():
    # the "left lung" box and the tumour both lie in the image's LEFT half: the patient's right
    boxes = {"lung tumor": ([[40, 60, 70, 90]], [0.9]), "left lung": ([[20, 20, 95, 160]], [0.9])}
    c = context_from_result(grounding(boxes), score_threshold=0.3)
    assert c.for_phrase("left lung")[0].side == "right" and c.for_phrase("lung tumor")[0].side == "right"
    a = ask("Is there a tumor in the left lung?", c)
    assert a.value is False and a.text.startswith("No")
    assert f"box F{num(c, 'left lung')}" in a.text and "not used" in a.text
    assert ask("Is there a tumor in the right lung?", c).value is True


def test_absent_target(ctx):
    assert ask("Is there a liver tumor?", ctx).value is False
    assert ask("Is there a liver tumor?", ctx).text.startswith("No liver tumor identified")
    for text, value in [("How many liver lesions are visible?", 0), ("Where is the liver tumor?", None),
                        ("How big is the liver tumor?", None), ("Which side is the liver tumor on?", None)]:
        a = ask(text, ctx)
        assert a.value == value and type(a.value) is type(value) and "No liver tumor identified" in a.text


def test_laterality(ctx):
    a = ask("Which side is the lung tumor on?", ctx)
    assert a.value == "left" and a.evidence == [num(ctx, "lung tumor")]
    no = ask("Is the lung tumor on the right?", ctx)
    assert no.value == "left" and no.text.startswith("No")
    both = context_from_result(grounding({"lung tumor": ([[140, 40, 170, 60], [20, 40, 50, 60]], [0.9, 0.8])}))
    assert ask("Which side is the lung tumor on?", both).value == "bilateral"
    mid = context_from_result(grounding({"lung tumor": ([[90, 40, 110, 60]], [0.9])}))
    assert ask("Which side is the lung tumor on?", mid).value == "midline"
    endo = context_from_result(grounding({"polyp": ([[140, 40, 170, 60]], [0.9])}, modality="ENDO"))
    e = ask("Which side is the polyp on?", endo)
    assert e.value is None and e.evidence == [1] and e.notes


def test_location(ctx):
    a = ask("Where is the lung tumor?", ctx)
    assert "patient's left" in a.value and "upper part" in a.value and a.evidence == [num(ctx, "lung tumor")]


def test_count_uses_the_score_threshold(ctx):
    a = ask("How many kidney stones are visible?", ctx)
    assert a.value == 2 and a.evidence == [num(ctx, "kidney stone", 0), num(ctx, "kidney stone", 1)]


def test_size_in_mm_then_in_px(ctx, ctx_px):
    a = ask("How big is the left kidney?", ctx)
    assert a.unit == "mm" and a.value == pytest.approx(40 * 0.5) and a.evidence == [num(ctx, "left kidney")]
    b = ask("How big is the left kidney?", ctx_px)
    assert b.unit == "px" and b.value == pytest.approx(40) and any("spacing" in n for n in b.notes)


def test_containment(ctx):
    a = ask("Which organ contains the lung tumor?", ctx)
    assert a.value == "left lung" and a.evidence == [num(ctx, "lung tumor"), num(ctx, "left lung")]
    lone = context_from_result(grounding({"kidney stone": ([[10, 10, 20, 20]], [0.9])}))
    b = ask("Which structure contains the kidney stone?", lone)
    assert b.value == "kidney" and b.notes  # the ontology parent, flagged as not seen on the image


def test_comparison_by_mm_and_by_area(ctx, ctx_px):
    a = ask("Which kidney is larger?", ctx)  # longest 20 mm (left) vs 19 mm (right)
    assert a.value == "left kidney" and a.unit == "mm"
    assert sorted(a.evidence) == sorted([num(ctx, "left kidney"), num(ctx, "right kidney")])
    assert ask("Is the left kidney larger than the right?", ctx).text.startswith("Yes")
    assert ask("Is the right kidney larger than the left kidney?", ctx).text.startswith("No")
    b = ask("Which kidney is larger?", ctx_px)  # no spacing: box areas 1200 (left) vs 1292 px² (right)
    assert b.value == "right kidney" and b.notes
    c = ask("Is the liver lesion larger than the left kidney?", ctx)
    assert c.value is None and c.text.startswith("Cannot compare") and c.evidence == [num(ctx, "left kidney")]


def test_open_question_is_unanswered_and_ungrounded_targets_are_flagged(ctx):
    a = answer_question(parse_question("Describe the findings."), ctx)
    assert a.via == "unanswered" and a.value is None and "language model" in a.text
    b = answer_question(parse_question("Is there a gallstone?"), ctx)
    assert b.value is False and any("not among the grounded phrases" in n for n in b.notes)


def test_volume_size_side_and_slices():
    shape = (64, 64, 10)
    geom = Geometry.identity(3, (0.8, 0.8, 2.5))
    lo, hi = np.array([10.0, 20.0, 3.0]), np.array([29.0, 39.0, 6.0])  # voxel centres, inclusive
    spacing = np.array(geom.spacing)
    boxes = [SliceBox(k, np.array([10.0, 24.0, 30.0, 44.0]), 0.8) for k in range(3, 7)]
    obj = VolumeObject("brain tumor", 0.8, 0.8, (3, 6), np.stack([lo, hi]), np.stack([lo * spacing, hi * spacing]),
                       boxes)
    res = VolumeGroundingResult(("brain tumor",), [obj], "axial", 2, shape, geom, "MR")
    c = context_from_volume(res)
    size = ask("How big is the brain tumor?", c)
    # voxel edges: 20 voxels of 0.8 mm in x and y, 4 slices of 2.5 mm
    assert size.unit == "mm" and size.value == pytest.approx(16.0)
    # +x (i) is the patient's left; the object's centre (i = 19.5) is left of the volume's (31.5)
    assert ask("Which side is the brain tumor on?", c).value == "right"
    assert "slices 3-6" in ask("Where is the brain tumor?", c).text
