"""The optional 2.5D input (``InputConfig.context_slices``): one path through build, training and inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from layouts import make_manifest
from PIL import Image

from medglip.dataset import BuildConfig, build
from medglip.core.geometry import Geometry
from medglip.core.intensity import CT_WINDOWS, window_to_uint8
from medglip.core.orient import plan_slices
from medglip.core.pipeline import InputConfig, model_pixels, picture, slice_pixels
from medglip.errors import MedglipError

GEOM = Geometry.identity(3)


def _ct(shape=(24, 20, 7), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vol = rng.normal(40, 30, shape).astype(np.int16)
    for k in range(shape[2]):
        vol[2 + k: 6 + k, 3:8, k] = 300  # a structure that moves from slice to slice
    return vol


def test_ct_slice_holds_its_neighbours_in_the_soft_tissue_window():
    vol = _ct()
    plan = plan_slices(GEOM, vol.shape, "axial")
    cfg = InputConfig(context_slices=2)
    soft = CT_WINDOWS["soft_tissue"]
    pix, rec = slice_pixels(vol, plan, 3, "CT", cfg)
    assert pix.shape == (20, 24, 3) and pix.dtype == np.uint8
    for channel, k in enumerate((1, 3, 5)):
        np.testing.assert_array_equal(pix[..., channel], window_to_uint8(plan.view(vol, k), *soft))
    assert rec["context"] == [-2, 0, 2] and rec["windows"] == [list(soft)] * 3
    # clamped at the ends of the volume
    first, _ = slice_pixels(vol, plan, 0, "CT", cfg)
    np.testing.assert_array_equal(first[..., 0], first[..., 1])
    np.testing.assert_array_equal(first[..., 2], window_to_uint8(plan.view(vol, 2), *soft))
    # what people see is the centre slice
    np.testing.assert_array_equal(picture(pix, rec), pix[..., 1])
    # without the option: the three windows of the one slice, as before
    flat, flat_rec = slice_pixels(vol, plan, 3, "CT", InputConfig())
    assert "context" not in flat_rec and not np.array_equal(flat[..., 0], flat[..., 1])


def test_mr_neighbours_use_the_centre_slices_percentiles_and_a_lone_image_repeats_itself():
    vol = (_ct(seed=1).astype(np.float32) + 500) * 3  # not Hounsfield-like: percentiles
    plan = plan_slices(GEOM, vol.shape, "axial")
    cfg = InputConfig(context_slices=1)
    pix, rec = slice_pixels(vol, plan, 4, "MR", cfg)
    lone, _ = model_pixels(plan.view(vol, 4), "MR", InputConfig())  # grey (H, W) of the centre alone
    np.testing.assert_array_equal(pix[..., 1], lone)
    np.testing.assert_array_equal(pix[..., 0], window_to_uint8(plan.view(vol, 3), rec["low"], rec["high"]))
    single, single_rec = model_pixels(plan.view(vol, 4), "MR", cfg)  # no neighbours given
    assert single.shape == (20, 24, 3) and all(np.array_equal(single[..., c], lone) for c in range(3))
    assert single_rec["context"] == [-1, 0, 1]
    rgb = np.zeros((5, 6, 3), np.uint8)
    assert model_pixels(rgb, "ENDO", cfg)[0].shape == (5, 6, 3)  # colour pictures are unchanged
    with pytest.raises(MedglipError, match="neighbouring slices"):
        model_pixels(plan.view(vol, 4), "MR", cfg, neighbours=(np.zeros((3, 3)), np.zeros((3, 3))))
    with pytest.raises(ValueError, match="context_slices"):
        InputConfig(context_slices=-1)
    assert InputConfig.from_json(cfg.to_json()) == cfg and "context_slices" not in InputConfig().to_json()


def test_build_writes_the_25d_input_and_training_refuses_a_model_without_it(tmp_path):
    src = make_manifest(tmp_path)
    out = tmp_path / "ds"
    res = build(BuildConfig(source=str(src), context_slices=1, split_ratios=(1, 0, 0)), out)
    assert not res.failed
    assert json.loads((out / "build_config.json").read_text())["context_slices"] == 1
    coco = json.loads((out / "annotations" / "train.json").read_text())
    ct = next(im for im in coco["images"] if im["modality"] == "CT" and 0 < im["slice_index"])
    assert ct["intensity"]["context"] == [-1, 0, 1]
    written = np.asarray(Image.open(out / "images" / ct["file_name"]))
    from medglip.io import read_image

    vol = read_image(src / "ct1.nii.gz")
    plan = plan_slices(vol.geometry, vol.array.shape, "axial")
    expect, _ = slice_pixels(vol.array, plan, ct["slice_index"], "CT", InputConfig(context_slices=1))
    np.testing.assert_array_equal(written, expect)
    # the default build of the same source keeps its fingerprint (no context_slices field)
    assert "context_slices" not in BuildConfig(source=str(src)).to_json()

    from medglip.train.data import check_input_config

    with pytest.raises(MedglipError, match="--context-slices"):
        check_input_config(out, InputConfig())
    check_input_config(out, InputConfig(context_slices=1))


def test_ground_volume_feeds_the_model_each_slice_with_its_neighbours():
    from medglip.infer import Grounder
    from medglip.model import GroundingModel, get_preset

    torch.manual_seed(0)
    model = GroundingModel(get_preset("tiny", context_slices=2, score_threshold=0.0)).eval()
    g = Grounder(model, refiner=None)
    seen: list[torch.Tensor] = []
    real = model.encode_images

    def spy(images, modality):
        seen.append(images.clone())
        return real(images, modality)

    model.encode_images = spy  # type: ignore[method-assign]
    vol = _ct()
    res = g.ground_volume(vol, ["liver"], geometry=GEOM, modality="CT")
    plan = plan_slices(GEOM, vol.shape, "axial")
    from medglip.core.pipeline import to_tensor

    fed = torch.cat(seen)
    assert fed.shape[0] == plan.n_slices
    for k in (0, 3, 6):
        pix, rec = res.slice_pixels(k)
        assert rec["context"] == [-2, 0, 2]
        np.testing.assert_array_equal(pix, slice_pixels(vol, plan, k, "CT", model.config.input_config)[0])
        torch.testing.assert_close(fed[k], to_tensor(pix, model.config.image_size)[0])
    assert res.picture(3).ndim == 2  # people see the centre slice
    # the checkpoint's config carries the option
    assert type(model.config).from_dict(json.loads(json.dumps(model.config.to_dict()))).context_slices == 2


def test_cli_build_and_train_take_context_slices(tmp_path: Path):
    from typer.testing import CliRunner

    from medglip.cli import app

    src = make_manifest(tmp_path)
    r = CliRunner().invoke(app, ["build", str(src), str(tmp_path / "ds"), "--context-slices", "1", "--split", "1,0,0"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--preset", "tiny",
                                 "--max-steps", "1", "--batch-size", "2"])
    assert r.exit_code != 0 and "--context-slices" in r.output
    r = CliRunner().invoke(app, ["train", str(tmp_path / "ds"), "--out", str(tmp_path / "run"), "--preset", "tiny",
                                 "--max-steps", "1", "--batch-size", "2", "--context-slices", "1"])
    assert r.exit_code == 0, r.output
    cfg = json.loads(next((tmp_path / "run").rglob("config.json")).read_text())
    assert cfg["context_slices"] == 1
