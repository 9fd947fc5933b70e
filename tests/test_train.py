"""Training: dataset items and augmentation, schedule and optimizer groups, checkpoints and resume, DDP.

All on CPU with the ``tiny`` preset and a dataset built from the shipped pyradiomics samples.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import numpy as np
import torch
from PIL import Image

import medglip
from medglip.dataset import BuildConfig, build
from medglip.errors import MedglipError
from medglip.model import PRESETS, build_prompts, load_checkpoint
from medglip.model.text import load_tokenizer
from medglip.train import AugmentConfig, GroundingDataset, TrainConfig, lr_factor, param_groups, resolve_amp, train
from medglip.train import state as train_state

TINY = PRESETS["tiny"]
SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped samples (brain1: "brain tumor", breast1: "breast lesion") built into one train split."""
    out = tmp_path_factory.mktemp("ds") / "ds"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), out)
    return out


@pytest.fixture(scope="module")
def lateral_dataset(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same images with breast lesions renamed "left breast lesion", plus categories "right breast
    lesion", "brain" (parent of "brain tumor") and "liver" (never annotated)."""
    out = tmp_path_factory.mktemp("lat") / "ds"
    shutil.copytree(dataset, out)
    path = out / "annotations" / "train.json"
    coco = json.loads(path.read_text())
    for ann in coco["annotations"]:
        if ann["phrase"] == "breast lesion":
            ann["phrase"] = "left breast lesion"
            ann["hierarchy"] = ["thorax", "breast", "left breast lesion"]
    cats = [c for c in coco["categories"] if c["name"] != "breast lesion"]
    nid = max(c["id"] for c in coco["categories"]) + 1
    for i, (name, hier) in enumerate([("left breast lesion", ["thorax", "breast", "left breast lesion"]),
                                      ("right breast lesion", ["thorax", "breast", "right breast lesion"]),
                                      ("brain", ["head and neck", "brain"]),
                                      ("liver", ["abdomen", "liver"])]):
        cats.append({"id": nid + i, "name": name, "hierarchy": hier, "region": hier[0],
                     "label": "breast lesion" if "breast" in name else name})
    coco["categories"] = cats
    path.write_text(json.dumps(coco))
    return out


@pytest.fixture(scope="module")
def builder():
    return partial(build_prompts, tokenizer=load_tokenizer(TINY.text_tokenizer), max_len=TINY.max_text_len)


def _coco(ds_dir: Path) -> dict:
    return json.loads((ds_dir / "annotations" / "train.json").read_text())


def _dataset(ds_dir: Path, builder, **kw) -> GroundingDataset:
    kw.setdefault("negatives_per_image", 2)
    return GroundingDataset(ds_dir, "train", image_size=TINY.image_size, prompt_builder=builder,
                            modalities=TINY.modalities, **kw)


# ------------------------------------------------------------------------------------------- dataset
def test_items_have_shapes_and_letterboxed_targets(dataset: Path, builder) -> None:
    coco = _coco(dataset)
    ds = _dataset(dataset, builder, train=False)
    assert len(ds) == len(coco["images"]) == 13
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    n_negative = 0
    for i in range(len(ds)):
        item = ds[i]
        info = ds.images[i]
        s = TINY.image_size
        assert item["image"].shape == (3, s, s) and item["image"].dtype == torch.float32
        assert item["modality"] == TINY.modalities.index("MR")
        scale = item["meta"]["scale"]
        assert scale == pytest.approx(s / max(info["width"], info["height"]))
        anns = by_image.get(info["id"], [])
        boxes, ids = item["target"]["boxes"], item["target"]["phrase_ids"]
        assert boxes.shape == (len(anns), 4) and ids.shape == (len(anns),) and ids.dtype == torch.long
        want = torch.tensor([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                             for a in anns], dtype=torch.float32).reshape(-1, 4) * scale
        torch.testing.assert_close(boxes, want)
        phrases = item["prompt"].phrases
        assert [phrases[j] for j in ids.tolist()] == [a["phrase"] for a in anns]
        assert len(phrases) >= 1
        if not anns:
            n_negative += 1
            assert info["negative"]
    assert n_negative == 3


def test_negatives_are_only_phrases_known_to_be_absent(lateral_dataset: Path, builder) -> None:
    """Partial labels: a negative is a phrase of the image's own case that this slice lacks, or a
    phrase of a body region the case cannot show; never a relative (the parent "brain" of a brain
    tumour) nor the other side of a present phrase."""
    ds = _dataset(lateral_dataset, builder, train=True, negatives_per_image=1)
    assert set(ds.phrases) == {"brain tumor", "left breast lesion", "right breast lesion", "brain", "liver"}
    seen: dict[str, set[str]] = {"brain": set(), "breast": set()}
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            present = {item["prompt"].phrases[j] for j in item["target"]["phrase_ids"].tolist()}
            negatives = set(item["prompt"].phrases) - present
            assert len(negatives) == 1 and not negatives & present
            case = ds.images[i]["case_id"]
            if case == "brain1":  # head and neck: breast and liver phrases cannot be there
                assert negatives <= {"left breast lesion", "right breast lesion", "liver", "brain tumor"}
                assert "brain" not in negatives
                if "brain tumor" in present:
                    assert "brain tumor" not in negatives
                seen["brain"] |= negatives
            else:  # breast1, thorax: the other side of the breast lesion is never "absent"
                assert negatives <= {"brain tumor", "brain", "liver", "left breast lesion"}
                assert not ({"left breast lesion", "right breast lesion"} & present and
                            negatives & {"left breast lesion", "right breast lesion"})
                seen["breast"] |= negatives
    assert len(seen["brain"]) >= 2 and len(seen["breast"]) >= 2  # sampled, not always the same one
    own, other = ds.known_absent(ds.images[0], set())
    assert set(own) <= ds.case_phrases[(ds.images[0]["source"], ds.images[0]["case_id"])]
    big = _dataset(lateral_dataset, builder, train=False, negatives_per_image=30, negative_vocabulary="ontology")
    item = big[2]  # the ontology fills the prompt with terms of regions the case cannot show
    negs = set(item["prompt"].phrases) - {"brain tumor"}
    assert len(negs) > 5 and "brain" not in negs and not negs & {"hippocampus", "left hippocampus"}


def test_flip_swaps_left_right_phrases_and_mirrors_boxes(lateral_dataset: Path, builder) -> None:
    plain = _dataset(lateral_dataset, builder, train=False)
    flip = _dataset(lateral_dataset, builder, train=True, augment=AugmentConfig(flip_prob=1.0, min_scale=1.0))
    checked = 0
    for i, info in enumerate(plain.images):
        a, b = plain[i], flip[i]
        assert b["meta"]["flipped"]
        pa = [a["prompt"].phrases[j] for j in a["target"]["phrase_ids"].tolist()]
        pb = [b["prompt"].phrases[j] for j in b["target"]["phrase_ids"].tolist()]
        swap = {"left breast lesion": "right breast lesion", "brain tumor": "brain tumor"}
        assert pb == [swap[p] for p in pa]
        w = info["width"] * a["meta"]["scale"]
        ba, bb = a["target"]["boxes"], b["target"]["boxes"]
        torch.testing.assert_close(bb, torch.stack([w - ba[:, 2], ba[:, 1], w - ba[:, 0], ba[:, 3]], 1)
                                   if len(ba) else ba)
        nh, nw = round(info["height"] * a["meta"]["scale"]), round(info["width"] * a["meta"]["scale"])
        torch.testing.assert_close(b["image"][:, :nh, :nw], a["image"][:, :nh, :nw].flip(-1), atol=0.05, rtol=0)
        checked += "right breast lesion" in pb
    assert checked == 3  # the three breast slices
    for info in flip.images:  # a horizontal flip of a sagittal slice mirrors anterior/posterior: never done
        info["slice_plane"] = "sagittal"
    assert not any(flip[i]["meta"]["flipped"] for i in range(len(flip)))


def test_scale_jitter_keeps_boxes_on_the_content(dataset: Path, builder) -> None:
    coco = _coco(dataset)
    ds = _dataset(dataset, builder, train=True, augment=AugmentConfig(flip_prob=0.0, min_scale=0.5))
    ann = next(a for a in coco["annotations"])
    idx = next(i for i, im in enumerate(ds.images) if im["id"] == ann["image_id"])
    scales = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        item = ds[idx]
        s, (ox, oy) = item["meta"]["scale"], item["meta"]["offset"]
        scales.add(round(s, 4))
        assert TINY.image_size * 0.5 - 2 <= s * max(ds.images[idx]["width"], ds.images[idx]["height"]) \
            <= TINY.image_size + 1e-3
        x, y, w, h = ann["bbox"]
        row = item["target"]["phrase_ids"].tolist().index(item["prompt"].phrases.index(ann["phrase"]))
        torch.testing.assert_close(item["target"]["boxes"][row],
                                   torch.tensor([x * s + ox, y * s + oy, (x + w) * s + ox, (y + h) * s + oy]))
        assert ds[idx]["meta"] == item["meta"]  # deterministic per (seed, epoch, index)
    assert len(scales) > 1


# ------------------------------------------------------------------------------- schedule / groups
def test_lr_schedule_warmup_then_cosine() -> None:
    f = partial(lr_factor, warmup_steps=4, total_steps=104, min_ratio=0.1)
    assert [f(s) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert f(4) == pytest.approx(1.0)
    assert f(54) == pytest.approx(0.55)
    assert f(104) == pytest.approx(0.1) and f(500) == pytest.approx(0.1)
    vals = [f(s) for s in range(4, 105)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_amp_resolution() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_amp("auto", cpu) == (None, False)
    assert resolve_amp("none", cuda) == (None, False)
    assert resolve_amp("bf16", cpu) == (torch.bfloat16, False)
    assert resolve_amp("fp16", cuda) == (torch.float16, True)
    with pytest.raises(MedglipError):
        resolve_amp("fp16", cpu)


def test_param_groups_lower_text_rate_and_no_decay_on_norms() -> None:
    from medglip.model import GroundingModel

    model = GroundingModel(TINY)
    groups = {g["name"]: g for g in param_groups(model, TrainConfig(lr=1e-3, text_lr_factor=0.1, weight_decay=0.05))}
    assert set(groups) == {"main", "main_no_decay", "text", "text_no_decay"}
    assert groups["text"]["lr"] == pytest.approx(1e-4) and groups["main"]["lr"] == pytest.approx(1e-3)
    assert groups["main_no_decay"]["weight_decay"] == 0.0 and groups["main"]["weight_decay"] == 0.05
    assert all(p.ndim > 1 for p in groups["main"]["params"])
    n = sum(len(g["params"]) for g in groups.values())
    assert n == sum(1 for p in model.parameters() if p.requires_grad)


def test_state_roundtrip_without_pickle(tmp_path: Path) -> None:
    p = torch.nn.Parameter(torch.randn(3, 2))
    opt = torch.optim.AdamW([p], lr=0.1)
    p.sum().backward()
    opt.step()
    state = {"optimizer": opt.state_dict(), "step": 7, "nested": {1: (1.5, None, "x")}}
    train_state.save_state(state, tmp_path)
    back = train_state.load_state(tmp_path)
    assert back["step"] == 7 and back["nested"] == {1: (1.5, None, "x")}
    opt2 = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone())], lr=0.1)
    opt2.load_state_dict(back["optimizer"])
    for k in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(opt2.state_dict()["state"][0][k], opt.state_dict()["state"][0][k])
    assert opt2.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))


