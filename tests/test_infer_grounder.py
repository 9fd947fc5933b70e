"""Grounder on a tiny random checkpoint: structure, coordinates, text cache, batching, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medglip.errors import MedglipError
from medglip.infer import Grounder, GroundingResult, VolumeGroundingResult
from medglip.model import GroundingModel, get_preset, save_checkpoint

SAMPLES = Path(__file__).resolve().parents[1] / "src" / "medglip" / "samples" / "pyradiomics"


class BoxFillRefiner:
    """Fake refiner: each mask is its (rounded) box; records calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[int, ...], int]] = []

    def refine(self, image, boxes):
        h, w = image.shape[:2]
        self.calls.append((image.shape, len(boxes)))
        out = np.zeros((len(boxes), h, w), bool)
        for i, (x0, y0, x1, y1) in enumerate(np.round(boxes).astype(int)):
            out[i, y0:y1, x0:x1] = True
        return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    # no score floor and a calibrated threshold of 0: an untrained model still returns boxes
    model = GroundingModel(get_preset("tiny", score_threshold=0.0, finding_thresholds=(("*", 0.0),))).eval()
    return save_checkpoint(model, tmp_path_factory.mktemp("run"))


@pytest.fixture()
def grounder(run_dir):
    return Grounder.from_pretrained(run_dir, refiner=BoxFillRefiner())


def _encoder_calls(grounder: Grounder) -> list[int]:
    calls = [0]
    grounder.model.text_encoder.register_forward_hook(lambda *a: calls.__setitem__(0, calls[0] + 1))
    return calls


def _image(seed=0, shape=(90, 140)):
    return (np.random.default_rng(seed).random(shape) * 255).astype(np.uint8)


