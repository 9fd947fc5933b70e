"""Model integrity and a full disk (issue 14): SHA-256 of weight files verified at load and on resume,
settings validated and sealed (a hand-edited config.json is refused naming the file and field), training
stops on a non-finite loss and keeps the last good checkpoint, ENOSPC is one line."""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import medglip
from attacks import corrupt_file
from medglip.dataset import BuildConfig, build
from medglip.cli import app
from medglip.errors import MedglipError
from medglip.model import GroundingModel, get_preset, load_checkpoint, save_checkpoint
from medglip.model.checkpoint import CheckpointError
from medglip.train import TrainConfig, train
from medglip.train import loop as train_loop
from medglip.train import state as train_state

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(GroundingModel(get_preset("tiny")).eval(), tmp_path_factory.mktemp("run") / "run")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "ds"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), out)
    return out


def _copy(run: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, dest))


def test_the_weights_hash_is_recorded_and_verified(run, tmp_path):
    recorded = json.loads((run / "config.json").read_text())["sha256"]
    assert set(recorded) == {"model.safetensors"} and len(recorded["model.safetensors"]) == 64
    load_checkpoint(run)
    bad = _copy(run, tmp_path / "bad")
    weights = bad / "model.safetensors"
    corrupt_file(weights, offset=weights.stat().st_size // 2, size=65536)  # a damaged block: still parses
    with pytest.raises(CheckpointError, match=r"bad/model\.safetensors is damaged or was replaced.*config\.json"):
        load_checkpoint(bad)


def test_a_truncated_or_missing_weight_file_is_refused_by_name(run, tmp_path):
    cut = _copy(run, tmp_path / "cut")
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"cut/model\.safetensors"):
        load_checkpoint(cut)
    (cut / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"cut/model\.safetensors is missing"):
        load_checkpoint(cut)


def test_an_old_checkpoint_without_hashes_loads_with_a_warning(run, tmp_path, caplog):
    old = _copy(run, tmp_path / "old")
    cfg = json.loads((old / "config.json").read_text())
    del cfg["sha256"], cfg["settings_sha256"]  # saved before either was recorded
    (old / "config.json").write_text(json.dumps(cfg))
    with caplog.at_level(logging.WARNING, logger="medglip.model.checkpoint"):
        model = load_checkpoint(old)
    assert isinstance(model, GroundingModel) and "records no SHA-256" in caplog.text
    truncated = _copy(old, tmp_path / "old-cut")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[:1000])
    with pytest.raises(CheckpointError, match=r"old-cut/model\.safetensors cannot be loaded"):
        load_checkpoint(truncated)


def test_the_service_refuses_a_damaged_model_at_start_up(run, tmp_path):
    from medglip.infer import Grounder

    bad = _copy(run, tmp_path / "served")
    corrupt_file(bad / "model.safetensors", offset=4096, size=4096)
    with pytest.raises(MedglipError, match=r"served/model\.safetensors is damaged"):
        Grounder.from_pretrained(bad, refiner=None)


def _edited(run: Path, dest: Path, **changes) -> Path:
    """A copy of ``run`` whose config.json has ``changes`` (its seal left as it was: an edit by hand)."""
    out = _copy(run, dest)
    doc = json.loads((out / "config.json").read_text())
    doc.update(changes)
    (out / "config.json").write_text(json.dumps(doc, indent=2))
    return out


@pytest.mark.parametrize("field, value, say", [
    ("image_size", -128, "an integer in 32..4096"),          # the probe's three: every request answered 500
    ("image_size", 1e9, "an integer in 32..4096"),
    ("max_text_len", -5, "an integer in 8..8192"),
    ("image_size", "512", "an integer in 32..4096"),
    ("nms_iou", 7.5, "a number in [0, 1]"),
    ("mask_head", "yes", "true or false"),
    ("modalities", ["CT", "XYZ"], "modality codes"),
    ("backbone", "hf-hub:timm/resnet18", "no 'hf-hub:' or path"),                 # timm would fetch it
    ("backbone", "local-dir:/tmp/elsewhere", "no 'hf-hub:' or path"),             # or read a folder anywhere
    ("backbone_kwargs", {"checkpoint_path": "/tmp/evil.pth"}, "not allowed"),      # timm would unpickle it
    ("backbone_kwargs", {"drop_rate": 5}, "drop_rate must be a number in [0, 1]"),
    ("finding_thresholds", [["liver", "high"]], "[phrase, threshold] pairs"),
])
def test_edited_settings_are_refused_on_load_naming_the_file_and_field(run, tmp_path, field, value, say):
    bad = _edited(run, tmp_path / "edited", **{field: value})
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(bad)
    assert "edited/config.json" in str(exc.value) and field in str(exc.value) and say in str(exc.value), exc.value


def test_the_service_refuses_edited_settings_at_start_up(run, tmp_path, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: None)  # started: it would have served
    bad = _edited(run, tmp_path / "served", image_size=-128)
    result = CliRunner().invoke(app, ["serve", "--checkpoint", str(bad)])
    assert result.exit_code == 2, result.output
    assert "served/config.json" in result.output and "image_size" in result.output


