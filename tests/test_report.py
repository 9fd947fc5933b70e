"""medglip.report: reports of a tiny random checkpoint on a PNG and a NIfTI volume, files, LLM hook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medglip.errors import MedglipError
from medglip.infer.results import GroundingResult, PhraseGrounding
from medglip.report import Report, make_report, write_report
from fakes import tiny_grounder


class StubLLM:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []

    def rewrite_report(self, markdown, context):
        self.calls.append((markdown, context))
        return "A short rewrite of the findings."


@pytest.fixture(scope="module")
def grounder(tmp_path_factory, one_torch_thread):
    return tiny_grounder(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def png(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "scan.png"
    Image.fromarray((np.random.default_rng(0).random((96, 128)) * 255).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def nifti(tmp_path_factory) -> Path:
    arr = (100 + 900 * np.random.default_rng(1).random((6, 24, 32))).astype(np.float32)  # (z, y, x)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.9, 3.0))
    path = tmp_path_factory.mktemp("vol") / "vol.nii.gz"
    sitk.WriteImage(img, str(path))
    return path


def _sentences_cover(report: Report, phrases) -> None:
    for p in phrases:
        name = p[:1].upper() + p[1:]
        assert any(s.startswith(f"{name} (F") or s.startswith(f"{name}, 1 of ") for s in report.sentences) \
            or f"No {p} identified." in report.sentences


def test_report_of_a_png_with_findings_masks_table_and_overlay(grounder, png):
    phrases = ["brain tumor", "liver tumor"]
    rep = make_report(grounder, png, phrases, modality="MR", masks=True, score_threshold=0.0)
    ctx = rep.context
    assert rep.source == str(png) and rep.modality == "MR" and ctx.asked == tuple(phrases)
    assert len(ctx.findings) >= 1 and len(rep.sentences) == len(ctx.findings) + len(ctx.absent)
    _sentences_cover(rep, phrases)
    for f in ctx.findings:  # no spacing in a PNG: sizes in pixels, masks summarised
        assert f.size_mm is None and f.mask_area_px is not None
        assert any(f"({f.id}, score {f.score:.2f})" in s and s.endswith(" px).") for s in rep.sentences)
        assert f.size_source == "mask" and any(f"from its mask" in s for s in rep.sentences)
    md = rep.markdown
    assert "| Id | Phrase | Score |" in md and "![overlay](report_overlay.png)" in md and "not a diagnosis" in md
    assert md.count("\n| ") == 1 + len(ctx.findings)  # table header + one row per finding
    assert rep.overlay.size == (128, 96) and rep.overlay.mode == "RGB"
    # nothing reaches a threshold of 1: every phrase is reported as not identified
    none = make_report(grounder, png, phrases, modality="MR", score_threshold=1.0)
    assert none.sentences == ["No brain tumor identified.", "No liver tumor identified."]
    assert "- No liver tumor identified." in none.markdown and "None above the score threshold" in none.markdown


def test_report_of_a_nifti_volume_gives_slice_ranges_and_extents(grounder, nifti):
    rep = make_report(grounder, nifti, ["brain tumor"], modality="MR", score_threshold=0.0)
    ctx = rep.context
    assert ctx.volume is not None and ctx.volume["n_slices"] == 6 and ctx.plane == "axial"
    assert ctx.image_size == (24, 32) and rep.overlay.size == (32, 24)
    assert ctx.findings and ctx.pixel_spacing == pytest.approx((0.9, 0.7))
    for f in ctx.findings:
        a, b = f.slices
        span = f"slice {a}" if a == b else f"slices {a}–{b}"  # the slice range is part of the location words
        n = f"{b - a + 1} slice{'s' if a != b else ''}, "
        assert span in f.location
        assert any(f"({f.id}," in s and span in s and n in s and "(LPS x × y × z)" in s for s in rep.sentences)
        assert a <= f.key_slice <= b
        # z extent: whole slices of 3 mm
        assert f.extent_mm[2] == pytest.approx(3.0 * (b - a + 1))
    assert ctx.volume["key_slice"] == max(ctx.findings, key=lambda f: f.score).key_slice
    assert "| F1 | brain tumor |" in rep.markdown and "Size (mm, LPS" in rep.markdown


def test_write_report_writes_three_loadable_files_and_the_llm_prose(grounder, png, tmp_path):
    llm = StubLLM()
    rep = make_report(grounder, png, ["brain tumor"], modality="MR", score_threshold=0.0, llm=llm)
    assert len(llm.calls) == 1 and llm.calls[0][0] == rep.markdown and llm.calls[0][1] is rep.context
    assert rep.prose == "A short rewrite of the findings."
    paths = write_report(rep, tmp_path / "out", stem="case7")
    assert set(paths) == {"md", "json", "overlay"}
    assert [p.name for p in paths.values()] == ["case7.md", "case7.json", "case7_overlay.png"]
    md = paths["md"].read_text()
    assert "![overlay](case7_overlay.png)" in md and "report_overlay.png" not in md and rep.prose in md
    data = json.loads(paths["json"].read_text())
    assert data["sentences"] == rep.sentences and data["prose"] == rep.prose
    assert data["context"]["findings"][0]["number"] == 1
    with Image.open(paths["overlay"]) as im:
        assert im.size == (128, 96)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]  # no temp files left
    with pytest.raises(MedglipError, match="stem"):
        write_report(rep, tmp_path, stem="../x")


def test_findings_default_to_the_known_phrases_else_an_error(grounder, png, monkeypatch):
    assert tuple(grounder.known_phrases) == ()  # a bare checkpoint lists no trained phrases
    with pytest.raises(MedglipError, match="findings"):
        make_report(grounder, png, modality="MR")
    monkeypatch.setattr(grounder, "known_phrases", ("liver",))
    assert make_report(grounder, png, modality="MR").context.asked == ("liver",)


def test_a_phrase_found_on_the_other_side_says_so(grounder, tmp_path, monkeypatch):
    path = tmp_path / "ct.png"
    Image.fromarray(np.full((100, 100), 40, np.uint8)).save(path)
    boxes = {"left kidney": ([10.0, 40.0, 30.0, 60.0], 0.9), "liver tumor": None}

    def fake_ground(image, phrases, **kw):
        gs = []
        for p in phrases:
            box = boxes[p]
            gs.append(PhraseGrounding(p, np.array([box[0]] if box else [], np.float32).reshape(-1, 4),
                                      np.array([box[1]] if box else [], np.float32)))
        return GroundingResult(tuple(phrases), gs, (100, 100), "CT", source=str(path),
                               extra={"pixel_spacing": [0.5, 0.5]}, pixels=np.full((100, 100), 40, np.uint8))

    monkeypatch.setattr(grounder, "ground_one", fake_ground)
    rep = make_report(grounder, path, ["left kidney", "liver tumor"])
    # CT without geometry: the box on the image's LEFT is on the patient's RIGHT
    assert rep.sentences == [
        "Left kidney (F1, score 0.90): patient's right, middle part of the image; found on the patient's "
        "right, opposite to the side named; 10 × 10 mm, from its box.",
        "No liver tumor identified.",
    ]
    assert re.search(r"\| F1 \| left kidney \| 0\.90 \| 10, 40, 30, 60 \| 10 × 10 \| box \| – \|", rep.markdown)