# ----------------------------------------------------------------------------------------- training
def _cfg(**kw) -> TrainConfig:
    base = dict(preset="tiny", model_overrides=(("image_size", 64),), max_steps=6, batch_size=2, lr=1e-3, warmup_steps=2, checkpoint_every=3,
                log_every=2, seed=0, device="cpu", negatives_per_image=1)
    base.update(kw)
    return TrainConfig(**base)


def _losses(run: Path) -> list[dict[str, float]]:
    with open(run / "log.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v} for row in csv.DictReader(f)]


def test_train_tiny_writes_checkpoint_log_and_plot(dataset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    seen: list[int] = []
    out = train(dataset, run, _cfg(max_steps=4, checkpoint_every=2), on_step=lambda s, m: seen.append(s))
    assert out == run and seen == [1, 2, 3, 4]
    rows = _losses(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in rows)
    assert {"loss_cls", "loss_box", "loss_ctr", "lr", "grad_norm"} <= set(rows[0])
    with Image.open(run / "loss.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    for name in ("model.safetensors", "config.json", "train_config.json", "categories.json", "dataset_card.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "categories.json").read_text())["phrases"] == ["brain tumor", "breast lesion"]
    tc = json.loads((run / "train_config.json").read_text())
    assert tc["config"]["max_steps"] == 4 and tc["world_size"] == 1 and tc["amp"] == "none"
    latest = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert latest["step"] == 4
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-0000002", "step-0000004"]
    model = load_checkpoint(run)
    sd = model.state_dict()
    from safetensors.torch import load_file

    stored = load_file(str(run / "checkpoints" / "step-0000004" / "model.safetensors"))
    k = next(iter(stored))
    torch.testing.assert_close(sd[k], stored[k])
    with pytest.raises(MedglipError, match="already holds a checkpoint"):
        train(dataset, run, _cfg(max_steps=4))


def test_resume_after_crash_gives_the_same_losses(dataset: Path, tmp_path: Path) -> None:
    cfg = _cfg(max_steps=5, checkpoint_every=2)  # 6 steps per epoch: the resume starts mid-epoch
    straight = train(dataset, tmp_path / "a", cfg)

    class Crash(RuntimeError):
        pass

    def crash_at_3(step: int, metrics: dict) -> None:
        if step == 3:  # after checkpoint 2 was written, before checkpoint 4
            raise Crash

    with pytest.raises(Crash):
        train(dataset, tmp_path / "b", cfg, on_step=crash_at_3)
    assert json.loads((tmp_path / "b" / "checkpoints" / "latest.json").read_text())["step"] == 2
    assert [r["step"] for r in _losses(tmp_path / "b")] == [1, 2, 3]
    resumed = train(dataset, tmp_path / "b", cfg, resume=True)
    a, b = _losses(straight), _losses(resumed)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5]
    for ra, rb in zip(a, b):
        for key in ("loss", "loss_cls", "loss_box", "loss_ctr", "lr"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5, abs=1e-7), (ra["step"], key)
    assert len({round(r["loss"], 6) for r in a}) > 1  # the losses do change along the run


