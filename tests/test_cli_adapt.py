"""`medglip adapt DATA --out RUN`: a bar with the time left of the budget, then the method, steps, time, run
folder, each adapted phrase's threshold and, with --reference, the forgetting check; bad input is one line.

On CPU with a tiny start model (64 px) and the shipped pyradiomics samples, two steps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import medglip
from medglip.cli import app
from medglip.model import GroundingModel, get_preset, save_checkpoint

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
TINY = dict(image_size=64, modalities=("CT", "MR"), own_encoder_modalities=("CT", "MR"), mask_head=True)
runner = CliRunner()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(GroundingModel(get_preset("tiny", **TINY)), tmp_path_factory.mktemp("start") / "run")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """brain1 and breast1 train, brain2 test (its manifest says so): the reference's test patient."""
    from medglip.dataset import BuildConfig, build

    out = tmp_path_factory.mktemp("adapt-cli") / "ds"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), out)
    return out


def _said(r) -> str:
    return " ".join(r.output.split())


def test_adapt_shows_the_budget_bar_and_says_what_it_made(start, dataset, tmp_path, monkeypatch):
    from medglip.cli import progress

    bar = io.StringIO()
    monkeypatch.setattr(progress, "console", Console(file=bar, force_terminal=True, width=200))
    run = tmp_path / "run"
    r = runner.invoke(app, ["adapt", str(dataset), "--out", str(run), "--from", str(start), "-p", "brain tumor",
                            "--method", "head", "--max-steps", "2", "--device", "cpu", "--reference", str(dataset)])
    assert r.exit_code == 0, r.output + repr(r.exception)
    doc = json.loads((run / "adapt.json").read_text())
    assert doc["method"] == "head" and doc["steps"] == 2 and doc["phrases"] == ["brain tumor"]
    said = _said(r)
    assert "method head, 2 step(s)" in said and f"--checkpoint {run}" in said
    # the thresholds table (stdout, a pipe: tab-separated) is the calibration adapt wrote
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert rows[0] == ["phrase", "threshold"]
    assert {p: float(t) for p, t in rows[1:]} == {p: round(t, 2) for p, t in doc["calibration"]["thresholds"].items()}
    f = doc["forgetting"]
    assert f is not None and f"On {f['pairs']} present pairs" in said and "forgetting:" in said
    text = bar.getvalue()
    assert "adapting" in text and "2/2" in text and "left" in text and "loss " in text


def test_adapt_names_bad_input_in_one_line(dataset, tmp_path):
    r = runner.invoke(app, ["adapt", str(dataset), "--out", str(tmp_path / "a"), "--method", "magic"])
    assert r.exit_code == 2 and "unknown adaptation method 'magic'" in _said(r) and "Traceback" not in r.output
    r = runner.invoke(app, ["adapt", str(dataset), "--out", str(tmp_path / "b"), "--from", str(tmp_path)])
    assert r.exit_code == 2 and f"{tmp_path}: not a run folder" in _said(r)
    r = runner.invoke(app, ["adapt", str(dataset), "--out", str(tmp_path / "c"), "--budget-minutes", "0"])
    assert r.exit_code == 2 and "budget must be a positive number" in _said(r)


def test_adapt_passes_the_shared_rate_and_the_rehearsal_set(start, dataset, tmp_path):
    run = tmp_path / "run"
    r = runner.invoke(app, ["adapt", str(dataset), "--out", str(run), "--from", str(start), "--method", "full",
                            "--max-steps", "2", "--device", "cpu", "--shared-lr-scale", "0", "--replay", str(dataset),
                            "--replay-every", "3", "--keep-share", "0.5", "--norm-stats", "keep"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    saved = json.loads((run / "train_config.json").read_text())["adapt"]
    assert saved["shared_lr_scale"] == 0.0 and saved["replay"] == {"dataset": str(dataset), "every": 3}
    assert saved["keep_share"] == 0.5 and saved["norm_stats"] == "keep"
    r = runner.invoke(app, ["adapt", str(dataset), "--out", str(tmp_path / "n"), "--norm-stats", "frozen"])
    assert r.exit_code == 2 and "norm_stats must be one of update, keep" in _said(r)
    r = runner.invoke(app, ["adapt", str(dataset), "--out", str(tmp_path / "b"), "--shared-lr-scale", "1.5"])
    assert r.exit_code == 2 and "--shared-lr-scale" in _said(r) and "Traceback" not in r.output
    r = runner.invoke(app, ["adapt", str(dataset), "--out", str(tmp_path / "c"), "--replay", str(tmp_path)])
    assert r.exit_code == 2 and "not a built dataset" in _said(r)
