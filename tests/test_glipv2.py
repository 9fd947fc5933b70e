"""GLIPv2's training tasks (issue 11): inter-image region–word contrast, masked language modelling and
the mask head — targets on hand-made cases, forward and backward of every part on tiny inputs, DDP
gathering with two gloo processes, masks following the augmentations, a tiny model overfitting one
real slice's mask, masks="head" through the Grounder, evaluation and the service, old checkpoints.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

import medglip
from medglip.dataset import BuildConfig, build
from medglip.core.masks import dice
from medglip.errors import MedglipError
from medglip.model import PRESETS, GroundingModel, ModelConfig, build_prompts, load_checkpoint, save_checkpoint
from medglip.model.contrast import RegionWordContrast, contrastive_targets, phrase_embeddings
from medglip.model.mask_head import MaskHead, mask_loss, mask_targets, paste_masks
from medglip.model.mlm import MLMHead, mask_tokens
from medglip.model.tasks import AuxiliaryTasks
from medglip.ontology import PhraseRelations, load_ontology
from medglip.train import AugmentConfig, GroundingDataset, TrainConfig


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on 2 cores shared with other jobs, more threads thrash (×20 slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
TINY = PRESETS["tiny"]


@pytest.fixture(scope="module")
def relations() -> PhraseRelations:
    return PhraseRelations(load_ontology())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("g2") / "ds"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), out)
    return out


def _tiny(**changes) -> GroundingModel:
    torch.manual_seed(0)
    return GroundingModel(TINY.replace(**changes))


# ------------------------------------------------------------------------------------------ contrast
def test_relations_follow_the_ontology(relations):
    rel = relations.relation
    assert rel("liver tumor", "liver tumor") == rel("Liver  tumor", "liver tumor") == "same"
    assert rel("liver tumor", "liver") == rel("liver", "liver tumor") == "related"      # parent / child
    assert rel("liver tumor", "hepatic tumor") == "related"                                # synonym
    assert rel("left kidney", "right kidney") == "unrelated"                               # sides matter
    assert rel("kidney", "left kidney tumor") == "related"                                 # no side: compatible
    assert rel("left kidney tumor", "right kidney") == "unrelated"
    assert rel("left lung", "right upper lobe") == "unrelated"
    assert rel("liver", "spleen") == rel("brain tumor", "lung tumor") == "unrelated"
    assert rel("gray matter", "brain") == "related" and rel("gray matter", "white matter") == "unrelated"
    assert rel("weird thing", "weird thing") == "same" and rel("weird thing", "liver") == "unrelated"


def test_contrastive_targets_on_a_hand_made_batch(relations):
    """Regions of image 1 ("liver tumor", "left kidney") against the phrases of two images."""
    regions = ["liver tumor", "left kidney", "liver tumor"]
    phrases = ["liver tumor", "liver", "left kidney",            # image 1's prompt
               "right kidney", "hepatic tumor", "liver tumor", "spleen"]  # image 2's prompt
    pos, valid = contrastive_targets(regions, phrases, relations)
    assert pos.tolist()[0] == [True, False, False, False, False, True, False]  # its phrase, in both images
    assert valid.tolist()[0] == [True, False, True, True, False, True, True]  # liver, synonym masked
    assert pos.tolist()[1] == [False, False, True, False, False, False, False]
    assert valid.tolist()[1] == [True] * 7                                    # right kidney IS a negative
    assert torch.equal(pos[0], pos[2]) and torch.equal(valid[0], valid[2])


def test_contrastive_loss_forward_backward_and_empty_cases(relations):
    loss_fn = RegionWordContrast(relations=relations, temperature=0.1)
    regions = torch.randn(3, 8, requires_grad=True)
    emb = torch.randn(4, 8, requires_grad=True)
    phrases = ["liver tumor", "liver", "spleen", "left kidney"]
    loss = loss_fn(regions, ["liver tumor", "spleen", "left kidney"], emb, phrases)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and regions.grad.abs().sum() > 0
    regions.grad = emb.grad = None
    loss_fn(regions[:1], ["liver tumor"], emb, phrases).backward()
    assert emb.grad[1].abs().sum() == 0  # "liver" is masked for a "liver tumor" region
    assert emb.grad[2].abs().sum() > 0 and emb.grad[3].abs().sum() > 0  # the negatives
    regions.grad = emb.grad = None
    loss_fn(regions[1:], ["spleen", "left kidney"], emb, phrases).backward()
    assert emb.grad[1].abs().sum() > 0  # ... but a negative of "spleen" and "left kidney"
    # zero regions, or no negative: exact zeros, still differentiable
    for r, names in ((regions[:0], []), (regions[:1], ["liver tumor"])):
        z = loss_fn(r, names, emb[:2], phrases[:2])
        assert float(z) == 0.0 and z.requires_grad
        z.backward()
    # aligned features give a lower loss than misaligned ones
    e = torch.eye(4)
    good = loss_fn(e[[0, 2]] * 5, ["liver tumor", "spleen"], e, phrases)
    bad = loss_fn(e[[2, 0]] * 5, ["liver tumor", "spleen"], e, phrases)
    assert float(good) < 0.1 < float(bad)


def test_phrase_embeddings_are_token_means():
    tokens = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)
    ptm = [torch.tensor([[0, 1, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=torch.bool), torch.tensor([[0, 1, 0, 0]], dtype=torch.bool)]
    emb = phrase_embeddings(tokens, ptm)
    assert emb.shape == (3, 2)
    assert torch.allclose(emb[0], tokens[0, 1:3].mean(0)) and torch.allclose(emb[2], tokens[1, 1])


def test_ddp_gathers_phrases_and_sends_gradients_back(tmp_path):
    """Two gloo processes: rank 0's region is scored against rank 1's phrases ("spleen" a negative,
    "liver tumor" masked), and rank 1's "spleen" embedding receives the gradient of rank 0's loss."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}  # torchrun's scratch folders too
    worker = Path(__file__).parent / "ddp_contrast_worker.py"
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                           "--nproc_per_node=2", str(worker), str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    r0, r1 = (json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1))
    for r in (r0, r1):
        assert r["world"] == 2 and r["gathered_phrases"] == ["liver", "spleen", "liver tumor"]
        assert r["gathered_rows"] == 3 and r["gathered_matches_local"]
    assert r0["loss"] > 0 and r1["loss"] == 0.0
    assert r1["emb_grad_norm"][0] > 0 and r1["emb_grad_norm"][1] == 0.0  # spleen: negative; liver tumor: masked


