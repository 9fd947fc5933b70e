"""What a model was never trained on is said in every output: the result, its JSON, the grounded
context (VQA, reports, the service), the report's Markdown and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from fakes import BoxFillRefiner, tiny_grounder
from medglip.infer import Grounder
from medglip.cli import app
from medglip.context import context_from
from medglip.report import make_report


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("untrained") / "run"
    tiny_grounder(folder)
    (folder / "categories.json").write_text(json.dumps({
        "phrases": ["brain tumor", "skin lesion"],
        "phrases_by_modality": {"MR": ["brain tumor"], "DERM": ["skin lesion"]}}))
    return folder


@pytest.fixture(scope="module")
def grounder(run):
    return Grounder.from_pretrained(run, refiner=BoxFillRefiner())


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("img") / "slice.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).save(path)
    return path


def test_known_phrase_in_its_modality_has_no_note(grounder, image):
    res = grounder.ground_one(image, ["Brain tumor"], modality="MR")
    assert res.untrained == () and res.to_json()["untrained"] == []


def test_unknown_phrase_and_phrase_of_another_modality_are_named(grounder, image):
    res = grounder.ground_one(image, ["brain tumor", "liver", "skin lesion"], modality="MR")
    notes = res.untrained
    assert len(notes) == 2
    assert "'liver' was never a training phrase" in notes[0]
    assert "'skin lesion' was trained on DERM images only, not MR" in notes[1]
    assert res.to_json()["untrained"] == list(notes)
    assert context_from(res).to_json()["untrained"] == list(notes)


def test_unknown_modality_is_one_line(grounder, image):
    res = grounder.ground_one(image, ["brain tumor", "liver"], modality="CT")
    assert len(res.untrained) == 1 and "never trained on CT images (only DERM, MR)" in res.untrained[0]


def test_volume_result_says_it_too(grounder):
    vol = np.random.default_rng(1).random((32, 32, 3)).astype(np.float32) * 100
    res = grounder.ground_volume(vol, ["liver"], modality="MR")
    assert res.untrained and res.to_json()["untrained"] == list(res.untrained)


def test_report_markdown_and_cli_say_it(grounder, run, image, tmp_path):
    rep = make_report(grounder, image, ["liver"], modality="MR")
    assert "**Caution:** 'liver' was never a training phrase" in rep.markdown
    assert rep.to_json()["context"]["untrained"]
    out = tmp_path / "res.json"
    r = CliRunner().invoke(app, ["ground", str(image), "-p", "liver", "--modality", "MR",
                                 "--checkpoint", str(run), "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "untrained" in r.output and "'liver' was never a training phrase" in r.output
    assert json.loads(out.read_text())["untrained"]


def test_a_run_that_does_not_record_its_training_says_nothing(tmp_path, image):
    g = tiny_grounder(tmp_path / "bare")
    assert g.ground_one(image, ["liver"], modality="CT").untrained == ()
