"""What makes a shipped model: thresholds chosen on validation patients under a false-positive budget
(medglip calibrate), each source's test patients measured (medglip source-report), the run packed
compactly with what it was trained on (medglip pack)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import medglip
from medglip.dataset import BuildConfig, build
from medglip.cli import app
from medglip.infer import Grounder
from medglip.model import GroundingModel, get_preset, save_checkpoint
from medglip.protocol import calibrate, choose_thresholds, source_report, source_subset

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


def test_thresholds_under_a_false_positive_budget() -> None:
    present = [("brain tumor", s, True) for s in (0.3, 0.5, 0.7, 0.9)]
    absent = [("brain tumor", s) for s in (0.2, 0.4, 0.6, 0.65, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1)]
    youden = choose_thresholds(present, absent, min_pairs=3)
    budget = choose_thresholds(present, absent, min_pairs=3, max_fpr=0.1)
    fpr = lambda t: sum(s >= t for _, s in absent) / len(absent)  # noqa: E731
    assert fpr(budget["brain tumor"]) <= 0.1 < fpr(youden["brain tumor"])
    assert 0.65 < budget["brain tumor"] <= 0.7  # the most hits the budget allows
    # no threshold meets an impossible budget: the strictest one
    assert choose_thresholds(present, [("brain tumor", 0.99)] * 5, min_pairs=3, max_fpr=0.0)["brain tumor"] == 0.95


@pytest.fixture(scope="module")
def recipe_like(tmp_path_factory) -> tuple[Path, Path]:
    """The samples built with brain1 in val and brain2 in test, and a tiny run that knows their phrases."""
    root = tmp_path_factory.mktemp("ship")
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(0.5, 0.5, 0.0), seed=1,
                      negative_ratio=0.5), root / "ds")
    torch.manual_seed(0)
    run = save_checkpoint(GroundingModel(get_preset("tiny", score_threshold=0.0)).eval(), root / "run")
    (run / "categories.json").write_text(json.dumps({
        "dataset": "/somewhere/on/the/training/machine", "phrases": ["brain tumor", "breast lesion"],
        "phrases_by_modality": {"MR": ["brain tumor", "breast lesion"]}}))
    return root / "ds", run


def test_calibrate_writes_thresholds_chosen_on_validation(recipe_like, tmp_path) -> None:
    ds, run = recipe_like
    val = json.loads((ds / "annotations" / "val.json").read_text())
    assert val["images"], "the fixture needs a validation patient"
    summary = calibrate(run, ds, tmp_path / "cal", split="val")
    assert summary["present_pairs"] > 0 and summary["absent_pairs"] > 0
    g = Grounder.from_pretrained(run, refiner=None)
    assert g.threshold_for("*") == pytest.approx(summary["thresholds"]["*"])
    assert json.loads((tmp_path / "cal" / "calibration.json").read_text())["split"] == "val"


def test_source_report_measures_each_source_alone(recipe_like, tmp_path) -> None:
    ds, run = recipe_like
    sub = source_subset(ds, "pyradiomics", tmp_path / "sub", split="val")
    test = json.loads((sub / "annotations" / "test.json").read_text())
    val = json.loads((ds / "annotations" / "val.json").read_text())
    assert len(test["images"]) == len(val["images"]) and (sub / "images").resolve() == (ds / "images").resolve()
    other = source_subset(ds, "elsewhere", tmp_path / "none", split="val")
    assert json.loads((other / "annotations" / "test.json").read_text())["images"] == []
    report = source_report(run, ds, tmp_path / "rep", split="val", masks="none")
    [row] = report["sources"]
    assert row["source"] == "pyradiomics" and row["images"] == len(val["images"]) and row["patients"] >= 1
    assert row["overall"]["n_pairs"] > 0 and row["overall"]["n_absent"] > 0 and "accuracy_ground_truth" in row["vqa"]
    assert "| pyradiomics |" in (tmp_path / "rep" / "sources.md").read_text()


def test_pack_cli_writes_a_compact_model_that_loads(recipe_like, tmp_path) -> None:
    _, run = recipe_like
    r = CliRunner().invoke(app, ["pack", str(run), str(tmp_path / "packed")])
    assert r.exit_code == 0, r.output
    packed = tmp_path / "packed"
    assert json.loads((packed / "config.json").read_text())["compact"]["format"] == 1
    cats = json.loads((packed / "categories.json").read_text())
    assert "dataset" not in cats and cats["phrases_by_modality"]["MR"] == ["brain tumor", "breast lesion"]
    g = Grounder.from_pretrained(packed, refiner=None)
    assert g.trained_on == {"MR": frozenset({"brain tumor", "breast lesion"})}
    r = CliRunner().invoke(app, ["pack", str(tmp_path / "no-run"), str(tmp_path / "x")])
    assert r.exit_code != 0 and "no-run" in r.output