# ------------------------------------------------------------------------------------------ MLM
def test_mask_tokens_follows_bert():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (64, 40))
    ids[:, 0], ids[:, 39] = 101, 102
    att = torch.ones_like(ids)
    att[:, 30:] = 0
    ids[:, 30:] = 0
    masked, labels = mask_tokens(ids, att, special_ids={0, 101, 102}, mask_id=103, vocab_size=3000,
                                 probability=0.15, generator=g)
    chosen = labels != -100
    assert not chosen[:, 0].any() and not chosen[:, 30:].any()  # [CLS] and padding never
    assert torch.equal(labels[chosen], ids[chosen]) and chosen.any(1).all()
    share = chosen[:, 1:30].float().mean().item()
    assert 0.12 < share < 0.18
    is_mask = masked[chosen] == 103
    kept = masked[chosen] == ids[chosen]
    assert 0.72 < is_mask.float().mean() < 0.88 and 0.04 < kept.float().mean() < 0.17
    assert torch.equal(masked[~chosen], ids[~chosen])
    one = mask_tokens(ids[:1, :3], att[:1, :3], special_ids={101, 102}, mask_id=103, vocab_size=3000,
                      probability=0.01, generator=g)[1]
    assert (one != -100).sum() == 1  # at least one token per prompt


def test_mlm_head_is_tied_to_the_word_embeddings():
    model = _tiny(mlm_head=True)
    emb = model.text_encoder.get_input_embeddings().weight
    head = model.mlm_head
    assert isinstance(head, MLMHead) and head.bias.shape == (emb.shape[0],)
    h = torch.randn(5, emb.shape[1])
    logits = head(h, emb)
    assert logits.shape == (5, emb.shape[0])
    logits.logsumexp(-1).sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0  # the decoder is the embedding matrix
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith("mlm_head.decoder") for n in names)  # no copy of the vocabulary matrix