def test_the_settings_are_sealed_and_a_valid_edit_is_refused_too(run, tmp_path, caplog):
    from medglip.protocol import set_thresholds

    doc = json.loads((run / "config.json").read_text())
    assert len(doc["settings_sha256"]) == 64
    edited = _edited(run, tmp_path / "valid-edit", score_threshold=0.5)  # a valid value, not the saved one
    with pytest.raises(CheckpointError, match=r"valid-edit/config\.json: its settings were changed after"):
        load_checkpoint(edited)
    calibrated = _copy(run, tmp_path / "calibrated")  # changing them on purpose reseals them
    set_thresholds(calibrated, {"liver": 0.4, "*": 0.3})
    assert load_checkpoint(calibrated).config.finding_threshold("liver") == 0.4
    unsealed = _copy(run, tmp_path / "unsealed")  # saved before the seal: loads, with a warning
    doc = json.loads((unsealed / "config.json").read_text())
    del doc["settings_sha256"]
    (unsealed / "config.json").write_text(json.dumps(doc))
    with caplog.at_level(logging.WARNING, logger="medglip.model.checkpoint"):
        load_checkpoint(unsealed)
    assert "records no SHA-256 of its settings" in caplog.text


def test_a_checkpoint_file_linked_from_outside_its_folder_is_refused(run, tmp_path):
    import os

    linked = _copy(run, tmp_path / "linked")
    elsewhere = tmp_path / "store.safetensors"
    (linked / "model.safetensors").rename(elsewhere)
    os.symlink(elsewhere, linked / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"linked/model\.safetensors is a link out of the checkpoint folder"):
        load_checkpoint(linked)


def _cfg(**kw) -> TrainConfig:
    base = dict(preset="tiny", model_overrides=(("image_size", 64),), max_steps=4, batch_size=2, lr=1e-3,
                warmup_steps=1, checkpoint_every=2, log_every=2, seed=0, device="cpu", negatives_per_image=1)
    base.update(kw)
    return TrainConfig(**base)


def test_resume_refuses_a_damaged_checkpoint_by_name(dataset, tmp_path, one_torch_thread):
    out = tmp_path / "r"
    train(dataset, out, _cfg(max_steps=2))
    ckpt = train_state.latest_checkpoint(out)
    doc = json.loads((ckpt / train_state.STATE_JSON).read_text())
    assert doc["format"] == 2 and len(doc["sha256"][train_state.STATE_TENSORS]) == 64
    corrupt_file(ckpt / "model.safetensors", offset=8192, size=4096)
    with pytest.raises(CheckpointError, match=r"cannot resume from .*step-0000002.*model\.safetensors is damaged"):
        train(dataset, out, _cfg(max_steps=4), resume=True)
    corrupt_file(ckpt / "model.safetensors", offset=8192, size=4096, seed=1)  # still damaged, differently
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        train(dataset, out, _cfg(max_steps=4), resume=True)


def test_a_damaged_trainer_state_is_refused_by_name(tmp_path):
    train_state.save_state({"step": 3, "w": torch.arange(4096.0)}, tmp_path)
    assert train_state.load_state(tmp_path)["step"] == 3
    corrupt_file(tmp_path / train_state.STATE_TENSORS, offset=2048, size=64)
    with pytest.raises(CheckpointError, match=r"trainer_state\.safetensors is damaged"):
        train_state.load_state(tmp_path)


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(dataset, tmp_path, monkeypatch,
                                                                             one_torch_thread):
    real = train_loop._step
    calls = {"n": 0}

    def nan_at_3(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:
            out["loss"] = float("nan")
        return out

    monkeypatch.setattr(train_loop, "_step", nan_at_3)
    out = tmp_path / "nan"
    with pytest.raises(train_loop.NonFiniteLoss, match=r"step 3: the loss is nan.*step-0000002.*is kept"):
        train(dataset, out, _cfg(max_steps=4))
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 2
    assert sorted(p.name for p in (out / "checkpoints").glob("step-*")) == ["step-0000002"]
    published = (out / "model.safetensors").read_bytes()
    kept = out / "checkpoints" / "step-0000002"
    kept = kept / "ema" if (kept / "ema").is_dir() else kept  # the run publishes its EMA weights
    assert published == (kept / "model.safetensors").read_bytes()
    load_checkpoint(out)

    calls["n"] = -100  # the CLI: one error line and a non-zero exit
    monkeypatch.setattr(train_loop, "_step", lambda *a, **k: dict(real(*a, **k), loss=float("inf")))
    res = CliRunner().invoke(app, ["train", str(dataset), "--out", str(tmp_path / "cli"), "--preset", "tiny",
                                   "--max-steps", "2", "--batch-size", "2", "--image-size", "64", "--device", "cpu"])
    assert res.exit_code == 2 and "step 1: the loss is inf" in res.output and "Traceback" not in res.output


def test_a_full_disk_during_build_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    from medglip.dataset import runner

    def full(path, *args, **kwargs):
        if "records" in str(path) or "failures" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args, **kwargs)

    real = runner.atomic_write_json
    monkeypatch.setattr(runner, "atomic_write_json", full)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["build", str(SAMPLES), str(out), "--layout", "manifest"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if "error" in ln.lower()]
    assert len(lines) == 1 and "no space left" in lines[0].lower() and str(out.name) in res.output
    assert "Traceback" not in res.output