def test_crash_while_saving_keeps_the_last_good_checkpoint(dataset: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    real = train_state.save_state
    calls = {"n": 0}

    def flaky(state, folder):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real(state, folder)

    monkeypatch.setattr(train_state, "save_state", flaky)
    with pytest.raises(OSError, match="disk full"):
        train(dataset, run, _cfg(max_steps=4, checkpoint_every=2))
    ptr = json.loads((run / "checkpoints" / "latest.json").read_text())
    assert ptr["step"] == 2
    assert train_state.latest_checkpoint(run) == run / "checkpoints" / "step-0000002"
    load_checkpoint(run / "checkpoints" / "step-0000002")
    monkeypatch.setattr(train_state, "save_state", real)
    train(dataset, run, _cfg(max_steps=4, checkpoint_every=2), resume=True)
    assert [r["step"] for r in _losses(run)] == [1, 2, 3, 4]
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 4


def test_bf16_autocast_on_cpu(dataset: Path, tmp_path: Path) -> None:
    run = train(dataset, tmp_path / "run", _cfg(max_steps=2, amp="bf16", checkpoint_every=100), progress=False)
    assert json.loads((run / "train_config.json").read_text())["amp"] == "bfloat16"
    assert all(math.isfinite(r["loss"]) for r in _losses(run))


def test_epochs_length_and_config_validation(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        TrainConfig(max_steps=3, epochs=1)
    with pytest.raises(ValueError):
        TrainConfig(amp="fp8")
    run = train(dataset, tmp_path / "run", _cfg(max_steps=None, epochs=1, batch_size=4, checkpoint_every=100))
    # 13 images, batch 4, drop_last → 3 steps per epoch
    assert [r["step"] for r in _losses(run)] == [1, 2, 3]


# -------------------------------------------------------------------------------------------- DDP
def test_ddp_two_gloo_processes(dataset: Path, tmp_path: Path) -> None:
    """`torchrun --nproc_per_node=2 -m medglip train ...`: the documented command, on CPU with gloo,
    with every GLIPv2 loss on (the contrastive loss gathers phrases across the two ranks)."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}  # torchrun's scratch folders too
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                           "--nproc_per_node=2", "-m", "medglip", "train", str(dataset), "--out", str(run),
                           "--preset", "tiny", "--image-size", "64", "--max-steps", "2", "--batch-size", "2",
                           "--checkpoint-every", "1", "--device", "cpu", "--contrastive-weight", "1",
                           "--mlm-weight", "1", "--mask-weight", "1"],
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 2
    assert json.loads((run / "train_config.json").read_text())["world_size"] == 2
    rows = _losses(run)
    assert [r["step"] for r in rows] == [1, 2] and all(math.isfinite(r["loss"]) for r in rows)
    assert all(math.isfinite(r[k]) for r in rows for k in ("loss_contrast", "loss_mlm", "loss_mask"))
    model = load_checkpoint(run)
    assert model.mask_head is not None and model.mlm_head is not None


def test_training_refuses_a_dataset_made_with_another_input_pipeline(dataset: Path, tmp_path: Path) -> None:
    """The PNGs are the model's pixels: a dataset built with other CT windows, or before the input
    pipeline existed, cannot train this model (and says what to do)."""
    from medglip.core.pipeline import InputConfig

    other = tmp_path / "other"
    shutil.copytree(dataset, other)
    cfg_path = other / "build_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["ct_windows"] = [[-160.0, 240.0]] * 3
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(MedglipError, match="built with input"):
        GroundingDataset(other, image_size=64, prompt_builder=lambda p: [], modalities=TINY.modalities,
                         input_config=InputConfig())
    with pytest.raises(MedglipError, match="rebuild"):
        train(other, tmp_path / "run", _cfg(max_steps=1))
    del cfg["input_version"]
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(MedglipError, match="rebuild"):
        train(other, tmp_path / "run2", _cfg(max_steps=1))


def test_ema_weights_are_published_and_resumed(dataset: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    run = train(dataset, tmp_path / "ema", _cfg(max_steps=4, checkpoint_every=2, ema_decay=0.9))
    ckpt = run / "checkpoints" / "step-0000004"
    published, raw = load_file(str(run / "model.safetensors")), load_file(str(ckpt / "model.safetensors"))
    ema = load_file(str(ckpt / "ema" / "model.safetensors"))
    key = next(k for k in raw if "head.token.weight" in k)
    assert torch.equal(published[key], ema[key]) and not torch.equal(published[key], raw[key])
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert "ema_updates" in json.dumps(state)
    resumed = train(dataset, run, _cfg(max_steps=6, checkpoint_every=2, ema_decay=0.9), resume=True)
    assert (resumed / "checkpoints" / "step-0000006" / "ema" / "model.safetensors").is_file()


def test_copy_paste_zoom_and_intensity_keep_boxes_on_the_content() -> None:
    from medglip.train.augment import AugmentConfig, Lesion, jitter_intensity, paste_lesions, zoom

    rng = np.random.default_rng(0)
    img = np.zeros((64, 64), np.uint8)
    img[8:56, 8:56] = 80  # body
    organ = np.zeros((64, 64), bool)
    organ[10:40, 30:54] = True  # the organ that holds the lesion
    img[organ] = 40
    mask = np.zeros((12, 12), bool)
    mask[3:9, 3:9] = True
    pix = np.full((12, 12), 40, np.uint8)
    pix[mask] = 200
    les = Lesion("brain tumor", "MR", "head and neck", "brain", pix, mask, 40.0, ("s", "other"))
    cfg = AugmentConfig(copy_paste_max=1, paste_scale=(1.0, 1.0))
    out, boxes, phrases = paste_lesions(img, np.zeros((0, 4)), [], [les], rng, cfg, organ_masks={"brain": organ})
    assert phrases == ["brain tumor"] and boxes.shape == (1, 4)
    x0, y0, x1, y1 = boxes[0].astype(int)
    assert organ[y0:y1, x0:x1].all()  # placed inside the organ
    assert out[y0:y1, x0:x1].mean() > 150 and (out[~organ] == img[~organ]).all()  # pasted there only
    # a paste overlapping an existing box is dropped: the only room in this organ is taken
    small = np.zeros((64, 64), bool)
    small[20:27, 40:47] = True
    _, b2, p2 = paste_lesions(img, np.array([[40.0, 20.0, 47.0, 27.0]]), ["x"], [les], rng, cfg,
                              organ_masks={"brain": small})
    assert p2 == ["x"] and len(b2) == 1
    crop, moved = zoom(out, boxes, np.random.default_rng(1), 1.6)
    assert crop.shape[0] <= 64 and (moved[:, 2:] <= [crop.shape[1], crop.shape[0]]).all()
    assert (moved[0, 2:] - moved[0, :2] == boxes[0, 2:] - boxes[0, :2]).all()  # the box kept whole
    j = jitter_intensity(out, np.random.default_rng(2))
    assert j.shape == out.shape and j.dtype == np.uint8 and not np.array_equal(j, out)


def _tight(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_elastic_boxes_fit_their_deformed_masks_and_vanished_objects_go() -> None:
    from medglip.train.augment import elastic

    h, w = 80, 96
    yy, xx = np.mgrid[:h, :w]
    masks = [(yy - 25) ** 2 + (xx - 30) ** 2 < 12 ** 2, (np.abs(yy - 55) < 8) & (np.abs(xx - 65) < 20)]
    dots = []
    for k in range(12):  # one-pixel objects: a strong field misses some of them
        m = np.zeros((h, w), bool)
        m[5 + 6 * k, 85] = True
        dots.append(m)
    img = np.zeros((h, w, 3), np.uint8)
    for m in masks:
        img[m] = 200
    boxes = np.array([_tight(m) for m in masks + dots] + [[40.0, 10.0, 60.0, 20.0]])  # the last: box only
    all_masks = masks + dots + [None]
    run = partial(elastic, img, boxes, all_masks, displacement=0.03, sigma=0.05)
    out, b, m, keep = run(np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)
    assert list(keep) == sorted(keep) and len(b) == len(m) == len(keep) and keep[:2].tolist() == [0, 1]
    for box, mask in zip(b, m):
        if mask is not None:
            assert mask.any() and box.tolist() == _tight(mask)  # tight around the deformed mask
    assert m[-1] is None and keep[-1] == len(boxes) - 1 and (b[-1, 2:] <= [w, h]).all()
    # the image and the masks moved together: the bright pixels are the deformed objects
    union = np.logical_or(*m[:2])
    bright = out[..., 0] > 100
    assert (bright & union).sum() / (bright | union).sum() > 0.9
    dropped = 0
    for seed in range(6):
        _, b, m, keep = run(np.random.default_rng(seed))
        dropped += len(boxes) - len(keep)
        assert all(mask is None or mask.any() for mask in m)
    assert dropped > 0
    # deterministic with the generator's seed, another seed another field, no field: the identity
    again = run(np.random.default_rng(0))
    first = run(np.random.default_rng(0))
    assert np.array_equal(again[0], first[0]) and np.array_equal(again[1], first[1])
    assert not np.array_equal(run(np.random.default_rng(1))[0], first[0])
    same = elastic(img, boxes, all_masks, np.random.default_rng(0), displacement=0.0, sigma=0.05)
    assert same[0] is img and same[1] is boxes and same[3].tolist() == list(range(len(boxes)))


def test_elastic_in_the_dataset_off_by_default_and_seeded(dataset: Path, builder) -> None:
    base = dict(flip_prob=0.5, min_scale=0.8, zoom_prob=0.5, intensity_prob=0.5)
    plain = _dataset(dataset, builder, train=True, augment=AugmentConfig(**base))
    off = _dataset(dataset, builder, train=True, augment=AugmentConfig(**base, elastic_prob=0.0,
                                                                       elastic_displacement=0.05))
    on = _dataset(dataset, builder, train=True, augment=AugmentConfig(**base, elastic_prob=1.0))
    on_again = _dataset(dataset, builder, train=True, augment=AugmentConfig(**base, elastic_prob=1.0))
    moved = 0
    for i in range(len(plain)):
        a, b = plain[i], off[i]  # probability 0: the very items of before (the same random draws too)
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["target"]["boxes"], b["target"]["boxes"])
        assert a["prompt"].phrases == b["prompt"].phrases
        c, d = on[i], on_again[i]
        assert torch.equal(c["image"], d["image"]) and torch.equal(c["target"]["boxes"], d["target"]["boxes"])
        moved += not torch.equal(a["image"], c["image"])
    assert moved == len(plain)
    with pytest.raises(ValueError, match="elastic_prob"):
        TrainConfig(elastic_prob=1.5)


def test_batches_hold_one_modality_sources_are_weighted_and_ranks_disjoint() -> None:
    from medglip.train.sampling import ModalityBatchSampler, image_weights

    sources = ["big"] * 90 + ["small"] * 10
    modalities = ["MR"] * 60 + ["CT"] * 40
    w = image_weights(sources, modalities, source_weights={"big": 1.0, "small": 1.0})
    assert w[:90].sum() == pytest.approx(0.5) and w[90:].sum() == pytest.approx(0.5)
    s = ModalityBatchSampler(modalities=modalities, weights=w, batch_size=4, seed=3)
    s.set_epoch(0)
    batches = list(s)
    assert len(batches) == s.steps_per_epoch() == 25
    assert all(len({modalities[i] for i in b}) == 1 for b in batches)  # one encoder per step
    drawn = [i for b in batches for i in b]
    assert 0.3 < np.mean([i >= 90 for i in drawn]) < 0.7  # the small source: about half of the draws
    s.set_epoch(0, skip=5)
    assert list(s) == batches[5:]  # resuming mid-epoch continues the same sequence
    ranks = [ModalityBatchSampler(modalities=modalities, weights=None, batch_size=4, rank=r, world_size=2, seed=3)
             for r in (0, 1)]
    got = [sorted(i for b in r for i in b) for r in ranks]
    assert len(list(ranks[0])) == len(list(ranks[1])) == 12 and not set(got[0]) & set(got[1])
    with pytest.raises(ValueError, match="non-negative"):
        image_weights(["a"], ["MR"], source_weights={"a": -1.0})


def test_train_config_hands_every_augmentation_setting_to_the_dataset() -> None:
    from dataclasses import fields

    cfg = TrainConfig(flip_prob=0.1, min_scale=0.7, zoom_prob=0.2, max_zoom=1.3, copy_paste_prob=0.4,
                      paste_scale=[0.6, 2.0], intensity_prob=0.3, elastic_prob=0.25, elastic_displacement=0.02,
                      elastic_sigma=0.07, coarse_phrase_prob=0.45)
    aug = cfg.augment_config()
    shared = [f.name for f in fields(AugmentConfig) if hasattr(cfg, f.name)]
    assert len(shared) == 11 and all(getattr(aug, n) == (tuple(v) if isinstance(v := getattr(cfg, n), list) else v)
                                     for n in shared)
    assert aug.paste_scale == (0.6, 2.0) and aug.copy_paste_max == AugmentConfig().copy_paste_max


def test_frozen_parts_keep_their_weights_and_statistics(dataset: Path, tmp_path: Path) -> None:
    """freeze=("image_backbones",): the backbones' weights and BatchNorm statistics come out as they went
    in (raw and published EMA weights alike) while the FPN, head and text encoder learn; both parts
    frozen leave the text encoder as it was too. An unknown part is refused by name."""
    from safetensors.torch import load_file

    from medglip.model import GroundingModel
    from medglip.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    start = save_checkpoint(GroundingModel(TINY.replace(image_size=64, backbone_frozen_bn=False)), tmp_path / "start")
    before = load_file(str(start / "model.safetensors"))

    def changed(weights: Path) -> set[str]:
        after = load_file(str(weights))
        assert after.keys() == before.keys()
        return {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("image_encoder.") else "")
                for k in before if not torch.equal(before[k], after[k])}

    run = train(dataset, tmp_path / "img", _cfg(init_from=str(start), max_steps=4, freeze=("image_backbones",),
                                                 lr=1e-2, mask_weight=0.0))
    ckpt = train_state.latest_checkpoint(run)
    assert ckpt is not None
    for weights in (run / "model.safetensors", ckpt / "model.safetensors"):  # published (EMA) and raw
        moved = changed(weights)
        assert "image_encoder.backbones" not in moved
        assert {"image_encoder.fpn", "head", "text_encoder"} <= moved
    assert any("running_mean" in k for k in before if k.startswith("image_encoder.backbones"))  # BN stats checked
    assert json.loads((run / "train_config.json").read_text())["config"]["freeze"] == ["image_backbones"]
    with pytest.raises(MedglipError, match=r"trained with freeze=\['image_backbones'\].*same --freeze"):
        train(dataset, run, _cfg(init_from=str(start), max_steps=6, lr=1e-2, mask_weight=0.0), resume=True)

    run2 = train(dataset, tmp_path / "both", _cfg(init_from=str(start), max_steps=2, lr=1e-2, mask_weight=0.0,
                                                   freeze=("image_backbones", "text_encoder")))
    moved = changed(run2 / "model.safetensors")
    assert not moved & {"image_encoder.backbones", "text_encoder"} and "head" in moved
    with pytest.raises(ValueError, match="'backbone'"):
        _cfg(freeze=("backbone",))


def test_ema_keeps_weights_that_never_trained_exact() -> None:
    """The EMA of a weight that never moves (an encoder of a modality absent from the data) is the weight
    itself, bit for bit: x·d + x·(1 − d) would drift by rounding and make a compact checkpoint store it."""
    from medglip.train.ema import make_ema, update_ema

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 64))
    ema = make_ema(model, decay=0.998)
    still = model[1].weight.detach().clone()
    for _ in range(50):
        with torch.no_grad():
            model[0].weight.add_(0.01)
        update_ema(ema, model)
    assert torch.equal(ema.module[1].weight, still)
    assert not torch.equal(ema.module[0].weight, model[0].weight)  # the trained one is averaged