def test_ground_returns_boxes_in_original_pixels_per_phrase(grounder):
    img = _image()
    res = grounder.ground_one(img, ["brain tumor", "left  kidney."], modality="MR", masks=True, top_k=5)
    assert isinstance(res, GroundingResult)
    assert res.phrases == ("brain tumor", "left kidney") and res.image_size == (90, 140)
    assert res.modality == "MR" and res.modality_source == "caller"
    for g in res:
        assert g.boxes.shape == (len(g), 4) and g.scores.shape == (len(g),) and 1 <= len(g) <= 5
        assert g.masks.shape == (len(g), 90, 140) and g.masks.dtype == bool
        assert np.all(g.boxes[:, :2] >= 0) and np.all(g.boxes[:, 2] <= 140) and np.all(g.boxes[:, 3] <= 90)
        assert np.all(g.boxes[:, 2:] > g.boxes[:, :2])
        assert np.all(np.diff(g.scores) <= 0) and np.all((g.scores >= 0) & (g.scores <= 1))
    assert res["left kidney"] is res[1]
    # masks come from one refine call per image holding every phrase's boxes
    assert grounder.refiner.calls == [((90, 140), len(res[0]) + len(res[1]))]
    js = json.loads(json.dumps(res.to_json()))
    assert js["phrases"][0]["phrase"] == "brain tumor" and len(js["phrases"][0]["masks"]) == len(res[0])
    preds = res.to_predictions(image_id=7)
    assert len(preds) == len(res[0]) + len(res[1]) and preds[0]["image_id"] == 7
    x0, y0, x1, y1 = res[0].boxes[0]
    assert preds[0]["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])


def test_boxes_are_mapped_back_from_the_letterboxed_input(grounder, monkeypatch):
    """A box the model puts at input pixels (10, 20, 60, 100) of the 128 px letterbox lands at that
    box divided by the scale, clipped to the original image."""
    def fake_detect(feats, text_features, image_hw):
        assert tuple(image_hw) == (128, 128)
        box = torch.tensor([[10.0, 20.0, 60.0, 100.0]])
        return [{"boxes": box, "scores": torch.tensor([0.9]), "phrase_ids": torch.tensor([0])}
                for _ in range(feats.levels[0].shape[0])]
    monkeypatch.setattr(grounder.model, "detect", fake_detect)
    small, tall = grounder.ground([_image(1, (64, 48)), _image(1, (300, 100))], ["liver", "spleen"], modality="CT")
    assert np.allclose(small[0].boxes, [[5, 10, 30, 50]]) and len(small["spleen"]) == 0
    s = 128 / 300
    assert np.allclose(tall[0].boxes, [[10 / s, 20 / s, 100, 100 / s]], atol=1e-3)  # x1 clipped to the width


def test_score_threshold_and_top_k(grounder):
    img = _image(2)
    res = grounder.ground_one(img, ["liver"], modality="CT")
    s = res[0].scores
    thr = float(np.median(s))
    cut = grounder.ground_one(img, ["liver"], modality="CT", score_threshold=thr)
    assert len(cut[0]) == int((s >= thr).sum()) and np.all(cut[0].scores >= thr)
    assert len(grounder.ground_one(img, ["liver"], modality="CT", top_k=0)[0]) == 0


def test_text_features_are_cached_per_phrase_tuple(grounder):
    calls = _encoder_calls(grounder)
    img = _image(3)
    grounder.ground_one(img, ["liver", "spleen"], modality="CT")
    assert calls[0] == 1
    grounder.ground_one(_image(4), ["liver", "spleen"], modality="CT")
    grounder.ground([img, img], ["liver", "spleen"], modality="CT")
    assert calls[0] == 1 and grounder.cache_hits == 2
    grounder.ground_one(img, ["spleen", "liver"], modality="CT")
    assert calls[0] == 2 and grounder.cache_misses == 2


def test_a_batch_equals_single_calls_and_mixes_input_types(grounder, tmp_path):
    a, b = _image(5, (70, 100)), _image(6, (120, 80))
    Image.fromarray(b).save(tmp_path / "b.png")
    batch = grounder.ground([a, tmp_path / "b.png"], ["liver", "lesion"], modality="CT")
    singles = [grounder.ground_one(a, ["liver", "lesion"], modality="CT"),
               grounder.ground_one(Image.fromarray(b), ["liver", "lesion"], modality="CT")]
    assert isinstance(batch, list) and len(batch) == 2
    for rb, rs in zip(batch, singles):
        assert rb.image_size == rs.image_size
        for gb, gs in zip(rb, rs):
            assert gb.boxes.shape == gs.boxes.shape
            assert np.allclose(gb.boxes, gs.boxes, atol=1e-3) and np.allclose(gb.scores, gs.scores, atol=1e-5)
    assert batch[1].source.endswith("b.png")
    assert grounder.ground([], ["liver"]) == []


def test_modality_from_dicom_then_classifier(grounder):
    import pydicom.data as pydicom_data
    res = grounder.ground_one(pydicom_data.get_testdata_file("CT_small.dcm"), ["liver"])
    assert (res.modality, res.modality_source) == ("CT", "metadata")
    res = grounder.ground_one(_image(7), ["liver"])
    assert res.modality_source == "classifier" and res.modality in grounder.config.modalities
    res = grounder.ground_one(pydicom_data.get_testdata_file("CT_small.dcm"), ["liver"], modality="MR")
    assert (res.modality, res.modality_source) == ("MR", "caller")


def test_many_phrases_are_chunked_and_all_answered(grounder):
    calls = _encoder_calls(grounder)
    phrases = [f"structure number {i} of the upper abdomen" for i in range(12)]
    res = grounder.ground_one(_image(8), phrases, modality="CT", top_k=2)
    assert res.phrases == tuple(phrases) and all(len(g) == 2 for g in res)
    assert calls[0] >= 2  # several prompts (tiny preset: 64 tokens)


def test_bad_inputs_raise_medglip_errors_naming_the_problem(grounder, run_dir, tmp_path):
    img = _image()
    with pytest.raises(MedglipError, match="no phrases"):
        grounder.ground_one(img, [])
    with pytest.raises(MedglipError, match="empty phrase"):
        grounder.ground_one(img, ["liver", "  "])
    with pytest.raises(MedglipError, match="unknown modality 'banana'"):
        grounder.ground_one(img, ["liver"], modality="banana")
    with pytest.raises(MedglipError, match="ground_volume"):
        grounder.ground_one(SAMPLES / "brain1_image.nrrd", ["brain tumor"])
    with pytest.raises(MedglipError, match="ground_volume"):
        grounder.ground_one(np.zeros((10, 12, 14), np.float32), ["brain tumor"])
    with pytest.raises(MedglipError, match="not a medglip checkpoint"):
        Grounder.from_pretrained(tmp_path)
    with pytest.raises(MedglipError, match="refiner"):
        Grounder.from_pretrained(run_dir, refiner=None).ground_one(img, ["liver"], masks=True, modality="CT")
    restricted = Grounder(GroundingModel(get_preset("tiny", modalities=("CT", "MR"), own_encoder_modalities=("CT",))))
    with pytest.raises(MedglipError, match="not one this model knows"):
        restricted.ground_one(img, ["liver"], modality="US")


def test_ground_volume_on_a_real_nrrd(grounder):
    res = grounder.ground_volume(SAMPLES / "breast1_image.nrrd", ["breast lesion"], modality="MR", masks=True)
    assert isinstance(res, VolumeGroundingResult)
    assert res.shape == (45, 120, 21) and res.plane == "axial" and len(res.slice_results) == 21
    assert res.objects and all(o.phrase == "breast lesion" for o in res.objects)
    shape = np.array(res.shape)
    for o in res.objects:
        assert 0 <= o.slices[0] <= o.slices[1] < 21
        assert np.all(o.voxel_box[0] <= o.voxel_box[1])
        assert np.all(o.voxel_box[0] >= -0.5) and np.all(o.voxel_box[1] <= shape - 0.5)
        assert np.all(o.world_box[0] <= o.world_box[1])
        assert o.score == pytest.approx(np.mean([s.score for s in o.slice_boxes]))
        assert all(s.mask is not None and s.mask.shape == (120, 45) for s in o.slice_boxes)
    json.dumps(res.to_json())


def test_cached_text_features_give_the_models_own_output(grounder):
    from medglip.core.pipeline import boxes_to_original, model_pixels, to_tensor
    img = _image(9, (80, 120))
    res = grounder.ground_one(img, ["liver", "spleen"], modality="CT")
    res = grounder.ground_one(img, ["liver", "spleen"], modality="CT")  # from the cache
    x, meta = to_tensor(model_pixels(img, "CT", grounder.input_config)[0], grounder.config.image_size)
    prompts = grounder.model.build_prompts(["liver", "spleen"])
    with torch.no_grad():
        det = grounder.model(x[None], torch.tensor([grounder.config.modalities.index("CT")]), prompts)[0]
    boxes = boxes_to_original(det["boxes"], meta).numpy()
    for p in range(2):
        sel = (det["phrase_ids"] == p).numpy()
        ref_boxes, ref_scores = boxes[sel], det["scores"].numpy()[sel]
        keep = (ref_boxes[:, 2] > ref_boxes[:, 0]) & (ref_boxes[:, 3] > ref_boxes[:, 1])
        assert np.allclose(res[p].scores, ref_scores[keep], atol=1e-6)
        assert np.allclose(res[p].boxes, ref_boxes[keep], atol=1e-4)


def test_known_phrases_come_from_the_runs_categories(run_dir, tmp_path):
    import shutil
    assert Grounder.from_pretrained(run_dir, refiner=None).known_phrases == ()  # bare checkpoint
    run = Path(shutil.copytree(run_dir, tmp_path / "run"))
    (run / "categories.json").write_text(json.dumps({"phrases": ["brain tumor", "left kidney", "", 3]}))
    assert Grounder.from_pretrained(run, refiner=None).known_phrases == ("brain tumor", "left kidney")
    (run / "categories.json").write_text("{truncated")
    assert Grounder.from_pretrained(run, refiner=None).known_phrases == ()


def test_results_carry_the_dicom_pixel_spacing(grounder):
    import pydicom
    import pydicom.data
    path = pydicom.data.get_testdata_file("CT_small.dcm")
    res = grounder.ground_one(path, ["liver"])
    assert res.extra["pixel_spacing"] == pytest.approx([float(v) for v in pydicom.dcmread(path).PixelSpacing])
    assert "pixel_spacing" not in grounder.ground_one(_image(), ["liver"], modality="CT").extra


def test_a_phrase_the_tokenizer_cannot_read_is_a_medglip_error(grounder):
    with pytest.raises(MedglipError, match="ĸ"):
        grounder.ground_one(_image(), ["liver", "ĸ"], modality="CT")
