"""The held-out protocol (medglip.protocol): leave-one-patient-out folds never see their patient,
thresholds are chosen from the folds and written into the final checkpoint, which the Grounder uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import medglip
from medglip.dataset import BuildConfig, build
from medglip.protocol import choose_thresholds, heldout_report, lesion_patients, lopo, make_fold
from medglip.train import TrainConfig

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("proto") / "ds"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), out)  # brain2: test
    return out


def test_folds_hold_out_one_patient(dataset: Path, tmp_path: Path) -> None:
    assert lesion_patients(dataset) == [("pyradiomics", "brain1"), ("pyradiomics", "breast1")]
    fold = make_fold(dataset, ("pyradiomics", "brain1"), tmp_path / "f")
    train = json.loads((fold / "annotations" / "train.json").read_text())
    test = json.loads((fold / "annotations" / "test.json").read_text())
    assert {im["case_id"] for im in train["images"]} == {"breast1"}
    assert {im["case_id"] for im in test["images"]} == {"brain1"} and test["annotations"]
    assert (fold / "images").resolve() == (dataset / "images").resolve()
    original = json.loads((dataset / "annotations" / "train.json").read_text())
    assert {im["case_id"] for im in original["images"]} == {"brain1", "breast1"}  # the dataset is untouched


def test_thresholds_maximise_hits_minus_false_positives() -> None:
    present = [("brain tumor", s, True) for s in (0.6, 0.7, 0.8)] + [("brain tumor", 0.9, False)]
    absent = [("brain tumor", s) for s in (0.1, 0.2, 0.5)]
    t = choose_thresholds(present, absent, min_pairs=3)
    assert 0.5 < t["*"] <= 0.6 and t["brain tumor"] == t["*"]  # every hit kept, the 0.5 false positive gone
    assert choose_thresholds([], absent) == {"*": 0.3}  # nothing to learn from: the project default


def test_lopo_writes_thresholds_into_the_final_checkpoint(dataset: Path, tmp_path: Path) -> None:
    from medglip.infer import Grounder

    cfg = TrainConfig(preset="tiny", max_steps=2, batch_size=2, model_overrides=(("image_size", 64),),
                      device="cpu", checkpoint_every=100, ema_decay=None)
    summary = lopo(dataset, tmp_path / "lopo", cfg)
    assert [f["patient"] for f in summary["folds"]] == ["pyradiomics/brain1", "pyradiomics/breast1"]
    assert all(f["present"] for f in summary["folds"])  # each fold scored its held-out lesions
    g = Grounder.from_pretrained(tmp_path / "lopo" / "final", refiner=None)
    assert g.threshold_for("anything") == pytest.approx(summary["thresholds"]["*"])
    assert "| **mean** |" in (tmp_path / "lopo" / "lopo.md").read_text()
    report = heldout_report(tmp_path / "lopo" / "final", dataset, tmp_path / "held")
    assert [r["patient"] for r in report["patients"]] == ["pyradiomics/brain2"]
    assert report["patients"][0]["vqa"]["accuracy_ground_truth"] == 1.0  # the ceiling of the answering code
    assert "| pyradiomics/brain2 |" in (tmp_path / "held" / "heldout.md").read_text()


def test_lopo_resumes_a_fold_interrupted_by_a_crash(dataset: Path, tmp_path: Path) -> None:
    from medglip.train import train
    from medglip.train.state import latest_checkpoint

    cfg = TrainConfig(preset="tiny", max_steps=4, batch_size=2, model_overrides=(("image_size", 64),),
                      device="cpu", checkpoint_every=2, ema_decay=None)
    fold = tmp_path / "lopo" / "folds" / "pyradiomics-brain1"
    data = make_fold(dataset, ("pyradiomics", "brain1"), fold / "data")

    def crash_at_3(step: int, metrics: dict) -> None:
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data, fold / "run", cfg, on_step=crash_at_3)
    assert latest_checkpoint(fold / "run").name == "step-0000002"  # the crash left a half-trained fold
    summary = lopo(dataset, tmp_path / "lopo", cfg, final=False)
    assert latest_checkpoint(fold / "run").name == "step-0000004"  # finished from its checkpoint, not skipped
    assert len(summary["folds"]) == 2


def test_lopo_cli_passes_its_training_settings_to_every_fold(dataset: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from medglip.cli import app

    r = CliRunner().invoke(app, ["lopo", str(dataset), "--out", str(tmp_path / "l"), "--preset", "tiny",
                                 "--max-steps", "2", "--batch-size", "2", "--image-size", "64", "--warmup-steps", "1",
                                 "--mask-weight", "0", "--device", "cpu", "--no-final"])
    assert r.exit_code == 0, r.output
    for fold in ("pyradiomics-brain1", "pyradiomics-breast1"):
        cfg = json.loads((tmp_path / "l" / "folds" / fold / "run" / "train_config.json").read_text())["config"]
        assert (cfg["warmup_steps"], cfg["mask_weight"], cfg["max_steps"]) == (1, 0.0, 2)
    assert not (tmp_path / "l" / "final").exists()
