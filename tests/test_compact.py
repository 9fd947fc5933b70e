"""Compact checkpoints (only what training changed, float16, against the packages' weights) and the
shipped model as the default of the Grounder and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from medglip.cli import app
from medglip.errors import MedglipError
from medglip.infer import Grounder
from medglip.model import GroundingModel, get_preset, load_checkpoint, save_checkpoint
from medglip.model import shipped
from medglip.model.checkpoint import CheckpointError, file_sha256
from medglip.model.run_checks import seal

# the real package weights (EfficientNet-Lite0, MiniLM) at a small input: the base a compact file is stored against
SMALL = dict(image_size=64, modalities=("CT", "MR"), own_encoder_modalities=("CT", "MR"), score_threshold=0.0)


@pytest.fixture(scope="module")
def trained() -> GroundingModel:
    """A default model whose head, fusion and MR encoder 'trained' (changed); CT encoder and text encoder not."""
    torch.manual_seed(0)
    m = GroundingModel(get_preset("default", **SMALL)).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith(("head.", "fusion.", "image_encoder.backbones.MR.")):
                p.add_(0.01 * torch.randn(p.shape, generator=g))
    return m


@pytest.fixture(scope="module")
def compact_run(trained, tmp_path_factory) -> Path:
    return save_checkpoint(trained, tmp_path_factory.mktemp("compact") / "run", compact=True)


def test_compact_stores_only_what_changed_in_half_precision(trained, compact_run, tmp_path):
    stored = load_file(str(compact_run / "model.safetensors"))
    names = set(stored)
    assert any(n.startswith("image_encoder.backbones.MR.") for n in names)
    assert not any(n.startswith("image_encoder.backbones.CT.") for n in names), "the unchanged CT encoder is stored"
    assert not any(n.startswith("text_encoder.") for n in names), "the unchanged text encoder is stored"
    assert {str(t.dtype) for n, t in stored.items() if t.is_floating_point()} == {"torch.float16"}
    full = save_checkpoint(trained, tmp_path / "full")
    ratio = (compact_run / "model.safetensors").stat().st_size / (full / "model.safetensors").stat().st_size
    assert ratio < 0.25, ratio
    record = json.loads((compact_run / "config.json").read_text())["compact"]
    assert record["stored_tensors"] == len(stored) and record["base_tensors"] > 0


def test_compact_round_trip_matches_the_trained_model(trained, compact_run):
    loaded = load_checkpoint(compact_run)
    sd, back = trained.state_dict(), loaded.state_dict()
    assert set(sd) == set(back)
    worst = max((sd[k].float() - back[k].float()).abs().max().item() for k in sd if sd[k].numel())
    assert worst < 5e-3, worst  # float16 rounding of weights of magnitude <= ~4
    x = torch.rand(1, 3, 64, 64)
    mod = torch.tensor([1])
    prompts = trained.build_prompts(["brain tumor"])
    a = trained(x, mod, prompts)[0]["scores"]
    b = loaded(x, mod, prompts)[0]["scores"]
    k = min(len(a), len(b), 10)
    assert k > 0 and torch.allclose(a[:k], b[:k], atol=2e-2)


def test_compact_refuses_a_damaged_file_or_other_package_weights(compact_run, tmp_path):
    import shutil

    bad = Path(shutil.copytree(compact_run, tmp_path / "bad"))
    data = bytearray((bad / "model.safetensors").read_bytes())
    data[-10] ^= 0xFF
    (bad / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged or was replaced"):
        load_checkpoint(bad)
    # the packages' weights differ from those recorded: the base hash no longer matches
    other = Path(shutil.copytree(compact_run, tmp_path / "other"))
    cfg = json.loads((other / "config.json").read_text())
    cfg["compact"]["base_sha256"] = "0" * 64
    (other / "config.json").write_text(json.dumps(seal(cfg)))  # resealed: only the base check can refuse it
    with pytest.raises(CheckpointError, match="not those the model was stored against"):
        load_checkpoint(other)
    # a stored tensor the model does not have (hash re-recorded, so only the content check can refuse it)
    extra = Path(shutil.copytree(compact_run, tmp_path / "extra"))
    stored = load_file(str(extra / "model.safetensors"))
    stored["head.not_a_tensor"] = torch.zeros(2, dtype=torch.float16)
    save_file(stored, str(extra / "model.safetensors"))
    cfg = json.loads((extra / "config.json").read_text())
    cfg["sha256"] = {"model.safetensors": file_sha256(extra / "model.safetensors")}
    (extra / "config.json").write_text(json.dumps(seal(cfg)))
    with pytest.raises(CheckpointError, match="does not have"):
        load_checkpoint(extra)


def test_grounder_and_cli_default_to_the_shipped_model(compact_run, monkeypatch, tmp_path):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "missing")
    with pytest.raises(MedglipError, match="shipped model is missing.*--checkpoint"):
        Grounder.from_pretrained()
    r = CliRunner().invoke(app, ["ground", str(tmp_path / "x.png"), "-p", "brain tumor"])
    assert r.exit_code != 0
    monkeypatch.setattr(shipped, "SHIPPED_DIR", compact_run)
    g = Grounder.from_pretrained()
    assert g.config.image_size == 64
    from PIL import Image
    import numpy as np

    img = tmp_path / "mr.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype("uint8")).save(img)
    out = tmp_path / "res.json"
    r = CliRunner().invoke(app, ["ground", str(img), "-p", "brain tumor", "--modality", "MR", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads(out.read_text())


def test_weights_that_only_drifted_by_rounding_are_the_packages(tmp_path):
    """An EMA of an encoder that never trained differs from the packages' weights by float32 rounding:
    it is not stored (and loads as the packages' weights); a real change is."""
    torch.manual_seed(0)
    m = GroundingModel(get_preset("default", **SMALL)).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.startswith("image_encoder.backbones.CT."):
                p.mul_(1 + 2.0 ** -20)  # rounding-sized drift
            if name.startswith("image_encoder.backbones.MR.") and p.ndim > 1:
                p.mul_(1 + 2.0 ** -9)   # a change float16 can tell
    run = save_checkpoint(m, tmp_path / "run", compact=True)
    names = set(load_file(str(run / "model.safetensors")))
    assert not any(n.startswith("image_encoder.backbones.CT.") for n in names)
    assert any(n.startswith("image_encoder.backbones.MR.") for n in names)
    loaded = load_checkpoint(run)
    base = GroundingModel(get_preset("default", **SMALL)).state_dict()
    for n, t in loaded.state_dict().items():
        if n.startswith("image_encoder.backbones.CT."):
            assert torch.equal(t, base[n])
