"""The ``litemedsam_tinyvit`` image backbone (LiteMedSAM's TinyViT + a pooled pyramid, issue 9): forward
and backward in the grounding model (random weights, tiny input), the real package weights (strict load,
the package encoder's own outputs on a real slice), checkpoints and EMA copies, and config errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import medglip
from medglip.core.intensity import percentile_range, window_to_uint8
from medglip.core.orient import plan_slices
from medglip.core.pipeline import IMAGENET_MEAN, IMAGENET_STD, to_tensor
from medglip.io import read_image
from medglip.model import GroundingModel, ModelConfig, get_preset, load_checkpoint, save_checkpoint
from medglip.model.litemedsam import build_lite_medsam_net
from medglip.model.tinyvit import TinyViTBackbone

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny_tinyvit(**overrides) -> ModelConfig:
    """The tiny preset (small text side, fusion and head) on TinyViT encoders at 64 px, one own encoder."""
    kw = dict(backbone="litemedsam_tinyvit", backbone_weights="none", backbone_out_indices=(0, 1, 2),
              backbone_frozen_bn=True, image_size=64, own_encoder_modalities=("MR",), score_threshold=0.0)
    return get_preset("tiny", **{**kw, **overrides})


@pytest.fixture(scope="module")
def tiny_model() -> GroundingModel:
    torch.manual_seed(0)
    return GroundingModel(_tiny_tinyvit())


def test_forward_backward_and_eval_with_random_weights(tiny_model):
    model, s = tiny_model, 64
    assert model.strides == [4, 8, 16]
    bb = model.image_encoder.backbones["MR"]
    assert isinstance(bb, TinyViTBackbone) and bb.channels == [320] * 3
    torch.manual_seed(1)
    images = torch.randn(2, 3, s, s)
    mr = torch.full((2,), model.config.modalities.index("MR"))
    prompt = model.build_prompts(["brain tumor", "left kidney"])[0]
    targets = [{"boxes": torch.tensor([[12.0, 16.0, 40.0, 44.0]]), "phrase_ids": torch.tensor([0])},
               {"boxes": torch.zeros(0, 4), "phrase_ids": torch.zeros(0, dtype=torch.long)}]
    model.train()
    model.zero_grad()
    losses = model(images, mr, [prompt] * 2, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in bb.parameters())
    assert all(m.training is False for m in bb.modules() if isinstance(m, torch.nn.BatchNorm2d))  # frozen BN
    model.eval()
    with torch.no_grad():
        out = model(images, mr, [prompt] * 2)
    assert len(out) == 2 and out[0]["boxes"].shape[1] == 4 and len(out[0]["boxes"]) > 0
    with torch.no_grad():
        feats = bb(images)
    assert [tuple(f.shape) for f in feats] == [(2, 320, 16, 16), (2, 320, 8, 8), (2, 320, 4, 4)]
    assert torch.equal(feats[2], F.max_pool2d(feats[0], 4))  # the pyramid pools the pre-neck stage


def test_checkpoint_roundtrip_and_cached_biases_never_go_stale(tiny_model, tmp_path):
    from medglip.train.ema import make_ema, update_ema

    model = tiny_model.eval()
    torch.manual_seed(2)
    images = torch.randn(1, 3, 64, 64)
    mr = torch.tensor([model.config.modalities.index("MR")])
    prompt = model.build_prompts(["brain tumor"])[0]
    with torch.no_grad():
        before = model(images, mr, [prompt])[0]
    loaded = load_checkpoint(save_checkpoint(model, tmp_path / "run"))
    assert loaded.config == model.config
    with torch.no_grad():
        after = loaded(images, mr, [loaded.build_prompts(["brain tumor"])[0]])[0]
    assert torch.equal(before["boxes"], after["boxes"]) and torch.equal(before["scores"], after["scores"])

    # the vendored attention cached its biases in a buffer that existed in eval mode only: stale after
    # a weight change in eval mode, and a misaligned buffer list for the EMA's pairwise buffer copy
    bb = loaded.image_encoder.backbones["MR"]
    eval_buffers = [n for n, _ in bb.named_buffers()]
    with torch.no_grad():
        x0 = bb.stage_features(images)
        attn = next(m for m in bb.modules() if hasattr(m, "attention_biases"))
        attn.attention_biases.add_(1.0)
        assert not torch.equal(bb.stage_features(images), x0)
    assert [n for n, _ in bb.train().named_buffers()] == eval_buffers
    ema = make_ema(bb, decay=0.5)
    update_ema(ema, bb.train())
    ema_attn = next(m for m in ema.module.modules() if hasattr(m, "attention_biases"))
    assert torch.allclose(ema_attn.attention_biases, attn.attention_biases)


@pytest.fixture(scope="module")
def brain_slice() -> np.ndarray:
    """A real MR slice (pyradiomics brain1, axial 11) as uint8 model pixels."""
    image = read_image(SAMPLES / "brain1_image.nrrd")
    plan = plan_slices(image.geometry, image.array.shape, "axial")
    lo, hi = percentile_range(image.array, 0.5, 99.5)
    return window_to_uint8(plan.take(image.array, 11), lo, hi)


def test_package_weights_load_strictly_and_match_the_package_encoder(brain_slice):
    ours = TinyViTBackbone(image_size=256, weights="package", out_indices=(0, 1, 2, 3)).eval()
    package = build_lite_medsam_net().image_encoder.eval()
    # strict load (no missing, no unexpected key) of every image-encoder weight but SAM's neck
    assert set(ours.body.state_dict()) == {k for k in package.state_dict() if not k.startswith("neck.")}
    x, _ = to_tensor(brain_slice, 256)
    pixels01 = x * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    seen = {}
    hook = package.layers[3].register_forward_hook(lambda m, i, o: seen.setdefault("pre_neck", o))
    with torch.no_grad():
        embedding = package(pixels01[None])             # the package's LiteMedSAM image embedding
        pyramid = ours(x[None])
        mine = ours.stage_features(x[None])
        mine_embedding = package.neck(mine)
    hook.remove()
    pre_neck = seen["pre_neck"].transpose(1, 2).reshape(1, 320, 64, 64)
    assert embedding.shape == (1, 256, 64, 64)
    torch.testing.assert_close(mine, pre_neck, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mine_embedding, embedding, rtol=1e-4, atol=1e-4)
    assert [tuple(p.shape[-2:]) for p in pyramid] == [(64, 64), (32, 32), (16, 16), (8, 8)]
    assert torch.equal(pyramid[0], mine)
    assert float(mine.std()) > 0.1  # real features, not a blank map


def test_other_input_sizes_run_with_the_package_weights(brain_slice):
    bb = TinyViTBackbone(image_size=128, weights="package", out_indices=(0, 1, 2)).eval()
    x, _ = to_tensor(brain_slice, 128)
    with torch.no_grad():
        feats = bb(x[None])
    assert [tuple(f.shape) for f in feats] == [(1, 320, 32, 32), (1, 320, 16, 16), (1, 320, 8, 8)]
    assert all(torch.isfinite(f).all() for f in feats)
    with pytest.raises(ValueError, match="built for 128 × 128"):
        bb(torch.zeros(1, 3, 96, 96))


def test_preset_and_bad_configs_give_clear_errors():
    cfg = get_preset("default-medsam")
    assert (cfg.backbone, cfg.backbone_weights, cfg.image_size) == ("litemedsam_tinyvit", "package", 256)
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="multiple of 32.*trained at 256"):
        get_preset("default-medsam", image_size=250)
    with pytest.raises(ValueError, match="backbone_weights must be 'package'"):
        get_preset("default-medsam", backbone_weights="hub")
    for bad in ((2, 1), (0, 4), (), (1, 1)):
        with pytest.raises(ValueError, match="backbone_out_indices must be increasing pyramid levels"):
            get_preset("default-medsam", backbone_out_indices=bad)
    with pytest.raises(ValueError, match="takes no backbone_kwargs"):
        get_preset("default-medsam", backbone_kwargs=(("drop_rate", 0.1),))
