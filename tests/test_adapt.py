"""medglip adapt: each method trains only its parameters, the run folder stores only what changed against
its start model (refusing another base), loads as a checkpoint, and bad input is named.

All on CPU with a tiny model (64 px) and the shipped pyradiomics samples (MR: "brain tumor", "breast lesion")."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import medglip
from medglip.dataset import BuildConfig, build
from medglip.errors import MedglipError
from medglip.model import GroundingModel, get_preset, load_checkpoint, save_checkpoint, shipped
from medglip.model.checkpoint import CheckpointError
from medglip.train.adapt import DEFAULT_METHOD, NEW_MODALITY_METHOD, AdaptError, adapt, auto_method
from medglip.train.adapt_card import forgetting
from medglip.train.adapt_data import AdaptDataError

SAMPLES = Path(medglip.__file__).parent / "samples" / "pyradiomics"
TINY = dict(image_size=64, modalities=("CT", "MR"), own_encoder_modalities=("CT", "MR"), mask_head=True)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(seed: int) -> GroundingModel:
    torch.manual_seed(seed)
    return GroundingModel(get_preset("tiny", **TINY))


@pytest.fixture(scope="module")
def start(tmp_path_factory) -> Path:
    return save_checkpoint(_model(0), tmp_path_factory.mktemp("start") / "run")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("adapt-ds") / "ds"
    build(BuildConfig(source=str(SAMPLES), layout="manifest", split_ratios=(1, 0, 0)), out)
    return out


def _changed(start: Path, run: Path) -> set[str]:
    a, b = load_checkpoint(start).state_dict(), load_checkpoint(run).state_dict()
    return {k for k in b if k not in a or not torch.equal(a[k], b[k])}


# (method, what may change, a tensor name that must have changed)
PARTS = {
    "prompt": (("phrase_offsets.",), "phrase_offsets.offsets"),
    "head": (("fusion.", "head.", "mask_head."), "head."),
    "lora": (("image_encoder.backbones.MR.",), "image_encoder.backbones.MR."),
    "encoder": (("image_encoder.backbones.MR.",), "image_encoder.backbones.MR."),
    "encoder-prompt": (("image_encoder.backbones.MR.", "phrase_offsets."), "phrase_offsets.offsets"),
    "full": (("image_encoder.backbones.MR.", "image_encoder.fpn.", "text_proj.", "fusion.", "head.", "mask_head.",
              "modality_classifier."), "image_encoder.backbones.MR."),
}


@pytest.mark.parametrize("method", sorted(PARTS))
def test_each_method_changes_only_its_parameters(method, start, dataset, tmp_path):
    allowed, must = PARTS[method]
    result = adapt(dataset, out=tmp_path / "run", start=start, method=method, max_steps=2, seed=0)
    assert result.method == method and result.steps == 2
    changed = _changed(start, result.run)
    assert changed and any(k.startswith(must) for k in changed), changed
    if method == "encoder-prompt":  # both parts learn
        assert any(k.startswith("image_encoder.backbones.MR.") for k in changed), changed
    assert all(k.startswith(allowed) for k in changed), sorted(k for k in changed if not k.startswith(allowed))
    # only what changed is stored (LoRA as low-rank factors of the MR encoder's weights)
    stored = {k.removesuffix("::diff") for k in load_file(str(result.run / "model.safetensors"))}
    if method == "lora":
        assert stored and all(k.startswith("image_encoder.backbones.MR.") and k.endswith(("::lora_a", "::lora_b"))
                              for k in stored)
        assert all(k.endswith(".weight") for k in changed)
    else:
        assert stored == changed


def test_norm_stats_keep_leaves_the_running_statistics_and_trains_the_weights(start, dataset, tmp_path):
    kept = adapt(dataset, out=tmp_path / "kept", start=start, method="full", max_steps=2, norm_stats="keep")
    updated = adapt(dataset, out=tmp_path / "updated", start=start, method="full", max_steps=2)
    stats = (".running_mean", ".running_var", ".num_batches_tracked")
    changed_kept, changed_updated = _changed(start, kept.run), _changed(start, updated.run)
    assert any(k.endswith(stats) for k in changed_updated)  # the fixture's encoders have BatchNorm
    assert not any(k.endswith(stats) for k in changed_kept), sorted(k for k in changed_kept if k.endswith(stats))
    assert any(k.startswith("image_encoder.backbones.MR.") and k.endswith(".weight") for k in changed_kept)
    assert json.loads((kept.run / "adapt.json").read_text())["norm_stats"] == "keep"
    assert "| BatchNorm statistics | the start model's, kept |" in (kept.run / "ADAPT_CARD.md").read_text()
    with pytest.raises(AdaptError, match="norm_stats must be one of update, keep"):
        adapt(dataset, out=tmp_path / "bad", start=start, max_steps=1, norm_stats="frozen")


def test_shared_parts_train_at_their_share_of_the_rate(start, dataset, tmp_path):
    # full with the shared parts' rate at 0 trains the MR encoder only, so a CT image's answer is unchanged;
    # at a small share the shared parts move, less than at the full rate
    fixed = adapt(dataset, out=tmp_path / "fixed", start=start, method="full", max_steps=2, shared_lr_scale=0.0)
    assert {k.split(".")[2] for k in _changed(start, fixed.run)} == {"MR"}
    before, after = load_checkpoint(start), load_checkpoint(fixed.run)
    x, ct = torch.rand(1, 3, 64, 64), torch.tensor([0])
    old = before(x, ct, before.build_prompts(["liver", "brain tumor"]))[0]
    new = after(x, ct, after.build_prompts(["liver", "brain tumor"]))[0]
    assert torch.equal(old["scores"], new["scores"]) and torch.equal(old["boxes"], new["boxes"])

    def drift(run: Path) -> float:
        a, b = before.state_dict(), load_checkpoint(run).state_dict()
        return sum(float((b[k] - a[k]).abs().sum()) for k in a if k.startswith(("fusion.", "head.")))

    slow = adapt(dataset, out=tmp_path / "slow", start=start, method="full", max_steps=2, shared_lr_scale=0.1)
    fast = adapt(dataset, out=tmp_path / "fast", start=start, method="full", max_steps=2, shared_lr_scale=1.0)
    assert 0 < drift(slow.run) < drift(fast.run)
    saved = json.loads((slow.run / "train_config.json").read_text())["adapt"]
    assert saved["shared_lr_scale"] == 0.1


def test_replay_rehearses_the_given_set_every_nth_step(start, dataset, tmp_path):
    # the rehearsal set: the same images said to be CT, so its batches go through the CT encoder
    replay = Path(shutil.copytree(dataset, tmp_path / "replay"))
    coco = json.loads((replay / "annotations" / "train.json").read_text())
    coco["images"] = [{**im, "modality": "CT"} for im in coco["images"]]
    (replay / "annotations" / "train.json").write_text(json.dumps(coco))
    plain = adapt(dataset, out=tmp_path / "plain", start=start, method="full", max_steps=4)
    rehearsed = adapt(dataset, out=tmp_path / "rehearsed", start=start, method="full", max_steps=4, replay=replay,
                      replay_every=2)
    rows = (rehearsed.run / "log.csv").read_text().splitlines()
    column = rows[0].split(",").index("replay")
    assert [r.split(",")[column] for r in rows[1:]] == ["0", "1", "0", "1"]
    a, b = load_checkpoint(plain.run).state_dict(), load_checkpoint(rehearsed.run).state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("head."))  # the rehearsal taught something
    assert "image_encoder.backbones.CT" not in " ".join(_changed(start, rehearsed.run))  # CT is only rehearsed
    assert "rehearsal | 1 step in 2: a batch of" in (rehearsed.run / "ADAPT_CARD.md").read_text()
    assert json.loads((rehearsed.run / "adapt.json").read_text())["replay"]["every"] == 2
    with pytest.raises(AdaptError, match="replay .*not a built dataset"):
        adapt(dataset, out=tmp_path / "x", start=start, max_steps=1, replay=tmp_path / "nothing")
    with pytest.raises(AdaptError, match="replay_every must be at least 2"):
        adapt(dataset, out=tmp_path / "y", start=start, max_steps=1, replay=replay, replay_every=1)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_keep_share_keeps_that_share_of_the_trained_change(method, start, dataset, tmp_path):
    whole = adapt(dataset, out=tmp_path / "whole", start=start, method=method, max_steps=2)
    half = adapt(dataset, out=tmp_path / "half", start=start, method=method, max_steps=2, keep_share=0.5)
    s0, s1, s2 = (load_checkpoint(r).state_dict() for r in (start, whole.run, half.run))
    changed = [k for k in s1 if s1[k].is_floating_point() and not torch.equal(s0[k], s1[k])]
    assert changed
    for k in changed:  # the deltas are stored in float16
        torch.testing.assert_close(s2[k] - s0[k], 0.5 * (s1[k] - s0[k]), atol=2e-3, rtol=2e-2)
    assert "| change kept | 0.5 of the trained change" in (half.run / "ADAPT_CARD.md").read_text()
    with pytest.raises(AdaptError, match=r"keep_share must lie in \(0, 1\], got 0"):
        adapt(dataset, out=tmp_path / "x", start=start, keep_share=0)


def test_prompt_tuning_leaves_other_phrases_exactly_as_they_were(start, dataset, tmp_path):
    run = adapt(dataset, out=tmp_path / "run", start=start, method="prompt", phrases=["brain tumor"],
                max_steps=2).run
    before, after = load_checkpoint(start), load_checkpoint(run)
    assert after.config.tuned_phrases == ("brain tumor",)
    assert after.phrase_offsets.offsets.abs().sum() > 0
    x, mod = torch.rand(1, 3, 64, 64), torch.tensor([1])
    for phrases, same in ((["liver", "breast lesion"], True), (["brain tumor"], False)):
        a = before.encode_text(before.build_prompts(phrases)).hidden
        b = after.encode_text(after.build_prompts(phrases)).hidden
        assert torch.equal(a, b) is same
    old = before(x, mod, before.build_prompts(["liver"]))[0]
    new = after(x, mod, after.build_prompts(["liver"]))[0]
    assert torch.equal(old["scores"], new["scores"]) and torch.equal(old["boxes"], new["boxes"])


def test_run_folder_loads_everywhere_and_is_small_with_card_and_thresholds(start, dataset, tmp_path):
    from medglip.infer import Grounder

    seen = []
    result = adapt(dataset, out=tmp_path / "run", start=start, method="head", max_steps=3, progress=seen.append)
    assert [p.step for p in seen] == [1, 2, 3] and all(p.total >= p.step and p.remaining_s >= 0 for p in seen)
    assert seen[-1].remaining_s == 0 and seen[-1].elapsed_s > 0
    run = result.run
    full = save_checkpoint(load_checkpoint(run), tmp_path / "full")
    assert result.weights_bytes < 0.5 * (full / "model.safetensors").stat().st_size
    g = Grounder.from_pretrained(run, refiner=None)
    assert {"brain tumor", "breast lesion"} <= set(g.known_phrases)
    for phrase, t in result.thresholds.items():
        assert g.threshold_for(phrase) == pytest.approx(t)
    doc = json.loads((run / "adapt.json").read_text())
    assert doc["steps"] == 3 and doc["method"] == "head" and doc["cases"] == list(result.cases)
    assert doc["calibration"]["split"] == "train"  # the set has no validation case: said in the card
    card = (run / "ADAPT_CARD.md").read_text()
    assert "pyradiomics/brain1" in card and "on the training cases themselves" in card
    assert json.loads((run / "config.json").read_text())["adapted_from"]["base"]["kind"] == "run"


def test_forgetting_compares_the_start_and_adapted_models(start, dataset, tmp_path):
    run = adapt(dataset, out=tmp_path / "run", start=start, method="head", max_steps=2).run
    same = forgetting(start, dataset, base=start, split="train")
    assert same.drop == 0 and same.within and same.pairs > 0
    f = forgetting(run, dataset, base=start, split="train")
    assert f.pairs == same.pairs and f.base_acc50 == same.base_acc50
    assert f.drop == pytest.approx(f.base_acc50 - f.adapted_acc50, abs=1e-4)
    assert set(f.by_phrase) == {"brain tumor", "breast lesion"}


def test_a_run_refuses_another_base_and_names_a_missing_one(dataset, tmp_path):
    base = save_checkpoint(_model(1), tmp_path / "base")
    run = adapt(dataset, out=tmp_path / "run", start=base, method="head", max_steps=1).run
    load_checkpoint(run)
    save_checkpoint(_model(2), base)  # the start run retrained in place
    with pytest.raises(CheckpointError, match="not the one this run was adapted from"):
        load_checkpoint(run)
    shutil.rmtree(base)
    with pytest.raises(CheckpointError, match="adapted from is missing"):
        load_checkpoint(run)


def _trained_on(start: Path, folder: Path, by_modality: dict[str, list[str]]) -> Path:
    """A copy of ``start`` whose categories.json says what it was trained on."""
    shutil.copytree(start, folder)
    phrases = sorted({p for v in by_modality.values() for p in v})
    (folder / "categories.json").write_text(json.dumps({"phrases": phrases, "phrases_by_modality": by_modality}))
    return folder


def test_auto_is_the_measured_winner_for_a_known_modality_and_full_for_a_new_one(start, tmp_path):
    knows_mr = _trained_on(start, tmp_path / "mr", {"MR": ["brain tumor"], "CT": ["liver"]})
    ct_only = _trained_on(start, tmp_path / "ct", {"CT": ["liver"]})
    assert auto_method(knows_mr, ("MR",)) == DEFAULT_METHOD == "encoder-prompt"
    assert auto_method(ct_only, ("MR",)) == auto_method(knows_mr, ("MR", "US")) == NEW_MODALITY_METHOD == "full"
    assert auto_method(start, ("MR",)) == NEW_MODALITY_METHOD  # a bare checkpoint says nothing: the safe one
    new = adapt(SAMPLES, out=tmp_path / "new", start=ct_only, max_steps=1, phrases=["brain tumor"])
    assert new.method == "full"
    assert json.loads((new.run / "train_config.json").read_text())["adapt"]["method_asked"] == "auto"


def test_adapts_the_shipped_model_from_a_raw_manifest(start, tmp_path, monkeypatch):
    monkeypatch.setattr(shipped, "SHIPPED_DIR", _trained_on(start, tmp_path / "shipped", {"MR": ["brain tumor"]}))
    result = adapt(SAMPLES, out=tmp_path / "run", method="auto", max_steps=2, phrases=["Brain tumor"])
    assert result.method == DEFAULT_METHOD and result.phrases == ("brain tumor",)  # auto: the measured default
    # the shipped training patients were rehearsed (step 2), built for that and removed after
    rows = (result.run / "log.csv").read_text().splitlines()
    assert [r.split(",")[rows[0].split(",").index("replay")] for r in rows[1:]] == ["0", "1"]
    assert "samples/rehearsal/recipe.yaml" in (result.run / "ADAPT_CARD.md").read_text()
    assert not (result.run / "rehearsal").exists()
    assert (tmp_path / "run" / "data" / "annotations" / "train.json").is_file()
    assert json.loads((result.run / "config.json").read_text())["adapted_from"]["base"]["kind"] == "shipped"
    load_checkpoint(result.run)
    # no --reference: forgetting is measured on the held-out sample patients shipped with the model
    f = result.forgetting
    assert f is not None and f.pairs > 0 and f.dataset.endswith("heldout/recipe.yaml"), f
    assert f.drop == pytest.approx(f.base_acc50 - f.adapted_acc50, abs=1e-3)
    assert "heldout/recipe.yaml" in (result.run / "ADAPT_CARD.md").read_text()


def test_the_shipped_rehearsal_patients_are_training_patients_never_held_out_ones():
    from medglip.dataset import load_recipe

    def patients(folder: Path) -> set[str]:
        lgg = {p.name.rsplit("_", 1)[0] for p in (folder / "lgg-mri" / "kaggle_3m").iterdir()}
        hippo = {p.name.split(".")[0] for p in (folder / "msd-hippocampus" / "imagesTr").iterdir()}
        return lgg | hippo

    rehearsal, heldout = patients(shipped.SHIPPED_REHEARSAL), patients(shipped.SHIPPED_HELDOUT)
    assert rehearsal and heldout and not rehearsal & heldout
    recipe = load_recipe(shipped.SHIPPED_REHEARSAL / "recipe.yaml")
    assert {s.split.mode for s in recipe.sources} == {"train"}


def test_bad_input_is_named(start, dataset, tmp_path):
    with pytest.raises(AdaptDataError, match="never mark 'liver'.*brain tumor"):
        adapt(dataset, out=tmp_path / "a", start=start, phrases=["liver"], max_steps=1)
    with pytest.raises(AdaptError, match="budget must be a positive"):
        adapt(dataset, out=tmp_path / "b", start=start, budget_minutes=0)
    with pytest.raises(AdaptError, match=r"shared_lr_scale must lie in \[0, 1\], got 2"):
        adapt(dataset, out=tmp_path / "g", start=start, shared_lr_scale=2)
    with pytest.raises(AdaptError, match="unknown adaptation method 'linear'"):
        adapt(dataset, out=tmp_path / "c", start=start, method="linear")
    empty = Path(shutil.copytree(dataset, tmp_path / "empty"))
    coco = json.loads((empty / "annotations" / "train.json").read_text())
    (empty / "annotations" / "train.json").write_text(json.dumps({**coco, "annotations": []}))
    with pytest.raises(AdaptDataError, match="no labelled case"):
        adapt(empty, out=tmp_path / "d", start=start, max_steps=1)
    raw = tmp_path / "raw"
    raw.mkdir()
    for f in ("brain1_image.nrrd", "brain1_label.nrrd"):
        shutil.copy(SAMPLES / f, raw / f)
    (raw / "medglip_manifest.json").write_text(json.dumps({"medglip_manifest": 1, "cases": [
        {"id": "b1", "image": "brain1_image.nrrd", "label": "brain1_label.nrrd", "labels": {"1": "brain tumor"}}]}))
    with pytest.raises(AdaptDataError, match="does not say the modality"):
        adapt(raw, out=tmp_path / "e", start=start, max_steps=1)
    with pytest.raises(AdaptDataError, match="not CT as asked"):
        adapt(dataset, out=tmp_path / "f", start=start, modality="CT", max_steps=1)
    assert issubclass(AdaptDataError, MedglipError) and issubclass(AdaptError, MedglipError)


def test_batches_that_cannot_reach_the_trained_parameters_are_named_not_a_torch_error(start, dataset):
    # prompt tuning of a phrase no training prompt holds (no negatives either): no batch has a gradient
    # path to the offsets; the loop must say so rather than crash inside backward()
    from functools import partial

    from medglip.model import build_prompts
    from medglip.train.adapt_loop import LoopSettings, TrainedGroup, run_steps
    from medglip.train.data import GroundingDataset

    model = load_checkpoint(start).with_tuned_phrases(["liver"])
    model.requires_grad_(False).eval()
    model.training = True  # as adapt does: the model computes its losses, its parts stay in eval mode
    params = TrainedGroup(params=(model.phrase_offsets.offsets.requires_grad_(True),))
    ds = GroundingDataset(dataset, "train", image_size=64,
                          prompt_builder=partial(build_prompts, tokenizer=model.tokenizer, max_len=32),
                          modalities=tuple(model.config.modalities), train=True, negatives_per_image=0,
                          input_config=model.config.input_config, with_masks=True)
    settings = LoopSettings(lr=0.05, weight_decay=0.0, batch_size=1, max_steps=3, budget_s=60.0, warmup_steps=1,
                            grad_clip=1.0, seed=0, device="cpu")
    with pytest.raises(MedglipError, match="never reach the trained parameters"):
        run_steps(model, [params], ds, settings)