def test_mlm_head_starts_from_a_pretrained_masked_lm(tmp_path):
    """A text encoder saved as a BertForMaskedLM (with cls.predictions.*) initialises the head."""
    from transformers import BertConfig, BertForMaskedLM

    from medglip.model.text import load_tokenizer

    tok = load_tokenizer(TINY.text_tokenizer)
    torch.manual_seed(1)
    lm = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=64))
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    model = GroundingModel(TINY.replace(text_encoder=str(tmp_path / "lm"), text_weights="local", mlm_head=True)).eval()
    lm.eval()
    ref = lm.cls.predictions
    assert torch.equal(model.mlm_head.dense.weight, ref.transform.dense.weight)
    assert torch.equal(model.mlm_head.norm.weight, ref.transform.LayerNorm.weight)
    assert torch.equal(model.mlm_head.bias, ref.bias)
    ids = torch.tensor([[101, 2000, 2001, 102]])
    hidden = model.text_encoder(input_ids=ids).last_hidden_state
    want = lm(input_ids=ids).logits
    got = model.mlm_head(hidden, model.text_encoder.get_input_embeddings().weight)
    assert torch.allclose(got, want, atol=1e-5)  # the same predictions as the original masked LM


# ------------------------------------------------------------------------------------------ mask head
def test_mask_head_forward_backward_shapes():
    head = MaskHead(channels=32, levels=3, roi_size=7, convs=2, groups=8)
    feats = [torch.randn(2, 32, 16 // 2 ** i, 16 // 2 ** i, requires_grad=True) for i in range(3)]
    images = torch.randn(2, 3, 128, 128)
    boxes = [torch.tensor([[10.0, 12.0, 40.0, 50.0], [0.0, 0.0, 128.0, 128.0]]), torch.tensor([[60.0, 60.0, 70.0, 66.0]])]
    out = head(feats, boxes, (128, 128), images)
    assert out.shape == (3, 14, 14) and head.resolution == 14
    mask_loss(out, torch.zeros(3, 14, 14)).backward()
    assert all(f.grad is not None for f in feats) and head.logits.weight.grad is not None
    assert head(feats, [torch.zeros(0, 4), torch.zeros(0, 4)], (128, 128), images).shape == (0, 14, 14)
    assert float(mask_loss(torch.zeros(0, 14, 14), torch.zeros(0, 14, 14))) == 0.0


def test_mask_targets_and_paste_round_trip():
    """A mask cut to its box and pasted back into the image is the mask again (pixel-edge boxes)."""
    yy, xx = np.mgrid[:64, :80]
    disk = ((yy - 30) ** 2 / 14 ** 2 + (xx - 40) ** 2 / 20 ** 2) <= 1
    square = np.zeros((64, 80), bool)
    square[10:20, 5:13] = True
    masks = torch.from_numpy(np.stack([disk, square]))
    boxes = torch.tensor([[20.0, 16.0, 61.0, 45.0], [5.0, 10.0, 13.0, 20.0]])  # the masks' own boxes
    t = mask_targets([masks], [boxes], 28)
    assert t.shape == (2, 28, 28) and t[1].mean() > 0.99  # the square fills its box (RoIAlign rounds corners)
    back = paste_masks(t, boxes, (64, 80))
    assert back.shape == (2, 64, 80) and back.dtype == torch.bool
    assert not (back[1] & ~masks[1]).any() and dice(back[1].numpy(), square) > 0.97
    assert dice(back[0].numpy(), disk) > 0.95
    assert torch.equal(paste_masks(torch.ones(1, 28, 28), boxes[1:], (64, 80))[0], masks[1])  # exact pixel edges
    # a box partly outside the image is clipped, nothing outside the box is set
    part = paste_masks(torch.ones(1, 28, 28), torch.tensor([[-10.0, 50.0, 10.0, 70.0]]), (64, 80))[0]
    assert part.sum() == 10 * 14 and part[50:, :10].all()


# ------------------------------------------------------------------------------------------ model losses
def test_every_loss_is_finite_with_zero_targets_and_trains_every_part(relations):
    model = _tiny(mask_head=True, mlm_head=True, image_size=64)
    model.tasks = AuxiliaryTasks(contrastive_weight=1.0, mlm_weight=1.0, mask_weight=1.0, relations=relations)
    model.train()
    prompt = model.build_prompts(["liver tumor", "left kidney"])[0]
    images = torch.randn(2, 3, 64, 64)
    empty = {"boxes": torch.zeros(0, 4), "phrase_ids": torch.zeros(0, dtype=torch.long),
             "masks": torch.zeros(0, 64, 64, dtype=torch.bool)}
    losses = model(images, torch.tensor([0, 0]), [prompt, prompt], [empty, empty])
    assert {"loss_contrast", "loss_mlm", "loss_mask"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses["loss_contrast"]) == 0.0 and float(losses["loss_mask"]) == 0.0
    sum(losses.values()).backward()
    mask = torch.zeros(1, 64, 64, dtype=torch.bool)
    mask[0, 10:30, 12:40] = True
    target = {"boxes": torch.tensor([[12.0, 10.0, 40.0, 30.0]]), "phrase_ids": torch.tensor([0]), "masks": mask}
    other = {"boxes": torch.tensor([[30.0, 30.0, 50.0, 60.0]]), "phrase_ids": torch.tensor([1]),
             "masks": torch.zeros(1, 64, 64, dtype=torch.bool)}
    model.zero_grad()
    losses = model(images, torch.tensor([0, 0]), [prompt, prompt], [target, other])
    assert float(losses["loss_contrast"]) > 0 and float(losses["loss_mask"]) > 0 and float(losses["loss_mlm"]) > 0
    sum(losses.values()).backward()
    for part in ("mask_head", "mlm_head", "head", "fusion"):
        grads = [p.grad for p in getattr(model, part).parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), part
    with pytest.raises(ValueError, match="target masks"):
        model(images, torch.tensor([0, 0]), [prompt, prompt], [{k: v for k, v in target.items() if k != "masks"}] * 2)
    plain = _tiny()
    plain.tasks = AuxiliaryTasks(mask_weight=1.0)
    with pytest.raises(ValueError, match="mask head"):
        plain.train()(images, torch.tensor([0, 0]), [prompt, prompt], [target, other])


@pytest.mark.parametrize("elastic", [0.0, 0.6])
def test_dataset_masks_follow_every_augmentation(dataset, elastic):
    """Flip, zoom, scale jitter, copy-paste (and elastic) on: each target mask's bounding box is its box."""
    builder = partial(build_prompts, tokenizer=_tiny().tokenizer, max_len=TINY.max_text_len)
    aug = AugmentConfig(flip_prob=0.5, min_scale=0.6, zoom_prob=0.7, max_zoom=1.8, copy_paste_prob=1.0,
                        intensity_prob=0.5, elastic_prob=elastic)
    ds = GroundingDataset(dataset, "train", image_size=256, prompt_builder=builder, modalities=TINY.modalities,
                          train=True, augment=aug, with_masks=True, negatives_per_image=1)
    plain = GroundingDataset(dataset, "train", image_size=256, prompt_builder=builder, modalities=TINY.modalities,
                             train=True, augment=aug, negatives_per_image=1)
    checked = flipped = pasted = 0
    for epoch in range(2):
        ds.set_epoch(epoch)
        plain.set_epoch(epoch)
        for i in range(0, len(ds), 2):
            item, ref = ds[i], plain[i]
            t = item["target"]
            assert torch.equal(t["boxes"], ref["target"]["boxes"]) and torch.equal(item["image"], ref["image"])
            assert t["masks"].shape == (len(t["boxes"]), 256, 256) and t["masks"].dtype == torch.bool
            assert t["mask_valid"].all()
            flipped += item["meta"]["flipped"]
            n_orig = len([a for a in ds._anns.get(ds.images[i]["id"], [])])
            pasted += len(t["boxes"]) > n_orig
            for box, m in zip(t["boxes"], t["masks"]):
                if (box[2:] - box[:2]).min() < 3:
                    continue
                ys, xs = torch.nonzero(m, as_tuple=True)
                assert len(ys), (i, box)
                got = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
                assert (got - box).abs().max() <= 2.0, (i, box.tolist(), got.tolist())
                checked += 1
    assert checked > 20 and flipped > 0 and pasted > 0


def test_tiny_model_overfits_one_real_slice_mask(dataset):
    """The mask head learns a real lesion's outline: Dice > 0.7 on its slice within 40 steps."""
    model = _tiny(mask_head=True)
    builder = partial(build_prompts, tokenizer=model.tokenizer, max_len=TINY.max_text_len)
    ds = GroundingDataset(dataset, "train", image_size=TINY.image_size, prompt_builder=builder,
                          modalities=TINY.modalities, with_masks=True, negatives_per_image=1)
    idx = next(i for i, im in enumerate(ds.images) if im["file_name"].endswith("brain1_axi0016.png"))
    item = ds[idx]
    target = item["target"]
    assert len(target["boxes"]) == 1 and int(target["masks"].sum()) > 100
    images, mod = item["image"][None], torch.tensor([item["modality"]])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(40):
        losses = model(images, mod, [item["prompt"]], [target])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    model.eval()
    s = (TINY.image_size, TINY.image_size)
    with torch.no_grad():
        feats = model.encode_images(images, mod)
        _, fused = model.detect_with_features(feats, model.encode_text([item["prompt"]]), s)
        probs = model.predict_masks(fused, feats.images, [target["boxes"]], s)[0]
    pred = paste_masks(probs, target["boxes"], s)[0]
    assert dice(pred.numpy(), target["masks"][0].numpy()) > 0.7


# ------------------------------------------------------------------------------------------ inference
@pytest.fixture(scope="module")
def head_run(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = GroundingModel(TINY.replace(mask_head=True, score_threshold=0.0, finding_thresholds=(("*", 0.0),)))
    return save_checkpoint(model.eval(), tmp_path_factory.mktemp("head") / "run")


def test_grounder_masks_from_the_head(head_run, tmp_path):
    from fakes import BoxFillRefiner

    from medglip.infer import Grounder

    img = (np.random.default_rng(0).random((90, 140)) * 255).astype(np.uint8)
    g = Grounder.from_pretrained(head_run, refiner=BoxFillRefiner())
    assert g.has_mask_head and g.mask_source("head") == "head" and g.mask_source("medsam") == "medsam"
    assert g.mask_source(True) == "head"  # True: the checkpoint's head, whatever refiner the Grounder holds
    assert Grounder.from_pretrained(head_run, refiner=None).mask_source(True) == "head"
    res = g.ground_one(img, ["brain tumor", "left kidney"], modality="MR", masks="head", top_k=3)
    plain = g.ground_one(img, ["brain tumor", "left kidney"], modality="MR", top_k=3)
    for gr, ref in zip(res, plain):
        assert np.array_equal(gr.boxes, ref.boxes) and 1 <= len(gr) <= 3
        assert gr.masks.shape == (len(gr), 90, 140) and gr.masks.dtype == bool
        for box, m in zip(gr.boxes, gr.masks):  # a mask lies inside its box (original pixels)
            ys, xs = np.nonzero(m)
            if len(ys):
                assert xs.min() >= np.floor(box[0]) and xs.max() < np.ceil(box[2])
                assert ys.min() >= np.floor(box[1]) and ys.max() < np.ceil(box[3])
    assert g.ground_one(img, ["brain tumor"], modality="MR", masks="auto", top_k=2)[0].masks.shape[1:] == (90, 140)
    # box prompts → masks: the head's masks of given boxes (the fused features of the phrase alone)
    alone = g.ground_one(img, ["brain tumor"], modality="MR", masks="head", top_k=3)[0]
    given = g.masks_for_boxes(img, alone.boxes, "brain tumor", modality="MR")
    assert given.shape == alone.masks.shape and (given == alone.masks).mean() > 0.97  # boxes clipped: ≈ equal
    assert g.masks_for_boxes(img, alone.boxes[:1], "brain tumor", modality="MR", source="medsam").shape == (1, 90, 140)
    vol = g.ground_volume(SAMPLES / "breast1_image.nrrd", ["breast lesion"], modality="MR", masks="head")
    assert vol.phrases == ("breast lesion",)
    # a checkpoint without a mask head: a clear error for "head"; True falls back to the refiner
    torch.manual_seed(0)
    old = save_checkpoint(GroundingModel(TINY.replace(score_threshold=0.0)).eval(), tmp_path / "old")
    g_old = Grounder.from_pretrained(old, refiner=BoxFillRefiner())
    assert not g_old.has_mask_head and g_old.mask_source(True) == "medsam"
    assert Grounder.from_pretrained(old).mask_source(True) == "medsam"  # "auto" without a head: LiteMedSAM
    with pytest.raises(MedglipError, match="no mask head"):
        g_old.ground_one(img, ["liver"], modality="CT", masks="head")
    with pytest.warns(DeprecationWarning, match="refiner='head'"):  # it chose masks; masks= does now
        only_head = Grounder.from_pretrained(head_run, refiner="head")
    assert only_head.mask_source(True) == "head"
    with pytest.raises(MedglipError, match="refiner=None"):
        only_head.mask_source("medsam")
    with pytest.raises(MedglipError, match="no mask head"):
        Grounder.from_pretrained(old, refiner=None).mask_source(True)
    with pytest.raises(MedglipError, match="masks must be"):
        g.ground_one(img, ["liver"], modality="CT", masks="sam2")
    with pytest.raises(MedglipError, match="LiteMedSAM"):
        Grounder.from_pretrained(head_run, refiner=None).ground_one(img, ["liver"], modality="CT", masks="medsam")


def test_eval_with_head_masks_reports_dice_and_mask_ap(head_run, dataset):
    from medglip.evaluate import evaluate, predict_dataset
    from medglip.infer import Grounder, mask_option

    masks = mask_option("head")
    assert masks == "head" and mask_option(True) == "auto" and mask_option("none") is False
    g = Grounder.from_pretrained(head_run, refiner=None)
    preds, queries = predict_dataset(g, dataset, split="train", phrases="case", masks=masks, max_per_phrase=2)
    assert preds and all("segmentation" in p for p in preds)
    metrics = evaluate(dataset, preds, split="train", queries=queries)
    assert metrics["overall"]["dice"] is not None and 0.0 <= metrics["overall"]["dice"] <= 1.0
    assert metrics["masks_evaluated"]


def test_service_masks_field(head_run):
    from fastapi.testclient import TestClient
    from PIL import Image
    import io

    from medglip.infer import Grounder
    from medglip.serve import create_app

    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(1).random((60, 70)) * 255).astype(np.uint8)).save(buf, "PNG")
    with TestClient(create_app(Grounder.from_pretrained(head_run, refiner=None))) as client:
        def post(masks: str):
            return client.post("/v1/ground", data={"phrases": "brain tumor", "modality": "MR", "masks": masks,
                                                   "top_k": "2"}, files={"file": ("a.png", buf.getvalue(), "image/png")})
        r = post("head")
        assert r.status_code == 200, r.text
        assert len(r.json()["phrases"][0]["masks"]) == len(r.json()["phrases"][0]["boxes"]) > 0
        assert post("true").status_code == 200  # True: the checkpoint's head, no LiteMedSAM needed
        r = post("medsam")
        assert r.status_code == 422 and "masks" in r.json()["detail"]
        assert post("maybe").status_code == 422


# ------------------------------------------------------------------------------------------ configs
def test_old_checkpoints_without_the_new_fields_load_as_before(tmp_path):
    torch.manual_seed(0)
    model = GroundingModel(TINY).eval()
    run = save_checkpoint(model, tmp_path / "old")
    doc = json.loads((run / "config.json").read_text())
    for k in ("mask_head", "mask_roi_size", "mask_convs", "mask_levels", "mask_image_skip", "mlm_head",
              "settings_sha256"):  # saved before these fields, and before the settings' seal
        doc.pop(k)
    (run / "config.json").write_text(json.dumps(doc))
    loaded = load_checkpoint(run)
    assert not loaded.config.mask_head and not loaded.config.mlm_head
    assert loaded.mask_head is None and loaded.mlm_head is None
    assert loaded.tasks == AuxiliaryTasks()
    assert ModelConfig.from_dict({"name": "x"}).mask_head is False
    x = torch.randn(1, 3, 128, 128)
    p = loaded.build_prompts(["liver"])
    with torch.no_grad():
        a, b = model(x, torch.tensor([0]), p), loaded(x, torch.tensor([0]), p)
    assert torch.equal(a[0]["boxes"], b[0]["boxes"])
    # fine-tuning such a checkpoint with the new losses adds the heads and keeps every other weight
    grown = loaded.with_parts(mask_head=True, mlm_head=True)
    assert grown.mask_head is not None and grown.mlm_head is not None and grown.config.mask_head
    with torch.no_grad():
        c = grown.eval()(x, torch.tensor([0]), p)
    assert torch.equal(a[0]["boxes"], c[0]["boxes"])
    assert loaded.with_parts(mask_head=False) is loaded


def test_cli_defaults_are_the_train_config_defaults():
    from medglip.cli import options

    cfg = TrainConfig()
    assert options.CONTRAST.default == cfg.contrastive_weight
    assert options.MLM.default == cfg.mlm_weight
    assert options.MASK_W.default == cfg.mask_weight
    with pytest.raises(ValueError):
        TrainConfig(mask_weight=-1)
