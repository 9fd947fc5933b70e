"""medglip.model with real weights and real data (CPU, offline): the EfficientNet-Lite0 key
mapping proof, every preset's forward/backward, training on a real MR slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import box_iou

import medglip
from medglip.core.orient import plan_slices
from medglip.io import read_image
from medglip.core.pipeline import to_tensor
from medglip.model import GroundingModel, get_preset, load_checkpoint, save_checkpoint
from medglip.train import TrainConfig, param_groups
from medglip.model.backbone import LITE_MEAN, LITE_STD, lite0_classifier

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
CAT_FAMILY = {281, 282, 283, 284, 285}          # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}                          # espresso, cup, coffee mug


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _imagenet_input(rgb: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.mark.parametrize("arch", ["tf_efficientnet_lite0", "efficientnet_lite0"])
def test_efficientnet_lite0_package_weights_classify_cat_and_coffee(arch):
    import skimage.data as skimage_data
    model = lite0_classifier(arch)                  # strict load of all 296 mapped keys
    with torch.no_grad():
        cat = model(_imagenet_input(skimage_data.chelsea(), LITE_MEAN, LITE_STD)).softmax(-1)[0]
        cup = model(_imagenet_input(skimage_data.coffee(), LITE_MEAN, LITE_STD)).softmax(-1)[0]
        rand = timm_random(arch)(_imagenet_input(skimage_data.chelsea(), LITE_MEAN, LITE_STD)).softmax(-1)[0]
    assert int(cat.argmax()) in CAT_FAMILY, cat.topk(5)
    assert int(cup.argmax()) in COFFEE, cup.topk(5)
    assert float(cat[list(CAT_FAMILY)].sum()) > 0.8 and float(cup[list(COFFEE)].sum()) > 0.8
    assert float(rand[list(CAT_FAMILY)].sum()) < 0.1        # the weights, not chance, do it


def timm_random(arch):
    import timm

    torch.manual_seed(0)
    return timm.create_model(arch, pretrained=False).eval()


# ---------------------------------------------------------------------------------------- presets
@pytest.fixture(scope="module")
def default_model():
    torch.manual_seed(0)
    return GroundingModel(get_preset("default", image_size=128, score_threshold=0.0))


def _fwd_bwd(model, size, modality, batch=1):
    torch.manual_seed(0)
    images = torch.randn(batch, 3, size, size)
    prompt = model.build_prompts(["brain tumor", "left kidney"])[0]
    targets = [{"boxes": torch.tensor([[size * 0.2, size * 0.3, size * 0.6, size * 0.7]]),
                "phrase_ids": torch.tensor([0])}] * batch
    model.train()
    model.zero_grad()
    losses = model(images, torch.full((batch,), modality), [prompt] * batch, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    key = model.config.encoder_for(modality)
    bb = model.image_encoder.backbones[key]
    assert all(p.grad is not None for p in bb.parameters() if p.requires_grad)
    assert model.text_encoder.embeddings.word_embeddings.weight.grad is not None
    model.eval()
    with torch.no_grad():
        out = model(images, torch.full((batch,), modality), [prompt] * batch)
    assert len(out) == batch and out[0]["boxes"].shape[1] == 4
    return losses


def test_default_preset_real_weights_forward_backward(default_model):
    cfg = default_model.config
    assert cfg.backbone_weights == "package" and cfg.text_weights == "package"
    assert default_model.text_encoder.config.num_hidden_layers == 6 and default_model.text_encoder.config.hidden_size == 384
    # the backbone really holds the ImageNet weights (compare one tensor with the mapped package file)
    from medglip.model.backbone import load_lite0_package_weights
    ref = load_lite0_package_weights()["blocks.3.1.conv_dw.weight"]
    assert torch.equal(default_model.image_encoder.backbones["MR"].body.blocks[3][1].conv_dw.weight, ref)
    _fwd_bwd(default_model, 128, modality=1, batch=2)


def test_default_checkpoint_roundtrip_keeps_input_normalisation(default_model, tmp_path):
    # the package backbone expects mean = std = 0.5 inputs: a reloaded model (built without the
    # package weights) must convert the ImageNet-normalised input the same way
    bb = default_model.image_encoder.backbones["CT"]
    assert bb.renorm
    torch.manual_seed(0)
    images = torch.randn(1, 3, 128, 128)
    prompt = default_model.build_prompts(["brain tumor"])[0]
    default_model.eval()
    with torch.no_grad():
        before = default_model(images, torch.tensor([0]), [prompt])[0]
    loaded = load_checkpoint(save_checkpoint(default_model, tmp_path / "run"))
    assert loaded.image_encoder.backbones["CT"].renorm
    assert loaded.text_encoder.config.hidden_size == 384
    with torch.no_grad():
        after = loaded(images, torch.tensor([0]), [loaded.build_prompts(["brain tumor"])[0]])[0]
    assert before["boxes"].shape[0] > 0
    assert torch.equal(before["boxes"], after["boxes"]) and torch.equal(before["scores"], after["scores"])


def test_glip_t_preset_forward_backward():
    # the GLIP-T architecture (Swin-T + BERT-base sized, random init offline) at a small image size;
    # one shared Swin-T instead of five keeps construction time down
    cfg = get_preset("glip-t", image_size=64, own_encoder_modalities=())
    assert cfg.backbone == "swin_tiny_patch4_window7_224" and cfg.text_hidden_size == 768
    torch.manual_seed(0)
    model = GroundingModel(cfg)
    n = model.num_parameters()
    assert 25e6 < n["image_encoder"] < 35e6 and 100e6 < n["text_encoder"] < 120e6
    assert model.strides == [8, 16, 32, 64, 128]
    _fwd_bwd(model, 64, modality=4)


# ---------------------------------------------------------------------------------------- real slice
@pytest.fixture(scope="module")
def brain_slice():
    image = read_image(SAMPLES / "brain1_image.nrrd")
    label = read_image(SAMPLES / "brain1_label.nrrd")
    plan = plan_slices(image.geometry, image.array.shape, "axial")
    pixels = plan.take(image.array, 11).astype(np.float32)
    mask = plan.take(label.array, 11) > 0
    lo, hi = np.percentile(pixels, [0.5, 99.5])
    u8 = (np.clip((pixels - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)
    ys, xs = np.nonzero(mask)
    assert len(ys) > 0
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    return u8, box


def _train(model, image, box, steps, lr, phrases=("brain tumor", "left kidney"), eval_every=0):
    x, meta = to_tensor(image, model.config.image_size)
    gt = torch.tensor(box) * meta["scale"]
    prompt = model.build_prompts(list(phrases))[0]
    targets = [{"boxes": gt[None], "phrase_ids": torch.tensor([0])}]   # "left kidney": negative phrase
    mr = torch.tensor([model.config.modalities.index("MR")])
    opt = torch.optim.AdamW(param_groups(model, TrainConfig(lr=lr, weight_decay=1e-4)))
    history, iou, out = [], 0.0, None
    for step in range(steps):
        model.train()
        losses = model(x[None], mr, [prompt], targets)
        loss = sum(losses.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
        if eval_every and (step + 1) % eval_every == 0:
            model.eval()
            with torch.no_grad():
                out = model(x[None], mr, [prompt])[0]
            top = out["boxes"][out["phrase_ids"] == 0][:1]
            iou = float(box_iou(top, gt[None])[0, 0]) if len(top) else 0.0
            if iou >= 0.6:
                break
    return history, iou, out


def test_loss_decreases_on_real_slice(default_model, brain_slice):
    image, box = brain_slice
    torch.manual_seed(0)
    history, _, _ = _train(default_model, image, box, steps=8, lr=3e-4)
    assert all(np.isfinite(history))
    assert np.mean(history[-3:]) < 0.7 * np.mean(history[:2]), history


def test_tiny_model_overfits_real_slice(brain_slice):
    image, box = brain_slice
    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny"))
    _, iou, out = _train(model, image, box, steps=120, lr=1e-3, eval_every=10)
    assert iou >= 0.5, iou
    # the negative phrase in the same prompt ("left kidney", never boxed) scores below the tumour
    pos, neg = out["scores"][out["phrase_ids"] == 0], out["scores"][out["phrase_ids"] == 1]
    assert len(neg) == 0 or float(neg.max()) < float(pos.max())
